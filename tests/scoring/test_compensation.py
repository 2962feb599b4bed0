"""Compensations from 3D keypoints against synthetic and hand-built truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.scoring import compensation as C
from medpose.scoring.points import as_points
from medpose.synthetic.exercises import make_exercise


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default(1700.0)


def _posed(sk, values, n_frames=None):
    """Named keypoints (T, 3) of the skeleton posed by ``values`` (DoF -> degrees)."""
    x = forward_kinematics(sk, sk.make_q(values, n_frames))
    return {n: x[:, i] for i, n in enumerate(sk.keypoint_names)}


def _column(truth, name):
    return np.asarray(truth.angles[name], dtype=float)


def _peak(x):
    return float(np.percentile(np.abs(x[np.isfinite(x)]), C.PEAK_PERCENTILE))


# --------------------------------------------------------------------------- trunk
@pytest.mark.parametrize("exercise", ["shoulder_abduction", "squat"])
def test_synthetic_trunk_lean_of_15_degrees_is_read_from_the_true_keypoints(exercise):
    truth = make_exercise(exercise, rate=20, repetitions=2, trunk_lean_deg=15.0)
    pts, _ = as_points(truth.angles)
    side = C.trunk_lean(pts, "frontal")
    assert side.unit == "deg" and side.value.shape == (len(truth.angles.values),)
    # sideways lean = the ISB lateral-bending angle, frame by frame (the squat also flexes
    # the trunk forwards by pelvis tilt + lumbar flexion at the same time)
    np.testing.assert_allclose(side.value, _column(truth, "lumbar_bending"), atol=1e-6)
    assert _peak(side.value) == pytest.approx(15.0, abs=1e-6)
    # lean away from the compensating (right) side: towards the left, negative
    assert np.nanmin(side.value) == pytest.approx(-15.0, abs=1e-6)


def test_forward_trunk_lean_is_pelvic_tilt_plus_lumbar_flexion():
    truth = make_exercise("squat", rate=20, repetitions=1, trunk_lean_deg=10.0)
    pts, _ = as_points(truth.angles)
    fwd = C.trunk_lean(pts, "sagittal").value
    expected = _column(truth, "pelvis_tilt") + _column(truth, "lumbar_flexion")
    np.testing.assert_allclose(fwd, expected, atol=1e-6)
    assert fwd.max() == pytest.approx(35.0, abs=1e-6)  # 25 tilt + 10 lumbar flexion


def test_trunk_lean_through_the_fit_of_noisy_keypoints_is_15_within_2():
    sk = Skeleton.default(1750.0)
    truth = make_exercise(
        "shoulder_abduction", skeleton=sk, rate=10, repetitions=1, trunk_lean_deg=15.0
    )
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)
    x = x + np.random.default_rng(3).normal(0.0, 3.0, x.shape)  # 3 mm per axis
    # a camera frame: Z up, the patient facing -Y
    R = Rotation.from_euler("x", 90, degrees=True).as_matrix()
    seq = KeypointSequence(x @ R.T, tuple(names), 10.0, frame="camera")
    f = fit(seq)
    pts, noise = as_points(f)
    assert 1.0 < noise < 6.0  # the fit measured the 3 mm noise (order of magnitude)
    lean = C.trunk_lean(pts, "frontal").value
    assert _peak(lean) == pytest.approx(15.0, abs=2.0)
    # the raw keypoints read the same (ISB thorax points, rotated onto the lab's up axis)
    raw, _ = as_points(seq)
    assert _peak(C.trunk_lean(raw, "frontal").value) == pytest.approx(15.0, abs=2.0)


def test_trunk_rotation_is_the_lumbar_rotation_whatever_the_posture_and_heading(sk):
    t = np.linspace(0, 1, 7)
    values = {
        "lumbar_rotation": 25 * t - 5,
        "lumbar_flexion": 40 * t,
        "lumbar_bending": -12 * t,
        "pelvis_tilt": 20 * t,
        "pelvis_rotation": 60 * t,
    }
    pts = _posed(sk, values)
    np.testing.assert_allclose(C.trunk_rotation(pts).value, values["lumbar_rotation"], atol=1e-6)
    # a pelvis only turned about the vertical: the leans are the lumbar flexion and bending
    del values["pelvis_tilt"]
    pts = _posed(sk, values)
    np.testing.assert_allclose(C.trunk_lean(pts, "frontal").value, -12 * t, atol=1e-6)
    np.testing.assert_allclose(C.trunk_lean(pts, "sagittal").value, 40 * t, atol=1e-6)


def test_trunk_axis_falls_back_to_spine_and_neck_then_hips_and_shoulders(sk):
    pts = _posed(sk, {"lumbar_bending": 10.0})
    spine_neck = {k: v for k, v in pts.items() if k not in ("px", "t8", "ij", "c7")}
    assert C.trunk_lean(spine_neck).params["axis"] == "spine -> neck"
    assert C.trunk_lean(spine_neck).value[0] == pytest.approx(10.0, abs=1e-6)
    camera = {k: pts[k] for k in ("hip_r", "hip_l", "shoulder_r", "shoulder_l")}
    lean = C.trunk_lean(camera)
    assert lean.params["axis"].startswith("mid(hip_r, hip_l)")
    # the hip-to-shoulder line includes the lumbar offset: it reads a pure lumbar bend low
    assert 0.6 * 10.0 < lean.value[0] < 10.0


# --------------------------------------------------------------------------- shoulders, head
def test_shoulder_hiking_from_the_synthetic_truth():
    truth = make_exercise("shoulder_flexion", rate=20, repetitions=2, shoulder_hiking_deg=10.0)
    pts, _ = as_points(truth.angles)
    right = C.shoulder_hiking(pts, "right").value
    left = C.shoulder_hiking(pts, "left").value
    assert np.nanmax(right) == pytest.approx(10.0, abs=1e-6)
    np.testing.assert_allclose(left, -right, atol=1e-9)
    assert np.nanmin(right) == pytest.approx(0.0, abs=1e-6)  # level at rest


def test_head_tilt_and_pelvic_drop_from_known_tilts(sk):
    pts = _posed(sk, {"neck_bending": [0.0, 12.0, -7.0]})
    np.testing.assert_allclose(C.head_tilt(pts).value, [0.0, 12.0, -7.0], atol=1e-6)
    pts = _posed(sk, {"pelvis_list": [0.0, 7.0, -4.0]})  # right side down positive
    np.testing.assert_allclose(C.pelvic_drop(pts, "right").value, [0.0, 7.0, -4.0], atol=1e-6)
    np.testing.assert_allclose(C.pelvic_drop(pts, "left").value, [0.0, -7.0, 4.0], atol=1e-6)


def test_pelvic_drop_of_hand_built_hips_in_any_heading():
    theta = np.radians(9.0)
    half = 100.0
    hip_r = np.array([[0.0, 900.0 - half * np.sin(theta), half * np.cos(theta)]])
    hip_l = np.array([[0.0, 900.0 + half * np.sin(theta), -half * np.cos(theta)]])
    for turn in (0.0, 50.0, 170.0):
        R = Rotation.from_euler("y", turn, degrees=True).as_matrix()
        pts = {"hip_r": hip_r @ R.T, "hip_l": hip_l @ R.T}
        assert C.pelvic_drop(pts, "right").value[0] == pytest.approx(9.0, abs=1e-9)


def test_pelvic_drop_from_a_reference_obliquity(sk):
    """A pelvis standing 5 degrees right-side-down (leg-length difference, or a keypoint bias)
    that drops 7 more: 7 from its own level, 12 from horizontal; the other side mirrors it."""
    pts = _posed(sk, {"pelvis_list": [5.0, 12.0, 5.0]})
    np.testing.assert_allclose(C.pelvic_drop(pts, "right").value, [5.0, 12.0, 5.0], atol=1e-6)
    res = C.pelvic_drop(pts, "right", reference_deg=5.0)
    np.testing.assert_allclose(res.value, [0.0, 7.0, 0.0], atol=1e-6)
    assert res.params["reference"] == "given"
    left = C.pelvic_drop(pts, "left", reference_deg=-5.0).value
    np.testing.assert_allclose(left, [0.0, -7.0, 0.0], atol=1e-6)


# --------------------------------------------------------------------------- knee valgus
def _leg(alpha, beta, side="r", forward=0.0):
    """Hip, knee, ankle with the thigh tilted ``alpha`` and the shank ``beta`` degrees in the
    frontal plane, knee medial for positive angles (FPPA = alpha + beta)."""
    medial = -1.0 if side == "r" else 1.0
    z0 = 100.0 * -medial
    a, b = np.radians(alpha), np.radians(beta)
    hip = np.array([0.0, 900.0, z0])
    knee = hip + 420.0 * np.array([0.0, -np.cos(a), medial * np.sin(a)])
    knee[0] += forward
    ankle = knee + 410.0 * np.array([0.0, -np.cos(b), -medial * np.sin(b)])
    ankle[0] -= forward
    return hip, knee, ankle


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize(("alpha", "beta"), [(6.0, 4.0), (0.0, 0.0), (-5.0, -3.0)])
def test_knee_valgus_is_the_frontal_plane_projection_angle(side, alpha, beta):
    s = side[0]
    other = "l" if s == "r" else "r"
    hip, knee, ankle = _leg(alpha, beta, s, forward=150.0)  # flexed: knee 150 mm forward
    ohip = hip * np.array([1.0, 1.0, -1.0])
    rows = []
    for turn in (0.0, 35.0):  # the patient turned about the vertical
        R = Rotation.from_euler("y", turn, degrees=True).as_matrix()
        pts = {
            f"hip_{s}": hip @ R.T,
            f"knee_{s}": knee @ R.T,
            f"ankle_{s}": ankle @ R.T,
            f"hip_{other}": ohip @ R.T,
        }
        pts = {k: v[None, :] for k, v in pts.items()}
        rows.append(float(C.knee_valgus(pts, side).value[0]))
    np.testing.assert_allclose(rows, alpha + beta, atol=1e-9)


def test_knee_valgus_refuses_a_thigh_out_of_the_frontal_plane():
    hip, knee, ankle = _leg(5.0, 5.0)
    deep = hip + np.array([400.0, -100.0, -20.0])  # thigh nearly horizontal, pointing forward
    pts = {
        "hip_r": np.stack([hip, hip]),
        "knee_r": np.stack([knee, deep]),
        "ankle_r": np.stack([ankle, ankle]),
        "hip_l": np.stack([hip, hip]) * [1, 1, -1],
    }
    res = C.knee_valgus(pts, "right")
    assert res.value[0] == pytest.approx(10.0, abs=1e-9)
    assert np.isnan(res.value[1]) and "frontal plane" in res.reasons[1]


# --------------------------------------------------------------------------- heel lift
def test_heel_lift_from_known_heel_heights_batched():
    rise = np.array([[0.0, 0.0, 10.0, 25.0, 5.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    floor = 37.0
    heel = np.zeros(rise.shape + (3,))
    heel[..., 1] = floor + rise
    heel[..., 0] = np.arange(7) * 2.0  # sliding forward does not count
    res = C.heel_lift({"heel_r": heel}, "right")
    assert res.unit == "mm" and res.value.shape == rise.shape
    np.testing.assert_allclose(res.value, rise, atol=1e-9)  # standing level: P5 of the heel
    given = C.heel_lift({"heel_r": heel}, "right", reference_mm=30.0)
    np.testing.assert_allclose(given.value, rise + floor - 30.0, atol=1e-9)


# --------------------------------------------------------------------------- frames, errors
def test_up_axis_of_the_points_frame_is_respected(sk):
    pts = _posed(sk, {"lumbar_bending": 8.0, "pelvis_list": 3.0, "lumbar_flexion": 20.0})
    R = Rotation.from_euler("x", 90, degrees=True).as_matrix()  # +Y -> +Z
    zup = {k: v @ R.T for k, v in pts.items()}
    for func, args in (
        (C.trunk_lean, ()),
        (C.pelvic_drop, ("right",)),
        (C.shoulder_hiking, ("left",)),
        (C.head_tilt, ()),
    ):
        assert func(zup, *args, up="+z").value[0] == pytest.approx(
            func(pts, *args).value[0], abs=1e-9
        )


def test_missing_keypoints_give_nan_with_a_reason_or_a_clear_error(sk):
    pts = _posed(sk, {}, n_frames=3)
    pts["heel_r"] = pts["heel_r"].copy()
    pts["heel_r"][1] = np.nan
    res = C.heel_lift(pts, "right")
    assert np.isnan(res.value[1]) and "heel" in res.reasons[1] and res.reasons[0] == ""
    with pytest.raises(InputError, match="acromion_r"):
        C.shoulder_hiking({"hip_r": pts["hip_r"]}, "right")
    with pytest.raises(InputError, match="side"):
        C.knee_valgus(pts, "middle")
    with pytest.raises(InputError, match="plane"):
        C.trunk_lean(pts, "transverse")


def test_exported_as_mp_metrics():
    for name in (
        "trunk_lean",
        "trunk_rotation",
        "pelvic_drop",
        "shoulder_hiking",
        "head_tilt",
        "knee_valgus",
        "heel_lift",
    ):
        assert getattr(mp.metrics, name) is getattr(C, name)


def test_batched_over_leading_axes(sk):
    one = _posed(sk, {"lumbar_bending": [0.0, 5.0, 10.0], "hip_adduction_r": [0.0, -4.0, 6.0]})
    two = _posed(sk, {"lumbar_bending": [3.0, -6.0, 9.0], "hip_adduction_r": [2.0, 0.0, -3.0]})
    batch = {k: np.stack([one[k], two[k]]) for k in one}  # (2, T, 3)
    for func, args in ((C.trunk_lean, ()), (C.knee_valgus, ("right",)), (C.trunk_rotation, ())):
        got = func(batch, *args).value
        assert got.shape == (2, 3)
        np.testing.assert_allclose(got[0], func(one, *args).value, atol=1e-9)
        np.testing.assert_allclose(got[1], func(two, *args).value, atol=1e-9)
    np.testing.assert_allclose(C.trunk_lean(batch).value, [[0, 5, 10], [3, -6, 9]], atol=1e-6)
