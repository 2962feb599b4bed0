"""The constrained skeleton fit: joint angles that respect anatomy, for every frame at once.

:func:`fit` finds, for every frame, the DoF values ``q`` of a
:class:`~medpose.kinematics.skeleton.Skeleton` whose keypoints best match the observed ones,

.. math::

    \\min_{lo \\le q \\le hi} \\sum_k c_k \\lVert FK_k(q) - x_k \\rVert^2
        + \\sum_d (w_s\\, b_d(q_d))^2 + \\sum_d (\\lambda (q_d - \\bar q_d))^2

(confidence-weighted keypoint residuals in mm; an optional soft prior ``b_d`` = depth inside a
band near the limits, :class:`~medpose.kinematics.limits.JointLimits`; an optional temporal
smoothness towards the mean ``\\bar q`` of the neighbouring frames).

Solver: projected Levenberg-Marquardt (Levenberg 1944; Marquardt 1963, SIAM J Appl Math
11:431-441), batched over frames in torch.  Box constraints are kept by projection: every
step is clipped into ``[lo, hi]`` and DoFs at a bound whose gradient points outwards are
frozen for that step (the active set of Bertsekas 1982, SIAM J Control Optim 20:221-246), so a
returned angle can never leave its hard limits.  The Jacobian is analytic: a revolute DoF
with world axis ``w`` at joint centre ``o`` moves a downstream keypoint ``x`` by
``w x (x - o)`` per radian (e.g. Siciliano et al. 2009, *Robotics*, eq. 3.30); the axis of
each rotation of an intrinsic Euler sequence is the parent's axis rotated by the preceding
elementary rotations.  J^T J is summed over keypoint groups (the subtrees below the root),
since a keypoint moves only with its own subtree's, the root's and the translation DoFs.
The smoothness term couples neighbouring frames; it is solved by
block-Jacobi iterations (each LM step holds the neighbours at their current values), which
keeps every frame's system independent and the whole fit batched.

Warm start: every frame starts from a rigid (Kabsch 1976) fit of the zero-pose trunk and
pelvis keypoints; every ``warm_stride``-th frame is solved first, and the others then start
from the nearest solved neighbour.  Frames are processed in chunks, so memory grows linearly
with the recording's length.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from ..data import JointAngles, KeypointSequence
from ..errors import InputError
from ..io._util import atomic_path
from ..layouts import to_medpose_names
from .fk import forward_kinematics
from .limits import JointLimits
from .patient import PatientSkeleton, estimate_skeleton
from .skeleton import Skeleton

__all__ = [
    "Fit",
    "fit",
    "FitProblem",
    "prepare",
    "alignment_rotation",
    "check_handedness",
    "MirrorWarning",
    "euler_from_matrix",
    "DEFAULT_PRIOR",
    "prior_sd",
    "NOISE_FLOOR_MM",
]

_AX = {"X": 0, "Y": 1, "Z": 2}
#: Keypoints the fit cannot do without: the pelvis (both hips) and the trunk's direction.
_REQUIRED = ("hip_r", "hip_l")
_UP = ("neck", "shoulder_r", "shoulder_l")
#: Frames (evenly spaced) on which a given skeleton's units are checked and the axes aligned.
_CHECK_FRAMES = 4000


# ------------------------------------------------------------------------------ small helpers
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


def alignment_rotation(
    sequence_positions: np.ndarray, names: Sequence[str], up: str | None = None
) -> np.ndarray:
    """Axis-permutation rotation ``A`` (3, 3) taking the data frame onto the skeleton's ISB axes.

    The data axis closest to the median trunk direction (mid-hip to neck) becomes +Y
    (superior), the remaining axis closest to the median hip_l -> hip_r direction +Z (right),
    so the pelvis angles stay meaningful in the lab's axes (a Y-up OpenSim frame with the
    subject facing +X gives the identity).  ``x_skeleton = A @ x_data``.

    Parameters
    ----------
    up : {"+x", "-x", "+y", "-y", "+z", "-z"}, optional
        Force the data's up axis instead of estimating it.
    """
    P = np.asarray(sequence_positions, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    mid = 0.5 * (P[:, idx["hip_r"]] + P[:, idx["hip_l"]])
    top = [P[:, idx[n]] for n in _UP if n in idx]
    sh = [P[:, idx[n]] for n in ("shoulder_r", "shoulder_l") if n in idx]
    if "neck" in idx and np.isfinite(P[:, idx["neck"]]).all(axis=1).any():
        upv = P[:, idx["neck"]] - mid
    else:
        upv = np.nanmean(np.stack(sh if sh else top), axis=0) - mid
    rightv = P[:, idx["hip_r"]] - P[:, idx["hip_l"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        u = np.nanmedian(upv, axis=0)
        r = np.nanmedian(rightv, axis=0)
    if up is not None:
        key = str(up).lower().strip()
        if key not in ("+x", "-x", "+y", "-y", "+z", "-z", "x", "y", "z"):
            raise InputError(f"fit: up={up!r}; expected one of '+x', '-x', '+y', '-y', '+z', '-z'")
        au, su = "xyz".index(key[-1]), (-1.0 if key[0] == "-" else 1.0)
    else:
        if not np.all(np.isfinite(u)):
            raise InputError(
                "fit: cannot tell which way is up: no frame has hip_r, hip_l and neck or shoulders"
            )
        au = int(np.argmax(np.abs(u)))
        su = float(np.sign(u[au])) or 1.0
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


# ------------------------------------------------------------------------------ the problem
@dataclass(frozen=True, eq=False, kw_only=True)
class FitProblem:
    """Everything the solvers need, independent of torch: skeleton, keypoints used, limits.

    Built by :func:`prepare`; shared by :func:`fit` and the scipy reference solver
    (:func:`medpose.kinematics.reference.fit_reference`).
    """

    skeleton: Skeleton
    limits: JointLimits
    lower: np.ndarray  # (D,)
    upper: np.ndarray  # (D,)
    seq_index: np.ndarray  # (K,) columns of the sequence used
    kp_index: np.ndarray  # (K,) matching skeleton keypoints
    kp_names: tuple[str, ...]  # (K,) medpose names
    observable: np.ndarray  # (D,) bool
    alignment: np.ndarray  # (3, 3) data -> skeleton axes
    patient: PatientSkeleton | None
    min_confidence: float
    min_keypoints: int
    prior_sd: np.ndarray  # (D,) posture prior standard deviation about prior_mean, deg
    prior_mean: np.ndarray  # (D,) neutral pose (0 clipped into the limits)


#: Default posture prior: standard deviation (degrees) of each DoF about the neutral pose.
#: The fit charges ``(sigma / sd * (q - neutral))**2`` per DoF, where ``sigma`` (mm) is the keypoint
#: noise it measures on the first, coarse pass (at least :data:`NOISE_FLOOR_MM`): a Gaussian
#: prior on the angle beside Gaussian keypoint noise (maximum a posteriori, e.g. Bishop 2006,
#: *Pattern Recognition and Machine Learning*, sec. 3.3), so clean data are barely pulled.
#: ``"*"`` (100 deg) only decides directions the keypoints leave free (upper-arm rotation with
#: a straight elbow, flexion vs rotation at the shoulder's gimbal lock).  The lumbar DoFs get
#: 5 deg: keypoint sets without pelvis landmarks (HALPE_26, COCO) barely tell pelvis tilt +
#: hip flexion from lumbar flexion, and noise would swing them by several degrees (OpenSim
#: models without a lumbar joint, e.g. Pose2Sim's, hold them together rigidly).  The pelvis
#: (whole-body orientation) carries no prior (``inf``).
DEFAULT_PRIOR: Mapping[str, float] = MappingProxyType(
    {
        "*": 100.0,
        "lumbar_flexion": 5.0,
        "lumbar_bending": 5.0,
        "lumbar_rotation": 5.0,
        "pelvis_tilt": math.inf,
        "pelvis_list": math.inf,
        "pelvis_rotation": math.inf,
    }
)

#: Lowest keypoint noise (mm) the posture prior assumes, so that it still breaks exact ties.
NOISE_FLOOR_MM = 0.1


def prior_sd(skeleton: Skeleton, prior: Mapping[str, float] | None = None) -> np.ndarray:
    """Posture-prior standard deviation per DoF (D,), degrees, from :data:`DEFAULT_PRIOR` updated by ``prior``.

    Keys: a DoF name (``shoulder_rotation_r``), a name without its side (``shoulder_rotation``:
    both sides) or ``"*"`` (every other rotational DoF); the most specific key wins; ``inf``
    means no prior.  Translations never carry one.

    Raises
    ------
    InputError
        An unknown key, or a value that is not a number > 0.
    """
    merged = dict(DEFAULT_PRIOR)
    if prior is not None:
        if not isinstance(prior, Mapping):
            raise InputError(
                f"fit: prior must be a mapping of DoF name to standard deviation in degrees, "
                f"found {type(prior).__name__}"
            )
        merged.update(prior)
    names = skeleton.dof_names
    bases = {n[:-2] for n in names if n[-2:] in ("_r", "_l")}
    for key, val in merged.items():
        if key != "*" and key not in names and key not in bases and (prior is None or key in prior):
            raise InputError(
                f"fit: prior: unknown DoF {key!r}; expected '*', a DoF name or one without "
                f"its side, e.g. 'shoulder_rotation'"
            )
        try:
            v = float(val)
        except (TypeError, ValueError):
            v = float("nan")
        if not v > 0:
            raise InputError(
                f"fit: prior: standard deviation of {key!r} must be a number > 0 degrees "
                f"(inf: no prior), found {val!r}"
            )
    out = np.full(len(names), np.inf)
    for i, (n, rot) in enumerate(zip(names, skeleton.rotational)):
        if rot:
            base = n[:-2] if n[-2:] in ("_r", "_l") else n
            out[i] = float(merged.get(n, merged.get(base, merged.get("*", math.inf))))
    return out


def _map_keypoints(
    sequence: KeypointSequence, skeleton: Skeleton
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    names = to_medpose_names(sequence.names)
    known = {n: i for i, n in enumerate(skeleton.keypoint_names)}
    seq_idx, kp_idx, used = [], [], []
    for i, n in enumerate(names):
        if n in known and n not in used:
            seq_idx.append(i)
            kp_idx.append(known[n])
            used.append(n)
    missing = [n for n in _REQUIRED if n not in used]
    if not any(n in used for n in _UP):
        missing.append("neck or shoulder_r/shoulder_l")
    if missing:
        raise InputError(
            f"fit: the skeleton cannot use this keypoint layout: missing keypoints {missing}; "
            f"recognised {len(used)} of {len(names)} names ({used[:12]}{'...' if len(used) > 12 else ''}); "
            "the fit needs hip_r, hip_l and neck or both shoulders, by medpose name or a known "
            "layout's name (RHip, LHip, Neck...)"
        )
    return np.array(seq_idx), np.array(kp_idx), tuple(used)


def _observable(
    skeleton: Skeleton, kp_index: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """DoFs that move at least one used keypoint at generic poses (Jacobian column non-zero)."""
    rng = np.random.default_rng(12345)
    lo = np.where(np.isfinite(lower), lower, -100.0)
    hi = np.where(np.isfinite(upper), upper, 100.0)
    q = torch.as_tensor(
        lo + (hi - lo) * rng.uniform(0.2, 0.8, size=(4, len(lo))), dtype=torch.float64
    )
    ctx = _Context(skeleton, kp_index, torch.device("cpu"), torch.float64)
    _, _, _, J = ctx.evaluate(q, jacobian=True)
    obs = np.zeros(len(lo), dtype=bool)
    obs[ctx.var_dofs.numpy()] = (J.abs().amax(dim=(0, 1, 2)) > 1e-9).numpy()
    return obs


def prepare(
    sequence: KeypointSequence,
    skeleton: Skeleton | None = None,
    limits: JointLimits | None = None,
    *,
    min_confidence: float = 0.3,
    min_keypoints: int | None = None,
    up: str | None = None,
    prior: Mapping[str, float] | None = None,
) -> FitProblem:
    """Check a sequence against a skeleton and set up the fit (see :func:`fit` for parameters)."""
    if not isinstance(sequence, KeypointSequence):
        raise InputError(f"fit: expected a KeypointSequence, found {type(sequence).__name__}")
    if sequence.ndim != 3:
        raise InputError(
            f"fit: expected 3D keypoints (T, K, 3) in mm, found {sequence.ndim}D "
            "(image keypoints must be triangulated first)"
        )
    if sequence.n_frames == 0:
        raise InputError("fit: the sequence has no frames")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise InputError(f"fit: min_confidence must lie in [0, 1], found {min_confidence!r}")
    base = skeleton if skeleton is not None else Skeleton.default()
    seq_idx, kp_idx, used = _map_keypoints(sequence, base)
    # a given skeleton is only checked (units), and the axis alignment is a median direction:
    # evenly spaced frames suffice (a million-frame GPU batch must not spend seconds here)
    T = sequence.n_frames
    few = np.unique(np.linspace(0, T - 1, min(T, _CHECK_FRAMES)).round().astype(int))
    sub = few if skeleton is not None else slice(None)
    renamed = KeypointSequence(
        sequence.positions[sub][:, seq_idx],
        used,
        sequence.rate,
        confidence=sequence.confidence[sub][:, seq_idx],
        frame=sequence.frame,
        start=sequence.start,
    )
    patient = None
    try:
        patient = estimate_skeleton(renamed, base=base, min_confidence=max(min_confidence, 0.3))
    except InputError as exc:
        if "implausible" in str(exc) or skeleton is None:
            raise InputError(f"fit: {exc}".replace("estimate_skeleton: ", "")) from None
    if skeleton is None:
        assert patient is not None
        skeleton = patient.skeleton
    else:
        patient = None
    lim = limits if limits is not None else JointLimits.default(skeleton)
    if not isinstance(lim, JointLimits):
        raise InputError(f"fit: limits must be a JointLimits, found {type(lim).__name__}")
    lo, hi = lim.for_skeleton(skeleton)
    obs = _observable(skeleton, kp_idx, lo, hi)
    sampled = renamed.positions if isinstance(sub, np.ndarray) else renamed.positions[few]
    A = alignment_rotation(sampled, used, up)
    check_handedness(sampled, used)
    k = len(used)
    mk = int(min_keypoints) if min_keypoints is not None else max(4, math.ceil(0.5 * k))
    if mk < 3:
        raise InputError(f"fit: min_keypoints must be at least 3, found {min_keypoints!r}")
    psd = prior_sd(skeleton, prior)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return FitProblem(
        skeleton=skeleton,
        limits=lim,
        lower=lo,
        upper=hi,
        seq_index=seq_idx,
        kp_index=kp_idx,
        kp_names=used,
        observable=obs,
        alignment=A,
        patient=patient,
        min_confidence=float(min_confidence),
        min_keypoints=mk,
        prior_sd=psd,
        prior_mean=np.clip(0.0, lo, hi),
    )


# ------------------------------------------------------------------------------ torch context
class _Context:
    """Skeleton constants as tensors; batched keypoints and analytic Jacobian in one pass.

    The solver's variables are the ``free`` DoFs only (observable ones), ordered as
    :attr:`var_dofs`: the free rotational DoFs, then the free translations.  Forward
    kinematics is written out here (rather than calling :func:`~medpose.kinematics.fk.segment_poses`)
    so that one pass gives the keypoints *and* the world axis of every joint rotation the
    Jacobian needs.  Internally the segments are stored in tree-level order (root, its children,
    their children...): each level's parents are the previous level, so the pass is a handful of
    batched 3x3 products per level on contiguous slices, with no scatter.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        kp_index: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
        free: np.ndarray | None = None,
    ):
        sk = skeleton
        self.sk, self.device, self.dtype = sk, device, dtype
        S, D = len(sk.segment_names), len(sk.dof_names)
        free = np.ones(D, dtype=bool) if free is None else np.asarray(free, dtype=bool)
        t = lambda a, dt=dtype: torch.as_tensor(np.array(a), device=device, dtype=dt)  # noqa: E731
        parent = sk.parent_index
        depth = np.zeros(S, dtype=np.int64)
        anc = np.zeros((S, S), dtype=bool)  # anc[s, a]: a is s or an ancestor of s
        for s in range(S):
            a = s
            while a >= 0:
                anc[s, a] = True
                a = parent[a]
            depth[s] = anc[s].sum() - 1
        order = np.argsort(depth, kind="stable")  # level order; root first
        pos = np.empty(S, dtype=np.int64)
        pos[order] = np.arange(S)
        self.order, self.pos = t(order, torch.long), t(pos, torch.long)
        bounds = np.searchsorted(depth[order], np.arange(int(depth.max()) + 2))
        # per level: slice in level order, and each member's parent position within the previous level
        self.levels = [
            (
                int(bounds[d]),
                int(bounds[d + 1]),
                t(pos[parent[order[bounds[d] : bounds[d + 1]]]] - bounds[d - 1], torch.long),
            )
            for d in range(1, int(depth.max()) + 1)
        ]
        self.parent_pos = t(
            np.where(parent[order] >= 0, pos[np.maximum(parent[order], 0)], S), torch.long
        )
        self.kseg = t(pos[sk.keypoint_segment[kp_index]], torch.long)
        self.koff = t(sk.keypoint_offsets[kp_index])
        self.offs = t(sk.joint_offsets[order])  # (S, 3), level order
        # elementary rotation of slot j of segment s about axis i:  E = B + cos(t) P + sin(t) Q
        B = np.zeros((3, S, 3, 3))
        P = np.zeros((3, S, 3, 3))
        Qm = np.zeros((3, S, 3, 3))
        for n, s in enumerate(order):
            for j, ax in enumerate(sk.sequences[s]):
                i = _AX[ax]
                k1, k2 = (i + 1) % 3, (i + 2) % 3
                B[j, n, i, i] = 1.0
                P[j, n, k1, k1] = P[j, n, k2, k2] = 1.0
                Qm[j, n, k2, k1], Qm[j, n, k1, k2] = 1.0, -1.0
        self.B, self.P, self.Q = t(B), t(P), t(Qm)
        idx = sk.joint_dof_index[order]  # (S, 3), -1 fixed
        self.ang_dof = t(np.where(idx >= 0, idx, D).T, torch.long)  # (3, S) -> column D is 0
        self.ang_scale = t(
            (np.where(idx >= 0, sk.joint_dof_sign[order], 0.0) * np.pi / 180.0).T
        )  # (3, S)
        rot = [
            (d, s, j)
            for s in range(S)
            for j in range(3)
            if (d := int(sk.joint_dof_index[s, j])) >= 0 and free[d]
        ]
        seg = np.array([r[1] for r in rot], dtype=np.int64)
        slot = np.array([r[2] for r in rot], dtype=np.int64)
        axis = np.array([_AX[sk.sequences[s][j]] for s, j in zip(seg, slot)], dtype=np.int64)
        self.seg, self.slot, self.axis = (
            t(pos[seg], torch.long),
            t(slot, torch.long),
            t(axis, torch.long),
        )
        # d x_k / d q_f (per degree) = sign * pi/180 * w_f x (x_k - o_f) for keypoints below the joint
        scale = (sk.joint_dof_sign[seg, slot] * np.pi / 180.0)[:, None] * anc[
            sk.keypoint_segment[kp_index]
        ][:, seg].T  # (Fr, K)
        self.scale = t(scale)
        K = len(kp_index)
        eps = np.zeros((3, 3, 3))  # [w]x = w @ eps: Levi-Civita
        for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            eps[k, i, j], eps[k, j, i] = -1.0, 1.0
        self.eps = t(eps.reshape(3, 9))
        trans = [int(d) for d in sk.translation_dof_index if free[d]]
        tax = [list(sk.translation_dof_index).index(d) for d in trans]
        Jt_t = np.zeros((len(trans), 3, K))
        for n, a in enumerate(tax):
            Jt_t[n, a, :] = 1.0
        self.Jt_trans = t(Jt_t)  # (Ft, 3, K)
        self.trans_axes = t(tax, torch.long)
        self.trans_dofs = t(sk.translation_dof_index, torch.long)
        self.var_dofs = t([r[0] for r in rot] + trans, torch.long)  # (F,)
        self.n_rot = len(rot)
        self.D = D
        # keypoint groups for the normal equations: one per subtree below the root (trunk and arms,
        # each leg); a keypoint depends only on its group's rotations, the root's and the
        # translations, so J^T J is the sum of the groups' smaller products (about 3x fewer flops
        # for HALPE_26).  Keypoints on the root itself join the group with the fewest variables.
        root = int(np.flatnonzero(parent < 0)[0])
        sub = np.full(S, -1)
        for s_ in range(S):
            chain = [a for a in range(S) if anc[s_, a]]
            kids = [a for a in chain if parent[a] == root]
            sub[s_] = kids[0] if kids else -1
        ksub = sub[sk.keypoint_segment[kp_index]]
        Fr, F = len(rot), len(rot) + len(trans)
        groups = []
        for gid in [g for g in np.unique(ksub) if g >= 0]:
            kp = np.flatnonzero(ksub == gid)
            rr = np.flatnonzero(scale[:, kp].any(axis=1))  # rotations moving these keypoints
            groups.append([kp, rr])
        if not groups:
            groups = [[np.arange(K), np.arange(Fr)]]
        rootk = np.flatnonzero(ksub < 0)
        if rootk.size:
            g0 = min(groups, key=lambda gr: len(gr[1]))
            g0[0] = np.sort(np.concatenate([g0[0], rootk]))
            g0[1] = np.flatnonzero(scale[:, g0[0]].any(axis=1))
        self.groups = []
        for kp, rr in groups:
            vv = np.concatenate([rr, np.arange(Fr, F)])  # the group's variables
            n = len(vv)
            self.groups.append(
                (
                    t(kp, torch.long),
                    t(rr, torch.long),
                    t(scale[np.ix_(rr, kp)]),
                    t(Jt_t[:, :, kp]),
                    t((vv[:, None] * F + vv[None, :]).ravel(), torch.long),
                    t(vv, torch.long),
                    n,
                )
            )

    def poses(self, q: torch.Tensor):
        """Elementary rotations E (T, 3, S, 3, 3), segment rotations R (T, S, 3, 3) and origins o
        (T, S, 3) from q (T, D) in degrees; segments in level order (:attr:`order`)."""
        T = q.shape[0]
        qz = torch.cat([q, q.new_zeros(T, 1)], dim=1)
        ang = qz[:, self.ang_dof] * self.ang_scale  # (T, 3, S) radians
        E = (
            self.B
            + torch.cos(ang)[..., None, None] * self.P
            + torch.sin(ang)[..., None, None] * self.Q
        )
        Jl = _mm3(_mm3(E[:, 0], E[:, 1]), E[:, 2])  # joint rotations (T, S, 3, 3)
        Rs = [Jl[:, :1]]
        os_ = [(self.offs[0] + q.index_select(1, self.trans_dofs))[:, None]]
        for s0, s1, par in self.levels:  # tree depth (~5), not frames
            Rp = Rs[-1].index_select(1, par)
            os_.append(os_[-1].index_select(1, par) + _mv3(Rp, self.offs[s0:s1]))
            Rs.append(_mm3(Rp, Jl[:, s0:s1]))
        return E, torch.cat(Rs, dim=1), torch.cat(os_, dim=1)

    def axes(self, E: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """World axis (T, Fr, 3) of every free rotation: the parent's rotation times the
        preceding elementary rotations of the same joint, applied to the rotation's own axis."""
        T = R.shape[0]
        Rx = torch.cat([R, torch.eye(3, dtype=R.dtype, device=R.device).expand(T, 1, 3, 3)], dim=1)
        PR = Rx.index_select(1, self.parent_pos)  # (T, S, 3, 3)
        RA = _mm3(PR, E[:, 0])
        RB = _mm3(RA, E[:, 1])
        stk = torch.stack([PR, RA, RB], dim=1).transpose(-1, -2)  # (T, 3, S, column, row)
        return stk[:, self.slot, self.seg, self.axis]  # (T, Fr, 3)

    def keypoints(self, R: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """Keypoints (T, K, 3) from segment poses: ``o[seg] + R[seg] @ offset``."""
        return o.index_select(1, self.kseg) + _mv3(R.index_select(1, self.kseg), self.koff)

    def homogeneous(self, E: torch.Tensor, R: torch.Tensor, o: torch.Tensor, x: torch.Tensor):
        """The Jacobian's two factors: ``[[w_f]x, -[w_f]x o_f]`` (T, Fr, 3, 4) per free rotation and
        ``[x_k, 1]`` (T, K, 4) per keypoint, whose product is ``w_f x (x_k - o_f)``."""
        T, K = x.shape[:2]
        W = (self.axes(E, R) @ self.eps).reshape(T, -1, 3, 3)  # skew matrices [w]x (T, Fr, 3, 3)
        Wo = _mv3(W, o.index_select(1, self.seg))  # (T, Fr, 3): w x o_f
        return torch.cat([W, -Wo[..., None]], dim=-1), torch.cat([x, x.new_ones(T, K, 1)], dim=-1)

    def jacobian(
        self, E: torch.Tensor, R: torch.Tensor, o: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """Jacobian of the keypoints ``x`` (T, K, 3) w.r.t. the free rotations, transposed: (T, Fr, 3, K), per degree.

        Column f is ``scale_f * w_f x (x_k - o_f)`` for the keypoints below joint f (zero elsewhere),
        computed for all pairs at once from :meth:`homogeneous`: one small batched product
        (gathering only the pairs below each joint costs more than it saves).
        """
        T, K = x.shape[:2]
        Wh, xh = self.homogeneous(E, R, o, x)
        J = torch.bmm(Wh.reshape(T, -1, 4), xh.transpose(1, 2)).view(T, -1, 3, K)
        return J * self.scale[..., None, :]

    def full_jacobian(self, E, R, o, x) -> torch.Tensor:
        """Jacobian (T, K, 3, F) of the keypoints per degree / mm, translations included."""
        Jr = self.jacobian(E, R, o, x)  # (T, Fr, 3, K)
        Jt = self.Jt_trans.expand(x.shape[0], -1, -1, -1)  # (T, Ft, 3, K)
        return torch.cat([Jr, Jt], dim=1).permute(0, 3, 2, 1)

    def keypoints_at(self, q: torch.Tensor) -> torch.Tensor:
        """Keypoints (T, K, 3) of the poses ``q`` (T, D)."""
        _, R, o = self.poses(q)
        return self.keypoints(R, o)

    def evaluate(self, q: torch.Tensor, jacobian: bool = False):
        """Segment rotations (T, S, 3, 3) and origins (skeleton order), keypoints and (optionally)
        the Jacobian (T, K, 3, F) per degree / mm."""
        E, R, o = self.poses(q)
        x = self.keypoints(R, o)
        J = self.full_jacobian(E, R, o, x) if jacobian else None
        return R[:, self.pos], o[:, self.pos], x, J


def _mm3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched 3x3 matrix products ``a @ b``.

    On a GPU as broadcast multiply-adds: a batched GEMM spends most of its time setting up tiles
    for 3x3 matrices, while the elementwise form is memory-bound.  On the CPU ``matmul`` is faster.
    """
    if a.is_cuda:
        return (a[..., :, :, None] * b[..., None, :, :]).sum(dim=-2)
    return a @ b


def _mv3(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector products ``a @ v``, (..., 3, 3) x (..., 3) -> (..., 3) (see :func:`_mm3`)."""
    if a.is_cuda:
        return (a * v[..., None, :]).sum(dim=-1)
    return (a @ v[..., None])[..., 0]


# ------------------------------------------------------------------------------ the solver
def _prior_terms(
    z: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: _Priors,
    mean_nb: torch.Tensor | None = None,
    nb_ok: torch.Tensor | None = None,
):
    """Prior residuals (T, F) and their diagonal Jacobians: soft limits, posture, smoothness."""
    terms = []
    if pri.weight > 0 and pri.margin > 0:
        up = torch.clamp(z - (hi - pri.margin), min=0.0)
        dn = torch.clamp((lo + pri.margin) - z, min=0.0)
        band = ((up > 0) | (dn > 0)).to(z.dtype)
        terms.append((pri.weight * (up - dn), pri.weight * band))
    if pri.tik is not None and pri.mu is not None:
        terms.append((pri.tik * (z - pri.mu), pri.tik.expand_as(z)))
    if pri.smooth > 0 and mean_nb is not None and nb_ok is not None:
        ok = nb_ok.to(z.dtype)[:, None]
        terms.append((pri.smooth * (z - mean_nb) * ok, pri.smooth * ok.expand_as(z)))
    return terms


@dataclass(frozen=True)
class _Priors:
    margin: float  # soft-limit band, degrees
    weight: float  # soft-limit weight, mm per degree
    tik: torch.Tensor | None  # (F,) posture-prior weight per variable, mm per degree
    mu: torch.Tensor | None  # (F,) neutral value per variable
    smooth: float = 0.0


def _normal_equations(
    ctx: _Context,
    E: torch.Tensor,
    R: torch.Tensor,
    o: torch.Tensor,
    x: torch.Tensor,
    sw: torch.Tensor,
    xo: torch.Tensor,
):
    """Weighted data cost (T,), J^T J (T, F, F) and J^T r (T, F) at keypoints ``x`` (T, K, 3).

    Per keypoint group (:attr:`_Context.groups`), the weighted Jacobian of the group's variables
    and the weighted residual are the rows of one (T, F_g + 1, 3 K_g) matrix ``B``; ``B B^T`` gives
    the group's share of J^T J, J^T r and r^T r, which are added up.
    """
    T = x.shape[0]
    Fr, Ft = ctx.n_rot, ctx.Jt_trans.shape[0]
    F = Fr + Ft
    Wh, xh = ctx.homogeneous(E, R, o, x)  # (T, Fr, 3, 4), (T, K, 4)
    swk = sw[..., 0]  # (T, K)
    res = sw * (x - xo)  # (T, K, 3)
    H = x.new_zeros(T, F * F)
    g = x.new_zeros(T, F)
    dc = x.new_zeros(T)
    for kp, rr, scale, jt, flat, vv, n in ctx.groups:
        k = kp.numel()
        nr = rr.numel()
        wk = swk.index_select(1, kp)  # (T, k)
        buf = x.new_empty(T, n + 1, 3, k)
        J = torch.bmm(
            Wh.index_select(1, rr).reshape(T, -1, 4), xh.index_select(1, kp).transpose(1, 2)
        )
        torch.mul(J.view(T, nr, 3, k), (scale * wk[:, None])[:, :, None, :], out=buf[:, :nr])
        if Ft:
            torch.mul(jt, wk[:, None, None, :], out=buf[:, nr:n])
        buf[:, n] = res.index_select(1, kp).transpose(1, 2)
        Bf = buf.flatten(2)
        G = Bf @ Bf.transpose(1, 2)
        H.index_add_(1, flat, G[:, :n, :n].reshape(T, -1))
        g.index_add_(1, vv, G[:, :n, n])
        dc += G[:, n, n]
    return dc, H.view(T, F, F), g


def _solve(
    ctx: _Context,
    q0: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pri: _Priors,
    *,
    neighbours=None,
    max_iter: int = 100,
    tol: float = 1e-4,
    xtol: float = 1e-3,
    lam0: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected Levenberg-Marquardt on a batch of frames.

    One forward-kinematics pass per iteration gives the trial point's keypoints and, for the
    frames that accept it and go on, the Jacobian of the next step; a rejected frame keeps its
    normal equations and only raises its damping.  Converged frames leave the batch, so the
    slowest frames do not cost the others anything.

    Returns q (T, D), fitted keypoints (T, K, 3) and converged (T,).
    """
    T = q0.shape[0]
    var = ctx.var_dofs
    lo_v, hi_v = lo[var], hi[var]
    qa = q0.clone()  # the active frames' state
    qa[:, var] = torch.clamp(qa[:, var], lo_v, hi_v)
    sw = torch.sqrt(w)[..., None]  # (T, K, 1)
    xo = x_obs
    E, R, o = ctx.poses(qa)
    xa = ctx.keypoints(R, o)
    dc, H, g = _normal_equations(ctx, E, R, o, xa, sw, xo)
    q, xf = qa.clone(), xa.clone()  # results, written as frames finish
    lam = q.new_full((T,), lam0)
    conv = torch.zeros(T, dtype=torch.bool, device=q.device)
    act = torch.arange(T, device=q.device)
    cuda = q.is_cuda
    for _ in range(max_iter):
        if act.numel() == 0:
            break
        za = qa[:, var]
        mnb = nbok = None
        if neighbours is not None:
            mnb, nbok = neighbours(q)
            mnb, nbok = mnb.index_select(0, act)[:, var], nbok.index_select(0, act)
        terms = _prior_terms(za, lo_v, hi_v, pri, mnb, nbok)
        cost, dd, gt = dc, torch.diagonal(H, dim1=1, dim2=2), g
        for r, dj in terms:  # the priors' J^T J is diagonal
            cost = cost + (r * r).sum(dim=1)
            dd = dd + dj * dj
            gt = gt + dj * r
        frozen = ((za <= lo_v) & (gt > 0)) | ((za >= hi_v) & (gt < 0))
        keep = (~frozen).to(q.dtype)
        if cuda:  # frozen DoFs leave the system
            A = H * keep[:, :, None] * keep[:, None, :]  # (no host sync on a GPU)
        else:
            A = H.clone()  # the only (T, F, F) temporary
            fz = torch.nonzero(frozen.any(dim=1))[:, 0]
            if fz.numel():
                A[fz] = A[fz] * keep[fz, :, None] * keep[fz, None, :]
        # damped diagonal (1 + lam) (J^T J)_ii; a frozen DoF's row is the identity
        torch.diagonal(A, dim1=1, dim2=2).copy_(
            dd * keep * (1.0 + lam[:, None]) + 1e-9 + frozen.to(q.dtype)
        )
        L, info = torch.linalg.cholesky_ex(A)
        rhs = (gt * keep)[..., None]
        if cuda:  # two triangular solves: half cholesky_solve's time there
            sol = torch.linalg.solve_triangular(
                L.mT, torch.linalg.solve_triangular(L, rhs, upper=False), upper=True
            )
        else:
            sol = torch.cholesky_solve(rhs, L)
        step = -sol[..., 0] * keep
        bad = info != 0
        step = torch.where(bad[:, None], torch.zeros_like(step), step)
        z_new = torch.clamp(za + step, lo_v, hi_v)
        q_new = qa.clone()
        q_new[:, var] = z_new
        E, R, o = ctx.poses(q_new)
        x2 = ctx.keypoints(R, o)
        r2 = (sw * (x2 - xo)).flatten(1)
        dc2 = (r2 * r2).sum(dim=1)
        cost2 = dc2
        for r, _ in _prior_terms(z_new, lo_v, hi_v, pri, mnb, nbok):
            cost2 = cost2 + (r * r).sum(dim=1)
        ok = (cost2 <= cost) & torch.isfinite(cost2) & ~bad
        dz = (z_new - za).abs().amax(dim=1)
        done = ((cost - cost2).abs() <= tol * cost) | (dz <= xtol) | (lam > 1e10) | (cost <= 1e-20)
        qa = torch.where(ok[:, None], q_new, qa)
        xa = torch.where(ok[:, None, None], x2, xa)
        lam = torch.where(ok, torch.clamp(lam / 10.0, min=1e-9), lam * 4.0)
        if neighbours is not None:  # the neighbours read q
            q.index_copy_(0, act, qa)
        fin = torch.nonzero(done)[:, 0]
        if fin.numel():  # finished frames leave the batch
            fa = act.index_select(0, fin)
            q.index_copy_(0, fa, qa.index_select(0, fin))
            xf.index_copy_(0, fa, xa.index_select(0, fin))
            conv[fa] = True
            stay = torch.nonzero(~done)[:, 0]
            if stay.numel() == 0:
                act = stay
                break
            act, qa, xa, sw, xo, dc, H, g, lam, ok = (
                t.index_select(0, stay) for t in (act, qa, xa, sw, xo, dc, H, g, lam, ok)
            )
            E, R, o, x2 = (t.index_select(0, stay) for t in (E, R, o, x2))
        # the next step's normal equations at the accepted points; a rejected frame keeps its own.
        # On a GPU for every frame still going (no host sync to pick the accepted ones)
        if cuda:
            dcn, Hn, gn = _normal_equations(ctx, E, R, o, x2, sw, xo)
            dc = torch.where(ok, dcn, dc)
            H = torch.where(ok[:, None, None], Hn, H)
            g = torch.where(ok[:, None], gn, g)
        else:
            upd = torch.nonzero(ok)[:, 0]
            if upd.numel():
                dcn, Hn, gn = _normal_equations(
                    ctx, *(t.index_select(0, upd) for t in (E, R, o, x2, sw, xo))
                )
                dc.index_copy_(0, upd, dcn)
                H.index_copy_(0, upd, Hn)
                g.index_copy_(0, upd, gn)
    if act.numel():  # out of iterations
        q.index_copy_(0, act, qa)
        xf.index_copy_(0, act, xa)
    return q, xf, conv


def _polar(M: torch.Tensor, iters: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal polar factor of 3x3 matrices ``M`` (T, 3, 3) by scaled Newton iteration.

    ``X <- (g X + X^-T / g) / 2`` with ``g = (|X^-1|_F / |X|_F)^(1/2)`` (Higham 1986, SIAM J Sci
    Stat Comput 7:1160-1174, eqs. 3.1 and 3.3; ``X^-T`` from the cofactor matrix, all
    elementwise).  For ``M = H^T`` with ``det H > 0`` this is the Kabsch rotation ``V U^T``;
    ``ok`` (T,) is False where ``det M`` is not clearly positive (reflection, rank < 3) or the
    iteration has not settled, for the caller to solve by SVD.
    """
    scale = torch.linalg.matrix_norm(M).clamp(min=1e-30)[:, None, None]
    X = M / scale
    det0 = torch.linalg.det(X)
    for _ in range(iters):
        c = torch.stack(
            [
                torch.linalg.cross(X[:, 1], X[:, 2]),
                torch.linalg.cross(X[:, 2], X[:, 0]),
                torch.linalg.cross(X[:, 0], X[:, 1]),
            ],
            dim=1,
        )  # cofactors
        det = (X[:, 0] * c[:, 0]).sum(dim=1)[:, None, None]
        Xit = c / det  # X^-T
        g = torch.sqrt(torch.linalg.matrix_norm(Xit) / torch.linalg.matrix_norm(X))[:, None, None]
        X = 0.5 * (g * X + Xit / g)
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    orth = torch.linalg.matrix_norm(X.transpose(1, 2) @ X - eye) < 1e-4
    ok = (det0 > 1e-6) & orth & torch.isfinite(X).all(dim=(1, 2))
    return torch.where(ok[:, None, None], X, eye), ok


def _rigid_init(
    ctx: _Context,
    template: torch.Tensor,
    torso: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    root_seq: str,
    root_sign: torch.Tensor,
    root_rot: torch.Tensor,
    trans: torch.Tensor,
    D: int,
):
    """q0 (T, D) from a weighted Kabsch fit of the zero-pose trunk/pelvis keypoints; ok (T,)."""
    wt = w[:, torso]  # (T, M)
    P = template[torso]  # (M, 3)
    Q = x_obs[:, torso]
    ws = wt.sum(dim=1, keepdim=True).clamp(min=1e-12)
    pc = (wt @ P) / ws  # (T, 3)
    qc = (wt[..., None] * Q).sum(dim=1) / ws
    Hm = torch.einsum("tm,tmi,tmj->tij", wt, P[None] - pc[:, None], Q - qc[:, None])
    M = Hm.transpose(1, 2)
    _, sv, vh = torch.linalg.svd(P - P.mean(dim=0))  # one small SVD: is the template planar?
    if sv.numel() == 3 and bool(sv[2] <= 1e-6 * sv[0]):
        # planar template (normal n = u x v): M n = 0, so M + (M u x M v) n^T / |M| = R (S + det(S) / |M| n n^T)
        # has the same rotation factor and full rank
        u, v, n = vh[0], vh[1], torch.linalg.cross(vh[0], vh[1])
        c = torch.linalg.cross(M @ u, M @ v) / torch.linalg.matrix_norm(M).clamp(min=1e-30)[:, None]
        M = M + c[:, :, None] * n[None, None, :]
    Rr, ok_polar = _polar(M)  # template -> observed
    hard = torch.nonzero(~ok_polar)[:, 0]
    if hard.numel():  # reflections, near-degenerate
        U, _, Vh = torch.linalg.svd(Hm[hard])
        d = torch.sign(torch.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
        d = torch.where(d == 0, torch.ones_like(d), d)
        Dm = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
        Rr[hard] = Vh.transpose(1, 2) @ Dm @ U.transpose(1, 2)
    t = qc - (Rr @ pc[..., None])[..., 0]
    q0 = x_obs.new_zeros(x_obs.shape[0], D)
    ang = torch.rad2deg(euler_from_matrix(Rr, root_seq)) * root_sign
    q0[:, root_rot] = ang
    q0[:, trans] = t
    ok = (wt > 0).sum(dim=1) >= 3
    return q0, ok


@dataclass(frozen=True, eq=False)
class _Observed:
    """The observations a fit was made from (references, no copies) and how to recompute its
    fitted keypoints and residuals from ``q``: forward kinematics on ``device`` in chunks."""

    positions: np.ndarray  # (T, K_seq, 3) the sequence's, mm
    confidence: np.ndarray  # (T, K_seq)
    seq_index: np.ndarray  # (K,) columns used
    kp_index: np.ndarray  # (K,) matching skeleton keypoints
    min_confidence: float
    device: str
    dtype: np.dtype

    def compute(
        self, skeleton: Skeleton, q: np.ndarray, alignment: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        T, K = q.shape[0], len(self.kp_index)
        fitted = np.empty((T, K, 3), dtype=self.dtype)
        resid = np.empty((T, K), dtype=self.dtype)
        names = [skeleton.keypoint_names[k] for k in self.kp_index]
        dev = torch.device(self.device)
        A = torch.as_tensor(alignment, device=dev, dtype=torch.float64)
        step = 1 << 18
        for s0 in range(0, T, step):
            s1 = min(T, s0 + step)
            qq = torch.as_tensor(q[s0:s1], device=dev, dtype=torch.float64)
            # skeleton -> data axes (a tensor in, a tensor out)
            x = torch.as_tensor(forward_kinematics(skeleton, qq, keypoints=names)) @ A
            obs = torch.as_tensor(
                self.positions[s0:s1][:, self.seq_index], device=dev, dtype=torch.float64
            )
            c = torch.as_tensor(
                self.confidence[s0:s1][:, self.seq_index], device=dev, dtype=torch.float64
            )
            seen = torch.isfinite(obs).all(dim=2) & (c >= self.min_confidence) & (c > 0)
            r = torch.where(seen, torch.linalg.vector_norm(x - obs, dim=2), float("nan"))
            fitted[s0:s1] = x.cpu().numpy()
            resid[s0:s1] = r.cpu().numpy()
        return fitted, resid


@dataclass(frozen=True, eq=False, kw_only=True)
class Fit:
    """The result of :func:`fit`.

    Attributes
    ----------
    q : numpy.ndarray, shape (T, D)
        Every DoF of the skeleton (degrees; ``pelvis_tx/ty/tz`` in mm, in the skeleton's axes
        after :attr:`alignment`); NaN for frames that could not be fitted.  In the fit's precision
        (float32 by default), inside the hard limits.
    skeleton : Skeleton
        The skeleton fitted (the patient's, when estimated).
    limits : JointLimits
    patient : PatientSkeleton or None
        How the lengths were estimated (None when a skeleton was given).
    observable : numpy.ndarray of bool, shape (D,)
        DoFs that the keypoints constrain; the others are held at their neutral value and
        reported as NaN in :attr:`angles`.
    alignment : numpy.ndarray, shape (3, 3)
        Rotation from the data's axes to the skeleton's (``x_skel = A @ x_data``).
    """

    q: np.ndarray
    dof_names: tuple[str, ...]
    rate: float
    start: float
    frame: str
    skeleton: Skeleton
    limits: JointLimits
    patient: PatientSkeleton | None
    observable: np.ndarray
    alignment: np.ndarray
    keypoint_names: tuple[str, ...]
    fitted_: np.ndarray | None  # (T, K, 3) in the data frame, mm (None: computed when asked)
    residual_: np.ndarray | None  # (T, K) mm, NaN where not observed (likewise)
    limit_active: np.ndarray  # (T, D) bool
    converged_mask: np.ndarray  # (T,) bool
    valid: np.ndarray  # (T,) bool
    noise_mm: float = float("nan")  # keypoint noise measured on the pilot frames, mm per axis
    prior_sd: np.ndarray | None = None  # (D,) posture prior standard deviation, degrees
    source: _Observed | None = None  # what the lazy keypoints and residuals are computed from

    @property
    def fitted(self) -> np.ndarray:
        """Fitted keypoints (T, K, 3) in the data frame, mm.  A GPU fit computes them when first
        asked (forward kinematics of :attr:`q` on the fit's device), so a million-frame fit does not
        move 0.3 GB back to the host that nobody may read."""
        return self._lazy()[0]

    @property
    def residual(self) -> np.ndarray:
        """Distance fitted-observed (T, K), mm; NaN where a keypoint was not observed."""
        return self._lazy()[1]

    def _lazy(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted keypoints and residuals, computed from :attr:`source` when first asked."""
        if self.fitted_ is not None and self.residual_ is not None:
            return self.fitted_, self.residual_
        if self.source is None:
            raise ValueError("Fit: no fitted keypoints, and no observations to compute them from")
        x, r = self.source.compute(self.skeleton, self.q, self.alignment)
        object.__setattr__(self, "fitted_", x)
        object.__setattr__(self, "residual_", r)
        return x, r

    @property
    def times(self) -> np.ndarray:
        """Time of each frame, s."""
        return self.start + np.arange(self.q.shape[0]) / self.rate

    def _index(self) -> pd.Index:
        return pd.Index(self.times, name="time_s")

    @property
    def _rot_cols(self) -> list[int]:
        return [i for i, r in enumerate(self.skeleton.rotational) if r]

    @property
    def angles(self) -> pd.DataFrame:
        """Joint angles in degrees: index ``time_s``, one column per rotational DoF.

        NaN for frames with too few confident keypoints and for DoFs no keypoint constrains.
        """
        cols = self._rot_cols
        v = np.where(self.observable[cols], self.q[:, cols], np.nan)
        df = pd.DataFrame(v, index=self._index(), columns=[self.dof_names[i] for i in cols])
        df.attrs.update({"units": "deg", "rate_hz": self.rate})
        return df

    @property
    def translations(self) -> pd.DataFrame:
        """Pelvis position (mm, skeleton axes) per frame."""
        cols = [i for i, r in enumerate(self.skeleton.rotational) if not r]
        df = pd.DataFrame(
            self.q[:, cols], index=self._index(), columns=[self.dof_names[i] for i in cols]
        )
        df.attrs.update({"units": "mm", "rate_hz": self.rate})
        return df

    @property
    def keypoints(self) -> KeypointSequence:
        """Fitted keypoints (the skeleton's), in the input's frame and names (medpose names), mm."""
        return KeypointSequence(
            self.fitted,
            self.keypoint_names,
            self.rate,
            confidence=None,
            frame=self.frame,
            start=self.start,
        )

    @property
    def residuals(self) -> pd.DataFrame:
        """Distance fitted-observed per frame (rows, ``time_s``) and keypoint (columns), mm."""
        df = pd.DataFrame(self.residual, index=self._index(), columns=list(self.keypoint_names))
        df.attrs.update({"units": "mm"})
        return df

    @property
    def at_limit(self) -> pd.DataFrame:
        """True where a DoF sits on a hard limit (the data pushed it there), per frame."""
        cols = self._rot_cols
        return pd.DataFrame(
            self.limit_active[:, cols],
            index=self._index(),
            columns=[self.dof_names[i] for i in cols],
        )

    @property
    def converged(self) -> pd.Series:
        """Per frame: the solver met its tolerance (False also for frames not fitted)."""
        return pd.Series(self.converged_mask, index=self._index(), name="converged")

    def joint_angles(self) -> JointAngles:
        """All DoFs (angles in degrees, pelvis translations in mm) as :class:`JointAngles`."""
        v = np.where(self.observable | ~self.skeleton.rotational, self.q, np.nan)
        return JointAngles(v, self.dof_names, self.rate, start=self.start)

    def to_mot(self, path: str | os.PathLike) -> Path:
        """OpenSim motion file (``inDegrees=yes``, translations in metres) via
        :func:`medpose.io.mot.write_mot`."""
        from ..io.mot import write_mot

        return write_mot(self.joint_angles(), path)

    def _table(self) -> pd.DataFrame:
        df = pd.concat([self.angles, self.translations.add_suffix("_mm")], axis=1)
        return df.reset_index()

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Angles (degrees) and pelvis translation (``*_mm``) as Parquet, one row per frame."""
        with atomic_path(path) as tmp:
            self._table().to_parquet(tmp, index=False)
        return Path(path)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Angles (degrees) and pelvis translation (``*_mm``) as CSV, one row per frame."""
        with atomic_path(path) as tmp:
            self._table().to_csv(tmp, index=False)
        return Path(path)

    def __repr__(self) -> str:
        return (
            f"Fit({self.q.shape[0]} frames, {int(self.valid.sum())} fitted, "
            f"{int(self.converged_mask.sum())} converged, {len(self.dof_names)} DoF)"
        )


def _default_chunk(device: torch.device) -> int:
    """Frames per chunk: 2048 on the CPU; on a GPU 2^20 (peak about 32 GB of work space in float32,
    measured on an H100) where 64 GB are free, else 2^19 (about 17 GB) with 36 GB, 2^18 with 18 GB, or
    2^16."""
    if device.type != "cuda":
        return 2048
    # free memory, counting what torch's caching allocator holds unused
    free = (
        torch.cuda.mem_get_info(device)[0]
        + torch.cuda.memory_reserved(device)
        - torch.cuda.memory_allocated(device)
    )
    return next(
        c
        for c, need in ((1 << 20, 64), (1 << 19, 36), (1 << 18, 18), (1 << 16, 0))
        if free >= need * 2**30
    )


def _default_dtype(device: torch.device) -> torch.dtype:
    """float32 everywhere (round 4: on the CPU too, about 25% faster, angles within 0.3 deg of float64)."""
    return torch.float32


def fit(
    sequence: KeypointSequence,
    skeleton: Skeleton | None = None,
    limits: JointLimits | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    smoothness: float = 0.0,
    prior: Mapping[str, float] | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    min_confidence: float = 0.3,
    min_keypoints: int | None = None,
    max_iter: int = 100,
    warm_stride: int | None = None,
    tol_deg: float = 1e-3,
    threads: int | None = None,
    up: str | None = None,
) -> Fit:
    """Fit a skeleton to every frame of a 3D keypoint sequence under joint limits.

    Parameters
    ----------
    sequence : KeypointSequence
        3D keypoints in mm in any frame (e.g. ``"camera"``), names in any known layout
        (HALPE_26 / Pose2Sim ``RKnee``..., COCO, MediaPipe, medpose names).
    skeleton : Skeleton, optional
        Default: estimated from the sequence (:func:`~medpose.kinematics.patient.estimate_skeleton`,
        medians over confident frames); reported in ``Fit.patient``.
    limits : JointLimits, optional
        Hard limits (and soft prior); default :meth:`JointLimits.default`.
    device : str or torch.device, optional
        ``"cpu"`` (default) or ``"cuda"``.
    dtype : torch.dtype, optional
        Default float32 on the CPU and on a GPU: on the CPU about 25% faster than float64.  On a
        synthetic squat with 5 mm keypoint noise the well-determined angles (knee, hip, ankle,
        elbow flexion) agree with float64 within 0.06 degrees in the worst frame (median over
        all DoFs 1e-3 degrees) and their RMS errors against the truth agree to 0.01 degrees:
        the two precisions stop a little apart (the cost falling by less than 1e-5 relative),
        float32 rounding itself being about 2e-5 degrees.  DoFs the keypoints barely determine
        (upper-arm rotation with a nearly straight elbow) can stop at different solutions,
        degrees apart.  Pass ``torch.float64`` for bit-for-bit reproducible double precision.  With float32, ``Fit.q``, ``Fit.fitted`` and
        ``Fit.residual`` are float32 arrays; ``q`` is clamped to the limits rounded inwards to
        float32, so it never leaves the (float64) hard limits.
    smoothness : float
        Weight of the temporal smoothness term, mm of keypoint residual per degree of
        departure from the mean of the two neighbouring frames (0 = off; 1-5 smooths jitter).
    prior : Mapping[str, float], optional
        Posture prior: mm of keypoint residual per degree away from the neutral pose, by DoF
        (``"lumbar_flexion"``), by DoF without side (``"shoulder_rotation"``) or ``"*"``;
        updates :data:`DEFAULT_PRIOR` (0.05 mm/deg everywhere, 1 mm/deg on the lumbar DoFs,
        0 on the pelvis).  ``{"*": 0, "lumbar_flexion": 0, "lumbar_bending": 0,
        "lumbar_rotation": 0}`` turns it off.
    chunk_size : int, optional
        Frames per batch (default 2048 on the CPU; on a GPU 1,048,576 where 64 GB are free, else
        524,288, 262,144 or 65,536); memory grows with it, not with the recording.
    progress : bool, optional
        Show a tqdm progress bar (default: when there is more than one chunk).
    min_confidence : float
        Keypoints below this confidence are ignored (weight 0); others are weighted by it.
    min_keypoints : int, optional
        Frames with fewer confident keypoints are not fitted (NaN, with a warning giving their
        count); default half of the keypoints used, at least 4.
    max_iter : int
        Levenberg-Marquardt iterations per stage.
    warm_stride : int, optional
        Every ``warm_stride``-th frame is solved first; the others start from the linear
        interpolation of their solved neighbours.  Default: one frame in every 1/10 s
        (6 at 60 Hz, 1 at 10 Hz or less).
    tol_deg : float
        A frame has converged when its step is below ``tol_deg`` (degrees, mm) or its cost
        falls by less than 1e-5 relative.
    threads : int or None
        torch CPU threads during the fit (restored afterwards).  Default None: torch's setting
        (``torch.get_num_threads()``, all physical cores unless changed), about 1.6x one thread's
        speed on 2 cores.  Pass 1 when several fits run in parallel processes (oversubscribed
        OpenMP threads wait for each other).
    up : str, optional
        The data's up axis (``"+y"``, ``"+z"``...) if it should not be estimated.

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Not a 3D KeypointSequence; a layout missing the keypoints the fit needs (named);
        bone lengths implausible for a human (e.g. metres instead of millimetres); a bad
        ``prior``, ``smoothness``, ``chunk_size`` or ``up``.
    LimitError
        Empty or inverted limits (from :class:`JointLimits`).

    Examples
    --------
    >>> import medpose as mp                                     # doctest: +SKIP
    >>> f = mp.fit(mp.read_keypoints("trial.trc"))               # doctest: +SKIP
    >>> f.angles["knee_flexion_r"].max()                         # doctest: +SKIP
    """
    prob = prepare(
        sequence,
        skeleton,
        limits,
        min_confidence=min_confidence,
        min_keypoints=min_keypoints,
        up=up,
        prior=prior,
    )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dt = dtype or _default_dtype(dev)
    if smoothness < 0 or not math.isfinite(smoothness):
        raise InputError(f"fit: smoothness must be a finite number >= 0, found {smoothness!r}")
    if not (tol_deg > 0 and math.isfinite(tol_deg)):
        raise InputError(f"fit: tol_deg must be a finite number > 0, found {tol_deg!r}")
    T = sequence.n_frames
    cs = int(chunk_size) if chunk_size is not None else _default_chunk(dev)
    if cs < 1:
        raise InputError(
            f"fit: chunk_size must be a positive number of frames, found {chunk_size!r}"
        )
    old_threads = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            raise InputError(f"fit: threads must be a positive number or None, found {threads!r}")
        torch.set_num_threads(int(threads))
    try:
        out = _run(
            prob,
            sequence.positions,
            sequence.confidence,
            dev,
            dt,
            smoothness=float(smoothness),
            chunk_size=cs,
            progress=progress,
            max_iter=int(max_iter),
            warm_stride=max(
                1, int(warm_stride) if warm_stride is not None else int(sequence.rate // 10)
            ),
            xtol=float(tol_deg),
        )
    finally:
        torch.set_num_threads(old_threads)
    q, fitted, resid, conv, valid, at, noise = out
    source = None
    if fitted is None:  # GPU: computed when asked
        source = _Observed(
            sequence.positions,
            sequence.confidence,
            prob.seq_index,
            prob.kp_index,
            prob.min_confidence,
            str(dev),
            np.dtype(np.float64 if dt == torch.float64 else np.float32),
        )
    n_bad = int((~valid).sum())
    if n_bad:
        warnings.warn(
            f"fit: {n_bad} of {T} frames have fewer than {prob.min_keypoints} keypoints with confidence "
            f">= {prob.min_confidence:g} (or fewer than 3 on the trunk and pelvis); their angles are NaN",
            stacklevel=2,
        )
    sk = prob.skeleton
    return Fit(
        q=q,
        dof_names=sk.dof_names,
        rate=sequence.rate,
        start=sequence.start,
        frame=sequence.frame,
        skeleton=sk,
        limits=prob.limits,
        patient=prob.patient,
        observable=prob.observable,
        alignment=prob.alignment,
        keypoint_names=prob.kp_names,
        fitted_=fitted,
        residual_=resid,
        limit_active=at,
        converged_mask=conv,
        valid=valid,
        noise_mm=noise,
        prior_sd=prob.prior_sd,
        source=source,
    )


# ------------------------------------------------------------------------------ Euler branches
def _branch_moves(
    sk: Skeleton, free: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Re-parametrisations of a ball joint that leave its segment's (and children's) pose unchanged.

    For ``R = R_i(a) R_j(b) R_k(c)``: the other Euler branch ``(a + 180, 180 - b, c + 180)``
    (Diebel 2006, sec. 5) gives the same rotation; a half turn of the segment about its own
    last axis ``k`` with each child joint re-expressed (``R_k(180) R_u(d) R_v(e) R_k(f) =
    R_u(-d) R_v(-e) R_k(f + 180)`` for the child's axes ``u, v`` perpendicular to ``k``) moves
    nothing but what turns with it about that axis; they compose.  Returned per move: DoF
    columns, per-column multiplier (+-1) and offset (degrees, in the DoF's own sign), applied
    as ``q' = m q + c``.  Whether a move is exact for the keypoints at hand (a child keypoint
    off the axis, a child DoF held fixed) is not assumed: :func:`_choose_branches` compares costs.
    """
    moves = []
    idx, sign = sk.joint_dof_index, sk.joint_dof_sign
    for s, seq in enumerate(sk.sequences):
        if sk.parent_index[s] < 0 or not all(idx[s] >= 0) or not free[idx[s]].all():
            continue
        # Euler twin: raw (a, b, c) -> (a + 180, 180 - b, c + 180); in DoF units q = raw * sign
        twin = (
            list(idx[s]),
            [1.0, -1.0, 1.0],
            [180.0 * sign[s, 0], 180.0 * sign[s, 1], 180.0 * sign[s, 2]],
        )
        k = seq[2]
        flip_c, flip_m, flip_o = [int(idx[s, 2])], [1.0], [180.0 * sign[s, 2]]
        for c in np.flatnonzero(sk.parent_index == s):
            for j, ax in enumerate(sk.sequences[c]):
                d = int(idx[c, j])
                if d < 0 or not free[d]:
                    continue
                flip_c.append(d)
                flip_m.append(1.0 if ax == k else -1.0)
                flip_o.append(180.0 * sign[c, j] if ax == k else 0.0)
        flip = (flip_c, flip_m, flip_o)
        both_c = list(flip_c)
        both_m, both_o = list(flip_m), list(flip_o)
        for d, m, o in zip(*twin):
            if d in both_c:  # compose on the shared column
                n = both_c.index(d)
                both_m[n], both_o[n] = both_m[n] * m, m * both_o[n] + o
            else:
                both_c.append(d)
                both_m.append(m)
                both_o.append(o)
        for c_, m_, o_ in (twin, flip, (both_c, both_m, both_o)):
            moves.append((np.array(c_), np.array(m_), np.array(o_)))
    return moves


def _wrap_into(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The 360-degree equivalent of ``v`` inside ``[lo, hi]`` where there is one."""
    v = torch.remainder(v + 180.0, 360.0) - 180.0
    v = torch.where(v > hi, v - 360.0, v)
    return torch.where(v < lo, v + 360.0, v)


def _choose_branches(
    ctx: _Context,
    moves,
    q: torch.Tensor,
    x_obs: torch.Tensor,
    w: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    mu: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Among poses that fit the keypoints equally well, keep the one nearest the neutral pose.

    Each move of :func:`_branch_moves` is tried on every frame; it is taken where it stays
    inside the hard limits, does not raise the keypoint cost (beyond rounding) and brings the
    joint nearer neutral (squared distance to ``mu`` of the DoFs it changes).  Returns the new
    q and a mask of the frames that changed.
    """
    changed = torch.zeros(q.shape[0], dtype=torch.bool, device=q.device)
    if not moves or q.shape[0] == 0:
        return q, changed
    sw = torch.sqrt(w)[..., None]
    x = ctx.keypoints_at(q)
    cost = ((sw * (x - x_obs)) ** 2).sum(dim=(1, 2))
    for cols, mult, off in moves:
        c = torch.as_tensor(cols, device=q.device)
        cand = _wrap_into(
            q[:, c] * torch.as_tensor(mult, device=q.device, dtype=q.dtype)
            + torch.as_tensor(off, device=q.device, dtype=q.dtype),
            lo[c],
            hi[c],
        )
        inside = ((cand >= lo[c]) & (cand <= hi[c])).all(dim=1)
        nearer = ((cand - mu[c]) ** 2).sum(dim=1) < ((q[:, c] - mu[c]) ** 2).sum(dim=1) - 1e-6
        sel = torch.nonzero(inside & nearer)[:, 0]
        if sel.numel() == 0:
            continue
        qn = q[sel].clone()
        qn[:, c] = cand[sel]
        xn = ctx.keypoints_at(qn)
        cn = ((sw[sel] * (xn - x_obs[sel])) ** 2).sum(dim=(1, 2))
        ok = cn <= cost[sel] * (1.0 + 1e-5) + 1e-6 * x_obs.shape[1]
        take = sel[ok]
        q = q.clone()
        q[take] = qn[ok]
        cost = cost.clone()
        cost[take] = cn[ok]
        changed[take] = True
    return q, changed


def _frame_rms(x: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor, n_var: int) -> torch.Tensor:
    """Per frame sqrt(weighted squared residual / degrees of freedom), mm per axis."""
    dof = (3 * (w > 0).sum(dim=1) - n_var).clamp(min=1).to(x.dtype)
    return torch.sqrt((w * ((x - x_obs) ** 2).sum(dim=2)).sum(dim=1) / dof)


def _repair(
    ctx: _Context,
    q,
    x,
    conv,
    x_obs,
    w,
    lo,
    hi,
    pri: _Priors,
    n_var: int,
    sigma: float,
    xtol: float,
    max_iter: int,
    passes: int = 3,
    q_rigid: torch.Tensor | None = None,
):
    """Restart frames stuck in a local minimum (residual above ``3 sigma + 0.5`` mm), keeping
    whichever fits better: first from their own rigid start ``q_rigid`` (a frame interpolated
    across a jump in the data, e.g. a tracking glitch, starts far off), then from the solution
    of a neighbouring frame that fits.  Frames are in time order, so a run of stuck frames is
    repaired from its ends, one frame per pass."""
    if q_rigid is not None:
        rms = _frame_rms(x, x_obs, w, n_var)
        bad = ~(rms <= 3.0 * sigma + 0.5)
        if bool(bad.any()) and not bool(bad.all()):
            idx = torch.nonzero(bad)[:, 0]
            qn, xn, cn = _solve(
                ctx,
                q_rigid[idx],
                x_obs[idx],
                w[idx],
                lo,
                hi,
                pri,
                max_iter=max_iter,
                xtol=xtol,
                lam0=1e-3,
            )
            better = _frame_rms(xn, x_obs[idx], w[idx], n_var) < rms[idx]
            take = idx[better]
            q, x, conv = q.clone(), x.clone(), conv.clone()
            q[take], x[take], conv[take] = qn[better], xn[better], cn[better]
    for _ in range(passes):
        rms = _frame_rms(x, x_obs, w, n_var)
        bad = ~(rms <= 3.0 * sigma + 0.5)
        if not bool(bad.any()) or bool(bad.all()):
            break
        idx = torch.nonzero(bad)[:, 0]
        prev_ok = (idx > 0) & ~bad[(idx - 1).clamp(min=0)]
        nxt = (idx + 1).clamp(max=q.shape[0] - 1)
        next_ok = (idx < q.shape[0] - 1) & ~bad[nxt]
        use = prev_ok | next_ok
        if not bool(use.any()):
            break
        idx = idx[use]
        src = torch.where(prev_ok[use], idx - 1, nxt[use])
        qn, xn, cn = _solve(
            ctx, q[src], x_obs[idx], w[idx], lo, hi, pri, max_iter=max_iter, xtol=xtol
        )
        better = _frame_rms(xn, x_obs[idx], w[idx], n_var) < rms[idx]
        take = idx[better]
        q, x, conv = q.clone(), x.clone(), conv.clone()
        q[take], x[take], conv[take] = qn[better], xn[better], cn[better]
    return q, x, conv


def _interpolate(
    q_c: torch.Tensor, at_c: torch.Tensor, at: torch.Tensor, rot: torch.Tensor
) -> torch.Tensor:
    """Start values for frames ``at`` from solved frames ``at_c`` (sorted): linear in time, or
    the nearer solved frame for a rotational DoF that jumps by more than 45 degrees between them."""
    n = at_c.numel()
    i = torch.clamp(torch.searchsorted(at_c.contiguous(), at, right=True) - 1, 0, n - 1)
    j = torch.clamp(i + 1, max=n - 1)
    span = (at_c[j] - at_c[i]).to(q_c.dtype)
    a = torch.where(
        span > 0, (at - at_c[i]).to(q_c.dtype) / span.clamp(min=1), torch.zeros_like(span)
    )[:, None]
    qi, qj = q_c[i], q_c[j]
    lin = qi + a * (qj - qi)
    near = torch.where(a > 0.5, qj, qi)
    jump = ((qj - qi).abs() > 45.0) & rot[None]
    return torch.where(jump, near, lin)


def _run(
    prob: FitProblem,
    pos: np.ndarray,
    conf: np.ndarray,
    dev: torch.device,
    dt: torch.dtype,
    *,
    smoothness: float,
    chunk_size: int,
    progress: bool | None,
    max_iter: int,
    warm_stride: int,
    xtol: float,
):
    sk = prob.skeleton
    T, K = pos.shape[0], len(prob.seq_index)  # K: the keypoints the fit uses
    D = len(sk.dof_names)
    ctx = _Context(sk, prob.kp_index, dev, dt, prob.observable)
    tt = lambda a, d=dt: torch.as_tensor(np.array(a), device=dev, dtype=d)  # noqa: E731
    lo, hi = tt(prob.lower), tt(prob.upper)
    free = torch.as_tensor(prob.observable, device=dev)
    rot = torch.as_tensor(np.array(sk.rotational), device=dev)
    neutral = tt(prob.prior_mean)
    var = ctx.var_dofs
    inv_sd = 1.0 / tt(prob.prior_sd)[var]  # 0 where no prior
    has_prior = bool((inv_sd > 0).any())
    pri0 = _Priors(
        prob.limits.soft_margin_deg,
        prob.limits.soft_weight,
        NOISE_FLOOR_MM * inv_sd if has_prior else None,
        neutral[var],
        0.0,
    )
    n_var = var.numel()
    moves = _branch_moves(sk, prob.observable)
    template = tt(forward_kinematics(sk, np.zeros((1, D)))[0][prob.kp_index])
    seg_names = sk.segment_names
    torso_seg = {sk.segment_index("pelvis") if "pelvis" in seg_names else 0}
    torso_seg |= {i for i, n in enumerate(seg_names) if n == "trunk"}
    torso_np = np.array(
        [
            sk.keypoint_segment[k] in torso_seg or sk.keypoint_names[k].startswith("shoulder")
            for k in prob.kp_index
        ]
    )
    torso = tt(np.flatnonzero(torso_np), torch.long)
    root = int(np.flatnonzero(sk.parent_index < 0)[0])
    root_rot = tt([d if d >= 0 else D for d in sk.joint_dof_index[root]], torch.long)
    root_sign = tt(np.where(sk.joint_dof_index[root] >= 0, sk.joint_dof_sign[root], 1.0))
    trans = tt(sk.translation_dof_index, torch.long)
    A = prob.alignment
    At, Ad = tt(A.T), tt(A)
    cols = (
        None
        if np.array_equal(prob.seq_index, np.arange(pos.shape[1]))
        else tt(prob.seq_index, torch.long)
    )

    def load(sel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observed keypoints in skeleton axes, weights, rigid start and validity of frames ``sel``."""
        P, C = _to_device(pos[sel], dev), _to_device(conf[sel], dev)
        if cols is not None:  # the keypoints used, on the device
            P, C = P[:, cols], C[:, cols]
        finite = torch.isfinite(P).all(dim=2)
        w = torch.where(finite & (prob.min_confidence <= C), C, 0.0).to(dt)
        x_obs = torch.where(finite[..., None], P, 0.0).to(dt) @ At
        q0, rig_ok = _rigid_init(
            ctx, template, torso, x_obs, w, sk.sequences[root], root_sign, root_rot, trans, D + 1
        )  # column D catches fixed root axes
        q0 = torch.where(free[None], q0[:, :D], neutral[None])
        return x_obs, w, q0, rig_ok & ((w > 0).sum(dim=1) >= prob.min_keypoints)

    # pilot: up to 64 frames spread over the recording, from their rigid start, measure the
    # keypoint noise (median over frames of sqrt(weighted squared residual / degrees of freedom));
    # it sets the posture prior's weight, sigma / sd mm per degree
    sigma = float("nan")
    xp, wp, qp, okp = load(np.unique(np.linspace(0, T - 1, min(T, 64)).round().astype(int)))
    if bool(okp.any()):
        xp, wp, qp = xp[okp], wp[okp], qp[okp]
        cp = qp[:, trans].mean(dim=0)
        qp[:, trans] -= cp
        _, xs, _ = _solve(
            ctx, qp, xp - cp, wp, lo, hi, pri0, max_iter=min(max_iter, 10), xtol=xtol, lam0=1e-3
        )
        dof = (3 * (wp > 0).sum(dim=1) - n_var).clamp(min=1).to(dt)
        rms = torch.sqrt((wp * ((xs - (xp - cp)) ** 2).sum(dim=2)).sum(dim=1) / dof)
        sigma = float(torch.nanmedian(rms))
    sig = max(sigma, NOISE_FLOOR_MM) if math.isfinite(sigma) else NOISE_FLOOR_MM
    pri = _Priors(
        pri0.margin, pri0.weight, sig * inv_sd if has_prior else None, pri0.mu, smoothness
    )
    pri1 = _Priors(pri.margin, pri.weight, pri.tik, pri.mu, 0.0)

    # results are computed on the device and copied once per chunk into these, in the fit's
    # precision (float32 carries no more than that).  On a GPU the fitted keypoints and residuals
    # stay behind (Fit computes them when asked), so only q and three masks travel, into
    # page-locked memory (copies at full speed; torch's pinned-memory cache keeps it for the next fit)
    tdt = torch.float64 if dt == torch.float64 else torch.float32
    gpu = dev.type == "cuda"
    q_all, conv_all, valid_all, at_all = (
        torch.empty(shape, dtype=d, pin_memory=gpu)
        for shape, d in (((T, D), tdt), (T, torch.bool), (T, torch.bool), ((T, D), torch.bool))
    )
    fit_all = None if gpu else torch.empty((T, K, 3), dtype=tdt)
    res_all = None if gpu else torch.empty((T, K), dtype=tdt)
    ltol = 1e-6 * torch.clamp(torch.where(torch.isfinite(lo), lo, 0.0).abs(), min=1.0)
    starts = list(range(0, T, chunk_size))
    bar = None
    if progress or (progress is None and len(starts) > 1):
        from tqdm.auto import tqdm

        bar = tqdm(total=T, unit="frame", desc="fit")
    state: dict = {"prev_last": None}
    # the limits rounded inwards to the fit's precision: q clamped to them never leaves the
    # (float64) hard limits, whatever the rounding
    lo_np, hi_np = _inward(
        prob.lower, prob.upper, np.float32 if tdt == torch.float32 else np.float64
    )
    lo_in, hi_in = torch.as_tensor(lo_np, device=dev), torch.as_tensor(hi_np, device=dev)

    def chunk(s0: int) -> None:
        prev_last = state["prev_last"]
        s1 = min(T, s0 + chunk_size)
        n = s1 - s0
        x_obs, w, q0, valid = load(slice(s0, s1))
        vidx = torch.nonzero(valid)[:, 0]
        # work relative to the chunk's mean pelvis position (float32 keeps its precision)
        centre = q0[vidx][:, trans].mean(dim=0) if vidx.numel() else q0.new_zeros(3)
        x_obs = x_obs - centre
        q0[:, trans] = q0[:, trans] - centre
        q = torch.full((n, D), float("nan"), device=dev, dtype=dt)
        xf = torch.full((n, K, 3), float("nan"), device=dev, dtype=dt)
        cv = torch.zeros(n, dtype=torch.bool, device=dev)
        if vidx.numel():
            # stage 1: every warm_stride-th valid frame from the rigid initialisation, then the
            # branch of each ball joint nearest neutral among equally good fits
            coarse = vidx[::warm_stride]
            qc, xc, cc = _solve(
                ctx,
                q0[coarse],
                x_obs[coarse],
                w[coarse],
                lo,
                hi,
                pri1,
                max_iter=max_iter,
                xtol=xtol,
                lam0=1e-3,
            )  # far start: damped
            qc, moved_c = _choose_branches(
                ctx, moves, qc, x_obs[coarse], w[coarse], lo, hi, neutral
            )
            mc = torch.nonzero(moved_c)[:, 0]
            if mc.numel():
                xc[mc] = ctx.keypoints_at(qc[mc])
            # stage 2: every valid frame from the interpolation of its solved neighbours
            qn = _interpolate(qc, coarse, vidx, rot) if coarse.numel() < vidx.numel() else qc
            qn = torch.where(free[None], qn, neutral[None])
            nb = None
            if smoothness > 0:
                pl = None
                if prev_last is not None and s0 > 0:  # last frame of the previous chunk
                    pl = prev_last[0].clone()
                    pl[trans] = pl[trans] - centre
                nb = _neighbours(vidx, n, pl)
            if nb is None and coarse.numel() < vidx.numel():
                # frames are independent: the coarse frames are solved already, the others start
                # from their interpolation
                rest = torch.ones(n, dtype=torch.bool, device=dev)
                rest[coarse] = False
                sub = torch.nonzero(rest[vidx])[:, 0]
                qs, xs, cs_ = _solve(
                    ctx,
                    qn[sub],
                    x_obs[vidx[sub]],
                    w[vidx[sub]],
                    lo,
                    hi,
                    pri,
                    max_iter=max_iter,
                    xtol=xtol,
                )
                cpos = torch.nonzero(~rest[vidx])[:, 0]  # coarse frames within vidx
                qv, cvv = qn.clone(), torch.empty(vidx.numel(), dtype=torch.bool, device=dev)
                qv[sub], cvv[sub], cvv[cpos] = qs, cs_, cc
                xv = xs.new_empty(vidx.numel(), *xs.shape[1:])
                xv[sub] = xs
                xv[cpos] = xc
            else:
                # with smoothness the frames are coupled (block-Jacobi): a few sweeps, not to full tolerance
                qv, xv, cvv = _solve(
                    ctx,
                    qn,
                    x_obs[vidx],
                    w[vidx],
                    lo,
                    hi,
                    pri,
                    neighbours=nb,
                    max_iter=max_iter if nb is None else min(max_iter, 20),
                    xtol=xtol,
                )
            qv, xv, cvv = _repair(
                ctx,
                qv,
                xv,
                cvv,
                x_obs[vidx],
                w[vidx],
                lo,
                hi,
                pri1,
                n_var,
                sig,
                xtol,
                max_iter,
                q_rigid=q0[vidx],
            )
            # a frame that started from branch-chosen neighbours and stayed within 30 degrees of its
            # start is on their branch (another branch of a ball joint is >= 180 degrees away in
            # some DoF): the branch choice is repeated only for frames that moved further
            far = torch.nonzero(((qv - qn).abs() > 30.0).any(dim=1))[:, 0]
            moved = torch.zeros(vidx.numel(), dtype=torch.bool, device=dev)
            qb = qv
            if far.numel():
                qf, mf = _choose_branches(
                    ctx, moves, qv[far], x_obs[vidx[far]], w[vidx[far]], lo, hi, neutral
                )
                qb = qv.clone()
                qb[far], moved[far] = qf, mf
            m = torch.nonzero(moved)[:, 0]
            if m.numel():  # polish the frames that moved
                qm, xm, cm = _solve(
                    ctx,
                    qb[m],
                    x_obs[vidx][m],
                    w[vidx][m],
                    lo,
                    hi,
                    pri1,
                    max_iter=max_iter,
                    xtol=xtol,
                )
                qv, xv, cvv = qv.clone(), xv.clone(), cvv.clone()
                qv[m], xv[m], cvv[m] = qm, xm, cm
            q[vidx], xf[vidx], cv[vidx] = qv, xv, cvv
            prev_last = q[-1:].clone() if bool(valid[-1]) else None
            if prev_last is not None:
                prev_last[:, trans] = prev_last[:, trans] + centre
        state["prev_last"] = prev_last if vidx.numel() else None
        # residuals do not depend on the axes (A is a rotation): computed before adding the centre back
        if not gpu:
            res = torch.where(w > 0, torch.linalg.vector_norm(xf - x_obs, dim=2), float("nan"))
            xf = (xf + centre) @ Ad  # back to the data frame
        q[:, trans] = q[:, trans] + centre
        at = torch.isfinite(q) & (((q - lo).abs() <= ltol) | ((q - hi).abs() <= ltol)) & free
        qc = torch.minimum(torch.maximum(q.to(tdt), lo_in), hi_in)  # (NaN stays NaN)
        outs = [(q_all, qc), (conv_all, cv), (valid_all, valid), (at_all, at)]
        if fit_all is not None and res_all is not None:  # CPU: kept; GPU: computed when asked
            outs += [(fit_all, xf), (res_all, res)]
        for dst, src in outs:
            dst[s0:s1].copy_(src, non_blocking=gpu)
        if bar is not None:
            bar.update(n)

    for s0 in starts:
        chunk(s0)
    if gpu:
        torch.cuda.synchronize(dev)
    if bar is not None:
        bar.close()
    return tuple(
        None if a is None else a.numpy()
        for a in (q_all, fit_all, res_all, conv_all, valid_all, at_all)
    ) + (sigma,)


def _inward(lower: np.ndarray, upper: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Limits in ``dtype``, each rounded towards the inside of its range (infinite ones kept)."""
    lo = np.asarray(lower, dtype=np.float64).astype(dtype)
    hi = np.asarray(upper, dtype=np.float64).astype(dtype)
    lo = np.where(lo.astype(np.float64) < lower, np.nextafter(lo, dtype(np.inf)), lo).astype(dtype)
    hi = np.where(hi.astype(np.float64) > upper, np.nextafter(hi, dtype(-np.inf)), hi).astype(dtype)
    return lo, hi


def _to_device(a: np.ndarray, dev: torch.device) -> torch.Tensor:
    """A (possibly read-only) numpy array as a tensor on ``dev``; never written to."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: we only read
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)


def _neighbours(vidx: torch.Tensor, n: int, prev_last: torch.Tensor | None):
    """Mean of the previous and next frame's current q (for consecutive valid frames)."""
    # position of each valid frame's neighbours within the valid-frame batch
    m = vidx.numel()
    ar = torch.arange(m, device=vidx.device)
    has_prev = torch.zeros(m, dtype=torch.bool, device=vidx.device)
    has_next = torch.zeros(m, dtype=torch.bool, device=vidx.device)
    if m > 1:
        has_prev[1:] = (vidx[1:] - vidx[:-1]) == 1
        has_next[:-1] = (vidx[1:] - vidx[:-1]) == 1
    first = prev_last if prev_last is not None and m > 0 and int(vidx[0]) == 0 else None

    def f(q: torch.Tensor):
        prev = q[torch.clamp(ar - 1, min=0)]
        nxt = q[torch.clamp(ar + 1, max=m - 1)]
        hp = has_prev.clone()
        if first is not None:
            prev = prev.clone()
            prev[0] = first
            hp[0] = True
        cnt = hp.to(q.dtype) + has_next.to(q.dtype)
        s = torch.where(hp[:, None], prev, 0.0) + torch.where(has_next[:, None], nxt, 0.0)
        mean = s / cnt.clamp(min=1.0)[:, None]
        return torch.nan_to_num(mean), cnt > 0

    return f
