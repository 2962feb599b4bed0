"""Checks of volume files made in Python before ITK reads them.

ITK trusts a file's header: it zero-fills a truncated NIfTI, replaces unusable NIfTI geometry
by spacing 1 and identity, allocates whatever size a damaged NRRD or MetaImage header states
(MetaIO even aborts the process on some), and reads DICOM slices with one spacing whatever
their positions.  These functions refuse such files with an :class:`InputError` naming the
file, the field, what was found and what was expected.
"""

from __future__ import annotations

import gzip
import io
import math
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
from ..io._util import display_name, require_text_path

__all__ = [
    "Payload",
    "check_payload",
    "check_slices",
    "inside",
    "itk_error",
    "meta_payload",
    "nifti_header",
    "nrrd_payload",
    "text_header",
]


def itk_error(exc: Exception, path: Path) -> str:
    """ITK's reason, last line only, with the full path replaced by the display name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    for text in (str(path.resolve()), str(path)):
        reason = reason.replace(text, display_name(path))
    return reason


def _dicom_vector(reader: sitk.ImageFileReader, tag: str, n: int) -> np.ndarray | None:
    if not reader.HasMetaDataKey(tag):
        return None
    try:
        v = np.array([float(x) for x in reader.GetMetaData(tag).split("\\")], dtype=float)
    except ValueError:
        return None
    return v if v.shape == (n,) and np.all(np.isfinite(v)) else None


def check_slices(files: list[str], name: str) -> None:
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
class Payload:
    """Where a volume file's voxel bytes are and how many its header promises."""

    file: Path  # the file holding the voxels
    offset: int | None  # first voxel byte in ``file``; None = at the end of the file
    nbytes: int  # voxel bytes the header promises
    compression: str  # "raw", "zlib" (gzip or zlib stream), "bzip2" or "text"
    field: str  # header field naming ``file`` (for messages)


def inside(path: Path, root: Path) -> bool:
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
    target = require_text_path(value, f"{name}: {field}")
    target = target if target.is_absolute() else header.parent / target
    if not inside(target, root):
        raise InputError(
            f"{name}: {field} names a data file outside the allowed root folder; expected a "
            "file inside the folder of the header (or the root= folder given to read_volume)"
        )
    if not target.is_file():
        raise InputError(
            f"{name}: {field} names {target.name!r}, which is not a file; expected the data file"
        )
    return target


def text_header(path: Path, what: str) -> tuple[list[str], int]:
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


def nrrd_payload(path: Path, root: Path) -> Payload:
    name = display_name(path)
    lines, end = text_header(path, "NRRD")
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
    return Payload(
        data, None if skip < 0 else offset + skip, math.prod(sizes) * itemsize, kind, field
    )


def meta_payload(path: Path, root: Path) -> Payload:
    name = display_name(path)
    lines, end = text_header(path, "MetaImage")
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
    return Payload(
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


def check_payload(header: Path, payload: Payload) -> None:
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


def nifti_header(path: Path) -> Any:
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
