"""Forward kinematics: textbook poses, invariants, numpy/torch agreement, gradients, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medpose.errors import InputError
from medpose.kinematics import Skeleton, default_ranges, forward_kinematics, segment_poses


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1700.0)


def fk(sk: Skeleton, values: dict, names: list[str]) -> dict[str, np.ndarray]:
    x = forward_kinematics(sk, sk.make_q(values), keypoints=names)[0]
    return dict(zip(names, x))


def random_q(sk: Skeleton, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = default_ranges(sk)
    lo = np.array([max(r[n][0], -500.0) for n in sk.dof_names])
    hi = np.array([min(r[n][1], 500.0) for n in sk.dof_names])
    return rng.uniform(lo, hi, size=(n, len(lo)))


# ------------------------------------------------------------------ textbook poses
@pytest.mark.parametrize("side,lateral", [("r", 1.0), ("l", -1.0)])
def test_shoulder_abduction_90_puts_hand_at_shoulder_height_laterally(sk, side, lateral):
    p = fk(
        sk,
        {f"shoulder_abduction_{side}": 90.0},
        [f"shoulder_{side}", f"elbow_{side}", f"hand_{side}"],
    )
    s, e, h = p[f"shoulder_{side}"], p[f"elbow_{side}"], p[f"hand_{side}"]
    np.testing.assert_allclose([e[1], h[1]], s[1], atol=1e-9)  # same height
    np.testing.assert_allclose([e[0], h[0]], s[0], atol=1e-9)  # no fore-aft
    assert lateral * (e[2] - s[2]) == pytest.approx(sk.lengths[f"upper_arm_{side}"])
    assert lateral * (h[2] - e[2]) > 0


@pytest.mark.parametrize("side", "rl")
def test_shoulder_flexion_90_puts_hand_anterior_at_shoulder_height(sk, side):
    p = fk(sk, {f"shoulder_flexion_{side}": 90.0}, [f"shoulder_{side}", f"hand_{side}"])
    d = p[f"hand_{side}"] - p[f"shoulder_{side}"]
    assert d[0] > 0.5 * sk.lengths[f"upper_arm_{side}"]
    assert d[1] == pytest.approx(0.0, abs=1e-9) and d[2] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("side", "rl")
def test_knee_flexion_90_points_shank_backward(sk, side):
    p = fk(sk, {f"knee_flexion_{side}": 90.0}, [f"hip_{side}", f"knee_{side}", f"ankle_{side}"])
    thigh = p[f"knee_{side}"] - p[f"hip_{side}"]
    shank = p[f"ankle_{side}"] - p[f"knee_{side}"]
    np.testing.assert_allclose(thigh / np.linalg.norm(thigh), [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(shank / np.linalg.norm(shank), [-1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("side", "rl")
def test_hip_flexion_90_brings_knee_anterior(sk, side):
    p = fk(sk, {f"hip_flexion_{side}": 90.0}, [f"hip_{side}", f"knee_{side}"])
    d = p[f"knee_{side}"] - p[f"hip_{side}"]
    np.testing.assert_allclose(d, [sk.lengths[f"thigh_{side}"], 0, 0], atol=1e-9)


@pytest.mark.parametrize("side", "rl")
def test_ankle_dorsiflexion_lifts_the_toes(sk, side):
    names = [f"big_toe_{side}", f"heel_{side}"]
    p0, p1 = fk(sk, {}, names), fk(sk, {f"ankle_dorsiflexion_{side}": 20.0}, names)
    assert p1[names[0]][1] > p0[names[0]][1] + 50
    assert p1[names[1]][1] < p0[names[1]][1]


@pytest.mark.parametrize("side,medial", [("r", -1.0), ("l", 1.0)])
def test_adduction_and_internal_rotation_move_medially(sk, side, medial):
    p0 = fk(sk, {}, [f"knee_{side}", f"big_toe_{side}"])
    p1 = fk(sk, {f"hip_adduction_{side}": 15.0}, [f"knee_{side}"])
    assert medial * (p1[f"knee_{side}"][2] - p0[f"knee_{side}"][2]) > 50
    p2 = fk(sk, {f"hip_rotation_{side}": 30.0}, [f"big_toe_{side}"])
    assert medial * (p2[f"big_toe_{side}"][2] - p0[f"big_toe_{side}"][2]) > 50


def test_pronation_turns_palm_down_with_elbow_flexed(sk):
    # elbow at 90 deg: forearm points forward, thumb up; pronation 90 turns the thumb medially
    p = fk(
        sk,
        {"elbow_flexion_r": 90.0, "forearm_pronation_r": 90.0},
        ["radial_styloid_r", "ulnar_styloid_r"],
    )
    assert p["radial_styloid_r"][2] < p["ulnar_styloid_r"][2] - 40
    assert p["radial_styloid_r"][1] == pytest.approx(p["ulnar_styloid_r"][1], abs=1e-9)


def test_trunk_flexion_and_pelvic_anterior_tilt(sk):
    p0 = fk(sk, {}, ["neck", "asis_r", "psis_r"])
    p = fk(sk, {"lumbar_flexion": 30.0}, ["neck"])
    assert p["neck"][0] > p0["neck"][0] + 100
    p = fk(sk, {"pelvis_tilt": 10.0}, ["asis_r", "psis_r"])
    assert p["asis_r"][1] < p0["asis_r"][1] and p["psis_r"][1] > p0["psis_r"][1]


def test_upright_zero_pose_joint_centres_in_a_frontal_plane(sk):
    centres = [
        "hip_r",
        "hip_l",
        "knee_r",
        "knee_l",
        "ankle_r",
        "ankle_l",
        "shoulder_r",
        "shoulder_l",
        "elbow_r",
        "elbow_l",
        "wrist_r",
        "wrist_l",
        "pelvis",
        "neck",
    ]
    q = sk.make_q({"pelvis_tx": 12.0, "pelvis_ty": 950.0, "pelvis_tz": -3.0})
    x = forward_kinematics(sk, q, keypoints=centres)[0]
    np.testing.assert_allclose(x[:, 0], 12.0, atol=1e-9)
    for s in "rl":
        hip, knee, ankle = (x[centres.index(f"{j}_{s}")] for j in ("hip", "knee", "ankle"))
        assert hip[1] > knee[1] > ankle[1]
        np.testing.assert_allclose([knee[2], ankle[2]], hip[2], atol=1e-9)


# ------------------------------------------------------------------ invariants
def test_left_right_mirror_symmetry(sk):
    q = random_q(sk, 20, seed=1)
    for n in sk.dof_names:  # same value on both sides
        if n.endswith("_r"):
            q[:, sk.dof_index(n[:-2] + "_l")] = q[:, sk.dof_index(n)]
    q[
        :,
        sk.dof_index(
            [
                "pelvis_list",
                "pelvis_rotation",
                "lumbar_bending",
                "lumbar_rotation",
                "neck_bending",
                "neck_rotation",
                "pelvis_tz",
            ]
        ),
    ] = 0.0
    x = forward_kinematics(sk, q)
    mirror = [
        sk.keypoint_index(n[:-2] + ("_l" if n.endswith("_r") else "_r"))
        if n[-2:] in ("_r", "_l")
        else sk.keypoint_index(n)
        for n in sk.keypoint_names
    ]
    xm = x[:, mirror] * np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(x, xm, atol=1e-9)


def test_fk_preserves_segment_lengths_and_rigidity(sk):
    q = random_q(sk, 50, seed=2)
    q[5] *= 3  # far outside the ranges too
    pairs = [
        ("hip_r", "knee_r"),
        ("knee_l", "ankle_l"),
        ("shoulder_r", "elbow_r"),
        ("elbow_l", "wrist_l"),
        ("hip_r", "hip_l"),
        ("asis_r", "psis_l"),
        ("heel_r", "big_toe_r"),
        ("ear_l", "nose"),
    ]
    x0 = forward_kinematics(sk, sk.make_q())[0]
    x = forward_kinematics(sk, q)
    for a, b in pairs:
        ia, ib = sk.keypoint_index(a), sk.keypoint_index(b)
        d = np.linalg.norm(x[:, ia] - x[:, ib], axis=-1)
        np.testing.assert_allclose(d, np.linalg.norm(x0[ia] - x0[ib]), rtol=1e-12)
    R, _ = segment_poses(sk, q)
    np.testing.assert_allclose(
        R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)


def test_segment_poses_match_keypoints(sk):
    q = random_q(sk, 4, seed=3)
    _, o = segment_poses(sk, q)
    x = forward_kinematics(sk, q, keypoints=["knee_r", "pelvis", "ankle_l"])
    np.testing.assert_allclose(x[:, 0], o[:, sk.segment_index("shank_r")], atol=1e-9)
    np.testing.assert_allclose(
        x[:, 1], q[:, sk.dof_index(["pelvis_tx", "pelvis_ty", "pelvis_tz"])], atol=1e-9
    )
    np.testing.assert_allclose(x[:, 2], o[:, sk.segment_index("foot_l")], atol=1e-9)


def test_nan_frames_stay_nan_and_others_are_unaffected(sk):
    q = random_q(sk, 3, seed=4)
    q[1, 7] = np.nan
    x = forward_kinematics(sk, q)
    assert np.isnan(x[1]).any() and np.isfinite(x[[0, 2]]).all()


# ------------------------------------------------------------------ torch path
def test_numpy_and_torch_agree(sk):
    q = random_q(sk, 16, seed=5)
    xn = forward_kinematics(sk, q)
    assert isinstance(xn, np.ndarray) and xn.dtype == np.float64 and xn.shape == (16, 70, 3)
    xt = forward_kinematics(sk, torch.from_numpy(q))
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float64
    np.testing.assert_allclose(xt.numpy(), xn, atol=1e-10)
    x32 = forward_kinematics(sk, torch.from_numpy(q).float())
    assert x32.dtype == torch.float32
    np.testing.assert_allclose(x32.numpy(), xn, atol=1e-3)  # float32: within a micrometre
    Rt, ot = segment_poses(sk, torch.from_numpy(q))
    Rn, on = segment_poses(sk, q)
    np.testing.assert_allclose(Rt.numpy(), Rn, atol=1e-12)
    np.testing.assert_allclose(ot.numpy(), on, atol=1e-10)


def test_torch_gradcheck(sk):
    q = torch.from_numpy(random_q(sk, 2, seed=6)).requires_grad_(True)
    names = ["hand_r", "big_toe_l", "nose", "asis_r"]
    assert torch.autograd.gradcheck(
        lambda qq: forward_kinematics(sk, qq, keypoints=names), (q,), eps=1e-6, atol=1e-5
    )


def test_torch_gradient_matches_finite_differences(sk):
    q = random_q(sk, 1, seed=7)
    w = np.random.default_rng(8).normal(
        size=(1, len(sk.keypoint_names), 3)
    )  # a random linear read-out
    qt = torch.from_numpy(q).requires_grad_(True)
    (forward_kinematics(sk, qt) * torch.from_numpy(w)).sum().backward()
    h = 1e-4
    eye = np.eye(q.shape[1]) * h
    fd = np.array(
        [
            ((forward_kinematics(sk, q + e) - forward_kinematics(sk, q - e)) * w).sum() / (2 * h)
            for e in eye
        ]
    )
    np.testing.assert_allclose(qt.grad.numpy()[0], fd, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("shape", [(38,), (2, 37), (1, 2, 38)])
def test_wrong_q_shape(sk, shape):
    with pytest.raises(
        InputError,
        match=r"q must have shape \(T, 38\).*found "
        + str(shape).replace("(", r"\(").replace(")", r"\)"),
    ):
        forward_kinematics(sk, np.zeros(shape))
    with pytest.raises(InputError, match=r"q must have shape \(T, 38\)"):
        segment_poses(sk, torch.zeros(shape))


def test_hinge_axes_tilt_the_distal_segment_in_both_forward_kinematics():
    """A constant in a joint's fixed rotation (Skeleton.with_axes: the elbow's carrying angle,
    forearm X after flexion) moves the wrist on a cone about the flexion axis: at 90 degrees of
    flexion a 10-degree carrying angle puts the wrist forearm * sin(10) off the plane the
    default elbow keeps it in (a chord of 2 forearm sin 5 from the default wrist); the fit's own kinematics (fit.context) agrees with
    forward_kinematics, and a constant on a DoF's slot is refused."""
    from medpose.kinematics.fit.context import Context

    sk0 = Skeleton.default()
    sk = sk0.with_axes({"forearm_r": (0.0, 10.0, 0.0)})
    q = sk.make_q({"elbow_flexion_r": 90.0, "shoulder_flexion_r": 20.0})
    names = ["elbow_r", "wrist_r", "knee_r"]
    a = np.asarray(forward_kinematics(sk0, q, keypoints=names))[0]
    b = np.asarray(forward_kinematics(sk, q, keypoints=names))[0]
    forearm = sk.lengths["forearm_r"]
    np.testing.assert_allclose(
        np.linalg.norm(b[1] - a[1]), 2 * forearm * np.sin(np.radians(5)), rtol=1e-9
    )
    np.testing.assert_allclose(np.linalg.norm(b[1] - b[0]), np.linalg.norm(a[1] - a[0]), rtol=1e-12)
    np.testing.assert_allclose(b[2], a[2])
    ctx = Context(sk, np.arange(len(sk.keypoint_names)), torch.device("cpu"), torch.float64)
    _, _, x, _ = ctx.evaluate(torch.as_tensor(q))
    np.testing.assert_allclose(x.numpy()[0], np.asarray(forward_kinematics(sk, q))[0], atol=1e-9)
    with pytest.raises(InputError, match="DoF"):
        sk0.with_axes({"forearm_r": (5.0, 0.0, 0.0)})  # Z is elbow flexion
