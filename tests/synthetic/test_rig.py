"""Tests of medpose.synthetic.rig: camera placement and projection against an independent model."""

from __future__ import annotations

import numpy as np
import pytest

from medpose.camera.model import Camera
from medpose.data import KeypointSequence
from medpose.errors import FrameMismatch, InputError
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.synthetic.rig import make_rig, project_to_cameras


def _opencv(cam: Camera, x: np.ndarray) -> np.ndarray:
    """Independent OpenCV projection (k1, k2, p1, p2 model) written from the OpenCV docs."""
    from scipy.spatial.transform import Rotation

    pc = Rotation.from_rotvec(np.array(cam.rotation)).apply(x) + cam.translation
    a, b = pc[:, 0] / pc[:, 2], pc[:, 1] / pc[:, 2]
    k1, k2, p1, p2 = cam.distortion[:4]
    r2 = a * a + b * b
    rad = 1 + k1 * r2 + k2 * r2 * r2
    xd = a * rad + 2 * p1 * a * b + p2 * (r2 + 2 * a * a)
    yd = b * rad + p1 * (r2 + 2 * b * b) + 2 * p2 * a * b
    K = cam.matrix
    return np.column_stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]])


@pytest.fixture(scope="module")
def body():
    sk = Skeleton.default(1700.0)
    q = sk.make_q({"shoulder_abduction_r": 40.0, "knee_flexion_l": 30.0, "pelvis_ty": 950.0})
    kp = forward_kinematics(sk, np.repeat(q, 3, axis=0))
    world = kp[..., [0, 2, 1]] * np.array(
        [1.0, -1.0, 1.0]
    )  # skeleton (Y up, Z right) -> world (Z up, Y left)
    return sk.keypoint_names, world


def test_rig_geometry_looks_at_target():
    cams = make_rig(6, radius_mm=3000, height_mm=1300, jitter=False, seed=0)
    assert [c.name for c in cams] == [f"cam{i:02d}" for i in range(1, 7)]
    for c in cams:
        assert np.hypot(*c.center[:2]) == pytest.approx(3000.0) and c.center[2] == pytest.approx(
            1300.0
        )
        px = c.project([[0.0, 0.0, 1000.0]])[0]
        np.testing.assert_allclose(px, [(1920 - 1) / 2, (1080 - 1) / 2], atol=1e-6)
        assert c.world == "camera" and -0.08 <= c.distortion[0] <= -0.02


def test_zero_noise_projection_matches_independent_model(body):
    names, world = body
    cams = make_rig(4, seed=3)
    views = project_to_cameras(cams, world, names=names, pixel_sigma=0.0, seed=1)
    for c in cams:
        got = views[c.name].positions[1]
        want = _opencv(c, world[1])
        ok = np.isfinite(got[:, 0])
        assert ok.sum() > 0.9 * len(names)
        np.testing.assert_allclose(got[ok], want[ok], atol=1e-6)


def test_noise_level_and_side_visibility(body):
    names, world = body
    cams = make_rig(4, jitter=False, start_deg=90.0, seed=0)  # cam01 on the patient's left (+Y)
    views = project_to_cameras(cams, world, names=names, pixel_sigma=2.0, seed=2)
    clean = project_to_cameras(cams, world, names=names, pixel_sigma=0.0, seed=2)
    err = views["cam01"].positions - clean["cam01"].positions
    assert np.nanstd(err) == pytest.approx(2.0, rel=0.25)
    conf = views["cam01"].confidence
    r = [i for i, n in enumerate(names) if n.endswith("_r")]
    l_ = [i for i, n in enumerate(names) if n.endswith("_l")]
    assert conf[:, l_].mean() > 0.8 and conf[:, r].mean() < 0.5  # far side is less confident


def test_off_image_points_are_missing(body):
    names, world = body
    cams = make_rig(2, jitter=False, seed=0)
    far = world.copy()
    far[:, 0] += np.array([0.0, 0.0, 1e5])  # first keypoint 100 m up: off every image
    views, rep = project_to_cameras(cams, far, names=names, seed=0, return_report=True)
    for c in cams:
        assert np.all(np.isnan(views[c.name].positions[:, 0])) and np.all(
            views[c.name].confidence[:, 0] == 0
        )
        assert rep[c.name]["off_image"] >= 3


def test_view_swaps_are_reported(body):
    names, world = body
    world = np.repeat(world[:1], 300, axis=0)
    cams = make_rig(2, seed=0)
    views, rep = project_to_cameras(
        cams,
        world,
        names=names,
        swap_rate=1.0,
        swap_len=5,
        pixel_sigma=0.0,
        seed=4,
        return_report=True,
    )
    clean = project_to_cameras(cams, world, names=names, pixel_sigma=0.0, seed=4)
    s = rep["cam01"]["swaps"]
    assert s
    a, b = s[0]["start"], s[0]["stop"]
    i, j = names.index("wrist_l"), names.index("wrist_r")
    np.testing.assert_allclose(views["cam01"].positions[a:b, i], clean["cam01"].positions[a:b, j])


def test_real_pose2sim_calibration_sees_a_synthetic_person(shared_data, body):
    """The real four-camera Qualisys calibration (Z up, metres -> mm) images a person at its origin."""
    from medpose.io.calibration import read_calibration

    names, world = body
    cams = read_calibration(shared_data / "pose2sim" / "Calib_qualisys.toml")
    views = project_to_cameras(cams, world, names=names, pixel_sigma=0.0)
    for c in cams:
        ok = np.isfinite(views[c.name].positions[0, :, 0])
        np.testing.assert_allclose(
            views[c.name].positions[0][ok], _opencv(c, world[0])[ok], atol=1e-6
        )
        assert ok.mean() > 0.5, c.name


def test_bad_inputs():
    with pytest.raises(InputError, match="n_cameras"):
        make_rig(1)
    cams = make_rig(2)
    with pytest.raises(InputError, match=r"\(T, K, 3\)"):
        project_to_cameras(cams, np.zeros((3, 4)), names=["a"] * 4)
    with pytest.raises(InputError, match="need 2 keypoint names"):
        project_to_cameras(cams, np.zeros((3, 2, 3)), names=["a"])
    seq = KeypointSequence(np.zeros((3, 2, 3)), ("a", "b"), 30.0, frame="LPS")
    with pytest.raises(FrameMismatch, match=r"'LPS'.*'camera'"):
        project_to_cameras(cams, seq)
