"""Movement-quality criteria of clinical tests, measured per frame from 3D keypoints.

Each function takes keypoint trajectories (``(T, 3)`` arrays, any unit, one frame per row)
and the lab's upward direction (``(3,)``, unit length, e.g. the skeleton's superior axis found
by :func:`medpose.kinematics.fit.alignment_rotation`) and returns one angle per frame in
degrees, NaN where a keypoint is missing.  The body's own axes come from the keypoints:
``right`` is the horizontal part of the left-to-right hip line, ``forward = up x right``
(right-handed frame), so a subject who does not face the camera squarely is measured in her
own sagittal and frontal planes.  ``pelvis`` is the midpoint of the hips and ``neck`` the
base of the neck (between the shoulders): the trunk line runs from one to the other.

Deep squat, the Functional Movement Screen criteria (Cook, Burton, Hoogenboom and Voight
2014, *Int J Sports Phys Ther* 9(3):396-409; Cook, Burton and Hoogenboom 2006, *N Am J Sports
Phys Ther* 1(2):62-72): "upper torso is parallel with tibia or toward vertical, femur below
horizontal, knees are aligned over feet, dowel aligned over feet":

* :func:`thigh_angle`: elevation of the hip above the knee, degrees above the horizontal
  (negative: femur below horizontal);
* :func:`torso_tibia_angle`: forward inclination of the trunk minus that of the tibia in the
  sagittal plane (> 0: the torso leans further forward than the tibia);
* :func:`knee_over_foot`: inclination of the shank in the frontal plane, positive with the
  knee medial to the ankle (knee falling in, valgus);
* :func:`arm_trunk_angle`: forward inclination of the arms (shoulders to wrists) minus that
  of the trunk in the sagittal plane (> 0: the arms, and a dowel held overhead, drift in
  front of the trunk line; 0 with the shoulders in full 180-degree flexion).

Shoulder abduction (goniometry: Norkin and White, *Measurement of Joint Motion*; AAOS 1965 and
Greene and Heckman 1994 for the 180-degree average range):

* :func:`humeral_elevation`: angle between the upper arm (shoulder to elbow) and the trunk
  line pointing down, the goniometer's arms (0 with the arm at the side, 180 overhead);
* :func:`elevation_plane`: angle of the upper arm out of the frontal plane, from its
  horizontal projection (0: abduction in the frontal plane; 90: flexion);
* :func:`trunk_lateral_flexion`: sideways inclination of the trunk line in the frontal plane,
  positive towards the body's right;
* :func:`shoulder_girdle_elevation`: elevation of the neck-to-shoulder line above the
  horizontal (shoulder hiking raises it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputError

__all__ = [
    "CRITERION_METRICS",
    "body_axes",
    "thigh_angle",
    "torso_tibia_angle",
    "knee_over_foot",
    "arm_trunk_angle",
    "humeral_elevation",
    "elevation_plane",
    "trunk_lateral_flexion",
    "shoulder_girdle_elevation",
]


#: Criterion metrics: name -> (unit, description).  All are computed from 3D keypoints.
CRITERION_METRICS: Mapping[str, tuple[str, str]] = {
    "thigh_angle": (
        "deg",
        "hip above knee at the squat's deepest point (FMS: femur below horizontal)",
    ),
    "torso_tibia_angle": (
        "deg",
        "trunk minus tibia forward inclination at the deepest point (FMS)",
    ),
    "knee_over_foot": (
        "deg",
        "shank's medial inclination at the deepest point (FMS: knees over feet)",
    ),
    "arm_trunk_angle": ("deg", "arms in front of the trunk line at the deepest point (FMS: dowel)"),
    "humeral_elevation": ("deg", "upper arm to trunk angle at the top of the movement"),
    "elevation_plane": ("deg", "upper arm out of the frontal plane at the top of the movement"),
    "trunk_lateral_flexion": ("deg", "sideways trunk inclination change, start to top"),
    "shoulder_girdle_elevation": ("deg", "rise of the neck-to-shoulder line, start to top"),
}


def _arr(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(f"criteria: {name} must have shape (T, 3), found {a.shape}")
    return a


def _up(up: np.ndarray) -> np.ndarray:
    u = np.asarray(up, dtype=float).reshape(-1)
    n = float(np.linalg.norm(u)) if u.size == 3 else 0.0
    if not (u.size == 3 and np.isfinite(n) and n > 0):
        raise InputError(f"criteria: up must be a non-zero 3-vector, found {up!r}")
    return u / n


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, np.broadcast_to(b, a.shape))


def _incl(v: np.ndarray, axis: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Inclination from vertical of ``v`` towards ``axis``, in the plane of ``up`` and ``axis``."""
    return np.degrees(np.arctan2(_dot(v, axis), _dot(v, up)))


