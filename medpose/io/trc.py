"""OpenSim marker trajectories (``.trc``).

Layout (OpenSim User's Guide, "Marker (.trc) Files"; tab-separated)::

    PathFileType  4  (X/Y/Z)  trial.trc
    DataRate  CameraRate  NumFrames  NumMarkers  Units  OrigDataRate  OrigDataStartFrame  OrigNumFrames
    60        60          100        21          m      60            1                   100
    Frame#  Time  RHip            RKnee           ...
                  X1   Y1   Z1    X2   Y2   Z2    ...
    <optional blank line>
    1       0.0   ...

Empty cells are missing markers (NaN).  ``Units`` (``mm``, ``cm``, ``m``) is honoured: values are
returned in millimetres.  Axes are kept as they are in the file: OpenSim and Pose2Sim files are
Y-up (X forward, Z right), not the OpenCV camera convention; medpose records the frame name only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from ..data import MAX_RATE_HZ, KeypointSequence
from ..errors import InputError
from ._bulk import read_float_body, read_head, scan_text
from ._text import (
    MAX_COLUMNS,
    MAX_FRAMES,
    canonical_names,
    check_file,
    check_times,
    increasing,
    numeric_columns,
    parse_count,
    parse_finite,
    read_table_lines,
    read_text,
    text_lines,
    unit_scale,
    write_csv_table,
)
from ._util import atomic_write, display_name

__all__ = ["read_trc", "write_trc"]

_HEADER_KEYS = (
    "DataRate",
    "CameraRate",
    "NumFrames",
    "NumMarkers",
    "Units",
    "OrigDataRate",
    "OrigDataStartFrame",
    "OrigNumFrames",
)


def read_trc(
    path: str | os.PathLike,
    *,
    rename: bool = True,
    frame: str = "camera",
    axes: Literal["as_is"] = "as_is",
) -> KeypointSequence:
    """Read an OpenSim ``.trc`` marker file.

    Parameters
    ----------
    path : path-like
    rename : bool
        Map marker names to medpose names through the layouts (``RHip`` -> ``hip_r``);
        unknown names are kept.
    frame : str
        Frame name given to the result (default ``"camera"``).
    axes : {"as_is"}
        Axes are kept as in the file (OpenSim/Pose2Sim files are Y-up).

    Returns
    -------
    KeypointSequence
        ``(T, K, 3)`` in millimetres; ``rate`` = ``DataRate``; ``start`` = first time stamp.

    Raises
    ------
    InputError
        Missing file or a folder, a file that is not UTF-8 text, truncated header or last row
        (a file that does not end with a line break), unknown ``Units``, ``NumMarkers`` disagreeing with the name row,
        ``NumFrames`` disagreeing with the data rows, rows with the wrong number of cells,
        non-numeric or infinite cells (line and column named), time stamps not increasing (line named).

    Notes
    -----
    Memory: the rows are streamed into the positions returned, without holding the file's text
    (:mod:`medpose.io._bulk`); a file that is not a clean tab-separated table is read again
    line by line, at several times its size, for the message naming its line and column
    (docs/formats-keypoints.md, "Large files").

    References
    ----------
    OpenSim documentation, "Marker (.trc) Files",
    https://opensimconfluence.atlassian.net/wiki/spaces/OpenSim/pages/53089972
    """
    p = check_file(path, "marker file")
    src = display_name(p)
    if axes != "as_is":
        raise InputError(f"{src}: axes={axes!r} is not supported; only 'as_is'")
    seq = _read_lean(p, src, rename, frame)
    return seq if seq is not None else _read_careful(p, src, rename, frame)


class _Header(NamedTuple):
    rate: float
    n_frames: int
    scale: float
    names: list[str]
    names_out: tuple[str, ...]


def _parse_header(lines: list[str], src: str, rename: bool) -> _Header:
    """The five header lines, checked (both paths raise the same errors from here)."""
    if not lines[0].startswith("PathFileType"):
        raise InputError(
            f"{src}: line 1 does not start with 'PathFileType'; expected an OpenSim .trc header"
        )
    keys = [k.strip() for k in lines[1].split("\t")]
    vals = [v.strip() for v in lines[2].split("\t")]
    header = dict(zip(keys, vals))
    for k in ("DataRate", "NumFrames", "NumMarkers", "Units"):
        if k not in header or header[k] == "":
            raise InputError(
                f"{src}: lines 2-3: header field {k!r} missing; expected {list(_HEADER_KEYS)}"
            )
    where = f"{src}: line 3"
    expected = f"a motion-capture frame rate in Hz in (0, {MAX_RATE_HZ:g}]"
    rate = parse_finite(header["DataRate"], where, "DataRate", expected)
    n_frames = parse_count(header["NumFrames"], where, "NumFrames", 0, MAX_FRAMES)
    n_markers = parse_count(header["NumMarkers"], where, "NumMarkers", 0, MAX_COLUMNS // 3)
    for field in ("DataRate", "CameraRate", "OrigDataRate"):  # the last two only where given
        text = header.get(field, "")
        value = parse_finite(text, where, field, expected) if text else MAX_RATE_HZ
        if not np.isfinite(value) or not 0 < value <= MAX_RATE_HZ:
            raise InputError(f"{src}: line 3: {field} is {text!r}; expected {expected}")
    scale = unit_scale(header["Units"], src, "Units (line 3)")

    name_cells = lines[3].split("\t")
    if len(name_cells) < 2 or name_cells[0].strip() != "Frame#":
        raise InputError(
            f"{src}: line 4 does not start with 'Frame#<tab>Time'; expected the marker name row"
        )
    names = [c.strip() for c in name_cells[2:] if c.strip()]
    if len(names) != n_markers:
        raise InputError(f"{src}: line 4 names {len(names)} markers but NumMarkers is {n_markers}")
    return _Header(rate, n_frames, scale, names, canonical_names(names, src, rename))


def _read_lean(p: Path, src: str, rename: bool, frame: str) -> KeypointSequence | None:
    """The file read without holding its text: the header from its first lines, the body
    streamed into the result (:mod:`medpose.io._bulk`).  ``None`` where the careful path must
    decide (a body that is not a clean table, times not increasing, a file that is not UTF-8
    or does not end with a line break); header errors are raised as the careful path does."""
    scan = scan_text(p)
    head = read_head(p, lambda lines: 5 if len(lines) >= 5 else None) if scan else None
    if scan is None or head is None:
        return None
    lines, offset = head
    h = _parse_header(lines, src, rename)
    n, k = h.n_frames, len(h.names)
    # a row of 2 + 3k cells takes at least 2 + 3k bytes: no allocation beyond what the file can fill
    if n == 0 or not scan.complete or n * (2 + 3 * k) > p.stat().st_size - offset:
        return None
    pos = np.empty((n, k, 3))
    times = np.empty(n)
    flat = pos.reshape(n, 3 * k)
    dest = [None, times, *(flat[:, j] for j in range(3 * k))]
    if read_float_body(p, offset, dest, n) != n or not increasing(times):
        return None
    if h.scale != 1.0:
        pos *= h.scale
    return KeypointSequence(
        pos, h.names_out, h.rate, frame=frame, start=float(times[0]), copy=False
    )


def _read_careful(p: Path, src: str, rename: bool, frame: str) -> KeypointSequence:
    """The whole text read and checked line by line; every error names its line."""
    lines, complete = text_lines(read_text(p, "marker file"))
    if len(lines) < 5:
        raise InputError(
            f"{src}: truncated file: {len(lines)} lines; a .trc needs 5 header lines "
            "(PathFileType, keys, values, marker names, X1/Y1/Z1)"
        )
    h = _parse_header(lines, src, rename)
    n_frames, n_markers = h.n_frames, len(h.names)
    ncol = 2 + 3 * n_markers
    if not complete and lines[-1].strip() and len(lines) > 5:
        raise InputError(
            f"{src}: line {len(lines)}: the file ends inside this row (no line break after it); "
            "truncated file? Expected complete rows (end the file with a line break if the "
            "row is whole)"
        )
    body = [(i + 1, ln) for i, ln in enumerate(lines[5:], start=5) if ln.strip()]
    del lines
    if len(body) != n_frames:
        raise InputError(
            f"{src}: NumFrames is {n_frames} but {len(body)} data rows were found"
            + (" (truncated file?)" if len(body) < n_frames else "")
        )
    if n_frames == 0:
        raise InputError(f"{src}: no data rows; expected NumFrames >= 1")
    df = read_table_lines(body, ncol, src)
    columns = ["column Frame#", "column Time"] + [f"column {n}/{a}" for n in h.names for a in "XYZ"]
    table = numeric_columns(df, src, body[0][0], columns)
    del df
    times = table[:, 1]
    check_times(times, [ln for ln, _ in body], src, "Time")
    pos = table[:, 2:].reshape(n_frames, n_markers, 3) * h.scale
    return KeypointSequence(
        pos, h.names_out, h.rate, frame=frame, start=float(times[0]), copy=False
    )


def write_trc(
    seq: KeypointSequence, path: str | os.PathLike, *, units: str = "mm", precision: int = 6
) -> Path:
    """Write a 3D :class:`KeypointSequence` as an OpenSim ``.trc`` file.

    Parameters
    ----------
    seq : KeypointSequence
        3D, millimetres.  Names are written as they are.
    path : path-like
    units : {"mm", "cm", "m"}
        Units in the file (OpenSim models are in metres: use ``"m"`` for OpenSim).
    precision : int
        Decimals written (in the file's units).

    Returns
    -------
    Path
        The written file (written atomically).  A missing coordinate (NaN) is written as
        ``nan``, which OpenSim and medpose read as missing (OpenSim refuses a row whose last
        cells are empty).
    """
    p = Path(path)
    if seq.ndim != 3:
        raise InputError(f"{display_name(p)}: .trc holds 3D markers; the sequence is {seq.ndim}D")
    scale = unit_scale(units, display_name(p), "units")
    t, k, _ = seq.positions.shape
    pos = np.round(seq.positions / scale, int(precision)).reshape(t, 3 * k)
    table = pd.DataFrame(pos, columns=[str(i) for i in range(3 * k)])
    table.insert(0, "Time", np.round(seq.times, 10))
    table.insert(0, "Frame#", np.arange(1, t + 1))
    start_frame = round(seq.start * seq.rate) + 1
    out = [
        f"PathFileType\t4\t(X/Y/Z)\t{p.name}",
        "\t".join(_HEADER_KEYS),
        "\t".join(
            map(
                str,
                [
                    f"{seq.rate:.10g}",
                    f"{seq.rate:.10g}",
                    t,
                    k,
                    units.lower(),
                    f"{seq.rate:.10g}",
                    start_frame,
                    t,
                ],
            )
        ),
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in seq.names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, k + 1)),
    ]
    with atomic_write(p, "wb") as fh:
        fh.write(("\n".join(out) + "\n").encode("utf-8"))
        # a missing coordinate as "nan", not an empty cell: OpenSim's .trc reader refuses a row
        # whose last cells are empty (it counts one column too few)
        write_csv_table(table, fh, delimiter="\t", header=False, nan_as_empty=False)
    return p
