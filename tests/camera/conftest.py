"""Shared camera-test fixtures: a distorted 4-camera rig and a squat seen by it."""

from __future__ import annotations

import numpy as np
import pytest

import medpose.synthetic as syn
from medpose.data import KeypointSequence
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout


@pytest.fixture(scope="module")
def rig():
    return syn.make_rig(4, distortion=[-0.05, 0.02, 0.0005, -0.0003], seed=0)


@pytest.fixture(scope="module")
def truth():
    """A squat of the default skeleton, MediaPipe's 33 keypoints, in the rig's Z-up world (mm),
    every second frame of 30 Hz (15 Hz)."""
    ex = syn.make_exercise("squat", rate=30.0, repetitions=2, seed=0)
    names = get_layout("mediapipe33").medpose
    x = np.asarray(
        forward_kinematics(Skeleton.default(), np.array(ex.angles.values), keypoints=names)
    )
    world = np.stack([x[..., 0], -x[..., 2], x[..., 1]], -1)  # ISB Y-up -> Z-up
    return KeypointSequence(world[::2], names, 15.0, frame="camera")
