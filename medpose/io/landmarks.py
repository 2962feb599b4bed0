"""Imaging landmark files: 3D Slicer Markups JSON, legacy Slicer ``.fcsv`` and plain CSV.

Every reader returns :class:`~medpose.data.Landmarks` in LPS millimetres (``frame="LPS"``),
converting RAS files on the way in (x and y change sign).  Unplaced points are NaN.

* ``.mrk.json`` (also ``.json``): 3D Slicer Markups JSON, schema v1.0.3 (:data:`MARKUPS_SCHEMA`):
  ``markups[*].coordinateSystem`` is ``LPS`` (the schema default; Slicer >= 4.11 writes it)
  or ``RAS``; ``markups[*].coordinateUnits`` ``mm`` (default) or ``um``;
  ``controlPoints[*].label``, ``.position`` and ``.positionStatus`` (``defined`` is placed;
  ``undefined``, ``preview`` and ``missing`` are NaN - Slicer 5 writes ``"position": ""`` for them).
* ``.fcsv``: legacy Slicer Markups fiducial CSV (Slicer docs, developer guide "Markups fiducial
  point list file format"): ``# Markups fiducial file version = 4.x``, ``# CoordinateSystem =
  0|1|2`` or ``RAS|LPS|IJK`` (0 = RAS, 1 = LPS, 2 = IJK), ``# columns = id,x,y,z,ow,ox,oy,oz,
  vis,sel,lock,label,desc,associatedNodeID``.  Without a CoordinateSystem line the file is
  RAS (what Slicer wrote before 4.11).  IJK is refused: voxel indices need their volume.  Slicer
  >= 5.2 appends two unnamed columns (position status: 0 undefined, 1 preview, 2 defined,
  3 missing; then a flag); a status other than 2 gives NaN.
* ``.csv``: a header with ``name`` (or ``label``) and ``x``, ``y``, ``z`` (or ``x_mm`` ...),
  optionally a ``coordinate_system`` (or ``frame``) column per row, or a comment line
  ``# coordinate_system = RAS`` before the header; default LPS.  An empty cell is NaN.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Landmarks
from ..errors import FrameMismatch, InputError
from ..geometry import LPS, RAS
from ._structured import load_json
from ._text import (
    MAX_DOCUMENT_BYTES,
    csv_rows,
    parse_coordinate,
    read_text,
    text_lines,
)
from ._util import atomic_write, display_name

__all__ = [
    "read_landmarks",
    "write_landmarks",
    "read_markups_json",
    "write_markups_json",
    "read_fcsv",
    "write_fcsv",
    "read_landmarks_csv",
    "write_landmarks_csv",
    "MARKUPS_SCHEMA",
    "LANDMARK_EXTENSIONS",
]

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
_SYSTEMS = (LPS, RAS)
_FLIP = np.array([-1.0, -1.0, 1.0])  # LPS <-> RAS
_FCSV_HEADER = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
_FCSV_COLUMNS = tuple(_FCSV_HEADER.split(","))
_FCSV_CODES = {"0": RAS, "RAS": RAS, "1": LPS, "LPS": LPS, "2": "IJK", "IJK": "IJK"}
_JSON_STATUS_PLACED = {"defined": True, "preview": False, "undefined": False, "missing": False}


# ---------------------------------------------------------------------- helpers
def _system(value: Any, where: str, allowed: tuple[str, ...] = _SYSTEMS) -> str:
    s = str(value).strip().upper()
    if s not in allowed:
        raise InputError(
            f"{where}: unknown coordinate system {value!r}; expected one of {list(allowed)}"
        )
    return s


def _convert(points: np.ndarray, systems: np.ndarray | str, frame: str) -> np.ndarray:
    """Points given row-wise in ``systems`` (LPS/RAS) expressed in ``frame`` (LPS/RAS)."""
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    flip = np.asarray(systems) != frame
    return np.where(np.broadcast_to(flip, points.shape[:1])[:, None], points * _FLIP, points)


def _check_unique(names: list[str], where: list[str], source: str) -> None:
    empty = [w for n, w in zip(names, where) if not n.strip()]
    if empty:
        raise InputError(
            f"{source}: landmark without a name at {empty}; every landmark needs a label"
        )
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        places = {n: [w for m, w in zip(names, where) if m == n] for n in dup}
        raise InputError(
            f"{source}: duplicate landmark names {dup} (at {places}); names must be unique"
        )


def _read_text(path: Path) -> str:
    text = read_text(path, "landmark file", MAX_DOCUMENT_BYTES)
    if not text.strip():
        raise InputError(f"{display_name(path)}: file is empty; expected landmarks")
    return text


def _source_points(landmarks: Landmarks, coordinate_system: str, target: Path) -> np.ndarray:
    """The landmarks' positions in ``coordinate_system`` (LPS/RAS), refusing other frames."""
    if landmarks.frame not in _SYSTEMS:
        raise FrameMismatch(
            f"{display_name(target)}: landmarks are in frame {landmarks.frame!r}; imaging landmark "
            f"files hold LPS or RAS points (transform them to LPS first)"
        )
    return _convert(landmarks.positions, landmarks.frame, coordinate_system)


