"""Which way the data face: axis alignment, mirror detection and Euler angles of rotations.

The fit works in the skeleton's ISB axes (X anterior, Y superior, Z right).
:func:`alignment_rotation` finds the axis permutation that takes a recording's frame there,
:func:`check_handedness` warns when the keypoints are the mirror image of a body, and
:func:`euler_from_matrix` turns the rigid starts' rotation matrices into the root's angles.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ...data import KeypointSequence
from ...errors import InputError
from ...geometry import Transform
from ...io.opensim import y_up_rotation
from ...layouts import to_medpose_names

__all__ = [
    "euler_from_matrix",
    "alignment_rotation",
    "up_axis",
    "y_up_transform",
    "check_handedness",
    "MirrorWarning",
    "UP_KEYPOINTS",
]

_AX = {"X": 0, "Y": 1, "Z": 2}
#: Keypoints that give the trunk's direction (the neck, or the shoulders' midpoint).
UP_KEYPOINTS = ("neck", "shoulder_r", "shoulder_l")


def euler_from_matrix(R: torch.Tensor, seq: str) -> torch.Tensor:
    """Intrinsic Tait-Bryan angles (radians, shape (..., 3)) of rotation matrices ``R`` (..., 3, 3).

    For ``R = R_i(a) R_j(b) R_k(c)`` with distinct axes ``i, j, k`` and ``e = +1`` for a cyclic
    order (XYZ, YZX, ZXY), ``b = asin(e R[i,k])``, ``a = atan2(-e R[j,k], R[k,k])``,
    ``c = atan2(-e R[i,j], R[i,i])`` (e.g. Diebel 2006, "Representing attitude", sec. 5; the
    same convention as scipy's ``Rotation.as_euler`` with uppercase axes).  Written in torch
    because the fit initialises millions of frames on the GPU.
    """
    i, j, k = (_AX[c] for c in seq)
    e = 1.0 if (j - i) % 3 == 1 else -1.0
    b = torch.asin(torch.clamp(e * R[..., i, k], -1.0, 1.0))
    a = torch.atan2(-e * R[..., j, k], R[..., k, k])
    c = torch.atan2(-e * R[..., i, j], R[..., i, i])
    return torch.stack([a, b, c], dim=-1)


_NO_UP = (
    "cannot tell which way is up: no frame has hip_r, hip_l and neck or shoulders; "
    "give the up axis (up='+z'...)"
)


def up_axis(
    sequence_positions: np.ndarray, names: Sequence[str], up: str | None = None
) -> tuple[int, float]:
    """The data's up axis ``(index 0-2, sign +-1)``: the axis closest to the median trunk
    direction (mid-hip to neck, or to the shoulders' mid-point), or ``up`` when given.

    Parameters
    ----------
    up : {"+x", "-x", "+y", "-y", "+z", "-z"}, optional
        Force the data's up axis instead of estimating it.

    Raises
    ------
    InputError
        ``up`` is not an axis, or (not given) no frame has hip_r, hip_l and neck or shoulders.
    """
    if up is not None:
        key = str(up).lower().strip()
        if key not in ("+x", "-x", "+y", "-y", "+z", "-z", "x", "y", "z"):
            raise InputError(f"up={up!r}: expected one of '+x', '-x', '+y', '-y', '+z', '-z'")
        return "xyz".index(key[-1]), (-1.0 if key[0] == "-" else 1.0)
    P = np.asarray(sequence_positions, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    top = [P[:, idx[n]] for n in UP_KEYPOINTS if n in idx]
    if "hip_r" not in idx or "hip_l" not in idx or not top:
        raise InputError(_NO_UP)
    mid = 0.5 * (P[:, idx["hip_r"]] + P[:, idx["hip_l"]])
    sh = [P[:, idx[n]] for n in ("shoulder_r", "shoulder_l") if n in idx]
    if "neck" in idx and np.isfinite(P[:, idx["neck"]]).all(axis=1).any():
        upv = P[:, idx["neck"]] - mid
    else:
        upv = np.nanmean(np.stack(sh if sh else top), axis=0) - mid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        u = np.nanmedian(upv, axis=0)
    if not np.all(np.isfinite(u)):
        raise InputError(_NO_UP)
    au = int(np.argmax(np.abs(u)))
    return au, float(np.sign(u[au])) or 1.0


def y_up_transform(seq: KeypointSequence, up: str | None = None) -> Transform:
    """The rotation that turns a 3D keypoint sequence's frame so that up is +Y, OpenSim's
    vertical: ``seq.transformed(y_up_transform(seq))`` is what OpenSim and Pose2Sim expect in a
    ``.trc`` (a Z-up lab's markers, e.g. a Qualisys calibration's world, lie on their side in
    OpenSim, and a model fitted to them has its pelvis angles near gimbal lock).

    The up axis is :func:`up_axis` of the body (or ``up``, ``"+z"``...); the turn is
    :func:`medpose.io.opensim.y_up_rotation`: for a Z-up frame ``(x, y, z) -> (y, z, x)``,
    Pose2Sim's own conversion; a Y-up frame gives the identity.  Source: the sequence's frame;
    target ``"opensim"``.
    """
    if seq.ndim != 3:
        raise InputError(f"y_up_transform: found {seq.ndim}D keypoints; expected 3D, in mm")
    a, s = up_axis(seq.positions, to_medpose_names(seq.names), up)
    return Transform(Rotation.from_matrix(y_up_rotation(a, s)), source=seq.frame, target="opensim")


def alignment_rotation(
    sequence_positions: np.ndarray, names: Sequence[str], up: str | None = None
) -> np.ndarray:
    """Axis-permutation rotation ``A`` (3, 3) taking the data frame onto the skeleton's ISB axes.

    The data's up axis (:func:`up_axis`: the one closest to the median trunk direction, mid-hip
    to neck) becomes +Y (superior), the remaining axis closest to the median hip_l -> hip_r
    direction +Z (right), so the pelvis angles stay meaningful in the lab's axes (a Y-up OpenSim
    frame with the subject facing +X gives the identity).  ``x_skeleton = A @ x_data``.

    Parameters
    ----------
    up : {"+x", "-x", "+y", "-y", "+z", "-z"}, optional
        Force the data's up axis instead of estimating it.
    """
    au, su = up_axis(sequence_positions, names, up)
    P = np.asarray(sequence_positions, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = np.nanmedian(P[:, idx["hip_r"]] - P[:, idx["hip_l"]], axis=0)
    rest = [a for a in range(3) if a != au]
    r = np.nan_to_num(r)
    ar = rest[int(np.argmax(np.abs(r[rest])))]
    sr = float(np.sign(r[ar])) or 1.0
    A = np.zeros((3, 3))
    A[1, au] = su
    A[2, ar] = sr
    A[0] = np.cross(A[1], A[2])
    return A


#: Keypoint pairs ``(front, back)`` whose difference points anteriorly on a human body in any
#: posture within the joints' ranges: toes ahead of the heel (or ankle), the nose ahead of the
#: ears (or the neck), each ASIS ahead of its PSIS.  A mirrored body (a left-handed frame, or left
#: and right exchanged) has them point backwards once up and right are set from trunk and hips.
_FORWARD_CUES: tuple[tuple[str, str], ...] = (
    ("big_toe_r", "heel_r"),
    ("big_toe_l", "heel_l"),
    ("big_toe_r", "ankle_r"),
    ("big_toe_l", "ankle_l"),
    ("nose", "ear_r"),
    ("nose", "ear_l"),
    ("nose", "neck"),
    ("asis_r", "psis_r"),
    ("asis_l", "psis_l"),
)
#: A cue votes when its anterior component is at least this far from 0 (mm): several times
#: keypoint noise, and a fraction of a foot (about 200 mm) or a head (about 100 mm) length.
_CUE_MM = 10.0
#: Fraction of the votes that must point backwards before a sequence is called mirrored: a
#: mirror image turns every cue in every frame; odd postures (a flexed trunk, a turned head)
#: turn a few.
_MIRROR_VOTES = 0.9


class MirrorWarning(UserWarning):
    """The keypoints look like the mirror image of a body (see :func:`check_handedness`)."""


def check_handedness(sequence_positions: np.ndarray, names: Sequence[str]) -> None:
    """Warn (:class:`MirrorWarning`) when the keypoints are the mirror image of a body.

    In every frame, superior runs from the mid-hip to the neck (or the shoulders) and right from
    ``hip_l`` to ``hip_r``; anterior is then ``superior x right`` (the ISB axes: X = Y x Z).  A
    mirror (one axis negated, a left-handed camera frame, or every left/right label exchanged)
    reverses that cross product, so the body seems to face backwards: the toes point behind
    the heels, the nose behind the ears.  Each available pair of ``_FORWARD_CUES`` votes in each
    frame with the sign of its anterior component (when beyond ``_CUE_MM``); the sequence is
    called mirrored when at least ``_MIRROR_VOTES`` of the votes point backwards.  Layouts with
    none of these keypoints cannot be checked: hips and trunk alone are a planar triad, whose
    mirror image is a rotation of it.  It warns rather than raises because the cues are
    postural: a few frames of poses far outside the joints' ranges could turn them all (about 3
    in 1000 sets of 3 random frames drawn up to twice the ranges, none within the ranges).

    Parameters
    ----------
    sequence_positions : ndarray, shape (T, K, 3)
        Keypoints (mm) in the data's frame.
    names : sequence of str
        Their medpose names.

    Warns
    -----
    MirrorWarning
        Naming the fraction of backward votes, the cues, their median anterior component and
        what is expected.  A skeleton fitted to a mirrored body leaves tens of millimetres of
        residual (about 70 mm median on a synthetic squat) and its angles mean nothing.
    """
    P = np.asarray(sequence_positions, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    pairs = [(a, b) for a, b in _FORWARD_CUES if a in idx and b in idx]
    if not pairs:
        return
    mid = 0.5 * (P[:, idx["hip_r"]] + P[:, idx["hip_l"]])
    if "neck" in idx:
        top = P[:, idx["neck"]]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            top = np.nanmean(
                np.stack([P[:, idx[n]] for n in ("shoulder_r", "shoulder_l") if n in idx]), axis=0
            )
    anterior = np.cross(top - mid, P[:, idx["hip_r"]] - P[:, idx["hip_l"]])  # (T, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        anterior = anterior / np.linalg.norm(anterior, axis=1, keepdims=True)
    comps = np.concatenate(
        [np.einsum("ti,ti->t", P[:, idx[a]] - P[:, idx[b]], anterior) for a, b in pairs]
    )
    votes = comps[np.isfinite(comps) & (np.abs(comps) >= _CUE_MM)]
    if votes.size == 0:
        return
    backwards = float(np.mean(votes < 0))
    if backwards >= _MIRROR_VOTES:
        cues = ", ".join(sorted({f"{a} - {b}" for a, b in pairs}))
        warnings.warn(
            f"fit: the keypoints are the mirror image of a body (a left-handed frame, one axis "
            f"negated, or every left and right label exchanged): with superior from the hips to "
            f"the trunk and right from hip_l to hip_r, {backwards:.0%} of the anterior cues "
            f"({cues}) point backwards, median {float(np.median(votes)):.0f} mm; expected them "
            "to point forwards - negate one axis of the data or correct the left/right labels; "
            "the angles fitted to a mirror image mean nothing",
            MirrorWarning,
            stacklevel=3,
        )
