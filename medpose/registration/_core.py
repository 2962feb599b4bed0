"""Batched maths of paired-point registration (internal to :mod:`medpose.registration`).

Everything here works on stacks of problems: fixed and moving point sets of shape
``(B, N, 3)``, weights ``(B, N)``, weight matrices ``(B, N, 3, 3)``.  The public functions
in :mod:`medpose.registration.paired` validate inputs and forward here.

Conventions: the transform maps moving to fixed, ``y = s R x + t``.  ``H = sum_i w_i p_i q_i^T``
with ``p`` the centred fixed and ``q`` the centred moving points; the least-squares rotation
maximises ``trace(R^T H)``.

References
----------
.. [Arun1987] K. S. Arun, T. S. Huang, S. D. Blostein, "Least-squares fitting of two 3-D point
   sets", IEEE TPAMI 9(5):698-700, 1987.
.. [Umeyama1991] S. Umeyama, "Least-squares estimation of transformation parameters between two
   point patterns", IEEE TPAMI 13(4):376-380, 1991 (reflection fix, eqs. 39-43; scale, eq. 42).
.. [Horn1988] B. K. P. Horn, H. M. Hilden, S. Negahdaripour, "Closed-form solution of absolute
   orientation using orthonormal matrices", J. Opt. Soc. Am. A 5(7):1127-1135, 1988 (the
   rotation is the orthonormal polar factor of H when det H > 0).
.. [Higham1986] N. J. Higham, "Computing the polar decomposition - with applications",
   SIAM J. Sci. Stat. Comput. 7(4):1160-1174, 1986 (scaled Newton iteration, eq. 3.3 and 3.7).
.. [Fitzpatrick1998] J. M. Fitzpatrick, J. B. West, C. R. Maurer Jr., "Predicting error in
   rigid-body point-based registration", IEEE TMI 17(5):694-702, 1998.
.. [Danilchenko2011] A. Danilchenko, J. M. Fitzpatrick, "General approach to first-order error
   prediction in rigid point registration", IEEE TMI 30(3):679-693, 2011.
.. [Balachandran2009] R. Balachandran, J. M. Fitzpatrick, "Iterative solution for rigid-body
   point-based registration with anisotropic weighting", Proc. SPIE 7261, 72613D, 2009.
.. [MaierHein2012] L. Maier-Hein et al., "Convergent iterative closest-point algorithm to
   accommodate anisotropic and inhomogenous localization error", IEEE TPAMI 34(8):1520-1532, 2012.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputError

__all__ = [
    "DET_TOL",
    "MIRROR_RATIO",
    "procrustes_batch",
    "anisotropic_batch",
    "spread_ratio",
    "skew",
    "jacobian",
    "tre_covariance_batch",
    "tre_fitzpatrick",
    "fle_covariances",
    "camera_fle",
]

#: Newton's polar iteration is used where ``det(H) / |H|_F^3`` exceeds this; else an SVD.
DET_TOL = 1e-6
#: A set is called mirrored when the best reflection fits this many times better (in sum of
#: squares) than the best rotation.
MIRROR_RATIO = 10.0


# ---------------------------------------------------------------------- rotation from H
def _cofactor(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cofactor matrix and determinant of 3x3 matrices stored component-first, shape (3, 3, B)."""
    c = np.empty_like(a)
    c[0, 0] = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
    c[0, 1] = a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]
    c[0, 2] = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
    c[1, 0] = a[2, 1] * a[0, 2] - a[2, 2] * a[0, 1]
    c[1, 1] = a[2, 2] * a[0, 0] - a[2, 0] * a[0, 2]
    c[1, 2] = a[2, 0] * a[0, 1] - a[2, 1] * a[0, 0]
    c[2, 0] = a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]
    c[2, 1] = a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]
    c[2, 2] = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    det = a[0, 0] * c[0, 0] + a[0, 1] * c[0, 1] + a[0, 2] * c[0, 2]
    return c, det


