"""The subject's step in a calibration round (:func:`~medpose.kinematics.calibrate.calibrate`):
its normal equations with every frame's pose eliminated, and the step they give within the
plausible range."""

from __future__ import annotations

import numpy as np
import torch

from .fit.context import Context
from .skeleton import Skeleton

__all__ = ["box_step", "reduced_system"]

#: In the reduced system each pose DoF is damped as if its prior were at most this wide
#: (degrees): a trust region on how far the linearised poses may follow a step.
_POSE_STEP_DEG = 10.0


def box_step(
    H: np.ndarray, g: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The step ``d`` minimising the quadratic model ``-g.d + d.H.d / 2`` with ``lo <= x + d <=
    hi`` (``x`` within them): an active set, a parameter the step would carry past its bound held
    there and the others solved again given it, until none crosses and none held is pulled back
    inside (Nocedal and Wright 2006, *Numerical Optimization*, sec. 16.5).  Clipping the
    unconstrained step instead moves the parameters coupled to a clipped one as if it had gone
    all the way: steps that made the fit worse, rejected round after round."""
    n = x.size
    held = np.zeros(n, dtype=bool)
    at = np.zeros(n)  # the held parameters' step, to their bound
    d = np.zeros(n)
    for _ in range(2 * n + 1):
        free = ~held
        d = at.copy()
        if free.any():
            rhs = g[free] - H[np.ix_(free, held)] @ at[held]
            d[free] = np.linalg.solve(H[np.ix_(free, free)], rhs)
        new = x + d
        over = free & ((new < lo) | (new > hi))
        if over.any():  # the ones furthest past their bound first
            past = np.maximum(lo - new, new - hi) / np.maximum(np.abs(d), 1e-12)
            i = np.flatnonzero(over)[np.argmax(past[over])]
            held[i] = True
            at[i] = (lo[i] if new[i] < lo[i] else hi[i]) - x[i]
            continue
        pull = g - H @ d  # minus the model's gradient: where each held parameter wants to go
        back = held & (((x + at <= lo) & (pull > 0)) | ((x + at >= hi) & (pull < 0)))
        if not back.any():
            break
        held[back], at[back] = False, 0.0
    return np.clip(x + d, lo, hi) - x


def reduced_system(
    sk: Skeleton,
    f,
    q: np.ndarray,
    kp: np.ndarray,
    B: np.ndarray,
    r: np.ndarray,
    sw: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The subject parameters' normal equations with every frame's pose eliminated (the Schur
    complement of bundle adjustment, Triggs et al. 2000, "Bundle adjustment - a modern
    synthesis", sec. 6.1): a step of the parameters then accounts for how the poses follow it,
    so the alternation with the fit converges in a few rounds where holding the poses fixed
    moves parameters that the poses can absorb (a carrying angle against pronation and
    shoulder rotation) by a fraction of the way per round.  Pose DoFs held on a limit in a frame
    do not move; the fit's posture prior damps the ones the keypoints barely see.
    ``B`` (T, 3K, P) and ``r`` (T, 3K) are whitened."""
    ctx = Context(sk, kp, torch.device("cpu"), torch.float64, free=f.observable)
    _, _, _, Jq = ctx.evaluate(torch.as_tensor(q), jacobian=True)
    cols = ctx.var_dofs.numpy()
    A = (Jq.numpy() * sw[..., None]).reshape(q.shape[0], -1, len(cols))  # (T, 3K, F)
    held = f.limit_active[f.valid][:, cols] if f.limit_active is not None else None
    if held is not None:
        A = A * ~held[:, None, :]
    psd = f.prior_sd[cols] if f.prior_sd is not None else np.full(len(cols), np.inf)
    psd = np.minimum(psd, _POSE_STEP_DEG)
    damp = np.where(np.isfinite(psd) & sk.rotational[cols], 1.0 / np.square(psd), 0.0)
    At = A.transpose(0, 2, 1)
    Hqq = At @ A + np.diag(damp + 1e-9)[None]
    Hqp = At @ B
    gq = (At @ r[..., None])[..., 0]
    sol = np.linalg.solve(Hqq, np.concatenate([Hqp, gq[..., None]], axis=2))
    Bf, Hf = B.reshape(-1, B.shape[-1]), Hqp.reshape(-1, Hqp.shape[-1])
    H = Bf.T @ Bf - Hf.T @ sol[..., :-1].reshape(Hf.shape[0], -1)
    g = Bf.T @ r.reshape(-1) - Hf.T @ sol[..., -1].reshape(-1)
    return 0.5 * (H + H.T), g
