"""Kinematics: the human skeleton, clinical joint angles (ISB), forward kinematics and
angles from segment poses.  Conventions: ``medpose/resources/joint_conventions.md``."""

from __future__ import annotations

from .angles import angles_from_poses
from .fk import forward_kinematics, segment_poses
from .keypoint_models import (
    KeypointModel,
    KeypointPrior,
    keypoint_model_for,
    list_keypoint_models,
    load_keypoint_model,
)
from .skeleton import SKELETON_FRAME, Skeleton, default_ranges

__all__ = [
    "Skeleton",
    "forward_kinematics",
    "segment_poses",
    "angles_from_poses",
    "default_ranges",
    "SKELETON_FRAME",
    "KeypointModel",
    "KeypointPrior",
    "load_keypoint_model",
    "keypoint_model_for",
    "list_keypoint_models",
]
