"""Progress of a protocol of two trials (left arm, right arm): no row chains values of two trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medpose.protocol.assessment import Assessment
from medpose.protocol.session_result import store_metrics
from medpose.report.content import build_content
from medpose.report.labels import format_value
from medpose.store.study import Study

from .conftest import PATIENT

TRIALS = ("abduction_left", "abduction_right")
SIDE = {"abduction_left": "left", "abduction_right": "right"}
# per (trial, metric): (baseline, follow-up); values of the two trials kept far apart
VALUES = {
    ("abduction_left", "trunk_lean"): (0.52, 0.67),
    ("abduction_right", "trunk_lean"): (3.5, 4.25),
    ("abduction_left", "trunk_lateral_flexion"): (0.25, 0.05),
    ("abduction_right", "trunk_lateral_flexion"): (2.5, 1.5),
    ("abduction_left", "rom_shoulder_elevation"): (87.5, 124.0),
    ("abduction_right", "rom_shoulder_elevation"): (145.5, 146.0),
}
LABELS = {
    "trunk_lean": "Trunk lean",
    "trunk_lateral_flexion": "Trunk side bending",
    "rom_shoulder_elevation": "Range of motion, shoulder elevation",
}


def _assessment(k: int) -> Assessment:
    """Session ``k`` (0 baseline, 1 follow-up) of a two-trial shoulder abduction."""
    rows = []
    for (trial, metric), v in VALUES.items():
        sided = metric.startswith("rom")
        rows.append(
            {
                "trial": trial,
                "metric": metric,
                "joint": "shoulder_elevation" if sided else "",
                "side": SIDE[trial] if sided else "",
                "repetition": np.nan,
                "value": v[k],
                "unit": "deg",
                "ci_low": np.nan,
                "ci_high": np.nan,
                "reason": "no CI: test",
            }
        )
    metrics = pd.DataFrame(rows)
    flex = metrics[metrics["metric"] == "trunk_lateral_flexion"]
    scores = pd.DataFrame(
        {
            "trial": flex["trial"],
            "metric": flex["metric"],
            "joint": "",
            "side": "",
            "value": flex["value"],
            "unit": "deg",
            "percent": 100.0,
            "z": np.nan,
            "flag": "n/a",
            "norm": None,
            "source": "",
            "mdc95": 7.5,
            "mdc95_percent": np.nan,
            "mdc95_source": "test",
            "reason": "",
        }
    )
    return Assessment(
        "shoulder_abduction 2.1.0", "h", "+".join(TRIALS), ("left", "right"), metrics,
        scores, pd.DataFrame(), 80.0, "", None, 30.0, trials=TRIALS,
    )  # fmt: skip


def _content(tmp_path):
    with Study(tmp_path / "study.sqlite") as study:
        for k, date in enumerate(("2026-01-15", "2026-03-01")):
            a = _assessment(k)
            study.add_run(
                patient=PATIENT, session=f"visit-{k}", date=date, protocol="shoulder_abduction",
                protocol_version="2.1.0", protocol_hash="h", inputs={"x.trc": f"sha256:{k}"},
                metrics=store_metrics(a.metrics),
            )  # fmt: skip
        return build_content(_assessment(1), study=study, patient=PATIENT)


def test_each_progress_row_holds_one_trials_values_and_names_it(tmp_path):
    c = _content(tmp_path)
    assert c.progress is not None
    rows = {r[0]: r[1] for r in c.progress.rows}
    assert len(rows) == len(c.progress.rows) == len(VALUES)  # one row per trial and metric
    for (trial, metric), (first, last) in VALUES.items():
        side = "left; " if trial.endswith("left") else "right; "
        where = (side if metric.startswith("rom") else "") + "trial " + trial.replace("_", " ")
        label = f"{LABELS[metric]} ({where})"
        assert rows[label] == f"{format_value(first, 'deg')} → {format_value(last, 'deg')}"
    # the written verdicts compare one trial's baseline with the same trial's follow-up
    flex = [w for w in c.progress_words if w.startswith("Trunk side bending")]
    assert len(flex) == 2
    for trial in TRIALS:
        first, last = VALUES[(trial, "trunk_lateral_flexion")]
        [w] = [w for w in flex if f"trial {trial.replace('_', ' ')}" in w]
        assert f"{format_value(first, 'deg')} on 2026-01-15, {format_value(last, 'deg')} on" in w
        change = float(w.split("change of ")[1][:4].replace("−", "-"))
        assert math.isclose(change, last - first, abs_tol=0.05)


def test_summary_rows_name_their_trial(tmp_path):
    c = _content(tmp_path)
    labels = [r[0] for r in c.summary.rows]
    assert sorted(labels) == [
        "Trunk side bending (trial abduction left)",
        "Trunk side bending (trial abduction right)",
    ]
