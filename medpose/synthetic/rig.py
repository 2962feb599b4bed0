"""A synthetic calibrated camera rig and the 2D keypoints it would see.

The world frame of the rig is the calibration's world, named ``"camera"``: a lab
frame with X forward (the way the patient faces), Y to the patient's left and Z up,
in millimetres, origin on the floor.  :func:`make_rig` places cameras on a circle
around the vertical axis, all looking at the body centre; :func:`project_to_cameras`
projects true 3D keypoints into every camera (OpenCV model of
:class:`medpose.camera.Camera`), adds pixel noise, lowers the confidence of points on
the body side facing away from a camera, removes points that fall off the image and,
optionally, swaps left and right over runs of frames per view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..camera.model import Camera
from ..data import KeypointSequence
from ..errors import FrameMismatch, InputError
from ..geometry import CAMERA
from .observation import lr_pairs, random_runs

__all__ = ["make_rig", "project_to_cameras", "look_at"]


def look_at(center: Any, target: Any, up: Any = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Rotation matrix world -> camera (OpenCV: x right, y down, z forward) of a camera at
    ``center`` looking at ``target`` with world ``up`` appearing upwards in the image."""
    c, t, u = (np.asarray(v, dtype=float) for v in (center, target, up))
    z = t - c
    z /= np.linalg.norm(z)
    x = np.cross(z, u)
    if np.linalg.norm(x) < 1e-9:
        raise InputError(
            "look_at: viewing direction is parallel to 'up'; expected a camera not straight above"
        )
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def make_rig(
    n_cameras: int = 4,
    *,
    radius_mm: float = 3500.0,
    height_mm: float = 1200.0,
    image_size: tuple[int, int] = (1920, 1080),
    focal_px: float = 1400.0,
    distortion: Sequence[float] | None = None,
    target_mm: Sequence[float] = (0.0, 0.0, 1000.0),
    start_deg: float = 45.0,
    jitter: bool = True,
    seed: int | np.random.Generator = 0,
) -> list[Camera]:
    """Cameras evenly spaced on a circle around the patient, all looking at the body centre.

    Parameters
    ----------
    n_cameras : int
        Number of cameras (>= 2).
    radius_mm : float
        Horizontal distance from the vertical world axis (mm).
    height_mm : float
        Height of the optical centres above the floor (mm).
    image_size : (width, height)
        Pixels.
    focal_px : float
        Focal length in pixels (1400 px at 1920 px width is a ~69 degree horizontal field
        of view, a typical lab or phone camera).
    distortion : sequence of 4 or 5 floats, optional
        OpenCV ``(k1, k2, p1, p2[, k3])``.  Default: mild barrel distortion drawn per
        camera, ``k1`` in [-0.08, -0.02], ``k2`` in [0.0, 0.04], no tangential part
        (assumption: the size of fitted coefficients of lab cameras, e.g. the Pose2Sim demo).
    target_mm : (3,)
        The point all cameras look at, world mm (default: 1 m above the origin).
    start_deg : float
        Azimuth of the first camera, degrees from world +X (the patient's front).
    jitter : bool
        Perturb each camera's azimuth (+-5 deg), height (+-100 mm), radius (+-150 mm),
        focal length (+-3%) and principal point (+-10 px), from ``seed``.
    seed : int or numpy.random.Generator

    Returns
    -------
    list of Camera
        Named ``cam01``, ``cam02``, ...; world frame ``"camera"``; translations in mm.

    Raises
    ------
    InputError
        If ``n_cameras < 2`` or a size is not positive.
    """
    if int(n_cameras) != n_cameras or n_cameras < 2:
        raise InputError(f"make_rig: n_cameras must be an integer >= 2, found {n_cameras!r}")
    if radius_mm <= 0 or focal_px <= 0 or min(image_size) <= 0:
        raise InputError(
            f"make_rig: radius_mm, focal_px and image_size must be positive, found "
            f"{radius_mm}, {focal_px}, {image_size}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = int(n_cameras)
    j = float(jitter)
    az = np.deg2rad(start_deg + 360.0 * np.arange(n) / n + j * rng.uniform(-5, 5, n))
    rad = radius_mm + j * rng.uniform(-150, 150, n)
    hgt = height_mm + j * rng.uniform(-100, 100, n)
    f = focal_px * (1 + j * rng.uniform(-0.03, 0.03, n))
    pp = j * rng.uniform(-10, 10, (n, 2))
    if distortion is None:
        dist = np.column_stack(
            [rng.uniform(-0.08, -0.02, n), rng.uniform(0.0, 0.04, n), np.zeros(n), np.zeros(n)]
        )
    else:
        dist = np.tile(np.asarray(distortion, dtype=float), (n, 1))
    w, h = image_size
    cams = []
    for i in range(n):
        centre = np.array([rad[i] * np.cos(az[i]), rad[i] * np.sin(az[i]), hgt[i]])
        r = look_at(centre, target_mm)
        k = np.array(
            [
                [f[i], 0.0, (w - 1) / 2 + pp[i, 0]],
                [0.0, f[i], (h - 1) / 2 + pp[i, 1]],
                [0.0, 0.0, 1.0],
            ]
        )
        cams.append(
            Camera(
                f"cam{i + 1:02d}",
                (int(w), int(h)),
                k,
                dist[i],
                Rotation.from_matrix(r).as_rotvec(),
                -r @ centre,
                world=CAMERA,
            )
        )
    return cams


def _side_visibility(kp: np.ndarray, names: Sequence[str], centre: np.ndarray) -> np.ndarray:
    """Cosine between the body's lateral axis (towards the keypoint's side) and the direction
    to the camera, (T, K); 0 for midline points.  Negative: the point faces away."""
    idx = {n: i for i, n in enumerate(names)}
    t, k, _ = kp.shape
    pairs = [
        (a, b)
        for a, b in (("hip_l", "hip_r"), ("shoulder_l", "shoulder_r"))
        if a in idx and b in idx
    ]
    if not pairs:
        return np.zeros((t, k))
    lateral = np.mean(
        [kp[:, idx[b]] - kp[:, idx[a]] for a, b in pairs], axis=0
    )  # towards the right, (T, 3)
    lateral /= np.maximum(np.linalg.norm(lateral, axis=1, keepdims=True), 1e-9)
    to_cam = centre - kp
    to_cam /= np.maximum(np.linalg.norm(to_cam, axis=2, keepdims=True), 1e-9)
    cos = np.einsum("tc,tkc->tk", lateral, to_cam)
    side = np.array([1.0 if n.endswith("_r") else -1.0 if n.endswith("_l") else 0.0 for n in names])
    return cos * side


def project_to_cameras(
    cameras: Sequence[Camera],
    kp: Any,
    *,
    names: Sequence[str] | None = None,
    rate: float = 30.0,
    pixel_sigma: float = 2.0,
    swap_rate: float = 0.0,
    swap_len: float = 10.0,
    occluded_confidence: float = 0.35,
    seed: int | np.random.Generator = 0,
    return_report: bool = False,
) -> Any:
    """Project true 3D keypoints into every camera, as a 2D detector would report them.

    Parameters
    ----------
    cameras : sequence of Camera
        World frame of every camera must be the frame of ``kp``.
    kp : array_like (T, K, 3) or KeypointSequence
        True positions in the world frame, mm.
    names : sequence of str
        Keypoint names (from ``kp`` if it is a KeypointSequence).
    rate : float
        Hz (from ``kp`` if it is a KeypointSequence).
    pixel_sigma : float
        Per-axis Gaussian pixel noise (px).  2 px is an assumption of a good 2D
        detector on full-HD images (not a published figure).
    swap_rate : float
        Left/right swap runs per second per view (whole body), 0 for none.
    swap_len : float
        Mean swap-run length in frames.
    occluded_confidence : float
        Mean confidence of a point on the body side facing away from the camera;
        visible points get 0.8-1.0.  The visibility test: the cosine between the
        body's lateral axis (hip and shoulder line) and the direction to the camera,
        signed by the keypoint's side.
    seed : int or numpy.random.Generator
    return_report : bool
        Also return ``{camera: {"swaps": [...], "off_image": n}}``.

    Returns
    -------
    dict of str -> KeypointSequence
        Per camera, 2D positions in pixels (frame = camera name); off-image or
        behind-camera points are NaN with confidence 0.  With ``return_report`` a
        tuple ``(views, report)``.

    Raises
    ------
    InputError
        If ``kp`` is not (T, K, 3) or ``names`` does not match.
    FrameMismatch
        If ``kp`` is a KeypointSequence in a frame other than the cameras' world.
    """
    if isinstance(kp, KeypointSequence):
        for cam in cameras:
            if cam.world != kp.frame:
                raise FrameMismatch(
                    f"project_to_cameras: keypoints in frame '{kp.frame}' but camera "
                    f"{cam.name!r} expects '{cam.world}'"
                )
        names, rate, start, pos = kp.names, kp.rate, kp.start, np.array(kp.positions)
    else:
        pos, start = np.asarray(kp, dtype=float), 0.0
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise InputError(
            f"project_to_cameras: keypoints must have shape (T, K, 3), found {pos.shape}"
        )
    if names is None or len(names) != pos.shape[1]:
        raise InputError(
            f"project_to_cameras: need {pos.shape[1]} keypoint names, found "
            f"{None if names is None else len(names)}"
        )
    if pixel_sigma < 0 or swap_rate < 0:
        raise InputError(
            f"project_to_cameras: pixel_sigma and swap_rate must be >= 0, found "
            f"{pixel_sigma}, {swap_rate}"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    names = tuple(names)
    pairs = lr_pairs(names)
    views: dict[str, KeypointSequence] = {}
    report: dict[str, Any] = {}
    t, k, _ = pos.shape
    for cam in cameras:
        px = cam.project(pos) + rng.normal(0.0, pixel_sigma, size=(t, k, 2))
        w, h = cam.size
        off = ~(
            (px[..., 0] >= 0) & (px[..., 0] <= w - 1) & (px[..., 1] >= 0) & (px[..., 1] <= h - 1)
        )
        vis = _side_visibility(pos, names, cam.center)
        conf = np.where(
            vis < -0.3,
            rng.uniform(0.6, 1.4, (t, k)) * occluded_confidence,
            rng.uniform(0.8, 1.0, (t, k)),
        )
        conf = np.clip(conf, 0.0, 1.0)
        px[off] = np.nan
        conf[off] = 0.0
        swaps = []
        if pairs:
            li, ri = np.array(pairs).T
            for a, b in random_runs(rng, t, swap_rate / rate, swap_len):
                px[a:b, np.r_[li, ri]] = px[a:b, np.r_[ri, li]]
                conf[a:b, np.r_[li, ri]] = conf[a:b, np.r_[ri, li]]
                swaps.append({"start": a, "stop": b})
        views[cam.name] = KeypointSequence(
            px, names, rate, confidence=conf, frame=cam.name, start=start
        )
        report[cam.name] = {"swaps": swaps, "off_image": int(off.sum())}
    return (views, report) if return_report else views
