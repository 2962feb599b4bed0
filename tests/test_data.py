from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import medpose as mp


def test_landmarks_lookup_and_common():
    a = mp.Landmarks(("asis_l", "asis_r", "c7"), [[0, 0, 0], [1, 0, 0], [0, 1, 0]], "LPS")
    b = mp.Landmarks(("c7", "asis_l", "px"), [[5, 5, 5], [6, 6, 6], [7, 7, 7]], "camera")
    np.testing.assert_array_equal(a["c7"], [0, 1, 0])
    assert "asis_r" in a and len(a) == 3
    pa, pb = a.common(b)
    assert pa.names == pb.names == ("asis_l", "c7")
    np.testing.assert_array_equal(pb.positions, [[6, 6, 6], [5, 5, 5]])
    assert (pa.frame, pb.frame) == ("LPS", "camera")
    with pytest.raises(KeyError, match="known"):
        a["nope"]


def test_landmarks_common_drops_nan():
    a = mp.Landmarks(("x", "y"), [[0, 0, 0], [np.nan, 0, 0]])
    b = mp.Landmarks(("x", "y"), [[1, 1, 1], [2, 2, 2]])
    pa, _ = a.common(b)
    assert pa.names == ("x",)


def test_landmarks_validation():
    with pytest.raises(mp.InputError, match="duplicate names \\['a'\\]"):
        mp.Landmarks(("a", "a"), np.zeros((2, 3)))
    with pytest.raises(mp.InputError, match="\\(N, 3\\)"):
        mp.Landmarks(("a",), np.zeros((1, 2)))
    with pytest.raises(mp.InputError, match="2 names but 1 positions"):
        mp.Landmarks(("a", "b"), np.zeros((1, 3)))


def test_landmarks_are_immutable():
    lm = mp.Landmarks(("a",), [[1, 2, 3]])
    with pytest.raises(ValueError):
        lm.positions[0, 0] = 5


def _seq(t=4, k=3):
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(t, k, 3)) * 100
    pos[1, 2] = np.nan
    conf = rng.uniform(0.5, 1, size=(t, k))
    return mp.KeypointSequence(
        pos, tuple(f"k{i}" for i in range(k)), 50.0, confidence=conf, frame="camera", start=0.2
    )


def test_sequence_basics():
    s = _seq()
    assert (s.n_frames, s.n_keypoints, s.ndim) == (4, 3, 3)
    np.testing.assert_allclose(s.times, 0.2 + np.arange(4) / 50)
    assert s.confidence[1, 2] == 0.0  # missing point has no confidence
    assert np.isnan(s["k2"][1]).all()
    sub = s.select(["k2", "k0"])
    assert sub.names == ("k2", "k0")
    sl = s.slice(2, None)
    assert sl.n_frames == 2 and abs(sl.start - (0.2 + 2 / 50)) < 1e-12


def test_sequence_dataframe_roundtrip():
    s = _seq()
    df = s.to_dataframe()
    assert list(df.columns) == ["frame", "time_s", "keypoint", "x", "y", "z", "confidence"]
    assert len(df) == 12 and df.attrs["units"] == "mm"
    back = mp.KeypointSequence.from_dataframe(df)
    np.testing.assert_array_equal(np.isnan(back.positions), np.isnan(s.positions))
    np.testing.assert_allclose(np.nan_to_num(back.positions), np.nan_to_num(s.positions))
    np.testing.assert_allclose(back.confidence, s.confidence)
    assert back.names == s.names and back.rate == s.rate and abs(back.start - s.start) < 1e-12
    # without attrs: rate inferred from time stamps
    df2 = pd.DataFrame(df)
    df2.attrs = {}
    assert abs(mp.KeypointSequence.from_dataframe(df2).rate - 50.0) < 1e-9


def test_sequence_validation_messages():
    with pytest.raises(mp.InputError, match="rate"):
        mp.KeypointSequence(np.zeros((2, 1, 3)), ("a",), 0)
    with pytest.raises(mp.InputError, match="confidence must lie in \\[0, 1\\]"):
        mp.KeypointSequence(np.zeros((2, 1, 3)), ("a",), 30, confidence=np.full((2, 1), 2.0))
    with pytest.raises(mp.InputError, match="\\(T, K, 3\\)"):
        mp.KeypointSequence(np.zeros((2, 3)), ("a",), 30)
    with pytest.raises(mp.InputError, match="missing columns"):
        mp.KeypointSequence.from_dataframe(pd.DataFrame({"x": [1.0]}))