def _fmt(v: float) -> str:
    return repr(float(v))


# ---------------------------------------------------------------------- Slicer Markups JSON
def read_markups_json(
    path: str | os.PathLike, *, frame: str = LPS, markup_index: int | None = None
) -> Landmarks:
    """Read a 3D Slicer Markups JSON file (``.mrk.json``).

    Parameters
    ----------
    path : str or PathLike
    frame : {"LPS", "RAS"}
        Frame of the returned points (LPS unless a RAS tool needs them).
    markup_index : int, optional
        Read only ``markups[markup_index]``; by default the control points of every markup
        in the file, in order (their labels must then be unique across markups).

    Returns
    -------
    Landmarks
        Labels as names, positions in mm (``um`` files are converted), NaN where
        ``positionStatus`` is not ``defined``.

    Raises
    ------
    InputError
        Invalid or truncated JSON, missing ``markups``/``controlPoints``/``position``, unknown
        coordinate system, units or position status, non-numeric coordinates, duplicate or
        empty labels, no control points.

    References
    ----------
    3D Slicer Markups JSON schema v1.0.3 (see :data:`MARKUPS_SCHEMA`).
    """
    p = Path(path)
    src = display_name(p)
    out = _system(frame, f"{src}: argument frame")
    doc = load_json(_read_text(p), src)
    if not isinstance(doc, dict) or not isinstance(doc.get("markups"), list):
        raise InputError(
            f"{src}: no 'markups' list at the top level; expected a Slicer Markups JSON file"
        )
    markups = doc["markups"]
    if markup_index is not None:
        if not -len(markups) <= markup_index < len(markups):
            raise InputError(
                f"{src}: markup_index {markup_index} out of range; the file holds {len(markups)} markups"
            )
        indices = [markup_index % len(markups)]
    else:
        indices = list(range(len(markups)))
    names: list[str] = []
    where: list[str] = []
    rows: list[list[float]] = []
    systems: list[str] = []
    for m in indices:
        mk = markups[m]
        loc = f"markups[{m}]"
        if not isinstance(mk, dict):
            raise InputError(f"{src}: {loc} is {type(mk).__name__}; expected an object")
        system = _system(mk.get("coordinateSystem", LPS), f"{src}: {loc}.coordinateSystem")
        units = mk.get("coordinateUnits", "mm")
        unit = units[0] if isinstance(units, list) and units else units
        if unit not in ("mm", "um"):
            raise InputError(f"{src}: {loc}.coordinateUnits is {units!r}; expected 'mm' or 'um'")
        scale = 1e-3 if unit == "um" else 1.0
        cps = mk.get("controlPoints", [])
        if not isinstance(cps, list):
            raise InputError(f"{src}: {loc}.controlPoints is {type(cps).__name__}; expected a list")
        for c, cp in enumerate(cps):
            cloc = f"{loc}.controlPoints[{c}]"
            if not isinstance(cp, dict):
                raise InputError(f"{src}: {cloc} is {type(cp).__name__}; expected an object")
            label = cp.get("label")
            if not isinstance(label, str):
                raise InputError(
                    f"{src}: {cloc}.label is {label!r}; expected a string naming the landmark"
                )
            status = cp.get("positionStatus", "defined")
            if not isinstance(status, str) or status not in _JSON_STATUS_PLACED:
                raise InputError(
                    f"{src}: {cloc}.positionStatus is {status!r}; expected one of "
                    f"{list(_JSON_STATUS_PLACED)}"
                )
            if _JSON_STATUS_PLACED[status]:
                pos = cp.get("position")
                if not isinstance(pos, list) or len(pos) != 3:
                    raise InputError(
                        f"{src}: {cloc}.position is {pos!r}; expected 3 numbers for a defined point"
                    )
                xyz = [
                    parse_coordinate(v, f"{src}: {cloc}.position[{i}]") * scale
                    for i, v in enumerate(pos)
                ]
                if not all(math.isfinite(v) for v in xyz):
                    raise InputError(
                        f"{src}: {cloc}.position is {pos!r}; expected 3 finite numbers"
                    )
            else:
                xyz = [math.nan] * 3
            names.append(label)
            where.append(cloc)
            rows.append(xyz)
            systems.append(system)
    if not names:
        raise InputError(
            f"{src}: no control points in {len(indices)} markup(s); expected landmarks"
        )
    _check_unique(names, where, src)
    return Landmarks(tuple(names), _convert(np.array(rows), np.array(systems), out), out)


