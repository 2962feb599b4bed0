"""Frames that fit clearly worse than the frames around them, and their restart.

:func:`~medpose.kinematics.fit.starts.repair` restarts a frame whose residual is above what
the keypoint noise explains (``3 sigma + 0.5`` mm).  Where the noise is large that misses a
frame on a worse solution than its neighbours': on Kinect v2 shoulder abductions (UI-PRMD m07,
noise about 22 mm) runs of one to six frames near the top settled with the arm 13-23 degrees
below the keypoints' elevation at an RMS 20-50 % above the frames around them, where a start
from the last frame before the run fits them 20-25 % better.  :func:`off_neighbours` flags
such frames and :func:`restart_odd` solves them once from that frame, keeping a restart only
where it lowers the frame's RMS by :data:`GAIN` (a restart that merely fits as well, another
reading of an equally noisy frame, is not taken).
"""

from __future__ import annotations

import torch

from .context import Context
from .solver import Priors, solve

__all__ = ["off_neighbours", "restart_odd", "frame_rms", "put", "keypoint_median", "MEDIAN_FRAMES"]

#: A frame is flagged where its RMS exceeds this factor times the median over the frames
#: within :data:`HALF` of it (itself included), or over all frames where that is lower, plus
#: :data:`FLOOR_MM`.
FACTOR = 1.15
FLOOR_MM = 0.5
HALF = 3
#: A restart of a flagged frame is kept where it lowers the frame's RMS below this fraction.
GAIN = 0.9
#: Iterations of a restart (its start, a neighbour's pose, is near: a restart that needs more
#: does not gain enough).
ITERATIONS = 10


#: The medians over a batch's frames that set the thresholds of
#: :func:`~medpose.kinematics.fit.starts.off_alone`, :func:`~medpose.kinematics.fit.starts.outliers`
#: and :func:`off_neighbours` are taken over at most this many evenly spaced frames (a
#: million-frame GPU batch's sort took 5 ms a call; the median of 65,536 frames is within a few
#: percent of it).
MEDIAN_FRAMES = 1 << 16


def keypoint_median(d: torch.Tensor) -> torch.Tensor:
    """Per keypoint median (K,) of residuals ``d`` (T, K) over the frames, NaN ignored (over at
    most :data:`MEDIAN_FRAMES` evenly spaced ones)."""
    step = -(-d.shape[0] // MEDIAN_FRAMES)
    return torch.nanmedian(d[::step], dim=0).values


def put(q, x, conv, idx, qn, xn, cn):
    """Copies of a batch's q, fitted keypoints and convergence with frames ``idx`` replaced by
    ``qn``, ``xn``, ``cn`` (the batch given is left as it is)."""
    q, x, conv = q.clone(), x.clone(), conv.clone()
    q[idx], x[idx], conv[idx] = qn, xn, cn
    return q, x, conv


def frame_rms(x: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor, n_var: int) -> torch.Tensor:
    """Per frame sqrt(weighted squared residual / degrees of freedom), mm per axis."""
    dof = (3 * (w > 0).sum(dim=1) - n_var).clamp(min=1).to(x.dtype)
    return torch.sqrt((w * ((x - x_obs) ** 2).sum(dim=2)).sum(dim=1) / dof)


def off_neighbours(rms: torch.Tensor) -> torch.Tensor:
    """Frames (T,) whose RMS ``rms`` (T,) exceeds :data:`FACTOR` times the median of their
    neighbourhood, or of all the frames (:func:`keypoint_median`) where that is lower (a run
    of several stuck frames raises its own neighbourhood's), plus :data:`FLOOR_MM`; False where the RMS is NaN or there
    are under 3 frames."""
    if rms.shape[0] < 3:
        return torch.zeros_like(rms, dtype=torch.bool)
    padded = torch.nn.functional.pad(rms[None, None], (HALF, HALF), mode="replicate")[0, 0]
    local = torch.nanmedian(padded.unfold(0, 2 * HALF + 1, 1), dim=1).values
    level = torch.minimum(local, keypoint_median(rms[:, None])[0])
    return rms > FACTOR * level + FLOOR_MM


def restart_odd(
    ctx: Context,
    q: torch.Tensor,
    x: torch.Tensor,
    conv: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: Priors,
    n_var: int,
    xtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frames :func:`off_neighbours` flags (frames in time order), each solved once from
    the last unflagged frame before it (the first after it at the start), kept where that
    lowers its RMS below :data:`GAIN` times its own."""
    rms = frame_rms(x, x_obs, w, n_var)
    odd = off_neighbours(rms)
    if not bool(odd.any()) or bool(odd.all()):
        return q, x, conv
    n = q.shape[0]
    frames = torch.arange(n, device=q.device)
    before = torch.cummax(torch.where(odd, -1, frames), dim=0).values
    after = torch.flip(
        torch.cummin(torch.flip(torch.where(odd, n, frames), (0,)), dim=0).values, (0,)
    )
    idx = torch.nonzero(odd)[:, 0]
    src = torch.where(before[idx] >= 0, before[idx], after[idx])
    qn, xn, cn = solve(
        ctx, q[src], x_obs[idx], w[idx], lo, hi, pri, max_iter=min(max_iter, ITERATIONS), xtol=xtol
    )
    better = frame_rms(xn, x_obs[idx], w[idx], n_var) < GAIN * rms[idx]
    return put(q, x, conv, idx[better], qn[better], xn[better], cn[better])
