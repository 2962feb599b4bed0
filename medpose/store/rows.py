"""Checks and conversions of what :meth:`medpose.store.Study.add_run` is given.

The metrics and scores DataFrames are checked column by column (a missing or unexpected
column is named, with the list of expected ones) and turned into plain rows; names, session
folders, dates and times are checked; failure messages are scrubbed of the patient id and of
absolute paths.  No message here shows a patient id or a session folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from datetime import date as Date
from datetime import datetime, timezone
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "METRIC_COLUMNS",
    "SCORE_COLUMNS",
    "FLAGS",
    "KEY",
    "scrub_message",
    "hiding",
    "metric_rows",
    "score_rows",
    "check_name",
    "session_folder",
    "session_day",
    "utc_naive",
    "inputs_json",
    "column_name",
]

#: Columns of the ``metrics`` DataFrame of :meth:`Study.add_run`: name -> (required, meaning).
METRIC_COLUMNS: dict[str, tuple[bool, str]] = {
    "trial": (True, "trial name (str)"),
    "exercise": (True, "exercise name (str)"),
    "side": (True, "side ('left', 'right', ...), or None/NaN when the metric has none"),
    "repetition": (False, "repetition number (int), or missing for a per-trial value"),
    "metric": (True, "metric name (str), e.g. 'rom'"),
    "value": (True, "the value (float); NaN when missing, with a reason"),
    "unit": (True, "unit of value (str): 'deg', 'deg/s', '1' for dimensionless ..."),
    "ci_low": (False, "lower end of the 95 % confidence interval (float)"),
    "ci_high": (False, "upper end of the 95 % confidence interval (float)"),
    "reason": (False, "why value is missing (str); required where value is NaN"),
}
#: Columns of the ``scores`` DataFrame of :meth:`Study.add_run`: name -> (required, meaning).
SCORE_COLUMNS: dict[str, tuple[bool, str]] = {
    "metric": (True, "the scored metric or composite score's name (str)"),
    "score": (True, "the score (float)"),
    "z": (True, "z-score against the normative range (float)"),
    "flag": (True, "'within', 'below', 'above' the normative range; None or 'n/a' if unknown"),
    "mdc95": (False, "minimal detectable change at 95 %, in the metric's unit (float)"),
}
FLAGS = ("within", "below", "above")
KEY = ["trial", "exercise", "side", "repetition", "metric"]

#: An absolute path in a message: /a/b, ~/a, C:\a (not the '/s' of 'deg/s').
ABS_PATH = re.compile(r"(?<![\w.])(?:~?/|[A-Za-z]:[\\/])[^\s'\"]*")


def scrub_message(message: str, patient: str) -> str:
    """``message`` without the patient id (``<patient>``) and with paths cut to their last part.

    Parameters
    ----------
    message : str
        A failure message, e.g. an exception's text.
    patient : str
        The pseudonymous id to remove (matched case-insensitively).

    Returns
    -------
    str
        The scrubbed message, at most 2000 characters.
    """

    def last_part(m: re.Match[str]) -> str:
        text = m.group(0)
        return PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name

    out = ABS_PATH.sub(last_part, message)
    if patient:
        out = re.sub(re.escape(patient), "<patient>", out, flags=re.IGNORECASE)
    return out[:2000]


@contextlib.contextmanager
def hiding(patient: str) -> Iterator[None]:
    """Re-raise an :class:`~medpose.errors.InputError` with ``patient`` scrubbed from it."""
    try:
        yield
    except InputError as exc:
        raise InputError(scrub_message(str(exc), patient)) from None


def _expected(columns: Mapping[str, tuple[bool, str]]) -> str:
    req = [c for c, (r, _) in columns.items() if r]
    opt = [c for c, (r, _) in columns.items() if not r]
    return f"expected columns {req} and optionally {opt}"


def _check_frame(
    df: pd.DataFrame | None, what: str, columns: Mapping[str, tuple[bool, str]]
) -> pd.DataFrame:
    """``df`` with every column of ``columns`` present, in order; InputError on a bad frame."""
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"add_run: {what} must be a pandas DataFrame, found {type(df).__name__}")
    missing = [c for c, (req, _) in columns.items() if req and c not in df.columns]
    if missing:
        raise InputError(f"add_run: {what} lacks column(s) {missing}; {_expected(columns)}")
    extra = [str(c) for c in df.columns if c not in columns]
    if extra:
        raise InputError(f"add_run: {what} has unexpected column(s) {extra}; {_expected(columns)}")
    out = df.reset_index(drop=True).copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out[list(columns)]


def _numeric(df: pd.DataFrame, what: str, col: str) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce").astype(float)
    bad = values.isna() & df[col].notna() & ~df[col].isin([np.nan])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"add_run: {what} column {col!r} row {row}: found {df[col].iloc[row]!r}; expected a number"
        )
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values.to_numpy()))[0])
        raise InputError(
            f"add_run: {what} column {col!r} row {row}: found {values.iloc[row]}; expected a "
            "finite number, or NaN when missing"
        )
    return values


def _text(df: pd.DataFrame, what: str, col: str, required: bool) -> pd.Series:
    present = df[col].notna()
    if required and not present.all():
        row = int(np.flatnonzero(~present.to_numpy())[0])
        raise InputError(f"add_run: {what} column {col!r} row {row} is missing; expected text")
    is_text = np.array([isinstance(v, str) for v in df[col]], dtype=bool)
    wrong = present.to_numpy(dtype=bool) & ~is_text
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        kind = type(df[col].iloc[row]).__name__
        raise InputError(
            f"add_run: {what} column {col!r} row {row}: found a value of type {kind}; expected text"
        )
    return df[col].where(present & (df[col] != ""), None)


def metric_rows(metrics: pd.DataFrame | None) -> list[dict[str, Any]]:
    df = _check_frame(metrics, "metrics", METRIC_COLUMNS)
    for col in ("trial", "exercise", "metric", "unit"):
        df[col] = _text(df, "metrics", col, required=True)
    for col in ("side", "reason"):
        df[col] = _text(df, "metrics", col, required=False)
    for col in ("value", "ci_low", "ci_high"):
        df[col] = _numeric(df, "metrics", col)
    rep = _numeric(df, "metrics", "repetition")
    bad = rep.notna() & ((rep % 1 != 0) | (rep < 0))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"add_run: metrics column 'repetition' row {row}: found {float(rep.iloc[row])!r}; "
            "expected a whole number >= 0 or a missing value"
        )
    df["repetition"] = rep.astype("Int64")
    unexplained = df["value"].isna() & df["reason"].isna()
    if unexplained.any():
        row = int(np.flatnonzero(unexplained.to_numpy())[0])
        raise InputError(
            f"add_run: metrics row {row} ({df['metric'].iloc[row]!r}): value is missing and "
            "'reason' is empty; expected the reason the metric could not be computed"
        )
    dup = df.duplicated(KEY, keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(
            f"add_run: metrics row {row} repeats trial, exercise, side, repetition and metric "
            f"of an earlier row ({df['metric'].iloc[row]!r}); expected one value per key"
        )
    return _records(df)


def score_rows(scores: pd.DataFrame | None) -> list[dict[str, Any]]:
    df = _check_frame(scores, "scores", SCORE_COLUMNS)
    df["metric"] = _text(df, "scores", "metric", required=True)
    flag = _text(df, "scores", "flag", required=False)
    df["flag"] = flag.where(flag != "n/a", None)  # "n/a": not computed, as scoring writes it
    for col in ("score", "z", "mdc95"):
        df[col] = _numeric(df, "scores", col)
    wrong = df["flag"].notna() & ~df["flag"].isin(FLAGS)
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise InputError(
            f"add_run: scores column 'flag' row {row}: found {df['flag'].iloc[row]!r}; "
            f"expected one of {list(FLAGS)} or a missing value"
        )
    if df["metric"].duplicated().any():
        name = df["metric"][df["metric"].duplicated()].iloc[0]
        raise InputError(f"add_run: scores name {name!r} twice; expected one row per metric")
    return _records(df)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values, NaN and <NA> as None."""
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.generic):
                row[key] = value.item()
    return rows


