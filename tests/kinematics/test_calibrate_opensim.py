"""Calibration against markers that another model made: OpenSim 4.6 generated them from
Pose2Sim's model (``Model_Pose2Sim_simple.osim`` with its HALPE_26 marker set, unscaled, random
smooth motion inside the model's ranges; ``tests/data/opensim/pose2sim_random.trc``, 200
frames, no noise), with the generating coordinates beside them; ``pose2sim_functional.trc`` is
the functional trial of ``benchmarks/calibration.py`` on the same model (every third frame: 334
frames at 20 Hz, no noise, rounded to 0.01 mm like the other).  medpose's skeleton is not that
model, so its angles differ from OpenSim's by a constant (the two models' zero poses) and by
what the geometries cannot share; the tests remove the constant, as
``benchmarks/calibration.py`` does."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.errors import InputError
from medpose.kinematics.patient import estimate_skeleton

DATA = Path(__file__).resolve().parents[1] / "data" / "opensim"
PAIRS = {
    "knee_angle_r": "knee_flexion_r",
    "knee_angle_l": "knee_flexion_l",
    "elbow_flex_r": "elbow_flexion_r",
    "elbow_flex_l": "elbow_flexion_l",
}
THREE = {
    "knee_angle_r": ("hip_r", "knee_r", "ankle_r"),
    "knee_angle_l": ("hip_l", "knee_l", "ankle_l"),
    "elbow_flex_r": ("shoulder_r", "elbow_r", "wrist_r"),
    "elbow_flex_l": ("shoulder_l", "elbow_l", "wrist_l"),
}


def _rmse_offset(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    d = d - np.nanmean(d)
    return float(np.sqrt(np.nanmean(d**2)))


def _three_point(seq: mp.KeypointSequence, names: tuple[str, str, str]) -> np.ndarray:
    p, c, d = (seq.positions[:, list(seq.names).index(n)] for n in names)
    u, v = p - c, d - c
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    return 180.0 - np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _errors(seq, truth: pd.DataFrame, fit) -> dict[str, tuple[float, float]]:
    """Per coordinate of PAIRS: the fit's RMSE against OpenSim's coordinate and the plain
    three-point angle's, offset removed (a knee read with the opposite sign is turned)."""
    out = {}
    for oc, dof in PAIRS.items():
        t = truth[oc].to_numpy()
        sign = -1.0 if oc.startswith("knee") and np.corrcoef(t, fit.angles[dof])[0, 1] < 0 else 1.0
        out[oc] = (
            _rmse_offset(sign * fit.angles[dof].to_numpy(), t),
            _rmse_offset(_three_point(seq, THREE[oc]), sign * t if sign < 0 else t),
        )
    return out


