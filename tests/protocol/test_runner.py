"""Running a protocol on one trial: ``Protocol.load(...).run(x)`` against synthetic truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.protocol import Assessment
from medpose.protocol.runner import NOT_COMPUTED
from medpose.scoring import composite
from medpose.scoring.derived_angles import with_derived
from medpose.synthetic.exercises import make_exercise

RATE = 10.0
REPS = 3


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default(1750.0)


@pytest.fixture(scope="module")
def squat(sk):
    return make_exercise("squat", skeleton=sk, rate=RATE, repetitions=REPS, seed=1)


@pytest.fixture(scope="module")
def squat_fit(sk, squat):
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, squat.angles.values, keypoints=names)
    return fit(KeypointSequence(x, tuple(names), RATE, frame="camera"))


@pytest.fixture(scope="module")
def assessed(squat_fit):
    return mp.Protocol.load("deep_squat").run(squat_fit)


def _frame(truth) -> pd.DataFrame:
    a = truth.angles
    df = pd.DataFrame(np.asarray(a.values, float), columns=list(a.names))
    df.attrs["rate_hz"] = a.rate
    return df


def _true_rom(truth, column: str) -> float:
    """Median over the true repetition windows of the 2nd-98th percentile range (the
    definition of :func:`medpose.scoring.rom`) of a DoF or derived angle (``shoulder_elevation_r``)."""
    a = truth.angles
    t = a.start + np.arange(len(a.values)) / a.rate
    x = with_derived(_frame(truth))[column].to_numpy()
    ranges = []
    for t0, t1 in truth.repetitions:
        w = x[(t >= t0) & (t <= t1)]
        lo, hi = np.percentile(w, [2.0, 98.0])
        ranges.append(hi - lo)
    return float(np.median(ranges))


def test_squat_repetitions_and_knee_rom_match_the_truth(assessed, squat):
    assert isinstance(assessed, Assessment)
    for side in ("left", "right"):
        reps = assessed.repetitions[assessed.repetitions["side"] == side]
        assert len(reps) == len(squat.repetitions) == REPS
        # Noise-free keypoints: the fit converges to the true angles up to its tolerance
        # (tol_deg 1e-3 per iteration) and float32 rounding, far below 0.5 degree; ROM is
        # taken from rest to peak, as in the true windows.
        col = "knee_flexion_" + side[0]
        assert assessed.value("rom_knee_flexion", side) == pytest.approx(
            _true_rom(squat, col), abs=0.5
        )
    per_rep = assessed.metrics[
        (assessed.metrics["metric"] == "rom_knee_flexion") & assessed.metrics["repetition"].notna()
    ]
    assert len(per_rep) == 2 * REPS
    summary = assessed.summary()
    knee = summary[summary["metric"] == "rom_knee_flexion"]
    assert np.all(knee["ci_low"] <= knee["value"]) and np.all(knee["value"] <= knee["ci_high"])


def test_composite_is_recomputed_from_the_returned_scores(assessed):
    assert 0.0 <= assessed.score <= 100.0
    weights = mp.Protocol.load("deep_squat").spec.composite.weights
    worse = assessed.scores.groupby("metric")["percent"].min()
    parts = {k: float(worse.get(k, math.nan)) for k in weights}
    expected = float(composite(parts, weights, "weighted_mean_capped"))
    assert assessed.score == pytest.approx(expected, rel=1e-12)
    # and by hand: sum w_i min(p_i, 100) / sum w_i
    total = sum(weights.values())
    by_hand = sum(w * min(parts[k], 100.0) for k, w in weights.items()) / total
    assert assessed.score == pytest.approx(by_hand, rel=1e-12)


def test_compensations_are_measured_on_the_fitted_keypoints(assessed):
    # computed since medpose.scoring.compensation (truth tests: test_runner_compensation.py)
    s = assessed.summary()
    for key in ("trunk_lean", "heel_lift", "knee_valgus"):
        row = s[s["metric"] == key]
        assert len(row) >= 1
        assert np.isfinite(row["value"]).all() and (row["reason"] != NOT_COMPUTED).all()


def test_repr_and_html_name_the_protocol_and_score(assessed):
    text = repr(assessed)
    version = mp.Protocol.load("deep_squat").version
    assert f"deep_squat {version}" in text and "rom_knee_flexion" in text and "trunk_lean" in text
    assert f"{assessed.score:.1f}" in text
    assert "<table" in assessed._repr_html_()
    # the squats of the bilateral trial counted per side, not summed over the sides
    said = f"repetitions left {REPS}, right {REPS}"
    assert said in text and said in assessed._repr_html_()


def test_keypoints_are_cleaned_and_fitted_with_the_protocol_settings(sk):
    """At 30 Hz (the protocol's 6 Hz low-pass needs more than 12 Hz): the clean step's rows
    are reported, the knee range is the truth's."""
    squat30 = make_exercise("squat", skeleton=sk, rate=30.0, repetitions=REPS, seed=1)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, squat30.angles.values, keypoints=names)
    seq = KeypointSequence(x, tuple(names), 30.0, frame="camera")
    out = mp.Protocol.load("deep_squat").run(seq)
    assert len(out.repetitions) == 2 * REPS
    assert out.value("rom_knee_flexion", "left") == pytest.approx(
        _true_rom(squat30, "knee_flexion_l"), abs=0.5
    )
    assert {"missing_fraction", "outliers_removed", "gap_frames_filled"} <= set(
        out.quality["check"]
    )
    # at 10 Hz the filter cannot run: the message names the protocol's step
    slow = KeypointSequence(x[::3], tuple(names), 10.0, frame="camera")
    with pytest.raises(InputError, match=r"deep_squat, steps\.clean\.filter: butterworth"):
        mp.Protocol.load("deep_squat").run(slow)


