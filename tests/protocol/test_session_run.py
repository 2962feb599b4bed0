"""A protocol run on a whole synthetic session: ``Protocol.run(session)``, ``execute_session``.

The session is made by :func:`medpose.synthetic.make_session` (markerless-like 3D keypoints
with noise, bias, gaps and swaps; a marker-like static trial; CT landmarks of the pelvis and
legs) and its truth (``truth/``) is the reference.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

import medpose as mp
from medpose.errors import ProtocolError
from medpose.protocol import (
    Assessment,
    SessionResult,
    execute_session,
    input_hashes,
    run_to_folder,
)
from medpose.protocol.session_result import TABLES, read_manifest
from medpose.scoring.derived_angles import with_derived

SQUAT = {"deep_squat": "squat"}
ABDUCTION = {"abduction_left": "shoulder_abduction", "abduction_right": "shoulder_abduction"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "visit1"
    mp.synthetic.make_session(
        path,
        seed=11,
        exercises=("squat", "shoulder_abduction"),
        n_cameras=2,
        phantom_region="pelvis_legs",
        phantom_max_voxels=50_000,
        impairment={"side": "right", "amount": 0.0},  # no impairment; side_of_interest right
    )
    return path


@pytest.fixture(scope="module")
def squat(session: Path) -> SessionResult:
    return execute_session("deep_squat", session, trials=SQUAT)


@pytest.fixture(scope="module")
def abduction(session: Path) -> SessionResult:
    return execute_session(mp.Protocol.load("shoulder_abduction"), session, trials=ABDUCTION)


def _truth(session: Path, trial: str) -> tuple[pd.DataFrame, list[list[float]]]:
    angles = pd.read_csv(session / "truth" / f"angles_{trial}.csv", index_col=0)
    params = json.loads((session / "truth" / "params.json").read_text())
    return angles, params["repetition_windows_s"][trial]


def _check_rom(result: SessionResult, session: Path, trial: str, metric: str, joint: str):
    """Per repetition and side, the ROM is the truth's within the fit's error.

    A range (max - min) of angles that are each within e of the truth is within 2 e of the
    true range; e is the fit's 95th-percentile error over the repetitions (the ROM metric is
    robust to a few outlier frames, so the worst 5 % of frames do not set it).
    """
    truth, windows = _truth(session, trial)
    truth, fitted = with_derived(truth), with_derived(result.angles[trial])
    t = truth.index.to_numpy()
    inside = np.zeros(t.size, bool)
    for a, b in windows:
        inside |= (t >= a) & (t <= b)
    m = result.assessment.metrics
    for side, suffix in (("left", "_l"), ("right", "_r")):
        col = joint + suffix
        err = np.nanpercentile(np.abs(fitted[col].to_numpy() - truth[col].to_numpy())[inside], 95)
        assert err < 15  # a fit this poor would make the bound meaningless
        true_rom = [float(np.ptp(truth[col][(t >= a) & (t <= b)])) for a, b in windows]
        rows = m[(m["metric"] == metric) & (m["side"] == side) & m["repetition"].notna()]
        assert len(rows) == len(windows), (side, rows)
        got = rows.sort_values("repetition")["value"].to_numpy()
        assert np.all(np.abs(got - true_rom) <= 2 * err + 1.0), (side, got, true_rom, err)


def test_deep_squat_knee_rom_per_repetition_matches_truth(squat, session):
    _check_rom(squat, session, "squat", "rom_knee_flexion", "knee_flexion")
    a = squat.assessment
    assert a.trials == ("deep_squat",) and set(a.sides) == {"left", "right"}
    assert 0 <= a.score <= 100
    assert set(a.repetitions["trial"]) == {"deep_squat"}
    # the knee ROM's MDC95 from its published SEM (1.7 deg, Piriyaprasarth et al. 2008)
    knee = a.scores[a.scores["metric"] == "rom_knee_flexion"]
    sem = mp.scoring.norms.reliability_for("rom", "knee_flexion")["sem"]
    assert np.allclose(knee["mdc95"], 1.96 * math.sqrt(2) * sem) and len(knee) == 2


def test_shoulder_abduction_rom_per_trial_side_matches_truth(abduction, session):
    # the range of the arm's elevation (the abduction of a frontal-plane raise)
    _check_rom(
        abduction, session, "shoulder_abduction", "rom_shoulder_elevation", "shoulder_elevation"
    )
    a = abduction.assessment
    assert a.trials == ("abduction_left", "abduction_right")
    m = a.metrics
    # each trial measures its own side
    for trial, side in (("abduction_left", "left"), ("abduction_right", "right")):
        assert set(m.loc[(m["trial"] == trial) & (m["side"] != ""), "side"]) <= {side}
    # one recording of both arms is read and fitted once
    assert list(abduction.angles) == ["shoulder_abduction"]
    # the symmetry of two one-sided trials comes from their two summaries
    sym = m[m["metric"] == "symmetry_index_rom_shoulder_elevation"]
    assert len(sym) == 1 and math.isfinite(sym["value"].iloc[0])
    left = a.value("rom_shoulder_elevation", "left")
    right = a.value("rom_shoulder_elevation", "right")
    expected = mp.metrics.symmetry_index(left, right).value
    assert sym["value"].iloc[0] == pytest.approx(float(expected))


def test_every_metric_has_a_ci_or_says_why(squat, abduction):
    for result in (squat, abduction):
        m = result.assessment.metrics
        has_ci = np.isfinite(m["ci_low"].astype(float)) & np.isfinite(m["ci_high"].astype(float))
        assert (has_ci | (m["reason"].fillna("") != "")).all()
        # a summary over three repetitions: the bootstrap CI of the median exists, holds it
        per_rep = m[m["repetition"].notna() & np.isfinite(m["value"].astype(float))]
        n = per_rep.groupby(["trial", "metric", "side"]).size()
        keys = {k for k, v in n.items() if v >= 3}
        summary = m[m["repetition"].isna()]
        boot = summary[
            [k in keys for k in zip(summary["trial"], summary["metric"], summary["side"])]
        ]
        assert len(boot) >= 2
        assert has_ci[boot.index].all()
        assert (boot["ci_low"] <= boot["value"]).all() and (boot["value"] <= boot["ci_high"]).all()


def test_quality_and_provenance(squat, session):
    q = squat.assessment.quality
    assert list(q.columns) == ["trial", "check", "name", "value", "unit"]
    checks = set(q["check"])
    assert {
        "missing_fraction",
        "outliers_removed",
        "gap_frames_filled",
        "frames_at_joint_limit",
        "fit_residual_median",
        "fit_residual_p95",
    } <= checks
    # the synthetic markerless data has injected gaps: some are reported filled
    assert q.loc[q["check"] == "gap_frames_filled", "value"].sum() > 0
    prov = squat.assessment.provenance
    assert prov["protocol_hash"] == mp.Protocol.load("deep_squat").hash
    assert prov["session_date"] == "2026-01-15"
    assert mp.Session.load(session).side_of_interest == "right"
    assert prov["side_of_interest"] == squat.side_of_interest == "right"
    assert squat.inputs == input_hashes("deep_squat", session, trials=SQUAT)
    assert set(squat.inputs) == {"session.yaml", "trials/squat.trc"}
    assert squat.patient not in json.dumps(prov, default=str)  # the id stays in the result


def test_result_pickles_and_the_python_entry_points_agree(squat, session):
    back = pickle.loads(pickle.dumps(squat))  # a worker process sends it back
    pd.testing.assert_frame_equal(back.assessment.metrics, squat.assessment.metrics)
    # Protocol.run takes a Session or a folder (a quick protocol: navigation_check)
    nav = mp.Protocol.load("navigation_check")
    a = nav.run(mp.Session.load(session))
    assert isinstance(a, Assessment)
    pd.testing.assert_frame_equal(a.metrics, execute_session(nav, session).assessment.metrics)
    pd.testing.assert_frame_equal(a.registration, nav.run(str(session)).registration)
    assert "deep_squat" in repr(squat.assessment) and "deep_squat" in squat.assessment._repr_html_()
    assert "visit1" in repr(squat) and squat.patient not in repr(squat)
    ax, own = Figure().add_subplot(), Figure().add_subplot()
    assert squat.plot(ax=ax) is ax and squat.assessment.plot(ax=own) is own
    assert ax.patches and [p.get_width() for p in ax.patches] == [
        p.get_width() for p in own.patches
    ]


def test_missing_trials_are_reported_before_any_work(session, tmp_path):
    copy = tmp_path / "visit1"
    shutil.copytree(session, copy)
    (copy / "trials" / "shoulder_abduction.trc").write_text("not a trc file\n")
    with pytest.raises(ProtocolError) as err:  # the broken file is never opened
        execute_session("shoulder_abduction", copy, trials={"abduction_left": "shoulder_abduction"})
    text = str(err.value)
    assert "lacks 1 trial(s)" in text and "abduction_right" in text
    assert "the session has: static, squat, shoulder_abduction" in text
    assert "--trial abduction_right=<session trial>" in text  # the one still to map
    with pytest.raises(ProtocolError) as err:
        execute_session("shoulder_abduction", copy)
    assert "lacks 2 trial(s)" in str(err.value)
    assert "abduction_left, abduction_right" in str(err.value)
    assert "--trial abduction_left=<session trial>" in str(err.value)  # how to map one


def test_a_trial_with_cameras_only_is_pointed_to_triangulation(session, tmp_path):
    """The packaged protocols read 3D keypoints; a trial that has only its 2D camera keypoints
    is refused before any work, with the way to its 3D file."""
    copy = tmp_path / "visit1"
    shutil.copytree(session, copy)
    doc = yaml.safe_load((copy / "session.yaml").read_text())
    (trial,) = [t for t in doc["trials"] if t["name"] == "squat"]
    assert trial["cameras"]
    del trial["keypoints"]
    (copy / "session.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ProtocolError) as err:
        execute_session("deep_squat", copy, trials=SQUAT)
    text = str(err.value)
    assert "trial 'squat': protocol deep_squat reads 3D keypoints" in text
    assert "'medpose triangulate'" in text and "triangulate step" in text


def test_a_session_given_as_dot_or_as_its_yaml_is_named_after_its_folder(session, monkeypatch):
    """Runs and the study tell sessions apart by the folder's name, also when the user is in
    the folder (``medpose run gait .``) or names its ``session.yaml``."""
    monkeypatch.chdir(session)
    for given in (".", "session.yaml", "./"):
        assert mp.Session.load(given, check_files=False).name == "visit1"
    with pytest.raises(ProtocolError, match="session 'visit1' lacks 2 trial"):
        execute_session("shoulder_abduction", ".")


def _move_landmark(session: Path, name: str, mm: float) -> None:
    path = session / "imaging" / "landmarks.mrk.json"
    doc = json.loads(path.read_text())
    points = doc["markups"][0]["controlPoints"]
    (point,) = [p for p in points if p["label"] == name]
    point["position"] = (np.asarray(point["position"]) + [0.0, mm, 0.0]).tolist()
    path.write_text(json.dumps(doc))


def test_navigation_check_passes_and_fails_with_a_fiducial_moved_10_mm(session, tmp_path):
    good = execute_session("navigation_check", session)
    a = good.assessment
    assert a.gate.passed, a.gate
    reg = a.registration
    assert reg.loc[reg["item"] == "fre", "value"].iloc[0] < 2.0  # marker-like static: ~1 mm
    assert set(reg.loc[reg["item"] == "tre", "name"]) == {"hip_r", "hip_l"}
    assert not reg.loc[reg["item"] == "fiducial", "outlier"].any()
    assert a.value("gate_passed") == 1.0

    copy = tmp_path / "visit1"
    shutil.copytree(session, copy)
    _move_landmark(copy, "lateral_epicondyle_femur_r", 10.0)
    bad = execute_session("navigation_check", copy).assessment
    assert not bad.gate.passed
    reg = bad.registration
    outliers = reg.loc[(reg["item"] == "fiducial") & (reg["outlier"] == True), "name"]  # noqa: E712
    assert list(outliers) == ["lateral_epicondyle_femur_r"]
    assert any("lateral_epicondyle_femur_r" in r for r in bad.gate.reasons)
    assert bad.value("gate_passed") == 0.0


def test_outputs_and_caching(squat, session, tmp_path):
    out = tmp_path / "out"
    manifest = squat.write(out)
    for name in TABLES:
        csv = pd.read_csv(out / f"{name}.csv")
        pq = pd.read_parquet(out / f"{name}.parquet")
        assert list(csv.columns) == list(pq.columns) == list(squat.tables()[name].columns)
        assert len(csv) == len(pq) == len(squat.tables()[name])
    doc = json.loads(manifest.read_text())
    assert doc["inputs"] == squat.inputs and doc["action"] == "computed"
    assert squat.patient not in manifest.read_text()
    # a folder holding other files is never replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(mp.errors.InputError, match=r"holds files but no manifest\.json"):
        squat.write(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"

    # the folder holds the results of these inputs: nothing is recomputed
    again = run_to_folder("deep_squat", session, out, trials=SQUAT)
    assert again.action == "unchanged" and again.result is None
    assert again.manifest == json.loads(manifest.read_text())
    # a damaged output file makes the folder untrusted: recomputed
    (out / "scores.csv").write_text("metric\n")
    assert read_manifest(out) is None


def test_navigation_check_on_protocol_sessions_finds_the_moved_fiducial(tmp_path):
    good = tmp_path / "good"
    mp.synthetic.make_session(good, seed=3, protocol="navigation_check")
    assert mp.Protocol.load("navigation_check").run(good).gate.passed
    bad = tmp_path / "bad"
    truth = mp.synthetic.make_session(
        bad, seed=3, protocol="navigation_check", fault={"move_fiducial": ("asis_l", 10.0)}
    )
    assert truth.faults["fiducial"]["distance_mm"] == pytest.approx(10.0)
    a = mp.Protocol.load("navigation_check").run(bad)
    assert not a.gate.passed
    reg = a.registration
    flagged = reg.loc[(reg["item"] == "fiducial") & (reg["outlier"] == True), "name"]  # noqa: E712
    assert list(flagged) == ["asis_l"]