@pytest.fixture(scope="module")
def calibrated():
    seq = mp.read_keypoints(DATA / "pose2sim_random.trc")
    truth = pd.read_csv(DATA / "pose2sim_random_truth.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain = mp.fit(seq, progress=False, threads=1, calibrate=False)
        patient = mp.calibrate(seq, keypoint_model="pose2sim_halpe26")
        fitted = mp.fit(seq, patient, progress=False, threads=1)
    return seq, truth, plain, patient, fitted


def test_calibrated_skeleton_reaches_opensims_markers(calibrated):
    """The issue's target: a median keypoint residual of at most 3 mm on noise-free OpenSim
    markers (a lengths-only fit leaves about 20 mm: the shoulder markers sit on the torso)."""
    _, _, plain, patient, fitted = calibrated
    assert np.nanmedian(plain.residual) > 10.0
    assert np.nanmedian(fitted.residual) <= 3.0
    assert patient.keypoint_model == "pose2sim_halpe26"
    assert "acromion_r" in patient.keypoints  # Pose2Sim's shoulder marker is a trunk point


def test_the_default_fit_calibrates_on_opensims_markers(calibrated):
    """``mp.fit(seq)``: markers that OpenSim placed on another body are not the default
    skeleton's keypoints, so the calibration on the sequence (the layout's detector model) lowers
    the RMS residual by far more than the 10 % that warrants it, and the fit uses it."""
    seq, _, plain, _, _ = calibrated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        f = mp.fit(seq, progress=False, threads=1)
    assert f.calibration is not None and f.calibration.warranted
    assert f.patient is f.calibration
    assert np.nanmedian(f.residual) < 0.5 * np.nanmedian(plain.residual)


def test_calibrated_knee_and_elbow_follow_opensims_coordinates(calibrated):
    """Knee and elbow flexion (offset removed) are no worse than the plain three-point angle on
    the same markers (the issue's floor), and better than the lengths-only fit."""
    seq, truth, plain, _, fitted = calibrated
    before = _errors(seq, truth, plain)
    for oc, (got, tp) in _errors(seq, truth, fitted).items():
        assert got <= tp, (oc, got, tp)
        assert got < before[oc][0], (oc, got, before[oc][0])


def test_the_calibration_names_its_keypoint_model(calibrated, tmp_path):
    """Saved and loaded, the calibration keeps its keypoint model: fitting the same .trc with
    the loaded file renames Pose2Sim's shoulders as the calibration did (and uses the model's
    posture prior), reaching the same residual."""
    seq, _, _, patient, fitted = calibrated
    path = patient.save(tmp_path / "p.json")
    again = mp.PatientSkeleton.load(path)
    assert again.keypoint_model == "pose2sim_halpe26"
    f2 = mp.fit(seq, again, progress=False, threads=1)
    np.testing.assert_allclose(
        again.skeleton.keypoint_offsets, patient.skeleton.keypoint_offsets, atol=1e-3
    )  # the file keeps 4 decimals
    assert abs(np.nanmedian(f2.residual) - np.nanmedian(fitted.residual)) < 0.05
    with pytest.raises(InputError, match="no_such_model"):
        mp.calibrate(seq, keypoint_model="no_such_model")


def test_the_starting_pelvis_is_opensims(calibrated):
    """Pose2Sim's hip markers lie outside OpenSim's hip joint centres.  Read through the marker
    model, their distance gives OpenSim's pelvis width (230.91 mm, measured on the OpenSim model:
    the ``RHip`` source in ``pose2sim_halpe26.yaml``; both markers are on the pelvis, so every
    frame agrees); read as joint centres it gives one 29 % wider."""
    seq = calibrated[0]
    model = mp.load_keypoint_model("pose2sim_halpe26")
    renamed = model.rename(seq)
    width = estimate_skeleton(renamed, keypoint_model=model).lengths["pelvis_width"]
    assert width == pytest.approx(230.91, abs=0.5)
    assert estimate_skeleton(renamed).lengths["pelvis_width"] > 1.2 * 230.91
    assert calibrated[3].lengths["pelvis_width"] == pytest.approx(230.91, abs=0.5)


@pytest.fixture(scope="module")
def functional():
    """The benchmark's functional trial (``benchmarks/calibration.py``: two deep squats, arm
    raises to 140 degrees with the elbows nearly straight, steps, range-of-motion movements) on
    the same model, noise-free, every third frame (334 frames at 20 Hz), calibrated and fitted."""
    seq = mp.read_keypoints(DATA / "pose2sim_functional.trc")
    truth = pd.read_csv(DATA / "pose2sim_functional_truth.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patient = mp.calibrate(seq, keypoint_model="pose2sim_halpe26")
        fitted = mp.fit(seq, patient, progress=False, threads=1)
    return seq, truth, fitted


def test_straight_arms_keep_their_elbow_on_the_calibrated_skeleton(functional):
    """With the elbow nearly straight, an arm's keypoints barely see the forearm's pronation or
    the humerus's rotation, and a second solution (the forearm turned to its 80-degree pronation
    limit, the humerus turned with it, the elbow a few degrees off) fits a calibrated skeleton's
    keypoints within a millimetre.  The calibrated fit stays on the right one: elbow flexion
    (offset removed) within 1.5 degrees of OpenSim's coordinate (runs of straight-arm frames on
    the other solution read 2.7-3.4), the forearm never at its pronation limit (OpenSim's
    pronation stays within 30 degrees of neutral), and the knees, hinges in both models, within
    0.5 degrees; each below the plain three-point angle's error."""
    seq, truth, fitted = functional
    assert np.nanmedian(fitted.residual) <= 3.0
    for oc, (err, tp) in _errors(seq, truth, fitted).items():
        assert err <= min(tp, 1.5 if oc.startswith("elbow") else 0.5), (oc, err, tp)
    for side in "rl":
        assert (np.abs(truth[f"pro_sup_{side}"] - 90.0) <= 30.0 + 1e-3).all()
        assert fitted.angles[f"forearm_pronation_{side}"].abs().max() < 79.0, side


def test_the_default_fit_converges_where_offsets_reach_the_plausible_range(functional):
    """``mp.fit(seq)`` calibrates with the layout's detector model, whose priors put the neck,
    nose and upper-arm keypoints where OpenSim's markers are not: the data push them to the edge
    of the plausible range (a warning names them).  The calibration's steps stay inside that
    range as a whole rather than clipped one parameter at a time (which moved the parameters
    coupled to a clipped one as if it had gone all the way, every later step rejected): the
    median residual within the issue's 3 mm and the knees, hinges in both models, within 0.5
    degrees of OpenSim's coordinate (2.8-3.0 with the clipped steps, as bad as the three-point
    angle)."""
    seq, truth, _ = functional
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = mp.fit(seq, progress=False, threads=1)
    assert f.calibration is not None and f.calibration.keypoint_model == "halpe26"
    assert any("plausible range" in str(w.message) for w in caught)
    assert np.nanmedian(f.residual) <= 3.0
    for oc, (err, tp) in _errors(seq, truth, f).items():
        assert err <= min(tp, 0.5 if oc.startswith("knee") else 2.0), (oc, err, tp)


@pytest.fixture(scope="module")
def command_line(tmp_path_factory):
    """``medpose calibrate`` with Pose2Sim's marker model, then ``medpose fit --patient`` writing
    a ``.mot`` (Pose2Sim's coordinates) and a CSV (medpose's DoFs)."""
    from medpose.cli import main

    d = tmp_path_factory.mktemp("cli")
    trc, pat, mot, csv = DATA / "pose2sim_random.trc", d / "p.yaml", d / "t.mot", d / "t.csv"
    codes = (
        main(["calibrate", str(trc), str(pat), "--keypoint-model", "pose2sim_halpe26"]),
        main(["fit", str(trc), "--patient", str(pat), "-o", str(mot), "-o", str(csv)]),
    )
    return codes, pat, mot, csv


def test_the_command_lines_mot_follows_opensims_coordinates(command_line):
    """``medpose fit``'s ``.mot`` holds OpenSim's names and signs: its knee and elbow flexion,
    offset removed, are no further from the coordinates that generated the markers than the
    plain three-point angle of the same markers."""
    codes, pat, mot, _ = command_line
    assert codes == (0, 0)
    assert mp.PatientSkeleton.load(pat).keypoint_model == "pose2sim_halpe26"
    got = mp.read_mot(mot)
    truth = pd.read_csv(DATA / "pose2sim_random_truth.csv")
    seq = mp.read_keypoints(DATA / "pose2sim_random.trc")
    for oc in PAIRS:
        err = _rmse_offset(np.asarray(got[oc], dtype=float), truth[oc].to_numpy())
        floor = _rmse_offset(_three_point(seq, THREE[oc]), truth[oc].to_numpy())
        assert err <= floor, (oc, err, floor)


def test_the_command_line_fits_as_the_api_does(command_line):
    """``medpose fit --patient`` and ``mp.fit`` with the same patient file: the same angles."""
    _, pat, _, csv = command_line
    seq = mp.read_keypoints(DATA / "pose2sim_random.trc")
    f = mp.fit(seq, mp.PatientSkeleton.load(pat), progress=False)
    table = pd.read_csv(csv)
    for dof in ("knee_flexion_r", "elbow_flexion_l", "hip_flexion_r", "pelvis_tilt"):
        np.testing.assert_allclose(table[dof], f.angles[dof].to_numpy(), atol=1e-6)
