"""The patient's skeleton: segment lengths held constant over a session.

Lengths (mm) are measured between pairs of keypoints whose distance does not depend on the pose
(a joint centre and the next joint centre: hip-knee gives the thigh), as the **median over
confident frames** of a static trial or of a whole movement sequence, or from one set of
imaging landmarks registered into the camera frame.  The median makes the estimate robust to
jitter, outliers and short left/right swaps.  Lengths that no keypoint pair measures are scaled
from a body height estimated from the measured ones (the skeleton's default fractions of height,
Winter 2009, Fig. 4.1), and the report says which is which.

The distance between the two keypoints of a pair is an affine function of the length in the
skeleton's zero pose (``d = a L + b``); ``a`` and ``b`` are read off the skeleton itself, so the
estimate stays consistent with ``resources/skeleton.yaml`` whatever its offsets.  The trunk
length from ``pelvis``-``neck`` is exact only at neutral lumbar flexion (the median over a
sequence is close for upright movements).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from ..data import KeypointSequence, Landmarks
from ..errors import InputError
from ..layouts import to_medpose_names
from .fk import forward_kinematics
from .skeleton import Skeleton

__all__ = [
    "PatientSkeleton",
    "estimate_skeleton",
    "skeleton_from_landmarks",
    "LENGTH_PAIRS",
    "plausible_height_mm",
]

#: Keypoint pairs that measure each length, best first ("_s" = each side).
LENGTH_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("pelvis_width", "asis_r", "asis_l"),
    ("pelvis_width", "hip_r", "hip_l"),
    ("shoulder_width", "shoulder_r", "shoulder_l"),
    ("trunk", "pelvis", "neck"),
    ("head", "neck", "head_top"),
    ("head", "ear_r", "ear_l"),
    ("thigh_s", "hip_s", "knee_s"),
    ("shank_s", "knee_s", "ankle_s"),
    ("foot_s", "heel_s", "big_toe_s"),
    ("foot_s", "ankle_s", "big_toe_s"),
    ("upper_arm_s", "shoulder_s", "elbow_s"),
    ("forearm_s", "elbow_s", "wrist_s"),
    ("hand_s", "wrist_s", "hand_s"),
    ("hand_s", "wrist_s", "index_s"),
)

#: Body heights (mm) accepted as human; outside, the data are taken to be in the wrong unit.
plausible_height_mm = (700.0, 2700.0)


@dataclass(frozen=True, kw_only=True)
class PatientSkeleton:
    """A patient's skeleton and how its lengths were obtained.

    Attributes
    ----------
    skeleton : Skeleton
        The personalised skeleton.
    lengths : Mapping[str, float]
        Every length in mm.
    method : Mapping[str, str]
        Per length: ``"median of 412 frames, hip_r-knee_r"`` or ``"scaled from height"``.
    source : str
        ``"static trial"``, ``"sequence"`` or ``"imaging landmarks"``.
    height_mm : float
        Body height implied by the measured lengths (median over them).
    """

    skeleton: Skeleton
    lengths: Mapping[str, float]
    method: Mapping[str, str]
    source: str
    height_mm: float
    n_frames: int = 0
    spread_mm: Mapping[str, float] = field(default_factory=dict)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per length: ``length_mm``, ``method``, ``spread_mm`` (IQR over frames)."""
        names = list(self.lengths)
        return pd.DataFrame(
            {
                "length_mm": [self.lengths[n] for n in names],
                "method": [self.method[n] for n in names],
                "spread_mm": [self.spread_mm.get(n, np.nan) for n in names],
            },
            index=pd.Index(names, name="length"),
        )

    def __str__(self) -> str:
        measured = sum(not m.startswith("scaled") for m in self.method.values())
        return (
            f"patient skeleton from {self.source}: height {self.height_mm:.0f} mm, "
            f"{measured} of {len(self.lengths)} lengths measured"
        )


def _expand_pairs(length_names: tuple[str, ...]) -> list[tuple[str, str, str]]:
    out = []
    for L, a, b in LENGTH_PAIRS:
        if L.endswith("_s"):
            for s in ("r", "l"):
                out.append(
                    (
                        L[:-1] + s,
                        a[:-1] + s if a.endswith("_s") else a,
                        b[:-1] + s if b.endswith("_s") else b,
                    )
                )
        else:
            out.append((L, a, b))
    return [p for p in out if p[0] in length_names]


def _affine(
    base: Skeleton, length: str, a: str, b: str, lengths: Mapping[str, float]
) -> tuple[float, float]:
    """Zero-pose distance between keypoints a and b as ``slope * L + offset``."""
    d = []
    for val in (100.0, 300.0):
        sk = base.with_lengths({**lengths, length: val})
        x = forward_kinematics(sk, np.zeros((1, len(sk.dof_names))), keypoints=[a, b])[0]
        d.append(float(np.linalg.norm(x[0] - x[1])))
    slope = (d[1] - d[0]) / 200.0
    return slope, d[0] - slope * 100.0


