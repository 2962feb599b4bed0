"""Temporally consistent triangulation: choose each point's cameras and labels over time.

Per-frame consensus (:func:`~medpose.camera.triangulation.triangulate_points`) fails where a
detector confuses the legs in several views at once: two cameras then agree with each other
on the wrong leg as well as two others do on the right one, and the choice flips from frame
to frame.  Looking at one frame cannot decide; looking at the trajectory can.

For every keypoint and frame, candidate 3D points are triangulated from every assignment of
an observation to each camera (its own label, for a left/right keypoint also the opposite
side's label, or none; at least two cameras).  Each candidate ``X`` gets a robust image cost,
the truncated-L1 reprojection error over all the cameras that saw the point::

    cost(X) = sum_c min(e_c,own(X), e_c,other(X) + swap_penalty_px, cap_px)

and the candidates of consecutive frames are linked by a motion cost ``motion_weight *
|X_t - X_t-1|`` (px per mm; a total-variation prior: an excursion to a wrong candidate and
back costs twice its distance).  The sequence of candidates with the smallest total cost is
found exactly by dynamic programming (Viterbi 1967, *IEEE Trans. Inf. Theory* 13:260;
Forney 1973, *Proc. IEEE* 61:268), for all keypoints at once (a loop over frames only,
which the recursion needs).  This is the multiple-hypothesis idea of tracking (Reid 1979)
with the robust camera-subset triangulation of Pose2Sim (Pagnon et al. 2021, *Sensors*
21:6530) as hypothesis generator.

The chosen points are then attributed their 2D observations: per view and left/right pair
the labelling that best explains the two chosen points (capped error) is kept, and each
point is solved again (confidence-weighted DLT) from the cameras whose observation lies
within ``threshold_px`` of it.  A point that fewer than two cameras explain keeps its
Viterbi position but is flagged (``explained`` False; :func:`~medpose.camera.triangulate`
gives it 3D confidence 0).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError
from .model import Camera

__all__ = ["TrackResult", "candidate_assignments", "track_points"]

#: (point, candidate) systems per block: bounds memory
_CHUNK = 4000


def candidate_assignments(n_cameras: int, paired: bool = True) -> np.ndarray:
    """Observation choices per camera: (N, C) int, 0 = not used, 1 = own label, 2 = the
    opposite side's label (only when ``paired``); every row uses at least two cameras."""
    opts = (0, 1, 2) if paired else (0, 1)
    a = np.array(list(itertools.product(opts, repeat=n_cameras)), dtype=np.int8).reshape(-1, n_cameras)
    return a[(a > 0).sum(axis=1) >= 2]


@dataclass(frozen=True)
class TrackResult:
    """Outcome of :func:`track_points`.

    Attributes
    ----------
    points : ndarray (T, K, 3)
        mm, world frame.
    swapped : ndarray (T, K, C) bool
        Views whose left/right labels are exchanged for this keypoint (the same for both
        keypoints of a pair).
    used : ndarray (T, K, C) bool
        Cameras (after relabelling) within ``threshold_px`` of the point, used to solve it.
    explained : ndarray (T, K) bool
        At least two cameras agree within ``threshold_px``.
    cost : ndarray (T, K)
        The image cost of the chosen candidate, px.
    """

    points: np.ndarray
    swapped: np.ndarray
    used: np.ndarray
    explained: np.ndarray
    cost: np.ndarray


