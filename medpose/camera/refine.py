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
(``f_scale_px * correction / prior`` as a quadratic residual).  The gauge: a common
translation of all 3D points moves every image almost as principal-point shifts of all cameras
would, so the data barely tell those apart; by default (``anchor``) the mean of the adjusted
points is held where the first triangulation put them (the world frame does not drift), or
named cameras are held ``fixed``.  The problem is solved by
:func:`scipy.optimize.least_squares` (trust-region reflective, ``lsmr``; a sparse Jacobian from
batched central differences, exact for the principal point) after a first step with the points
held fixed; ``rounds``
repeats triangulation and adjustment so that the camera choices and left/right labels of the
triangulation follow the refined cameras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation

from ..data import KeypointSequence
from ..errors import DegenerateConfiguration, InputError
from .model import Camera
from .triangulation import triangulate

__all__ = ["refine_calibration", "apply_corrections", "PARAMETERS"]

#: correction blocks and their number of parameters, in the order of the parameter vector
PARAMETERS = {"principal_point": 2, "rotation": 3, "focal": 1}


def apply_corrections(
    camera: Camera,
    *,
    principal_point_px: Sequence[float] = (0.0, 0.0),
    rotation_deg: Sequence[float] = (0.0, 0.0, 0.0),
    focal_scale: float = 1.0,
) -> Camera:
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

    Raises
    ------
    InputError
        Corrections of the wrong length, not finite, or a focal scale <= 0.
    """
    pp = np.asarray(principal_point_px, dtype=float).reshape(-1)
    rv = np.asarray(rotation_deg, dtype=float).reshape(-1)
    for what, v, n in (("principal_point_px", pp, 2), ("rotation_deg", rv, 3)):
        if v.shape != (n,) or not np.isfinite(v).all():
            raise InputError(
                f"apply_corrections: camera {camera.name!r}: {what} must have {n} values, found "
                f"{v.tolist()}"
            )
    if not (np.isfinite(focal_scale) and focal_scale > 0):
        raise InputError(
            f"apply_corrections: camera {camera.name!r}: focal_scale must be > 0, found {focal_scale!r}"
        )
    dR = Rotation.from_rotvec(np.deg2rad(rv))
    k = np.array(camera.matrix, dtype=float)
    k[:2, :2] *= float(focal_scale)
    k[:2, 2] += pp
    rot = (dR * Rotation.from_rotvec(np.array(camera.rotation))).as_rotvec()
    return Camera(
        camera.name,
        camera.size,
        k,
        camera.distortion,
        rot,
        dR.apply(np.array(camera.translation)),
        world=camera.world,
    )


def _layout(params: Sequence[str]) -> tuple[list[str], int]:
    params = list(params)
    bad = [p for p in params if p not in PARAMETERS]
    if bad or not params or len(set(params)) != len(params):
        raise InputError(
            f"refine_calibration: params must be distinct names among {list(PARAMETERS)}, "
            f"found {params}"
        )
    order = [p for p in PARAMETERS if p in params]
    return order, sum(PARAMETERS[p] for p in order)


def _unpack(v: np.ndarray, order: list[str]) -> dict:
    """Parameter vector of one camera -> keyword arguments of :func:`apply_corrections`.
    Internal units: px for the principal point, px-equivalent mrad x 1 for rotation (mrad),
    per mille for the focal scale; all of order 1 for typical corrections."""
    out, i = {}, 0
    for p in order:
        n = PARAMETERS[p]
        x = v[i : i + n]
        if p == "principal_point":
            out["principal_point_px"] = x
        elif p == "rotation":
            out["rotation_deg"] = np.rad2deg(x * 1e-3)
        else:
            out["focal_scale"] = 1.0 + 1e-3 * x[0]
        i += n
    return out


def _prior_scale(
    order: list[str], prior_px: float, prior_deg: float, prior_focal: float
) -> np.ndarray:
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


def _corrected(
    cams: Sequence[Camera], order: list[str], free: np.ndarray, theta: np.ndarray
) -> list[Camera]:
    return [
        apply_corrections(c, **_unpack(theta[i], order)) if free[i] else c
        for i, c in enumerate(cams)
    ]


def _project(cams: Sequence[Camera], X: np.ndarray, cam_of: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) of points X (N, 3), each in its camera cam_of (N,)."""
    out = np.empty((len(X), 2))
    for c, cam in enumerate(cams):  # a loop over the few cameras; observations are batched
        sel = cam_of == c
        out[sel] = cam.project(X[sel])
    return out


