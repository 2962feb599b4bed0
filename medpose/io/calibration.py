"""Camera calibration files: Pose2Sim/anipose TOML and OpenCV FileStorage YAML.

Both formats store, per camera, the intrinsic matrix ``K`` (pixels), OpenCV
distortion coefficients and the pose world -> camera (Rodrigues vector and
translation).  They are read into :class:`medpose.camera.Camera` objects with
translations in millimetres; see ``docs/formats-calibration.md``.

* ``.toml`` - the Pose2Sim / anipose layout (Pose2Sim ``calibration.py``
  ``toml_write``; anipose ``aniposelib.cameras.CameraGroup.dump``): one table per
  camera with ``name``, ``size`` [w, h], ``matrix``, ``distortions``,
  ``rotation`` (Rodrigues), ``translation`` (metres), ``fisheye``; a
  ``[metadata]`` table is skipped.
* ``.yml`` / ``.yaml`` - OpenCV ``cv::FileStorage`` YAML (``%YAML:1.0`` header,
  ``!!opencv-matrix`` nodes with ``rows``, ``cols``, ``dt``, ``data``).  One camera
  per file, or several listed under ``names`` (the EasyMocap layout, keys
  suffixed ``_<name>``, or one nested mapping per name).  Translations are
  taken as millimetres unless ``units="m"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
from scipy.spatial.transform import Rotation

from ..camera.model import Camera
from ..errors import InputError
from ._structured import SafeYAMLLoader, load_toml, load_yaml
from ._text import (
    MAX_DOCUMENT_BYTES,
    MAX_YAML_BYTES,
    check_file,
    parse_count,
    parse_finite,
    read_text,
)
from ._util import atomic_write, display_name

__all__ = ["read_calibration", "write_calibration"]

_UNITS_TO_MM = {"mm": 1.0, "m": 1000.0}
_YAML_SUFFIXES = (".yml", ".yaml")


def _scale(units: str | None, default: str, where: str) -> float:
    u = default if units is None else units
    if u not in _UNITS_TO_MM:
        raise InputError(f"{where}: units must be 'mm' or 'm', found {u!r}")
    return _UNITS_TO_MM[u]


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".toml"):
        return "toml"
    if name.endswith(_YAML_SUFFIXES):
        return "yaml"
    vendor = {
        ".qca.txt": "a Qualisys calibration",
        ".xcp": "a Vicon calibration",
    }
    found = next((what for end, what in vendor.items() if name.endswith(end)), "")
    hint = (
        f" ({found}: convert it to .toml with Pose2Sim's calibration step, which reads it)"
        if found
        else ""
    )
    raise InputError(
        f"{display_name(path)}: unknown calibration extension '{path.suffix}'; "
        f"expected .toml (Pose2Sim/anipose) or .yml/.yaml (OpenCV FileStorage){hint}"
    )


def _camera(where: str, **fields: Any) -> Camera:
    """Build a Camera, prefixing any validation error with the file name."""
    try:
        return Camera(**fields)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def _array(value: Any, where: str, field: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: field '{field}' must be numbers, found {value!r}") from None


def _check_unique(names: list[str], where: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{where}: duplicate camera names {dup}; every camera needs its own name")


# ---------------------------------------------------------------------------- reading
def read_calibration(path: str | os.PathLike, *, units: str | None = None) -> list[Camera]:
    """Read a calibration file into cameras.

    Parameters
    ----------
    path : path-like
        ``.toml`` (Pose2Sim/anipose) or ``.yml``/``.yaml`` (OpenCV FileStorage).
    units : {"mm", "m"}, optional
        Unit of the translations in the file.  Default: ``"m"`` for TOML (the
        Pose2Sim/anipose convention) and ``"mm"`` for OpenCV YAML (which carries no unit).

    Returns
    -------
    list of Camera
        In file order, translations in mm, ``world="camera"``.

    Raises
    ------
    InputError
        Unknown extension, a missing file or a folder, a file above
        :data:`~medpose.io._text.MAX_DOCUMENT_BYTES` or not UTF-8 text (the line is named),
        unreadable syntax, nesting deeper than :data:`~medpose.io._text.MAX_DEPTH`, YAML
        aliases, missing fields, wrong shapes, NaN, numbers that overflow,
        fisheye cameras (not supported), duplicate camera names.  The message names the
        file, the camera and the field.
    """
    path = Path(path)
    kind = _kind(path)
    check_file(path, "calibration file", MAX_DOCUMENT_BYTES if kind == "toml" else MAX_YAML_BYTES)
    if kind == "toml":
        cams = _read_toml(path, _scale(units, "m", display_name(path)))
    else:
        cams = _read_opencv_yaml(path, _scale(units, "mm", display_name(path)))
    if not cams:
        raise InputError(f"{display_name(path)}: no camera found")
    _check_unique([c.name for c in cams], display_name(path))
    return cams


def _read_toml(path: Path, to_mm: float) -> list[Camera]:
    src = display_name(path)
    doc = load_toml(read_text(path, "calibration file", MAX_DOCUMENT_BYTES), src)
    cams = []
    for section, table in doc.items():
        if section == "metadata":
            continue
        if not isinstance(table, dict):
            raise InputError(
                f"{src}: top-level key '{section}' is not a camera table; expected [section] "
                "tables with name, size, matrix, distortions, rotation, translation"
            )
        where = f"{src}: camera [{section}]"
        missing = [
            f
            for f in ("size", "matrix", "distortions", "rotation", "translation")
            if f not in table
        ]
        if missing:
            raise InputError(f"{where}: missing field(s) {missing}")
        if table.get("fisheye", False) is True:
            raise InputError(
                f"{where}: fisheye = true is not supported; medpose handles the OpenCV "
                "pinhole (radial-tangential) model only"
            )
        name = table.get("name", section)
        if not isinstance(name, str):
            raise InputError(f"{where}: field 'name' must be a string, found {name!r}")
        cams.append(
            _camera(
                src,
                name=name,
                size=tuple(_array(table["size"], where, "size").reshape(-1)),
                matrix=_array(table["matrix"], where, "matrix"),
                distortion=_array(table["distortions"], where, "distortions"),
                rotation=_array(table["rotation"], where, "rotation"),
                translation=_array(table["translation"], where, "translation") * to_mm,
            )
        )
    return cams


class _OpenCVLoader(SafeYAMLLoader):
    """:class:`SafeYAMLLoader` that also understands OpenCV's ``!!opencv-matrix`` nodes."""


