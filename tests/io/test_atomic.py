"""Atomic writes: every medpose writer leaves the earlier file (or folder) intact on failure.

Failures are simulated where they happen on real systems: ``fsync`` or the final rename
failing with ENOSPC (a full disk, as NFS and ext4 with delayed allocation report it at
``fsync``), Ctrl-C (KeyboardInterrupt) at those points, a write cut mid-way by the kernel
(``RLIMIT_FSIZE``: the write system call fails with EFBIG, in Python, C and child processes
alike), and a process killed with SIGKILL while writing.  After each, the destination must be
byte for byte what it was, and no temporary file may be left behind (a SIGKILL leaves one,
which the next write removes).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import medpose.io._util as util
from medpose.camera.model import Camera
from medpose.data import JointAngles, KeypointSequence, Landmarks
from medpose.errors import InputError, MedposeError
from medpose.imaging.volume import Volume, write_volume
from medpose.io._util import atomic_dir, atomic_path, atomic_write, display_name
from medpose.io.c3d import write_c3d
from medpose.io.calibration import write_calibration
from medpose.io.keypoints import read_keypoints, write_keypoints
from medpose.io.landmarks import write_landmarks
from medpose.io.mot import write_mot
from medpose.io.openpose import read_openpose, write_openpose
from medpose.io.trc import write_trc
from medpose.kinematics.fit import Fit, fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.protocol import write_session_yaml
from medpose.synthetic.exercises import make_exercise

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


# ---------------------------------------------------------------------------- inputs
def _seq3d(v: int, frames: int | None = None) -> KeypointSequence:
    t = frames if frames is not None else (40 if v == 0 else 25)
    rng = np.random.default_rng(v)
    pos = rng.normal(0, 300, (t, 3, 3))
    pos[t // 2, 1] = np.nan
    return KeypointSequence(pos, ("knee_r", "ankle_r", "hip_r"), 100.0 + v, frame="lab")


def _seq2d(v: int) -> KeypointSequence:
    lay = get_layout("body25")
    t = 10 if v == 0 else 3  # the new sequence is shorter: no frame of the old may remain
    rng = np.random.default_rng(10 + v)
    pos = rng.uniform(10, 600, (t, len(lay), 2))
    conf = rng.uniform(0.2, 1.0, (t, len(lay)))
    return KeypointSequence(pos, tuple(lay.medpose), 30.0, confidence=conf, frame="cam01")


def _angles(v: int) -> JointAngles:
    rng = np.random.default_rng(20 + v)
    return JointAngles(
        rng.uniform(-60, 60, (30 + 10 * v, 3)),
        ("knee_flexion_r", "hip_flexion_r", "pelvis_tx"),
        50.0,
    )


def _landmarks(v: int) -> Landmarks:
    rng = np.random.default_rng(30 + v)
    names = ("asis_r", "asis_l", "psis_r", "psis_l")[: 4 - v]
    return Landmarks(names, rng.normal(0, 100, (len(names), 3)))


def _cameras(v: int) -> list[Camera]:
    k = np.array([[1400.0 + v, 0.0, 960.5], [0.0, 1410.0, 540.25], [0.0, 0.0, 1.0]])
    a = np.array
    cams = [
        Camera(
            "cam01",
            (1920, 1080),
            k,
            a([-0.12, 0.08, 0.001, -0.0005, 0.003]),
            a([0.1, -2.0, 0.3]),
            a([120.5, -40.25, 3500.0]),
        ),
        Camera(
            "cam02",
            (1920, 1080),
            k,
            a([-0.1, 0.05, 0.0, 0.0]),
            a([1.2, 0.4, -0.7]),
            a([-300.0, 10.0, 2800.0]),
        ),
    ]
    return cams[: 2 - v]


def _volume(v: int) -> Volume:
    rng = np.random.default_rng(40 + v)
    arr = rng.integers(-1000, 3000, size=(9 - v, 8, 6)).astype(np.int16)
    spacing, origin = np.array([0.75, 1.25, 2.5]), np.array([-120.5, 33.25, -70.0])
    return Volume(arr, spacing=spacing, origin=origin, direction=np.eye(3))


@cache
def _fit(v: int) -> Fit:
    sk = Skeleton.default(1750.0)
    q = make_exercise("squat", skeleton=sk, rate=10.0, repetitions=1 + v, seed=1).angles.values
    names = tuple(sk.keypoint_names)
    x = np.asarray(forward_kinematics(sk, q, keypoints=list(names)))
    return fit(KeypointSequence(x, names, 10.0, frame="camera"), sk, progress=False)


def _session(v: int) -> dict:
    return {
        "medpose_session": 1,
        "patient": {"id": "SYN-0001", "sex": "female", "age_years": 54 + v, "height_mm": 1680},
        "date": "2026-11-25",
        "calibration": "calibration/calibration.toml",
        "trials": [{"name": "static", "kind": "static", "keypoints": "trials/static.trc"}][:1],
    }


@dataclass(frozen=True)
class Writer:
    dest: str  # file (or folder) name written
    write: Callable[[Path, int], object]  # (destination, version 0 = old / 1 = new)


WRITERS: dict[str, Writer] = {
    "trc": Writer("t.trc", lambda p, v: write_trc(_seq3d(v), p)),
    "mot": Writer("a.mot", lambda p, v: write_mot(_angles(v), p)),
    "csv": Writer("k.csv", lambda p, v: write_keypoints(_seq3d(v), p)),
    "parquet": Writer("k.parquet", lambda p, v: write_keypoints(_seq3d(v), p)),
    "openpose": Writer("cam01_json", lambda p, v: write_openpose(_seq2d(v), p)),
    "c3d": Writer("t.c3d", lambda p, v: write_c3d(_seq3d(v), p)),
    "mrk.json": Writer("l.mrk.json", lambda p, v: write_landmarks(_landmarks(v), p)),
    "fcsv": Writer("l.fcsv", lambda p, v: write_landmarks(_landmarks(v), p)),
    "landmarks.csv": Writer("l.csv", lambda p, v: write_landmarks(_landmarks(v), p)),
    "calibration.toml": Writer("c.toml", lambda p, v: write_calibration(_cameras(v), p)),
    "calibration.yaml": Writer("c.yaml", lambda p, v: write_calibration(_cameras(v), p)),
    "nii": Writer("v.nii", lambda p, v: write_volume(_volume(v), p)),
    "nii.gz": Writer("v.nii.gz", lambda p, v: write_volume(_volume(v), p)),
    "nrrd": Writer("v.nrrd", lambda p, v: write_volume(_volume(v), p)),
    "nhdr": Writer("v.nhdr", lambda p, v: write_volume(_volume(v), p)),
    "mha": Writer("v.mha", lambda p, v: write_volume(_volume(v), p)),
    "fit.mot": Writer("f.mot", lambda p, v: _fit(v).to_mot(p)),
    "fit.csv": Writer("f.csv", lambda p, v: _fit(v).to_csv(p)),
    "fit.parquet": Writer("f.parquet", lambda p, v: _fit(v).to_parquet(p)),
    "session.yaml": Writer("session.yaml", lambda p, v: write_session_yaml(_session(v), p)),
}
NAMES = sorted(WRITERS)
# One writer per way of writing, for the (slower) tests in a child process: text through
# atomic_write, a library writing to a path (pyarrow), a folder (atomic_dir), a child process
# (ezc3d), SimpleITK (one file, and header plus data file), binary TOML, YAML.
KILLED = ["trc", "parquet", "openpose", "c3d", "nii.gz", "nhdr", "calibration.toml", "session.yaml"]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones included): file bytes, None for a folder."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        out[p.relative_to(folder).as_posix()] = None if p.is_dir() else p.read_bytes()
    return out


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture
def written(request, tmp_path) -> Iterator[tuple[Writer, Path, dict]]:
    """The old version written at ``tmp_path/out/<dest>``; yields (writer, dest, snapshot)."""
    w = WRITERS[request.param]
    dest = tmp_path / "out" / w.dest
    w.write(dest, 0)
    yield w, dest, snapshot(dest.parent)


# ---------------------------------------------------------------------------- failures
class _Fail:
    """Replace ``fn`` by a function raising ``exc`` (an ENOSPC OSError or KeyboardInterrupt)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise self.exc


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("written", NAMES, indirect=True)
@pytest.mark.parametrize("exc", [_enospc, KeyboardInterrupt], ids=["ENOSPC", "KeyboardInterrupt"])
def test_failing_fsync_keeps_old(written, exc, monkeypatch):
    w, dest, before = written
    fail = _Fail(exc())
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(fail.exc)) as info:
        w.write(dest, 1)
    monkeypatch.undo()
    assert fail.calls == 1
    if isinstance(fail.exc, OSError):
        assert info.value.errno == errno.ENOSPC
    assert snapshot(dest.parent) == before


