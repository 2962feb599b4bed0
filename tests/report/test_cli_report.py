"""``medpose report RUN --out DIR``: a run folder written by a session run, back to a report."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from medpose.cli import main
from medpose.protocol import Protocol
from medpose.protocol.session_result import SessionResult
from medpose.report.labels import format_value
from medpose.report.rundir import load_run

from .conftest import PATIENT


@pytest.fixture(scope="module")
def run_folder(assessed, squat_fit, tmp_path_factory):
    """The fixture's assessment written as `medpose run` writes a session's results."""
    root = tmp_path_factory.mktemp("runs")
    a = dataclasses.replace(
        assessed,
        scores=assessed.scores.assign(trial=assessed.trial),
        provenance={"session_date": "2026-03-01"},
    )
    name, version = a.protocol.split(" ")
    result = SessionResult(
        protocol=name, protocol_version=version, protocol_hash=a.protocol_hash,
        session="visit1", session_path="/clinic/visit1", patient=PATIENT, date="2026-03-01",
        trials={"deep_squat": "squat"}, inputs={"trials/squat.trc": "sha256:" + "0" * 64},
        medpose_version="0.1.0", started="2026-03-01T10:00:00+00:00",
        finished="2026-03-01T10:00:09+00:00", assessment=a, angles={"squat": squat_fit.angles},
        side_of_interest="left",
    )  # fmt: skip
    result.write(root / "visit1")
    return root / "visit1"


def test_load_run_gives_back_the_assessment(run_folder, assessed):
    loaded = load_run(run_folder)
    assert loaded.patient == PATIENT and loaded.date == "2026-03-01"
    a = loaded.assessment
    assert a.protocol == assessed.protocol and a.score == pytest.approx(assessed.score)
    assert a.value("rom_knee_flexion", "left") == pytest.approx(
        assessed.value("rom_knee_flexion", "left")
    )
    assert PATIENT not in repr(loaded)


def test_cli_writes_the_report_of_a_run(run_folder, assessed, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(run_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "report.pdf" in printed
    text = (out / "report.html").read_text(encoding="utf-8")
    assert PATIENT in text and "2026-03-01" in text
    assert re.search(r"Side of interest</td>\s*<td>left</td>", text)  # as session.yaml says
    assert format_value(assessed.value("rom_knee_flexion", "left"), "deg") in text
    assert "trials/squat.trc" not in text  # input file names only with --show-identifiers
    assert text.count('src="data:image/png;base64,') == 2  # angle curves, left against right
    assert main(["report", str(run_folder), "--out", str(out), "--show-identifiers",
                 "--no-pdf"]) == 0  # fmt: skip
    assert "trials/squat.trc" in (out / "report.html").read_text(encoding="utf-8")


def test_a_run_that_does_not_exist_lists_those_that_do(run_folder, tmp_path, capsys):
    missing = run_folder.parent / "visit9"
    assert main(["report", str(missing), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    version = Protocol.load("deep_squat").version
    assert "visit9" in err and f"visit1 (deep_squat {version}, 2026-03-01)" in err
    assert not (tmp_path / "r").exists()


def test_the_listed_run_folders_are_paths_that_work_from_here(
    run_folder, tmp_path, capsys, monkeypatch
):
    (tmp_path / "out").mkdir()  # neither a run nor a session; the runs lie in runs/
    shutil.copytree(run_folder, tmp_path / "runs" / "visit1")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "out", "--out", str(tmp_path / "r")]) == 1  # not a run folder
    err = capsys.readouterr().err
    listed = re.search(r"run folders in \.: (\S+) \(deep_squat", err)
    assert listed is not None, err
    assert Path(listed.group(1)) == Path("runs/visit1")
    assert main(["report", listed.group(1), "--out", str(tmp_path / "r"), "--no-pdf"]) == 0


def test_a_session_needs_a_protocol(tmp_path, capsys):
    (tmp_path / "session.yaml").write_text("medpose_session: 1\n", encoding="utf-8")
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "--protocol" in capsys.readouterr().err
