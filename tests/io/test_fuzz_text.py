"""Fuzz the text-format readers: damaged files give a valid result or a MedposeError, quickly.

For every text format medpose reads, a valid file is written with medpose's own writer, then
damaged in deterministic ways (seeded): truncated at many points, bytes flipped, garbage
inserted, numbers replaced by huge, infinite or NaN values, deep nesting, other encodings.  Each
damaged file must either read into a valid object or raise :class:`MedposeError` - never
another exception - and each read must finish within :data:`CASE_LIMIT_S` (a SIGALRM timer
stops a read that hangs; no timing is asserted otherwise).
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from medpose.camera import Camera
from medpose.data import JointAngles, KeypointSequence, Landmarks
from medpose.errors import MedposeError
from medpose.io.calibration import read_calibration, write_calibration
from medpose.io.keypoints import read_keypoints, write_keypoints
from medpose.io.landmarks import read_landmarks, write_landmarks
from medpose.io.mot import read_mot, write_mot
from medpose.io.openpose import read_openpose, write_openpose
from medpose.layouts import get_layout

#: Seconds one damaged file may take to read before the test fails (generous: reads take ms).
CASE_LIMIT_S = 5

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX SIGALRM")


class _Hang(BaseException):
    """Raised by the SIGALRM handler; BaseException so no reader can swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise _Hang()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------- damage
_NUMBER = re.compile(rb"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+")
_HOSTILE = [
    b"1" * 400,
    b"1e999",
    b"-1e999",
    b"inf",
    b"-inf",
    b"nan",
    b"NaN",
    b"Infinity",
    b"",
    b"1e308",
    b"-0",
    b'"',
    b"0x1F",
]


