"""Triangulation of 2D keypoints from calibrated cameras into 3D sequences.

:func:`triangulate` chains the steps of :mod:`medpose.camera`: per-view left/right repair
(:mod:`medpose.camera.swaps`), the consensus over camera subsets of a confidence-weighted
linear (DLT) triangulation (:mod:`medpose.camera.dlt`: Hartley & Zisserman 2004, *Multiple
View Geometry in Computer Vision*, 2nd ed., sec. 12.2; camera weighting as in Pose2Sim,
Pagnon et al. 2021, *Sensors* 21:6530), and the left/right repair over time in 3D
(:mod:`medpose.temporal.swaps`), or the temporally consistent choice of cameras and labels
(:mod:`medpose.camera.tracking`).  Every stage is batched over frames and keypoints.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data import KeypointSequence
from ..errors import DegenerateConfiguration, InputError
from ..layouts import lr_pairs
from ..report.display import triangulation_html, triangulation_repr
from ..temporal.gaps import DEFAULT_BONES
from ..temporal.swaps import repair_swaps_3d
from .dlt import dlt, reproject, triangulate_points
from .model import Camera
from .swaps import SWAP_REPORT_COLUMNS, view_swap_consensus
from .tracking import track_points

__all__ = [
    "TriangulationResult",
    "triangulate",
    "triangulate_points",
    "dlt",
    "reproject",
    "ImageSizeWarning",
    "PROGRESS_MIN_FRAMES",
]

#: recordings of at least this many frames show a progress bar by default
PROGRESS_MIN_FRAMES = 5000


class ImageSizeWarning(UserWarning):
    """The image size of the keypoints disagrees with the calibration's."""


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True, kw_only=True)
class TriangulationResult:
    """Output of :func:`triangulate`.

    Attributes
    ----------
    sequence : KeypointSequence
        (T, K, 3) in mm, frame = the cameras' world frame (``"camera"``), names and rate as
        the 2D input; its confidence is the 3D confidence below.
    reprojection_error : ndarray (T, K)
        Mean reprojection error over the cameras used, px.
    n_cameras : ndarray (T, K), int
        Number of cameras used.
    confidence : ndarray (T, K)
        3D confidence in [0, 1]: mean 2D confidence of the cameras used times
        ``max(0, 1 - reprojection_error / threshold_px)``; 0 where no point.
    errors : ndarray (T, K, C)
        Reprojection error into every camera that observed the point (used or not), px; NaN
        where the camera has no observation.
    used : ndarray (T, K, C), bool
    camera_names : tuple of str
        The C cameras in the order of the last axis.
    keypoints_2d : dict of str to KeypointSequence
        The 2D keypoints after left/right relabelling (the observations ``errors`` refer to).
    swaps : pandas.DataFrame
        Left/right relabelling done per view and over time (see
        :func:`medpose.camera.swaps.repair_view_swaps` and
        :func:`medpose.temporal.swaps.repair_swaps_3d`); column ``stage`` says which.
    """

    sequence: KeypointSequence
    reprojection_error: np.ndarray
    n_cameras: np.ndarray
    confidence: np.ndarray
    errors: np.ndarray
    used: np.ndarray
    camera_names: tuple[str, ...]
    keypoints_2d: dict = field(repr=False)
    swaps: pd.DataFrame = field(repr=False)

    def error_table(self, min_visibility: float = 0.5) -> pd.DataFrame:
        """Tidy table of every observation with confidence >= ``min_visibility``:
        ``frame, keypoint, camera, error_px, used``."""
        conf = np.stack([self.keypoints_2d[n].confidence for n in self.camera_names], axis=-1)
        sel = (conf >= min_visibility) & np.isfinite(self.errors)
        ti, ki, ci = np.nonzero(sel)
        return pd.DataFrame(
            {
                "frame": ti,
                "keypoint": np.array(self.sequence.names, dtype=object)[ki],
                "camera": np.array(self.camera_names, dtype=object)[ci],
                "error_px": self.errors[sel],
                "used": self.used[sel],
            }
        )

    def plot(self, min_visibility: float = 0.5, ax: Any = None) -> Any:
        """Per camera, the median reprojection error (px) over the keypoints it saw with
        confidence >= ``min_visibility``, frame by frame (used or not, as :meth:`error_table`),
        on a matplotlib axis; frames where a left/right label was changed (:attr:`swaps`, any
        stage) ticked along the bottom."""
        ax = ax or plt.gca()
        t = self.sequence.start + np.arange(self.sequence.n_frames) / self.sequence.rate
        for c, name in enumerate(self.camera_names):
            conf = self.keypoints_2d[name].confidence
            e = np.where(conf >= min_visibility, self.errors[..., c], np.nan)
            seen = np.isfinite(e).any(axis=1)
            med = np.full(len(t), np.nan)
            med[seen] = np.nanmedian(e[seen], axis=1)
            ax.plot(t, med, lw=1, label=name)
        frames = np.unique(self.swaps["frame"].to_numpy(int))
        if len(frames):
            ax.plot(t[frames], np.zeros(len(frames)), "|", color="k", ms=8, label="relabelled")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("median reprojection error (px)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
        ax.set_title(triangulation_repr(self), fontsize=7, wrap=True)
        return ax

    def __repr__(self) -> str:
        return triangulation_repr(self)

    def _repr_html_(self) -> str:
        return triangulation_html(self)


# ----------------------------------------------------------------------------- checks
def _check_inputs(
    cameras, keypoints_2d: Mapping[str, KeypointSequence]
) -> tuple[list[Camera], list[KeypointSequence]]:
    if isinstance(cameras, Mapping):
        cameras = list(cameras.values())
    cams = {c.name: c for c in cameras}
    if not isinstance(keypoints_2d, Mapping) or not keypoints_2d:
        raise InputError(
            "triangulate: keypoints_2d must be a non-empty mapping camera name -> 2D KeypointSequence"
        )
    missing = [n for n in keypoints_2d if n not in cams]
    if missing:
        raise InputError(
            f"triangulate: keypoints for camera(s) {missing} but the calibration has only "
            f"{sorted(cams)}; expected every keypoint camera in the calibration"
        )
    names = list(keypoints_2d)
    if len(names) < 2:
        raise InputError(
            f"triangulate: keypoints from {len(names)} camera ({names}); expected at least 2"
        )
    seqs = [keypoints_2d[n] for n in names]
    ref = seqs[0]
    for n, s in zip(names, seqs):
        if not isinstance(s, KeypointSequence) or s.ndim != 2:
            raise InputError(
                f"triangulate: keypoints of camera {n!r} must be a 2D KeypointSequence (pixels)"
            )
        if s.n_frames != ref.n_frames:
            raise InputError(
                f"triangulate: camera {n!r} has {s.n_frames} frames but camera {names[0]!r} has "
                f"{ref.n_frames}; expected synchronised sequences of equal length"
            )
        if not np.isclose(s.rate, ref.rate):
            raise InputError(
                f"triangulate: camera {n!r} is at {s.rate:g} Hz but camera {names[0]!r} at "
                f"{ref.rate:g} Hz; expected one frame rate"
            )
        absent = [k for k in ref.names if k not in s.names]
        if absent:
            raise InputError(
                f"triangulate: camera {n!r} lacks keypoints {absent}; expected the keypoints of "
                f"camera {names[0]!r}"
            )
        if not np.isfinite(s.positions).any():
            raise InputError(
                f"triangulate: every keypoint of camera {n!r} is NaN (no detection in any frame)"
            )
    seqs = [s if s.names == ref.names else s.select(ref.names) for s in seqs]
    return [cams[n] for n in names], seqs


def _check_sizes(
    cams: Sequence[Camera],
    seqs: Sequence[KeypointSequence],
    image_sizes: Mapping[str, Sequence[int]] | None,
    tolerance_px: float,
) -> None:
    for cam, s in zip(cams, seqs):
        w, h = cam.size
        if image_sizes is not None and cam.name in image_sizes:
            iw, ih = (int(v) for v in image_sizes[cam.name])
            dw, dh = iw - w, ih - h
            if abs(dw) > tolerance_px or abs(dh) > tolerance_px:
                warnings.warn(
                    f"camera {cam.name!r}: images are {iw}x{ih} px but the calibration says {w}x{h} px "
                    f"({dw:+d} px in width, {dh:+d} px in height; tolerance {tolerance_px:g} px); "
                    "keypoints are used as they are",
                    ImageSizeWarning,
                    stacklevel=3,
                )
        with np.errstate(invalid="ignore"):
            xs, ys = s.positions[..., 0], s.positions[..., 1]
            out = (
                np.nanmax(xs) > w + tolerance_px
                or np.nanmax(ys) > h + tolerance_px
                or np.nanmin(xs) < -tolerance_px
                or np.nanmin(ys) < -tolerance_px
            )
        if out:
            warnings.warn(
                f"camera {cam.name!r}: keypoints reach x {np.nanmin(xs):.0f}..{np.nanmax(xs):.0f}, "
                f"y {np.nanmin(ys):.0f}..{np.nanmax(ys):.0f} px, outside the calibrated image {w}x{h} px",
                ImageSizeWarning,
                stacklevel=3,
            )


# ----------------------------------------------------------------------------- main entry
def triangulate(
    cameras: Sequence[Camera] | Mapping[str, Camera],
    keypoints_2d: Mapping[str, KeypointSequence],
    *,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    min_cameras: int = 2,
    repair_swaps: bool = True,
    swap_cap_px: float = 30.0,
    swap_penalty_px: float = 2.0,
    image_sizes: Mapping[str, Sequence[int]] | None = None,
    size_tolerance_px: float = 2.0,
    temporal: bool = False,
    motion_weight: float = 0.05,
    bone_weight: float = 0.25,
    progress: bool | None = None,
) -> TriangulationResult:
    """Triangulate synchronised 2D keypoints of several calibrated cameras into 3D.

    Steps: (1) check the inputs; (2) per view, relabel left/right swaps that lower the
    reprojection error (:func:`medpose.camera.swaps.repair_view_swaps`); (3) undistort and
    solve a confidence-weighted DLT for every camera subset of every (frame, keypoint) at
    once, and keep per point the largest subset that agrees within ``threshold_px`` (see the
    module docstring); (4) relabel left/right pairs whose 3D trajectories jump into each
    other (:func:`medpose.temporal.swaps.repair_swaps_3d`), consistently in all views.

    Parameters
    ----------
    cameras : sequence or mapping of Camera
        From :func:`medpose.io.read_calibration`; may hold more cameras than ``keypoints_2d``.
    keypoints_2d : mapping of str to KeypointSequence
        Camera name -> 2D keypoints (pixels, with confidence), e.g. from ``read_openpose``;
        same frame count, rate and keypoint names in every camera.
    min_confidence : float
        Observations below this confidence are not used (they are still reported).
    threshold_px : float
        Reprojection error (px) under which a camera agrees with a solution.
    min_cameras : int
        Fewest cameras used for a point (>= 2).
    repair_swaps : bool
        Do the left/right repair (steps 2 and 4).
    swap_cap_px, swap_penalty_px : float
        Per-view repair: errors are capped at ``swap_cap_px`` in its cost and each relabelled
        view must gain at least ``swap_penalty_px``.
    image_sizes : mapping of str to (width, height), optional
        Actual image sizes of the videos; a difference from the calibration beyond
        ``size_tolerance_px`` gives an :class:`ImageSizeWarning` naming the camera and the amount.
    size_tolerance_px : float
    temporal : bool
        Choose each point's cameras and each view's left/right labels over the whole
        sequence instead of frame by frame (:func:`medpose.camera.tracking.track_points`:
        robust image cost + ``motion_weight`` px per mm of motion + ``bone_weight`` px per mm
        of deviation from the median segment lengths, solved by dynamic programming); the 3D
        swap repair over time is then not needed and not run.
    motion_weight, bone_weight : float
        Weights of the temporal mode.
    progress : bool, optional
        Show tqdm progress bars; by default only for recordings of at least
        :data:`PROGRESS_MIN_FRAMES` frames.

    Returns
    -------
    TriangulationResult

    Raises
    ------
    InputError
        A camera of ``keypoints_2d`` absent from the calibration, fewer than 2 cameras,
        different frame counts, rates or keypoint sets, a camera whose keypoints are all NaN,
        a 3D sequence given as keypoints.
    DegenerateConfiguration
        If no keypoint could be triangulated in any frame.

    Warns
    -----
    ImageSizeWarning
        Image size differing from the calibration, or keypoints outside the calibrated image.
    UserWarning
        Keypoints that no two cameras saw in any frame (they are NaN in the result).
    """
    cams, seqs = _check_inputs(cameras, keypoints_2d)
    _check_sizes(cams, seqs, image_sizes, size_tolerance_px)
    ref = seqs[0]
    names = ref.names
    cam_names = tuple(c.name for c in cams)
    kp = dict(zip(cam_names, seqs))
    reports = []
    show = ref.n_frames >= PROGRESS_MIN_FRAMES if progress is None else bool(progress)
    done = None
    if repair_swaps and not temporal:
        view = view_swap_consensus(
            cams,
            kp,
            min_confidence=min_confidence,
            threshold_px=threshold_px,
            cap_px=swap_cap_px,
            penalty_px=swap_penalty_px,
            progress=show,
        )
        kp = view.keypoints_2d
        reports.append(view.report)
        if min_cameras == 2:  # the pairs' consensus is already known
            done = view
    px = np.stack([kp[n].positions for n in cam_names], axis=2)  # (T, K, C, 2)
    cf = np.stack([kp[n].confidence for n in cam_names], axis=2)  # (T, K, C)
    if temporal:
        X, E, U, kp, report_t = _temporal(
            cams,
            kp,
            names,
            min_confidence=min_confidence,
            threshold_px=threshold_px,
            swap_penalty_px=swap_penalty_px,
            motion_weight=motion_weight,
            bone_weight=bone_weight,
            pairs=lr_pairs(names) if repair_swaps else [],
        )
        cf = np.stack([kp[n].confidence for n in cam_names], axis=2)
        reports.append(report_t)
    else:
        todo = np.ones(len(names), dtype=bool) if done is None else ~done.solved
        X = np.full(px.shape[:2] + (3,), np.nan) if done is None else done.points.copy()
        E = np.full(cf.shape, np.nan) if done is None else done.errors.copy()
        U = np.zeros(cf.shape, dtype=bool) if done is None else done.used.copy()
        if todo.any():
            X[:, todo], E[:, todo], U[:, todo] = triangulate_points(
                cams,
                px[:, todo],
                cf[:, todo],
                min_confidence=min_confidence,
                threshold_px=threshold_px,
                min_cameras=min_cameras,
                progress=show,
            )
    if not np.isfinite(X).any():
        raise DegenerateConfiguration(
            f"triangulate: no keypoint was seen by {min_cameras} cameras with confidence "
            f">= {min_confidence:g} in any frame (cameras {list(cam_names)})"
        )
    never = [names[k] for k in np.flatnonzero(~np.isfinite(X).all(axis=2).any(axis=0))]
    if never:
        warnings.warn(
            f"triangulate: keypoints {never} were not seen by {min_cameras} cameras with confidence >= "
            f"{min_confidence:g} in any frame; they are NaN",
            UserWarning,
            stacklevel=2,
        )
    n_used = U.sum(axis=2)
    with np.errstate(invalid="ignore"):
        mean_err = np.where(
            n_used > 0, np.nansum(np.where(U, E, 0.0), axis=2) / np.maximum(n_used, 1), np.nan
        )
        mean_conf = np.where(
            n_used > 0, np.sum(np.where(U, cf, 0.0), axis=2) / np.maximum(n_used, 1), 0.0
        )
    conf3 = np.where(
        np.isfinite(X).all(axis=2),
        mean_conf * np.clip(1.0 - np.nan_to_num(mean_err, nan=np.inf) / threshold_px, 0.0, 1.0),
        0.0,
    )
    seq = KeypointSequence(
        X, names, ref.rate, confidence=conf3, frame=cams[0].world, start=ref.start
    )
    if repair_swaps and lr_pairs(names) and not temporal:
        seq, report3 = repair_swaps_3d(seq, bones=_bones(names))
        reports.append(report3)
        flips = _flip_mask(report3, names, seq.n_frames)
        if flips is not None:
            li, ri, fl = flips  # (P,), (P,), (T, P)
            perm = np.broadcast_to(np.arange(len(names)), (seq.n_frames, len(names))).copy()
            perm[:, li] = np.where(fl, ri, li)
            perm[:, ri] = np.where(fl, li, ri)

            def take(a: np.ndarray, perm: np.ndarray = perm) -> np.ndarray:
                return np.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=1)

            mean_err, n_used, E, U, conf3 = (take(a) for a in (mean_err, n_used, E, U, conf3))
            kp = {n: s.with_positions(take(s.positions), take(s.confidence)) for n, s in kp.items()}
    swaps = (
        pd.concat(reports, ignore_index=True)
        if reports
        else pd.DataFrame(columns=SWAP_REPORT_COLUMNS)
    )
    return TriangulationResult(
        sequence=seq,
        reprojection_error=mean_err,
        n_cameras=n_used.astype(int),
        confidence=seq.confidence.copy(),
        errors=E,
        used=U,
        camera_names=cam_names,
        keypoints_2d=kp,
        swaps=swaps,
    )


