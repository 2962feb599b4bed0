"""Fixtures of the registration tests: a head-sized fiducial layout and a known transform."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medpose import Landmarks, Transform
from medpose.synthetic.fiducials import head_fiducials


def head_layout(n: int) -> np.ndarray:
    """n fiducials over a head-sized ellipsoid (80 x 100 x 70 mm)."""
    return head_fiducials(n)


@pytest.fixture
def truth() -> Transform:
    return Transform(
        Rotation.from_rotvec([0.4, -0.3, 1.2]), [15.0, -40.0, 900.0], source="LPS", target="camera"
    )


@pytest.fixture
def layout() -> np.ndarray:
    return head_layout(6)


@pytest.fixture
def pair(layout, truth) -> tuple[Landmarks, Landmarks]:
    names = tuple(f"fid{i}" for i in range(len(layout)))
    ct = Landmarks(names, layout, frame="LPS")
    return truth.apply(ct), ct
