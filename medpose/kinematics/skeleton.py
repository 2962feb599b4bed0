"""The human skeleton: a kinematic tree of rigid segments, declared in ``resources/skeleton.yaml``.

The tree, its degrees of freedom (DoFs), joint offsets and keypoints are data, not code: this
module only reads and checks them and turns lengths (mm) into offset arrays that
:func:`medpose.kinematics.forward_kinematics` consumes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import InputError
from .skeleton_spec import Segment, parse_spec, read_yaml

__all__ = ["Skeleton", "default_ranges", "SKELETON_FRAME"]

#: Name of the world frame of a skeleton's forward kinematics: ISB global axes
#: (X anterior, Y superior, Z right), millimetres.
SKELETON_FRAME = "skeleton"


# ---------------------------------------------------------------------------------- Skeleton
@dataclass(frozen=True, eq=False, kw_only=True)
class Skeleton:
    """A whole-body kinematic tree with clinical joint angles (ISB conventions).

    Build it with :meth:`default` (or :meth:`from_yaml`), personalise it with
    :meth:`with_lengths`, and pose it with :func:`~medpose.kinematics.forward_kinematics`.

    **Frames.**  World and every segment frame use the ISB axes (Wu et al. 2002, 2005):
    X anterior, Y superior, Z to the patient's right; the world frame is named
    ``"skeleton"`` (:data:`SKELETON_FRAME`).  In the zero pose every segment frame is
    parallel to the world frame.

    **Zero pose** (all DoFs 0): anatomical neutral standing: trunk and head upright,
    pelvis with both ASIS and both PSIS in one horizontal plane, legs vertical with the feet
    pointing forward, arms hanging by the side with the forearms in neutral rotation
    (**palms facing the thighs**, thumbs forward), wrists straight.  All joint centres then
    lie in the frontal plane x = pelvis_tx, feet below the hips.

    **Joints** (child relative to parent; intrinsic Euler sequences, first axis fixed in
    the proximal segment, last axis the distal segment's, middle axis floating, as the ISB
    joint coordinate systems):

    ============  =====  =================================================================
    joint         order  DoFs (positive direction)
    ============  =====  =================================================================
    pelvis/world  Z-X-Y  ``pelvis_tilt`` (anterior tilt), ``pelvis_list`` (right side down),
                         ``pelvis_rotation`` (turns to face left); ``pelvis_tx/ty/tz`` mm
    hip           Z-X-Y  ``hip_flexion``, ``hip_adduction``, ``hip_rotation`` (internal)
    knee          Z      ``knee_flexion``
    ankle         Z-X    ``ankle_dorsiflexion``, ``subtalar_inversion``
    lumbar        Z-X-Y  ``lumbar_flexion``, ``lumbar_bending`` (to the right),
                         ``lumbar_rotation`` (trunk turns to face left)
    neck          Z-X-Y  ``neck_flexion``, ``neck_bending`` (right), ``neck_rotation`` (left)
    shoulder      Z-X-Y  ``shoulder_flexion``, ``shoulder_abduction``, ``shoulder_rotation``
                         (internal); gimbal lock at abduction +-90 deg
    elbow         Z-(X)-Y ``elbow_flexion``, ``forearm_pronation`` (from thumb-up neutral)
    wrist         X-Z    ``wrist_flexion`` (palm towards the forearm), ``wrist_deviation``
                         (ulnar); the flexion axis is X because the palm faces medially
    ============  =====  =================================================================

    Bilateral DoFs end in ``_r``/``_l``; rotations about X and Y are mirrored on the left so
    that the same value is the same anatomical motion on both sides.  Full tables with
    gimbal locks: ``medpose/resources/joint_conventions.md`` and ``docs/conventions.md``.

    **Lengths** (mm) are keyed by segment name (``thigh_r``...) plus ``pelvis_width``
    (inter-ASIS), ``pelvis_depth`` (mid-ASIS to mid-PSIS) and ``shoulder_width``
    (between glenohumeral centres).  Defaults are fractions of body height after Winter
    (2009, Fig. 4.1, Drillis & Contini); hip centres follow Harrington et al. (2007).

    Attributes
    ----------
    lengths : Mapping[str, float]
        Every named length in mm (read-only).
    height_mm : float or None
        Body height the defaults were scaled to, if any.
    segment_names, dof_names, keypoint_names : tuple of str
        Segments in topological order (root first), DoFs in the order of ``q`` columns,
        keypoints in the order of the last-but-one axis of the FK output.
    parent_index : numpy.ndarray, shape (S,)
        Index of each segment's parent, -1 for the root.
    joint_offsets : numpy.ndarray, shape (S, 3)
        Each joint centre (segment origin) in its parent's frame, mm (the root's is 0).
    joint_fixed_deg : numpy.ndarray, shape (S, 3)
        Constant angle (degrees) of each rotation of a joint's sequence that is not a DoF
        (0 by default; :meth:`with_axes`): a subject's hinge-axis alignment.
    keypoint_segment : numpy.ndarray, shape (K,)
        Index of the segment each keypoint moves with.
    keypoint_offsets : numpy.ndarray, shape (K, 3)
        Each keypoint in its segment's frame, mm.
    sequences : tuple of str
        Each joint's intrinsic Euler sequence, e.g. ``"ZXY"``.
    joint_dof_index : numpy.ndarray, shape (S, 3)
        Column of ``q`` driving each rotation of the sequence, -1 where it is fixed at 0.
    joint_dof_sign : numpy.ndarray, shape (S, 3)
        +-1: rotation angle = sign * q column (0 where fixed).
    translation_dof_index : numpy.ndarray, shape (3,)
        Columns of ``q`` holding the root translation along world X, Y, Z (mm).
    rotational : numpy.ndarray of bool, shape (D,)
        True for angular DoFs (degrees), False for translations (mm).
    frame : str
        ``"skeleton"``.

    Examples
    --------
    >>> sk = Skeleton.default(height_mm=1700.0)
    >>> q = sk.make_q({"knee_flexion_r": 90.0})
    >>> q.shape == (1, len(sk.dof_names))
    True
    """

    _ratios: Mapping[str, tuple[float, str]]
    _segments: tuple[Segment, ...]
    lengths: Mapping[str, float]
    height_mm: float | None = None
    frame: str = SKELETON_FRAME
    _source: str = field(default="skeleton", repr=False)
    keypoint_mm: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # with_offsets
    joint_mm: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    axis_deg: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # with_axes
    _cache: dict = field(default_factory=dict, repr=False)  # per (device, dtype) tensors for FK
    # Derived in __post_init__ from the segments and lengths (read-only arrays).
    segment_names: tuple[str, ...] = field(init=False, repr=False)
    parent_index: np.ndarray = field(init=False, repr=False)
    dof_names: tuple[str, ...] = field(init=False, repr=False)
    rotational: np.ndarray = field(init=False, repr=False)
    sequences: tuple[str, ...] = field(init=False, repr=False)
    joint_names: tuple[str, ...] = field(init=False, repr=False)
    joint_dof_index: np.ndarray = field(init=False, repr=False)
    joint_dof_sign: np.ndarray = field(init=False, repr=False)
    translation_dof_index: np.ndarray = field(init=False, repr=False)
    joint_offsets: np.ndarray = field(init=False, repr=False)
    joint_fixed_deg: np.ndarray = field(init=False, repr=False)
    keypoint_names: tuple[str, ...] = field(init=False, repr=False)
    keypoint_segment: np.ndarray = field(init=False, repr=False)
    keypoint_offsets: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        segs = self._segments
        names = tuple(s.name for s in segs)
        lengths = dict(self.lengths)
        needed = self.length_names
        missing = [n for n in needed if n not in lengths]
        if missing:
            raise InputError(f"{self._source}: missing lengths {missing}")
        for name in needed:
            _check_length(name, lengths[name])
        lengths = {n: float(lengths[n]) for n in needed}
        dof_names = tuple(n for s in segs for n in (*s.translations, *(d[0] for d in s.dofs if d)))
        dpos = {n: i for i, n in enumerate(dof_names)}
        rot = np.array([not any(n in s.translations for s in segs) for n in dof_names])
        idx = np.full((len(segs), 3), -1, dtype=np.int64)
        sgn = np.zeros((len(segs), 3))
        for i, s in enumerate(segs):
            for j, d in enumerate(s.dofs):
                if d is not None:
                    idx[i, j], sgn[i, j] = dpos[d[0]], d[1]
        root = segs[0]
        kp = [(k, i, off) for i, s in enumerate(segs) for k, off in s.keypoints]
        values = {
            "lengths": MappingProxyType(lengths),
            "segment_names": names,
            "parent_index": np.array([names.index(s.parent) if s.parent else -1 for s in segs]),
            "dof_names": dof_names,
            "rotational": rot,
            "sequences": tuple(s.sequence for s in segs),
            "joint_names": tuple(s.joint for s in segs),
            "joint_dof_index": idx,
            "joint_dof_sign": sgn,
            "translation_dof_index": np.array([dpos[t] for t in root.translations], dtype=np.int64),
            "joint_offsets": np.stack([s.offset.evaluate(lengths) for s in segs]),
            "keypoint_names": tuple(k for k, _, _ in kp),
            "keypoint_segment": np.array([i for _, i, _ in kp], dtype=np.int64),
            "keypoint_offsets": np.stack([o.evaluate(lengths) for _, _, o in kp]),
        }
        for table, known, arr in (  # per-subject positions (with_offsets)
            (self.keypoint_mm, values["keypoint_names"], values["keypoint_offsets"]),
            (self.joint_mm, names, values["joint_offsets"]),
        ):
            for key, xyz in table.items():
                if key not in known or np.shape(xyz) != (3,) or not np.all(np.isfinite(xyz)):
                    raise InputError(f"{self._source}: bad offset {key!r} = {xyz!r} (mm)")
                arr[list(known).index(key)] = xyz  # type: ignore[index]
        fixed = np.zeros((len(segs), 3))
        for key, abc in self.axis_deg.items():  # per-subject hinge axes (with_axes)
            if key not in names or np.shape(abc) != (3,) or not np.all(np.isfinite(abc)):
                raise InputError(f"{self._source}: bad joint axes {key!r} = {abc!r} (degrees)")
            s_ = names.index(key)
            if np.any((idx[s_] >= 0) & (np.asarray(abc) != 0)):
                raise InputError(
                    f"{self._source}: joint axes of {key!r} = {tuple(abc)} set a rotation that "
                    f"is a DoF ({[d[0] for d in segs[s_].dofs if d]}); only the fixed rotations "
                    "of a joint's sequence take a constant"
                )
            fixed[s_] = abc
        values["joint_fixed_deg"] = fixed
        for key, val in values.items():
            if isinstance(val, np.ndarray):
                val.setflags(write=False)
            object.__setattr__(self, key, val)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def default(cls, height_mm: float = 1700.0) -> Skeleton:
        """The packaged skeleton (``resources/skeleton.yaml``) scaled to a body height.

        Parameters
        ----------
        height_mm : float
            Standing height in mm (vertex to floor); every default length is a fraction of it
            (Winter 2009, Fig. 4.1).

        Raises
        ------
        InputError
            If ``height_mm`` is not a finite positive number.
        """
        return cls.from_yaml(None, height_mm=height_mm)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None, height_mm: float = 1700.0) -> Skeleton:
        """Read a skeleton declared in the layout of ``resources/skeleton.yaml`` (None: that file)."""
        h = _check_length("height_mm", height_mm)
        spec, source = read_yaml(path, "skeleton.yaml")
        ratios, segments = parse_spec(spec, source)
        bil = {
            s.name[:-2] for s in segments if s.name[-2:] in ("_r", "_l") and s.name[:-2] in ratios
        }
        lengths = {}
        for name, (ratio, _) in ratios.items():
            for n in [f"{name}_r", f"{name}_l"] if name in bil else [name]:
                lengths[n] = ratio * h
        return cls(
            _ratios=MappingProxyType(ratios),
            _segments=segments,
            lengths=lengths,
            height_mm=h,
            frame=SKELETON_FRAME,
            _source=source,
        )

    def with_lengths(self, lengths: Mapping[str, float]) -> Skeleton:
        """A copy with some lengths replaced (mm); keypoints and joint offsets rescale with them.

        Parameters
        ----------
        lengths : Mapping[str, float]
            Keys from :attr:`length_names` (``thigh_r``, ``pelvis_width``...); a bilateral
            name without its side (``thigh``) sets both sides.

        Raises
        ------
        InputError
            Unknown length name (the message lists the known ones), or a length that is not a
            finite positive number (the message names the segment and the value).
        """
        new = dict(self.lengths)
        for key, val in lengths.items():
            keys = [key] if key in new else [k for k in (f"{key}_r", f"{key}_l") if k in new]
            if not keys:
                raise InputError(
                    f"Skeleton.with_lengths: unknown length {key!r}; known: {sorted(new)}"
                )
            for k in keys:
                new[k] = _check_length(k, val)
        return self._copy(lengths=new)

    def with_offsets(
        self,
        keypoints: Mapping[str, Sequence[float]] | None = None,
        joints: Mapping[str, Sequence[float]] | None = None,
    ) -> Skeleton:
        """A copy with keypoints (name -> mm in its segment's frame) and joint centres (segment ->
        origin in the parent's frame, mm) placed explicitly (a subject's calibration); these no
        longer scale with :meth:`with_lengths`.  InputError: unknown name or not 3 numbers."""
        kp = {**self.keypoint_mm, **{k: tuple(map(float, v)) for k, v in (keypoints or {}).items()}}
        jt = {**self.joint_mm, **{k: tuple(map(float, v)) for k, v in (joints or {}).items()}}
        return self._copy(keypoint_mm=MappingProxyType(kp), joint_mm=MappingProxyType(jt))

    def with_axes(self, axes: Mapping[str, Sequence[float]]) -> Skeleton:
        """A copy with constant angles (degrees) in the fixed rotations of some joints' Euler
        sequences: segment name -> three angles, one per slot of its joint's sequence, non-zero
        only where the slot is not a DoF (e.g. ``forearm_r``: ``(0, 12, 0)`` tilts the forearm
        12 degrees about X after flexion, the carrying angle; ``shank_r``: the knee's varus
        alignment).  A subject's hinge axes, as :func:`~medpose.kinematics.calibrate.calibrate`
        estimates them.  The zero pose of every DoF keeps its meaning relative to the proximal
        segment.  InputError: unknown segment, not 3 numbers, or a constant on a DoF's slot."""
        ax = {**self.axis_deg, **{k: tuple(map(float, v)) for k, v in axes.items()}}
        return self._copy(axis_deg=MappingProxyType(ax))

    def _copy(self, **changes: Any) -> Skeleton:
        """A copy with some declared fields changed; the derived arrays are rebuilt
        (``__post_init__``) and the FK tensor cache starts empty."""
        return replace(self, _cache={}, **changes)

    # ------------------------------------------------------------------ look-ups
    @property
    def length_names(self) -> tuple[str, ...]:
        """All length names (mm) this skeleton needs, bilateral ones per side."""
        segs = {s.name for s in self._segments}
        out = []
        for name in self._ratios:
            if f"{name}_r" in segs:
                out += [f"{name}_r", f"{name}_l"]
            else:
                out.append(name)
        return tuple(out)

    def dof_index(self, names: str | Sequence[str]) -> np.ndarray | int:
        """Column(s) of ``q`` for DoF name(s); unknown names raise InputError listing the known."""
        return _index(self.dof_names, names, "DoF")

    def keypoint_index(self, names: str | Sequence[str]) -> np.ndarray | int:
        """Index (indices) of keypoint name(s) in :attr:`keypoint_names`."""
        return _index(self.keypoint_names, names, "keypoint")

    def segment_index(self, names: str | Sequence[str]) -> np.ndarray | int:
        """Index (indices) of segment name(s) in :attr:`segment_names`."""
        return _index(self.segment_names, names, "segment")

    def make_q(
        self, values: Mapping[str, Any] | None = None, n_frames: int | None = None
    ) -> np.ndarray:
        """A ``(T, D)`` pose array: zeros except the named DoFs (degrees or mm).

        Parameters
        ----------
        values : Mapping[str, float or array_like of shape (T,)]
            DoF name -> value(s).
        n_frames : int, optional
            T; defaults to the length of the longest value array (1 for scalars).

        Raises
        ------
        InputError
            Unknown DoF name (the message lists the known ones) or mismatched lengths.
        """
        values = dict(values or {})
        arrs = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in values.items()}
        t = n_frames if n_frames is not None else max([a.shape[0] for a in arrs.values()] + [1])
        q = np.zeros((t, len(self.dof_names)))
        for k, a in arrs.items():
            if a.ndim != 1 or a.shape[0] not in (1, t):
                raise InputError(
                    f"Skeleton.make_q: {k!r} must be a number or shape ({t},), found shape {a.shape}"
                )
            q[:, self.dof_index(k)] = a
        return q

    def __repr__(self) -> str:
        h = f", height {self.height_mm:g} mm" if self.height_mm else ""
        return (
            f"Skeleton({len(self.segment_names)} segments, {len(self.dof_names)} DoF, "
            f"{len(self.keypoint_names)} keypoints{h})"
        )


