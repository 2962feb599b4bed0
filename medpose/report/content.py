"""What a clinical report says: tables in plain words, figures, progress, built from an assessment.

:func:`build_content` turns an :class:`~medpose.protocol.Assessment` (one trial, or a session
run with data quality, provenance and registration), optional joint angles and an optional
study database into a :class:`ReportContent`: plain data (strings, rows, figures) that the
HTML template and the PDF fallback both render.  Nothing here writes a file.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._version import __version__
from ..errors import InputError, MedposeError
from ..packaged import resource_yaml
from ..protocol.capped import BESIDE
from ..protocol.clean import REPROJECTION_ERROR_LIMIT_PX
from ..scoring.derived_angles import with_derived
from ..scoring.norms import load_norms
from ..scoring.scores import CRITERION_SPAN
from . import figures
from .labels import (
    flag_label,
    format_value,
    joint_label,
    measure_label,
    metric_label,
    repetition_counts,
    side_label,
    unit_label,
)
from .progress import day, progress_part

__all__ = ["ReportContent", "Section", "build_content"]

#: Identifiers shown only with ``show_identifiers=True`` (beyond the pseudonym).
IDENTIFIERS = ("age_years", "sex", "height_mm", "mass_kg", "session_folder")
_ID_LABELS = {
    "age_years": "Age (years)",
    "sex": "Sex",
    "height_mm": "Height (mm)",
    "mass_kg": "Body mass (kg)",
    "session_folder": "Session folder",
}
#: Metrics of a registration (shown in the registration part, not as an exercise).
REGISTRATION_METRICS = {"fre", "tre", "fiducial_residual", "n_outliers", "gate_passed"}
#: Quality checks summarised by their median over keypoints (the others are summed).
_AVERAGED = {"missing_fraction", "fit_residual_median", "fit_residual_p95",
             "reprojection_error_median"}  # fmt: skip
#: Quality checks given per side (a bilateral repetition is missing on both sides, once).
_PER_SIDE = {"repetitions_missing"}
#: Data-quality checks (``Assessment.quality``) in words.
QUALITY_LABELS = {
    "missing_fraction": "Missing data",
    "outliers_removed": "Outlier samples removed",
    "gap_frames_filled": "Frames filled in gaps",
    "gap_frames_unfilled": "Frames left missing (gaps too long)",
    "swaps_repaired": "Left/right mix-ups repaired",
    "frames_at_joint_limit": "Frames at the joint's limit",
    "frames_not_fitted": "Frames the body model could not fit",
    "frames_fitted_poorly": "Frames the body model fitted poorly, left out of the measures",
    "fit_residual_median": "Body-model fit residual, median",
    "fit_residual_p95": "Body-model fit residual, 95th percentile",
    "reprojection_error_median": "Camera reprojection error, median",
    "repetitions_missing": "Repetitions fewer than the protocol asks for",
}


@dataclass
class Section:
    """A table (header row and rows of text) with an optional note."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class ReportContent:
    """Everything a report shows, as text and figures (see :func:`build_content`)."""

    title: str
    subtitle: str
    header: list[tuple[str, str]]
    score: str
    score_words: str
    summary: Section
    exercises: list[Section]
    figures: list[tuple[str, Figure]]
    registration: list[Section] = field(default_factory=list)
    quality: Section | None = None
    provenance: Section | None = None
    progress: Section | None = None
    progress_words: list[str] = field(default_factory=list)
    progress_figures: list[tuple[str, Figure]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------ helpers
def _protocol_name(a: Any) -> tuple[str, str]:
    name, _, version = str(a.protocol).partition(" ")
    return name, version


def _protocol_doc(name: str) -> dict[str, Any]:
    """The catalogue file of ``name`` (title, purpose); empty for a protocol not in it."""
    try:
        doc = resource_yaml(f"protocols/{name}.yaml")
    except (OSError, MedposeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _norm_rows() -> pd.DataFrame:
    return load_norms().set_index("key")


def _norm_text(norm_key: Any, norms: pd.DataFrame, unit: Any) -> str:
    """``"135° (average, AAOS)"`` or ``"110° to 150°"`` for a normative key; ``""`` without."""
    if not isinstance(norm_key, str) or norm_key not in norms.index:
        return ""
    row = norms.loc[norm_key]
    lo, hi, mean = float(row["lower"]), float(row["upper"]), float(row["mean"])
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{format_value(lo, unit)} to {format_value(hi, unit)}"
    if math.isfinite(mean):
        return f"average {format_value(mean, unit)} (no range published)"
    if math.isfinite(hi):
        return f"at most {format_value(hi, unit)}"
    if math.isfinite(lo):
        return f"at least {format_value(lo, unit)}"
    return ""


def _is_criterion(norm_key: Any, norms: pd.DataFrame) -> bool:
    return (
        isinstance(norm_key, str)
        and norm_key in norms.index
        and (norms.loc[norm_key, "mode"] == "criterion")
    )


def _flag_text(r: Any, norms: pd.DataFrame) -> str:
    """The flag in words; a test criterion is met or not met, or missed by less than the
    measurement's error: 1.96 SEM of one measurement, ``MDC95 / sqrt 2`` (a value 0.2 degrees
    past a limit of 0, as a still trunk's side bending reads, is no evidence of a miss)."""
    if _is_criterion(r.norm, norms) and r.flag in ("within", "below", "above"):
        if r.flag == "within":
            return "criterion met"
        row = norms.loc[r.norm]
        limit = float(row["upper"] if r.flag == "above" else row["lower"])
        past, err = abs(float(r.value) - limit), float(r.mdc95) / math.sqrt(2.0)
        if math.isfinite(err) and past <= err:
            return (
                f"borderline: {format_value(past, r.unit, 2)} past the limit, within the "
                f"measurement error (± {format_value(err, r.unit, 2)})"
            )
        return "criterion NOT met"
    return flag_label(r.flag)


def _criteria_note(a: Any, norms: pd.DataFrame) -> str:
    seen: dict[str, str] = {}
    for r in a.scores.itertuples(index=False) if len(a.scores) else []:
        if _is_criterion(r.norm, norms) and r.metric not in seen:
            seen[r.metric] = str(norms.loc[r.norm, "range_basis"])
    return " ".join(f"{metric_label(m)}: {t}." for m, t in seen.items())


def _ci_text(lo: Any, hi: Any, unit: Any) -> str:
    lo, hi = float(lo), float(hi)
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{format_value(lo, unit)} to {format_value(hi, unit)}"
    return "–"


def _reason(text: Any) -> str:
    return text if isinstance(text, str) else ""


def _scores_by_key(a: Any) -> dict[tuple[str, str], Any]:
    s = a.scores
    return {(r.metric, str(r.side)): r for r in s.itertuples(index=False)} if len(s) else {}


# ------------------------------------------------------------------------ summary
def _summary(a: Any, norms: pd.DataFrame) -> Section:
    rows = []
    s = a.scores
    # a protocol of several trials (left arm, right arm) names each row's trial
    named = len(s) > 0 and "trial" in s.columns and s["trial"].nunique() > 1
    for r in s.itertuples(index=False) if len(s) else []:
        pct = float(r.percent)
        rows.append(
            [
                measure_label(r.metric, r.joint, None, r.trial if named else None),
                side_label(r.side),
                format_value(r.value, r.unit),
                _norm_text(r.norm, norms, r.unit) or "–",
                f"{pct:.0f} %" if math.isfinite(pct) else "–",
                _flag_text(r, norms),
            ]
        )
    note = (
        "Percent of normal compares the value with the published normal average (100 % = "
        "average). Flags need a published normal range; where only an average is published "
        "the value is compared with the average and no flag is given."
    )
    criteria = _criteria_note(a, norms)
    if criteria:
        span = format_value(CRITERION_SPAN["deg"], "deg")
        note += (
            f" A test criterion scores 100 % within its limit, falling linearly to 0 % at {span} "
            "beyond it. Test criteria (pass limits): " + criteria
        )
    return Section(
        "Summary of scores",
        ["Measure", "Side", "Value", "Normal", "% of normal", "Compared with normal"],
        rows,
        note if rows else "No measure of this protocol is compared with normal values.",
    )


def _exercise_tables(a: Any, norms: pd.DataFrame) -> list[Section]:
    s = a.summary()
    scored = _scores_by_key(a)
    reps = a.repetitions
    out = []
    has_registration = isinstance(getattr(a, "registration", None), pd.DataFrame)
    for trial, grp in s.groupby("trial", sort=False):
        if has_registration and set(grp["metric"]) <= REGISTRATION_METRICS:
            continue  # shown in the registration part
        n_rep = reps[reps["trial"] == trial] if "trial" in reps.columns else reps
        rows = []
        for r in grp.itertuples(index=False):
            sc = scored.get((r.metric, str(r.side)))
            value = format_value(r.value, r.unit)
            parts = _reason(r.reason).split("; ")  # a limit's note goes beside the value
            beside = [p for p in parts if any(w in p for w in BESIDE)]
            if beside:
                value += " (" + "; ".join(beside) + ")"
            why = "; ".join(p for p in parts if p not in beside)
            ci = _ci_text(r.ci_low, r.ci_high, r.unit)
            if why and math.isfinite(float(r.value)):  # where the CI comes from, or why none
                ci, why = f"{ci} ({why.removeprefix('no CI: ')})", ""
            rows.append(
                [
                    metric_label(r.metric, r.joint),
                    side_label(r.side),
                    value if not why else f"{value} ({why})",
                    ci,
                    unit_label(r.unit),
                    _norm_text(getattr(sc, "norm", None), norms, r.unit) or "–",
                ]
            )
        kind = "Exercise" if len(n_rep) else "Trial"
        out.append(
            Section(
                f"{kind}: {str(trial).replace('_', ' ')}",
                ["Measure", "Side", "Value", "95 % confidence interval", "Unit", "Normal"],
                rows,
                f"Repetitions found: {repetition_counts(n_rep)}. Values are the median over "
                "the repetitions; the confidence interval is a bootstrap over the repetitions where there are "
                "at least 3, else, for a value measured on the fitted skeleton, the spread "
                "that the fit's keypoint noise gives it.",
            )
        )
    return out


# ------------------------------------------------------------------------ figures
def _joints(a: Any) -> list[str]:
    """Joints with a range-of-motion or per-angle metric, in the protocol's order."""
    s = a.summary()
    seen: list[str] = []
    for j in s["joint"]:
        if isinstance(j, str) and j and j not in seen:
            seen.append(j)
    return seen


def _band(a: Any, norms: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Joint -> normal range of its range of motion (degrees), for the angle curves."""
    out: dict[str, dict[str, Any]] = {}
    for r in a.scores.itertuples(index=False) if len(a.scores) else []:
        if not str(r.metric).startswith("rom") or r.norm not in norms.index:
            continue
        row = norms.loc[r.norm]
        src = str(r.norm).split(".")[1:2]
        out[str(r.joint)] = {
            "lower": row["lower"],
            "upper": row["upper"],
            "mean": row["mean"],
            "label": f"normal range of motion ({src[0].upper() if src else 'published'})",
        }
    return out


def _angle_figures(a: Any, angles: Any, norms: pd.DataFrame) -> list[tuple[str, Figure]]:
    df = with_derived(figures.angle_frame(angles))  # the humerothoracic elevation too
    joints = [j for j in _joints(a) if any(c in df.columns for c in (j, j + "_l", j + "_r"))]
    if not joints:
        return []
    reps = a.repetitions
    out = [
        (
            "Joint angles over time (left blue, right orange); repetitions shaded; green: "
            "normal range of motion (dashed: published average).",
            figures.angle_curves(df, joints, repetitions=reps, norms=_band(a, norms)),
        )
    ]
    both = [j for j in joints if j + "_l" in df.columns and j + "_r" in df.columns]
    if both and len(reps) and {"left", "right"} <= set(reps.get("side", [])):
        out.append(
            (
                "Left against right: the average repetition of each side (line) and its "
                "spread (± 1 standard deviation), from start (0 %) to end (100 %).",
                figures.left_right(df, both[:3], reps),
            )
        )
    return out


# ------------------------------------------------------------------------ session parts
def _registration(a: Any) -> list[Section]:
    reg = getattr(a, "registration", None)
    if not isinstance(reg, pd.DataFrame) or reg.empty:
        return []
    items = {"fre": "Fiducial registration error (FRE)",
             "tre": "Predicted target registration error (TRE) at",  # + target name
             "fiducial": "Residual at fiducial", "residual": "Residual at fiducial",
             "gate": "Accuracy check", "reason": "Reason"}  # fmt: skip
    rows = []
    for r in reg.itertuples(index=False):
        item = str(getattr(r, "item", ""))
        label = items.get(item, item.replace("_", " ").capitalize())
        name = str(getattr(r, "name", "") or "")
        limit = getattr(r, "limit", np.nan)
        passed = getattr(r, "passed", None)
        outlier = getattr(r, "outlier", None)
        verdict = (
            "outlier (left out)" if outlier is True else
            "passed" if passed is True else "failed" if passed is False else "–"
        )  # fmt: skip
        value = format_value(getattr(r, "value", np.nan), getattr(r, "unit", "mm"))
        if item == "gate":
            value, name = name, ""
        elif item in ("fiducial", "tre"):
            name = joint_label(name) or name
        rows.append(
            [
                f"{label}{' ' + name if item == 'tre' else ': ' + name if name else ''}",
                value,
                format_value(limit, getattr(r, "unit", "mm")) if pd.notna(limit) else "–",
                verdict,
            ]
        )
    gate = getattr(a, "gate", None)
    note = ""
    if gate is not None:
        ok = getattr(gate, "passed", None)
        note = (
            "The registration meets the protocol's accuracy limits."
            if ok
            else "The registration does NOT meet the protocol's accuracy limits."
            if ok is False
            else ""
        )
    return [Section("Registration quality", ["Quantity", "Value", "Limit", "Result"], rows, note)]


def _quality(a: Any) -> Section | None:
    q = getattr(a, "quality", None)
    if not isinstance(q, pd.DataFrame) or q.empty:
        return None
    rows = []
    for (trial, check), g in q.groupby(["trial", "check"], sort=False):
        unit = g["unit"].iloc[0]
        v = g["value"].astype(float)
        if str(check).endswith("fraction") and str(unit) in ("1", "", "None", "nan"):
            v, unit = 100.0 * v, "%"
        counted = str(check) not in _AVERAGED
        overall = format_value(float(v.sum()) if counted else float(v.median()), unit)
        worst = g.loc[v.idxmax()] if v.notna().any() else None
        where = (
            f"{_where(worst['name'])}: {format_value(v.max(), unit)}"
            if worst is not None and len(g) > 1 and float(v.max()) > 0
            else "–"
        )
        if str(check) == "reprojection_error_median" and float(v.median()) > (
            REPROJECTION_ERROR_LIMIT_PX
        ):
            overall += (
                f" (median): HIGH, above {REPROJECTION_ERROR_LIMIT_PX:g} px: check the "
                "calibration and each camera's keypoint folder"
            )
            counted = True  # "(median)" already said
        if str(check) in _PER_SIDE:
            overall = ", ".join(f"{n}: {format_value(x, unit)}" for n, x in zip(g["name"], v))
            where = "–"
        rows.append(
            [
                str(trial).replace("_", " "),
                QUALITY_LABELS.get(str(check), str(check).replace("_", " ")),
                overall + ("" if counted else " (median)"),
                where,
            ]
        )
    return Section(
        "Data quality",
        ["Trial", "Check", "Overall", "Largest (where)"],
        rows,
        "Counts are totals over keypoints or joints; missing data and residuals are medians "
        "over keypoints. Missing data is counted before cleaning; residuals are distances "
        "between the fitted body model and the measured keypoints.",
    )


def _where(name: Any) -> str:
    """A keypoint, joint or left/right pair (``elbow_l/elbow_r``) in words."""
    parts = [joint_label(p) or str(p) for p in str(name).split("/")]
    if len(parts) == 2 and parts[0].endswith(" (left)") and parts[1].endswith(" (right)"):
        return parts[0].removesuffix(" (left)") + " (left/right)"
    return " / ".join(parts)


def _provenance(a: Any, show_identifiers: bool) -> Section:
    prov = dict(getattr(a, "provenance", {}) or {})
    name, version = _protocol_name(a)
    rows = [
        ["medpose version", str(prov.get("medpose_version", __version__))],
        ["Protocol", f"{name} version {version}"],
        ["Protocol content hash (SHA-256)", str(a.protocol_hash)],
    ]
    inputs = prov.get("inputs") or prov.get("input_hashes") or {}
    if isinstance(inputs, Mapping):
        for k, (path, digest) in enumerate(sorted(inputs.items()), start=1):
            label = f"Input file {path}" if show_identifiers else f"Input file {k}"
            rows.append([label, str(digest)])
    return Section(
        "Provenance",
        ["Item", "Value"],
        rows,
        "" if show_identifiers else "Input file names are left out; hashes identify the files.",
    )


def _angles(a: Any, angles: Any) -> Any:
    """The angles to draw: the given ones, else the assessment's; of a table or mapping per
    trial (a run folder's ``angles``, ``SessionResult.angles``) the first trial's; None when
    there are none."""
    if angles is None:
        angles = getattr(a, "angles", None)
    if isinstance(angles, Mapping):
        angles = next(iter(angles.values()), None)
    if isinstance(angles, pd.DataFrame):
        key = next((k for k in ("session_trial", "trial") if k in angles.columns), None)
        if key is not None and len(angles):
            angles = angles[angles[key] == angles[key].iloc[0]].drop(columns=key)
        if "time_s" in angles.columns:
            angles = angles.set_index("time_s")
        if angles.empty:
            return None
    return angles


# ------------------------------------------------------------------------ entry point
def build_content(
    a: Any,
    *,
    angles: Any = None,
    study: Any = None,
    patient: str | None = None,
    date: str | dt.date | None = None,
    identifiers: Mapping[str, Any] | None = None,
    show_identifiers: bool = False,
) -> ReportContent:
    """The report's content for assessment ``a``.

    Parameters
    ----------
    a : Assessment
        One trial or a session run (its ``quality``, ``provenance``, ``registration`` are
        used when present).
    angles : DataFrame, Fit or JointAngles, optional
        The trial's joint angles (degrees) for the angle-curve figures.
    study : Study, optional
        With ``patient``: earlier sessions of this patient and protocol give the progress part.
    patient : str, optional
        Pseudonymous patient id (default: ``a.provenance["patient"]`` when recorded).
    date : str or date, optional
        Session date (default: ``a.provenance["date"]``).
    identifiers : mapping, optional
        Age, sex, height, mass, session folder: shown only with ``show_identifiers=True``.
    """
    prov = dict(getattr(a, "provenance", {}) or {})
    patient = patient or prov.get("patient")
    date = date or prov.get("session_date") or prov.get("date")
    name, version = _protocol_name(a)
    doc = _protocol_doc(name)
    norms = _norm_rows()
    header = [
        ("Patient (pseudonym)", str(patient) if patient else "not given"),
        ("Session date", day(date) if date else "not given"),
        ("Protocol", f"{doc.get('title', name)} (version {version})"),
        ("Report made", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    if prov.get("side_of_interest"):  # as the session records it
        header.insert(3, ("Side of interest", str(prov["side_of_interest"])))
    if show_identifiers:
        ids = dict(identifiers or {})
        header += [(_ID_LABELS[k], str(ids[k])) for k in IDENTIFIERS if ids.get(k) is not None]
    score = "not available" if math.isnan(a.score) else f"{a.score:.0f} / 100"
    words = (
        "The overall score weighs the measures compared with normal values (100 = the "
        "published normal average or better)."
        if not math.isnan(a.score)
        else f"No overall score: {a.score_reason or 'no measure could be scored'}."
    )
    gate = getattr(a, "gate", None)
    if gate is not None and math.isnan(a.score):
        ok = bool(getattr(gate, "passed", False))
        score = "Registration " + ("PASS" if ok else "FAIL")
        reasons = "; ".join(str(x) for x in getattr(gate, "reasons", ()) or ())
        words = (
            "The registration meets the protocol's accuracy limits."
            if ok
            else f"The registration does NOT meet the protocol's accuracy limits: {reasons}."
        )
    figs: list[tuple[str, Figure]] = []
    notes: list[str] = []
    angles = _angles(a, angles)
    if angles is not None:
        try:
            figs = _angle_figures(a, angles, norms)
        except InputError as exc:
            notes.append(f"Joint-angle figures left out: {exc}")
    elif len(a.repetitions):
        notes.append("Joint-angle curves are not shown: the joint angles were not given.")
    content = ReportContent(
        title=str(doc.get("title", name)),
        subtitle=str(doc.get("purpose", "")).strip(),
        header=header,
        score=score,
        score_words=words,
        summary=_summary(a, norms),
        exercises=_exercise_tables(a, norms),
        figures=figs,
        registration=_registration(a),
        quality=_quality(a),
        provenance=_provenance(a, show_identifiers),
        notes=notes,
    )
    if study is not None and patient:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            part = progress_part(a, study, str(patient))
        if part is not None:
            content.progress = Section(
                "Progress over sessions",
                ["Measure", "Sessions (oldest first)", "Change", "Minimal detectable change",
                 "Change is"],
                part.rows,
                part.note,
            )  # fmt: skip
            content.progress_words, content.progress_figures = part.words, part.figures
    elif study is not None:
        content.notes.append("Progress is not shown: the patient's pseudonym was not given.")
    return content
