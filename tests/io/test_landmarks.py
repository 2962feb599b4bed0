"""Landmark files: Slicer Markups JSON, legacy .fcsv and CSV, all returned in LPS mm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpose.data import Landmarks
from medpose.errors import FrameMismatch, InputError
from medpose.io import landmarks as lm
from medpose.io.landmarks import (
    MARKUPS_SCHEMA,
    read_fcsv,
    read_landmarks,
    read_landmarks_csv,
    read_markups_json,
    write_fcsv,
    write_landmarks,
    write_landmarks_csv,
    write_markups_json,
)

# Real 3D Slicer 5.4 output, verbatim, from the Slicer forum thread "Writing markups to FCSV in
# Slicer version 5+ adds additional columns" (discourse.slicer.org/t/32318, post #6): the same three
# control points saved as .fcsv and .mrk.json.  Point 1 is 'missing', 2 'defined', 3 'undefined'.
SLICER54_FCSV = """# Markups fiducial file version = 5.4
# CoordinateSystem = LPS
# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID
1,-322.5806451612903,-5.684341886080802e-14,-35.993208828522924,0,0,0,1,1,1,0,crossed,,,3,0
2,-517.4872665534805,-5.684341886080802e-14,122.92020373514431,0,0,0,1,1,1,1,locked,,,2,0
3,-361.6298811544991,5.684341886080802e-14,44.82173174872663,0,0,0,1,1,1,0,editing,,,0,0
"""
SLICER54_JSON = """{
    "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
    "markups": [
        {
            "type": "Fiducial",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": false,
            "fixedNumberOfControlPoints": false,
            "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": 3,
            "controlPoints": [
                {
                    "id": "1",
                    "label": "crossed",
                    "description": "",
                    "associatedNodeID": "",
                    "position": "",
                    "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": true,
                    "locked": false,
                    "visibility": true,
                    "positionStatus": "missing"
                },
                {
                    "id": "2",
                    "label": "locked",
                    "description": "",
                    "associatedNodeID": "",
                    "position": [-517.4872665534805, -5.684341886080802e-14, 122.92020373514431],
                    "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": true,
                    "locked": true,
                    "visibility": true,
                    "positionStatus": "defined"
                },
                {
                    "id": "3",
                    "label": "editing",
                    "description": "",
                    "associatedNodeID": "",
                    "position": "",
                    "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": true,
                    "locked": false,
                    "visibility": true,
                    "positionStatus": "undefined"
                }
            ]
        }
    ]
}
"""
LOCKED_LPS = np.array([-517.4872665534805, -5.684341886080802e-14, 122.92020373514431])

# The example of the Slicer developer guide (Docs/developer_guide/modules/markups.md).
SLICER_DOC_JSON = """{"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.0.json#",
"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [
    { "label": "F-1", "position": [-53.388409961685827, -73.33572796934868, 0.0] },
    { "label": "F-2", "position": [49.8682950191571, -88.58955938697324, 0.0] },
    { "label": "F-3", "position": [-25.22749042145594, 59.255268199233729, 0.0] }
]}]}"""
SLICER_DOC_FCSV_LINE = "vtkMRMLMarkupsFiducialNode_0,1.29,-40.18,60.15,0,0,0,1,1,1,0,F-1,,"

NAMES = ("asis_r", "asis_l", "lateral_malleolus_l")
LPS_PTS = np.array([[-120.5, 30.25, 910.0], [118.0, 29.5, 912.125], [80.0, -10.0, 75.5]])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _markups(points, system="LPS", names=NAMES, **extra) -> str:
    cps = [{"label": n, "position": list(map(float, x))} for n, x in zip(names, points)]
    return json.dumps(
        {
            "@schema": MARKUPS_SCHEMA,
            "markups": [
                {"type": "Fiducial", "coordinateSystem": system, "controlPoints": cps, **extra}
            ],
        }
    )


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------- Markups JSON
def test_real_slicer54_json_unplaced_points_are_nan(tmp_path):
    got = read_landmarks(_write(tmp_path, "a.mrk.json", SLICER54_JSON))
    assert got.names == ("crossed", "locked", "editing") and got.frame == "LPS"
    assert np.all(np.isnan(got["crossed"])) and np.all(np.isnan(got["editing"]))
    np.testing.assert_array_equal(got["locked"], LOCKED_LPS)


def test_slicer_doc_example_reads_as_lps(tmp_path):
    got = read_markups_json(_write(tmp_path, "doc.mrk.json", SLICER_DOC_JSON))
    assert got.names == ("F-1", "F-2", "F-3")
    np.testing.assert_array_equal(got["F-2"], [49.8682950191571, -88.58955938697324, 0.0])


def test_json_ras_is_flipped_to_lps_and_back_on_request(tmp_path):
    ras = LPS_PTS * [-1, -1, 1]
    p = _write(tmp_path, "r.mrk.json", _markups(ras, "RAS"))
    np.testing.assert_array_equal(read_landmarks(p).positions, LPS_PTS)
    back = read_landmarks(p, frame="RAS")
    assert back.frame == "RAS"
    np.testing.assert_array_equal(back.positions, ras)


def test_json_missing_coordinate_system_is_lps_per_schema_default(tmp_path):
    doc = json.loads(_markups(LPS_PTS))
    del doc["markups"][0]["coordinateSystem"]
    np.testing.assert_array_equal(
        read_landmarks(_write(tmp_path, "d.json", json.dumps(doc))).positions, LPS_PTS
    )


def test_json_micrometres_become_mm(tmp_path):
    p = _write(tmp_path, "um.mrk.json", _markups(LPS_PTS * 1000, coordinateUnits="um"))
    np.testing.assert_allclose(read_landmarks(p).positions, LPS_PTS, rtol=1e-12)


def test_json_several_markups_all_or_one(tmp_path):
    doc = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": "LPS",
                "controlPoints": [{"label": "hip_r", "position": [1, 2, 3]}],
            },
            {
                "type": "Line",
                "coordinateSystem": "RAS",
                "controlPoints": [
                    {"label": "knee_r", "position": [4, 5, 6]},
                    {"label": "ankle_r", "position": [7, 8, 9]},
                ],
            },
        ],
    }
    p = _write(tmp_path, "m.mrk.json", json.dumps(doc))
    both = read_landmarks(p)
    assert both.names == ("hip_r", "knee_r", "ankle_r")
    np.testing.assert_array_equal(both.positions, [[1, 2, 3], [-4, -5, 6], [-7, -8, 9]])
    second = read_markups_json(p, markup_index=1)
    assert second.names == ("knee_r", "ankle_r")
    assert read_markups_json(p, markup_index=-2).names == ("hip_r",)
    with pytest.raises(
        InputError, match=r"m\.mrk\.json: markup_index 2 out of range; the file holds 2 markups"
    ):
        read_markups_json(p, markup_index=2)


def _schema_check(doc: dict) -> None:
    """The parts of markups-schema-v1.0.3 a fiducial writer must satisfy (required keys, enums, types)."""
    assert doc["@schema"] == MARKUPS_SCHEMA and isinstance(doc["markups"], list)
    for mk in doc["markups"]:
        assert mk["type"] in ["Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"]
        assert mk["coordinateSystem"] in ["LPS", "RAS"] and mk["coordinateUnits"] in ["mm", "um"]
        for key in ("locked", "fixedNumberOfControlPoints"):
            assert isinstance(mk[key], bool)
        for cp in mk["controlPoints"]:
            assert isinstance(cp["id"], str) and isinstance(cp["label"], str)
            assert cp["positionStatus"] in ["undefined", "preview", "defined"]
            if "position" in cp:
                assert len(cp["position"]) == 3 and all(
                    isinstance(v, float) for v in cp["position"]
                )
            assert len(cp["orientation"]) == 9
            for key in ("selected", "locked", "visibility"):
                assert isinstance(cp[key], bool)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_json_writer_is_valid_and_round_trips(tmp_path, system):
    pts = LPS_PTS.copy()
    pts[1] = np.nan
    src = Landmarks(NAMES, pts, "LPS")
    p = write_landmarks(src, tmp_path / "out.mrk.json", coordinate_system=system)
    doc = json.loads(p.read_text())
    _schema_check(doc)
    assert doc["markups"][0]["coordinateSystem"] == system
    expected_file = LPS_PTS[0] * ([-1, -1, 1] if system == "RAS" else 1)
    assert doc["markups"][0]["controlPoints"][0]["position"] == expected_file.tolist()
    assert doc["markups"][0]["controlPoints"][1]["positionStatus"] == "undefined"
    got = read_landmarks(p)
    assert got.names == NAMES
    np.testing.assert_array_equal(got.positions, pts)
    assert _no_temp_files(tmp_path)


def test_ras_landmarks_are_written_as_lps(tmp_path):
    src = Landmarks(NAMES, LPS_PTS * [-1, -1, 1], "RAS")
    p = write_markups_json(src, tmp_path / "x.mrk.json")
    assert (
        json.loads(p.read_text())["markups"][0]["controlPoints"][2]["position"]
        == LPS_PTS[2].tolist()
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"@schema": "x", "markups": [{"type": "Fiducial", "controlPoints": [{"label": "a", "posi',
            r"t\.mrk\.json: invalid JSON at line 1 column \d+ .*truncated",
        ),
        ('{"@schema": "x"}', r"t\.mrk\.json: no 'markups' list"),
        ("[1, 2]", r"t\.mrk\.json: no 'markups' list"),
        (
            '{"markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}',
            r"markups\[0\]\.coordinateSystem: unknown coordinate system 'IJK'; expected one of \['LPS', 'RAS'\]",
        ),
        (
            '{"markups": [{"coordinateUnits": "cm", "controlPoints": []}]}',
            r"markups\[0\]\.coordinateUnits is 'cm'; expected 'mm' or 'um'",
        ),
        (
            '{"markups": [{"controlPoints": [{"position": [1, 2, 3]}]}]}',
            r"markups\[0\]\.controlPoints\[0\]\.label is None; expected a string",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a"}]}]}',
            r"controlPoints\[0\]\.position is None; expected 3 numbers for a defined point",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a", "position": "", "positionStatus": "defined"}]}]}',
            r"controlPoints\[0\]\.position is ''; expected 3 numbers",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a", "position": [1, 2]}]}]}',
            r"controlPoints\[0\]\.position is \[1, 2\]; expected 3 numbers",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a", "position": [1, "two", 3]}]}]}',
            r"controlPoints\[0\]\.position\[1\]: expected a number \(mm\), found 'two'",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a", "position": [1, 2, 3], "positionStatus": "lost"}]}]}',
            r"positionStatus is 'lost'; expected one of \['defined', 'preview', 'undefined', 'missing'\]",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": "a", "position": [1, 2, 3]}, {"label": "a", "position": [1, 2, 3]}]}]}',
            r"duplicate landmark names \['a'\] .*controlPoints\[0\].*controlPoints\[1\]",
        ),
        (
            '{"markups": [{"controlPoints": [{"label": " ", "position": [1, 2, 3]}]}]}',
            r"landmark without a name",
        ),
        ('{"markups": [{"controlPoints": []}]}', r"no control points in 1 markup"),
        (
            '{"markups": [{"controlPoints": {"a": 1}}]}',
            r"markups\[0\]\.controlPoints is dict; expected a list",
        ),
        ("", r"t\.mrk\.json: file is empty"),
    ],
)
def test_json_bad_input(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        read_landmarks(_write(tmp_path, "t.mrk.json", text))
    assert str(tmp_path.parent) not in str(info.value)  # only the last two path parts are shown


# ---------------------------------------------------------------------------- legacy .fcsv
def test_real_slicer54_fcsv_status_columns(tmp_path):
    got = read_landmarks(_write(tmp_path, "a.fcsv", SLICER54_FCSV))
    assert got.names == ("crossed", "locked", "editing")
    assert np.isnan(got.positions[[0, 2]]).all()
    np.testing.assert_array_equal(got["locked"], LOCKED_LPS)  # the same point as in the JSON file


@pytest.mark.parametrize(
    "header, flip",
    [
        ("# CoordinateSystem = 0\n", True),
        ("# CoordinateSystem = RAS\n", True),
        ("", True),
        ("# CoordinateSystem = 1\n", False),
        ("# CoordinateSystem = LPS\n", False),
        ("# CoordinateSystem = lps\n", False),
    ],
)
def test_fcsv_coordinate_systems(tmp_path, header, flip):
    text = (
        "# Markups fiducial file version = 4.11\n"
        + header
        + "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
        + SLICER_DOC_FCSV_LINE
        + "\n"
    )
    got = read_fcsv(_write(tmp_path, "f.fcsv", text))
    expected = np.array([1.29, -40.18, 60.15]) * ([-1, -1, 1] if flip else 1)
    np.testing.assert_array_equal(got["F-1"], expected)


def test_fcsv_quoted_label_with_comma(tmp_path):
    text = (
        "# Markups fiducial file version = 4.6\n# CoordinateSystem = 1\n"
        "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
        'vtkMRMLMarkupsFiducialNode_0,1,2,3,0,0,0,1,1,1,0,"tip, left",a desc,vtkMRMLScalarVolumeNode1\n'
    )
    got = read_landmarks(_write(tmp_path, "q.fcsv", text))
    assert got.names == ("tip, left",)
    np.testing.assert_array_equal(got.positions, [[1, 2, 3]])


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_fcsv_writer_round_trips(tmp_path, system):
    names = ("knee_l", "tip, with comma", 'quote "q"')
    pts = LPS_PTS.copy()
    p = write_fcsv(Landmarks(names, pts), tmp_path / "w.fcsv", coordinate_system=system)
    lines = p.read_text().splitlines()
    assert lines[:3] == [
        "# Markups fiducial file version = 4.11",
        f"# CoordinateSystem = {system}",
        "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID",
    ]
    assert len(lines[3].split(",")) == 14  # no status columns when every point is placed
    got = read_fcsv(p)
    assert got.names == names
    np.testing.assert_array_equal(got.positions, pts)
    assert _no_temp_files(tmp_path)


def test_fcsv_writer_marks_unplaced_points_like_slicer5(tmp_path):
    pts = LPS_PTS.copy()
    pts[0] = np.nan
    p = write_landmarks(Landmarks(NAMES, pts), tmp_path / "n.fcsv")
    rows = p.read_text().splitlines()[3:]
    assert rows[0].endswith(",0,0") and rows[1].endswith(",2,0")
    got = read_landmarks(p)
    assert np.isnan(got.positions[0]).all()
    np.testing.assert_array_equal(got.positions[1:], pts[1:])


HEAD = "# Markups fiducial file version = 4.11\n# CoordinateSystem = 0\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "# Markups fiducial file version = 4.11\n# CoordinateSystem = 2\n"
            + SLICER_DOC_FCSV_LINE,
            r"f\.fcsv: line 2: CoordinateSystem '2' is IJK \(voxel indices\); medpose cannot map them",
        ),
        (
            "# Markups fiducial file version = 4.11\n# CoordinateSystem = IJK\n"
            + SLICER_DOC_FCSV_LINE,
            r"is IJK",
        ),
        (
            "# Markups fiducial file version = 4.11\n# CoordinateSystem = XYZ\n"
            + SLICER_DOC_FCSV_LINE,
            r"line 2: unknown CoordinateSystem 'XYZ'; expected one of 0 or RAS, 1 or LPS",
        ),
        ("F-1,1,2,3,1,1\n", r"f\.fcsv: no '# Markups fiducial file version = \.\.\.' line"),
        (
            HEAD + "# columns = id,x,y,z\n" + SLICER_DOC_FCSV_LINE,
            r"'# columns' line lacks \['label'\]",
        ),
        (HEAD, r"header only, no landmark lines"),
        (
            HEAD + "1,1.0,abc,3,0,0,0,1,1,1,0,F-1,,\n",
            r"line 3, column 'y': expected a number \(mm\), found 'abc'",
        ),
        (HEAD + "1,1.0,2.0\n", r"line 3: 3 fields; expected at least 12"),
        (
            HEAD
            + "1,1,2,3,0,0,0,1,1,1,0,F-1,,\n2,1,2,3,0,0,0,1,1,1,0,F-2,,\n3,4,5,6,0,0,0,1,1,1,0,F-1,,\n",
            r"duplicate landmark names \['F-1'\] \(at \{'F-1': \['line 3', 'line 5'\]\}\)",
        ),
        (HEAD + "1,1,2,3,0,0,0,1,1,1,0,,,\n", r"landmark without a name at \['line 3'\]"),
        ("\n\n", r"f\.fcsv: file is empty"),
    ],
)
def test_fcsv_bad_input(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_landmarks(_write(tmp_path, "f.fcsv", text))


# ---------------------------------------------------------------------------- CSV
def test_csv_default_lps(tmp_path):
    p = _write(tmp_path, "c.csv", "name,x,y,z\nhip_r,1,2,3\nhip_l,-1,2.5,3\n")
    got = read_landmarks(p)
    assert got.names == ("hip_r", "hip_l")
    np.testing.assert_array_equal(got.positions, [[1, 2, 3], [-1, 2.5, 3]])


def test_csv_comment_ras_and_per_row_column(tmp_path):
    p = _write(
        tmp_path,
        "c.csv",
        "# exported from a RAS tool\n# coordinate_system = RAS\nname,x,y,z\nhip_r,1,2,3\n",
    )
    np.testing.assert_array_equal(read_landmarks(p).positions, [[-1, -2, 3]])
    p = _write(
        tmp_path, "d.csv", "label,x,y,z,frame\nhip_r,1,2,3,RAS\nhip_l,1,2,3,LPS\nneck,1,2,3,\n"
    )
    np.testing.assert_array_equal(read_landmarks(p).positions, [[-1, -2, 3], [1, 2, 3], [1, 2, 3]])


def test_csv_from_landmarks_dataframe_and_empty_cell_is_nan(tmp_path):
    pts = LPS_PTS.copy()
    pts[2, 1] = np.nan
    src = Landmarks(NAMES, pts)
    p = tmp_path / "df.csv"
    src.to_dataframe().to_csv(p, index=False)  # columns name,x_mm,y_mm,z_mm; NaN as an empty cell
    got = read_landmarks_csv(p)
    np.testing.assert_array_equal(got.positions, pts)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_csv_writer_round_trips(tmp_path, system):
    pts = LPS_PTS.copy()
    pts[0, 0] = np.nan
    p = write_landmarks_csv(Landmarks(NAMES, pts), tmp_path / "w.csv", coordinate_system=system)
    assert p.read_text().splitlines()[0] == "name,x,y,z,coordinate_system"
    np.testing.assert_array_equal(read_landmarks(p).positions, pts)


@pytest.mark.parametrize(
    "text, message",
    [
        ("hip_r,1,2,3\n", r"c\.csv: line 1: header \['hip_r', '1', '2', '3'\] lacks a name column"),
        ("name,x,y\nhip_r,1,2\n", r"lacks x, y, z columns"),
        ("name,x,y,z\n", r"header only, no landmark rows"),
        (
            "name,x,y,z\nhip_r,1,2,3\nknee_r,1,two,3\n",
            r"c\.csv: line 3, column 'y': expected a number \(mm\), found 'two'",
        ),
        ("name,x,y,z\nhip_r,1,2\n", r"line 2: 3 fields; expected 4"),
        (
            "name,x,y,z,coordinate_system\nhip_r,1,2,3,IJK\n",
            r"line 2, column 'coordinate_system': unknown coordinate system 'IJK'; expected one of \['LPS', 'RAS'\]",
        ),
        (
            "# coordinate_system = camera\nname,x,y,z\nhip_r,1,2,3\n",
            r"line 1: unknown coordinate system 'camera'",
        ),
        ("name,x,y,z\nhip_r,1,2,3\nhip_r,4,5,6\n", r"duplicate landmark names \['hip_r'\]"),
        ("   \n", r"file is empty"),
        ("# only a comment\n", r"no header and no rows"),
    ],
)
def test_csv_bad_input(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_landmarks(_write(tmp_path, "c.csv", text))


# ---------------------------------------------------------------------------- dispatch, writers
@pytest.mark.parametrize("ext", [".mrk.json", ".fcsv", ".csv"])
def test_awkward_names_survive(tmp_path, ext):
    names = ("#1 marker", "tip, left", 'say "hi"', "épine_iliaque", "a\x85b\u2028c")
    src = Landmarks(names, np.arange(15.0).reshape(5, 3))
    assert read_landmarks(write_landmarks(src, tmp_path / f"n{ext}")).names == names


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(
        InputError, match=r"p\.xyz: unknown landmark file extension '\.xyz'; expected one of"
    ):
        read_landmarks(_write(tmp_path, "p.xyz", "x"))
    with pytest.raises(InputError, match=r"nope\.fcsv: landmark file not found"):
        read_landmarks(tmp_path / "nope.fcsv")
    with pytest.raises(InputError, match=r"unknown landmark file extension"):
        write_landmarks(Landmarks(NAMES, LPS_PTS), tmp_path / "p.txt")


def test_bad_frame_and_coordinate_system_arguments(tmp_path):
    p = _write(tmp_path, "c.csv", "name,x,y,z\nhip_r,1,2,3\n")
    with pytest.raises(InputError, match=r"argument frame: unknown coordinate system 'camera'"):
        read_landmarks(p, frame="camera")
    with pytest.raises(
        InputError, match=r"argument coordinate_system: unknown coordinate system 'IJK'"
    ):
        write_landmarks(Landmarks(NAMES, LPS_PTS), tmp_path / "o.mrk.json", coordinate_system="IJK")


@pytest.mark.parametrize("ext", [".mrk.json", ".fcsv", ".csv"])
def test_camera_frame_landmarks_are_refused(tmp_path, ext):
    with pytest.raises(
        FrameMismatch,
        match=r"landmarks are in frame 'camera'; imaging landmark files hold LPS or RAS",
    ):
        write_landmarks(Landmarks(NAMES, LPS_PTS, "camera"), tmp_path / f"o{ext}")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = write_landmarks(Landmarks(NAMES, LPS_PTS), tmp_path / "keep.mrk.json")
    before = p.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lm.json, "dump", boom)
    with pytest.raises(OSError, match="disk full"):
        write_landmarks(Landmarks(NAMES, LPS_PTS + 1), p)
    assert p.read_bytes() == before and _no_temp_files(tmp_path)


_name = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s and s.strip() != "")
_coord = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False) | st.just(float("nan"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_format_round_trips_exactly(tmp_path, data):
    names = data.draw(st.lists(_name, min_size=1, max_size=6, unique=True))
    pts = np.array(
        data.draw(
            st.lists(st.tuples(_coord, _coord, _coord), min_size=len(names), max_size=len(names))
        )
    )
    # a point is placed or not as a whole in the Slicer formats
    pts[np.isnan(pts).any(axis=1)] = np.nan
    src = Landmarks(tuple(names), pts, data.draw(st.sampled_from(["LPS", "RAS"])))
    for ext in (".mrk.json", ".fcsv", ".csv"):
        system = data.draw(st.sampled_from(["LPS", "RAS"]))
        p = write_landmarks(src, tmp_path / f"h{ext}", coordinate_system=system)
        got = read_landmarks(p, frame=src.frame)
        assert got.names == src.names and got.frame == src.frame
        np.testing.assert_array_equal(got.positions, src.positions)


# ---------------------------------------------------------------------- hostile files
def test_json_hostile_values(tmp_path):
    doc = json.loads(_markups(LPS_PTS))
    doc["markups"][0]["controlPoints"][0]["positionStatus"] = ["defined"]
    with pytest.raises(
        InputError,
        match=r"s\.mrk\.json: markups\[0\]\.controlPoints\[0\]\.positionStatus is \['defined'\]; expected one of",
    ):
        read_landmarks(_write(tmp_path, "s.mrk.json", json.dumps(doc)))
    text = _markups(LPS_PTS).replace("-120.5", "1" * 400, 1)
    with pytest.raises(
        InputError,
        match=r"b\.mrk\.json: JSON integer of 400 digits; expected a number below 2\*\*63",
    ):
        read_landmarks(_write(tmp_path, "b.mrk.json", text))
    text = _markups(LPS_PTS).replace("-120.5", "1e999", 1)
    with pytest.raises(
        InputError, match=r"o\.mrk\.json: JSON number '1e999' overflows; expected a finite number"
    ):
        read_landmarks(_write(tmp_path, "o.mrk.json", text))
    with pytest.raises(InputError, match=r"d\.mrk\.json: JSON nested deeper than 64 levels"):
        read_landmarks(
            _write(tmp_path, "d.mrk.json", '{"markups": ' + "[" * 100_000 + "]" * 100_000 + "}")
        )


def test_fcsv_and_csv_hostile_values(tmp_path):
    lm_ = Landmarks(NAMES, LPS_PTS, "LPS")
    fcsv = write_fcsv(lm_, tmp_path / "ok.fcsv").read_text()
    with pytest.raises(
        InputError, match=r"l\.fcsv: line 4: not a valid CSV line \(field larger than field limit"
    ):
        read_landmarks(_write(tmp_path, "l.fcsv", fcsv.replace("asis_r", "x" * 131_100, 1)))
    with pytest.raises(
        InputError,
        match=r"i\.fcsv: line 4, column 'y': expected a finite number \(mm\), found 'inf'",
    ):
        read_landmarks(_write(tmp_path, "i.fcsv", fcsv.replace(",30.25,", ",inf,", 1)))
    csv_ = write_landmarks_csv(lm_, tmp_path / "ok.csv").read_text()
    assert ",910.0," in csv_
    with pytest.raises(
        InputError,
        match=r"i\.csv: line 2, column 'z': expected a finite number \(mm\), found '-inf'",
    ):
        read_landmarks(_write(tmp_path, "i.csv", csv_.replace(",910.0,", ",-inf,", 1)))
    with pytest.raises(
        InputError, match=r"q\.csv: line 3: a quoted field runs over the end of the line"
    ):
        read_landmarks(_write(tmp_path, "q.csv", csv_.replace("asis_l", '"asis_l', 1)))


@pytest.mark.parametrize("ext", ["mrk.json", "fcsv", "csv"])
def test_encodings_and_folders(tmp_path, ext):
    p = tmp_path / f"a.{ext}"
    p.write_bytes("# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(
        InputError,
        match=rf"a\.{ext}: line 1: byte 0xe9 is not UTF-8 text; expected a UTF-8 landmark file",
    ):
        read_landmarks(p)
    (tmp_path / "sub" / f"d.{ext}").mkdir(parents=True)
    with pytest.raises(
        InputError, match=rf"d\.{ext}: is a folder; expected a landmark file"
    ) as info:
        read_landmarks(tmp_path / "sub" / f"d.{ext}")
    assert str(tmp_path) not in str(info.value)
