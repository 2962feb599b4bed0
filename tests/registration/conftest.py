"""Fixtures of the registration tests: a head-sized fiducial layout and a known transform."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medpose import Landmarks, Transform


def head_layout(n: int) -> np.ndarray:
    """n fiducials spread over the upper part of a head-sized ellipsoid (semi-axes 80, 100, 70 mm)."""
    i = np.arange(n) + 0.5
    z = 1 - i / n * 0.9
    phi = np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z * z)
    return np.c_[80 * r * np.cos(phi), 100 * r * np.sin(phi), 70 * z]


@pytest.fixture
def truth() -> Transform:
    return Transform(Rotation.from_rotvec([0.4, -0.3, 1.2]), [15.0, -40.0, 900.0], source="LPS", target="camera")


@pytest.fixture
def layout() -> np.ndarray:
    return head_layout(6)


@pytest.fixture
def pair(layout, truth) -> tuple[Landmarks, Landmarks]:
    names = tuple(f"fid{i}" for i in range(len(layout)))
    ct = Landmarks(names, layout, frame="LPS")
    return truth.apply(ct), ct
