"""Angles from poses: FK -> poses -> angles round trips, Euler branches, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from medpose.errors import InputError
from medpose.kinematics import Skeleton, angles_from_poses, default_ranges, segment_poses


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1750.0)


def random_q_in_ranges(
    sk: Skeleton, n: int, seed: int, margin_from_lock: float = 5.0
) -> np.ndarray:
    """Uniform inside the default ranges, kept ``margin_from_lock`` degrees away from gimbal locks."""
    rng = np.random.default_rng(seed)
    r = default_ranges(sk)
    lo = np.array([max(r[k][0], -800.0) for k in sk.dof_names])
    hi = np.array([min(r[k][1], 800.0) for k in sk.dof_names])
    q = rng.uniform(lo, hi, size=(n, len(lo)))
    for s in "rl":  # shoulder abduction lock at +-90
        j = sk.dof_index(f"shoulder_abduction_{s}")
        near = np.abs(np.abs(q[:, j]) - 90.0) < margin_from_lock
        q[near, j] += np.where(q[near, j] > 0, -2, 2) * margin_from_lock
    return q


def test_round_trip_numpy(sk):
    q = random_q_in_ranges(sk, 400, seed=0)
    R, o = segment_poses(sk, q)
    q2 = angles_from_poses(sk, R, o)
    assert isinstance(q2, np.ndarray) and q2.shape == q.shape
    np.testing.assert_allclose(q2, q, atol=1e-6)


def test_round_trip_torch(sk):
    q = torch.from_numpy(random_q_in_ranges(sk, 100, seed=1))
    R, o = segment_poses(sk, q)
    q2 = angles_from_poses(sk, R, o)
    assert isinstance(q2, torch.Tensor) and q2.dtype == torch.float64
    np.testing.assert_allclose(q2.numpy(), q.numpy(), atol=1e-6)


@pytest.mark.parametrize("abd", [120.0, 150.0, 175.0, -20.0])
def test_high_abduction_branch_is_recovered(sk, abd):
    q = sk.make_q(
        {
            "shoulder_abduction_r": abd,
            "shoulder_flexion_r": 20.0,
            "shoulder_rotation_r": -30.0,
            "shoulder_abduction_l": abd,
            "shoulder_flexion_l": -10.0,
            "shoulder_rotation_l": 40.0,
        }
    )
    q2 = angles_from_poses(sk, *segment_poses(sk, q))
    np.testing.assert_allclose(q2, q, atol=1e-6)


def test_euler_branch_formula_is_the_same_rotation():
    e = np.array([[30.0, 150.0, -20.0]])
    alt = np.array([[30.0 + 180.0, 180.0 - 150.0, -20.0 + 180.0]])
    for seq in ("ZXY", "XZY"):
        np.testing.assert_allclose(
            Rotation.from_euler(seq, e, degrees=True).as_matrix(),
            Rotation.from_euler(seq, alt, degrees=True).as_matrix(),
            atol=1e-12,
        )


def test_reference_picks_the_360_equivalent(sk):
    # the pelvis turning past 180 deg: the reference keeps the angle continuous
    q = sk.make_q({"pelvis_rotation": 190.0})
    R, o = segment_poses(sk, q)
    assert angles_from_poses(sk, R, o)[0, sk.dof_index("pelvis_rotation")] == pytest.approx(-170.0)
    ref = sk.make_q({"pelvis_rotation": 185.0})[0]
    assert angles_from_poses(sk, R, o, reference=ref)[
        0, sk.dof_index("pelvis_rotation")
    ] == pytest.approx(190.0)


def test_gimbal_lock_still_reproduces_the_pose(sk):
    q = sk.make_q(
        {"shoulder_abduction_r": 90.0, "shoulder_flexion_r": 10.0, "shoulder_rotation_r": 20.0}
    )
    R, o = segment_poses(sk, q)
    q2 = angles_from_poses(sk, R, o)
    assert q2[0, sk.dof_index("shoulder_abduction_r")] == pytest.approx(90.0, abs=1e-6)
    R2, _ = segment_poses(sk, q2)
    np.testing.assert_allclose(R2, R, atol=1e-9)


def test_fixed_axes_are_projected_out(sk):
    # a knee pose with some varus (not a DoF) keeps the flexion, drops the varus
    R, o = segment_poses(sk, sk.make_q({"knee_flexion_r": 40.0}))
    R = R.copy()
    s, p = sk.segment_index("shank_r"), sk.segment_index("thigh_r")
    local = Rotation.from_euler("ZXY", [-40.0, 3.0, 0.0], degrees=True).as_matrix()
    R[0, s] = R[0, p] @ local
    q2 = angles_from_poses(sk, R, o)
    assert q2[0, sk.dof_index("knee_flexion_r")] == pytest.approx(40.0, abs=1e-9)


def test_missing_frames_give_nan(sk):
    q = random_q_in_ranges(sk, 3, seed=2)
    R, o = segment_poses(sk, q)
    R = R.copy()
    R[1, sk.segment_index("forearm_l")] = np.nan
    q2 = angles_from_poses(sk, R, o)
    assert np.isnan(q2[1, sk.dof_index(["elbow_flexion_l", "forearm_pronation_l"])]).all()
    np.testing.assert_allclose(q2[[0, 2]], q[[0, 2]], atol=1e-6)


def test_bad_shapes(sk):
    R, o = segment_poses(sk, sk.make_q(n_frames=2))
    with pytest.raises(
        InputError, match=r"R must have shape \(T, 15, 3, 3\), found \(2, 14, 3, 3\)"
    ):
        angles_from_poses(sk, R[:, 1:], o)
    with pytest.raises(
        InputError, match=r"origin must have shape \(2, 15, 3\), found \(1, 15, 3\)"
    ):
        angles_from_poses(sk, R, o[:1])
    with pytest.raises(
        InputError, match=r"reference must have shape \(38,\) or \(2, 38\), found \(5,\)"
    ):
        angles_from_poses(sk, R, o, reference=np.zeros(5))
