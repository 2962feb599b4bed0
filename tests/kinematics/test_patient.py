from __future__ import annotations

import numpy as np
import pytest

from medpose.data import KeypointSequence, Landmarks
from medpose.errors import InputError
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.patient import estimate_skeleton, skeleton_from_landmarks
from medpose.kinematics.skeleton import Skeleton

HALPE = [
    "Nose",
    "LEye",
    "REye",
    "LEar",
    "REar",
    "LShoulder",
    "RShoulder",
    "LElbow",
    "RElbow",
    "LWrist",
    "RWrist",
    "LHip",
    "RHip",
    "LKnee",
    "RKnee",
    "LAnkle",
    "RAnkle",
    "Head",
    "Neck",
    "Hip",
    "LBigToe",
    "RBigToe",
    "LSmallToe",
    "RSmallToe",
    "LHeel",
    "RHeel",
]
MED = [
    "nose",
    "eye_l",
    "eye_r",
    "ear_l",
    "ear_r",
    "shoulder_l",
    "shoulder_r",
    "elbow_l",
    "elbow_r",
    "wrist_l",
    "wrist_r",
    "hip_l",
    "hip_r",
    "knee_l",
    "knee_r",
    "ankle_l",
    "ankle_r",
    "head_top",
    "neck",
    "pelvis",
    "big_toe_l",
    "big_toe_r",
    "small_toe_l",
    "small_toe_r",
    "heel_l",
    "heel_r",
]


@pytest.fixture(scope="module")
def truth():
    sk = Skeleton.default(1820.0).with_lengths(
        {"thigh_r": 470.0, "forearm_l": 250.0, "pelvis_width": 240.0}
    )
    rng = np.random.default_rng(3)
    q = np.zeros((40, len(sk.dof_names)))
    q[:, sk.dof_index("knee_flexion_r")] = rng.uniform(0, 90, 40)
    q[:, sk.dof_index("elbow_flexion_l")] = rng.uniform(0, 120, 40)
    q[:, sk.dof_index("pelvis_rotation")] = rng.uniform(-90, 90, 40)
    return sk, q


def test_lengths_recovered_exactly(truth):
    sk, q = truth
    x = forward_kinematics(sk, q, keypoints=MED)
    ps = estimate_skeleton(KeypointSequence(x, tuple(HALPE), 30.0))  # layout names mapped
    for n in (
        "thigh_r",
        "thigh_l",
        "shank_r",
        "forearm_l",
        "upper_arm_r",
        "pelvis_width",
        "shoulder_width",
        "head",
        "foot_r",
        "trunk",
    ):
        assert ps.lengths[n] == pytest.approx(sk.lengths[n], abs=1e-6), n
    assert ps.method["hand_r"] == "scaled from height"
    assert ps.source == "sequence"
    assert ps.height_mm == pytest.approx(1820.0, rel=0.05)
    assert "length_mm" in ps.to_dataframe().columns


def test_median_is_robust_to_outlier_frames(truth):
    sk, q = truth
    x = forward_kinematics(sk, q, keypoints=MED)
    rng = np.random.default_rng(0)
    x = x + rng.normal(0, 3, x.shape)
    # 20% wild frames: the knee 300 mm further down the thigh (a mean would say about 530 mm)
    knee, hip = MED.index("knee_r"), MED.index("hip_r")
    along = x[::5, knee] - x[::5, hip]
    x[::5, knee] += 300.0 * along / np.linalg.norm(along, axis=1, keepdims=True)
    conf = np.ones(x.shape[:2])
    conf[1::7, knee] = 0.1  # ignored: low confidence
    ps = estimate_skeleton(KeypointSequence(x, tuple(MED), 30.0, confidence=conf), static=True)
    # 3 mm per axis gives each frame's length a 3 sqrt(2) = 4.2 mm error; the median of ~32
    # frames is within about 1 mm, and the 20% outliers move it by a third of that error
    # (to the 62nd percentile): 5 mm is four times what the median can be off by
    assert ps.lengths["thigh_r"] == pytest.approx(470.0, abs=5.0)
    assert ps.source == "static trial"


@pytest.mark.parametrize("scale, word", [(1e-3, "metres"), (0.1, "centimetres")])
def test_wrong_units_refused(truth, scale, word):
    sk, q = truth
    x = forward_kinematics(sk, q, keypoints=MED) * scale
    with pytest.raises(InputError) as ei:
        estimate_skeleton(KeypointSequence(x, tuple(MED), 30.0))
    assert (
        word in str(ei.value) and "implausible" in str(ei.value) and "millimetres" in str(ei.value)
    )


def test_from_landmarks(truth):
    sk, q = truth
    x = forward_kinematics(sk, q[:1], keypoints=MED)[0]
    ps = skeleton_from_landmarks(Landmarks(tuple(MED), x, "camera"))
    assert ps.lengths["thigh_r"] == pytest.approx(470.0, abs=1e-6)
    assert ps.source == "imaging landmarks"


def test_no_measurable_pair():
    x = np.random.default_rng(0).normal(size=(3, 2, 3))
    with pytest.raises(InputError, match="no keypoint pair"):
        estimate_skeleton(KeypointSequence(x, ("a", "b"), 30.0))
    with pytest.raises(InputError, match="3D KeypointSequence"):
        estimate_skeleton(KeypointSequence(x[..., :2], ("a", "b"), 30.0))
