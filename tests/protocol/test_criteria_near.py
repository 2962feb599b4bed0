"""A criterion read at its key frame (the deepest point of a squat, the top of an arm raise)
says so when frames without keypoints lie next to that frame: the true extreme may be among
them, so the value may be read from a shallower frame."""

from __future__ import annotations

import numpy as np
import pytest

from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.protocol.capped import NEAR
from medpose.protocol.criteria import criterion_rows
from medpose.protocol.definition_schema import MetricSpec
from medpose.synthetic.exercises import make_exercise
from medpose.temporal import segment_repetitions

RATE = 30.0
GONE = 5  # frames removed around a key frame


def _exercise(name: str, signal: str):
    """Keypoints of three repetitions of a synthetic exercise on the default skeleton, their
    names, the repetitions of the DoF ``signal`` and that DoF's angle."""
    sk = Skeleton.default(1750.0)
    truth = make_exercise(name, skeleton=sk, rate=RATE, repetitions=3, seed=2)
    names = list(sk.keypoint_names)
    x = np.asarray(forward_kinematics(sk, truth.angles.values, keypoints=names), float)
    angle = np.asarray(truth.angles[signal], float)
    reps = segment_repetitions(angle, RATE, min_range=30.0, direction="up")
    assert len(reps) == 3
    return x, tuple(names), reps, angle


@pytest.fixture(scope="module")
def squat():
    return _exercise("deep_squat", "knee_flexion_r")[:3]


def _rows(x, names, reps, metric="thigh_angle"):
    rows = criterion_rows([MetricSpec(name=metric)], "squat", ("right",), (x, names),
                          {"right": reps}, RATE)  # fmt: skip
    per_rep = [r for r in rows if np.isfinite(r["repetition"])]
    summary = [r for r in rows if not np.isfinite(r["repetition"])]
    assert len(per_rep) == 3 and len(summary) == 1
    return per_rep, summary[0]


def _deepest(x, names, reps, i):
    """The frame of repetition ``i`` where the hips' midpoint is lowest (Y is up here)."""
    hips = (x[:, names.index("hip_l"), 1] + x[:, names.index("hip_r"), 1]) / 2.0
    a, b = int(reps["start_frame"].iloc[i]), int(reps["end_frame"].iloc[i])
    return a + int(np.argmin(hips[a : b + 1]))


def test_frames_missing_at_the_bottom_are_named_with_their_count(squat):
    x, names, reps = squat
    per_rep, summary = _rows(x, names, reps)
    assert not any(NEAR in r["reason"] for r in [*per_rep, summary])  # nothing missing
    k = _deepest(x, names, reps, 1)
    gone = x.copy()
    gone[k - 2 : k + 3] = np.nan  # the second squat's bottom, 5 frames
    per_rep, summary = _rows(gone, names, reps)
    assert f"{GONE} {NEAR}" in per_rep[1]["reason"] and "deepest point" in per_rep[1]["reason"]
    assert np.isfinite(per_rep[1]["value"])  # still read, from the frames next to the gap
    assert NEAR not in per_rep[0]["reason"] and NEAR not in per_rep[2]["reason"]
    assert f"{GONE} {NEAR} in 1 of 3 repetition(s)" in summary["reason"]


def test_frames_missing_away_from_the_bottom_say_nothing(squat):
    x, names, reps = squat
    a = int(reps["start_frame"].iloc[1])
    k = _deepest(x, names, reps, 1)
    assert k - a > 3 * GONE  # the start of the descent is far from its bottom
    gone = x.copy()
    gone[a : a + GONE] = np.nan
    per_rep, summary = _rows(gone, names, reps)
    assert not any(NEAR in r["reason"] for r in [*per_rep, summary])


def test_an_arm_raise_names_its_top():
    x, names, reps, arm = _exercise("shoulder_abduction", "shoulder_abduction_r")
    a, b = int(reps["start_frame"].iloc[0]), int(reps["end_frame"].iloc[0])
    k = a + int(np.argmax(arm[a : b + 1]))  # the first raise's top
    x[k - 2 : k + 3] = np.nan
    rows = criterion_rows([MetricSpec(name="humeral_elevation")], "raise", ("right",),
                          (x, names), {"right": reps}, RATE)  # fmt: skip
    first = next(r for r in rows if r["repetition"] == 0.0)
    assert f"{GONE} {NEAR}" in first["reason"] and "the top may be among them" in first["reason"]
