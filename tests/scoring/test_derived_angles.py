"""The humerothoracic elevation derived from the fitted DoFs: the geometric angle between the
humerus and the thorax's long axis, the same on both Euler branches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medpose.kinematics import Skeleton
from medpose.kinematics.fk import segment_poses
from medpose.scoring.derived_angles import shoulder_elevation, with_derived


def _geometric_elevation(sk: Skeleton, q: np.ndarray, side: str) -> np.ndarray:
    """Angle (deg) between the upper arm's and the trunk's Y axes, from the segment poses."""
    R, _ = segment_poses(sk, q)
    names = list(sk.segment_names)
    arm = R[:, names.index(f"upper_arm{side}"), :, 1]
    trunk = R[:, names.index("trunk"), :, 1]
    return np.degrees(np.arccos(np.clip(np.sum(arm * trunk, axis=-1), -1.0, 1.0)))


@pytest.mark.parametrize("side", ["_r", "_l"])
def test_elevation_is_the_angle_between_humerus_and_thorax(side):
    sk = Skeleton.default(1750.0)
    rng = np.random.default_rng(3)
    n = 200
    q = np.zeros((n, len(sk.dof_names)))
    dofs = list(sk.dof_names)
    flex = rng.uniform(-60, 180, n)
    abd = rng.uniform(-30, 180, n)
    for name, values in (
        (f"shoulder_flexion{side}", flex),
        (f"shoulder_abduction{side}", abd),
        (f"shoulder_rotation{side}", rng.uniform(-90, 90, n)),
        ("lumbar_flexion", rng.uniform(-20, 60, n)),  # the trunk moves too
        ("pelvis_tilt", rng.uniform(-30, 30, n)),
    ):
        q[:, dofs.index(name)] = values
    want = _geometric_elevation(sk, q, side)
    np.testing.assert_allclose(shoulder_elevation(flex, abd), want, atol=1e-6)


def test_elevation_is_the_same_on_both_euler_branches_and_known_values():
    f, a = np.array([0.0, 90.0, 0.0, 164.0, 30.0]), np.array([0.0, 0.0, 90.0, 60.0, 40.0])
    twin_f, twin_a = f + 180.0, 180.0 - a  # (f, a, r) and (f + 180, 180 - a, r + 180)
    np.testing.assert_allclose(shoulder_elevation(f, a), shoulder_elevation(twin_f, twin_a))
    # hanging, forward horizontal, sideways horizontal: 0, 90, 90 degrees
    np.testing.assert_allclose(shoulder_elevation(f[:3], a[:3]), [0.0, 90.0, 90.0], atol=1e-9)


def test_with_derived_adds_both_sides_where_their_dofs_exist():
    df = pd.DataFrame(
        {"shoulder_flexion_r": [90.0], "shoulder_abduction_r": [0.0], "knee_flexion_l": [10.0]}
    )
    out = with_derived(df)
    assert out["shoulder_elevation_r"].tolist() == [pytest.approx(90.0)]
    assert "shoulder_elevation_l" not in out and "shoulder_elevation_r" not in df