def test_true_angles_give_symmetry_zero_and_ci_bracket(squat):
    out = mp.Protocol.load("deep_squat").run(_frame(squat))
    # both legs move identically in the synthetic squat: symmetry index 0 %
    assert out.value("symmetry_index_rom_knee_flexion", "both") == pytest.approx(0.0, abs=1e-9)
    # the true angles themselves: the same numbers up to rounding
    assert out.value("rom_knee_flexion", "left") == pytest.approx(
        _true_rom(squat, "knee_flexion_l"), abs=1e-6
    )


def test_every_summary_with_three_repetitions_has_a_ci_bracketing_it(assessed):
    """Issue's promise: every metric in an assessment has a 95 % CI: bootstrap over the
    repetitions, for the symmetry index over each side's repetitions, for the tempo over the
    onset-to-onset intervals."""
    m = assessed.metrics
    summary = m[m["repetition"].isna() & np.isfinite(m["value"].astype(float))]
    assert {"symmetry_index_rom_knee_flexion", "tempo"} <= set(summary["metric"])
    lo, hi, v = (summary[c].astype(float) for c in ("ci_low", "ci_high", "value"))
    missing = summary[~(np.isfinite(lo) & np.isfinite(hi))]
    assert missing.empty, missing[["metric", "side", "reason"]]
    assert ((lo <= v + 1e-9) & (v <= hi + 1e-9)).all()


@pytest.mark.parametrize("side", ["auto", None])  # None: a protocol with one trial per side
@pytest.mark.parametrize("moving", ["left", "right"])
def test_auto_side_finds_the_moving_arm(moving, side):
    truth = make_exercise("shoulder_abduction", rate=RATE, repetitions=REPS, seed=2)
    df = _frame(truth)
    still = "_r" if moving == "left" else "_l"
    for c in df.columns:
        if c.startswith("shoulder_") and c.endswith(still):
            df[c] = df[c].iloc[0]
    out = mp.Protocol.load("shoulder_abduction").run(df, side=side)
    assert out.sides == (moving,)
    assert out.info["auto_side"] == moving
    assert len(out.repetitions) == REPS
    assert out.trial == f"abduction_{moving}"  # the protocol's trial of that side
    # the range of the arm's elevation (in the frontal plane, the abduction)
    assert out.value("rom_shoulder_elevation", moving) == pytest.approx(
        _true_rom(truth, "shoulder_elevation" + ("_l" if moving == "left" else "_r")), abs=1e-6
    )
    assert out.value("peak_angular_velocity_shoulder_elevation", moving) > 0
    # one side measured: symmetry cannot be computed, and says why
    s = out.summary()
    sym = s[s["metric"] == "symmetry_index_rom_shoulder_elevation"]
    assert math.isnan(sym["value"].iloc[0]) and "both sides" in sym["reason"].iloc[0]
    assert 0.0 <= out.score <= 100.0


