"""Tests of medpose.synthetic.exercises: truth within ranges, feet on the floor, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medpose.errors import InputError, LimitError
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton, default_ranges
from medpose.synthetic.exercises import EXERCISES, make_exercise, minimum_jerk, repetition_profile


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1700.0)


@pytest.mark.parametrize("name", sorted(EXERCISES))
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {
            "impaired_side": "left",
            "impairment": 0.4,
            "tremor_deg": 3.0,
            "submovements": 2,
            "trunk_lean_deg": 8.0,
            "shoulder_hiking_deg": 5.0,
        },
    ],
)
def test_truth_inside_ranges_and_every_dof(sk, name, opts):
    e = make_exercise(name, skeleton=sk, repetitions=2, seed=4, **opts)
    assert e.angles.names == sk.dof_names
    v = np.asarray(e.angles.values)
    assert np.all(np.isfinite(v))
    for d, (lo, hi) in default_ranges(sk).items():
        col = v[:, sk.dof_names.index(d)]
        assert col.min() >= lo - 1e-9 and col.max() <= hi + 1e-9, d
    assert len(e.repetitions) == 2
    assert all(0 <= a < b <= e.angles.times[-1] + 1e-9 for a, b in e.repetitions)


@pytest.mark.parametrize("name", ["shoulder_abduction", "squat", "sit_to_stand", "gait"])
def test_feet_stay_on_the_floor(sk, name):
    e = make_exercise(name, skeleton=sk, repetitions=2)
    kp = forward_kinematics(sk, np.asarray(e.angles.values))
    feet = [
        i
        for i, n in enumerate(sk.keypoint_names)
        if n.startswith(("heel_", "big_toe_", "small_toe_", "ankle_"))
    ]
    np.testing.assert_allclose(kp[:, feet, 1].min(axis=1), 0.0, atol=1e-6)
    if name != "gait":  # standing exercises: the ankles do not slide
        ank = [sk.keypoint_names.index("ankle_r"), sk.keypoint_names.index("ankle_l")]
        centre = kp[:, ank].mean(axis=1)
        np.testing.assert_allclose(
            centre[:, [0, 2]], centre[[0]][:, [0, 2]].repeat(len(centre), 0), atol=1e-6
        )


def test_gait_moves_forward_at_speed_with_normative_ranges(sk):
    e = make_exercise("gait", skeleton=sk, repetitions=4, speed_mm_s=1300.0)
    tx = e.angles["pelvis_tx"]
    speed = (tx[-1] - tx[0]) / (e.angles.times[-1] - e.angles.times[0])
    assert speed == pytest.approx(1300.0, rel=1e-6)
    hip, knee = e.angles["hip_flexion_r"], e.angles["knee_flexion_r"]
    assert 35 < np.ptp(hip) < 50 and 55 < knee.max() < 70 and knee.min() < 8  # Winter 2009 shapes
    # left leg half a cycle later than the right
    stride = e.params["stride_s"]
    shift = round(0.5 * stride * e.angles.rate)
    np.testing.assert_allclose(e.angles["hip_flexion_l"][shift:], hip[:-shift], atol=3.0)


def test_impaired_side_reaches_less_and_moves_slower(sk):
    e = make_exercise(
        "shoulder_abduction", skeleton=sk, impaired_side="left", impairment=0.3, repetitions=1
    )
    r, left = e.angles["shoulder_abduction_r"], e.angles["shoulder_abduction_l"]
    assert r.max() == pytest.approx(150.0, abs=1e-6)
    assert left.max() == pytest.approx(5.0 + 0.7 * 145.0, abs=1e-6)
    t = e.angles.times
    rise_r = t[np.argmax(r > 5 + 0.9 * 145)] - t[np.argmax(r > 5 + 0.1 * 145)]
    rise_l = t[np.argmax(left > 5 + 0.9 * 0.7 * 145)] - t[np.argmax(left > 5 + 0.1 * 0.7 * 145)]
    assert rise_l == pytest.approx(1.3 * rise_r, rel=0.1)


def test_requested_range_and_limit_error_names_joint(sk):
    e = make_exercise("elbow_flexion", skeleton=sk, range_deg=(10.0, 100.0), repetitions=1)
    assert e.angles["elbow_flexion_r"].max() == pytest.approx(100.0) and e.angles[
        "elbow_flexion_r"
    ].min() == pytest.approx(10.0)
    with pytest.raises(LimitError, match=r"shoulder_abduction_r.*\[-30, 180\]"):
        make_exercise("shoulder_abduction", skeleton=sk, range_deg=200.0)
    with pytest.raises(LimitError, match=r"knee_flexion_r.*\[-5, 144.2\]"):
        make_exercise("squat", skeleton=sk, range_deg=150.0)


def test_bad_arguments_raise_input_error(sk):
    with pytest.raises(InputError, match=r"unknown exercise 'jumping'.*shoulder_abduction.*squat"):
        make_exercise("jumping", skeleton=sk)
    with pytest.raises(InputError, match="impaired_side"):
        make_exercise("squat", skeleton=sk, impaired_side="middle")
    with pytest.raises(InputError, match="impairment"):
        make_exercise("squat", skeleton=sk, impaired_side="left", impairment=1.5)
    with pytest.raises(InputError, match="rate"):
        make_exercise("squat", skeleton=sk, rate=0)
    with pytest.raises(InputError, match="repetitions"):
        make_exercise("squat", skeleton=sk, repetitions=0)
    with pytest.raises(InputError, match="range_deg"):
        make_exercise("squat", skeleton=sk, range_deg=(1, 2, 3))


def test_tremor_is_a_4_to_6_hz_sinusoid(sk):
    kw = dict(skeleton=sk, repetitions=2, rate=100.0, impaired_side="right", impairment=0.2, seed=7)
    base = make_exercise("elbow_flexion", **kw)
    trem = make_exercise("elbow_flexion", tremor_deg=2.0, **kw)
    diff = trem.angles["elbow_flexion_r"] - base.angles["elbow_flexion_r"]
    assert np.all(
        trem.angles["elbow_flexion_l"] == base.angles["elbow_flexion_l"]
    )  # only the impaired side
    spec = np.abs(np.fft.rfft(diff))
    freq = np.fft.rfftfreq(diff.size, 1 / 100.0)[np.argmax(spec)]
    assert 4.0 <= trem.params["tremor_hz"] <= 6.0
    assert freq == pytest.approx(trem.params["tremor_hz"], abs=0.1)
    assert np.max(np.abs(diff)) == pytest.approx(2.0, abs=0.05)


def test_minimum_jerk_and_submovements():
    assert minimum_jerk([0.0, 0.5, 1.0]).tolist() == [0.0, 0.5, 1.0]
    t = np.linspace(0, 4, 401)
    for sub in (0, 3):
        p = repetition_profile(t, [0.5], 1.2, 0.5, 1.2, sub, np.random.default_rng(1))
        up = p[(t >= 0.5) & (t <= 1.7)]
        assert np.all(np.diff(up) >= -1e-12) and p[np.searchsorted(t, 1.7)] == pytest.approx(
            1.0, abs=1e-9
        )
        assert p[0] == 0.0 and p[-1] == pytest.approx(0.0, abs=1e-12)
    # submovements make the speed profile have several peaks
    p = repetition_profile(t, [0.5], 1.2, 0.5, 1.2, 3, np.random.default_rng(1))
    v = np.diff(p[(t >= 0.5) & (t <= 1.7)])
    peaks = np.sum((v[1:-1] > v[:-2]) & (v[1:-1] > v[2:]))
    assert peaks >= 2


def test_same_seed_same_angles(sk):
    a = make_exercise("squat", skeleton=sk, submovements=2, tremor_deg=1.0, seed=3)
    b = make_exercise("squat", skeleton=sk, submovements=2, tremor_deg=1.0, seed=3)
    c = make_exercise("squat", skeleton=sk, submovements=2, tremor_deg=1.0, seed=4)
    assert np.array_equal(a.angles.values, b.angles.values)
    assert not np.array_equal(a.angles.values, c.angles.values)


_PLANTED = [n for n in sorted(EXERCISES) if n.startswith(("shoulder_", "elbow_"))] + [
    "squat",
    "deep_squat",
    "sit_to_stand",
    "inline_lunge",
    "side_lunge",
]


@pytest.mark.parametrize("name", _PLANTED)
@pytest.mark.parametrize("impairment", [0.0, 0.4])
def test_both_feet_stay_planted(sk, name, impairment):
    # both feet stand on the floor in every frame: each foot's lowest keypoint (heel or toe
    # joint, 7 mm above the sole at most) within 20 mm of it, also with a weak left side
    e = make_exercise(name, skeleton=sk, repetitions=2, impaired_side="left", impairment=impairment)
    kp = forward_kinematics(sk, np.asarray(e.angles.values))
    for s in "rl":
        foot = [sk.keypoint_names.index(f"{n}_{s}") for n in ("heel", "big_toe", "small_toe")]
        lowest = kp[:, foot, 1].min(axis=1)
        assert np.abs(lowest).max() < 20.0, (s, float(np.abs(lowest).max()))
