"""Reading session.yaml: text kept as written, bounded, never a traceback."""

from __future__ import annotations

import os

import pytest

from medpose.io._text import MAX_DEPTH
from medpose.protocol import Session, document, validate_session
from medpose.protocol.document import MAX_BYTES, parse_session_text

VALID = """medpose_session: 1
patient:
  id: {pid}
date: {date}
trials:
  - name: {name}
    kind: static
    keypoints: trials/static.trc
"""


def _write(root, pid="SYN-0001", date="2026-11-25", name="static"):
    (root / "session.yaml").write_text(VALID.format(pid=pid, date=date, name=name))


@pytest.mark.parametrize(
    "written, expected",
    [
        ("00123456", "00123456"),  # YAML 1.1 octal: would be 42798
        ("0x1F", "0x1F"),
        ("1e3", "1e3"),
        ("12_345", "12_345"),
        ("1:30", "1:30"),  # sexagesimal: would be 90
        ("yes", "yes"),  # would be True
        ("2026-11-25", "2026-11-25"),  # would be a date
        ("'00123456'", "00123456"),
    ],
)
def test_patient_id_is_kept_as_written(session_dir, written, expected):
    _write(session_dir, pid=written)
    assert Session.load(session_dir).patient.id == expected


def test_octal_looking_id_is_scrubbed_from_messages(session_dir):
    _write(session_dir, pid="00123456")
    text = (session_dir / "session.yaml").read_text()
    (session_dir / "session.yaml").write_text(text + "colour: blue\n")
    doc, _ = parse_session_text(text, "session.yaml")
    assert doc["patient"]["id"] == "00123456"
    (session_dir / "trials" / "00123456.trc").symlink_to("nowhere")
    (session_dir / "session.yaml").write_text(
        text.replace("trials/static.trc", "trials/00123456.trc") + "colour: blue\n"
    )
    problems = validate_session(session_dir)
    assert [str(p) for p in problems] == [
        "session.yaml: colour: unknown field (not in the session.yaml schema)",
        "trials/<patient-id>.trc: trials[0].keypoints: file not found",
    ]
    assert not any("00123456" in str(p) or "42798" in str(p) for p in problems)


def test_numeric_trial_and_camera_names_are_text():
    text = (
        "trials:\n  - name: 0012\n    cameras:\n      01: trials/a/01_json\n"
        "    keypoints: 2026-01-01\n    rate_hz: 30\n"
    )
    doc, problems = parse_session_text(text, "session.yaml")
    assert problems == []
    trial = doc["trials"][0]
    assert trial["name"] == "0012" and trial["cameras"] == {"01": "trials/a/01_json"}
    assert trial["keypoints"] == "2026-01-01" and trial["rate_hz"] == 30


def test_null_id_stays_missing(session_dir):
    _write(session_dir, pid="~")
    (p,) = validate_session(session_dir)
    assert (p.field, p.message) == ("patient.id", "found nothing (null), expected text")


@pytest.mark.parametrize(
    "date, reason",
    [
        ("2026-02-31", "day value is outside expected range"),
        ("2026-13-01", "month value is outside expected range"),
        ("2026-11-25 10:30:00", "zero time"),
    ],
)
def test_impossible_date_is_a_problem(session_dir, date, reason):
    _write(session_dir, date=date)
    (p,) = validate_session(session_dir)
    assert (p.file, p.field) == ("session.yaml", "date")
    assert p.message.startswith(f"found '{date}', expected a date YYYY-MM-DD (")
    assert reason in p.message


def test_impossible_date_in_any_field_is_no_crash(session_dir):
    (session_dir / "session.yaml").write_text(
        VALID.format(pid="A", date="2026-11-25", name="s")
        + "notes: 2026-02-31\nextra: 2026-02-30\n"
    )
    (p,) = validate_session(session_dir)
    assert (p.field, p.message) == ("extra", "unknown field (not in the session.yaml schema)")


def test_billion_laughs_in_patient_id_is_refused(session_dir):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    text = "\n".join(lines) + "\nmedpose_session: 1\npatient:\n  id: *a9\n"
    (session_dir / "session.yaml").write_text(text)
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml"
    assert p.message == "not valid YAML at line 2: found alias *a0; YAML aliases are not accepted"


