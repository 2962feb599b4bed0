"""Keypoint models (resources/keypoint_models/*.yaml): coverage of every layout, a source for
every value, the Pose2Sim marker set measured again in OpenSim, renaming and bad input."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import medpose as mp
from medpose.errors import InputError
from medpose.io.uiprmd import UIPRMD_NAMES
from medpose.kinematics import (
    KeypointModel,
    Skeleton,
    forward_kinematics,
    keypoint_model_for,
    list_keypoint_models,
    load_keypoint_model,
)
from medpose.kinematics.patient import estimate_skeleton
from medpose.layouts import get_layout, list_layouts

MODEL_DIR = Path(mp.__file__).parent / "resources" / "keypoint_models"


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1700.0)


# ------------------------------------------------------------------------- coverage, sources
def test_every_layout_has_a_model_covering_all_its_keypoints():
    assert sorted(p.stem for p in MODEL_DIR.glob("*.yaml")) == sorted(list_keypoint_models())
    layouts = {name: get_layout(name).native for name in list_layouts()}
    layouts["kinect_v2"] = UIPRMD_NAMES
    for name, native in layouts.items():
        model = keypoint_model_for(native)
        assert model.name == name and model.layout == name
        assert model.native_names == tuple(native)
    # the Pose2Sim marker model covers HALPE_26 too
    assert load_keypoint_model("pose2sim_halpe26").native_names == get_layout("halpe26").native


@pytest.mark.parametrize("name", list_keypoint_models())
def test_every_value_has_a_source(name, sk):
    model = load_keypoint_model(name)
    for k in model.keypoints:
        assert k.source["medpose"].strip(), (name, k.native)
        if k.medpose is None:
            assert k.segment is None and k.offset is None and k.sd_mm is None
            continue
        for value in ("offset", "sd_mm"):
            text = k.source[value]
            kind = k.kind(value)
            if kind == "published":  # a citation: author and year
                assert re.search(r"[A-Z][a-z]+.*(19|20)\d\d", text), (name, k.native, text)
            assert len(text.split()) >= 4, (name, k.native, value, text)
        if k.offset is None:  # medpose's default position: said so
            assert k.kind("offset") == "default", (name, k.native)
        else:  # a number: measured or published, never a silent default
            assert k.kind("offset") in ("measured", "published"), (name, k.native)
        assert k.sd_mm is not None and 0 < k.sd_mm <= 100
        # the medpose keypoint fixes the segment, as the skeleton has it
        seg = sk.segment_names[sk.keypoint_segment[sk.keypoint_index(k.medpose)]]
        assert seg == k.segment, (name, k.native)


def test_what_is_measured_published_and_default():
    p2s = load_keypoint_model("pose2sim_halpe26")
    assert p2s.counts("offset") == {"measured": 22, "published": 0, "default": 4, "assumption": 0}
    assert {k.native for k in p2s.keypoints if k.offset is None} == {"LEye", "REye", "LEar", "REar"}
    halpe = load_keypoint_model("halpe26")
    published = {k.native for k in halpe.keypoints if k.kind("sd_mm") == "published"}
    assert published == {"LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle"}
    assert halpe.sd_mm()["ankle_r"] == 15.0 and halpe.sd_mm()["hip_r"] == 50.0
    kin = load_keypoint_model("kinect_v2")
    assert kin.keypoint("waist").medpose == "pelvis" and kin.keypoint("waist").kind() == "measured"
    assert kin.keypoint("kinect_head").medpose is None


# ------------------------------------------------------------------------- apply, prior, rename
def test_apply_and_prior_scale_with_the_skeleton(sk):
    model = load_keypoint_model("pose2sim_halpe26")
    offsets, sd = model.prior(sk)
    assert set(offsets) == set(sd) == set(model.medpose_names)
    assert "acromion_r" in offsets and "shoulder_r" not in offsets
    applied = model.apply(sk)
    for name, xyz in offsets.items():
        np.testing.assert_allclose(applied.keypoint_offsets[applied.keypoint_index(name)], xyz)
    # keypoints the model does not name keep their place
    i = sk.keypoint_index("c7")
    np.testing.assert_allclose(applied.keypoint_offsets[i], sk.keypoint_offsets[i])
    # fractions of a length scale with it; default entries are skeleton.yaml's position
    long = sk.with_lengths({"thigh": 2 * sk.lengths["thigh_r"]})
    np.testing.assert_allclose(model.prior(long)[0]["knee_r"], 2 * offsets["knee_r"])
    halpe = load_keypoint_model("halpe26")
    np.testing.assert_allclose(
        halpe.prior(sk)[0]["knee_r"], sk.keypoint_offsets[sk.keypoint_index("knee_r")]
    )
    # the default position is skeleton.yaml's even on a skeleton with explicit offsets
    moved = sk.with_offsets({"knee_r": [5.0, -400.0, 3.0]})
    np.testing.assert_allclose(halpe.prior(moved)[0]["knee_r"], [0, -sk.lengths["thigh_r"], 0])


def test_rename_maps_layout_names_to_the_models_keypoints():
    seq = mp.KeypointSequence(
        np.zeros((2, 4, 3)), ["RShoulder", "shoulder_l", "RHip", "Rknee"], 30.0, frame="lab"
    )
    p2s = load_keypoint_model("pose2sim_halpe26").rename(seq)
    assert p2s.names == ("acromion_r", "acromion_l", "hip_r", "knee_r") and p2s.frame == "lab"
    halpe = load_keypoint_model("halpe26").rename(seq)
    assert halpe.names == ("shoulder_r", "shoulder_l", "hip_r", "knee_r")
    kin = mp.KeypointSequence(np.zeros((1, len(UIPRMD_NAMES), 3)), UIPRMD_NAMES, 30.0)
    renamed = keypoint_model_for(kin).rename(kin)
    assert renamed.names[UIPRMD_NAMES.index("waist")] == "pelvis"
    assert renamed.names[UIPRMD_NAMES.index("kinect_head")] == "kinect_head"


def test_model_choice_from_names():
    assert keypoint_model_for(get_layout("halpe26").medpose).name == "halpe26"
    assert keypoint_model_for(get_layout("body25").native).name == "body25"
    assert keypoint_model_for(get_layout("h36m17").native).name == "h36m17"
    assert keypoint_model_for(get_layout("mediapipe33").medpose).name == "mediapipe33"
    assert keypoint_model_for(["left_hip", "right_knee"]).name == "coco17"  # subset: smallest
    with pytest.raises(InputError, match=r"RASI.*known models"):
        keypoint_model_for(["hip_r", "RASI"])


def test_repr_and_html():
    model = load_keypoint_model("pose2sim_halpe26")
    assert repr(model).startswith("KeypointModel('pose2sim_halpe26', layout halpe26, 26 keypoints")
    assert "22 measured" in repr(model)
    page = model._repr_html_()
    assert "<table>" in page and "acromion_r" in page and "measured" in page
    assert isinstance(mp.load_keypoint_model("coco17"), mp.KeypointModel)


# ------------------------------------------------------------------------- bad input
def _write(tmp_path, doc) -> Path:
    p = tmp_path / "model.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def _doc() -> dict:
    return yaml.safe_load((MODEL_DIR / "coco17.yaml").read_text())


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(InputError, match=r"unknown keypoint model 'halpe'.*pose2sim_halpe26"):
        load_keypoint_model("halpe")
    with pytest.raises(InputError, match="not found"):
        load_keypoint_model("/nonexistent/model.yaml")


def test_a_model_file_must_match_its_layout(tmp_path):
    assert load_keypoint_model(_write(tmp_path, _doc())).layout == "coco17"
    doc = _doc()
    del doc["keypoints"][3]  # left_ear
    with pytest.raises(InputError, match=r"model\.yaml.*missing \['left_ear'\]"):
        load_keypoint_model(_write(tmp_path, doc))
    doc = _doc()
    doc["keypoints"][0]["native"] = "Snout"
    with pytest.raises(InputError, match=r"model\.yaml.*'Snout'.*expected each of"):
        load_keypoint_model(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"medpose": "elbow_x"}, r"keypoint nose: medpose keypoint 'elbow_x'"),
        ({"sd_mm": -3}, r"keypoint nose: sd_mm must be a positive"),
        ({"sd_mm": None}, r"keypoint nose: sd_mm must be a positive"),
        ({"offset": {"tibia": [0, 1, 0]}}, r"keypoint nose: unknown length 'tibia'"),
        ({"offset": {"head": [0, 1]}}, r"keypoint nose: offset term 'head' must be 3"),
        ({"offset": 12}, r"keypoint nose: offset must be 'default'"),
        ({"source": {"medpose": "x", "offset": "y"}}, r"keypoint nose: no source for 'sd_mm'"),
        ({"source": "Needham 2021"}, r"keypoint nose: 'source' must map"),
    ],
)
def test_bad_entries_name_the_file_and_the_keypoint(tmp_path, change, message):
    doc = _doc()
    doc["keypoints"][0].update(change)
    with pytest.raises(InputError, match=r"model\.yaml: " + message):
        load_keypoint_model(_write(tmp_path, doc))


def test_rename_refuses_another_layout():
    seq = mp.KeypointSequence(np.zeros((1, 2, 3)), ["left_hip", "RASI"], 30.0)
    with pytest.raises(
        InputError,
        match=r"coco17\.yaml\) is for layout coco17, but the sequence's keypoints \['RASI'\] "
        r"are not in it \(its names are those of no layout medpose knows\)",
    ):
        load_keypoint_model("coco17").rename(seq)
    # a whole sequence of another layout: the message says which layout its names are
    halpe = list(get_layout("halpe26").native)
    seq = mp.KeypointSequence(np.zeros((1, len(halpe), 3)), halpe, 30.0)
    with pytest.raises(InputError, match=r"'Head'.*those of layout halpe26\).*'left_hip'"):
        load_keypoint_model("coco17").rename(seq)
    seq = mp.KeypointSequence(np.zeros((1, 2, 3)), ["RShoulder", "acromion_r"], 30.0)
    with pytest.raises(InputError, match="would all be named"):
        load_keypoint_model("pose2sim_halpe26").rename(seq)


# ------------------------------------------------------------------------- OpenSim
@functools.cache
def _opensim_model(data: Path):
    """Pose2Sim's OpenSim model with its HALPE_26 marker set, and a state."""
    try:
        import opensim as osim
    except ImportError as exc:  # pragma: no cover - opensim is in the dev environment
        pytest.skip(f"the opensim package is not importable ({exc})")
    osim.Logger.setLevelString("error")
    model = osim.Model(str(data / "Model_Pose2Sim_simple.osim"))
    model.updateMarkerSet(osim.MarkerSet(str(data / "Markers_Halpe26.xml")))
    return model, model.initSystem()


