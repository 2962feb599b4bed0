"""Batched least-squares estimators of paired-point registration (rigid or similarity).

Everything here works on stacks of problems: fixed and moving point sets of shape
``(B, N, 3)``, weights ``(B, N)``, weight matrices ``(B, N, 3, 3)``.  The public functions
(:func:`medpose.registration.register`, :func:`medpose.registration.register_batch`) check
their inputs and forward to :func:`solve_paired`.

Conventions: the transform maps moving to fixed, ``y = s R x + t``.  With weighted centroids
``y0``, ``x0`` and centred points ``p_i = y_i - y0``, ``q_i = x_i - x0``, the correlation matrix
is ``H = sum_i w_i p_i q_i^T`` ([Arun1987]_ eq. 11, transposed to map moving to fixed); the
least-squares rotation maximises ``trace(R^T H)``: ``R = U diag(1, 1, det(U V^T)) V^T`` for
``H = U S V^T`` ([Umeyama1991]_ eq. 39-40, which excludes reflections), the scale is
``s = trace(S D) / sigma_x^2`` ([Umeyama1991]_ eq. 42) and ``t = y0 - s R x0`` (eq. 41).

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
.. [Balachandran2009] R. Balachandran, J. M. Fitzpatrick, "Iterative solution for rigid-body
   point-based registration with anisotropic weighting", Proc. SPIE 7261, 72613D, 2009.
.. [MaierHein2012] L. Maier-Hein et al., "Convergent iterative closest-point algorithm to
   accommodate anisotropic and inhomogenous localization error", IEEE TPAMI 34(8):1520-1532, 2012.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "DET_TOL",
    "procrustes_batch",
    "anisotropic_batch",
    "solve_paired",
    "apply_similarity",
    "combined_covariance",
    "is_isotropic",
    "isotropic_variance",
    "skew",
    "jacobian",
]

#: Newton's polar iteration is used where ``det(H) / |H|_F^3`` exceeds this; else an SVD.
DET_TOL = 1e-6


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


def _normalised_weights(w: np.ndarray | None, b: int, n: int) -> np.ndarray:
    """Weights summing to one per problem, shape (1 or B, 1, N)."""
    if w is None:
        return np.full((1, 1, n), 1.0 / n)
    wa = np.asarray(w, dtype=float)
    wa = np.broadcast_to(wa, (b, n)) if wa.ndim == 2 else wa[None]
    return (wa / wa.sum(axis=-1, keepdims=True))[:, None, :]


# ---------------------------------------------------------------------- closed form
def procrustes_batch(
    fixed: np.ndarray, moving: np.ndarray, w: np.ndarray | None, scale: bool
) -> dict[str, np.ndarray]:
    """Weighted least-squares rigid or similarity fit, moving -> fixed, for every problem.

    Minimises ``sum_i w_i |y_i - (s R x_i + t)|^2`` in closed form: weighted centroids, the
    correlation matrix ``H`` of the centred points, the rotation from ``H`` with the reflection
    fix, Umeyama's scale ([Arun1987]_ eq. 11; [Umeyama1991]_ eqs. 39-42).  The points are
    centred before ``H`` is formed, so a configuration far from the origin loses no precision
    to cancellation.

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
    squares a reflection would save), ``total`` (B,) (weighted centred sum of squares of both
    sets), ``sv_sum`` (B,) (``trace(R^T H)``).
    """
    b, n, _ = fixed.shape
    wn = _normalised_weights(w, b, n)
    mx = np.matmul(wn, moving)[:, 0]  # (B, 3)
    my = np.matmul(wn, fixed)[:, 0]
    p = fixed - my[:, None, :]
    q = moving - mx[:, None, :]
    wp = p * wn.transpose(0, 2, 1)
    h = np.matmul(wp.transpose(0, 2, 1), q)
    r, sv_sum, gain = _rotation_from_h(h)
    # weighted centred sums of squares: needed for the scale, and for the mirror test where a
    # reflection would fit better (gain > 0); not computed otherwise (speed)
    need = np.flatnonzero(gain > 0) if not scale else slice(None)
    var_x = np.zeros(b)
    var_y = np.zeros(b)
    wsub = wn if wn.shape[0] == 1 else wn[need]
    var_x[need] = np.matmul(wsub, q[need] ** 2).sum(axis=(1, 2))
    var_y[need] = np.matmul(wsub, p[need] ** 2).sum(axis=(1, 2))
    if scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = sv_sum / var_x
    else:
        s = np.ones(b)
    t = my - s[:, None] * np.matmul(r, mx[:, :, None])[:, :, 0]
    return {"R": r, "t": t, "s": s, "mirror_gain": gain, "total": var_x + var_y, "sv_sum": sv_sum}


def apply_similarity(r: np.ndarray, t: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``s R x + t`` for stacks: ``r`` (B, 3, 3), ``t`` (B, 3), ``s`` (B,), ``x`` (B, M, 3)."""
    return s[:, None, None] * np.matmul(x, r.transpose(0, 2, 1)) + t[:, None, :]


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


