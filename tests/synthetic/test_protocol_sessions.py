"""Synthetic sessions for every catalogue protocol, and the truth of every new movement.

Repetitions are counted from the true angles with scipy's peak finder (a peak is a repetition
when its prominence reaches the protocol's own ``min_range``), independently of the windows
the generator reports.  Movement shapes are checked on the true keypoints (forward kinematics
of the true angles, skeleton frame: X anterior, Y up, Z right) and on the observed 3D
keypoints the session writes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks

import medpose as mp
from medpose.errors import InputError, ProtocolError
from medpose.io.keypoints import read_keypoints
from medpose.io.landmarks import read_landmarks
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton, default_ranges
from medpose.protocol.definition import catalogue_names
from medpose.scoring.derived_angles import with_derived
from medpose.synthetic import make_exercise, make_session

SUFFIX = {"left": ("_l",), "right": ("_r",), "both": ("_r", "_l")}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    made: dict[str, object] = {}

    def get(name: str, **kw):
        key = name + repr(sorted(kw.items()))
        if key not in made:
            root = tmp_path_factory.mktemp("proto") / name
            made[key] = make_session(root, seed=0, protocol=name, **kw)
        return made[key]

    return get


def _count(x: np.ndarray, direction: str, min_range: float) -> int:
    """Repetitions in one angle signal: peaks (or troughs) with a prominence >= min_range."""
    y = {"up": x, "down": -x, "auto": np.abs(x - x[0])}[direction]
    peaks, _ = find_peaks(y, prominence=min_range)
    return len(peaks)


def _angles(root: Path, trial: str) -> pd.DataFrame:
    """The trial's true angles, with the derived ones (shoulder elevation) a protocol may use."""
    return with_derived(pd.read_csv(root / "truth" / f"angles_{trial}.csv", index_col=0))


@pytest.mark.parametrize("name", catalogue_names())
def test_every_protocol_gets_a_valid_session_with_its_trials_and_repetitions(sessions, name):
    truth = sessions(name)
    assert mp.validate_session(truth.path) == []
    proto = mp.Protocol.load(name)
    s = mp.Session.load(truth.path)
    trials = {t.name: t for t in s.trials}
    for spec in proto.trials:
        assert spec.name in trials, spec.name
        assert trials[spec.name].kind == spec.kind
        if spec.kind == "static":
            continue
        angles = _angles(truth.path, spec.name)
        reps = proto.spec.steps.repetitions
        sides = SUFFIX[spec.side or "both"]
        for sfx in sides:
            if reps is not None:
                x = angles[reps.signal + sfx].to_numpy()
                n = _count(x, reps.direction, reps.min_range)
            else:  # gait: one knee swing peak (~60 deg) per stride
                n = _count(angles["knee_flexion" + sfx].to_numpy(), "up", 30.0)
            assert n >= spec.min_repetitions, (spec.name, sfx, n)
        closed_chain = "legs" in truth.exercises[spec.name].params  # lunges: both legs move
        if reps is not None and spec.side in ("left", "right") and not closed_chain:
            other = "_r" if sides == ("_l",) else "_l"
            assert np.ptp(angles[reps.signal + other].to_numpy()) < reps.min_range
    # a repetition table that matches the truth angles
    windows = json.loads((truth.path / "truth" / "repetitions.json").read_text())
    assert set(windows) == {t.name for t in proto.trials if t.kind != "static"}


def test_sit_to_stand_variants_give_five_or_one_repetition(sessions):
    five, single = sessions("sit_to_stand"), sessions("sit_to_stand", variant="single")
    for truth, n in ((five, 5), (single, 1)):
        x = _angles(truth.path, "sit_to_stand")["knee_flexion_r"].to_numpy()
        assert _count(x, "down", 40.0) == n
        assert len(truth.exercises["sit_to_stand"].repetitions) == n


def test_true_range_per_repetition_is_written(sessions):
    truth = sessions("shoulder_abduction")
    table = json.loads((truth.path / "truth" / "repetitions.json").read_text())
    left = table["abduction_left"]
    assert left["side"] == "left" and len(left["windows_s"]) == 3
    np.testing.assert_allclose(left["rom_deg"]["shoulder_abduction_l"], 145.0, atol=1e-6)
    assert "shoulder_abduction_r" not in left["rom_deg"]  # the right arm does not move


# ----------------------------------------------------------------------- movement truths
@pytest.fixture(scope="module")
def sk() -> Skeleton:
    return Skeleton.default(1700.0)