def _robust(name: str, n_robust: int):
    """The loss for :func:`scipy.optimize.least_squares`: ``name`` on the first ``n_robust``
    residuals (the observations), quadratic on the rest (priors, gauge).  Formulas as in
    scipy's ``least_squares`` (rho(z), z = (r / f_scale)**2)."""
    if name not in ("linear", "soft_l1", "huber", "cauchy"):
        raise InputError(
            f"refine_calibration: loss must be one of 'linear', 'soft_l1', 'huber', 'cauchy', "
            f"found {name!r}"
        )

    def rho(z: np.ndarray) -> np.ndarray:
        out = np.stack([z, np.ones_like(z), np.zeros_like(z)])
        zr = z[:n_robust]
        if name == "soft_l1":
            t = 1 + zr
            out[:, :n_robust] = [2 * (np.sqrt(t) - 1), t**-0.5, -0.5 * t**-1.5]
        elif name == "huber":
            big = zr > 1
            sq = np.sqrt(np.where(big, zr, 1.0))
            out[:, :n_robust] = [
                np.where(big, 2 * sq - 1, zr),
                np.where(big, 1 / sq, 1.0),
                np.where(big, -0.5 / sq**3, 0.0),
            ]
        elif name == "cauchy":
            t = 1 + zr
            out[:, :n_robust] = [np.log1p(zr), 1 / t, -1 / t**2]
        return out

    return rho


def _adjust(
    cams,
    order,
    n_p,
    free,
    X0,
    obs,
    cam_of,
    pt_of,
    theta0,
    prior,
    *,
    loss,
    f_scale,
    move_points,
    anchor,
    max_nfev,
):
    """One robust least-squares solve of the camera corrections (and the points): theta (C, n_p), X (P, 3).

    Residuals: the observations' reprojection errors (px, robust loss), then ``f_scale *
    theta / prior`` per free parameter, then (``anchor`` (3,) mm given and ``move_points``)
    the points' mean minus ``anchor``, in mm times a large weight (the gauge).  The Jacobian is assembled sparse
    from batched central differences (each residual depends on one point and one camera).
    """
    n_c, n_pts, n_obs = len(cams), len(X0), len(obs)
    fc = np.flatnonzero(free)
    n_cam_vars = len(fc) * n_p
    n_vars = n_cam_vars + (3 * n_pts if move_points else 0)
    use_anchor = anchor is not None and move_points
    w_anchor = 10.0 * f_scale * np.sqrt(n_obs)  # px per mm of mean drift: effectively a constraint
    slot = np.full(n_c, -1)
    slot[fc] = np.arange(len(fc))
    has = slot[cam_of] >= 0

    def unpack(v):
        theta = np.zeros((n_c, n_p))
        theta[fc] = v[:n_cam_vars].reshape(len(fc), n_p)
        X = v[n_cam_vars:].reshape(n_pts, 3) if move_points else X0
        return theta, X

    def fun(v):
        theta, X = unpack(v)
        r = np.nan_to_num(
            _project(_corrected(cams, order, free, theta), X[pt_of], cam_of) - obs, nan=1e3
        ).ravel()
        parts = [r, (theta[fc] / prior).ravel() * f_scale]
        if use_anchor:
            parts.append(w_anchor * (X.mean(axis=0) - anchor))
        return np.concatenate(parts)

    def jac(v):
        theta, X = unpack(v)
        Xo = X[pt_of]
        rows, cols, vals = [], [], []
        obs_rows = np.arange(2 * n_obs).reshape(n_obs, 2)
        for j in range(n_p):  # d r / d theta: one parameter of all cameras at once
            if (
                order[0] == "principal_point" and j < 2
            ):  # exact: a shift of (cx, cy) moves (u, v) alike
                d = np.zeros((n_obs, 2))
                d[:, j] = 1.0
            else:
                h = 1e-2
                tp, tm = theta.copy(), theta.copy()
                tp[:, j] += h
                tm[:, j] -= h
                d = (
                    _project(_corrected(cams, order, free, tp), Xo, cam_of)
                    - _project(_corrected(cams, order, free, tm), Xo, cam_of)
                ) / (2 * h)
            rows.append(obs_rows[has].ravel())
            cols.append(np.repeat(slot[cam_of[has]] * n_p + j, 2))
            vals.append(d[has].ravel())
        if move_points:
            current = _corrected(cams, order, free, theta)
            for j in range(3):  # d r / d X: one coordinate of all points at once
                step = np.zeros(3)
                step[j] = 0.5
                d = _project(current, Xo + step, cam_of) - _project(current, Xo - step, cam_of)
                rows.append(obs_rows.ravel())
                cols.append(np.repeat(n_cam_vars + 3 * pt_of + j, 2))
                vals.append(d.ravel())
        rows.append(2 * n_obs + np.arange(n_cam_vars))
        cols.append(np.arange(n_cam_vars))
        vals.append(np.tile(f_scale / prior, len(fc)))
        if use_anchor:
            for j in range(3):
                rows.append(np.full(n_pts, 2 * n_obs + n_cam_vars + j))
                cols.append(n_cam_vars + 3 * np.arange(n_pts) + j)
                vals.append(np.full(n_pts, w_anchor / n_pts))
        n_res = 2 * n_obs + n_cam_vars + (3 if use_anchor else 0)
        return coo_matrix(
            (np.nan_to_num(np.concatenate(vals)), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_res, n_vars),
        ).tocsr()

    v0 = np.concatenate([theta0[fc].ravel()] + ([X0.ravel()] if move_points else []))
    sol = least_squares(
        fun,
        v0,
        jac=jac,
        loss=_robust(loss, 2 * n_obs),
        f_scale=f_scale,
        method="trf",
        tr_solver="lsmr",
        x_scale=1.0,
        max_nfev=max_nfev,
        ftol=1e-6,
        xtol=1e-6,
    )
    return unpack(sol.x)


