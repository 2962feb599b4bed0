"""Image volumes (CT, MRI) with their voxel-to-LPS geometry.

A :class:`Volume` holds a 3D mono-channel array and the ITK/DICOM geometry that places
each voxel in the patient's LPS world (x to the patient's Left, y to Posterior, z to
Superior, millimetres):

.. math::  x_{LPS} = o + D \\, \\mathrm{diag}(s) \\, (i, j, k)^T

with origin ``o``, direction ``D`` (columns = directions of the i, j, k axes in LPS) and
spacing ``s``.  This is the ITK image geometry (ITK Software Guide, section 4.1.4 "Defining
Origin and Spacing" / "Direction"), identical to DICOM's Image Plane module (PS3.3
C.7.6.2.1.1) for a stack of slices.

``Volume.array`` is indexed ``[i, j, k]`` like the ITK index and like nibabel, i.e. it is
the transpose of :func:`SimpleITK.GetArrayFromImage` (which is ``[k, j, i]``).

Reading and writing go through SimpleITK: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``,
``.nhdr``), MetaImage (``.mha``, ``.mhd``) and DICOM series folders.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import math
import os
import secrets
import shutil
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError

from ..errors import InputError
from ..io._util import atomic_path, display_name

__all__ = [
    "Volume",
    "read_volume",
    "write_volume",
    "list_dicom_series",
    "VOLUME_EXTENSIONS",
]

#: File extensions :func:`read_volume` and :func:`write_volume` accept, with their format.
VOLUME_EXTENSIONS: dict[str, str] = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return "".join(path.suffixes[-2:]).lower() or "(none)"


def _readonly_view(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D mono-channel image and its voxel-to-LPS geometry.

    Parameters
    ----------
    array : ndarray, shape (I, J, K)
        Voxel values indexed ``[i, j, k]`` (ITK index order; the transpose of
        ``SimpleITK.GetArrayFromImage``).  Kept in its own dtype (e.g. int16 for CT) and
        stored as a read-only view (no copy).
    spacing : array_like, shape (3,)
        Distance between voxel centres along i, j, k, millimetres, > 0.
    origin : array_like, shape (3,)
        LPS position of voxel ``[0, 0, 0]``'s centre, millimetres.
    direction : array_like, shape (3, 3)
        Columns are the unit directions of the i, j, k axes in LPS.  Must be invertible.

    Raises
    ------
    InputError
        If the array is not 3D or the geometry is not finite / invertible.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((4, 5, 6), np.int16), spacing=[1, 2, 3], origin=[10, 0, 0], direction=np.eye(3))
    >>> v.index_to_lps([[1, 1, 1]])
    array([[11.,  2.,  3.]])
    >>> v.lps_to_index([11.0, 2.0, 3.0])
    array([1., 1., 1.])
    """

    array: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"Volume: array must be 3D indexed [i, j, k], found shape {arr.shape}")
        spacing = np.asarray(self.spacing, dtype=float).reshape(-1)
        origin = np.asarray(self.origin, dtype=float).reshape(-1)
        direction = np.asarray(self.direction, dtype=float)
        if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise InputError(
                f"Volume: spacing must be 3 finite positive numbers (mm), found {spacing.tolist()}"
            )
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise InputError(
                f"Volume: origin must be 3 finite numbers (mm, LPS), found {origin.tolist()}"
            )
        if (
            direction.shape != (3, 3)
            or not np.all(np.isfinite(direction))
            or abs(np.linalg.det(direction)) < 1e-6
        ):
            raise InputError(
                f"Volume: direction must be an invertible 3x3 matrix, found {direction.tolist()}"
            )
        for name, value in (
            ("array", arr),
            ("spacing", spacing),
            ("origin", origin),
            ("direction", direction),
        ):
            object.__setattr__(self, name, _readonly_view(value))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def frame(self) -> str:
        """Always ``"LPS"``: the frame of :meth:`index_to_lps`."""
        return "LPS"

    @property
    def affine(self) -> np.ndarray:
        """4x4 homogeneous matrix from continuous index ``(i, j, k, 1)`` to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * self.spacing[None, :]
        m[:3, 3] = self.origin
        return m

    def index_to_lps(self, ijk: Any) -> np.ndarray:
        """LPS position (mm) of continuous voxel indices.

        Parameters
        ----------
        ijk : array_like, shape (..., 3)
            Indices ``(i, j, k)``; integers are voxel centres.

        Returns
        -------
        ndarray, shape (..., 3)
            ``origin + direction @ (spacing * ijk)``.
        """
        ijk = np.asarray(ijk, dtype=float)
        if ijk.shape[-1:] != (3,):
            raise InputError(
                f"Volume.index_to_lps: indices must have shape (..., 3), found {ijk.shape}"
            )
        return ijk @ (self.direction * self.spacing[None, :]).T + self.origin

    def lps_to_index(self, xyz: Any) -> np.ndarray:
        """Continuous voxel indices ``(i, j, k)`` of LPS positions (mm), shape (..., 3) -> (..., 3)."""
        xyz = np.asarray(xyz, dtype=float)
        if xyz.shape[-1:] != (3,):
            raise InputError(
                f"Volume.lps_to_index: points must have shape (..., 3), found {xyz.shape}"
            )
        inv = np.linalg.inv(self.direction * self.spacing[None, :])
        return (xyz - self.origin) @ inv.T

    # ------------------------------------------------------------------ SimpleITK
    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (bool arrays become uint8)."""
        arr = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)), isVector=False)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction.reshape(-1)))  # row-major, as ITK
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, *, source: str = "image") -> Volume:
        """Build from a 3D mono-channel SimpleITK image.

        Parameters
        ----------
        image : SimpleITK.Image
            3D image with one component per pixel.
        source : str
            Name used in error messages (a file's display name).

        Raises
        ------
        InputError
            For vector (multi-component) images and images that are not 3D.
        """
        n_comp = image.GetNumberOfComponentsPerPixel()
        if n_comp != 1:
            raise InputError(
                f"{source}: vector image with {n_comp} components per voxel; medpose volumes are "
                "mono-channel only (extract one with SimpleITK.VectorIndexSelectionCast)"
            )
        if image.GetDimension() != 3:
            raise InputError(
                f"{source}: {image.GetDimension()}D image of size {image.GetSize()}; expected a 3D volume"
            )
        arr = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0).copy(order="F")
        direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
        return cls(arr, np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin()), direction)

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing={np.round(self.spacing, 4).tolist()} mm, "
            f"origin={np.round(self.origin, 3).tolist()} mm LPS)"
        )


