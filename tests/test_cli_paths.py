"""Paths the command line refuses up front: names that are not UTF-8 text (before SimpleITK,
which aborts the process on them, sees them) and outputs that cannot be written (before the
work, not after it)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medpose as mp
from medpose.cli import main
from medpose.errors import InputError
from medpose.imaging.volume import Volume, read_volume, write_volume
from medpose.io._util import atomic_dir, atomic_path, atomic_write
from medpose.protocol import write_session_yaml

BAD = os.fsdecode(b"sess_\xff")  # a folder name with a byte that is not UTF-8
SHOWN = "sess_\\xff"  # how messages write it


def _session_with_volume(root: Path) -> Path:
    (root / "trials").mkdir(parents=True)
    knee = np.array([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 4.0]]])  # two frames of one keypoint, mm
    mp.write_keypoints(mp.KeypointSequence(knee, ("knee_r",), 50.0), root / "trials" / "static.trc")
    vol = Volume(np.zeros((4, 4, 4), np.int16), [1, 1, 1], [0, 0, 0], np.eye(3))
    write_volume(vol, root / "ct.nii.gz")
    write_session_yaml(
        {
            "medpose_session": 1,
            "patient": {"id": "SYN-0042"},
            "date": "2026-11-25",
            "imaging": {"volume": "ct.nii.gz"},
            "trials": [{"name": "static", "kind": "static", "keypoints": "trials/static.trc"}],
        },
        root,
    )
    return root


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "UnicodeEncodeError" not in err
    return lines[0]


def test_read_volume_refuses_a_name_that_is_not_utf8(tmp_path):
    good = _session_with_volume(tmp_path / "good")
    bad = tmp_path / BAD
    os.rename(good, bad)
    with pytest.raises(InputError, match=r"image path 'sess_\\xff'.*not valid UTF-8"):
        read_volume(bad / "ct.nii.gz")


def test_validate_a_session_folder_named_with_a_bad_byte_is_an_error_not_an_abort(tmp_path):
    bad = tmp_path / BAD
    os.rename(_session_with_volume(tmp_path / "good"), bad)
    # a child process: before the fix SimpleITK aborted the interpreter (exit 134)
    run = subprocess.run(
        [sys.executable, "-m", "medpose", "validate", os.fsencode(bad)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 1, run.stderr
    line = _one_error_line(run.stderr)
    assert f"SESSION '{SHOWN}'" in line and "not valid UTF-8" in line


def test_run_names_the_option_of_a_bad_output_name(tmp_path, capsys):
    session = _session_with_volume(tmp_path / "s")
    out = tmp_path / os.fsdecode(b"out_\xff")
    assert main(["run", "navigation_check", str(session), "--out", str(out), "--no-db"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "--out 'out_\\xff'" in line and "not valid UTF-8" in line
    assert not out.exists()


@pytest.mark.parametrize("writer", [atomic_path, atomic_write, atomic_dir])
def test_atomic_writers_refuse_a_name_that_is_not_utf8(tmp_path, writer):
    with (
        pytest.raises(InputError, match=r"'x_\\xff'.*not valid UTF-8"),
        writer(tmp_path / os.fsdecode(b"x_\xff")),
    ):
        pass
    assert os.listdir(tmp_path) == []


def test_a_full_disk_names_the_file_being_written(tmp_path):
    dest = tmp_path / "out.csv"
    with pytest.raises(OSError) as info, atomic_path(dest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() reports alone
    assert info.value.filename == "out.csv" and info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "{trc}", "--out", "afile/x.csv", "--calibrate", "never", "--no-progress"],
        ["calibrate", "{trc}", "afile/p.yaml", "--static"],
        ["run", "deep_squat", "{session}", "--out", "afile/sub", "--no-db", "--no-progress"],
        ["report", "{session}", "--protocol", "deep_squat", "--out", "afile/sub", "--no-pdf"],
        ["triangulate", "cal.toml", "a", "b", "--out", "afile/x.trc"],
    ],
)
def test_an_output_under_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys, argv):
    session = _session_with_volume(tmp_path / "s")
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("not a folder")
    trc = str(session / "trials" / "static.trc")
    args = [a.format(trc=trc, session=session) for a in argv]
    assert main(args) == 1
    line = _one_error_line(capsys.readouterr().err)
    option = "OUT" if argv[0] == "calibrate" else "--out"
    assert f"{option} 'afile/" in line and "'afile' is a file, not a folder" in line
    assert Path("afile").read_text() == "not a folder"


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    session = _session_with_volume(tmp_path / "s")
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", "deep_squat", str(session), "--out", str(afile), "--no-db"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "--out" in line and "exists and is not a folder" in line


def test_a_read_only_folder_is_named_as_not_writable(tmp_path, capsys, monkeypatch):
    session = _session_with_volume(tmp_path / "s")
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access  # a read-only folder as a user other than root sees it (root writes anyway)
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw)
    )
    assert main(["run", "deep_squat", str(session), "--out", str(ro / "out")]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "--out" in line and "is not writable" in line and "tmpdir" not in line
    assert "server" not in line
