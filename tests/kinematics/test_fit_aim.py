"""A leaf segment seen through one keypoint (a Kinect's foot): its joint read from the keypoint's
direction after the fit (medpose.kinematics.fit.aim)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import medpose as mp
from medpose.data import KeypointSequence
from medpose.kinematics.fit.problem import prepare
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.kinect import kinect_recording

CLEAN = {"bias_mm": 0.0, "sigma_mm": 0.0, "white_mm": 0.0}


def _fit(seq):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mp.fit(seq, progress=False)


@pytest.mark.parametrize(("exercise", "side"), [("deep_squat", None), ("hurdle_step", "right")])
def test_a_noise_free_kinect_recording_gives_the_true_ankle(exercise, side):
    """The Kinect's joints without noise (midfoot: the skeleton's, medpose.synthetic.kinect):
    the fitted dorsiflexion is the truth in every frame (the squat's 0-20 deg, the hurdle
    step's stepping foot 0-15), and the foot's inversion, which one point cannot see, is not
    reported."""
    rec = kinect_recording(exercise, side=side, seed=0, **CLEAN)
    fitted = _fit(rec.sequence).angles
    truth = rec.truth.angles
    for s in "lr":
        want = np.asarray(truth.values)[:, list(truth.names).index(f"ankle_dorsiflexion_{s}")]
        got = fitted[f"ankle_dorsiflexion_{s}"].to_numpy()
        np.testing.assert_allclose(got, want, atol=0.05)
        assert np.isnan(fitted[f"subtalar_inversion_{s}"]).all()
    assert np.ptp(want) > 10.0  # the ankle moved


def test_the_foot_keypoint_leaves_the_rest_of_the_fit_alone():
    """With or without the Kinect's foot joints, every other angle is the same: a 120 mm lever
    from a joint that the Kinect moves along the shank with the posture would otherwise pull the
    knee (a UI-PRMD squat's flexion peak 5.7 deg off the Kinect's own angle)."""
    seq = kinect_recording("deep_squat", seed=2).sequence
    names = [n for n in seq.names if not n.startswith("midfoot")]
    with_foot, without = _fit(seq), _fit(seq.select(names))
    ankle = [i for i, n in enumerate(with_foot.dof_names) if n.startswith("ankle_dorsiflexion")]
    rest = [i for i in range(len(with_foot.dof_names)) if i not in ankle]
    np.testing.assert_allclose(with_foot.q[:, rest], without.q[:, rest], atol=1e-6)
    assert np.isfinite(with_foot.q[:, ankle]).all()
    assert not np.asarray(without.observable)[ankle].any()
    assert "midfoot_r" in with_foot.keypoint_names  # its residual is reported
    assert np.isfinite(with_foot.residuals["midfoot_r"]).all()


def test_frames_without_the_foot_are_bridged_as_the_fits_gaps():
    """Where the foot's keypoint is lost the ankle is interpolated across the gap (up to a
    second, as the fit bridges its own gaps), and beyond that held at neutral as any DoF no
    keypoint sees; never NaN in a fitted frame, which would make the frame's every fitted
    keypoint NaN (forward kinematics) and with them its compensations."""
    rec = kinect_recording("deep_squat", seed=1, **CLEAN)
    seq = rec.sequence
    truth = np.asarray(rec.truth.angles["ankle_dorsiflexion_r"])
    foot = list(seq.names).index("midfoot_r")
    conf = np.array(seq.confidence, float)
    short, long = np.arange(40, 46), np.arange(70, 120)  # 0.2 s, and 1.7 s past the bottom
    conf[np.r_[short, long], foot] = 0.0
    gap = KeypointSequence(seq.positions, seq.names, seq.rate, confidence=conf, frame=seq.frame)
    f = _fit(gap)
    right = f.angles["ankle_dorsiflexion_r"].to_numpy()
    assert np.isfinite(f.q).all() and np.isfinite(f.fitted).all()
    assert np.abs(right[short] - truth[short]).max() < 1.0  # the squat's ankle is smooth
    assert np.all(right[long] == 0.0)  # longer than a second: neutral
    seen = np.setdiff1d(np.arange(len(right)), np.r_[short, long])
    np.testing.assert_allclose(right[seen], truth[seen], atol=0.05)
    np.testing.assert_allclose(
        f.angles["ankle_dorsiflexion_l"], rec.truth.angles["ankle_dorsiflexion_l"], atol=0.05
    )


def test_a_foot_with_several_keypoints_is_fitted_on_their_positions():
    """HALPE_26 feet (heel, big and small toe) are fitted as before; one foot keypoint with the
    ankle seen (the Kinect's case, whatever its name) is aimed."""
    sk = Skeleton.default()
    halpe = get_layout("halpe26").medpose
    x = mp.kinematics.forward_kinematics(sk, np.zeros((3, len(sk.dof_names))), keypoints=halpe)
    assert prepare(KeypointSequence(x, halpe, 30.0), sk).aimed is None
    keep = [i for i, n in enumerate(halpe) if not n.startswith(("heel", "small_toe"))]
    one = KeypointSequence(x[:, keep], tuple(halpe[i] for i in keep), 30.0)
    aimed = prepare(one, sk).aimed
    assert aimed is not None and set(aimed.names) == {"big_toe_l", "big_toe_r"}
