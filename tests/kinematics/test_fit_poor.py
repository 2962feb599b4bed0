"""Frames fitted poorly: the left and right labels of a whole body swapped over a run of frames
fit no posture of the skeleton, and the fit says which frames they are."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from medpose import read_keypoints
from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.fit import fit
from medpose.kinematics.fit.result import POOR_MARGIN_MM, POOR_RATIO
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout, lr_pairs
from medpose.synthetic.exercises import make_exercise

HALPE = get_layout("halpe26")
SWAPPED = np.arange(20, 26)


@pytest.fixture(scope="module")
def squats():
    """A squat's HALPE_26 keypoints with 5 mm of noise, as they are and with every left/right
    label exchanged in frames 20-25."""
    sk = Skeleton.default(1750.0)
    q = make_exercise("squat", skeleton=sk, rate=10.0, repetitions=1, seed=2).angles.values
    x = forward_kinematics(sk, q, keypoints=list(HALPE.medpose))
    x = x + np.random.default_rng(3).normal(0.0, 5.0, x.shape)
    names, ours = tuple(HALPE.native), list(HALPE.medpose)
    swapped = x.copy()
    pairs = lr_pairs(ours)
    assert len(pairs) == 11  # eyes, ears, shoulders, elbows, wrists, hips ... heels
    for a, b in pairs:
        i, j = ours.index(a), ours.index(b)
        swapped[SWAPPED, i], swapped[SWAPPED, j] = x[SWAPPED, j], x[SWAPPED, i]
    clean = KeypointSequence(x, names, 10.0, frame="camera")
    return sk, clean, KeypointSequence(swapped, names, 10.0, frame="camera")


def test_swapped_frames_are_the_poor_frames_and_the_fit_says_so(squats):
    sk, clean, swapped = squats
    good = fit(clean, sk, progress=False, threads=1)
    assert len(good.poor_frames) == 0
    with pytest.warns(UserWarning, match=r"6 of \d+ frames fitted poorly \(frames 20-25; RMS"):
        bad = fit(swapped, sk, progress=False, threads=1)
    np.testing.assert_array_equal(bad.poor_frames, SWAPPED)
    # the bound is the documented one: over POOR_RATIO times the median and POOR_MARGIN_MM above
    r = bad.frame_rms
    med = np.median(r)
    assert np.all(r[SWAPPED] > POOR_RATIO * med) and np.all(r[SWAPPED] > med + POOR_MARGIN_MM)
    # in float64, as frame_rms sums them: the residuals are float32
    by_hand = np.sqrt(np.nanmean(bad.residual.astype(float) ** 2, axis=1))
    np.testing.assert_allclose(r, by_hand)
    assert "6 frames fitted poorly" in repr(bad) and "fitted poorly" not in repr(good)
    fig, ax = plt.subplots()
    try:
        bad.plot(["knee_flexion_r"], ax=ax)
        shaded = [p for p in ax.patches]
        assert len(shaded) == len(SWAPPED) and "grey: fitted poorly" in ax.get_title()
        left = sorted(p.get_x() for p in shaded)
        np.testing.assert_allclose(left, bad.times[SWAPPED] - 0.05)
    finally:
        plt.close(fig)


def test_the_kinects_folded_lower_leg_is_flagged_and_a_clean_raise_is_not(shared_data):
    """UI-PRMD (real Kinect v2 recordings): at the bottom of subject 6's third deep squat the
    Kinect puts the right ankle above the knee for a dozen frames, a pose of the lower leg that
    no one squatting on their feet takes.  The frames fitted poorly are among them, and most of
    them are (a skeleton kneeling with its shank raised can still match some); a shoulder
    abduction of the same subject has none."""
    folder = shared_data / "ui-prmd" / "kinect" / "correct" / "positions"
    squat = read_keypoints(folder / "m01_s06_e03_positions.txt.gz")
    folded = np.flatnonzero(squat["ankle_r"][:, 1] > squat["knee_r"][:, 1])  # y is up
    assert len(folded) >= 10
    with pytest.warns(UserWarning, match="fitted poorly"):
        f = fit(squat, progress=False, threads=1)
    assert set(f.poor_frames) <= set(folded)
    assert len(f.poor_frames) >= 0.75 * len(folded)
    raise_ = read_keypoints(folder / "m07_s06_e03_positions.txt.gz")
    assert len(fit(raise_, progress=False, threads=1).poor_frames) == 0


def test_without_frames_makes_them_frames_not_fitted(squats):
    sk, clean, _ = squats
    f = fit(clean, sk, progress=False, threads=1)
    g = f.without_frames([3, 4])
    assert np.isnan(g.q[[3, 4]]).all() and np.isfinite(g.q[[2, 5]]).all()
    assert np.isnan(g.residual[[3, 4]]).all() and np.isnan(g.fitted[[3, 4]]).all()
    assert not g.valid[[3, 4]].any() and g.valid.sum() == f.valid.sum() - 2
    assert g.angles["knee_flexion_r"].iloc[[3, 4]].isna().all()
    np.testing.assert_array_equal(g.q[5:], f.q[5:])
    np.testing.assert_array_equal(f.without_frames([]).q, f.q)
    with pytest.raises(InputError, match=r"frame 51 outside the fit's 51 frames"):
        f.without_frames([51])
