"""Linear (DLT) triangulation and the consensus over camera subsets, batched.

The maths is the linear triangulation of Hartley & Zisserman (2004), *Multiple View Geometry
in Computer Vision*, 2nd ed., section 12.2: for each camera ``c`` with projection ``P_c`` and
an (undistorted, normalised) observation ``(x, y)``, the rows ``x P_c^3 - P_c^1`` and
``y P_c^3 - P_c^2`` of ``A`` satisfy ``A X = 0``; ``X`` is the right singular vector of the
smallest singular value, i.e. the eigenvector of the smallest eigenvalue of ``M = A^T A``
(:func:`smallest_eigvec`).  Each camera's rows are weighted by its detector confidence (as in
Pose2Sim, Pagnon et al. 2021, *Sensors* 21:6530).  World coordinates are centred on the
cameras and scaled before the solve (Hartley's normalisation, section 4.4.4).

Robust camera selection (:func:`consensus`, :func:`triangulate_points`) solves every subset of
at least ``min_cameras`` cameras that all observed the point, reprojects each solution into
every camera, and keeps per point the largest subset whose cameras all reproject within
``threshold_px`` (ties: the smaller mean error); when no subset is consistent, the feasible
subset with the smallest worst error.  This is the exhaustive version of Pose2Sim's iterative
camera removal; with the few cameras of a lab (``2**C - C - 1`` subsets: 11 for 4 cameras, 57
for 6) enumerating is cheaper than iterating.

:func:`consensus` also takes several candidate observations per camera ("labels", e.g. the
left and the right knee seen in one view) and gives the consensus of every "mix" (one label
per camera) at once.  A subset's solution depends only on the labels of its own cameras, so
each distinct (subset, labels of its cameras) system is solved once and shared by all the
mixes that contain it: with 4 cameras and 2 labels, 72 solves instead of 16 x 11.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from .model import Camera

__all__ = [
    "Rig",
    "consensus",
    "dlt",
    "reproject",
    "smallest_eigvec",
    "triangulate_points",
]

#: (point, solution) systems solved per block: bounds memory, each block is fully batched
BLOCK = 100_000

#: threads solving blocks at once (numpy releases the GIL inside its loops)
WORKERS = min(8, os.cpu_count() or 1)

#: upper-triangle index pairs of a symmetric 4x4 matrix, in the order used below
_IU = np.triu_indices(4)


# ----------------------------------------------------------------------------- eigenvector
def _solve_shifted(
    m: list[np.ndarray], lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y = -(B - lam I)^-1 b`` for the 3x3 block ``B`` and column ``b`` of symmetric 4x4
    matrices given by their 10 upper entries ``m`` (row-major), by cofactors (Cramer's rule).
    Returns ``y`` (3, N), ``det(B - lam I)`` (N,) and ``(B - lam I)^-1 y`` (3, N), the
    derivative of ``y`` with respect to ``lam``."""
    m00, m01, m02, m03, m11, m12, m13, m22, m23, _ = m
    a00, a11, a22 = m00 - lam, m11 - lam, m22 - lam
    c00 = a11 * a22 - m12 * m12
    c01 = m02 * m12 - m01 * a22
    c02 = m01 * m12 - m02 * a11
    c11 = a00 * a22 - m02 * m02
    c12 = m01 * m02 - a00 * m12
    c22 = a00 * a11 - m01 * m01
    det = a00 * c00 + m01 * c01 + m02 * c02
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / det
        y0 = -(c00 * m03 + c01 * m13 + c02 * m23) * inv
        y1 = -(c01 * m03 + c11 * m13 + c12 * m23) * inv
        y2 = -(c02 * m03 + c12 * m13 + c22 * m23) * inv
        dy = np.stack(
            [
                (c00 * y0 + c01 * y1 + c02 * y2) * inv,
                (c01 * y0 + c11 * y1 + c12 * y2) * inv,
                (c02 * y0 + c12 * y1 + c22 * y2) * inv,
            ]
        )
    return np.stack([y0, y1, y2]), det, dy