@pytest.fixture(scope="module")
def right_arm_fit(sk):
    """A fit of one raise of the right arm (30 Hz, 5 mm keypoint noise); the left arm is still."""
    ex = make_exercise("shoulder_abduction", skeleton=sk, rate=30.0, repetitions=1, side="right")
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, ex.angles.values, keypoints=names)
    x = x + np.random.default_rng(0).normal(0.0, 5.0, x.shape)
    return fit(KeypointSequence(x, tuple(names), 30.0, frame="camera"), progress=False)


def test_a_trial_without_repetitions_reads_no_compensation(right_arm_fit):
    """The still arm's trial finds no repetition: every per-repetition metric, compensations
    (read on the keypoints) included, is NaN with that reason, not read over the trial."""
    out = mp.Protocol.load("shoulder_abduction").run(right_arm_fit, trial="abduction_left")
    s = out.summary()
    assert len(out.repetitions) == 0
    lean = s[s["metric"] == "trunk_lean"]
    assert len(lean) == 1 and math.isnan(lean["value"].iloc[0])
    assert lean["reason"].iloc[0] == "no repetition found"
    per_rep = s[~s["metric"].str.startswith("symmetry_index")]
    assert per_rep["value"].isna().all(), per_rep[["metric", "value"]]
    # the trial asks for 3 (min_repetitions): the data-quality table says 3 are missing
    q = out.quality.set_index("check")
    assert (
        q.loc["repetitions_missing", "value"] == 3
        and q.loc["repetitions_missing", "name"] == "left"
    )


def test_one_repetition_ci_from_noise_for_ranges_not_for_speeds(right_arm_fit):
    """One repetition has no bootstrap; the fit's angle noise, independent per frame, bounds a
    range's error but not a speed's or a smoothness's (differences of independent draws): those
    have no interval and say so."""
    out = mp.Protocol.load("shoulder_abduction").run(right_arm_fit, trial="abduction_right")
    s = out.summary().set_index("metric")
    assert len(out.repetitions) == 1
    missing = out.quality[out.quality["check"] == "repetitions_missing"]
    assert missing[["name", "value"]].values.tolist() == [["right", 2.0]]  # 1 of the 3 asked
    said = "abduction_right (right): 2 repetition(s) fewer than the protocol asks for"
    assert said in repr(out) and said in out._repr_html_()
    rom = s.loc["rom_shoulder_elevation"]
    assert rom["ci_low"] <= rom["value"] <= rom["ci_high"]
    assert rom["reason"].startswith("CI from the fit's keypoint noise")
    for m in ("peak_angular_velocity_shoulder_elevation", "sparc_shoulder_elevation"):
        row = s.loc[m]
        assert math.isfinite(row["value"]) and math.isnan(row["ci_low"]), m
        assert row["reason"].startswith("no CI"), (m, row["reason"])


def test_no_repetition_gives_nan_metrics_and_score_with_reasons(squat):
    df = _frame(squat).iloc[:4]  # 0.4 s of standing
    out = mp.Protocol.load("deep_squat").run(df)
    s = out.summary()
    knee = s[s["metric"] == "rom_knee_flexion"]
    assert knee["value"].isna().all() and knee["reason"].str.len().gt(0).all()
    assert math.isnan(out.score) and "missing" in out.score_reason


def test_two_repetitions_have_no_ci_and_say_why(squat):
    df = _frame(squat)
    t = np.arange(len(df)) / RATE
    out = mp.Protocol.load("deep_squat").run(df[t < squat.repetitions[1][1] + 0.3])
    knee = out.summary().query("metric == 'rom_knee_flexion'")
    assert knee["value"].notna().all() and knee["ci_low"].isna().all()
    assert knee["reason"].str.contains("at least 3").all()