def _solve(rig, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted DLT per (point, candidate): xn (..., C, 2) normalised, w (..., C) -> (..., 3)."""
    A = np.nan_to_num(xn)[..., :, None] * rig.P[:, 2:3, :] - rig.P[:, :2, :]
    A = A * w[..., None, None]
    M = np.einsum("...cij,...cik->...jk", A, A)
    from .triangulation import _smallest_eigvec
    return _smallest_eigvec(M) * rig.scale + rig.origin


def _image_cost(cams, X: np.ndarray, own: np.ndarray, other: np.ndarray, v_own: np.ndarray, v_other: np.ndarray,
                swap_penalty_px: float, cap_px: float) -> np.ndarray:
    """Truncated reprojection cost of points X (P, N, 3) against (P, C, 2) observations."""
    from .triangulation import reproject
    proj = reproject(cams, X)                                                    # (P, N, C, 2)
    e_own = np.linalg.norm(proj - own[:, None], axis=-1)
    e_oth = np.linalg.norm(proj - other[:, None], axis=-1) + swap_penalty_px
    e_own = np.where(v_own[:, None], e_own, np.inf)
    e_oth = np.where(v_other[:, None], e_oth, np.inf)
    seen = (v_own | v_other)[:, None]
    c = np.minimum(np.minimum(e_own, e_oth), cap_px)
    c = np.where(seen, np.nan_to_num(c, nan=cap_px), 0.0)
    return c.sum(axis=-1)


def track_points(cameras: Sequence[Camera], pixels: np.ndarray, confidence: np.ndarray, names: Sequence[str],
                 rate: float, *, min_confidence: float = 0.3, threshold_px: float = 20.0, cap_px: float = 30.0,
                 swap_penalty_px: float = 5.0, motion_weight: float = 0.1, n_keep: int = 16,
                 pairs: Sequence[tuple[str, str]] | None = None) -> TrackResult:
    """Temporally consistent robust triangulation of a keypoint sequence (see the module notes).

    Parameters
    ----------
    cameras : sequence of Camera, length C
    pixels : array_like, shape (T, K, C, 2)
        Distorted pixel observations; NaN = not seen.
    confidence : array_like, shape (T, K, C)
        Detector confidence; observations below ``min_confidence`` are not used.
    names : sequence of str, length K
        Keypoint names; ``x_l``/``x_r`` pairs may exchange observations.
    rate : float
        Frame rate, Hz (the motion weight is per frame; kept for the report).
    min_confidence, threshold_px : float
        As in :func:`~medpose.camera.triangulation.triangulate_points`.
    cap_px : float
        A camera's reprojection error counts at most this much (an outlier view costs the
        same wherever the point is).
    swap_penalty_px : float
        Extra cost of explaining a view by the opposite side's observation.
    motion_weight : float
        Cost of motion between consecutive frames, px per mm.
    n_keep : int
        Candidates kept per (frame, keypoint) for the recursion (those of lowest image cost).
    pairs : sequence of (left, right) names, optional
        Default: every ``x_l``/``x_r`` pair of ``names``.

    Returns
    -------
    TrackResult
    """
    from .swaps import lr_pairs
    from .triangulation import _Rig, reproject

    cams = tuple(cameras)
    px = np.asarray(pixels, dtype=float)
    cf = np.asarray(confidence, dtype=float)
    n_t, n_k, n_c = px.shape[:3]
    if px.shape != (n_t, n_k, len(cams), 2) or cf.shape != px.shape[:-1] or len(names) != n_k:
        raise InputError(f"track_points: expected pixels (T, K, {len(cams)}, 2), confidence (T, K, {len(cams)}) and "
                         f"K names; found {px.shape}, {cf.shape} and {len(names)} names")
    if not (motion_weight >= 0 and cap_px > 0 and n_keep >= 1):
        raise InputError(f"track_points: motion_weight >= 0, cap_px > 0 and n_keep >= 1 expected; found "
                         f"{motion_weight!r}, {cap_px!r}, {n_keep!r}")
    names = list(names)
    pairs = lr_pairs(names) if pairs is None else list(pairs)
    mate = np.arange(n_k)
    for a, b in pairs:
        mate[names.index(a)], mate[names.index(b)] = names.index(b), names.index(a)
    valid = np.all(np.isfinite(px), axis=-1) & (cf >= min_confidence)           # (T, K, C)
    opx, ocf, oval = px[:, mate], cf[:, mate], valid[:, mate]
    oval = oval & (mate != np.arange(n_k))[None, :, None]
    rig = _Rig.build(cams, 2)
    xn, oxn = rig.normalise(px), rig.normalise(opx)
    assign = candidate_assignments(n_c, paired=bool(pairs))                    # (N, C)
    n_keep = min(n_keep, len(assign))

    # ---- candidates and their image cost, in blocks of points
    P = n_t * n_k
    flat = lambda a: a.reshape((P,) + a.shape[2:])  # noqa: E731
    fpx, fopx, fxn, foxn = flat(px), flat(opx), flat(xn), flat(oxn)
    fcf, focf, fval, foval = flat(cf), flat(ocf), flat(valid), flat(oval)
    keepX = np.full((P, n_keep, 3), np.nan)
    keepC = np.full((P, n_keep), np.inf)
    step = max(1, _CHUNK // len(assign))
    own_sel, oth_sel = assign == 1, assign == 2                                # (N, C)
    for a in range(0, P, step):
        b = min(P, a + step)
        feas = np.all((~own_sel | fval[a:b, None]) & (~oth_sel | foval[a:b, None]), axis=-1)  # (p, N)
        xc = np.where(oth_sel[None, :, :, None], foxn[a:b, None], fxn[a:b, None])          # (p, N, C, 2)
        wc = np.where(own_sel, fcf[a:b, None], np.where(oth_sel, focf[a:b, None], 0.0))     # (p, N, C)
        X = _solve(rig, xc, wc)
        X = np.where(feas[..., None], X, np.nan)
        cost = _image_cost(cams, X, fpx[a:b], fopx[a:b], fval[a:b], foval[a:b], swap_penalty_px, cap_px)
        cost = np.where(np.all(np.isfinite(X), -1), cost, np.inf)
        idx = np.argsort(cost, axis=1)[:, :n_keep]
        keepX[a:b] = np.take_along_axis(X, idx[..., None], axis=1)
        keepC[a:b] = np.take_along_axis(cost, idx, axis=1)
    keepX = keepX.reshape(n_t, n_k, n_keep, 3)
    keepC = keepC.reshape(n_t, n_k, n_keep)
    none = ~np.isfinite(keepC[..., 0])                                          # no candidate at all
    keepC[..., 0] = np.where(none, 0.0, keepC[..., 0])                          # a placeholder state

    # ---- Viterbi over frames, batched over keypoints and candidates
    back = np.zeros((n_t, n_k, n_keep), dtype=np.int32)
    D = keepC[0].copy()
    for t in range(1, n_t):
        d = np.linalg.norm(keepX[t][:, :, None] - keepX[t - 1][:, None, :], axis=-1)   # (K, M, M)
        d = np.nan_to_num(d, nan=0.0)
        tot = D[:, None, :] + motion_weight * d
        back[t] = np.argmin(tot, axis=-1)
        D = keepC[t] + np.take_along_axis(tot, back[t][..., None], axis=-1)[..., 0]
    path = np.zeros((n_t, n_k), dtype=np.int64)
    path[-1] = np.argmin(D, axis=-1)
    for t in range(n_t - 1, 0, -1):
        path[t - 1] = back[t, np.arange(n_k), path[t]]
    Xs = np.take_along_axis(keepX, path[..., None, None], axis=2)[:, :, 0]       # (T, K, 3)
    Cs = np.take_along_axis(keepC, path[..., None], axis=2)[..., 0]

    # ---- attribute the observations: per view and pair, the labelling that explains best
    proj = reproject(cams, Xs)                                                  # (T, K, C, 2)
    e_own = np.where(valid, np.linalg.norm(proj - px, axis=-1), np.nan)
    e_oth = np.where(oval, np.linalg.norm(proj - opx, axis=-1), np.nan)
    cap = lambda e: np.minimum(np.nan_to_num(e, nan=cap_px), cap_px)            # noqa: E731
    kept = cap(e_own) + cap(e_own[:, mate])
    exch = cap(e_oth) + cap(e_oth[:, mate])
    swapped = (exch + swap_penalty_px < kept) & (mate != np.arange(n_k))[None, :, None]
    rpx = np.where(swapped[..., None], opx, px)
    rcf = np.where(swapped, ocf, cf)
    rval = np.where(swapped, oval, valid)
    err = np.where(rval, np.linalg.norm(proj - rpx, axis=-1), np.inf)
    used = rval & (err < threshold_px)
    explained = used.sum(axis=-1) >= 2
    Xr = _solve(rig, rig.normalise(rpx), np.where(used, rcf, 0.0))
    Xf = np.where(explained[..., None], Xr, Xs)
    return TrackResult(Xf, swapped, used & explained[..., None], explained, Cs)
