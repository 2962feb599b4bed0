"""Imaging volumes (CT, MRI): reading, voxel <-> LPS mapping; see ``docs/formats-imaging.md``.

The landmark detector (``docs/detector.md``) loads on first use, so importing this package
does not import torch or MONAI:

* :func:`train_landmarks`, :func:`training_phantoms`, :func:`evaluate_detector` (training);
* :func:`detect_landmarks`, :func:`detect_and_register`, :class:`Detection` (inference);
* :class:`DetectorConfig`, :class:`LandmarkDetector`, :func:`load_detector`,
  :func:`save_detector`, :func:`export_onnx`, :func:`check_onnx`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Detector names loaded on first access: name -> module.
_LAZY: dict[str, str] = {
    "DetectorConfig": "medpose.imaging.detector",
    "LandmarkDetector": "medpose.imaging.detector",
    "load_detector": "medpose.imaging.detector",
    "save_detector": "medpose.imaging.detector",
    "soft_argmax": "medpose.imaging.detector",
    "Detection": "medpose.imaging.detector_run",
    "detect_landmarks": "medpose.imaging.detector_run",
    "detect_and_register": "medpose.imaging.detector_run",
    "train_landmarks": "medpose.imaging.detector_train",
    "training_phantoms": "medpose.imaging.detector_train",
    "evaluate_detector": "medpose.imaging.detector_train",
    "mean_position_errors": "medpose.imaging.detector_train",
    "TrainResult": "medpose.imaging.detector_train",
    "export_onnx": "medpose.imaging.detector_export",
    "check_onnx": "medpose.imaging.detector_export",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'medpose.imaging' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
