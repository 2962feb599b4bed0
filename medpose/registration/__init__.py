"""Imaging-to-camera registration: paired points, robust, anisotropic, surface-refined, with TRE.

The transform always maps the *moving* set (imaging landmarks, LPS) into the *fixed* set's
frame (camera keypoints, ``"camera"``).  See ``docs/registration.md``.
"""

from __future__ import annotations

from .gate import GateResult, QualityGate
from .paired import (
    BatchRegistration,
    Registration,
    camera_fle,
    predict_tre,
    register,
    register_batch,
    simulate_tre,
    tre_fitzpatrick,
)
from .skeleton import skeleton_landmarks_from_imaging
from .surface import Surface, SurfaceFit, extract_surface, refine_surface

__all__ = [
    "register",
    "Registration",
    "register_batch",
    "BatchRegistration",
    "predict_tre",
    "simulate_tre",
    "tre_fitzpatrick",
    "camera_fle",
    "Surface",
    "SurfaceFit",
    "extract_surface",
    "refine_surface",
    "QualityGate",
    "GateResult",
    "skeleton_landmarks_from_imaging",
]
