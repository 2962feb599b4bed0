"""Skeleton construction, lengths, resources and bad input."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import yaml

from medpose.errors import InputError
from medpose.kinematics import Skeleton, default_ranges, forward_kinematics


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1700.0)


def test_keypoints_cover_the_canonical_names_on_their_segments(sk):
    doc = yaml.safe_load(
        resources.files("medpose.resources").joinpath("keypoints.yaml").read_text()
    )
    canon = doc["keypoints"]
    assert set(sk.keypoint_names) == set(canon)
    for name, info in canon.items():
        seg = sk.segment_names[sk.keypoint_segment[sk.keypoint_index(name)]]
        assert seg == info["segment"], name


def test_dofs_are_the_documented_ones(sk):
    expected = [
        "pelvis_tx",
        "pelvis_ty",
        "pelvis_tz",
        "pelvis_tilt",
        "pelvis_list",
        "pelvis_rotation",
        "lumbar_flexion",
        "lumbar_bending",
        "lumbar_rotation",
        "neck_flexion",
        "neck_bending",
        "neck_rotation",
    ]
    for x in "rl":
        expected += [
            f"{d}_{x}"
            for d in (
                "shoulder_flexion",
                "shoulder_abduction",
                "shoulder_rotation",
                "elbow_flexion",
                "forearm_pronation",
                "wrist_flexion",
                "wrist_deviation",
                "hip_flexion",
                "hip_adduction",
                "hip_rotation",
                "knee_flexion",
                "ankle_dorsiflexion",
                "subtalar_inversion",
            )
        ]
    assert sorted(sk.dof_names) == sorted(expected)
    assert not sk.rotational[sk.dof_index(["pelvis_tx", "pelvis_ty", "pelvis_tz"])].any()
    assert sk.rotational.sum() == len(expected) - 3


@pytest.mark.parametrize("height", [1500.0, 1700.0, 1950.0])
def test_default_height_is_head_top_minus_heel(height):
    sk = Skeleton.default(height)
    x = forward_kinematics(sk, sk.make_q(), keypoints=["head_top", "heel_r", "heel_l"])[0]
    assert x[1, 1] == pytest.approx(x[2, 1])
    assert x[0, 1] - x[1, 1] == pytest.approx(height, rel=0.02)


def test_default_lengths_follow_winter(sk):
    # Winter (2009) Fig. 4.1: thigh 0.245 H, shank 0.246 H, upper arm 0.186 H, forearm 0.146 H
    assert sk.lengths["thigh_r"] == pytest.approx(0.245 * 1700)
    assert sk.lengths["shank_l"] == pytest.approx(0.246 * 1700)
    assert sk.lengths["upper_arm_r"] == pytest.approx(0.186 * 1700)
    assert sk.lengths["forearm_l"] == pytest.approx(0.146 * 1700)
    # hip joint centre at 0.530 H above the floor (Winter) within 1 %
    x = forward_kinematics(sk, sk.make_q(), keypoints=["hip_r", "heel_r"])[0]
    assert x[0, 1] - x[1, 1] == pytest.approx(0.530 * 1700, rel=0.01)


def test_hip_centres_follow_harrington(sk):
    pw, pd = sk.lengths["pelvis_width"], sk.lengths["pelvis_depth"]
    x = forward_kinematics(
        sk, sk.make_q(), keypoints=["hip_r", "hip_l", "asis_r", "asis_l", "psis_r", "psis_l"]
    )[0]
    mid_asis = (x[2] + x[3]) / 2
    # Harrington et al. 2007: HJC - mid-ASIS = (-0.24 PD - 9.9, -0.30 PW - 10.9, +-(0.33 PW + 7.3)) mm
    np.testing.assert_allclose(
        x[0] - mid_asis, [-0.24 * pd - 9.9, -0.30 * pw - 10.9, 0.33 * pw + 7.3], atol=1e-9
    )
    np.testing.assert_allclose(
        x[1] - mid_asis, [-0.24 * pd - 9.9, -0.30 * pw - 10.9, -(0.33 * pw + 7.3)], atol=1e-9
    )
    assert np.linalg.norm(x[2] - x[3]) == pytest.approx(pw)
    assert np.linalg.norm(mid_asis - (x[4] + x[5]) / 2) == pytest.approx(pd)


def test_with_lengths_rescales_segment_and_its_keypoints(sk):
    sk2 = sk.with_lengths({"thigh_r": 500.0, "shank": 450.0})
    assert sk2.lengths["thigh_r"] == 500.0 and sk2.lengths["thigh_l"] == sk.lengths["thigh_l"]
    assert sk2.lengths["shank_r"] == sk2.lengths["shank_l"] == 450.0
    x = forward_kinematics(
        sk2, sk2.make_q(), keypoints=["hip_r", "knee_r", "ankle_r", "greater_trochanter_r"]
    )[0]
    assert np.linalg.norm(x[1] - x[0]) == pytest.approx(500.0)
    assert np.linalg.norm(x[2] - x[1]) == pytest.approx(450.0)
    assert x[3, 2] - x[0, 2] == pytest.approx(0.18 * 500.0)  # keypoint offset scales with the thigh
    assert sk.lengths["thigh_r"] == pytest.approx(0.245 * 1700)  # original untouched


@pytest.mark.parametrize("bad", [0.0, -10.0, float("nan"), float("inf"), "long"])
def test_bad_length_names_the_segment(sk, bad):
    with pytest.raises(InputError, match=r"thigh_l.*finite positive"):
        sk.with_lengths({"thigh_l": bad})


def test_unknown_length_lists_known(sk):
    with pytest.raises(InputError, match=r"unknown length 'femur'.*thigh_r"):
        sk.with_lengths({"femur": 400.0})


@pytest.mark.parametrize("bad", [0.0, -1700.0, float("nan")])
def test_bad_height(bad):
    with pytest.raises(InputError, match="height_mm"):
        Skeleton.default(bad)


def test_make_q_and_unknown_dof_lists_known(sk):
    q = sk.make_q({"knee_flexion_r": [0.0, 45.0, 90.0], "hip_flexion_r": 10.0})
    assert q.shape == (3, len(sk.dof_names))
    np.testing.assert_array_equal(q[:, sk.dof_index("knee_flexion_r")], [0, 45, 90])
    np.testing.assert_array_equal(q[:, sk.dof_index("hip_flexion_r")], 10.0)
    assert np.count_nonzero(q) == 5
    with pytest.raises(
        InputError, match=r"unknown DoF name\(s\) \['knee_flex_r'\].*knee_flexion_r"
    ):
        sk.make_q({"knee_flex_r": 10.0})
    with pytest.raises(InputError, match=r"'knee_flexion_r' must be a number or shape \(3,\)"):
        sk.make_q({"knee_flexion_r": [1.0, 2.0]}, n_frames=3)


def test_unknown_keypoint_lists_known(sk):
    with pytest.raises(InputError, match=r"unknown keypoint name\(s\) \['RKNE'\].*knee_r"):
        forward_kinematics(sk, sk.make_q(), keypoints=["RKNE"])


def test_default_ranges_cover_every_dof_with_published_values(sk):
    r = default_ranges(sk)
    assert list(r) == list(sk.dof_names)
    # what adults reach, not the AAOS averages (135, 120): joint_ranges.yaml says why
    assert r["knee_flexion_r"] == r["knee_flexion_l"] == (-5.0, 144.2)
    assert r["hip_flexion_l"] == (-30.0, 144.2)  # AAOS: extension 30
    assert r["shoulder_abduction_r"][1] == 180.0
    assert r["pelvis_tx"] == (-np.inf, np.inf)
    for name, (lo, hi) in r.items():
        assert lo < hi, name


def test_ranges_file_cites_a_source_per_row():
    doc = yaml.safe_load(
        resources.files("medpose.resources").joinpath("joint_ranges.yaml").read_text()
    )
    for name, row in doc["ranges"].items():
        assert str(row["source"]).split()[0] in {"AAOS", "Jung2016", "Soucie", "broad"}, name


def test_from_yaml_reports_bad_files(tmp_path):
    p = tmp_path / "patient7" / "sk.yaml"
    p.parent.mkdir()
    with pytest.raises(InputError, match=r"sk.yaml: file not found") as err:
        Skeleton.from_yaml(p)
    assert "patient7" not in str(err.value)  # the file's name, never its folders
    p.write_text(
        "lengths: {a: [0.1, W]}\nsegments:\n  a: {parent: null, joint: {sequence: ZZY, dofs: [null, null, null]}}\n"
    )
    with pytest.raises(InputError, match=r"sk.yaml: segments.a.joint.sequence.*'ZZY'"):
        Skeleton.from_yaml(p)
    p.write_text(
        "lengths: {a: [0.1, W]}\nsegments:\n  a: {parent: b, joint: {sequence: ZXY, dofs: [null, null, null]}}\n"
    )
    with pytest.raises(InputError, match=r"sk.yaml: expected exactly one root"):
        Skeleton.from_yaml(p)
    p.write_text(
        "lengths: {a: [0.1, W]}\nsegments:\n  a: {parent: null, joint: {sequence: ZXY, dofs: [null, null, null]},"
        " keypoints: {k: {femur: [0, 1, 0]}}}\n"
    )
    with pytest.raises(
        InputError, match=r"sk.yaml: segments.a.keypoints.k: unknown length 'femur'"
    ):
        Skeleton.from_yaml(p)
    p.write_text("lengths: [\n")
    with pytest.raises(InputError, match=r"sk.yaml: not valid YAML"):
        Skeleton.from_yaml(p)
