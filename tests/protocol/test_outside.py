"""Nothing is read from outside the session folder, and no odd path gives a traceback."""

from __future__ import annotations

import os
import shutil

import pytest

from medpose.protocol import Session, validate_session

MHD = """ObjectType = Image
NDims = 3
DimSize = 2 2 2
ElementSpacing = 1 1 1
ElementType = MET_UCHAR
ElementDataFile = {data}
"""

NHDR = """NRRD0004
type: uint8
dimension: 3
sizes: 2 2 2
spacings: 1 1 1
encoding: raw
data file: {data}
"""


def _use_volume(session_dir, helpers, rel: str) -> None:
    doc = helpers.session_dict()
    doc["imaging"]["volume"] = rel
    helpers.rewrite(session_dir, doc)


def _only(problems, field):
    assert [p.field for p in problems] == [field], [str(p) for p in problems]
    return problems[0]


def _assert_clean(problems, helpers, session_dir):
    for p in problems:
        assert helpers.PATIENT_ID not in str(p) and str(session_dir.parent) not in str(p), str(p)
        assert "/etc" not in str(p)


def test_detached_volume_inside_the_folder_is_read(session_dir, helpers):
    (session_dir / "imaging" / "ct.raw").write_bytes(bytes(range(8)))
    (session_dir / "imaging" / "ct.mhd").write_text(MHD.format(data="ct.raw"))
    _use_volume(session_dir, helpers, "imaging/ct.mhd")
    assert validate_session(session_dir) == []
    assert Session.load(session_dir).read_volume().array.sum() == sum(range(8))


def test_detached_volume_data_elsewhere_in_the_session_is_read(session_dir, helpers):
    (session_dir / "raw").mkdir()
    (session_dir / "raw" / "ct.raw").write_bytes(bytes(range(8)))
    (session_dir / "imaging" / "ct.nhdr").write_text(NHDR.format(data="../raw/ct.raw"))
    _use_volume(session_dir, helpers, "imaging/ct.nhdr")
    assert validate_session(session_dir) == []
    assert Session.load(session_dir).read_volume().array.sum() == sum(range(8))


@pytest.mark.parametrize(
    "header, text",
    [
        ("ct.mhd", MHD.format(data="/etc/passwd")),
        ("ct.mhd", MHD.format(data="../../outside.raw")),
        ("ct.nhdr", NHDR.format(data="/etc/passwd")),
        ("ct.nhdr", NHDR.format(data="../../outside.raw")),
    ],
)
def test_detached_volume_data_outside_is_refused(session_dir, helpers, header, text):
    (session_dir / "outside.raw").parent.parent.joinpath("outside.raw").write_bytes(bytes(8))
    (session_dir / "imaging" / header).write_text(text)
    _use_volume(session_dir, helpers, f"imaging/{header}")
    p = _only(validate_session(session_dir), "imaging.volume")
    assert p.file == f"imaging/{header}" and "outside" in p.message
    _assert_clean([p], helpers, session_dir)


def test_detached_volume_data_linked_outside_is_refused(session_dir, helpers, tmp_path):
    (tmp_path / "secret.raw").write_bytes(bytes(8))
    (session_dir / "imaging" / "ct.raw").symlink_to(tmp_path / "secret.raw")
    (session_dir / "imaging" / "ct.mhd").write_text(MHD.format(data="ct.raw"))
    _use_volume(session_dir, helpers, "imaging/ct.mhd")
    p = _only(validate_session(session_dir), "imaging.volume")
    assert "outside" in p.message


def test_json_link_outside_in_camera_folder_is_refused(session_dir, helpers, tmp_path):
    cam01 = session_dir / "trials" / "shoulder_abduction" / "cam01_json"
    frame = cam01 / "cam01_000000000003_keypoints.json"
    shutil.move(frame, tmp_path / frame.name)
    frame.symlink_to(tmp_path / frame.name)
    p = _only(validate_session(session_dir), "trials[1].cameras.cam01")
    assert p.file == "trials/shoulder_abduction/cam01_json"
    assert p.message == (
        "1 symbolic link(s) to a place outside the session folder; refused: "
        "['cam01_000000000003_keypoints.json']"
    )
    _only(validate_session(session_dir, check_files=False), "trials[1].cameras.cam01")
    _assert_clean([p], helpers, session_dir)


def test_json_link_inside_the_session_is_allowed(session_dir):
    cam01 = session_dir / "trials" / "shoulder_abduction" / "cam01_json"
    frame = cam01 / "cam01_000000000003_keypoints.json"
    shutil.move(frame, session_dir / frame.name)
    frame.symlink_to(session_dir / frame.name)
    assert validate_session(session_dir) == []


def test_many_outside_links_are_counted(session_dir, tmp_path):
    cam01 = session_dir / "trials" / "shoulder_abduction" / "cam01_json"
    for t in range(4, 12):
        (cam01 / f"cam01_{t:012d}_keypoints.json").symlink_to(tmp_path)
    p = _only(validate_session(session_dir), "trials[1].cameras.cam01")
    assert p.message.startswith("8 symbolic link(s)") and p.message.endswith(" and 3 more")


@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_odd_entries_in_camera_folder_are_refused(session_dir, helpers, kind):
    cam01 = session_dir / "trials" / "shoulder_abduction" / "cam01_json"
    entry = cam01 / "cam01_000000000004_keypoints.json"
    if kind == "fifo":
        os.mkfifo(entry)  # reading it would block for ever
    else:
        entry.symlink_to(entry.name)
    p = _only(validate_session(session_dir), "trials[1].cameras.cam01")
    expected = "neither files nor folders" if kind == "fifo" else "symbolic link loop"
    assert expected in p.message and entry.name in p.message


def test_dicom_folder_with_outside_link_is_refused(session_dir, helpers, tmp_path):
    dicom = session_dir / "imaging" / "dicom"
    dicom.mkdir()
    (tmp_path / "slice.dcm").write_bytes(b"\0" * 132)
    (dicom / "slice.dcm").symlink_to(tmp_path / "slice.dcm")
    _use_volume(session_dir, helpers, "imaging/dicom")
    p = _only(validate_session(session_dir), "imaging.volume")
    assert p.file == "imaging/dicom" and "outside the session folder" in p.message


@pytest.mark.parametrize(
    "rel, message",
    [
        ("trials/loop.trc", "is a symbolic link loop"),
        ("a/" * 3000 + "x.trc", "cannot be"),
        ("trials/x\x00.trc", "NUL character"),
        ("trials/fifo.trc", "file neither a file nor a folder"),
    ],
)
def test_odd_keypoint_paths_are_problems(session_dir, helpers, rel, message):
    (session_dir / "trials" / "loop.trc").symlink_to("loop.trc")
    os.mkfifo(session_dir / "trials" / "fifo.trc")
    doc = helpers.session_dict()
    doc["trials"][0]["keypoints"] = rel
    helpers.rewrite(session_dir, doc)
    p = _only(validate_session(session_dir), "trials[0].keypoints")
    assert message in p.message, p.message


def test_session_folder_through_a_link_is_fine(session_dir, tmp_path):
    link = tmp_path / "visit"
    link.symlink_to(session_dir)
    assert validate_session(link) == []
    assert Session.load(link).root == link
