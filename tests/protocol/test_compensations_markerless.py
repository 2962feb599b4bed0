"""Compensations on markerless-like synthetic sessions against the synthetic truth.

``mp.synthetic.make_session(path, protocol=NAME, seed=0, n_cameras=2)`` writes 3D keypoints
with the faults of :func:`medpose.synthetic.observation.markerless` (8 mm of noise per axis, a
constant bias of about 20 mm per keypoint, 30 mm on hips and knees, gaps, left/right swaps,
outliers) and the true keypoints in ``truth/``.  The truth's compensation is computed with the
same function on the true keypoints, so each test compares one definition on two inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.io.trc import read_trc
from medpose.protocol.definition_schema import MetricSpec
from medpose.protocol.keypoint_metrics import KeypointSource, keypoint_metric
from medpose.protocol.session_run import clean_sequence
from medpose.scoring import compensation as C
from medpose.scoring.points import as_points
from medpose.synthetic.observation import markerless

#: Pelvic drop over a walk: |measured - true| bound on the cleaned observed keypoints, degrees.
#: The peak (98th percentile) of a per-frame obliquity reads high by about 2 SD of its noise;
#: the hips' 8 mm per axis across a hip width of about 180 mm give an SD of 2.5-3 degrees after
#: the protocol's 6 Hz filter (atan(8 sqrt(2) / 180) = 3.6 degrees before it): up to 7 degrees
#: (0.7-6.0 high on seeds 0-5).  The hips' constant bias tilts the line by 5-11 degrees: read
#: from horizontal, these keypoints gave 12.3 and 3.2 against 4.1.
DROP_TOL_DEG = 7.0
#: The same through the runner (cleaned, fitted keypoints): the fit adds its own pelvic list
#: error, which swings the fitted pelvis further than the truth (1.8-7.4 degrees on the worse
#: side on seeds 0-3); 8 degrees still refuses the bias read from horizontal (15.5 against
#: 4.1 on this session).
DROP_FIT_TOL_DEG = 8.0
#: Heel lift at the deepest point: |measured - true| bound, mm.  The median of about 13 frames
#: at the bottom minus the median of about 10 frames of rest, each heel height with 8 mm of
#: noise, low-passed at 6 Hz (neighbouring frames correlated: about 5 independent samples
#: each): SD about 1.25 * 8 * sqrt(1/5 + 1/4) = 6.7 mm, so 2 SD is 13.5 mm; 15 mm.  A 25 mm
#: lift therefore reads at least 10 mm, a heel kept down at most 15 mm.
HEEL_TOL_MM = 15.0


def _truth_points(session: Path, trial: str) -> dict[str, np.ndarray]:
    return as_points(read_trc(session / "truth" / f"keypoints_{trial}.trc"))[0]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("markerless") / "gait"
    mp.synthetic.make_session(path, protocol="gait", seed=0, n_cameras=2)
    pts = _truth_points(path, "walk")
    want = {}
    for side in ("left", "right"):
        drop = C.pelvic_drop(pts, side).value
        want[side] = np.percentile(drop - np.median(drop), C.PEAK_PERCENTILE)
    return path, want


def test_pelvic_drop_on_markerless_walk_keypoints_reads_the_truth(walk):
    """The synthetic walk lists the pelvis +-4 degrees each stride (a drop on both sides)."""
    path, want = walk
    protocol = mp.Protocol.load("gait")
    seq, _ = clean_sequence(protocol, read_trc(path / "trials" / "walk.trc"), "walk")
    spec = MetricSpec(name="pelvic_drop", over="trial")
    for kv in keypoint_metric(spec, ("left", "right"), KeypointSource(seq), {}, seq.rate):
        assert 3.5 < want[kv.side] < 4.5  # the truth's own drop: a real, present compensation
        got = float(kv.result.value)
        assert abs(got - want[kv.side]) <= DROP_TOL_DEG, (kv.side, got, want[kv.side])


def test_pelvic_drop_through_the_runner_on_a_markerless_walk(walk):
    path, want = walk
    m = mp.Protocol.load("gait").run(path).metrics
    for side in ("left", "right"):
        got = m[(m["metric"] == "pelvic_drop") & (m["side"] == side)]["value"].to_numpy(float)
        assert got.size == 1 and abs(got[0] - want[side]) <= DROP_FIT_TOL_DEG, (side, got)


@pytest.fixture(scope="module")
def squat(tmp_path_factory: pytest.TempPathFactory):
    """A markerless deep squat: the truth, the cleaned observed keypoints and the true
    repetitions (start, deepest point, end frames)."""
    path = tmp_path_factory.mktemp("markerless") / "deep_squat"
    mp.synthetic.make_session(path, protocol="deep_squat", seed=0, n_cameras=2)
    protocol = mp.Protocol.load("deep_squat")
    seq, _ = clean_sequence(protocol, read_trc(path / "trials" / "deep_squat.trc"), "deep_squat")
    windows = json.loads((path / "truth" / "repetitions.json").read_text())["deep_squat"]
    w = np.asarray(windows["windows_s"], float) * seq.rate
    reps = pd.DataFrame(
        {
            "start_frame": np.round(w[:, 0]).astype(int),
            "peak_frame": np.round(w.mean(axis=1)).astype(int),  # the middle of the hold
            "end_frame": np.round(w[:, 1]).astype(int),
        }
    )
    truth = read_trc(path / "truth" / "keypoints_deep_squat.trc")
    return truth, seq, {"left": reps, "right": reps}


def _heel_lift(data, reps, rate) -> dict[str, np.ndarray]:
    out = keypoint_metric(
        MetricSpec(name="heel_lift", aggregate="max"),
        ("left", "right"),
        KeypointSource(data),
        reps,
        rate,
    )
    return {kv.side: np.asarray(kv.result.value, float) for kv in out if kv.result is not None}


def test_heel_lift_on_markerless_keypoints_reads_heels_kept_down(squat):
    """The synthetic deep squat keeps the heels on the floor (0 mm); the observed heel's
    noise and constant bias must not read as a lift (the 98th percentile of the heel's height
    over a repetition from its first 0.1 s read 5-20 mm on these keypoints)."""
    truth, seq, reps = squat
    want = _heel_lift(truth, reps, seq.rate)
    got = _heel_lift(seq, reps, seq.rate)
    for side in ("left", "right"):
        np.testing.assert_allclose(want[side], 0.0, atol=0.5)
        assert got[side].size == 3 and np.all(np.abs(got[side] - want[side]) <= HEEL_TOL_MM), (
            side,
            got[side],
        )


def test_heel_lift_on_markerless_keypoints_reads_a_heel_that_rises(squat):
    """The same squat with the right heel raised 25 mm at the bottom of each repetition (a
    smooth bump over the hold), observed through the same markerless model."""
    truth, seq, reps = squat
    names = list(truth.names)
    pos = np.array(truth.positions, float)
    t = np.arange(pos.shape[0])
    bump = np.zeros(pos.shape[0])
    for peak in reps["right"]["peak_frame"]:
        bump = np.maximum(bump, np.clip(1.0 - np.abs(t - peak) / (0.6 * seq.rate), 0.0, 1.0))
    up = np.array([0.0, 0.0, 1.0])  # the camera world: Z up
    pos[:, names.index("heel_r")] += 25.0 * np.minimum(1.0, 2.0 * bump)[:, None] * up
    lifted = KeypointSequence(pos, tuple(names), seq.rate, frame=truth.frame)
    obs = markerless(lifted, seed=3).to_sequence(tuple(names), seq.rate, truth.frame)
    protocol = mp.Protocol.load("deep_squat")
    cleaned, _ = clean_sequence(protocol, obs, "deep_squat")
    np.testing.assert_allclose(_heel_lift(lifted, reps, seq.rate)["right"], 25.0, atol=0.5)
    got = _heel_lift(cleaned, reps, seq.rate)
    assert np.all(np.abs(got["right"] - 25.0) <= HEEL_TOL_MM), got["right"]
    assert np.all(np.abs(got["left"]) <= HEEL_TOL_MM), got["left"]


def test_pelvic_drop_per_repetition_from_the_standing_obliquity():
    """A hurdle step whose pelvis stands 6 degrees right-side-down (leg-length difference) and
    drops 5 degrees more on the right, the stepping side, at each step: the runner reads the
    5-degree drop from the rest before each repetition, not the 11 degrees from horizontal."""
    truth = mp.synthetic.make_exercise("hurdle_step", rate=30.0, repetitions=3, side="right")
    names = list(truth.angles.names)
    v = np.array(truth.angles.values, float)
    hip = v[:, names.index("hip_flexion_r")]
    profile = (hip - hip.min()) / np.ptp(hip)  # 0 standing, 1 at the top of each step
    v[:, names.index("pelvis_list")] += 6.0 + 5.0 * profile  # right side down positive
    angles = mp.JointAngles(v, tuple(names), truth.angles.rate)
    out = mp.Protocol.load("hurdle_step").run(angles, trial="hurdle_step_right")
    m = out.metrics
    rows = m[(m["metric"] == "pelvic_drop") & (m["side"] == "right") & m["repetition"].notna()]
    assert len(rows) == 3
    np.testing.assert_allclose(rows["value"].to_numpy(float), 5.0, atol=0.3)


@pytest.mark.xfail(
    strict=True,
    reason="the fit: on this session its right hip sits 3.5-4 deg adducted (truth 0), which the "
    "flexed knee turns into an FPPA of 6.5-10 deg (the fitted pose with the true hip adduction "
    "and rotation reads 0.0), and its right foot pitches heel-up at depth, raising the fitted "
    "heel 34-44 mm where the observed heel stays within 10 mm of its standing level",
)
def test_runner_reads_no_heel_lift_or_valgus_on_the_markerless_deep_squat(squat, tmp_path):
    """The whole runner (clean, fit, fitted keypoints) on the markerless deep squat: heels
    down (0 mm) and straight knees (FPPA 0 deg) within :data:`HEEL_TOL_MM` and 5 degrees."""
    truth, seq, reps = squat
    valgus = keypoint_metric(
        MetricSpec(name="knee_valgus"), ("left", "right"), KeypointSource(truth), reps, seq.rate
    )
    want = {"heel_lift": _heel_lift(truth, reps, seq.rate)}
    want["knee_valgus"] = {kv.side: np.asarray(kv.result.value, float) for kv in valgus}
    tol = {"heel_lift": HEEL_TOL_MM, "knee_valgus": 5.0}
    out = mp.Protocol.load("deep_squat").run(seq)
    m = out.metrics
    summary = m[m["repetition"].isna()].set_index(["metric", "side"])["value"]
    for side in ("left", "right"):
        for key in ("heel_lift", "knee_valgus"):
            assert np.allclose(want[key][side], 0.0, atol=0.5)  # heels down, straight knees
            assert abs(summary[(key, side)] - want[key][side].max()) <= tol[key], (key, side)
