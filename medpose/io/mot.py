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
from ._text import (
    MAX_COLUMNS,
    MAX_FRAMES,
    check_file,
    check_times,
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

    References
    ----------
    OpenSim documentation, "Storage (.sto) Files",
    https://opensimconfluence.atlassian.net/wiki/spaces/OpenSim/pages/53089707
    """
    p = check_file(path, "motion file")
    src = display_name(p)
    if translations not in ("drop", "keep"):
        raise InputError(f"{src}: translations={translations!r}; expected 'drop' or 'keep'")
    lines, complete = text_lines(read_text(p, "motion file"))
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    except StopIteration:
        raise InputError(
            f"{src}: no 'endheader' line; expected an OpenSim .mot/.sto header "
            "(name, version=1, nRows=, nColumns=, inDegrees=, endheader)"
        ) from None
    header = {}
    for ln in lines[:end]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            header[k.strip().lower()] = v.strip()
    if "indegrees" in header:
        flag = header["indegrees"].lower()
        if flag not in ("yes", "no"):
            raise InputError(f"{src}: inDegrees is {header['indegrees']!r}; expected 'yes' or 'no'")
        degrees = flag == "yes"
    elif in_degrees is not None:
        degrees = bool(in_degrees)
    else:
        raise InputError(f"{src}: header has no 'inDegrees' line; pass in_degrees=True/False")

    body = [(i + 1, ln) for i, ln in enumerate(lines[end + 1 :], start=end + 1) if ln.strip()]
    if not body:
        raise InputError(f"{src}: truncated file: no column names after 'endheader'")
    sep = "\t" if "\t" in body[0][1] else " "
    head = body[0][1].rstrip("\t")
    columns = [c.strip() for c in (head.split("\t") if sep == "\t" else head.split())]
    if not columns or columns[0].lower() != "time":
        raise InputError(
            f"{src}: line {body[0][0]}: first column is {columns[0]!r}; expected 'time'"
        )
    ncol = len(columns)
    if ncol > MAX_COLUMNS:
        raise InputError(
            f"{src}: line {body[0][0]}: {ncol} columns; expected at most {MAX_COLUMNS}"
        )
    dup = sorted(c for c, n in Counter(columns).items() if n > 1)
    if dup:
        raise InputError(
            f"{src}: line {body[0][0]}: duplicate column names {dup[:5]}; every coordinate "
            "needs its own column"
        )
    counts = {
        key: parse_count(header[key], src, f"header field {key!r}", 0, MAX_FRAMES)
        for key in ("nrows", "ncolumns")
        if key in header
    }
    if "ncolumns" in counts and counts["ncolumns"] != ncol:
        raise InputError(
            f"{src}: nColumns is {counts['ncolumns']} but line {body[0][0]} names {ncol} columns"
        )
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
    df = read_table_lines(rows, ncol, src, sep)
    table = numeric_columns(df, src, rows[0][0], [f"column {c!r}" for c in columns])
    t = table[:, 0]
    check_times(t, [ln for ln, _ in body[1:]], src)
    dt = np.diff(t)
    if len(t) > 1:
        step = (t[-1] - t[0]) / (len(t) - 1)
        off = np.abs(dt - step) > rtol * step
        if np.any(off):
            r = int(np.flatnonzero(off)[0]) + 1
            raise InputError(
                f"{src}: line {body[1 + r][0]}: time step {dt[r - 1]:g} s differs from the "
                f"mean step {step:g} s by more than {rtol:.0%}; expected uniform sampling"
            )
        rate = rate_from_times(t)
    else:
        rate = 1.0  # one row: no rate in the file; documented placeholder
    names = columns[1:]
    values = table[:, 1:]
    is_tr = np.array([bool(_TRANSLATION.search(n)) for n in names], dtype=bool)
    if not degrees:
        values = np.where(is_tr, values, np.degrees(values))
    if translations == "drop":
        keep = ~is_tr
        names = [n for n, k in zip(names, keep) if k]
        values = values[:, keep]
    else:
        values = np.where(is_tr, values * 1000.0, values)
    return JointAngles(values, tuple(names), rate, start=float(t[0]))


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