def _estimate(
    positions: np.ndarray,
    confidence: np.ndarray,
    names: tuple[str, ...],
    base: Skeleton,
    source: str,
    what: str,
    min_confidence: float,
) -> PatientSkeleton:
    names = to_medpose_names(names)
    pos = np.asarray(positions, dtype=float)
    conf = np.asarray(confidence, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    if "pelvis" not in idx and "hip_r" in idx and "hip_l" in idx:  # mid-hip = pelvis origin
        mid = 0.5 * (pos[:, idx["hip_r"]] + pos[:, idx["hip_l"]])
        pos = np.concatenate([pos, mid[:, None]], axis=1)
        conf = np.concatenate(
            [conf, np.minimum(conf[:, idx["hip_r"]], conf[:, idx["hip_l"]])[:, None]], axis=1
        )
        idx["pelvis"] = pos.shape[1] - 1
    ok = np.isfinite(pos).all(axis=2) & (conf >= min_confidence)
    hgt = base.height_mm or 1700.0
    ratio = {n: base.lengths[n] / hgt for n in base.length_names}
    measured: dict[str, float] = {}
    method: dict[str, str] = {}
    spread: dict[str, float] = {}
    nf: dict[str, int] = {}
    used: dict[str, tuple[str, str]] = {}
    for L, a, b in _expand_pairs(base.length_names):
        if L in measured or a not in idx or b not in idx:
            continue
        good = ok[:, idx[a]] & ok[:, idx[b]]
        if not good.any():
            continue
        d = np.linalg.norm(pos[good, idx[a]] - pos[good, idx[b]], axis=1)
        measured[L] = float(np.median(d))
        spread[L] = float(np.subtract(*np.percentile(d, [75, 25])))
        nf[L] = int(good.sum())
        method[L] = f"median of {int(good.sum())} frames, {a}-{b}"
        used[L] = (a, b)
    if not measured:
        raise InputError(
            f"{what}: no keypoint pair measures a segment length (need e.g. hip_r and knee_r "
            f"with confidence >= {min_confidence}); recognised keypoints: {sorted(set(names))}"
        )
    # distances -> lengths through the skeleton's own geometry (pelvis_width first: others use it)
    lengths = dict(base.lengths)
    order = sorted(measured, key=lambda n: n != "pelvis_width")
    raw = {}
    for L in order:
        a, b = used[L]
        slope, off = _affine(base, L, a, b, lengths)
        raw[L] = (measured[L] - off) / slope
        if L == "pelvis_width" and raw[L] > 0:
            lengths[L] = raw[L]
    heights = np.array([raw[L] / ratio[L] for L in raw if raw[L] > 0])
    h = float(np.median(heights)) if heights.size else float("nan")
    lo_h, hi_h = plausible_height_mm
    if not (lo_h <= h <= hi_h):
        med = {L: round(measured[L], 3) for L in list(measured)[:4]}
        hint = (
            " The keypoints look like metres."
            if 0.5 <= h <= 3.0
            else " The keypoints look like centimetres."
            if 50 <= h <= 300
            else ""
        )
        raise InputError(
            f"{what}: implausible bone lengths for a human: distances {med} imply a body height "
            f"of {h:.4g} mm, expected {lo_h:g}-{hi_h:g} mm.{hint} medpose expects millimetres "
            "(readers convert .trc/.c3d units; multiply other arrays by 1000 if in metres)"
        )
    out: dict[str, float] = {}
    for n in base.length_names:
        expected = ratio[n] * h
        if n in raw and 0.5 * expected <= raw[n] <= 2.0 * expected:
            out[n] = raw[n]
        else:
            if n in raw:
                method[n] = f"scaled from height (measured {raw[n]:.0f} mm was implausible)"
            else:
                method[n] = "scaled from height"
            out[n] = expected
    sk = base.with_lengths(out)
    return PatientSkeleton(
        skeleton=sk,
        lengths=MappingProxyType(out),
        method=MappingProxyType({n: method[n] for n in out}),
        source=source,
        height_mm=h,
        n_frames=int(max(nf.values(), default=0)),
        spread_mm=MappingProxyType(spread),
    )


def estimate_skeleton(
    sequence: KeypointSequence,
    *,
    static: bool = False,
    base: Skeleton | None = None,
    min_confidence: float = 0.5,
) -> PatientSkeleton:
    """Segment lengths from a keypoint sequence: medians over confident frames.

    Parameters
    ----------
    sequence : KeypointSequence
        3D keypoints in mm in any frame; names in any known layout (``RKnee``, ``knee_r``...).
    static : bool
        The sequence is a static trial (reported as such; the estimate is the same median).
    base : Skeleton, optional
        Skeleton to personalise (default :meth:`Skeleton.default`).
    min_confidence : float
        Frames where either keypoint of a pair has a lower confidence are ignored.

    Returns
    -------
    PatientSkeleton

    Raises
    ------
    InputError
        Not 3D, no measurable pair, or bone lengths implausible for a human (the message says
        when the data look like metres or centimetres).
    """
    if not isinstance(sequence, KeypointSequence) or sequence.ndim != 3:
        raise InputError(f"estimate_skeleton: expected a 3D KeypointSequence, found {sequence!r}")
    return _estimate(
        sequence.positions,
        sequence.confidence,
        sequence.names,
        base or Skeleton.default(),
        "static trial" if static else "sequence",
        "estimate_skeleton",
        min_confidence,
    )


def skeleton_from_landmarks(
    landmarks: Landmarks, *, base: Skeleton | None = None
) -> PatientSkeleton:
    """Segment lengths from imaging landmarks (e.g. registered into the camera frame), mm.

    Landmarks named as keypoints (``hip_r``, ``knee_r``, ``asis_l``...) measure the lengths
    between them; distances do not depend on the frame, so any rigidly registered frame works.

    Raises
    ------
    InputError
        As :func:`estimate_skeleton`.
    """
    pos = np.asarray(landmarks.positions, dtype=float)[None]
    return _estimate(
        pos,
        np.isfinite(pos).all(axis=2).astype(float),
        landmarks.names,
        base or Skeleton.default(),
        "imaging landmarks",
        "skeleton_from_landmarks",
        0.5,
    )
