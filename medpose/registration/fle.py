"""Fiducial localisation error (FLE) models: numbers, covariances, per side and per point.

Following Fitzpatrick, West & Maurer (1998), a number is the RMS of the 3D localisation error
in mm, ``sqrt(<|e|^2>)``, i.e. a per-axis standard deviation of ``fle / sqrt(3)``.  An
anisotropic FLE is a covariance in mm^2: ``(3, 3)`` shared by every point or ``(N, 3, 3)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["camera_fle", "fle_covariances"]


def camera_fle(lateral: float, depth: float, axis: Any = (0.0, 0.0, 1.0)) -> np.ndarray:
    """FLE covariance (mm^2) of a camera-side point: ``lateral`` std across, ``depth`` along ``axis``.

    Parameters
    ----------
    lateral : float
        Standard deviation (mm) of the error along each of the two axes across the viewing
        direction.
    depth : float
        Standard deviation (mm) along the viewing direction (``axis``; +z in an OpenCV camera).
    axis : array_like, shape (3,)
        Viewing direction in the fixed (camera) frame; need not be unit length.

    Returns
    -------
    ndarray, shape (3, 3)
        ``lateral^2 I + (depth^2 - lateral^2) a a^T``; its RMS 3D error (Fitzpatrick's FLE) is
        ``sqrt(2 lateral^2 + depth^2)``.

    Raises
    ------
    InputError
        A non-finite or zero axis, a negative or non-finite standard deviation.
    """
    a = np.asarray(axis, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0:
        raise InputError(
            f"camera_fle: axis must be 3 finite numbers, not all zero, found {a.tolist()}"
        )
    for name, v in (("lateral", lateral), ("depth", depth)):
        if not np.isfinite(v) or v < 0:
            raise InputError(
                f"camera_fle: {name} must be a finite standard deviation >= 0 mm, found {v!r}"
            )
    a = a / np.linalg.norm(a)
    return lateral**2 * np.eye(3) + (depth**2 - lateral**2) * np.outer(a, a)


def _one_side(value: Any, n: int, what: str) -> np.ndarray:
    if np.ndim(value) == 0:
        v = float(value)
        if not np.isfinite(v) or v < 0:
            raise InputError(f"{what}: FLE must be a finite RMS error >= 0 mm, found {value!r}")
        return np.broadcast_to(v**2 / 3.0 * np.eye(3), (n, 3, 3)).copy()
    c = np.asarray(value, dtype=float)
    if c.shape == (3, 3):
        c = np.broadcast_to(c, (n, 3, 3)).copy()
    if c.shape != (n, 3, 3):
        raise InputError(
            f"{what}: FLE covariance must be a number (RMS mm), a (3, 3) or an ({n}, 3, 3) "
            f"array (mm^2), found shape {c.shape}"
        )
    if not np.all(np.isfinite(c)):
        raise InputError(f"{what}: FLE covariance contains NaN or infinite values")
    if not np.allclose(c, c.transpose(0, 2, 1), atol=1e-9 * max(np.abs(c).max(), 1e-300)):
        raise InputError(f"{what}: FLE covariance is not symmetric")
    lam = np.linalg.eigvalsh(c)
    if np.any(lam < -1e-12 * max(np.abs(lam).max(), 1e-300)):
        bad = int(np.flatnonzero((lam < 0).any(-1))[0])
        raise InputError(
            f"{what}: FLE covariance of point {bad} has a negative eigenvalue "
            f"{lam[bad].min():.4g} mm^2; a covariance must be positive semi-definite"
        )
    return c


def fle_covariances(
    fle: Any, n: int, what: str = "fle"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Parse an FLE specification into per-point covariances ``(fixed side, moving side)``, (N, 3, 3) mm^2.

    ``fle`` is a number (RMS 3D error in mm, split equally over the three axes and put on the
    fixed side: for isotropic errors only the sum of both sides matters), a (3, 3) or (N, 3, 3)
    covariance of the fixed-side error in the fixed frame, or a mapping with keys ``"fixed"``
    and/or ``"moving"`` (each a number or covariance, the moving one in the moving frame).
    At least one side is returned.

    Raises
    ------
    InputError
        Unknown keys, a wrong shape, NaN, an asymmetric or non-positive-semi-definite covariance,
        a negative number.
    """
    if isinstance(fle, Mapping):
        unknown = set(fle) - {"fixed", "moving"}
        if unknown:
            raise InputError(
                f"{what}: unknown keys {sorted(map(str, unknown))}; expected 'fixed' and/or 'moving'"
            )
        cf = None if fle.get("fixed") is None else _one_side(fle["fixed"], n, f"{what}['fixed']")
        cm = None if fle.get("moving") is None else _one_side(fle["moving"], n, f"{what}['moving']")
        if cf is None and cm is None:
            raise InputError(f"{what}: mapping gives neither 'fixed' nor 'moving' FLE")
        return cf, cm
    return _one_side(fle, n, what), None
