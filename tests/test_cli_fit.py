"""``medpose calibrate`` and ``medpose fit`` as a Pose2Sim / OpenSim user runs them: markers that
OpenSim generated from Pose2Sim's model (``tests/data/opensim``, 200 frames, no noise, with the
generating coordinates), a patient skeleton file, and a ``.mot`` on Pose2Sim's coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medpose as mp
from medpose.cli import main

DATA = Path(__file__).resolve().parent / "data" / "opensim"
TRC = DATA / "pose2sim_random.trc"
THREE = {  # OpenSim coordinate: the markers of its plain three-point angle (medpose's names)
    "knee_angle_r": ("hip_r", "knee_r", "ankle_r"),
    "knee_angle_l": ("hip_l", "knee_l", "ankle_l"),
    "elbow_flex_r": ("shoulder_r", "elbow_r", "wrist_r"),
    "elbow_flex_l": ("shoulder_l", "elbow_l", "wrist_l"),
}


def _rmse_offset(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d - np.nanmean(d)
    return float(np.sqrt(np.nanmean(d**2)))


def _three_point(seq: mp.KeypointSequence, names: tuple[str, str, str]) -> np.ndarray:
    p, c, d = (seq.positions[:, list(seq.names).index(n)] for n in names)
    u, v = p - c, d - c
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    return 180.0 - np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """``medpose calibrate`` with Pose2Sim's marker model, then ``medpose fit --patient``."""
    d = tmp_path_factory.mktemp("cli_fit")
    pat, mot, csv = d / "patient.yaml", d / "trial.mot", d / "trial.csv"
    code_cal = main(
        [
            "calibrate",
            str(TRC),
            str(pat),
            "--keypoint-model",
            "pose2sim_halpe26",
            "--patient-id",
            "SECRET-4711",
        ]
    )
    code_fit = main(["fit", str(TRC), "--patient", str(pat), "-o", str(mot), "-o", str(csv)])
    return code_cal, code_fit, pat, mot, csv


def test_calibrate_writes_a_patient_file_the_api_reads(calibrated):
    code_cal, _, pat, _, _ = calibrated
    assert code_cal == 0
    patient = mp.PatientSkeleton.load(pat)
    assert patient.keypoint_model == "pose2sim_halpe26"
    assert patient.patient_id == "SECRET-4711"  # stored in the file


def test_the_mot_follows_opensims_coordinates(calibrated):
    """The ``.mot`` holds Pose2Sim's coordinates (OpenSim's names and signs): knee and elbow
    flexion, offset removed, no further from the coordinates that generated the markers than
    the plain three-point angle of the same markers (the floor the calibration is held to)."""
    _, code_fit, _, mot, _ = calibrated
    assert code_fit == 0
    got = mp.read_mot(mot)
    truth = pd.read_csv(DATA / "pose2sim_random_truth.csv")
    pts = mp.read_keypoints(TRC)  # the three-point angles on the same markers
    for oc, m3 in THREE.items():
        col = np.asarray(got.values)[:, list(got.names).index(oc)]
        err = _rmse_offset(col, truth[oc])
        floor = _rmse_offset(_three_point(pts, m3), truth[oc])
        assert err <= floor, (oc, err, floor)


def test_the_command_line_fits_as_the_api_does(calibrated):
    """``medpose fit --patient`` and ``mp.fit`` with the same patient file: the same angles."""
    _, _, pat, _, csv = calibrated
    seq = mp.read_keypoints(TRC)
    f = mp.fit(seq, mp.PatientSkeleton.load(pat), progress=False)
    table = pd.read_csv(csv)
    for dof in ("knee_flexion_r", "elbow_flexion_l", "hip_flexion_r", "pelvis_tilt"):
        np.testing.assert_allclose(table[dof], f.angles[dof].to_numpy(), atol=1e-6)


def test_the_patient_id_is_never_printed(tmp_path, capsys):
    pat = tmp_path / "p.json"
    code = main(["calibrate", str(TRC), str(pat), "--patient-id", "SECRET-4711"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "SECRET" not in out.out + out.err
    assert "determined" in out.out and f"wrote {pat}" in out.out
    assert json.loads(pat.read_text())["patient_id"] == "SECRET-4711"
    code = main(["fit", str(TRC), "--patient", str(pat), "-o", str(tmp_path / "a.parquet")])
    out = capsys.readouterr()
    assert code == 0 and "SECRET" not in out.out + out.err
    assert "Fit(200 frames" in out.out
    assert len(pd.read_parquet(tmp_path / "a.parquet")) == 200


def test_a_patient_file_of_another_patient_is_refused(calibrated, tmp_path, capsys):
    pat = calibrated[2]
    code = main(
        [
            "fit",
            str(TRC),
            "--patient",
            str(pat),
            "--patient-id",
            "OTHER-0815",
            "-o",
            str(tmp_path / "a.mot"),
        ]
    )
    out = capsys.readouterr()
    assert code == 1 and "belongs to another patient" in out.err
    assert "SECRET" not in out.out + out.err and "OTHER" not in out.out + out.err
    assert not (tmp_path / "a.mot").exists()


def _openpose_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(3):
        person = {
            "pose_keypoints_2d": [float(v) for _ in range(26) for v in (100.0 + i, 200.0, 0.9)]
        }
        (root / f"cam01_{i:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": [person]})
        )
    return root


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{trc}", "-o", "{d}/a.txt"], "--out: expected a .mot, .csv, .parquet file"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--rate", "30"], "has its own frame rate"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--model", "nosuch"], "OpenSim model 'nosuch'"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--osim", "{d}/no.osim"], "--osim: no.osim"),
        (["fit", "{trc}", "-o", "{d}/a.csv", "--smoothness", "-1"], "--smoothness"),
        (["fit", "{d}/missing.trc", "-o", "{d}/a.mot"], "missing.trc: file not found"),
        (["fit", "{pose}", "-o", "{d}/a.mot", "--rate", "30"], "2D keypoints; expected 3D"),
        (["fit", "{trc}", "--patient", "{d}/none.yaml", "-o", "{d}/a.mot"], "none.yaml"),
        (["fit", "{trc}", "--patient-id", "X-1", "-o", "{d}/a.mot"], "--patient-id: applies"),
        (["calibrate", "{trc}", "{d}/p.txt"], "OUT: expected a .yaml, .yml or .json file"),
        (["calibrate", "{pose}", "{d}/p.yaml", "--rate", "30"], "triangulate"),
    ],
)
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, args, message):
    """Each refusal names the option or file and what was expected, exits 1, prints no fit and
    writes nothing."""
    pose = _openpose_folder(tmp_path / "cam01_json")
    argv = [a.format(trc=TRC, d=tmp_path, pose=pose) for a in args]
    code = main(argv)
    out = capsys.readouterr()
    assert code == 1
    assert message in out.err, out.err
    assert "Fit(" not in out.out and "Traceback" not in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam01_json"]
