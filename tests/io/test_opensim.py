"""medpose's fit on Pose2Sim's OpenSim model: names, signs, units (``Fit.to_mot(model=...)``).

The expected values come from the ``.osim`` file itself (parsed here, independently of the
packaged mapping) and, where the ``opensim`` package is installed, from OpenSim's own kinematics.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.data import JointAngles
from medpose.errors import InputError
from medpose.io.opensim import osim_coordinates, osim_hip_centre, to_opensim
from medpose.kinematics.fk import forward_kinematics, segment_poses
from medpose.kinematics.skeleton import Skeleton

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pose2sim"
OSIM = DATA / "Model_Pose2Sim_simple.osim"
MARKERS = DATA / "Markers_Halpe26.xml"
_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")  # metres in OpenSim, mm in medpose


@pytest.fixture(autouse=True)
def _pose2sim_data(shared_data):
    """Pose2Sim's model from the real data folder (absent: skipped, but never in CI)."""
    assert OSIM.is_file(), f"{OSIM} is missing from the real data folder"


def _joints() -> dict[str, list[tuple[str, np.ndarray, float]]]:
    """CustomJoint name -> [(coordinate, rotation axis, slope of its LinearFunction)] from the
    .osim XML (rotations only, in order)."""
    out = {}
    for j in ET.parse(OSIM).getroot().iter("CustomJoint"):
        rows = []
        for ax in j.iter("TransformAxis"):
            c = (ax.findtext("coordinates") or "").strip()
            if not ax.get("name", "").startswith("rotation") or not c:
                continue
            lf = ax.find("LinearFunction")
            slope = 1.0 if lf is None else float((lf.findtext("coefficients") or "1").split()[0])
            rows.append((c, np.array((ax.findtext("axis") or "").split(), float), slope))
        out[str(j.get("name"))] = rows
    return out


def _osim_rotation(rows, coords: dict[str, float]) -> np.ndarray:
    """A CustomJoint's child-in-parent rotation: body-fixed rotations about its axes."""
    R = np.eye(3)
    for c, axis, slope in rows:
        R = (
            R
            @ Rotation.from_rotvec(
                axis / np.linalg.norm(axis) * np.radians(slope * coords[c])
            ).as_matrix()
        )
    return R


@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default()


