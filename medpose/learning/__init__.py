"""Learned components: the pose alignment loss and the keypoint attention refiner.

Importing this package imports torch.  ``losses`` holds :class:`PoseAlignmentLoss` (coordinate
smooth-L1 in mm plus heatmap KL) and :func:`gaussian_heatmaps`; ``refiner`` holds the keypoint
transformer that smooths noisy 3D keypoint sequences.
"""

from __future__ import annotations

from .losses import AlignmentLossTerms, AlphaSchedule, PoseAlignmentLoss, gaussian_heatmaps

__all__ = ["AlignmentLossTerms", "AlphaSchedule", "PoseAlignmentLoss", "gaussian_heatmaps"]
