from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from medpose.camera import Camera
from medpose.data import KeypointSequence, Landmarks
from medpose.errors import ProtocolError
from medpose.io.calibration import write_calibration
from medpose.protocol import Problem, Session, validate_session, write_session_yaml
from medpose.protocol import session as session_module

PATIENT_ID = "SYN-4711"

TRC = """PathFileType\t4\t(X/Y/Z)\tstatic.trc
DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames
100\t100\t3\t2\tm\t100\t1\t3
Frame#\tTime\tknee_r\t\t\tankle_r
\t\tX1\tY1\tZ1\tX2\tY2\tZ2

1\t0.00\t0.1\t0.5\t0.2\t0.1\t0.1\t0.2
2\t0.01\t0.1\t0.5\t0.2\t0.1\t0.1\t0.25
3\t0.02\t0.1\t0.5\t0.2\t0.1\t0.1\t0.3
"""


def _session_dict() -> dict:
    return {
        "medpose_session": 1,
        "patient": {
            "id": PATIENT_ID,
            "sex": "female",
            "age_years": 54,
            "height_mm": 1680,
            "mass_kg": 64,
        },
        "date": dt.date(2026, 11, 25),
        "side_of_interest": "right",
        "imaging": {"volume": "imaging/ct.nii.gz", "landmarks": "imaging/landmarks.csv"},
        "calibration": "calibration/calibration.toml",
        "trials": [
            {"name": "static", "kind": "static", "keypoints": "trials/static.trc"},
            {
                "name": "shoulder_abduction",
                "kind": "exercise",
                "exercise": "shoulder_abduction",
                "rate_hz": 30,
                "cameras": {
                    "cam01": "trials/shoulder_abduction/cam01_json",
                    "cam02": "trials/shoulder_abduction/cam02_json",
                },
            },
        ],
    }


def _write_openpose(folder: Path, n_frames: int = 4, seed: int = 0) -> np.ndarray:
    """BODY_25 OpenPose JSON files (25 keypoints x (x, y, c)); returns the (T, 25, 2) pixels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, 600, size=(n_frames, 25, 2))
    for t in range(n_frames):
        flat = np.column_stack([xy[t], np.full(25, 0.9)]).reshape(-1).tolist()
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat}]}
        (folder / f"{folder.name[:-5]}_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    return xy


def _make_session(root: Path, doc: dict | None = None) -> Path:
    """A small valid session folder written with plain files (no medpose writers except calibration)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "imaging").mkdir()
    img = sitk.Image(6, 5, 4, sitk.sitkInt16)
    img.SetSpacing((0.8, 0.8, 2.0))
    img.SetOrigin((-10.0, 20.0, 5.0))
    sitk.WriteImage(img, str(root / "imaging" / "ct.nii.gz"))
    (root / "imaging" / "landmarks.csv").write_text(
        "name,x,y,z\nasis_r,-120.5,40,900\nasis_l,110,42.5,901\n"
    )
    k = [[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]]
    write_calibration(
        [
            Camera("cam01", (640, 480), k, translation=[0, 0, 3000]),
            Camera("cam02", (640, 480), k, rotation=[0, 0.5, 0], translation=[-1500, 0, 3000]),
        ],
        root / "calibration" / "calibration.toml",
    )
    (root / "trials").mkdir()
    (root / "trials" / "static.trc").write_text(TRC)
    _write_openpose(root / "trials" / "shoulder_abduction" / "cam01_json", seed=1)
    _write_openpose(root / "trials" / "shoulder_abduction" / "cam02_json", seed=2)
    write_session_yaml(_session_dict() if doc is None else doc, root)
    return root


@pytest.fixture
def session_dir(tmp_path) -> Path:
    # The folder is named after the patient on purpose: messages must still not show the id.
    return _make_session(tmp_path / PATIENT_ID)


