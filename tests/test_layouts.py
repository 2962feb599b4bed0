"""Keypoint layouts as data: orders, mappings to medpose names, aliases, detection."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from medpose.errors import InputError
from medpose.layouts import (
    Layout,
    canonical_keypoints,
    detect_layout,
    get_layout,
    list_layouts,
    lr_pair_indices,
    lr_pairs,
    to_medpose_names,
)

EXPECTED_COUNTS = {"coco17": 17, "halpe26": 26, "mediapipe33": 33, "body25": 25, "h36m17": 17}


def test_every_layout_loads_with_its_count() -> None:
    assert sorted(list_layouts()) == sorted(EXPECTED_COUNTS)
    for name, n in EXPECTED_COUNTS.items():
        lay = get_layout(name)
        assert isinstance(lay, Layout) and lay.name == name and len(lay) == n
        assert len(lay.medpose) == len(lay.aliases) == n
        assert len(set(lay.native)) == n and len(set(lay.medpose)) == n  # one-to-one
        assert lay.source.startswith("https://")


def test_every_medpose_name_is_canonical() -> None:
    table = canonical_keypoints()
    for name in list_layouts():
        unknown = [m for m in get_layout(name).medpose if m not in table]
        assert not unknown, f"{name}: {unknown} not in resources/keypoints.yaml"
    assert table["knee_l"]["segment"] == "thigh_l"


def test_names_map_to_one_medpose_name_across_layouts() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for name in list_layouts():
        for k, v in get_layout(name).mapping.items():
            seen[k.casefold()].add(v)
    for k in canonical_keypoints():
        seen[k.casefold()].add(k)
    clashes = {k: v for k, v in seen.items() if len(v) > 1}
    assert not clashes


@pytest.mark.parametrize(
    "layout,index,native,medpose",
    [
        # COCO keypoint order (cocodataset.org)
        ("coco17", 0, "nose", "nose"),
        ("coco17", 11, "left_hip", "hip_l"),
        ("coco17", 16, "right_ankle", "ankle_r"),
        # OpenPose BODY_25 (doc/02_output.md)
        ("body25", 1, "Neck", "neck"),
        ("body25", 8, "MidHip", "pelvis"),
        ("body25", 24, "RHeel", "heel_r"),
        ("body25", 19, "LBigToe", "big_toe_l"),
        # HALPE_26 (Halpe-FullBody README)
        ("halpe26", 17, "Head", "head_top"),
        ("halpe26", 18, "Neck", "neck"),
        ("halpe26", 19, "Hip", "pelvis"),
        ("halpe26", 25, "RHeel", "heel_r"),
        # MediaPipe Pose 33
        ("mediapipe33", 0, "nose", "nose"),
        ("mediapipe33", 31, "left_foot_index", "big_toe_l"),
        ("mediapipe33", 19, "left_index", "index_l"),
        ("mediapipe33", 9, "mouth_left", "mouth_l"),
        # Human3.6M 17 as in VideoPose3D
        ("h36m17", 0, "Hip", "pelvis"),
        ("h36m17", 3, "RFoot", "ankle_r"),
        ("h36m17", 7, "Spine", "spine"),
        ("h36m17", 8, "Thorax", "thorax"),
        ("h36m17", 9, "Neck/Nose", "nose"),
        ("h36m17", 10, "Head", "head_top"),
        ("h36m17", 16, "RWrist", "wrist_r"),
    ],
)
def test_known_positions(layout: str, index: int, native: str, medpose: str) -> None:
    lay = get_layout(layout)
    assert lay.native[index] == native and lay.medpose[index] == medpose


def test_pose2sim_marker_names_are_aliases(shared_data: Path) -> None:
    xml = (shared_data / "pose2sim" / "Markers_Halpe26.xml").read_text()
    markers = re.findall(r'<Marker name="([^"]+)"', xml)
    assert len(markers) == 22
    mapped = to_medpose_names(markers)
    assert set(mapped) <= set(canonical_keypoints()), [
        m for m in mapped if m not in canonical_keypoints()
    ]
    assert dict(zip(markers, mapped))["Hip"] == "pelvis"
    assert set(mapped) <= set(get_layout("halpe26").medpose)


def test_to_medpose_names() -> None:
    assert to_medpose_names(
        ["left_hip", "MidHip", "CHip", "RBigToe", "Lknee", "Rknee", "hip_r", "RASI"]
    ) == ("hip_l", "pelvis", "pelvis", "big_toe_r", "knee_l", "knee_r", "hip_r", "RASI")
    assert to_medpose_names(["LEFT_HIP", "rshoulder"]) == (
        "hip_l",
        "shoulder_r",
    )  # case-insensitive fallback
    assert to_medpose_names([]) == ()


def test_detect_layout() -> None:
    assert detect_layout(25).name == "body25"
    assert detect_layout(26).name == "halpe26"
    assert detect_layout(33).name == "mediapipe33"
    assert detect_layout(17).name == "coco17"
    assert detect_layout(17, prefer="h36m17").name == "h36m17"
    with pytest.raises(
        InputError,
        match=r"no known keypoint layout has 18 keypoints; expected one of \[17, 25, 26, 33\]",
    ):
        detect_layout(18)
    with pytest.raises(InputError, match=r"layout h36m17 has 17 keypoints, but 25 were found"):
        detect_layout(25, prefer="h36m17")


def test_get_layout_names() -> None:
    assert get_layout("BODY_25") is get_layout("body25")
    with pytest.raises(
        InputError, match=r"unknown keypoint layout 'coco133'; known layouts: \['coco17'"
    ):
        get_layout("coco133")


def test_layout_validation() -> None:
    with pytest.raises(InputError, match=r"layout x: 2 native names but 1 medpose names"):
        Layout("x", ("a", "b"), ("a",))
    lay = Layout("y", ("a",), ("nose",))
    assert lay.aliases == ((),) and lay.mapping == {"a": "nose"}


def test_lr_pairs_by_name_and_by_index() -> None:
    names = ["nose", "knee_r", "knee_l", "hip_l", "ankle_l", "ankle_r", "wrist_l"]
    assert lr_pairs(names) == [("knee_l", "knee_r"), ("ankle_l", "ankle_r")]
    assert lr_pair_indices(names) == [(2, 1), (4, 5)]
    assert lr_pairs(get_layout("mediapipe33").medpose)[0] == ("eye_inner_l", "eye_inner_r")
    assert len(lr_pairs(get_layout("mediapipe33").medpose)) == 16  # 33 = nose + 16 pairs
    assert lr_pairs([]) == [] and lr_pairs(iter(["a_l", "a_r"])) == [("a_l", "a_r")]
