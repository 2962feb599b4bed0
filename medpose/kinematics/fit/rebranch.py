"""The branch choice again for frames of the fit's second stage that moved far from their start.

Frames between the coarse ones start from their solved, branch-chosen neighbours
(:func:`~medpose.kinematics.fit.starts.interpolate`).  A frame that stayed within 30 degrees
of that start is on their branch (another branch of a ball joint is at least 180 degrees away
in some DoF); one that moved further has its branches chosen again
(:func:`~medpose.kinematics.fit.starts.choose_branches`) and, where that moved it, is polished
and keeps the move where it fits as well.
"""

from __future__ import annotations

import torch

from .device import Setup
from .solver import Priors, solve
from .starts import choose_branches
from .stuck import frame_rms, put

__all__ = ["rebranch"]


def rebranch(
    st: Setup,
    qv: torch.Tensor,
    xv: torch.Tensor,
    cvv: torch.Tensor,
    qn: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    pri: Priors,
    xtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, fitted keypoints and convergence of the frames ``qv`` solved from ``qn``, with the
    branch choice repeated for the frames that moved more than 30 degrees from there."""
    far = torch.nonzero(((qv - qn).abs() > 30.0).any(dim=1))[:, 0]
    if far.numel() == 0:
        return qv, xv, cvv
    moved = torch.zeros(qv.shape[0], dtype=torch.bool, device=qv.device)
    qf, mf = choose_branches(
        st.ctx, st.moves, qv[far], x_obs[far], w[far], st.lo, st.hi, st.neutral
    )
    qb = qv.clone()
    qb[far], moved[far] = qf, mf
    m = torch.nonzero(moved)[:, 0]
    if m.numel() == 0:
        return qv, xv, cvv
    # polish the frames that moved
    xo_m, w_m = x_obs[m], w[m]
    qm, xm, cm = solve(st.ctx, qb[m], xo_m, w_m, st.lo, st.hi, pri, max_iter=max_iter, xtol=xtol)
    # kept where the other branch fits as well (a polish can slide into a worse minimum)
    ok = frame_rms(xm, xo_m, w_m, st.n_var) <= frame_rms(xv[m], xo_m, w_m, st.n_var) * 1.005 + 0.01
    return put(qv, xv, cvv, m[ok], qm[ok], xm[ok], cm[ok])
