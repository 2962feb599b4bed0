from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import medpose.synthetic
from medpose._version import __version__
from medpose.cli import main
from medpose.errors import InputError
from medpose.protocol import write_session_yaml

TRC = """PathFileType\t4\t(X/Y/Z)\tstatic.trc
DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames
50\t50\t2\t1\tmm\t50\t1\t2
Frame#\tTime\tknee_r
\t\tX1\tY1\tZ1

1\t0.00\t1\t2\t3
2\t0.02\t1\t2\t4
"""


def _tiny_session(root: Path, patient_id: str = "SYN-0042") -> Path:
    (root / "trials").mkdir(parents=True)
    (root / "trials" / "static.trc").write_text(TRC)
    write_session_yaml(
        {
            "medpose_session": 1,
            "patient": {"id": patient_id},
            "date": "2026-11-25",
            "trials": [{"name": "static", "kind": "static", "keypoints": "trials/static.trc"}],
        },
        root,
    )
    return root


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: medpose" in out and "validate" in out and "demo" in out and "Exit codes" in out


@pytest.mark.parametrize("command", ["validate", "demo"])
def test_every_command_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    assert f"usage: medpose {command}" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"medpose {__version__}"


def test_no_command_and_bad_usage(capsys):
    assert main([]) == 2
    assert "usage: medpose" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "the following arguments are required: SESSION" in capsys.readouterr().err


def test_validate_valid_session(tmp_path, capsys):
    root = _tiny_session(tmp_path / "s")
    assert main(["validate", str(root)]) == 0
    assert capsys.readouterr().out.strip() == "session is valid"
    assert main(["validate", "--json", str(root / "session.yaml")]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "problems": []}


def test_validate_invalid_session_prints_problems_by_file(tmp_path, capsys):
    root = _tiny_session(tmp_path / "SYN-0042")
    text = (root / "session.yaml").read_text().replace("kind: static", "kind: jumping")
    (root / "session.yaml").write_text(text + "calibration: ../../calib.toml\n")
    (root / "trials" / "static.trc").write_text("nonsense\n")
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "session.yaml"
    assert "  trials[0].kind: Input should be 'static' or 'exercise'" in lines
    assert any(
        ln.startswith("  calibration: '../../calib.toml': path leaves the session folder")
        for ln in lines
    )
    assert "trials/static.trc" in lines
    assert lines[-1] == "3 problem(s) in 2 file(s)"
    assert "SYN-0042" not in out

    assert main(["validate", "--json", str(root)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and len(doc["problems"]) == 3
    assert {p["file"] for p in doc["problems"]} == {"session.yaml", "trials/static.trc"}
    assert set(doc["problems"][0]) == {"file", "field", "message"}

    assert main(["validate", "--schema-only", str(root)]) == 1  # the bad .trc is not opened
    assert capsys.readouterr().out.splitlines()[-1] == "2 problem(s) in 1 file(s)"


def test_validate_missing_folder(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "the folder does not exist" in capsys.readouterr().out


def test_demo_reports_invalid_session_and_errors(tmp_path, capsys, monkeypatch):
    def broken(path, seed=0):
        root = _tiny_session(Path(path))
        (root / "trials" / "static.trc").unlink()

    monkeypatch.setattr(medpose.synthetic, "make_session", broken, raising=False)
    assert main(["demo", "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "the demo session is not valid" in err and "trials/static.trc" in err

    def failing(path, seed=0):
        raise InputError("make_session: seed must be >= 0, found -1")

    monkeypatch.setattr(medpose.synthetic, "make_session", failing, raising=False)
    assert main(["demo", "--out", str(tmp_path / "b"), "--seed", "-1"]) == 1
    assert "error: make_session: seed must be >= 0, found -1" in capsys.readouterr().err


def test_python_dash_m_version():
    res = subprocess.run(
        [sys.executable, "-m", "medpose", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"medpose {__version__}"


def test_demo_runs_every_stage_against_truth(tmp_path, capsys):
    """`medpose demo` builds a real synthetic session, validates it and runs the stages."""
    import json

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert "demo finished" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"] is True
    reg = summary["registration"]
    assert reg["gate_passed"] and reg["max_fiducial_error_mm"] < 2.0
    for trial in summary["trials"].values():
        assert trial["triangulation"]["error_median_mm"] < 15.0


def test_demo_rebuild_replaces_previous_session(tmp_path):
    from medpose.demo import _build

    _, target = _build(tmp_path, seed=3)
    first = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    (target / "stale.txt").write_text("from the previous run")
    _build(tmp_path, seed=3)
    second = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert first == second  # replaced: no staging folders, no stale files left behind


def test_demo_refuses_a_folder_that_is_not_a_session(tmp_path, capsys):
    (tmp_path / "session").mkdir()
    (tmp_path / "session" / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "session" / "precious.txt").read_text() == "keep me"
    assert "not a medpose session" in capsys.readouterr().err
