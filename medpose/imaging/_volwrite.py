"""Writing helpers of :func:`medpose.imaging.volume.write_volume`: checked, atomic writes."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import struct
from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError
from ..io._util import atomic_path, display_name
from ._filecheck import check_payload, itk_error, meta_payload, nrrd_payload, text_header

__all__ = ["DETACHED_FIELD", "set_vox_offset", "sitk_write", "verify_written", "write_pair"]


DETACHED_FIELD = {".mhd": "ElementDataFile", ".nhdr": "data file"}


def set_vox_offset(path: Path) -> None:
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


def verify_written(path: Path, fmt: str, root: Path, nbytes: int) -> None:
    """Check a freshly written file holds all its voxel bytes (ITK ignores short writes)."""
    if fmt == "NIfTI":
        size = path.stat().st_size
        if size < 352 + nbytes:
            raise OSError(
                errno.ENOSPC, f"short write: {size} of {352 + nbytes} bytes (disk full?)", path.name
            )
        return
    payload = nrrd_payload(path, root) if fmt == "NRRD" else meta_payload(path, root)
    try:
        check_payload(path, payload)
    except InputError as exc:
        raise OSError(errno.ENOSPC, f"short write ({exc}); disk full?", path.name) from None


def _old_data_file(header: Path, field: str) -> Path | None:
    """The data file an existing detached header in this folder points to, if any."""
    try:
        lines, _ = text_header(header, "NRRD" if field == "data file" else "MetaImage")
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


def sitk_write(image: sitk.Image, target: Path, fmt: str, compress: bool, name: str) -> None:
    try:
        sitk.WriteImage(image, str(target), useCompression=compress)
    except RuntimeError as exc:
        raise InputError(f"{name}: could not write {fmt} image: {itk_error(exc, target)}") from None


def write_pair(image: sitk.Image, p: Path, ext: str, fmt: str, compress: bool, nbytes: int) -> None:
    """Detached header + data: new data under a unique name, then the header, then cleanup.

    SimpleITK writes the header to :func:`atomic_path`'s hidden temporary file and the data
    beside it under the same hidden name (so that a killed writer's leftovers are collected by
    the next write).  The data file is checked and synced, renamed to its unique visible name,
    the temporary header is pointed at it, and ``atomic_path`` renames the header into place.
    """
    name = display_name(p)
    field = DETACHED_FIELD[ext]
    old = _old_data_file(p, field)
    unique: Path | None = None
    try:
        with atomic_path(p, suffix=ext) as tmp:
            tmp_stem = tmp.name[: -len(ext)]
            sitk_write(image, tmp, fmt, compress, name)
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
                verify_written(tmp, fmt, tmp.parent, nbytes)
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
