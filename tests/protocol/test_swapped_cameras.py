"""A session whose camera folders are swapped in session.yaml: the triangulation disagrees with
the cameras, most frames cannot be fitted, and the run must say so instead of scoring.

The session is synthetic (``mp.synthetic.make_session``), the protocol the demo's deep squat
(the catalogue's, triangulating the cameras).  With cam01 and cam02 given each other's folders
and the other two cameras removed, the reprojection error is far above its limit and most
frames have no fitted angles: the run warns, the report's data-quality table flags the error,
no stray numpy warning is shown, and the composite is not given.
"""

from __future__ import annotations

import math
import shutil
import warnings

import pytest
import yaml

import medpose as mp
from medpose.demo_visit import demo_protocol
from medpose.protocol import write_session_yaml
from medpose.protocol.clean import REPROJECTION_ERROR_LIMIT_PX
from medpose.protocol.execute import execute_session
from medpose.report.content import build_content


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("swapped")
    good = root / "good"
    mp.synthetic.make_session(good, seed=3, protocol="deep_squat", camera_views=True)
    doc = yaml.safe_load((good / "session.yaml").read_text())
    bad = root / "bad"
    shutil.copytree(good, bad)
    for trial in doc["trials"]:
        if trial["name"] == "deep_squat":
            cams = trial["cameras"]
            trial["cameras"] = {"cam01": cams["cam02"], "cam02": cams["cam01"]}
    write_session_yaml(doc, bad)
    protocol = demo_protocol("deep_squat", root / "protocols")
    out = {}
    for name, path in (("good", good), ("bad", bad)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = execute_session(protocol, path)
        out[name] = (result, [str(w.message) for w in caught])
    return out


def _reprojection(result) -> float:
    q = result.assessment.quality
    return float(q.loc[q["check"] == "reprojection_error_median", "value"].median())


def test_the_correct_session_is_scored_without_a_reprojection_warning(runs):
    result, messages = runs["good"]
    assert _reprojection(result) < REPROJECTION_ERROR_LIMIT_PX
    assert not [m for m in messages if "reprojection" in m]
    assert math.isfinite(result.assessment.score)


def test_swapped_cameras_warn_of_the_reprojection_error_and_give_no_score(runs):
    result, messages = runs["bad"]
    assert _reprojection(result) > REPROJECTION_ERROR_LIMIT_PX
    assert [m for m in messages if "median reprojection error" in m and "px" in m], messages
    assert not [m for m in messages if "empty slice" in m], messages
    a = result.assessment
    assert math.isnan(a.score)
    assert "reprojection error" in a.score_reason and "not trusted" in a.score_reason
    # criteria read at a key frame in a repetition mostly without keypoints give no value
    crit = a.metrics[a.metrics["metric"].isin(["thigh_angle", "knee_over_foot"])]
    per_rep = crit[crit["repetition"].notna()]
    gone = per_rep["reason"].str.contains("frames without keypoints; at most 50% allowed")
    assert per_rep.loc[gone, "value"].isna().all()


def test_the_report_flags_the_reprojection_error(runs):
    result, _ = runs["bad"]
    content = build_content(result.assessment)
    rows = [r for r in content.quality.rows if r[1].startswith("Camera reprojection error")]
    assert rows and "HIGH" in rows[0][2]
    good = build_content(runs["good"][0].assessment)
    rows = [r for r in good.quality.rows if r[1].startswith("Camera reprojection error")]
    assert rows and "HIGH" not in rows[0][2]
