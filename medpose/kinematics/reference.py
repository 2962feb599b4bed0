"""Reference solver for the constrained fit: scipy's bounded least squares, one frame at a time.

Solves exactly the problem of :func:`medpose.kinematics.fit.fit` without the temporal term —
confidence-weighted keypoint residuals plus the optional soft prior near the limits and the
posture prior toward neutral (weight ``noise_mm / sd``), inside the hard limits —
with :func:`scipy.optimize.least_squares` (trust-region reflective, ``bounds=``; Branch,
Coleman & Li 1999, SIAM J Sci Comput 21:1-23) and a finite-difference Jacobian, so it shares
nothing with the torch solver but the forward kinematics.  Slow (a Python loop over frames):
meant for tests and spot checks.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from ..data import KeypointSequence
from .fit import NOISE_FLOOR_MM, FitProblem
from .fk import forward_kinematics

__all__ = ["fit_reference"]


def fit_reference(
    problem: FitProblem,
    sequence: KeypointSequence,
    q0: np.ndarray,
    *,
    frames: np.ndarray | None = None,
    tol: float = 1e-12,
    noise_mm: float | None = None,
) -> np.ndarray:
    """Fit frame by frame with ``scipy.optimize.least_squares(bounds=...)``.

    Parameters
    ----------
    problem : FitProblem
        From :func:`medpose.kinematics.fit.prepare` (skeleton, keypoints, limits, alignment).
    sequence : KeypointSequence
        The same sequence given to :func:`~medpose.kinematics.fit.fit`.
    q0 : numpy.ndarray, shape (T, D)
        Start of each frame (degrees, mm), e.g. the torch fit's result or a perturbation of it.
    frames : numpy.ndarray of int, optional
        Which frames to solve (default all).
    tol : float
        ``ftol``, ``xtol`` and ``gtol`` of least_squares.
    noise_mm : float, optional
        Keypoint noise that weighs the posture prior (``Fit.noise_mm`` of the fit to compare
        with); default :data:`~medpose.kinematics.fit.NOISE_FLOOR_MM`.

    Returns
    -------
    numpy.ndarray, shape (len(frames), D)
        DoF values; DoFs that no keypoint constrains are held at ``q0``.
    """
    sk = problem.skeleton
    frames = np.arange(sequence.n_frames) if frames is None else np.asarray(frames)
    P = sequence.positions[:, problem.seq_index] @ problem.alignment.T
    C = sequence.confidence[:, problem.seq_index]
    kp = [sk.keypoint_names[i] for i in problem.kp_index]
    free = np.flatnonzero(problem.observable)
    lo, hi = problem.lower[free], problem.upper[free]
    lo = np.where(lo == hi, lo - 1e-9, lo)
    margin, weight = problem.limits.soft_margin_deg, problem.limits.soft_weight
    sig = (
        max(float(noise_mm), NOISE_FLOOR_MM)
        if noise_mm is not None and np.isfinite(noise_mm)
        else NOISE_FLOOR_MM
    )
    tik = sig * problem.inv_sd[free]  # mm per degree; 0 where sd = inf
    mu = problem.prior_mean[free]
    row = sig * problem.rhythm[free]  # the lumbopelvic term (zeros: none)
    out = np.array(q0, dtype=float)[frames].copy()
    for n, t in enumerate(frames):
        ok = np.isfinite(P[t]).all(axis=1) & (C[t] >= problem.min_confidence)
        sw = np.sqrt(np.where(ok, C[t], 0.0))[:, None]
        x = np.where(ok[:, None], P[t], 0.0)
        base = out[n].copy()

        def residual(
            z: np.ndarray, base: np.ndarray = base, sw: np.ndarray = sw, x: np.ndarray = x
        ) -> np.ndarray:
            q = base.copy()
            q[free] = z
            r = (sw * (forward_kinematics(sk, q[None], keypoints=kp)[0] - x)).ravel()
            if weight > 0 and margin > 0:
                soft = weight * (
                    np.maximum(z - (hi - margin), 0) - np.maximum((lo + margin) - z, 0)
                )
                r = np.concatenate([r, soft])
            return np.concatenate([r, tik * (z - mu), [row @ (z - mu)]])

        z0 = np.clip(base[free], lo, hi)
        sol = least_squares(
            residual, z0, bounds=(lo, hi), method="trf", ftol=tol, xtol=tol, gtol=tol, x_scale=1.0
        )
        out[n, free] = sol.x
    return out