def _null_vector(
    m: list[np.ndarray], skip: np.ndarray | None = None, max_iter: int = 5
) -> np.ndarray:
    """Dehomogenised smallest eigenvectors (3, N) of symmetric 4x4 matrices from their 10
    upper entries (each (N,)), by Newton's method on the secular equation (see
    :func:`smallest_eigvec`), started right of the root at the Rayleigh quotient of the
    inhomogeneous least-squares solution (an upper bound of the smallest eigenvalue), where
    the decreasing, concave ``f`` makes it converge monotonically.  Each step ``s`` also moves
    ``y`` to first order, ``y + s (B - l I)^-1 y``; an entry is done once that move is below
    ``1e-6 (1 + |y|)`` (the error left is of its square) with ``B - l I`` positive definite.
    After ``max_iter`` steps the rest go to :func:`numpy.linalg.eigh`, except those flagged
    in ``skip`` (left NaN).
    """
    n = m[0].shape[0]
    out = np.full((3, n), np.nan)
    todo = np.ones(n, dtype=bool) if skip is None else ~skip
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y, _, _ = _solve_shifted(m, np.zeros(n))
        lam = np.maximum(m[9] + m[3] * y[0] + m[6] * y[1] + m[8] * y[2], 0.0) / (
            1.0 + y[0] * y[0] + y[1] * y[1] + y[2] * y[2]
        )
        every = np.arange(n)
        for it in range(max_iter):
            # the first step on every entry, later ones only on those not done yet
            idx = np.flatnonzero(todo) if it >= 1 else every
            mm = m if it < 1 else [a[idx] for a in m]
            lm = lam[idx]
            y, det, dy = _solve_shifted(mm, lm)
            a00 = mm[0] - lm
            yy = y[0] * y[0] + y[1] * y[1] + y[2] * y[2]
            step = (mm[9] - lm + mm[3] * y[0] + mm[6] * y[1] + mm[8] * y[2]) / (1.0 + yy)
            move = step * dy
            y = y + move
            done = (
                (np.abs(move).max(0) <= 1e-6 * (1.0 + np.sqrt(yy)))
                & (a00 > 0)
                & (a00 * (mm[4] - lm) - mm[1] * mm[1] > 0)
                & (det > 0)
                & todo[idx]
            )
            lam[idx] = lm + step
            where = idx[done]
            out[:, where] = y[:, done]
            todo[where] = False
            if not todo.any():
                break
    if todo.any():
        full = np.zeros((int(todo.sum()), 4, 4))
        for k, (i, j) in enumerate(zip(*_IU)):
            full[:, i, j] = full[:, j, i] = m[k][todo]
        out[:, todo] = _eigh_null_vector(full).T
    return out


