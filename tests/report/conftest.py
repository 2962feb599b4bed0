"""Fixtures of the report tests: a real assessment of a synthetic squat, and its angles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.synthetic.exercises import make_exercise

RATE = 10.0
PATIENT = "PSEUDO-7731"


@pytest.fixture(scope="session")
def squat_fit():
    """A noise-free synthetic deep squat (3 repetitions, 10 Hz) fitted by mp.fit."""
    sk = Skeleton.default(1750.0)
    ex = make_exercise("squat", skeleton=sk, rate=RATE, repetitions=3, seed=1)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, ex.angles.values, keypoints=names)
    return fit(KeypointSequence(x, tuple(names), RATE, frame="camera"))


@pytest.fixture(scope="session")
def assessed(squat_fit):
    return mp.Protocol.load("deep_squat").run(squat_fit)


def sine_angles(rate: float = 50.0, reps: int = 3, offset: float = 10.0) -> tuple:
    """Angles (deg) with ``reps`` half-sine repetitions of 2 s (60 deg right, 60 + offset
    left) separated by 1 s rest, and the true repetition table."""
    t = np.arange(0.0, 3.0 * reps + 1.0, 1.0 / rate)
    right = np.zeros_like(t)
    rows = []
    for k in range(reps):
        a, b = 1.0 + 3.0 * k, 3.0 + 3.0 * k
        sel = (t >= a) & (t <= b)
        right[sel] = 60.0 * np.sin(np.pi * (t[sel] - a) / 2.0)
        for side in ("left", "right"):
            rows.append({"repetition": k, "start_s": a, "end_s": b, "side": side})
    left = right * (60.0 + offset) / 60.0
    df = pd.DataFrame(
        {"knee_flexion_l": left, "knee_flexion_r": right}, index=pd.Index(t, name="time_s")
    )
    return df, pd.DataFrame(rows)