# ---------------------------------------------------------------------- reading
def _itk_error(exc: Exception, path: Path) -> str:
    """ITK's reason, last line only, with the full path replaced by the display name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    for text in (str(path.resolve()), str(path)):
        reason = reason.replace(text, display_name(path))
    return reason


def list_dicom_series(folder: str | os.PathLike) -> list[str]:
    """SeriesInstanceUIDs of the DICOM series in ``folder`` (not recursive), via GDCM."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{display_name(folder)}: DICOM folder not found")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _dicom_vector(reader: sitk.ImageFileReader, tag: str, n: int) -> np.ndarray | None:
    if not reader.HasMetaDataKey(tag):
        return None
    try:
        v = np.array([float(x) for x in reader.GetMetaData(tag).split("\\")], dtype=float)
    except ValueError:
        return None
    return v if v.shape == (n,) and np.all(np.isfinite(v)) else None


def _check_slices(files: list[str], name: str) -> None:
    """Refuse a series whose slices do not form one evenly spaced stack.

    Every slice must state ImagePositionPatient (0020,0032) and the same
    ImageOrientationPatient (0020,0037); their positions along the slice normal (PS3.3
    C.7.6.2.1.1) must be distinct and evenly spaced (within 1% of the median spacing), since
    ITK takes one slice spacing for the whole volume and would place the voxels of a series
    with a missing (unreadable) or duplicated slice at the wrong positions.
    """
    if len(files) < 2:
        return
    positions, orientations = [], []
    for f in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(f)
        reader.LoadPrivateTagsOff()
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            raise InputError(
                f"{name}: slice file {Path(f).name!r} of the series is unreadable"
            ) from None
        ipp = _dicom_vector(reader, "0020|0032", 3)
        iop = _dicom_vector(reader, "0020|0037", 6)
        if ipp is None or iop is None:
            raise InputError(
                f"{name}: slice file {Path(f).name!r} has no valid ImagePositionPatient (0020,0032)"
                " / ImageOrientationPatient (0020,0037); expected both on every slice"
            )
        positions.append(ipp)
        orientations.append(iop)
    iops = np.array(orientations)
    if np.max(np.abs(iops - iops[0])) > 1e-4:
        raise InputError(
            f"{name}: ImageOrientationPatient differs between slices (by up to "
            f"{np.max(np.abs(iops - iops[0])):.3g}); expected one orientation for the series"
        )
    normal = np.cross(iops[0, :3], iops[0, 3:])
    along = np.sort(np.array(positions) @ normal)
    gaps = np.diff(along)
    median = float(np.median(gaps))
    if np.min(gaps) < 1e-3 * max(median, 1.0):
        raise InputError(
            f"{name}: {int(np.sum(gaps < 1e-3 * max(median, 1.0)))} pair(s) of slices share the "
            f"same position along the slice normal ({len(files)} slices); expected distinct "
            "positions (duplicate slices?)"
        )
    if np.max(np.abs(gaps - median)) > 0.01 * median:
        raise InputError(
            f"{name}: slice spacing varies from {np.min(gaps):.4g} to {np.max(gaps):.4g} mm "
            f"(median {median:.4g} mm over {len(files)} slices); expected equal spacing "
            "(a missing or unreadable slice?)"
        )


