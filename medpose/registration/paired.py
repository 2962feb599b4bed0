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

References: see :mod:`medpose.registration._core`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.transform import Rotation

from ..data import Landmarks
from ..errors import DegenerateConfiguration, FrameMismatch, InputError
from ..geometry import Transform
from . import _core

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

camera_fle = _core.camera_fle
tre_fitzpatrick = _core.tre_fitzpatrick

#: Default conditioning threshold: RMS spread along the 2nd principal axis / along the 1st.
MIN_SPREAD_RATIO = 0.01


# ====================================================================== input checks
def _finite_rows(a: np.ndarray, labels: Sequence[Any], what: str) -> None:
    bad = ~np.all(np.isfinite(a), axis=-1)
    if bad.any():
        which = [labels[i] for i in np.flatnonzero(bad)]
        raise InputError(
            f"{what}: NaN or infinite coordinates at {which}; every fiducial needs 3 finite "
            "numbers (mm) - drop unplaced points or pass names= to choose the fiducials"
        )


def _check_conditioning(
    fixed: np.ndarray,
    moving: np.ndarray,
    w: np.ndarray | None,
    min_spread_ratio: float,
    labels: Sequence[Any] | None = None,
) -> None:
    """Raise DegenerateConfiguration for < 3 points, collinear/coincident sets (either side)."""
    n = fixed.shape[-2]
    if n < 3:
        raise DegenerateConfiguration(
            f"register: {n} common fiducial(s){'' if labels is None else ' ' + str(list(labels))}; "
            "at least 3 non-collinear points are needed for a unique transform"
        )
    if w is not None and np.count_nonzero(w) < 3:
        raise DegenerateConfiguration(
            f"register: only {np.count_nonzero(w)} fiducial(s) have a non-zero weight; "
            "at least 3 are needed"
        )
    for side, pts in (("moving", moving), ("fixed", fixed)):
        ratio = _core.spread_ratio(pts[None], None if w is None else w[None])[0]
        if not ratio >= min_spread_ratio:
            raise DegenerateConfiguration(
                f"register: the {side} fiducials are {'collinear' if ratio < 1e-9 else 'nearly collinear'}: RMS spread "
                f"along the second principal axis is {ratio:.3g} of that along the first, below the conditioning "
                f"threshold min_spread_ratio={min_spread_ratio:g}; the rotation about their line is undetermined "
                "- add a fiducial off the line"
            )


def _weights(weights: Any, n: int, labels: Sequence[Any], named: bool) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, (Mapping, pd.Series)):
        w_map = dict(weights.items())
        missing = [l for l in labels if l not in w_map]
        if missing:
            raise InputError(f"register: weights missing for {missing}")
        w = np.array([w_map[l] for l in labels], dtype=float)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.shape != (n,):
            raise InputError(
                f"register: weights must give one number per fiducial ({n}"
                f"{', in the order of names' if named else ''}), found shape {np.shape(weights)}"
            )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(
            f"register: weights must be finite, >= 0 and not all zero, found {w.tolist()}"
        )
    return w


