from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import tomllib

from medpose.camera import Camera
from medpose.errors import InputError
from medpose.io.calibration import read_calibration, write_calibration

# An OpenCV FileStorage file as cv::FileStorage writes it ("0." numbers, e-notation, %YAML:1.0).
OPENCV_SINGLE = """%YAML:1.0
---
image_width: 1920
image_height: 1080
camera_matrix: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 1.4000000000000000e+03, 0., 9.6050000000000000e+02, 0.,
       1.4100000000000000e+03, 5.4025000000000000e+02, 0., 0., 1. ]
distortion_coefficients: !!opencv-matrix
   rows: 1
   cols: 5
   dt: d
   data: [ -1.2e-01, 8.0000000000000002e-02, 1e-03, -5.0000000000000001e-04, 0. ]
R: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 0., -1., 0., 1., 0., 0., 0., 0., 1. ]
T: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 100., -250.5, 3000. ]
"""

# EasyMocap-style intri/extri keys: a `names` list and keys suffixed with _<name>.
OPENCV_NAMES = """%YAML:1.0
---
names:
   - "left"
   - "right"
image_width_left: 640
image_height_left: 480
K_left: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 500., 0., 320., 0., 500., 240., 0., 0., 1. ]
dist_left: !!opencv-matrix
   rows: 1
   cols: 4
   dt: d
   data: [ 0., 0., 0., 0. ]
rvec_left: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 0., 0., 0. ]
tvec_left: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 0., 0., 0. ]
image_width_right: 640
image_height_right: 480
K_right: !!opencv-matrix
   rows: 3
   cols: 3
   dt: d
   data: [ 510., 0., 322., 0., 505., 238., 0., 0., 1. ]
rvec_right: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ 0., 0.2, 0. ]
tvec_right: !!opencv-matrix
   rows: 3
   cols: 1
   dt: d
   data: [ -0.3, 0., 0.01 ]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _toml_camera(section: str = "cam01", **over) -> str:
    fields = {
        "name": f'"{section}"',
        "size": "[ 1088.0, 1920.0]",
        "matrix": "[ [ 1681.2, 0.0, 533.0], [ 0.0, 1681.1, 948.1], [ 0.0, 0.0, 1.0]]",
        "distortions": "[ -0.0007, 0.0022, 9.5e-06, 1.1e-05]",
        "rotation": "[ 1.69, 1.05, -0.42]",
        "translation": "[ 0.32, 0.96, 2.89]",
        "fisheye": "false",
    } | over
    return (
        f"[{section}]\n"
        + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)
        + "\n"
    )


# ------------------------------------------------------------------------ real Pose2Sim file
@pytest.fixture(scope="module")
def pose2sim(shared_data) -> Path:
    return shared_data / "pose2sim"


def test_pose2sim_toml_values_match_raw_file(pose2sim):
    cams = read_calibration(pose2sim / "Calib_qualisys.toml")
    raw = tomllib.loads((pose2sim / "Calib_qualisys.toml").read_text())
    assert [c.name for c in cams] == ["cam01", "cam02", "cam03", "cam04"]
    for c in cams:
        r = raw[c.name]
        assert c.size == (1088, 1920)
        np.testing.assert_array_equal(c.matrix, r["matrix"])
        np.testing.assert_array_equal(c.distortion, r["distortions"])
        np.testing.assert_array_equal(c.rotation, r["rotation"])
        np.testing.assert_allclose(c.translation, np.array(r["translation"]) * 1000.0, rtol=1e-15)
        assert c.world == "camera"


def test_pose2sim_toml_agrees_with_qualisys_xml(pose2sim):
    """Cross-check against the original Qualisys calibration (QTM XML).

    QTM stores intrinsics in sensor sub-pixel units (64 per pixel: sensorMaxU 69568 = 64 * 1087),
    the camera position in mm, and a rotation Q whose rows are the camera axes in the world with
    the camera looking along -z and y up; hence R_world->camera = diag(1, -1, -1) @ Q.
    """
    cams = {c.name: c for c in read_calibration(pose2sim / "Calib_qualisys.toml")}
    root = ET.parse(pose2sim / "Calib.qca.txt").getroot()
    xml_cams = list(root.iter("camera"))
    assert len(xml_cams) == 4
    for x in xml_cams:
        c = cams[x.get("serial")]
        intr, tr = x.find("intrinsic").attrib, x.find("transform").attrib
        np.testing.assert_allclose(c.matrix[0, 0], float(intr["focalLengthU"]) / 64, rtol=1e-9)
        np.testing.assert_allclose(c.matrix[1, 1], float(intr["focalLengthV"]) / 64, rtol=1e-9)
        np.testing.assert_allclose(
            c.matrix[:2, 2],
            [float(intr["centerPointU"]) / 64, float(intr["centerPointV"]) / 64],
            rtol=1e-9,
        )
        np.testing.assert_allclose(c.center, [float(tr[k]) for k in "xyz"], atol=1e-3)  # mm
        q = np.array([[float(tr[f"r{i}{j}"]) for j in (1, 2, 3)] for i in (1, 2, 3)])
        np.testing.assert_allclose(c.rotation_matrix, np.diag([1, -1, -1]) @ q, atol=1e-6)


def test_pose2sim_rig_is_plausible(pose2sim):
    cams = read_calibration(pose2sim / "Calib_qualisys.toml")
    centres = np.array([c.center for c in cams])
    dists = [np.linalg.norm(a - b) for a, b in combinations(centres, 2)]
    assert min(dists) > 1500 and max(dists) < 10000  # a few metres apart (mm)
    # The point nearest to all optical axes (least squares) is in front of every camera,
    # near the middle of every image, and on the floor-to-head range of the Z-up world.
    axes = np.array([c.rotation_matrix[2] for c in cams])
    a = sum(np.eye(3) - np.outer(d, d) for d in axes)
    b = sum((np.eye(3) - np.outer(d, d)) @ p for d, p in zip(axes, centres))
    target = np.linalg.solve(a, b)
    for c in cams:
        u, v = c.project(target)
        assert 0 < u < c.size[0] and 0 < v < c.size[1]
        direction = (target - c.center) / np.linalg.norm(target - c.center)
        assert np.degrees(np.arccos(direction @ c.rotation_matrix[2])) < 15
    assert -500 < target[2] < 2500


# ------------------------------------------------------------------------ round trips
def _rig() -> list[Camera]:
    k = np.array([[1400.0, 0.0, 960.5], [0.0, 1410.0, 540.25], [0.0, 0.0, 1.0]])
    return [
        Camera(
            "cam01",
            (1920, 1080),
            k,
            np.array([-0.12, 0.08, 0.001, -0.0005, 0.003]),
            np.array([0.1, -2.0, 0.3]),
            np.array([120.5, -40.25, 3500.0]),
        ),
        Camera(
            "cam02",
            (1920, 1080),
            k,
            np.array([-0.1, 0.05, 0.0, 0.0]),
            np.array([1.2, 0.4, -0.7]),
            np.array([-300.0, 10.0, 2800.0]),
        ),
    ]


@pytest.mark.parametrize("name", ["rig.toml", "rig.yml", "rig.yaml"])
def test_write_read_roundtrip(tmp_path, name):
    cams = _rig()
    out = write_calibration(cams, tmp_path / name)
    back = read_calibration(out)
    assert [c.name for c in back] == ["cam01", "cam02"]
    assert all(a.allclose(b, atol=1e-9) for a, b in zip(cams, back))
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_toml_written_in_metres(tmp_path):
    write_calibration(_rig(), tmp_path / "c.toml")
    raw = tomllib.loads((tmp_path / "c.toml").read_text())
    assert raw["cam01"]["translation"] == pytest.approx([0.1205, -0.04025, 3.5])
    assert raw["cam01"]["fisheye"] is False and "metadata" in raw


def test_single_camera_yaml_roundtrip_keeps_name(tmp_path):
    cam = _rig()[0]
    back = read_calibration(write_calibration([cam], tmp_path / "one.yml"))
    assert len(back) == 1 and back[0].allclose(cam)
    assert (tmp_path / "one.yml").read_text().startswith("%YAML:1.0\n")


def test_units_argument(tmp_path):
    write_calibration(_rig(), tmp_path / "m.yml", units="m")
    back = read_calibration(tmp_path / "m.yml", units="m")
    np.testing.assert_allclose(back[0].translation, [120.5, -40.25, 3500.0])
    np.testing.assert_allclose(
        read_calibration(tmp_path / "m.yml")[0].translation, [0.1205, -0.04025, 3.5]
    )
    with pytest.raises(InputError, match="units must be 'mm' or 'm'"):
        read_calibration(tmp_path / "m.yml", units="cm")


# ------------------------------------------------------------------------ OpenCV YAML
def test_opencv_single_file_as_opencv_writes_it(tmp_path):
    (cam,) = read_calibration(_write(tmp_path, "intrinsics_cam3.yml", OPENCV_SINGLE))
    assert cam.name == "intrinsics_cam3" and cam.size == (1920, 1080)
    np.testing.assert_array_equal(cam.matrix, [[1400, 0, 960.5], [0, 1410, 540.25], [0, 0, 1]])
    np.testing.assert_allclose(cam.distortion, [-0.12, 0.08, 0.001, -0.0005, 0.0])
    np.testing.assert_allclose(cam.rotation_matrix, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(cam.rotation, [0, 0, np.pi / 2], atol=1e-12)  # 3x3 R -> Rodrigues
    np.testing.assert_allclose(cam.translation, [100, -250.5, 3000])  # mm by default


def test_opencv_names_list_suffix_keys(tmp_path):
    cams = read_calibration(_write(tmp_path, "extri.yml", OPENCV_NAMES), units="m")
    assert [c.name for c in cams] == ["left", "right"]
    np.testing.assert_array_equal(cams[0].distortion, [0, 0, 0, 0])
    np.testing.assert_array_equal(cams[1].distortion, [0, 0, 0, 0])  # absent -> no distortion
    np.testing.assert_allclose(cams[1].translation, [-300, 0, 10])
    np.testing.assert_allclose(cams[1].matrix[0, 2], 322)


def test_opencv_names_list_nested_mappings(tmp_path):
    text = OPENCV_SINGLE.replace("---\n", "---\nnames: [ a ]\na:\n").split("---\n")
    body = text[1].split("\n", 2)
    nested = "\n".join(["   " + ln if ln else ln for ln in body[2].splitlines()])
    p = _write(
        tmp_path, "n.yaml", "%YAML:1.0\n---\n" + body[0] + "\n" + body[1] + "\n" + nested + "\n"
    )
    (cam,) = read_calibration(p)
    assert cam.name == "a" and cam.size == (1920, 1080)


def test_unsafe_yaml_tag_is_refused(tmp_path):
    p = _write(
        tmp_path, "evil.yml", "%YAML:1.0\n---\nK: !!python/object/apply:os.system ['echo hacked']\n"
    )
    with pytest.raises(InputError, match=r"evil\.yml: not valid OpenCV YAML at line 3"):
        read_calibration(p)


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "text, expected",
    [
        (
            _toml_camera(matrix="[ [ 1681.2, 0.0, 533.0], [ 0.0, nan, 948.1], [ 0.0, 0.0, 1.0]]"),
            "camera 'cam01': matrix contains NaN",
        ),
        (
            _toml_camera(matrix="[ [ 1681.2, 0.0, 533.0], [ 0.0, 1681.1, 948.1]]"),
            "camera 'cam01': matrix must be 3x3",
        ),
        (
            _toml_camera(matrix="[ [ 1681.2, 0.0], [ 0.0, 1681.1, 948.1], [ 0.0, 0.0, 1.0]]"),
            "field 'matrix' must be numbers",
        ),
        (_toml_camera(rotation="[ 1.0, 2.0]"), "camera 'cam01': rotation must have 3 values"),
        (_toml_camera(translation=None), "missing field(s) ['translation']"),
        (_toml_camera(distortions="[ 0.1, 0.2, 0.3]"), "4, 5 or 8 coefficients"),
        (_toml_camera(fisheye="true"), "fisheye = true is not supported"),
        (_toml_camera(size="[ 1088.0, 0.0]"), "size must be two positive integers"),
        (
            _toml_camera("a", name='"same"') + _toml_camera("b", name='"same"'),
            "duplicate camera names ['same']",
        ),
        ("[cam01\nname = 1\n", "not valid TOML"),
        ("title = 'x'\n", "top-level key 'title' is not a camera table"),
        ("[metadata]\nadjusted = false\n", "no camera found"),
    ],
)
def test_bad_toml(tmp_path, text, expected):
    p = _write(tmp_path, "calib.toml", text)
    with pytest.raises(InputError) as e:
        read_calibration(p)
    assert expected in str(e.value)
    assert "calib.toml" in str(e.value)


def _yaml_matrix(key: str, rows: int, cols: int, data: str) -> str:
    return (
        f"{key}: !!opencv-matrix\n   rows: {rows}\n   cols: {cols}\n   dt: d\n   data: [ {data} ]\n"
    )


_GOOD_YAML_PARTS = {
    "w": "image_width: 640\n",
    "h": "image_height: 480\n",
    "K": _yaml_matrix("K", 3, 3, "500., 0., 320., 0., 500., 240., 0., 0., 1."),
    "D": _yaml_matrix("D", 1, 4, "0., 0., 0., 0."),
    "R": _yaml_matrix("rvec", 3, 1, "0., 0., 0."),
    "T": _yaml_matrix("tvec", 3, 1, "0., 0., 1000."),
}


def _yaml(**over) -> str:
    return "%YAML:1.0\n---\n" + "".join((_GOOD_YAML_PARTS | over).values())


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            _yaml(K=_yaml_matrix("K", 3, 3, "500., 0., 320., 0., .Nan, 240., 0., 0., 1.")),
            "camera 'calib': matrix contains NaN",
        ),
        (
            _yaml(K=_yaml_matrix("K", 2, 3, "500., 0., 320., 0., 500., 240.")),
            "camera 'calib': matrix must be 3x3",
        ),
        (
            _yaml(K=_yaml_matrix("K", 3, 3, "500., 0., 320.")),
            "line 5: opencv-matrix declares 3x3 but has 3 values",
        ),
        (
            _yaml(K="K: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"),
            "opencv-matrix lacks 'data'",
        ),
        (_yaml(K=""), "camera 'calib': missing field 'camera_matrix' / 'K'"),
        (_yaml(T=""), "missing field 'tvec' / 'T'"),
        (_yaml(w=""), "missing field 'image_width' / 'W'"),
        (
            _yaml(R=_yaml_matrix("R", 3, 3, "1., 0., 0., 0., 2., 0., 0., 0., 1.")),
            "'R' (3x3) is not a proper rotation",
        ),
        (_yaml(R=_yaml_matrix("R", 2, 1, "0., 0.")), "must be a 3x3 matrix or a 3-vector, found 2"),
        (_yaml(D=_yaml_matrix("D", 1, 3, "0., 0., 0.")), "4, 5 or 8 coefficients"),
        ("%YAML:1.0\n---\nnames: [ a, a ]\n", "duplicate camera names ['a']"),
        ("%YAML:1.0\n---\nnames: [ a ]\nK_b: 1\n", "camera 'a': no fields found"),
        ("%YAML:1.0\n---\nnames: a\n", "field 'names' must be a list"),
        ("%YAML:1.0\n---\n- 1\n- 2\n", "expected a mapping of calibration keys"),
        ("%YAML:1.0\n---\nK: [1, 2\n", "not valid OpenCV YAML"),
    ],
)
def test_bad_opencv_yaml(tmp_path, text, expected):
    p = _write(tmp_path, "calib.yml", text)
    with pytest.raises(InputError) as e:
        read_calibration(p)
    assert expected in str(e.value)
    assert "calib.yml" in str(e.value)


def test_good_yaml_helper_is_valid(tmp_path):
    """The base of the bad-YAML cases above reads without error (so each case tests one fault)."""
    (cam,) = read_calibration(_write(tmp_path, "calib.yml", _yaml()))
    np.testing.assert_allclose(cam.center, [0, 0, -1000])


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(
        InputError, match=r"calib\.json: unknown calibration extension '\.json'; expected \.toml"
    ):
        read_calibration(_write(tmp_path, "calib.json", "{}"))
    with pytest.raises(InputError, match=r"nothere\.toml: calibration file not found"):
        read_calibration(tmp_path / "nothere.toml")
    # a lab system's own file (Pose2Sim's demo ships its Qualisys one): how to convert it
    with pytest.raises(InputError, match=r"a Qualisys calibration: convert it to \.toml"):
        read_calibration(_write(tmp_path, "Calib.qca.txt", "<calibration/>"))


def test_write_refuses_bad_input(tmp_path):
    cams = _rig()
    with pytest.raises(InputError, match="duplicate camera names"):
        write_calibration([cams[0], cams[0]], tmp_path / "d.toml")
    with pytest.raises(InputError, match="no cameras to write"):
        write_calibration([], tmp_path / "e.toml")
    with pytest.raises(InputError, match="expects Camera objects"):
        write_calibration([{"name": "x"}], tmp_path / "f.toml")
    with pytest.raises(InputError, match="unknown calibration extension"):
        write_calibration(cams, tmp_path / "g.txt")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ hostile files
# A "billion laughs" YAML: ten anchors, each a list of nine aliases to the previous one
# (9**9 strings once expanded); about 1.5 kB.
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefghi", "bcdefghij")
    )
    + "camera_matrix: *j\n"
) * 3


def test_yaml_alias_bomb_is_refused(tmp_path):
    assert 1000 < len(ALIAS_BOMB) < 2000
    p = _write(tmp_path, "bomb.yml", ALIAS_BOMB)
    with pytest.raises(
        InputError,
        match=r"bomb\.yml: not valid OpenCV YAML at line 2: found alias \*a; YAML aliases are not accepted",
    ):
        read_calibration(p)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "deep.toml",
            "a = " + "[" * 5000 + "]" * 5000 + "\n",
            r"deep\.toml: TOML nested deeper than 64 levels",
        ),
        (
            "deep.yml",
            "a: " + "[" * 5000 + "]" * 5000 + "\n",
            r"deep\.yml: line 1: OpenCV YAML nested deeper than 64 levels",
        ),
        (
            "block.yml",
            "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "x: 1\n",
            r"block\.yml: not valid OpenCV YAML at line 6\d: nested deeper than 64 levels",
        ),
        (
            "big.toml",
            _toml_camera(size="[ " + "1" * 400 + ", 1920.0]"),
            r"big\.toml: TOML integer of 400 digits; expected a number below 2\*\*63",
        ),
        (
            "big.yml",
            OPENCV_SINGLE.replace("image_width: 1920", "image_width: " + "9" * 400),
            r"big\.yml: OpenCV YAML integer of 400 digits",
        ),
        (
            "rinf.yml",
            OPENCV_SINGLE.replace("rows: 3", "rows: .inf", 1),
            r"rinf\.yml: line 5: opencv-matrix: rows is inf; expected a whole number",
        ),
        (
            "rneg.yml",
            OPENCV_SINGLE.replace("rows: 3\n   cols: 3", "rows: -1\n   cols: -9", 1),
            r"rneg\.yml: line 5: opencv-matrix: rows is -1; expected a whole number from 1 to 1000",
        ),
        (
            "rbig.yml",
            OPENCV_SINGLE.replace("rows: 3", "rows: 100000000", 1),
            r"rbig\.yml: line 5: opencv-matrix: rows is 100000000; expected a whole number from 1 to 1000",
        ),
        (
            "wl.yml",
            OPENCV_SINGLE.replace("image_width: 1920", "image_width: [1920, 2]"),
            r"wl\.yml: camera 'wl': field 'image_width' is \[1920, 2\]; expected a number of pixels",
        ),
        (
            "wt.yml",
            OPENCV_SINGLE.replace("image_width: 1920", "image_width: wide"),
            r"wt\.yml: camera 'wt': field 'image_width' is 'wide'; expected a number of pixels",
        ),
        (
            "hinf.yml",
            OPENCV_SINGLE.replace("image_height: 1080", "image_height: .inf"),
            r"hinf\.yml: camera 'hinf': field 'image_height' is inf; expected a number of pixels",
        ),
    ],
)
def test_hostile_calibration_files(tmp_path, name, text, expected):
    with pytest.raises(InputError, match=expected):
        read_calibration(_write(tmp_path, name, text))


@pytest.mark.parametrize("name", ["c.toml", "c.yml"])
def test_binary_and_latin1_calibration(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(
        InputError,
        match=rf"{name}: line 1: byte 0x89 is not UTF-8 text; expected a UTF-8 calibration file",
    ):
        read_calibration(p)
    good = (
        _toml_camera("cam\u00e9")
        if name.endswith("toml")
        else OPENCV_SINGLE + 'name: "cam\u00e9"\n'
    )
    p.write_bytes(good.encode("latin-1"))
    line = 1 if name.endswith("toml") else good.count("\n")
    with pytest.raises(InputError, match=rf"{name}: line {line}: byte 0xe9 is not UTF-8 text"):
        read_calibration(p)


def test_folder_and_size_limits(tmp_path, monkeypatch):
    (tmp_path / "sub" / "calib.toml").mkdir(parents=True)
    with pytest.raises(
        InputError, match=r"calib\.toml: is a folder; expected a calibration file"
    ) as info:
        read_calibration(tmp_path / "sub" / "calib.toml")
    assert str(tmp_path) not in str(info.value)
    monkeypatch.setattr("medpose.io.calibration.MAX_YAML_BYTES", 100)
    with pytest.raises(
        InputError, match=r"s\.yml: file size \d+ bytes; expected at most 100 bytes"
    ):
        read_calibration(_write(tmp_path, "s.yml", OPENCV_SINGLE))
