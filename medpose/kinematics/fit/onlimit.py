"""Frames held on a hard limit in a local minimum, and their restart from another branch.

A raised arm solved from the arms-down start can end on the far side of the humerus's half
turn: the elbow pressed against its -5 degree limit where the keypoints bend it +20.  On the
UI-PRMD Kinect v2 recordings (deep squats and shoulder abductions, the first episode of every
subject, correct and incorrect) the fitted elbow sat on that limit while the
shoulder-elbow-wrist angle read more than 10 degrees in 1,114 of 2,812 frames (435 with
:func:`leave_limits`).  No move of
:func:`~medpose.kinematics.fit.starts.choose_branches` fits such a frame as well (it takes
only readings that fit exactly alike), the frame's residual stays within what the Kinect's
noise explains, and its neighbours are often stuck alike, so
:func:`~medpose.kinematics.fit.starts.repair` has no good frame to restart it from.
:func:`leave_limits` solves each frame on a limit again from the other branches.
"""

from __future__ import annotations

import torch

from .device import Setup
from .solver import Priors, solve
from .starts import apply_move
from .stuck import frame_rms, put

__all__ = ["leave_limits", "LIMIT_GAIN", "MIDDLE_MAX_DEG"]


#: A frame on a hard limit takes a restart from another branch where that lowers its RMS below
#: this fraction of its own: the same problem's better minimum, with a margin so that two
#: minima within noise of each other do not alternate from frame to frame.
LIMIT_GAIN = 0.99
#: A restart is not kept where it reads the joint's middle Euler angle beyond this (degrees).
MIDDLE_MAX_DEG = 150.0


def leave_limits(
    st: Setup,
    q: torch.Tensor,
    x: torch.Tensor,
    conv: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    pri: Priors,
    xtol: float,
    max_iter: int,
    skip: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each frame of ``q`` with a free DoF on a hard limit solved again from each half turn
    of a segment about its own axis, its child re-expressed
    (:func:`~medpose.kinematics.fit.starts.branch_moves`), that changes a DoF it holds on a
    limit, the moved pose clamped into the limits; the best restart that holds none of the
    move's DoFs on a limit and reads the joint's middle angle within :data:`MIDDLE_MAX_DEG`
    is kept where its RMS is below :data:`LIMIT_GAIN` times the
    frame's.  ``st``: the problem on the device
    (:func:`~medpose.kinematics.fit.device.setup`), ``pri`` its priors; ``skip`` (T,) bool:
    frames left as they are (through this on the same problem at their present pose)."""
    ctx, lo, hi, n_var, dev = st.ctx, st.lo, st.hi, st.n_var, q.device
    # per ball joint its twin, half turn and both (branch_moves' order): not the twin alone, the
    # same rotation re-expressed, whose only gain can be the other reading's box of limits
    half = [(m, int(st.moves[i - i % 3][0][1])) for i, m in enumerate(st.moves) if i % 3]
    if not half:
        return q, x, conv
    cols = torch.zeros(len(half), q.shape[1], dtype=torch.bool, device=dev)  # each move's DoFs
    for k, (move, _) in enumerate(half):
        cols[k, torch.as_tensor(move[0], device=dev)] = True
    middle = torch.tensor([m for _, m in half], device=dev)  # each joint's middle angle
    at = _on_limit(q, lo, hi)
    if skip is not None:
        at = at & ~skip[:, None]
    frames, starts, which = [], [], []
    for k, (move, _) in enumerate(half):
        idx = torch.nonzero((at & cols[k]).any(dim=1))[:, 0]
        if idx.numel():
            moved, _ = apply_move(q[idx], move, lo, hi)
            frames.append(idx)
            starts.append(torch.minimum(torch.maximum(moved, lo), hi))
            which.append(torch.full_like(idx, k))
    if not frames:
        return q, x, conv
    idx, move_of = torch.cat(frames), torch.cat(which)
    qn, xn, cn = solve(
        ctx, torch.cat(starts), x_obs[idx], w[idx], lo, hi, pri, max_iter=max_iter, xtol=xtol
    )
    rn = frame_rms(xn, x_obs[idx], w[idx], n_var)
    # a restart that holds one of the move's DoFs on a limit again has not left the limits: a
    # synthetic Kinect arm extended 45 deg, its elbow on the limit, was read as flexion 137 with
    # abduction on its 180 limit and the humerus turned past its rotation limit
    again = (_on_limit(qn, lo, hi) & cols[move_of]).any(dim=1)
    # nor one that reads the joint's middle angle within 30 deg of a half turn: the twin of a
    # reading near 0 (that arm read as flexion 136 with abduction 179.6)
    twin = qn.gather(1, middle[move_of][:, None])[:, 0].abs() > MIDDLE_MAX_DEG
    rn = torch.where(again | twin, float("inf"), rn)
    # each frame's best restart (the first of equal bests), kept where it gains enough
    best = torch.full((q.shape[0],), float("inf"), device=dev, dtype=rn.dtype)
    best = best.scatter_reduce(0, idx, rn, "amin")
    at_best = torch.nonzero(rn == best[idx])[:, 0]
    none = idx.numel()
    pick = torch.full((q.shape[0],), none, device=dev, dtype=at_best.dtype)
    pick = pick.scatter_reduce(0, idx[at_best], at_best, "amin")
    pick = pick[pick < none]
    pick = pick[rn[pick] < LIMIT_GAIN * frame_rms(x, x_obs, w, n_var)[idx[pick]]]
    return put(q, x, conv, idx[pick], qn[pick], xn[pick], cn[pick])


def _on_limit(q: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Where each DoF of ``q`` (T, D) sits on its lower or upper limit (within 1e-3 deg)."""
    return ((q - lo).abs() <= 1e-3) | ((q - hi).abs() <= 1e-3)