def body_axes(
    hip_l: np.ndarray, hip_r: np.ndarray, up: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The body's horizontal ``forward`` and ``right`` unit vectors per frame, ``(T, 3)`` each.

    ``right`` is the left-to-right hip line with its vertical part removed; ``forward`` is
    ``up x right``.
    """
    u = _up(up)
    r = _arr(hip_r, "hip_r") - _arr(hip_l, "hip_l")
    r = _unit(r - _dot(r, u)[:, None] * u)
    return _unit(np.cross(u, r)), r


def thigh_angle(hip: np.ndarray, knee: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Elevation of the hip above the knee, degrees above the horizontal, ``(T,)``.

    90 standing; 0 with the femur horizontal; negative with the hip below the knee (the FMS
    deep-squat criterion "femur below horizontal").
    """
    v = _unit(_arr(hip, "hip") - _arr(knee, "knee"))
    return np.degrees(np.arcsin(np.clip(_dot(v, _up(up)), -1.0, 1.0)))


def torso_tibia_angle(
    pelvis: np.ndarray,
    neck: np.ndarray,
    knee: np.ndarray,
    ankle: np.ndarray,
    up: np.ndarray,
    forward: np.ndarray,
) -> np.ndarray:
    """Forward inclination of the trunk minus that of the tibia, sagittal plane, degrees.

    Both are measured from vertical towards ``forward`` (:func:`body_axes`); <= 0 meets the
    FMS criterion "upper torso parallel with tibia or toward vertical".
    """
    u = _up(up)
    trunk = _arr(neck, "neck") - _arr(pelvis, "pelvis")
    tibia = _arr(knee, "knee") - _arr(ankle, "ankle")
    return _incl(trunk, forward, u) - _incl(tibia, forward, u)


def knee_over_foot(
    knee: np.ndarray, ankle: np.ndarray, up: np.ndarray, medial: np.ndarray
) -> np.ndarray:
    """Frontal-plane inclination of the shank, degrees, positive with the knee medial to the ankle.

    ``medial`` is the body's horizontal medial direction for that leg (``right`` for the
    left leg, ``-right`` for the right one, :func:`body_axes`); <= 0 meets the FMS criterion
    "knees aligned over feet".
    """
    return _incl(_arr(knee, "knee") - _arr(ankle, "ankle"), medial, _up(up))


def arm_trunk_angle(
    shoulder: np.ndarray,
    wrist: np.ndarray,
    pelvis: np.ndarray,
    neck: np.ndarray,
    up: np.ndarray,
    forward: np.ndarray,
) -> np.ndarray:
    """Forward inclination of the arm (shoulder to wrist) minus the trunk's, sagittal plane, deg.

    0 with the arm in line with the trunk (shoulder flexed 180 degrees); > 0 with the arm,
    and a dowel held overhead, in front of the trunk line.
    """
    u = _up(up)
    arm = _arr(wrist, "wrist") - _arr(shoulder, "shoulder")
    trunk = _arr(neck, "neck") - _arr(pelvis, "pelvis")
    return _incl(arm, forward, u) - _incl(trunk, forward, u)


def humeral_elevation(
    shoulder: np.ndarray, elbow: np.ndarray, pelvis: np.ndarray, neck: np.ndarray
) -> np.ndarray:
    """Angle between the upper arm and the trunk line pointing down, degrees, ``(T,)``."""
    arm = _unit(_arr(elbow, "elbow") - _arr(shoulder, "shoulder"))
    down = _unit(_arr(pelvis, "pelvis") - _arr(neck, "neck"))
    return np.degrees(np.arccos(np.clip(_dot(arm, down), -1.0, 1.0)))


def elevation_plane(
    shoulder: np.ndarray, elbow: np.ndarray, up: np.ndarray, forward: np.ndarray
) -> np.ndarray:
    """Angle of the upper arm's horizontal projection out of the frontal plane, 0-90 degrees.

    0: the arm moves in the frontal plane (abduction); 90: in the sagittal plane (flexion).
    Undefined (noisy) with the arm near vertical; read it where the arm is near horizontal.
    """
    u = _up(up)
    v = _arr(elbow, "elbow") - _arr(shoulder, "shoulder")
    h = v - _dot(v, u)[:, None] * u
    ant = np.abs(_dot(h, forward))
    lat = np.linalg.norm(h - _dot(h, forward)[:, None] * forward, axis=-1)
    return np.degrees(np.arctan2(ant, lat))


def trunk_lateral_flexion(
    pelvis: np.ndarray, neck: np.ndarray, up: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Sideways inclination of the trunk line in the frontal plane, degrees, + to the right."""
    return _incl(_arr(neck, "neck") - _arr(pelvis, "pelvis"), right, _up(up))


def shoulder_girdle_elevation(neck: np.ndarray, shoulder: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Elevation of the neck-to-shoulder line above the horizontal, degrees, ``(T,)``."""
    v = _unit(_arr(shoulder, "shoulder") - _arr(neck, "neck"))
    return np.degrees(np.arcsin(np.clip(_dot(v, _up(up)), -1.0, 1.0)))
