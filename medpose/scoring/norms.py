"""Normative values for scores: published means, SDs and normal ranges by age group and sex.

The values live in ``medpose/resources/normative/norms.yaml`` (read with ``yaml.safe_load``),
one row per metric, joint or movement, age range, sex and source, each naming its source and
table.  :func:`load_norms` gives the rows that apply to a patient as a tidy table,
:func:`norm_for` the one row to score a metric against, :func:`reliability_for` the published
measurement error (SEM, ICC) used for MDC95.

Age ranges are in completed years, inclusive: a row for 60-69 covers ``60 <= age < 70``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..packaged import resource_yaml

__all__ = ["COLUMNS", "SEXES", "load_norms", "norm_for", "reliability_for"]

RESOURCE = "normative/norms.yaml"
SEXES = ("any", "female", "male")
ADULT_AGE = 18.0
MAX_AGE = 120.0

COLUMNS = (
    "key",
    "metric",
    "joint",
    "side",
    "age_min",
    "age_max",
    "sex",
    "mean",
    "sd",
    "lower",
    "upper",
    "range_basis",
    "mean_ci_low",
    "mean_ci_high",
    "unit",
    "better",
    "mode",
    "source",
    "table",
    "notes",
    "fallback",
)
_NUMERIC = ("age_min", "age_max", "mean", "sd", "lower", "upper", "mean_ci_low", "mean_ci_high")


def _num(value: Any, where: str, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{RESOURCE}: {where}: {field} must be a number or null, found {value!r}")
    return float(value)


def _row(raw: Mapping[str, Any], sources: Mapping[str, Any], i: int) -> dict[str, Any]:
    where = f"norms[{i}] ({raw.get('key', '?')})"
    src = str(raw.get("source"))
    if src not in sources:
        raise InputError(
            f"{RESOURCE}: {where}: source {src!r} is not one of the sources {sorted(sources)}"
        )
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update({k: raw.get(k) for k in ("key", "metric", "joint", "unit", "better", "mode")})
    row["side"] = raw.get("side", "any")
    row["sex"] = raw.get("sex", "any")
    row["source"] = f"{sources[src]['citation']}"
    row["table"] = str(raw.get("table", ""))
    row["notes"] = str(raw.get("notes", ""))
    ci = raw.get("mean_ci") or [None, None]
    for field, value in (
        ("age_min", raw.get("age_min", 0)),
        ("age_max", raw.get("age_max")),
        ("mean", raw.get("mean")),
        ("sd", raw.get("sd")),
        ("lower", raw.get("lower")),
        ("upper", raw.get("upper")),
        ("mean_ci_low", ci[0]),
        ("mean_ci_high", ci[1]),
    ):
        row[field] = _num(value, where, field)
    if math.isnan(row["age_max"]):
        row["age_max"] = math.inf
    has_range = not (math.isnan(row["lower"]) and math.isnan(row["upper"]))
    row["range_basis"] = str(
        raw.get("range_basis") or ("" if has_range else "no normal range published (mean only)")
    )
    row["fallback"] = ""
    for field in ("key", "metric", "unit", "better"):
        if not row[field]:
            raise InputError(f"{RESOURCE}: {where}: field {field!r} is missing")
    if row["sex"] not in SEXES:
        raise InputError(f"{RESOURCE}: {where}: sex {row['sex']!r} is not one of {SEXES}")
    if row["better"] not in ("higher", "lower", "none"):
        raise InputError(f"{RESOURCE}: {where}: better must be 'higher', 'lower' or 'none'")
    return row


def _table() -> pd.DataFrame:
    return _parsed_table().copy()


@functools.cache
def _parsed_table() -> pd.DataFrame:
    doc = resource_yaml(RESOURCE)
    sources = doc.get("sources", {})
    rows = [_row(raw, sources, i) for i, raw in enumerate(doc.get("norms", []))]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in _NUMERIC:
        df[c] = df[c].astype(float)
    dup = df["key"][df["key"].duplicated()].tolist()
    if dup:
        raise InputError(f"{RESOURCE}: keys must be unique, found repeated {dup}")
    return df


def _check_group(age: float | None, sex: str | None) -> tuple[float | None, str | None]:
    if sex is not None and sex not in SEXES:
        raise InputError(f"norms: sex must be one of {SEXES} or None, found {sex!r}")
    if age is None:
        return None, sex
    if isinstance(age, bool) or not isinstance(age, (int, float, np.integer, np.floating)):
        raise InputError(f"norms: age must be a number of years, found {age!r}")
    if not (0 <= float(age) <= MAX_AGE):
        raise InputError(f"norms: age must lie in [0, {MAX_AGE:g}] years, found {age!r}")
    return float(age), sex


def _matches(df: pd.DataFrame, age: float | None, sex: str | None) -> pd.Series:
    ok = pd.Series(True, index=df.index)
    if sex is not None and sex != "any":
        ok &= df["sex"].isin([sex, "any"])
    elif sex == "any":
        ok &= df["sex"] == "any"
    if age is not None:
        ok &= (df["age_min"] <= age) & (age < df["age_max"] + 1)
    return ok


def load_norms(*, age: float | None = None, sex: str | None = None) -> pd.DataFrame:
    """The normative rows that apply to a group, as a tidy table.

    Parameters
    ----------
    age : float or None
        Age in years, in [0, 120]; None keeps every age range.
    sex : {"any", "female", "male"} or None
        ``"female"`` / ``"male"`` keep the rows of that sex and the rows for both sexes
        (``"any"``); ``"any"`` keeps only the rows for both sexes; None keeps all.

    Returns
    -------
    DataFrame
        One row per normative value, columns :data:`COLUMNS`.  ``source`` is the full
        citation and ``table`` the table it was transcribed from.  For a (metric, joint) with
        no row for the group, the adult (``age_min >= 18``) rows for both sexes are returned
        instead, with ``fallback`` saying so; ``fallback`` is ``""`` for direct matches.

    Raises
    ------
    InputError
        For a sex outside ``SEXES`` or an age that is not a number in [0, 120] (the message
        lists the accepted values).
    """
    age, sex = _check_group(age, sex)
    df = _table()
    ok = _matches(df, age, sex)
    out = df[ok]
    if age is not None or sex not in (None, "any"):
        pairs = set(zip(out["metric"], out["joint"].fillna("")))
        adult = df[(df["sex"] == "any") & (df["age_min"] >= ADULT_AGE)].copy()
        missing = [(m, j) not in pairs for m, j in zip(adult["metric"], adult["joint"].fillna(""))]
        adult = adult[missing]
        if not adult.empty:
            group = ", ".join(
                p for p in (f"age {age:g}" if age is not None else "", sex or "") if p
            )
            adult["fallback"] = f"no row for {group}; adult row for both sexes used"
            out = pd.concat([out, adult])
    return out.reset_index(drop=True)


def _rank(df: pd.DataFrame, age: float | None, sex: str | None) -> pd.DataFrame:
    """Order candidates: direct match before fallback, the nearest age range (for fallbacks),
    own sex before ``any`` (``any`` first when no sex is given), narrower age range first,
    then the file's order."""
    if age is None:
        dist = pd.Series(0.0, index=df.index)
    else:
        dist = np.maximum(df["age_min"] - age, 0.0) + np.maximum(age - (df["age_max"] + 1), 0.0)
    score = pd.DataFrame(
        {
            "fb": df["fallback"] != "",
            "dist": dist,
            "sexrank": df["sex"] != (sex if sex is not None else "any"),
            "span": (df["age_max"] - df["age_min"]).replace(math.inf, 1e9),
            "order": np.arange(len(df)),
        },
        index=df.index,
    )
    return df.loc[score.sort_values(["fb", "dist", "sexrank", "span", "order"]).index]