def _read_dicom_files(files: list[str], name: str) -> sitk.Image:
    _check_slices(files, name)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(
            f"{name}: could not read DICOM ({len(files)} files): {_itk_error(exc, Path(files[0]))}"
        ) from None


def _read_dicom_series(folder: Path, series_uid: str | None) -> sitk.Image:
    name = display_name(folder)
    uids = list_dicom_series(folder)
    if not uids:
        raise InputError(
            f"{name}: folder holds no DICOM series; expected the files of one DICOM series "
            f"(or pass a file with one of {sorted(VOLUME_EXTENSIONS)})"
        )
    if series_uid is None:
        if len(uids) > 1:
            raise InputError(
                f"{name}: folder holds {len(uids)} DICOM series; pass series_uid= to choose one "
                "(medpose.imaging.volume.list_dicom_series(folder) lists their UIDs)"
            )
        series_uid = uids[0]
    elif series_uid not in uids:
        raise InputError(
            f"{name}: series_uid {series_uid!r} not found; the folder holds {len(uids)} other series"
        )
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return _read_dicom_files(files, name)


# ---------------------------------------------------------------------- checks before ITK
#: Bytes per voxel of the NRRD ``type`` field values (NRRD format 5, "type") and MetaImage
#: ``ElementType`` values (MetaIO documentation, "MET_*" types).
_NRRD_TYPES: dict[str, int] = {
    **dict.fromkeys(
        ["signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"], 1
    ),
    **dict.fromkeys(
        [
            "short",
            "short int",
            "signed short",
            "signed short int",
            "int16",
            "int16_t",
            "ushort",
            "unsigned short",
            "unsigned short int",
            "uint16",
            "uint16_t",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "int",
            "signed int",
            "int32",
            "int32_t",
            "uint",
            "unsigned int",
            "uint32",
            "uint32_t",
            "float",
        ],
        4,
    ),
    **dict.fromkeys(
        [
            "longlong",
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64",
            "int64_t",
            "ulonglong",
            "unsigned long long",
            "unsigned long long int",
            "uint64",
            "uint64_t",
            "double",
        ],
        8,
    ),
}
_MET_TYPES: dict[str, int] = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
#: Largest output/input ratio of a deflate stream (zlib technical details: 1032:1).
_DEFLATE_MAX_RATIO = 1032
_HEADER_LIMIT = 1 << 16  # text headers longer than 64 kB are not volume headers


@dataclass(frozen=True)
class _Payload:
    """Where a volume file's voxel bytes are and how many its header promises."""

    file: Path  # the file holding the voxels
    offset: int | None  # first voxel byte in ``file``; None = at the end of the file
    nbytes: int  # voxel bytes the header promises
    compression: str  # "raw", "zlib" (gzip or zlib stream), "bzip2" or "text"
    field: str  # header field naming ``file`` (for messages)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _data_file(header: Path, value: str, field: str, root: Path) -> Path:
    """The detached data file a header names, refused unless it is a single file inside ``root``."""
    name = display_name(header)
    value = value.strip()
    if not value or value.upper() == "LIST" or "%" in value or len(value.split()) > 1:
        raise InputError(
            f"{name}: {field} is {value.split()[0] if value else 'empty'!r}...; medpose reads one "
            "data file named by its header (file lists and patterns are not supported)"
        )
    target = Path(value)
    target = target if target.is_absolute() else header.parent / target
    if not _inside(target, root):
        raise InputError(
            f"{name}: {field} names a data file outside the allowed root folder; expected a "
            "file inside the folder of the header (or the root= folder given to read_volume)"
        )
    if not target.is_file():
        raise InputError(
            f"{name}: {field} names {target.name!r}, which is not a file; expected the data file"
        )
    return target


def _text_header(path: Path, what: str) -> tuple[list[str], int]:
    """The header lines of a text-header format and the byte offset just after them."""
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_LIMIT)
    lines: list[str] = []
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            end = len(head)
        raw = head[pos:end]
        pos = end + 1
        line = raw.decode("latin-1").rstrip("\r")
        if what == "NRRD" and not line:
            return lines, pos
        lines.append(line)
        if what == "MetaImage" and line.split("=")[0].strip() == "ElementDataFile":
            return lines, pos
    if len(head) >= _HEADER_LIMIT:
        raise InputError(
            f"{display_name(path)}: no end of the {what} header in its first {_HEADER_LIMIT} bytes"
        )
    return lines, min(pos, len(head))


