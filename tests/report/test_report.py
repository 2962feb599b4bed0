"""The clinical report: its HTML and PDF hold the assessment's values, in words and units."""

from __future__ import annotations

import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.report import render, write_report
from medpose.report.labels import format_value, metric_label, side_label
from medpose.report.render import ReportWarning
from medpose.store.study import Study
from medpose.synthetic.exercises import make_exercise

from .conftest import PATIENT, RATE


class _Cells(HTMLParser):
    """Text of every table row, and whether any tag loads something from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.external: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith(("data:", "#")):
                self.external.append(v)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Cells:
    p = _Cells()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _expected_rows(a) -> list[tuple[str, str]]:
    """(readable measure, value with unit) of every finite summary value of the assessment."""
    s = a.summary()
    return [
        (metric_label(r.metric, r.joint), format_value(r.value, r.unit))
        for r in s.itertuples(index=False)
        if math.isfinite(r.value)
    ]


@pytest.fixture(scope="module")
def report(assessed, squat_fit, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    files = write_report(
        assessed, out, angles=squat_fit, patient=PATIENT, date="2026-03-01",
        identifiers={"age_years": 47, "session_folder": "/clinic/Jane_Roe_visit1"},
    )  # fmt: skip
    return files


def test_html_tables_hold_every_metric_with_its_value_and_unit(report, assessed):
    assert report.html.is_file() and report.pdf is not None and report.pdf_engine
    cells = _parse(report.html)
    rows = {(r[0], r[2]) for r in cells.rows if len(r) >= 3}
    expected = _expected_rows(assessed)
    assert len(expected) >= 10
    missing = [e for e in expected if e not in rows]
    assert not missing, missing
    # the composite and the scored percents of normal
    text = report.html.read_text(encoding="utf-8")
    assert f"{assessed.score:.0f} / 100" in text
    for r in assessed.scores.itertuples(index=False):
        if math.isfinite(r.percent):
            assert f"{r.percent:.0f} %" in text
    # no internal metric keys in the tables, no network
    assert not any("rom_knee_flexion" in c for row in cells.rows for c in row)
    assert cells.external == []
    assert "<script" not in text


def test_pdf_text_holds_the_values(report, assessed):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(
        ["pdftotext", str(report.pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert PATIENT in flat and "2026-03-01" in flat
    squeezed = "".join(text.split())  # a table cell may wrap between a number and its unit
    for label, value in _expected_rows(assessed):
        assert "".join(value.split()) in squeezed, (label, value)
    assert "Range of motion, knee" in flat


def test_every_interval_is_shown_with_where_it_comes_from(tmp_path):
    """One squat: no bootstrap (3 repetitions needed), so the fitted skeleton's values carry
    the interval of the fit's keypoint noise; the report's exercise table shows each one."""
    sk = Skeleton.default(1750.0)
    ex = make_exercise("squat", skeleton=sk, rate=RATE, repetitions=1, seed=2)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, ex.angles.values, keypoints=names)
    rng = np.random.default_rng(0)
    seq = KeypointSequence(x + rng.normal(0.0, 5.0, x.shape), tuple(names), RATE, frame="camera")
    a = mp.Protocol.load("deep_squat").run(fit(seq, progress=False))
    s = a.summary()
    noisy = s[s["reason"].fillna("").str.startswith("CI from the fit's keypoint noise")]
    assert len(noisy) >= 4 and np.isfinite(noisy[["ci_low", "ci_high"]].to_numpy()).all()
    cells = _parse(write_report(a, tmp_path, pdf=False).html)
    # (measure, side) -> (value, interval) cells; a value may carry a note beside it
    shown: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in cells.rows:
        if len(r) == 6:
            shown.setdefault((r[0], r[1]), []).append((r[2], r[3]))
    for r in noisy.itertuples(index=False):
        value = format_value(r.value, r.unit)
        lo, hi = format_value(r.ci_low, r.unit), format_value(r.ci_high, r.unit)
        ci = [c for v, c in shown[(metric_label(r.metric, r.joint), side_label(r.side))]]
        assert any(
            v.startswith(value) and c.startswith(f"{lo} to {hi} (CI from the fit's keypoint noise")
            for v, c in shown[(metric_label(r.metric, r.joint), side_label(r.side))]
        ), ci
    text = " ".join((tmp_path / "report.html").read_text(encoding="utf-8").split())
    assert "Repetitions found: left 1, right 1." in text
    # deep_squat asks for 3: two are missing on each side, not four in all
    short = [r for r in cells.rows if r[1:2] == ["Repetitions fewer than the protocol asks for"]]
    assert [r[2] for r in short] == ["left: 2, right: 2"], short


def test_a_derived_angle_is_drawn_over_time(tmp_path):
    """shoulder_abduction measures the humerothoracic elevation, which no DoF column holds:
    the report derives it from the angles it is given to draw it."""
    truth = make_exercise("shoulder_abduction", rate=RATE, repetitions=3, seed=2)
    a = mp.Protocol.load("shoulder_abduction").run(truth.angles)
    assert "shoulder_elevation_r" not in truth.angles.names
    text = write_report(a, tmp_path, pdf=False, angles=truth.angles).html.read_text("utf-8")
    assert text.count('src="data:image/png;base64,') == 1  # one arm: no left against right
    assert "Joint angles over time" in text


def test_identifiers_only_with_the_option(report, assessed, tmp_path):
    text = report.html.read_text(encoding="utf-8")
    assert PATIENT in text
    # the age is looked for by its label: the header's generation time may hold "47" (04:47 UTC)
    assert "Jane_Roe" not in text and "Age (years)" not in _header(report.html)
    shown = write_report(
        assessed, tmp_path, pdf=False, patient=PATIENT, show_identifiers=True,
        identifiers={"age_years": 47, "session_folder": "/clinic/Jane_Roe_visit1"},
    )  # fmt: skip
    assert "Jane_Roe_visit1" in shown.html.read_text(encoding="utf-8")
    header = _header(shown.html)
    assert "Age (years)" in header and "47" in header


def _header(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index('<table class="header">') : text.index("</header>")]


def test_angle_curves_and_left_right_are_embedded(report):
    text = report.html.read_text(encoding="utf-8")
    assert text.count('src="data:image/png;base64,') == 2
    assert "Left against right" in text


def test_a_failed_render_keeps_the_previous_report(assessed, tmp_path):
    good = write_report(assessed, tmp_path, pdf=False, patient=PATIENT)
    before = good.html.read_bytes()
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ c.title }} {{ no_such_variable }}", encoding="utf-8")
    with pytest.raises(Exception, match="no_such_variable"):
        write_report(assessed, tmp_path, pdf=False, patient="OTHER", template=bad)
    assert good.html.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.j2", "report.html"]


def test_missing_template_falls_back_with_a_warning(assessed, tmp_path):
    with pytest.warns(ReportWarning, match="could not be read"):
        files = write_report(
            assessed, tmp_path, pdf=False, template=tmp_path / "absent.html.j2", patient=PATIENT
        )
    rows = {(r[0], r[2]) for r in _parse(files.html).rows if len(r) >= 3}
    assert set(_expected_rows(assessed)) <= rows
    assert files.warnings and "built-in template" in files.warnings[0]


def test_pdf_falls_back_to_matplotlib_then_keeps_the_html(assessed, tmp_path, monkeypatch):
    def broken(html, tmp):
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(render, "_weasyprint_pdf", broken)
    with pytest.warns(ReportWarning, match="weasyprint"):
        files = write_report(assessed, tmp_path, patient=PATIENT)
    assert files.pdf_engine == "matplotlib"
    assert files.pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", str(files.pdf), "-"], capture_output=True, text=True
        ).stdout
        assert format_value(assessed.value("rom_knee_flexion", "left"), "deg") in text

    def also_broken(content, tmp):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(render, "_matplotlib_pdf", also_broken)
    out = tmp_path / "second"
    with pytest.warns(ReportWarning) as caught:
        files = write_report(assessed, out, patient=PATIENT)
    assert [str(w.message)[:14] for w in caught] == ["weasyprint cou", "no PDF could b"]
    assert files.pdf is None and files.html.is_file() and not (out / "report.pdf").exists()


def _add(study, a, date, shift):
    """Record assessment ``a`` as a session of PATIENT on ``date`` with the knee flexion
    ROM shifted by ``shift`` degrees on the left and 1 degree on the right."""
    from medpose.protocol.session_result import store_metrics, store_scores

    m = store_metrics(a.metrics).copy()
    knee = m["metric"] == "rom_knee_flexion"
    m.loc[knee & (m["side"] == "left"), "value"] += shift
    m.loc[knee & (m["side"] == "right"), "value"] += 1.0 if shift else 0.0
    name, version = a.protocol.split(" ")
    scores = store_scores(a.scores.assign(trial=a.trial), a.score)
    study.add_run(
        patient=PATIENT, session=f"visit-{date}", date=date, protocol=name,
        protocol_version=version, protocol_hash=a.protocol_hash, inputs={"x.trc": f"sha256:{date}"},
        metrics=m, scores=scores,
    )  # fmt: skip


def test_progress_says_which_changes_exceed_the_mdc95(assessed, tmp_path):
    with Study(tmp_path / "study.sqlite") as study:
        _add(study, assessed, "2026-01-10", 0.0)
        _add(study, assessed, "2026-03-01", 12.0)
        files = assessed.to_report(tmp_path / "r", pdf=False, study=study, patient=PATIENT)
    text = " ".join(files.html.read_text(encoding="utf-8").split())
    # MDC95 of knee flexion: 1.96 * sqrt(2) * SEM 1.7 deg (Piriyaprasarth 2008) = 4.71 deg
    left = assessed.value("rom_knee_flexion", "left")
    right = assessed.value("rom_knee_flexion", "right")
    assert (
        f"Range of motion, knee flexion (left): {format_value(left, 'deg')} on 2026-01-10, "
        f"{format_value(left + 12, 'deg')} on 2026-03-01, a change of +12.0°; this exceeds "
        "the minimal detectable change (4.71°)"
    ) in text
    assert (
        f"Range of motion, knee flexion (right): {format_value(right, 'deg')} on 2026-01-10"
    ) in text
    assert "+1.0°; this is within the minimal detectable change (4.71°)" in text
    assert "Progress over sessions" in text


def test_no_progress_without_earlier_sessions(assessed, tmp_path):
    with Study(tmp_path / "study.sqlite") as study:
        _add(study, assessed, "2026-01-10", 0.0)
        files = assessed.to_report(tmp_path / "r", pdf=False, study=study, patient=PATIENT)
    assert "Progress over sessions" not in files.html.read_text(encoding="utf-8")


def test_html_path_puts_the_pdf_beside_it(assessed, tmp_path):
    files = assessed.to_report(tmp_path / "visit1.html", patient=PATIENT)
    assert files.html == tmp_path / "visit1.html" and files.pdf == tmp_path / "visit1.pdf"
    assert files.pdf.read_bytes().startswith(b"%PDF")


def test_registration_part_of_a_navigation_session(assessed, tmp_path):
    """A session's registration table (items fre, tre, fiducial, gate) is shown in words with
    its limits; its metrics are not repeated as an exercise."""
    import dataclasses

    import pandas as pd

    reg = pd.DataFrame(
        {
            "trial": ["static"] * 4,
            "item": ["fre", "tre", "fiducial", "gate"],
            "name": ["", "hip_r", "asis_r", "PASS"],
            "value": [0.155, 0.079, 0.173, 1.0],
            "unit": ["mm", "mm", "mm", "1"],
            "limit": [2.0, 3.0, float("nan"), float("nan")],
            "outlier": [None, None, False, None],
            "passed": [True, True, True, True],
        }
    )
    metrics = pd.DataFrame(
        {
            "trial": ["static"], "metric": ["fre"], "joint": [None], "side": [""],
            "repetition": [float("nan")], "value": [0.155], "unit": ["mm"],
            "ci_low": [float("nan")], "ci_high": [float("nan")], "reason": ["no CI: one registration"],
        }
    )  # fmt: skip
    a = dataclasses.replace(
        assessed,
        metrics=metrics,
        scores=assessed.scores.iloc[:0],
        repetitions=assessed.repetitions.iloc[:0],
        score=float("nan"),
        registration=reg,
    )
    files = write_report(a, tmp_path, pdf=False, patient=PATIENT)
    rows = [r for r in _parse(files.html).rows if r]
    assert ["Fiducial registration error (FRE)", "0.155 mm", "2.0 mm", "passed"] in rows
    assert [
        "Predicted target registration error (TRE) at hip (right)",
        "0.079 mm",
        "3.0 mm",
        "passed",
    ] in rows
    assert ["Residual at fiducial: asis (right)", "0.173 mm", "–", "passed"] in rows
    assert ["Accuracy check", "PASS", "–", "passed"] in rows
    assert "Exercise: static" not in files.html.read_text(encoding="utf-8")


def test_an_assessment_of_a_fit_draws_its_angles_without_being_given_them(
    assessed, squat_fit, tmp_path
):
    """``Protocol.run(fit).to_report(path)``, as the README writes it, draws the joint-angle
    curves the assessment was computed on: the same figures as with ``angles=`` the fit."""
    assert assessed.angles is not None and len(assessed.angles) == len(squat_fit.angles)
    plain = assessed.to_report(tmp_path / "plain", pdf=False).html.read_text(encoding="utf-8")
    given = write_report(assessed, tmp_path / "given", angles=squat_fit, pdf=False)
    given_html = given.html.read_text(encoding="utf-8")
    assert "Joint-angle curves are not shown" not in plain
    n = plain.count("data:image")
    assert n >= 1 and n == given_html.count("data:image")
