"""Repetition segmentation and time normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import medpose.synthetic as syn
from medpose.errors import InputError
from medpose.temporal import cut_repetitions, segment_repetitions, time_normalise

MAIN = {
    "shoulder_abduction": "shoulder_abduction_r",
    "shoulder_flexion": "shoulder_flexion_r",
    "elbow_flexion": "elbow_flexion_r",
    "seated_knee_extension": "knee_flexion_r",
    "squat": "knee_flexion_r",
    "sit_to_stand": "knee_flexion_r",
    "gait": "knee_flexion_r",
    "deep_squat": "knee_flexion_r",
    "shoulder_extension": "shoulder_flexion_r",
    "shoulder_scaption": "shoulder_flexion_r",
    "shoulder_internal_rotation": "shoulder_rotation_r",
    "shoulder_external_rotation": "shoulder_rotation_r",
    # one-sided movements move the impaired side (left in the test below)
    "hurdle_step": "hip_flexion_l",
    "inline_lunge": "knee_flexion_l",
    "side_lunge": "knee_flexion_l",
    "straight_leg_raise": "hip_flexion_l",
}


def test_every_synthetic_exercise_is_covered():
    assert set(MAIN) == set(syn.EXERCISES)


@pytest.mark.parametrize("exercise", sorted(MAIN))
@pytest.mark.parametrize("n_reps, seed", [(3, 0), (6, 1)])
def test_segmentation_counts_synthetic_repetitions(exercise, n_reps, seed):
    truth = syn.make_exercise(
        exercise,
        rate=60.0,
        repetitions=n_reps,
        seed=seed,
        tremor_deg=1.0,
        submovements=1,
        impaired_side="left",
        impairment=0.3,
    )
    x = truth.angles[MAIN[exercise]]
    rng = np.random.default_rng(seed)
    x = x + rng.normal(0, 1.0, x.shape)  # 1 degree measurement noise
    reps = segment_repetitions(x, truth.angles.rate, min_range=20.0, min_duration_s=0.5)
    assert len(reps) == len(truth.repetitions)
    # each detected peak lies inside one true repetition window
    for (a, b), peak in zip(truth.repetitions, reps["peak_s"] + truth.angles.start):
        assert a - 0.1 <= peak <= b + 0.1


def test_segmentation_of_a_keypoint_trajectory_and_direction():
    t = np.arange(0, 12, 1 / 30)
    depth = 200 * np.clip(np.sin(2 * np.pi * t / 3), 0, None)  # 4 dips of 200 mm
    traj = np.stack([np.zeros_like(t), np.zeros_like(t), 1000 - depth], 1)
    reps = segment_repetitions(traj, 30.0, min_range=50.0)
    assert len(reps) == 4
    assert reps["range"].min() == pytest.approx(200, rel=0.02)
    down = segment_repetitions(1000 - depth, 30.0, min_range=50.0, direction="down")
    assert len(down) == 4 and down.attrs["direction"] == "down"


def test_small_and_short_movements_are_not_repetitions():
    t = np.arange(0, 10, 1 / 50)
    x = 5 * np.sin(2 * np.pi * 0.5 * t)  # 10 degrees peak to peak
    assert len(segment_repetitions(x, 50.0, min_range=20.0)) == 0
    x = 60 * np.clip(np.sin(2 * np.pi * 0.4 * t), 0, None)
    assert len(segment_repetitions(x, 50.0, min_range=20.0, max_duration_s=0.5)) == 0


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"signal": np.full(50, np.nan)}, "0 finite samples"),
        ({"min_range": 0}, "min_range"),
        ({"fs": 0}, "fs"),
        ({"direction": "left"}, "direction"),
        ({"signal": np.zeros((5, 2, 2))}, "shape"),
    ],
)
def test_segmentation_bad_input(kw, msg):
    args = {"signal": np.sin(np.arange(100) / 5), "fs": 30.0, "min_range": 1.0} | kw
    with pytest.raises(InputError, match=msg):
        segment_repetitions(**args)


def test_time_normalise_and_cut():
    seg = np.linspace(0, 10, 37)
    out = time_normalise(seg, 101)
    np.testing.assert_allclose(out, np.linspace(0, 10, 101), atol=1e-12)
    out3 = time_normalise(np.stack([seg, 2 * seg], 1))
    assert out3.shape == (101, 2) and out3[-1, 1] == 20
    x = np.arange(100.0)
    reps = pd.DataFrame({"start_frame": [0, 50], "end_frame": [20, 99]})
    cut = cut_repetitions(x, reps, 11)
    np.testing.assert_allclose(cut[0], np.linspace(0, 20, 11))
    np.testing.assert_allclose(cut[1], np.linspace(50, 99, 11))
    with pytest.raises(InputError, match="at least 2 samples"):
        time_normalise([1.0])
    with pytest.raises(InputError, match="n_points"):
        time_normalise(seg, 1)
    with pytest.raises(InputError, match="end_frame"):
        cut_repetitions(x, pd.DataFrame({"start_frame": [0]}))