def _polar_newton(a: np.ndarray, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal polar factor of well-conditioned 3x3 matrices stored component-first, (3, 3, B).

    Scaled Newton iteration ``X <- (g X + X^{-T} / g) / 2`` with Frobenius-norm scaling
    ``g = (|X^{-1}|_F / |X|_F)^{1/2}`` [Higham1986]_.  Written out on contiguous component arrays
    because numpy's batched LAPACK calls cost about 3 microseconds per 3x3 matrix, several
    times this.  Returns the factor (3, 3, B) and a per-problem convergence flag.
    """
    a = a / np.sqrt((a * a).sum(axis=(0, 1)))
    delta = np.full(a.shape[2], np.inf)
    for _ in range(iterations):
        c, det = _cofactor(a)
        g = np.sqrt(
            np.sqrt((c * c).sum(axis=(0, 1))) / (np.abs(det) * np.sqrt((a * a).sum(axis=(0, 1))))
        )
        new = 0.5 * (g * a + c / (g * det))
        delta = np.abs(new - a).max(axis=(0, 1))
        a = new
        if delta.max() < 1e-13:  # quadratic convergence: the next step would be below rounding
            break
    return a, delta < 1e-12


def _rotation_from_h(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proper rotation maximising ``trace(R^T H)`` for each H, shape (B, 3, 3).

    Returns ``(R, sv_sum, reflection_gain)``: ``sv_sum = trace(R^T H)`` and
    ``reflection_gain = 4 s_3`` where a reflection would fit better than the rotation by that
    much in the weighted sum of squares (0 where the best orthogonal fit is a rotation)
    [Umeyama1991]_.
    """
    b = h.shape[0]
    hs = np.ascontiguousarray(h.transpose(1, 2, 0))
    gain = np.zeros(b)
    _, det = _cofactor(hs)
    with np.errstate(divide="ignore", invalid="ignore"):
        det_rel = det / np.sqrt((hs * hs).sum(axis=(0, 1))) ** 3
    fast = np.isfinite(det_rel) & (det_rel > DET_TOL)
    rs = np.empty_like(hs)
    if fast.all():
        rs, ok = _polar_newton(hs)
        fast = ok
    elif fast.any():
        q, ok = _polar_newton(hs[:, :, fast])
        rs[:, :, fast] = q
        idx = np.flatnonzero(fast)
        fast[idx[~ok]] = False
    r = rs.transpose(2, 0, 1)
    slow = ~fast
    if slow.any():
        r = np.array(r)
        u, s, vt = np.linalg.svd(h[slow])
        d = np.sign(np.linalg.det(u @ vt))
        d[d == 0] = 1.0
        u[:, :, 2] *= d[:, None]
        r[slow] = u @ vt
        gain[slow] = np.where(d < 0, 4.0 * s[:, 2], 0.0)
    sv_sum = (rs * hs).sum(axis=(0, 1)) if not slow.any() else np.einsum("bij,bij->b", r, h)
    return r, sv_sum, gain


# ---------------------------------------------------------------------- closed form
def procrustes_batch(
    fixed: np.ndarray, moving: np.ndarray, w: np.ndarray | None, scale: bool
) -> dict[str, np.ndarray]:
    """Weighted least-squares rigid or similarity fit, moving -> fixed, for every problem.

    Minimises ``sum_i w_i |y_i - (s R x_i + t)|^2`` in closed form: weighted centroids, ``H``,
    the rotation from ``H`` with the reflection fix, Umeyama's scale [Arun1987]_ [Umeyama1991]_.

    Parameters
    ----------
    fixed, moving : ndarray, shape (B, N, 3)
    w : ndarray, shape (B, N) or (N,), or None
        Non-negative weights (any overall scale), None for equal weights.
    scale : bool
        Estimate an isotropic scale too.

    Returns
    -------
    dict with ``R`` (B, 3, 3), ``t`` (B, 3), ``s`` (B,), ``mirror_gain`` (B,) (weighted sum of
    squares a reflection would save), ``total`` (B,) (weighted centred sum of squares of both sets).
    """
    b, n, _ = fixed.shape
    if w is None:
        wn = np.full((1, 1, n), 1.0 / n)
        wy = fixed / n
    else:
        w = (
            np.broadcast_to(np.asarray(w, dtype=float), (b, n))
            if np.ndim(w) == 2
            else np.asarray(w, float)[None]
        )
        wn = (w / w.sum(axis=-1, keepdims=True))[:, None, :]
        wy = fixed * wn.transpose(0, 2, 1)
    mx = np.matmul(wn, moving)[:, 0]  # (B, 3)
    my = np.matmul(wn, fixed)[:, 0]
    h = np.matmul(wy.transpose(0, 2, 1), moving) - my[:, :, None] * mx[:, None, :]
    r, sv_sum, gain = _rotation_from_h(h)
    # weighted centred sums of squares: needed for the scale, and for the mirror test where a
    # reflection would fit better (gain > 0); not computed otherwise (speed)
    need = np.flatnonzero(gain > 0) if not scale else slice(None)
    var_x = np.zeros(b)
    var_y = np.zeros(b)
    wsub = wn if wn.shape[0] == 1 else wn[need]
    var_x[need] = np.matmul(wsub, moving[need] ** 2).sum(axis=(1, 2)) - (mx[need] ** 2).sum(-1)
    var_y[need] = np.matmul(wsub, fixed[need] ** 2).sum(axis=(1, 2)) - (my[need] ** 2).sum(-1)
    if scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = sv_sum / var_x
    else:
        s = np.ones(b)
    t = my - s[:, None] * np.matmul(r, mx[:, :, None])[:, :, 0]
    return {"R": r, "t": t, "s": s, "mirror_gain": gain, "total": var_x + var_y, "sv_sum": sv_sum}


def spread_ratio(points: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """RMS spread along the second principal axis over that along the first, shape (B, N, 3) -> (B,).

    0 for collinear (or coincident) points, 1 for points spread equally in two directions.
    A cheap invariant test clears most sets; the others get exact eigenvalues (numpy).
    """
    b, n, _ = points.shape
    if w is None:
        wn, wp = np.full((1, 1, n), 1.0 / n), points / n
    else:
        wn = (w / w.sum(-1, keepdims=True))[:, None, :]
        wp = points * wn.transpose(0, 2, 1)
    m = np.matmul(wn, points)[:, 0]
    c = np.matmul(wp.transpose(0, 2, 1), points) - m[:, :, None] * m[:, None, :]
    cs = np.ascontiguousarray(c.transpose(1, 2, 0))  # component arrays: contiguous arithmetic
    tr = cs[0, 0] + cs[1, 1] + cs[2, 2]
    m2 = (
        cs[0, 0] * cs[1, 1]
        - cs[0, 1] ** 2
        + cs[0, 0] * cs[2, 2]
        - cs[0, 2] ** 2
        + cs[1, 1] * cs[2, 2]
        - cs[1, 2] ** 2
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cheap = m2 / tr**2  # <= 3 l2 / l1 (l1 >= l2 >= l3 the eigenvalues)
    out = np.ones(b)
    exact = ~(np.isfinite(cheap) & (cheap >= 3.0 * 0.1**2))  # clears ratios >= 0.1 without eigh
    if exact.any():
        lam = np.clip(np.linalg.eigvalsh(c[exact]), 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[exact] = np.where(lam[:, 2] > 0, np.sqrt(lam[:, 1] / lam[:, 2]), 0.0)
    return out


# ---------------------------------------------------------------------- anisotropic
def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``[v]_x``, shape (..., 3) -> (..., 3, 3)."""
    z = np.zeros(v.shape[:-1])
    return np.stack(
        [
            np.stack([z, -v[..., 2], v[..., 1]], -1),
            np.stack([v[..., 2], z, -v[..., 0]], -1),
            np.stack([-v[..., 1], v[..., 0], z], -1),
        ],
        -2,
    )


def jacobian(a: np.ndarray, centre: np.ndarray, scale: bool) -> np.ndarray:
    """Derivative of mapped points w.r.t. a small update (rotation about ``centre``, translation[, log-scale]).

    ``a`` (B, M, 3) mapped points, ``centre`` (B, 3) -> (B, M, 3, 6 or 7).  The update maps a
    point ``a`` to ``e^k Exp(w) (a - c) + c + tau``, whose first-order change is
    ``w x (a - c) + tau + k (a - c)``.
    """
    v = a - centre[:, None, :]
    eye = np.broadcast_to(np.eye(3), v.shape[:-1] + (3, 3))
    blocks = [-skew(v), eye] + ([v[..., None]] if scale else [])
    return np.concatenate(blocks, axis=-1)


def _apply(r: np.ndarray, t: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    return s[:, None, None] * np.matmul(x, r.transpose(0, 2, 1)) + t[:, None, :]


def combined_covariance(
    cov_fixed: np.ndarray | None, cov_moving: np.ndarray | None, r: np.ndarray, s: np.ndarray
) -> np.ndarray | None:
    """FLE covariance of the residual ``y - T(x)`` in the fixed frame: ``C_y + s^2 R C_x R^T``."""
    out = None if cov_fixed is None else cov_fixed
    if cov_moving is not None:
        rot = (s[:, None, None] ** 2 * r)[:, None]
        mapped = rot @ cov_moving @ r[:, None].transpose(0, 1, 3, 2)
        out = mapped if out is None else out + mapped
    return out


def anisotropic_batch(
    fixed: np.ndarray,
    moving: np.ndarray,
    w: np.ndarray | None,
    scale: bool,
    cov_fixed: np.ndarray | None,
    cov_moving: np.ndarray | None,
    start: dict[str, np.ndarray],
    iterations: int = 50,
) -> dict[str, np.ndarray]:
    """Anisotropically weighted fit by Gauss-Newton, weights re-evaluated at each rotation.

    Minimises ``sum_i w_i r_i^T C_i(R)^{-1} r_i`` with ``r_i = y_i - (s R x_i + t)`` and
    ``C_i(R) = C_y,i + s^2 R C_x,i R^T`` (the objective of [MaierHein2012]_'s generalised
    total least squares and of [Balachandran2009]_).  Each iteration fixes ``C_i`` at the
    current rotation (iterative re-weighting) and takes one Gauss-Newton step on
    (rotation about the centroid, translation[, log-scale]); it stops when the step is below
    1e-14 (relative).  Started from the isotropic closed form.

    Returns the dict of :func:`procrustes_batch` plus ``W`` (B, N, 3, 3), the weight matrices
    at the solution, and ``iterations``.
    """
    r, t, s = start["R"].copy(), start["t"].copy(), start["s"].copy()
    b, n, _ = fixed.shape
    wv = (
        np.ones((1, n))
        if w is None
        else np.broadcast_to(np.asarray(w, float), (b, n))
        if np.ndim(w) == 2
        else np.asarray(w, float)[None]
    )
    extent = (
        np.sqrt(((moving - moving.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1)).max() + 1e-300
    )
    k = 0
    for k in range(1, iterations + 1):
        cov = combined_covariance(cov_fixed, cov_moving, r, s)
        wm = np.linalg.inv(cov) * wv[..., None, None]
        a = _apply(r, t, s, moving)
        centre = a.mean(axis=1)
        jac = jacobian(a, centre, scale)
        jw = jac.transpose(0, 1, 3, 2) @ wm  # (B, N, P, 3)
        m = (jw @ jac).sum(axis=1)
        g = (jw @ (fixed - a)[..., None]).sum(axis=1)[..., 0]
        step = np.linalg.solve(m, g[..., None])[..., 0]
        omega, tau = step[:, :3], step[:, 3:6]
        kap = step[:, 6] if scale else np.zeros(b)
        rot = Rotation.from_rotvec(omega).as_matrix()
        ek = np.exp(kap)
        t = ek[:, None] * np.einsum("bij,bj->bi", rot, t - centre) + centre + tau
        r = rot @ r
        s = s * ek
        size = np.abs(omega).max(-1) * extent + np.abs(tau).max(-1) + np.abs(kap) * extent
        if size.max() <= 1e-14 * max(extent, 1.0):
            break
    cov = combined_covariance(cov_fixed, cov_moving, r, s)
    wm = np.linalg.inv(cov) * wv[..., None, None]
    out = dict(start)
    out.update({"R": r, "t": t, "s": s, "W": wm, "iterations": np.full(b, k)})
    return out


# ---------------------------------------------------------------------- TRE
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
    return np.sqrt(fle**2 / n * (1.0 + (d2 / f2).sum(axis=1) / 3.0))


# ---------------------------------------------------------------------- FLE parsing
def camera_fle(lateral: float, depth: float, axis: Any = (0.0, 0.0, 1.0)) -> np.ndarray:
    """FLE covariance (mm^2) of a camera-side point: ``lateral`` std across, ``depth`` along ``axis``.

    Parameters
    ----------
    lateral : float
        Standard deviation (mm) of the error along each of the two axes across the viewing
        direction.
    depth : float
        Standard deviation (mm) along the viewing direction (``axis``; +z in an OpenCV camera).
    axis : array_like, shape (3,)
        Viewing direction in the fixed (camera) frame; need not be unit length.

    Returns
    -------
    ndarray, shape (3, 3)
        ``lateral^2 I + (depth^2 - lateral^2) a a^T``; its RMS 3D error (Fitzpatrick's FLE) is
        ``sqrt(2 lateral^2 + depth^2)``.
    """
    a = np.asarray(axis, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0:
        raise InputError(
            f"camera_fle: axis must be 3 finite numbers, not all zero, found {a.tolist()}"
        )
    for name, v in (("lateral", lateral), ("depth", depth)):
        if not np.isfinite(v) or v < 0:
            raise InputError(
                f"camera_fle: {name} must be a finite standard deviation >= 0 mm, found {v!r}"
            )
    a = a / np.linalg.norm(a)
    return lateral**2 * np.eye(3) + (depth**2 - lateral**2) * np.outer(a, a)


def _one_side(value: Any, n: int, what: str) -> np.ndarray:
    if np.ndim(value) == 0:
        v = float(value)
        if not np.isfinite(v) or v < 0:
            raise InputError(f"{what}: FLE must be a finite RMS error >= 0 mm, found {value!r}")
        return np.broadcast_to(v**2 / 3.0 * np.eye(3), (n, 3, 3)).copy()
    c = np.asarray(value, dtype=float)
    if c.shape == (3, 3):
        c = np.broadcast_to(c, (n, 3, 3)).copy()
    if c.shape != (n, 3, 3):
        raise InputError(
            f"{what}: FLE covariance must be a number (RMS mm), a (3, 3) or an ({n}, 3, 3) "
            f"array (mm^2), found shape {c.shape}"
        )
    if not np.all(np.isfinite(c)):
        raise InputError(f"{what}: FLE covariance contains NaN or infinite values")
    if not np.allclose(c, c.transpose(0, 2, 1), atol=1e-9 * max(np.abs(c).max(), 1e-300)):
        raise InputError(f"{what}: FLE covariance is not symmetric")
    lam = np.linalg.eigvalsh(c)
    if np.any(lam < -1e-12 * max(np.abs(lam).max(), 1e-300)):
        bad = int(np.flatnonzero((lam < 0).any(-1))[0])
        raise InputError(
            f"{what}: FLE covariance of point {bad} has a negative eigenvalue "
            f"{lam[bad].min():.4g} mm^2; a covariance must be positive semi-definite"
        )
    return c


def fle_covariances(
    fle: Any, n: int, what: str = "fle"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Parse an FLE specification into per-point covariances ``(fixed side, moving side)``, (N, 3, 3) mm^2.

    ``fle`` is a number (RMS 3D error in mm, split equally over the three axes and put on the
    fixed side: for isotropic errors only the sum of both sides matters), a (3, 3) or (N, 3, 3)
    covariance of the fixed-side error in the fixed frame, or a mapping with keys ``"fixed"``
    and/or ``"moving"`` (each a number or covariance, the moving one in the moving frame).
    """
    if isinstance(fle, Mapping):
        unknown = set(fle) - {"fixed", "moving"}
        if unknown:
            raise InputError(
                f"{what}: unknown keys {sorted(map(str, unknown))}; expected 'fixed' and/or 'moving'"
            )
        cf = None if fle.get("fixed") is None else _one_side(fle["fixed"], n, f"{what}['fixed']")
        cm = None if fle.get("moving") is None else _one_side(fle["moving"], n, f"{what}['moving']")
        if cf is None and cm is None:
            raise InputError(f"{what}: mapping gives neither 'fixed' nor 'moving' FLE")
        return cf, cm
    return _one_side(fle, n, what), None
