"""Closed-chain leg postures of the synthetic exercises: lunges with both feet planted.

A lunge moves the pelvis while both feet stay where they are, so the leg angles follow from
the foot positions (inverse kinematics of the hip-knee-ankle chain) rather than being set
one by one.  :func:`leg_ik` solves that chain in closed form for the skeleton's hip
(``ZXY``: flexion, adduction, rotation = 0), knee (flexion) and ankle (dorsiflexion,
subtalar inversion) conventions, with the foot's sole set to a requested orientation.
:func:`inline_lunge` and :func:`side_lunge` give the angles of the two lunges of the
Functional Movement Screen (Cook et al. 2014, Int J Sports Phys Ther 9(3):396-409) over a
movement fraction ``p`` in [0, 1]; :func:`scaption` converts arm elevation in the scapular
plane to the skeleton's shoulder flexion and abduction.

Every vector here is in a *side frame*: X anterior, Y up, Z lateral (to the right for the
right leg, to the left for the left leg), so one solution serves both sides (the skeleton's
mirror rule gives the left side the same anatomical meaning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinematics.fk import forward_kinematics, segment_poses

__all__ = [
    "LegGeometry",
    "leg_geometry",
    "leg_ik",
    "inline_lunge",
    "side_lunge",
    "scaption",
    "planted_legs",
    "place_root",
]

_DEG = np.pi / 180.0


@dataclass(frozen=True)
class LegGeometry:
    """Lengths and offsets of the right leg in the zero pose (mm, side frame, pelvis origin)."""

    hip: np.ndarray  # hip centre relative to the pelvis origin
    thigh: float
    shank: float
    toe: np.ndarray  # big toe relative to the ankle centre (foot frame = world in zero pose)
    heel: np.ndarray
    ankle_height: float  # ankle centre above the lowest foot point when the foot is flat


def leg_geometry(skeleton: Any) -> LegGeometry:
    """The right leg's geometry read off the skeleton's zero pose by forward kinematics."""
    names = list(skeleton.keypoint_names)
    kp = np.asarray(forward_kinematics(skeleton, np.zeros((1, len(skeleton.dof_names)))))[0]

    def at(n: str) -> np.ndarray:
        return kp[names.index(n)]

    hip, knee, ankle = at("hip_r"), at("knee_r"), at("ankle_r")
    feet = [at(n) for n in ("heel_r", "big_toe_r", "small_toe_r") if n in names]
    return LegGeometry(
        hip=hip - at("pelvis"),
        thigh=float(np.linalg.norm(knee - hip)),
        shank=float(np.linalg.norm(ankle - knee)),
        toe=at("big_toe_r") - ankle,
        heel=at("heel_r") - ankle,
        ankle_height=float(ankle[1] - min(f[1] for f in feet)),
    )


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def _rx(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2
    )


def leg_ik(
    hip_to_ankle: np.ndarray, sole_up: np.ndarray, geo: LegGeometry
) -> dict[str, np.ndarray]:
    """Leg angles (degrees) that put the ankle at ``hip_to_ankle`` with the sole facing ``sole_up``.

    Parameters
    ----------
    hip_to_ankle : ndarray (T, 3)
        Ankle centre relative to the hip centre, side frame of the *pelvis* (mm).
    sole_up : ndarray (T, 3)
        The foot's up direction (normal of the sole), side frame of the pelvis.
    geo : LegGeometry

    Returns
    -------
    dict
        ``hip_flexion``, ``hip_adduction``, ``knee_flexion``, ``ankle_dorsiflexion``,
        ``subtalar_inversion`` (hip rotation is 0).  The knee bends forwards; an ankle
        out of reach gives a straight knee pointing at it.
    """
    v = np.asarray(hip_to_ankle, dtype=float)
    l1, l2 = geo.thigh, geo.shank
    d = np.clip(np.linalg.norm(v, axis=-1), abs(l1 - l2) + 1e-6, l1 + l2)
    k = np.arccos(np.clip((d**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0))
    ux, uy = -l2 * np.sin(k), -l1 - l2 * np.cos(k)
    vn = v / np.linalg.norm(v, axis=-1, keepdims=True) * d[:, None]
    a = np.arcsin(np.clip(vn[:, 2] / uy, -1.0, 1.0))
    f = np.arctan2(vn[:, 1], vn[:, 0]) - np.arctan2(uy * np.cos(a), ux)
    f = (f + np.pi) % (2 * np.pi) - np.pi
    m = _rz(f) @ _rx(a) @ _rz(-k)
    w = np.einsum("tji,tj->ti", m, np.asarray(sole_up, dtype=float))
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    s = np.arcsin(np.clip(w[:, 2], -1.0, 1.0))
    dors = np.arctan2(-w[:, 0], w[:, 1])
    return {
        "hip_flexion": f / _DEG,
        "hip_adduction": a / _DEG,
        "knee_flexion": k / _DEG,
        "ankle_dorsiflexion": dors / _DEG,
        "subtalar_inversion": s / _DEG,
    }


def _pitch_up(psi_deg: np.ndarray) -> np.ndarray:
    """Sole normal of a foot pitched by ``psi`` (degrees, toes up positive) about the lateral axis."""
    p = np.asarray(psi_deg, dtype=float) * _DEG
    return np.stack([-np.sin(p), np.cos(p), np.zeros_like(p)], -1)


def _sagittal(angle_deg: np.ndarray, length: float) -> np.ndarray:
    """A segment of ``length`` pointing down, rotated forwards by ``angle`` (degrees)."""
    a = np.asarray(angle_deg, dtype=float) * _DEG
    return np.stack([length * np.sin(a), -length * np.cos(a), np.zeros_like(a)], -1)


def inline_lunge(
    p: np.ndarray,
    geo: LegGeometry,
    knee_deg: tuple[float, float] = (0.0, 100.0),
    max_dorsiflexion_deg: float = 20.0,
    shin_deg: float = 20.0,
    depth: float = 1.0,
) -> dict[str, dict[str, np.ndarray]]:
    """Leg angles of an in-line lunge over the movement fraction ``p`` (T,).

    Start: split stance, both knees straight, the front leg 22 deg forwards with its foot
    flat, the rear leg about 29 deg backwards on the ball of its foot (heel up 15 deg).  The
    front knee bends from ``knee_deg[0]`` to ``knee_deg[1]`` while the front shank tilts from
    22 deg behind to ``shin_deg`` ahead of vertical (knee over the toes); the rear foot
    pivots on its big toe (pitch from -15 deg, steeper where the rear ankle would pass
    ``max_dorsiflexion_deg``: the skeleton has no toe joint) and the rear leg follows by
    inverse kinematics, so both
    feet stay planted.  Pelvis and trunk stay upright; each foot stays under its own hip.
    A shallower lunge (``depth`` < 1: the front knee bending that fraction of the full
    lunge) tilts the front shank that fraction of the way, so the rear foot stays in reach.

    Returns ``{"front": angles, "rear": angles}`` as from :func:`leg_ik`.
    """
    p = np.asarray(p, dtype=float)
    kf = knee_deg[0] + (knee_deg[1] - knee_deg[0]) * p
    stance = 22.0  # front leg's angle at the start, degrees
    sigma = (
        -stance + (stance + shin_deg) * depth * p
    )  # shank tilt, knee ahead of the ankle, degrees
    hf = kf - sigma  # the shank is -sigma from vertical
    ankle_f = _sagittal(hf, geo.thigh) + _sagittal(hf - kf, geo.shank)  # from the front hip
    front = {
        "hip_flexion": hf,
        "hip_adduction": np.zeros_like(p),
        "knee_flexion": kf,
        "ankle_dorsiflexion": sigma,
        "subtalar_inversion": np.zeros_like(p),
    }
    # the rear toe, fixed where the start pose puts it (relative to the front ankle)
    hip_rel = -ankle_f  # hip centre relative to the front ankle (both hips share x, y)
    # the rear leg starts straight, its foot pitched psi0 with the big toe on the floor
    psi0, psi1 = -15.0, -45.0
    reach = geo.thigh + geo.shank
    toe_drop = float((_rot_pitch(psi0) @ geo.toe)[1])
    rear_reach = 0.999 * reach  # the knee ~2.5 deg short of straight: slack for the first frames
    cos_r = (reach * np.cos(stance * _DEG) + geo.ankle_height + toe_drop) / rear_reach
    theta_r = float(np.arccos(np.clip(cos_r, -1.0, 1.0))) / _DEG
    start_leg = _sagittal(np.array([-theta_r]), rear_reach)[0]
    toe0 = hip_rel[0] + start_leg + _rot_pitch(psi0) @ geo.toe * [1, 1, 0]
    psi_lin = psi0 + (psi1 - psi0) * p
    psi = psi_lin
    for _ in range(60):  # the foot pitches further while the ankle would pass 20 deg dorsiflexion
        ankle_r = toe0[None, :] - np.einsum("tij,j->ti", _rz(psi * _DEG), geo.toe * [1, 1, 0])
        rear = leg_ik(ankle_r - hip_rel, _pitch_up(psi), geo)
        shank = rear["hip_flexion"] - rear["knee_flexion"]
        psi = np.minimum(psi_lin, 0.5 * psi + 0.5 * (shank + max_dorsiflexion_deg))
    return {"front": front, "rear": rear}


def _rot_pitch(psi_deg: float) -> np.ndarray:
    return _rz(np.array([psi_deg * _DEG]))[0]


def side_lunge(
    p: np.ndarray,
    geo: LegGeometry,
    knee_peak_deg: float = 80.0,
    stance_deg: float = 20.0,
    tilt_deg: float = 30.0,
    back: float = 0.35,
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Leg angles of a side (lateral) lunge over the movement fraction ``p`` (T,).

    Start: wide stance, both legs straight and abducted ``stance_deg``.  The pelvis shifts
    towards the lunging foot, moves back (``back`` times the leg length) and tilts forwards
    (``tilt_deg``, sitting back)
    while the trailing leg stays straight; the lunging knee bends to ``knee_peak_deg`` at
    ``p = 1`` (the sideways shift that gives it is solved for).  Both feet stay planted and
    flat (subtalar angle within its range; the trailing foot may roll).

    Returns ``({"lunge": angles, "trail": angles}, pelvis_tilt_deg)``.
    """
    p = np.asarray(p, dtype=float)
    reach = geo.thigh + geo.shank
    hz = abs(float(geo.hip[2]))
    # feet relative to the pelvis origin at the start (z: towards the lunging side)
    s0 = stance_deg * _DEG
    foot_z = hz + reach * np.sin(s0)
    foot_y = -reach * np.cos(s0)

    def legs(c: np.ndarray, q: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        dz = c * foot_z  # pelvis shift towards the lunging foot
        dx = -back * reach * q
        # trailing leg straight: hip->ankle length = 0.999 reach (world frame)
        tz = foot_z + dz - hz  # trailing ankle lies on the other side
        tx = -dx
        ty2 = np.maximum((0.999 * reach) ** 2 - tz**2 - tx**2, 1.0)
        pelvis_y = foot_y + np.sqrt(ty2)  # the pelvis drops as it shifts
        tilt = tilt_deg * q * _DEG
        to_pelvis = np.transpose(_rz(-tilt), (0, 2, 1))  # world -> pelvis (anterior tilt)
        up = np.einsum("tij,j->ti", to_pelvis, np.array([0.0, 1.0, 0.0]))
        out = {}
        for leg, hip_z, ank_z in (("lunge", hz, foot_z), ("trail", -hz, -foot_z)):
            # world vector hip -> ankle, z towards the lunging side, then into the side frame
            v = np.stack([-dx, foot_y - pelvis_y, ank_z - dz - hip_z], -1)
            v = np.einsum("tij,tj->ti", to_pelvis, v)
            if leg == "trail":
                v[:, 2] = -v[:, 2]
            out[leg] = leg_ik(v, up, geo)
        return out

    lo, hi = 0.0, 0.95
    one = np.ones(1)
    for _ in range(50):  # the shift whose lunging knee reaches the peak
        mid = 0.5 * (lo + hi)
        k = legs(mid * one, one)["lunge"]["knee_flexion"][0]
        lo, hi = (mid, hi) if k < knee_peak_deg else (lo, mid)
    c = 0.5 * (lo + hi) * p
    return legs(c, p), tilt_deg * p


def scaption(elevation_deg: np.ndarray, plane_deg: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Shoulder flexion and abduction (degrees) of arm elevation in a plane ``plane_deg``
    in front of the frontal plane (the scapular plane: 30-40 deg).

    With the skeleton's ``ZXY`` shoulder (flexion about Z, then abduction about X, rotation
    about the humerus), the humerus direction ``(cos a sin f, -cos a cos f, sin a)`` equals the
    elevation ``e`` in that plane when ``sin a = sin e cos(plane)`` and
    ``tan f = sin e sin(plane) / cos e``.
    """
    e = np.asarray(elevation_deg, dtype=float) * _DEG
    pl = plane_deg * _DEG
    a = np.arcsin(np.sin(e) * np.cos(pl))
    f = np.arctan2(np.sin(e) * np.sin(pl), np.cos(e))
    return f / _DEG, a / _DEG


def planted_legs(
    skeleton: Any,
    col: dict[str, int],
    values: np.ndarray,
    max_list_deg: float = 5.0,
    max_dorsiflexion_deg: float = 20.0,
) -> np.ndarray:
    """Leg angles of a two-footed movement (squat, sit to stand) with both feet planted and flat.

    ``values`` holds the angles each leg would take on its own (an impaired side bending
    less, or later).  Planting each ankle where the first frame has it, each leg alone would
    put the pelvis somewhere else; the pelvis goes to the mean of the two places, dropped
    sideways (``pelvis_list``, at most ``max_list_deg``) on the side whose leg bends more,
    and each leg reaches its planted ankle with the sole flat by :func:`leg_ik` (where the
    ankle would pass ``max_dorsiflexion_deg`` the heel rises, the foot pivoting on its big
    toe).  With a pelvis
    list the feet turn about the ankles by about as much (hip rotation stays 0).  Returns
    a copy with the hip, knee, ankle and subtalar angles and ``pelvis_list`` replaced (hip
    rotation as given: 0 in these movements).  The root translation is left to
    :func:`place_root`.
    """
    names = list(skeleton.keypoint_names)
    geo = leg_geometry(skeleton)
    q = values.copy()
    q[:, [col["pelvis_tx"], col["pelvis_ty"], col["pelvis_tz"]]] = 0.0
    kp = np.asarray(forward_kinematics(skeleton, q))
    hip = {s: kp[:, names.index(f"hip_{s}")] for s in "rl"}
    ankle = {s: kp[0, names.index(f"ankle_{s}")] for s in "rl"}  # planted here
    # where each leg alone would put the pelvis origin (it is at 0 in q)
    origin = {s: ankle[s] - kp[:, names.index(f"ankle_{s}")] for s in "rl"}
    centre = 0.5 * (origin["r"] + origin["l"])
    rise = (origin["l"] + hip["l"])[:, 1] - (origin["r"] + hip["r"])[:, 1]
    width = float(np.linalg.norm(hip["l"][0] - hip["r"][0]))
    most = np.sin(max_list_deg * _DEG)
    q[:, col["pelvis_list"]] += np.arcsin(np.clip(rise / width, -most, most)) / _DEG
    rot, _ = segment_poses(skeleton, q)
    pelvis = rot[:, list(skeleton.segment_names).index("pelvis")]  # pelvis -> world
    out = values.copy()
    out[:, col["pelvis_list"]] = q[:, col["pelvis_list"]]
    toe = np.array([geo.toe[0], -geo.ankle_height, 0.0])  # the floor under the big toe
    for s, side in (("r", 1.0), ("l", -1.0)):
        mirror = np.array([1.0, 1.0, side])
        hip_world = centre + np.einsum("tij,j->ti", pelvis, geo.hip * mirror)
        pitch = np.zeros(len(q))  # toes up positive: the heel rises where it goes negative
        for _ in range(8):  # past the dorsiflexion limit the foot pivots on the big toe
            at = ankle[s] + toe - np.einsum("tij,j->ti", _rz(pitch * _DEG), toe)
            to_ankle = np.einsum("tji,tj->ti", pelvis, at - hip_world) * mirror
            up = np.einsum("tji,tj->ti", pelvis, _pitch_up(pitch)) * mirror
            legs = leg_ik(to_ankle, up, geo)
            pitch = np.minimum(pitch + max_dorsiflexion_deg - legs["ankle_dorsiflexion"], 0.0)
        for dof, v in legs.items():
            if f"{dof}_{s}" in col:
                out[:, col[f"{dof}_{s}"]] = v
    return out


_FOOT = ("heel_", "big_toe_", "small_toe_", "ankle_", "lateral_malleolus_", "medial_malleolus_")


def place_root(
    skeleton: Any,
    col: dict[str, int],
    values: np.ndarray,
    anchor: str,
    side: str = "r",
) -> np.ndarray:
    """Set ``pelvis_tx/ty/tz`` so the body rests on the floor (Y = 0).

    ``anchor``: ``"floor"`` (gait: the lowest foot point on the floor, the pelvis free to
    travel), ``"feet"`` (the lowest foot point on the floor and the mid-ankle point fixed),
    ``"foot"`` (the lowest foot point on the floor and the ankle of ``side`` fixed: one planted
    foot), ``"pelvis"`` (seated: the pelvis where the first frame has it, seat at knee height),
    ``"supine"`` (lying: the lowest point of the body on the floor, the pelvis fixed).
    """
    if not all(d in col for d in ("pelvis_tx", "pelvis_ty", "pelvis_tz")):
        return values
    names = tuple(skeleton.keypoint_names)
    feet = [i for i, n in enumerate(names) if n.startswith(_FOOT)]
    if not feet:
        return values
    trans = np.array([col["pelvis_tx"], col["pelvis_ty"], col["pelvis_tz"]])
    q = values.copy()
    keep = q[:, trans].copy()
    q[:, trans] = 0.0
    kp = np.asarray(forward_kinematics(skeleton, q))
    foot = kp[:, feet]
    out = values.copy()
    if anchor == "pelvis":
        out[:, trans[1]] = -np.min(foot[0, :, 1])
        return out
    if anchor == "supine":
        out[:, trans[1]] = -np.min(kp[0, :, 1])
        return out
    out[:, trans[1]] = -np.min(foot[:, :, 1], axis=1)
    if anchor in ("feet", "foot"):
        prefix = "ankle_" if anchor == "feet" else f"ankle_{side}"
        ank = [i for i, n in enumerate(names) if n.startswith(prefix)] or feet
        centre = kp[:, ank].mean(axis=1)
        out[:, trans[0]] = keep[:, 0] - (centre[:, 0] - centre[0, 0])
        out[:, trans[2]] = keep[:, 2] - (centre[:, 2] - centre[0, 2])
    return out