def _pair(
    fixed: Any, moving: Any, names: Sequence[str] | None, allow_same_frame: bool
) -> tuple[np.ndarray, np.ndarray, tuple, str, str, bool]:
    """Pair the two sets; returns fixed (N,3), moving (N,3), labels, source frame, target frame, named."""
    if isinstance(fixed, Landmarks) != isinstance(moving, Landmarks):
        raise InputError(
            "register: fixed and moving must both be Landmarks (paired by name) or both arrays "
            f"(paired by row), found {type(fixed).__name__} and {type(moving).__name__}"
        )
    if isinstance(fixed, Landmarks):
        if fixed.frame == moving.frame and not allow_same_frame:
            raise InputError(
                f"register: fixed and moving are both in frame '{fixed.frame}'; the moving set "
                "(imaging, e.g. 'LPS') must be registered to a fixed set in another frame (e.g. "
                "'camera') - check which landmarks were passed, or pass allow_same_frame=True"
            )
        if names is None:
            only_f = [n for n in fixed.names if n not in moving.names]
            only_m = [n for n in moving.names if n not in fixed.names]
            if only_f or only_m:
                raise InputError(
                    f"register: landmark names on one side only - fixed ({fixed.frame}) only: {only_f}; "
                    f"moving ({moving.frame}) only: {only_m}; rename them, or pass names= to "
                    "choose the fiducials"
                )
            names = list(fixed.names)
        else:
            names = [str(n) for n in names]
            for side, lm in (("fixed", fixed), ("moving", moving)):
                missing = [n for n in names if n not in lm.names]
                if missing:
                    raise InputError(
                        f"register: names {missing} not in the {side} landmarks ({lm.frame})"
                    )
            if len(set(names)) != len(names):
                raise InputError(f"register: names has duplicates: {names}")
        f_sub, m_sub = fixed.subset(names), moving.subset(names)
        _finite_rows(f_sub.positions, names, f"register: fixed landmarks ({fixed.frame})")
        _finite_rows(m_sub.positions, names, f"register: moving landmarks ({moving.frame})")
        a, b = f_sub.common(m_sub)  # all finite: pairs by name in this order
        return (
            np.array(a.positions),
            np.array(b.positions),
            tuple(a.names),
            moving.frame,
            fixed.frame,
            True,
        )
    f = np.asarray(fixed, dtype=float)
    m = np.asarray(moving, dtype=float)
    for side, a in (("fixed", f), ("moving", m)):
        if a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"register: {side} points must have shape (N, 3), found {a.shape}")
    if f.shape != m.shape:
        raise InputError(
            f"register: mismatched counts - {f.shape[0]} fixed and {m.shape[0]} moving points; "
            "arrays are paired by row and need the same number of rows"
        )
    labels: tuple = tuple(range(f.shape[0]))
    if names is not None:
        raise InputError("register: names= selects Landmarks by name; index the arrays instead")
    _finite_rows(f, labels, "register: fixed points (rows)")
    _finite_rows(m, labels, "register: moving points (rows)")
    return f, m, labels, "moving", "fixed", False


# ====================================================================== estimation
def _is_isotropic(cov: np.ndarray | None) -> bool:
    if cov is None:
        return True
    diag = np.trace(cov, axis1=1, axis2=2) / 3.0
    return bool(
        np.allclose(
            cov, diag[:, None, None] * np.eye(3), rtol=0, atol=1e-12 * max(diag.max(), 1e-300)
        )
    )


def _iso_var(cov: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n) if cov is None else np.trace(cov, axis1=1, axis2=2) / 3.0


