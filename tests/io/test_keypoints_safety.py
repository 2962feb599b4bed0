"""Damaged and hostile keypoint files (.trc, .mot, .csv, .parquet, OpenPose folders): every one
gives an InputError naming the file, the field, what was found and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medpose.data import JointAngles, KeypointSequence
from medpose.errors import InputError
from medpose.io import _text
from medpose.io.keypoints import read_keypoints, write_keypoints
from medpose.io.mot import read_mot, write_mot
from medpose.io.openpose import read_openpose, write_openpose
from medpose.io.trc import read_trc
from medpose.layouts import get_layout


@pytest.fixture
def seq3d() -> KeypointSequence:
    rng = np.random.default_rng(3)
    return KeypointSequence(rng.normal(size=(6, 3, 3)) * 100, ("a", "b", "c"), 60.0)


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# ----------------------------------------------------------------------------- .trc
@pytest.fixture
def trc(tmp_path: Path, seq3d: KeypointSequence) -> str:
    return write_keypoints(seq3d, tmp_path / "ok.trc").read_text()


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("NumFrames", "inf", r"bad\.trc: line 3: NumFrames is 'inf'; expected a whole number"),
        ("NumFrames", "1e400", r"bad\.trc: line 3: NumFrames is '1e400'; expected a whole number"),
        ("NumFrames", "-3", r"NumFrames is '-3'; expected a whole number from 0"),
        ("NumMarkers", "1e9", r"NumMarkers is '1e9'; expected a whole number from 0 to 6666"),
        ("NumMarkers", "nan", r"NumMarkers is 'nan'; expected a whole number"),
        (
            "DataRate",
            "inf",
            r"DataRate is 'inf'; expected a motion-capture frame rate in Hz in \(0, 10000\]",
        ),
    ],
)
def test_trc_header_numbers(tmp_path: Path, trc: str, field: str, value: str, pattern: str) -> None:
    lines = trc.split("\n")
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    vals[keys.index(field)] = value
    lines[2] = "\t".join(vals)
    with pytest.raises(InputError, match=pattern):
        read_trc(_write(tmp_path / "bad.trc", "\n".join(lines)))


def test_trc_cut_inside_last_number(tmp_path: Path, trc: str) -> None:
    """A file cut inside its last number is refused: the cut value is never read."""
    n = len(trc.rstrip("\n").split("\n"))
    for cut in (2, 4):
        with pytest.raises(InputError, match=rf"cut\.trc: line {n}: the file ends inside this row"):
            read_trc(_write(tmp_path / "cut.trc", trc[:-cut]))
    # the same rows with their line break read fine
    assert read_trc(_write(tmp_path / "whole.trc", trc)).n_frames == 6


def test_trc_cells(tmp_path: Path, trc: str) -> None:
    lines = trc.split("\n")
    cells = lines[6].split("\t")
    quoted = cells.copy()
    quoted[3] = '"' + quoted[3]
    with pytest.raises(
        InputError, match=r"q\.trc: line 7, column a/Y: found '\"-?[0-9.]+'; expected a number"
    ):
        read_trc(_write(tmp_path / "q.trc", "\n".join([*lines[:6], "\t".join(quoted), *lines[7:]])))
    for bad in ("inf", "-inf", "1e999"):
        inf = cells.copy()
        inf[4] = bad
        text = "\n".join([*lines[:6], "\t".join(inf), *lines[7:]])
        with pytest.raises(
            InputError, match=r"i\.trc: line 7, column a/Z: found -?inf; expected a finite number"
        ):
            read_trc(_write(tmp_path / "i.trc", text))


@pytest.mark.parametrize(
    ("data", "line"),
    [(b"\xff\xfe\x00\x01", 1), ("Frame#\t\xe9".encode("latin-1"), 4)],
    ids=["binary", "latin-1"],
)
def test_trc_not_utf8(tmp_path: Path, trc: str, data: bytes, line: int) -> None:
    raw = data if line == 1 else trc.encode().replace(b"Frame#\t", data, 1)
    with pytest.raises(
        InputError, match=rf"e\.trc: line {line}: byte 0x[0-9a-f]+ is not UTF-8 text"
    ):
        read_trc(_write(tmp_path / "e.trc", raw))


def test_nul_byte(tmp_path: Path, trc: str) -> None:
    with pytest.raises(InputError, match=r"n\.trc: line 3: NUL byte; expected a text marker file"):
        read_trc(_write(tmp_path / "n.trc", trc.replace("\n", "\n\0", 2).replace("\0", "", 1)))


def test_folder_for_a_file(tmp_path: Path) -> None:
    (tmp_path / "sub" / "x.trc").mkdir(parents=True)
    for call in (read_trc, read_keypoints):
        with pytest.raises(InputError, match=r"x\.trc: is a folder; expected a") as info:
            call(tmp_path / "sub" / "x.trc")
        assert str(tmp_path) not in str(info.value)
    with pytest.raises(InputError, match=r"x\.trc: is a folder; expected a motion file"):
        read_mot(tmp_path / "sub" / "x.trc")


def test_size_limit(tmp_path: Path, trc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_text, "MAX_TABLE_BYTES", 100)
    with pytest.raises(
        InputError, match=r"big\.trc: file size \d+ bytes; expected at most 100 bytes"
    ):
        read_trc(_write(tmp_path / "big.trc", trc))


# ----------------------------------------------------------------------------- .mot
@pytest.fixture
def mot(tmp_path: Path) -> str:
    angles = JointAngles(np.arange(8.0).reshape(4, 2), ("knee_flexion_r", "hip_flexion_r"), 100.0)
    return write_mot(angles, tmp_path / "ok.mot").read_text()


def test_mot_bad_numbers(tmp_path: Path, mot: str) -> None:
    with pytest.raises(
        InputError, match=r"m\.mot: header field 'nrows' is 'inf'; expected a whole number"
    ):
        read_mot(_write(tmp_path / "m.mot", mot.replace("nRows=4", "nRows=inf")))
    with pytest.raises(InputError, match=r"m\.mot: header field 'ncolumns' is '1e400'"):
        read_mot(_write(tmp_path / "m.mot", mot.replace("nColumns=3", "nColumns=1e400")))
    lines = mot.split("\n")
    lines[8] = lines[8].rsplit("\t", 1)[0] + "\tinf"
    with pytest.raises(
        InputError,
        match=r"m\.mot: line 9, column 'hip_flexion_r': found inf; expected a finite number",
    ):
        read_mot(_write(tmp_path / "m.mot", "\n".join(lines)))


def test_mot_duplicate_columns_name_the_file(tmp_path: Path, mot: str) -> None:
    text = mot.replace("hip_flexion_r", "knee_flexion_r")
    with pytest.raises(
        InputError, match=r"d\.mot: line 7: duplicate column names \['knee_flexion_r'\]"
    ):
        read_mot(_write(tmp_path / "d.mot", text))


def test_mot_cut_last_row(tmp_path: Path, mot: str) -> None:
    with pytest.raises(InputError, match=r"c\.mot: line 11: the file ends inside this row"):
        read_mot(_write(tmp_path / "c.mot", mot[:-2]))


def test_mot_wide_header(tmp_path: Path) -> None:
    head = "\t".join(["time", *(f"q{i}" for i in range(200_000))])
    text = f"x\ninDegrees=yes\nendheader\n{head}\n"
    with pytest.raises(InputError, match=r"w\.mot: line 4: 200001 columns; expected at most 20000"):
        read_mot(_write(tmp_path / "w.mot", text))


# ----------------------------------------------------------------------------- CSV
@pytest.fixture
def csv_text(tmp_path: Path, seq3d: KeypointSequence) -> str:
    return write_keypoints(seq3d, tmp_path / "ok.csv").read_text()


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            "start_s=0.0",
            "start_s=abc",
            r"metadata start_s is 'abc'; expected a finite time in seconds",
        ),
        ("start_s=0.0", "start_s=inf", r"metadata start_s is 'inf'; expected a finite time"),
        ("rate_hz=60.0", "rate_hz=0", r"metadata rate_hz is '0'; expected a positive number of Hz"),
        ("rate_hz=60.0", "rate_hz=nan", r"metadata rate_hz is 'nan'; expected a positive number"),
    ],
)
def test_csv_metadata(tmp_path: Path, csv_text: str, old: str, new: str, pattern: str) -> None:
    assert old in csv_text
    with pytest.raises(InputError, match=r"m\.csv: " + pattern):
        read_keypoints(_write(tmp_path / "m.csv", csv_text.replace(old, new)))


def test_csv_stray_frame_number(tmp_path: Path, csv_text: str) -> None:
    lines = csv_text.split("\n")
    lines[-2] = "1000000000" + lines[-2][lines[-2].index(",") :]
    with pytest.raises(
        InputError,
        match=r"f\.csv: frame numbers run from 0 to 1000000000 \(1000000001 frames\) but only 7 "
        r"are present; expected at most 100 times",
    ):
        read_keypoints(_write(tmp_path / "f.csv", "\n".join(lines)))


def test_csv_stray_time(tmp_path: Path) -> None:
    text = "keypoint,time_s,x,y,z\na,0,1,2,3\na,0.1,1,2,3\na,0.2,1,2,3\na,0.3,1,2,3\na,1e8,1,2,3\n"
    with pytest.raises(
        InputError, match=r"t\.csv: time stamps \(as frame indices\) run from 0 to 1000000000 "
    ):
        read_keypoints(_write(tmp_path / "t.csv", text))


def test_csv_inf_is_refused_not_missing(tmp_path: Path, csv_text: str) -> None:
    lines = csv_text.split("\n")
    cells = lines[3].split(",")
    cells[4] = "inf"
    lines[3] = ",".join(cells)
    with pytest.raises(
        InputError, match=r"i\.csv: line 4, column 'y': found inf; expected a finite number"
    ):
        read_keypoints(_write(tmp_path / "i.csv", "\n".join(lines)))


def test_csv_cut(tmp_path: Path, csv_text: str) -> None:
    n = len(csv_text.rstrip("\n").split("\n"))
    with pytest.raises(InputError, match=rf"c\.csv: line {n}: the file ends inside this row"):
        read_keypoints(_write(tmp_path / "c.csv", csv_text[:-3]))


def test_csv_wide_lines(tmp_path: Path) -> None:
    head = ",".join(f"k{i}_x" for i in range(200_000))
    with pytest.raises(InputError, match=r"w\.csv: line 1: 200000 columns; expected at most 20000"):
        read_keypoints(_write(tmp_path / "w.csv", head + "\n" + head + "\n"))
    row = ",".join("1" for _ in range(200_000))
    with pytest.raises(
        InputError, match=r"r\.csv: line 3: 200000 cells; expected 3 as in the header"
    ):
        read_keypoints(_write(tmp_path / "r.csv", f"frame,a_x,a_y\n0,1,2\n{row}\n"), rate=30)


def test_wide_layout_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"l\.csv: no known keypoint layout has 2 keypoints"):
        read_keypoints(_write(tmp_path / "l.csv", "frame,x0,y0,x1,y1\n0,1,2,3,4\n"), rate=30)
    with pytest.raises(InputError, match=r"l\.csv: unknown keypoint layout 'nope'"):
        read_keypoints(_write(tmp_path / "l.csv", "frame,x0,y0\n0,1,2\n"), rate=30, layout="nope")


def test_wide_stray_frame(tmp_path: Path) -> None:
    text = "frame,a_x,a_y\n0,1,2\n1,1,2\n900000000,1,2\n"
    with pytest.raises(InputError, match=r"s\.csv: frame numbers run from 0 to 900000000"):
        read_keypoints(_write(tmp_path / "s.csv", text), rate=30)


# ----------------------------------------------------------------------------- Parquet
def _parquet(
    path: Path, seq: KeypointSequence, meta: dict | None, frame_value: float | None
) -> Path:
    df = seq.to_dataframe()
    df.attrs = {}
    if frame_value is not None:
        df["frame"] = df["frame"].astype(float)
        df.loc[len(df) - 1, "frame"] = frame_value
    table = pa.Table.from_pandas(df, preserve_index=False)
    if meta is not None:
        table = table.replace_schema_metadata({b"medpose": json.dumps(meta).encode()})
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("value", [1e308, 1e12])
def test_parquet_huge_frame(tmp_path: Path, seq3d: KeypointSequence, value: float) -> None:
    p = _parquet(tmp_path / "f.parquet", seq3d, {"rate_hz": 60}, value)
    with pytest.raises(
        InputError, match=r"f\.parquet: frame numbers run from 0 to (1e\+308|1000000000000) "
    ):
        read_keypoints(p)


@pytest.mark.parametrize(
    ("meta", "pattern"),
    [
        ({"rate_hz": 60, "start_s": "abc"}, r"metadata start_s is 'abc'; expected a finite time"),
        ({"rate_hz": [60]}, r"metadata rate_hz is \[60\]; expected a positive number of Hz"),
        (
            {"rate_hz": 60, "frame": {"a": 1}},
            r"metadata frame is \{'a': 1\}; expected a text value",
        ),
    ],
)
def test_parquet_metadata(
    tmp_path: Path, seq3d: KeypointSequence, meta: dict, pattern: str
) -> None:
    with pytest.raises(InputError, match=r"m\.parquet: " + pattern):
        read_keypoints(_parquet(tmp_path / "m.parquet", seq3d, meta, None))


def test_parquet_inf_and_bad_bytes(tmp_path: Path, seq3d: KeypointSequence) -> None:
    df = seq3d.to_dataframe()
    df.attrs = {}
    df.loc[2, "x"] = np.inf
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "i.parquet")
    with pytest.raises(InputError, match=r"i\.parquet: row 3, column 'x': found inf"):
        read_keypoints(tmp_path / "i.parquet", rate=60)
    with pytest.raises(InputError, match=r"g\.parquet: not a readable Parquet file"):
        read_keypoints(_write(tmp_path / "g.parquet", b"PAR1garbage"))


# ----------------------------------------------------------------------------- OpenPose
@pytest.fixture
def op_folder(tmp_path: Path) -> Path:
    lay = get_layout("body25")
    rng = np.random.default_rng(1)
    seq = KeypointSequence(
        rng.uniform(10, 500, (6, 25, 2)), tuple(lay.medpose), 30.0, frame="cam01"
    )
    return write_openpose(seq, tmp_path / "cam01_json")


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"rate": 0}, r"cam01_json: rate is 0; expected a frame rate in Hz in \(0, 10000\]"),
        ({"rate": -30}, r"cam01_json: rate is -30; expected a frame rate in Hz in \(0, 10000\]"),
        ({"rate": float("inf")}, r"cam01_json: rate is inf; expected a positive frame rate"),
        ({"rate": "fast"}, r"cam01_json: rate is 'fast'; expected a positive frame rate"),
        ({"layout": "nope"}, r"cam01_json: unknown keypoint layout 'nope'"),
        ({"person": "0"}, r"cam01_json: person is '0'; expected an integer >= 0"),
    ],
)
def test_openpose_arguments_name_the_folder(op_folder: Path, kw: dict, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        read_openpose(op_folder, **kw)


def test_openpose_stray_frame_number(op_folder: Path) -> None:
    first = sorted(op_folder.iterdir())[0]
    (op_folder / "cam_000100000000.json").write_text(first.read_text())
    with pytest.raises(
        InputError,
        match=r"cam01_json: frame numbers run from 0 to 100000000 \(100000001 frames\) but only 7",
    ):
        read_openpose(op_folder)
    (op_folder / "cam_000100000000.json").unlink()
    (op_folder / ("cam_" + "9" * 40 + ".json")).write_text(first.read_text())
    with pytest.raises(
        InputError, match=r"cam_9+\.json: frame number has 40 digits; expected at most 15"
    ):
        read_openpose(op_folder)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda t: t.replace("[", "[" + "1" * 400 + ", ", 1), r"JSON integer of 400 digits"),
        (lambda t: t.replace("[", "[1e999, ", 1), r"JSON number '1e999' overflows"),
        (
            lambda t: t.replace("[", "[Infinity, ", 1),
            r"JSON value Infinity; expected a finite number",
        ),
        (lambda t: "[" * 50_000 + "]" * 50_000, r"JSON nested deeper than 64 levels"),
        (lambda t: t[: len(t) // 2], r"invalid JSON at line \d+ column \d+ .*may be truncated"),
    ],
    ids=["400-digits", "overflow", "Infinity", "deep", "cut"],
)
def test_openpose_bad_json(op_folder: Path, edit, pattern: str) -> None:
    f = sorted(op_folder.iterdir())[2]
    f.write_text(edit(f.read_text()))
    with pytest.raises(InputError, match=rf"{f.name}: {pattern}"):
        read_openpose(op_folder)


def test_openpose_binary_file(op_folder: Path) -> None:
    f = sorted(op_folder.iterdir())[1]
    f.write_bytes(b'{"people": [\n\xc3\x28]}')
    with pytest.raises(InputError, match=rf"{f.name}: line 2: byte 0xc3 is not UTF-8 text"):
        read_openpose(op_folder)


def test_openpose_file_for_a_folder(tmp_path: Path) -> None:
    _write(tmp_path / "cam_json", "x")
    with pytest.raises(InputError, match=r"cam_json: is a file; expected a folder of OpenPose"):
        read_openpose(tmp_path / "cam_json")


# ----------------------------------------------------------------------------- _text helpers
def test_parse_helpers() -> None:
    assert _text.parse_count("100", "f", "n") == 100
    assert _text.parse_count("100.0", "f", "n") == 100
    bad: object
    for bad in ("inf", "nan", "1.5", "abc", True, None, "1" * 400):
        with pytest.raises(InputError, match=r"^f: n is .*; expected a whole number"):
            _text.parse_count(bad, "f", "n")
    assert _text.parse_finite(" 2.5 ", "f", "x") == 2.5
    for bad in ("inf", "nan", [1], "x", False, 10**400):
        with pytest.raises(InputError, match=r"^f: x is .*; expected a finite number"):
            _text.parse_finite(bad, "f", "x")


def test_frame_span_rule() -> None:
    assert _text.check_frame_span(0, 999, 2, "f", "frames") == 1000  # small spans always pass
    assert _text.check_frame_span(10, 5009, 50, "f", "frames") == 5000  # 100x the frames present
    with pytest.raises(
        InputError, match=r"f: frames run from 0 to 5000 \(5001 frames\) but only 50"
    ):
        _text.check_frame_span(0, 5000, 50, "f", "frames")
    with pytest.raises(InputError, match=r"at most 2000000 frames"):
        _text.check_frame_span(0, 3_000_000, 3_000_000, "f", "frames")


def test_text_lines() -> None:
    assert _text.text_lines("a\r\nb\rc\n") == (["a", "b", "c"], True)
    assert _text.text_lines("a\nb") == (["a", "b"], False)
    assert _text.text_lines("a\u2028b\n") == (["a\u2028b"], True)
    assert _text.text_lines("") == ([], True)
