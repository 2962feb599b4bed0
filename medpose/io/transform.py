"""ITK transform files (``.tfm``/``.txt`` text, ``.h5`` HDF5): 3D Slicer, SimpleITK, ANTs.

Conventions (the exact meaning of what is written and read):

* A medpose :class:`~medpose.geometry.Transform` ``T`` maps points from ``T.source`` to
  ``T.target``: ``x_target = T.matrix @ x_source`` (millimetres, LPS for imaging frames).
* An ITK transform file holds the *resampling* transform ``F``: it maps points of the fixed
  (output) space to the moving space, in LPS millimetres.  3D Slicer loads the file as a
  transform node whose "transform from parent" is ``F`` (its "transform to parent" is
  ``F^-1``, converted to RAS by ``diag(-1, -1, 1, 1)`` on both sides).
* medpose therefore writes ``F = T^-1``: the fixed space is ``T.target``, the moving space
  ``T.source``.  Placing an object given in ``T.source`` coordinates under this transform
  node in Slicer shows it in ``T.target`` coordinates; resampling an image of the source
  frame with this file (SimpleITK ``Resample``, Slicer "Resample Scalar/Vector/DWI Volume")
  gives it on the target frame's grid.  Reading returns ``F^-1`` again, so
  ``read_transform(write_transform(T, p))`` is ``T``.

The text format (ITK ``TxtTransformIO``) is::

    #Insight Transform File V1.0
    #Transform 0
    Transform: AffineTransform_double_3_3
    Parameters: a11 a12 a13 a21 a22 a23 a31 a32 a33 t1 t2 t3
    FixedParameters: c1 c2 c3

meaning ``F(x) = A (x - c) + c + t`` (ITK ``MatrixOffsetTransformBase``).  medpose writes the
centre 0 and records the frames in two comment lines (``#medpose source: LPS``,
``#medpose target: camera``) that ITK and Slicer skip.  HDF5 files cannot carry them, so
reading one needs ``source=`` and ``target=``.

References
----------
3D Slicer documentation, developer guide, "Transforms" module: "Transform files" (ITK
resampling convention, LPS, from-parent) and "Coordinate systems".  ITK Software Guide,
section 3.9 "Transforms" (``MatrixOffsetTransformBase``: matrix, centre, translation), and
``itkTxtTransformIO.cxx`` for the text format.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Transform
from ._util import atomic_path, atomic_write, display_name, require_file

__all__ = ["read_transform", "write_transform", "TRANSFORM_EXTENSIONS"]

#: File extensions of ITK transform files: text and HDF5.
TRANSFORM_EXTENSIONS: dict[str, str] = {
    ".tfm": "text",
    ".txt": "text",
    ".h5": "HDF5",
    ".hdf5": "HDF5",
}

#: Linear 3D ITK transform classes: (number of Parameters, allowed numbers of FixedParameters).
_LINEAR: dict[str, tuple[int, tuple[int, ...]]] = {
    "AffineTransform": (12, (3,)),
    "MatrixOffsetTransformBase": (12, (3,)),
    "Rigid3DTransform": (12, (3,)),
    "Euler3DTransform": (6, (3, 4)),
    "VersorRigid3DTransform": (6, (3,)),
    "VersorTransform": (3, (3,)),
    "QuaternionRigidTransform": (7, (3,)),
    "Similarity3DTransform": (7, (3,)),
    "ScaleVersor3DTransform": (9, (3,)),
    "ScaleSkewVersor3DTransform": (15, (3,)),
    "TranslationTransform": (3, (0,)),
    "IdentityTransform": (0, (0,)),
    "CompositeTransform": (0, (0,)),
}
_CLASS = re.compile(r"^(\w+?)_(double|float)_(\d+)_(\d+)$")
_FRAME_LINE = re.compile(r"^#\s*medpose\s+(source|target)\s*:\s*(.*?)\s*$")


def _extension(p: Path) -> str:
    ext = p.suffix.lower()
    if ext not in TRANSFORM_EXTENSIONS:
        raise InputError(
            f"{display_name(p)}: unknown transform file extension {ext or '(none)'!r}; expected "
            f"one of {sorted(TRANSFORM_EXTENSIONS)}"
        )
    return ext


def _numbers(text: str, name: str, n_transform: int, field: str) -> list[float]:
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise InputError(
            f"{name}: transform {n_transform} {field} {text.strip()[:60]!r}; expected numbers"
        ) from None
    if not all(np.isfinite(values)):
        raise InputError(f"{name}: transform {n_transform} {field} has NaN or infinite values")
    return values


def _check_text(p: Path) -> dict[str, str]:
    """Check an ITK text transform file; return the frames its medpose comments record."""
    name = display_name(p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a text file; expected an ITK text transform file") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("#Insight Transform File"):
        raise InputError(
            f"{name}: first line {lines[0][:40] if lines else ''!r}; expected "
            "'#Insight Transform File V1.0'"
        )
    frames: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    for line in lines[1:]:
        m = _FRAME_LINE.match(line)
        if m:
            frames[m.group(1)] = m.group(2)
            continue
        if line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise InputError(f"{name}: line {line[:40]!r}; expected 'Key: value'")
        if key == "Transform":
            blocks.append({"Transform": value.strip()})
        elif key in ("Parameters", "FixedParameters"):
            if not blocks:
                raise InputError(f"{name}: {key} before any 'Transform:' line")
            blocks[-1][key] = value
        else:
            raise InputError(f"{name}: unexpected field {key[:40]!r}")
    if not blocks:
        raise InputError(f"{name}: no 'Transform:' line; expected an ITK transform")
    for i, block in enumerate(blocks):
        m = _CLASS.match(block["Transform"])
        kind = m.group(1) if m else block["Transform"][:60]
        if m is None or kind not in _LINEAR:
            raise InputError(
                f"{name}: transform {i} is {kind!r}; medpose reads linear 3D transforms only "
                f"({', '.join(sorted(_LINEAR))})"
            )
        if (m.group(3), m.group(4)) != ("3", "3"):
            raise InputError(
                f"{name}: transform {i} is {block['Transform']!r}, {m.group(3)}D; expected a 3D "
                "transform (..._3_3)"
            )
        n_par, n_fixed = _LINEAR[kind]
        par = _numbers(block.get("Parameters", ""), name, i, "Parameters")
        fixed = _numbers(block.get("FixedParameters", ""), name, i, "FixedParameters")
        if kind == "CompositeTransform":
            continue
        if len(par) != n_par:
            raise InputError(
                f"{name}: transform {i} ({block['Transform']}) Parameters has {len(par)} numbers; "
                f"expected {n_par}"
            )
        if len(fixed) not in n_fixed:
            raise InputError(
                f"{name}: transform {i} ({block['Transform']}) FixedParameters has {len(fixed)} "
                f"numbers; expected {' or '.join(map(str, n_fixed))} (the centre)"
            )
    return frames


def _affine_of(tx: sitk.Transform) -> np.ndarray:
    """The 4x4 matrix of a linear SimpleITK transform, from the images of 0 and e1, e2, e3."""
    origin = np.array(tx.TransformPoint((0.0, 0.0, 0.0)))
    m = np.eye(4)
    m[:3, 3] = origin
    for i in range(3):
        e = [0.0, 0.0, 0.0]
        e[i] = 1.0
        m[:3, i] = np.array(tx.TransformPoint(tuple(e))) - origin
    return m


def read_transform(
    path: str | os.PathLike, *, source: str | None = None, target: str | None = None
) -> Transform:
    """Read an ITK transform file (as 3D Slicer and SimpleITK write it) as a medpose Transform.

    Parameters
    ----------
    path : path-like
        ``.tfm``/``.txt`` (text) or ``.h5``/``.hdf5`` (HDF5) ITK transform file holding a
        linear transform (affine, rigid, similarity, or a composite of those) that is a
        rigid or similarity transform.
    source, target : str, optional
        Frames of the result: ``source`` is the file's moving space, ``target`` its fixed
        space.  A file written by medpose records them; given here too they must agree.
        Required for files that do not record them (Slicer's, SimpleITK's, any ``.h5``).

    Returns
    -------
    Transform
        ``F^-1`` where ``F`` is the file's (resampling) transform: it maps points of
        ``source`` to ``target``, LPS millimetres (see the module docstring).

    Raises
    ------
    InputError
        Missing file, unknown extension, a text file that is not an ITK transform, a
        non-linear or non-3D transform, a wrong number of Parameters or FixedParameters,
        non-finite values, a file SimpleITK cannot read, a matrix with shear, anisotropic
        scale or reflection, frames missing or different from those the file records.

    References
    ----------
    3D Slicer documentation, "Transforms" module, "Transform files".
    """
    p = require_file(path, "transform file")
    name = display_name(p)
    ext = _extension(p)
    if not p.is_file():
        raise InputError(f"{name}: not a regular file; expected an ITK transform file")
    recorded = _check_text(p) if TRANSFORM_EXTENSIONS[ext] == "text" else {}
    frames: dict[str, str] = {}
    for key, given in (("source", source), ("target", target)):
        stored = recorded.get(key)
        if given is not None and stored is not None and given != stored:
            raise InputError(
                f"{name}: the file records {key} frame {stored!r}; {key}={given!r} was asked"
            )
        value = given if given is not None else stored
        if value is None:
            raise InputError(
                f"{name}: the file does not record its {key} frame; pass {key}= (source = the "
                "file's moving space, target = its fixed space)"
            )
        frames[key] = value
    try:
        tx = sitk.ReadTransform(str(p))
    except RuntimeError as exc:
        reason = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = (reason[-1] if reason else type(exc).__name__).replace(str(p), name)
        raise InputError(f"{name}: SimpleITK cannot read the transform: {text}") from None
    if tx.GetDimension() != 3 or not tx.IsLinear():
        raise InputError(
            f"{name}: {tx.GetName()} ({tx.GetDimension()}D) is not a linear 3D transform; "
            "medpose reads rigid and similarity transforms only"
        )
    f = _affine_of(tx)
    if not np.all(np.isfinite(f)) or abs(np.linalg.det(f[:3, :3])) < 1e-12:
        raise InputError(f"{name}: the transform's matrix is singular or not finite")
    try:
        return Transform.from_matrix(np.linalg.inv(f), frames["source"], frames["target"])
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None


def write_transform(transform: Transform, path: str | os.PathLike) -> Path:
    """Write a Transform as an ITK transform file for 3D Slicer, SimpleITK and ANTs, atomically.

    The file holds ``F = transform^-1`` as ``AffineTransform_double_3_3`` with centre 0 (the
    resampling transform from ``transform.target``, the fixed space, to ``transform.source``,
    the moving space; see the module docstring).  Text files also record the two frames in
    comment lines; HDF5 files (written by SimpleITK) cannot.

    Parameters
    ----------
    transform : Transform
        Rigid or similarity transform, source -> target, millimetres.
    path : path-like
        ``.tfm``/``.txt`` or ``.h5``/``.hdf5``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Not a Transform, unknown extension, frame names with line breaks, or a write that
        SimpleITK refuses.
    OSError
        File-system errors, unchanged (``path`` keeps its old content).
    """
    p = Path(path)
    name = display_name(p)
    if not isinstance(transform, Transform):
        raise InputError(f"{name}: expected a medpose Transform, found {type(transform).__name__}")
    ext = _extension(p)
    for key in ("source", "target"):
        frame = getattr(transform, key)
        if not frame or "\n" in frame or "\r" in frame:
            raise InputError(f"{name}: {key} frame {frame!r}; expected a one-line name")
    f = np.linalg.inv(transform.matrix)
    if TRANSFORM_EXTENSIONS[ext] == "text":
        params = " ".join(f"{v:.17g}" for v in [*f[:3, :3].reshape(-1), *f[:3, 3]])
        text = (
            "#Insight Transform File V1.0\n"
            f"#medpose source: {transform.source}\n"
            f"#medpose target: {transform.target}\n"
            "#Transform 0\n"
            "Transform: AffineTransform_double_3_3\n"
            f"Parameters: {params}\n"
            "FixedParameters: 0 0 0\n"
        )
        with atomic_write(p) as fh:
            fh.write(text)
        return p
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(tuple(float(v) for v in f[:3, :3].reshape(-1)))
    affine.SetTranslation(tuple(float(v) for v in f[:3, 3]))
    # HDF5 locks the files it writes, and atomic_path holds a lock on its temporary file: the
    # file is written in a private folder beside ``path``, then moved onto the temporary file.
    with (
        atomic_path(p, suffix=ext) as tmp,
        tempfile.TemporaryDirectory(dir=p.parent, prefix=".") as work,
    ):
        out = Path(work) / f"transform{ext}"
        try:
            sitk.WriteTransform(affine, str(out))
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise InputError(
                f"{name}: SimpleITK could not write the transform ({lines[-1] if lines else 'no reason'})"
            ) from None
        os.replace(out, tmp)
    return p