def _ints(value: str, name: str, field: str) -> list[int]:
    try:
        out = [int(v) for v in value.split()]
    except ValueError:
        out = []
    if not out or any(n <= 0 for n in out):
        raise InputError(f"{name}: {field} is {value.strip()[:60]!r}; expected positive integers")
    return out


def _nrrd_payload(path: Path, root: Path) -> _Payload:
    name = display_name(path)
    lines, end = _text_header(path, "NRRD")
    if not lines or not lines[0].startswith("NRRD"):
        raise InputError(f"{name}: first line is not a NRRD magic ('NRRD0004'); not a NRRD file")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or ":=" in line or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        fields[key.strip().lower()] = value.strip()
    for key in ("type", "sizes", "encoding"):
        if key not in fields:
            raise InputError(f"{name}: NRRD field '{key}' missing")
    itemsize = _NRRD_TYPES.get(fields["type"].lower())
    if itemsize is None:
        raise InputError(f"{name}: NRRD type {fields['type'][:40]!r} is not a known NRRD type")
    sizes = _ints(fields["sizes"], name, "NRRD sizes")
    ndims = fields.get("dimension", "").strip()
    if not ndims.isdigit() or int(ndims) != len(sizes) or not 1 <= len(sizes) <= 16:
        raise InputError(
            f"{name}: NRRD dimension is {ndims[:20]!r} and sizes has {len(sizes)} values; "
            "expected the same number, between 1 and 16 (NRRD_DIM_MAX)"
        )
    encoding = fields["encoding"].lower()
    compression = {"raw": "raw", "gzip": "zlib", "gz": "zlib", "bzip2": "bzip2", "bz2": "bzip2"}
    kind = compression.get(encoding, "text")
    skip = (
        int(fields.get("byte skip", "0") or 0)
        if fields.get("byte skip", "0").lstrip("-").isdigit()
        else 0
    )
    detached = fields.get("data file", fields.get("datafile"))
    field = "NRRD 'data file'" if "data file" in fields else "NRRD 'datafile'"
    if detached is not None:
        data, offset = _data_file(path, detached, field, root), 0
    else:
        data, offset, field = path, end, "NRRD data"
    if fields.get("line skip", "0").strip() not in ("", "0"):
        kind = "text"  # line skips: leave the check to ITK
    return _Payload(
        data, None if skip < 0 else offset + skip, math.prod(sizes) * itemsize, kind, field
    )


def _meta_payload(path: Path, root: Path) -> _Payload:
    name = display_name(path)
    lines, end = _text_header(path, "MetaImage")
    fields: dict[str, str] = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    for key in ("DimSize", "ElementType", "ElementDataFile"):
        if key not in fields:
            raise InputError(f"{name}: MetaImage field '{key}' missing")
    itemsize = _MET_TYPES.get(fields["ElementType"].upper())
    if itemsize is None:
        raise InputError(
            f"{name}: MetaImage ElementType {fields['ElementType'][:40]!r}; expected one of "
            f"{sorted(_MET_TYPES)}"
        )
    dims = _ints(fields["DimSize"], name, "MetaImage DimSize")
    ndims = fields.get("NDims", "").strip()
    if not ndims.isdigit() or int(ndims) != len(dims) or not 1 <= len(dims) <= 10:
        raise InputError(
            f"{name}: MetaImage NDims is {ndims[:20]!r} and DimSize has {len(dims)} values; "
            "expected the same number, between 1 and 10 (MetaIO's limit)"
        )
    channels = _ints(fields.get("ElementNumberOfChannels", "1"), name, "ElementNumberOfChannels")[0]
    compressed = fields.get("CompressedData", "False").lower() == "true"
    header_size = fields.get("HeaderSize", "0")
    skip = int(header_size) if header_size.lstrip("-").isdigit() else 0
    if fields["ElementDataFile"].upper() == "LOCAL":
        data, offset, field = path, end, "MetaImage data"
    else:
        data = _data_file(path, fields["ElementDataFile"], "ElementDataFile", root)
        offset, field = 0, "ElementDataFile"
    return _Payload(
        data,
        None if skip < 0 else offset + max(skip, 0),
        math.prod(dims) * channels * itemsize,
        "zlib" if compressed else "raw",
        field,
    )


def _stream_length(fh: Any, limit: int) -> int:
    """Bytes a zlib or gzip stream decompresses to (stops counting past ``limit``)."""
    dec = zlib.decompressobj(47)  # 32 + 15: zlib or gzip header, detected
    total = 0
    while total <= limit:
        chunk = fh.read(1 << 20)
        if not chunk:
            if not dec.eof:
                raise EOFError("compressed stream ends early")
            break
        total += len(dec.decompress(chunk, limit + 1 - total))
        while dec.unconsumed_tail and total <= limit:
            total += len(dec.decompress(dec.unconsumed_tail, limit + 1 - total))
        if dec.eof:
            break
    return total


