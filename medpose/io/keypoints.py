"""Read and write keypoint sequences by file type, and the helpers the format modules share.

:func:`read_keypoints` picks the reader from the path: ``.trc`` (OpenSim), ``.c3d``,
``.csv`` (tidy or wide), ``.parquet`` (tidy), or a folder of OpenPose JSON files.
:func:`write_keypoints` writes ``.trc``, ``.csv`` and ``.parquet``.  Format details are in
``docs/formats-keypoints.md``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import to_medpose_names
from ._util import display_name

__all__ = ["read_keypoints", "write_keypoints", "READ_SUFFIXES", "WRITE_SUFFIXES"]

READ_SUFFIXES = (".trc", ".c3d", ".csv", ".parquet", "<folder of OpenPose .json>")
WRITE_SUFFIXES = (".trc", ".csv", ".parquet")

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
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(df, preserve_index=False)
    pacsv.write_csv(
        table,
        fh,
        pacsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed"),
    )


def read_keypoints(path: str | os.PathLike, **kw: Any) -> KeypointSequence:
    """Read a keypoint sequence, choosing the reader from the path.

    Parameters
    ----------
    path : path-like
        ``.trc``, ``.c3d``, ``.csv``, ``.parquet``, or a folder of OpenPose JSON files.
    **kw
        Passed to the reader (:func:`~medpose.io.trc.read_trc`,
        :func:`~medpose.io.c3d.read_c3d`, :func:`~medpose.io.tabular.read_csv_keypoints`,
        :func:`~medpose.io.tabular.read_parquet_keypoints`,
        :func:`~medpose.io.openpose.read_openpose`).

    Raises
    ------
    InputError
        If the path does not exist or its type is not supported.
    """
    p = Path(path)
    if p.is_dir():
        from .openpose import read_openpose

        return read_openpose(p, **kw)
    suffix = p.suffix.lower()
    if suffix not in WRITE_SUFFIXES + (".c3d",):
        raise InputError(
            f"{display_name(p)}: unsupported keypoint file type {suffix or '(none)'!r}; "
            f"supported: {', '.join(READ_SUFFIXES)}"
        )
    if not p.exists():
        raise InputError(f"{display_name(p)}: file not found")
    if suffix == ".trc":
        from .trc import read_trc

        return read_trc(p, **kw)
    if suffix == ".c3d":
        from .c3d import read_c3d

        return read_c3d(p, **kw)
    if suffix == ".csv":
        from .tabular import read_csv_keypoints

        return read_csv_keypoints(p, **kw)
    from .tabular import read_parquet_keypoints

    return read_parquet_keypoints(p, **kw)


def write_keypoints(seq: KeypointSequence, path: str | os.PathLike, **kw: Any) -> Path:
    """Write a keypoint sequence, choosing the writer from the suffix (``.trc``, ``.csv``, ``.parquet``).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    InputError
        If the suffix is not supported.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".trc":
        from .trc import write_trc

        write_trc(seq, p, **kw)
    elif suffix == ".csv":
        from .tabular import write_csv_keypoints

        write_csv_keypoints(seq, p, **kw)
    elif suffix == ".parquet":
        from .tabular import write_parquet_keypoints

        write_parquet_keypoints(seq, p, **kw)
    else:
        raise InputError(
            f"{display_name(p)}: cannot write keypoints as {suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(WRITE_SUFFIXES)}"
        )
    return p
