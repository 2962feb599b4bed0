"""Cameras: the calibrated camera model, triangulation and per-view left/right repair
(calibration files are read by :mod:`medpose.io.calibration`)."""

from __future__ import annotations

from .model import Camera
from .refine import apply_corrections, refine_calibration
from .swaps import repair_view_swaps
from .tracking import TrackResult, track_points
from .triangulation import ImageSizeWarning, TriangulationResult, triangulate, triangulate_points

__all__ = [
    "Camera",
    "triangulate",
    "triangulate_points",
    "TriangulationResult",
    "ImageSizeWarning",
    "repair_view_swaps",
    "track_points",
    "TrackResult",
    "refine_calibration",
    "apply_corrections",
]
