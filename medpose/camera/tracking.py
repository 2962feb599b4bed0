"""Temporally consistent triangulation: choose each point's cameras and labels over time.

Per-frame consensus (:func:`~medpose.camera.dlt.triangulate_points`) fails where a
detector confuses the legs in several views at once: two cameras then agree with each other
on the wrong leg as well as two others do on the right one, and the choice flips from frame
to frame.  Looking at one frame cannot decide; looking at the trajectory can.

Candidates.  For every left/right pair (``x_l``/``x_r``), frame and labelling ``g`` of the
views (all ``2**C`` of them: each view's two observations kept or exchanged), both points are
solved for every camera subset ``s`` of at least two cameras (confidence-weighted DLT, all at
once).  A subset's image cost is the per-frame consensus rule written as a cost::

    cost(s) = sum_{c in s} rho(e_c) + threshold_px * #(observing cameras not in s),
    rho(e) = inlier_slope * e  if e < threshold_px  else  threshold_px + e

(a larger consistent subset wins unless it raises the errors of the others by much).  The
``n_keep`` best subsets of each point under each labelling are kept; a pair's states are
(labelling, left subset, right subset), the ``n_states`` cheapest per frame.  Points without
a mate (the nose) have one state per subset.

Costs.  A state costs its two image costs, ``swap_penalty_px`` per view whose labelling
differs from the *body's* labelling of the frame (the one most pairs chose in a first pass:
detectors swap whole bodies, and pairs too close together to decide alone follow it), and,
with ``bones``, ``bone_weight * | |X_a - X_b| - L_ab |`` for each segment of the point, with
``X_b`` the previous pass's neighbour and ``L_ab`` its median length over the sequence.
Moving between consecutive frames costs ``motion_weight`` times the distance moved by the
state's points (px per mm; a total-variation prior: an excursion to a wrong solution and back
costs twice its distance).

Solution.  The sequence of states with the smallest total cost is found exactly by dynamic
programming (Viterbi 1967, *IEEE Trans. Inf. Theory* 13:260; Forney 1973, *Proc. IEEE*
61:268), for all pairs at once (the loop is over frames only, which the recursion needs).
This is the multiple-hypothesis idea of tracking (Reid 1979, *IEEE Trans. Autom. Control*
24:843) with the camera-subset triangulation of Pose2Sim (Pagnon et al. 2021, *Sensors*
21:6530) as hypothesis generator.  The chosen labelling relabels the 2D views; the chosen
subset's cameras are the point's cameras (``explained`` when they all reproject within
``threshold_px``).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..layouts import lr_pairs
from .dlt import Rig, reproject
from .model import Camera

__all__ = ["TrackResult", "track_points", "refine_points"]


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
        The cameras of the chosen subset (after relabelling), which the point is solved from.
    explained : ndarray (T, K) bool
        At least two cameras used, all within ``threshold_px``.
    cost : ndarray (T, K)
        The image cost of the chosen state (for a pair: both points), px.
    """

    points: np.ndarray
    swapped: np.ndarray
    used: np.ndarray
    explained: np.ndarray
    cost: np.ndarray


def _viterbi(X: np.ndarray, cost: np.ndarray, motion_weight: float) -> np.ndarray:
    """Minimum-cost path through candidate states (Viterbi 1967; Forney 1973).

    X (T, B, M, J, 3): the J points of each of the M states of B independent chains;
    cost (T, B, M), ``inf`` for impossible states.  Moving from state i to state j costs
    ``motion_weight * sum_J |X_t,j - X_t-1,i|`` (a NaN point costs nothing).
    Returns the state index per frame and chain, (T, B).
    """
    n_t, n_b, _ = cost.shape
    back = np.zeros(cost.shape, dtype=np.int32)
    D = cost[0].copy()
    xyz = np.moveaxis(X, -1, 0)  # (3, T, B, M, J): coordinates apart, for fast distances
    step = 64  # transition costs of this many frames at once, outside the recursion
    for a in range(1, n_t, step):
        b = min(n_t, a + step)
        now, before = xyz[:, a:b, :, :, None], xyz[:, a - 1 : b - 1, :, None, :]
        dx, dy, dz = now[0] - before[0], now[1] - before[1], now[2] - before[2]
        d = np.sqrt(dx * dx + dy * dy + dz * dz)  # (t, B, M, M, J)
        move = motion_weight * np.nan_to_num(d, nan=0.0).sum(axis=-1)
        for t in range(a, b):  # the recursion is sequential in time; chains and states batched
            tot = D[:, None, :] + move[t - a]
            back[t] = np.argmin(tot, axis=-1)
            D = cost[t] + np.take_along_axis(tot, back[t][..., None], axis=-1)[..., 0]
    path = np.zeros((n_t, n_b), dtype=np.int64)
    path[-1] = np.argmin(D, axis=-1)
    for t in range(n_t - 1, 0, -1):
        path[t - 1] = back[t, np.arange(n_b), path[t]]
    return path


