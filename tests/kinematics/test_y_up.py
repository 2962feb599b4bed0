"""``medpose.kinematics.fit.y_up_transform``: keypoints turned so that up is +Y, OpenSim's vertical."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.errors import InputError
from medpose.kinematics.fit import y_up_transform
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton

AXES = {"+x": (0, 1), "-x": (0, -1), "+y": (1, 1), "-y": (1, -1), "+z": (2, 1), "-z": (2, -1)}


def _standing(frame_up: str) -> mp.KeypointSequence:
    """A standing body (Y up in the skeleton's axes) expressed in a frame whose up is
    ``frame_up``: a proper rotation taking the skeleton's +Y onto that axis."""
    sk = Skeleton.default()
    q = np.zeros((4, len(sk.dof_names)))
    q[:, sk.dof_index("pelvis_ty")] = 950.0
    x = np.asarray(forward_kinematics(sk, q))
    a, s = AXES[frame_up]
    target = np.zeros(3)
    target[a] = s
    R, _ = Rotation.align_vectors([target], [[0.0, 1.0, 0.0]])
    return mp.KeypointSequence(R.apply(x.reshape(-1, 3)).reshape(x.shape), sk.keypoint_names, 60.0)


@pytest.mark.parametrize("up", list(AXES))
def test_the_body_stands_on_y_after_the_turn(up):
    seq = _standing(up)
    T = y_up_transform(seq)
    R = T.rotation.as_matrix()
    assert np.linalg.det(R) == pytest.approx(1.0)  # a rotation, never a mirror image
    np.testing.assert_allclose(np.abs(R) @ np.ones(3), 1.0)  # a signed axis permutation
    turned = seq.transformed(T)
    assert turned.frame == "opensim" and T.source == seq.frame
    head = turned["head_top"] if "head_top" in turned.names else turned["nose"]
    trunk = head - 0.5 * (turned["ankle_r"] + turned["ankle_l"])
    assert np.all(trunk[:, 1] > 0.98 * np.linalg.norm(trunk, axis=1))
    # the given axis gives the same turn as the estimated one
    np.testing.assert_allclose(y_up_transform(seq, up).rotation.as_matrix(), R)


def test_z_up_is_pose2sims_permutation_and_y_up_is_left_alone():
    """Pose2Sim's triangulation writes a Z-up world as X, Y, Z = y, z, x (its ``zup2yup``)."""
    np.testing.assert_array_equal(
        np.round(y_up_transform(_standing("+z")).rotation.as_matrix()),
        [[0, 1, 0], [0, 0, 1], [1, 0, 0]],
    )
    np.testing.assert_array_equal(
        np.round(y_up_transform(_standing("+y")).rotation.as_matrix()), np.eye(3)
    )


def test_bad_input_names_what_is_missing():
    seq = _standing("+z")
    no_trunk = seq.select([n for n in seq.names if n not in ("hip_r", "hip_l")])
    with pytest.raises(InputError, match=r"cannot tell which way is up.*up='\+z'"):
        y_up_transform(no_trunk)
    assert y_up_transform(no_trunk, "+z").rotation.as_matrix()[1, 2] == pytest.approx(1.0)
    with pytest.raises(InputError, match="up='up': expected one of"):
        y_up_transform(seq, "up")
    flat = mp.KeypointSequence(np.zeros((2, 3, 2)), ("a", "b", "c"), 30.0, frame="image")
    with pytest.raises(InputError, match="found 2D keypoints; expected 3D"):
        y_up_transform(flat)