def write_markups_json(
    landmarks: Landmarks, path: str | os.PathLike, *, coordinate_system: str = LPS, name: str = "F"
) -> Path:
    """Write landmarks as a 3D Slicer Markups JSON point list (one ``Fiducial`` markup).

    Parameters
    ----------
    landmarks : Landmarks
        In frame ``"LPS"`` or ``"RAS"``.
    path : str or PathLike
        Output file, conventionally ``*.mrk.json``.
    coordinate_system : {"LPS", "RAS"}
        Coordinate system written into the file (LPS, Slicer's default since 4.11).
    name : str
        Markup node name shown in Slicer.

    Notes
    -----
    NaN points are written with ``"positionStatus": "undefined"`` and no ``position``
    (allowed by the schema, where no control point field is required).
    """
    p = Path(path)
    cs = _system(coordinate_system, f"{display_name(p)}: argument coordinate_system")
    pts = _source_points(landmarks, cs, p)
    cps = []
    for i, (label, xyz) in enumerate(zip(landmarks.names, pts), start=1):
        cp: dict[str, Any] = {
            "id": str(i),
            "label": label,
            "description": "",
            "associatedNodeID": "",
        }
        placed = bool(np.all(np.isfinite(xyz)))
        if placed:
            cp["position"] = [float(v) for v in xyz]
        cp.update(
            {
                "orientation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                "selected": True,
                "locked": False,
                "visibility": True,
                "positionStatus": "defined" if placed else "undefined",
            }
        )
        cps.append(cp)
    doc = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "name": name,
                "coordinateSystem": cs,
                "coordinateUnits": "mm",
                "locked": False,
                "fixedNumberOfControlPoints": False,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": len(cps),
                "controlPoints": cps,
                "measurements": [],
            }
        ],
    }
    with atomic_write(p) as fh:
        json.dump(doc, fh, indent=4, allow_nan=False)
        fh.write("\n")
    return p