#: Largest dimension accepted for an ``!!opencv-matrix`` (calibration matrices are 3x3 at most
#: or a row of 14 distortion coefficients).
_MAX_MATRIX_DIM = 1000


def _construct_opencv_matrix(loader: SafeYAMLLoader, node: Any) -> np.ndarray:
    m = loader.construct_mapping(node, deep=True)
    line = node.start_mark.line + 1
    where = f"line {line}: opencv-matrix"
    try:
        rows = parse_count(m["rows"], where, "rows", 1, _MAX_MATRIX_DIM)
        cols = parse_count(m["cols"], where, "cols", 1, _MAX_MATRIX_DIM)
        data = m["data"]
        if not isinstance(data, list):
            data = [data]
        # OpenCV writes NaN and infinities as .Nan, .Inf, -.Inf, which YAML 1.1 reads as text.
        arr = np.array(
            [
                float(v.strip().lower().replace(".nan", "nan").replace(".inf", "inf"))
                if isinstance(v, str)
                else v
                for v in data
            ],
            dtype=float,
        )
    except KeyError as e:
        raise InputError(
            f"line {line}: opencv-matrix lacks {e.args[0]!r}; expected rows, cols, dt, data"
        ) from None
    except InputError:
        raise
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: data is not a list of numbers") from None
    if arr.size != rows * cols:
        raise InputError(
            f"line {line}: opencv-matrix declares {rows}x{cols} but has {arr.size} values"
        )
    return arr.reshape(rows, cols)


_OpenCVLoader.add_constructor("tag:yaml.org,2002:opencv-matrix", _construct_opencv_matrix)

_KEYS = {
    "matrix": ("camera_matrix", "K"),
    "distortion": ("distortion_coefficients", "dist_coeffs", "D", "dist"),
    "rotation": ("rvec", "R", "Rot"),
    "translation": ("tvec", "T"),
    "width": ("image_width", "W"),
    "height": ("image_height", "H"),
}


def _load_opencv_yaml(path: Path) -> dict:
    src = display_name(path)
    text = read_text(path, "calibration file", MAX_YAML_BYTES)
    if text.startswith("%YAML"):
        # OpenCV writes "%YAML:1.0", which is not a valid YAML directive; blank the line
        # (keeps line numbers in messages right).
        end = text.find("\n")
        text = "" if end < 0 else text[end:]
    doc = load_yaml(text, src, _OpenCVLoader, "OpenCV YAML")
    if not isinstance(doc, dict):
        raise InputError(
            f"{src}: expected a mapping of calibration keys, found {type(doc).__name__}"
        )
    return doc


def _pick(fields: dict, key: str, where: str, required: bool = True) -> Any:
    for k in _KEYS[key]:
        if k in fields:
            return fields[k]
    if required:
        raise InputError(f"{where}: missing field {' / '.join(repr(k) for k in _KEYS[key])}")
    return None


