"""Calibration refinement from the recording itself: a small bundle adjustment.

A lab calibration can be slightly off for the videos it is used with (a cropped or resized
video, a camera knocked after calibration).  The 2D keypoints of a recording seen by several
cameras then disagree systematically: each camera's residuals have a bias that no choice of
cameras or labels removes.  :func:`refine_calibration` estimates a few corrections per camera
from the recording itself, jointly with the 3D points (bundle adjustment; Triggs, McLauchlan,
Hartley & Fitzgibbon 2000, "Bundle adjustment - a modern synthesis", *Vision Algorithms:
Theory and Practice*, LNCS 1883:298; Hartley & Zisserman 2004, *Multiple View Geometry*, 2nd
ed., sec. 18.1):

* ``"principal_point"``: a shift ``(dcx, dcy)`` of ``K``'s principal point, px;
* ``"rotation"``: a small rotation of the camera about its optical centre, ``dR`` applied in
  the camera frame (``R' = dR R``, ``t' = dR t``; Rodrigues vector via
  :class:`scipy.spatial.transform.Rotation`), degrees in the report;
* ``"focal"``: a common scale ``1 + s`` of ``fx`` and ``fy``.

The distortion and the camera centres are kept.  The cost is
``sum_obs rho(|project_c'(X_p) - x_obs|)`` over confident, consistently labelled observations
(those a first triangulation used, within ``threshold_px``), with a robust ``rho``
(``loss``, ``f_scale_px``), plus a prior pulling every correction toward 0
(``correction / prior`` as residual, in units of ``f_scale_px``).  The prior fixes the gauge:
a common translation of all 3D points moves every image almost as a principal-point shift
would, so without it (or a fixed camera) those combinations of corrections are barely
determined; with it the smallest corrections that explain the data are found.  The problem is
solved by :func:`scipy.optimize.least_squares` (trust-region reflective, sparse Jacobian by
grouped finite differences) after a first step with the points held fixed; ``rounds``
repeats triangulation and adjustment so that the camera choices and left/right labels of the
triangulation follow the refined cameras.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation

from ..data import KeypointSequence
from ..errors import DegenerateConfiguration, InputError
from .model import Camera

__all__ = ["refine_calibration", "apply_corrections", "PARAMETERS"]

#: correction blocks and their number of parameters, in the order of the parameter vector
PARAMETERS = {"principal_point": 2, "rotation": 3, "focal": 1}


def apply_corrections(camera: Camera, *, principal_point_px: Sequence[float] = (0.0, 0.0),
                      rotation_deg: Sequence[float] = (0.0, 0.0, 0.0), focal_scale: float = 1.0) -> Camera:
    """A copy of ``camera`` with its principal point shifted, its orientation turned about
    its optical centre and its focal lengths scaled.

    Parameters
    ----------
    camera : Camera
    principal_point_px : (dcx, dcy)
        Added to ``K[0, 2]`` and ``K[1, 2]``, px.
    rotation_deg : (3,)
        Rotation vector (degrees) of ``dR``, in the camera frame (x right, y down, z
        forward): ``R' = dR R``, ``t' = dR t`` (the centre ``-R^T t`` is unchanged).
    focal_scale : float
        Multiplies ``fx``, ``fy`` and the skew.

    Returns
    -------
    Camera
    """
    dR = Rotation.from_rotvec(np.deg2rad(np.asarray(rotation_deg, dtype=float)))
    k = np.array(camera.matrix, dtype=float)
    k[:2, :2] *= float(focal_scale)
    k[0, 2] += float(principal_point_px[0])
    k[1, 2] += float(principal_point_px[1])
    rot = (dR * Rotation.from_rotvec(np.array(camera.rotation))).as_rotvec()
    return Camera(camera.name, camera.size, k, camera.distortion, rot, dR.apply(np.array(camera.translation)),
                  world=camera.world)


def _layout(params: Sequence[str]) -> tuple[list[str], int]:
    params = list(params)
    bad = [p for p in params if p not in PARAMETERS]
    if bad or not params or len(set(params)) != len(params):
        raise InputError(f"refine_calibration: params must be distinct names among {list(PARAMETERS)}, "
                         f"found {params}")
    order = [p for p in PARAMETERS if p in params]
    return order, sum(PARAMETERS[p] for p in order)


def _unpack(v: np.ndarray, order: list[str]) -> dict:
    """Parameter vector of one camera -> keyword arguments of :func:`apply_corrections`.
    Internal units: px for the principal point, px-equivalent mrad x 1 for rotation (mrad),
    per mille for the focal scale; all of order 1 for typical corrections."""
    out, i = {}, 0
    for p in order:
        n = PARAMETERS[p]
        x = v[i:i + n]
        if p == "principal_point":
            out["principal_point_px"] = x
        elif p == "rotation":
            out["rotation_deg"] = np.rad2deg(x * 1e-3)
        else:
            out["focal_scale"] = 1.0 + 1e-3 * x[0]
        i += n
    return out


def _prior_scale(order: list[str], prior_px: float, prior_deg: float, prior_focal: float) -> np.ndarray:
    """Per internal parameter: the size of the prior (in internal units)."""
    out = []
    for p in order:
        if p == "principal_point":
            out += [prior_px] * 2
        elif p == "rotation":
            out += [np.deg2rad(prior_deg) * 1e3] * 3
        else:
            out += [prior_focal * 1e3]
    return np.asarray(out, dtype=float)


def _residuals(cams: Sequence[Camera], order: list[str], n_p: int, free: np.ndarray, theta: np.ndarray,
               X: np.ndarray, obs: np.ndarray, cam_of: np.ndarray, pt_of: np.ndarray) -> np.ndarray:
    """Reprojection residuals (n_obs * 2,) px for camera parameters theta (C, n_p) and points X (P, 3)."""
    r = np.empty((len(obs), 2))
    for c, cam in enumerate(cams):  # a loop over the few cameras; observations are batched
        sel = cam_of == c
        cc = apply_corrections(cam, **_unpack(theta[c], order)) if free[c] else cam
        r[sel] = cc.project(X[pt_of[sel]]) - obs[sel]
    return np.nan_to_num(r, nan=1e3).ravel()


def _adjust(cams, order, n_p, free, X0, obs, cam_of, pt_of, theta0, prior, *, loss, f_scale, move_points,
            max_nfev):
    """One least-squares solve; returns theta (C, n_p) and points (P, 3)."""
    n_c, n_pts, n_obs = len(cams), len(X0), len(obs)
    fc = np.flatnonzero(free)
    n_cam_vars = len(fc) * n_p
    n_vars = n_cam_vars + (3 * n_pts if move_points else 0)
    n_res = 2 * n_obs + n_cam_vars

    def unpack(v):
        theta = np.zeros((n_c, n_p))
        theta[fc] = v[:n_cam_vars].reshape(len(fc), n_p)
        X = v[n_cam_vars:].reshape(n_pts, 3) if move_points else X0
        return theta, X

    def fun(v):
        theta, X = unpack(v)
        r = _residuals(cams, order, n_p, free, theta, X, obs, cam_of, pt_of)
        pri = (theta[fc] / prior).ravel() * f_scale
        return np.concatenate([r, pri])

    J = lil_matrix((n_res, n_vars), dtype=int)
    rows = np.arange(n_obs)
    slot = np.full(n_c, -1)
    slot[fc] = np.arange(len(fc))
    has = slot[cam_of] >= 0
    for j in range(n_p):
        for d in range(2):
            J[2 * rows[has] + d, slot[cam_of[has]] * n_p + j] = 1
    if move_points:
        for j in range(3):
            for d in range(2):
                J[2 * rows + d, n_cam_vars + 3 * pt_of + j] = 1
    J[2 * n_obs + np.arange(n_cam_vars), np.arange(n_cam_vars)] = 1
    v0 = np.concatenate([theta0[fc].ravel()] + ([X0.ravel()] if move_points else []))
    x_scale = np.concatenate([np.ones(n_cam_vars)] + ([np.full(3 * n_pts, 1.0)] if move_points else []))
    sol = least_squares(fun, v0, jac_sparsity=J.tocsr(), loss=loss, f_scale=f_scale, x_scale=x_scale,
                        method="trf", tr_solver="lsmr", max_nfev=max_nfev)
    return unpack(sol.x)


def refine_calibration(cameras: Sequence[Camera] | Mapping[str, Camera],
                       keypoints_2d: Mapping[str, KeypointSequence], *,
                       params: Sequence[str] = ("principal_point",), fixed: Sequence[str] = (),
                       min_confidence: float = 0.5, threshold_px: float = 20.0, loss: str = "soft_l1",
                       f_scale_px: float = 5.0, prior_px: float = 10.0, prior_deg: float = 0.5,
                       prior_focal: float = 0.01, rounds: int = 2, max_nfev: int = 50,
                       **triangulate_kwargs) -> tuple[list[Camera], pd.DataFrame]:
    """Refine a few parameters of every camera from a recording's 2D keypoints.

    Each round: triangulate with the current cameras (:func:`medpose.camera.triangulate`,
    by default ``temporal=True``), keep the observations the triangulation used with
    confidence >= ``min_confidence`` and error < ``threshold_px`` (after its left/right
    relabelling), then solve the robust bundle adjustment of the module notes: first the
    camera corrections with the points held fixed, then corrections and points jointly.

    Parameters
    ----------
    cameras : sequence or mapping of Camera
        The calibration (e.g. :func:`medpose.io.read_calibration`).
    keypoints_2d : mapping of str to KeypointSequence
        Camera name -> 2D keypoints (px), as for :func:`~medpose.camera.triangulate`.
    params : sequence of str
        Correction blocks to estimate, among ``"principal_point"`` (2 per camera, px),
        ``"rotation"`` (3, about the optical centre) and ``"focal"`` (1, a scale).  A
        principal-point shift and a rotation about the camera's y/x axis move the image
        almost alike; estimate both only with informative priors.
    fixed : sequence of str
        Cameras left exactly as they are (another way to fix the gauge).
    min_confidence : float
        Detector confidence needed for an observation to be used.
    threshold_px : float
        Observations further than this from the first triangulation are not used; also the
        triangulation's consensus threshold.
    loss : str
        :func:`scipy.optimize.least_squares` robust loss (``"soft_l1"``, ``"huber"``,
        ``"cauchy"``, ``"linear"`` ...).
    f_scale_px : float
        Residual size (px) where the robust loss turns from quadratic to linear.
    prior_px, prior_deg, prior_focal : float
        Size of the prior on each correction (px; degrees; relative scale): a correction this
        large costs as much as one observation ``f_scale_px`` off.
    rounds : int
        Triangulation-adjustment rounds (>= 1).
    max_nfev : int
        Function evaluations per least-squares solve.
    **triangulate_kwargs
        Passed to :func:`~medpose.camera.triangulate` (``temporal`` defaults to True).

    Returns
    -------
    cameras : list of Camera
        The refined cameras, in the order of ``keypoints_2d`` followed by any calibration
        cameras without keypoints (unchanged).
    report : pandas.DataFrame
        One row per camera: ``camera``, ``dcx_px``, ``dcy_px``, ``rot_x_deg``, ``rot_y_deg``,
        ``rot_z_deg``, ``focal_scale``, ``fixed``, ``n_observations``,
        ``median_error_before_px`` and ``median_error_after_px`` (over the observations used,
        before the first round and after the last adjustment).

    Raises
    ------
    InputError
        Unknown ``params``, a ``fixed`` camera without keypoints, non-positive scales or
        ``rounds`` < 1, and every input error of :func:`~medpose.camera.triangulate`.
    DegenerateConfiguration
        Fewer observations than 10 per free parameter.

    Examples
    --------
    >>> cams2, table = refine_calibration(cams, keypoints)          # doctest: +SKIP
    >>> res = triangulate(cams2, keypoints, temporal=True)          # doctest: +SKIP
    """
    from .triangulation import triangulate

    order, n_p = _layout(params)
    if isinstance(cameras, Mapping):
        cameras = list(cameras.values())
    cameras = list(cameras)
    if not isinstance(keypoints_2d, Mapping):
        raise InputError("refine_calibration: keypoints_2d must be a mapping camera name -> 2D KeypointSequence")
    unknown = [n for n in fixed if n not in keypoints_2d]
    if unknown:
        raise InputError(f"refine_calibration: fixed camera(s) {unknown} have no keypoints; expected names among "
                         f"{list(keypoints_2d)}")
    for name, v in (("f_scale_px", f_scale_px), ("prior_px", prior_px), ("prior_deg", prior_deg),
                    ("prior_focal", prior_focal), ("threshold_px", threshold_px)):
        if not (np.isfinite(v) and v > 0):
            raise InputError(f"refine_calibration: {name} must be a positive number, found {v!r}")
    if int(rounds) != rounds or rounds < 1:
        raise InputError(f"refine_calibration: rounds must be an integer >= 1, found {rounds!r}")
    triangulate_kwargs.setdefault("temporal", True)
    triangulate_kwargs.setdefault("threshold_px", threshold_px)
    by_name = {c.name: c for c in cameras}
    cams = [by_name[n] if n in by_name else None for n in keypoints_2d]
    if any(c is None for c in cams):   # let triangulate word the error
        triangulate(cameras, keypoints_2d, **triangulate_kwargs)
    free = np.array([c.name not in fixed for c in cams])
    prior = _prior_scale(order, prior_px, prior_deg, prior_focal)
    theta = np.zeros((len(cams), n_p))
    before = None
    for _ in range(int(rounds)):
        current = [apply_corrections(c, **_unpack(theta[i], order)) if free[i] else c for i, c in enumerate(cams)]
        res = triangulate(current, keypoints_2d, **triangulate_kwargs)
        X, obs, cam_of, pt_of = _observations(res, min_confidence, threshold_px)
        if len(obs) < 10 * n_p * free.sum():
            raise DegenerateConfiguration(f"refine_calibration: {len(obs)} usable observations for "
                                          f"{n_p * free.sum()} camera parameters; expected at least 10 per parameter")
        if before is None:
            e0 = np.linalg.norm(_residuals(cams, order, n_p, free, theta, X, obs, cam_of, pt_of).reshape(-1, 2), axis=1)
            before = [float(np.median(e0[cam_of == c])) if np.any(cam_of == c) else np.nan for c in range(len(cams))]
        kw = dict(loss=loss, f_scale=f_scale_px, max_nfev=max_nfev)
        theta, _ = _adjust(cams, order, n_p, free, X, obs, cam_of, pt_of, theta, prior, move_points=False, **kw)
        theta, X = _adjust(cams, order, n_p, free, X, obs, cam_of, pt_of, theta, prior, move_points=True, **kw)
    e1 = np.linalg.norm(_residuals(cams, order, n_p, free, theta, X, obs, cam_of, pt_of).reshape(-1, 2), axis=1)
    rows, out = [], []
    for i, c in enumerate(cams):
        kw = _unpack(theta[i], order)
        out.append(apply_corrections(c, **kw) if free[i] else c)
        pp = kw.get("principal_point_px", (0.0, 0.0))
        rv = kw.get("rotation_deg", (0.0, 0.0, 0.0))
        rows.append({"camera": c.name, "dcx_px": float(pp[0]), "dcy_px": float(pp[1]), "rot_x_deg": float(rv[0]),
                     "rot_y_deg": float(rv[1]), "rot_z_deg": float(rv[2]),
                     "focal_scale": float(kw.get("focal_scale", 1.0)), "fixed": not free[i],
                     "n_observations": int(np.sum(cam_of == i)), "median_error_before_px": before[i],
                     "median_error_after_px": float(np.median(e1[cam_of == i])) if np.any(cam_of == i) else np.nan})
    rest = [c for c in cameras if c.name not in keypoints_2d]
    return out + rest, pd.DataFrame(rows)


def _observations(res, min_confidence: float, threshold_px: float):
    """Points (P, 3) and the observations of them to adjust on: pixels (N, 2), camera index (N,),
    point index (N,), from a TriangulationResult."""
    X = res.sequence.positions                                                  # (T, K, 3)
    px = np.stack([res.keypoints_2d[n].positions for n in res.camera_names], axis=2)   # (T, K, C, 2)
    cf = np.stack([res.keypoints_2d[n].confidence for n in res.camera_names], axis=2)
    ok = (res.used & (cf >= min_confidence) & (np.nan_to_num(res.errors, nan=np.inf) < threshold_px)
          & np.isfinite(X).all(-1)[..., None] & np.isfinite(px).all(-1))
    ok &= (ok.sum(-1) >= 2)[..., None]                                          # a point needs two views
    t, k, c = np.nonzero(ok)
    pts, pt_of = np.unique(t * X.shape[1] + k, return_inverse=True)
    return X.reshape(-1, 3)[pts], px[t, k, c], c, pt_of