# ---------------------------------------------------------------------- legacy .fcsv
def read_fcsv(path: str | os.PathLike, *, frame: str = LPS) -> Landmarks:
    """Read a legacy 3D Slicer Markups fiducial CSV file (``.fcsv``, Slicer 4.x/5.x).

    Parameters
    ----------
    path : str or PathLike
    frame : {"LPS", "RAS"}
        Frame of the returned points.

    Returns
    -------
    Landmarks
        ``label`` column as names.  Files without ``# CoordinateSystem`` are RAS.

    Raises
    ------
    InputError
        No version header (Slicer 3 files are not supported), IJK or unknown coordinate
        system, columns without x/y/z/label, non-numeric coordinates (names the line),
        duplicate or empty labels, no points.

    References
    ----------
    3D Slicer developer guide, Markups: "Markups fiducial point list file format (.fcsv)";
    ``vtkMRMLMarkupsFiducialStorageNode.cxx`` (reader and writer).
    """
    p = Path(path)
    src = display_name(p)
    out = _system(frame, f"{src}: argument frame")
    text = _read_text(p)
    version = None
    system = RAS
    columns = list(_FCSV_COLUMNS)
    data_lines: list[tuple[int, str]] = []
    for lineno, line in enumerate(text_lines(text)[0], start=1):
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "markups fiducial file version":
                version = value
            elif key == "coordinatesystem":
                code = _FCSV_CODES.get(value.upper())
                if code is None:
                    raise InputError(
                        f"{src}: line {lineno}: unknown CoordinateSystem {value!r}; expected one of "
                        "0 or RAS, 1 or LPS (2 or IJK is refused)"
                    )
                if code == "IJK":
                    raise InputError(
                        f"{src}: line {lineno}: CoordinateSystem {value!r} is IJK (voxel indices); "
                        "medpose cannot map them to mm without their volume - save the points as "
                        "LPS or RAS in Slicer"
                    )
                system = code
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
        elif line.strip():
            data_lines.append((lineno, line))
    data = list(zip((n for n, _ in data_lines), csv_rows(data_lines, src)))
    if version is None:
        raise InputError(
            f"{src}: no '# Markups fiducial file version = ...' line; expected a Slicer 4/5 .fcsv "
            "(Slicer 3 fiducial files are not supported)"
        )
    missing = [c for c in ("x", "y", "z", "label") if c not in columns]
    if missing:
        raise InputError(
            f"{src}: '# columns' line lacks {missing}; expected {','.join(_FCSV_COLUMNS)}"
        )
    if not data:
        raise InputError(f"{src}: header only, no landmark lines; expected one line per landmark")
    ix, iy, iz, il = (columns.index(c) for c in ("x", "y", "z", "label"))
    istatus = len(columns) if columns[-len(_FCSV_COLUMNS) :] == list(_FCSV_COLUMNS) else None
    names, where, rows = [], [], []
    for lineno, fields in data:
        if len(fields) <= max(ix, iy, iz, il):
            raise InputError(
                f"{src}: line {lineno}: {len(fields)} fields; expected at least {max(ix, iy, iz, il) + 1} "
                f"({','.join(columns)})"
            )
        xyz = [
            parse_coordinate(fields[i], f"{src}: line {lineno}, column {c!r}")
            for i, c in ((ix, "x"), (iy, "y"), (iz, "z"))
        ]
        if (
            istatus is not None
            and len(fields) > istatus
            and fields[istatus].strip() not in ("", "2")
        ):
            xyz = [math.nan] * 3  # Slicer >= 5.2 position status: not defined
        names.append(fields[il].strip())
        where.append(f"line {lineno}")
        rows.append(xyz)
    _check_unique(names, where, src)
    return Landmarks(tuple(names), _convert(np.array(rows), system, out), out)