@pytest.mark.parametrize("written", NAMES, indirect=True)
@pytest.mark.parametrize("exc", [_enospc, KeyboardInterrupt], ids=["ENOSPC", "KeyboardInterrupt"])
def test_failing_rename_keeps_old(written, exc, monkeypatch):
    w, dest, before = written
    fail = _Fail(exc())
    monkeypatch.setattr(os, "replace", fail)
    monkeypatch.setattr(os, "rename", fail)
    monkeypatch.setattr(util, "_exchange", fail)
    with pytest.raises(type(fail.exc)):
        w.write(dest, 1)
    monkeypatch.undo()
    assert fail.calls >= 1
    assert snapshot(dest.parent) == before


@pytest.fixture
def file_size_limit() -> Iterator[Callable[[int], None]]:
    """Set RLIMIT_FSIZE (bytes) for this process and its children; writes past it fail (EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a core dump

    def limit(n: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))

    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.parametrize("written", NAMES, indirect=True)
def test_write_cut_midway_keeps_old(written, tmp_path, file_size_limit):
    """The kernel refuses the write half-way through the largest new file (EFBIG)."""
    w, dest, before = written
    scratch = tmp_path / "scratch" / w.dest
    w.write(scratch, 1)
    sizes = [p.stat().st_size for p in scratch.parent.rglob("*") if p.is_file()]
    file_size_limit(max(1, max(sizes) // 2))
    try:
        with pytest.raises((OSError, MedposeError)) as info:
            w.write(dest, 1)
    finally:
        file_size_limit(resource.RLIM_INFINITY)
    assert snapshot(dest.parent) == before
    assert str(tmp_path) not in str(info.value)  # no folder above the file in the message
    if isinstance(info.value, MedposeError):
        assert w.dest in str(info.value)
    else:  # the kernel's EFBIG, or ENOSPC from writers that find a short file afterwards
        assert info.value.errno in (errno.EFBIG, errno.ENOSPC)


# A child interpreter writes the new version of each file, each in a forked process whose
# os.fsync says so and hangs: that process is past its last write and before its rename.  The
# child kills it (SIGKILL) as soon as it hangs, or, for the large file, as soon as a temporary
# file holds data (mid-write).  One interpreter for all, since starting one takes seconds.
_CHILD = """
import os, signal, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_atomic as T
root = Path(sys.argv[2])
for name in sys.argv[3].split(","):
    dest = root / name / (T.WRITERS[name].dest if name in T.WRITERS else "big.trc")
    marker = root / (name + ".marker")
    pid = os.fork()
    if pid == 0:
        def hang(fd):
            marker.write_text("fsync")
            time.sleep(600)
        os.fsync = hang
        try:
            if name in T.WRITERS:
                T.WRITERS[name].write(dest, 1)
            else:
                T.write_trc(T._seq3d(1, 60_000), dest)
        finally:
            os._exit(3)  # only reached if the writer finished without fsync
    deadline = time.monotonic() + 120  # a guard against a hung test, not a measurement
    status = None
    while status is None and time.monotonic() < deadline:
        temps = [p for p in dest.parent.glob(".*") if p.is_file() and p.stat().st_size > 0]
        if marker.exists() or (name not in T.WRITERS and temps):
            break
        done, st = os.waitpid(pid, os.WNOHANG)
        status = st if done else None
        time.sleep(0.005)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    print(name, "killed" if killed else "finished", flush=True)