def test_bad_inputs_are_named():
    p = mp.Protocol.load("deep_squat")
    with pytest.raises(InputError, match="found ndarray; expected a KeypointSequence"):
        p.run(np.zeros((10, 3)))
    with pytest.raises(InputError, match="trial 'nope' not found; trials: \\['deep_squat'\\]"):
        p.run(pd.DataFrame({"knee_flexion_r": [0.0, 1.0]}, index=[0.0, 0.1]), trial="nope")
    with pytest.raises(InputError, match="side 'middle' is unknown"):
        p.run(pd.DataFrame({"knee_flexion_r": [0.0, 1.0]}, index=[0.0, 0.1]), side="middle")
    with pytest.raises(InputError, match="rate_hz"):
        p.run(pd.DataFrame({"knee_flexion_r": [0.0, 1.0, 2.0]}, index=[0.0, 0.1, 0.5]))


def test_scores_are_percent_of_the_norm_mean(assessed):
    norm = mp.scoring.norm_for("rom", "knee_flexion", source="aaos")
    row = assessed.scores.query("metric == 'rom_knee_flexion' and side == 'left'").iloc[0]
    assert row["norm"] == "rom.aaos.knee_flexion" == norm["key"]
    assert row["percent"] == pytest.approx(100.0 * row["value"] / norm["mean"], rel=1e-12)
    assert row["source"] == norm["source"]


def test_identical_repetitions_are_perfectly_consistent(assessed):
    # the synthetic squat repeats the same curve: CMC = 1 (Kadaba 1989) up to the fit's error
    for side in ("left", "right"):
        assert assessed.value("consistency_knee_flexion", side) == pytest.approx(1.0, abs=1e-3)


def test_sparc_at_20_hz_ranks_a_jerky_squat_below_a_smooth_one(sk):
    def sparc_of(submovements: int) -> float:
        truth = make_exercise(
            "squat", skeleton=sk, rate=20.0, repetitions=REPS, submovements=submovements, seed=4
        )
        out = mp.Protocol.load("deep_squat").run(_frame(truth))
        return out.value("sparc_knee_flexion", "left")

    smooth, jerky = sparc_of(0), sparc_of(3)
    assert np.isfinite(smooth) and smooth < 0
    assert jerky < smooth  # more submovements: a longer spectral arc (Balasubramanian 2015)


def test_missing_joint_and_low_rate_give_reasons(squat):
    df = _frame(squat).drop(columns=["hip_flexion_l", "hip_flexion_r"])
    out = mp.Protocol.load("deep_squat").run(df)  # 10 Hz: SPARC's 10 Hz cut-off is too high
    s = out.summary()
    hip = s[s["metric"] == "rom_hip_flexion"]
    assert hip["value"].isna().all()
    assert hip["reason"].str.contains("hip_flexion").all()
    assert hip["reason"].str.contains("missing").all()
    sparc = s[s["metric"] == "sparc_knee_flexion"]
    assert sparc["value"].isna().all() and sparc["reason"].str.contains("fc").all()
    assert math.isnan(out.info["composite_percents"]["rom_hip_flexion"])
    # without the hip angles the criteria cannot be posed by forward kinematics: the composite
    # is NaN and names them
    assert math.isnan(out.score) and "thigh_angle" in out.score_reason


def test_symmetry_without_one_side_names_the_side_with_a_value(squat):
    out = mp.Protocol.load("deep_squat").run(_frame(squat).drop(columns=["knee_flexion_l"]))
    s = out.summary().set_index(["metric", "side"])
    assert math.isnan(s.loc[("rom_knee_flexion", "left"), "value"])
    assert math.isfinite(s.loc[("rom_knee_flexion", "right"), "value"])
    assert s.loc[("symmetry_index_rom_knee_flexion", "both"), "reason"] == (
        "needs rom_knee_flexion on both sides; measured: right"
    )


def test_explicit_side_measures_only_that_side(squat):
    out = mp.Protocol.load("deep_squat").run(_frame(squat), side="left")
    assert out.sides == ("left",)
    assert set(out.repetitions["side"]) == {"left"}
    assert set(out.summary()["side"]) <= {"left", "", "both"}