def refine_calibration(
    cameras: Sequence[Camera] | Mapping[str, Camera],
    keypoints_2d: Mapping[str, KeypointSequence],
    *,
    params: Sequence[str] = ("principal_point",),
    fixed: Sequence[str] = (),
    min_confidence: float = 0.5,
    threshold_px: float = 20.0,
    loss: str = "soft_l1",
    f_scale_px: float = 5.0,
    prior_px: float = 10.0,
    prior_deg: float = 0.5,
    prior_focal: float = 0.01,
    anchor: bool = True,
    rounds: int = 2,
    max_nfev: int = 50,
    **triangulate_kwargs,
) -> tuple[list[Camera], pd.DataFrame]:
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
        Cameras left exactly as they are.  Fixing cameras fixes the gauge (two cameras fully,
        one all but a weak direction left to the prior); ``anchor`` is then not applied.
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
        Size of the (Gaussian) prior on each correction (px; degrees; relative scale): a
        correction this large costs about as much as one observation ``f_scale_px`` off.
    anchor : bool
        Fix the gauge by holding the mean of the adjusted 3D points at the mean of the same
        points in the first triangulation (the world frame does not drift).  Without it (and
        without ``fixed`` cameras) a common translation of the points and principal-point
        shifts of all cameras are told apart only by perspective and the prior.
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
    order, n_p = _layout(params)
    if isinstance(cameras, Mapping):
        cameras = list(cameras.values())
    cameras = list(cameras)
    if not isinstance(keypoints_2d, Mapping):
        raise InputError(
            "refine_calibration: keypoints_2d must be a mapping camera name -> 2D KeypointSequence"
        )
    unknown = [n for n in fixed if n not in keypoints_2d]
    if unknown:
        raise InputError(
            f"refine_calibration: fixed camera(s) {unknown} have no keypoints; expected names among "
            f"{list(keypoints_2d)}"
        )
    for name, v in (
        ("f_scale_px", f_scale_px),
        ("prior_px", prior_px),
        ("prior_deg", prior_deg),
        ("prior_focal", prior_focal),
        ("threshold_px", threshold_px),
    ):
        if not (np.isfinite(v) and v > 0):
            raise InputError(f"refine_calibration: {name} must be a positive number, found {v!r}")
    fixed = (fixed,) if isinstance(fixed, str) else tuple(fixed)
    _robust(loss, 0)  # checks the name
    if int(rounds) != rounds or rounds < 1:
        raise InputError(f"refine_calibration: rounds must be an integer >= 1, found {rounds!r}")
    triangulate_kwargs.setdefault("temporal", True)
    triangulate_kwargs.setdefault("threshold_px", threshold_px)
    by_name = {c.name: c for c in cameras}
    if any(n not in by_name for n in keypoints_2d):  # let triangulate word the error
        triangulate(cameras, keypoints_2d, **triangulate_kwargs)
    cams = [by_name[n] for n in keypoints_2d]
    free = np.array([c.name not in fixed for c in cams])
    prior = _prior_scale(order, prior_px, prior_deg, prior_focal)
    theta = np.zeros((len(cams), n_p))
    before: list[float] = []  # per camera, from the first round
    first = None
    for _ in range(int(rounds)):
        res = triangulate(_corrected(cams, order, free, theta), keypoints_2d, **triangulate_kwargs)
        X, obs, cam_of, pt_of, tk = _observations(res, min_confidence, threshold_px)
        first = res.sequence.positions.reshape(-1, 3) if first is None else first
        centroid = None
        if (
            anchor and not fixed
        ):  # where the first triangulation put these points (NaN there: this round's)
            centroid = np.where(np.isfinite(first[tk]), first[tk], X).mean(axis=0)
        if len(obs) < 10 * n_p * free.sum():
            raise DegenerateConfiguration(
                f"refine_calibration: {len(obs)} usable observations for "
                f"{n_p * free.sum()} camera parameters; expected at least 10 per parameter"
            )
        if not before:
            e0 = np.linalg.norm(
                _project(_corrected(cams, order, free, theta), X[pt_of], cam_of) - obs, axis=1
            )
            before = [
                float(np.median(e0[cam_of == c])) if np.any(cam_of == c) else np.nan
                for c in range(len(cams))
            ]
        kw = dict(loss=loss, f_scale=f_scale_px, max_nfev=max_nfev, anchor=centroid)
        theta, _ = _adjust(
            cams, order, n_p, free, X, obs, cam_of, pt_of, theta, prior, move_points=False, **kw
        )
        theta, X = _adjust(
            cams, order, n_p, free, X, obs, cam_of, pt_of, theta, prior, move_points=True, **kw
        )
    e1 = np.linalg.norm(
        _project(_corrected(cams, order, free, theta), X[pt_of], cam_of) - obs, axis=1
    )
    rows, out = [], []
    for i, c in enumerate(cams):
        kw = _unpack(theta[i], order)
        out.append(apply_corrections(c, **kw) if free[i] else c)
        pp = kw.get("principal_point_px", (0.0, 0.0))
        rv = kw.get("rotation_deg", (0.0, 0.0, 0.0))
        rows.append(
            {
                "camera": c.name,
                "dcx_px": float(pp[0]),
                "dcy_px": float(pp[1]),
                "rot_x_deg": float(rv[0]),
                "rot_y_deg": float(rv[1]),
                "rot_z_deg": float(rv[2]),
                "focal_scale": float(kw.get("focal_scale", 1.0)),
                "fixed": not free[i],
                "n_observations": int(np.sum(cam_of == i)),
                "median_error_before_px": before[i],
                "median_error_after_px": float(np.median(e1[cam_of == i]))
                if np.any(cam_of == i)
                else np.nan,
            }
        )
    rest = [c for c in cameras if c.name not in keypoints_2d]
    return out + rest, pd.DataFrame(rows)


def _observations(res, min_confidence: float, threshold_px: float):
    """Points (P, 3) and the observations of them to adjust on: pixels (N, 2), camera index (N,),
    point index (N,) and the flat (frame * K + keypoint) index of each point (P,), from a
    TriangulationResult."""
    X = res.sequence.positions  # (T, K, 3)
    px = np.stack([res.keypoints_2d[n].positions for n in res.camera_names], axis=2)  # (T, K, C, 2)
    cf = np.stack([res.keypoints_2d[n].confidence for n in res.camera_names], axis=2)
    ok = (
        res.used
        & (cf >= min_confidence)
        & (np.nan_to_num(res.errors, nan=np.inf) < threshold_px)
        & np.isfinite(X).all(-1)[..., None]
        & np.isfinite(px).all(-1)
    )
    ok &= (ok.sum(-1) >= 2)[..., None]  # a point needs two views
    t, k, c = np.nonzero(ok)
    pts, pt_of = np.unique(t * X.shape[1] + k, return_inverse=True)
    return X.reshape(-1, 3)[pts], px[t, k, c], c, pt_of, pts
