"""validate_session: every problem at once, with the file, the field, found and expected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import medpose.protocol.validate as validate_module
from medpose.errors import ProtocolError
from medpose.protocol import Problem, Session, validate_session
from medpose.protocol.problems import Redactor


def _assert_clean(problems: list[Problem], helpers, session_dir) -> None:
    """No problem carries the patient id or a folder above the session folder."""
    for p in problems:
        assert helpers.PATIENT_ID not in str(p), str(p)
        assert str(session_dir.parent) not in str(p), str(p)


def test_all_problems_are_collected(session_dir, tmp_path, helpers):
    outside = tmp_path / "outside.trc"
    outside.write_text(helpers.TRC)
    os.symlink(outside, session_dir / "trials" / "link.trc")
    doc = helpers.session_dict()
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
    helpers.rewrite(session_dir, doc)
    problems = validate_session(session_dir)
    text = [str(p) for p in problems]
    expect = [
        ("session.yaml", "date", "required field is missing"),
        ("session.yaml", "patient.sex", "found 'f', expected 'female', 'male' or 'unknown'"),
        ("session.yaml", "trials[1]", "'rate_hz' is required when only 'cameras' are given"),
        ("session.yaml", "trials", "trial names must be unique; repeated: ['abd']"),
        (
            "session.yaml",
            "imaging.volume",
            "an absolute path (ending in 'passwd'): absolute paths are not allowed",
        ),
        ("session.yaml", "imaging.landmarks", "'../outside.trc': path leaves the session folder"),
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
    _assert_clean(problems, helpers, session_dir)
    assert not any("/etc" in t for t in text)
    with pytest.raises(ProtocolError) as e:
        Session.load(session_dir)
    assert f"{len(expect)} problem(s)" in str(e.value)
    assert all(p in str(e.value) for p in text)


def test_reader_errors_pass_through_with_file_name(session_dir, helpers):
    (session_dir / "trials" / "static.trc").write_text("PathFileType\t4\n")
    (session_dir / "imaging" / "landmarks.csv").write_text("name,x,y\nasis_r,1,2\n")
    (session_dir / "calibration" / "calibration.toml").write_text("[cam01]\nname = 'cam01'\n")
    cam02 = session_dir / "trials" / "shoulder_abduction" / "cam02_json"
    (cam02 / "cam02_000000000001_keypoints.json").write_text("{not json")
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
    assert "JSON" in problems["trials/shoulder_abduction/cam02_json"].message
    assert problems["trials/shoulder_abduction/cam02_json"].field == "trials[1].cameras.cam02"
    _assert_clean(list(problems.values()), helpers, session_dir)


def test_corrupt_volume_is_reported(session_dir, helpers):
    (session_dir / "imaging" / "ct.nii.gz").write_bytes(b"not an image")
    (p,) = validate_session(session_dir)
    assert p.file == "imaging/ct.nii.gz" and p.field == "imaging.volume"
    _assert_clean([p], helpers, session_dir)


def test_missing_frame_in_openpose_folder_is_reported(session_dir, helpers):
    cam01 = session_dir / "trials" / "shoulder_abduction" / "cam01_json"
    (cam01 / "cam01_000000000002_keypoints.json").unlink()
    (p,) = validate_session(session_dir)
    assert (p.file, p.field) == ("trials/shoulder_abduction/cam01_json", "trials[1].cameras.cam01")
    assert "missing" in p.message and "2" in p.message
    _assert_clean([p], helpers, session_dir)


def test_check_files_false_skips_readers_but_not_paths(session_dir):
    (session_dir / "trials" / "static.trc").write_text("garbage")
    assert validate_session(session_dir, check_files=False) == []
    (session_dir / "trials" / "static.trc").unlink()
    (p,) = validate_session(session_dir, check_files=False)
    assert (p.file, p.message) == ("trials/static.trc", "file not found")


def test_symlink_inside_folder_is_allowed(session_dir, helpers):
    os.symlink(session_dir / "trials" / "static.trc", session_dir / "trials" / "alias.trc")
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = "trials/alias.trc"
    helpers.rewrite(session_dir, doc)
    assert validate_session(session_dir) == []


def test_unavailable_reader_is_a_problem(session_dir, monkeypatch):
    def no_reader(path, **kw):
        raise ImportError("No module named 'SimpleITK'")

    monkeypatch.setattr(validate_module, "read_volume", no_reader)
    (p,) = validate_session(session_dir)
    assert p.file == "imaging/ct.nii.gz" and "reader is not available" in p.message


@pytest.mark.parametrize(
    "error",
    [
        KeyError("cams"),
        IndexError("list index out of range"),
        RecursionError("maximum recursion depth exceeded"),
        MemoryError(),
        AttributeError("'NoneType' object has no attribute 'x'"),
    ],
)
def test_unexpected_reader_error_is_a_problem(session_dir, helpers, monkeypatch, error):
    def broken(path, **kw):
        raise error

    monkeypatch.setattr(validate_module, "read_calibration", broken)
    (p,) = validate_session(session_dir)
    assert (p.file, p.field) == ("calibration/calibration.toml", "calibration")
    assert p.message.startswith(f"could not be read ({type(error).__name__}")


def test_reader_messages_lose_absolute_paths(session_dir, helpers, monkeypatch):
    where = session_dir / "calibration" / "calibration.toml"

    def leaky(path, **kw):
        raise OSError(f"cannot open {where} (see also /home/{helpers.PATIENT_ID}/notes.txt)")

    monkeypatch.setattr(validate_module, "read_calibration", leaky)
    (p,) = validate_session(session_dir)
    assert p.message == "cannot open calibration/calibration.toml (see also notes.txt)"
    (p,) = validate_session(session_dir, show_identifiers=True)
    assert helpers.PATIENT_ID in p.message and "calibration/calibration.toml" in p.message


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda d: d.update(medpose_session=2), "medpose_session", "found 2, expected 1"),
        (lambda d: d.update(colour="blue"), "colour", "unknown field"),
        (lambda d: d["patient"].pop("id"), "patient.id", "required field is missing"),
        (lambda d: d["patient"].update(id=""), "patient.id", "expected non-empty text"),
        (
            lambda d: d["patient"].update(id=["SYN-4711"]),
            "patient.id",
            "found a list, expected text",
        ),
        (
            lambda d: d["patient"].update(height_mm=40),
            "patient.height_mm",
            "found 40, expected a number >= 500",
        ),
        (
            lambda d: d["patient"].update(mass_kg=1000),
            "patient.mass_kg",
            "found 1000, expected a number <= 400",
        ),
        (
            lambda d: d["patient"].update(age_years="old"),
            "patient.age_years",
            "found 'old', expected a number",
        ),
        (
            lambda d: d.update(date="25.11.2026"),
            "date",
            "found '25.11.2026', expected a date YYYY-MM-DD",
        ),
        (
            lambda d: d.update(side_of_interest="up"),
            "side_of_interest",
            "found 'up', expected 'left', 'right' or 'both'",
        ),
        (lambda d: d.update(trials=[]), "trials", "found a list of 0, expected at least 1 item"),
        (lambda d: d.update(trials="static"), "trials", "found 'static', expected a list"),
        (lambda d: d.update(imaging=3), "imaging", "found 3, expected a mapping of fields"),
        (
            lambda d: d["trials"][0].update(name="a b"),
            "trials[0].name",
            "found 'a b', expected a name of letters, digits, '_' and '-' only",
        ),
        (
            lambda d: d["trials"][0].update(kind="dynamic"),
            "trials[0].kind",
            "found 'dynamic', expected 'static' or 'exercise'",
        ),
        (lambda d: d["trials"][0].pop("keypoints"), "trials[0]", "a trial needs 'keypoints'"),
        (
            lambda d: d["trials"][1].update(rate_hz=-30),
            "trials[1].rate_hz",
            "found -30, expected a number greater than 0",
        ),
        (lambda d: d["trials"][1].update(rate_Hz=30), "trials[1].rate_Hz", "unknown field"),
        (
            lambda d: d.pop("calibration"),
            "",
            "'calibration' is required because a trial has 'cameras'",
        ),
    ],
)
def test_schema_problems(session_dir, helpers, mutate, field, message):
    doc = helpers.session_dict()
    mutate(doc)
    helpers.rewrite(session_dir, doc)
    problems = [p for p in validate_session(session_dir) if p.file == "session.yaml"]
    assert any(p.field == field and message in p.message for p in problems), [
        str(p) for p in problems
    ]
    _assert_clean(problems, helpers, session_dir)


def test_long_values_are_echoed_shortened(session_dir, helpers):
    doc = helpers.session_dict()
    doc["side_of_interest"] = "x" * 500
    helpers.rewrite(session_dir, doc)
    (p,) = validate_session(session_dir)
    assert p.message.startswith("found 'xxx") and "..., expected" in p.message
    assert len(p.message) < 150


def test_patient_id_as_a_key_is_scrubbed_from_the_field(session_dir, helpers):
    doc = helpers.session_dict()
    doc["patient"][helpers.PATIENT_ID] = "oops"
    helpers.rewrite(session_dir, doc)
    (p,) = validate_session(session_dir)
    assert (p.field, p.message) == (
        "patient.<patient-id>",
        "unknown field (not in the session.yaml schema)",
    )
    (p,) = validate_session(session_dir, show_identifiers=True)
    assert p.field == f"patient.{helpers.PATIENT_ID}"


def test_patient_id_in_a_path_is_scrubbed(session_dir, helpers):
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = f"trials/{helpers.PATIENT_ID}.trc"
    helpers.rewrite(session_dir, doc)
    (p,) = validate_session(session_dir)
    assert str(p) == "trials/<patient-id>.trc: trials[0].keypoints: file not found"


def test_dotdot_that_stays_inside_is_allowed(session_dir, helpers):
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = "imaging/../trials/static.trc"
    helpers.rewrite(session_dir, doc)
    assert validate_session(session_dir) == []


def test_short_patient_id_scrubbed_as_whole_word_only(session_dir, helpers):
    doc = helpers.session_dict()
    doc["patient"]["id"] = "7"
    doc["trials"][0]["keypoints"] = "trials/7/missing.trc"
    doc["trials"][1]["cameras"]["cam07"] = "trials/shoulder_abduction/cam07_json"
    helpers.rewrite(session_dir, doc)
    text = [str(p) for p in validate_session(session_dir)]
    assert "trials/<patient-id>/missing.trc: trials[0].keypoints: file not found" in text
    assert any("camera(s) ['cam07'] are not in the calibration" in t for t in text)


def test_wrong_path_type_reported_once(session_dir, helpers):
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = ["trials/static.trc"]
    helpers.rewrite(session_dir, doc)
    (p,) = validate_session(session_dir)
    assert (p.file, p.field, p.message) == (
        "session.yaml",
        "trials[0].keypoints",
        "found a list of 1, expected text",
    )


def test_a_number_where_a_path_is_expected_is_kept_as_written(session_dir, helpers):
    (session_dir / "session.yaml").write_text(
        (session_dir / "session.yaml").read_text().replace("trials/static.trc", "0017")
    )
    (p,) = validate_session(session_dir)
    assert (p.file, p.field, p.message) == ("0017", "trials[0].keypoints", "file not found")


def test_missing_session_yaml(tmp_path):
    (p,) = validate_session(tmp_path)
    assert p.file == "session.yaml" and "not found in the session folder" in p.message
    (p,) = validate_session(tmp_path / "nope")
    assert p.message == "the session folder 'nope' does not exist"
    (p,) = validate_session(tmp_path / "nope" / "visit.yaml")
    assert p.message == "the session folder 'nope' does not exist" and p.file == "visit.yaml"


def test_redactor_keeps_relative_text():
    r = Redactor(Path("/data/SYN-1/visit"), "SYN-1")
    assert r.text("/data/SYN-1/visit/trials/a.trc: bad") == "trials/a.trc: bad"
    assert r.text("x/y (X/Y/Z), 1/2, ../a, see /etc/passwd") == "x/y (X/Y/Z), 1/2, ../a, see passwd"
    assert r.text("SYN-1 and SYN-10") == "<patient-id> and <patient-id>0"
    assert r.text("trials/syn-1.trc") == "trials/<patient-id>.trc"  # any letter case
    assert r.text("/data/SYN-1/visitor/a.trc") == "a.trc"  # outside the root: last part only
    assert r.text("in /data/SYN-1/visit: x") == "in .: x"
    r = Redactor(Path("/a"), None, cut_absolute=False)
    assert r.text("/about and /a/b") == "/about and b"
    r = Redactor(Path("SYN-9/visit"), "7")
    assert r.text("SYN-9/visit/trials/x.trc; revisit/x") == "trials/x.trc; revisit/x"
    assert r.field("trials[7].cameras.7") == "trials[7].cameras.<patient-id>"
    # a relative root is a path only with a separator after it; alone it is the folder's name
    # (``medpose run walk_test walk``: the trial 'walk' stays 'walk'), or the session's own word
    r = Redactor(Path("walk"), None)
    assert r.text("trial 'walk': walk/trials/x.trc, knee walk") == (
        "trial 'walk': trials/x.trc, knee walk"
    )
    assert r.patient("walk/x") == "walk/x"  # patient(): the id alone