def _read_opencv_yaml(path: Path, to_mm: float) -> list[Camera]:
    src = display_name(path)
    doc = _load_opencv_yaml(path)
    if "names" in doc:
        names = doc["names"]
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise InputError(
                f"{src}: field 'names' must be a list of camera names, found {names!r}"
            )
        names = [str(n) for n in names]
        _check_unique(names, src)
        per_camera = []
        for n in names:
            if isinstance(doc.get(n), dict):
                per_camera.append((n, doc[n]))
            else:
                suffix = f"_{n}"
                per_camera.append(
                    (
                        n,
                        {
                            k[: -len(suffix)]: v
                            for k, v in doc.items()
                            if isinstance(k, str) and k.endswith(suffix)
                        },
                    )
                )
    else:
        per_camera = [(str(doc.get("name", path.name.split(".")[0])), doc)]
    cams = []
    for name, fields in per_camera:
        where = f"{src}: camera {name!r}"
        if not fields:
            raise InputError(
                f"{where}: no fields found; expected keys suffixed '_{name}' or a mapping '{name}:'"
            )
        k = _array(_pick(fields, "matrix", where), where, "camera_matrix")
        d = _pick(fields, "distortion", where, required=False)
        d = np.zeros(4) if d is None else _array(d, where, "distortion_coefficients").reshape(-1)
        r = _array(_pick(fields, "rotation", where), where, "R/rvec")
        if r.size == 9:
            r3 = r.reshape(3, 3)
            if not np.all(np.isfinite(r3)):
                raise InputError(f"{where}: field 'R' contains NaN or infinite values")
            if not np.allclose(r3 @ r3.T, np.eye(3), atol=1e-6) or np.linalg.det(r3) <= 0:
                raise InputError(f"{where}: field 'R' (3x3) is not a proper rotation matrix")
            r = Rotation.from_matrix(r3).as_rotvec()
        elif r.size != 3:
            raise InputError(
                f"{where}: field 'R/rvec' must be a 3x3 matrix or a 3-vector, found {r.size} values"
            )
        t = _array(_pick(fields, "translation", where), where, "T/tvec").reshape(-1)
        w, h = _pick(fields, "width", where), _pick(fields, "height", where)
        cams.append(
            _camera(
                src,
                name=name,
                size=(
                    parse_finite(w, where, "field 'image_width'", "a number of pixels"),
                    parse_finite(h, where, "field 'image_height'", "a number of pixels"),
                ),
                matrix=k,
                distortion=d,
                rotation=r.reshape(-1),
                translation=t * to_mm,
            )
        )
    return cams


# ---------------------------------------------------------------------------- writing
def write_calibration(
    cameras: Iterable[Camera], path: str | os.PathLike, *, units: str | None = None
) -> Path:
    """Write cameras to a calibration file (atomically); the extension picks the format.

    Parameters
    ----------
    cameras : iterable of Camera
        Unique names.  Their translations are in mm.
    path : path-like
        ``.toml`` (Pose2Sim/anipose, translations written in metres by default) or
        ``.yml``/``.yaml`` (OpenCV FileStorage, translations in mm by default; several
        cameras are written EasyMocap-style under ``names`` with ``_<name>`` keys).
    units : {"mm", "m"}, optional
        Unit to write translations in; defaults as in :func:`read_calibration`, so that
        ``read_calibration(write_calibration(c, p))`` returns the same cameras.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    cams = list(cameras)
    kind = _kind(path)
    if not cams:
        raise InputError(f"{display_name(path)}: no cameras to write")
    if not all(isinstance(c, Camera) for c in cams):
        raise InputError(f"{display_name(path)}: write_calibration expects Camera objects")
    _check_unique([c.name for c in cams], display_name(path))
    if kind == "toml":
        per_mm = 1.0 / _scale(units, "m", display_name(path))
        doc: dict[str, Any] = {}
        for c in cams:
            doc[c.name] = {
                "name": c.name,
                "size": [float(c.size[0]), float(c.size[1])],
                "matrix": c.matrix.tolist(),
                "distortions": c.distortion.tolist(),
                "rotation": c.rotation.tolist(),
                "translation": (c.translation * per_mm).tolist(),
                "fisheye": False,
            }
        doc["metadata"] = {"adjusted": False, "error": 0.0}
        with atomic_write(path, "wb") as fh:
            tomli_w.dump(doc, fh)
        return path
    per_mm = 1.0 / _scale(units, "mm", display_name(path))
    out = ["%YAML:1.0", "---"]
    if len(cams) > 1:
        out.append("names:")
        out += [f'   - "{c.name}"' for c in cams]
    else:
        out.append(f'name: "{cams[0].name}"')
    for c in cams:
        sfx = f"_{c.name}" if len(cams) > 1 else ""
        out += [f"image_width{sfx}: {c.size[0]}", f"image_height{sfx}: {c.size[1]}"]
        for key, arr in (
            ("camera_matrix", c.matrix),
            ("distortion_coefficients", c.distortion[None, :]),
            ("rvec", c.rotation[:, None]),
            ("tvec", c.translation[:, None] * per_mm),
        ):
            data = ", ".join(repr(float(v)) for v in arr.reshape(-1))
            out += [
                f"{key}{sfx}: !!opencv-matrix",
                f"   rows: {arr.shape[0]}",
                f"   cols: {arr.shape[1]}",
                "   dt: d",
                f"   data: [ {data} ]",
            ]
    with atomic_write(path) as fh:
        fh.write("\n".join(out) + "\n")
    return path
