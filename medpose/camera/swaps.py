"""Left/right identity repair in each camera view, before triangulation.

2D detectors confuse the left and right limbs of a person seen from behind or from the side,
in one view at a time.  For every left/right pair of keypoints (``knee_l``/``knee_r`` ...),
every frame and every assignment of "swapped / not swapped" to the views, the pair is
triangulated (the consensus of :mod:`medpose.camera.dlt`) and scored by its
capped reprojection error ``sum_c min(e_c, cap)`` over the views that saw it.  The
assignment with the lowest score summed over all pairs is chosen for the whole body first
(it must beat keeping the labels by ``penalty`` per relabelled view); a pair then departs
from it only if its own score gains ``penalty`` per view changed (limb-only swaps, and pairs
too close together to decide alone follow the body).  Either relabels only views that
contradict the labelling it departs from (an observation of the pair beyond ``threshold_px``
of its consensus): two opposite cameras relabelled together can give a pair level across the
body a "ghost" solution that reprojects as well as the truth and is wrong in 3D.  Swapping every view at once changes
nothing but the names, so only the assignments that relabel at most half of the views are
tried.  All pairs, frames and assignments are solved in one batched call, each camera
subset's system once per labelling of its own views (:func:`medpose.camera.dlt.consensus`).  Pose2Sim does the same test point by point inside its
triangulation loop (Pagnon et al. 2021, *Sensors* 21:6530, ``handle_LR_swap``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import lr_pairs
from ..temporal.swaps import SWAP_REPORT_COLUMNS
from .dlt import Rig, consensus
from .model import Camera

__all__ = [
    "SWAP_REPORT_COLUMNS",
    "ViewSwaps",
    "lr_pairs",
    "repair_view_swaps",
    "swap_assignments",
    "view_swap_consensus",
]


def swap_assignments(n_cameras: int) -> np.ndarray:
    """Assignments of swapped views worth trying: (G, C) bool, at most half the views swapped
    (with exactly half, only those that keep the first view), the no-swap one first."""
    all_ = np.array(list(itertools.product([False, True], repeat=n_cameras)), dtype=bool).reshape(
        -1, n_cameras
    )
    k = all_.sum(axis=1)
    keep = (2 * k < n_cameras) | ((2 * k == n_cameras) & ~all_[:, 0])
    return all_[keep]


@dataclass(frozen=True)
class ViewSwaps:
    """Outcome of :func:`view_swap_consensus`.

    Attributes
    ----------
    keypoints_2d : dict camera name -> KeypointSequence
        The keypoints with the chosen views' labels (positions and confidences) exchanged.
    report : pandas.DataFrame
        As returned by :func:`repair_view_swaps`.
    points, errors, used : ndarray (T, K, 3), (T, K, C), (T, K, C) bool
        The consensus (:func:`~medpose.camera.dlt.triangulate_points`, ``min_cameras=2``) of
        every keypoint of exactly one pair, on the relabelled views; NaN / False elsewhere.
    solved : ndarray (K,) bool
        The keypoints those arrays hold.
    """

    keypoints_2d: dict[str, KeypointSequence]
    report: pd.DataFrame
    points: np.ndarray
    errors: np.ndarray
    used: np.ndarray
    solved: np.ndarray


def repair_view_swaps(
    cameras: Sequence[Camera],
    keypoints_2d: Mapping[str, KeypointSequence],
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    cap_px: float = 30.0,
    penalty_px: float = 2.0,
    progress: bool = False,
) -> tuple[dict[str, KeypointSequence], pd.DataFrame]:
    """Undo per-view left/right swaps that raise the reprojection error.

    Parameters
    ----------
    cameras : sequence of Camera
        The cameras named in ``keypoints_2d`` (others are ignored).
    keypoints_2d : mapping camera name -> 2D KeypointSequence
        Synchronised, same keypoint names (as :func:`~medpose.camera.triangulate` checks).
    pairs : sequence of (left, right) names, optional
        Default: every ``x_l`` / ``x_r`` pair present (:func:`medpose.layouts.lr_pairs`).
    min_confidence, threshold_px : float
        As in :func:`~medpose.camera.dlt.triangulate_points`.
    cap_px : float
        Errors above this count as ``cap_px`` in the score (an outlier view costs the same
        whatever its labels).
    penalty_px : float
        Score a relabelled view must gain.
    progress : bool
        Show a progress bar.

    Returns
    -------
    repaired : dict camera name -> KeypointSequence
        The keypoints with the chosen views' labels (positions and confidences) exchanged.
    report : pandas.DataFrame
        One row per relabelled (frame, camera, pair): ``stage`` ("view"), ``frame``,
        ``time_s``, ``camera``, ``keypoint_l``, ``keypoint_r``, ``cost_before`` and
        ``cost_after`` (the pair's capped reprojection score, px).

    Raises
    ------
    InputError
        A camera without calibration, a pair naming an unknown keypoint.
    """
    r = view_swap_consensus(
        cameras,
        keypoints_2d,
        pairs=pairs,
        min_confidence=min_confidence,
        threshold_px=threshold_px,
        cap_px=cap_px,
        penalty_px=penalty_px,
        progress=progress,
    )
    return r.keypoints_2d, r.report


def view_swap_consensus(
    cameras: Sequence[Camera],
    keypoints_2d: Mapping[str, KeypointSequence],
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    cap_px: float = 30.0,
    penalty_px: float = 2.0,
    progress: bool = False,
) -> ViewSwaps:
    """:func:`repair_view_swaps` that also returns the consensus of the repaired pairs.

    Every labelling of the views is a "mix" of the left and right observations
    (:func:`medpose.camera.dlt.consensus`): the left point under assignment ``g`` takes the
    right observation in the views ``g`` swaps, the right point the complement.  All mixes
    of all pairs and frames are solved in one batched call, so the chosen labelling's
    consensus is already known and is returned for reuse (parameters as
    :func:`repair_view_swaps`).
    """
    by_name = {c.name: c for c in cameras}
    cam_names = [n for n in keypoints_2d]
    missing = [n for n in cam_names if n not in by_name]
    if missing:
        raise InputError(
            f"repair_view_swaps: no calibration for camera(s) {missing}; known {sorted(by_name)}"
        )
    cams = [by_name[n] for n in cam_names]
    seqs = [keypoints_2d[n] for n in cam_names]
    names = seqs[0].names
    pairs = lr_pairs(names) if pairs is None else list(pairs)
    for a, b in pairs:
        for n in (a, b):
            if n not in names:
                raise InputError(
                    f"repair_view_swaps: pair keypoint {n!r} not in the keypoints {list(names)}"
                )
    out = {n: s for n, s in zip(cam_names, seqs)}
    n_t, n_k, n_c = seqs[0].n_frames, len(names), len(cams)
    points = np.full((n_t, n_k, 3), np.nan)
    errors = np.full((n_t, n_k, n_c), np.nan)
    used = np.zeros((n_t, n_k, n_c), dtype=bool)
    solved = np.zeros(n_k, dtype=bool)
    report = pd.DataFrame(columns=SWAP_REPORT_COLUMNS)
    if not pairs:
        return ViewSwaps(out, report, points, errors, used, solved)
    li = np.array([names.index(a) for a, _ in pairs])
    ri = np.array([names.index(b) for _, b in pairs])
    px = np.stack([s.positions for s in seqs], axis=2)  # (T, K, C, 2)
    cf = np.stack([s.confidence for s in seqs], axis=2)  # (T, K, C)
    G = swap_assignments(n_c)  # (G, C)
    # every mix of the two observations per view: label 1 = the right keypoint's
    mixes = np.array(list(itertools.product([0, 1], repeat=n_c)), dtype=np.int64)
    code = 2 ** np.arange(n_c)[::-1]
    obs = np.stack([px[:, li], px[:, ri]], axis=2)  # (T, P, 2, C, 2)
    obc = np.stack([cf[:, li], cf[:, ri]], axis=2)
    n_p = len(pairs)
    X, E, U = consensus(
        Rig.build(cams, 2),
        obs.reshape(n_t * n_p, 2, n_c, 2),
        obc.reshape(n_t * n_p, 2, n_c),
        mixes=mixes,
        min_confidence=min_confidence,
        threshold_px=threshold_px,
        progress=progress,
        desc="left/right per view",
    )
    X = X.reshape(n_t, n_p, len(mixes), 3)
    E = E.reshape(n_t, n_p, len(mixes), n_c)
    U = U.reshape(n_t, n_p, len(mixes), n_c)
    cams_i = np.arange(n_c)
    with np.errstate(invalid="ignore"):
        valid = np.all(np.isfinite(obs), axis=-1) & (obc >= min_confidence)  # (T, P, 2, C)
    vmix = valid[:, :, mixes, cams_i]  # (T, P, M, C): validity of each mix's observations
    capped = np.where(vmix, np.minimum(np.nan_to_num(E, nan=cap_px), cap_px), 0.0).sum(-1)
    gl = G.astype(np.int64) @ code  # the left point's mix under each assignment
    gr = (len(mixes) - 1) - gl  # the right point's: the complement
    score = capped[:, :, gl] + capped[:, :, gr]  # (T, P, G)
    # a view contradicts an assignment when one of its valid observations of the pair is not
    # within threshold of that assignment's consensus (no solution counts as not within)
    with np.errstate(invalid="ignore"):
        off = vmix & ~np.less(E, threshold_px)  # (T, P, M, C)
    contra = off[:, :, gl] | off[:, :, gr]  # (T, P, G, C)
    # whole-body decision first (detectors swap whole bodies or limbs in a view): the
    # assignment with the lowest summed score over all pairs, then per pair only a different
    # assignment that pays ``penalty`` per view it changes.  Either may relabel only views
    # that contradict the labelling it departs from: where that labelling's consensus
    # explains every view, a lower score is noise (e.g. two opposite cameras relabelled
    # together, a "ghost" that reprojects as well and is wrong in 3D)
    free = contra[:, :, 0].any(axis=1)  # (T, C): a view the labels as given leave unexplained
    body_ok = ~(G[None, :, :] & ~free[:, None, :]).any(axis=-1)  # (T, G)
    body_cost = score.sum(axis=1) + penalty_px * G.sum(axis=1)
    body = np.argmin(np.where(body_ok, body_cost, np.inf), axis=-1)  # (T,)
    changed = G[None, :, :] != G[body][:, None, :]  # (T, G, C)
    t_i, p_i = np.indices(score.shape[:2])
    free = contra[t_i, p_i, body[:, None]]  # (T, P, C): views the body's labels leave unexplained
    ok = ~(changed[:, None] & ~free[:, :, None, :]).any(axis=-1)  # (T, P, G)
    cost = score + penalty_px * changed.sum(axis=-1)[:, None, :]
    best = np.argmin(np.where(ok, cost, np.inf), axis=-1)  # (T, P)
    sw = G[best]  # (T, P, C)
    new_px, new_cf = px.copy(), cf.copy()
    new_px[:, li] = np.where(sw[..., None], px[:, ri], px[:, li])
    new_px[:, ri] = np.where(sw[..., None], px[:, li], px[:, ri])
    new_cf[:, li] = np.where(sw, cf[:, ri], cf[:, li])
    new_cf[:, ri] = np.where(sw, cf[:, li], cf[:, ri])
    out = {
        n: s.with_positions(new_px[:, :, c], new_cf[:, :, c])
        for c, (n, s) in enumerate(zip(cam_names, seqs))
    }
    # the chosen mixes' consensus, for keypoints in exactly one pair
    once = np.bincount(np.concatenate([li, ri]), minlength=n_k) == 1
    for k_i, mix in ((li, gl[best]), (ri, gr[best])):
        keep = once[k_i]
        k_i, m_i = k_i[keep], mix[:, keep]
        t_k, p_k = t_i[:, keep], p_i[:, keep]
        points[:, k_i] = X[t_k, p_k, m_i]
        errors[:, k_i] = E[t_k, p_k, m_i]
        used[:, k_i] = U[t_k, p_k, m_i]
        solved[k_i] = True
    t, p, c = np.nonzero(sw)
    if len(t):
        before = score[t, p, 0]
        after = score[t, p, best[t, p]]
        report = pd.DataFrame(
            {
                "stage": "view",
                "frame": t,
                "time_s": seqs[0].start + t / seqs[0].rate,
                "camera": np.array(cam_names, dtype=object)[c],
                "keypoint_l": np.array([a for a, _ in pairs], dtype=object)[p],
                "keypoint_r": np.array([b for _, b in pairs], dtype=object)[p],
                "cost_before": before,
                "cost_after": after,
            },
            columns=SWAP_REPORT_COLUMNS,
        )
    return ViewSwaps(out, report, points, errors, used, solved)