def _kp(sk: Skeleton, e) -> tuple[np.ndarray, dict[str, int]]:
    kp = np.asarray(forward_kinematics(sk, np.asarray(e.angles.values)))
    return kp, {n: i for i, n in enumerate(sk.keypoint_names)}


def _inside_ranges(sk: Skeleton, e) -> None:
    v = np.asarray(e.angles.values)
    for d, (lo, hi) in default_ranges(sk).items():
        col = v[:, sk.dof_names.index(d)]
        assert col.min() >= lo - 1e-9 and col.max() <= hi + 1e-9, d


def _still(kp: np.ndarray, i: int, atol: float = 1e-6) -> bool:
    return bool(np.all(np.ptp(kp[:, i], axis=0) < atol))


def test_deep_squat_keeps_the_dowel_overhead(sk):
    e = make_exercise("deep_squat", skeleton=sk, repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    for s in "rl":
        assert e.angles[f"knee_flexion_{s}"].max() == pytest.approx(100.0)
        assert e.angles[f"shoulder_flexion_{s}"].min() >= 165.0
        assert np.all(kp[:, k[f"wrist_{s}"], 1] > kp[:, k["head_top"], 1])  # hands above the head
        assert _still(kp, k[f"ankle_{s}"])
    bottom = np.argmax(e.angles["knee_flexion_r"])
    assert kp[bottom, k["pelvis"], 1] < kp[bottom, k["knee_r"], 1] + 150  # hips near knee level


def test_hurdle_step_lifts_the_leading_foot_over_the_hurdle(sk):
    e = make_exercise("hurdle_step", skeleton=sk, side="right", repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    assert e.angles["hip_flexion_r"].max() == pytest.approx(95.0)
    assert np.ptp(e.angles["hip_flexion_l"]) == 0 and np.ptp(e.angles["knee_flexion_l"]) == 0
    top = np.argmax(e.angles["hip_flexion_r"])
    # a hurdle at tibial-tuberosity height (a tenth of the shank below the knee joint centre):
    # the whole lifted foot clears it
    foot = [k[n] for n in ("heel_r", "big_toe_r", "small_toe_r", "ankle_r")]
    hurdle = kp[top, k["knee_l"], 1] - 0.1 * sk.lengths["shank_l"]
    assert kp[top, foot, 1].min() > hurdle
    assert _still(kp, k["ankle_l"]) and _still(kp, k["heel_l"])
    assert kp[:, k["heel_l"], 1].min() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError, match="one side at a time"):
        make_exercise("hurdle_step", skeleton=sk, side="both")


def test_inline_lunge_front_knee_ahead_and_both_feet_planted(sk):
    e = make_exercise("inline_lunge", skeleton=sk, side="left", repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    assert e.angles["knee_flexion_l"].max() == pytest.approx(90.0)
    bottom = np.argmax(e.angles["knee_flexion_l"])
    assert kp[bottom, k["knee_l"], 0] > kp[bottom, k["hip_l"], 0] + 200  # front knee ahead
    assert kp[bottom, k["knee_r"], 1] < 0.5 * kp[bottom, k["knee_l"], 1]  # rear knee down
    assert kp[bottom, k["knee_r"], 0] < kp[bottom, k["heel_l"], 0]  # ... behind the front heel
    assert e.angles["knee_flexion_r"].max() > 90.0
    # the front foot stays flat, the rear foot pivots on its big toe
    for n in ("ankle_l", "heel_l", "big_toe_r"):  # to a micrometre (an iterative solution)
        assert _still(kp, k[n], atol=1e-3), n
    assert kp[:, k["heel_l"], 1].max() == pytest.approx(0.0, abs=1e-3)
    assert kp[:, k["big_toe_r"], 1].max() == pytest.approx(0.0, abs=0.05)
    assert kp[bottom, k["pelvis"], 1] < kp[0, k["pelvis"], 1] - 150  # the body goes down


def test_side_lunge_shifts_over_the_bent_knee(sk):
    e = make_exercise("side_lunge", skeleton=sk, side="right", repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    assert e.angles["knee_flexion_r"].max() == pytest.approx(80.0, abs=0.5)
    assert e.angles["knee_flexion_l"].max() < 10.0  # the trailing leg stays straight
    assert np.ptp(e.angles["hip_adduction_l"]) > 15.0  # ... and abducts further
    bottom = np.argmax(e.angles["knee_flexion_r"])
    shift = kp[bottom, k["pelvis"], 2] - kp[0, k["pelvis"], 2]
    assert shift > 0.5 * (kp[0, k["ankle_r"], 2] - kp[0, k["pelvis"], 2])  # towards the right
    for n in ("ankle_r", "ankle_l"):
        assert _still(kp, k[n], atol=1e-3)
    feet = [k[n] for n in ("heel_r", "heel_l", "big_toe_r", "big_toe_l")]
    assert kp[:, feet, 1].max() < 15.0  # no foot lifts (a foot may roll onto its edge)


def test_straight_leg_raise_lies_supine_and_lifts_one_straight_leg(sk):
    e = make_exercise("straight_leg_raise", skeleton=sk, side="left", repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    assert e.angles["hip_flexion_l"].max() == pytest.approx(75.0)
    assert np.ptp(e.angles["knee_flexion_l"]) == 0 and np.ptp(e.angles["hip_flexion_r"]) == 0
    # lying: head and pelvis at about the same height, the trunk horizontal
    assert abs(kp[0, k["head_top"], 1] - kp[0, k["pelvis"], 1]) < 50
    top = np.argmax(e.angles["hip_flexion_l"])
    leg = kp[top, k["ankle_l"]] - kp[top, k["hip_l"]]
    assert np.degrees(np.arctan2(leg[1], abs(leg[0]))) == pytest.approx(75.0, abs=0.5)
    assert _still(kp, k["ankle_r"]) and kp[:, :, 1].min() == pytest.approx(0.0, abs=1e-6)


def test_shoulder_extension_moves_the_arm_behind_the_body(sk):
    e = make_exercise("shoulder_extension", skeleton=sk, side="left", repetitions=2)
    kp, k = _kp(sk, e)
    assert e.angles["shoulder_flexion_l"].min() == pytest.approx(-50.0)
    assert np.ptp(e.angles["shoulder_flexion_r"]) == 0
    peak = np.argmin(e.angles["shoulder_flexion_l"])
    arm = kp[peak, k["elbow_l"]] - kp[peak, k["shoulder_l"]]
    assert np.degrees(np.arctan2(-arm[0], -arm[1])) == pytest.approx(50.0, abs=1.0)
    assert _still(kp, k["wrist_r"])


def test_scaption_elevates_the_arm_in_the_scapular_plane(sk):
    e = make_exercise("shoulder_scaption", skeleton=sk, side="right", repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    arm = kp[:, k["elbow_r"]] - kp[:, k["shoulder_r"]]
    elevation = np.degrees(np.arccos(-arm[:, 1] / np.linalg.norm(arm, axis=1)))
    assert elevation.max() == pytest.approx(150.0, abs=0.1)
    moving = elevation > 10
    plane = np.degrees(np.arctan2(arm[moving, 0], arm[moving, 2]))  # 0 = frontal, 90 = sagittal
    np.testing.assert_allclose(plane, 30.0, atol=0.1)
    assert (
        e.angles["shoulder_flexion_r"].max() > 100 and e.angles["shoulder_abduction_r"].max() > 40
    )


@pytest.mark.parametrize(("name", "peak"), [("internal", 60.0), ("external", -75.0)])
def test_shoulder_rotation_turns_the_forearm_about_a_still_elbow(sk, name, peak):
    e = make_exercise(f"shoulder_{name}_rotation", skeleton=sk, repetitions=2)
    _inside_ranges(sk, e)
    kp, k = _kp(sk, e)
    for s, lateral in (("r", 1.0), ("l", -1.0)):
        assert e.angles[f"elbow_flexion_{s}"].min() == pytest.approx(90.0)
        x = e.angles[f"shoulder_rotation_{s}"]
        assert (x.max() if peak > 0 else x.min()) == pytest.approx(peak)
        assert _still(kp, k[f"elbow_{s}"])
        fore = kp[:, k[f"wrist_{s}"]] - kp[:, k[f"elbow_{s}"]]
        np.testing.assert_allclose(np.linalg.norm(fore, axis=1), sk.lengths[f"forearm_{s}"])
        # the forearm points forwards at rest and swings medially (internal) or laterally
        rest, top = fore[0], fore[np.argmax(np.abs(x))]
        assert rest[0] > 0.9 * np.linalg.norm(rest)
        assert np.sign(top[2] - rest[2]) * lateral == (-1 if peak > 0 else 1)
        swept = np.degrees(np.arccos(rest @ top / (rest @ rest)))
        assert swept == pytest.approx(abs(peak), abs=12.0)  # the humerus is 20 deg abducted


def test_one_sided_arm_trial_moves_only_its_side(sessions):
    truth = sessions("elbow_flexion")
    e = truth.exercises["elbow_left"]
    assert e.params["side"] == "left"
    assert np.ptp(e.angles["elbow_flexion_r"]) == 0 and e.angles["elbow_flexion_l"].max() == 130
    # the observed 3D keypoints show it too: the left wrist travels, the right one does not
    obs = read_keypoints(truth.path / "trials" / "elbow_left.trc")
    travel = {}
    for s in "rl":
        w = obs.select([f"wrist_{s}"]).positions[:, 0]
        travel[s] = float(np.max(np.nanpercentile(w, 99, axis=0) - np.nanpercentile(w, 1, axis=0)))
    assert travel["l"] > 200 and travel["r"] < 60


def test_observed_lunge_keypoints_look_like_a_lunge(sessions):
    truth = sessions("inline_lunge")
    obs = read_keypoints(truth.path / "trials" / "inline_lunge_right.trc")
    to_body = truth.transforms["skeleton_to_camera"].inverse()
    names = ["knee_r", "hip_r", "knee_l"]
    p = np.asarray(to_body.apply(obs.select(names).positions))
    bottom = int(np.argmax(truth.exercises["inline_lunge_right"].angles["knee_flexion_r"]))
    win = slice(bottom - 3, bottom + 4)
    knee_r, hip_r, knee_l = (np.nanmedian(p[win, i], axis=0) for i in range(3))
    assert knee_r[0] > hip_r[0] + 150  # the front (right) knee is ahead of the hip
    assert knee_l[1] < knee_r[1] - 150  # the rear knee is low


# ------------------------------------------------------------------------- navigation
def test_navigation_session_has_imaging_and_a_moved_fiducial_fault(sessions):
    good = sessions("navigation_check")
    bad = sessions("navigation_check", fault={"move_fiducial": ("asis_r", 10.0)})
    proto = mp.Protocol.load("navigation_check")
    pairs = proto.spec.registration.pairs
    for truth in (good, bad):
        assert mp.validate_session(truth.path) == []
        lm = read_landmarks(truth.path / "imaging" / "landmarks.mrk.json")
        assert set(pairs) <= set(lm.names)
    doc = json.loads((good.path / "truth" / "landmarks_lps.json").read_text())
    true_lm = mp.Landmarks(
        tuple(p["name"] for p in doc["points"]),
        np.array([p["position"] for p in doc["points"]]),
        frame="LPS",
    )
    good_lm = read_landmarks(good.path / "imaging" / "landmarks.mrk.json")
    bad_lm = read_landmarks(bad.path / "imaging" / "landmarks.mrk.json")
    np.testing.assert_allclose(good_lm.positions, true_lm.positions, atol=1e-3)
    moved = np.linalg.norm(bad_lm.positions - true_lm.positions, axis=1)
    i = list(bad_lm.names).index("asis_r")
    assert moved[i] == pytest.approx(10.0, abs=1e-3)
    assert np.all(np.delete(moved, i) < 1e-3)
    fault = bad.faults["fiducial"]
    assert fault["move_fiducial"] == "asis_r" and fault["distance_mm"] == pytest.approx(10.0)
    written = json.loads((bad.path / "truth" / "faults.json").read_text())["fiducial"]
    np.testing.assert_allclose(
        written["vector_lps_mm"], bad_lm.positions[i] - true_lm.positions[i], atol=1e-3
    )
    # the camera side sees the true anatomy: a rigid fit of the good pairs leaves mm-level
    # residuals, the moved one stands out
    static = read_keypoints(bad.path / "trials" / "static.trc")
    names = list(pairs)
    cam = np.nanmean(static.select([pairs[n] for n in names]).positions, axis=0)
    fixed = mp.Landmarks(tuple(names), cam, frame="camera")
    for lm, worst in ((good_lm, None), (bad_lm, "asis_r")):
        idx = [list(lm.names).index(n) for n in names]
        reg = mp.register(fixed, mp.Landmarks(tuple(names), lm.positions[idx], frame="LPS"))
        res = dict(zip(names, reg.residuals))
        if worst is None:
            assert max(res.values()) < 1.0
        else:
            assert max(res, key=res.get) == worst and res[worst] > 5.0


def test_fault_vector_and_errors(tmp_path):
    t = make_session(
        tmp_path / "v",
        seed=2,
        protocol="navigation_check",
        fault={"move_fiducial": ("lateral_malleolus_l", (0.0, 0.0, 10.0))},
    )
    assert t.faults["fiducial"]["vector_lps_mm"] == [0.0, 0.0, 10.0]
    with pytest.raises(InputError, match=r"no imaging landmark 'nose'.*asis_r"):
        make_session(
            tmp_path / "a", protocol="navigation_check", fault={"move_fiducial": ("nose", 10.0)}
        )
    with pytest.raises(InputError, match="needs imaging"):
        make_session(
            tmp_path / "b", protocol="deep_squat", fault={"move_fiducial": ("asis_r", 10.0)}
        )
    with pytest.raises(InputError, match="expected"):
        make_session(tmp_path / "c", protocol="navigation_check", fault={"shift": 1})
    with pytest.raises(ProtocolError, match="not in the catalogue"):
        make_session(tmp_path / "d", protocol="no_such_protocol")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(sessions, tmp_path):
    first = sessions("shoulder_rotation")
    again = make_session(tmp_path / "again", seed=0, protocol="shoulder_rotation")
    a, b = _hashes(first.path), _hashes(again.path)
    assert len(a) > 10 and a == b
    other = make_session(tmp_path / "other", seed=1, protocol="shoulder_rotation")
    assert _hashes(other.path) != a


def test_protocol_object_and_own_protocol_file(tmp_path):
    text = (Path(mp.__file__).parent / "resources" / "protocols" / "knee_extension.yaml").read_text(
        encoding="utf-8"
    )
    own = (
        text.replace("name: knee_extension\n", "name: my_knee_check\n")
        .replace("knee_extension_left", "seated_knee_extension_left")
        .replace("knee_extension_right", "seated_knee_extension_right")
    )
    path = tmp_path / "my_knee_check.yaml"
    path.write_text(own, encoding="utf-8")
    t = make_session(tmp_path / "own", seed=0, protocol=mp.Protocol.load(path), repetitions=4)
    assert set(t.exercises) == {"seated_knee_extension_left", "seated_knee_extension_right"}
    assert all(len(e.repetitions) == 4 for e in t.exercises.values())
    assert t.exercises["seated_knee_extension_left"].params["side"] == "left"


def test_compensations_and_impairment_follow_the_moving_side(sk):
    e = make_exercise("hurdle_step", skeleton=sk, side="left", trunk_lean_deg=10.0, repetitions=2)
    # lumbar bending away from the moving (left) side: towards the right, positive
    assert e.angles["lumbar_bending"].max() == pytest.approx(10.0, abs=1e-6)
    assert e.angles["lumbar_bending"].min() == pytest.approx(0.0, abs=1e-6)
    imp = make_exercise(
        "inline_lunge", skeleton=sk, impaired_side="right", impairment=0.3, repetitions=2
    )
    assert imp.params["side"] == "right"  # a one-sided movement defaults to the impaired side
    assert imp.angles["knee_flexion_r"].max() == pytest.approx(0.7 * 90.0)
    kp, k = _kp(sk, imp)
    assert _still(kp, k["ankle_r"], atol=1e-3) and _still(kp, k["big_toe_l"], atol=1e-3)
    scap = make_exercise("shoulder_scaption", skeleton=sk, range_deg=120.0, repetitions=1)
    assert scap.params["elevation_deg"]["r"] == pytest.approx(120.0)


def test_observed_rotation_keypoints_turn_the_wrist_about_a_still_elbow(sessions):
    truth = sessions("shoulder_rotation")
    obs = read_keypoints(truth.path / "trials" / "internal_rotation.trc")
    for s in "rl":
        elbow = obs.select([f"elbow_{s}"]).positions[:, 0]
        wrist = obs.select([f"wrist_{s}"]).positions[:, 0]

        def travel(p: np.ndarray) -> float:  # robust to the observation's outliers
            return float(np.linalg.norm(np.nanpercentile(p, 95, 0) - np.nanpercentile(p, 5, 0)))

        assert travel(elbow) < 60.0 < 150.0 < travel(wrist)
        fore = np.nanmedian(np.linalg.norm(wrist - elbow, axis=1))
        assert fore == pytest.approx(truth.skeleton.lengths[f"forearm_{s}"], abs=40.0)