def _eigh_null_vector(M: np.ndarray) -> np.ndarray:
    _, vecs = np.linalg.eigh(M)
    h = vecs[..., :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[..., :3] / h[..., 3:4]


def smallest_eigvec(M: np.ndarray) -> np.ndarray:
    """Dehomogenised eigenvector of the smallest eigenvalue of symmetric 4x4 matrices.

    The homogeneous least-squares solution of DLT triangulation (Hartley & Zisserman 2004,
    sec. 12.2 and A5.3), computed for every matrix at once by Newton's method on the
    secular equation (see the notes) instead of a full eigendecomposition per matrix.

    Parameters
    ----------
    M : array_like, shape (..., 4, 4)
        Symmetric positive semi-definite matrices (e.g. ``A^T A``).

    Returns
    -------
    ndarray, shape (..., 3)
        ``h[:3] / h[3]`` of the eigenvector ``h``; inf or NaN for a point at infinity.

    Notes
    -----
    With ``M = [[B, b], [b^T, d]]`` and the eigenvector ``(y, 1)``, ``y = -(B - l I)^-1 b``
    and the smallest eigenvalue ``l`` is the root of ``d - l + b^T y(l) = 0`` below the
    spectrum of ``B`` (Golub 1973, *SIAM Review* 15:318).  Matrices where the iteration does
    not apply are solved by :func:`numpy.linalg.eigh`.
    """
    M = np.asarray(M, dtype=float)
    if M.shape[-2:] != (4, 4):
        raise InputError(
            f"smallest_eigvec: expected matrices of shape (..., 4, 4), found {M.shape}"
        )
    flat = M.reshape(-1, 4, 4)
    m = [np.ascontiguousarray(flat[:, i, j]) for i, j in zip(*_IU)]
    return _null_vector(m).T.reshape(M.shape[:-2] + (3,))


# ----------------------------------------------------------------------------- plain DLT
def dlt(
    projections: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Batched, weighted linear triangulation (Hartley & Zisserman 2004, sec. 12.2).

    Parameters
    ----------
    projections : array_like, shape (C, 3, 4)
        Projection matrices, mapping homogeneous world points to homogeneous image points
        (e.g. :attr:`Camera.projection_matrix`, pixels, for undistorted pixels).
    points : array_like, shape (..., C, 2)
        Image points in the projections' image coordinates; NaN = not observed.
    weights : array_like, shape (..., C), optional
        Per-observation weights (e.g. confidence); default 1 where observed.

    Returns
    -------
    ndarray, shape (..., 3)
        World points; NaN where fewer than two cameras observed the point.

    Raises
    ------
    InputError
        If the shapes of ``projections`` and ``points`` do not agree.

    Notes
    -----
    Conditioning (Hartley & Zisserman 2004, sec. 4.4.4): the world is translated to the mean
    camera centre and scaled by the mean centre distance, and each camera's rows are scaled
    to unit size, before the solve; the result is mapped back.
    """
    P = np.asarray(projections, dtype=float)
    x = np.asarray(points, dtype=float)
    if P.ndim != 3 or P.shape[1:] != (3, 4):
        raise InputError(f"dlt: projections must have shape (C, 3, 4), found {P.shape}")
    if x.shape[-2:] != (P.shape[0], 2):
        raise InputError(f"dlt: points must have shape (..., {P.shape[0]}, 2), found {x.shape}")
    obs = np.all(np.isfinite(x), axis=-1)
    w = (
        obs.astype(float)
        if weights is None
        else np.where(obs, np.nan_to_num(np.asarray(weights, float)), 0.0)
    )
    # camera centres = right null vectors of P; condition the world on them
    _, _, vt = np.linalg.svd(P)
    centres = vt[:, -1, :3] / vt[:, -1, 3:4]
    origin = centres.mean(axis=0)
    s = float(np.linalg.norm(centres - origin, axis=1).mean()) or 1.0
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = origin
    Pn = P @ T
    Pn = Pn / np.linalg.norm(Pn[:, :2, :3], axis=(1, 2))[:, None, None]
    A = np.nan_to_num(x)[..., :, None] * Pn[:, 2:3, :] - Pn[:, :2, :]
    A = A * w[..., None, None]
    M = np.einsum("...cij,...cik->...jk", A, A)
    enough = (w > 0).sum(-1) >= 2
    X = np.full(enough.shape + (3,), np.nan)
    X[enough] = smallest_eigvec(M[enough]) * s + origin
    return X


def reproject(cameras: Sequence[Camera], points: np.ndarray) -> np.ndarray:
    """Project world points (..., 3) into every camera (with distortion): shape (..., C, 2) px."""
    return np.stack([c.project(points) for c in cameras], axis=-2)


# ----------------------------------------------------------------------------- the rig
@dataclass(frozen=True)
class Rig:
    """Cameras prepared for batched solving (normalised coordinates, conditioned world).

    Attributes
    ----------
    cameras : tuple of Camera
    P : ndarray (C, 3, 4)
        ``[R | t']`` in conditioned world units (normalised image coordinates).
    origin : ndarray (3,)
        Mean camera centre, mm.
    scale : float
        Mean distance of the centres from ``origin``: mm per conditioned unit.
    subsets : ndarray (S, C) bool
        Every camera subset of at least ``min_cameras`` cameras, smallest first.
    """

    cameras: tuple[Camera, ...]
    P: np.ndarray
    origin: np.ndarray
    scale: float
    subsets: np.ndarray

    def project_conditioned(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Pixels ``(u, v)`` in every camera of conditioned points ``y`` (3, N).

        The model of :meth:`Camera.project` (pinhole, OpenCV radial-tangential and rational
        distortion, skew), written on coordinate arrays so that the many solutions of a
        consensus are projected without temporaries of shape (N, 3); NaN behind a camera.
        """
        out = []
        for c, cam in enumerate(self.cameras):
            R, tt = self.P[c, :, :3], self.P[c, :, 3]
            pz = R[2, 0] * y[0] + R[2, 1] * y[1] + R[2, 2] * y[2] + tt[2]
            with np.errstate(divide="ignore", invalid="ignore"):
                iz = np.where(pz > 0, 1.0 / pz, np.nan)
            x = (R[0, 0] * y[0] + R[0, 1] * y[1] + R[0, 2] * y[2] + tt[0]) * iz
            v = (R[1, 0] * y[0] + R[1, 1] * y[1] + R[1, 2] * y[2] + tt[1]) * iz
            xd, yd = cam.distort(x, v)
            K = cam.matrix
            out.append((K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]))
        return out

    @classmethod
    def build(cls, cameras: Sequence[Camera], min_cameras: int = 2) -> Rig:
        """Prepare ``cameras``; subsets of at least ``min_cameras`` cameras."""
        cams = tuple(cameras)
        centres = np.stack([c.center for c in cams])
        origin = centres.mean(axis=0)
        scale = float(np.linalg.norm(centres - origin, axis=1).mean()) or 1.0
        P = np.stack(
            [
                np.hstack(
                    [
                        c.rotation_matrix,
                        ((c.rotation_matrix @ origin + c.translation) / scale)[:, None],
                    ]
                )
                for c in cams
            ]
        )
        n = len(cams)
        subsets = np.array(
            [
                [i in s for i in range(n)]
                for r in range(min_cameras, n + 1)
                for s in itertools.combinations(range(n), r)
            ],
            dtype=bool,
        ).reshape(-1, n)
        return cls(cams, P, origin, scale, subsets)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixels of world points (..., 3) mm in every camera: (..., C, 2), as :func:`reproject`."""
        pts = np.asarray(points, dtype=float)
        y = ((pts.reshape(-1, 3) - self.origin) / self.scale).T
        uv = np.stack([np.stack(c, axis=-1) for c in self.project_conditioned(y)], axis=-2)
        return uv.reshape(pts.shape[:-1] + (len(self.cameras), 2))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Undistorted normalised coordinates of pixels (..., C, 2)."""
        return np.stack(
            [c.undistort_points(pixels[..., i, :]) for i, c in enumerate(self.cameras)], axis=-2
        )

    def normal_matrices(self, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Each camera's weighted DLT block ``A_c^T A_c``: (..., C, 2), (..., C) -> (..., C, 4, 4)."""
        A = np.nan_to_num(xn)[..., :, None] * self.P[:, 2:3, :] - self.P[:, :2, :]
        A = A * w[..., None, None]
        return np.einsum("...cij,...cik->...cjk", A, A)

    def solve(self, M: np.ndarray) -> np.ndarray:
        """World points (mm) of summed normal matrices (..., 4, 4) -> (..., 3)."""
        return smallest_eigvec(M) * self.scale + self.origin

    def solve_subsets(self, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted DLT for every subset: (..., C, 2), (..., C) -> (..., S, 3) mm."""
        Mc = self.normal_matrices(xn, w)
        return self.solve(np.einsum("sc,...cjk->...sjk", self.subsets.astype(float), Mc))


# ----------------------------------------------------------------------------- consensus
@dataclass(frozen=True)
class _Plan:
    """The distinct systems of a consensus over mixes: solution j = (subset, labels)."""

    weights: np.ndarray  # (J, C*L) 0/1: which (camera, label) blocks solution j sums
    size: np.ndarray  # (J,) cameras in solution j
    index: np.ndarray  # (Mx, S) solution of subset s under mix m
    member: np.ndarray  # (J, C) bool: the cameras of solution j
    label: np.ndarray  # (J, C) int: the label each of them takes (0 elsewhere)


def _plan(subsets: np.ndarray, mixes: np.ndarray, n_labels: int) -> _Plan:
    n_c = subsets.shape[1]
    table: dict[tuple[int, tuple[int, ...]], int] = {}
    rows: list[np.ndarray] = []
    index = np.zeros((len(mixes), len(subsets)), dtype=np.int64)
    for m, mix in enumerate(mixes):
        for s, sub in enumerate(subsets):
            key = (s, tuple(int(v) for v in mix[sub]))
            if key not in table:
                table[key] = len(rows)
                row = np.zeros((n_c, n_labels))
                row[np.flatnonzero(sub), mix[sub]] = 1.0
                rows.append(row.ravel())
            index[m, s] = table[key]
    weights = np.array(rows)
    per = weights.reshape(len(rows), n_c, n_labels)
    member = per.sum(-1) > 0
    label = np.argmax(per, axis=-1)
    return _Plan(weights, weights.sum(1).astype(int), index, member, label)


def consensus(
    rig: Rig,
    pixels: np.ndarray,
    confidence: np.ndarray,
    *,
    mixes: np.ndarray | None = None,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    progress: bool = False,
    desc: str = "triangulating",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consensus triangulation over camera subsets of every mix of candidate observations.

    Parameters
    ----------
    rig : Rig
    pixels : ndarray, shape (N, L, C, 2)
        ``L`` candidate observations per camera (distorted pixels, NaN = none).
    confidence : ndarray, shape (N, L, C)
    mixes : ndarray of int, shape (Mx, C), optional
        Label taken in each camera by each mix (default: the single mix of label 0).
    min_confidence, threshold_px : float
        As in :func:`triangulate_points`.
    progress : bool
        Show a tqdm progress bar over the blocks.
    desc : str
        The bar's label.

    Returns
    -------
    points : ndarray (N, Mx, 3)
        mm; NaN where no subset is feasible.
    errors : ndarray (N, Mx, C)
        Reprojection error of the chosen solution into every camera with a finite
        observation under the mix (used or not), px.
    used : ndarray of bool (N, Mx, C)
        The chosen subset's cameras.
    """
    n, n_l, n_c = pixels.shape[:3]
    mixes = np.zeros((1, n_c), dtype=np.int64) if mixes is None else np.asarray(mixes, np.int64)
    plan = _plan(rig.subsets, mixes, n_l)
    n_m = len(mixes)
    X = np.full((n, n_m, 3), np.nan)
    E = np.full((n, n_m, n_c), np.nan)
    U = np.zeros((n, n_m, n_c), dtype=bool)
    step = max(1, BLOCK // max(len(plan.weights), n_m * len(rig.subsets)))
    starts = range(0, n, step)

    def block(a: int) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        b = min(n, a + step)
        return a, _consensus_block(
            rig, plan, mixes, pixels[a:b], confidence[a:b], min_confidence, threshold_px
        )

    # blocks are independent; numpy releases the GIL in its loops, so threads share the work
    workers = min(len(starts), WORKERS)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        done = pool.map(block, starts) if workers > 1 else map(block, starts)
        for a, (x, e, u) in tqdm(
            done,
            total=len(starts),
            desc=desc,
            unit="block",
            disable=not progress or len(starts) < 2,
        ):
            X[a : a + len(x)], E[a : a + len(x)], U[a : a + len(x)] = x, e, u
    return X, E, U


def _consensus_block(
    rig: Rig,
    plan: _Plan,
    mixes: np.ndarray,
    px: np.ndarray,
    cf: np.ndarray,
    min_confidence: float,
    threshold_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, n_l, n_c = px.shape[:3]
    n_j = len(plan.weights)
    seen = np.all(np.isfinite(px), axis=-1)  # (n, L, C)
    with np.errstate(invalid="ignore"):
        valid = seen & (cf >= min_confidence)
    w = np.where(valid, cf, 0.0)
    Mc = rig.normal_matrices(rig.normalise(px), w)[..., _IU[0], _IU[1]]  # (n, L, C, 10)
    Mc = np.ascontiguousarray(Mc.transpose(3, 0, 2, 1)).reshape(10, n, n_c * n_l)
    Ms = Mc @ plan.weights.T  # (10, n, J): each distinct system summed once
    n_valid = valid.transpose(0, 2, 1).reshape(n, -1).astype(float) @ plan.weights.T
    feas = n_valid == plan.size  # (n, J): every camera of the solution has a valid observation
    y = _null_vector([Ms[k].reshape(-1) for k in range(10)], skip=~feas.reshape(-1))
    feas &= np.isfinite(y).all(0).reshape(n, n_j)
    # reprojection error of every solution into every camera against every label, (C, L, n, J)
    err = np.empty((n_c, n_l, n, n_j))
    for c, (u, v) in enumerate(rig.project_conditioned(y)):
        u, v = u.reshape(n, n_j), v.reshape(n, n_j)
        for lab in range(n_l):
            du = u - px[:, lab, c, 0][:, None]
            dv = v - px[:, lab, c, 1][:, None]
            err[c, lab] = np.sqrt(du * du + dv * dv)
    # worst and mean error over each solution's own cameras: they do not depend on the mix
    member = plan.member  # (J, C)
    worst = np.zeros((n, n_j))
    total = np.zeros((n, n_j))
    for c in range(n_c):
        e = err[c, 0] if n_l == 1 else np.where(plan.label[:, c] == 1, err[c, 1], err[c, 0])
        e = np.where(member[:, c], np.nan_to_num(e, nan=np.inf), 0.0)
        np.maximum(worst, e, out=worst)
        total += e
    size = plan.size.astype(float)
    consistent = feas & (worst < threshold_px)
    # lexicographic choice as one cost: consistent and large first, then small mean error;
    # otherwise the feasible subset with the smallest worst error
    cost_j = np.where(consistent, -size * 1e9 + total / size, np.where(feas, 1e15 + worst, np.inf))
    cost = cost_j[:, plan.index]  # (n, Mx, S)
    best = np.argmin(cost, axis=-1)  # (n, Mx)
    m_i = np.arange(len(mixes))[None, :]
    ok = np.isfinite(cost[np.arange(n)[:, None], m_i, best])
    j = plan.index[m_i, best]  # (n, Mx): the chosen solutions
    rows = np.arange(n)[:, None]
    X = y.reshape(3, n, n_j)[:, rows, j].transpose(1, 2, 0) * rig.scale + rig.origin
    X = np.where(ok[..., None], X, np.nan)
    cams = np.arange(n_c)
    Eb = err[cams, mixes[None], rows[..., None], j[..., None]]  # (n, Mx, C)
    mseen = seen[:, mixes, cams]  # (n, Mx, C)
    Eb = np.where(ok[..., None] & mseen, Eb, np.nan)
    used = rig.subsets[best] & ok[..., None]
    return X, Eb, used


def triangulate_points(
    cameras: Sequence[Camera],
    pixels: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    min_cameras: int = 2,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust, confidence-weighted triangulation of any batch of observations.

    Parameters
    ----------
    cameras : sequence of Camera, length C
    pixels : array_like, shape (..., C, 2)
        Distorted pixel observations; NaN = not seen.
    confidence : array_like, shape (..., C), optional
        Detector confidence in [0, 1] (default 1 where seen).  Observations below
        ``min_confidence`` are not used.
    min_confidence : float
    threshold_px : float
        Reprojection error (px) under which a camera agrees with a solution.
    min_cameras : int
        Smallest camera subset tried (>= 2).
    progress : bool
        Show a progress bar.

    Returns
    -------
    points : ndarray (..., 3)
        World points, mm (the cameras' world frame); NaN where no subset was feasible.
    errors : ndarray (..., C)
        Reprojection error into every camera with an observation (used or not), px.
    used : ndarray of bool (..., C)
        The cameras of the chosen subset.

    Raises
    ------
    InputError
        If the shapes of ``pixels`` and ``confidence`` do not agree with the cameras, or
        ``min_cameras`` is out of range.
    """
    cams = tuple(cameras)
    px = np.asarray(pixels, dtype=float)
    if px.shape[-2:] != (len(cams), 2):
        raise InputError(
            f"triangulate_points: pixels must have shape (..., {len(cams)}, 2), found {px.shape}"
        )
    cf = np.ones(px.shape[:-1]) if confidence is None else np.asarray(confidence, dtype=float)
    if cf.shape != px.shape[:-1]:
        raise InputError(
            f"triangulate_points: confidence must have shape {px.shape[:-1]}, found {cf.shape}"
        )
    if min_cameras < 2 or min_cameras > len(cams):
        raise InputError(
            f"triangulate_points: min_cameras must be between 2 and {len(cams)}, found {min_cameras}"
        )
    rig = Rig.build(cams, min_cameras)
    lead = px.shape[:-2]
    n_c = len(cams)
    X, E, U = consensus(
        rig,
        px.reshape(-1, 1, n_c, 2),
        cf.reshape(-1, 1, n_c),
        min_confidence=min_confidence,
        threshold_px=threshold_px,
        progress=progress,
    )
    return X.reshape(lead + (3,)), E.reshape(lead + (n_c,)), U.reshape(lead + (n_c,))
