"""``medpose calibrate`` and ``medpose fit``: the patient skeleton file and its identifier, and
bad input refused before any work, on markers OpenSim generated from Pose2Sim's model
(``tests/data/opensim``).  What the ``.mot`` holds against OpenSim's own coordinates is tested in
``tests/kinematics/test_calibrate_opensim.py``."""

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


def test_a_patient_file_of_another_patient_is_refused(tmp_path, capsys):
    pat = tmp_path / "p.yaml"
    assert main(["calibrate", str(TRC), str(pat), "--patient-id", "SECRET-4711"]) == 0
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


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
        (["fit", "{trc}", "-o", "{d}/a.csv", "--model", "nosuch"], "OpenSim model 'nosuch'"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--osim", "{d}/no.osim"], "--osim: no.osim"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--zero-from-model"], "expected --osim FILE"),
        (["fit", "{trc}", "-o", "{d}/a.mot", "--markers", "{trc}"], "--markers: applies with"),
        (
            [
                "fit",
                "{trc}",
                "-o",
                "{d}/a.mot",
                "--osim",
                "{trc}",
                "--zero-from-model",
                "--markers",
                "{d}/no.xml",
            ],
            "--markers: no.xml: file not found",
        ),
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


def test_triangulate_writes_what_the_api_triangulates(shared_data, tmp_path, capsys):
    """``medpose triangulate`` on the real four-camera recording (MediaPipe keypoints of
    Pose2Sim's demo): the file holds ``mp.triangulate``'s points (cameras named by their folders,
    or explicitly), those the fit would leave out for their confidence missing (a .trc holds no
    confidence), and ``medpose fit`` reads it."""
    d = shared_data / "pose2sim"
    folders = sorted((d / "keypoints-mediapipe").glob("cam0*_json"))
    views = [str(f) for f in folders[:-1]] + [f"cam04={folders[-1]}"]
    out = tmp_path / "tri.trc"
    code = main(["triangulate", str(d / "Calib_qualisys.toml"), *views, "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "TriangulationResult(100 frames" in printed.out and f"wrote {out}" in printed.out
    cams = mp.read_calibration(d / "Calib_qualisys.toml")
    api = mp.triangulate(
        cams, {f.name.removesuffix("_json"): mp.read_keypoints(f) for f in folders}
    ).sequence
    got = mp.read_keypoints(out)
    assert list(got.names) == list(api.names)
    low = api.confidence < 0.3  # mp.fit's min_confidence: the API's fit leaves these out
    assert 0 < low.sum() < low.size
    kept = np.where(low[..., None], np.nan, api.positions)
    np.testing.assert_allclose(got.positions, kept, atol=0.01, equal_nan=True)
    assert f"note: {int((low & np.isfinite(api.positions).all(-1)).sum())} points" in printed.out
    assert main(["fit", str(out), "--calibrate", "never", "-o", str(tmp_path / "a.csv")]) == 0


def test_triangulate_to_csv_fits_as_the_api_does(shared_data, tmp_path, capsys):
    """A .csv keeps the 3D confidence: ``medpose fit`` of ``medpose triangulate``'s .csv gives
    the angles of ``mp.fit(mp.triangulate(...).sequence)`` (unreliable points left out, the
    others weighed by their confidence), on the real four-camera recording."""
    d = shared_data / "pose2sim"
    folders = sorted((d / "keypoints-mediapipe").glob("cam0*_json"))
    calib = d / "Calib_qualisys.toml"
    tri, angles = tmp_path / "tri.csv", tmp_path / "cli.csv"
    assert main(["triangulate", str(calib), *map(str, folders), "--out", str(tri)]) == 0
    assert "note:" not in capsys.readouterr().out  # nothing dropped: the confidence is kept
    code = main(["fit", str(tri), "--rate", "30", "--calibrate", "never", "-o", str(angles)])
    assert code == 0
    cams = mp.read_calibration(calib)
    api = mp.triangulate(
        cams, {f.name.removesuffix("_json"): mp.read_keypoints(f) for f in folders}
    ).sequence
    np.testing.assert_allclose(mp.read_keypoints(tri).confidence, api.confidence, atol=1e-5)
    mp.fit(api, calibrate=False).to_csv(tmp_path / "api.csv")
    cli, ref = pd.read_csv(angles), pd.read_csv(tmp_path / "api.csv")
    assert list(cli.columns) == list(ref.columns)
    np.testing.assert_allclose(cli.to_numpy(float), ref.to_numpy(float), atol=0.01, equal_nan=True)


def test_triangulate_y_up_gives_opensim_an_upright_body(shared_data, tmp_path, capsys):
    """Pose2Sim's demo recording is in its Qualisys lab's Z-up world.  ``--y-up`` writes it as
    Pose2Sim's own triangulation does (its ``zup2yup``: X, Y, Z = the world's y, z, x), so the
    ``.mot`` of the fit has an upright pelvis: its list (obliquity, a few degrees in walking)
    stays within 30 deg, where from the Z-up file it reads up to about 90 deg (the body on its
    side) and ``to_mot`` warns."""
    d = shared_data / "pose2sim"
    views = [str(f) for f in sorted((d / "keypoints-mediapipe").glob("cam0*_json"))]
    calib = str(d / "Calib_qualisys.toml")
    zup, yup = tmp_path / "z.trc", tmp_path / "y.trc"
    assert main(["triangulate", calib, *views, "--rate", "60", "--out", str(zup)]) == 0
    assert main(["triangulate", calib, *views, "--rate", "60", "--y-up", "--out", str(yup)]) == 0
    printed = capsys.readouterr()
    assert "axes turned Y up: (X, Y, Z) = world (y, z, x)" in printed.out, printed.out
    z, y = mp.read_keypoints(zup), mp.read_keypoints(yup)
    np.testing.assert_allclose(y.positions, z.positions[..., [1, 2, 0]], equal_nan=True)

    runs = {"y": (yup, []), "z": (zup, []), "z_turned": (zup, ["--y-up"])}
    for name, (trc, extra) in runs.items():
        mot = str(tmp_path / f"{name}.mot")
        code = main(["fit", str(trc), "--calibrate", "never", "--no-progress", *extra, "-o", mot])
        assert code == 0
    printed = capsys.readouterr()
    assert printed.err.count("up axis is +z, OpenSim's is +y") == 1, printed.err
    mot = {name: mp.read_mot(tmp_path / f"{name}.mot", translations="keep") for name in runs}
    pel = {k: m.values[:, m.names.index("pelvis_list")] for k, m in mot.items()}
    assert np.abs(pel["y"]).max() < 30.0
    assert np.abs(pel["z"]).max() > 60.0  # on its side: why --y-up exists
    # fit --y-up on the Z-up file writes what the fit of the turned file writes
    assert mot["z_turned"].names == mot["y"].names
    np.testing.assert_allclose(mot["z_turned"].values, mot["y"].values, atol=1e-4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--up", "+z"], "--up: applies with --y-up"),
        (["--y-up", "--up", "sideways"], "up='sideways': expected one of"),
    ],
)
def test_triangulate_refuses_a_bad_up_axis(shared_data, tmp_path, capsys, extra, message):
    d = shared_data / "pose2sim"
    views = [str(f) for f in sorted((d / "keypoints-mediapipe").glob("cam0*_json"))[:2]]
    out = tmp_path / "a.trc"
    code = main(["triangulate", str(d / "Calib_qualisys.toml"), *views, *extra, "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 1 and message in printed.err, printed.err
    assert not out.exists()


@pytest.mark.parametrize(
    "views, out, message",
    [
        (["{d}/cam01_json", "{tmp}/camX_json"], "a.trc", "VIEW 'camX_json': no camera"),
        (["{d}/cam01_json", "camZ={d}/cam02_json"], "a.trc", "no camera 'camZ'"),
        (["{d}/cam01_json"], "a.trc", "needs at least 2"),
        (["{d}/cam01_json", "cam01={d}/cam02_json"], "a.trc", "given twice"),
        (["{d}/cam01_json", "{d}/cam02_json"], "a.mot", "--out: expected a .trc, .csv, .parquet"),
    ],
)
def test_triangulate_refuses_bad_views(shared_data, tmp_path, capsys, views, out, message):
    d = shared_data / "pose2sim"
    (tmp_path / "camX_json").mkdir()
    argv = [v.format(d=d / "keypoints-mediapipe", tmp=tmp_path) for v in views]
    code = main(
        ["triangulate", str(d / "Calib_qualisys.toml"), *argv, "--out", str(tmp_path / out)]
    )
    printed = capsys.readouterr()
    assert code == 1 and message in printed.err, printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camX_json"]
