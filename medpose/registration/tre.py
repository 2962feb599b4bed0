"""Target registration error (TRE): Fitzpatrick's closed form, first-order covariance
propagation through any weighted estimator, and Monte-Carlo simulation.

References
----------
.. [Fitzpatrick1998] J. M. Fitzpatrick, J. B. West, C. R. Maurer Jr., "Predicting error in
   rigid-body point-based registration", IEEE TMI 17(5):694-702, 1998.
.. [Danilchenko2011] A. Danilchenko, J. M. Fitzpatrick, "General approach to first-order error
   prediction in rigid point registration", IEEE TMI 30(3):679-693, 2011.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..geometry import Transform
from .batch import register_batch
from .checks import check_coordinates
from .fle import fle_covariances
from .solve import jacobian

__all__ = ["tre_covariance_batch", "tre_fitzpatrick", "simulate_tre"]


def tre_covariance_batch(
    mapped_fiducials: np.ndarray,
    weight_matrices: np.ndarray,
    noise: np.ndarray,
    mapped_targets: np.ndarray,
    scale: bool,
) -> np.ndarray:
    """First-order covariance of the target registration error, shape (B, M, 3, 3), fixed frame.

    Linearising the weighted least-squares normal equations at the solution, a perturbation
    ``e_i`` of the residuals moves the parameters by ``M^{-1} sum_i J_i^T W_i e_i`` with
    ``M = sum_i J_i^T W_i J_i``; so ``Cov(theta) = M^{-1} (sum_i J_i^T W_i C_i W_i J_i) M^{-1}``
    and the error at a target is ``J_r theta`` [Danilchenko2011]_ (their eqs. for a general
    weighted estimator).  With ``W_i = C_i^{-1}`` this is ``M^{-1}``; with equal isotropic
    ``C_i`` and ``W_i`` it equals [Fitzpatrick1998]_ eq. 46.

    Parameters
    ----------
    mapped_fiducials : (B, N, 3) fiducials mapped into the fixed frame, ``T(x_i)``.
    weight_matrices : (B, N, 3, 3) the estimator's weight matrices (zero for unused points).
    noise : (B, N, 3, 3) covariance of ``y_i - T(x_i)`` (fixed frame).
    mapped_targets : (B, M, 3) targets mapped into the fixed frame.
    scale : whether the estimator fitted a scale.
    """
    used = np.abs(weight_matrices).sum(axis=(-1, -2)) > 0
    cnt = used.sum(axis=1, keepdims=True)
    centre = (mapped_fiducials * used[..., None]).sum(axis=1) / cnt
    jac = jacobian(mapped_fiducials, centre, scale)
    jw = jac.transpose(0, 1, 3, 2) @ weight_matrices
    m = (jw @ jac).sum(axis=1)
    meat = (jw @ noise @ jw.transpose(0, 1, 3, 2)).sum(axis=1)
    minv = np.linalg.inv(m)
    cov = minv @ meat @ minv
    jt = jacobian(mapped_targets, centre, scale)
    return jt @ cov[:, None] @ jt.transpose(0, 1, 3, 2)


def tre_fitzpatrick(fiducials: Any, targets: Any, fle: float) -> np.ndarray:
    """RMS target registration error predicted by Fitzpatrick, West & Maurer (1998), eq. 46.

    ``<TRE^2(r)> = <FLE^2>/N (1 + 1/3 sum_k d_k^2 / f_k^2)``, where ``d_k`` is the distance of
    the target from the k-th principal axis of the fiducial configuration (through its
    centroid) and ``f_k`` the RMS distance of the fiducials from that axis.  It assumes a rigid,
    unweighted least-squares registration and isotropic, equal, independent FLE; it is
    independent of where the coordinate origin lies.

    Parameters
    ----------
    fiducials : array_like, shape (N, 3)
        Fiducial positions (mm) in the frame the targets are given in.
    targets : array_like, shape (M, 3)
        Target positions (mm).
    fle : float
        RMS fiducial localisation error (3D magnitude, mm), Fitzpatrick's ``sqrt(<FLE^2>)``.

    Returns
    -------
    ndarray, shape (M,)
        RMS TRE (mm) at each target.
    """
    x = np.asarray(fiducials, dtype=float)
    r = np.atleast_2d(np.asarray(targets, dtype=float))
    n = x.shape[0]
    c = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - c, full_matrices=False)
    lam = sv**2 / n  # mean squared coordinate along axis k
    f2 = lam.sum() - lam  # RMS^2 distance from axis k
    proj2 = ((r - c) @ vt.T) ** 2  # (M, 3)
    d2 = proj2.sum(axis=1, keepdims=True) - proj2  # squared distance from axis k
    return np.asarray(np.sqrt(fle**2 / n * (1.0 + (d2 / f2).sum(axis=1) / 3.0)))


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    """A square root ``L`` with ``L L^T = cov`` for PSD covariances (N, 3, 3), singular ones included."""
    lam, vec = np.linalg.eigh(cov)
    return np.asarray(vec * np.sqrt(np.clip(lam, 0.0, None))[:, None, :])


def simulate_tre(
    fiducials: Any,
    targets: Any,
    fle: Any,
    trials: int = 10_000,
    *,
    scale: bool = False,
    weights: Any = None,
    weighted_by_fle: bool = True,
    transform: Transform | None = None,
    seed: int | np.random.Generator = 0,
    chunk: int = 20_000,
) -> np.ndarray:
    """Monte-Carlo RMS target registration error (mm) at each target.

    Each trial perturbs the true fiducials with zero-mean Gaussian FLE (fixed side in the fixed
    frame, moving side in the moving frame), registers them with
    :func:`~medpose.registration.register_batch` (the same estimator as
    :func:`~medpose.registration.register`: weighted by the FLE if ``weighted_by_fle``), and
    measures the distance between each mapped target and its true position.

    Parameters
    ----------
    fiducials : array_like, shape (N, 3)
        True fiducial positions in the moving frame (mm).
    targets : array_like, shape (M, 3) or (3,)
        True target positions in the moving frame (mm).
    fle : number, covariance or mapping
        As in :func:`~medpose.registration.register`.
    trials : int
        Number of Monte-Carlo trials.
    scale, weights : as in :func:`~medpose.registration.register`.
    weighted_by_fle : bool
        Whether the simulated registrations use ``fle`` as weights (as ``register(fle=...)``
        does) or plain least squares.
    transform : Transform, optional
        True moving -> fixed transform (identity by default; matters for anisotropic FLE given
        on both sides).
    seed : int or numpy.random.Generator
    chunk : int
        Trials per batch (memory).

    Returns
    -------
    ndarray, shape (M,)
        RMS TRE (mm); its own relative standard error is roughly ``1/sqrt(trials)``.

    Raises
    ------
    InputError
        Wrong shapes, NaN or implausibly large coordinates, ``trials < 1``, a bad FLE.
    """
    x = np.asarray(fiducials, dtype=float)
    tg = np.atleast_2d(np.asarray(targets, dtype=float))
    if x.ndim != 2 or x.shape[1] != 3 or tg.shape[-1] != 3:
        raise InputError(
            f"simulate_tre: fiducials must be (N, 3) and targets (M, 3), found {x.shape} and "
            f"{tg.shape}"
        )
    if int(trials) < 1:
        raise InputError(f"simulate_tre: trials must be >= 1, found {trials!r}")
    n = x.shape[0]
    check_coordinates(x, tuple(range(n)), "simulate_tre: fiducials")
    check_coordinates(tg, tuple(range(len(tg))), "simulate_tre: targets")
    cf, cm = fle_covariances(fle, n, "simulate_tre: fle")
    true = transform or Transform(source="moving", target="fixed")
    y = true.apply(x)
    ty = true.apply(tg)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lf = None if cf is None else _sqrtm(cf)
    lm = None if cm is None else _sqrtm(cm)
    # squared errors of every trial, summed once at the end: the result does not depend on chunk
    sq = np.empty((int(trials), len(tg)))
    done = 0
    while done < trials:
        b = min(chunk, trials - done)
        fy = np.broadcast_to(y, (b, n, 3)).copy()
        mx = np.broadcast_to(x, (b, n, 3)).copy()
        if lf is not None:
            fy += np.einsum("nij,bnj->bni", lf, rng.standard_normal((b, n, 3)))
        if lm is not None:
            mx += np.einsum("nij,bnj->bni", lm, rng.standard_normal((b, n, 3)))
        res = register_batch(
            fy, mx, scale=scale, weights=weights, fle=fle if weighted_by_fle else None, check=False
        )
        err = res.apply(tg) - ty[None]
        sq[done : done + b] = (err**2).sum(-1)
        done += b
    return np.sqrt(sq.mean(axis=0))