def norm_for(
    metric: str,
    joint: str | None = None,
    *,
    age: float | None = None,
    sex: str | None = None,
    source: str | None = None,
) -> pd.Series:
    """The one normative row to score ``metric`` (for ``joint``) against.

    Among the rows :func:`load_norms` gives for the group, the most specific is chosen: a
    direct match before an adult fallback (among fallbacks, the age range nearest the age), a
    row for the patient's sex before one for both sexes (without a sex, a row for both
    sexes first), a narrower age range before a wider
    one, then the file's order.

    Parameters
    ----------
    metric : str
        ``"rom"``, ``"five_times_sit_to_stand"``, ``"gait_speed"``, ``"cadence"``.
    joint : str or None
        Movement for ROM rows (``"knee_flexion"``, ``"shoulder_abduction"``...); None for
        whole-body tests.
    age, sex
        As in :func:`load_norms`.
    source : str or None
        Keep only rows whose ``key`` or citation contains this text (``"Bohannon"``,
        ``"aaos"``), to pick a source when several apply.

    Returns
    -------
    Series
        One row with the fields :data:`COLUMNS`.

    Raises
    ------
    InputError
        For an unknown metric, joint or source (the message lists the known ones), a sex or an
        age outside the accepted values, or an age no row covers (the message lists the
        covered ages).
    """
    all_rows = _table()
    metrics = sorted(all_rows["metric"].unique())
    if metric not in metrics:
        raise InputError(f"norm_for: metric {metric!r} is unknown; known metrics: {metrics}")
    rows = all_rows[all_rows["metric"] == metric]
    joints = sorted(j for j in rows["joint"].dropna().unique())
    if joint is None and joints:
        raise InputError(f"norm_for: metric {metric!r} needs a joint, one of {joints}")
    if joint is not None and joint not in joints:
        raise InputError(
            f"norm_for: joint {joint!r} has no {metric!r} norms; known joints: {joints or 'none'}"
        )
    table = load_norms(age=age, sex=sex)
    sel = table[(table["metric"] == metric)]
    sel = sel[sel["joint"] == joint] if joint is not None else sel[sel["joint"].isna()]
    if source is not None:
        text = source.lower()
        hit = sel["key"].str.lower().str.contains(text, regex=False) | sel[
            "source"
        ].str.lower().str.contains(text, regex=False)
        if not hit.any():
            known = sorted({k.split(".")[1] for k in sel["key"]})
            raise InputError(
                f"norm_for: no {metric!r} row from source {source!r} for this group; "
                f"sources available: {known}"
            )
        sel = sel[hit]
    if sel.empty:
        cand = rows if joint is None else rows[rows["joint"] == joint]
        cover = sorted(
            {
                f"{a:g}-{b:g} ({s})" if math.isfinite(b) else f"{a:g}+ ({s})"
                for a, b, s in zip(cand["age_min"], cand["age_max"], cand["sex"])
            }
        )
        raise InputError(
            f"norm_for: no {metric!r} {joint or ''} norm for age {age!r}, sex {sex!r}; "
            f"rows exist for ages (sex): {cover}"
        )
    return _rank(sel, None if age is None else float(age), sex).iloc[0]


