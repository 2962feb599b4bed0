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
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import MAX_RATE_HZ, KeypointSequence
from ..errors import InputError
from ._text import canonical_names, unit_scale
from ._util import atomic_path, display_name, require_file, require_text_path

__all__ = ["read_c3d", "check_c3d", "write_c3d", "write_c3d_points", "C3D_READ_TIMEOUT_S"]


def _ezc3d() -> Any:
    try:
        import ezc3d
    except ImportError:
        raise ImportError(
            "reading/writing C3D needs the optional dependency ezc3d: pip install 'medpose[c3d]'"
        ) from None
    return ezc3d


# ezc3d reads in a child interpreter (like the writer below): even after check_c3d a damaged
# file could still make ezc3d crash or loop, and that must not take the caller's process with it.
_READER = """
import io, sys, numpy as np, ezc3d
c = ezc3d.c3d(sys.argv[1], extract_forceplat_data=False)
point = c["parameters"].get("POINT", {})
def value(name):
    return list(point[name]["value"]) if name in point else None
labels = value("LABELS")
i = 2
while labels is not None and "LABELS%d" % i in point:
    labels += list(point["LABELS%d" % i]["value"])
    i += 1
res = c["data"].get("meta_points", {}).get("residuals")
out = io.BytesIO()
np.savez(
    out,
    points=np.asarray(c["data"]["points"], dtype=float),
    residuals=np.zeros(0) if res is None else np.asarray(res, dtype=float),
    labels=np.array([str(s).strip() for s in (labels or [])], dtype=str),
    has_labels=labels is not None,
    rate=np.array([float(r) for r in (value("RATE") or [])]),
    has_rate=value("RATE") is not None,
    units=np.array([str(u).strip() for u in (value("UNITS") or [])], dtype=str),
    first_frame=int(c["header"]["points"].get("first_frame", 0)),
)
sys.stdout.buffer.write(out.getvalue())
"""

#: Seconds a child reader may take: this plus 1 s per MB of file.
C3D_READ_TIMEOUT_S = 20.0


