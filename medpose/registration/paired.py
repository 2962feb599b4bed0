"""Paired-point registration of imaging landmarks to camera keypoints, with honest error prediction.

* :func:`register` - one registration (rigid or similarity; weighted; anisotropic FLE; robust),
  returning a :class:`Registration` with the frame-tagged transform moving -> fixed, FRE,
  residuals, outliers and :meth:`Registration.predict_tre`.
* :func:`register_batch` - many registrations at once, arrays (B, N, 3), fully vectorised.
* :func:`simulate_tre` - Monte-Carlo TRE on any fiducial layout, built on :func:`register_batch`.

Frames: the transform maps the *moving* set (imaging, e.g. ``"LPS"``) into the *fixed* set's
frame (e.g. ``"camera"``).  Targets for TRE are given in the moving frame, where they are
planned; TRE is returned as an RMS distance in mm.

FLE convention (Fitzpatrick et al. 1998): a number is the RMS of the 3D localisation error in mm,
``sqrt(<|e|^2>)``, i.e. a per-axis standard deviation of ``fle / sqrt(3)``.  Anisotropic FLE is a
covariance (mm^2), per side (``{"fixed": ..., "moving": ...}``) and per point if needed;
:func:`~medpose.registration.camera_fle` builds a camera's depth-versus-lateral covariance.

Degenerate input raises: fewer than 3 common points, collinear or nearly collinear points (RMS
spread along the second principal axis below ``min_spread_ratio`` = 1% of that along the first,
by default), NaN or infinite coordinates, mismatched counts, names on one side only (listed),
fixed and moving in the same frame, and mirrored sets (a reflection fits at least 10 times
better, in sum of squares, than any rotation).
Modules: :mod:`~medpose.registration.checks` (input checks), :mod:`~medpose.registration.solve`
(the estimators), :mod:`~medpose.registration.robust` (outliers), :mod:`~medpose.registration.batch`
(many at once), :mod:`~medpose.registration.tre` (error prediction), :mod:`~medpose.registration.fle`
(FLE models) and :mod:`~medpose.registration.result` (:class:`Registration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..data import Landmarks
from ..errors import DegenerateConfiguration, InputError
from ..geometry import Transform
from .batch import BatchRegistration, register_batch
from .checks import (
    MIN_SPREAD_RATIO,
    check_conditioning,
    check_mirror,
    check_weights,
    pair_sets,
)
from .fle import camera_fle, fle_covariances
from .result import Registration
from .robust import robust_inliers
from .solve import isotropic_variance, procrustes_batch, solve_paired
from .tre import simulate_tre, tre_fitzpatrick

__all__ = [
    "Registration",
    "BatchRegistration",
    "register",
    "register_batch",
    "simulate_tre",
    "predict_tre",
    "camera_fle",
    "tre_fitzpatrick",
]


def register(
    fixed: Landmarks | Any,
    moving: Landmarks | Any,
    *,
    scale: bool = False,
    weights: Any = None,
    fle: Any = None,
    robust: bool = False,
    names: Sequence[str] | None = None,
    min_spread_ratio: float = MIN_SPREAD_RATIO,
    outlier_p: float = 1e-3,
    allow_same_frame: bool = False,
) -> Registration:
    """Register a moving point set (imaging) to a fixed one (camera) by paired points.

    Parameters
    ----------
    fixed, moving : Landmarks or array_like (N, 3)
        Landmarks are paired by name (all names must be on both sides unless ``names`` picks
        the fiducials); plain arrays are paired by row and named by row index.  mm.
    scale : bool
        Also estimate an isotropic scale (similarity; Umeyama 1991).
    weights : array_like (N,) or mapping name -> weight, optional
        Non-negative per-fiducial weights (relative).
    fle : number, covariance or mapping, optional
        Fiducial localisation error.  A number is the RMS 3D error (mm); a (3, 3) or (N, 3, 3)
        array is the fixed-side covariance (mm^2, fixed frame); ``{"fixed": .., "moving": ..}``
        gives each side (moving in the moving frame).  When given, fiducials are weighted by the
        inverse of their combined covariance: in closed form when it is isotropic, else by
        iteratively re-weighted Gauss-Newton (Balachandran & Fitzpatrick 2009; Maier-Hein et al.
        2012).  It is also the default FLE of :meth:`Registration.predict_tre`.
    robust : bool
        Find outlier fiducials (see Notes) and fit the rest; they are named in ``.outliers``.
    names : sequence of str, optional
        The landmarks to use as fiducials (Landmarks only).
    min_spread_ratio : float
        Conditioning threshold: the RMS spread along the second principal axis must be at least
        this fraction of that along the first, on both sides (default 0.01).
    outlier_p : float
        False-alarm probability per fiducial of the robust outlier test (default 0.001).
    allow_same_frame : bool
        Accept Landmarks of fixed and moving in the same frame (otherwise an error: usually the
        same set passed twice, or a frame tag forgotten).

    Returns
    -------
    Registration

    Raises
    ------
    InputError
        NaN/inf coordinates (which ones), mismatched counts, names on one side only (listed),
        both sets in one frame, bad weights or FLE.
    DegenerateConfiguration
        Fewer than 3 fiducials, collinear/nearly collinear or coincident fiducials (threshold
        stated), a mirrored set, or (robust) fewer than 3 mutually consistent fiducials.

    Notes
    -----
    Rigid: Arun et al. 1987 with Umeyama's reflection fix; the rotation is computed as the
    polar factor of ``H`` (Horn et al. 1988) by Higham's Newton iteration, with an SVD where
    ``H`` is ill-conditioned.  Robust mode: least-median-of-squares over every minimal
    3-subset (RANSAC-style hypotheses, Fischler & Bolles 1981; Rousseeuw 1984) gives a clean
    core; then every fiducial is tested against a fit without it by its externally studentised
    prediction residual ``d^2 = e^T (C_e + C_TRE)^{-1} e`` - chi-square(3) when the FLE is
    given, ``3 F(3, 3m - p)`` when it is estimated from the residuals - at false-alarm rate
    ``outlier_p``; the set is refined until it no longer changes.

    Examples
    --------
    >>> import numpy as np
    >>> from medpose import Landmarks
    >>> pts = np.array([[0, 0, 0], [100, 0, 0], [0, 80, 0], [0, 0, 60.0]])
    >>> ct = Landmarks(("a", "b", "c", "d"), pts, frame="LPS")
    >>> cam = Landmarks(("a", "b", "c", "d"), pts + [10, 20, 30], frame="camera")
    >>> reg = register(cam, ct)
    >>> np.round(reg.transform.translation, 6).tolist(), round(reg.fre, 9)
    ([10.0, 20.0, 30.0], 0.0)
    """
    if not (np.isfinite(min_spread_ratio) and 0 < min_spread_ratio < 1):
        raise InputError(
            f"register: min_spread_ratio must be in (0, 1), found {min_spread_ratio!r}"
        )
    if not 0 < outlier_p < 1:
        raise InputError(f"register: outlier_p must be in (0, 1), found {outlier_p!r}")
    f, m, labels, source, target, named = pair_sets(fixed, moving, names, allow_same_frame)
    n = f.shape[0]
    w = check_weights(weights, n, labels, named)
    check_conditioning(f, m, w, min_spread_ratio, labels if n < 3 else None)
    cov = None if fle is None else fle_covariances(fle, n, "register: fle")
    cf, cm = (None, None) if cov is None else cov
    if cf is not None or cm is not None:
        tot = isotropic_variance(cf, n) + isotropic_variance(cm, n)
        if np.any(tot <= 0):
            raise InputError(
                f"register: FLE is zero at {[labels[i] for i in np.flatnonzero(tot <= 0)]}; a zero "
                "covariance cannot be inverted into a weight - give a positive FLE"
            )
    inliers = np.ones(n, dtype=bool)
    if robust:
        inliers = robust_inliers(f, m, w, scale, cf, cm, outlier_p, min_spread_ratio)
        check_conditioning(
            f[inliers], m[inliers], None if w is None else w[inliers], min_spread_ratio
        )
    wfit = inliers.astype(float) if w is None else w * inliers
    # the mirror test uses the plain fit (a reflection is a property of the geometry, not the weights)
    plain = procrustes_batch(f[None], m[None], None if wfit.all() else wfit, scale)
    check_mirror(plain)
    out = solve_paired(
        f[None], m[None], wfit if not wfit.all() or w is not None else None, scale, cf, cm
    )
    r, t, s = out["R"][0], out["t"][0], float(out["s"][0])
    if not (np.isfinite(s) and s > 0):
        raise DegenerateConfiguration(
            f"register: the similarity scale came out as {s:.4g}; the point sets do not "
            "determine a positive scale"
        )
    wm = np.array(np.broadcast_to(out["W"][0], (n, 3, 3))) * inliers[:, None, None]
    transform = Transform(Rotation.from_matrix(r), t, s, source=source, target=target)
    return Registration(
        transform=transform,
        names=labels,
        fixed=f,
        moving=m,
        inliers=inliers,
        scaled=bool(scale),
        fle=cov,
        weight_matrices=wm,
        named=named,
    )


def predict_tre(
    fiducials: Any,
    targets: Any,
    fle: Any,
    *,
    scale: bool = False,
    weights: Any = None,
    weighted_by_fle: bool = True,
) -> np.ndarray:
    """Predicted RMS TRE (mm) for a fiducial layout, before any registration is done.

    Registers the layout to itself (exact data) with the same options as :func:`register`
    and returns :meth:`Registration.predict_tre`; ``weighted_by_fle=False`` predicts for an
    estimator that ignores the FLE (plain least squares) while the noise is ``fle``.
    ``fiducials`` (N, 3) and ``targets`` (M, 3) are in the moving frame.
    """
    x = np.asarray(fiducials, dtype=float)
    reg = register(x, x, scale=scale, weights=weights, fle=fle if weighted_by_fle else None)
    return np.atleast_1d(reg.predict_tre(np.atleast_2d(np.asarray(targets, float)), fle=fle))
