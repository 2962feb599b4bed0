"""Triangulation of 2D keypoints from calibrated cameras into 3D sequences.

The maths is the linear (DLT) triangulation of Hartley & Zisserman (2004), *Multiple View
Geometry in Computer Vision*, 2nd ed., section 12.2: for each camera ``c`` with projection
``P_c`` and an (undistorted, normalised) observation ``(x, y)``, the rows
``x P_c^3 - P_c^1`` and ``y P_c^3 - P_c^2`` of ``A`` satisfy ``A X = 0``; ``X`` is the right
singular vector of the smallest singular value, here the eigenvector of the smallest
eigenvalue of ``A^T A`` (computed for every point at once with :func:`numpy.linalg.eigh`).
Each camera's rows are weighted by its detector confidence (as in Pose2Sim,
Pagnon et al. 2021, *Sensors* 21:6530).  World coordinates are centred and scaled before the
solve (Hartley's normalisation, section 4.4.4) so millimetres and unit directions mix well.

Robust camera selection is a consensus over camera subsets: every subset of at least
``min_cameras`` cameras that all observed the point is solved (all subsets of all points in
one batched call), each solution is reprojected into every camera, and per point the largest
subset whose cameras all reproject within ``threshold_px`` wins (ties: the smaller mean
error).  When no subset is consistent, the feasible subset with the smallest worst error is
kept (its 3D confidence is then 0).  This is the exhaustive version of Pose2Sim's
iterative camera removal; with the few cameras of a lab (2**C - C - 1 subsets: 11 for 4
cameras, 57 for 6) enumerating is cheaper than iterating.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import KeypointSequence
from ..errors import DegenerateConfiguration, InputError
from .model import Camera

__all__ = [
    "TriangulationResult",
    "triangulate",
    "triangulate_points",
    "dlt",
    "reproject",
    "ImageSizeWarning",
]

#: points solved per batch: bounds memory (each point x subset holds a 4x4 system)
_CHUNK = 20000


class ImageSizeWarning(UserWarning):
    """The image size of the keypoints disagrees with the calibration's."""


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
    X = _smallest_eigvec(M) * s + origin
    return np.where(((w > 0).sum(-1) >= 2)[..., None], X, np.nan)