def _rewrite(root: Path, doc: dict) -> None:
    """Write session.yaml without the schema check of write_session_yaml."""
    (root / "session.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _assert_no_id(problems: list[Problem]) -> None:
    for p in problems:
        assert PATIENT_ID not in str(p)


# ------------------------------------------------------------------------ a valid session
def test_valid_session_loads(session_dir):
    assert validate_session(session_dir) == []
    s = Session.load(session_dir)
    assert s.root == session_dir
    assert s.date == dt.date(2026, 11, 25) and s.side_of_interest == "right"
    assert s.patient.id == PATIENT_ID and s.patient.sex == "female" and s.patient.height_mm == 1680
    assert [t.name for t in s.trials] == ["static", "shoulder_abduction"]
    assert s.calibration_path == session_dir / "calibration" / "calibration.toml"
    assert s.imaging.volume == session_dir / "imaging" / "ct.nii.gz"
    assert Session.load(session_dir / "session.yaml").trials == s.trials  # the yaml path works too


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
    assert (
        views["cam02"].frame == "cam02" and views["cam02"].rate == 30 and views["cam02"].ndim == 2
    )
    assert views["cam01"].positions.shape == (4, 25, 2)
    with pytest.raises(ProtocolError, match="trial 'shoulder_abduction' has no 3D keypoint file"):
        abd.read_keypoints()
    assert s.trial("static").read_camera_keypoints() == {}
    with pytest.raises(KeyError, match="trial 'nope' not found"):
        s.trial("nope")


def test_trial_with_keypoints_and_cameras_takes_rate_from_3d_file(session_dir):
    doc = _session_dict()
    doc["trials"][1]["keypoints"] = "trials/static.trc"
    del doc["trials"][1]["rate_hz"]
    _rewrite(session_dir, doc)
    assert validate_session(session_dir) == []
    views = Session.load(session_dir).trial("shoulder_abduction").read_camera_keypoints()
    assert views["cam01"].rate == 100


def test_missing_optional_parts(session_dir):
    s = Session.load(session_dir)
    doc = _session_dict()
    del doc["imaging"]
    doc["trials"] = doc["trials"][:1]
    del doc["calibration"]
    _rewrite(session_dir, doc)
    s = Session.load(session_dir)
    for call in (s.read_volume, s.read_landmarks, s.read_calibration):
        with pytest.raises(ProtocolError, match="session has no"):
            call()


def test_patient_id_never_shown(session_dir):
    s = Session.load(session_dir)
    assert PATIENT_ID not in repr(s) and PATIENT_ID not in repr(s.patient)
    # a reader error whose message carries the folder name (named after the patient) is scrubbed
    (session_dir / "session.yaml").rename(session_dir / "keep.yaml")
    doc = _session_dict()
    doc["trials"][0]["keypoints"] = "static.trc"
    (session_dir / "static.trc").write_text("garbage\n")
    _rewrite(session_dir, doc)
    problems = validate_session(session_dir)
    assert any(p.field == "trials[0].keypoints" for p in problems)
    _assert_no_id(problems)
    with pytest.raises(ProtocolError) as e:
        Session.load(session_dir)
    assert PATIENT_ID not in str(e.value)


# ------------------------------------------------------------------------ problems, all at once
def test_all_problems_are_collected(session_dir, tmp_path):
    outside = tmp_path / "outside.trc"
    outside.write_text(TRC)
    os.symlink(outside, session_dir / "trials" / "link.trc")
    doc = _session_dict()
    del doc["date"]
    doc["patient"]["sex"] = "f"
    doc["imaging"]["volume"] = "/etc/passwd"
    doc["imaging"]["landmarks"] = "../outside.trc"
    doc["trials"] = [
        {"name": "static", "kind": "static", "keypoints": "trials/link.trc"},
        {
            "name": "abd",
            "kind": "exercise",
            "cameras": {
                "cam01": "trials/shoulder_abduction/cam01_json",
                "cam09": "trials/shoulder_abduction/cam09_json",
            },
        },
        {"name": "abd", "kind": "exercise", "keypoints": "trials/missing.trc"},
    ]
    _rewrite(session_dir, doc)
    problems = validate_session(session_dir)
    text = [str(p) for p in problems]
    expect = [
        ("session.yaml", "date", "required field is missing"),
        ("session.yaml", "patient.sex", "Input should be 'female', 'male' or 'unknown'"),
        ("session.yaml", "trials[1]", "'rate_hz' is required when only 'cameras' are given"),
        ("session.yaml", "trials", "trial names must be unique; repeated: ['abd']"),
        ("session.yaml", "imaging.volume", "absolute paths are not allowed"),
        ("session.yaml", "imaging.landmarks", "path leaves the session folder"),
        ("session.yaml", "trials[0].keypoints", "symbolic link"),
        ("session.yaml", "trials[1].cameras", "camera(s) ['cam09'] are not in the calibration"),
        ("trials/shoulder_abduction/cam09_json", "trials[1].cameras.cam09", "folder not found"),
        ("trials/missing.trc", "trials[2].keypoints", "file not found"),
    ]
    for file, field, msg in expect:
        assert any(p.file == file and p.field == field and msg in p.message for p in problems), (
            file,
            field,
            msg,
            text,
        )
    assert len(problems) == len(expect), text
    _assert_no_id(problems)
    with pytest.raises(ProtocolError) as e:
        Session.load(session_dir)
    assert f"{len(expect)} problem(s)" in str(e.value)
    assert all(p in str(e.value) for p in text)


def test_reader_errors_pass_through_with_file_name(session_dir):
    (session_dir / "trials" / "static.trc").write_text("PathFileType\t4\n")
    (session_dir / "imaging" / "landmarks.csv").write_text("name,x,y\nasis_r,1,2\n")
    (session_dir / "calibration" / "calibration.toml").write_text("[cam01]\nname = 'cam01'\n")
    f = (
        session_dir
        / "trials"
        / "shoulder_abduction"
        / "cam02_json"
        / "cam02_000000000001_keypoints.json"
    )
    f.write_text("{not json")
    problems = {p.file: p for p in validate_session(session_dir)}
    assert set(problems) == {
        "trials/static.trc",
        "imaging/landmarks.csv",
        "calibration/calibration.toml",
        "trials/shoulder_abduction/cam02_json",
    }
    assert problems["trials/static.trc"].field == "trials[0].keypoints"
    assert "static.trc" in problems["trials/static.trc"].message
    assert "missing field(s)" in problems["calibration/calibration.toml"].message
    assert "not valid JSON" in problems["trials/shoulder_abduction/cam02_json"].message
    assert problems["trials/shoulder_abduction/cam02_json"].field == "trials[1].cameras.cam02"


def test_corrupt_volume_is_reported(session_dir):
    (session_dir / "imaging" / "ct.nii.gz").write_bytes(b"not an image")
    (p,) = validate_session(session_dir)
    assert p.file == "imaging/ct.nii.gz" and p.field == "imaging.volume"


def test_check_files_false_skips_readers_but_not_paths(session_dir):
    (session_dir / "trials" / "static.trc").write_text("garbage")
    assert validate_session(session_dir, check_files=False) == []
    (session_dir / "trials" / "static.trc").unlink()
    (p,) = validate_session(session_dir, check_files=False)
    assert (p.file, p.message) == ("trials/static.trc", "file not found")


def test_symlink_inside_folder_is_allowed(session_dir):
    os.symlink(session_dir / "trials" / "static.trc", session_dir / "trials" / "alias.trc")
    doc = _session_dict()
    doc["trials"][0]["keypoints"] = "trials/alias.trc"
    _rewrite(session_dir, doc)
    assert validate_session(session_dir) == []


def test_unavailable_reader_is_a_problem(session_dir, monkeypatch):
    def no_reader(path):
        raise ImportError("No module named 'medpose.imaging.volume'")

    monkeypatch.setattr(session_module, "_read_volume", no_reader)
    (p,) = validate_session(session_dir)
    assert p.file == "imaging/ct.nii.gz" and "reader is not available" in p.message


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda d: d.update(medpose_session=2), "medpose_session", "Input should be 1"),
        (lambda d: d.update(colour="blue"), "colour", "unknown field"),
        (lambda d: d["patient"].pop("id"), "patient.id", "required field is missing"),
        (lambda d: d["patient"].update(id=""), "patient.id", "at least 1 character"),
        (
            lambda d: d["patient"].update(height_mm=40),
            "patient.height_mm",
            "greater than or equal to 500",
        ),
        (
            lambda d: d["patient"].update(mass_kg=1000),
            "patient.mass_kg",
            "less than or equal to 400",
        ),
        (lambda d: d.update(date="25.11.2026"), "date", "valid date"),
        (
            lambda d: d.update(side_of_interest="up"),
            "side_of_interest",
            "'left', 'right' or 'both'",
        ),
        (lambda d: d.update(trials=[]), "trials", "at least 1 item"),
        (lambda d: d["trials"][0].update(name="a b"), "trials[0].name", "should match pattern"),
        (
            lambda d: d["trials"][0].update(kind="dynamic"),
            "trials[0].kind",
            "'static' or 'exercise'",
        ),
        (lambda d: d["trials"][0].pop("keypoints"), "trials[0]", "a trial needs 'keypoints'"),
        (lambda d: d["trials"][1].update(rate_hz=-30), "trials[1].rate_hz", "greater than 0"),
        (lambda d: d["trials"][1].update(rate_Hz=30), "trials[1].rate_Hz", "unknown field"),
        (
            lambda d: d.pop("calibration"),
            "",
            "'calibration' is required because a trial has 'cameras'",
        ),
    ],
)
def test_schema_problems(session_dir, mutate, field, message):
    doc = _session_dict()
    mutate(doc)
    _rewrite(session_dir, doc)
    problems = [p for p in validate_session(session_dir) if p.file == "session.yaml"]
    assert any(p.field == field and message in p.message for p in problems), [
        str(p) for p in problems
    ]
    _assert_no_id(problems)


