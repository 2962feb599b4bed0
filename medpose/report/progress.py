"""Progress over sessions: each metric across a patient's sessions against its MDC95.

:func:`progress_part` reads a patient's earlier sessions under one protocol from a study
database (:meth:`medpose.Study.progress`) and says, per measure with a known minimal detectable
change, whether the change since the first session exceeds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from ..scoring.norms import reliability_for
from ..scoring.statistics import mdc95 as mdc95_of
from . import figures
from .labels import format_value, measure_label, metric_label, trial_label, unit_label

__all__ = ["ProgressPart", "progress_part", "day"]

_MAX_FIGURES = 6


@dataclass
class ProgressPart:
    """Rows of the progress table, sentences, figures and the table's note."""

    rows: list[list[str]]
    words: list[str]
    figures: list[tuple[str, Figure]]
    note: str


def _name(a: Any) -> str:
    return str(a.protocol).partition(" ")[0]


def _mdc(
    a: Any, metric: str, joint: Any, study_scores: pd.DataFrame, trial: Any = None
) -> tuple[float, str]:
    """MDC95 of a metric (of ``trial`` where the scores name trials) and where it comes from
    (NaN, '' when none is known)."""
    for df in (a.scores, study_scores):
        if len(df) and "mdc95" in df.columns:
            sel = df["metric"] == metric
            if trial is not None and "trial" in df.columns and (sel & (df["trial"] == trial)).any():
                sel &= df["trial"] == trial
            v = df.loc[sel, "mdc95"].astype(float)
            v = v[np.isfinite(v)]
            if len(v):
                return float(v.iloc[-1]), "the assessment's scores"
    base = str(metric).split("_")[0] if str(metric).startswith("rom") else str(metric)
    try:
        rel = reliability_for(base, joint if isinstance(joint, str) and joint else None)
    except InputError:
        return math.nan, ""
    if not math.isfinite(rel["sem"]):
        return math.nan, ""
    return float(np.asarray(mdc95_of(rel["sem"]).value).ravel()[0]), rel["source"]


def progress_part(a: Any, study: Any, patient: str) -> ProgressPart | None:
    """The progress of ``patient`` under ``a``'s protocol in ``study``; None without at least
    two sessions."""
    name = _name(a)
    try:
        prog = study.progress(patient, name)
    except InputError:
        return None
    prog = prog[prog["repetition"].isna()]
    if prog.empty or prog["date"].nunique() < 2:
        return None
    try:
        study_scores = study.scores(protocol=name, patient=patient)
    except InputError:
        study_scores = pd.DataFrame()
    rows: list[list[str]] = []
    words: list[str] = []
    figs: list[tuple[str, Figure]] = []
    summary = a.summary()
    order = {m: k for k, m in enumerate(dict.fromkeys(summary["metric"]))}
    trials = list(dict.fromkeys([*summary.get("trial", []), *prog["trial"].dropna()]))
    # values of different trials (a left-arm and a right-arm trial) are never chained: each
    # row is one trial's, and names its trial where the protocol has several
    named = len(set(prog["trial"].dropna())) > 1
    prog = prog.assign(
        _t=prog["trial"].map({t: k for k, t in enumerate(trials)}).fillna(len(trials)),
        _o=prog["metric"].map(order).fillna(len(order)),
    )
    prog = prog.sort_values(["_t", "_o", "metric", "side", "date"], kind="stable")
    drawn: set[Any] = set()
    keys = ["_t", "trial", "_o", "metric", "side"]
    for (_, trial, _, metric, side), g in prog.groupby(keys, sort=False, dropna=False):
        g = g.sort_values("date")
        g = g[np.isfinite(g["value"].astype(float))]
        if len(g) < 2:
            continue
        joint = summary.set_index("metric")["joint"].get(metric, None)
        if isinstance(joint, pd.Series):
            joint = joint.iloc[0]
        unit = g["unit"].iloc[-1]
        first, last = float(g["value"].iloc[0]), float(g["value"].iloc[-1])
        change = last - first
        mdc, src = _mdc(a, metric, joint, study_scores, trial)
        label = measure_label(metric, joint, side, trial if named else None)
        if math.isfinite(mdc):
            exceeds = abs(change) > mdc
            verdict = "larger than MDC95: real" if exceeds else "within MDC95"
            words.append(
                f"{label}: {format_value(first, unit)} on {day(g['date'].iloc[0])}, "
                f"{format_value(last, unit)} on {day(g['date'].iloc[-1])}, a change of "
                f"{_signed(change, unit)}; this "
                + (
                    f"exceeds the minimal detectable change ({format_value(mdc, unit)}): "
                    "a real change."
                    if exceeds
                    else f"is within the minimal detectable change ({format_value(mdc, unit)}): "
                    "it may be measurement error."
                )
            )
        else:
            verdict = "not judged (no MDC95)"
        rows.append(
            [
                label,
                " → ".join(format_value(v, unit) for v in g["value"]),
                _signed(change, unit),
                format_value(mdc, unit) if math.isfinite(mdc) else "not published",
                verdict,
            ]
        )
        sel = prog[prog["metric"] == metric]
        # one figure per metric, its sides as lines, unless a side recurs in several trials:
        # then one per trial, so that no line joins two trials' values
        per_trial = sel.groupby("side", dropna=False)["trial"].nunique().max() > 1
        key = (metric, trial) if per_trial else metric
        if math.isfinite(mdc) and len(figs) < _MAX_FIGURES and key not in drawn:
            drawn.add(key)
            sel = sel[sel["trial"] == trial] if per_trial else sel
            fig = figures.progress(sel, metric=metric, joint=joint, unit=unit, mdc95=mdc)
            what = f" (trial {trial_label(trial)})" if per_trial else ""
            figs.append((f"{metric_label(metric, joint)}{what} across sessions; band: ± MDC95 "
                         f"({src}).", fig))  # fmt: skip
    dates = ", ".join(day(d) for d in sorted(prog["date"].unique()))
    note = (
        f"Sessions on {dates}. A change larger than the minimal detectable change (MDC95) "
        "exceeds measurement error with 95 % confidence; MDC95 is taken from published "
        "measurement error where no other is recorded."
    )
    return ProgressPart(rows, words, figs, note)


def day(d: Any) -> str:
    return pd.Timestamp(d).strftime("%Y-%m-%d") if pd.notna(d) else "?"


def _signed(v: float, unit: Any) -> str:
    """A change with its sign; angles, distances and percents to 0.1."""
    if str(unit) in ("deg", "mm", "%", "deg/s") and math.isfinite(v):
        v = round(v, 1)
        text = format_value(abs(v), unit) if abs(v) >= 1 else f"{abs(v):.1f}{unit_label(unit)}"
        if str(unit) == "mm" and abs(v) < 1:
            text = f"{abs(v):.1f} mm"
        return ("+" if v >= 0 else "−") + text
    text = format_value(abs(v), unit)
    return text if text == "not available" else ("+" if v >= 0 else "−") + text
