"""The result of a paired-point registration: the transform and what is known of its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data import Landmarks
from ..errors import FrameMismatch, InputError
from ..geometry import Transform
from .checks import check_coordinates
from .fle import fle_covariances
from .solve import combined_covariance
from .tre import tre_covariance_batch, tre_fitzpatrick

__all__ = ["Registration"]


@dataclass(frozen=True, eq=False, kw_only=True)
class Registration:
    """The result of :func:`~medpose.registration.register`: the transform and its error.

    The transform maps moving -> fixed; FRE, residuals, outliers and the predicted TRE say how
    far it can be trusted.

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
    named : bool
        True when the fiducials were Landmarks paired by name, False for arrays paired by row.
    """

    transform: Transform
    names: tuple[Any, ...]
    fixed: np.ndarray
    moving: np.ndarray
    inliers: np.ndarray
    scaled: bool = False
    fle: tuple[np.ndarray | None, np.ndarray | None] | None = None
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

        See :func:`medpose.registration.tre.tre_covariance_batch` (Danilchenko & Fitzpatrick 2011).
        ``targets`` and ``fle`` as in :meth:`predict_tre`.
        """
        pts, _ = self._targets(targets)
        cov = self._noise(fle)
        a = self.transform.apply(self.moving)[None]
        return tre_covariance_batch(
            a, self.weight_matrices[None], cov[None], self.transform.apply(pts)[None], self.scaled
        )[0]

    def predict_tre(self, targets: Any, fle: Any = None) -> pd.Series | np.ndarray:
        """Predicted RMS target registration error (mm) at each target.

        Parameters
        ----------
        targets : Landmarks, or array_like (M, 3) or (3,)
            Target positions in the *moving* frame (where they are planned, e.g. LPS).
        fle : number, covariance or mapping, optional
            FLE as in :func:`~medpose.registration.register` (a number is the RMS 3D error in mm).  Defaults to the FLE
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
            tre = tre_fitzpatrick(self.moving[self.inliers], pts, float(np.sqrt(var[0])))
        else:
            tre = np.sqrt(np.trace(self.tre_covariance(pts, fle), axis1=1, axis2=2))
        if labels is None:
            return tre[0] if np.ndim(targets) == 1 else tre
        return pd.Series(tre, index=list(labels), name="tre_mm")

    def _targets(self, targets: Any) -> tuple[np.ndarray, tuple[Any, ...] | None]:
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
        check_coordinates(pts, labels or tuple(range(len(pts))), "predict_tre: targets")
        return pts, labels

    def _noise(self, fle: Any) -> np.ndarray:
        n = len(self.names)
        if fle is not None:
            cf, cm = fle_covariances(fle, n, "predict_tre: fle")
        elif self.fle is not None:
            cf, cm = self.fle
        else:
            cf, cm = fle_covariances(self.estimated_fle(), n)
        r = self.transform.rotation.as_matrix()[None]
        s = np.array([self.transform.scale])
        cov = combined_covariance(
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

    def plot(self, ax: Any = None) -> Any:
        """The residual of each fiducial (mm) as bars on a matplotlib axis, outliers red, the
        FRE dashed.  The predicted TRE over the fiducials' plane, with targets, is
        :func:`medpose.report.figures.tre_map`."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        inl = np.asarray(self.inliers, dtype=bool)
        x = np.arange(len(self.names))
        res = self.residuals.to_numpy()
        ax.bar(x[inl], res[inl], color="#4c72b0", label="fiducial")
        if (~inl).any():
            ax.bar(x[~inl], res[~inl], color="#d62728", label="outlier (not in the fit)")
        ax.axhline(self.fre, color="black", ls="--", lw=1, label=f"FRE {self.fre:.2f} mm")
        ax.set_xticks(x, [str(n) for n in self.names], rotation=45, ha="right")
        ax.set_ylabel("residual (mm)")
        ax.legend(fontsize="small")
        return ax

    def __repr__(self) -> str:
        from ..report.display import registration_repr

        return registration_repr(self)

    def _repr_html_(self) -> str:
        from ..report.display import registration_html

        return registration_html(self)