def _bone_cost(
    cand: np.ndarray, est: np.ndarray, bones: np.ndarray, lengths: np.ndarray, weight: float
) -> np.ndarray:
    """``weight * sum | |X - est_other_end| - length |`` over each point's bones: cand (T, K, n, 3) -> (T, K, n)."""
    out = np.zeros(cand.shape[:3])
    for (a, b), length in zip(bones, lengths):
        if not np.isfinite(length):
            continue
        for k, j in ((a, b), (b, a)):
            dev = np.abs(np.linalg.norm(cand[:, k] - est[:, j, None], axis=-1) - length)
            out[:, k] += weight * np.nan_to_num(dev, nan=0.0)
    return out


def track_points(
    cameras: Sequence[Camera],
    pixels: np.ndarray,
    confidence: np.ndarray,
    names: Sequence[str],
    *,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    inlier_slope: float = 0.5,
    swap_penalty_px: float = 2.0,
    motion_weight: float = 0.05,
    n_keep: int = 3,
    bones: Sequence[tuple[str, str]] | None = None,
    bone_weight: float = 0.25,
    n_iter: int = 2,
    pairs: Sequence[tuple[str, str]] | None = None,
    refine: bool = False,
    n_states: int = 32,
) -> TrackResult:
    """Temporally consistent robust triangulation of a keypoint sequence (see the module notes).

    Parameters
    ----------
    cameras : sequence of Camera, length C
    pixels : array_like, shape (T, K, C, 2)
        Distorted pixel observations; NaN = not seen.
    confidence : array_like, shape (T, K, C)
        Detector confidence in [0, 1]: DLT weights; observations below ``min_confidence``
        are not used.
    names : sequence of str, length K
        Keypoint names (``x_l``/``x_r`` pairs are decided together).
    min_confidence, threshold_px : float
        As in :func:`~medpose.camera.dlt.triangulate_points`.
    inlier_slope : float
        Cost per pixel of reprojection error of a camera in the subset (below
        ``threshold_px``); each observing camera left out costs ``threshold_px``.  Small
        values approach the per-frame consensus rule (largest consistent subset first).
    swap_penalty_px : float
        Cost of each view whose left/right labels are exchanged.
    motion_weight : float
        Cost of motion between consecutive frames, px per mm.
    n_keep : int
        Camera subsets kept per point and view labelling (those of lowest image cost).
    bones : sequence of (a, b) names, optional
        Rigid segments (e.g. :data:`medpose.temporal.DEFAULT_BONES`); when given and
        ``bone_weight`` > 0, ``n_iter`` further passes add ``bone_weight * | |X_a - X_b| -
        L_ab |`` (px per mm) to each candidate of ``a``, with ``X_b`` the previous pass's
        point and ``L_ab`` the previous pass's median length over the sequence.
    pairs : sequence of (left, right) names, optional
        Default: every ``x_l``/``x_r`` pair of ``names``.
    refine : bool
        Polish each point by :func:`refine_points` on its chosen cameras (off by default: on
        real detections it lowers the median error a little and puts more observations
        beyond the threshold).
    n_states : int
        States per pair and frame kept for the recursion (those of lowest image cost, out of
        ``2**C * n_keep**2``).

    Returns
    -------
    TrackResult

    Raises
    ------
    InputError
        Shapes that do not agree, a pair or bone naming an unknown keypoint, negative weights.
    """
    cams = tuple(cameras)
    px = np.asarray(pixels, dtype=float)
    cf = np.asarray(confidence, dtype=float)
    if (
        px.ndim != 4
        or px.shape[2:] != (len(cams), 2)
        or cf.shape != px.shape[:-1]
        or len(names) != px.shape[1]
    ):
        raise InputError(
            f"track_points: expected pixels (T, K, {len(cams)}, 2), confidence (T, K, {len(cams)}) and "
            f"K names; found {px.shape}, {cf.shape} and {len(names)} names"
        )
    if not (
        motion_weight >= 0
        and bone_weight >= 0
        and inlier_slope >= 0
        and threshold_px > 0
        and n_keep >= 1
    ):
        raise InputError(
            f"track_points: motion_weight, bone_weight and inlier_slope >= 0, threshold_px > 0 and "
            f"n_keep >= 1 expected; found {motion_weight!r}, {bone_weight!r}, {inlier_slope!r}, "
            f"{threshold_px!r}, {n_keep!r}"
        )
    n_t, n_k, n_c = px.shape[:3]
    names = list(names)
    idx = {n: i for i, n in enumerate(names)}
    pairs = lr_pairs(names) if pairs is None else list(pairs)
    bones = [] if bones is None else list(bones)
    unknown = sorted({n for pr in pairs + bones for n in pr if n not in idx})
    if unknown:
        raise InputError(
            f"track_points: pairs or bones name keypoints {unknown} that are not among the keypoints"
        )
    li = np.array([idx[a] for a, _ in pairs], dtype=int)
    ri = np.array([idx[b] for _, b in pairs], dtype=int)
    single = np.setdiff1d(np.arange(n_k), np.concatenate([li, ri]))
    valid = np.all(np.isfinite(px), axis=-1) & (cf >= min_confidence)  # (T, K, C)
    rig = Rig.build(cams, 2)
    xn = rig.normalise(px)
    S = rig.subsets  # (S, C)
    n_keep = min(n_keep, len(S))
    tau = float(threshold_px)

    def candidates(ia: np.ndarray, ib: np.ndarray, G: np.ndarray):
        """Candidates of the chains (ia[b], ib[b]) under each view labelling G (g, C): the
        n_keep best subsets of each point: X (T, B, G, 2, n, 3), cost (T, B, G, 2, n), subset (same)."""
        n_b, n_g = len(ia), len(G)
        X_out = np.full((n_t, n_b, n_g, 2, n_keep, 3), np.nan)
        C_out = np.full((n_t, n_b, n_g, 2, n_keep), np.inf)
        I_out = np.zeros((n_t, n_b, n_g, 2, n_keep), dtype=np.int64)
        g = G[:, :, None]
        step = max(1, 40000 // max(1, n_b * n_g * 2 * len(S)))
        for a in range(0, n_t, step):  # blocks of frames bound the memory; each block is batched
            fr = slice(a, min(n_t, a + step))

            def two(arr: np.ndarray, fr: slice = fr) -> np.ndarray:
                """(T, K, C[, 2]) -> (t, B, G, 2, C[, 2]): the two points' observations under each labelling."""
                m = G if arr.ndim == 3 else g
                a_, b_ = arr[fr][:, ia][:, :, None], arr[fr][:, ib][:, :, None]
                return np.stack([np.where(m, b_, a_), np.where(m, a_, b_)], axis=3)

            obs, nrm = two(px), two(xn)  # (t, B, G, 2, C, 2)
            val, wts = two(valid), two(cf)  # (t, B, G, 2, C)
            A = np.nan_to_num(nrm)[..., :, None] * rig.P[:, 2:3, :] - rig.P[:, :2, :]
            A = A * np.where(val, wts, 0.0)[..., None, None]
            Ms = np.einsum(
                "sc,...cjk->...sjk", S.astype(float), np.einsum("...cij,...cik->...cjk", A, A)
            )
            X = rig.solve(Ms)  # (t, B, G, 2, S, 3)
            e = np.linalg.norm(rig.project(X) - obs[..., None, :, :], axis=-1)  # (t, B, G, 2, S, C)
            e = np.nan_to_num(e, nan=np.inf)
            inside = np.where(e < tau, inlier_slope * e, tau + e)
            v = val[..., None, :]
            cost = np.where(S & v, inside, 0.0).sum(-1) + tau * (~S & v).sum(-1)
            feas = np.all(v | ~S, axis=-1) & np.all(np.isfinite(X), axis=-1)
            cost = np.where(feas, cost, np.inf)
            order = np.argsort(cost, axis=-1)[..., :n_keep]
            X_out[fr] = np.take_along_axis(X, order[..., None], axis=-2)
            C_out[fr] = np.take_along_axis(cost, order, axis=-1)
            I_out[fr] = order
        return X_out, C_out, I_out

    chains = []  # (points (B, J) indices, labellings G, state X (T, B, M, J, 3), state cost, state subsets)
    if len(pairs):
        # every labelling, all views swapped included: which side is which is then decided by
        # continuity in time and by the penalty per relabelled view, not by a majority rule per frame
        G = np.array(list(itertools.product([False, True], repeat=n_c)), dtype=bool).reshape(
            -1, n_c
        )
        Xc, Cc, Ic = candidates(li, ri, G)
        shape = (n_t, len(pairs), len(G), n_keep, n_keep)
        sx = np.stack(
            [
                np.broadcast_to(Xc[:, :, :, 0, :, None], shape + (3,)),
                np.broadcast_to(Xc[:, :, :, 1, None, :], shape + (3,)),
            ],
            axis=-2,
        )
        sc = Cc[:, :, :, 0, :, None] + Cc[:, :, :, 1, None, :]
        si = np.stack(
            [
                np.broadcast_to(Ic[:, :, :, 0, :, None], shape),
                np.broadcast_to(Ic[:, :, :, 1, None, :], shape),
            ],
            axis=-1,
        )
        sx, sc = sx.reshape(n_t, len(pairs), -1, 2, 3), sc.reshape(n_t, len(pairs), -1)
        si = si.reshape(n_t, len(pairs), -1, 2)
        gi = np.broadcast_to(np.repeat(np.arange(len(G)), n_keep * n_keep), sc.shape)
        if sc.shape[-1] > n_states:  # the recursion only needs the plausible states
            top = np.argsort(sc, axis=-1)[..., :n_states]
            sx = np.take_along_axis(sx, top[..., None, None], axis=2)
            si = np.take_along_axis(si, top[..., None], axis=2)
            sc, gi = np.take_along_axis(sc, top, axis=-1), np.take_along_axis(gi, top, axis=-1)
        chains.append((np.stack([li, ri], 1), G, sx, sc, si, gi))
    if len(single):
        G1 = np.zeros((1, n_c), dtype=bool)
        Xc, Cc, Ic = candidates(single, single, G1)
        chains.append(
            (
                single[:, None],
                G1,
                Xc[:, :, 0, :1].transpose(0, 1, 3, 2, 4),
                Cc[:, :, 0, 0],
                Ic[:, :, 0, :1].transpose(0, 1, 3, 2),
                np.zeros(Cc[:, :, 0, 0].shape, dtype=np.int64),
            )
        )

    def run(extra: list | None, body: np.ndarray):
        est = np.full((n_t, n_k, 3), np.nan)
        cst = np.full((n_t, n_k), np.nan)
        sw = np.zeros((n_t, n_k, n_c), dtype=bool)
        sub = np.zeros((n_t, n_k), dtype=np.int64)
        for i, (pts, G, sx, sc, si, gi) in enumerate(chains):
            cost = sc if extra is None else sc + extra[i]
            # each view relabelled away from the body's labelling of the frame pays the penalty
            cost = cost + swap_penalty_px * (G[gi] != body[:, None, None, :]).sum(-1)
            none = ~np.isfinite(cost).any(axis=-1)  # nothing feasible
            cost = cost.copy()
            cost[..., 0] = np.where(none, 0.0, cost[..., 0])  # a placeholder state
            path = _viterbi(
                np.where(np.isfinite(cost)[..., None, None], sx, np.nan), cost, motion_weight
            )

            def take(a: np.ndarray, path: np.ndarray = path) -> np.ndarray:
                return np.take_along_axis(
                    a, path.reshape(path.shape + (1,) * (a.ndim - 2)), axis=2
                )[:, :, 0]

            Xp = np.where(none[..., None, None], np.nan, take(sx))  # (T, B, J, 3)
            for j in range(pts.shape[1]):
                est[:, pts[:, j]] = Xp[:, :, j]
                sw[:, pts[:, j]] = G[take(gi)]
                sub[:, pts[:, j]] = take(si)[:, :, j]
                cst[:, pts[:, j]] = take(sc)
        return est, sw, sub, cst

    body = np.zeros((n_t, n_c), dtype=bool)
    est, sw, sub, cst = run(None, body)
    if len(pairs):
        # the body's labelling per frame and view: what most pairs chose (detectors swap whole
        # bodies; pairs too close together to decide alone then follow it)
        body = 2 * sw[:, li].sum(axis=1) > len(li)
        est, sw, sub, cst = run(None, body)
    bl = np.array([(idx[a], idx[b]) for a, b in bones], dtype=int).reshape(-1, 2)
    if len(bl) and bone_weight > 0:
        for _ in range(n_iter):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                L = np.nanmedian(
                    np.linalg.norm(est[:, bl[:, 0]] - est[:, bl[:, 1]], axis=-1), axis=0
                )
            extra = []
            for pts, _G, sx, _sc, _si, _gi in chains:
                parts = []
                for j in range(pts.shape[1]):
                    full = np.full((n_t, n_k, sx.shape[2], 3), np.nan)
                    full[:, pts[:, j]] = sx[:, :, :, j]
                    parts.append(_bone_cost(full, est, bl, L, bone_weight)[:, pts[:, j]])
                extra.append(sum(parts))
            est, sw, sub, cst = run(extra, body)

    # the chosen subset's cameras (after relabelling) explain the point if all are within threshold
    mate = np.arange(n_k)
    mate[li], mate[ri] = ri, li
    rpx = np.where(sw[..., None], px[:, mate], px)
    used = S[sub] & np.isfinite(est).all(-1)[..., None]
    if refine:
        rcf = np.where(sw, cf[:, mate], cf)
        est = refine_points(cams, est, rpx, np.where(used, rcf, 0.0))
    err = np.linalg.norm(reproject(cams, est) - rpx, axis=-1)
    explained = np.all(~used | (np.nan_to_num(err, nan=np.inf) < tau), axis=-1) & (
        used.sum(-1) >= 2
    )
    return TrackResult(est, sw, used, explained, cst)


def refine_points(
    cameras: Sequence[Camera],
    points: np.ndarray,
    pixels: np.ndarray,
    weights: np.ndarray,
    *,
    iterations: int = 5,
    step_mm: float = 0.5,
) -> np.ndarray:
    """Minimise the weighted squared reprojection error (pixels, with distortion) of 3D points.

    The "gold standard" non-linear triangulation (Hartley & Zisserman 2004, sec. 12.3 and
    4.2.3), started from the DLT: Gauss-Newton steps with a central-difference Jacobian,
    for every point at once (one 3x3 solve each).

    Parameters
    ----------
    cameras : sequence of Camera, length C
    points : array_like, shape (..., 3)
        Starting points, mm; NaN stays NaN.
    pixels : array_like, shape (..., C, 2)
        Observations (distorted pixels).
    weights : array_like, shape (..., C)
        0 for cameras not used; points with fewer than two used cameras are returned as given.
    iterations : int
    step_mm : float
        Finite-difference step.

    Returns
    -------
    ndarray, shape (..., 3)
    """
    cams = tuple(cameras)
    X = np.array(points, dtype=float, copy=True)
    obs = np.nan_to_num(np.asarray(pixels, dtype=float))
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(X).all(-1) & ((w > 0).sum(-1) >= 2)
    w = np.where(ok[..., None], w, 0.0)
    eye = np.eye(3) * step_mm
    for _ in range(iterations):
        Xs = np.where(ok[..., None], X, 0.0)
        r = reproject(cams, Xs) - obs  # (..., C, 2)
        J = np.stack(
            [
                (reproject(cams, Xs + eye[i]) - reproject(cams, Xs - eye[i])) / (2 * step_mm)
                for i in range(3)
            ],
            axis=-1,
        )  # (..., C, 2, 3)
        J = np.nan_to_num(J)
        r = np.nan_to_num(r)
        H = np.einsum("...c,...cui,...cuj->...ij", w, J, J) + 1e-9 * np.eye(3)
        b = np.einsum("...c,...cui,...cu->...i", w, J, r)
        X = np.where(ok[..., None], X - np.linalg.solve(H, b[..., None])[..., 0], X)
    return X