def test_patient_id_may_be_a_number(session_dir):
    doc = _session_dict()
    doc["patient"]["id"] = 12345
    _rewrite(session_dir, doc)
    assert Session.load(session_dir).patient.id == "12345"


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: [1, 2\n", "line 2: not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping of fields"),
        ("", "expected a mapping of fields"),
    ],
)
def test_unreadable_session_yaml(session_dir, text, message):
    (session_dir / "session.yaml").write_text(text)
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml" and message in p.message


def test_missing_session_yaml(tmp_path):
    (p,) = validate_session(tmp_path)
    assert p.file == "session.yaml" and "not found" in p.message
    (p,) = validate_session(tmp_path / "nope")
    assert "the folder does not exist" in p.message
    with pytest.raises(ProtocolError, match="session.yaml: not found"):
        Session.load(tmp_path)


# ------------------------------------------------------------------------ writing
def test_write_session_yaml_roundtrip(tmp_path):
    path = write_session_yaml(_session_dict(), tmp_path / "s")
    assert path == tmp_path / "s" / "session.yaml"
    text = path.read_text()
    assert "date: 2026-11-25\n" in text and "height_mm: 1680\n" in text and "rate_hz: 30\n" in text
    back = yaml.safe_load(text)
    assert back["trials"][1]["cameras"]["cam02"] == "trials/shoulder_abduction/cam02_json"
    assert back["date"] == dt.date(2026, 11, 25)
    assert [p.name for p in path.parent.iterdir()] == ["session.yaml"]
    assert validate_session(path.parent, check_files=False) != []  # files absent, schema fine
    assert all(
        p.message == "file not found" or "folder not found" in p.message
        for p in validate_session(path.parent, check_files=False)
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["trials"][0].update(keypoints="/abs/static.trc"),
            "absolute paths are not allowed",
        ),
        (
            lambda d: d["trials"][0].update(keypoints="trials/../../x.trc"),
            "path leaves the session folder",
        ),
        (
            lambda d: d["imaging"].update(volume="C:\\data\\ct.nii"),
            "absolute paths are not allowed",
        ),
        (lambda d: d["patient"].update(sex="x"), "patient.sex"),
        (lambda d: d.pop("trials"), "trials: required field is missing"),
    ],
)
def test_write_session_yaml_refuses_bad_content(tmp_path, mutate, message):
    doc = _session_dict()
    mutate(doc)
    with pytest.raises(ProtocolError) as e:
        write_session_yaml(doc, tmp_path / "session.yaml")
    assert message in str(e.value)
    assert PATIENT_ID not in str(e.value)
    assert not (tmp_path / "session.yaml").exists()


def test_dotdot_that_stays_inside_is_allowed(session_dir):
    doc = _session_dict()
    doc["trials"][0]["keypoints"] = "imaging/../trials/static.trc"
    _rewrite(session_dir, doc)
    assert validate_session(session_dir) == []


def test_short_patient_id_scrubbed_as_whole_word_only(session_dir):
    doc = _session_dict()
    doc["patient"]["id"] = "7"
    doc["trials"][0]["keypoints"] = "trials/7/missing.trc"
    doc["trials"][1]["cameras"]["cam07"] = "trials/shoulder_abduction/cam07_json"
    _rewrite(session_dir, doc)
    text = [str(p) for p in validate_session(session_dir)]
    assert "trials/<patient-id>/missing.trc: trials[0].keypoints: file not found" in text
    assert any("camera(s) ['cam07'] are not in the calibration" in t for t in text)


def test_wrong_path_type_reported_once(session_dir):
    doc = _session_dict()
    doc["trials"][0]["keypoints"] = 42
    _rewrite(session_dir, doc)
    (p,) = validate_session(session_dir)
    assert (p.file, p.field, p.message) == (
        "session.yaml",
        "trials[0].keypoints",
        "Input should be a valid string",
    )


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
