"""A keypoint lost for a while: what only it saw follows the movement across the gap.

Truth: medpose's own synthetic movements, HALPE_26 keypoints with 5 mm noise, one or two
keypoints removed for half a second mid-movement.  What the gap hides cannot be measured, only
bridged: the bound is the truth's own departure from the straight line between the gap's ends
(what a linear bridge cannot know) plus 5 degrees (the ends are fitted from noisy keypoints).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fit.core import fit_sequence
from medpose.kinematics.fit.gaps import MAX_GAP_S, gap_anchors
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

HALPE = get_layout("halpe26")
NAMES = list(HALPE.medpose)
RATE = 30.0


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default(1750.0)


def _observed(sk, exercise: str, seed: int = 2):
    q = make_exercise(exercise, skeleton=sk, rate=RATE, repetitions=2, seed=seed).angles.values
    x = forward_kinematics(sk, q, keypoints=NAMES)
    return q, x + np.random.default_rng(0).normal(0, 5.0, x.shape)


def _bridge_bound(truth: np.ndarray, gap: np.ndarray) -> float:
    """The truth's largest departure from the straight line between the frames either side of
    ``gap`` (consecutive frames), plus 5 degrees."""
    a, b = gap[0] - 1, gap[-1] + 1
    line = truth[a] + (gap - a) / (b - a) * (truth[b] - truth[a])
    return float(np.max(np.abs(truth[gap] - line))) + 5.0


def test_gap_anchors_bracket_every_missing_keypoint():
    w = torch.ones(10, 3)
    w[:, 0] = 0.0  # never observed: no gap
    w[3:6, 1] = 0.0
    w[4:8, 2] = 0.0
    w[0:2, 2] = 0.0  # at the start: nothing before
    idx, before, after = gap_anchors(w)
    assert idx.tolist() == [0, 1, 3, 4, 5, 6, 7]
    # frame 4 misses keypoints 1 and 2: last seen at 2 and 3, seen again at 6 and 8
    assert before.tolist() == [-1, -1, 2, 2, 2, 3, 3]
    assert after.tolist() == [2, 2, 6, 8, 8, 8, 8]


@pytest.mark.parametrize("smoothness", [0.0, 2.0])
def test_an_elbow_flexing_while_the_wrist_is_lost(sk, smoothness):
    """The wrist gone for 15 frames while the elbow flexes from about 40 to 125 degrees: the
    elbow's flexion, which nothing else sees, is bridged (frame by frame the posture prior read
    it near neutral, and the temporal term's sweeps barely reached into the gap)."""
    q, x = _observed(sk, "elbow_flexion")
    gap = np.arange(28, 43)
    x[gap, NAMES.index("wrist_r")] = np.nan
    f = fit(
        KeypointSequence(x, tuple(HALPE.native), RATE), sk, progress=False, smoothness=smoothness
    )
    truth = q[:, sk.dof_index("elbow_flexion_r")]
    got = f.angles["elbow_flexion_r"].to_numpy()
    bound = _bridge_bound(truth, gap)
    assert np.max(np.abs(got[gap] - truth[gap])) <= bound, (got[gap].round(1), truth[gap].round(1))
    # the keypoints still seen are fitted as in the frames around the gap
    res = f.residual
    cols = [i for i, n in enumerate(NAMES) if n != "wrist_r"]
    assert np.nanmedian(res[np.ix_(gap, cols)]) <= 1.5 * np.nanmedian(res[:, cols])


def test_a_recording_that_starts_without_a_keypoint(sk):
    """A recording that starts with the elbow flexed (about 120 degrees) and the wrist missing
    for its first 15 frames: the elbow holds the pose of the first frame that sees the wrist
    (not neutral), within the truth's own change over those frames plus 5 degrees."""
    q, x = _observed(sk, "elbow_flexion")
    q, x = q[40:], x[40:]
    gap = np.arange(0, 15)
    x[gap, NAMES.index("wrist_r")] = np.nan
    f = fit(KeypointSequence(x, tuple(HALPE.native), RATE), sk, progress=False)
    truth = q[:, sk.dof_index("elbow_flexion_r")]
    got = f.angles["elbow_flexion_r"].to_numpy()
    bound = float(np.max(np.abs(truth[gap] - truth[gap[-1] + 1]))) + 5.0
    assert truth[0] > 100.0
    assert np.max(np.abs(got[gap] - truth[gap])) <= bound, (got[gap].round(1), bound)


def test_a_gap_longer_than_the_cap_is_left_to_the_prior(sk):
    """The wrist lost for two seconds (longer than MAX_GAP_S): the frames of that gap are fitted
    as without any bridging (a pose seen a second away says nothing of the movement between)."""
    _, x = _observed(sk, "elbow_flexion")
    gap = np.arange(20, 20 + int(2 * RATE))
    assert gap.size > MAX_GAP_S * RATE
    x[gap, NAMES.index("wrist_r")] = np.nan
    seq = KeypointSequence(x, tuple(HALPE.native), RATE)
    bridged = fit(seq, sk, progress=False).angles["elbow_flexion_r"].to_numpy()
    plain = fit_sequence(seq, sk, progress=False, bridge=False).angles["elbow_flexion_r"]
    np.testing.assert_allclose(bridged[gap], plain.to_numpy()[gap], atol=1e-4)
