"""A protocol reads around the frames its fit fitted poorly: a Kinect v2 lower leg folded up at
the bottom of a deep squat (the knee's keypoint below the ankle's, seen in UI-PRMD) leaves the
squat's criteria and knee range as they are without the fault."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

import medpose as mp
from medpose.cli import main as cli_main
from medpose.protocol import SessionResult, execute_session, write_session_yaml
from medpose.protocol.batch import compute_session
from medpose.protocol.capped import NEAR
from medpose.report import write_report
from medpose.report.labels import format_value
from medpose.synthetic.kinect import kinect_recording, write_uiprmd

CHECKED = ("rom_knee_flexion", "thigh_angle", "torso_tibia_angle", "knee_over_foot")


def _values(a: mp.Assessment) -> dict[tuple[str, str], float]:
    m = a.metrics[a.metrics["repetition"].isna() & a.metrics["metric"].isin(CHECKED)]
    return {(r.metric, r.side): float(r.value) for r in m.itertuples()}


def _folded():
    """A synthetic Kinect deep squat, and the same with the right lower leg folded up for 6
    frames at the bottom (the shank mirrored upwards about the knee)."""
    rec = kinect_recording("deep_squat", seed=1)
    seq = rec.sequence
    knee = np.asarray(rec.truth.angles["knee_flexion_r"])
    folded = np.arange(int(np.argmax(knee)) - 3, int(np.argmax(knee)) + 3)  # the bottom
    pos = np.array(seq.positions)
    a, k = seq.names.index("ankle_r"), seq.names.index("knee_r")
    pos[folded, a, 1] = 2 * pos[folded, k, 1] - pos[folded, a, 1]  # the shank mirrored upwards
    assert np.all(pos[folded, a, 1] > pos[folded, k, 1] + 300.0)
    bad = mp.KeypointSequence(pos, seq.names, seq.rate, confidence=seq.confidence, frame=seq.frame)
    return seq, bad, folded


def test_a_folded_lower_leg_is_read_around(tmp_path):
    seq, bad, folded = _folded()
    with pytest.warns(UserWarning, match=r"6 of \d+ frames fitted poorly"):
        f = mp.fit(bad, progress=False)
    np.testing.assert_array_equal(f.poor_frames, folded)
    protocol = mp.Protocol.load("deep_squat")
    done, fine = protocol.run(bad), protocol.run(seq)
    clean, read = _values(fine), _values(done)
    # each knee's range says it was read around the frames left out (whole frames go), as
    # the clean trial's does not (the report prints the note beside the value)
    for a, left_out in ((done, True), (fine, False)):
        m = a.metrics[(a.metrics["metric"] == "rom_knee_flexion") & a.metrics["repetition"].isna()]
        notes = ["frame(s) of the repetition left out (not fitted, or fitted poorly)" in str(w)
                 for w in m["reason"]]  # fmt: skip
        assert notes == [left_out, left_out]
    # SPARC, which needs every sample, names the frames left out rather than a gap to fill
    sparc = done.metrics[done.metrics["metric"] == "sparc_knee_flexion"]
    assert sparc["value"].isna().any()
    for row in sparc[sparc["value"].isna()].itertuples():
        assert "fitted poorly and left out; this measure needs every sample" in row.reason
        assert "fill gaps" not in row.reason
    assert fine.metrics[fine.metrics["metric"] == "sparc_knee_flexion"]["value"].notna().all()
    # the criteria, read at the deepest frame kept, say the frames next to it are left out
    for a, near in ((done, True), (fine, False)):
        m = a.metrics[a.metrics["metric"].isin(CHECKED[1:])]
        assert len(m) == 12 and all((NEAR in str(w)) == near for w in m["reason"])
    # and the report prints that beside the value
    text = write_report(done, tmp_path, pdf=False).html.read_text(encoding="utf-8")
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", text)]
    value = format_value(done.value("thigh_angle", "right"), "deg")
    assert any(c.startswith(f"{value} (") and NEAR in c for c in cells), value
    assert set(clean) == set(read) and len(clean) == 8
    for key, value in clean.items():
        assert read[key] == pytest.approx(value, abs=2.0), key


def test_a_session_run_reads_around_them_and_counts_them(tmp_path):
    seq, bad, _ = _folded()
    protocol = mp.Protocol.load("deep_squat")
    values = {}
    for name, data in (("clean", seq), ("folded", bad)):
        folder = tmp_path / name
        write_uiprmd(data, folder / "trials", "squat")
        doc = {"medpose_session": 1, "patient": {"id": "P-1"}, "date": "2026-01-15",
               "trials": [{"name": "deep_squat", "kind": "exercise",
                           "keypoints": "trials/positions/squat_positions.txt"}]}  # fmt: skip
        write_session_yaml(doc, folder)
        result = execute_session(protocol, folder)
        values[name] = _values(result.assessment)
        q = result.assessment.quality.set_index("check")
        values[name, "poor"] = float(q.loc["frames_fitted_poorly", "value"])
        angles = result.angles["deep_squat"]["knee_flexion_r"]
        values[name, "gaps"] = int(angles.isna().sum())
    assert values["clean", "poor"] == 0 and values["clean", "gaps"] == 0
    assert values["folded", "poor"] >= 6 and values["folded", "gaps"] == values["folded", "poor"]
    for key, value in values["clean"].items():
        assert values["folded"][key] == pytest.approx(value, abs=2.0), key


def test_medpose_run_and_a_batch_worker_give_the_warning_without_the_patient_id(tmp_path, capsys):
    _, bad, _ = _folded()
    folder = tmp_path / "PX-SECRET-42_visit"
    write_uiprmd(bad, folder / "trials", "squat")
    doc = {"medpose_session": 1, "patient": {"id": "PX-SECRET-42"}, "date": "2026-01-15",
           "trials": [{"name": "deep_squat", "kind": "exercise",
                       "keypoints": "trials/positions/squat_positions.txt"}]}  # fmt: skip
    write_session_yaml(doc, folder)
    # a batch's worker sends the warning back as redacted text, printing nothing itself
    result, notes = compute_session(mp.Protocol.load("deep_squat"), str(folder), None)
    assert isinstance(result, SessionResult) and not capsys.readouterr().err
    assert len(notes) == 1 and "fitted poorly" in notes[0] and str(tmp_path) not in notes[0]
    out = tmp_path / "run"
    assert cli_main(["run", "deep_squat", str(folder), "--out", str(out), "--no-db",
                     "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "fitted poorly" in ln)
    assert line.startswith("warning: fit: ") and "session_run.py" not in err
    assert "PX-SECRET-42" not in err and str(tmp_path) not in err
