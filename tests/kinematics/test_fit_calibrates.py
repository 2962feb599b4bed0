"""``mp.fit(seq)`` calibrates the subject on the sequence first and keeps the calibration where
the data warrant it (``calibrate="auto"``); ``calibrate=True`` keeps it always, ``False`` is the
lengths-only fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.kinematics.calibrate import calibrate
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

HALPE = list(get_layout("halpe26").medpose)


def _sequence(names: list[str], shift_hips: bool) -> KeypointSequence:
    """A squat and an arm raise at 10 Hz, 2 mm noise; with ``shift_hips`` the hip keypoints sit
    40 mm above and 30 mm lateral of the joint centres, as a detector's do."""
    sk = Skeleton.default(1750.0)
    if shift_hips:
        sk = sk.with_offsets(
            {
                n: sk.keypoint_offsets[sk.keypoint_index(n)] + np.array([0.0, 40.0, z])
                for n, z in (("hip_r", 30.0), ("hip_l", -30.0))
            }
        )
    q = np.concatenate(
        [
            make_exercise(e, rate=10.0, repetitions=1).angles.values
            for e in ("squat", "shoulder_abduction")
        ]
    )
    x = forward_kinematics(sk, q, keypoints=names)
    x = x + np.random.default_rng(3).normal(0.0, 2.0, x.shape)
    return KeypointSequence(x, tuple(names), 10.0, frame="camera")


@pytest.fixture(scope="module")
def detector():
    seq = _sequence(HALPE, shift_hips=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        asked = fit(seq, progress=False, threads=1, calibrate=True)
        explicit = fit(seq, calibrate(seq), progress=False, threads=1)
        plain = fit(seq, progress=False, threads=1, calibrate=False)
    return seq, asked, explicit, plain


@pytest.fixture(scope="module")
def at_joint_centres():
    """The same movement with the keypoints at the joint centres: nothing to calibrate."""
    seq = _sequence(HALPE, shift_hips=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        default = fit(seq, progress=False, threads=1)
        plain = fit(seq, progress=False, threads=1, calibrate=False)
    return seq, default, plain


def test_calibrate_true_is_calibrate_then_fit(detector):
    """``calibrate=True`` is ``mp.calibrate(seq)`` then the fit with it (both computed here); it
    explains the detector-like hips that the default, lengths-only fit cannot reach."""
    _, asked, explicit, plain = detector
    assert asked.patient.keypoint_offsets  # a calibration, reported in Fit.patient
    assert asked.calibration is asked.patient
    assert plain.patient.keypoint_offsets == {} and plain.calibration is None
    np.testing.assert_allclose(asked.q, explicit.q, atol=1e-4, equal_nan=True)
    hips = [asked.keypoint_names.index(n) for n in ("hip_r", "hip_l")]
    assert np.nanmedian(asked.residual[:, hips]) < 0.5 * np.nanmedian(plain.residual[:, hips])
    table = asked.keypoint_residuals()
    assert {"calibration_before_mm", "calibration_after_mm"} <= set(table.columns)


def test_calibrate_true_calibrates_a_given_skeleton_and_refuses_a_calibration(detector):
    """A Skeleton given with ``calibrate=True`` is the one calibrated (its lengths are measured
    again from the data, so it gives the default's result); a PatientSkeleton is refused."""
    seq, asked, _, _ = detector
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        given = fit(seq, Skeleton.default(1600.0), progress=False, threads=1, calibrate=True)
    np.testing.assert_allclose(given.q, asked.q, atol=1e-4, equal_nan=True)
    with pytest.raises(InputError, match="PatientSkeleton"):
        fit(seq, asked.patient, calibrate=True, progress=False)


def test_the_default_keeps_a_calibration_that_explains_the_keypoints(detector):
    """Detector-like hips (40 mm above, 30 mm lateral): the calibration lowers the RMS residual
    by far more than the 10 % it must (the hips alone are two of 26 keypoints), so ``mp.fit(seq)``
    fits with it, as ``calibrate=True`` does."""
    seq, asked, _, _ = detector
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        default = fit(seq, progress=False, threads=1)
    assert default.calibration is not None and default.calibration.warranted
    assert default.patient is default.calibration
    assert default.calibration.rms_calibrated_mm < 0.9 * default.calibration.rms_prior_mm
    np.testing.assert_allclose(default.q, asked.q, atol=1e-4, equal_nan=True)
    assert "calibration used" in repr(default)


def test_the_default_on_keypoints_at_the_joint_centres_is_the_lengths_only_fit(at_joint_centres):
    """Where the keypoints are the default skeleton's (medpose's own synthetic patients) the
    calibration only fits noise: not warranted, so the fit is the lengths-only one, to the bit,
    and says why."""
    _, default, plain = at_joint_centres
    cal = default.calibration
    assert cal is not None and not cal.warranted and 0.0 <= cal.gain < 0.10
    assert default.patient.keypoint_offsets == {}
    np.testing.assert_array_equal(default.q, plain.q)
    assert "calibration not used" in repr(default)
    assert "not warranted" in str(cal)


def test_a_skeleton_given_is_fitted_as_it_is(at_joint_centres):
    """``calibrate="auto"`` calibrates only when no skeleton is given."""
    seq, _, _ = at_joint_centres
    f = fit(seq, Skeleton.default(1750.0), progress=False, threads=1, max_iter=5)
    assert f.calibration is None


def test_a_bad_calibrate_value_is_refused(at_joint_centres):
    seq, _, _ = at_joint_centres
    with pytest.raises(InputError, match="calibrate must be True, False or 'auto', found 'yes'"):
        fit(seq, calibrate="yes", progress=False)  # type: ignore[arg-type]


def test_exact_keypoints_at_the_joint_centres_are_fitted_with_lengths_only():
    """A gait with no noise and nothing to find: the calibration lowers a residual of thousandths
    of a mm by more than 10 %, but by far less than the 1 mm it must as well, so the fit is the
    lengths-only one."""
    sk = Skeleton.default(1750.0)
    q = make_exercise("gait", skeleton=sk, rate=60.0, seed=1).angles.values
    x = forward_kinematics(sk, q, keypoints=HALPE)
    seq = KeypointSequence(x, tuple(HALPE), 60.0, frame="camera")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        default = fit(seq, progress=False, threads=1)
        plain = fit(seq, progress=False, threads=1, calibrate=False)
    cal = default.calibration
    assert cal is not None and cal.gain >= 0.10  # the relative gain alone would warrant it
    assert cal.rms_prior_mm - cal.rms_calibrated_mm < 1.0 and not cal.warranted
    np.testing.assert_array_equal(default.q, plain.q)