def _smallest_eigvec(M: np.ndarray) -> np.ndarray:
    """Dehomogenised eigenvector of the smallest eigenvalue of symmetric 4x4 matrices."""
    _, vecs = np.linalg.eigh(M)
    h = vecs[..., :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[..., :3] / h[..., 3:4]


def reproject(cameras: Sequence[Camera], points: np.ndarray) -> np.ndarray:
    """Project world points (..., 3) into every camera (with distortion): shape (..., C, 2) px."""
    return np.stack([c.project(points) for c in cameras], axis=-2)


# ----------------------------------------------------------------------------- the rig
@dataclass(frozen=True)
class _Rig:
    """Cameras prepared for batched solving (normalised coordinates, conditioned world)."""

    cameras: tuple[Camera, ...]
    P: np.ndarray  # (C, 3, 4) [R | t'] in conditioned world units
    origin: np.ndarray  # (3,) mm
    scale: float  # mm per conditioned unit
    subsets: np.ndarray  # (S, C) bool

    @classmethod
    def build(cls, cameras: Sequence[Camera], min_cameras: int = 2) -> _Rig:
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

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Undistorted normalised coordinates, (..., C, 2)."""
        return np.stack(
            [c.undistort_points(pixels[..., i, :]) for i, c in enumerate(self.cameras)], axis=-2
        )

    def solve_subsets(self, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted DLT for every subset: (..., C, 2), (..., C) -> (..., S, 3) mm."""
        A = np.nan_to_num(xn)[..., :, None] * self.P[:, 2:3, :] - self.P[:, :2, :]
        A = A * w[..., None, None]
        Mc = np.einsum("...cij,...cik->...cjk", A, A)
        Ms = np.einsum("sc,...cjk->...sjk", self.subsets.astype(float), Mc)
        return _smallest_eigvec(Ms) * self.scale + self.origin


def _consensus(
    rig: _Rig, px: np.ndarray, cf: np.ndarray, min_confidence: float, threshold_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consensus triangulation of (N, C, 2) pixels: X (N, 3), errors (N, C), used (N, C)."""
    valid = np.all(np.isfinite(px), axis=-1) & (cf >= min_confidence)
    w = np.where(valid, cf, 0.0)
    X = rig.solve_subsets(rig.normalise(px), w)  # (N, S, 3)
    err = np.linalg.norm(reproject(rig.cameras, X) - px[:, None], axis=-1)  # (N, S, C)
    subsets = rig.subsets
    feasible = np.all(valid[:, None, :] | ~subsets, axis=-1) & np.all(np.isfinite(X), axis=-1)
    in_subset = np.where(subsets, np.nan_to_num(err, nan=np.inf), 0.0)
    worst = in_subset.max(axis=-1)
    mean = in_subset.sum(axis=-1) / subsets.sum(axis=1)
    n = subsets.sum(axis=1)
    consistent = feasible & (worst < threshold_px)
    # lexicographic choice as one cost: consistent and large first, then small mean error;
    # otherwise the feasible subset with the smallest worst error
    cost = np.where(consistent, -n * 1e9 + mean, np.where(feasible, 1e15 + worst, np.inf))
    best = np.argmin(cost, axis=-1)
    ok = np.isfinite(np.take_along_axis(cost, best[:, None], axis=-1)[:, 0])
    Xb = np.where(ok[:, None], X[np.arange(len(X)), best], np.nan)
    eb = np.where(ok[:, None], err[np.arange(len(X)), best], np.nan)
    eb = np.where(np.all(np.isfinite(px), axis=-1), eb, np.nan)
    used = subsets[best] & ok[:, None]
    return Xb, eb, used


def triangulate_points(
    cameras: Sequence[Camera],
    pixels: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    min_confidence: float = 0.3,
    threshold_px: float = 20.0,
    min_cameras: int = 2,
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

    Returns
    -------
    points : ndarray (..., 3)
        World points, mm (the cameras' world frame); NaN where no subset was feasible.
    errors : ndarray (..., C)
        Reprojection error into every camera with an observation (used or not), px.
    used : ndarray of bool (..., C)
        The cameras of the chosen subset.
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
    rig = _Rig.build(cams, min_cameras)
    lead = px.shape[:-2]
    flat_px = px.reshape(-1, len(cams), 2)
    flat_cf = cf.reshape(-1, len(cams))
    n = flat_px.shape[0]
    X = np.full((n, 3), np.nan)
    E = np.full((n, len(cams)), np.nan)
    U = np.zeros((n, len(cams)), dtype=bool)
    for a in range(0, n, _CHUNK):  # blocks bound memory; each block is fully batched
        b = min(n, a + _CHUNK)
        X[a:b], E[a:b], U[a:b] = _consensus(
            rig, flat_px[a:b], flat_cf[a:b], min_confidence, threshold_px
        )
    return X.reshape(lead + (3,)), E.reshape(lead + (len(cams),)), U.reshape(lead + (len(cams),))


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
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
        t, k, c = self.errors.shape
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
    from ..temporal.swaps import repair_swaps_3d
    from .swaps import lr_pairs, repair_view_swaps

    cams, seqs = _check_inputs(cameras, keypoints_2d)
    _check_sizes(cams, seqs, image_sizes, size_tolerance_px)
    ref = seqs[0]
    names = ref.names
    cam_names = tuple(c.name for c in cams)
    kp = dict(zip(cam_names, seqs))
    reports = []
    if repair_swaps and not temporal:
        kp, view_report = repair_view_swaps(
            cams,
            kp,
            min_confidence=min_confidence,
            threshold_px=threshold_px,
            cap_px=swap_cap_px,
            penalty_px=swap_penalty_px,
        )
        reports.append(view_report)
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
        X, E, U = triangulate_points(
            cams,
            px,
            cf,
            min_confidence=min_confidence,
            threshold_px=threshold_px,
            min_cameras=min_cameras,
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
    seq = KeypointSequence(X, names, ref.rate, conf3, cams[0].world, ref.start)
    if repair_swaps and lr_pairs(names) and not temporal:
        seq, report3 = repair_swaps_3d(seq)
        reports.append(report3)
        flips = _flip_mask(report3, names, seq.n_frames)
        if flips is not None:
            li, ri, fl = flips  # (P,), (P,), (T, P)
            perm = np.broadcast_to(np.arange(len(names)), (seq.n_frames, len(names))).copy()
            perm[:, li] = np.where(fl, ri, li)
            perm[:, ri] = np.where(fl, li, ri)
            take = lambda a: np.take_along_axis(
                a, perm.reshape(perm.shape + (1,) * (a.ndim - 2)), axis=1
            )
            mean_err, n_used, E, U, conf3 = (take(a) for a in (mean_err, n_used, E, U, conf3))
            kp = {n: s.with_positions(take(s.positions), take(s.confidence)) for n, s in kp.items()}
    swaps = pd.concat(reports, ignore_index=True) if reports else _empty_report()
    return TriangulationResult(
        seq, mean_err, n_used.astype(int), seq.confidence.copy(), E, U, cam_names, kp, swaps
    )


def _empty_report() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "stage",
            "frame",
            "time_s",
            "camera",
            "keypoint_l",
            "keypoint_r",
            "cost_before",
            "cost_after",
        ]
    )


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
    from ..temporal.gaps import DEFAULT_BONES
    from .tracking import track_points

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
        bones=[b for b in DEFAULT_BONES if b[0] in names and b[1] in names],
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
        columns=_empty_report().columns,
    )
    return r.points, E, used, new_kp, report
