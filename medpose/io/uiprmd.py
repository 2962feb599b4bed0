"""Reader for the Kinect v2 recordings of the UI-PRMD rehabilitation data set.

UI-PRMD (University of Idaho Physical Rehabilitation Movement Data; Vakanski, Jun, Paul and
Baker 2018, "A data set of human body movements for physical rehabilitation exercises",
*Data* 3(1):2, doi:10.3390/data3010002) gives each repetition of an exercise as two files of
comma-separated numbers, one frame per line, 22 joints x 3 columns (66 cells):

* ``…/positions/mMM_sSS_eEE_positions[_inc].txt[.gz]``: the first joint (waist) is an absolute
  position; every other joint is an **offset from its parent joint, expressed in the parent's
  rotated frame** (a BVH-style hierarchy: in the unrotated pose the leg bones point along -y,
  the toes along +z, the arms along +-x);
* ``…/angles/mMM_sSS_eEE_angles[_inc].txt[.gz]``: for every joint, the rotation of its frame
  relative to its parent's, as three Euler angles in degrees, columns about x, y, z.

Units are centimetres; :func:`read_uiprmd` returns millimetres.

Reconstruction (forward kinematics)
-----------------------------------
With ``E_j = Rz(z_j) @ Rx(x_j) @ Ry(y_j)`` (rotations applied about the fixed axes in the
order Y, X, Z, i.e. the intrinsic Z-X-Y sequence of BVH files), the global orientation of a
joint accumulates down the chain, ``G_j = G_parent(j) @ E_j`` with ``G_waist = E_waist``, and
``p_j = p_parent(j) + G_parent(j) @ offset_j``.  The arms hang from the chest and inherit the
whole trunk chain (waist, spine, chest), as in any BVH hierarchy.

Joint order and parents (0-based): 0 waist; 1 spine (0); 2 chest (1); 3 neck (2); 4 head (3);
5 head tip (4); 6 left collar (2); 7 left upper arm (6); 8 left forearm (7); 9 left hand (8);
10-13 the same on the right (10 hangs from 2); 14 left upper leg (0); 15 left lower leg (14);
16 left foot (15); 17 left leg toes (16); 18-21 the same on the right (18 hangs from 0).
This is the order of the data set's documentation and of the authors' MATLAB visualisation
script (``Animation.m``), whose connection table ``J`` gives the same parents.

Evidence for the convention, from the 400 files of m01 (deep squat) and m07 (standing shoulder
abduction) in the project's copy, 200 correct and 200 incorrect repetitions (the Euler orders
and compositions were compared on every 8th file, 50 files):

* Euler order.  Feet stay planted during both exercises, so the ankle height must hardly
  change over a repetition.  The largest per-file standard deviation of the two ankle
  heights, averaged over 50 files, is 1.8 cm for ``Rz Rx Ry`` (used here), against 10.8 cm
  for ``Rz Ry Rx`` (the product in the authors' visualisation script), 15.3 cm for
  ``Ry Rx Rz`` and 10.6-15.8 cm for the three other orders.  Only ``Rz Rx Ry`` also puts an
  ankle or a toe at the lowest point in every sampled frame and keeps the two ankles at one
  height (1.2 cm mean difference, against 3.1-4.2 cm).
* Composition.  With the reverse product ``G_j = E_j @ G_parent`` the same ankle measure is
  2.25 cm (1.75 cm with ``G_parent @ E_j``) and the distance between the ankles across the
  body swings with an SD of 8.9 cm (1.6 cm).
* Arms.  The authors' script restarts the arm chains from the chest's own angles, dropping
  the waist and spine rotations.  In the deep squat the subjects hold their arms overhead
  while the trunk leans forward by about 30 degrees; with the restarted chains the arms stay
  vertical and the sagittal shoulder flexion (upper arm against the waist-to-chest line)
  reaches a median per-file 99th percentile of 225 degrees, far beyond the anatomical
  180; with the whole chain inherited (used here) it is 194 degrees, within Kinect's error of
  arms in line with the trunk.  In shoulder abduction (trunk upright) the two agree.
* Feet.  The ankle-to-toe segment points forward (median 1 and -5 degrees from +z, left and
  right, in the first frame) and 17-19 degrees below the horizontal, the Kinect *Foot* joint
  lying on the forefoot below the ankle.
* Bone lengths do **not** test the convention: a rotation keeps lengths, so every bone of the
  reconstruction has the length of its offset in that frame, whatever the convention.  The
  offsets are the Kinect's per-frame estimates, not a fixed skeleton: across the 400 files the
  median per-file range (max - min) of a limb is 4-7 cm (thigh 4.8, shank 4.0, upper arm 5.7,
  forearm 6.5) and left and right mean lengths agree within 0.8-1.4 cm (median; at most
  4.7 cm).  In a few incorrect deep squats (legs occluded by the trunk) the tracked leg folds
  through the floor for some frames; that is the recording, not the reader.

Frame (``"kinect"``).  A right-handed frame in centimetres in the file: x to the subject's left
when the subject faces the sensor (screen right), y up, z from the subject towards the sensor
(the waist's median depth per file lies between z = -2.8 and -2.2 m).  The floor lies near
y = 0: the median ankle height per file is 7-17 cm.  These are the axes of the Kinect SDK
camera frame turned 180 degrees about the vertical; the data set does not document the origin.

Names.  Joints with a medpose counterpart take its name (:mod:`medpose.layouts`,
``resources/keypoints.yaml``): the chest, where the collars and neck meet between the
shoulders, is ``neck`` (Kinect *SpineShoulder*); the upper arm, forearm and hand joints are
``shoulder``, ``elbow`` and ``wrist`` (the "hand" sits one forearm length beyond the elbow,
24 cm in the median file: the Kinect *Wrist*); the upper leg, lower leg and foot joints are
``hip``, ``knee`` and ``ankle``; the spine joint (mid-trunk) is ``spine``.  The others keep
the data set's joints: ``waist`` (Kinect *SpineBase*, 1.4-4 cm behind the line of the hips,
so not ``pelvis``), ``kinect_neck``, ``kinect_head``, ``kinect_head_tip``, ``collar_l/r`` and
``toes_l/r``.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..data import KeypointSequence
from ..errors import InputError
from ._text import MAX_TABLE_BYTES, check_file, text_lines
from ._util import display_name

__all__ = [
    "UIPRMD_JOINTS",
    "UIPRMD_NAMES",
    "UIPRMD_MEDPOSE_NAMES",
    "UIPRMD_PARENTS",
    "KINECT_FRAME",
    "read_uiprmd",
    "uiprmd_forward_kinematics",
    "is_uiprmd_path",
    "angles_path",
]

#: The data set's joint names, in file order.
UIPRMD_JOINTS: tuple[str, ...] = (
    "waist", "spine", "chest", "neck", "head", "head tip",
    "left collar", "left upper arm", "left forearm", "left hand",
    "right collar", "right upper arm", "right forearm", "right hand",
    "left upper leg", "left lower leg", "left foot", "left leg toes",
    "right upper leg", "right lower leg", "right foot", "right leg toes",
)  # fmt: skip

#: The names :func:`read_uiprmd` gives them (medpose names where one corresponds).
UIPRMD_NAMES: tuple[str, ...] = (
    "waist", "spine", "neck", "kinect_neck", "kinect_head", "kinect_head_tip",
    "collar_l", "shoulder_l", "elbow_l", "wrist_l",
    "collar_r", "shoulder_r", "elbow_r", "wrist_r",
    "hip_l", "knee_l", "ankle_l", "toes_l",
    "hip_r", "knee_r", "ankle_r", "toes_r",
)  # fmt: skip

#: The names among :data:`UIPRMD_NAMES` that are medpose keypoints (what :func:`medpose.fit`
#: uses).
UIPRMD_MEDPOSE_NAMES: tuple[str, ...] = tuple(
    n for n in UIPRMD_NAMES if n not in {"waist", "kinect_neck", "kinect_head", "kinect_head_tip",
                                          "collar_l", "collar_r", "toes_l", "toes_r"}
)  # fmt: skip

#: Parent of each joint (-1 for the waist, the root).
UIPRMD_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 2, 6, 7, 8, 2, 10, 11, 12, 0, 14, 15, 16, 0, 18, 19, 20,
)  # fmt: skip

#: Frame name of the sequences read (see the module docstring for its axes).
KINECT_FRAME = "kinect"

_N = len(UIPRMD_JOINTS)
_NCOL = 3 * _N
_CM_TO_MM = 10.0
_NAME = re.compile(r"^(?P<stem>.+)_(?P<kind>positions|angles)(?P<inc>_inc)?\.txt(?:\.gz)?$", re.I)


def is_uiprmd_path(path: str | os.PathLike) -> bool:
    """Whether the file name is a UI-PRMD positions file (``*_positions[_inc].txt[.gz]``)."""
    m = _NAME.match(Path(path).name)
    return m is not None and m.group("kind").lower() == "positions"


def angles_path(path: str | os.PathLike) -> Path:
    """The angles file that belongs to a positions file.

    ``…/positions/m01_s01_e01_positions.txt.gz`` -> ``…/angles/m01_s01_e01_angles.txt.gz``
    (the folder is renamed when it is called ``positions``, in any letter case, as in the
    data set's ``Positions``/``Angles`` folders).

    Raises
    ------
    InputError
        If the name is not that of a positions file.
    """
    p = Path(path)
    m = _NAME.match(p.name)
    if not m or m.group("kind").lower() != "positions":
        raise InputError(
            f"{display_name(p)}: not a UI-PRMD positions file name; expected "
            "'<trial>_positions.txt', '<trial>_positions_inc.txt' or the same with '.gz'"
        )
    kind = m.group("kind")
    new_kind = "ANGLES" if kind.isupper() else ("Angles" if kind[0].isupper() else "angles")
    name = p.name[: m.start("kind")] + new_kind + p.name[m.end("kind") :]
    folder = p.parent
    if folder.name.lower() == "positions":
        fn = folder.name
        new = "ANGLES" if fn.isupper() else ("Angles" if fn[0].isupper() else "angles")
        folder = folder.with_name(new)
    return folder / name


def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz`` (at most MAX_TABLE_BYTES)."""
    src = display_name(path)
    p = check_file(path, what)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{src}: cannot be read ({type(e).__name__}); expected a {what}") from None
    if not p.name.lower().endswith(".gz"):
        return raw
    try:
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = dec.decompress(raw, MAX_TABLE_BYTES + 1)
        if len(data) > MAX_TABLE_BYTES:
            raise InputError(
                f"{src}: decompresses to more than {MAX_TABLE_BYTES} bytes; expected a {what}"
            )
        if not dec.eof:
            raise InputError(f"{src}: gzip data ends early (truncated file?); expected a {what}")
        if dec.unused_data.strip(b"\0"):
            # a second gzip member: decompress the whole stream the standard way
            data = gzip.decompress(raw)
            if len(data) > MAX_TABLE_BYTES:
                raise InputError(
                    f"{src}: decompresses to more than {MAX_TABLE_BYTES} bytes; expected a {what}"
                )
    except (zlib.error, OSError, EOFError) as e:
        raise InputError(
            f"{src}: damaged gzip data ({e}); expected a gzip-compressed {what}"
        ) from None
    return data


def _read_table(path: Path, what: str) -> np.ndarray:
    """A UI-PRMD table as a (T, 22, 3) float array, every cell checked to be a finite number."""
    src = display_name(path)
    data = _read_bytes(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(
            f"{src}: line {line}: byte 0x{data[e.start]:02x} is not text; expected a {what} of "
            "comma-separated numbers"
        ) from None
    lines, _ = text_lines(text)
    rows: list[list[str]] = []
    numbers: list[int] = []
    for i, ln in enumerate(lines, start=1):
        s = ln.strip()
        if not s:
            continue
        cells = s.rstrip(",").split(",")
        if len(cells) != _NCOL:
            raise InputError(
                f"{src}: line {i}: found {len(cells)} values; expected {_NCOL} "
                f"({_N} Kinect joints x 3)"
            )
        rows.append(cells)
        numbers.append(i)
    if not rows:
        raise InputError(f"{src}: no frames; expected one line of {_NCOL} values per frame")
    try:
        arr = np.array(rows, dtype=float)
    except ValueError:
        arr = None
    if arr is None or not np.isfinite(arr).all():
        for r, cells in enumerate(rows):
            for c, cell in enumerate(cells):
                try:
                    v = float(cell)
                except ValueError:
                    v = float("nan")
                if not np.isfinite(v):
                    joint = UIPRMD_JOINTS[c // 3]
                    raise InputError(
                        f"{src}: line {numbers[r]}, column {c + 1} ({joint} {'xyz'[c % 3]}): "
                        f"found {cell.strip()!r}; expected a finite number"
                    )
    if arr is None:  # pragma: no cover - every cell parsed on its own above
        raise InputError(f"{src}: not a table of numbers; expected {_NCOL} numbers per line")
    return arr.reshape(len(rows), _N, 3)


def uiprmd_forward_kinematics(offsets: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Absolute joint positions from UI-PRMD offsets and Euler angles.

    Parameters
    ----------
    offsets : array, shape (T, 22, 3)
        The positions file: the waist's absolute position, then each joint's offset from its
        parent in the parent's frame (any length unit; the result has the same unit).
    angles : array, shape (T, 22, 3)
        The angles file: each joint's rotation relative to its parent, degrees about x, y, z.

    Returns
    -------
    array, shape (T, 22, 3)
        Absolute positions: ``p_j = p_parent + G_parent @ offset_j`` with
        ``G_j = G_parent @ Rz(z_j) Rx(x_j) Ry(y_j)`` (see the module docstring for the
        evidence behind this convention).

    Notes
    -----
    The loop runs over the 21 bones, every frame at once; the rotations are scipy's intrinsic
    ``"ZXY"`` Euler sequence.
    """
    off = np.asarray(offsets, dtype=float)
    ang = np.asarray(angles, dtype=float)
    t = off.shape[0]
    local = Rotation.from_euler("ZXY", ang[..., [2, 0, 1]].reshape(-1, 3), degrees=True)
    e = local.as_matrix().reshape(t, _N, 3, 3)
    pos = np.empty_like(off)
    glob = np.empty((t, _N, 3, 3))
    pos[:, 0] = off[:, 0]
    glob[:, 0] = e[:, 0]
    for j in range(1, _N):
        p = UIPRMD_PARENTS[j]
        pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", glob[:, p], off[:, j])
        glob[:, j] = glob[:, p] @ e[:, j]
    return pos


def read_uiprmd(path: str | os.PathLike, *, rate: float = 30.0) -> KeypointSequence:
    """Read one UI-PRMD Kinect repetition as absolute keypoints in millimetres.

    Parameters
    ----------
    path : path-like
        A positions file, ``…/positions/<trial>_positions[_inc].txt[.gz]``; its angles file
        (:func:`angles_path`) is read beside it.
    rate : float
        Frame rate in Hz; the Kinect v2 records at 30 Hz (the files carry no time stamps).

    Returns
    -------
    KeypointSequence
        ``(T, 22, 3)`` positions in mm, names :data:`UIPRMD_NAMES`, frame ``"kinect"`` (x to
        the subject's left when facing the sensor, y up, z towards the sensor), confidence 1.

    Raises
    ------
    InputError
        The name is not that of a positions file; either file is missing, damaged (gzip),
        not text, has a line without 66 values (naming the line and the count), holds a value
        that is not a finite number (naming line, column and joint); or the two files have
        different numbers of frames.

    References
    ----------
    Vakanski A, Jun H, Paul D, Baker R (2018). A data set of human body movements for physical
    rehabilitation exercises. Data 3(1):2. doi:10.3390/data3010002
    """
    p = Path(path)
    apath = angles_path(p)
    if not p.is_file() and not p.exists():
        raise InputError(f"{display_name(p)}: UI-PRMD positions file not found")
    if not apath.exists():
        raise InputError(
            f"{display_name(p)}: its angles file {apath.parent.name}/{apath.name} was not found; "
            "UI-PRMD positions are relative to the parent joints and need the angles"
        )
    off = _read_table(p, "UI-PRMD positions file")
    ang = _read_table(apath, "UI-PRMD angles file")
    if off.shape[0] != ang.shape[0]:
        raise InputError(
            f"{display_name(p)}: {off.shape[0]} frames but its angles file {apath.name} has "
            f"{ang.shape[0]}; expected one angles line per positions line"
        )
    xyz = uiprmd_forward_kinematics(off, ang) * _CM_TO_MM
    return KeypointSequence(xyz, UIPRMD_NAMES, rate, frame=KINECT_FRAME)
