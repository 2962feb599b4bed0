"""Helpers shared by the text-format readers and writers, and the one way they read safely.

This module sits below every format module: it imports none of them, so the format modules
and the dispatcher :mod:`medpose.io.keypoints` import it at the top without a cycle.

Every text reader (.trc, .mot, keypoint CSV and Parquet metadata, OpenPose JSON, calibration
TOML and OpenCV YAML, landmark .mrk.json/.fcsv/.csv) goes through these functions, so that a
damaged or hostile file gives an :class:`~medpose.errors.InputError` naming the file, the
field, what was found and what was expected - never a ``RecursionError``, ``OverflowError``,
``MemoryError`` or ``UnicodeDecodeError``:

* :func:`check_file` refuses folders, missing files and files above a size limit
  (:data:`MAX_TABLE_BYTES` for keypoint tables, :data:`MAX_DOCUMENT_BYTES` for JSON, TOML,
  YAML and landmark files);
* :func:`read_text` decodes strict UTF-8 and names the line of the first bad byte;
* :func:`load_json`, :func:`load_toml`, :func:`load_yaml` and :class:`SafeYAMLLoader` (from
  :mod:`medpose.io._structured`, re-exported here) parse with bounded nesting, no huge
  integers and no YAML aliases;
* :func:`parse_count` and :func:`parse_finite` turn a header value into a bounded integer or a
  finite float;
* :func:`check_frame_span` bounds an array size taken from frame numbers or time stamps in a
  file (:data:`MAX_FRAMES`, and at most :data:`MAX_SPAN_RATIO` times the frames present).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from ..layouts import to_medpose_names
from ._structured import (
    MAX_DEPTH,
    SafeYAMLLoader,
    StrictYAMLLoader,
    load_json,
    load_toml,
    load_yaml,
)
from ._util import display_name

__all__ = [
    "MAX_TABLE_BYTES",
    "MAX_DOCUMENT_BYTES",
    "MAX_YAML_BYTES",
    "MAX_DEPTH",
    "MAX_COLUMNS",
    "MAX_FRAMES",
    "MAX_SPAN_RATIO",
    "check_file",
    "read_text",
    "text_lines",
    "load_json",
    "load_toml",
    "load_yaml",
    "SafeYAMLLoader",
    "StrictYAMLLoader",
    "parse_count",
    "parse_finite",
    "parse_coordinate",
    "csv_rows",
    "check_frame_span",
    "UNIT_TO_MM",
    "unit_scale",
    "canonical_names",
    "rate_from_times",
    "numeric_columns",
    "check_times",
    "increasing",
    "read_table_lines",
    "write_csv_table",
]

#: Largest keypoint table (.trc, .mot, .csv, .parquet) read, in bytes.
MAX_TABLE_BYTES = 1 << 30
#: Largest JSON, TOML, YAML or landmark file read, in bytes.
MAX_DOCUMENT_BYTES = 64 << 20
#: Largest YAML file read, in bytes (PyYAML parses in pure Python; calibration files are small).
MAX_YAML_BYTES = 4 << 20
#: Most columns (cells per line) accepted in a keypoint table.
MAX_COLUMNS = 20_000
#: Most frames a reader allocates from frame numbers or time stamps found in a file.
MAX_FRAMES = 2_000_000
#: A file's frame numbers may span at most this many times the frames it holds...
MAX_SPAN_RATIO = 100
#: ... unless they span no more than this many frames.
MIN_SPAN_CHECKED = 1000


def check_file(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> Path:
    """The path, checked to be an existing regular file of at most ``max_bytes`` bytes.

    Parameters
    ----------
    path : path-like
    what : str
        What the file should be, for messages (``"marker file"``).
    max_bytes : int, optional
        Size limit; default :data:`MAX_TABLE_BYTES`.

    Raises
    ------
    InputError
        The path is missing, a folder, not a regular file, or too large.  The message names
        the file by :func:`~medpose.io._util.display_name` only.
    """
    p = Path(path)
    src = display_name(p)
    limit = MAX_TABLE_BYTES if max_bytes is None else int(max_bytes)
    if p.is_dir():
        raise InputError(f"{src}: is a folder; expected a {what}")
    if not p.exists():
        raise InputError(f"{src}: {what} not found")
    if not p.is_file():
        raise InputError(f"{src}: not a regular file; expected a {what}")
    size = p.stat().st_size
    if size > limit:
        raise InputError(
            f"{src}: file size {size} bytes; expected at most {limit} bytes for a {what}"
        )
    return p


def read_text(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> str:
    """The file's text, decoded as strict UTF-8 (a leading byte-order mark is dropped).

    Raises
    ------
    InputError
        As :func:`check_file`; also a byte that is not UTF-8 or a NUL byte (a binary file, or
        text saved as Latin-1), naming the line.
    """
    p = check_file(path, what, max_bytes)
    src = display_name(p)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{src}: cannot be read ({type(e).__name__}); expected a {what}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(
            f"{src}: line {line}: byte 0x{data[e.start]:02x} is not UTF-8 text; expected a "
            f"UTF-8 {what} (is it binary, or saved as Latin-1?)"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise InputError(f"{src}: line {line}: NUL byte; expected a text {what}, not binary data")
    return text


def text_lines(text: str) -> tuple[list[str], bool]:
    """Lines of ``text`` (split at ``\n``, ``\r\n`` or ``\r`` only) and whether the last one
    ended with a line break (``False`` for a file cut inside its last line)."""
    if not text:
        return [], True
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    complete = lines[-1] == ""
    if complete:
        lines.pop()
    return lines, complete


def parse_count(value: Any, src: str, field: str, lo: int = 0, hi: int = MAX_FRAMES) -> int:
    """A whole number in ``[lo, hi]`` from a header value (``"100"``, ``"100.0"``, ``100``).

    Raises
    ------
    InputError
        Naming ``src`` and ``field``: not a number, not finite, not whole, or out of range.
    """
    if isinstance(value, bool):
        raise InputError(f"{src}: {field} is {value!r}; expected a whole number")
    try:
        v = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{src}: {field} is {value!r}; expected a whole number") from None
    if not math.isfinite(v) or v != round(v):
        raise InputError(f"{src}: {field} is {value!r}; expected a whole number")
    if not lo <= v <= hi:
        raise InputError(f"{src}: {field} is {value!r}; expected a whole number from {lo} to {hi}")
    return int(v)


def parse_finite(value: Any, src: str, field: str, expected: str = "a finite number") -> float:
    """A finite float from a value read in a file; booleans, text, inf and NaN are refused.

    Raises
    ------
    InputError
        Naming ``src``, ``field``, the value found and ``expected``.
    """
    if isinstance(value, bool):
        raise InputError(f"{src}: {field} is {value!r}; expected {expected}")
    try:
        v = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{src}: {field} is {value!r}; expected {expected}") from None
    if not math.isfinite(v):
        raise InputError(f"{src}: {field} is {value!r}; expected {expected}")
    return v


def check_frame_span(first: float, last: float, n_present: int, src: str, what: str) -> int:
    """The number of frames from ``first`` to ``last`` (inclusive), checked to be plausible.

    Readers allocate one row per frame between the first and the last frame number; one stray
    number (``1e9``) must not make them allocate tens of gigabytes.

    Raises
    ------
    InputError
        The span exceeds :data:`MAX_FRAMES`, or it exceeds both :data:`MIN_SPAN_CHECKED` and
        :data:`MAX_SPAN_RATIO` times ``n_present``; the message names the numbers.
    """
    span = float(last) - float(first) + 1
    if (
        not math.isfinite(span)
        or span > MAX_FRAMES
        or (span > MIN_SPAN_CHECKED and span > MAX_SPAN_RATIO * max(n_present, 1))
    ):
        raise InputError(
            f"{src}: {what} run from {first:.15g} to {last:.15g} ({span:.15g} frames) but only "
            f"{n_present} are present; expected at most {MAX_SPAN_RATIO} times the frames present "
            f"and at most {MAX_FRAMES} frames (a stray frame number?)"
        )
    return int(span)


def parse_coordinate(text: Any, where: str) -> float:
    """A coordinate (mm): a finite number, or NaN for an empty cell or ``nan`` (unplaced).

    Raises
    ------
    InputError
        ``where``: text that is not a number, a boolean, an infinite or overflowing value.
    """
    if isinstance(text, bool):
        raise InputError(f"{where}: expected a number (mm), found {text!r}")
    try:
        if isinstance(text, (int, float)):
            v = float(text)
        else:
            s = str(text).strip()
            if s == "":
                return math.nan
            v = float(s)
    except (ValueError, OverflowError):
        raise InputError(f"{where}: expected a number (mm), found {text!r}") from None
    if math.isinf(v):
        raise InputError(f"{where}: expected a finite number (mm), found {text!r}")
    return v


def csv_rows(lines: list[tuple[int, str]], source: str) -> list[list[str]]:
    """CSV fields of ``(line number, text)`` lines, one row per line.

    Raises
    ------
    InputError
        Naming ``source`` and the line: a malformed line (``csv.Error``, e.g. a field above
        ``csv.field_size_limit()``), or a quoted field running over the end of its line.
    """
    reader = csv.reader(ln for _, ln in lines)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        lineno = lines[min(max(reader.line_num - 1, 0), len(lines) - 1)][0]
        raise InputError(
            f"{source}: line {lineno}: not a valid CSV line ({exc}); expected comma-separated "
            "fields"
        ) from None
    if len(rows) != len(lines):  # a quoted field ran across lines
        raise InputError(
            f"{source}: line {lines[len(rows) - 1][0] if rows else lines[0][0]}: a quoted field "
            "runs over the end of the line; expected one landmark per line"
        )
    return rows


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
    df: pd.DataFrame,
    src: str,
    first_line: int,
    labels: list[str] | None = None,
    row_word: str = "line",
) -> np.ndarray:
    """The columns of ``df`` as a float64 array; empty / ``nan`` cells -> NaN.

    ``first_line`` is the 1-based file line of ``df``'s first row (for messages; ``row_word``
    ``"row"`` for tables that have no lines, such as Parquet).  A
    non-numeric cell, and an infinite one (``inf``, ``1e999``: never a valid coordinate, angle
    or time), raises :class:`InputError` naming its line and column.
    """
    out = np.empty(df.shape, dtype=float)
    for j, c in enumerate(df.columns):
        col = df[c]
        name = labels[j] if labels is not None else f"column {j + 1}"
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            text = col.astype(str).str.strip()
            missing = col.isna().to_numpy() | text.str.lower().isin(_MISSING).to_numpy()
            num = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(np.isnan(num) & ~missing)
            if bad.size:
                r = int(bad[0])
                raise InputError(
                    f"{src}: {row_word} {first_line + r}, {name}: found {text.iloc[r]!r}; expected a "
                    "number (or an empty cell for a missing value)"
                )
        else:
            num = col.to_numpy(dtype=float)
        inf = np.flatnonzero(np.isinf(num))
        if inf.size:
            r = int(inf[0])
            raise InputError(
                f"{src}: {row_word} {first_line + r}, {name}: found {float(num[r])!r}; expected a "
                "finite number (or an empty cell for a missing value)"
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


def increasing(times: np.ndarray) -> bool:
    """Whether every time stamp is finite and larger than the one before: what
    :func:`check_times` demands, without the message."""
    return bool(np.all(np.isfinite(times)) and np.all(np.diff(times) > 0))


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
    try:
        df = pd.read_csv(  # bytes, not StringIO: that would hold 4 bytes per character
            io.BytesIO("\n".join(fixed).encode("utf-8")),
            header=None,
            names=list(range(ncol)),
            skip_blank_lines=False,
            na_values=["", "nan", "NaN", "-nan", "NA"],
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            **opts,
        )
    except (pd.errors.ParserError, csv.Error) as e:  # pragma: no cover - cells are pre-counted
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{src}: lines {lines[0][0]}-{lines[-1][0]}: not a table ({msg})"
        ) from None
    return df


def write_csv_table(
    df: pd.DataFrame,
    fh: Any,
    *,
    delimiter: str = ",",
    header: bool = True,
    nan_as_empty: bool = True,
) -> None:
    """Write a DataFrame as CSV to a binary file with pyarrow (fast; floats at full precision,
    NaN as empty cells, or as ``nan`` with ``nan_as_empty=False``; strings quoted)."""
    if nan_as_empty:
        table = pa.Table.from_pandas(df, preserve_index=False)
    else:
        table = pa.table(
            [pa.array(df[c].to_numpy(), from_pandas=False) for c in df.columns],
            names=[str(c) for c in df.columns],
        )
    pacsv.write_csv(
        table,
        fh,
        pacsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed"),
    )
