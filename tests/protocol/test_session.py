"""The session model: loading a valid session, its readers, writing session.yaml."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import yaml

import medpose as mp
import medpose.protocol.validate as validate_module
from medpose.data import KeypointSequence, Landmarks
from medpose.errors import ProtocolError
from medpose.protocol import Problem, Session, validate_session, write_session_yaml
from medpose.protocol import session as legacy


def test_public_names_stay_importable():
    assert mp.Session is Session and mp.validate_session is validate_session
    assert legacy.Session is Session and legacy.validate_session is validate_session
    assert legacy.write_session_yaml is write_session_yaml and legacy.Problem is Problem
    for name in ("Trial", "Patient", "Imaging", "SessionSchema", "PatientSchema", "TrialSchema"):
        assert hasattr(legacy, name)
    assert legacy.SESSION_FILE == "session.yaml"


def test_valid_session_loads(session_dir, helpers):
    assert validate_session(session_dir) == []
    s = Session.load(session_dir)
    assert s.root == session_dir
    assert s.date == dt.date(2026, 11, 25) and s.side_of_interest == "right"
    assert s.patient.id == helpers.PATIENT_ID
    assert s.patient.sex == "female" and s.patient.height_mm == 1680
    assert [t.name for t in s.trials] == ["static", "shoulder_abduction"]
    assert s.calibration_path == session_dir / "calibration" / "calibration.toml"
    assert s.imaging.volume == session_dir / "imaging" / "ct.nii.gz"
    assert Session.load(session_dir / "session.yaml").trials == s.trials  # the yaml path works too


def test_load_reads_session_yaml_once(session_dir, monkeypatch):
    calls = []
    real = validate_module.read_session_document

    def counting(root, file):
        calls.append(file)
        return real(root, file)

    monkeypatch.setattr(validate_module, "read_session_document", counting)
    monkeypatch.setattr(yaml, "safe_load", None)  # no second parse through yaml.safe_load
    Session.load(session_dir)
    assert calls == [session_dir / "session.yaml"]


def test_session_readers(session_dir):
    s = Session.load(session_dir)
    vol = s.read_volume()
    np.testing.assert_allclose(vol.spacing, [0.8, 0.8, 2.0])
    lm = s.read_landmarks()
    assert isinstance(lm, Landmarks) and lm.frame == "LPS"
    np.testing.assert_allclose(lm["asis_r"], [-120.5, 40, 900])
    assert [c.name for c in s.read_calibration()] == ["cam01", "cam02"]
    static = s.trial("static").read_keypoints()
    assert isinstance(static, KeypointSequence) and static.ndim == 3 and static.rate == 100
    np.testing.assert_allclose(static["ankle_r"][:, 2], [200, 250, 300])  # m -> mm
    abd = s.trial("shoulder_abduction")
    views = abd.read_camera_keypoints()
    assert set(views) == {"cam01", "cam02"}
    assert views["cam02"].frame == "cam02" and views["cam02"].rate == 30
    assert views["cam02"].ndim == 2 and views["cam01"].positions.shape == (4, 25, 2)
    with pytest.raises(ProtocolError, match="trial 'shoulder_abduction' has no 3D keypoint file"):
        abd.read_keypoints()
    assert s.trial("static").read_camera_keypoints() == {}
    with pytest.raises(KeyError, match="trial 'nope' not found"):
        s.trial("nope")


def test_trial_with_keypoints_and_cameras_takes_rate_from_3d_file(session_dir, helpers):
    doc = helpers.session_dict()
    doc["trials"][1]["keypoints"] = "trials/static.trc"
    del doc["trials"][1]["rate_hz"]
    helpers.rewrite(session_dir, doc)
    assert validate_session(session_dir) == []
    views = Session.load(session_dir).trial("shoulder_abduction").read_camera_keypoints()
    assert views["cam01"].rate == 100


def test_missing_optional_parts(session_dir, helpers):
    doc = helpers.session_dict()
    del doc["imaging"]
    doc["trials"] = doc["trials"][:1]
    del doc["calibration"]
    helpers.rewrite(session_dir, doc)
    s = Session.load(session_dir)
    for call in (s.read_volume, s.read_landmarks, s.read_calibration):
        with pytest.raises(ProtocolError, match="session has no"):
            call()


def test_patient_id_never_shown(session_dir, helpers):
    s = Session.load(session_dir)
    for obj in (s, s.patient, s.imaging, *s.trials):
        assert helpers.PATIENT_ID not in repr(obj) and str(session_dir) not in repr(obj)
    assert repr(s.trials[0]) == (
        "Trial('static', kind='static', keypoints='static.trc', cameras=[], rate_hz=None)"
    )
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = "static.trc"
    (session_dir / "static.trc").write_text("garbage\n")
    helpers.rewrite(session_dir, doc)
    with pytest.raises(ProtocolError) as e:
        Session.load(session_dir)
    assert "static.trc" in str(e.value) and helpers.PATIENT_ID not in str(e.value)
    assert str(session_dir.parent) not in str(e.value)


def test_load_lists_every_problem(session_dir, helpers):
    doc = helpers.session_dict()
    del doc["date"]
    doc["trials"][0]["keypoints"] = "trials/missing.trc"
    helpers.rewrite(session_dir, doc)
    with pytest.raises(ProtocolError) as e:
        Session.load(session_dir)
    text = str(e.value)
    assert "invalid session (2 problem(s))" in text
    assert "session.yaml: date: required field is missing" in text
    assert "trials/missing.trc: trials[0].keypoints: file not found" in text


def test_missing_session_yaml(tmp_path):
    with pytest.raises(ProtocolError, match=r"session\.yaml: not found in the session folder"):
        Session.load(tmp_path)


def test_patient_id_may_be_a_number(session_dir, helpers):
    doc = helpers.session_dict()
    doc["patient"]["id"] = 12345
    helpers.rewrite(session_dir, doc)
    assert Session.load(session_dir).patient.id == "12345"


# ------------------------------------------------------------------------ writing
def test_write_session_yaml_roundtrip(tmp_path, helpers):
    path = write_session_yaml(helpers.session_dict(), tmp_path / "s")
    assert path == tmp_path / "s" / "session.yaml"
    text = path.read_text()
    assert "date: 2026-11-25\n" in text and "height_mm: 1680\n" in text and "rate_hz: 30\n" in text
    back = yaml.safe_load(text)
    assert back["trials"][1]["cameras"]["cam02"] == "trials/shoulder_abduction/cam02_json"
    assert back["date"] == dt.date(2026, 11, 25)
    assert [p.name for p in path.parent.iterdir()] == ["session.yaml"]
    problems = validate_session(path.parent, check_files=False)
    assert problems and all(
        p.message in ("file not found", "folder not found") for p in problems
    )  # files absent, schema fine


def test_written_id_with_leading_zeros_reads_back_as_written(tmp_path, helpers):
    doc = helpers.session_dict()
    doc["patient"]["id"] = "00123456"
    root = helpers.make_session(tmp_path / "s", doc)
    assert Session.load(root).patient.id == "00123456"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["trials"][0].update(keypoints="/abs/static.trc"),
            "an absolute path (ending in 'static.trc'): absolute paths are not allowed",
        ),
        (
            lambda d: d["trials"][0].update(keypoints="trials/../../x.trc"),
            "'trials/../../x.trc': path leaves the session folder",
        ),
        (
            lambda d: d["imaging"].update(volume="C:\\data\\ct.nii"),
            "absolute paths are not allowed",
        ),
        (lambda d: d["patient"].update(sex="x"), "patient.sex: found 'x', expected"),
        (lambda d: d.pop("trials"), "trials: required field is missing"),
    ],
)
def test_write_session_yaml_refuses_bad_content(tmp_path, helpers, mutate, message):
    doc = helpers.session_dict()
    mutate(doc)
    with pytest.raises(ProtocolError) as e:
        write_session_yaml(doc, tmp_path / "session.yaml")
    assert message in str(e.value)
    assert helpers.PATIENT_ID not in str(e.value) and "/abs" not in str(e.value)
    assert not (tmp_path / "session.yaml").exists()


def test_write_session_yaml_scrubs_the_id_from_unknown_keys(tmp_path, helpers):
    doc = helpers.session_dict()
    doc["patient"][helpers.PATIENT_ID] = True
    with pytest.raises(ProtocolError) as e:
        write_session_yaml(doc, tmp_path)
    assert "patient.<patient-id>: unknown field" in str(e.value)
    assert helpers.PATIENT_ID not in str(e.value)


# ------------------------------------------------------------------------ real data
def test_real_pose2sim_recording_as_session(shared_data, tmp_path):
    """The real four-camera Pose2Sim calibration and MediaPipe keypoints, laid out as a session.

    (Copied into the session folder: symbolic links to ../shared/data would be refused.)
    """
    src = shared_data / "pose2sim"
    root = tmp_path / "real"
    (root / "calibration").mkdir(parents=True)
    shutil.copy(src / "Calib_qualisys.toml", root / "calibration" / "calibration.toml")
    cams = {}
    for n in (1, 2, 3, 4):
        name = f"cam{n:02d}"
        shutil.copytree(
            src / "keypoints-mediapipe" / f"{name}_json", root / "trials" / "demo" / f"{name}_json"
        )
        cams[name] = f"trials/demo/{name}_json"
    write_session_yaml(
        {
            "medpose_session": 1,
            "patient": {"id": "REAL-01"},
            "date": "2022-01-01",
            "calibration": "calibration/calibration.toml",
            "trials": [{"name": "demo", "kind": "exercise", "rate_hz": 60, "cameras": cams}],
        },
        root,
    )
    assert validate_session(root) == []
    s = Session.load(root)
    views = s.trial("demo").read_camera_keypoints()
    assert sorted(views) == ["cam01", "cam02", "cam03", "cam04"]
    for name, seq in views.items():
        assert seq.frame == name and seq.rate == 60 and seq.n_frames == 100 and seq.ndim == 2
    calib = {c.name: c for c in s.read_calibration()}
    # detections lie in the calibrated image (1088 x 1920 portrait), give or take off-image guesses
    xy = views["cam01"].positions[views["cam01"].confidence > 0.5]
    width, height = calib["cam01"].size
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    assert inside.mean() > 0.95
    # a camera renamed in the calibration no longer matches the trial
    text = (
        (root / "calibration" / "calibration.toml")
        .read_text()
        .replace('name = "cam04"', 'name = "cam09"')
    )
    (root / "calibration" / "calibration.toml").write_text(text)
    (p,) = validate_session(root)
    assert p.field == "trials[0].cameras" and "['cam04'] are not in the calibration" in p.message
    # the real folders were symbolic links to the shared data: refused
    shutil.rmtree(root / "trials" / "demo" / "cam01_json")
    (root / "trials" / "demo" / "cam01_json").symlink_to(src / "keypoints-mediapipe" / "cam01_json")
    assert any(
        p.field == "trials[0].cameras.cam01" and "outside the session folder" in p.message
        for p in validate_session(root)
    )