def write_fcsv(
    landmarks: Landmarks, path: str | os.PathLike, *, coordinate_system: str = LPS
) -> Path:
    """Write landmarks as a legacy Slicer ``.fcsv`` (version 4.11 header).

    Labels containing commas or quotes are quoted as Slicer does.  If any point is NaN,
    every line gets Slicer 5's two trailing status columns (2 = defined, 0 = undefined; an
    undefined point's coordinates are written as 0), which Slicer >= 5.2 and
    :func:`read_fcsv` read back as unplaced.
    """
    p = Path(path)
    cs = _system(coordinate_system, f"{display_name(p)}: argument coordinate_system")
    pts = _source_points(landmarks, cs, p)
    placed = np.all(np.isfinite(pts), axis=1)
    buf = io.StringIO()
    buf.write(
        f"# Markups fiducial file version = 4.11\n# CoordinateSystem = {cs}\n"
        f"# columns = {','.join(_FCSV_COLUMNS)}\n"
    )
    writer = csv.writer(buf, lineterminator="\n")
    for i, (label, xyz, ok) in enumerate(zip(landmarks.names, pts, placed), start=1):
        xyz = xyz if ok else np.zeros(3)
        row = [str(i), *map(_fmt, xyz), "0", "0", "0", "1", "1", "1", "0", label, "", ""]
        if not placed.all():
            row += ["2" if ok else "0", "0"]
        writer.writerow(row)
    with atomic_write(p) as fh:
        fh.write(buf.getvalue())
    return p


# ---------------------------------------------------------------------- plain CSV
_NAME_COLS = ("name", "label")
_XYZ_COLS = (("x", "y", "z"), ("x_mm", "y_mm", "z_mm"))
_SYSTEM_COLS = ("coordinate_system", "frame")
_SYSTEM_COMMENT = re.compile(r"^#\s*(coordinate_?system|frame)\s*[=:]\s*(\S+)\s*$", re.IGNORECASE)


def read_landmarks_csv(path: str | os.PathLike, *, frame: str = LPS) -> Landmarks:
    """Read a CSV of named points: header ``name,x,y,z`` (mm).

    Parameters
    ----------
    path : str or PathLike
    frame : {"LPS", "RAS"}
        Frame of the returned points.

    Notes
    -----
    ``label`` is accepted for ``name`` and ``x_mm,y_mm,z_mm`` for ``x,y,z`` (what
    :meth:`Landmarks.to_dataframe` writes).  The points' coordinate system comes from a
    ``coordinate_system`` (or ``frame``) column, else a comment line
    ``# coordinate_system = RAS`` before the header, else LPS.  Lines starting with ``#``
    are comments.  An empty coordinate is NaN.

    Raises
    ------
    InputError
        No header, missing columns, non-numeric coordinates (names the line and column),
        unknown coordinate system, duplicate or empty names, no rows.
    """
    p = Path(path)
    src = display_name(p)
    out = _system(frame, f"{src}: argument frame")
    text = _read_text(p)
    default = LPS
    lines: list[tuple[int, str]] = []
    for lineno, line in enumerate(text_lines(text)[0], start=1):
        if line.lstrip().startswith("#"):
            m = _SYSTEM_COMMENT.match(line.strip())
            if m:
                default = _system(m.group(2), f"{src}: line {lineno}")
        elif line.strip():
            lines.append((lineno, line))
    if not lines:
        raise InputError(
            f"{src}: no header and no rows; expected a header 'name,x,y,z' and one row per landmark"
        )
    rows = csv_rows(lines, src)
    header = [h.strip().lower() for h in rows[0]]
    name_col = next((c for c in _NAME_COLS if c in header), None)
    xyz_cols = next((cols for cols in _XYZ_COLS if all(c in header for c in cols)), None)
    if name_col is None or xyz_cols is None:
        raise InputError(
            f"{src}: line {lines[0][0]}: header {rows[0]} lacks "
            f"{'a name column' if name_col is None else 'x, y, z columns'}; "
            "expected a header like 'name,x,y,z' (optionally 'coordinate_system')"
        )
    sys_col = next((c for c in _SYSTEM_COLS if c in header), None)
    idx = [header.index(c) for c in (name_col, *xyz_cols)]
    isys = header.index(sys_col) if sys_col else None
    if len(rows) < 2:
        raise InputError(f"{src}: header only, no landmark rows")
    names, where, pts, systems = [], [], [], []
    for (lineno, _), fields in zip(lines[1:], rows[1:]):
        if len(fields) < len(header):
            raise InputError(
                f"{src}: line {lineno}: {len(fields)} fields; expected {len(header)} ({','.join(header)})"
            )
        names.append(fields[idx[0]].strip())
        where.append(f"line {lineno}")
        pts.append(
            [
                parse_coordinate(fields[i], f"{src}: line {lineno}, column {header[i]!r}")
                for i in idx[1:]
            ]
        )
        cell = fields[isys].strip() if isys is not None else ""
        systems.append(
            _system(cell, f"{src}: line {lineno}, column {sys_col!r}") if cell else default
        )
    _check_unique(names, where, src)
    return Landmarks(tuple(names), _convert(np.array(pts), np.array(systems), out), out)