def damaged(data: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    """Deterministic damaged versions of ``data``: (description, bytes)."""
    rng = np.random.default_rng(seed)
    n = len(data)
    cuts = sorted({int(c) for c in np.linspace(0, n - 1, 14)} | {n - 1, n - 2, n - 3, n // 2 + 1})
    for c in cuts:
        yield f"truncated at {c}", data[:c]
    for i in range(10):
        pos = rng.integers(0, n, size=1 + i % 3)
        b = bytearray(data)
        for p in pos:
            b[p] = int(rng.integers(0, 256))
        yield f"bytes flipped at {pos.tolist()}", bytes(b)
    for garbage in (
        b"\x00\xff\xfe",
        b"\n\n\n",
        b"\t,;\"'",
        "\u00e9\u2028".encode(),
        b"[[[[{{{{",
        b"&a *a",
    ):
        p = int(rng.integers(0, n))
        yield f"{garbage!r} inserted at {p}", data[:p] + garbage + data[p:]
    numbers = list(_NUMBER.finditer(data))
    for i, bad in enumerate(_HOSTILE):
        for m in (
            (numbers[int(rng.integers(0, len(numbers)))], numbers[-1], numbers[0])
            if numbers
            else ()
        ):
            yield (
                f"number at {m.start()} -> {bad[:12]!r}",
                data[: m.start()] + bad + data[m.end() :],
            )
            if i % 3:
                break
    yield "deep nesting", b"[" * 20000 + data + b"]" * 20000
    yield "deep mapping", b'{"a": ' * 5000 + b"1" + b"}" * 5000
    text = data.decode("utf-8", "replace")
    yield "latin-1 text", text.replace("a", "\u00e9", 3).encode("latin-1", "replace")
    yield "utf-16 text", text.encode("utf-16", "surrogatepass")
    yield "empty", b""
    yield "many columns", data[: n // 3] + b"," * 50000 + b"\t" * 50000 + data[n // 3 :]
    yield "long line", data[: n // 2] + b"x" * 200_000 + data[n // 2 :]


def check(read: Callable[[], object], valid: Callable[[object], bool], what: str) -> None:
    try:
        with _time_limit(CASE_LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = read()
    except MedposeError:
        return
    except _Hang:
        pytest.fail(f"{what}: still reading after {CASE_LIMIT_S} s")
    except Exception as e:  # the point of the test: no other exception escapes a reader
        pytest.fail(f"{what}: {type(e).__name__}: {str(e)[:300]}")
    assert valid(out), f"{what}: returned an invalid {type(out).__name__}"


# ----------------------------------------------------------------------------- formats
def _seq3d() -> KeypointSequence:
    rng = np.random.default_rng(7)
    pos = rng.normal(size=(5, 3, 3)) * 100
    pos[1, 2] = np.nan
    return KeypointSequence(pos, ("hip_r", "knee_r", "ankle_r"), 60.0)


def _cams() -> list[Camera]:
    k = np.array([[1400.0, 0, 960], [0, 1410, 540], [0, 0, 1]])
    return [
        Camera(
            name=f"cam{i}",
            size=(1920, 1080),
            matrix=k,
            distortion=np.array([-0.1, 0.05, 0.001, 0.0]),
            rotation=np.array([0.1 * i, 0.2, -0.1]),
            translation=np.array([100.0 * i, -50.0, 3000.0]),
        )
        for i in range(2)
    ]


def _landmarks() -> Landmarks:
    pos = np.array([[-120.5, 30.25, 910.0], [118.0, 29.5, 912.125], [np.nan] * 3])
    return Landmarks(("asis_r", "asis_l", "sacrum"), pos, "LPS")


def _is_seq(x: object) -> bool:
    return isinstance(x, KeypointSequence) and x.positions.ndim == 3


def _is_cams(x: object) -> bool:
    return isinstance(x, list) and all(isinstance(c, Camera) for c in x) and len(x) > 0


FILE_FORMATS: dict[
    str, tuple[Callable[[Path], Path], Callable[[Path], object], Callable[[object], bool]]
] = {
    "trc": (lambda p: write_keypoints(_seq3d(), p), read_keypoints, _is_seq),
    "csv": (lambda p: write_keypoints(_seq3d(), p), read_keypoints, _is_seq),
    "wide.csv": (
        lambda p: write_keypoints(_seq3d(), p, wide=True),
        read_keypoints,
        _is_seq,
    ),
    "parquet": (lambda p: write_keypoints(_seq3d(), p), read_keypoints, _is_seq),
    "mot": (
        lambda p: write_mot(
            JointAngles(
                np.arange(12.0).reshape(4, 3),
                ("knee_flexion_r", "hip_flexion_r", "pelvis_tx"),
                100.0,
            ),
            p,
        ),
        read_mot,
        lambda x: isinstance(x, JointAngles),
    ),
    "toml": (lambda p: write_calibration(_cams(), p), read_calibration, _is_cams),
    "yml": (lambda p: write_calibration(_cams(), p), read_calibration, _is_cams),
    "one.yaml": (lambda p: write_calibration(_cams()[:1], p), read_calibration, _is_cams),
    "mrk.json": (
        lambda p: write_landmarks(_landmarks(), p),
        read_landmarks,
        lambda x: isinstance(x, Landmarks),
    ),
    "fcsv": (
        lambda p: write_landmarks(_landmarks(), p),
        read_landmarks,
        lambda x: isinstance(x, Landmarks),
    ),
    "lm.csv": (
        lambda p: write_landmarks(_landmarks(), p),
        read_landmarks,
        lambda x: isinstance(x, Landmarks),
    ),
}


@pytest.mark.parametrize("fmt", list(FILE_FORMATS))
def test_damaged_files(tmp_path: Path, fmt: str) -> None:
    write, read, valid = FILE_FORMATS[fmt]
    name = f"trial.{fmt.split('.')[-1]}" if fmt != "lm.csv" else "points.csv"
    good = write(tmp_path / name)
    data = good.read_bytes()
    check(lambda: read(good), valid, f"{fmt}: the valid file")
    target = tmp_path / "d" / name
    target.parent.mkdir()
    for i, (how, bad) in enumerate(damaged(data, seed=sum(map(ord, fmt)))):
        target.write_bytes(bad)
        check(lambda: read(target), valid, f"{fmt} case {i} ({how})")


def test_damaged_openpose_folders(tmp_path: Path) -> None:
    lay = get_layout("coco17")
    rng = np.random.default_rng(11)
    seq = KeypointSequence(
        rng.uniform(10, 900, (5, 17, 2)), tuple(lay.medpose), 30.0, frame="cam01"
    )
    good = write_openpose(seq, tmp_path / "cam01_json")
    files = sorted(good.iterdir())
    check(lambda: read_openpose(good), _is_seq, "openpose: the valid folder")
    work = tmp_path / "w" / "cam01_json"
    victim = files[2].name
    data = files[2].read_bytes()
    for i, (how, bad) in enumerate(damaged(data, seed=5)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(good, work)
        (work / victim).write_bytes(bad)
        check(lambda: read_keypoints(work), _is_seq, f"openpose case {i} ({how} in {victim})")
    # folder-level damage: renamed, missing and stray files
    for how, change in [
        ("frame 2 missing", lambda d: (d / victim).unlink()),
        (
            "stray huge frame number",
            lambda d: shutil.copy(d / victim, d / "cam01_000900000000_keypoints.json"),
        ),
        (
            "40-digit frame number",
            lambda d: shutil.copy(d / victim, d / ("c_" + "9" * 40 + ".json")),
        ),
        ("file without a number", lambda d: shutil.copy(d / victim, d / "cam.json")),
        ("a folder named .json", lambda d: (d / "x_000000000007.json").mkdir()),
        ("only non-json files", lambda d: [f.rename(f.with_suffix(".txt")) for f in d.iterdir()]),
    ]:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(good, work)
        change(work)
        for kw in ({}, {"missing_frames": "error"}, {"rate": 0}):
            check(
                functools.partial(read_openpose, work, **kw),
                _is_seq,
                f"openpose folder: {how} {kw}",
            )