"""


def test_sigkill_keeps_old_and_next_write_cleans_up(tmp_path):
    """Killed while writing: the old file stays; the next write removes the orphan temporary."""
    names = [*KILLED, "large"]
    before = {}
    for name in names:
        dest = tmp_path / name / (WRITERS[name].dest if name in WRITERS else "big.trc")
        if name in WRITERS:
            WRITERS[name].write(dest, 0)
        else:
            write_trc(_seq3d(0), dest)
        before[name] = snapshot(dest.parent)
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(HERE), str(tmp_path), ",".join(names)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = dict(line.split() for line in run.stdout.splitlines())
    problems = []
    for name in names:
        folder = tmp_path / name
        if outcome.get(name) != "killed":
            problems.append(f"{name}: the writer {outcome.get(name)} without calling fsync")
            continue
        after = snapshot(folder)
        visible = {k: v for k, v in after.items() if not k.split("/")[0].startswith(".")}
        changed = [k for k in before[name] if visible.get(k) != before[name][k]]
        extra = sorted(set(visible) - set(before[name]))
        if changed or extra:
            problems.append(f"{name}: changed {changed}, new visible files {extra}")
        if not _hidden(folder):
            problems.append(f"{name}: no temporary file (did it write in place?)")
        if name in WRITERS:
            WRITERS[name].write(folder / WRITERS[name].dest, 1)
        else:
            write_trc(_seq3d(1), folder / "big.trc")
        if _hidden(folder):
            problems.append(f"{name}: the next write left {_hidden(folder)}")
        if snapshot(folder) == before[name]:
            problems.append(f"{name}: the next write changed nothing")
    assert not problems, problems


# ---------------------------------------------------------------------------- modes
@pytest.mark.parametrize("written", NAMES, indirect=True)
def test_mode_of_replaced_file_is_kept(written):
    w, dest, _ = written
    targets = [dest] if dest.is_dir() else [dest, *dest.parent.glob("*.raw*")]
    for p in targets:
        os.chmod(p, 0o750 if p.is_dir() else 0o640)
    w.write(dest, 1)
    assert stat.S_IMODE(dest.stat().st_mode) == (0o750 if dest.is_dir() else 0o640)


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_file_gets_mode_from_umask(tmp_path, umask, mask):
    umask(mask)
    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a normal open gives
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664, 0o444])
def test_replacing_keeps_mode(tmp_path, mode):
    p = tmp_path / "a.txt"
    p.write_text("old")
    os.chmod(p, mode)
    with atomic_write(p) as fh:
        fh.write("new")
    assert p.read_text() == "new"
    assert stat.S_IMODE(p.stat().st_mode) == mode


def test_atomic_path_keeps_mode_when_the_block_recreates_the_file(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    os.chmod(p, 0o640)
    with atomic_path(p) as tmp:
        tmp.unlink()  # as some libraries do: remove and create anew
        tmp.write_bytes(b"new")
        os.chmod(tmp, 0o600)
    assert p.read_bytes() == b"new"
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


# ---------------------------------------------------------------------------- fsync
def test_file_and_folder_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    assert events == ["fsync-file", "replace", "fsync-dir"]


# ---------------------------------------------------------------------------- symlinks
def test_symlink_is_followed_and_kept(tmp_path):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "links" / "link.txt"
    link.parent.mkdir()
    link.symlink_to(real)
    with atomic_write(link) as fh:
        fh.write("new")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert _hidden(tmp_path) == []


def test_symlink_failure_leaves_target_and_no_temporary(tmp_path, monkeypatch):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    monkeypatch.setattr(os, "fsync", _Fail(_enospc()))
    with pytest.raises(OSError), atomic_write(link) as fh:
        fh.write("new")
    assert real.read_text() == "old" and link.is_symlink()
    assert _hidden(tmp_path) == []


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "target.txt")
    with atomic_write(link) as fh:
        fh.write("new")
    assert link.is_symlink() and (tmp_path / "target.txt").read_text() == "new"


def test_symlink_loop_is_refused(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.symlink_to(b)
    b.symlink_to(a)
    match = r"a\.txt: symbolic link that cannot be followed"
    with pytest.raises(InputError, match=match) as info, atomic_write(a) as fh:
        fh.write("x")
    assert str(tmp_path) not in str(info.value)
    assert a.is_symlink() and b.is_symlink()


def test_writer_follows_symlink_to_folder(tmp_path):
    real = tmp_path / "store" / "cam01_json"
    write_openpose(_seq2d(0), real)
    link = tmp_path / "cam01_json"
    link.symlink_to(real, target_is_directory=True)
    write_openpose(_seq2d(1), link)
    assert link.is_symlink()
    assert read_openpose(real).n_frames == 3
    assert _hidden(tmp_path) == []


def test_folder_as_file_destination_is_refused(tmp_path):
    (tmp_path / "x.trc").mkdir()
    with pytest.raises(InputError, match=r"x\.trc: is a folder; expected a file"):
        write_trc(_seq3d(0), tmp_path / "x.trc")


def test_bad_suffix_is_refused(tmp_path):
    with (
        pytest.raises(InputError, match=r"suffix must look like '\.ext', found '/x'"),
        atomic_path(tmp_path / "a", suffix="/x"),
    ):
        pass


# ---------------------------------------------------------------------------- leftovers
def test_leftover_of_dead_writer_is_removed_live_one_is_kept(tmp_path):
    dest = tmp_path / "a.txt"
    dead = tmp_path / ".a.txt.abcd1234.tmp"
    live = tmp_path / ".a.txt.live0001.tmp"
    other = tmp_path / ".b.txt.abcd1234.tmp"  # another destination's
    for p in (dead, live, other):
        p.write_text("partial")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still at work holds the lock
    try:
        with atomic_write(dest) as fh:
            fh.write("x")
        assert not dead.exists()
        assert live.exists() and other.exists()
    finally:
        os.close(fd)


def test_long_file_name(tmp_path):
    p = tmp_path / ("n" * 250 + ".txt")
    with atomic_write(p) as fh:
        fh.write("x")
    assert p.read_text() == "x" and _hidden(tmp_path) == []


# ---------------------------------------------------------------------------- folders
def test_openpose_rewrite_replaces_every_frame(tmp_path):
    d = tmp_path / "cam01_json"
    write_openpose(_seq2d(0), d)
    assert read_openpose(d).n_frames == 10
    write_openpose(_seq2d(1), d)
    assert len(list(d.iterdir())) == 3
    np.testing.assert_allclose(read_openpose(d).positions, _seq2d(1).positions, atol=1e-6)
    assert _hidden(tmp_path) == []


def test_openpose_refuses_to_replace_a_folder_with_other_files(tmp_path):
    d = tmp_path / "cam01_json"
    write_openpose(_seq2d(0), d)
    (d / "video.mp4").write_bytes(b"\0")
    with pytest.raises(InputError, match=r"cam01_json: the folder holds 1 entries .*video\.mp4"):
        write_openpose(_seq2d(1), d)
    assert len(list(d.glob("*.json"))) == 10


def test_openpose_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "cam01_json").write_text("x")
    with pytest.raises(InputError, match="cam01_json: exists and is not a folder"):
        write_openpose(_seq2d(0), tmp_path / "cam01_json")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_atomic_dir_swaps_and_removes_old(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(util, "_exchange", lambda a, b: False)
    d = tmp_path / "d"
    d.mkdir()
    (d / "old.txt").write_text("old")
    with atomic_dir(d) as new:
        assert new.parent == d.parent and new != d
        (new / "new.txt").write_text("new")
        assert (d / "old.txt").read_text() == "old"  # untouched until the block ends
    assert sorted(x.name for x in d.iterdir()) == ["new.txt"]
    assert _hidden(tmp_path) == []


def test_atomic_dir_failure_keeps_old(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(d) as new:
        (new / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert snapshot(tmp_path) == {"d": None, "d/old.txt": b"old"}


def test_atomic_dir_collects_leftovers_and_restores_a_set_aside_folder(tmp_path):
    d = tmp_path / "d"
    # a writer killed between its two renames: the earlier folder set aside, nothing at d
    aside = tmp_path / ".d.abcd1234.old"
    aside.mkdir()
    (aside / "old.txt").write_text("old")
    stale = tmp_path / ".d.efgh5678.tmpdir"
    stale.mkdir()
    (stale / "partial.txt").write_text("partial")
    with atomic_dir(d) as new:
        assert (d / "old.txt").read_text() == "old"  # put back before anything else
        (new / "new.txt").write_text("new")
    assert snapshot(tmp_path) == {"d": None, "d/new.txt": b"new"}


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "d").write_text("x")
    with (
        pytest.raises(InputError, match="d: exists and is not a folder"),
        atomic_dir(tmp_path / "d"),
    ):
        pass


# ---------------------------------------------------------------------------- C3D
def test_c3d_writes_beside_destination_not_in_tmp(tmp_path, monkeypatch):
    """A rename across folders is what fails with EXDEV between file systems: forbid it."""
    real_replace = os.replace

    def same_folder_only(a, b):
        if Path(a).parent != Path(b).parent:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", same_folder_only)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    p = write_c3d(_seq3d(0), tmp_path / "out" / "t.c3d")
    back = read_keypoints(p)
    np.testing.assert_allclose(back.positions, _seq3d(0).positions, atol=1e-3)
    assert _hidden(tmp_path / "out") == []


# ---------------------------------------------------------------------------- display names
def test_display_name_hides_parent_folders(tmp_path):
    p = tmp_path / "SYN-4711" / "trials" / "squat.trc"
    assert display_name(p) == "squat.trc"
    assert display_name(p, root=tmp_path / "SYN-4711") == "trials/squat.trc"
    assert display_name(p, root=tmp_path / "elsewhere") == "squat.trc"
    assert display_name("squat.trc") == "squat.trc"
    assert display_name(p.parent, root=p.parent) == "trials"


def test_display_name_relative_and_absolute_mix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "SYN-4711" / "trials").mkdir(parents=True)
    rel = Path("SYN-4711") / "trials" / "squat.trc"
    assert display_name(rel, root=tmp_path / "SYN-4711") == "trials/squat.trc"
    assert display_name(tmp_path / rel, root="SYN-4711") == "trials/squat.trc"
    assert (
        display_name(tmp_path / "SYN-4711" / ".." / "x.trc", root=tmp_path / "SYN-4711") == "x.trc"
    )


def test_error_messages_name_no_parent_folder(tmp_path):
    patient = tmp_path / "SYN-4711"
    patient.mkdir()
    (patient / "x.trc").mkdir()
    with pytest.raises(InputError) as info:
        write_trc(_seq3d(0), patient / "x.trc")
    assert "SYN-4711" not in str(info.value) and str(tmp_path) not in str(info.value)
