"""medpose.report.figures: each function returns a Figure drawing the data it was given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

import medpose as mp
from medpose.data import KeypointSequence, Landmarks
from medpose.errors import InputError
from medpose.report import figures as F

from .conftest import sine_angles


def test_angle_curves_draw_each_side_the_repetitions_and_the_norm():
    df, reps = sine_angles()
    fig = F.angle_curves(
        df, ["knee_flexion"], repetitions=reps, norms={"knee_flexion": {"mean": 135.0}}
    )
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["left"].get_ydata(), df["knee_flexion_l"].to_numpy())
    np.testing.assert_array_equal(lines["right"].get_ydata(), df["knee_flexion_r"].to_numpy())
    assert lines["left"].get_color() == F.SIDE_COLOURS["left"]
    # one shaded span per repetition, spanning its start and end
    spans = [p for p in ax.patches if p.get_label() == "repetition"]
    assert len(spans) == 3
    xs = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)) for p in spans)
    assert xs == [(1.0, 3.0), (4.0, 6.0), (7.0, 9.0)]
    # a published average without a range is a dashed line at the mean
    assert list(lines["normal range"].get_ydata()) == [135.0, 135.0]
    with pytest.raises(InputError, match="hip_flexion"):
        F.angle_curves(df, ["hip_flexion"])


def test_normal_range_is_a_band():
    df, _ = sine_angles()
    fig = F.angle_curves(df, ["knee_flexion"], norms={"knee_flexion": {"lower": 120, "upper": 150}})
    (band,) = [p for p in fig.axes[0].patches if p.get_label() == "normal range"]
    if hasattr(band, "get_height"):  # a Rectangle (matplotlib >= 3.9)
        ys = {band.get_y(), band.get_y() + band.get_height()}
    else:  # a Polygon
        ys = set(np.asarray(band.get_xy())[:, 1])
    assert {round(float(y), 6) for y in ys} == {120.0, 150.0}


def test_left_right_means_differ_by_the_true_offset():
    df, reps = sine_angles(offset=10.0)
    fig = F.left_right(df, ["knee_flexion"], reps)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    left, right = lines["left (n=3)"].get_ydata(), lines["right (n=3)"].get_ydata()
    # identical half-sines: the mean repetition peaks at the true amplitudes
    assert left.max() == pytest.approx(70.0, abs=0.1)
    assert right.max() == pytest.approx(60.0, abs=0.1)
    # spread of identical repetitions is zero
    polys = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(polys) == 2


def test_left_right_panel_of_an_unmeasured_angle_says_so():
    """An angle NaN in every frame (one the keypoints do not determine, a Kinect's ankle) has
    no curve: its panel says so instead of an empty legend (and matplotlib's warning)."""
    import warnings

    df, reps = sine_angles()
    df["hip_flexion_l"] = df["hip_flexion_r"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = F.left_right(df, ["knee_flexion", "hip_flexion"], reps)
    knee, hip = fig.axes
    assert knee.get_legend() is not None and len(knee.get_lines()) == 2
    assert hip.get_legend() is None and not hip.get_lines()
    assert [t.get_text() for t in hip.texts] == ["not measured in the repetitions"]


def test_repetition_overlay_draws_every_repetition_and_the_template():
    df, reps = sine_angles()
    fig = F.repetition_overlay(df, "knee_flexion", reps, side="right")
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["#1", "#2", "#3", "mean repetition"]
    np.testing.assert_allclose(lines[-1].get_ydata(), lines[0].get_ydata(), atol=1e-9)
    tpl = np.full(11, 30.0)
    fig = F.repetition_overlay(df, "knee_flexion", reps, side="left", template=tpl)
    assert np.allclose(fig.axes[0].get_lines()[-1].get_ydata(), 30.0)
    with pytest.raises(InputError, match="no repetition"):
        F.repetition_overlay(df, "knee_flexion", reps.iloc[:0], side="left")


def test_skeleton_3d_draws_the_segments_present():
    names = ("hip_l", "knee_l", "ankle_l", "hip_r", "knee_r", "nose")
    pos = np.arange(2 * 6 * 3, dtype=float).reshape(2, 6, 3)
    seq = KeypointSequence(pos, names, 10.0, frame="camera")
    fig = F.skeleton_3d(seq, [0, 1])
    assert len(fig.axes) == 2
    ax = fig.axes[1]
    # hip-knee (both sides), knee-ankle (left), hip_l-hip_r
    assert len(ax.get_lines()) == 4
    seg = ax.get_lines()[0]
    x, y = seg.get_data_3d()[:2]
    assert (x[0], y[0]) == (pos[1, 0, 0], pos[1, 0, 1])
    with pytest.raises(InputError, match="outside"):
        F.skeleton_3d(seq, [5])


def test_tre_map_is_the_predicted_tre_of_the_registration():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-80, 80, (6, 3))
    names = tuple(f"F{i}" for i in range(6))
    moving = Landmarks(names, pts, frame="LPS")
    fixed = Landmarks(
        names, pts + [5.0, -3.0, 12.0] + rng.normal(0, 0.5, pts.shape), frame="camera"
    )
    reg = mp.register(fixed, moving)
    targets = Landmarks(("entry", "target"), np.array([[0.0, 0, 0], [30, 10, -5]]), frame="LPS")
    fig = F.tre_map(reg, targets, grid=20)
    ax = fig.axes[0]
    expected = reg.predict_tre(targets)
    texts = [t.get_text() for t in ax.texts]
    for name in ("entry", "target"):
        assert f"{name}\n{expected[name]:.2f} mm" in texts
    res = reg.residuals
    assert f"F0\n{res['F0']:.2f} mm" in texts
    # the colour scale spans the TRE over the grid: its smallest value is at least the
    # smallest TRE anywhere (the centroid's)
    cs = next(c for c in ax.collections if hasattr(c, "levels"))
    centroid = reg.predict_tre(pts.mean(axis=0))
    assert cs.levels.min() <= centroid + 1e-9
    assert cs.levels.max() >= float(expected.max())


class _Triangulated:
    """The two attributes reprojection_errors reads, with a known error table."""

    camera_names = ("cam1", "cam2")

    def error_table(self, min_visibility=0.5):
        return pd.DataFrame(
            {
                "camera": ["cam1"] * 4 + ["cam2"] * 3,
                "error_px": [1.0, 2.0, 3.0, 100.0, 5.0, 6.0, 7.0],
                "used": [True, True, True, False, True, True, True],
            }
        )


def test_reprojection_errors_per_camera_use_the_observations_used():
    fig = F.reprojection_errors(_Triangulated())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["2.0", "6.0"]  # medians of the used observations
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["cam1", "cam2"]


def test_cohort_distributions_count_every_finite_value():
    cohort = pd.DataFrame(
        {
            "patient": list("abcdefgh"),
            "squat.rom.left_deg": [80, 85, 90, 95, 100, np.nan, 110, 120.0],
            "squat.tempo_1_per_min": np.linspace(10, 20, 8),
        }
    )
    fig = F.cohort_distributions(cohort, highlight={"squat.rom.left_deg": 92.0})
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 7
    assert list(ax.get_lines()[0].get_xdata()) == [92.0, 92.0]
    assert sum(p.get_height() for p in fig.axes[1].patches) == 8
    with pytest.raises(InputError, match="numeric"):
        F.cohort_distributions(cohort[["patient"]])


def test_progress_band_is_first_value_plus_minus_mdc95():
    values = pd.DataFrame(
        {
            "date": ["2026-01-01", "2026-02-01", "2026-03-01"],
            "side": ["left"] * 3,
            "value": [60.0, 66.0, 75.0],
        }
    )
    fig = F.progress(values, metric="rom_knee_flexion", unit="deg", mdc95=4.7)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "left"]
    assert list(line.get_ydata()) == [60.0, 66.0, 75.0]
    band = next(c for c in ax.collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(60.0 - 4.7) and ys.max() == pytest.approx(60.0 + 4.7)
    assert "knee flexion" in ax.get_title().lower()
