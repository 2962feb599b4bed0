"""Criterion angles on hand-built keypoints with known geometry, and criterion scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medpose.errors import InputError
from medpose.scoring import criteria, norm_for, score_metric
from medpose.scoring.scores import CRITERION_SPAN

UP = np.array([0.0, 1.0, 0.0])
FWD = np.array([[1.0, 0.0, 0.0]])  # anterior +x, right +z (ISB axes)
RIGHT = np.array([[0.0, 0.0, 1.0]])


def p(*xyz: float) -> np.ndarray:
    return np.array([xyz], dtype=float)


def polar(deg: float, axis: np.ndarray, length: float = 400.0) -> np.ndarray:
    """A point ``length`` from the origin, ``deg`` from vertical towards ``axis``."""
    r = math.radians(deg)
    return length * (math.cos(r) * UP + math.sin(r) * axis.reshape(3))[None, :]


def test_body_axes_follow_the_hips_not_the_lab():
    # a subject turned 90 degrees: hips along -x (left) to +x (right), slightly tilted
    fwd, right = criteria.body_axes(p(-100, 0, 0), p(100, 30, 0), UP)
    assert right[0] == pytest.approx([1, 0, 0], abs=1e-12)
    assert fwd[0] == pytest.approx(np.cross(UP, [1, 0, 0]), abs=1e-12)


@pytest.mark.parametrize("deg", [-20.0, 0.0, 35.0])
def test_thigh_angle_is_the_hip_elevation_above_the_knee(deg):
    knee = p(100, 500, 0)
    hip = knee + polar(90.0 - deg, FWD * -1)  # deg above horizontal, hip behind the knee
    assert criteria.thigh_angle(hip, knee, UP)[0] == pytest.approx(deg, abs=1e-9)


def test_torso_tibia_angle_is_the_difference_of_forward_inclinations():
    ankle, pelvis = p(0, 0, 0), p(-200, 450, 0)
    knee = ankle + polar(30.0, FWD)  # tibia 30 degrees forward
    neck = pelvis + polar(45.0, FWD)  # trunk 45 degrees forward
    got = criteria.torso_tibia_angle(pelvis, neck, knee, ankle, UP, FWD)[0]
    assert got == pytest.approx(15.0, abs=1e-9)
    upright = pelvis + polar(0.0, FWD)
    assert criteria.torso_tibia_angle(pelvis, upright, knee, ankle, UP, FWD)[0] == pytest.approx(
        -30.0, abs=1e-9
    )


def test_knee_over_foot_is_positive_when_the_knee_falls_in():
    ankle_l = p(0, 0, -150)  # left foot, on the left (-z)
    medial_l = RIGHT  # the left leg's medial side is the body's right
    knee_in = ankle_l + polar(10.0, medial_l)
    knee_out = ankle_l + polar(-10.0, medial_l)
    assert criteria.knee_over_foot(knee_in, ankle_l, UP, medial_l)[0] == pytest.approx(10.0)
    assert criteria.knee_over_foot(knee_out, ankle_l, UP, medial_l)[0] == pytest.approx(-10.0)


def test_arm_trunk_angle_is_zero_with_the_arms_in_line_with_the_trunk():
    pelvis = p(0, 0, 0)
    neck = pelvis + polar(30.0, FWD)
    shoulder = neck
    in_line = shoulder + polar(30.0, FWD)
    forward = shoulder + polar(50.0, FWD)
    assert criteria.arm_trunk_angle(shoulder, in_line, pelvis, neck, UP, FWD)[0] == pytest.approx(
        0.0, abs=1e-9
    )
    assert criteria.arm_trunk_angle(shoulder, forward, pelvis, neck, UP, FWD)[0] == pytest.approx(
        20.0, abs=1e-9
    )


@pytest.mark.parametrize("deg", [0.0, 90.0, 160.0, 180.0])
def test_humeral_elevation_is_the_angle_to_the_trunk_pointing_down(deg):
    pelvis, neck = p(0, 0, 0), p(0, 500, 0)
    shoulder = p(0, 480, 180)
    elbow = shoulder + polar(180.0 - deg, RIGHT, 300.0)  # 0: hanging down
    got = criteria.humeral_elevation(shoulder, elbow, pelvis, neck)[0]
    assert got == pytest.approx(deg, abs=1e-6)


@pytest.mark.parametrize("plane", [0.0, 30.0, 90.0])
def test_elevation_plane_measures_the_arm_out_of_the_frontal_plane(plane):
    shoulder = p(0, 1400, 180)
    r = math.radians(plane)
    direction = math.cos(r) * RIGHT + math.sin(r) * FWD  # horizontal arm
    elbow = shoulder + 300.0 * direction
    assert criteria.elevation_plane(shoulder, elbow, UP, FWD)[0] == pytest.approx(plane, abs=1e-9)


def test_trunk_lateral_flexion_and_shoulder_girdle_elevation():
    pelvis = p(0, 1000, 0)
    neck = pelvis + polar(12.0, RIGHT, 500.0)
    assert criteria.trunk_lateral_flexion(pelvis, neck, UP, RIGHT)[0] == pytest.approx(12.0)
    shoulder = neck + polar(90.0 - 20.0, RIGHT, 180.0)  # 20 degrees above horizontal
    assert criteria.shoulder_girdle_elevation(neck, shoulder, UP)[0] == pytest.approx(20.0)


def test_missing_keypoints_give_nan_and_bad_shapes_are_refused():
    hip = np.array([[0.0, 900, 0], [np.nan, np.nan, np.nan]])
    knee = np.array([[0.0, 500, 0], [0.0, 500, 0]])
    out = criteria.thigh_angle(hip, knee, UP)
    assert out[0] == pytest.approx(90.0) and math.isnan(out[1])
    with pytest.raises(InputError, match="hip must have shape"):
        criteria.thigh_angle(np.zeros(3), knee, UP)
    with pytest.raises(InputError, match="up must be"):
        criteria.thigh_angle(hip, knee, np.zeros(3))


def test_criterion_score_is_100_within_and_falls_by_100_per_span_beyond():
    femur = norm_for("criterion", "thigh_angle", source="cook2014")
    span = CRITERION_SPAN["deg"]
    s = score_metric([-10.0, 0.0, span / 2, span * 2, math.nan], femur)
    assert s.percent[:4] == pytest.approx([100.0, 100.0, 50.0, 0.0])
    assert math.isnan(s.percent[4])
    assert list(s.flag) == ["within", "within", "above", "above", "n/a"]
    assert np.all(np.isnan(s.z))
    abduction = norm_for("criterion", "humeral_elevation", source="aaos")
    assert float(abduction["lower"]) == 180.0  # AAOS average shoulder abduction
    got = score_metric(180.0 - span / 4, abduction)
    assert float(got.percent) == pytest.approx(75.0) and str(got.flag) == "below"


def test_criterion_score_refuses_other_units():
    row = dict(norm_for("criterion", "thigh_angle", source="cook2014"))
    row["unit"] = "mm"
    with pytest.raises(InputError, match="criteria are scored in"):
        score_metric(1.0, row)
