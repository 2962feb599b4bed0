"""Jupyter display of results: readable __repr__, _repr_html_ with a table and a small plot."""

from __future__ import annotations

import numpy as np
import pytest

import medpose as mp
import medpose.synthetic as syn
from medpose.camera.triangulation import triangulate
from medpose.data import KeypointSequence, Landmarks
from medpose.store.study import Study

from .conftest import PATIENT

IMG = 'src="data:image/png;base64,'


@pytest.fixture(scope="module")
def registration():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-80, 80, (5, 3))
    names = tuple(f"F{i}" for i in range(5))
    fixed = pts + [1.0, 2.0, 3.0]
    fixed[2] += [0.0, 0.0, 0.9]  # one fiducial off by 0.9 mm
    return mp.register(Landmarks(names, fixed, frame="camera"), Landmarks(names, pts, frame="LPS"))


def test_registration_repr_names_fre_and_the_worst_fiducial(registration):
    text = repr(registration)
    assert f"FRE={registration.fre:.3f} mm" in text
    worst = registration.residuals.idxmax()
    assert f"max residual {registration.residuals.max():.3f} mm ({worst})" in text
    page = registration._repr_html_()
    assert "<table" in page and IMG in page and f"{registration.fre:.3f} mm" in page


def test_triangulation_repr_counts_and_median_error():
    rig = syn.make_rig(3, seed=0)
    rng = np.random.default_rng(0)
    names = ("hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r")
    x = rng.uniform([-300, -300, 100], [300, 300, 1500], (8, len(names), 3))
    truth = KeypointSequence(x, names, 10.0, frame="camera")
    res = triangulate(rig, syn.project_to_cameras(rig, truth, pixel_sigma=0.0), repair_swaps=False)
    text = repr(res)
    assert text.startswith("TriangulationResult(8 frames x 6 keypoints, 3 cameras")
    ok = np.isfinite(res.sequence.positions).all(-1)
    assert ok.mean() > 0.9  # some random points fall outside a camera's image
    assert f"{100 * ok.mean():.1f} % triangulated" in text
    assert "median reprojection error 0.00 px" in text  # noise-free views
    page = res._repr_html_()
    assert IMG in page and all(c.name in page for c in rig)


def test_fit_repr_and_html(squat_fit):
    text = repr(squat_fit)
    n = squat_fit.q.shape[0]
    assert text.startswith(f"Fit({n} frames at 10 Hz, {int(squat_fit.valid.sum())} fitted")
    page = squat_fit._repr_html_()
    assert "knee_flexion_l" in page and IMG in page and "<table" in page


def test_assessment_html_reads_in_words(assessed):
    page = assessed._repr_html_()
    assert "Range of motion, knee flexion" in page and "95 % CI" in page
    assert IMG in page
    text = repr(assessed)
    assert "rom_knee_flexion" in text and f"{assessed.score:.1f}" in text


def test_assessment_plot_draws_each_scored_percent(assessed):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert assessed.plot(ax=ax) is ax
    scored = assessed.scores["percent"].to_numpy(float)
    scored = scored[np.isfinite(scored)]
    assert len(scored)
    widths = sorted(p.get_width() for p in ax.patches)
    np.testing.assert_allclose(widths, sorted(scored))
    assert f"score {assessed.score:.1f}/100" in ax.get_title()


def test_assessment_plot_without_a_score_says_why(squat_fit):
    from matplotlib.figure import Figure

    a = mp.Protocol.load("sit_to_stand").run(squat_fit)  # a squat: no five sit-to-stands
    ax = Figure().add_subplot()
    a.plot(ax=ax)
    assert not ax.patches and "score n/a" in ax.get_title()
    assert a.score_reason in " ".join(t.get_text() for t in ax.texts)


def test_study_html_has_counts_and_a_plot_without_patient_ids(tmp_path):
    with Study(tmp_path / "s.sqlite") as study:
        for day in ("2026-01-10", "2026-02-10"):
            study.add_run(
                patient=PATIENT, session=f"v{day}", date=day, protocol="knee",
                protocol_version="1", protocol_hash="h", inputs={"a": "sha256:" + day},
            )  # fmt: skip
        page = study._repr_html_()
    assert "1 patients, 2 sessions, 2 runs" in page and IMG in page
    assert PATIENT not in page
