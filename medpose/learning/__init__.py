"""Learned components: the pose alignment loss and the keypoint attention refiner.

Importing this package imports torch (``import medpose`` alone does not; ``mp.learning`` loads
it on first use).

* :class:`PoseAlignmentLoss` - ``alpha`` times a smooth-L1 coordinate loss in millimetres plus
  ``1 - alpha`` times the KL divergence between normalised target and predicted heatmaps, with
  :func:`gaussian_heatmaps` targets, a visibility mask and an :class:`AlphaSchedule`.
* :class:`KeypointRefiner` - a small transformer over keypoints and time that refines noisy 3D
  keypoint sequences; :func:`refine` applies the shipped one (or yours) to a
  :class:`~medpose.data.KeypointSequence`; :func:`train_refiner` on :func:`make_refiner_data`
  trains one; :func:`save_refiner` / :func:`load_refiner` keep it as safetensors + JSON;
  :func:`quantize_refiner` makes an int8 copy for the CPU.

See ``docs/learning.md``.
"""

from __future__ import annotations

from .checkpoint import default_refiner, load_refiner, save_refiner
from .inference import refine
from .losses import AlignmentLossTerms, AlphaSchedule, PoseAlignmentLoss, gaussian_heatmaps
from .quantize import quantize_refiner, state_size_bytes
from .refiner import KeypointAttention, KeypointRefiner, RefinerConfig, refine_positions
from .training import RefinerData, TrainingLog, make_refiner_data, train_refiner

__all__ = [
    "AlignmentLossTerms",
    "AlphaSchedule",
    "KeypointAttention",
    "KeypointRefiner",
    "PoseAlignmentLoss",
    "RefinerConfig",
    "RefinerData",
    "TrainingLog",
    "default_refiner",
    "gaussian_heatmaps",
    "load_refiner",
    "make_refiner_data",
    "quantize_refiner",
    "refine",
    "refine_positions",
    "save_refiner",
    "state_size_bytes",
    "train_refiner",
]
