"""C3D motion-capture files, through ezc3d (optional extra ``medpose[c3d]``).

Read: ``POINT:LABELS`` (and ``LABELS2``... for more than 255 points), ``POINT:RATE``,
``POINT:UNITS`` (``mm``, ``cm``, ``m``; converted to mm).  A point whose residual is negative
is missing (C3D User Guide, "3D point data": a negative residual marks an invalid sample);
ezc3d already returns those as NaN, medpose also checks the residuals itself.
The header's first frame gives ``start`` (``first_frame / rate``).  Axes are kept as stored
(laboratory frame of the capture system).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import KeypointSequence
from ..errors import InputError
from ._text import canonical_names, unit_scale
from ._util import atomic_path, display_name, require_file

__all__ = ["read_c3d", "write_c3d", "write_c3d_points"]


def _ezc3d() -> Any:
    try:
        import ezc3d
    except ImportError:
        raise ImportError(
            "reading/writing C3D needs the optional dependency ezc3d: pip install 'medpose[c3d]'"
        ) from None
    return ezc3d


def _param(params: dict, group: str, name: str, src: str) -> list:
    try:
        return list(params[group][name]["value"])
    except KeyError:
        raise InputError(
            f"{src}: parameter {group}:{name} missing; expected a C3D with 3D points"
        ) from None


def read_c3d(
    path: str | os.PathLike, *, rename: bool = True, frame: str = "camera", units: str | None = None
) -> KeypointSequence:
    """Read the 3D points of a C3D file.

    Parameters
    ----------
    path : path-like
    rename : bool
        Map point labels to medpose names through the layouts (unknown labels are kept).
    frame : str
        Frame name of the result.
    units : {"mm", "cm", "m"}, optional
        Units to assume when the file has no ``POINT:UNITS`` (a file's own units win).

    Returns
    -------
    KeypointSequence
        ``(T, K, 3)`` in millimetres, confidence 1 where valid and 0 where missing.

    Raises
    ------
    ImportError
        If ezc3d is not installed (``pip install 'medpose[c3d]'``).
    InputError
        Unreadable file, missing POINT parameters, unknown units, label count not matching
        the points.

    References
    ----------
    C3D.org, "The C3D File Format User Guide" (Motion Lab Systems, 2008), chapters on the
    POINT group and 3D point data.
    """
    ezc3d = _ezc3d()
    p = require_file(path, "C3D file")
    src = display_name(p)
    try:
        c = ezc3d.c3d(str(p), extract_forceplat_data=False)
    except (OSError, RuntimeError, ValueError) as e:
        raise InputError(f"{src}: not a readable C3D file ({type(e).__name__})") from None
    params = c["parameters"]
    labels = [str(s).strip() for s in _param(params, "POINT", "LABELS", src)]
    i = 2
    while f"LABELS{i}" in params["POINT"]:
        labels += [str(s).strip() for s in params["POINT"][f"LABELS{i}"]["value"]]
        i += 1
    rate_v = _param(params, "POINT", "RATE", src)
    rate = float(rate_v[0]) if rate_v else float("nan")
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(f"{src}: POINT:RATE is {rate_v!r}; expected a positive rate in Hz")
    units_v = [str(u).strip() for u in params["POINT"].get("UNITS", {}).get("value", [])]
    if units_v and units_v[0]:
        scale = unit_scale(units_v[0], src, "POINT:UNITS")
    elif units is not None:
        scale = unit_scale(units, src, "units")
    else:
        raise InputError(
            f"{src}: POINT:UNITS is missing or empty; pass units='mm' (or 'cm', 'm') "
            "if you know the file's units"
        )
    pts = np.asarray(c["data"]["points"], dtype=float)  # (4, K, T)
    k = pts.shape[1]
    if len(labels) < k:
        raise InputError(f"{src}: POINT:LABELS has {len(labels)} labels for {k} points")
    labels = labels[:k]
    pos = np.transpose(pts[:3], (2, 1, 0)) * scale  # (T, K, 3)
    res = c["data"].get("meta_points", {}).get("residuals")
    if res is not None and np.size(res):
        bad = np.asarray(res, dtype=float)[0].T < 0  # (T, K)
        pos[bad] = np.nan
    first = int(c["header"]["points"].get("first_frame", 0))
    names = canonical_names(labels, src, rename)
    return KeypointSequence(pos, names, rate, frame=frame, start=first / rate)


# ezc3d and SimpleITK are both SWIG modules; once SimpleITK is loaded in a process, ezc3d's
# writer fails (TypeError on Parameter.set) or crashes, while ezc3d's reader keeps working
# (ezc3d 1.7.2 with SimpleITK 2.5, seen here).  medpose loads SimpleITK for volumes, so C3D files are
# written by ezc3d in a short-lived child interpreter that imports only numpy and ezc3d.
_WRITER = """
import io, sys, numpy as np, ezc3d
out = sys.argv[1]
d = np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False)
c = ezc3d.c3d()
c["parameters"]["POINT"]["RATE"]["value"] = [float(d["rate"])]
c["parameters"]["POINT"]["LABELS"]["value"] = [str(x) for x in d["labels"]]
if str(d["units"]):
    c["parameters"]["POINT"]["UNITS"]["value"] = [str(d["units"])]
