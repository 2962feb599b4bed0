"""Synthetic fiducial layouts for registration studies (mm)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["head_fiducials"]


def head_fiducials(n: int, semi_axes: Sequence[float] = (80.0, 100.0, 70.0)) -> np.ndarray:
    """``n`` fiducials spread evenly over the upper part of a head-sized ellipsoid.

    Points follow a Fibonacci spiral (golden-angle steps) over the top 90 % of the ellipsoid, the
    layout that skin-marker studies of cranial navigation use as a stand-in for a head.

    Parameters
    ----------
    n : int
        Number of fiducials (>= 1).
    semi_axes : 3 floats
        Ellipsoid semi-axes in mm (x, y, z); default 80 x 100 x 70 mm.

    Returns
    -------
    ndarray, shape (n, 3)
        Positions in mm, centred on the ellipsoid's centre.
    """
    if int(n) < 1:
        raise InputError(f"head_fiducials: n must be >= 1, found {n!r}")
    a = np.asarray(semi_axes, dtype=float)
    if a.shape != (3,) or np.any(a <= 0):
        raise InputError(
            f"head_fiducials: semi_axes must be 3 positive numbers of mm, found {list(semi_axes)}"
        )
    i = np.arange(int(n)) + 0.5
    z = 1 - i / n * 0.9
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.c_[a[0] * r * np.cos(phi), a[1] * r * np.sin(phi), a[2] * z]