def _solve(
    fixed: np.ndarray,
    moving: np.ndarray,
    w: np.ndarray | None,
    scale: bool,
    cov_f: np.ndarray | None,
    cov_m: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Batched estimator shared by register, the robust search and register_batch.

    ``fixed``/``moving`` (B, N, 3); ``w`` (B, N), (N,) or None; ``cov_f``/``cov_m`` (N, 3, 3),
    (B, N, 3, 3) or None.  No FLE: weighted least squares.  Isotropic FLE: closed form with
    weights ``w_i / sigma_i^2``.  Anisotropic: Gauss-Newton from the isotropic solution.
    Returns the estimate and ``W`` (B, N, 3, 3), the estimator's weight matrices.
    """
    b, n, _ = fixed.shape
    wv = None if w is None else np.asarray(w, dtype=float)
    if cov_f is None and cov_m is None:
        out = _core.procrustes_batch(fixed, moving, wv, scale)
        wm = (
            np.ones((1, n))
            if wv is None
            else np.broadcast_to(wv, (b, n))
            if wv.ndim == 2
            else wv[None]
        )
        out["W"] = wm[..., None, None] * np.eye(3)
        return out
    var = _iso_var(cov_f, n) + _iso_var(cov_m, n)  # approximate for scale != 1 on the moving side
    wiso = (1.0 if wv is None else wv) / var
    start = _core.procrustes_batch(fixed, moving, wiso, scale)
    if _is_isotropic(cov_f) and _is_isotropic(cov_m) and not (scale and cov_m is not None):
        start["W"] = np.broadcast_to(wiso, (b, n))[..., None, None] * np.eye(3)
        return start
    return _core.anisotropic_batch(fixed, moving, wv, scale, cov_f, cov_m, start)


def _raise_mirror(gain: float, total: float, fre2_refl: float) -> None:
    raise DegenerateConfiguration(
        "register: the fiducial sets are mirror images - the best orthogonal fit is a reflection "
        f"(determinant -1), which fits with a weighted sum of squares {fre2_refl:.4g} mm^2 against "
        f"{fre2_refl + gain:.4g} mm^2 for the best rotation; check left/right landmark names and the "
        "LPS/RAS convention of the imaging landmarks"
    )


def _check_mirror(out: dict[str, np.ndarray], index: int = 0, scale_factor: float = 1.0) -> None:
    gain = float(out["mirror_gain"][index])
    if gain <= 0:
        return
    sse_rot = float(out["total"][index] - 2.0 * out["sv_sum"][index])  # rigid, normalised weights
    sse_refl = max(sse_rot - gain, 0.0)
    floor = 1e-10 * float(out["total"][index])
    if gain > floor and sse_rot > _core.MIRROR_RATIO * sse_refl:
        _raise_mirror(gain, float(out["total"][index]), sse_refl)


# ====================================================================== result
@dataclass(frozen=True, eq=False)
class Registration:
    """The result of :func:`register`: transform moving -> fixed and what is known of its error.

    Attributes
    ----------
    transform : Transform
        Maps points from the moving frame (``source``) to the fixed frame (``target``).
    names : tuple
        The fiducials used (landmark names, or row indices for plain arrays), in pairing order.
    fixed, moving : ndarray, shape (N, 3)
        Their positions (mm) in the fixed and moving frames.
    inliers : ndarray of bool, shape (N,)
        False for fiducials found to be outliers (``robust=True``); those do not enter the fit.
    scaled : bool
        Whether an isotropic scale was estimated.
    fle : tuple or None
        The FLE model ``(fixed-side, moving-side)`` covariances (N, 3, 3) mm^2 given at
        registration, or None.
    weight_matrices : ndarray, shape (N, 3, 3)
        The estimator's weight matrices at the solution (zero for outliers).
    """

    transform: Transform
    names: tuple
    fixed: np.ndarray
    moving: np.ndarray
    inliers: np.ndarray
    scaled: bool = False
    fle: tuple | None = None
    weight_matrices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    named: bool = True

    # ------------------------------------------------------------------ errors at fiducials
    @property
    def n_fiducials(self) -> int:
        """Number of fiducials in the fit (outliers excluded)."""
        return int(self.inliers.sum())

    @property
    def residual_vectors(self) -> np.ndarray:
        """``fixed - T(moving)`` per fiducial, shape (N, 3), mm, fixed frame."""
        return self.fixed - self.transform.apply(self.moving)

    @property
    def residuals(self) -> pd.Series:
        """Distance (mm) between each fixed fiducial and its mapped moving partner, outliers included.

        A Series indexed by landmark name (or row index for plain arrays), named ``residual_mm``.
        """
        return pd.Series(
            np.linalg.norm(self.residual_vectors, axis=1),
            index=list(self.names),
            name="residual_mm",
        )

    @property
    def fre(self) -> float:
        """Fiducial registration error: RMS residual (mm) over the fiducials in the fit (outliers excluded)."""
        r = np.linalg.norm(self.residual_vectors[self.inliers], axis=1)
        return float(np.sqrt(np.mean(r**2)))

    @property
    def outliers(self) -> tuple:
        """Names (or row indices) of the fiducials rejected by ``robust=True``; empty otherwise."""
        return tuple(n for n, k in zip(self.names, self.inliers) if not k)

    # ------------------------------------------------------------------ prediction
    def estimated_fle(self) -> float:
        """FLE (RMS 3D, mm) estimated from the FRE: ``<FLE^2> = <FRE^2> N / (N - p/3)``.

        ``p`` = 6 parameters (7 with scale); Fitzpatrick et al. 1998, eq. 10 generalised.  With
        few fiducials this estimate is itself uncertain (a chi-square with 3N - p degrees of freedom).
        """
        n = self.n_fiducials
        p = 7 if self.scaled else 6
        return float(np.sqrt(self.fre**2 * n / (n - p / 3.0)))

    def tre_covariance(self, targets: Any, fle: Any = None) -> np.ndarray:
        """First-order covariance (mm^2) of the error at each target, shape (M, 3, 3), fixed frame.

        See :func:`medpose.registration._core.tre_covariance_batch` (Danilchenko & Fitzpatrick 2011).
        ``targets`` and ``fle`` as in :meth:`predict_tre`.
        """
        pts, _ = self._targets(targets)
        cov = self._noise(fle)
        a = self.transform.apply(self.moving)[None]
        return _core.tre_covariance_batch(
            a, self.weight_matrices[None], cov[None], self.transform.apply(pts)[None], self.scaled
        )[0]

    def predict_tre(self, targets: Any, fle: Any = None) -> pd.Series | np.ndarray:
        """Predicted RMS target registration error (mm) at each target.

        Parameters
        ----------
        targets : Landmarks, or array_like (M, 3) or (3,)
            Target positions in the *moving* frame (where they are planned, e.g. LPS).
        fle : number, covariance or mapping, optional
            FLE as in :func:`register` (a number is the RMS 3D error in mm).  Defaults to the FLE
            given at registration, else the FLE estimated from the FRE (:meth:`estimated_fle`).

        Returns
        -------
        pandas.Series by target name (Landmarks) or ndarray (M,) (arrays; a scalar for one (3,) point)

        Notes
        -----
        For a rigid, unweighted registration with isotropic, equal FLE this is Fitzpatrick, West
        & Maurer (1998), eq. 46.  Otherwise (anisotropic or unequal FLE, weights, scale) it is the
        first-order propagation of the FLE covariance through the estimator actually used
        (Danilchenko & Fitzpatrick 2011); both agree where both apply.
        """
        pts, labels = self._targets(targets)
        cov = self._noise(fle)
        wm = self.weight_matrices[self.inliers]
        w0 = np.trace(wm, axis1=1, axis2=2)
        plain = (
            not self.scaled
            and np.allclose(wm, (w0[:, None, None] / 3.0) * np.eye(3), atol=1e-12 * w0.max())
            and np.allclose(w0, w0[0])
        )
        ci = cov[self.inliers]
        var = np.trace(ci, axis1=1, axis2=2)
        iso = np.allclose(
            ci, (var[:, None, None] / 3.0) * np.eye(3), atol=1e-12 * var.max()
        ) and np.allclose(var, var[0])
        if plain and iso:
            tre = _core.tre_fitzpatrick(self.moving[self.inliers], pts, float(np.sqrt(var[0])))
        else:
            tre = np.sqrt(np.trace(self.tre_covariance(pts, fle), axis1=1, axis2=2))
        if labels is None:
            return tre[0] if np.ndim(targets) == 1 else tre
        return pd.Series(tre, index=list(labels), name="tre_mm")

    def _targets(self, targets: Any) -> tuple[np.ndarray, tuple | None]:
        if isinstance(targets, Landmarks):
            if targets.frame != self.transform.source:
                raise FrameMismatch(
                    f"predict_tre: targets are in frame '{targets.frame}'; give them in the moving "
                    f"frame '{self.transform.source}' where they are planned"
                )
            pts, labels = np.array(targets.positions), targets.names
        else:
            pts, labels = np.atleast_2d(np.asarray(targets, dtype=float)), None
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise InputError(
                f"predict_tre: targets must have shape (M, 3) or (3,), found {np.shape(targets)}"
            )
        _finite_rows(pts, labels or tuple(range(len(pts))), "predict_tre: targets")
        return pts, labels

    def _noise(self, fle: Any) -> np.ndarray:
        n = len(self.names)
        if fle is not None:
            cf, cm = _core.fle_covariances(fle, n, "predict_tre: fle")
        elif self.fle is not None:
            cf, cm = self.fle
        else:
            cf, cm = _core.fle_covariances(self.estimated_fle(), n)
        r = self.transform.rotation.as_matrix()[None]
        s = np.array([self.transform.scale])
        cov = _core.combined_covariance(
            None if cf is None else cf[None], None if cm is None else cm[None], r, s
        )
        return cov[0]

    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table, one row per fiducial: ``name, residual_mm, inlier``; ``attrs['fre_mm']``."""
        df = pd.DataFrame(
            {
                "name": list(self.names),
                "residual_mm": self.residuals.to_numpy(),
                "inlier": self.inliers,
            }
        )
        df.attrs.update(
            {"fre_mm": self.fre, "source": self.transform.source, "target": self.transform.target}
        )
        return df

    def __repr__(self) -> str:
        return (
            f"Registration({self.transform.source}->{self.transform.target}, {self.n_fiducials} fiducials, "
            f"FRE={self.fre:.3f} mm, outliers={list(self.outliers)})"
        )


# ====================================================================== register
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
    f, m, labels, source, target, named = _pair(fixed, moving, names, allow_same_frame)
    n = f.shape[0]
    w = _weights(weights, n, labels, named)
    _check_conditioning(f, m, w, min_spread_ratio, labels if n < 3 else None)
    cov = None if fle is None else _core.fle_covariances(fle, n, "register: fle")
    cf, cm = (None, None) if cov is None else cov
    if cf is not None or cm is not None:
        tot = _iso_var(cf, n) + _iso_var(cm, n)
        if np.any(tot <= 0):
            raise InputError(
                f"register: FLE is zero at {[labels[i] for i in np.flatnonzero(tot <= 0)]}; a zero "
                "covariance cannot be inverted into a weight - give a positive FLE"
            )
    inliers = np.ones(n, dtype=bool)
    if robust:
        inliers = _robust_inliers(f, m, w, scale, cf, cm, outlier_p, min_spread_ratio)
        _check_conditioning(
            f[inliers], m[inliers], None if w is None else w[inliers], min_spread_ratio
        )
    wfit = inliers.astype(float) if w is None else w * inliers
    # the mirror test uses the plain fit (a reflection is a property of the geometry, not the weights)
    plain = _core.procrustes_batch(f[None], m[None], None if wfit.all() else wfit, scale)
    _check_mirror(plain)
    out = _solve(f[None], m[None], wfit if not wfit.all() or w is not None else None, scale, cf, cm)
    r, t, s = out["R"][0], out["t"][0], float(out["s"][0])
    if not (np.isfinite(s) and s > 0):
        raise DegenerateConfiguration(
            f"register: the similarity scale came out as {s:.4g}; the point sets do not "
            "determine a positive scale"
        )
    wm = np.array(np.broadcast_to(out["W"][0], (n, 3, 3))) * inliers[:, None, None]
    transform = Transform(Rotation.from_matrix(r), t, s, source=source, target=target)
    return Registration(transform, labels, f, m, inliers, bool(scale), cov, wm, named)


# ====================================================================== robust
def _robust_inliers(
    f: np.ndarray,
    m: np.ndarray,
    w: np.ndarray | None,
    scale: bool,
    cf: np.ndarray | None,
    cm: np.ndarray | None,
    p_false: float,
    min_spread_ratio: float,
    max_hypotheses: int = 5000,
) -> np.ndarray:
    n = f.shape[0]
    if n < 4:
        raise DegenerateConfiguration(
            f"register(robust=True): {n} fiducials; finding an outlier needs at least 4"
        )
    # 1. least median of squares over minimal subsets
    subsets = np.array(list(itertools.combinations(range(n), 3)))
    if len(subsets) > max_hypotheses:
        rng = np.random.default_rng(0)
        subsets = subsets[rng.choice(len(subsets), max_hypotheses, replace=False)]
    ok = (_core.spread_ratio(m[subsets]) >= min_spread_ratio) & (
        _core.spread_ratio(f[subsets]) >= min_spread_ratio
    )
    subsets = subsets[ok]
    if len(subsets) == 0:
        raise DegenerateConfiguration("register(robust=True): no 3 fiducials are non-collinear")
    hyp = _core.procrustes_batch(f[subsets], m[subsets], None, scale)
    res2 = (
        (
            f[None]
            - _core._apply(hyp["R"], hyp["t"], hyp["s"], np.broadcast_to(m, (len(subsets), n, 3)))
        )
        ** 2
    ).sum(-1)
    best = int(np.argmin(np.median(res2, axis=1)))
    inl = np.zeros(n, dtype=bool)  # the h best-fitting points, h = max(4, n // 2 + 1)
    inl[np.argsort(res2[best], kind="stable")[: max(4, n // 2 + 1)]] = True
    extent2 = float(((m - m.mean(0)) ** 2).sum(1).mean())
    # 2. refine by externally studentised leave-one-out prediction residuals
    p = 7 if scale else 6
    known = cf is not None or cm is not None
    seen: list[bytes] = []
    for _ in range(2 * n):
        masks = np.broadcast_to(inl, (n, n)).copy()
        masks[np.arange(n), np.arange(n)] &= False  # fit i leaves point i out
        size = masks.sum(1)
        if size.min() < 3:
            raise DegenerateConfiguration(
                f"register(robust=True): only {int(inl.sum())} fiducials agree with each "
                "other; at least 3 consistent fiducials are needed"
            )
        wmask = masks * (1.0 if w is None else w)
        fb, mb = np.broadcast_to(f, (n, n, 3)), np.broadcast_to(m, (n, n, 3))
        out = _solve(fb, mb, wmask, scale, cf, cm)
        wm = out["W"] * masks[..., None, None]
        a = _core._apply(out["R"], out["t"], out["s"], mb)
        resid = f[None] - a  # (fit, point, 3)
        if known:
            noise = _core.combined_covariance(
                None if cf is None else cf[None],
                None if cm is None else cm[None],
                out["R"],
                out["s"],
            )
            noise = np.broadcast_to(noise, (n, n, 3, 3))
            thr = np.full(n, stats.chi2.ppf(1 - p_false, 3))
        else:
            wt = np.trace(wm, axis1=2, axis2=3) / 3.0  # scalar weights of each fit
            dof = 3 * size - p
            sigma2 = (wt * (resid**2).sum(-1)).sum(1) / np.maximum(
                dof, 1
            )  # per-axis variance at unit weight
            sigma2 = np.maximum(sigma2, 1e-24 * extent2)  # exact data: rounding-level floor
            inv_w = np.ones(n) if w is None else 1.0 / np.where(w > 0, w, 1.0)
            noise = (sigma2[:, None] * inv_w[None, :])[..., None, None] * np.eye(3)
            thr = 3.0 * stats.f.ppf(1 - p_false, 3, np.maximum(dof, 1))
            thr = np.where(dof >= 1, thr, np.inf)
        idx = np.arange(n)
        e = resid[idx, idx]  # prediction residual of i from fit i
        c_tre = _core.tre_covariance_batch(a, wm, noise, a[idx, idx][:, None, :], scale)[:, 0]
        c_e = noise[idx, idx] + c_tre
        d2 = np.einsum("bi,bij,bj->b", e, np.linalg.inv(c_e), e)
        new = d2 <= thr
        if w is not None:
            new &= w > 0
        if new.sum() < 3:
            raise DegenerateConfiguration(
                f"register(robust=True): only {int(new.sum())} fiducials agree with each "
                "other; at least 3 consistent fiducials are needed"
            )
        if np.array_equal(new, inl) or new.tobytes() in seen or new.sum() == 3:
            inl = new
            break
        seen.append(inl.tobytes())
        inl = new
    return inl


# ====================================================================== batch
@dataclass(frozen=True, eq=False)
class BatchRegistration:
    """Many registrations at once (moving -> fixed), arrays over the batch axis B.

    Attributes
    ----------
    rotation : ndarray (B, 3, 3)
    translation : ndarray (B, 3), mm
    scale : ndarray (B,)
    fre : ndarray (B,), RMS residual (mm) over the fiducials with non-zero weight
    """

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    fre: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """Homogeneous matrices (B, 4, 4)."""
        b = self.rotation.shape[0]
        out = np.zeros((b, 4, 4))
        out[:, :3, :3] = self.scale[:, None, None] * self.rotation
        out[:, :3, 3] = self.translation
        out[:, 3, 3] = 1.0
        return out

    def apply(self, points: Any) -> np.ndarray:
        """Map points (M, 3) or (B, M, 3) from moving to fixed, giving (B, M, 3)."""
        p = np.asarray(points, dtype=float)
        p = np.broadcast_to(p, (self.rotation.shape[0],) + p.shape[-2:]) if p.ndim == 2 else p
        return _core._apply(self.rotation, self.translation, self.scale, p)

    def transform(self, index: int, source: str = "moving", target: str = "fixed") -> Transform:
        """One problem's result as a frame-tagged :class:`~medpose.geometry.Transform`."""
        return Transform(
            Rotation.from_matrix(self.rotation[index]),
            self.translation[index],
            float(self.scale[index]),
            source,
            target,
        )

    def __len__(self) -> int:
        return self.rotation.shape[0]


def register_batch(
    fixed: Any,
    moving: Any,
    *,
    scale: bool = False,
    weights: Any = None,
    fle: Any = None,
    check: bool = True,
    min_spread_ratio: float = MIN_SPREAD_RATIO,
) -> BatchRegistration:
    """Register B problems at once, paired by row: fixed and moving of shape (B, N, 3).

    Same estimator as :func:`register` (without the robust search): weighted least squares,
    closed form with a batched polar decomposition (Horn et al. 1988, Higham 1986) and an SVD
    fallback carrying Umeyama's reflection fix; with anisotropic ``fle``, batched Gauss-Newton.

    Parameters
    ----------
    fixed, moving : array_like, shape (B, N, 3) (either may be (N, 3), shared by all problems)
    scale : bool
        Similarity instead of rigid.
    weights : array_like, shape (N,) or (B, N), optional
    fle : as in :func:`register`, shared by all problems (per point: (N, 3, 3)).
    check : bool
        Check for NaN/inf, fewer than 3 points, nearly collinear sets and mirrored sets, and
        raise naming the first offending problems.  Switch off only for inputs known good.
    min_spread_ratio : float
        Conditioning threshold as in :func:`register`.

    Returns
    -------
    BatchRegistration

    Raises
    ------
    InputError, DegenerateConfiguration
        As :func:`register`, naming the problem indices.
    """
    f = np.asarray(fixed, dtype=float)
    m = np.asarray(moving, dtype=float)
    if f.ndim == 2:
        f = f[None]
    if m.ndim == 2:
        m = m[None]
    if f.ndim != 3 or m.ndim != 3 or f.shape[-1] != 3 or m.shape[-1] != 3:
        raise InputError(
            f"register_batch: fixed and moving must have shape (B, N, 3), found {np.shape(fixed)} "
            f"and {np.shape(moving)}"
        )
    if f.shape[1] != m.shape[1]:
        raise InputError(
            f"register_batch: mismatched counts - {f.shape[1]} fixed and {m.shape[1]} moving points "
            "per problem"
        )
    b = max(f.shape[0], m.shape[0])
    if f.shape[0] not in (1, b) or m.shape[0] not in (1, b):
        raise InputError(f"register_batch: batch sizes {f.shape[0]} and {m.shape[0]} do not match")
    f = np.broadcast_to(f, (b,) + f.shape[1:])
    m = np.broadcast_to(m, (b,) + m.shape[1:])
    n = f.shape[1]
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape not in ((n,), (b, n)) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError(
                f"register_batch: weights must be finite, >= 0, of shape ({n},) or ({b}, {n}); "
                f"found shape {w.shape}"
            )
    if check:
        for side, a in (("fixed", f), ("moving", m)):
            bad = ~np.isfinite(a).all(axis=(1, 2))
            if bad.any():
                raise InputError(
                    f"register_batch: NaN or infinite {side} coordinates in problems "
                    f"{np.flatnonzero(bad)[:10].tolist()}"
                )
        if n < 3:
            raise DegenerateConfiguration(
                f"register_batch: {n} points per problem; at least 3 are needed"
            )
        wb = None if w is None else np.broadcast_to(w, (b, n))
        for side, a in (("moving", m), ("fixed", f)):
            ratio = _core.spread_ratio(a, wb)
            bad = ~(ratio >= min_spread_ratio)
            if bad.any():
                raise DegenerateConfiguration(
                    f"register_batch: {side} points nearly collinear in problems {np.flatnonzero(bad)[:10].tolist()} "
                    f"(spread ratio {ratio[bad].min():.3g} < min_spread_ratio={min_spread_ratio:g})"
                )
    cov = (None, None) if fle is None else _core.fle_covariances(fle, n, "register_batch: fle")
    out = _solve(f, m, w, scale, *cov)
    if check:
        gain = out["mirror_gain"]
        sse_rot = out["total"] - 2.0 * out["sv_sum"]
        mirror = (gain > 1e-10 * out["total"]) & (
            sse_rot > _core.MIRROR_RATIO * np.maximum(sse_rot - gain, 0.0)
        )
        if mirror.any():
            raise DegenerateConfiguration(
                f"register_batch: mirrored point sets (a reflection fits best) in problems "
                f"{np.flatnonzero(mirror)[:10].tolist()}"
            )
    resid = f - _core._apply(out["R"], out["t"], out["s"], m)
    d2 = (resid * resid).sum(-1)
    fre = np.sqrt(d2.mean(-1) if w is None else (d2 * (w > 0)).sum(-1) / (w > 0).sum(-1))
    return BatchRegistration(out["R"], out["t"], out["s"], fre)


# ====================================================================== simulation / prediction
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


def _sqrtm(cov: np.ndarray) -> np.ndarray:
    """A square root ``L`` with ``L L^T = cov`` for PSD covariances (N, 3, 3), singular ones included."""
    lam, vec = np.linalg.eigh(cov)
    return vec * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]


def simulate_tre(
    fiducials: Any,
    targets: Any,
    fle: Any,
    trials: int = 10_000,
    *,
    scale: bool = False,
    weights: Any = None,
    weighted_by_fle: bool = True,
    transform: Transform | None = None,
    seed: int | np.random.Generator = 0,
    chunk: int = 20_000,
) -> np.ndarray:
    """Monte-Carlo RMS target registration error (mm) at each target.

    Each trial perturbs the true fiducials with zero-mean Gaussian FLE (fixed side in the fixed
    frame, moving side in the moving frame), registers them with :func:`register_batch` (the
    same estimator as :func:`register`: weighted by the FLE if ``weighted_by_fle``), and measures
    the distance between each mapped target and its true position.

    Parameters
    ----------
    fiducials : array_like, shape (N, 3)
        True fiducial positions in the moving frame (mm).
    targets : array_like, shape (M, 3) or (3,)
        True target positions in the moving frame (mm).
    fle : number, covariance or mapping
        As in :func:`register`.
    trials : int
        Number of Monte-Carlo trials.
    scale, weights : as in :func:`register`.
    weighted_by_fle : bool
        Whether the simulated registrations use ``fle`` as weights (as ``register(fle=...)``
        does) or plain least squares.
    transform : Transform, optional
        True moving -> fixed transform (identity by default; matters for anisotropic FLE given
        on both sides).
    seed : int or numpy.random.Generator
    chunk : int
        Trials per batch (memory).

    Returns
    -------
    ndarray, shape (M,)
        RMS TRE (mm); its own relative standard error is roughly ``1/sqrt(trials)``.
    """
    x = np.asarray(fiducials, dtype=float)
    tg = np.atleast_2d(np.asarray(targets, dtype=float))
    if x.ndim != 2 or x.shape[1] != 3 or tg.shape[-1] != 3:
        raise InputError(
            f"simulate_tre: fiducials must be (N, 3) and targets (M, 3), found {x.shape} and {tg.shape}"
        )
    if int(trials) < 1:
        raise InputError(f"simulate_tre: trials must be >= 1, found {trials!r}")
    n = x.shape[0]
    _finite_rows(x, tuple(range(n)), "simulate_tre: fiducials")
    _finite_rows(tg, tuple(range(len(tg))), "simulate_tre: targets")
    cf, cm = _core.fle_covariances(fle, n, "simulate_tre: fle")
    true = transform or Transform(source="moving", target="fixed")
    y = true.apply(x)
    ty = true.apply(tg)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lf = None if cf is None else _sqrtm(cf)
    lm = None if cm is None else _sqrtm(cm)
    sq = np.zeros(len(tg))
    done = 0
    while done < trials:
        b = min(chunk, trials - done)
        fy = np.broadcast_to(y, (b, n, 3)).copy()
        mx = np.broadcast_to(x, (b, n, 3)).copy()
        if lf is not None:
            fy += np.einsum("nij,bnj->bni", lf, rng.standard_normal((b, n, 3)))
        if lm is not None:
            mx += np.einsum("nij,bnj->bni", lm, rng.standard_normal((b, n, 3)))
        res = register_batch(
            fy, mx, scale=scale, weights=weights, fle=fle if weighted_by_fle else None, check=False
        )
        err = res.apply(tg) - ty[None]
        sq += (err**2).sum(-1).sum(0)
        done += b
    return np.sqrt(sq / trials)