c["data"]["points"] = d["points"]
if d["residuals"].size:
    c["data"]["meta_points"] = {"residuals": d["residuals"]}
c["header"]["points"]["first_frame"] = int(d["first_frame"])
c.write(out)
"""


def write_c3d_points(
    path: str | os.PathLike,
    points: np.ndarray,
    labels: Sequence[str],
    *,
    rate: float,
    units: str = "mm",
    residuals: np.ndarray | None = None,
    first_frame: int = 0,
) -> Path:
    """Write raw C3D points with ezc3d (in a child interpreter, see the note above), atomically.

    The points reach the child through a pipe; the child writes the temporary file beside
    ``path`` that then replaces it (same folder, same file system: no cross-device rename).

    Parameters
    ----------
    points : ndarray, shape (4, K, T)
        ezc3d's layout: x, y, z (in ``units``) and 1.
    residuals : ndarray, shape (1, K, T), optional
        -1 marks an invalid point (C3D specification).
    """
    _ezc3d()  # a clear ImportError naming the extra when ezc3d is absent
    p = Path(path)
    payload = io.BytesIO()
    np.savez(
        payload,
        points=np.asarray(points, dtype=float),
        labels=np.array([str(x) for x in labels]),
        rate=float(rate),
        units=str(units),
        first_frame=int(first_frame),
        residuals=np.zeros(0) if residuals is None else np.asarray(residuals, dtype=float),
    )
    with atomic_path(p, suffix=".c3d") as tmp:  # ezc3d appends .c3d to other names
        run = subprocess.run(
            [sys.executable, "-c", _WRITER, str(tmp)],
            input=payload.getvalue(),
            capture_output=True,
        )
        if run.returncode != 0 or tmp.stat().st_size == 0:
            err = run.stderr.decode(errors="replace").strip().replace(str(tmp), display_name(p))
            raise InputError(
                f"{display_name(p)}: ezc3d could not write the file: "
                f"{err.splitlines()[-1] if err else 'no output'}"
            )
    return p


def write_c3d(seq: KeypointSequence, path: str | os.PathLike, *, units: str = "mm") -> Path:
    """Write a 3D :class:`KeypointSequence` as a C3D file (points only), atomically.

    Missing points get residual -1 (invalid), as the C3D specification says; the header's first
    frame is ``round(start * rate)`` so that :func:`read_c3d` restores ``start``.
    """
    p = Path(path)
    if seq.ndim != 3:
        raise InputError(f"{display_name(p)}: C3D holds 3D points; the sequence is {seq.ndim}D")
    scale = unit_scale(units, display_name(p), "units")
    t, k, _ = seq.positions.shape
    pts = np.ones((4, k, t))
    pts[:3] = np.transpose(seq.positions / scale, (2, 1, 0))
    res = np.zeros((1, k, t))
    res[0][np.isnan(pts[:3]).any(axis=0)] = -1.0
    return write_c3d_points(
        p,
        pts,
        seq.names,
        rate=seq.rate,
        units=units,
        residuals=res,
        first_frame=round(seq.start * seq.rate),
    )
