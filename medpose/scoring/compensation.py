"""Compensations from 3D keypoints: trunk lean and rotation, pelvic drop, shoulder hiking, head
tilt, knee valgus and heel lift, per frame.

Every function takes *points* (:mod:`medpose.scoring.points`: medpose keypoint names to
positions in mm, each ``(..., T, 3)``, batched over any leading axes) and the lab's ``up``
direction (default ``"+y"``, the skeleton frame of :func:`~medpose.scoring.points.as_points`,
which turns a :class:`~medpose.kinematics.fit.Fit` into the fitted skeleton's keypoints).  It
returns a :class:`~medpose.scoring.MetricResult` with one value per frame, shape ``(..., T)``,
NaN with a reason where a keypoint is missing or the angle is not defined.

Definitions
-----------
*Vertical* is ``up``; the *heading* (anterior and right directions in the horizontal plane)
comes from the pelvis (:func:`~medpose.scoring.points.heading`: ``hip_l -> hip_r``), so the
sagittal and frontal planes are the patient's.  The *trunk axis* is the ISB thorax axis
(Wu et al. 2005, J Biomech 38:981-992): midpoint of PX and T8 to midpoint of IJ and C7; without
those keypoints ``spine -> neck``, else mid-hip to mid-shoulder (a camera layout's trunk line,
which includes the lumbar offset and reads a pure lumbar bend about 20 % low).  Angles follow
the ISB trunk Cardan sequence (flexion, lateral bending, axial rotation; Z, X, Y) relative to
the lab-vertical heading frame: forward lean is the trunk axis's angle from vertical in the
sagittal plane, sideways lean its angle out of the sagittal plane, so a trunk flexed 35 degrees
and bent 15 degrees reads 35 and 15.  Lines between paired keypoints (pelvis, shoulders,
ears) are measured against the horizontal plane, which makes them independent of where the
patient faces.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError
from .points import Points, Up, heading, pick, up_vector
from .result import MetricResult

__all__ = [
    "trunk_lean",
    "trunk_rotation",
    "pelvic_drop",
    "shoulder_hiking",
    "head_tilt",
    "knee_valgus",
    "heel_lift",
    "trunk_axis",
    "PEAK_PERCENTILE",
]

#: Per repetition (or trial) the runner reports the 98th percentile of the magnitude of a
#: compensation: its peak, robust to 2 % of outlier frames (as :func:`~medpose.scoring.rom`).
PEAK_PERCENTILE = 98.0

_SUFFIX = {"left": "l", "right": "r"}


def _side(func: str, side: str) -> tuple[str, str]:
    if side not in _SUFFIX:
        raise InputError(f"{func}: side must be 'left' or 'right', found {side!r}")
    other = "left" if side == "right" else "right"
    return _SUFFIX[side], _SUFFIX[other]


def _result(
    name: str, value: np.ndarray, unit: str, why: str, params: dict, details: dict | None = None
) -> MetricResult:
    value = np.asarray(value, dtype=float)
    ok = np.isfinite(value)
    reasons = np.where(ok, "", why).ravel().tolist()
    return MetricResult(name, value, unit, tuple(reasons), params, details or {})


def _elevation(vec: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Angle of ``vec`` above the horizontal plane, degrees."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (vec @ up) / np.linalg.norm(vec, axis=-1)
    return np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))


def trunk_axis(points: Points) -> tuple[np.ndarray, str]:
    """Trunk axis (lower to upper point, mm, ``(..., T, 3)``) and which keypoints define it:
    ISB thorax (mid PX-T8 to mid IJ-C7), else ``spine -> neck``, else mid-hip to mid-shoulder."""
    for lower, upper in (
        (("px", "t8"), ("ij", "c7")),
        ("spine", "neck"),
        (("hip_r", "hip_l"), ("shoulder_r", "shoulder_l")),
    ):
        try:
            lo, a = pick(points, lower)
            hi, b = pick(points, upper)
        except InputError:
            continue
        return hi - lo, f"{a} -> {b}"
    raise InputError(
        "trunk_axis: needs px, t8, ij and c7; or spine and neck; or hip_r, hip_l, shoulder_r "
        f"and shoulder_l; keypoints given: {sorted(points)[:40]}"
    )


def trunk_lean(points: Points, plane: str = "frontal", up: Up = "+y") -> MetricResult:
    """Trunk inclination to the lab vertical, degrees, per frame.

    ``plane="frontal"`` (sideways lean): the angle between the trunk axis and the patient's
    sagittal plane, ``asin(axis . right)``, positive towards the right.  ``plane="sagittal"``
    (forward lean): the angle of the trunk axis from vertical within the sagittal plane,
    ``atan2(axis . anterior, axis . up)``, positive forwards.  Together they are the first two
    angles of the ISB spine Cardan sequence (Z flexion, X lateral bending; Wu et al. 2002,
    J Biomech 35:543-548) of the thorax (Wu et al. 2005, J Biomech 38:981-992) relative to the
    vertical heading frame; lateral trunk lean is a compensation of reaching after stroke
    (Levin et al. 2002, Exp Brain Res 143:171-180) and of gait with knee osteoarthritis (Hunt
    et al. 2008, Osteoarthritis Cartilage 16:591-599).

    Parameters
    ----------
    points : mapping of str to ndarray (..., T, 3)
        mm; the trunk axis (:func:`trunk_axis`) and the hips (heading).
    plane : {"frontal", "sagittal"}
    up : str or 3-vector
        The lab's up direction in the points' frame.

    Returns
    -------
    MetricResult
        ``value`` degrees ``(..., T)``; ``params``: the plane and the trunk axis used.
    """
    if plane not in ("frontal", "sagittal"):
        raise InputError(f"trunk_lean: plane must be 'frontal' or 'sagittal', found {plane!r}")
    u = up_vector(up)
    axis, label = trunk_axis(points)
    ant, right = heading(points, u)
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    if plane == "frontal":
        value = np.degrees(np.arcsin(np.clip(np.sum(axis * right, axis=-1), -1.0, 1.0)))
    else:
        value = np.degrees(np.arctan2(np.sum(axis * ant, axis=-1), axis @ u))
    return _result(
        "trunk_lean",
        value,
        "deg",
        "trunk or hip keypoints missing in this frame",
        {"plane": plane, "axis": label, "positive": "right" if plane == "frontal" else "forward"},
    )


def trunk_rotation(points: Points, up: Up = "+y") -> MetricResult:
    """Axial rotation of the thorax relative to the pelvis, degrees, per frame.

    The third angle of the ISB thorax-to-pelvis Cardan sequence (Z flexion, X lateral bending,
    Y axial rotation; Wu et al. 2002, J Biomech 35:543-548), the transverse-plane thorax-pelvis
    angle of gait analysis: ``atan2(-Zp . Xt, Zp . Zt)`` with the pelvis's mediolateral axis
    ``Zp`` (``hip_l -> hip_r``, else the ASISs) and the thorax frame ``Yt`` = trunk axis
    (:func:`trunk_axis`), ``Zt`` = the line ``acromion_l -> acromion_r`` (else the shoulder
    joints) made perpendicular to ``Yt``, ``Xt = Yt x Zt``.  Positive when the thorax faces
    further to the left than the pelvis (the sign of ``lumbar_rotation``); unaffected by trunk
    flexion or lateral bending, and by where the patient faces.  ``up`` is not used (the
    angle is between two body frames); it is accepted for a uniform signature.
    """
    up_vector(up)
    pr, a = pick(points, "hip_r", "asis_r")
    pl, _ = pick(points, "hip_l", "asis_l")
    sr, b = pick(points, "acromion_r", "shoulder_r")
    sl, _ = pick(points, "acromion_l", "shoulder_l")
    axis, label = trunk_axis(points)
    with np.errstate(invalid="ignore", divide="ignore"):
        yt = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
        zt = sr - sl
        zt = zt - np.sum(zt * yt, axis=-1, keepdims=True) * yt
        zt = zt / np.linalg.norm(zt, axis=-1, keepdims=True)
        zp = pr - pl
        zp = zp / np.linalg.norm(zp, axis=-1, keepdims=True)
    xt = np.cross(yt, zt)
    value = np.degrees(np.arctan2(-np.sum(zp * xt, axis=-1), np.sum(zp * zt, axis=-1)))
    return _result(
        "trunk_rotation",
        value,
        "deg",
        "pelvis, trunk or shoulder keypoints missing in this frame",
        {"pelvis": a[:-2], "thorax": b[:-2], "axis": label, "positive": "thorax faces left"},
    )


def pelvic_drop(
    points: Points, side: str, up: Up = "+y", reference_deg: float | np.ndarray | None = None
) -> MetricResult:
    """Pelvic obliquity as the drop of one side of the pelvis, degrees, per frame.

    The angle between the line through the hip joint centres (``hip_r``, ``hip_l``; else the
    ASISs) and the horizontal plane, positive when ``side`` is the lower one: in single-leg
    stance, the drop of the unsupported side is the Trendelenburg sign (Hardcastle & Nade 1985,
    J Bone Joint Surg Br 67:741-746).  Measured from the patient's own level when
    ``reference_deg`` is given: the obliquity (same sign) of a reference posture, e.g. standing
    on both feet, which is subtracted.  Two-dimensional screening reads the pelvis and trunk
    during single-leg tasks against a level standing posture (Dingenen et al. 2014, Phys Ther
    Sport 15:117-123); a reference removes the patient's standing obliquity (leg-length
    difference) and, with markerless keypoints, the constant offset that the hips'
    per-keypoint bias gives the line (a 30 mm vertical bias across a hip width of
    about 180 mm tilts it by 9 degrees).  ``reference_deg`` broadcasts against the frames.
    """
    s, o = _side("pelvic_drop", side)
    ps, a = pick(points, f"hip_{s}", f"asis_{s}")
    po, _ = pick(points, f"hip_{o}", f"asis_{o}")
    value = _elevation(po - ps, up_vector(up))
    ref = 0.0 if reference_deg is None else np.asarray(reference_deg, dtype=float)
    return _result(
        "pelvic_drop",
        value - ref,
        "deg",
        "pelvis keypoints missing in this frame",
        {
            "side": side,
            "line": a[:-2],
            "positive": f"{side} side lower",
            "reference": "horizontal" if reference_deg is None else "given",
        },
    )


def shoulder_hiking(points: Points, side: str, up: Up = "+y") -> MetricResult:
    """Elevation of one shoulder above the other, degrees, per frame.

    The angle between the line through the acromions (else the shoulder joints) and the
    horizontal plane, positive when ``side`` is the higher: the shoulder elevation ("hiking")
    that accompanies weak arm elevation and reaching, with trunk movement, after stroke
    (compensatory strategies: Cirstea & Levin 2000, Brain 123:940-953).  It includes
    lateral trunk lean; a skeleton without a shoulder-girdle DoF (medpose's default) can show
    girdle elevation only in keypoints that were not fitted.
    """
    s, o = _side("shoulder_hiking", side)
    ps, a = pick(points, f"acromion_{s}", f"shoulder_{s}")
    po, _ = pick(points, f"acromion_{o}", f"shoulder_{o}")
    value = _elevation(ps - po, up_vector(up))
    return _result(
        "shoulder_hiking",
        value,
        "deg",
        "shoulder keypoints missing in this frame",
        {"side": side, "line": a[:-2], "positive": f"{side} shoulder higher"},
    )


def head_tilt(points: Points, up: Up = "+y") -> MetricResult:
    """Lateral head tilt, degrees, per frame: the angle between the line through the ears (else
    the eyes) and the horizontal plane, positive when the head tilts to the right (right ear
    lower)."""
    r, a = pick(points, "ear_r", "eye_r", "eye_outer_r")
    left, _ = pick(points, "ear_l", "eye_l", "eye_outer_l")
    value = _elevation(left - r, up_vector(up))
    return _result(
        "head_tilt",
        value,
        "deg",
        "ear or eye keypoints missing in this frame",
        {"line": a[:-2], "positive": "right ear lower"},
    )


def knee_valgus(
    points: Points, side: str, up: Up = "+y", min_projection: float = 0.5
) -> MetricResult:
    """Frontal-plane projection angle (FPPA) of the knee, degrees, per frame.

    Hip, knee and ankle joint centres projected onto the patient's frontal plane (vertical and
    the pelvis's right direction); the angle between the thigh (hip to knee) and the shank
    (knee to ankle) lines, 0 for a straight leg, positive when the knee lies medial of the
    hip-ankle line (valgus), negative for varus (Munro, Herrington & Carolan 2012, J Sport
    Rehabil 21:7-11: the deviation from 180 degrees of their angle).  A projection is only
    meaningful while the segments lie near the frontal plane: frames where the projected thigh
    or shank is shorter than ``min_projection`` times its length (flexed knee or hip, e.g. the
    bottom of a deep squat) are NaN with that reason.
    """
    s, _ = _side("knee_valgus", side)
    if not 0.0 <= float(min_projection) < 1.0:
        raise InputError(f"knee_valgus: min_projection must be in [0, 1), found {min_projection!r}")
    u = up_vector(up)
    hip, _ = pick(points, f"hip_{s}")
    knee, _ = pick(points, f"knee_{s}")
    ankle, _ = pick(points, f"ankle_{s}")
    _, right = heading(points, u)
    thigh, shank = knee - hip, ankle - knee

    def plane(v: np.ndarray) -> np.ndarray:  # (right, up) coordinates
        return np.stack([np.sum(v * right, axis=-1), v @ u], axis=-1)

    a, b = plane(thigh), plane(shank)
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    value = np.degrees(np.arctan2(cross, np.sum(a * b, axis=-1)))
    value = value if s == "r" else -value
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.minimum(
            np.linalg.norm(a, axis=-1) / np.linalg.norm(thigh, axis=-1),
            np.linalg.norm(b, axis=-1) / np.linalg.norm(shank, axis=-1),
        )
    flat = np.isfinite(ratio) & (ratio < min_projection)
    value = np.where(flat, np.nan, value)
    reasons = np.where(
        flat,
        f"thigh or shank out of the frontal plane (projection < {min_projection:g} of its length)",
        np.where(np.isfinite(value), "", "hip, knee or ankle keypoint missing in this frame"),
    )
    return MetricResult(
        "knee_valgus",
        value,
        "deg",
        tuple(reasons.ravel().tolist()),
        {"side": side, "min_projection": float(min_projection), "positive": "valgus"},
        {"projection": ratio},
    )


def heel_lift(
    points: Points, side: str, up: Up = "+y", reference_mm: float | None = None
) -> MetricResult:
    """Heel rise: height of the heel keypoint above its standing level, mm, per frame.

    The standing level is ``reference_mm`` (a height along ``up`` in the points' frame, e.g. the
    floor) or, by default, the 5th percentile of the heel's height over the frames given (the
    heel rests on the floor most of a squat or lunge; per batch element).  The FMS deep squat
    asks for the heels to stay down (Cook et al. 2014, Int J Sports Phys Ther 9:396-409).
    """
    s, _ = _side("heel_lift", side)
    heel, _ = pick(points, f"heel_{s}")
    h = heel @ up_vector(up)
    if reference_mm is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN batch elements: NaN
            ref = np.nanpercentile(h, 5.0, axis=-1, keepdims=True)
    else:
        ref = np.asarray(float(reference_mm))
    return _result(
        "heel_lift",
        h - ref,
        "mm",
        "heel keypoint missing in this frame",
        {"side": side, "reference": "P5 of heel height" if reference_mm is None else "given"},
        {"reference_mm": np.broadcast_to(ref, h.shape)},
    )
