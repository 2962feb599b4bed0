"""OpenSim motion (``.mot``) and Storage (``.sto``) files of joint angles.

Layout (OpenSim documentation, "Storage (.sto) Files" / "Motion (.mot) Files")::

    ik_results              <- name (first line)
    version=1
    nRows=100
    nColumns=41             <- including the time column
    inDegrees=yes           <- "no": angles in radians (converted to degrees on read)
    endheader
    time    pelvis_tilt     hip_flexion_r   ...
    0.000   -2.31           15.2            ...

Columns are tab-separated (whitespace accepted on read).  Other ``key=value`` header lines
(``DataType``, ``OpenSimVersion``...) are ignored.  OpenSim's translational coordinates
(names ending in ``_tx``, ``_ty``, ``_tz``) are lengths in metres, not angles: they are dropped
by default, or kept converted to millimetres with ``translations="keep"``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from ..data import JointAngles
from ..errors import InputError
from ._bulk import read_float_body, read_head, scan_text
from ._text import (
    MAX_COLUMNS,
    MAX_FRAMES,
    check_file,
    check_times,
    increasing,
    numeric_columns,
    parse_count,
    rate_from_times,
    read_table_lines,
    read_text,
    text_lines,
)
from ._util import atomic_write, display_name

__all__ = ["read_mot", "write_mot"]

_TRANSLATION = re.compile(r"_t[xyz]$")


def read_mot(
    path: str | os.PathLike,
    *,
    translations: Literal["drop", "keep"] = "drop",
    in_degrees: bool | None = None,
    rtol: float = 0.01,
) -> JointAngles:
    """Read an OpenSim ``.mot`` / ``.sto`` file as :class:`JointAngles` in degrees.

    Parameters
    ----------
    path : path-like
    translations : {"drop", "keep"}
        What to do with translational coordinates (``*_tx``, ``*_ty``, ``*_tz``, metres in
        OpenSim): drop them, or keep them converted to millimetres.
    in_degrees : bool, optional
        Units of the angles when the header has no ``inDegrees`` line; if the header has none
        and this is not given, an :class:`InputError` is raised.
    rtol : float
        Time steps may differ from their mean by this fraction (JointAngles are uniformly
        sampled).

    Returns
    -------
    JointAngles
        Degrees; ``rate`` from the time column; ``start`` = first time.

    Raises
    ------
    InputError
        No ``endheader``, missing ``inDegrees`` (and no ``in_degrees``), ``nRows`` or
        ``nColumns`` disagreeing with the table, no ``time`` column, rows with the wrong number
        of cells, non-numeric or infinite cells, duplicate column names, a last row without a
        line break (truncated file), a file that is not UTF-8 text, time not increasing or not uniformly sampled (line named).

    Notes
    -----
    Memory: the rows are streamed into the angles returned, without holding the file's text
    (:mod:`medpose.io._bulk`); a file that is not a clean tab-separated table is read again
    line by line, at several times its size, for the message naming its line and column
    (docs/formats-keypoints.md, "Large files").

    References
    ----------
    OpenSim documentation, "Storage (.sto) Files",
    https://opensimconfluence.atlassian.net/wiki/spaces/OpenSim/pages/53089707
    """
    p = check_file(path, "motion file")
    src = display_name(p)
    if translations not in ("drop", "keep"):
        raise InputError(f"{src}: translations={translations!r}; expected 'drop' or 'keep'")
    out = _read_lean(p, src, translations, in_degrees, rtol)
    return out if out is not None else _read_careful(p, src, translations, in_degrees, rtol)


def _endheader(lines: list[str]) -> int | None:
    return next((i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader"), None)


def _head_lines(lines: list[str]) -> int | None:
    """How many lines make the header, through the column names (for :func:`read_head`)."""
    end = _endheader(lines)
    if end is None:
        return None
    names = next((i for i in range(end + 1, len(lines)) if lines[i].strip()), None)
    return None if names is None else names + 1


def _header_fields(lines: list[str], src: str, in_degrees: bool | None) -> tuple[dict, bool]:
    """``key=value`` fields of the lines before ``endheader``, and whether angles are degrees."""
    header = {}
    for ln in lines:
        if "=" in ln:
            k, v = ln.split("=", 1)
            header[k.strip().lower()] = v.strip()
    if "indegrees" in header:
        flag = header["indegrees"].lower()
        if flag not in ("yes", "no"):
            raise InputError(f"{src}: inDegrees is {header['indegrees']!r}; expected 'yes' or 'no'")
        return header, flag == "yes"
    if in_degrees is not None:
        return header, bool(in_degrees)
    raise InputError(f"{src}: header has no 'inDegrees' line; pass in_degrees=True/False")


def _column_row(
    text: str, lineno: int, header: dict, src: str
) -> tuple[list[str], str, dict[str, int]]:
    """Column names of line ``lineno``, the separator, and the header's checked row/column
    counts (``nrows``, ``ncolumns`` where given)."""
    sep = "\t" if "\t" in text else " "
    head = text.rstrip("\t")
    columns = [c.strip() for c in (head.split("\t") if sep == "\t" else head.split())]
    if not columns or columns[0].lower() != "time":
        raise InputError(f"{src}: line {lineno}: first column is {columns[0]!r}; expected 'time'")
    ncol = len(columns)
    if ncol > MAX_COLUMNS:
        raise InputError(f"{src}: line {lineno}: {ncol} columns; expected at most {MAX_COLUMNS}")
    dup = sorted(c for c, n in Counter(columns).items() if n > 1)
    if dup:
        raise InputError(
            f"{src}: line {lineno}: duplicate column names {dup[:5]}; every coordinate "
            "needs its own column"
        )
    counts = {
        key: parse_count(header[key], src, f"header field {key!r}", 0, MAX_FRAMES)
        for key in ("nrows", "ncolumns")
        if key in header
    }
    if "ncolumns" in counts and counts["ncolumns"] != ncol:
        raise InputError(
            f"{src}: nColumns is {counts['ncolumns']} but line {lineno} names {ncol} columns"
        )
    return columns, sep, counts


def _uneven_step(t: np.ndarray, rtol: float) -> int | None:
    """Index of the first time step off the mean step by more than ``rtol``, if any."""
    if len(t) < 2:
        return None
    step = (t[-1] - t[0]) / (len(t) - 1)
    off = np.abs(np.diff(t) - step) > rtol * step
    return int(np.flatnonzero(off)[0]) + 1 if np.any(off) else None


def _kept(columns: list[str], translations: str) -> tuple[list[int], np.ndarray]:
    """Indices (in ``columns``) of the columns returned, and which of them are translations."""
    keep = list(range(1, len(columns)))
    if translations == "drop":
        keep = [j for j in keep if not _TRANSLATION.search(columns[j])]
    return keep, np.array([bool(_TRANSLATION.search(columns[j])) for j in keep], dtype=bool)


def _finish(
    t: np.ndarray, values: np.ndarray, names: list[str], is_tr: np.ndarray, degrees: bool
) -> JointAngles:
    """Angles to degrees and translations to mm, in place in ``values`` (a fresh array)."""
    for j, tr in enumerate(is_tr):
        if tr:
            values[:, j] *= 1000.0
        elif not degrees:
            np.degrees(values[:, j], out=values[:, j])
    rate = rate_from_times(t) if len(t) > 1 else 1.0  # one row: documented placeholder
    return JointAngles(values, tuple(names), rate, start=float(t[0]))


def _read_lean(
    p: Path, src: str, translations: str, in_degrees: bool | None, rtol: float
) -> JointAngles | None:
    """The file read without holding its text (see :mod:`medpose.io._bulk`); ``None`` where
    the careful path must decide.  Header errors are raised as the careful path does."""
    scan = scan_text(p)
    head = read_head(p, _head_lines) if scan else None
    if scan is None or head is None:
        return None
    lines, offset = head
    end = _endheader(lines)
    assert end is not None  # found by _head_lines
    header, degrees = _header_fields(lines[:end], src, in_degrees)
    columns, sep, counts = _column_row(lines[-1], len(lines), header, src)
    if sep != "\t" or counts.get("nrows") == 0 or not scan.complete:
        return None
    ncol = len(columns)
    size = p.stat().st_size - offset
    # a row of ncol cells takes at least ncol bytes: no allocation beyond what the file can fill
    cap = min(scan.line_breaks + 1, size // ncol + 1, MAX_FRAMES)
    if counts.get("nrows", 0) > cap:
        return None
    cap = counts.get("nrows", cap)
    keep, is_tr = _kept(columns, translations)
    t = np.empty(cap)
    values = np.empty((cap, len(keep)))
    dest: list[np.ndarray | None] = [t] + [None] * (ncol - 1)
    for i, j in enumerate(keep):
        dest[j] = values[:, i]
    rows = read_float_body(p, offset, dest, cap)
    if not rows or rows != counts.get("nrows", rows):
        return None
    t, values = t[:rows], values[:rows]
    if not increasing(t) or _uneven_step(t, rtol) is not None:
        return None
    return _finish(t, values, [columns[j] for j in keep], is_tr, degrees)


def _read_careful(
    p: Path, src: str, translations: str, in_degrees: bool | None, rtol: float
) -> JointAngles:
    """The whole text read and checked line by line; every error names its line."""
    lines, complete = text_lines(read_text(p, "motion file"))
    end = _endheader(lines)
    if end is None:
        raise InputError(
            f"{src}: no 'endheader' line; expected an OpenSim .mot/.sto header "
            "(name, version=1, nRows=, nColumns=, inDegrees=, endheader)"
        )
    header, degrees = _header_fields(lines[:end], src, in_degrees)
    body = [(i + 1, ln) for i, ln in enumerate(lines[end + 1 :], start=end + 1) if ln.strip()]
    if not body:
        raise InputError(f"{src}: truncated file: no column names after 'endheader'")
    columns, sep, counts = _column_row(body[0][1], body[0][0], header, src)
    ncol = len(columns)
    rows = body[1:]
    if "nrows" in counts and counts["nrows"] != len(rows):
        n = counts["nrows"]
        raise InputError(
            f"{src}: nRows is {n} but {len(rows)} data rows were found"
            + (" (truncated file?)" if len(rows) < n else "")
        )
    if not rows:
        raise InputError(f"{src}: no data rows")
    if not complete and lines[-1].strip() and rows[-1][0] == len(lines):
        raise InputError(
            f"{src}: line {len(lines)}: the file ends inside this row (no line break after it); "
            "truncated file? Expected complete rows (end the file with a line break if the "
            "row is whole)"
        )
    del lines
    df = read_table_lines(rows, ncol, src, sep)
    table = numeric_columns(df, src, rows[0][0], [f"column {c!r}" for c in columns])
    del df
    t = table[:, 0].copy()
    check_times(t, [ln for ln, _ in rows], src)
    r = _uneven_step(t, rtol)
    if r is not None:
        step = (t[-1] - t[0]) / (len(t) - 1)
        raise InputError(
            f"{src}: line {rows[r][0]}: time step {t[r] - t[r - 1]:g} s differs from the "
            f"mean step {step:g} s by more than {rtol:.0%}; expected uniform sampling"
        )
    keep, is_tr = _kept(columns, translations)
    values = table[:, keep]
    return _finish(t, values, [columns[j] for j in keep], is_tr, degrees)


def write_mot(
    angles: JointAngles, path: str | os.PathLike, *, name: str | None = None, precision: int = 12
) -> Path:
    """Write :class:`JointAngles` (degrees) as an OpenSim ``.mot`` file (``inDegrees=yes``).

    Translational coordinates (``*_tx``, ``*_ty``, ``*_tz``, millimetres in medpose) are
    written in metres, as OpenSim expects.  Missing values are written as ``NaN``.  The file is
    written atomically.
    """
    p = Path(path)
    is_tr = np.array([bool(_TRANSLATION.search(n)) for n in angles.names], dtype=bool)
    v = np.where(is_tr, np.asarray(angles.values) / 1000.0, angles.values)
    t = angles.times
    table = np.column_stack([t, v]) if v.size or len(t) else np.zeros((0, 1 + len(angles.names)))
    cells = np.char.mod(f"%.{int(precision)}g", table)
    cells = np.where(np.isnan(table), "NaN", cells)
    out = [
        name or p.stem,
        "version=1",
        f"nRows={table.shape[0]}",
        f"nColumns={table.shape[1]}",
        "inDegrees=yes",
        "endheader",
        "\t".join(["time", *angles.names]),
    ]
    out.extend("\t".join(r) for r in cells)
    with atomic_write(p, newline="\n") as fh:
        fh.write("\n".join(out) + "\n")
    return p