def reliability_for(metric: str, joint: str | None = None) -> dict[str, Any]:
    """Published measurement error of a measure, for MDC95.

    Returns
    -------
    dict
        ``key``, ``metric``, ``joint``, ``sem`` and ``icc`` (NaN where not published),
        ``unit``, ``source`` (citation), ``table`` and ``notes``.

    Raises
    ------
    InputError
        When no reliability row exists for ``metric`` / ``joint`` (the message lists those
        that do).
    """
    doc = resource_yaml(RESOURCE)
    sources = doc.get("sources", {})
    rows = doc.get("reliability", [])
    for raw in rows:
        if raw.get("metric") == metric and raw.get("joint") == joint:
            where = f"reliability ({raw.get('key')})"
            return {
                "key": raw["key"],
                "metric": metric,
                "joint": joint,
                "sem": _num(raw.get("sem"), where, "sem"),
                "icc": _num(raw.get("icc"), where, "icc"),
                "unit": raw.get("unit", ""),
                "source": sources[raw["source"]]["citation"],
                "table": raw.get("table", ""),
                "notes": raw.get("notes", ""),
            }
    known = sorted(f"{r.get('metric')}/{r.get('joint') or '-'}" for r in rows)
    raise InputError(
        f"reliability_for: no measurement error published for {metric}/{joint or '-'}; "
        f"known: {known}"
    )