def combined_covariance(
    cov_fixed: np.ndarray | None, cov_moving: np.ndarray | None, r: np.ndarray, s: np.ndarray
) -> np.ndarray:
    """FLE covariance of the residual ``y - T(x)`` in the fixed frame: ``C_y + s^2 R C_x R^T``.

    At least one of ``cov_fixed`` and ``cov_moving`` ((B or 1, N, 3, 3)) must be given.
    """
    if cov_moving is None:
        if cov_fixed is None:
            raise ValueError("combined_covariance: neither side's covariance is given")
        return cov_fixed
    rot = (s[:, None, None] ** 2 * r)[:, None]
    mapped = rot @ cov_moving @ r[:, None].transpose(0, 1, 3, 2)
    return mapped if cov_fixed is None else cov_fixed + mapped


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
    done = 0
    for step_no in range(1, iterations + 1):
        done = step_no
        cov = combined_covariance(cov_fixed, cov_moving, r, s)
        wm = np.linalg.inv(cov) * wv[..., None, None]
        a = apply_similarity(r, t, s, moving)
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
    out.update({"R": r, "t": t, "s": s, "W": wm, "iterations": np.full(b, done)})
    return out


# ---------------------------------------------------------------------- the estimator
def is_isotropic(cov: np.ndarray | None) -> bool:
    """Whether every covariance in ``cov`` (N, 3, 3) is a multiple of the identity (None: yes)."""
    if cov is None:
        return True
    diag = np.trace(cov, axis1=1, axis2=2) / 3.0
    return bool(
        np.allclose(
            cov, diag[:, None, None] * np.eye(3), rtol=0, atol=1e-12 * max(diag.max(), 1e-300)
        )
    )


def isotropic_variance(cov: np.ndarray | None, n: int) -> np.ndarray:
    """Mean per-axis variance of each of ``n`` covariances (N, 3, 3) (zeros for None), mm^2."""
    return np.zeros(n) if cov is None else np.trace(cov, axis1=1, axis2=2) / 3.0


def solve_paired(
    fixed: np.ndarray,
    moving: np.ndarray,
    w: np.ndarray | None,
    scale: bool,
    cov_f: np.ndarray | None,
    cov_m: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The estimator shared by ``register``, the robust search and ``register_batch``.

    ``fixed``/``moving`` (B, N, 3); ``w`` (B, N), (N,) or None; ``cov_f``/``cov_m`` (N, 3, 3),
    (B, N, 3, 3) or None.  No FLE: weighted least squares (:func:`procrustes_batch`).  Isotropic
    FLE: the same closed form with weights ``w_i / sigma_i^2``.  Anisotropic: Gauss-Newton from
    the isotropic solution (:func:`anisotropic_batch`).  Returns the estimate and ``W``
    (B, N, 3, 3), the estimator's weight matrices.
    """
    b, n, _ = fixed.shape
    wv = None if w is None else np.asarray(w, dtype=float)
    if cov_f is None and cov_m is None:
        out = procrustes_batch(fixed, moving, wv, scale)
        wm = (
            np.ones((1, n))
            if wv is None
            else np.broadcast_to(wv, (b, n))
            if wv.ndim == 2
            else wv[None]
        )
        out["W"] = wm[..., None, None] * np.eye(3)
        return out
    var = isotropic_variance(cov_f, n) + isotropic_variance(cov_m, n)  # approximate for s != 1
    wiso = (1.0 if wv is None else wv) / var
    start = procrustes_batch(fixed, moving, wiso, scale)
    if is_isotropic(cov_f) and is_isotropic(cov_m) and not (scale and cov_m is not None):
        start["W"] = np.broadcast_to(wiso, (b, n))[..., None, None] * np.eye(3)
        return start
    return anisotropic_batch(fixed, moving, wv, scale, cov_f, cov_m, start)
