"""A ball joint's equally good readings stay on one branch over time (``fit.continuity``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fit.continuity import _path
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise


@pytest.mark.parametrize("seed", range(12))
def test_the_path_is_the_least_cost_one(seed):
    """The parallel-scan Viterbi path costs what the best of all paths costs (brute force)."""
    g = torch.Generator().manual_seed(seed)
    T, S = int(torch.randint(2, 8, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
    unary = torch.rand(T, S, generator=g, dtype=torch.float64) * 5
    unary[torch.rand(T, S, generator=g) < 0.3] = float("inf")  # readings that are not candidates
    unary[:, 0] = torch.rand(T, generator=g, dtype=torch.float64)  # the frame's own: always one
    step = torch.rand(T - 1, S, S, generator=g, dtype=torch.float64) * 5

    def cost(p):
        return float(
            sum(unary[t, p[t]] for t in range(T))
            + sum(step[t, p[t], p[t + 1]] for t in range(T - 1))
        )

    best = min(cost(p) for p in itertools.product(range(S), repeat=T))
    assert cost(tuple(_path(unary, step).tolist())) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize(("noise", "smoothness"), [(0.0, 0.0), (3.0, 0.0), (3.0, 2.0)])
def test_a_raised_straight_arm_keeps_its_branch(noise, smoothness):
    """A straight arm raised in the scapular plane (flexion to 164, abduction 26, the elbow at 5)
    fits exactly alike as flexion -16 / abduction 154 with the humerus turned half about itself
    and the elbow at -5, which is nearer neutral.  Frame by frame the top of a noisy raise read
    one, then the other, 180 degrees apart; over time the fit keeps the branch it rose on."""
    sk = Skeleton.default(1750.0)
    q = make_exercise(
        "shoulder_scaption", skeleton=sk, rate=15.0, repetitions=1, seed=0
    ).angles.values
    x = forward_kinematics(sk, q, keypoints=list(get_layout("halpe26").medpose))
    x = x + np.random.default_rng(0).normal(0.0, noise, x.shape)
    seq = KeypointSequence(x, tuple(get_layout("halpe26").native), 15.0, frame="camera")
    f = fit(seq, sk, progress=False, smoothness=smoothness)
    for side in "rl":
        for dof in ("shoulder_flexion", "shoulder_abduction"):
            a = f.angles[f"{dof}_{side}"].to_numpy()
            truth = q[:, sk.dof_index(f"{dof}_{side}")]
            assert np.abs(np.diff(a)).max() < 60.0, (dof, side, np.round(a).tolist())
            assert np.sqrt(np.mean((a - truth) ** 2)) < 1.0 + noise, (dof, side)
