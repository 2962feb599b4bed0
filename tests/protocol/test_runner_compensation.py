"""The runner's compensation and gait metrics against synthetic truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.protocol.definition_schema import MetricSpec
from medpose.protocol.keypoint_metrics import KeypointSource, angle_sd, keypoint_metric
from medpose.scoring import compensation as C
from medpose.scoring.points import as_points
from medpose.synthetic.exercises import make_exercise

RATE = 10.0
REPS = 3


def _summary(out, key, side=""):
    s = out.summary()
    row = s[(s["metric"] == key) & (s["side"] == side)]
    assert len(row) == 1, (key, side, s[s["metric"] == key])
    return row.iloc[0]


def _fit(sk, truth, rate, noise_mm, seed=0):
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)
    x = x + np.random.default_rng(seed).normal(0.0, noise_mm, x.shape)
    return fit(KeypointSequence(x, tuple(names), rate, frame="camera"))


@pytest.fixture(scope="module")
def squat():
    sk = Skeleton.default(1750.0)
    truth = make_exercise(
        "squat", skeleton=sk, rate=RATE, repetitions=REPS, seed=1, trunk_lean_deg=15.0
    )
    # 0.5 mm of keypoint noise: a millimetre-level heel lift stays measurable (the peak of a
    # noisy series reads high by about 3.5 SD of the fitted heel's noise, P98 minus P5)
    return sk, truth, _fit(sk, truth, RATE, noise_mm=0.5)


@pytest.fixture(scope="module")
def assessed(squat):
    return mp.Protocol.load("deep_squat").run(squat[2])


def test_deep_squat_measures_the_synthetic_trunk_lean(assessed):
    row = _summary(assessed, "trunk_lean")
    assert row["unit"] == "deg" and row["reason"] == ""
    assert row["value"] == pytest.approx(15.0, abs=2.0)  # the "done when"
    per_rep = assessed.metrics.query("metric == 'trunk_lean' and repetition == repetition")
    assert len(per_rep) == REPS
    np.testing.assert_allclose(per_rep["value"], 15.0, atol=2.0)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]  # bootstrap over 3 repetitions


def test_deep_squat_heel_lift_and_knee_valgus_match_the_truth(squat, assessed):
    sk, truth, _ = squat
    x = forward_kinematics(sk, truth.angles.values)
    pts = {n: x[:, i] for i, n in enumerate(sk.keypoint_names)}
    for side in ("left", "right"):
        heel = C.heel_lift(pts, side).value  # true heel height above its standing level
        t = np.arange(len(heel)) / RATE
        true_peaks = [
            np.percentile(heel[(t >= a) & (t <= b)], C.PEAK_PERCENTILE)
            for a, b in truth.repetitions
        ]
        # the synthetic squat rolls onto the toes a little at the bottom (about 2 mm)
        assert _summary(assessed, "heel_lift", side)["value"] == pytest.approx(
            max(true_peaks), abs=1.5
        )
        # no hip adduction or rotation in the synthetic squat: a straight knee (0 deg)
        assert _summary(assessed, "knee_valgus", side)["value"] == pytest.approx(0.0, abs=2.0)


def test_a_heel_below_its_standing_level_is_no_heel_lift(squat):
    """A heel cannot go below the floor it stood on: keypoints whose heel reads lower at the
    deepest point than in the rest before (by more than 20 mm, or twice the fit's noise) give
    no heel lift, and say why; a heel 10 mm low, within that, is read as it is."""
    sk, truth, _ = squat
    names = list(sk.keypoint_names)
    x = np.array(forward_kinematics(sk, truth.angles.values, keypoints=names))
    t = np.arange(len(x)) / RATE
    spans = np.asarray(truth.repetitions, float)
    peak = spans.mean(axis=1)
    low = np.zeros(len(t))  # 1 over the middle third of each repetition
    for (a, b), p in zip(spans, peak):
        low[np.abs(t - p) <= (b - a) / 6.0] = 1.0
    x[:, names.index("heel_r"), 1] -= 50.0 * low
    x[:, names.index("heel_l"), 1] -= 10.0 * low
    reps = pd.DataFrame(
        {
            "start_frame": np.round(spans[:, 0] * RATE).astype(int),
            "peak_frame": np.round(peak * RATE).astype(int),
            "end_frame": np.round(spans[:, 1] * RATE).astype(int),
        }
    )
    source = KeypointSource(KeypointSequence(x, tuple(names), RATE, frame="skeleton"))
    out = keypoint_metric(
        MetricSpec(name="heel_lift"), ("left", "right"), source, {"left": reps, "right": reps}, RATE
    )
    got = {kv.side: kv.result for kv in out}
    np.testing.assert_allclose(got["left"].value, -10.0, atol=3.0)
    assert set(got["left"].reasons) == {""}
    assert np.isnan(got["right"].value).all()
    for why in got["right"].reasons:
        assert why.startswith("the heel reads 5") and "below its standing level" in why, why


def test_gait_protocol_on_the_true_angles():
    truth = make_exercise("gait", rate=60.0, repetitions=6, impaired_side="left", impairment=0.3)
    out = mp.Protocol.load("gait").run(truth.angles, age=45, sex="female")
    speed = truth.params["speed_mm_s"] / 1000.0
    stride = truth.params["stride_s"]
    assert _summary(out, "gait_speed")["value"] == pytest.approx(speed, rel=1e-6)
    assert _summary(out, "gait_speed")["unit"] == "m/s"
    assert _summary(out, "cadence")["value"] == pytest.approx(120.0 / stride, rel=1e-4)
    left = _summary(out, "step_length", "left")
    right = _summary(out, "step_length", "right")
    assert left["value"] + right["value"] == pytest.approx(speed * stride, rel=5e-3)
    assert left["value"] < right["value"]  # the impaired side's step is shorter
    assert left["ci_low"] <= left["value"] <= left["ci_high"]  # bootstrap over the steps
    si = _summary(out, "symmetry_index_step_length", "both")["value"]
    assert si == pytest.approx(
        200.0 * (left["value"] - right["value"]) / (left["value"] + right["value"]), rel=1e-9
    )
    assert si < 0
    # gait speed is scored against its norm (Bohannon & Andrews 2011)
    score = out.scores.query("metric == 'gait_speed'").iloc[0]
    assert math.isfinite(score["percent"]) and "Bohannon" in score["source"]
    assert out.score == pytest.approx(min(score["percent"], 100.0))


@pytest.fixture(scope="module")
def walk():
    sk = Skeleton.default(1700.0)
    truth = make_exercise("gait", skeleton=sk, rate=30.0, repetitions=4, speed_mm_s=1000.0)
    return sk, truth, _fit(sk, truth, 30.0, noise_mm=3.0, seed=2)


def test_angle_noise_predicted_from_the_fit_matches_its_actual_error(walk):
    _, truth, f = walk
    sd = angle_sd(f)
    for dof in ("knee_flexion_r", "hip_flexion_l", "ankle_dorsiflexion_r", "elbow_flexion_l"):
        err = np.asarray(f.angles[dof], float) - np.asarray(truth.angles[dof], float)
        rms = float(np.sqrt(np.nanmean((err - np.nanmean(err)) ** 2)))
        # the Gauss-Newton posterior of the fit against the error it actually made
        assert 0.6 * rms < sd[dof] < 1.6 * rms, (dof, sd[dof], rms)


def test_whole_trial_values_get_the_fit_noise_propagated(walk):
    sk, truth, f = walk
    out = mp.Protocol.load("gait").run(f)
    knee = _summary(out, "rom_knee_flexion", "left")  # an angle metric over the trial
    assert knee["ci_low"] < knee["value"] < knee["ci_high"]
    assert knee["ci_high"] - knee["ci_low"] < 10.0
    for key in ("gait_speed", "cadence"):
        row = _summary(out, key)
        assert row["ci_low"] < row["value"] < row["ci_high"], key
    speed = _summary(out, "gait_speed")
    assert speed["value"] == pytest.approx(1.0, rel=0.02)
    # an interval of a few percent at most for 3 mm of noise, yet not zero
    assert 0.0 < speed["ci_high"] - speed["ci_low"] < 0.05
    # the trunk rides on the listing pelvis (+-4 deg): its peak sideways lean over the trial
    pts, _ = as_points(truth.angles, sk)
    true_lean = np.percentile(np.abs(C.trunk_lean(pts).value), C.PEAK_PERCENTILE)
    assert 3.0 < true_lean < 5.0
    lean = _summary(out, "trunk_lean")  # over the trial: one value, the noise interval
    assert lean["value"] == pytest.approx(true_lean, abs=1.0)
    assert lean["ci_low"] <= lean["value"] <= lean["ci_high"]


def test_shoulder_hiking_in_shoulder_flexion():
    truth = make_exercise("shoulder_flexion", rate=RATE, repetitions=REPS, shoulder_hiking_deg=8.0)
    out = mp.Protocol.load("shoulder_flexion").run(truth.angles, side="right")
    assert _summary(out, "shoulder_hiking", "right")["value"] == pytest.approx(8.0, abs=1e-6)
    # the skeleton has no shoulder-girdle DoF: the synthetic hiking bends the trunk
    assert _summary(out, "trunk_lean")["value"] == pytest.approx(8.0, abs=1e-6)


def test_joint_angles_without_keypoints_give_nan_with_the_reason():
    truth = make_exercise("squat", rate=RATE, repetitions=REPS, seed=1, trunk_lean_deg=15.0)
    df = pd.DataFrame(np.asarray(truth.angles.values), columns=list(truth.angles.names))
    df.attrs["rate_hz"] = RATE
    out = mp.Protocol.load("deep_squat").run(df)
    row = _summary(out, "trunk_lean")
    assert math.isnan(row["value"]) and "needs keypoints or a Fit" in row["reason"]
    # the same angles as JointAngles (every DoF of the default skeleton) are posed and measured
    out = mp.Protocol.load("deep_squat").run(truth.angles)
    assert _summary(out, "trunk_lean")["value"] == pytest.approx(15.0, abs=1e-6)


def test_fitted_keypoints_are_in_the_skeleton_frame(squat):
    _, _, f = squat
    pts, noise = as_points(f)
    assert math.isfinite(noise) and noise > 0
    # +Y up: the heels stay near the lowest point of the body
    assert np.nanmedian(pts["heel_r"][:, 1]) < np.nanmedian(pts["pelvis"][:, 1]) - 500.0


def test_a_dof_the_keypoints_do_not_constrain_gives_nan_with_the_reason():
    sk = Skeleton.default(1700.0)
    truth = make_exercise("shoulder_abduction", skeleton=sk, rate=10.0, repetitions=1)
    face = ("nose", "eye", "ear", "mouth", "head_top")
    names = [n for n in sk.keypoint_names if not n.startswith(face)]
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)[:8]
    f = fit(KeypointSequence(x, tuple(names), 10.0))
    assert not f.observable[list(f.dof_names).index("neck_bending")]
    source = KeypointSource(f)
    (tilt,) = keypoint_metric(MetricSpec(name="head_tilt"), ("left", "right"), source, {}, 10.0)
    assert tilt.result is None and "neck_bending not constrained" in tilt.reason
    (lean,) = keypoint_metric(MetricSpec(name="trunk_lean"), ("left", "right"), source, {}, 10.0)
    assert lean.result is not None and lean.over_trial and np.isfinite(float(lean.result))


def test_one_repetition_gets_intervals_from_the_fit_noise():
    sk = Skeleton.default(1700.0)
    truth = make_exercise("squat", skeleton=sk, rate=RATE, repetitions=1, trunk_lean_deg=12.0)
    out = mp.Protocol.load("deep_squat").run(_fit(sk, truth, RATE, noise_mm=3.0, seed=4))
    for key, side in (("rom_knee_flexion", "left"), ("trunk_lean", ""), ("heel_lift", "right")):
        row = _summary(out, key, side)
        assert row["ci_low"] <= row["value"] <= row["ci_high"], key
        assert row["ci_high"] > row["ci_low"] and "fit's keypoint noise" in row["reason"], key
    assert _summary(out, "trunk_lean")["value"] == pytest.approx(12.0, abs=2.0)
