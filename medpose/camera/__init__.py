"""Cameras: the calibrated camera model (calibration files are read by :mod:`medpose.io.calibration`)."""
from __future__ import annotations

from .model import Camera

__all__ = ["Camera"]