def _read_in_child(p: Path, src: str) -> dict[str, np.ndarray]:
    """Run ezc3d on ``p`` in a child interpreter with a timeout; its arrays and parameters."""
    timeout = C3D_READ_TIMEOUT_S + p.stat().st_size / 1e6
    try:
        run = subprocess.run(
            [sys.executable, "-c", _READER, str(p)], capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{src}: ezc3d did not finish reading the file within {timeout:.0f} s; "
            "the file is damaged or not a C3D file"
        ) from None
    if run.returncode < 0:
        raise InputError(
            f"{src}: ezc3d crashed reading the file (signal {-run.returncode}); the file is "
            "damaged (its header and parameter section passed medpose's checks)"
        )
    if run.returncode != 0 or not run.stdout:
        lines = [
            ln.strip() for ln in run.stderr.decode(errors="replace").splitlines() if ln.strip()
        ]
        reason = lines[-1] if lines else "no output"
        for text in (str(p.resolve()), str(p)):
            reason = reason.replace(text, src)
        raise InputError(f"{src}: not a readable C3D file (ezc3d: {reason})")
    with np.load(io.BytesIO(run.stdout), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_c3d(
    path: str | os.PathLike, *, rename: bool = True, frame: str = "camera", units: str | None = None
) -> KeypointSequence:
    """Read the 3D points of a C3D file.

    The header and parameter section are checked first (:func:`check_c3d`); ezc3d then reads
    the file in a child interpreter with a timeout (:data:`C3D_READ_TIMEOUT_S` plus 1 s per
    MB), so a damaged file gives an :class:`InputError`, never a crash or a hang.

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
        Missing file, a folder, a damaged file (see :func:`check_c3d`), a file ezc3d cannot
        read, crashes on or does not finish within the timeout, missing POINT parameters,
        unknown units, label count not matching the points.

    References
    ----------
    C3D.org, "The C3D File Format User Guide" (Motion Lab Systems, 2008), chapters on the
    POINT group and 3D point data.
    """
    _ezc3d()  # a clear ImportError naming the extra when ezc3d is absent
    p = require_file(require_text_path(path, "C3D file"), "C3D file")
    src = display_name(p)
    check_c3d(p)
    d = _read_in_child(p, src)
    if not bool(d["has_labels"]):
        raise InputError(f"{src}: parameter POINT:LABELS missing; expected a C3D with 3D points")
    if not bool(d["has_rate"]):
        raise InputError(f"{src}: parameter POINT:RATE missing; expected a C3D with 3D points")
    labels = [str(s) for s in d["labels"]]
    rate_v = [float(r) for r in d["rate"]]
    rate = rate_v[0] if rate_v else float("nan")
    if not np.isfinite(rate) or not 0 < rate <= MAX_RATE_HZ:
        raise InputError(
            f"{src}: POINT:RATE is {rate_v!r}; expected a motion-capture frame rate in Hz in "
            f"(0, {MAX_RATE_HZ:g}]"
        )
    units_v = [str(u) for u in d["units"]]
    if units_v and units_v[0]:
        scale = unit_scale(units_v[0], src, "POINT:UNITS")
    elif units is not None:
        scale = unit_scale(units, src, "units")
    else:
        raise InputError(
            f"{src}: POINT:UNITS is missing or empty; pass units='mm' (or 'cm', 'm') "
            "if you know the file's units"
        )
    pts = d["points"]  # (4, K, T)
    k = pts.shape[1]
    if len(labels) < k:
        raise InputError(f"{src}: POINT:LABELS has {len(labels)} labels for {k} points")
    labels = labels[:k]
    for i, label in enumerate(labels):  # bytes ezc3d could not decode arrive as lone surrogates
        if not label.isprintable():  # control characters; lone surrogates are not printable
            raise InputError(
                f"{src}: POINT:LABELS: label {i + 1} of {k} is not valid text (found "
                f"{label!a}); expected printable marker names (the parameter section is "
                "damaged?)"
            )
    pos = np.transpose(pts[:3], (2, 1, 0)) * scale  # (T, K, 3)
    res = d["residuals"]
    if res.size:
        bad = res[0].T < 0  # (T, K)
        pos[bad] = np.nan
    first = int(d["first_frame"])
    names = canonical_names(labels, src, rename)
    return KeypointSequence(pos, names, rate, frame=frame, start=first / rate)


# ---------------------------------------------------------------------- validation
# The C3D layout (C3D.org, "The C3D File Format User Guide", Motion Lab Systems 2008, chapters
# "The C3D file header", "The parameter section" and "3D point data"): the file is a sequence of
# 512-byte blocks.  Block 1 is the header: byte 1 = number of the first parameter block, byte 2 =
# 0x50; then 16-bit words: 2 = points per frame, 3 = analog samples per frame, 4 = first frame,
# 5 = last frame, 7-8 = scale factor (float, negative = float data), 9 = first data block,
# 10 = analog samples per channel per frame, 11-12 = frame rate (float).  The parameter section
# starts with 4 bytes (byte 3 = number of parameter blocks, byte 4 = processor type 84 Intel,
# 85 DEC, 86 MIPS, which fixes the byte order), then groups and parameters, each: name length
# (signed byte, 0 ends the section), group id (signed byte, < 0 a group, > 0 a parameter of
# that group), the name, a 16-bit offset to the next entry counted from the offset itself
# (0 = last); a parameter then has its type (-1 char, 1 byte, 2 int16, 4 float), number of
# dimensions, the dimensions, the data and a description; a group has only the description.
# ezc3d trusts all of this: a single wrong byte can make it read out of bounds and crash the
# process, so medpose checks it in Python first and runs ezc3d in a child process.
C3D_BLOCK = 512
_PROCESSORS = {84: "Intel", 85: "DEC", 86: "MIPS"}
_PARAM_TYPES = {-1: 1, 1: 1, 2: 2, 4: 4}
#: Types of the parameters ezc3d relies on (C3D User Guide, POINT, ANALOG, FORCE_PLATFORM
#: groups; ROTATION is ezc3d's own): ezc3d crashes on, e.g., a POINT:USED stored as characters.
_PARAM_KINDS: dict[tuple[str, str], str] = {
    ("POINT", "USED"): "int",
    ("POINT", "DATA_START"): "int",
    ("POINT", "FRAMES"): "number",
    ("POINT", "SCALE"): "float",
    ("POINT", "RATE"): "float",
    ("POINT", "LABELS"): "char",
    ("POINT", "DESCRIPTIONS"): "char",
    ("POINT", "UNITS"): "char",
    ("ANALOG", "USED"): "int",
    ("ANALOG", "RATE"): "float",
    ("ANALOG", "GEN_SCALE"): "float",
    ("ANALOG", "LABELS"): "char",
    ("ANALOG", "DESCRIPTIONS"): "char",
    ("ANALOG", "UNITS"): "char",
    ("ANALOG", "FORMAT"): "char",
    ("FORCE_PLATFORM", "USED"): "int",
    ("ROTATION", "USED"): "int",
    ("ROTATION", "DATA_START"): "int",
    ("ROTATION", "RATE"): "float",
}


def _c3d_float(b: bytes, processor: int) -> float:
    """A 32-bit float in the processor's format (DEC: word-swapped, exponent bias 128)."""
    if processor == 86:
        return float(struct.unpack(">f", b)[0])
    if processor == 85:
        return float(struct.unpack("<f", b[2:4] + b[0:2])[0]) / 4.0
    return float(struct.unpack("<f", b)[0])


def _parse_parameters(
    sec: bytes, processor: int, src: str
) -> dict[tuple[str, str], tuple[int, tuple[int, ...], bytes]]:
    """Walk the parameter section; every length and offset is checked against its bounds."""
    endian = ">" if processor == 86 else "<"
    groups: dict[int, str] = {}
    params: list[tuple[int, str, int, tuple[int, ...], bytes]] = []
    pos = 4
    n_entries = 0
    while True:
        if pos + 2 > len(sec):
            raise InputError(
                f"{src}: parameter section runs past its {len(sec) // C3D_BLOCK} blocks at byte "
                f"{pos} without an end marker; the file is damaged"
            )
        nlen, gid = struct.unpack("bb", sec[pos : pos + 2])
        if nlen == 0 or gid == 0:  # end of the parameter section
            break
        n_entries += 1
        name_end = pos + 2 + abs(nlen)
        if name_end + 2 > len(sec):
            raise InputError(
                f"{src}: parameter entry {n_entries} at byte {pos} runs past the parameter section"
            )
        name = sec[pos + 2 : name_end].decode("ascii", "replace").strip().upper()
        (offset,) = struct.unpack(endian + "h", sec[name_end : name_end + 2])
        body = name_end + 2
        if gid < 0:  # a group: description only
            dlen = sec[body] if body < len(sec) else 0
            end = body + 1 + dlen
            groups[-gid] = name
        else:
            if body + 2 > len(sec):
                raise InputError(f"{src}: parameter {name!r} runs past the parameter section")
            ptype, ndims = struct.unpack("bB", sec[body : body + 2])
            if ptype not in _PARAM_TYPES:
                raise InputError(
                    f"{src}: parameter {name!r} has data type {ptype}; expected -1 (char), "
                    "1 (byte), 2 (int16) or 4 (float)"
                )
            if ndims > 7:
                raise InputError(
                    f"{src}: parameter {name!r} has {ndims} dimensions; the C3D format allows at most 7"
                )
            dims = tuple(sec[body + 2 : body + 2 + ndims])
            if len(dims) != ndims:
                raise InputError(f"{src}: parameter {name!r} runs past the parameter section")
            data_start = body + 2 + ndims
            size = _PARAM_TYPES[ptype] * int(np.prod(dims, dtype=np.int64))
            data = sec[data_start : data_start + size]
            dpos = data_start + size
            if len(data) != size or dpos >= len(sec):
                raise InputError(
                    f"{src}: parameter {name!r} with dimensions {list(dims)} needs {size} bytes, "
                    "past the end of the parameter section"
                )
            end = dpos + 1 + sec[dpos]
            params.append((gid, name, ptype, dims, data))
        if end > len(sec):
            raise InputError(f"{src}: entry {name!r} runs past the end of the parameter section")
        if offset == 0:  # the last entry
            break
        nxt = name_end + offset
        if offset < 0 or nxt < end or nxt + 2 > len(sec):
            raise InputError(
                f"{src}: entry {name!r} points to the next entry at byte {nxt} (offset {offset}); "
                f"expected a position after its own data (byte >= {end}) inside the parameter section"
            )
        pos = nxt
    out: dict[tuple[str, str], tuple[int, tuple[int, ...], bytes]] = {}
    for gid, name, ptype, dims, data in params:
        out[(groups.get(gid, f"#{gid}"), name)] = (ptype, dims, data)
    return out


def _param_number(
    params: dict[tuple[str, str], tuple[int, tuple[int, ...], bytes]],
    key: tuple[str, str],
    processor: int,
) -> float | None:
    """First value of a numeric parameter (int16 read as unsigned, as C3D counts are), or None."""
    if key not in params:
        return None
    ptype, _, data = params[key]
    if ptype == 2 and len(data) >= 2:
        return float(struct.unpack((">" if processor == 86 else "<") + "H", data[:2])[0])
    if ptype == 4 and len(data) >= 4:
        return _c3d_float(data[:4], processor)
    if ptype == 1 and data:
        return float(data[0])
    return None


def check_c3d(path: str | os.PathLike) -> dict[str, Any]:
    """Check a C3D file's header and parameter section against each other and the file size.

    Reads the header block and the parameter blocks only, in Python, so that a damaged file
    is refused with a message before ezc3d (which trusts every byte) opens it.

    Parameters
    ----------
    path : path-like
        A C3D file.

    Returns
    -------
    dict
        ``processor`` (``"Intel"``, ``"DEC"`` or ``"MIPS"``), ``points``, ``analog`` (samples
        per frame), ``first_frame``, ``last_frame``, ``frames``, ``float`` (storage),
        ``data_start`` (block), ``bytes_needed``, ``file_size``.

    Raises
    ------
    InputError
        Not a regular file, shorter than its header, wrong key byte, parameter or data block
        numbers out of range, unknown processor type, a parameter section whose lengths or
        offsets leave it, header and POINT/ANALOG parameters that disagree, a frame range that
        goes backwards, or a file shorter than the data its header promises.

    References
    ----------
    C3D.org, "The C3D File Format User Guide" (Motion Lab Systems, 2008): "The C3D file
    header", "The parameter section", "3D point data", "Analog data".
    """
    p = Path(path)
    src = display_name(p)
    if not p.is_file():
        raise InputError(f"{src}: not a regular file; expected a C3D file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        header = fh.read(C3D_BLOCK)
        if len(header) < C3D_BLOCK:
            raise InputError(
                f"{src}: {len(header)} bytes; a C3D file starts with a {C3D_BLOCK}-byte header block"
            )
        pblock, key = header[0], header[1]
        if key != 0x50:
            raise InputError(
                f"{src}: header byte 2 is 0x{key:02x}; a C3D file has the key 0x50 there"
            )
        if pblock < 2 or (pblock - 1) * C3D_BLOCK + 4 > size:
            raise InputError(
                f"{src}: header word 1 names parameter block {pblock}; expected a block >= 2 "
                f"inside the file ({size} bytes = {size / C3D_BLOCK:.1f} blocks)"
            )
        fh.seek((pblock - 1) * C3D_BLOCK)
        phead = fh.read(4)
        nblocks, processor = phead[2], phead[3]
        if processor not in _PROCESSORS:
            raise InputError(
                f"{src}: parameter section processor type {processor}; expected 84 (Intel), "
                "85 (DEC) or 86 (MIPS)"
            )
        if nblocks < 1:
            raise InputError(f"{src}: parameter section declares {nblocks} blocks; expected >= 1")
        fh.seek((pblock - 1) * C3D_BLOCK)
        sec = fh.read(nblocks * C3D_BLOCK)
    if len(sec) < nblocks * C3D_BLOCK:
        raise InputError(
            f"{src}: the parameter section declares {nblocks} blocks from block {pblock}; the "
            f"file ends after {len(sec)} of its {nblocks * C3D_BLOCK} bytes"
        )
    endian = ">" if processor == 86 else "<"
    n_points, n_analog, first, last = struct.unpack(endian + "4H", header[2:10])
    scale = _c3d_float(header[12:16], processor)
    (data_start,) = struct.unpack(endian + "H", header[16:18])
    (analog_per_frame,) = struct.unpack(endian + "H", header[18:20])
    if data_start < pblock + nblocks:
        raise InputError(
            f"{src}: header word 9 puts the data at block {data_start}; expected a block after "
            f"the parameter section (blocks {pblock}..{pblock + nblocks - 1})"
        )
    if not np.isfinite(scale) or scale == 0:
        raise InputError(
            f"{src}: header scale factor is {scale!r}; expected a non-zero finite number"
        )
    params = _parse_parameters(sec, processor, src)
    for pkey, kind in _PARAM_KINDS.items():
        if pkey not in params:
            continue
        ptype, dims, _ = params[pkey]
        allowed = {"int": (1, 2), "float": (4,), "number": (1, 2, 4), "char": (-1,)}[kind]
        if ptype not in allowed or (kind == "char" and not dims):
            raise InputError(
                f"{src}: parameter {pkey[0]}:{pkey[1]} has data type {ptype} and dimensions "
                f"{list(dims)}; the C3D format stores it as {kind} "
                f"({' or '.join(map(str, allowed))}{', at least one dimension' if kind == 'char' else ''})"
            )
    used = _param_number(params, ("POINT", "USED"), processor)
    if used is not None and int(used) != n_points:
        raise InputError(
            f"{src}: header word 2 says {n_points} points per frame, POINT:USED says {int(used)}"
        )
    pdata = _param_number(params, ("POINT", "DATA_START"), processor)
    if pdata is not None and int(pdata) != data_start:
        raise InputError(
            f"{src}: header word 9 puts the data at block {data_start}, POINT:DATA_START at "
            f"block {int(pdata)}"
        )
    a_used = _param_number(params, ("ANALOG", "USED"), processor)
    if a_used is not None and analog_per_frame and int(a_used) * analog_per_frame != n_analog:
        raise InputError(
            f"{src}: header word 3 says {n_analog} analog samples per frame; ANALOG:USED "
            f"({int(a_used)}) x header word 10 ({analog_per_frame}) is "
            f"{int(a_used) * analog_per_frame}"
        )
    frames = last - first + 1
    p_frames = _param_number(params, ("POINT", "FRAMES"), processor)
    if last == 0xFFFF and p_frames is not None and p_frames > frames:  # > 65535 frames
        frames = int(p_frames)
    if frames < 0:
        raise InputError(
            f"{src}: header frame range is {first}..{last}; expected 1 <= first frame <= "
            "last frame + 1"
        )
    word = 4 if scale < 0 else 2
    needed = (data_start - 1) * C3D_BLOCK + frames * (4 * n_points + n_analog) * word
    if size < needed:
        raise InputError(
            f"{src}: file is {size} bytes; its header promises {frames} frames of {n_points} "
            f"points and {n_analog} analog samples ({'float32' if word == 4 else 'int16'}) from "
            f"block {data_start}, which needs {needed} bytes: the file is truncated"
        )
    return {
        "processor": _PROCESSORS[processor],
        "points": n_points,
        "analog": n_analog,
        "first_frame": first,
        "last_frame": last,
        "frames": frames,
        "float": word == 4,
        "data_start": data_start,
        "bytes_needed": needed,
        "file_size": size,
    }


# ezc3d and SimpleITK are both SWIG modules; once SimpleITK is loaded in a process, ezc3d's
# writer fails (TypeError on Parameter.set) or crashes, while ezc3d's reader keeps working
# (ezc3d 1.7.2 with SimpleITK 2.5, seen here).  medpose loads SimpleITK for volumes, so C3D files are
# written by ezc3d in a short-lived child interpreter that imports only numpy and ezc3d.
_WRITER = """
import io, os, struct, sys, numpy as np, ezc3d
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
# ezc3d does not report a failed write (a full disk, a file size limit), and its reader accepts
# the truncated file: check the header (C3D User Guide, "The header section": byte 0 the
# parameter block, 12-15 the scale (< 0: float samples), 16-17 the first data block) and that
# the file holds every sample written (4 values per point and frame).
with open(out, "rb") as fh:
    raw = fh.read(512)
ok = len(raw) == 512
if ok:
    param_block, scale, data_block = raw[0], struct.unpack_from("<f", raw, 12)[0], struct.unpack_from("<H", raw, 16)[0]
    word = 4 if scale < 0 else 2
    need = (data_block - 1) * 512 + d["points"].shape[1] * d["points"].shape[2] * 4 * word
    ok = data_block > param_block >= 2 and os.path.getsize(out) >= need
if not ok:
    sys.exit("the file written is incomplete (disk full?)")
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