def _opensim_pose(data: Path, coords: dict[str, float]) -> tuple[dict, dict]:
    """Joint centres and markers (mm, ground) with the given coordinates (degrees; metres for
    translations), every other coordinate 0."""
    model, state = _opensim_model(data)
    cs = model.getCoordinateSet()
    for i in range(cs.getSize()):
        c = cs.get(i)
        v = coords.get(c.getName(), 0.0)
        c.setValue(state, np.radians(v) if c.getMotionType() == 1 else v, False)
    model.realizePosition(state)

    def mm(p) -> np.ndarray:
        return np.array([p.get(0), p.get(1), p.get(2)]) * 1000.0

    js, ms = model.getJointSet(), model.getMarkerSet()
    joints = {
        js.get(i).getName(): mm(js.get(i).getChildFrame().getPositionInGround(state))
        for i in range(js.getSize())
    }
    markers = {
        ms.get(i).getName(): mm(ms.get(i).getLocationInGround(state)) for i in range(ms.getSize())
    }
    return joints, markers


def _opensim_reference(data: Path) -> tuple[dict, dict]:
    """The model in medpose's zero pose (every coordinate 0, pro_sup 90 deg: forearms in
    neutral rotation)."""
    return _opensim_pose(data, {"pro_sup_r": 90.0, "pro_sup_l": 90.0})