def write_landmarks_csv(
    landmarks: Landmarks, path: str | os.PathLike, *, coordinate_system: str = LPS
) -> Path:
    """Write ``name,x,y,z,coordinate_system`` rows (mm; NaN as an empty cell)."""
    p = Path(path)
    cs = _system(coordinate_system, f"{display_name(p)}: argument coordinate_system")
    pts = _source_points(landmarks, cs, p)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(
        buf, lineterminator="\n", quoting=csv.QUOTE_ALL
    )  # a name starting with '#' is no comment
    writer.writerow(["name", "x", "y", "z", "coordinate_system"])
    for label, xyz in zip(landmarks.names, pts):
        row = [label, *("" if not np.isfinite(v) else _fmt(v) for v in xyz), cs]
        (quoted if label.lstrip().startswith("#") else writer).writerow(row)
    with atomic_write(p, newline="") as fh:
        fh.write(buf.getvalue())
    return p


# ---------------------------------------------------------------------- dispatch
LANDMARK_EXTENSIONS: dict[str, tuple[Callable[..., Landmarks], Callable[..., Path]]] = {
    ".mrk.json": (read_markups_json, write_markups_json),
    ".json": (read_markups_json, write_markups_json),
    ".fcsv": (read_fcsv, write_fcsv),
    ".csv": (read_landmarks_csv, write_landmarks_csv),
}


def _format_of(path: Path) -> tuple[Callable[..., Landmarks], Callable[..., Path]]:
    name = path.name.lower()
    for ext in sorted(LANDMARK_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return LANDMARK_EXTENSIONS[ext]
    raise InputError(
        f"{display_name(path)}: unknown landmark file extension {path.suffix!r}; expected one of "
        f"{list(LANDMARK_EXTENSIONS)}"
    )


def read_landmarks(path: str | os.PathLike, *, frame: str = LPS) -> Landmarks:
    """Read landmarks from ``.mrk.json``/``.json``, ``.fcsv`` or ``.csv``, by extension.

    Parameters
    ----------
    path : str or PathLike
    frame : {"LPS", "RAS"}
        Frame of the returned points; medpose works in LPS (the default).

    Returns
    -------
    Landmarks
        Names and positions (N, 3) in mm; NaN for unplaced points.

    Raises
    ------
    InputError
        Unknown extension, and every format error of :func:`read_markups_json`,
        :func:`read_fcsv`, :func:`read_landmarks_csv`.
    """
    p = Path(path)
    return _format_of(p)[0](p, frame=frame)


def write_landmarks(
    landmarks: Landmarks, path: str | os.PathLike, *, coordinate_system: str = LPS
) -> Path:
    """Write landmarks to ``.mrk.json``/``.json``, ``.fcsv`` or ``.csv`` (by extension), atomically.

    Parameters
    ----------
    landmarks : Landmarks
        In frame ``"LPS"`` or ``"RAS"`` (others raise :class:`~medpose.errors.FrameMismatch`).
    path : str or PathLike
    coordinate_system : {"LPS", "RAS"}
        Coordinate system written into the file.
    """
    p = Path(path)
    return _format_of(p)[1](landmarks, p, coordinate_system=coordinate_system)