def _check_payload(header: Path, payload: _Payload) -> None:
    """Refuse a file whose voxel bytes are fewer than its header promises."""
    name = display_name(header)
    size = payload.file.stat().st_size
    offset = size - payload.nbytes if payload.offset is None else payload.offset
    available = size - offset
    if payload.compression == "raw" and (offset < 0 or available < payload.nbytes):
        raise InputError(
            f"{name}: truncated: {max(available, 0)} bytes of voxel data in {payload.field}, "
            f"the header promises {payload.nbytes}"
        )
    if payload.compression == "zlib":
        if payload.nbytes > _DEFLATE_MAX_RATIO * max(available, 1) + 1024:
            raise InputError(
                f"{name}: the header promises {payload.nbytes} bytes of voxels, more than "
                f"{available} compressed bytes can hold (deflate expands at most "
                f"{_DEFLATE_MAX_RATIO}:1); the header or the file is damaged"
            )
        try:
            with open(payload.file, "rb") as fh:
                fh.seek(offset)
                got = _stream_length(fh, payload.nbytes)
        except (EOFError, zlib.error) as exc:
            raise InputError(
                f"{name}: truncated or corrupt compressed voxel data in {payload.field} "
                f"({type(exc).__name__}); expected a complete stream of {payload.nbytes} bytes"
            ) from None
        if got < payload.nbytes:
            raise InputError(
                f"{name}: truncated: the compressed voxel data in {payload.field} hold {got} "
                f"bytes, the header promises {payload.nbytes}"
            )


def _nifti_geometry_check(name: str, hdr: Any) -> None:
    """Refuse NIfTI geometry fields that ITK would silently replace by spacing 1 / identity.

    pixdim[1:4] must be finite and positive; a qform or sform whose code is > 0 must be finite
    and (sform) invertible, a qform's quaternion (b, c, d) must have norm <= 1 (NIfTI-1
    header documentation, ``nifti1.h``, "quatern_b, quatern_c, quatern_d").
    """
    pixdim = np.asarray(hdr["pixdim"][1:4], dtype=float)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise InputError(
            f"{name}: NIfTI pixdim[1:4] is {pixdim.tolist()}; expected 3 finite positive voxel "
            "sizes (mm)"
        )
    if int(hdr["sform_code"]) > 0:
        srow = np.stack([np.asarray(hdr[k], dtype=float) for k in ("srow_x", "srow_y", "srow_z")])
        det = np.linalg.det(srow[:, :3]) if np.all(np.isfinite(srow)) else float("nan")
        if not np.isfinite(det) or abs(det) < 1e-12 * max(float(np.prod(pixdim)), 1e-300):
            raise InputError(
                f"{name}: NIfTI sform (sform_code {int(hdr['sform_code'])}) srow_x/y/z is "
                f"{np.round(srow, 6).tolist()}; expected a finite invertible affine "
                "(fix the file, or set sform_code 0 to use its qform)"
            )
    if int(hdr["qform_code"]) > 0:
        quat = np.asarray([hdr[k] for k in ("quatern_b", "quatern_c", "quatern_d")], dtype=float)
        offs = np.asarray([hdr[k] for k in ("qoffset_x", "qoffset_y", "qoffset_z")], dtype=float)
        if not np.all(np.isfinite(quat)) or not np.all(np.isfinite(offs)) or quat @ quat > 1 + 1e-6:
            raise InputError(
                f"{name}: NIfTI qform (qform_code {int(hdr['qform_code'])}) quatern_b/c/d "
                f"{quat.tolist()}, qoffset_x/y/z {offs.tolist()}; expected finite values and "
                "b^2 + c^2 + d^2 <= 1"
            )