def _opensim_skeleton(joints: dict, markers: dict) -> Skeleton:
    """medpose's skeleton with the lengths of the OpenSim model (its joint centres)."""
    d = lambda a, b: float(np.linalg.norm(joints[a] - joints[b]))  # noqa: E731
    mid_gh_y = (joints["acromial_r"][1] + joints["acromial_l"][1]) / 2
    lengths = {
        "pelvis_width": (d("hip_r", "hip_l") - 2 * 7.3) / 0.66,  # skeleton.yaml's hip centres
        "shoulder_width": d("acromial_r", "acromial_l"),
        "head": markers["Head"][1] - mid_gh_y,
    }
    for s in "rl":
        lengths |= {
            f"thigh_{s}": d(f"walker_knee_{s}", f"hip_{s}"),
            f"shank_{s}": d(f"ankle_{s}", f"walker_knee_{s}"),
            f"upper_arm_{s}": d(f"elbow_{s}", f"acromial_{s}"),
            f"forearm_{s}": d(f"radius_hand_{s}", f"elbow_{s}"),
            f"foot_{s}": markers[f"{s.upper()}BigToe"][0] - markers[f"{s.upper()}Heel"][0],
        }
    return Skeleton.default(1750.0).with_lengths(lengths)


def test_pose2sim_model_is_where_opensim_puts_the_markers(shared_data):
    joints, markers = _opensim_reference(shared_data / "pose2sim")
    model = load_keypoint_model("pose2sim_halpe26")
    offsets = model.prior(_opensim_skeleton(joints, markers))[0]
    mid_hip = (joints["hip_r"] + joints["hip_l"]) / 2
    mid_gh = (joints["acromial_r"] + joints["acromial_l"]) / 2
    refs = {"Hip": mid_hip, "Neck": mid_gh, "Nose": mid_gh, "Head": mid_gh}
    for s, side in (("R", "r"), ("L", "l")):
        refs |= {
            f"{s}Hip": mid_hip,
            f"{s}Knee": joints[f"hip_{side}"],
            f"{s}Ankle": joints[f"walker_knee_{side}"],
            f"{s}BigToe": joints[f"ankle_{side}"],
            f"{s}SmallToe": joints[f"ankle_{side}"],
            f"{s}Heel": joints[f"ankle_{side}"],
            f"{s}Shoulder": mid_gh,
            f"{s}Elbow": joints[f"acromial_{side}"],
            f"{s}Wrist": joints[f"elbow_{side}"],
        }
    trunk_top = {"neck", "acromion_r", "acromion_l"}  # offsets from the lumbar joint
    sk = _opensim_skeleton(joints, markers)
    top = np.array([0.0, sk.lengths["trunk"], 0.0])
    assert set(refs) == set(markers)  # every marker of the marker set is checked
    for native, ref in refs.items():
        k = model.keypoint(native)
        got = offsets[k.medpose] - (top if k.medpose in trunk_top else 0.0)
        np.testing.assert_allclose(got, markers[native] - ref, atol=0.05, err_msg=native)


