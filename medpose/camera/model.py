"""The pinhole camera with OpenCV lens distortion.

Conventions (those of OpenCV, which Pose2Sim, anipose and EasyMocap share):

* The camera frame has x to the right of the image, y down, z forward along the
  optical axis.  Pixel ``(0, 0)`` is the centre of the top-left pixel.
* The pose maps the calibration's world frame to the camera frame:
  ``x_cam = R @ x_world + t`` with ``R`` given as a Rodrigues rotation vector
  (``rotation``, radians) and ``t`` in millimetres (``translation``).
* Distortion is OpenCV's radial-tangential model, coefficients
  ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])`` (4, 5 or 8 of them).

Reference: OpenCV documentation, "Camera Calibration and 3D Reconstruction"
(module calib3d, ``cv::projectPoints``, ``cv::undistortPoints``),
https://docs.opencv.org/4.x/d9/d0c/group__calib3d.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..geometry import CAMERA, Transform

__all__ = ["Camera"]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _as_array(value: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected numbers, found {value!r}") from None


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera: intrinsics, OpenCV distortion and pose.

    Parameters
    ----------
    name : str
        Camera name, also the name of its own coordinate frame (e.g. ``"cam01"``).
    size : tuple of int
        Image ``(width, height)`` in pixels.
    matrix : array_like, shape (3, 3)
        Intrinsic matrix ``K`` in pixels: ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
    distortion : array_like, shape (4,), (5,) or (8,)
        OpenCV coefficients ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])``; zeros for none.
    rotation : array_like, shape (3,)
        Rodrigues vector (radians) of the rotation world -> camera.
    translation : array_like, shape (3,)
        Translation world -> camera in millimetres.
    world : str
        Name of the world frame the pose refers to (default ``"camera"``, the
        calibration's world frame).

    Raises
    ------
    InputError
        If ``K`` is not a finite upper-triangular matrix with positive focal
        lengths and ``K[2, 2] == 1``, the distortion does not have 4, 5 or 8
        finite coefficients, the size is not two positive integers, or the pose
        is not finite.  The message names the camera and the field.

    Examples
    --------
    >>> cam = Camera("cam01", (640, 480), [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    >>> cam.project([[100.0, 0.0, 1000.0]])
    array([[370., 240.]])
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    distortion: np.ndarray = (0.0, 0.0, 0.0, 0.0)  # type: ignore[assignment]
    rotation: np.ndarray = (0.0, 0.0, 0.0)  # type: ignore[assignment]
    translation: np.ndarray = (0.0, 0.0, 0.0)  # type: ignore[assignment]
    world: str = CAMERA

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"Camera: name must be a non-empty string, found {self.name!r}")
        who = f"camera {self.name!r}"
        size = _as_array(self.size, f"{who}: size")
        if (
            size.shape != (2,)
            or not np.all(np.isfinite(size))
            or np.any(size <= 0)
            or np.any(size != np.round(size))
        ):
            raise InputError(
                f"{who}: size must be two positive integers (width, height) in pixels, "
                f"found {np.asarray(self.size).tolist()}"
            )
        k = _as_array(self.matrix, f"{who}: matrix")
        if k.shape != (3, 3):
            raise InputError(f"{who}: matrix must be 3x3, found shape {k.shape}")
        if not np.all(np.isfinite(k)):
            raise InputError(
                f"{who}: matrix contains NaN or infinite values; expected finite pixels"
            )
        if k[1, 0] != 0 or k[2, 0] != 0 or k[2, 1] != 0 or not np.isclose(k[2, 2], 1.0, atol=1e-9):
            raise InputError(
                f"{who}: matrix must be upper-triangular with K[2,2] = 1 "
                f"([[fx, s, cx], [0, fy, cy], [0, 0, 1]]), found {k.tolist()}"
            )
        if k[0, 0] <= 0 or k[1, 1] <= 0:
            raise InputError(
                f"{who}: matrix focal lengths must be positive, found fx={k[0, 0]:g}, fy={k[1, 1]:g}"
            )
        d = _as_array(self.distortion, f"{who}: distortion").reshape(-1)
        if d.shape[0] not in (4, 5, 8):
            raise InputError(
                f"{who}: distortion must have 4, 5 or 8 coefficients (k1, k2, p1, p2[, k3[, k4, "
                f"k5, k6]]), found {d.shape[0]}"
            )
        if not np.all(np.isfinite(d)):
            raise InputError(f"{who}: distortion contains NaN or infinite values")
        for field, value in (("rotation", self.rotation), ("translation", self.translation)):
            v = _as_array(value, f"{who}: {field}").reshape(-1)
            if v.shape != (3,):
                raise InputError(f"{who}: {field} must have 3 values, found {v.shape[0]}")
            if not np.all(np.isfinite(v)):
                raise InputError(f"{who}: {field} contains NaN or infinite values")
            object.__setattr__(self, field, _readonly(v))
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        object.__setattr__(self, "matrix", _readonly(k))
        object.__setattr__(self, "distortion", _readonly(d))
        object.__setattr__(self, "world", str(self.world))

    # ------------------------------------------------------------------ pose
    @property
    def rotation_matrix(self) -> np.ndarray:
        """The 3x3 rotation world -> camera (``scipy`` ``Rotation.from_rotvec``)."""
        return Rotation.from_rotvec(np.array(self.rotation)).as_matrix()

    def world_to_camera(self) -> Transform:
        """The rigid :class:`~medpose.geometry.Transform` from ``world`` to this camera's frame."""
        return Transform(
            Rotation.from_rotvec(np.array(self.rotation)),
            self.translation,
            source=self.world,
            target=self.name,
        )

    @property
    def center(self) -> np.ndarray:
        """Optical centre in the world frame, mm: ``-R.T @ t``."""
        return -self.rotation_matrix.T @ self.translation

    @property
    def projection_matrix(self) -> np.ndarray:
        """The 3x4 matrix ``P = K [R | t]`` (world mm -> homogeneous px), without distortion.

        For DLT triangulation (Hartley & Zisserman 2004, *Multiple View Geometry*, 2nd ed., sec. 6.1).
        """
        return self.matrix @ np.hstack([self.rotation_matrix, self.translation[:, None]])

    # ------------------------------------------------------------------ projection
    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The OpenCV distortion (radial-tangential and rational) of normalised coordinates
        given as two arrays of any shape: ``(x_d, y_d)``."""
        d = np.zeros(8)
        d[: self.distortion.size] = self.distortion
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd

    def _distort(self, xy: np.ndarray) -> np.ndarray:
        """Apply the OpenCV distortion to normalised coordinates (..., 2)."""
        return np.stack(self.distort(xy[..., 0], xy[..., 1]), axis=-1)

    def _to_pixels(self, xy: np.ndarray) -> np.ndarray:
        k = self.matrix
        u = k[0, 0] * xy[..., 0] + k[0, 1] * xy[..., 1] + k[0, 2]
        v = k[1, 1] * xy[..., 1] + k[1, 2]
        return np.stack([u, v], axis=-1)

    def project(self, points: Any, *, distort: bool = True) -> np.ndarray:
        """Project world points to pixels.

        ``x_cam = R x + t``; ``(x', y') = (X/Z, Y/Z)``; OpenCV distortion; ``[u v 1] = K [x'' y'' 1]``.

        Parameters
        ----------
        points : array_like, shape (..., 3)
            Points in the ``world`` frame, mm.  NaN propagates.
        distort : bool
            Apply the lens distortion (default); ``False`` gives the ideal pinhole image.

        Returns
        -------
        ndarray, shape (..., 2)
            Pixel coordinates ``(u, v)``; NaN for points on or behind the camera plane (Z <= 0).

        References
        ----------
        OpenCV calib3d documentation, ``cv::projectPoints`` (the radial-tangential and
        rational models).  Unlike ``cv::projectPoints`` the skew ``K[0, 1]`` is applied.
        """
        p = _as_array(points, f"camera {self.name!r}: project points")
        if p.shape[-1:] != (3,):
            raise InputError(
                f"camera {self.name!r}: project expects points of shape (..., 3), found {p.shape}"
            )
        pc = p @ self.rotation_matrix.T + self.translation
        z = pc[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = np.where(z > 0, pc[..., :2] / z, np.nan)
        if distort:
            xy = self._distort(xy)
        return self._to_pixels(xy)

    def undistort_points(
        self, pixels: Any, *, normalized: bool = True, iterations: int = 20
    ) -> np.ndarray:
        """Remove the lens distortion from pixel coordinates.

        Inverts the OpenCV model by the fixed-point iteration that ``cv::undistortPoints``
        uses: ``x <- (x_d - tangential(x)) / radial(x)``, starting from ``x = x_d``.  It
        converges for the mild distortions of calibrated lab cameras; with strong
        distortion far from the centre the result is only as good as ``iterations`` allows.

        Parameters
        ----------
        pixels : array_like, shape (..., 2)
            Distorted pixel coordinates ``(u, v)``.
        normalized : bool
            ``True`` (default): return ideal normalised coordinates ``(X/Z, Y/Z)``;
            ``False``: return ideal (undistorted) pixel coordinates ``K [x y 1]``.
        iterations : int
            Most fixed-point iterations (OpenCV's default is 5; 20 reaches machine precision
            for typical lab lenses); the iteration stops earlier once no point moves by more
            than 1e-15.

        Returns
        -------
        ndarray, shape (..., 2)
        """
        px = _as_array(pixels, f"camera {self.name!r}: undistort pixels")
        if px.shape[-1:] != (2,):
            raise InputError(
                f"camera {self.name!r}: undistort_points expects shape (..., 2), found {px.shape}"
            )
        k = self.matrix
        yd = (px[..., 1] - k[1, 2]) / k[1, 1]
        xd = (px[..., 0] - k[0, 2] - k[0, 1] * yd) / k[0, 0]
        dist = np.stack([xd, yd], axis=-1)
        d = np.zeros(8)
        d[: self.distortion.size] = self.distortion
        k1, k2, p1, p2, k3, k4, k5, k6 = d
        xy = dist.copy()
        if np.any(d != 0):
            for _ in range(int(iterations)):  # iterations of the inversion, not a loop over points
                x, y = xy[..., 0], xy[..., 1]
                r2 = x * x + y * y
                icdist = (1 + r2 * (k4 + r2 * (k5 + r2 * k6))) / (
                    1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                )
                dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
                dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
                new = np.stack(
                    [(dist[..., 0] - dx) * icdist, (dist[..., 1] - dy) * icdist], axis=-1
                )
                moved = np.abs(new - xy)
                xy = new
                if not (moved > 1e-15).any():  # converged to machine precision (NaN stays NaN)
                    break
        return xy if normalized else self._to_pixels(xy)

    # ------------------------------------------------------------------ misc
    def allclose(self, other: Camera, atol: float = 1e-9) -> bool:
        """Same name, size and world, and parameters equal within ``atol``."""
        return (
            self.name == other.name
            and self.size == other.size
            and self.world == other.world
            and self.distortion.shape == other.distortion.shape
            and all(
                np.allclose(getattr(self, f), getattr(other, f), atol=atol, rtol=0)
                for f in ("matrix", "distortion", "rotation", "translation")
            )
        )

    def __repr__(self) -> str:
        k = self.matrix
        return (
            f"Camera({self.name!r}, {self.size[0]}x{self.size[1]} px, f=({k[0, 0]:.1f}, {k[1, 1]:.1f}) px, "
            f"centre_mm={np.round(self.center, 1).tolist()}, world={self.world!r})"
        )
