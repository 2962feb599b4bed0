"""OpenPose JSON folders: the real MediaPipe detections of the Pose2Sim demo, round trips, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.io.keypoints import read_keypoints
from medpose.io.openpose import DEFAULT_RATE, read_openpose, read_openpose_people, write_openpose
from medpose.layouts import get_layout


@pytest.fixture(scope="module")
def cam_dirs(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "pose2sim" / "keypoints-mediapipe").glob("cam0*_json"))


def raw(path: Path) -> np.ndarray:
    return np.asarray(json.loads(path.read_text())["people"][0]["pose_keypoints_2d"]).reshape(-1, 3)


def test_real_mediapipe_folders(cam_dirs: list[Path]) -> None:
    assert [d.name for d in cam_dirs] == ["cam01_json", "cam02_json", "cam03_json", "cam04_json"]
    for d in cam_dirs:
        seq = read_openpose(d, rate=60)
        assert seq.positions.shape == (100, 33, 2) and seq.confidence.shape == (100, 33)
        assert seq.frame == d.name[:-5] and seq.rate == 60.0 and seq.start == 0.0
        assert seq.names == get_layout("mediapipe33").medpose
        for i in (0, 37, 99):
            k = raw(d / f"{d.name[:-5]}_{i:06d}.json")
            np.testing.assert_array_equal(seq.positions[i], k[:, :2])
            np.testing.assert_array_equal(seq.confidence[i], k[:, 2])


def test_real_values_by_name(cam_dirs: list[Path]) -> None:
    seq = read_openpose(cam_dirs[0], rate=60)
    # cam01_000000.json: nose is the first triplet, left_foot_index (big_toe_l) the 32nd
    np.testing.assert_array_equal(seq["nose"][0], [509.309, 444.114])
    np.testing.assert_array_equal(seq["big_toe_l"][0], [435.378, 1153.563])
    assert seq.confidence[0, seq.index("big_toe_l")] == 0.985
    native = read_openpose(cam_dirs[0], rename=False)
    assert native.names[31] == "left_foot_index" and native.rate == DEFAULT_RATE == 30.0


@pytest.fixture
def small_folder(tmp_path: Path, cam_dirs: list[Path]) -> Path:
    """Frames 0-5 of cam02, frame 2 with no person, frame 4 deleted, a zero point in frame 1."""
    d = tmp_path / "cam02_json"
    d.mkdir()
    for i in range(6):
        shutil.copy(cam_dirs[1] / f"cam02_{i:06d}.json", d)
    (d / "cam02_000002.json").write_text(json.dumps({"version": 1.3, "people": []}))
    (d / "cam02_000004.json").unlink()
    doc = json.loads((d / "cam02_000001.json").read_text())
    doc["people"][0]["pose_keypoints_2d"][3 * 7 : 3 * 7 + 3] = [0, 0, 0]
    (d / "cam02_000001.json").write_text(json.dumps(doc))
    return d


def test_empty_frames_gaps_and_zero_points(small_folder: Path, cam_dirs: list[Path]) -> None:
    with pytest.warns(UserWarning, match=r"cam02_json: 1 frame number\(s\) missing .*: 4;"):
        seq = read_openpose(small_folder, rate=60)
    assert seq.n_frames == 6 and seq.frame == "cam02"
    for i in (2, 4):  # people: [] and a missing file
        assert np.isnan(seq.positions[i]).all() and not seq.confidence[i].any()
    assert np.isnan(seq.positions[1, 7]).all() and seq.confidence[1, 7] == 0
    assert np.isfinite(seq.positions[1, 6]).all()
    np.testing.assert_array_equal(seq.positions[5], raw(cam_dirs[1] / "cam02_000005.json")[:, :2])


def test_read_keypoints_dispatches_folders(small_folder: Path) -> None:
    with pytest.warns(UserWarning, match=r"cam02_json: .* missing"):
        seq = read_keypoints(small_folder, rate=60)
    assert seq.ndim == 2 and seq.n_keypoints == 33
    with pytest.raises(InputError, match=r"cam02_json: 1 frame number\(s\) missing .*: 4;"):
        read_keypoints(small_folder, rate=60, missing_frames="error")


def test_missing_frames_policy(small_folder: Path) -> None:
    """missing_frames="error" names the folder and every missing number; "warn" keeps NaN."""
    (small_folder / "cam02_000001.json").unlink()
    with pytest.raises(
        InputError, match=r"cam02_json: 2 frame number\(s\) missing between 0 and 5 .*: 1, 4;"
    ):
        read_openpose(small_folder, missing_frames="error")
    with pytest.warns(
        UserWarning, match=r"missing between 0 and 5 .*: 1, 4; they are kept as all-NaN"
    ):
        seq = read_openpose(small_folder, missing_frames="warn")
    assert seq.n_frames == 6 and np.isnan(seq.positions[[1, 4]]).all()
    with pytest.raises(InputError, match=r"missing_frames='ignore'; expected 'warn' or 'error'"):
        read_openpose(small_folder, missing_frames="ignore")  # type: ignore[arg-type]


def test_real_folders_have_no_missing_frames(cam_dirs: list[Path]) -> None:
    for d in cam_dirs:
        assert read_openpose(d, rate=60, missing_frames="error").n_frames == 100


def _body25_doc(people: list[np.ndarray]) -> str:
    return json.dumps(
        {
            "version": 1.3,
            "people": [
                {"person_id": [-1], "pose_keypoints_2d": p.reshape(-1).tolist()} for p in people
            ],
        }
    )


def test_people_slots_and_openpose_naming(tmp_path: Path) -> None:
    d = tmp_path / "video"
    d.mkdir()
    a = np.tile([[100.0, 200.0, 0.9]], (25, 1))
    b = np.tile([[300.0, 50.0, 0.5]], (25, 1))
    (d / "video_000000000010_keypoints.json").write_text(_body25_doc([a, b]))
    (d / "video_000000000011_keypoints.json").write_text(_body25_doc([a]))
    (d / "notes.txt").write_text("ignored")
    p1 = read_openpose(d, person=1, rate=25)
    assert p1.names[8] == "pelvis" and p1.frame == "video"  # BODY_25 detected, MidHip -> pelvis
    assert p1.start == pytest.approx(10 / 25)
    np.testing.assert_array_equal(p1.positions[0, 0], [300, 50])
    assert np.isnan(p1.positions[1]).all()
    people = read_openpose_people(d, rate=25)
    assert len(people) == 2
    np.testing.assert_array_equal(people[0].confidence, np.full((2, 25), 0.9))
    assert read_openpose(d, person=5).confidence.sum() == 0


def test_h36m_layout_on_request(tmp_path: Path) -> None:
    d = tmp_path / "h_json"
    d.mkdir()
    (d / "f_0.json").write_text(_body25_doc([np.ones((17, 3))]))
    assert read_openpose(d).names[0] == "nose"  # 17 -> COCO by default
    assert read_openpose(d, layout="h36m17").names[:3] == ("pelvis", "hip_r", "knee_r")


@pytest.mark.parametrize("exists", [False, True])
def test_round_trip(tmp_path: Path, cam_dirs: list[Path], exists: bool) -> None:
    seq = read_openpose(cam_dirs[2], rate=60).slice(10, 30)
    out = tmp_path / "out_json"
    if exists:
        out.mkdir()
    write_openpose(seq, out)
    files = sorted(out.iterdir())
    assert len(files) == 20 and files[0].name == "cam03_000000000010_keypoints.json"
    back = read_openpose(out, rate=60)
    assert (
        back.names == seq.names and back.frame == "out" and back.start == pytest.approx(seq.start)
    )
    np.testing.assert_allclose(back.positions, seq.positions, atol=1e-6)
    np.testing.assert_allclose(back.confidence, seq.confidence, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["out_json"]  # no temporary folder left


def test_write_missing_points_and_native_names(tmp_path: Path) -> None:
    lay = get_layout("coco17")
    pos = np.arange(3 * 17 * 2, dtype=float).reshape(3, 17, 2) + 1
    pos[0, 3] = np.nan
    pos[1] = np.nan
    seq = KeypointSequence(pos, lay.native, 30.0)
    write_openpose(seq, tmp_path / "c_json", prefix="c")
    docs = [json.loads(p.read_text()) for p in sorted((tmp_path / "c_json").iterdir())]
    assert docs[1]["people"] == []
    assert docs[0]["people"][0]["pose_keypoints_2d"][9:12] == [0, 0, 0]
    back = read_openpose(tmp_path / "c_json")
    np.testing.assert_array_equal(np.isnan(back.positions), np.isnan(pos))


def test_write_errors(tmp_path: Path) -> None:
    seq3d = KeypointSequence(np.zeros((2, 17, 3)), get_layout("coco17").medpose, 30.0)
    with pytest.raises(InputError, match=r"o_json.*2D keypoints in pixels.*3D"):
        write_openpose(seq3d, tmp_path / "o_json")
    odd = KeypointSequence(np.zeros((2, 2, 2)), ("nose", "c7"), 30.0)
    with pytest.raises(InputError, match=r"o_json.*no layout has exactly the keypoints"):
        write_openpose(odd, tmp_path / "o_json")
    with pytest.raises(InputError, match=r"o_json.*keypoints \['c7'\] are not in layout coco17"):
        write_openpose(odd, tmp_path / "o_json", layout="coco17")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file.*not a folder"):
        write_openpose(odd.select(["nose"]), tmp_path / "file", layout="coco17")
    assert not (tmp_path / "o_json").exists()


# ----------------------------------------------------------------------------- bad input
def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "bad_json"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return d


GOOD = _body25_doc([np.ones((25, 3)) * 0.5])


@pytest.mark.parametrize(
    "files,kw,pattern",
    [
        ({}, {}, r"bad_json: no \.json files"),
        ({"a.json": GOOD}, {}, r"a\.json: file name has no trailing frame number"),
        ({"a_1.json": GOOD, "b_01.json": GOOD}, {}, r"bad_json: two files have frame number 1"),
        ({"a_1.json": "{not json"}, {}, r"a_1\.json: invalid JSON at line 1"),
        ({"a_1.json": "{}"}, {}, r"a_1\.json: field 'people' missing"),
        (
            {"a_1.json": '{"people": [{"face": []}]}'},
            {},
            r"a_1\.json: people\[0\] has no 'pose_keypoints_2d'",
        ),
        (
            {"a_1.json": '{"people": [{"pose_keypoints_2d": [1, 2]}]}'},
            {},
            r"a_1\.json: .*has 2 values.*triplets",
        ),
        (
            {"a_1.json": '{"people": [{"pose_keypoints_2d": ["a", "b", "c"]}]}'},
            {},
            r"a_1\.json: .*non-numeric",
        ),
        (
            {"a_1.json": GOOD, "a_2.json": _body25_doc([np.ones((26, 3))])},
            {},
            r"a_2\.json: people\[0\] has 26 keypoints; earlier frames have 25",
        ),
        (
            {"a_1.json": GOOD},
            {"layout": "halpe26"},
            r"bad_json: files have 25 keypoints.*halpe26 has 26",
        ),
        ({"a_1.json": '{"people": []}'}, {}, r"bad_json: no frame has a person.*layout="),
        (
            {"a_1.json": _body25_doc([np.ones((20, 3))])},
            {},
            r"no known keypoint layout has 20 keypoints",
        ),
        (
            {"a_1.json": _body25_doc([np.full((25, 3), 2.0)])},
            {},
            r"bad_json: confidences range from 2.*\[0, 1\]",
        ),
        ({"a_1.json": GOOD}, {"person": -1}, r"bad_json: person is -1; expected an integer >= 0"),
        (
            {"a_1.json": GOOD},
            {"layout": "coco_wholebody"},
            r"unknown keypoint layout 'coco_wholebody'",
        ),
    ],
)
def test_bad_folders(tmp_path: Path, files: dict, kw: dict, pattern: str) -> None:
    d = _folder(tmp_path, files)
    with pytest.raises(InputError, match=pattern):
        read_openpose(d, **kw)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope_json: OpenPose folder not found"):
        read_openpose(tmp_path / "nope_json")


def test_all_empty_with_layout_gives_nan(tmp_path: Path) -> None:
    d = _folder(tmp_path, {"a_0.json": '{"people": []}', "a_1.json": '{"people": []}'})
    seq = read_openpose(d, layout="body25")
    assert seq.positions.shape == (2, 25, 2) and np.isnan(seq.positions).all()
    assert read_openpose_people(d, layout="body25") == []
