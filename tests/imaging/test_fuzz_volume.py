"""Damaged volume and C3D files: a valid result or a MedposeError, never another exception,
a crash or a hang.

Valid files are written at test time (NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr, MetaImage
.mha/.mhd, C3D), then damaged in three ways: cut short, single bytes overwritten at seeded
random places, and header fields set to absurd values (a huge size, an unknown type, an offset
past the end).  Every read runs under SIGALRM, so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import gzip
import signal
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import MedposeError
from medpose.imaging.volume import Volume, read_volume, write_volume
from medpose.io.c3d import read_c3d, write_c3d

CASE_SECONDS = 20  # per damaged file; a C3D read starts a child interpreter


def _volume() -> Volume:
    arr = np.random.default_rng(0).normal(0, 300, (6, 5, 4)).astype(np.int16)
    return Volume(arr, [0.8, 1.2, 2.5], [-10.0, 20.0, 5.0], np.eye(3)[:, [1, 0, 2]])


class _Timeout(Exception):
    pass


def _bounded(read: Callable[[], object]) -> object:
    def stop(*_: object) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(CASE_SECONDS)
    try:
        return read()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _damage(raw: bytes, seed: int, header_end: int) -> Iterator[tuple[str, bytes]]:
    """Cut the file at several lengths and overwrite single bytes (most inside the header)."""
    for frac in (0.0, 0.1, 0.5, 0.9, 0.99):
        cut = int(len(raw) * frac)
        yield f"cut at {cut} of {len(raw)}", raw[:cut]
    yield "last byte cut", raw[:-1]
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, min(header_end, len(raw)), 14):
        for value in (0x00, 0xFF):
            yield f"byte {pos} = {value:#x}", raw[:pos] + bytes([value]) + raw[pos + 1 :]
    for pos in rng.integers(0, len(raw), 4):
        yield f"byte {pos} = 0x7f", raw[:pos] + b"\x7f" + raw[pos + 1 :]


def _check(path: Path, read: Callable[[Path], object], what: str) -> str:
    try:
        out = _bounded(lambda: read(path))
    except MedposeError:
        return "refused"
    except _Timeout:
        pytest.fail(f"{what}: no answer within {CASE_SECONDS} s")
    except Exception as exc:  # the point of the test: nothing else may escape
        pytest.fail(f"{what}: {type(exc).__name__}: {exc}")
    assert out is not None
    return "read"


def _nifti_fields(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """nifti1.h byte offsets: dim 40, datatype 70, bitpix 72, pixdim 76, vox_offset 108."""

    def put(offset: int, fmt: str, *values: float) -> bytes:
        b = bytearray(raw)
        struct.pack_into("<" + fmt, b, offset, *values)
        return bytes(b)

    yield "dim[1] = 32767", put(42, "h", 32767)
    yield "dim[0] = 9", put(40, "h", 9)
    yield "dim[0] = -1", put(40, "h", -1)
    yield "dim = 32767^3", put(42, "3h", 32767, 32767, 32767)
    yield "datatype 9999", put(70, "h", 9999)
    yield "bitpix 0", put(72, "h", 0)
    yield "vox_offset 1e9", put(108, "f", 1e9)
    yield "vox_offset -352", put(108, "f", -352.0)
    yield "pixdim[2] = inf", put(84, "f", float("inf"))
    yield "sizeof_hdr 0", put(0, "i", 0)


def _text_fields(raw: bytes, fields: dict[bytes, bytes]) -> Iterator[tuple[str, bytes]]:
    for old, new in fields.items():
        assert old in raw, old
        yield f"{old.decode()} -> {new.decode()}", raw.replace(old, new, 1)


FORMATS = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # qform/sform disagreements of damaged files
@pytest.mark.parametrize("ext", FORMATS)
def test_damaged_volume_files(tmp_path: Path, ext: str) -> None:
    good = write_volume(_volume(), tmp_path / f"good{ext}")
    data = next((p for p in tmp_path.iterdir() if p.suffix == ".raw"), None)  # .nhdr, .mhd
    header_raw = good.read_bytes()
    cases: list[tuple[str, Path, bytes]] = []
    if ext == ".nii.gz":
        inner = gzip.decompress(header_raw)
        for what, b in _damage(header_raw, 1, 40):
            cases.append((f"gzip {what}", good, b))
        for what, b in [*_damage(inner, 2, 352), *_nifti_fields(inner)]:
            cases.append((what, good, gzip.compress(b)))
    elif ext == ".nii":
        for what, b in [*_damage(header_raw, 3, 352), *_nifti_fields(header_raw)]:
            cases.append((what, good, b))
    else:
        end = (
            header_raw.find(b"\n\n")
            if ext.startswith(".n")
            else header_raw.find(b"ElementDataFile")
        )
        for what, b in _damage(header_raw, 4, max(end, 40) + 30):
            cases.append((what, good, b))
        fields = (
            {
                b"sizes: 6 5 4": b"sizes: 60000 50000 40000",
                b"type: short": b"type: quaternion",
                b"encoding: raw": b"encoding: gzip",
                b"dimension: 3": b"dimension: 9",
            }
            if ext.startswith(".n")
            else {
                b"DimSize = 6 5 4": b"DimSize = 60000 50000 40000",
                b"MET_SHORT": b"MET_BOGUS",
                b"NDims = 3": b"NDims = 93",
                b"CompressedData = False": b"CompressedData = True",
            }
        )
        for what, b in _text_fields(header_raw, fields):
            cases.append((what, good, b))
        if data is not None:  # the detached data file cut or emptied
            raw = data.read_bytes()
            cases += [("data file empty", data, b""), ("data file cut", data, raw[: len(raw) // 2])]
    outcomes = {"read": 0, "refused": 0}
    for what, target, content in cases:
        original = target.read_bytes()
        target.write_bytes(content)
        outcomes[_check(good, read_volume, f"{ext} {what}")] += 1
        target.write_bytes(original)
    assert outcomes["refused"] >= 10  # the truncations and absurd fields at least
    np.testing.assert_array_equal(read_volume(good).array, _volume().array)  # restored intact


def test_damaged_c3d_files(tmp_path: Path) -> None:
    pos = np.random.default_rng(1).normal(0, 300, (20, 3, 3))
    good = write_c3d(
        KeypointSequence(pos, ("hip_r", "knee_r", "ankle_r"), 100.0), tmp_path / "g.c3d"
    )
    raw = good.read_bytes()

    def put(offset: int, fmt: str, *values: float) -> bytes:
        b = bytearray(raw)
        struct.pack_into("<" + fmt, b, offset, *values)
        return bytes(b)

    cases = [
        (what, b)
        for what, b in _damage(raw, 5, 1024)
        if not what.startswith("byte") or int(what.split()[1]) % 3 == 0  # a few seconds in all
    ]
    cases += [
        ("points 65535", put(2, "H", 65535)),
        ("last frame 65535", put(8, "H", 65535)),
        ("data block 65535", put(16, "H", 65535)),
        ("parameter blocks 255", put(512 + 2, "B", 255)),
        ("processor MIPS", put(512 + 3, "B", 86)),
        ("first entry name length 127", put(512 + 4, "b", 127)),
    ]
    outcomes = {"read": 0, "refused": 0}
    bad = tmp_path / "bad.c3d"
    for what, content in cases:
        bad.write_bytes(content)
        outcomes[_check(bad, read_c3d, f"C3D {what}")] += 1
    assert outcomes["refused"] >= 10
