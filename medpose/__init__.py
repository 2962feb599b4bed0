"""medpose: medical motion assessment and surgical navigation.

The names in ``__all__`` are the public API (see ``docs/architecture.md``): what notebooks and
scripts import.
Light modules (data model, file formats, sessions) are imported eagerly; the torch-backed parts
(skeleton, fit) and whole sub-packages (``mp.synthetic``, ``mp.temporal``, ...) load on first use,
so ``import medpose`` and the command line start quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .camera.model import Camera
from .data import JointAngles, KeypointSequence, Landmarks
from .errors import (
    DegenerateConfiguration,
    FrameMismatch,
    InputError,
    LimitError,
    MedposeError,
    ProtocolError,
)
from .geometry import Transform
from .imaging.volume import Volume, read_volume, write_volume
from .io.calibration import read_calibration, write_calibration
from .io.keypoints import read_keypoints, write_keypoints
from .io.landmarks import read_landmarks, write_landmarks
from .io.mot import read_mot, write_mot
from .protocol.definition import Protocol
from .protocol.session import Session, validate_session

#: Attributes loaded on first access: name -> (module, attribute or None for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "Skeleton": ("medpose.kinematics", "Skeleton"),
    "forward_kinematics": ("medpose.kinematics", "forward_kinematics"),
    "angles_from_poses": ("medpose.kinematics", "angles_from_poses"),
    "default_ranges": ("medpose.kinematics", "default_ranges"),
    "fit": ("medpose.kinematics.fit", "fit"),
    "Fit": ("medpose.kinematics.fit", "Fit"),
    "calibrate": ("medpose.kinematics.calibrate", "calibrate"),
    "KeypointModel": ("medpose.kinematics.keypoint_models", "KeypointModel"),
    "load_keypoint_model": ("medpose.kinematics.keypoint_models", "load_keypoint_model"),
    "keypoint_model_for": ("medpose.kinematics.keypoint_models", "keypoint_model_for"),
    "PatientSkeleton": ("medpose.kinematics.patient", "PatientSkeleton"),
    "JointLimits": ("medpose.kinematics.limits", "JointLimits"),
    "register": ("medpose.registration", "register"),
    "register_batch": ("medpose.registration", "register_batch"),
    "Registration": ("medpose.registration", "Registration"),
    "simulate_tre": ("medpose.registration", "simulate_tre"),
    "QualityGate": ("medpose.registration", "QualityGate"),
    "triangulate": ("medpose.camera.triangulation", "triangulate"),
    "read_transform": ("medpose.io.transform", "read_transform"),
    "write_transform": ("medpose.io.transform", "write_transform"),
    "Study": ("medpose.store", "Study"),
    "Assessment": ("medpose.protocol.assessment", "Assessment"),
    "camera": ("medpose.camera", None),
    "imaging": ("medpose.imaging", None),
    "io": ("medpose.io", None),
    "kinematics": ("medpose.kinematics", None),
    "layouts": ("medpose.layouts", None),
    "learning": ("medpose.learning", None),
    "metrics": ("medpose.scoring", None),
    "registration": ("medpose.registration", None),
    "scoring": ("medpose.scoring", None),
    "synthetic": ("medpose.synthetic", None),
    "temporal": ("medpose.temporal", None),
}

__all__ = [
    "__version__",
    # data model
    "Transform",
    "Landmarks",
    "KeypointSequence",
    "JointAngles",
    "Volume",
    "Camera",
    # errors
    "MedposeError",
    "InputError",
    "FrameMismatch",
    "DegenerateConfiguration",
    "ProtocolError",
    "LimitError",
    # formats
    "read_landmarks",
    "write_landmarks",
    "read_volume",
    "write_volume",
    "read_keypoints",
    "write_keypoints",
    "read_calibration",
    "write_calibration",
    "read_mot",
    "write_mot",
    # sessions
    "Session",
    "validate_session",
    "Protocol",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'medpose' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