def test_pose2sim_marker_distances_agree_with_opensim(shared_data):
    """In the zero pose, distances between the model's keypoints on a skeleton with the OpenSim
    model's lengths agree with the distances between OpenSim's markers."""
    joints, markers = _opensim_reference(shared_data / "pose2sim")
    model = load_keypoint_model("pose2sim_halpe26")
    sk = model.apply(_opensim_skeleton(joints, markers))
    pairs = [
        ("RShoulder", "LShoulder"),
        ("RHip", "LHip"),
        ("RHip", "RKnee"),
        ("LHip", "LKnee"),
        ("RKnee", "RAnkle"),
        ("RElbow", "RWrist"),
        ("LElbow", "LWrist"),
        ("RShoulder", "RElbow"),
        ("RHeel", "RBigToe"),
        ("Neck", "RShoulder"),
        ("Head", "Nose"),
    ]
    names = sorted({n for p in pairs for n in p})
    x = forward_kinematics(sk, sk.make_q(), keypoints=[model.keypoint(n).medpose for n in names])
    pos = dict(zip(names, x[0]))
    for a, b in pairs:
        ours = np.linalg.norm(pos[a] - pos[b])
        theirs = np.linalg.norm(markers[a] - markers[b])
        assert abs(ours - theirs) < 3.0, (a, b, ours, theirs)