def _check_length(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"Skeleton: length of {name!r} must be a finite positive number of mm, found {value!r}"
        ) from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(
            f"Skeleton: length of {name!r} must be a finite positive number of mm, found {v!r}"
        )
    return v


def _index(known: tuple[str, ...], names: str | Sequence[str], what: str) -> np.ndarray | int:
    single = isinstance(names, str)
    lst = [names] if isinstance(names, str) else list(names)
    pos = {n: i for i, n in enumerate(known)}
    bad = [n for n in lst if n not in pos]
    if bad:
        raise InputError(f"Skeleton: unknown {what} name(s) {bad}; known: {list(known)}")
    idx = np.array([pos[n] for n in lst], dtype=np.int64)
    return int(idx[0]) if single else idx


# ---------------------------------------------------------------------------------- ranges
def default_ranges(skeleton: Skeleton | None = None) -> dict[str, tuple[float, float]]:
    """Default joint ranges from ``resources/joint_ranges.yaml``: DoF name -> (min, max).

    Degrees for rotations: the range healthy adults reach (per side the wider of the AAOS
    1965 / Greene & Heckman 1994 average and a published adult group's mean + 2 SD; see the
    file for the rule and the source of each row), ``(-inf, inf)`` mm for the pelvis
    translations.  Rows without a side apply to ``_r`` and ``_l``.

    Parameters
    ----------
    skeleton : Skeleton, optional
        Whose DoFs to cover (default: :meth:`Skeleton.default`); the result has one entry per
        DoF, in ``skeleton.dof_names`` order.

    Raises
    ------
    InputError
        If the file lacks a DoF of the skeleton or a row has min > max.
    """
    sk = skeleton if skeleton is not None else Skeleton.default()
    spec, source = read_yaml(None, "joint_ranges.yaml")
    rows = spec.get("ranges", {}) if isinstance(spec, Mapping) else {}
    out: dict[str, tuple[float, float]] = {}
    for name in sk.dof_names:
        base = name[:-2] if name[-2:] in ("_r", "_l") else name
        row = rows.get(name, rows.get(base))
        if row is None:
            raise InputError(f"{source}: no range for DoF {name!r}")
        lo, hi = float(row["min"]), float(row["max"])
        if not lo <= hi:
            raise InputError(f"{source}: ranges.{base}: min {lo} > max {hi}")
        out[name] = (lo, hi)
    return out
