"""Many paired-point registrations at once: arrays (B, N, 3), fully vectorised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import DegenerateConfiguration, InputError
from ..geometry import Transform
from .checks import MAX_COORDINATE_MM, MIN_SPREAD_RATIO, check_mirror, spread_ratio
from .fle import fle_covariances
from .solve import apply_similarity, solve_paired

__all__ = ["BatchRegistration", "register_batch"]


@dataclass(frozen=True, eq=False, kw_only=True)
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
        return apply_similarity(self.rotation, self.translation, self.scale, p)

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
        return int(self.rotation.shape[0])


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

    Same estimator as :func:`~medpose.registration.register` (without the robust search):
    weighted least squares, closed form with a batched polar decomposition (Horn et al. 1988,
    Higham 1986) and an SVD fallback carrying Umeyama's reflection fix; with anisotropic
    ``fle``, batched Gauss-Newton (:mod:`medpose.registration.solve`).

    Parameters
    ----------
    fixed, moving : array_like, shape (B, N, 3) (either may be (N, 3), shared by all problems)
    scale : bool
        Similarity instead of rigid.
    weights : array_like, shape (N,) or (B, N), optional
    fle : as in :func:`~medpose.registration.register`, shared by all problems (per point:
        (N, 3, 3)).
    check : bool
        Check for NaN/inf, coordinates beyond 1e7 mm, fewer than 3 points, nearly collinear
        sets and mirrored sets, and raise naming the first offending problems.  Switch off
        only for inputs known good.
    min_spread_ratio : float
        Conditioning threshold as in :func:`~medpose.registration.register`.

    Returns
    -------
    BatchRegistration

    Raises
    ------
    InputError, DegenerateConfiguration
        As :func:`~medpose.registration.register`, naming the problem indices.
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
            f"register_batch: mismatched counts - {f.shape[1]} fixed and {m.shape[1]} moving "
            "points per problem"
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
        for side, arr in (("fixed", f), ("moving", m)):
            bad = ~np.isfinite(arr).all(axis=(1, 2))
            if bad.any():
                raise InputError(
                    f"register_batch: NaN or infinite {side} coordinates in problems "
                    f"{np.flatnonzero(bad)[:10].tolist()}"
                )
            mag = np.abs(arr).max(axis=(1, 2)) if arr.size else np.zeros(b)
            big = mag >= MAX_COORDINATE_MM
            if big.any():
                raise InputError(
                    f"register_batch: {side} coordinates of magnitude up to {mag.max():.3g} mm "
                    f"in problems {np.flatnonzero(big)[:10].tolist()}; positions must lie within "
                    f"|x| < {MAX_COORDINATE_MM:.0e} mm (10 km) of the frame's origin"
                )
        if n < 3:
            raise DegenerateConfiguration(
                f"register_batch: {n} points per problem; at least 3 are needed"
            )
        wb = None if w is None else np.broadcast_to(w, (b, n))
        for side, arr in (("moving", m), ("fixed", f)):
            ratio = spread_ratio(arr, wb)
            bad = ~(ratio >= min_spread_ratio)
            if bad.any():
                raise DegenerateConfiguration(
                    f"register_batch: {side} points nearly collinear in problems "
                    f"{np.flatnonzero(bad)[:10].tolist()} (spread ratio {ratio[bad].min():.3g} "
                    f"< min_spread_ratio={min_spread_ratio:g})"
                )
    cf, cm = (None, None) if fle is None else fle_covariances(fle, n, "register_batch: fle")
    out = solve_paired(f, m, w, scale, cf, cm)
    if check:
        check_mirror(out, "register_batch")
    resid = f - apply_similarity(out["R"], out["t"], out["s"], m)
    d2 = (resid * resid).sum(-1)
    fre = np.sqrt(d2.mean(-1) if w is None else (d2 * (w > 0)).sum(-1) / (w > 0).sum(-1))
    return BatchRegistration(rotation=out["R"], translation=out["t"], scale=out["s"], fre=fre)
