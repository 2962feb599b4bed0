"""Outliers, gaps and 3D left/right repair."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.temporal import (
    bone_length_outliers,
    clean_gaps,
    fill_gaps,
    hampel_outliers,
    repair_swaps_3d,
)

FS = 60.0


def _walk(t=120, k=3, seed=0):
    tt = np.arange(t) / FS
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 300, (1, k, 3))
    return base + 100 * np.stack([np.sin(tt), np.cos(tt), tt], -1)[:, None, :]


def test_hampel_flags_a_spike_and_nothing_else():
    p = _walk()
    p[40, 1] += 200.0
    flags = hampel_outliers(p, FS)
    assert flags[40, 1] and flags.sum() == 1


def test_hampel_bad_shape():
    with pytest.raises(InputError, match=r"\(T, K, D\)"):
        hampel_outliers(np.zeros((10, 3)), FS)


def test_fill_gaps_fills_short_leaves_long_and_reports():
    p = _walk()
    truth = p.copy()
    p[30:35, 0] = np.nan  # 5 frames: filled
    p[60:90, 1] = np.nan  # 30 frames = 0.5 s: left
    p[:3, 2] = np.nan  # at the start: left
    res = fill_gaps(p, FS, max_gap_s=0.1, names=["a", "b", "c"])
    np.testing.assert_allclose(res.values[30:35, 0], truth[30:35, 0], atol=0.05)
    assert np.isnan(res.values[60:90, 1]).all() and np.isnan(res.values[:3, 2]).all()
    g = res.gaps.set_index("keypoint")
    assert g.loc["a", "filled"] and g.loc["a", "n_frames"] == 5
    assert not g.loc["b", "filled"] and g.loc["b", "reason"] == "too long"
    assert g.loc["b", "duration_s"] == pytest.approx(0.5)
    assert g.loc["c", "reason"] == "at the start"
    lin = fill_gaps(p, FS, 0.1, method="linear").values
    np.testing.assert_allclose(
        lin[32, 0], (p[29, 0] + p[35, 0]) / 2 + (p[35, 0] - p[29, 0]) * (3 / 6 - 1 / 2), atol=1e-9
    )


@pytest.mark.parametrize(
    "kw, msg",
    [({"method": "cubic"}, "method"), ({"max_gap_s": -1}, "max_gap_s"), ({"fs": 0}, "fs")],
)
def test_fill_gaps_bad_arguments(kw, msg):
    args = {"fs": FS} | kw
    with pytest.raises(InputError, match=msg):
        fill_gaps(_walk(), **args)


def _legs(t=90):
    names = ("hip_l", "knee_l", "ankle_l", "hip_r", "knee_r", "ankle_r")
    tt = np.arange(t) / FS
    p = np.zeros((t, 6, 3))
    for j, side in enumerate((-1, 1)):
        hip = np.stack([0.2 * np.sin(tt) * 100, np.full(t, side * 100.0), np.full(t, 900.0)], -1)
        ang = 0.5 * np.sin(2 * np.pi * 0.5 * tt + j)
        knee = hip + 400 * np.stack([np.sin(ang), np.zeros(t), -np.cos(ang)], -1)
        ankle = knee + np.array([0, 0, -400.0])
        p[:, 3 * j : 3 * j + 3] = np.stack([hip, knee, ankle], 1)
    return p, names


def test_bone_length_outliers_blames_the_odd_keypoint():
    p, names = _legs()
    p[20, names.index("ankle_l")] += [0, 0, 150.0]  # shank shortens, only the ankle's bone
    p[50, names.index("knee_r")] += [0, 300.0, 0]  # both bones of the knee break
    flags = bone_length_outliers(p, names)
    assert flags[20, names.index("ankle_l")] and flags[50, names.index("knee_r")]
    assert flags.sum() == 3  # the ankle's lone bone blames both of its ends (knee_l too)
    with pytest.raises(InputError, match="tolerance"):
        bone_length_outliers(p, names, tolerance=0)


def test_bone_length_window_keeps_a_drift_and_catches_a_break():
    """A shank that shortens smoothly by 20 % and back over 1.5 s (a Kinect's per-frame bone
    lengths in a deep squat) is no outlier against its running median, though the median alone
    takes its ankle out of the whole stretch; a 5-frame break of 150 mm is caught either way."""
    p, names = _legs(t=150)
    knee, ankle = names.index("knee_l"), names.index("ankle_l")
    tt = np.arange(150) / FS
    shrink = 1.0 - 0.2 * np.exp(-0.5 * ((tt - 2.5) / 0.35) ** 2)  # the drift, about t = 2.5 s
    p[:, ankle] = p[:, knee] + (p[:, ankle] - p[:, knee]) * shrink[:, None]
    drift = np.flatnonzero(shrink < 0.85)
    assert drift.size >= 5
    alone = bone_length_outliers(p, names)
    assert alone[drift, ankle].all()
    win = round(1.0 * FS)
    assert not bone_length_outliers(p, names, window=win)[:, ankle].any()
    p[100:105, ankle] += [0, 0, 150.0]
    for flags in (bone_length_outliers(p, names), bone_length_outliers(p, names, window=win)):
        assert flags[100:105, ankle].all()
    seq = KeypointSequence(p, names, FS)
    assert not clean_gaps(seq).outliers[drift, ankle].any()  # a 1 s window by default
    assert clean_gaps(seq, bone_window_s=None).outliers[drift, ankle].all()
    for bad in (0, 2, 2.5):
        with pytest.raises(InputError, match="window"):
            bone_length_outliers(p, names, window=bad)
    with pytest.raises(InputError, match="bone_window_s"):
        clean_gaps(seq, bone_window_s=-1.0)


def test_clean_gaps_removes_outliers_and_fills():
    p, names = _legs()
    truth = p.copy()
    p[50, names.index("knee_r")] += [0, 300.0, 0]
    seq = KeypointSequence(p, names, FS)
    res = clean_gaps(seq)
    assert res.outliers[50, names.index("knee_r")]
    np.testing.assert_allclose(
        res.sequence.positions[50, names.index("knee_r")],
        truth[50, names.index("knee_r")],
        atol=2.0,
    )
    assert res.sequence.confidence[50, names.index("knee_r")] == 0.0


def test_repair_swaps_3d_finds_and_undoes_swaps():
    p, names = _legs()
    seq_true = KeypointSequence(p, names, FS)
    q = p.copy()
    li, ri = names.index("knee_l"), names.index("knee_r")
    q[[10, 11, 12, 40]] = q[[10, 11, 12, 40]][:, [0, ri, 2, 3, li, 5]]
    fixed, report = repair_swaps_3d(KeypointSequence(q, names, FS))
    np.testing.assert_allclose(fixed.positions, seq_true.positions)
    assert sorted(report["frame"]) == [10, 11, 12, 40]
    assert set(report["keypoint_l"]) == {"knee_l"} and (report["stage"] == "3d").all()
    assert (report["cost_after"] <= report["cost_before"]).all()
    starts = report.set_index("frame").loc[[10, 40]]
    assert (starts["cost_after"] < 0.1 * starts["cost_before"]).all()


def test_a_swap_that_ends_in_a_gap_is_read_from_its_limb():
    """The legs swapped in frames 30-44 while the right ankle is hidden from frame 40 to 59:
    the ankles' label change at frame 45 is never seen, since the displacement test needs both
    ankles in consecutive frames; the knees' is, and the ankles follow them.  Before, the ankles
    stayed exchanged from frame 60 to the end, and the left ankle kept the right one's position
    in frames 40-44, where only it was seen."""
    p, names = _legs()
    q = p.copy()
    swap = [names.index(n) for n in ("hip_r", "knee_r", "ankle_r", "hip_l", "knee_l", "ankle_l")]
    q[30:45] = p[30:45][:, swap]
    q[40:60, names.index("ankle_r")] = np.nan
    fixed, _ = repair_swaps_3d(KeypointSequence(q, names, FS))
    seen = np.isfinite(fixed.positions).all(axis=2)
    assert seen.sum() == np.isfinite(q).all(axis=2).sum()
    np.testing.assert_allclose(fixed.positions[seen], p[seen])
    # frames 40-44: the left label held the right ankle, the right one nothing; now the reverse
    assert np.isnan(fixed.positions[40:45, names.index("ankle_l")]).all()


def test_a_false_flip_may_not_turn_the_pelvis_against_the_shoulders():
    """The hips exchanged in frame 50 (a real swap: undone), then lost for frames 51-55 (both
    triangulated at one point above the pelvis, where neither labelling moves less): the one flip
    seen, at frame 50, made frames 50-89 the minority labelling, and the correct hips of frames
    56-89 were exchanged, the pelvis facing backwards against the shoulders."""
    p, names = _legs()
    names = names + ("shoulder_l", "shoulder_r")
    hips = [names.index("hip_l"), names.index("hip_r")]
    p = np.concatenate([p, p[:, hips] + [0.0, 0.0, 500.0]], axis=1)  # shoulders above the hips
    q = p.copy()
    q[50, hips] = p[50, hips[::-1]]
    q[51:56, hips] = p[51:56, hips].mean(axis=1, keepdims=True) + [0.0, 0.0, 300.0]
    fixed, report = repair_swaps_3d(KeypointSequence(q, names, FS))
    good = np.r_[0:51, 56:90]
    np.testing.assert_allclose(fixed.positions[good], p[good])
    assert 50 in set(report["frame"]) and set(report["keypoint_l"]) == {"hip_l"}


def test_bones_judge_a_pair_among_its_relabelled_neighbours():
    """The whole legs exchanged in frames 30-44 with the bone check on: each pair's relabelling
    is judged with the other pairs relabelled too.  Judged alone, exchanging the knees while the
    hips and ankles stay exchanged joins each knee to the other leg's hip: the check refused
    every pair's relabelling and the legs stayed exchanged."""
    p, names = _legs()
    q = p.copy()
    swap = [names.index(n) for n in ("hip_r", "knee_r", "ankle_r", "hip_l", "knee_l", "ankle_l")]
    q[30:45] = p[30:45][:, swap]
    bones = [(f"hip_{s}", f"knee_{s}") for s in "lr"] + [(f"knee_{s}", f"ankle_{s}") for s in "lr"]
    fixed, report = repair_swaps_3d(KeypointSequence(q, names, FS), bones=bones)
    np.testing.assert_allclose(fixed.positions, p)
    assert len(report) == 3 * 15


