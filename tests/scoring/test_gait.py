"""Gait events, speed, cadence and step length against the synthetic gait's known parameters.

The synthetic gait (:func:`medpose.synthetic.make_exercise`) moves the pelvis forwards at
``speed_mm_s`` and repeats every stride of ``stride_s`` seconds, the left leg half a stride
after the right.  Hence, whatever the shape of the joint curves: cadence = 2 steps per stride
= 120 / stride_s steps/min; the two step lengths add up to one stride length, speed x stride_s
(successive footprints); a symmetric gait has equal steps of half that.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.scoring import gait as G
from medpose.scoring.points import as_points
from medpose.synthetic.exercises import make_exercise


def _walk(rate=60.0, strides=6, **kw):
    truth = make_exercise("gait", rate=rate, repetitions=strides, **kw)
    pts, _ = as_points(truth.angles)
    return truth, pts


def _truth(truth):
    stride = truth.params["stride_s"]
    speed = truth.params["speed_mm_s"] / 1000.0
    return speed, 120.0 / stride, speed * stride


@pytest.mark.parametrize(
    "kw", [{}, {"speed_mm_s": 900.0, "tempo_s": 1.3}, {"speed_mm_s": 1500.0, "tempo_s": 0.95}]
)
def test_symmetric_gait_speed_cadence_and_step_length(kw):
    rate = 60.0
    truth, pts = _walk(rate, **kw)
    speed, cad, stride_len = _truth(truth)
    # the pelvis moves at exactly the set speed: whole strides measure it exactly
    assert float(mp.metrics.gait_speed(pts, rate)) == pytest.approx(speed, rel=1e-6)
    # a periodic gait: sub-frame event timing gives the cadence to float precision
    assert float(mp.metrics.cadence(pts, rate)) == pytest.approx(cad, rel=1e-6)
    left = mp.metrics.step_length(pts, rate, "left")
    right = mp.metrics.step_length(pts, rate, "right")
    assert left.unit == right.unit == "m" and len(left) >= 4 and len(right) >= 4
    # half a stride each, within the parabolic interpolation of the heel-strike instant
    # (0.5 % of a step at 60 Hz)
    np.testing.assert_allclose(left.value, stride_len / 2, rtol=5e-3)
    np.testing.assert_allclose(right.value, stride_len / 2, rtol=5e-3)
    si = mp.metrics.symmetry_index(np.median(left.value), np.median(right.value))
    assert float(si) == pytest.approx(0.0, abs=1.0)  # percent


@pytest.mark.parametrize("impaired", ["left", "right"])
def test_asymmetric_gait_gives_the_impaired_side_the_shorter_step(impaired):
    rate = 60.0
    truth, pts = _walk(rate, impaired_side=impaired, impairment=0.4)
    speed, cad, stride_len = _truth(truth)
    left = np.median(mp.metrics.step_length(pts, rate, "left").value)
    right = np.median(mp.metrics.step_length(pts, rate, "right").value)
    # a smaller hip and knee excursion puts the impaired heel less far forwards at its strike
    short, long_ = (left, right) if impaired == "left" else (right, left)
    assert short < 0.9 * long_
    # the two steps still make one stride of the known length
    assert left + right == pytest.approx(stride_len, rel=5e-3)
    si = float(mp.metrics.symmetry_index(left, right))  # positive when the left is larger
    assert np.sign(si) == (-1 if impaired == "left" else 1) and abs(si) > 10
    # a stride of 79.2 frames: each event's parabolic sub-frame timing is off by ~1e-4 s
    assert float(mp.metrics.cadence(pts, rate)) == pytest.approx(cad, rel=1e-4)
    assert float(mp.metrics.gait_speed(pts, rate)) == pytest.approx(speed, rel=1e-4)


def test_events_alternate_one_per_stride_and_do_not_depend_on_the_walking_direction():
    rate = 50.0
    truth, pts = _walk(rate, strides=5)
    stride = truth.params["stride_s"]
    ev = mp.metrics.gait_events(pts, rate)
    hs = ev[ev["event"] == "heel_strike"]
    assert list(ev.columns) == ["side", "event", "frame", "time_s"]
    assert (hs["side"].to_numpy()[1:] != hs["side"].to_numpy()[:-1]).all()
    for side in ("left", "right"):
        t = hs.loc[hs["side"] == side, "time_s"].to_numpy()
        assert len(t) >= 4
        np.testing.assert_allclose(np.diff(t), stride, atol=1e-3)
        to = ev[(ev["event"] == "toe_off") & (ev["side"] == side)]["time_s"].to_numpy()
        np.testing.assert_allclose(np.diff(to), stride, atol=1e-3)
    # the same walk along the lab's Z axis, in a Z-up frame
    R = (
        Rotation.from_euler("xyz", [90, 0, 0], degrees=True).as_matrix()
        @ Rotation.from_euler("y", 90, degrees=True).as_matrix()
    )
    turned = {k: v @ R.T for k, v in pts.items()}
    assert abs(G.walking_direction(turned, "+z") @ (R @ [1.0, 0, 0])) == pytest.approx(1.0)
    steps = mp.metrics.gait_steps(turned, rate, up="+z")
    ref = mp.metrics.gait_steps(pts, rate)
    np.testing.assert_allclose(steps["step_length_m"], ref["step_length_m"], atol=1e-9)


def test_less_than_a_stride_is_nan_with_a_reason():
    rate = 30.0
    _, pts = _walk(rate, strides=1)
    short = {k: v[:20] for k, v in pts.items()}
    res = mp.metrics.gait_speed(short, rate)
    assert np.isnan(float(res)) and "heel strike" in res.reasons[0]
    cad = mp.metrics.cadence(short, rate)
    assert np.isnan(float(cad)) and "stride" in cad.reasons[0]
    assert mp.metrics.step_length(short, rate, "left").value.shape == (0,)


def test_gait_through_the_fit_of_noisy_keypoints():
    rate = 30.0
    sk = Skeleton.default(1700.0)
    truth = make_exercise("gait", skeleton=sk, rate=rate, repetitions=4, speed_mm_s=1100.0)
    names = list(sk.keypoint_names)
    x = forward_kinematics(sk, truth.angles.values, keypoints=names)
    x = x + np.random.default_rng(1).normal(0.0, 3.0, x.shape)
    pts, _ = as_points(fit(KeypointSequence(x, tuple(names), rate)))
    speed, cad, stride_len = _truth(truth)
    # 3 mm noise moves an event by a fraction of a frame: within 2 %
    assert float(mp.metrics.gait_speed(pts, rate)) == pytest.approx(speed, rel=0.02)
    assert float(mp.metrics.cadence(pts, rate)) == pytest.approx(cad, rel=0.02)
    for side in ("left", "right"):
        step = np.median(mp.metrics.step_length(pts, rate, side).value)
        assert step == pytest.approx(stride_len / 2, rel=0.03)