def _nifti_header(path: Path) -> Any:
    """nibabel's view of a NIfTI file, after checking its geometry and that all voxels are there.

    ITK 5.4 reads a truncated ``.nii``/``.nii.gz`` without complaint (the missing voxels come
    back as zeros), so the size is checked here: the file size for ``.nii``, the decompressed
    size for ``.nii.gz``, against ``vox_offset`` (at least 352 in a single ``.nii`` file,
    NIfTI-1 ``nifti1.h``; 540 for NIfTI-2) plus the voxel bytes.  Returns None when nibabel
    cannot parse the header (ITK then reports the problem).
    """
    name = display_name(path)
    if path.name.lower().endswith(".gz"):
        size = 0
        try:
            with gzip.open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    size += len(chunk)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(
                f"{name}: truncated or corrupt gzip stream ({type(exc).__name__} after {size} "
                "decompressed bytes); expected a complete .nii.gz file"
            ) from None
    else:
        size = path.stat().st_size
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read(540)
    klass: Any = nib.Nifti1Header
    if len(raw) >= 4 and 540 in struct.unpack("<i", raw[:4]) + struct.unpack(">i", raw[:4]):
        klass = nib.Nifti2Header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel's own remarks on odd headers
            # the header as stored: nib.load would "fix" a zero pixdim to 1 and reset vox_offset
            hdr = klass.from_fileobj(io.BytesIO(raw), check=False)
            shape = tuple(int(n) for n in hdr.get_data_shape())
            nbytes = math.prod(shape) * hdr.get_data_dtype().itemsize
            offset = int(hdr.get_data_offset())
            magic = bytes(hdr["magic"])
            img = nib.load(str(path))
    except (
        ImageFileError,
        HeaderDataError,
        WrapStructError,
        KeyError,
        ValueError,
        TypeError,
        OSError,
        EOFError,
        zlib.error,
        struct.error,
    ):
        return None  # not parseable by nibabel (e.g. a header cut short): ITK will say why
    if magic.startswith(b"n+"):
        offset = max(offset, int(hdr.single_vox_offset))
    if size - offset < nbytes:
        raise InputError(
            f"{name}: truncated NIfTI: {max(size - offset, 0)} bytes of voxel data after "
            f"vox_offset {offset}, the header promises {nbytes} ({shape} x {hdr.get_data_dtype()})"
        )
    _nifti_geometry_check(name, hdr)
    return img


