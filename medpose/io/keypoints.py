"""Read and write keypoint sequences by file type.

:func:`read_keypoints` picks the reader from the path: ``.trc`` (OpenSim), ``.c3d``,
``.csv`` (tidy or wide), ``.parquet`` (tidy), a folder of OpenPose JSON files, or a UI-PRMD
Kinect positions file (``*_positions.txt.gz``, read with its angles file).
:func:`write_keypoints` writes ``.trc``, ``.csv`` and ``.parquet``.  Format details are in
``docs/formats-keypoints.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data import KeypointSequence
from ..errors import InputError
from ._util import display_name
from .c3d import read_c3d
from .openpose import read_openpose
from .tabular import (
    read_csv_keypoints,
    read_parquet_keypoints,
    write_csv_keypoints,
    write_parquet_keypoints,
)
from .trc import read_trc, write_trc
from .uiprmd import is_uiprmd_path, read_uiprmd

__all__ = ["read_keypoints", "write_keypoints", "READ_SUFFIXES", "WRITE_SUFFIXES"]

READ_SUFFIXES = (
    ".trc",
    ".c3d",
    ".csv",
    ".parquet",
    "<folder of OpenPose .json>",
    "UI-PRMD *_positions[_inc].txt[.gz]",
)
WRITE_SUFFIXES = (".trc", ".csv", ".parquet")


def read_keypoints(path: str | os.PathLike, **kw: Any) -> KeypointSequence:
    """Read a keypoint sequence, choosing the reader from the path.

    Parameters
    ----------
    path : path-like
        ``.trc``, ``.c3d``, ``.csv``, ``.parquet``, a folder of OpenPose JSON files, or a
        UI-PRMD ``*_positions[_inc].txt[.gz]`` file (:func:`~medpose.io.uiprmd.read_uiprmd`).
    **kw
        Passed to the reader (:func:`~medpose.io.trc.read_trc`,
        :func:`~medpose.io.c3d.read_c3d`, :func:`~medpose.io.tabular.read_csv_keypoints`,
        :func:`~medpose.io.tabular.read_parquet_keypoints`,
        :func:`~medpose.io.openpose.read_openpose`), e.g. ``rate=60,
        missing_frames="error"`` for an OpenPose folder.

    Raises
    ------
    InputError
        If the path does not exist, its type is not supported, or it is a folder named like a
        file (``trial.trc/``); and every error of the reader.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        if suffix in WRITE_SUFFIXES + (".c3d",):
            raise InputError(f"{display_name(p)}: is a folder; expected a {suffix} file")
        return read_openpose(p, **kw)
    if is_uiprmd_path(p):
        return read_uiprmd(p, **kw)
    if suffix not in WRITE_SUFFIXES + (".c3d",):
        raise InputError(
            f"{display_name(p)}: unsupported keypoint file type {suffix or '(none)'!r}; "
            f"supported: {', '.join(READ_SUFFIXES)}"
        )
    if not p.exists():
        raise InputError(f"{display_name(p)}: file not found")
    if suffix == ".trc":
        return read_trc(p, **kw)
    if suffix == ".c3d":
        return read_c3d(p, **kw)
    if suffix == ".csv":
        return read_csv_keypoints(p, **kw)
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
        write_trc(seq, p, **kw)
    elif suffix == ".csv":
        write_csv_keypoints(seq, p, **kw)
    elif suffix == ".parquet":
        write_parquet_keypoints(seq, p, **kw)
    else:
        raise InputError(
            f"{display_name(p)}: cannot write keypoints as {suffix or '(no suffix)'!r}; "
            f"supported: {', '.join(WRITE_SUFFIXES)}"
        )
    return p