def test_a_knee_is_not_judged_against_a_pelvis_the_trunk_check_kept():
    """As the false pelvis flip above, with the knees exchanged in frame 50 too and lost beside
    the hips in frames 51-55, the feet out of view from frame 51 (as the legs of Pose2Sim's real
    recording after a stretch of badly triangulated frames): hips and knees read as exchanged from
    frame 50 on.  The trunk check keeps the hips of frames 56-89, but the knees' bones had been
    judged against the hips as exchanged (each thigh then of the right length; the hidden shanks
    made the sum NaN, which kept the relabelling), and the correct knees of frames 56-89 were
    crossed, each joined to the other side's hip."""
    p, names = _legs()
    names = names + ("shoulder_l", "shoulder_r")
    hips = [names.index("hip_l"), names.index("hip_r")]
    legs = [[names.index(f"{j}_l"), names.index(f"{j}_r")] for j in ("hip", "knee")]
    p = np.concatenate([p, p[:, hips] + [0.0, 0.0, 500.0]], axis=1)  # shoulders above the hips
    q = p.copy()
    for pair in legs:
        q[50, pair] = p[50, pair[::-1]]
        q[51:56, pair] = p[51:56, pair].mean(axis=1, keepdims=True) + [0.0, 0.0, 300.0]
    q[51:, [names.index("ankle_l"), names.index("ankle_r")]] = np.nan
    bones = [(f"hip_{s}", f"knee_{s}") for s in "lr"] + [(f"knee_{s}", f"ankle_{s}") for s in "lr"]
    fixed, report = repair_swaps_3d(KeypointSequence(q, names, FS), bones=bones)
    good = np.r_[0:51, 56:90]
    np.testing.assert_allclose(fixed.positions[good], np.where(np.isnan(q), np.nan, p)[good])
    assert set(report["frame"]) == {50}


def test_repair_swaps_3d_leaves_clean_data_alone_and_checks_input():
    p, names = _legs()
    fixed, report = repair_swaps_3d(KeypointSequence(p, names, FS))
    assert report.empty and np.array_equal(fixed.positions, p)
    with pytest.raises(InputError, match="3D"):
        repair_swaps_3d(KeypointSequence(p[..., :2], names, FS))
    with pytest.raises(InputError, match="'foo_l'"):
        repair_swaps_3d(KeypointSequence(p, names, FS), pairs=[("foo_l", "foo_r")])


def test_bones_never_seen_raise_no_warning():
    """Knees lost for the whole recording: their bones have no median, which is no reason for a
    RuntimeWarning from numpy in the user's console."""
    p, names = _legs()
    p[:, [names.index("knee_l"), names.index("knee_r")]] = np.nan
    bones = [(f"hip_{s}", f"knee_{s}") for s in "lr"] + [(f"knee_{s}", f"ankle_{s}") for s in "lr"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed, report = repair_swaps_3d(KeypointSequence(p, names, FS), bones=bones)
    assert report.empty and np.array_equal(fixed.positions, p, equal_nan=True)
