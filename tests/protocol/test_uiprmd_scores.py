"""Protocol composites on real UI-PRMD repetitions: correct movements score higher.

UI-PRMD (Vakanski et al. 2018): ten healthy subjects, each doing a deep squat (m01) and a
standing shoulder abduction (m07) ten times correctly and ten times deliberately incorrectly, one
repetition per file.  No score is fitted to these recordings (the composites score published
clinical criteria), so on every subject the correct repetitions must score higher, on average,
than the incorrect ones.  A small subset keeps the test fast; ``benchmarks/uiprmd.py`` runs all
400 files and checks the ROC AUC targets.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import medpose as mp

SUBJECTS = ("s01", "s08")
EPISODES = ("e01", "e02")
MOVEMENTS = {"m01": ("deep_squat", None), "m07": ("shoulder_abduction", "auto")}


@pytest.fixture(scope="module")
def assessed(shared_data):
    """Assessment per (movement, correct, subject, episode) of the subset."""
    import torch

    root = shared_data / "ui-prmd" / "kinect"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small fit per file: threads only spin on a shared machine
    out = {}
    try:
        for movement, (name, side) in MOVEMENTS.items():
            protocol = mp.Protocol.load(name)
            for correct, kind, tail in ((True, "correct", ""), (False, "incorrect", "_inc")):
                for subject in SUBJECTS:
                    for ep in EPISODES:
                        path = (
                            root
                            / kind
                            / "positions"
                            / f"{movement}_{subject}_{ep}_positions{tail}.txt.gz"
                        )
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            a = protocol.run(mp.read_keypoints(path), side=side)
                        out[movement, correct, subject, ep] = a
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("movement", sorted(MOVEMENTS))
def test_correct_repetitions_score_higher_for_every_subject(assessed, movement):
    for subject in SUBJECTS:
        good = [assessed[movement, True, subject, ep].score for ep in EPISODES]
        poor = [assessed[movement, False, subject, ep].score for ep in EPISODES]
        assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in good + poor), (good, poor)
        assert np.mean(good) > np.mean(poor), (movement, subject, good, poor)


def test_deep_squat_composite_is_the_mean_of_the_fms_criteria(assessed):
    a = assessed["m01", True, "s01", "e01"]
    weights = mp.Protocol.load("deep_squat").spec.composite.weights
    assert set(weights) == {"thigh_angle", "torso_tibia_angle", "knee_over_foot", "arm_trunk_angle"}
    s = a.scores[a.scores["metric"].isin(list(weights))]
    assert set(s["side"]) == {"left", "right"} and len(s) == 8
    assert s["norm"].str.startswith("criterion.cook2014.").all()
    assert s["percent"].between(0.0, 100.0).all()
    # the composite: the mean over the criteria of the worse side's percent
    worse = s.groupby("metric")["percent"].min()
    assert a.score == pytest.approx(float(worse.mean()), rel=1e-12)


def test_shoulder_abduction_is_measured_on_the_arm_that_moved(assessed):
    for key, a in assessed.items():
        if key[0] != "m07":
            continue
        side = a.info["auto_side"]
        elevation = a.value("humeral_elevation", side)
        # the arm that moved is raised far from the side (an incorrect repetition included)
        assert 60.0 < elevation <= 180.0, (key, side, elevation)


def test_one_repetition_criteria_carry_the_keypoint_noise_interval(assessed):
    a = assessed["m01", False, "s08", "e01"]
    s = a.summary()
    rows = s[s["metric"].isin(["thigh_angle", "torso_tibia_angle", "knee_over_foot"])]
    assert len(rows) == 6
    assert ((rows["ci_low"] <= rows["value"]) & (rows["value"] <= rows["ci_high"])).all()
    assert rows["reason"].str.contains("keypoint noise").all()