def test_sequence_transform_checks_frame():
    from scipy.spatial.transform import Rotation

    s = _seq()
    T = mp.Transform(
        Rotation.from_euler("x", 30, degrees=True), [1, 2, 3], source="camera", target="LPS"
    )
    out = s.transformed(T)
    assert out.frame == "LPS"
    # by hand: a 30-degree turn about x, then the translation (not through Transform.apply)
    c, si = np.cos(np.radians(30)), np.sin(np.radians(30))
    rx = np.array([[1.0, 0, 0], [0, c, -si], [0, si, c]])
    np.testing.assert_allclose(out.positions, s.positions @ rx.T + [1, 2, 3], atol=1e-12)
    with pytest.raises(mp.FrameMismatch):
        out.transformed(T)


def test_joint_angles_dataframe():
    ja = mp.JointAngles(np.arange(6.0).reshape(3, 2), ("knee_flexion_r", "hip_flexion_r"), 100.0)
    df = ja.to_dataframe()
    assert df.index.name == "time_s" and list(df.columns) == ["knee_flexion_r", "hip_flexion_r"]
    back = mp.JointAngles.from_dataframe(df)
    np.testing.assert_array_equal(back.values, ja.values)
    assert back.rate == 100.0
    np.testing.assert_array_equal(ja["hip_flexion_r"], [1, 3, 5])


def test_from_dataframe_keeps_frames_without_rows():
    df = pd.DataFrame(
        {
            "frame": [0, 1, 3],
            "keypoint": ["a"] * 3,
            "x": [1.0, 2, 3],
            "y": [0.0] * 3,
            "z": [0.0] * 3,
        }
    )
    s = mp.KeypointSequence.from_dataframe(df, rate=10)
    assert s.n_frames == 4
    assert np.isnan(s.positions[2]).all() and s.confidence[2, 0] == 0


def test_optional_fields_are_keyword_only():
    """confidence, frame and start are named at the call: a fourth positional value is refused."""
    pos, conf = np.zeros((2, 1, 3)), np.ones((2, 1))
    with pytest.raises(TypeError, match="positional"):
        mp.KeypointSequence(pos, ("a",), 30.0, conf)
    seq = mp.KeypointSequence(pos, ("a",), 30.0, confidence=conf, frame="lab", start=1.5)
    assert (seq.frame, seq.start) == ("lab", 1.5)
    assert np.array_equal(seq.confidence, conf)
    with pytest.raises(TypeError, match="positional"):
        mp.JointAngles(np.zeros((2, 1)), ("knee_flexion_r",), 30.0, 0.5)
    assert mp.JointAngles(np.zeros((2, 1)), ("knee_flexion_r",), 30.0, start=0.5).start == 0.5


def test_sequence_replace_and_copies_keep_every_field():
    seq = mp.KeypointSequence(
        np.ones((3, 2, 3)),
        ("a", "b"),
        50.0,
        confidence=np.full((3, 2), 0.5),
        frame="lab",
        start=2.0,
    )
    for other in (
        dataclasses.replace(seq, rate=25.0),
        seq.select(["b", "a"]),
        seq.rename({"a": "c"}),
        seq.slice(1),
    ):
        assert other.frame == "lab"
        assert np.all(other.confidence == 0.5)
    assert dataclasses.replace(seq, rate=25.0).rate == 25.0
    assert seq.slice(1).start == pytest.approx(2.02)  # one frame at 50 Hz later


def test_sequence_copies_positions_unless_told_to_take_them_over():
    pos = np.arange(24.0).reshape(2, 4, 3)
    pos[1, 2, 0] = np.nan  # one coordinate missing: the whole keypoint is missing
    seq = mp.KeypointSequence(pos, list("abcd"), 30.0)
    assert not np.shares_memory(seq.positions, pos) and pos.flags.writeable
    assert np.isnan(seq.positions[1, 2]).all() and not np.isnan(pos[1, 2, 1])
    taken = mp.KeypointSequence(pos, list("abcd"), 30.0, copy=False)
    assert taken.positions is pos and not pos.flags.writeable  # taken over, frozen
    np.testing.assert_array_equal(taken.positions, seq.positions)
    np.testing.assert_array_equal(taken.confidence, seq.confidence)
    # not a writeable C-contiguous float64 array: copied even with copy=False
    for other in (np.arange(24).reshape(2, 4, 3), np.asfortranarray(seq.positions), seq.positions):
        again = mp.KeypointSequence(other, list("abcd"), 30.0, copy=False)
        assert not np.shares_memory(again.positions, other)
        assert again.positions.flags.c_contiguous and not again.positions.flags.writeable
