"""Helpers shared by the text-format readers and writers (.trc, .mot, .csv, .parquet, OpenPose).

This module sits below every format module: it imports none of them, so the format modules
and the dispatcher :mod:`medpose.io.keypoints` import it at the top without a cycle.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from ..layouts import to_medpose_names

__all__ = [
    "UNIT_TO_MM",
    "unit_scale",
    "canonical_names",
    "rate_from_times",
    "numeric_columns",
    "check_times",
    "read_table_lines",
    "write_csv_table",
]

#: Length units that readers accept, and their size in millimetres.
UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}

_MISSING = ("", "nan", "na", "-nan")


def unit_scale(unit: str, source: str, field: str = "Units") -> float:
    """Millimetres per ``unit`` (``mm``, ``cm``, ``m``; case-insensitive).

    Raises
    ------
    InputError
        Naming ``source`` and ``field`` when the unit is not one of those.
    """
    u = str(unit).strip().lower()
    if u not in UNIT_TO_MM:
        raise InputError(f"{source}: {field} is {unit!r}; expected one of {list(UNIT_TO_MM)}")
    return UNIT_TO_MM[u]


def canonical_names(names: Sequence[str], source: str, rename: bool = True) -> tuple[str, ...]:
    """Names mapped to medpose names (if ``rename``), checked unique and non-empty."""
    names = tuple(str(n) for n in names)
    out = to_medpose_names(names) if rename else names
    seen: dict[str, str] = {}
    for orig, new in zip(names, out):
        if not new.strip():
            raise InputError(f"{source}: a keypoint has an empty name")
        if new in seen:
            how = (
                (
                    f"{seen[new]!r} and {orig!r} both map to {new!r}; pass rename=False to keep the "
                    "file's names"
                )
                if rename and seen[new] != orig
                else f"{orig!r} appears twice"
            )
            raise InputError(f"{source}: duplicate keypoint name: {how}")
        seen[new] = orig
    return out


def rate_from_times(
    times: np.ndarray, frames: np.ndarray | None = None, tol: float = 1e-6
) -> float:
    """Sampling rate (Hz) from time stamps at integer frame indices (default 0, 1, 2...).

    The rate is the end-to-end estimate, replaced by the same value rounded to the fewest
    decimals (0 to 6) that still reproduces every time stamp within ``tol`` seconds: files
    print times with a few decimals (``0.01666667``), and 60 Hz should read back as 60.
    """
    t = np.asarray(times, dtype=float)
    f = np.arange(len(t)) if frames is None else np.asarray(frames, dtype=float)
    rate = float((f[-1] - f[0]) / (t[-1] - t[0]))
    for decimals in range(7):
        r = round(rate, decimals)
        if r > 0 and np.max(np.abs(t[0] + (f - f[0]) / r - t)) <= tol + 1e-12 * np.max(np.abs(t)):
            return float(r)
    return rate


def numeric_columns(
    df: pd.DataFrame, src: str, first_line: int, labels: list[str] | None = None
) -> np.ndarray:
    """The columns of ``df`` as a float64 array; empty / ``nan`` cells -> NaN.

    ``first_line`` is the 1-based file line of ``df``'s first row (for messages).  A
    non-numeric cell raises :class:`InputError` naming its line and column.
    """
    out = np.empty(df.shape, dtype=float)
    for j, c in enumerate(df.columns):
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            out[:, j] = col.to_numpy(dtype=float)
            continue
        text = col.astype(str).str.strip()
        missing = col.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
        num = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(np.isnan(num) & ~missing)
        if bad.size:
            r = int(bad[0])
            name = labels[j] if labels is not None else f"column {j + 1}"
            raise InputError(
                f"{src}: line {first_line + r}, {name}: found {text.iloc[r]!r}; expected a "
                "number (or an empty cell for a missing value)"
            )
        out[:, j] = num
    return out


def check_times(
    times: np.ndarray, line_numbers: Sequence[int], src: str, label: str = "time"
) -> None:
    """Refuse empty or non-increasing time stamps, naming the file line (shared by .trc and .mot)."""
    if not np.all(np.isfinite(times)):
        r = int(np.flatnonzero(~np.isfinite(times))[0])
        raise InputError(
            f"{src}: line {line_numbers[r]}: {label} is empty; every row needs a time stamp"
        )
    dt = np.diff(times)
    if np.any(dt <= 0):
        r = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise InputError(
            f"{src}: line {line_numbers[r]}: time {times[r]:g} s does not increase "
            f"(previous {times[r - 1]:g} s)"
        )


def read_table_lines(
    lines: list[tuple[int, str]], ncol: int, src: str, sep: str = "\t"
) -> pd.DataFrame:
    """Parse ``(line number, text)`` data lines of exactly ``ncol`` cells into a DataFrame.

    ``sep`` is a tab, or anything else for runs of whitespace.  Convert the result with
    :func:`numeric_columns`.

    A trailing separator is tolerated; other cell counts raise :class:`InputError` naming the
    line (the last line: "truncated file?").
    """
    if not lines:
        return pd.DataFrame(np.zeros((0, ncol)))
    if sep == "\t":
        counts = [ln.count("\t") + 1 for _, ln in lines]
    else:
        counts = [len(ln.split()) for _, ln in lines]
    fixed = []
    for (lineno, ln), n in zip(lines, counts):
        if n == ncol + 1 and sep == "\t" and ln.endswith("\t"):
            ln, n = ln[:-1], ncol
        if n != ncol:
            what = "truncated file? " if lineno == lines[-1][0] and n < ncol else ""
            raise InputError(f"{src}: line {lineno}: {what}found {n} cells; expected {ncol}")
        fixed.append(ln)
    opts: dict[str, Any] = (
        {"sep": "\t", "engine": "c", "low_memory": False}
        if sep == "\t"
        else {"sep": r"\s+", "engine": "python"}
    )
    df = pd.read_csv(
        io.StringIO("\n".join(fixed)),
        header=None,
        names=list(range(ncol)),
        skip_blank_lines=False,
        na_values=["", "nan", "NaN", "-nan", "NA"],
        keep_default_na=False,
        **opts,
    )
    return df


def write_csv_table(
    df: pd.DataFrame, fh: Any, *, delimiter: str = ",", header: bool = True
) -> None:
    """Write a DataFrame as CSV to a binary file with pyarrow (fast; floats at full precision,
    NaN as empty cells, strings quoted)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pacsv.write_csv(
        table,
        fh,
        pacsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed"),
    )
