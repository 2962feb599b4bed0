"""The fit's pilot: the keypoint noise measured on a few frames before the fit proper; it sets
the posture prior's weight (:func:`~medpose.kinematics.fit.device.Setup.priors`)."""

from __future__ import annotations

import numpy as np
import torch

from .device import Setup, load, rigid_start
from .problem import NOISE_FLOOR_MM
from .solver import solve

__all__ = ["measure_noise"]

#: Iterations of a pilot started from a previous fit's poses (``start``).  Its frames are near
#: their solution, and what the solver still does after this many is creep along directions the
#: keypoints barely see, which does not move the residual: in the calibrations of the eight
#: OpenSim trials of ``benchmarks/calibration.py`` (both keypoint models) the noise read within
#: 0.4 % of the uncut pilot's, in three quarters of its time.
WARM_ITER = 30


def measure_noise(
    st: Setup,
    pos: np.ndarray,
    conf: np.ndarray,
    *,
    max_iter: int,
    xtol: float,
    start: np.ndarray | torch.Tensor | None = None,
    first: Setup | None = None,
) -> tuple[float, float]:
    """Keypoint noise (mm per axis) on up to 64 frames spread over the recording, solved from
    their rigid start to the fit's own ``max_iter`` (or from ``start``, (T, D) skeleton axes,
    where it is finite: a previous fit's poses, for at most :data:`WARM_ITER` iterations): the
    median over frames of sqrt(weighted squared residual / degrees of freedom); NaN when no
    frame can be fitted.  ``first``: a lengths-only problem on the same keypoints and DoFs (a
    calibrated fit's, see :func:`solve_frames`) whose solve from the rigid starts precedes this
    one's; its own noise is the second value returned (NaN without ``first``): it weighs the
    posture prior of the solves on it.  (Cut short, a solve from the arms-down start leaves arms
    held overhead far from their keypoints: noise-free keypoints of a deep squat read as 33 mm,
    a posture prior 300 times too strong.)"""
    T = pos.shape[0]
    sel = np.unique(np.linspace(0, T - 1, min(T, 64)).round().astype(int))
    xp, wp, qp, okp = load(st, pos, conf, sel)
    q1 = None
    if start is None and first is not None:
        q1, ok1 = rigid_start(first, xp, wp)
        okp = okp & ok1
    if start is not None:
        qs = torch.as_tensor(start[sel], device=st.dev, dtype=st.dt)  # the pilot's rows only
        qs = torch.where(st.free[None], qs, st.neutral[None])
        qp = torch.where(torch.isfinite(qs).all(dim=1, keepdim=True), qs, qp)
    if not bool(okp.any()):
        return float("nan"), float("nan")
    xp, wp, qp = xp[okp], wp[okp], qp[okp]
    cp = qp[:, st.trans].mean(dim=0)
    qp[:, st.trans] -= cp
    dof = (3 * (wp > 0).sum(dim=1) - st.n_var).clamp(min=1).to(st.dt)

    def noise(xs: torch.Tensor) -> float:
        return float(
            torch.nanmedian(torch.sqrt((wp * ((xs - (xp - cp)) ** 2).sum(dim=2)).sum(dim=1) / dof))
        )

    noise_first = float("nan")
    if q1 is not None and first is not None:
        q1 = q1[okp]
        q1[:, first.trans] -= cp
        qp, x1, _ = solve(
            first.ctx,
            q1,
            xp - cp,
            wp,
            first.lo,
            first.hi,
            first.priors(NOISE_FLOOR_MM),
            max_iter=max_iter,
            xtol=xtol,
            lam0=1e-3,
        )
        noise_first = noise(x1)
    pri0 = st.priors(NOISE_FLOOR_MM)
    _, xs, _ = solve(
        st.ctx,
        qp,
        xp - cp,
        wp,
        st.lo,
        st.hi,
        pri0,
        max_iter=max_iter if start is None else min(max_iter, WARM_ITER),
        xtol=xtol,
        lam0=1e-3,
    )
    return noise(xs), noise_first