def test_thousands_of_aliases_to_one_trial_are_refused(session_dir):
    text = VALID.format(pid="A", date="2026-11-25", name="static").replace(
        "  - name", "  - &t\n    name"
    )
    text += "".join("  - *t\n" for _ in range(2000))
    (session_dir / "session.yaml").write_text(text)
    (p,) = validate_session(session_dir)
    assert p.message == "not valid YAML at line 10: found alias *t; YAML aliases are not accepted"


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a: ", "}"), ("- ", "")])
def test_deep_nesting_is_refused(session_dir, opener, closer):
    if opener == "- ":
        text = "notes:\n" + "".join("  " * i + "-\n" for i in range(300))
    else:
        text = "notes: " + opener * 100_000 + "1" + closer * 100_000 + "\n"
    (session_dir / "session.yaml").write_text(text)
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml"
    assert f"nested deeper than {MAX_DEPTH} levels" in p.message and "line " in p.message


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: [1, 2\n", "not valid YAML at line 2: expected ',' or ']'"),
        ("- 1\n- 2\n", "expected a mapping of fields (medpose_session, patient, ...), found list"),
        ("", "expected a mapping of fields (medpose_session, patient, ...), found NoneType"),
        ("a: !!python/object:os.system echo\n", "could not determine a constructor"),
        ("a: !!int abc\n", "not valid YAML at line 1: int value that cannot be read"),
        ("a: !!timestamp 2026-02-31\n", "at line 1: timestamp value that cannot be read"),
        ("a: !!binary 'a'\n", "not valid YAML at line 1: failed to decode base64"),
        ("a: 1\nb: 2\na: 3\n", "not valid YAML at line 3: duplicate key 'a'"),
        ("a: 1\n---\nb: 2\n", "not valid YAML at line 2: but found another document"),
        ("a: \x07\n", "not valid YAML: unacceptable character #x0007"),
        ("a: 99999999999999999999999\n", "integer of 23 digits; expected a number below 2**63"),
    ],
)
def test_unreadable_session_yaml(session_dir, text, message):
    (session_dir / "session.yaml").write_text(text)
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml" and message in p.message, p.message


def test_not_utf8(session_dir):
    (session_dir / "session.yaml").write_bytes(b"medpose_session: 1\nnotes: caf\xe9\n")
    (p,) = validate_session(session_dir)
    assert p.message.startswith("line 2: byte 0xe9 is not UTF-8 text")


def test_too_large(session_dir):
    (session_dir / "session.yaml").write_text("notes: " + "x" * MAX_BYTES + "\n")
    (p,) = validate_session(session_dir)
    assert p.message.startswith(f"file size {MAX_BYTES + 8} bytes; expected at most {MAX_BYTES}")


def test_session_yaml_linking_outside_is_refused(session_dir, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text((session_dir / "session.yaml").read_text())
    (session_dir / "session.yaml").unlink()
    (session_dir / "session.yaml").symlink_to(outside)
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml" and "outside the session folder" in p.message


@pytest.mark.parametrize("kind", ["loop", "fifo", "folder"])
def test_session_yaml_that_is_not_a_file(session_dir, kind):
    target = session_dir / "session.yaml"
    target.unlink()
    if kind == "loop":
        target.symlink_to("session.yaml")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    (p,) = validate_session(session_dir)
    assert p.file == "session.yaml"
    assert ("loop" if kind == "loop" else "is not a file") in p.message


def test_unexpected_error_while_reading_is_a_problem(session_dir, monkeypatch):
    def broken(text, src, loader):
        raise MemoryError("out of memory")

    monkeypatch.setattr(document, "load_yaml", broken)
    (p,) = validate_session(session_dir)
    assert (p.file, p.message) == ("session.yaml", "could not be read (MemoryError: out of memory)")


def test_unusable_session_path(tmp_path):
    (p,) = validate_session(str(tmp_path / "a\x00b"))
    assert p.message == "the session folder 'a\\x00b' does not exist"
    (p,) = validate_session(tmp_path / ("x" * 5000))
    assert p.message.endswith("does not exist")
