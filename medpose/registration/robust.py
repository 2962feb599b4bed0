"""Outlier fiducials: least median of squares over minimal subsets, then leave-one-out tests.

References
----------
.. [Fischler1981] M. A. Fischler, R. C. Bolles, "Random sample consensus", Commun. ACM
   24(6):381-395, 1981.
.. [Rousseeuw1984] P. J. Rousseeuw, "Least median of squares regression", J. Am. Stat. Assoc.
   79(388):871-880, 1984.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from ..errors import DegenerateConfiguration
from .checks import spread_ratio
from .solve import apply_similarity, combined_covariance, procrustes_batch, solve_paired
from .tre import tre_covariance_batch

__all__ = ["robust_inliers"]


def robust_inliers(
    f: np.ndarray,
    m: np.ndarray,
    w: np.ndarray | None,
    scale: bool,
    cf: np.ndarray | None,
    cm: np.ndarray | None,
    p_false: float,
    min_spread_ratio: float,
    max_hypotheses: int = 5000,
) -> np.ndarray:
    """The fiducials consistent with each other, a bool mask (N,).

    1. Least median of squares [Rousseeuw1984]_ over every minimal 3-subset (at most
       ``max_hypotheses`` of them, drawn with a fixed seed; RANSAC-style hypotheses
       [Fischler1981]_) gives a clean core of ``max(4, N // 2 + 1)`` points.
    2. Every fiducial is tested against a fit made without it by its externally studentised
       prediction residual ``d^2 = e^T (C_e + C_TRE)^{-1} e``: chi-square with 3 degrees of
       freedom when the FLE is known (``cf``/``cm``), ``3 F(3, 3m - p)`` when it is estimated
       from the residuals, at false-alarm rate ``p_false``.  The set is refined until it no
       longer changes (or cycles).

    Parameters
    ----------
    f, m : ndarray, shape (N, 3)
        Fixed and moving fiducials, paired by row (mm).
    w : ndarray, shape (N,), or None
        Per-fiducial weights.
    scale : bool
        Similarity instead of rigid.
    cf, cm : ndarray, shape (N, 3, 3), or None
        FLE covariances of the fixed and moving sides (mm^2).
    p_false : float
        False-alarm probability per fiducial.
    min_spread_ratio : float
        Conditioning threshold for the minimal subsets.

    Raises
    ------
    DegenerateConfiguration
        Fewer than 4 fiducials, no non-collinear triple, or fewer than 3 consistent fiducials.
    """
    n = f.shape[0]
    if n < 4:
        raise DegenerateConfiguration(
            f"register(robust=True): {n} fiducials; finding an outlier needs at least 4"
        )
    # 1. least median of squares over minimal subsets
    subsets = np.array(list(itertools.combinations(range(n), 3)))
    if len(subsets) > max_hypotheses:
        rng = np.random.default_rng(0)
        subsets = subsets[rng.choice(len(subsets), max_hypotheses, replace=False)]
    ok = (spread_ratio(m[subsets]) >= min_spread_ratio) & (
        spread_ratio(f[subsets]) >= min_spread_ratio
    )
    subsets = subsets[ok]
    if len(subsets) == 0:
        raise DegenerateConfiguration("register(robust=True): no 3 fiducials are non-collinear")
    hyp = procrustes_batch(f[subsets], m[subsets], None, scale)
    mapped = apply_similarity(
        hyp["R"], hyp["t"], hyp["s"], np.broadcast_to(m, (len(subsets), n, 3))
    )
    res2 = ((f[None] - mapped) ** 2).sum(-1)
    best = int(np.argmin(np.median(res2, axis=1)))
    inl = np.zeros(n, dtype=bool)  # the h best-fitting points, h = max(4, n // 2 + 1)
    inl[np.argsort(res2[best], kind="stable")[: max(4, n // 2 + 1)]] = True
    extent2 = float(((m - m.mean(0)) ** 2).sum(1).mean())
    # 2. refine by externally studentised leave-one-out prediction residuals
    p = 7 if scale else 6
    known = cf is not None or cm is not None
    seen: list[bytes] = []
    for _ in range(2 * n):
        masks = np.broadcast_to(inl, (n, n)).copy()
        masks[np.arange(n), np.arange(n)] &= False  # fit i leaves point i out
        size = masks.sum(1)
        if size.min() < 3:
            raise DegenerateConfiguration(
                f"register(robust=True): only {int(inl.sum())} fiducials agree with each "
                "other; at least 3 consistent fiducials are needed"
            )
        wmask = masks * (1.0 if w is None else w)
        fb, mb = np.broadcast_to(f, (n, n, 3)), np.broadcast_to(m, (n, n, 3))
        out = solve_paired(fb, mb, wmask, scale, cf, cm)
        wm = out["W"] * masks[..., None, None]
        a = apply_similarity(out["R"], out["t"], out["s"], mb)
        resid = f[None] - a  # (fit, point, 3)
        if known:
            noise = combined_covariance(
                None if cf is None else cf[None],
                None if cm is None else cm[None],
                out["R"],
                out["s"],
            )
            noise = np.broadcast_to(noise, (n, n, 3, 3))
            thr = np.full(n, stats.chi2.ppf(1 - p_false, 3))
        else:
            wt = np.trace(wm, axis1=2, axis2=3) / 3.0  # scalar weights of each fit
            dof = 3 * size - p
            # per-axis variance at unit weight, floored at rounding level for exact data
            sigma2 = (wt * (resid**2).sum(-1)).sum(1) / np.maximum(dof, 1)
            sigma2 = np.maximum(sigma2, 1e-24 * extent2)
            inv_w = np.ones(n) if w is None else 1.0 / np.where(w > 0, w, 1.0)
            noise = (sigma2[:, None] * inv_w[None, :])[..., None, None] * np.eye(3)
            thr = 3.0 * stats.f.ppf(1 - p_false, 3, np.maximum(dof, 1))
            thr = np.where(dof >= 1, thr, np.inf)
        idx = np.arange(n)
        e = resid[idx, idx]  # prediction residual of i from fit i
        c_tre = tre_covariance_batch(a, wm, noise, a[idx, idx][:, None, :], scale)[:, 0]
        c_e = noise[idx, idx] + c_tre
        d2 = np.einsum("bi,bij,bj->b", e, np.linalg.inv(c_e), e)
        new = d2 <= thr
        if w is not None:
            new &= w > 0
        if new.sum() < 3:
            raise DegenerateConfiguration(
                f"register(robust=True): only {int(new.sum())} fiducials agree with each "
                "other; at least 3 consistent fiducials are needed"
            )
        if np.array_equal(new, inl) or new.tobytes() in seen or new.sum() == 3:
            inl = new
            break
        seen.append(inl.tobytes())
        inl = new
    return inl