def _nifti_fixups(path: Path, volume: Volume, img: Any) -> Volume:
    """Compare ITK's reading of a NIfTI with nibabel's and repair what ITK 5 loses.

    * Geometry: ITK prefers the sform only when ``sform_code`` is 1 (scanner) or the qform
      is absent; nibabel whenever ``sform_code > 0``; with neither set they also differ.
      A disagreement larger than 1e-3 mm at the volume's corners is warned about.
    * Non-finite voxels: ITK < 6 replaces every NaN and +-Inf of a float NIfTI by 0
      (ITK pull request #6683); they are put back from the file, since NaN means missing.
    """
    corners = (
        np.array(np.meshgrid(*[[0, n - 1] for n in volume.shape], indexing="ij")).reshape(3, -1).T
    )
    lps = (corners @ img.affine[:3, :3].T + img.affine[:3, 3]) * np.array([-1.0, -1.0, 1.0])
    err = float(np.max(np.linalg.norm(lps - volume.index_to_lps(corners), axis=1)))
    if err > 1e-3:
        hdr = img.header
        warnings.warn(
            f"{display_name(path)}: the NIfTI qform (code {int(hdr['qform_code'])}) and sform "
            f"(code {int(hdr['sform_code'])}) disagree; medpose uses ITK's choice, which places voxels "
            f"up to {err:.3g} mm away from where nibabel puts them",
            UserWarning,
            stacklevel=3,
        )
    same_voxels = tuple(img.shape[:3]) == volume.shape and all(
        n == 1 for n in img.shape[3:]
    )  # (I, J, K, 1) too
    if np.issubdtype(volume.array.dtype, np.floating) and same_voxels:
        raw = np.asarray(img.dataobj, dtype=volume.array.dtype).reshape(volume.shape)
        bad = ~np.isfinite(raw)
        if bad.any():
            arr = np.array(volume.array, order="F")
            arr[bad] = raw[bad]
            volume = Volume(arr, volume.spacing, volume.origin, volume.direction)
    return volume


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    with open(path, "rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"  # the DICOM file meta preamble (PS3.10 7.1)


def read_volume(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    root: str | os.PathLike | None = None,
) -> Volume:
    """Read a 3D image: NIfTI, NRRD, MetaImage file, a DICOM file or a DICOM series folder.

    The file is checked in Python before ITK reads it: voxel bytes against the header (ITK
    5.4 zero-fills a truncated NIfTI, and would allocate whatever size a damaged header
    states), NIfTI geometry fields, the detached data file's location, and the spacing of
    DICOM slices.

    Parameters
    ----------
    path : str or PathLike
        A ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file, a DICOM file
        (``.dcm``, or any file with the ``DICM`` preamble), or a folder of DICOM files.
    series_uid : str, optional
        SeriesInstanceUID to read when the DICOM folder holds several series.
    root : str or PathLike, optional, keyword-only
        Folder that every file read must lie in (symbolic links resolved): ``path`` itself
        and the data file a detached ``.mhd`` (``ElementDataFile``) or ``.nhdr``
        (``data file``) header names.  Default: the folder of ``path``.

    Returns
    -------
    Volume
        Geometry in LPS millimetres, as ITK reads it (NIfTI's RAS header is converted by
        ITK; DICOM slices are sorted by position along the slice normal by GDCM).  NaN and
        +-Inf voxels of float NIfTI files are kept (ITK 5 alone would turn them into 0).
        A single DICOM file is read exactly as a folder holding only that file.

    Raises
    ------
    InputError
        Missing path, ``path`` or its data file outside ``root``, unknown extension,
        unreadable or truncated file, NIfTI pixdim that is zero or not finite, a qform or
        sform in use that is not finite or singular, empty DICOM folder, folder with several
        series and no ``series_uid``, DICOM slices with differing orientation, duplicate
        positions or uneven spacing, vector or non-3D image.

    Warns
    -----
    UserWarning
        For a NIfTI whose qform and sform disagree so that ITK and nibabel would place the
        voxels differently.
    """
    p = Path(path)
    name = display_name(p)
    if not p.exists():
        raise InputError(f"{name}: image file or DICOM folder not found")
    top = Path(root) if root is not None else (p if p.is_dir() else p.parent)
    if root is not None and not _inside(p, top):
        raise InputError(f"{name}: lies outside the allowed root folder given to read_volume")
    if p.is_dir():
        return Volume.from_sitk(_read_dicom_series(p, series_uid), source=name)
    ext = _extension(p)
    if ext not in VOLUME_EXTENSIONS and p.is_file() and _is_dicom_file(p):
        return Volume.from_sitk(_read_dicom_files([str(p)], name), source=name)
    if ext not in VOLUME_EXTENSIONS:
        raise InputError(
            f"{name}: unknown image extension {ext!r}; expected one of {sorted(VOLUME_EXTENSIONS)}, "
            "a DICOM file or a DICOM series folder"
        )
    if not p.is_file():
        raise InputError(f"{name}: not a regular file")
    fmt = VOLUME_EXTENSIONS[ext]
    nifti = _nifti_header(p) if fmt == "NIfTI" else None
    if fmt in ("NRRD", "MetaImage"):
        payload = _nrrd_payload(p, top) if fmt == "NRRD" else _meta_payload(p, top)
        _check_payload(p, payload)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(f"{name}: could not read {fmt} image: {_itk_error(exc, p)}") from None
    volume = Volume.from_sitk(image, source=name)
    if nifti is not None:
        volume = _nifti_fixups(p, volume, nifti)
    return volume


# ---------------------------------------------------------------------- writing
_DETACHED_FIELD = {".mhd": "ElementDataFile", ".nhdr": "data file"}


def _set_vox_offset(path: Path) -> None:
    """Write vox_offset = 352 into a single-file NIfTI-1 header (ITK 5.4 writes 0).

    nifti1.h: in a ``.nii`` file the voxels start at vox_offset, which must be >= 352; ITK
    puts them at 352 but leaves the field 0, so that a size check from the header alone
    would miss 352 bytes.
    """
    with open(path, "r+b") as fh:
        head = fh.read(348)
        if len(head) < 348:
            raise OSError(errno.EIO, f"short NIfTI header ({len(head)} bytes)", path.name)
        endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
        fh.seek(108)
        fh.write(struct.pack(endian + "f", 352.0))


def _verify_written(path: Path, fmt: str, root: Path, nbytes: int) -> None:
    """Check a freshly written file holds all its voxel bytes (ITK ignores short writes)."""
    if fmt == "NIfTI":
        size = path.stat().st_size
        if size < 352 + nbytes:
            raise OSError(
                errno.ENOSPC, f"short write: {size} of {352 + nbytes} bytes (disk full?)", path.name
            )
        return
    payload = _nrrd_payload(path, root) if fmt == "NRRD" else _meta_payload(path, root)
    try:
        _check_payload(path, payload)
    except InputError as exc:
        raise OSError(errno.ENOSPC, f"short write ({exc}); disk full?", path.name) from None


def _old_data_file(header: Path, field: str) -> Path | None:
    """The data file an existing detached header in this folder points to, if any."""
    try:
        lines, _ = _text_header(header, "NRRD" if field == "data file" else "MetaImage")
    except (OSError, InputError):
        return None
    sep = ":" if field == "data file" else "="
    for line in lines:
        key, _, value = line.partition(sep)
        if key.strip().lower() in (field.lower(), "datafile") and value.strip():
            old = header.parent / value.strip()
            if old.parent == header.parent and old.is_file():
                return old
    return None


def write_volume(volume: Volume, path: str | os.PathLike, *, compress: bool = False) -> Path:
    """Write a volume as NIfTI, NRRD or MetaImage, atomically.

    * Single files (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``): written to a temporary file
      beside ``path``, checked for all their voxel bytes (ITK does not report a full disk),
      synced and renamed onto ``path`` (:func:`medpose.io._util.atomic_path`).  NIfTI files
      get ``vox_offset = 352`` (ITK leaves 0); ``.nii.gz`` is compressed by Python's gzip
      from ITK's checked ``.nii``.
    * Header + data pairs (``.mhd``, ``.nhdr``): the data file is written under a new unique
      name (``<stem>.<8 hex digits>.raw``, ``.zraw`` or ``.raw.gz``), then the header that
      names it replaces the old header atomically, then the old header's data file is
      removed.  A crash at any point leaves a consistent old or new pair (plus at most an
      unreferenced data file).

    Parameters
    ----------
    volume : Volume
    path : str or PathLike
        Output file; its extension picks the format (see :data:`VOLUME_EXTENSIONS`).
    compress : bool
        Ask the writer to compress the pixel data (``.nii.gz`` is always compressed).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Unknown extension or a write that SimpleITK refuses.
    OSError
        A full disk or another file-system error, unchanged (``path`` keeps its old content).
    """
    p = Path(path)
    name = display_name(p)
    ext = _extension(p)
    if ext not in VOLUME_EXTENSIONS:
        raise InputError(
            f"{name}: unknown image extension {ext!r}; expected one of {sorted(VOLUME_EXTENSIONS)}"
        )
    fmt = VOLUME_EXTENSIONS[ext]
    image = volume.to_sitk()
    nbytes = image.GetNumberOfPixels() * image.GetSizeOfPixelComponent()
    p.parent.mkdir(parents=True, exist_ok=True)
    if ext in _DETACHED_FIELD:
        _write_pair(image, p, ext, fmt, compress, nbytes)
        return p
    with atomic_path(p, suffix=ext) as tmp:
        target = tmp.with_name(tmp.name[: -len(".gz")]) if ext == ".nii.gz" else tmp
        try:
            _sitk_write(image, target, fmt, compress and fmt != "NIfTI", name)
            _verify_written(target, fmt, p.parent, nbytes)
            if fmt == "NIfTI":
                _set_vox_offset(target)
            if ext == ".nii.gz":
                # no file name and mtime 0 in the gzip header: the same volume gives the same bytes
                with (
                    open(target, "rb") as src,
                    open(tmp, "wb") as raw,
                    gzip.GzipFile(
                        filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0
                    ) as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            if target != tmp:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
    return p


def _sitk_write(image: sitk.Image, target: Path, fmt: str, compress: bool, name: str) -> None:
    try:
        sitk.WriteImage(image, str(target), useCompression=compress)
    except RuntimeError as exc:
        raise InputError(
            f"{name}: could not write {fmt} image: {_itk_error(exc, target)}"
        ) from None


def _write_pair(
    image: sitk.Image, p: Path, ext: str, fmt: str, compress: bool, nbytes: int
) -> None:
    """Detached header + data: new data under a unique name, then the header, then cleanup.

    SimpleITK writes the header to :func:`atomic_path`'s hidden temporary file and the data
    beside it under the same hidden name (so that a killed writer's leftovers are collected by
    the next write).  The data file is checked and synced, renamed to its unique visible name,
    the temporary header is pointed at it, and ``atomic_path`` renames the header into place.
    """
    name = display_name(p)
    field = _DETACHED_FIELD[ext]
    old = _old_data_file(p, field)
    unique: Path | None = None
    try:
        with atomic_path(p, suffix=ext) as tmp:
            tmp_stem = tmp.name[: -len(ext)]
            _sitk_write(image, tmp, fmt, compress, name)
            data = [
                f
                for f in tmp.parent.iterdir()
                if f.name.startswith(tmp_stem + ".") and f.name != tmp.name
            ]
            if len(data) != 1:
                raise InputError(f"{name}: SimpleITK wrote {len(data)} data files; expected one")
            unique = p.parent / (
                f"{p.name[: -len(ext)]}.{secrets.token_hex(4)}{data[0].name[len(tmp_stem) :]}"
            )
            try:
                _verify_written(tmp, fmt, tmp.parent, nbytes)
                with open(data[0], "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(data[0], unique)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    data[0].unlink()
                raise
            text = tmp.read_text(encoding="latin-1")
            sep = ": " if field == "data file" else " = "
            lines = [
                f"{field}{sep}{unique.name}" if ln.split(sep.strip())[0].strip() == field else ln
                for ln in text.split("\n")
            ]
            if lines == text.split("\n"):
                raise InputError(f"{name}: SimpleITK's header has no {field!r} line")
            tmp.write_text("\n".join(lines), encoding="latin-1")
    except BaseException:
        if unique is not None:
            with contextlib.suppress(FileNotFoundError):
                unique.unlink()
        raise
    if old is not None and old != unique:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