def test_pose2sim_model_gives_opensims_elbow_flexion(shared_data):
    """Markers OpenSim generates in 8 random arm poses, fitted on a skeleton with the model's
    lengths after rename and apply: elbow flexion within a few degrees of OpenSim's (fitting
    the markers as joint centres is about 9 degrees off, docs/calibration.md)."""
    from medpose.io.opensim import to_opensim

    joints, markers = _opensim_reference(shared_data / "pose2sim")
    rng = np.random.default_rng(0)
    poses = []
    for _ in range(8):
        p = {"pelvis_ty": 0.94, "pro_sup_r": 90.0, "pro_sup_l": 90.0}
        for s in "rl":
            p |= {f"elbow_flex_{s}": rng.uniform(0, 120), f"arm_flex_{s}": rng.uniform(-20, 90)}
            p[f"arm_add_{s}"] = rng.uniform(-60, 0)
        poses.append(p)
    frames = [_opensim_pose(shared_data / "pose2sim", p)[1] for p in poses]
    names = sorted(frames[0])
    x = np.array([[fr[n] for n in names] for fr in frames])
    model = load_keypoint_model("pose2sim_halpe26")
    seq = model.rename(mp.KeypointSequence(x, tuple(names), 60.0, frame="world"))
    f = mp.fit(seq, skeleton=model.apply(_opensim_skeleton(joints, markers)), progress=False)
    o = to_opensim(f.joint_angles(), alignment=f.alignment)
    for c in ("elbow_flex_r", "elbow_flex_l"):
        err = np.abs(o.values[:, o.names.index(c)] - [p[c] for p in poses])
        assert np.median(err) < 3.0 and err.max() < 8.0, (c, err.round(1))


def test_kinect_waist_offset_is_the_measured_one(shared_data):
    """The waist (SpineBase) offset, measured again on 20 of the UI-PRMD files."""
    files = sorted((shared_data / "ui-prmd" / "kinect" / "correct" / "positions").glob("*.txt.gz"))
    assert files, "no UI-PRMD positions files in the real data folder"
    rel = []
    for f in files[:: max(1, len(files) // 20)]:
        seq = mp.read_keypoints(f)
        hr, hl, w = seq["hip_r"][:10], seq["hip_l"][:10], seq["waist"][:10]
        z = (hr - hl) / np.linalg.norm(hr - hl, axis=1, keepdims=True)
        y = np.array([0.0, 1.0, 0.0]) - z[:, 1:2] * z
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        x = np.cross(y, z)
        d = w - (hr + hl) / 2
        rel.append(np.median(np.stack([(d * x).sum(1), (d * y).sum(1), (d * z).sum(1)], 1), 0))
    offsets = load_keypoint_model("kinect_v2").prior(Skeleton.default())[0]
    np.testing.assert_allclose(np.median(rel, 0), offsets["pelvis"], atol=3.0)


def test_public_names():
    assert mp.keypoint_model_for is keypoint_model_for
    assert isinstance(load_keypoint_model("h36m17"), KeypointModel)


def test_fit_prior_of_a_model(tmp_path):
    """Pose2Sim's marker set carries a posture prior for the rotations it barely sees (pronation
    through one radius marker, humeral rotation with a straight arm); a malformed one is refused
    naming the file and the field."""
    from medpose.kinematics.keypoint_models import load_keypoint_model as load

    m = load("pose2sim_halpe26")
    assert dict(m.fit_prior) == {"forearm_pronation": 30.0, "shoulder_rotation": 40.0}
    assert dict(load("halpe26").fit_prior) == {}
    from medpose.packaged import resource_text

    text = resource_text("keypoint_models/pose2sim_halpe26.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("sd_deg: 30", "sd_deg: -3"))
    with pytest.raises(InputError, match=r"bad\.yaml.*fit_prior"):
        load(bad)


def test_lengths_measured_through_the_pose2sim_model_are_opensims(shared_data):
    """A static trial of OpenSim's markers in the zero pose: read through the marker model,
    the pelvis, thigh and shank lengths are the OpenSim model's (from its joint centres) within
    1 %; read as joint centres, the hip markers (22 mm outside the hip centres) make the pelvis
    29 % too wide."""
    joints, markers = _opensim_reference(shared_data / "pose2sim")
    truth = _opensim_skeleton(joints, markers).lengths
    model = load_keypoint_model("pose2sim_halpe26")
    names = [k.native for k in model.keypoints if k.native in markers]
    x = np.repeat(np.array([[markers[n] for n in names]]), 10, axis=0)
    seq = model.rename(mp.KeypointSequence(x, names, 30.0, frame="world"))
    with_model = estimate_skeleton(seq, keypoint_model=model).lengths
    without = estimate_skeleton(seq).lengths
    for name in ("pelvis_width", "thigh_r", "thigh_l", "shank_r", "shank_l"):
        assert with_model[name] == pytest.approx(truth[name], rel=0.01), name
    assert without["pelvis_width"] > 1.2 * truth["pelvis_width"]
