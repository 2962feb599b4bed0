"""Keypoint sequences as CSV (tidy or wide) and Parquet (tidy).

**Tidy** (one row per frame and keypoint, as :meth:`KeypointSequence.to_dataframe` gives)::

    # medpose-keypoints: rate_hz=60; frame=camera; units=mm; start_s=0
    frame,time_s,keypoint,x,y,z,confidence
    0,0.0,hip_r,101.5,-20.0,1650.2,1.0

``z`` absent means 2D (pixels).  ``frame`` or ``time_s`` is required; the optional first
``#`` line carries the rate, frame name, units (``mm``, ``cm``, ``m`` for 3D, ``px`` for 2D)
and start time.  Without it the rate comes from ``rate=`` or from ``time_s``, 3D units are
taken as ``units=`` (default mm).

**Wide** (one row per frame, MediaPipe style), either named columns
``<keypoint>_x, <keypoint>_y[, <keypoint>_z][, <keypoint>_confidence | <keypoint>_visibility]``
or indexed columns ``x0, y0[, z0][, visibility0 | confidence0], x1, ...`` whose index is the
position in a layout (detected from the count, or ``layout=``).  Optional ``frame`` and
``time_s`` (or ``time``) columns.  MediaPipe's image-landmark ``z`` is not a length: pass
``ndim=2`` to ignore it.

**Parquet**: the tidy table; rate, frame name, units and start are stored in the file's
key-value metadata under the key ``medpose`` (JSON).

Empty cells are missing values (NaN).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import Layout, detect_layout, get_layout
from ._structured import load_json
from ._text import (
    MAX_COLUMNS,
    canonical_names,
    check_file,
    check_frame_span,
    numeric_columns,
    parse_finite,
    rate_from_times,
    read_text,
    text_lines,
    unit_scale,
    write_csv_table,
)
from ._util import atomic_path, atomic_write, display_name

__all__ = [
    "read_csv_keypoints",
    "write_csv_keypoints",
    "read_parquet_keypoints",
    "write_parquet_keypoints",
]

_META_PREFIX = "# medpose-keypoints:"
_NAMED = re.compile(r"^(?P<name>.+)_(?P<ax>x|y|z|confidence|visibility)$", re.IGNORECASE)
_INDEXED = re.compile(r"^(?P<ax>x|y|z|confidence|visibility)(?P<idx>\d+)$", re.IGNORECASE)


# ----------------------------------------------------------------------------- helpers
def _meta_line(seq: KeypointSequence) -> dict[str, Any]:
    return {
        "rate_hz": seq.rate,
        "frame": seq.frame,
        "units": "mm" if seq.ndim == 3 else "px",
        "start_s": seq.start,
    }


def _parse_meta(lines: list[str], src: str) -> dict[str, str]:
    meta: dict[str, str] = {}
    for ln in lines:
        body = ln[len(_META_PREFIX) :] if ln.startswith(_META_PREFIX) else ln.lstrip("#")
        for part in body.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                meta[k.strip()] = v.strip()
    return meta


def _check_meta(meta: dict[str, Any], src: str) -> dict[str, Any]:
    """Metadata with ``rate_hz`` and ``start_s`` checked to be finite numbers (rate > 0)."""
    out = dict(meta)
    if out.get("rate_hz") is not None:
        rate = parse_finite(out["rate_hz"], src, "metadata rate_hz", "a positive number of Hz")
        if rate <= 0:
            raise InputError(
                f"{src}: metadata rate_hz is {out['rate_hz']!r}; expected a positive number of Hz"
            )
        out["rate_hz"] = rate
    if out.get("start_s") is not None:
        out["start_s"] = parse_finite(
            out["start_s"], src, "metadata start_s", "a finite time in seconds"
        )
    for key in ("frame", "units"):
        if out.get(key) is not None and not isinstance(out[key], str):
            raise InputError(f"{src}: metadata {key} is {out[key]!r}; expected a text value")
    return out


def _layout(layout: str | Layout | None, n: int, src: str) -> Layout:
    """The layout given (by name) or detected from ``n`` keypoints, errors naming ``src``."""
    if isinstance(layout, Layout):
        return layout
    try:
        return get_layout(layout) if layout else detect_layout(n)
    except InputError as e:
        raise InputError(f"{src}: {e}") from None


def _rate_from_times(times: np.ndarray, steps: np.ndarray, src: str) -> float:
    """Rate from time stamps ``times`` at integer frame indices ``steps`` (both sorted)."""
    if len(times) < 2 or steps[-1] == steps[0]:
        raise InputError(f"{src}: cannot infer the sampling rate from one time stamp; pass rate=")
    return rate_from_times(times, steps)


def _finish(
    pos: np.ndarray,
    conf: np.ndarray | None,
    names: list[str],
    *,
    src: str,
    rate: float | None,
    meta: dict[str, Any],
    frame: str | None,
    units: str | None,
    start: float | None,
    rename: bool,
) -> KeypointSequence:
    d = pos.shape[2]
    unit = units if units is not None else meta.get("units")
    if d == 3:
        scale = unit_scale(unit or "mm", src, "units")
        pos = pos * scale
    elif unit not in (None, "px"):
        raise InputError(f"{src}: 2D keypoints must be in pixels ('px'), found units {unit!r}")
    if rate is None:
        rate = meta.get("rate_hz")
    if rate is None:
        raise InputError(f"{src}: no sampling rate: pass rate= or include time_s")
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise InputError(f"{src}: rate_hz is {rate!r}; expected a number of Hz") from None
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(f"{src}: rate is {rate!r}; expected a positive number of Hz")
    if conf is not None and np.any((conf < 0) | (conf > 1)):
        raise InputError(
            f"{src}: confidence ranges from {np.nanmin(conf):.3g} to {np.nanmax(conf):.3g}; "
            "expected values in [0, 1]"
        )
    if start is None:
        start = float(meta.get("start_s") or 0.0)
    return KeypointSequence(
        pos,
        canonical_names(names, src, rename),
        rate,
        confidence=conf,
        frame=frame or str(meta.get("frame", "camera")),
        start=start,
    )


def _check_unique(
    fi: np.ndarray, ki: np.ndarray, kp: np.ndarray, k: int, src: str, first_line: int
) -> None:
    key = fi * k + ki
    counts = np.bincount(key)
    if counts.max() > 1:
        rows = np.flatnonzero(key == int(np.argmax(counts)))
        raise InputError(
            f"{src}: line {first_line + int(rows[1])}: keypoint {kp[rows[1]]!r} appears twice "
            "in the same frame"
        )


def _from_tidy(
    df: pd.DataFrame, src: str, first_line: int, *, numeric_done: bool = False, **kw: Any
) -> KeypointSequence:
    """Tidy table (text or numeric cells) -> KeypointSequence."""
    row_word = "row" if numeric_done else "line"
    cols = set(df.columns)
    missing = {"keypoint", "x", "y"} - cols
    if missing:
        raise InputError(
            f"{src}: missing columns {sorted(missing)}; expected frame and/or time_s, "
            "keypoint, x, y[, z][, confidence]"
        )
    if "frame" not in cols and "time_s" not in cols:
        raise InputError(f"{src}: needs a 'frame' or 'time_s' column; found {list(df.columns)}")
    kw["meta"] = _check_meta(kw.get("meta", {}), src)
    d = 3 if "z" in cols else 2
    num_cols = [c for c in ("frame", "time_s", "x", "y", "z", "confidence") if c in cols]
    if numeric_done:
        for c in num_cols:
            if not pd.api.types.is_numeric_dtype(df[c]):
                raise InputError(f"{src}: column {c!r} has type {df[c].dtype}; expected numbers")
    values = numeric_columns(
        df[num_cols], src, first_line, [f"column {c!r}" for c in num_cols], row_word=row_word
    )
    v = {c: values[:, i] for i, c in enumerate(num_cols)}
    if len(df) == 0:
        raise InputError(f"{src}: no data rows")
    kp = df["keypoint"].astype(str).to_numpy()
    names = list(dict.fromkeys(kp))
    ki = pd.Index(names).get_indexer(kp)
    rate = kw.pop("rate", None)
    meta = kw.pop("meta", {})
    if "frame" in v:
        f = v["frame"]
        if not np.all(np.isfinite(f)) or np.any(f != np.round(f)) or np.any(f < 0):
            r = int(np.flatnonzero(~np.isfinite(f) | (f != np.round(f)) | (f < 0))[0])
            raise InputError(
                f"{src}: {row_word} {first_line + r}: frame is {f[r]:g}; expected an integer >= 0"
            )
        check_frame_span(f.min(), f.max(), len(np.unique(f)), src, "frame numbers")
        f = f.astype(np.int64)
        fi = f - f.min()
        t = int(fi.max()) + 1
        _check_unique(fi, ki, kp, len(names), src, first_line)
        start = None
        if "time_s" in v:
            tt = v["time_s"]
            order = np.argsort(f, kind="stable")
            bad = np.flatnonzero((np.diff(f[order]) > 0) & (np.diff(tt[order]) <= 0))
            if bad.size:
                r = int(order[bad[0] + 1])
                raise InputError(
                    f"{src}: {row_word} {first_line + r}: time_s {tt[r]:g} does not increase "
                    "with frame"
                )
            first = order[0]
            start = float(tt[first])
            if rate is None and meta.get("rate_hz") is None:
                uf, ui = np.unique(f, return_index=True)
                rate = _rate_from_times(tt[ui], uf, src)
    else:
        tt = v["time_s"]
        if not np.all(np.isfinite(tt)):
            r = int(np.flatnonzero(~np.isfinite(tt))[0])
            raise InputError(f"{src}: {row_word} {first_line + r}: time_s is empty")
        times = np.unique(tt)
        if rate is None and meta.get("rate_hz") is not None:
            rate = float(meta["rate_hz"])
        if rate is None:
            step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
            rate = _rate_from_times(
                times, np.round((times - times[0]) / step) if step else times * 0, src
            )
        rate = parse_finite(rate, src, "rate", "a positive number of Hz")
        if rate <= 0:
            raise InputError(f"{src}: rate is {rate!r}; expected a positive number of Hz")
        fidx = np.round((tt - times[0]) * rate)
        check_frame_span(0, fidx.max(), len(times), src, "time stamps (as frame indices)")
        fi = fidx.astype(np.int64)
        t = int(fi.max()) + 1
        start = float(times[0])
        _check_unique(fi, ki, kp, len(names), src, first_line)
    pos = np.full((t, len(names), d), np.nan)
    pos[fi, ki] = np.column_stack([v[a] for a in "xyz"[:d]])
    conf = None
    if "confidence" in v:
        conf = np.zeros((t, len(names)))
        conf[fi, ki] = np.nan_to_num(v["confidence"], nan=0.0)
    return _finish(pos, conf, names, src=src, rate=rate, meta=meta, start=start, **kw)


def _from_wide(
    df: pd.DataFrame,
    src: str,
    first_line: int,
    *,
    layout: str | Layout | None,
    ndim: int | None,
    **kw: Any,
) -> KeypointSequence:
    cols = list(df.columns)
    time_col = next((c for c in ("time_s", "time") if c in cols), None)
    data_cols = [c for c in cols if c not in ("frame", time_col)]
    named = [_NAMED.match(c) for c in data_cols]
    indexed = [_INDEXED.match(c) for c in data_cols]
    if data_cols and all(m is not None for m in indexed):
        keys = [(int(m["idx"]), m["ax"].lower()) for m in indexed if m is not None]
        n = max(k for k, _ in keys) + 1
        lay = _layout(layout, n, src)
        if n > len(lay):
            raise InputError(
                f"{src}: columns index {n} keypoints but layout {lay.name} has {len(lay)}"
            )
        names = list(lay.native)
    elif data_cols and all(m is not None for m in named):
        keys_raw = [(m["name"], m["ax"].lower()) for m in named if m is not None]
        names = list(dict.fromkeys(k for k, _ in keys_raw))
        keys = [(names.index(k), a) for k, a in keys_raw]
    else:
        bad = [c for c, a, b in zip(data_cols, named, indexed) if not (a or b)] or [
            "(no keypoint columns)"
        ]
        raise InputError(
            f"{src}: column {bad[0]!r} is neither frame, time_s nor a keypoint column; "
            "expected <name>_x/_y/_z/_confidence or x<i>/y<i>/z<i>/visibility<i>"
        )
    axes = {}
    for c, (i, a) in zip(data_cols, keys):
        a = "confidence" if a == "visibility" else a
        if (i, a) in axes:
            raise InputError(f"{src}: column {c!r} duplicates keypoint {i} axis {a}")
        axes[(i, a)] = c
    used = sorted({i for i, _ in keys})
    has_z = {i for i, a in keys if a == "z"}
    if ndim not in (None, 2, 3):
        raise InputError(f"{src}: ndim={ndim!r}; expected 2 or 3")
    d = ndim or (3 if has_z else 2)
    if d == 3 and has_z != set(used):
        raise InputError(
            f"{src}: some keypoints have a z column and others not "
            f"(no z for {[names[i] for i in used if i not in has_z][:5]})"
        )
    for i in used:
        for a in ("x", "y"):
            if (i, a) not in axes:
                raise InputError(f"{src}: keypoint {names[i]!r} has no {a} column")
    num_cols = [c for c in ("frame", time_col) if c and c in df.columns] + data_cols
    values = numeric_columns(df[num_cols], src, first_line, [f"column {c!r}" for c in num_cols])
    col = {c: values[:, j] for j, c in enumerate(num_cols)}
    n_rows = values.shape[0]
    if n_rows == 0:
        raise InputError(f"{src}: no data rows")
    if "frame" in col:
        f = col["frame"]
        if not np.all(np.isfinite(f)) or np.any(f != np.round(f)) or np.any(np.diff(f) <= 0):
            raise InputError(f"{src}: column 'frame' must hold increasing integers")
        check_frame_span(f[0], f[-1], len(f), src, "frame numbers")
        fi = (f - f[0]).astype(np.int64)
    else:
        fi = np.arange(n_rows)
    t = int(fi[-1]) + 1
    rate, meta, start = kw.pop("rate", None), _check_meta(kw.pop("meta", {}), src), None
    if time_col:
        tt = col[time_col]
        dt = np.diff(tt)
        if np.any(~(dt > 0)):
            r = int(np.flatnonzero(~(dt > 0))[0]) + 1
            raise InputError(
                f"{src}: line {first_line + r}: {time_col} {tt[r]:g} does not increase"
            )
        start = float(tt[0])
        if rate is None and meta.get("rate_hz") is None:
            rate = _rate_from_times(tt, fi, src)
    pos = np.full((t, len(used), d), np.nan)
    conf = np.ones((t, len(used))) if all((i, "confidence") in axes for i in used) else None
    for j, i in enumerate(used):
        for ai, a in enumerate("xyz"[:d]):
            pos[fi, j, ai] = col[axes[(i, a)]]
        if conf is not None:
            conf[fi, j] = np.nan_to_num(col[axes[(i, "confidence")]], nan=0.0)
    return _finish(
        pos, conf, [names[i] for i in used], src=src, rate=rate, meta=meta, start=start, **kw
    )


# ----------------------------------------------------------------------------- CSV
def _check_cell_counts(lines: list[str], header: int, src: str) -> None:
    """Refuse a header of more than MAX_COLUMNS cells, and a line (without quotes) whose cell
    count differs from the header's, before pandas sees them (a stray 200,000-cell line would
    otherwise become a huge implicit index)."""
    head = lines[header]
    n_head = head.count(",") + 1
    if n_head > MAX_COLUMNS:
        raise InputError(
            f"{src}: line {header + 1}: {n_head} columns; expected at most {MAX_COLUMNS}"
        )
    if '"' in head:
        return
    for i in range(header + 1, len(lines)):
        ln = lines[i]
        n = ln.count(",") + 1
        if n != n_head and ln.strip() and '"' not in ln:
            raise InputError(
                f"{src}: line {i + 1}: {n} cells; expected {n_head} as in the header "
                f"(line {header + 1})"
            )


def read_csv_keypoints(
    path: str | os.PathLike,
    *,
    rate: float | None = None,
    frame: str | None = None,
    units: str | None = None,
    layout: str | Layout | None = None,
    ndim: int | None = None,
    rename: bool = True,
) -> KeypointSequence:
    """Read keypoints from a tidy or wide CSV (detected from the columns; see the module doc).

    Parameters
    ----------
    path : path-like
    rate : float, optional
        Hz; overrides the file's metadata and time column.
    frame : str, optional
        Frame name; default from the metadata line, else ``"camera"``.
    units : {"mm", "cm", "m", "px"}, optional
        Units of the coordinates; default from the metadata line, else mm (3D) / px (2D).
    layout : str or Layout, optional
        For wide indexed columns (``x0, y0, ...``): the layout the indices refer to.
    ndim : {2, 3}, optional
        Wide files: 2 ignores ``z`` columns (MediaPipe image landmarks).
    rename : bool
        Map names to medpose names through the layouts.

    Returns
    -------
    KeypointSequence
        3D in mm or 2D in pixels.

    Raises
    ------
    InputError
        Missing or unknown columns, non-numeric cells (line and column named), duplicate
        keypoints in a frame, time not increasing, no rate, unknown units.
    """
    p = check_file(path, "keypoint CSV")
    src = display_name(p)
    text = read_text(p, "keypoint CSV")
    lines, complete = text_lines(text)
    n_meta = 0
    while n_meta < len(lines) and lines[n_meta].startswith("#"):
        n_meta += 1
    meta = _parse_meta(lines[:n_meta], src)
    if n_meta < len(lines):
        _check_cell_counts(lines, n_meta, src)
    last = len(lines)
    if not complete and last > n_meta + 1 and lines[-1].strip():
        raise InputError(
            f"{src}: line {last}: the file ends inside this row (no line break after it); "
            "truncated file? Expected complete rows (end the file with a line break if the "
            "row is whole)"
        )
    try:
        df = pd.read_csv(
            io.StringIO(text),
            skiprows=n_meta,
            dtype={"keypoint": str},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
            index_col=False,
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{src}: empty file; expected a header row and data") from None
    except (pd.errors.ParserError, csv.Error) as e:
        raise InputError(
            f"{src}: not a valid CSV table ({str(e).strip().splitlines()[-1]})"
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    first_line = n_meta + 2
    common: dict[str, Any] = dict(rate=rate, meta=meta, frame=frame, units=units, rename=rename)
    if "keypoint" in df.columns:
        return _from_tidy(df, src, first_line, **common)
    return _from_wide(df, src, first_line, layout=layout, ndim=ndim, **common)


def write_csv_keypoints(
    seq: KeypointSequence, path: str | os.PathLike, *, wide: bool = False
) -> Path:
    """Write a sequence as tidy (default) or wide CSV with a ``# medpose-keypoints:`` metadata line.

    Values are written in mm (3D) or px (2D) at full float precision; missing as empty cells.
    The file is written atomically.
    """
    p = Path(path)
    meta = _meta_line(seq)
    if wide:
        t, _, d = seq.positions.shape
        data: dict[str, np.ndarray] = {"frame": np.arange(t), "time_s": seq.times}
        for j, n in enumerate(seq.names):
            for ai, a in enumerate("xyz"[:d]):
                data[f"{n}_{a}"] = seq.positions[:, j, ai]
            data[f"{n}_confidence"] = seq.confidence[:, j]
        df = pd.DataFrame(data)
    else:
        df = seq.to_dataframe()
    df.attrs = {}
    with atomic_write(p, "wb") as fh:
        fh.write(
            (_META_PREFIX + " " + "; ".join(f"{k}={v}" for k, v in meta.items()) + "\n").encode()
        )
        write_csv_table(df, fh)
    return p


# ----------------------------------------------------------------------------- Parquet
def read_parquet_keypoints(
    path: str | os.PathLike,
    *,
    rate: float | None = None,
    frame: str | None = None,
    units: str | None = None,
    rename: bool = True,
) -> KeypointSequence:
    """Read a tidy Parquet file written by :func:`write_parquet_keypoints` (or any tidy table).

    Rate, frame name, units and start come from the ``medpose`` key-value metadata when present;
    arguments override them.

    Raises
    ------
    InputError
        Not a Parquet file, bad metadata, missing or non-numeric columns, as for tidy CSV.
    """
    p = check_file(path, "keypoint Parquet file")
    src = display_name(p)
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{src}: not a readable Parquet file ({type(e).__name__})") from None
    raw = (table.schema.metadata or {}).get(b"medpose")
    meta: dict[str, Any] = {}
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{src}: metadata 'medpose' is not UTF-8 text") from None
        meta = load_json(text, f"{src}: metadata 'medpose'")
        if not isinstance(meta, dict):
            raise InputError(f"{src}: metadata 'medpose' must be a JSON object")
    df = table.to_pandas()
    return _from_tidy(
        df, src, 1, numeric_done=True, rate=rate, meta=meta, frame=frame, units=units, rename=rename
    )


def write_parquet_keypoints(seq: KeypointSequence, path: str | os.PathLike) -> Path:
    """Write a sequence as a tidy Parquet table (atomically).

    Columns ``frame, time_s, keypoint, x, y[, z], confidence``; the ``medpose`` metadata key
    holds ``{"rate_hz", "frame", "units", "start_s"}`` as JSON.
    """
    df = seq.to_dataframe()
    df.attrs = {}
    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[b"medpose"] = json.dumps(_meta_line(seq)).encode("utf-8")
    table = table.replace_schema_metadata(md)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)