def _bones(names) -> list[tuple[str, str]]:
    """The segments of :data:`~medpose.temporal.gaps.DEFAULT_BONES` whose two keypoints are in
    ``names``."""
    return [b for b in DEFAULT_BONES if b[0] in names and b[1] in names]


def _flip_mask(report: pd.DataFrame, names: tuple[str, ...], n_frames: int):
    if report.empty:
        return None
    pairs = sorted(set(zip(report["keypoint_l"], report["keypoint_r"])))
    li = np.array([names.index(a) for a, _ in pairs])
    ri = np.array([names.index(b) for _, b in pairs])
    fl = np.zeros((n_frames, len(pairs)), dtype=bool)
    pidx = {p: i for i, p in enumerate(pairs)}
    cols = [pidx[p] for p in zip(report["keypoint_l"], report["keypoint_r"])]
    fl[report["frame"].to_numpy(int), cols] = True
    return li, ri, fl


def _temporal(
    cams,
    kp: dict,
    names,
    *,
    min_confidence,
    threshold_px,
    swap_penalty_px,
    motion_weight,
    bone_weight,
    pairs,
):
    """The temporal mode of :func:`triangulate`: points, errors (T, K, C), used, relabelled 2D, report."""
    cam_names = [c.name for c in cams]
    px = np.stack([kp[n].positions for n in cam_names], axis=2)
    cf = np.stack([kp[n].confidence for n in cam_names], axis=2)
    r = track_points(
        cams,
        px,
        cf,
        names,
        min_confidence=min_confidence,
        threshold_px=threshold_px,
        swap_penalty_px=swap_penalty_px,
        motion_weight=motion_weight,
        bone_weight=bone_weight,
        bones=_bones(names),
        pairs=pairs,
    )
    mate = np.arange(len(names))
    for a, b in pairs:
        mate[names.index(a)], mate[names.index(b)] = names.index(b), names.index(a)
    rpx = np.where(r.swapped[..., None], px[:, mate], px)
    rcf = np.where(r.swapped, cf[:, mate], cf)
    E = np.linalg.norm(reproject(cams, r.points) - rpx, axis=-1)
    E = np.where(np.all(np.isfinite(rpx), axis=-1), E, np.nan)
    used = r.used & r.explained[..., None]
    new_kp = {n: kp[n].with_positions(rpx[:, :, c], rcf[:, :, c]) for c, n in enumerate(cam_names)}
    li = {names.index(a): (a, b) for a, b in pairs}
    t, k, c = np.nonzero(r.swapped)
    keep = np.isin(k, list(li))
    t, k, c = t[keep], k[keep], c[keep]
    ref = kp[cam_names[0]]
    report = pd.DataFrame(
        {
            "stage": "temporal",
            "frame": t,
            "time_s": ref.start + t / ref.rate,
            "camera": np.array(cam_names, dtype=object)[c],
            "keypoint_l": np.array([li[i][0] for i in k], dtype=object),
            "keypoint_r": np.array([li[i][1] for i in k], dtype=object),
            "cost_before": np.nan,
            "cost_after": r.cost[t, k],
        },
        columns=SWAP_REPORT_COLUMNS,
    )
    return r.points, E, used, new_kp, report
