"""Keypoints that alone make a limb's axial rotation observable, and the coarse frames' second
start without them.

Hand keypoints (MediaPipe's ``pinky``, ``index`` and ``thumb``) are the only ones that make
forearm pronation observable: the wrist lies on the pronation axis.  With pronation free, a
straight arm raised past 90 degrees of abduction has no equally good second reading for
:func:`~medpose.kinematics.fit.starts.choose_branches` to undo.  The arm's other Euler branch
(flexion 180 with abduction 30) turns the forearm half about itself, which pronation's range
cannot follow.  A solve from the arms-down rigid start goes over the top by flexion into that
branch and stops with the shoulder's rotation and the forearm's pronation on their limits, the
hand keypoints further from their observations than in the clinical pose.  Without the hand
keypoints the branch choice takes the clinical reading (the lengths-only layouts' case,
``tests/kinematics/test_fit_priors.py``), and the full solve started there keeps it.  Arms held
overhead by flexion (a deep squat's) are the opposite case, so each coarse frame keeps the
better of the two solves (:func:`keep_better`).  On medpose's synthetic shoulder abduction to
150 degrees with MediaPipe's 33 keypoints and 2 or 5 mm of noise, abduction reads 0.4-1.4
degrees RMS off the truth, and 58-60 from the rigid start alone in 6 of 8 sessions
(``tests/kinematics/test_fit_distal.py``, docs/fit.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .device import Setup, setup
from .problem import FitProblem, observable_dofs
from .solver import Priors, add_prior_cost, solve
from .starts import choose_branches, fits_as_well, put

__all__ = [
    "distal_keypoints",
    "proximal_problem",
    "Proximal",
    "proximal",
    "proximal_start",
    "keep_better",
    "objective",
]


def distal_keypoints(prob: FitProblem) -> np.ndarray:
    """(K,) bool: the keypoints of a leaf segment (no child segment) that alone make its parent
    segment's rotation about its own long axis observable (the last rotation of the parent's
    joint sequence): a hand's keypoints and forearm pronation.  A foot's parent (the shank) has
    no such DoF, and a head's (the trunk's axial rotation) is seen by the shoulders too."""
    sk = prob.skeleton
    kseg = sk.keypoint_segment[prob.kp_index]
    out = np.zeros(kseg.size, dtype=bool)
    parents = set(sk.parent_index.tolist())
    for leaf in range(len(sk.segment_names)):
        on = kseg == leaf
        if leaf in parents or not on.any() or sk.parent_index[leaf] < 0:
            continue
        axial = int(sk.joint_dof_index[sk.parent_index[leaf], 2])
        if axial < 0 or not prob.observable[axial]:
            continue
        rest = out | on
        if not observable_dofs(sk, prob.kp_index[~rest], prob.lower, prob.upper)[axial]:
            out = rest
    return out


def proximal_problem(prob: FitProblem) -> tuple[FitProblem, np.ndarray] | None:
    """``prob`` without its :func:`distal_keypoints` (the DoFs only they observe become
    unobservable, held where the start puts them) and the kept columns (K,) bool; None when it
    has none."""
    distal = distal_keypoints(prob)
    if not distal.any():
        return None
    keep = ~distal
    obs = observable_dofs(prob.skeleton, prob.kp_index[keep], prob.lower, prob.upper)
    return (
        replace(
            prob,
            seq_index=prob.seq_index[keep],
            kp_index=prob.kp_index[keep],
            kp_names=tuple(n for n, k in zip(prob.kp_names, keep) if k),
            observable=obs,
            rhythm=prob.rhythm * obs,
            min_keypoints=min(prob.min_keypoints, int(keep.sum())),
        ),
        keep,
    )


@dataclass(frozen=True, eq=False)
class Proximal:
    """A problem's proximal version on the device (``st``: its
    :class:`~medpose.kinematics.fit.device.Setup`), the priors of its solves and the columns
    (K_kept,) of the full problem's keypoints it uses."""

    st: Setup
    pri: Priors
    cols: torch.Tensor


def proximal(
    prob: FitProblem, pos_columns: int, dev: torch.device, dt: torch.dtype, sigma: float
) -> Proximal | None:
    """:func:`proximal_problem` of ``prob`` on the device, its solves weighed by the keypoint
    noise ``sigma`` (mm) as ``prob``'s are; None when ``prob`` has no distal keypoints."""
    px = proximal_problem(prob)
    if px is None:
        return None
    st = setup(px[0], pos_columns, dev, dt)
    return Proximal(st, st.priors(sigma), torch.as_tensor(np.flatnonzero(px[1]), device=dev))


def proximal_start(
    px: Proximal, q: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor, max_iter: int, xtol: float
) -> torch.Tensor:
    """Poses ``q`` (T, D) solved on the proximal problem from there and moved to the branch
    nearest neutral among its equally good fits: the start of the full problem's solve."""
    st = px.st
    xo, wo = x_obs[:, px.cols], w[:, px.cols]
    q, _, _ = solve(
        st.ctx, q, xo, wo, st.lo, st.hi, px.pri, max_iter=max_iter, xtol=xtol, lam0=1e-3
    )
    q, _ = choose_branches(st.ctx, st.moves, q, xo, wo, st.lo, st.hi, st.neutral)
    return q


def keep_better(
    px: Proximal,
    st: Setup,
    pri: Priors,
    solved: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    q_rigid: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    max_iter: int,
    xtol: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frames ``solved`` (q, fitted keypoints, converged) from their rigid starts
    ``q_rigid``, each replaced by its solve from the :func:`proximal_start` where that fits the
    keypoints better beyond rounding.  Neither start is right for every pose: a straight arm
    raised sideways past 90 degrees needs the proximal one, arms held overhead in flexion (a
    deep squat's) read as abduction 170 on the proximal problem (a lengths-only layout's known
    limit), and the full solve from there stays on that worse fit."""
    q, x, conv = solved
    qb, xb, cb = solve(
        st.ctx,
        proximal_start(px, q_rigid, x_obs, w, max_iter, xtol),
        x_obs,
        w,
        st.lo,
        st.hi,
        pri,
        max_iter=max_iter,
        xtol=xtol,
        lam0=1e-3,
    )
    cost_a = objective(st, pri, q, x, x_obs, w)
    cost_b = objective(st, pri, qb, xb, x_obs, w)
    take = torch.nonzero(~fits_as_well(cost_a, cost_b, x_obs.shape[1]))[:, 0]
    return put(q, x, conv, take, qb[take], xb[take], cb[take])


def objective(
    st: Setup, pri: Priors, q: torch.Tensor, x: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """Per frame (T,) what :func:`~medpose.kinematics.fit.solver.solve` minimises at poses ``q``
    with keypoints ``x``: the weighted squared keypoint residuals and the priors' terms."""
    var = st.ctx.var_dofs
    z = q[:, var]
    cost = ((torch.sqrt(w)[..., None] * (x - x_obs)) ** 2).sum(dim=(1, 2))
    mu = pri.mu if pri.mu is not None else torch.zeros_like(z[0])  # as the solver has it
    return add_prior_cost(cost, z, st.lo[var], st.hi[var], pri, mu, pri.row)