def check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{field}: expected a non-empty string, found {type(value).__name__}")
    return value.strip()


def session_folder(session: object) -> str:
    """The session folder's name, relative, as a POSIX string."""
    if not isinstance(session, (str, os.PathLike)) or not str(session).strip():
        raise InputError("session: expected the session folder's name relative to the study root")
    text = os.fspath(session)
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or "~" in text:
        raise InputError(
            "session: found an absolute path (not shown); expected the session folder's name "
            "relative to the study root, e.g. '2026-03-01_visit1'"
        )
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        raise InputError("session: found '..' in the folder name; expected a relative name")
    return "/".join(p for p in parts if p != ".")


def session_day(value: object) -> Date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, Date):
        return value
    if isinstance(value, str):
        try:
            return Date.fromisoformat(value)
        except ValueError:
            pass
    raise InputError(f"date: found {value!r}; expected a datetime.date or 'YYYY-MM-DD'")


def utc_naive(value: datetime | None, field: str, default: datetime) -> datetime:
    """Naive UTC datetime for storage; an aware value is converted, a naive one refused."""
    if value is None:
        value = default
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(f"{field}: expected a timezone-aware datetime, found {value!r}")
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def inputs_json(inputs: object) -> str:
    if not isinstance(inputs, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
    ):
        raise InputError("inputs: expected a dict of input file name -> hash, both strings")
    for key in inputs:
        if PurePosixPath(key).is_absolute() or PureWindowsPath(key).is_absolute():
            raise InputError(
                "inputs: found an absolute path as a key (not shown); expected names relative "
                "to the session folder"
            )
    return json.dumps(dict(inputs), sort_keys=True, separators=(",", ":"))


def column_name(exercise: str, metric: str, side: object, unit: str) -> str:
    name = f"{exercise}.{metric}" + (f".{side}" if isinstance(side, str) and side else "")
    u = unit.replace("/", "_per_").replace("%", "pct")
    return name if u in ("", "1") else f"{name}_{u}"
