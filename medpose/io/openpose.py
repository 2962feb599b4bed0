"""OpenPose JSON folders: one file per video frame, 2D keypoints in pixels.

Each file ``<anything>_<frameNumber>.json`` (OpenPose itself writes
``<video>_<12 digits>_keypoints.json``) holds ``{"people": [{"pose_keypoints_2d": [x0, y0, c0,
x1, y1, c1, ...]}, ...]}`` with x, y in pixels (origin top-left, y down) and c a confidence in
[0, 1] (OpenPose doc/02_output.md, "JSON-UI Output Format").  OpenPose writes undetected points
as ``0, 0, 0``: those are read as missing (NaN, confidence 0).  Frames are ordered by the
trailing number; numbers missing from the sequence become all-NaN frames, with a warning naming
them (or an error with ``missing_frames="error"``).

The JSON carries no frame rate: pass ``rate=`` (default 30 Hz, :data:`DEFAULT_RATE`).
The sequence's ``frame`` is the camera name: the folder name without a trailing ``_json``
(``cam01_json`` -> ``cam01``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from ..data import MAX_RATE_HZ, KeypointSequence
from ..errors import InputError
from ..layouts import Layout, detect_layout, get_layout, list_layouts
from ._structured import load_json
from ._text import (
    MAX_DOCUMENT_BYTES,
    canonical_names,
    check_frame_span,
    parse_finite,
    read_text,
)
from ._util import atomic_dir, display_name

__all__ = ["read_openpose", "read_openpose_people", "write_openpose", "DEFAULT_RATE"]

#: Frame rate assumed when none is given (OpenPose JSON has none), Hz.
DEFAULT_RATE = 30.0

_NUMBER = re.compile(r"(\d+)(?:_keypoints)?\.json$", re.IGNORECASE)
#: Most digits accepted in a file's frame number (OpenPose writes 12).
_MAX_DIGITS = 15
#: Most missing frame numbers listed in a message.
_LISTED = 10


def _camera_name(folder: Path) -> str:
    name = folder.name
    return name[:-5] if name.lower().endswith("_json") and len(name) > 5 else name


def _get_layout(layout: str | Layout | None, n_kp: int | None, src: str) -> Layout:
    if isinstance(layout, Layout):
        return layout
    if layout is None and n_kp is None:
        raise InputError(
            f"{src}: no frame has a person, so the layout cannot be detected; pass layout="
        )
    try:
        return get_layout(layout) if layout is not None else detect_layout(int(n_kp or 0))
    except InputError as e:
        raise InputError(f"{src}: {e}") from None


def _check_rate(rate: float | None, src: str) -> float:
    if rate is None:
        return DEFAULT_RATE
    r = parse_finite(rate, src, "rate", "a positive frame rate in Hz")
    if not 0 < r <= MAX_RATE_HZ:
        raise InputError(
            f"{src}: rate is {rate!r}; expected a frame rate in Hz in (0, {MAX_RATE_HZ:g}]"
        )
    return r


def _missing_frames(numbers: np.ndarray, src: str, policy: str) -> None:
    """Warn about (or refuse) frame numbers absent between the first and the last file."""
    if policy not in ("warn", "error"):
        raise InputError(f"{src}: missing_frames={policy!r}; expected 'warn' or 'error'")
    span = int(numbers[-1] - numbers[0] + 1)
    if span == len(numbers):
        return
    have = np.zeros(span, dtype=bool)
    have[numbers - numbers[0]] = True
    gone = np.flatnonzero(~have) + int(numbers[0])
    listed = ", ".join(str(int(n)) for n in gone[:_LISTED])
    more = f" and {len(gone) - _LISTED} more" if len(gone) > _LISTED else ""
    what = (
        f"{len(gone)} frame number(s) missing between {int(numbers[0])} and "
        f"{int(numbers[-1])} (no file): {listed}{more}"
    )
    if policy == "error":
        raise InputError(
            f"{src}: {what}; expected one file per frame (missing_frames='warn' keeps them as "
            "NaN frames)"
        )
    warnings.warn(f"{src}: {what}; they are kept as all-NaN frames", stacklevel=4)


def _load_folder(
    folder: str | os.PathLike, layout: str | Layout | None, missing_frames: str = "warn"
) -> tuple[Path, np.ndarray, list[list[np.ndarray]], Layout]:
    """Files -> (folder, frame numbers, per-frame list of per-person (K, 3) arrays, layout)."""
    d = Path(folder)
    src = display_name(d)
    if not d.exists():
        raise InputError(f"{src}: OpenPose folder not found")
    if not d.is_dir():
        raise InputError(f"{src}: is a file; expected a folder of OpenPose .json files")
    found = []
    for f in d.iterdir():
        if f.suffix.lower() != ".json":
            continue
        m = _NUMBER.search(f.name)
        if m is None:
            raise InputError(
                f"{display_name(f)}: file name has no trailing frame number; expected "
                "<name>_<frameNumber>.json"
            )
        if len(m.group(1)) > _MAX_DIGITS:
            raise InputError(
                f"{display_name(f)}: frame number has {len(m.group(1))} digits; expected at "
                f"most {_MAX_DIGITS}"
            )
        found.append((int(m.group(1)), f))
    if not found:
        raise InputError(
            f"{src}: no .json files; expected OpenPose files <name>_<frameNumber>.json"
        )
    found.sort()
    numbers = np.array([n for n, _ in found])
    if np.any(np.diff(numbers) == 0):
        dup = int(numbers[np.flatnonzero(np.diff(numbers) == 0)[0]])
        raise InputError(f"{src}: two files have frame number {dup}")
    check_frame_span(numbers[0], numbers[-1], len(numbers), src, "frame numbers")
    _missing_frames(numbers, src, missing_frames)
    people: list[list[np.ndarray]] = []
    n_kp = None
    for _, f in found:
        doc = load_json(read_text(f, "OpenPose JSON file", MAX_DOCUMENT_BYTES), display_name(f))
        if not isinstance(doc, dict) or not isinstance(doc.get("people"), list):
            raise InputError(f"{display_name(f)}: field 'people' missing or not a list")
        frame_people = []
        for i, person in enumerate(doc["people"]):
            kp = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
            if kp is None:
                raise InputError(f"{display_name(f)}: people[{i}] has no 'pose_keypoints_2d'")
            try:
                a = np.asarray(kp, dtype=float)
            except (TypeError, ValueError):
                raise InputError(
                    f"{display_name(f)}: people[{i}].pose_keypoints_2d has non-numeric "
                    "values; expected numbers x, y, c"
                ) from None
            if a.ndim != 1 or a.size % 3:
                raise InputError(
                    f"{display_name(f)}: people[{i}].pose_keypoints_2d has {a.size} values; "
                    "expected a flat list of x, y, c triplets"
                )
            if n_kp is None:
                n_kp = a.size // 3
            elif a.size // 3 != n_kp:
                raise InputError(
                    f"{display_name(f)}: people[{i}] has {a.size // 3} keypoints; earlier "
                    f"frames have {n_kp}"
                )
            frame_people.append(a.reshape(-1, 3))
        people.append(frame_people)
    lay = _get_layout(layout, n_kp, src)
    if n_kp is not None and n_kp != len(lay):
        raise InputError(
            f"{src}: files have {n_kp} keypoints per person but layout {lay.name} has {len(lay)}"
        )
    return d, numbers, people, lay


def _to_sequences(
    d: Path,
    numbers: np.ndarray,
    people: list[list[np.ndarray]],
    lay: Layout,
    slots: list[int],
    rate: float | None,
    rename: bool,
    camera: str | None,
) -> list[KeypointSequence]:
    rate = _check_rate(rate, display_name(d))
    k = len(lay)
    t = int(numbers[-1] - numbers[0] + 1)
    n_slots = max(slots) + 1 if slots else 0
    raw = np.zeros((t, max(n_slots, 1), k, 3))
    present = np.zeros((t, max(n_slots, 1)), dtype=bool)
    rows = numbers - numbers[0]
    for r, frame_people in zip(rows, people):
        for s, a in enumerate(frame_people[:n_slots]):
            raw[r, s] = a
            present[r, s] = True
    xy, conf = raw[..., :2], raw[..., 2]
    missing = ~present[..., None] | ((conf == 0) & np.all(xy == 0, axis=-1))
    xy = np.where(missing[..., None], np.nan, xy)
    conf = np.where(missing, 0.0, conf)
    src = display_name(d)
    if np.any((conf < 0) | (conf > 1)):
        raise InputError(
            f"{src}: confidences range from {conf.min():.3g} to {conf.max():.3g}; "
            "expected values in [0, 1]"
        )
    names = canonical_names(lay.native, src, rename)
    cam = camera or _camera_name(d)
    start = float(numbers[0]) / rate
    return [
        KeypointSequence(xy[:, s], names, rate, confidence=conf[:, s], frame=cam, start=start)
        for s in slots
    ]


def read_openpose(
    folder: str | os.PathLike,
    *,
    person: int = 0,
    layout: str | Layout | None = None,
    rate: float | None = None,
    rename: bool = True,
    camera: str | None = None,
    missing_frames: Literal["warn", "error"] = "warn",
) -> KeypointSequence:
    """Read one person's 2D keypoints from a folder of OpenPose JSON files.

    Parameters
    ----------
    folder : path-like
        Folder of ``<name>_<frameNumber>.json`` files (e.g. ``cam01_json``).
    person : int
        Index into ``people`` in every file (OpenPose does not track identities: slot
        ``person`` is whichever person the detector listed there).  Frames with fewer people
        are all-NaN with confidence 0.
    layout : str or Layout, optional
        Keypoint layout; detected from the count when not given (25 -> body25,
        26 -> halpe26, 33 -> mediapipe33, 17 -> coco17).
    rate : float, optional
        Frame rate in Hz; OpenPose JSON has none.  Default :data:`DEFAULT_RATE` (30 Hz).
    rename : bool
        Use medpose keypoint names (default) or the layout's native names.
    camera : str, optional
        Frame name of the result; default the folder name without a trailing ``_json``.
    missing_frames : {"warn", "error"}
        A frame number absent between the first and the last file (``cam01_000005.json``
        missing between 4 and 6): ``"warn"`` warns naming the numbers and keeps those frames
        as all-NaN; ``"error"`` raises :class:`InputError` naming the folder and the numbers.

    Returns
    -------
    KeypointSequence
        ``(T, K, 2)`` in pixels with confidence; ``start`` = first frame number / rate.

    Raises
    ------
    InputError
        Missing folder, no JSON files, a file name without a frame number, invalid JSON
        (or nested too deeply, numbers that overflow, not UTF-8), keypoint counts that
        differ between files or from ``layout``, confidences outside [0, 1], a rate that is
        not a positive number, frame numbers spanning far more frames than there are files
        (:func:`~medpose.io._text.check_frame_span`), missing frames with
        ``missing_frames="error"``.

    References
    ----------
    OpenPose, doc/02_output.md, https://github.com/CMU-Perceptual-Computing-Lab/openpose
    """
    if isinstance(person, bool) or not isinstance(person, (int, np.integer)) or person < 0:
        raise InputError(f"{display_name(folder)}: person is {person!r}; expected an integer >= 0")
    _check_rate(rate, display_name(folder))
    d, numbers, people, lay = _load_folder(folder, layout, missing_frames)
    return _to_sequences(d, numbers, people, lay, [int(person)], rate, rename, camera)[0]


def read_openpose_people(
    folder: str | os.PathLike,
    *,
    layout: str | Layout | None = None,
    rate: float | None = None,
    rename: bool = True,
    camera: str | None = None,
    missing_frames: Literal["warn", "error"] = "warn",
) -> list[KeypointSequence]:
    """Read every person slot of an OpenPose JSON folder: one sequence per slot.

    Slot ``i`` holds ``people[i]`` of each file (NaN where a file lists fewer people).  The list
    is as long as the most people found in any one file.  Parameters as :func:`read_openpose`.
    """
    _check_rate(rate, display_name(folder))
    d, numbers, people, lay = _load_folder(folder, layout, missing_frames)
    n = max((len(p) for p in people), default=0)
    return _to_sequences(d, numbers, people, lay, list(range(n)), rate, rename, camera)


def write_openpose(
    seq: KeypointSequence,
    folder: str | os.PathLike,
    *,
    layout: str | Layout | None = None,
    prefix: str | None = None,
) -> Path:
    """Write a 2D sequence as OpenPose JSON files, one per frame.

    Files are ``<prefix>_<frameNumber:012d>_keypoints.json`` (OpenPose's own naming), frame
    numbers counted from ``round(start * rate)``.  Keypoints are written in the layout's
    order; missing keypoints (NaN) are written as ``0, 0, 0`` and a frame with no keypoint
    as ``"people": []``, as OpenPose does.

    Parameters
    ----------
    seq : KeypointSequence
        2D, pixels; names medpose or the layout's native names.
    folder : path-like
        Written into a temporary folder beside it, then swapped into place as a whole
        (see docs/formats-keypoints.md, "How medpose writes files"): an existing folder's
        earlier frames are all replaced, and an interrupted write leaves the earlier folder
        as it was.  An existing folder must hold only ``.json`` files.
    layout : str or Layout, optional
        Default: the layout whose medpose names are exactly the sequence's names.
    prefix : str, optional
        File name prefix; default the sequence's ``frame`` (camera name).

    Raises
    ------
    InputError
        3D sequence, no matching layout, keypoints that the layout does not have, or a
        ``folder`` that is a file or holds entries other than ``.json`` files.
    """
    d = Path(folder)
    src = display_name(d)
    if seq.ndim != 2:
        raise InputError(
            f"{src}: OpenPose JSON holds 2D keypoints in pixels; the sequence is {seq.ndim}D"
        )
    if layout is None:
        cands = [get_layout(n) for n in list_layouts()]
        match = [
            lay
            for lay in cands
            if set(lay.medpose) == set(seq.names) or set(lay.native) == set(seq.names)
        ]
        if not match:
            raise InputError(
                f"{src}: no layout has exactly the keypoints {list(seq.names)[:6]}...; pass layout="
            )
        lay = match[0]
    else:
        lay = layout if isinstance(layout, Layout) else get_layout(layout)
    lookup = {}
    for i, (nat, med, al) in enumerate(zip(lay.native, lay.medpose, lay.aliases)):
        for n in (nat, med, *al):
            lookup[n] = i
    extra = [n for n in seq.names if n not in lookup]
    if extra:
        raise InputError(
            f"{src}: keypoints {extra} are not in layout {lay.name}; select the layout's "
            "keypoints first (seq.select)"
        )
    t = seq.n_frames
    out = np.zeros((t, len(lay), 3))
    idx = [lookup[n] for n in seq.names]
    finite = np.all(np.isfinite(seq.positions), axis=2)
    out[:, idx, :2] = np.where(finite[..., None], seq.positions, 0.0)
    conf = (
        np.ones(finite.shape) if seq.confidence is None else seq.confidence
    )  # set in __post_init__
    out[:, idx, 2] = np.where(finite, conf, 0.0)
    any_point = finite.any(axis=1)
    first = round(seq.start * seq.rate)
    stem = prefix if prefix is not None else seq.frame

    if d.exists() and not d.is_dir():
        raise InputError(f"{src}: exists and is not a folder; expected a folder of OpenPose JSON")
    if d.is_dir():
        foreign = sorted(
            e.name for e in d.iterdir() if not (e.is_file() and e.suffix.lower() == ".json")
        )
        if foreign:
            raise InputError(
                f"{src}: the folder holds {len(foreign)} entries that are not JSON files "
                f"({foreign[:3]}); expected a folder of OpenPose JSON to replace as a whole"
            )
    with atomic_dir(d) as target:
        for i in range(t):
            people = []
            if any_point[i]:
                people = [
                    {
                        "person_id": [-1],
                        "pose_keypoints_2d": np.round(out[i], 6).reshape(-1).tolist(),
                        "face_keypoints_2d": [],
                        "hand_left_keypoints_2d": [],
                        "hand_right_keypoints_2d": [],
                    }
                ]
            doc = json.dumps({"version": 1.3, "people": people})
            fp = target / f"{stem}_{first + i:012d}_keypoints.json"
            fp.write_text(doc, encoding="utf-8")
    return d
