"""Frames with keypoints missing: held near the poses on either side of the gap.

A keypoint a detector loses for a while (an occluded elbow) leaves a direction of the pose
that the other keypoints do not see: with the shoulder and the elbow gone, the wrist alone
leaves the upper arm free to turn about the shoulder-wrist line.  Frame by frame the posture
prior then decides it, and reads the arm near neutral; with temporal smoothness
(``smoothness``) the neighbours should decide it, but its sweeps carry a gap's ends inwards a
frame at a time, too slowly for a gap of half a second.  :func:`bridge_gaps` solves such
frames again held near the linear interpolation of the poses of the nearest frames before
and after that observed the missing keypoints (the weak temporal prior of
:func:`~medpose.kinematics.fit.starts.drop_outliers`), so that what the gap hides follows
the movement across it, while what the other keypoints see is still fitted to them.
"""

from __future__ import annotations

import torch

from .solver import Priors
from .starts import drop_outliers, put, solve_held

__all__ = ["gap_anchors", "bridge_gaps", "mend_points", "BRANCH_JUMP_DEG", "MAX_GAP_S"]

#: The longest gap bridged, seconds: a keypoint lost for longer tells nothing of the movement
#: in between (a repetition's peak can come and go), and its frames are left to the posture
#: prior; at a recording's start or end, frames up to half this from the first or last frame
#: that sees the keypoint.
MAX_GAP_S = 1.0

#: A rotation that differs by more than this (degrees) between a gap's ends puts them on two
#: Euler branches (whose angles differ by half a turn), where a linear bridge would pass through
#: neither: the gap then holds the nearer end's pose.  A limb's real movement across a gap of a
#: second is less (an elbow's whole range is 150 degrees).
BRANCH_JUMP_DEG = 150.0


def gap_anchors(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames in a gap and the frames that bracket it, from keypoint weights ``w`` (T, K).

    A frame is in a gap where a keypoint observed somewhere in the batch (weight > 0) is not.
    Returns the gap frames ``idx`` (G,) and, per gap frame, the nearest frame before (G,) and
    after (G,) in which each of its missing keypoints had been observed (-1: none before,
    T: none after).
    """
    T = w.shape[0]
    obs = w > 0
    missing = ~obs & obs.any(dim=0, keepdim=True)
    idx = torch.nonzero(missing.any(dim=1))[:, 0]
    if idx.numel() == 0:
        return idx, idx, idx
    ar = torch.arange(T, device=w.device)[:, None].expand_as(obs)
    prev = torch.cummax(torch.where(obs, ar, -1), dim=0).values  # last seen at or before t
    nxt = torch.cummin(torch.where(obs, ar, T).flip(0), dim=0).values.flip(0)  # first at or after
    m = missing[idx]
    big = torch.full_like(prev[idx], T)
    before = torch.where(m, prev[idx], big).amin(dim=1)  # seen by then: every missing keypoint
    after = torch.where(m, nxt[idx], -torch.ones_like(big)).amax(dim=1)
    return idx, before, after


def bridge_gaps(
    ctx,
    q,
    x,
    conv,
    x_obs,
    w,
    lo,
    hi,
    pri: Priors,
    xtol: float,
    max_iter: int,
    rot: torch.Tensor,
    max_gap: int,
):
    """Frames with missing keypoints (:func:`gap_anchors`) solved again from, and held near
    (:data:`~medpose.kinematics.fit.starts.OUTLIER_HOLD`), the interpolation of the poses at the
    gap's ends; at a recording's start or end, the pose of the one end there is.  A gap longer
    than ``max_gap`` frames (at a start or end: frames further than half that from the end
    there is) and one that no frame of the batch brackets (a keypoint never seen) are left as
    they are.  Frames are in time order; ``rot`` (D,): the rotational DoFs.  Returns q, x,
    conv."""
    T = q.shape[0]
    idx, before, after = gap_anchors(w)
    two = (before >= 0) & (after < T)
    near = torch.where(before >= 0, idx - before, after - idx)  # to the one end there is
    one = (before >= 0) | (after < T)
    ok = torch.where(two, after - before - 1 <= max_gap, one & (near <= max_gap // 2))
    idx, before, after = idx[ok], before[ok], after[ok]
    if idx.numel() == 0:
        return q, x, conv
    b = torch.where(before >= 0, before, after)
    a = torch.where(after < T, after, before)
    span = (a - b).to(q.dtype)
    f = torch.where(span > 0, (idx - b).to(q.dtype) / span.clamp(min=1.0), 0.0)[:, None]
    qb, qa = q[b], q[a]
    target = qb + f * (qa - qb)
    # the ends on two Euler branches of a joint (a rotation half a turn apart): the nearer end
    flip = (((qa - qb).abs() > BRANCH_JUMP_DEG) & rot).any(dim=1, keepdim=True)
    target = torch.where(flip, torch.where(f > 0.5, qa, qb), target)
    qn, xn, cn = solve_held(ctx, target, x_obs[idx], w[idx], lo, hi, pri, xtol, max_iter)
    return put(q, x, conv, idx, qn, xn, cn)


def mend_points(
    ctx, q, x, conv, x_obs, w, lo, hi, pri: Priors, xtol: float, max_iter: int, rot, max_gap=0
):
    """A batch's last mending of keypoints: gross outliers dropped
    (:func:`~medpose.kinematics.fit.starts.drop_outliers`), then gaps of up to ``max_gap``
    frames bridged (:func:`bridge_gaps`; 0: none).  Returns q, x, conv."""
    q, x, conv = drop_outliers(ctx, q, x, conv, x_obs, w, lo, hi, pri, xtol, max_iter)
    if max_gap <= 0:
        return q, x, conv
    return bridge_gaps(ctx, q, x, conv, x_obs, w, lo, hi, pri, xtol, max_iter, rot, max_gap)
