"""Frame-tagged rigid and similarity transforms.

A :class:`Transform` maps points from its ``source`` frame to its ``target``
frame: ``x_target = scale * R @ x_source + t`` with ``t`` in millimetres.
Rotations are :class:`scipy.spatial.transform.Rotation` objects; nothing here
re-implements rotation maths.  Composing or applying across mismatched frames
raises :class:`~medpose.errors.FrameMismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from .data import Landmarks
from .errors import FrameMismatch, InputError

__all__ = ["Transform", "LPS", "RAS", "CAMERA", "lps_to_ras", "ras_to_lps"]

LPS = "LPS"
RAS = "RAS"
CAMERA = "camera"


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Flip x and y: LPS <-> RAS (the same operation both ways), shape (..., 3)."""
    out = np.array(points, dtype=float, copy=True)
    out[..., 0] *= -1.0
    out[..., 1] *= -1.0
    return out


ras_to_lps = lps_to_ras


@dataclass(frozen=True)
class Transform:
    """A rigid or similarity transform from ``source`` to ``target`` frame.

    Parameters
    ----------
    rotation : scipy.spatial.transform.Rotation
        Proper rotation (no reflection).
    translation : array_like, shape (3,)
        Translation in millimetres, applied after rotation and scale.
    scale : float
        Isotropic scale (1 for a rigid transform), strictly positive.
    source, target : str
        Frame names, e.g. ``"LPS"`` and ``"camera"``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.spatial.transform import Rotation
    >>> T = Transform(Rotation.from_euler("z", 90, degrees=True), [10, 0, 0], source="LPS", target="camera")
    >>> np.round(T.apply([[1.0, 0, 0]]), 6)
    array([[10.,  1.,  0.]])
    """

    rotation: Rotation = field(default_factory=Rotation.identity)
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: float = 1.0
    source: str = "source"
    target: str = "target"

    def __post_init__(self) -> None:
        t = np.asarray(self.translation, dtype=float).reshape(-1)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise InputError(
                f"Transform: translation must be 3 finite numbers (mm), found {t.tolist()}"
            )
        if not isinstance(self.rotation, Rotation) or not self.rotation.single:
            raise InputError("Transform: rotation must be a single scipy Rotation")
        s = float(self.scale)
        if not np.isfinite(s) or s <= 0:
            raise InputError(
                f"Transform: scale must be a finite positive number, found {self.scale!r}"
            )
        t.setflags(write=False)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "scale", s)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def identity(cls, frame: str = "source") -> Transform:
        """The identity from ``frame`` to itself."""
        return cls(source=frame, target=frame)

    @classmethod
    def from_matrix(
        cls, matrix: Any, source: str = "source", target: str = "target", *, atol: float = 1e-6
    ) -> Transform:
        """Build from a 4x4 homogeneous matrix ``[[sR, t], [0, 1]]``.

        Raises
        ------
        InputError
            If the matrix is not 4x4, not finite, its last row is not ``[0, 0, 0, 1]``,
            or its 3x3 block is not a scaled proper rotation (within ``atol``).
        """
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4):
            raise InputError(f"Transform.from_matrix: expected a 4x4 matrix, found shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise InputError("Transform.from_matrix: matrix contains NaN or infinite values")
        if not np.allclose(m[3], [0, 0, 0, 1], atol=atol):
            raise InputError(
                f"Transform.from_matrix: last row must be [0, 0, 0, 1], found {m[3].tolist()}"
            )
        a = m[:3, :3]
        det = np.linalg.det(a)
        if det <= 0:
            raise InputError(
                f"Transform.from_matrix: 3x3 block has determinant {det:.4g}; a reflection or "
                "singular matrix is not a rigid/similarity transform"
            )
        s = det ** (1.0 / 3.0)
        r = a / s
        if not np.allclose(r @ r.T, np.eye(3), atol=max(atol, 1e-9) * 10):
            raise InputError(
                "Transform.from_matrix: 3x3 block is not a scaled rotation "
                "(shear or anisotropic scale found)"
            )
        return cls(Rotation.from_matrix(r), m[:3, 3], s, source, target)

    # ------------------------------------------------------------------ properties
    @property
    def matrix(self) -> np.ndarray:
        """The 4x4 homogeneous matrix (float64)."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation.as_matrix()
        m[:3, 3] = self.translation
        return m

    @property
    def is_rigid(self) -> bool:
        return abs(self.scale - 1.0) < 1e-12

    # ------------------------------------------------------------------ operations
    def apply(self, points: Any, frame: str | None = None) -> Any:
        """Map points from ``source`` to ``target``.

        Parameters
        ----------
        points : array_like (..., 3) or Landmarks
            Points in the source frame (mm).  A :class:`~medpose.data.Landmarks`
            is checked against ``source`` and returned in ``target``.
        frame : str, optional
            The frame the array is in; if given and not ``source``, raises FrameMismatch.
        """
        if isinstance(points, Landmarks):
            if points.frame != self.source:
                raise FrameMismatch(
                    f"Transform {self.source}->{self.target} applied to landmarks in "
                    f"frame '{points.frame}'"
                )
            return Landmarks(points.names, self.apply(points.positions), frame=self.target)
        if frame is not None and frame != self.source:
            raise FrameMismatch(
                f"Transform {self.source}->{self.target} applied to points in frame '{frame}'"
            )
        p = np.array(points, dtype=float)  # a writable copy: scipy rejects read-only buffers
        if p.shape[-1:] != (3,):
            raise InputError(f"Transform.apply: points must have shape (..., 3), found {p.shape}")
        flat = p.reshape(-1, 3)
        out = self.scale * self.rotation.apply(flat) + self.translation
        return out.reshape(p.shape)

    def inverse(self) -> Transform:
        """The transform from ``target`` back to ``source``."""
        rinv = self.rotation.inv()
        s = 1.0 / self.scale
        return Transform(
            rinv, -s * rinv.apply(np.array(self.translation)), s, self.target, self.source
        )

    def __matmul__(self, other: Transform) -> Transform:
        """``a @ b`` applies ``b`` first, then ``a``; needs ``b.target == a.source``."""
        if not isinstance(other, Transform):
            return NotImplemented
        if other.target != self.source:
            raise FrameMismatch(
                f"cannot compose ({self.source}->{self.target}) @ ({other.source}->{other.target}): "
                f"'{other.target}' is not '{self.source}'"
            )
        rot = self.rotation * other.rotation
        return Transform(
            rot,
            self.scale * self.rotation.apply(np.array(other.translation)) + self.translation,
            self.scale * other.scale,
            other.source,
            self.target,
        )

    def allclose(self, other: Transform, atol: float = 1e-9) -> bool:
        return (
            self.source == other.source
            and self.target == other.target
            and np.allclose(self.matrix, other.matrix, atol=atol)
        )

    def to_dict(self) -> dict:
        """JSON-able form: frames and the 4x4 matrix (row major)."""
        return {"source": self.source, "target": self.target, "matrix": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Transform:
        try:
            return cls.from_matrix(d["matrix"], d["source"], d["target"])
        except KeyError as e:
            raise InputError(
                f"Transform.from_dict: missing field {e.args[0]!r}; expected source, target, matrix"
            ) from None

    def __repr__(self) -> str:
        rv = np.round(self.rotation.as_rotvec(degrees=True), 4).tolist()
        return (
            f"Transform({self.source}->{self.target}, rotvec_deg={rv}, "
            f"translation_mm={np.round(self.translation, 4).tolist()}, scale={self.scale:.6g})"
        )
