from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import medpose.cli
import medpose.cli.validate
import medpose.demo
import medpose.synthetic
from medpose._version import __version__
from medpose.cli import main
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
    assert "  trials[0].kind: found 'jumping', expected 'static' or 'exercise'" in lines
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
    out = capsys.readouterr().out
    assert "the session folder 'nope' does not exist" in out
    assert str(tmp_path) not in out


NASTY = {
    # name: (session.yaml text, what the output must say)
    "octal id": (
        "medpose_session: 1\npatient:\n  id: 00123456\n  00123456: x\ndate: 2026-02-31\n"
        "trials:\n  - name: s\n    kind: static\n    keypoints: trials/00123456.trc\n",
        [
            "date: found '2026-02-31', expected a date YYYY-MM-DD",
            "patient.<patient-id>: unknown field",
            "trials/<patient-id>.trc",
        ],
    ),
    "alias bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"b{i}: &b{i} [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" for i in range(6))
        + "medpose_session: 1\npatient:\n  id: SYN-0042\n",
        ["not valid YAML at line 2: found alias *a; YAML aliases are not accepted"],
    ),
    "deep nesting": (
        "notes: " + "[" * 50_000 + "]" * 50_000 + "\n",
        ["line 1: YAML nested deeper than"],
    ),
    "outside files": (
        "medpose_session: 1\npatient:\n  id: SYN-0042\ndate: 2026-11-25\n"
        "imaging:\n  volume: /etc/passwd\n  landmarks: ../../SYN-0042.csv\n"
        "trials:\n  - name: s\n    kind: static\n    keypoints: trials/link.trc\n",
        [
            "imaging.volume: an absolute path (ending in 'passwd'): absolute paths are not allowed",
            "imaging.landmarks: '../../<patient-id>.csv': path leaves the session folder",
            "trials[0].keypoints: 'trials/link.trc': resolves (through a symbolic link) to a "
            "place outside the session folder; refused",
        ],
    ),
    "binary": ("\x00\x01\x02", ["line 1: NUL byte; expected a text session file"]),
}


def _nasty_session(root: Path, text: str) -> Path:
    (root / "trials").mkdir(parents=True)
    (root.parent / "outside.trc").write_text(TRC)
    (root / "trials" / "link.trc").symlink_to(root.parent / "outside.trc")
    (root / "trials" / "static.trc").write_text(TRC)
    (root / "session.yaml").write_text(text)
    return root


@pytest.mark.parametrize("case", list(NASTY))
def test_validate_bad_sessions_print_problems_only(tmp_path, capsys, case):
    text, expected = NASTY[case]
    root = _nasty_session(tmp_path / "SYN-0042" / "visit", text)
    for argv in (["validate", str(root)], ["validate", "--json", str(root)]):
        assert main(argv) == 1
        captured = capsys.readouterr()
        output = captured.out + captured.err
        assert "Traceback" not in output and captured.err == ""
        for needle in ("SYN-0042", "00123456", "42798", str(tmp_path), "/etc"):
            assert needle not in output, (needle, output)
        if "--json" not in argv:
            for e in expected:
                assert e in output, (e, output)


def test_validate_show_identifiers(tmp_path, capsys):
    root = _nasty_session(tmp_path / "v", NASTY["octal id"][0])
    assert main(["validate", "--show-identifiers", str(root)]) == 1
    out = capsys.readouterr().out
    assert "patient.00123456: unknown field" in out and "trials/00123456.trc" in out


def test_validate_process_never_prints_a_traceback(tmp_path):
    """The installed command, on a session whose every part is hostile."""
    root = _nasty_session(tmp_path / "SYN-0042", NASTY["outside files"][0])
    cam = root / "trials" / "cam01_json"
    cam.mkdir()
    (cam / "cam01_000000000000_keypoints.json").symlink_to("/etc/passwd")
    os.mkfifo(cam / "cam01_000000000001_keypoints.json")
    (root / "session.yaml").write_text(
        NASTY["outside files"][0]
        + "    cameras:\n      cam01: trials/cam01_json\ncalibration: calib.toml\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "medpose", "validate", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert res.returncode == 1, res.stderr
    output = res.stdout + res.stderr
    assert "Traceback" not in output and res.stderr == ""
    assert "SYN-0042" not in output and str(tmp_path) not in output and "/etc" not in output
    assert "trials/cam01_json" in output and "symbolic link(s) to a place outside" in output
    assert "neither files nor folders" in output


def test_unexpected_error_is_one_line(tmp_path, capsys, monkeypatch):
    def broken(path, **kw):
        raise KeyError(f"{tmp_path}/SYN-0042/secret")

    monkeypatch.setattr(medpose.cli.validate, "validate_session", broken)
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected KeyError in 'medpose validate': ")
    assert "Traceback" not in err and str(tmp_path) not in err and err.count("\n") == 1

    def interrupted(path, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(medpose.cli.validate, "validate_session", interrupted)
    assert main(["validate", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


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
