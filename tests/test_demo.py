"""`medpose demo`: two synthetic sessions through the whole pipeline, into a study and reports.

What is asserted comes from the generator's truth: the left side's impairment falls from 0.4 to
0.15 between the sessions, so the follow-up scores higher and the left knee's range of motion
grows by more than its minimal detectable change; the fitted angles are close to the true ones;
the registration of marker-like landmarks passes its gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import medpose as mp
import medpose.demo_visit
from medpose.cli import main
from medpose.errors import InputError
from medpose.protocol.session_result import store_metrics
from medpose.report.labels import metric_label


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--out", str(out), "--no-pdf"])
    return out, code


@pytest.mark.slow
def test_demo_writes_sessions_study_and_reports(demo):
    out, code = demo
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"] is True
    for visit in ("baseline", "follow-up"):
        assert mp.validate_session(out / "sessions" / visit) == []
        for protocol in ("navigation_check", "deep_squat", "shoulder_abduction"):
            html = out / "reports" / visit / protocol / "report.html"
            assert html.is_file() and summary["reports"][visit][protocol]["html"] == str(html)
    with mp.Study(out / "study.sqlite") as study:
        runs = study.runs()
        assert len(runs) == 6 and set(runs["status"]) == {"ok"}
        assert set(runs["session"]) == {"baseline", "follow-up"}
        assert runs["patient"].nunique() == 1  # one patient seen twice
        # the navigation runs keep one value per registration target
        tre = study.metrics(protocol="navigation_check")
        assert {"tre.hip_r", "tre.hip_l"} <= set(tre["metric"])
    # the follow-up's report says how the patient progressed since the baseline
    text = (out / "reports" / "follow-up" / "deep_squat" / "report.html").read_text()
    assert "Progress over sessions" in text
    base = (out / "reports" / "baseline" / "deep_squat" / "report.html").read_text()
    assert "Progress over sessions" not in base  # no later session leaks into the baseline


@pytest.mark.slow
def test_demo_results_follow_the_truth(demo):
    out, _ = demo
    summary = json.loads((out / "summary.json").read_text())
    # less impairment at the follow-up: both composites rise
    for protocol in ("deep_squat", "shoulder_abduction"):
        by = summary["scores"][protocol]
        assert by["follow-up"] > by["baseline"], protocol
    # the left knee reaches 85 % instead of 60 % of a ~100 deg range: +25 deg, beyond MDC95
    changes = [c["measure"] for c in summary["changes_exceeding_mdc95"]]
    assert any("knee flexion (left)" in m for m in changes), changes
    for visit in ("baseline", "follow-up"):
        reg = summary["registration"][visit]
        assert reg["gate_passed"] and reg["fre_mm"] < 1.0 and reg["outliers"] == []
        err = summary["angle_rms_error_deg"][visit]
        for dof in ("knee_flexion_l", "knee_flexion_r"):
            assert err["deep_squat"][dof] < 3.0, (visit, dof)
        for dof in ("shoulder_abduction_l", "shoulder_abduction_r"):
            assert err["shoulder_abduction"][dof] < 3.0, (visit, dof)


def test_demo_refuses_a_folder_that_is_not_a_session(tmp_path, capsys):
    (tmp_path / "sessions" / "baseline").mkdir(parents=True)
    (tmp_path / "sessions" / "baseline" / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "sessions" / "baseline" / "precious.txt").read_text() == "keep me"
    assert "not a medpose session" in capsys.readouterr().err


def test_demo_rejects_zero_jobs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--jobs", "0"]) == 1
    assert "--jobs: found 0" in capsys.readouterr().err


def test_demo_reports_an_invalid_session_and_errors(tmp_path, capsys, monkeypatch):
    real = medpose.demo_visit.make_session

    def broken(path, seed=0, **kw):
        truth = real(path, seed=seed, **{**kw, "camera_views": False, "imaging": False})
        (Path(path) / "trials" / "static.trc").unlink()
        return truth

    monkeypatch.setattr(medpose.demo_visit, "make_session", broken)
    assert main(["demo", "--out", str(tmp_path / "a"), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "a demo session is not valid" in err and "trials/static.trc" in err
    assert not (tmp_path / "a" / "study.sqlite").exists()

    def failing(path, seed=0, **kw):
        raise InputError("make_session: seed must be >= 0, found -1")

    monkeypatch.setattr(medpose.demo_visit, "make_session", failing)
    assert main(["demo", "--out", str(tmp_path / "b"), "--seed", "-1", "--jobs", "1"]) == 1
    assert "error: make_session: seed must be >= 0, found -1" in capsys.readouterr().err


def test_store_metrics_keeps_one_key_per_target_and_fiducial():
    metrics = pd.DataFrame(
        {
            "trial": ["static"] * 3 + ["squat"],
            "metric": ["fre", "tre", "tre", "rom_knee_flexion"],
            "joint": ["", "hip_r", "hip_l", "knee_flexion"],
            "side": ["", "", "", "left"],
            "repetition": [float("nan")] * 4,
            "value": [0.2, 0.1, 0.1, 90.0],
            "unit": ["mm", "mm", "mm", "deg"],
            "ci_low": [float("nan")] * 4,
            "ci_high": [float("nan")] * 4,
            "reason": ["no CI"] * 4,
        }
    )
    stored = store_metrics(metrics)
    assert list(stored["metric"]) == ["fre", "tre.hip_r", "tre.hip_l", "rom_knee_flexion"]
    # the report's progress part reads them back in words
    assert metric_label("tre.hip_r") == "Predicted target registration error, hip (right)"
    study = mp.Study(":memory:")
    study.add_run(
        patient="P1",
        session="s1",
        date="2026-01-01",
        protocol="navigation_check",
        protocol_version="1",
        protocol_hash="sha256:0",
        inputs={},
        metrics=stored,
        scores=pd.DataFrame(columns=["metric", "score", "z", "flag"]),
    )
    assert len(study.metrics()) == 4
    study.close()


@pytest.mark.parametrize("pdf", [True, False])
def test_summary_names_the_pdf_only_when_one_was_made(pdf):
    from medpose.demo import VISITS, _summary_lines

    names = [v.name for v in VISITS]
    reports = {
        n: {
            "deep_squat": {
                "html": f"r/{n}/report.html",
                "pdf": f"r/{n}/report.pdf" if pdf else None,
            }
        }
        for n in names
    }
    summary = {
        "patient": "DEMO-0000",
        "registration": {n: {"fre_mm": 0.2, "fiducials": 8, "tre_max_mm": 0.1, "gate_passed": True}
                         for n in names},
        "scores": {},
        "changes_exceeding_mdc95": [],
        "angle_rms_error_deg": {n: {} for n in names},
        "reports_folder": "r",
        "reports": reports,
        "study": "s.sqlite",
        "sessions_folder": "sessions",
    }  # fmt: skip
    [line] = [x for x in _summary_lines(summary) if x.startswith("  reports: ")]
    assert line == "  reports: r/<session>/<protocol>/report.html" + (", .pdf" if pdf else "")