def _random_pose(sk: Skeleton, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.uniform(-25, 25, (n, len(sk.dof_names)))
    for i, name in enumerate(sk.dof_names):
        if name in _TRANSLATIONS:  # not pelvis_tilt
            q[:, i] = rng.uniform(-300, 300, n) + (900 if name == "pelvis_ty" else 0)
        elif name.startswith(("knee", "elbow")):
            q[:, i] = rng.uniform(5, 90, n)
    return q


def test_names_and_round_trip(tmp_path, sk):
    q = _random_pose(sk, 3, 0)
    x = forward_kinematics(sk, q)
    seq = mp.KeypointSequence(x, sk.keypoint_names, 60.0, frame="world")
    f = mp.fit(seq, sk, progress=False)
    path = f.to_mot(tmp_path / "fit.mot")  # model="pose2sim" by default
    back = mp.read_mot(path, translations="keep")
    assert set(back.names) == set(osim_coordinates(OSIM))
    want = to_opensim(f.joint_angles(), alignment=f.alignment)
    got = back.values[:, [back.names.index(n) for n in want.names]]
    np.testing.assert_allclose(got, want.values, atol=1e-6)
    assert back.rate == pytest.approx(60.0)
    # medpose's own names are still available
    own = mp.read_mot(f.to_mot(tmp_path / "own.mot", model=None))
    assert "knee_flexion_r" in own.names


def test_rotations_follow_the_osim_joint_definitions(sk):
    """Pelvis, hips, lumbar, neck and shoulders (CustomJoints whose frames are parallel to the
    bodies'): OpenSim's rotation from the mapped coordinates equals medpose's segment rotation."""
    q = _random_pose(sk, 20, 1)
    ja = JointAngles(q, sk.dof_names, 60.0)
    o = to_opensim(ja)
    coords = [dict(zip(o.names, row)) for row in o.values]
    R, _ = segment_poses(sk, q)
    seg = {n: i for i, n in enumerate(sk.segment_names)}
    joints = _joints()
    pairs = {  # OpenSim CustomJoint: (medpose parent segment or None for ground, child)
        "ground_pelvis": (None, "pelvis"),
        "hip_r": ("pelvis", "thigh_r"),
        "hip_l": ("pelvis", "thigh_l"),
        "back": ("pelvis", "trunk"),
        "head_torso": ("trunk", "head"),
        "acromial_r": ("trunk", "upper_arm_r"),
        "acromial_l": ("trunk", "upper_arm_l"),
    }
    for joint, (parent, child) in pairs.items():
        for t in range(len(q)):
            Rc = R[t, seg[child]]
            Rrel = Rc if parent is None else R[t, seg[parent]].T @ Rc
            np.testing.assert_allclose(
                _osim_rotation(joints[joint], coords[t]), Rrel, atol=1e-9, err_msg=joint
            )


def test_units_and_pelvis_origin(sk):
    """Degrees in, degrees out; pelvis translation: OpenSim's pelvis origin lies where the .osim
    puts it relative to the hip joints (mm here, metres in the file)."""
    q = _random_pose(sk, 5, 2)
    o = to_opensim(JointAngles(q, sk.dof_names, 60.0))
    col = {n: o.values[:, i] for i, n in enumerate(o.names)}
    d = {n: q[:, i] for i, n in enumerate(sk.dof_names)}
    np.testing.assert_allclose(col["knee_angle_r"], d["knee_flexion_r"])
    np.testing.assert_allclose(col["pro_sup_l"], d["forearm_pronation_l"] + 90.0)  # 90: palms in
    R, origin = segment_poses(sk, q)
    pelvis = sk.segment_names.index("pelvis")
    # medpose's `pelvis` keypoint (default skeleton: the origin) lands on Pose2Sim's `Hip` marker
    mk = next(m for m in ET.parse(MARKERS).getroot().iter("Marker") if m.get("name") == "Hip")
    assert (mk.findtext("socket_parent_frame") or "").endswith("/pelvis")
    hip_marker = np.array((mk.findtext("location") or "").split(), float) * 1000.0
    t_osim = np.column_stack([col["pelvis_tx"], col["pelvis_ty"], col["pelvis_tz"]])
    np.testing.assert_allclose(
        t_osim + np.einsum("tij,j->ti", R[:, pelvis], hip_marker), origin[:, pelvis], atol=1e-4
    )
    # a model file without that marker: the mid-point of its hip joint centres
    o2 = to_opensim(JointAngles(q, sk.dof_names, 60.0), osim=OSIM)
    t2 = o2.values[:, [o2.names.index(f"pelvis_t{a}") for a in "xyz"]]
    hip = osim_hip_centre(OSIM) * 1000.0
    np.testing.assert_allclose(hip, [-70.7, -66.1, 0.0], atol=0.01)
    mid_hip = t2 + np.einsum("tij,j->ti", R[:, pelvis], hip)
    np.testing.assert_allclose(mid_hip, origin[:, pelvis], atol=1e-4)


def test_bad_model_and_missing_dofs():
    with pytest.raises(InputError, match="unknown"):
        to_opensim(JointAngles(np.zeros((2, 1)), ("knee_flexion_r",), 60.0), "rajagopal")
    with pytest.raises(InputError, match="lack"):
        to_opensim(JointAngles(np.zeros((2, 1)), ("knee_flexion_r",), 60.0))


# ------------------------------------------------------------------------- OpenSim itself
@functools.cache
def _model():
    osim = pytest.importorskip("opensim")
    m = osim.Model(str(OSIM))
    m.updateMarkerSet(osim.MarkerSet(str(MARKERS)))
    return m


def _opensim_markers(coords_deg: list[dict[str, float]]) -> tuple[list[str], np.ndarray]:
    m = _model()
    s = m.initSystem()
    cs = m.getCoordinateSet()
    ms = m.getMarkerSet()
    names = [ms.get(i).getName() for i in range(ms.getSize())]
    out = np.empty((len(coords_deg), len(names), 3))
    for f, c in enumerate(coords_deg):
        for i in range(cs.getSize()):
            co = cs.get(i)
            v = c.get(co.getName(), 0.0)
            co.setValue(s, np.radians(v) if co.getMotionType() == 1 else v, False)
        m.realizePosition(s)
        for k in range(len(names)):
            p = ms.get(k).getLocationInGround(s)
            out[f, k] = (p.get(0), p.get(1), p.get(2))
    return names, out * 1000.0


MOVES = {  # OpenSim coordinate: change from the reference pose, degrees (metres: translations)
    "hip_flexion_r": 40.0,
    "hip_adduction_l": 15.0,
    "knee_angle_l": 50.0,
    "arm_flex_r": 45.0,
    "arm_add_l": -40.0,
    "elbow_flex_r": 60.0,
    # No trunk moves: the sign of the lumbar coordinates is checked against the .osim above;
    # how much of a trunk motion the fit gives the lumbar joint (not the pelvis or the arms) from
    # HALPE_26 (three collinear hip markers) is the fit's accuracy, not the mapping's.
    "pelvis_list": 10.0,
    "pelvis_tx": 0.2,
}


def test_opensim_reproduces_medpose_motion():
    """OpenSim moves its markers; medpose fits them; OpenSim loads medpose's coordinates.

    medpose's skeleton is not Pose2Sim's model (keypoints and segment frames differ by a few
    centimetres and degrees, constant for a subject), so the test compares *changes* from a
    reference pose, in which those constant differences cancel: each moved coordinate changes by
    the truth within 20 % + 3 deg (an angle between two keypoint-defined axes that differ from
    the model's by a few degrees), and the markers OpenSim computes from medpose's coordinates
    move like the generated markers within 15 mm (the model difference times the rotation,
    about 0.1 rad x 0.15 m)."""
    base = {"pelvis_ty": 0.94, "pro_sup_r": 90.0, "pro_sup_l": 90.0, "knee_angle_r": 10.0}
    base.update({"knee_angle_l": 10.0, "elbow_flex_r": 20.0, "elbow_flex_l": 20.0})
    base.update({"hip_flexion_r": 10.0, "hip_flexion_l": 10.0, "arm_add_r": -20.0})
    base["arm_add_l"] = -20.0
    poses = [dict(base)]
    for c, d in MOVES.items():
        p = dict(base)
        p[c] = p.get(c, 0.0) + d
        poses.append(p)
    names, X = _opensim_markers(poses)
    seq = mp.KeypointSequence(X, tuple(names), 60.0, frame="world")
    f = mp.fit(seq, progress=False)
    o = to_opensim(f.joint_angles(), alignment=f.alignment)
    col = {n: o.values[:, i] for i, n in enumerate(o.names)}
    changes = {c: col[c][k] - col[c][0] for k, c in enumerate(MOVES, start=1)}
    assert changes.pop("pelvis_tx") / 1000.0 == pytest.approx(MOVES["pelvis_tx"], abs=0.01)
    bad = {
        c: round(v, 1) for c, v in changes.items() if abs(v - MOVES[c]) > 0.2 * abs(MOVES[c]) + 3
    }
    assert not bad, (bad, MOVES)
    back = [
        {n: col[n][t] / (1000.0 if n in _TRANSLATIONS else 1.0) for n in col}
        for t in range(len(poses))
    ]
    _, Y = _opensim_markers(back)
    moved_true = X[1:] - X[:1]
    moved_back = Y[1:] - Y[:1]
    err = np.linalg.norm(moved_back - moved_true, axis=2)
    assert np.median(err) < 15.0, np.median(err, axis=1)


def test_y_up_mot_stands_the_model_where_opensim_put_the_markers():
    """OpenSim's ground is Y-up.  OpenSim's markers, expressed in a Z-up lab's axes (as a
    Qualisys calibration's world has them) and fitted there: ``to_opensim(..., y_up=True)``
    gives the coordinates of the fit of the Y-up markers themselves, and places OpenSim's model on
    its Y-up ground where OpenSim generated the markers, within the two skeletons' keypoint
    difference (an uncalibrated fit's OpenSim marker error is 40-60 mm in
    benchmarks/RESULTS.md); without it the model lies on its side, a body length away."""
    poses = [{"pelvis_ty": 0.94, "pelvis_rotation": r, "knee_angle_r": 10.0} for r in (0, 30, 60)]
    names, X = _opensim_markers(poses)
    zup = X[..., [2, 0, 1]]  # Pose2Sim's zup2yup undone: the world's (x, y, z) = Y-up (z, x, y)
    fits = {}
    for key, pos in (("y", X), ("z", zup)):
        fits[key] = mp.fit(mp.KeypointSequence(pos, tuple(names), 60.0), progress=False)
    upright = to_opensim(fits["z"].joint_angles(), alignment=fits["z"].alignment, y_up=True)
    direct = to_opensim(fits["y"].joint_angles(), alignment=fits["y"].alignment)
    lying = to_opensim(fits["z"].joint_angles(), alignment=fits["z"].alignment)
    assert upright.names == direct.names
    np.testing.assert_allclose(upright.values, direct.values, atol=1e-6)

    def err(o):
        back = [
            {n: v / (1000.0 if n in _TRANSLATIONS else 1.0) for n, v in zip(o.names, row)}
            for row in o.values
        ]
        return np.median(np.linalg.norm(_opensim_markers(back)[1] - X, axis=2))

    assert err(upright) < 100.0
    assert err(lying) > 300.0
