"""Tests of medpose.synthetic.observation: injected faults are where the report says."""

from __future__ import annotations

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.synthetic.observation import lr_pairs, marker_based, markerless

NAMES = ("pelvis", "hip_r", "hip_l", "knee_r", "knee_l", "wrist_r", "wrist_l", "neck")


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    t = np.arange(600) / 30.0
    base = np.array(
        [
            [0, 900, 0],
            [0, 900, 90],
            [0, 900, -90],
            [0, 480, 90],
            [0, 480, -90],
            [0, 800, 250],
            [0, 800, -250],
            [0, 1400, 0],
        ],
        float,
    )
    return base[None] + np.stack([100 * np.sin(t), 50 * np.cos(t), 0 * t], axis=1)[:, None, :]


def test_marker_based_noise_level(truth):
    obs = marker_based(truth, 1.5, names=NAMES, seed=2)
    err = obs.positions - truth
    assert np.std(err) == pytest.approx(1.5, rel=0.05)
    assert np.all(obs.confidence == 1.0) and obs.report["model"] == "marker_based"


def test_markerless_faults_match_the_report(truth):
    obs = markerless(
        truth,
        names=NAMES,
        rate=30.0,
        sigma_mm=5.0,
        bias_mm=20.0,
        dropout=0.01,
        gap_rate=0.05,
        gap_len=10,
        swap_rate=0.1,
        swap_len=8,
        outlier_rate=0.02,
        seed=5,
    )
    rep = obs.report
    assert rep["gaps"] and rep["swaps"] and rep["outliers"] and rep["dropouts"]
    for g in rep["gaps"]:
        j = NAMES.index(g["keypoint"])
        assert np.all(np.isnan(obs.positions[g["start"] : g["stop"], j]))
        assert np.all(obs.confidence[g["start"] : g["stop"], j] == 0)
    for f, name in rep["dropouts"]:
        assert np.all(np.isnan(obs.positions[f, NAMES.index(name)]))
    bias = np.array([rep["bias_mm"][n] for n in NAMES])
    for s in rep["swaps"]:
        for a, b in s["pairs"]:
            ia, ib = NAMES.index(a), NAMES.index(b)
            fr = np.arange(s["start"], s["stop"])
            got = obs.positions[fr, ia]
            ok = np.all(np.isfinite(got), axis=1)
            # the left point now carries the right point's truth (+ the right point's bias)
            d_sw = np.linalg.norm(got[ok] - truth[fr[ok], ib] - bias[ib], axis=1)
            assert np.all(
                d_sw
                < 6 * 5.0 * np.sqrt(3)
                + 300 * np.isin(fr[ok], [o["frame"] for o in rep["outliers"]])
            )
    for o in rep["outliers"]:
        assert 100 <= np.linalg.norm(o["offset_mm"]) <= 300
    # away from every fault, error = bias + jitter
    clean = np.ones(truth.shape[:2], bool)
    for s in rep["swaps"]:
        clean[s["start"] : s["stop"]] = False
    for o in rep["outliers"]:
        clean[o["frame"]] = False
    clean &= np.all(np.isfinite(obs.positions), axis=2)
    err = obs.positions - truth - bias[None]
    assert np.std(err[clean]) == pytest.approx(5.0, rel=0.1)
    # hips and knees carry 1.5x bias on average (Needham et al. 2021)
    assert np.linalg.norm(bias, axis=1).max() < 3 * 1.5 * 20


def test_markerless_is_deterministic_and_accepts_sequences(truth):
    seq = KeypointSequence(truth, NAMES, 30.0, frame="camera")
    a = markerless(seq, seed=1)
    b = markerless(truth, names=NAMES, rate=30.0, seed=1)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.report == b.report
    out = a.to_sequence(NAMES, 30.0)
    assert out.frame == "camera" and out.positions.shape == truth.shape


def test_lr_pairs():
    assert lr_pairs(NAMES) == [(2, 1), (4, 3), (6, 5)]


def test_bad_input_messages(truth):
    with pytest.raises(InputError, match=r"\(T, K, 3\).*\(600, 8\)"):
        markerless(truth[..., 0], names=NAMES)
    with pytest.raises(InputError, match="dropout"):
        markerless(truth, names=NAMES, dropout=1.5)
    with pytest.raises(InputError, match="sigma_mm"):
        marker_based(truth, -1.0, names=NAMES)
    with pytest.raises(InputError, match="3 names for 8 keypoints"):
        markerless(truth, names=NAMES[:3])
    with pytest.raises(InputError, match="rate"):
        markerless(truth, names=NAMES, rate=0.0)


def test_a_segment_fixed_bias_turns_with_its_segment(truth):
    """With segment rotations, each keypoint's constant offset is constant in its segment's
    frame: rotated back by the segment's rotation, observed - true is the reported vector (up
    to the jitter), while in the room it turns with the segment."""
    t = truth.shape[0]
    angle = np.radians(60.0) * np.sin(np.arange(t) / 30.0)  # each segment swings about z
    c, s = np.cos(angle), np.sin(angle)
    rz = np.zeros((t, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1.0
    rot = np.broadcast_to(rz[:, None], (t, len(NAMES), 3, 3))
    quiet = {"dropout": 0.0, "gap_rate": 0.0, "swap_rate": 0.0, "outlier_rate": 0.0}
    obs = markerless(
        truth, names=NAMES, rate=30.0, sigma_mm=1.0, segment_rotations=rot, seed=4, **quiet
    )
    rep = obs.report
    assert rep["bias_frame"] == "segment"
    local = np.einsum("tkji,tkj->tki", rot, obs.positions - truth)  # R^T (observed - true)
    bias = np.array([rep["bias_mm"][n] for n in NAMES])
    np.testing.assert_allclose(local.mean(axis=0), bias, atol=0.5)  # 1 mm jitter, 600 frames
    assert np.all(local.std(axis=0) < 1.5)
    # in the room it is the segment's rotation of that vector, which swings with the segment
    turned = np.einsum("tkij,kj->tki", rot, bias)
    assert np.abs(obs.positions - truth - turned).max() < 6.0  # 6 sigma of the jitter
    assert np.ptp(turned[..., :2], axis=0).max() > 10.0
    # the same seed draws the same offsets as a room-fixed bias
    plain = markerless(truth, names=NAMES, rate=30.0, sigma_mm=1.0, seed=4, **quiet)
    assert plain.report["bias_mm"] == rep["bias_mm"] and plain.report["bias_frame"] == "world"
    with pytest.raises(InputError, match=r"segment_rotations must have shape \(600, 8, 3, 3\)"):
        markerless(truth, names=NAMES, segment_rotations=rot[:, :3])
