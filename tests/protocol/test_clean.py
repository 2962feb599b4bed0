"""The protocol's clean step on markerless keypoints whose detector swapped left and right."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import medpose as mp
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout, lr_pairs
from medpose.protocol.session_run import clean_sequence
from medpose.synthetic.exercises import make_exercise
from medpose.synthetic.observation import markerless

HALPE = tuple(get_layout("halpe26").medpose)


@pytest.fixture(scope="module")
def squat() -> np.ndarray:
    q = make_exercise("squat", rate=30.0, repetitions=3).angles.values
    return np.asarray(forward_kinematics(Skeleton.default(1750.0), q, keypoints=HALPE))


@pytest.mark.parametrize("seed", range(6))
def test_the_clean_step_restores_every_swapped_label(squat, seed):
    """Markerless keypoints of a squat (8 mm noise, a 20-30 mm bias, gaps, outliers) with
    left/right swaps of the whole body, the arms or the legs for about 10 frames, 0.3 runs a
    second: after the deep squat protocol's clean step (swaps, gaps, filter), every keypoint of
    a left/right pair, in every frame where the detector saw both, is nearer its own true
    position than its twin's (pairs whose swap starts or ends inside a gap of one of them
    aside: the repair cannot see that change).  The outlier test of ``gaps`` takes the first frames of a swap
    for outliers; run before the swap repair, it filled them between the two labellings and
    hid the swap's start, and the repair then relabelled the pair for the rest of the trial."""
    obs = markerless(squat, names=HALPE, rate=30.0, swap_rate=0.3, seed=seed)
    raw = obs.to_sequence(HALPE, 30.0, "camera")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        seq, _ = clean_sequence(mp.Protocol.load("deep_squat"), raw, "deep_squat")
    gaps = [(g["keypoint"], g["start"], g["stop"]) for g in obs.report["gaps"]]
    for a, b in lr_pairs(HALPE):
        # a swap that starts or ends while one of the pair is hidden cannot be seen (the
        # repair compares consecutive frames where both are observed)
        hidden = [
            (s["start"], s["stop"])
            for s in obs.report["swaps"]
            if [a, b] in s["pairs"] or [b, a] in s["pairs"]
            for k, g0, g1 in gaps
            if k in (a, b) and (g0 <= s["start"] <= g1 or g0 <= s["stop"] <= g1)
        ]
        if hidden:
            continue
        for own, twin in ((a, b), (b, a)):
            i, j = HALPE.index(own), HALPE.index(twin)
            seen = np.isfinite(raw.positions[:, [i, j]]).all(axis=(1, 2))
            d_own = np.linalg.norm(seq.positions[:, i] - squat[:, i], axis=1)
            d_twin = np.linalg.norm(seq.positions[:, i] - squat[:, j], axis=1)
            wrong = np.flatnonzero(seen & (d_own > d_twin))
            assert wrong.size == 0, (own, wrong[:10].tolist(), wrong.size)
