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
elementary rotations.  The smoothness term couples neighbouring frames; it is solved by
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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..data import JointAngles, KeypointSequence
from ..errors import InputError
from ..io._util import atomic_path
from ..layouts import to_medpose_names
from .fk import forward_kinematics, segment_poses
from .limits import JointLimits
from .patient import PatientSkeleton, estimate_skeleton
from .skeleton import Skeleton

__all__ = ["Fit", "fit", "FitProblem", "prepare", "alignment_rotation", "euler_from_matrix"]

_AX = {"X": 0, "Y": 1, "Z": 2}
#: Keypoints the fit cannot do without: the pelvis (both hips) and the trunk's direction.
_REQUIRED = ("hip_r", "hip_l")
_UP = ("neck", "shoulder_r", "shoulder_l")


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


def alignment_rotation(sequence_positions: np.ndarray, names: Sequence[str], up: str | None = None) -> np.ndarray:
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
            raise InputError("fit: cannot tell which way is up: no frame has hip_r, hip_l and neck or shoulders")
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


# ------------------------------------------------------------------------------ the problem
@dataclass(frozen=True, eq=False)
class FitProblem:
    """Everything the solvers need, independent of torch: skeleton, keypoints used, limits.

    Built by :func:`prepare`; shared by :func:`fit` and the scipy reference solver
    (:func:`medpose.kinematics.reference.fit_reference`).
    """

    skeleton: Skeleton
    limits: JointLimits
    lower: np.ndarray              # (D,)
    upper: np.ndarray              # (D,)
    seq_index: np.ndarray          # (K,) columns of the sequence used
    kp_index: np.ndarray           # (K,) matching skeleton keypoints
    kp_names: tuple[str, ...]      # (K,) medpose names
    observable: np.ndarray         # (D,) bool
    alignment: np.ndarray          # (3, 3) data -> skeleton axes
    patient: PatientSkeleton | None
    min_confidence: float
    min_keypoints: int


def _map_keypoints(sequence: KeypointSequence, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
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
        raise InputError(f"fit: the skeleton cannot use this keypoint layout: missing keypoints {missing}; "
                         f"recognised {len(used)} of {len(names)} names ({used[:12]}{'...' if len(used) > 12 else ''}); "
                         "the fit needs hip_r, hip_l and neck or both shoulders, by medpose name or a known "
                         "layout's name (RHip, LHip, Neck...)")
    return np.array(seq_idx), np.array(kp_idx), tuple(used)


def _observable(skeleton: Skeleton, kp_index: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """DoFs that move at least one used keypoint at generic poses (Jacobian column non-zero)."""
    rng = np.random.default_rng(12345)
    lo = np.where(np.isfinite(lower), lower, -100.0)
    hi = np.where(np.isfinite(upper), upper, 100.0)
    q = torch.as_tensor(lo + (hi - lo) * rng.uniform(0.2, 0.8, size=(4, len(lo))), dtype=torch.float64)
    ctx = _Context(skeleton, kp_index, torch.device("cpu"), torch.float64)
    _, _, _, J = ctx.evaluate(q, jacobian=True)
    obs = np.zeros(len(lo), dtype=bool)
    obs[ctx.var_dofs.numpy()] = (J.abs().amax(dim=(0, 1, 2)) > 1e-9).numpy()
    return obs


def prepare(sequence: KeypointSequence, skeleton: Skeleton | None = None, limits: JointLimits | None = None, *,
            min_confidence: float = 0.3, min_keypoints: int | None = None, up: str | None = None) -> FitProblem:
    """Check a sequence against a skeleton and set up the fit (see :func:`fit` for parameters)."""
    if not isinstance(sequence, KeypointSequence):
        raise InputError(f"fit: expected a KeypointSequence, found {type(sequence).__name__}")
    if sequence.ndim != 3:
        raise InputError(f"fit: expected 3D keypoints (T, K, 3) in mm, found {sequence.ndim}D "
                         "(image keypoints must be triangulated first)")
    if sequence.n_frames == 0:
        raise InputError("fit: the sequence has no frames")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise InputError(f"fit: min_confidence must lie in [0, 1], found {min_confidence!r}")
    base = skeleton if skeleton is not None else Skeleton.default()
    seq_idx, kp_idx, used = _map_keypoints(sequence, base)
    renamed = KeypointSequence(sequence.positions[:, seq_idx], used, sequence.rate,
                               sequence.confidence[:, seq_idx], sequence.frame, sequence.start)
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
    A = alignment_rotation(renamed.positions, used, up)
    k = len(used)
    mk = int(min_keypoints) if min_keypoints is not None else max(4, math.ceil(0.5 * k))
    if mk < 3:
        raise InputError(f"fit: min_keypoints must be at least 3, found {min_keypoints!r}")
    return FitProblem(skeleton, lim, np.asarray(lo, float), np.asarray(hi, float), seq_idx, kp_idx, used, obs, A,
                      patient, float(min_confidence), mk)


# ------------------------------------------------------------------------------ torch context
class _Context:
    """Skeleton constants as tensors, and the batched keypoints / analytic Jacobian.

    The solver's variables are the ``free`` DoFs only (observable ones), ordered as
    :attr:`var_dofs`: the free rotational DoFs, then the free translations.
    """

    def __init__(self, skeleton: Skeleton, kp_index: np.ndarray, device: torch.device, dtype: torch.dtype,
                 free: np.ndarray | None = None):
        sk = skeleton
        self.sk, self.device, self.dtype = sk, device, dtype
        S, D = len(sk.segment_names), len(sk.dof_names)
        free = np.ones(D, dtype=bool) if free is None else np.asarray(free, dtype=bool)
        t = lambda a, dt=dtype: torch.as_tensor(np.array(a), device=device, dtype=dt)  # noqa: E731
        self.kseg = t(sk.keypoint_segment[kp_index], torch.long)
        self.koff = t(sk.keypoint_offsets[kp_index])
        parent = sk.parent_index
        anc = np.zeros((S, S), dtype=bool)                 # anc[s, a]: a is s or an ancestor of s
        for s in range(S):
            a = s
            while a >= 0:
                anc[s, a] = True
                a = parent[a]
        rot = [(d, s, j) for s in range(S) for j in range(3)
               if (d := int(sk.joint_dof_index[s, j])) >= 0 and free[d]]
        seg = np.array([r[1] for r in rot], dtype=np.int64)
        slot = np.array([r[2] for r in rot], dtype=np.int64)
        seqs = [sk.sequences[s] for s in seg]
        a1 = np.array([_AX[q[0]] for q in seqs], dtype=np.int64)
        a2 = np.array([_AX[q[1]] for q in seqs], dtype=np.int64)
        a3 = np.array([_AX[q[2]] for q in seqs], dtype=np.int64)
        th1 = sk.joint_dof_index[seg, 0]
        self.seg, self.slot = t(seg, torch.long), t(slot, torch.long)
        self.parent1 = t(parent[seg] + 1, torch.long)      # index into [I, R_0, R_1, ...]
        self.a1, self.a2, self.a3, self.k12 = (t(v, torch.long) for v in (a1, a2, a3, 3 - a1 - a2))
        self.eps12 = t(np.where((a2 - a1) % 3 == 1, 1.0, -1.0))
        self.th1_dof = t(np.where(th1 >= 0, th1, D), torch.long)
        self.th1_sign = t(sk.joint_dof_sign[seg, 0])
        # d x / d q (per degree) = sign * pi/180 * (w x lever), for keypoints below the joint
        self.scale = t((sk.joint_dof_sign[seg, slot] * np.pi / 180.0)[None, :]
                       * anc[sk.keypoint_segment[kp_index]][:, seg])          # (K, Fr)
        trans = [int(d) for d in sk.translation_dof_index if free[d]]
        self.trans_axes = t([list(sk.translation_dof_index).index(d) for d in trans], torch.long)
        self.var_dofs = t([r[0] for r in rot] + trans, torch.long)           # (F,)
        self.n_rot = len(rot)
        self.D = D

    def keypoints(self, R: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """Keypoints (T, K, 3) from segment poses: ``o[seg] + R[seg] @ offset``."""
        return o[:, self.kseg] + (R[:, self.kseg] @ self.koff[..., None])[..., 0]

    def evaluate(self, q: torch.Tensor, jacobian: bool = False):
        """Segment poses, keypoints and (optionally) the Jacobian (T, K, 3, F) per degree / mm."""
        R, o = segment_poses(self.sk, q)
        x = self.keypoints(R, o)
        return R, o, x, (self.jacobian(q, R, o, x) if jacobian else None)

    def jacobian(self, q: torch.Tensor, R: torch.Tensor, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        T, K = x.shape[:2]
        Rt = R.transpose(-1, -2)                                        # Rt[t, s, c] = column c of R
        eye = torch.eye(3, device=q.device, dtype=q.dtype).expand(T, 1, 3, 3)
        Rpt = torch.cat([eye, Rt], dim=1)
        qz = torch.cat([q, q.new_zeros(T, 1)], dim=1)
        th1 = torch.deg2rad(qz[:, self.th1_dof] * self.th1_sign)[..., None]   # (T, Fr, 1)
        w1 = Rpt[:, self.parent1, self.a1]                              # (T, Fr, 3)
        w2 = torch.cos(th1) * Rpt[:, self.parent1, self.a2] + self.eps12[:, None] * torch.sin(th1) * Rpt[:, self.parent1, self.k12]
        w3 = Rt[:, self.seg, self.a3]
        slot = self.slot[:, None]
        w = torch.where(slot == 0, w1, torch.where(slot == 1, w2, w3))[:, None]   # (T, 1, Fr, 3)
        lev = x[:, :, None, :] - o[:, None, self.seg, :]                # (T, K, Fr, 3)
        cx = w[..., 1] * lev[..., 2] - w[..., 2] * lev[..., 1]
        cy = w[..., 2] * lev[..., 0] - w[..., 0] * lev[..., 2]
        cz = w[..., 0] * lev[..., 1] - w[..., 1] * lev[..., 0]
        Jr = torch.stack([cx, cy, cz], dim=2) * self.scale[:, None, :]  # (T, K, 3, Fr)
        Jt = torch.eye(3, device=q.device, dtype=q.dtype)[:, self.trans_axes].expand(T, K, 3, -1)
        return torch.cat([Jr, Jt], dim=3)


# ------------------------------------------------------------------------------ the solver
def _prior_terms(z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, margin: float, weight: float,
                 smooth: float, mean_nb: torch.Tensor | None, nb_ok: torch.Tensor | None):
    """Prior residuals (T, F) and their diagonal Jacobians (T, F): soft limits, smoothness."""
    terms = []
    if weight > 0 and margin > 0:
        up = torch.clamp(z - (hi - margin), min=0.0)
        dn = torch.clamp((lo + margin) - z, min=0.0)
        band = ((up > 0) | (dn > 0)).to(z.dtype)
        terms.append((weight * (up - dn), weight * band))
    if smooth > 0 and mean_nb is not None:
        ok = nb_ok.to(z.dtype)[:, None]
        terms.append((smooth * (z - mean_nb) * ok, smooth * ok.expand_as(z)))
    return terms


def _cost(res: torch.Tensor, terms) -> torch.Tensor:
    c = (res ** 2).sum(dim=(1, 2))
    for r, _ in terms:
        c = c + (r ** 2).sum(dim=1)
    return c


def _solve(ctx: _Context, q0: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor, lo: torch.Tensor,
           hi: torch.Tensor, *, margin: float, weight: float, smooth: float = 0.0, neighbours=None,
           max_iter: int = 100, tol: float = 1e-6, xtol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projected Levenberg-Marquardt on a batch of frames.

    Only frames that have not converged are carried into the next iteration (the batch
    shrinks), so the slowest frames do not cost the others anything.

    Returns q (T, D), fitted keypoints (T, K, 3) and converged (T,).
    """
    T, D = q0.shape
    var = ctx.var_dofs
    lo_v, hi_v = lo[var], hi[var]
    q = q0.clone()
    q[:, var] = torch.clamp(q[:, var], lo_v, hi_v)
    sw_all = torch.sqrt(w)[..., None]
    lam_all = q.new_full((T,), 1e-3)
    conv = torch.zeros(T, dtype=torch.bool, device=q.device)
    act = torch.arange(T, device=q.device)
    for _ in range(max_iter):
        if act.numel() == 0:
            break
        qa, sw, xo, lam = q[act], sw_all[act], x_obs[act], lam_all[act]
        za = qa[:, var]
        mnb = nbok = None
        if neighbours is not None:
            mnb, nbok = neighbours(q)
            mnb, nbok = mnb[act][:, var], nbok[act]
        R, o, x, J = ctx.evaluate(qa, jacobian=True)
        res = sw * (x - xo)
        terms = _prior_terms(za, lo_v, hi_v, margin, weight, smooth, mnb, nbok)
        cost = _cost(res, terms)
        Jw = (sw[..., None] * J).reshape(qa.shape[0], -1, var.numel())
        H = Jw.transpose(1, 2) @ Jw
        g = (Jw.transpose(1, 2) @ res.reshape(qa.shape[0], -1, 1))[..., 0]
        for r, dj in terms:
            H = H + torch.diag_embed(dj * dj)
            g = g + dj * r
        frozen = ((za <= lo_v) & (g > 0)) | ((za >= hi_v) & (g < 0))
        keep = (~frozen).to(q.dtype)
        H = H * keep[:, :, None] * keep[:, None, :]
        diag = torch.diagonal(H, dim1=1, dim2=2)
        A = H + torch.diag_embed(lam[:, None] * diag + 1e-9 + frozen.to(q.dtype))
        L, info = torch.linalg.cholesky_ex(A)
        step = -torch.cholesky_solve((g * keep)[..., None], L)[..., 0] * keep
        bad = info != 0
        step = torch.where(bad[:, None], torch.zeros_like(step), step)
        z_new = torch.clamp(za + step, lo_v, hi_v)
        q_new = qa.clone()
        q_new[:, var] = z_new
        _, _, x2, _ = ctx.evaluate(q_new)
        cost2 = _cost(sw * (x2 - xo), _prior_terms(z_new, lo_v, hi_v, margin, weight, smooth, mnb, nbok))
        ok = (cost2 <= cost) & torch.isfinite(cost2) & ~bad
        dz = (z_new - za).abs().amax(dim=1)
        done = (ok & (((cost - cost2) <= tol * cost) | (dz <= xtol))) | (lam > 1e10) | (cost <= 1e-20)
        q[act] = torch.where(ok[:, None], q_new, qa)
        lam_all[act] = torch.where(ok, torch.clamp(lam / 3.0, min=1e-7), lam * 4.0)
        conv[act] = done
        act = act[~done]
    R, o = segment_poses(ctx.sk, q)
    return q, ctx.keypoints(R, o), conv


def _rigid_init(ctx: _Context, template: torch.Tensor, torso: torch.Tensor, x_obs: torch.Tensor, w: torch.Tensor,
                root_seq: str, root_sign: torch.Tensor, root_rot: torch.Tensor, trans: torch.Tensor, D: int):
    """q0 (T, D) from a weighted Kabsch fit of the zero-pose trunk/pelvis keypoints; ok (T,)."""
    wt = w[:, torso]                                                    # (T, M)
    P = template[torso]                                                 # (M, 3)
    Q = x_obs[:, torso]
    ws = wt.sum(dim=1, keepdim=True).clamp(min=1e-12)
    pc = (wt @ P) / ws                                                  # (T, 3)
    qc = (wt[..., None] * Q).sum(dim=1) / ws
    Hm = torch.einsum("tm,tmi,tmj->tij", wt, P[None] - pc[:, None], Q - qc[:, None])
    U, _, Vh = torch.linalg.svd(Hm)
    d = torch.sign(torch.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    Dm = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    Rr = Vh.transpose(1, 2) @ Dm @ U.transpose(1, 2)                    # template -> observed
    t = qc - (Rr @ pc[..., None])[..., 0]
    q0 = x_obs.new_zeros(x_obs.shape[0], D)
    ang = torch.rad2deg(euler_from_matrix(Rr, root_seq)) * root_sign
    q0[:, root_rot] = ang
    q0[:, trans] = t
    ok = (wt > 0).sum(dim=1) >= 3
    return q0, ok


@dataclass(frozen=True, eq=False)
class Fit:
    """The result of :func:`fit`.

    Attributes
    ----------
    q : numpy.ndarray, shape (T, D)
        Every DoF of the skeleton (degrees; ``pelvis_tx/ty/tz`` in mm, in the skeleton's axes
        after :attr:`alignment`); NaN for frames that could not be fitted.
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
    fitted: np.ndarray                 # (T, K, 3) in the data frame, mm
    residual: np.ndarray               # (T, K) mm, NaN where not observed
    limit_active: np.ndarray           # (T, D) bool
    converged_mask: np.ndarray         # (T,) bool
    valid: np.ndarray                  # (T,) bool

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
        df = pd.DataFrame(self.q[:, cols], index=self._index(), columns=[self.dof_names[i] for i in cols])
        df.attrs.update({"units": "mm", "rate_hz": self.rate})
        return df

    @property
    def keypoints(self) -> KeypointSequence:
        """Fitted keypoints (the skeleton's), in the input's frame and names (medpose names), mm."""
        return KeypointSequence(self.fitted, self.keypoint_names, self.rate, None, self.frame, self.start)

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
        return pd.DataFrame(self.limit_active[:, cols], index=self._index(),
                            columns=[self.dof_names[i] for i in cols])

    @property
    def converged(self) -> pd.Series:
        """Per frame: the solver met its tolerance (False also for frames not fitted)."""
        return pd.Series(self.converged_mask, index=self._index(), name="converged")

    def joint_angles(self) -> JointAngles:
        """All DoFs (angles in degrees, pelvis translations in mm) as :class:`JointAngles`."""
        v = np.where(self.observable | ~self.skeleton.rotational, self.q, np.nan)
        return JointAngles(v, self.dof_names, self.rate, self.start)

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
        return (f"Fit({self.q.shape[0]} frames, {int(self.valid.sum())} fitted, "
                f"{int(self.converged_mask.sum())} converged, {len(self.dof_names)} DoF)")


def _default_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "cuda" else torch.float64


def fit(sequence: KeypointSequence, skeleton: Skeleton | None = None, limits: JointLimits | None = None, *,
        device: str | torch.device | None = None, dtype: torch.dtype | None = None, smoothness: float = 0.0,
        chunk_size: int | None = None, progress: bool | None = None, min_confidence: float = 0.3,
        min_keypoints: int | None = None, max_iter: int = 100, warm_stride: int = 4,
        up: str | None = None) -> Fit:
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
        Default float64 on the CPU, float32 on a GPU (angles agree to ~1e-3 degrees).
    smoothness : float
        Weight of the temporal smoothness term, mm of keypoint residual per degree of
        departure from the mean of the two neighbouring frames (0 = off; 1-5 smooths jitter).
    chunk_size : int, optional
        Frames per batch (default 256 on the CPU, cache-sized, 1,048,576 on a GPU); memory grows with it,
        not with the recording.
    progress : bool, optional
        Show a tqdm progress bar (default: when there is more than one chunk).
    min_confidence : float
        Keypoints below this confidence are ignored (weight 0); others are weighted by it.
    min_keypoints : int, optional
        Frames with fewer confident keypoints are not fitted (NaN, with a warning giving their
        count); default half of the keypoints used, at least 4.
    max_iter : int
        Levenberg-Marquardt iterations per stage.
    warm_stride : int
        Every ``warm_stride``-th frame is solved first; the others start from its solution.
    up : str, optional
        The data's up axis (``"+y"``, ``"+z"``...) if it should not be estimated.

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Not a 3D KeypointSequence; a layout missing the keypoints the fit needs (named);
        bone lengths implausible for a human (e.g. metres instead of millimetres).
    LimitError
        Empty or inverted limits (from :class:`JointLimits`).

    Examples
    --------
    >>> import medpose as mp                                     # doctest: +SKIP
    >>> f = mp.fit(mp.read_keypoints("trial.trc"))               # doctest: +SKIP
    >>> f.angles["knee_flexion_r"].max()                         # doctest: +SKIP
    """
    prob = prepare(sequence, skeleton, limits, min_confidence=min_confidence, min_keypoints=min_keypoints, up=up)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dt = dtype or _default_dtype(dev)
    if smoothness < 0 or not math.isfinite(smoothness):
        raise InputError(f"fit: smoothness must be a finite number >= 0, found {smoothness!r}")
    T = sequence.n_frames
    cs = int(chunk_size) if chunk_size is not None else (1 << 20 if dev.type == "cuda" else 256)
    if cs < 1:
        raise InputError(f"fit: chunk_size must be a positive number of frames, found {chunk_size!r}")
    out = _run(prob, sequence.positions[:, prob.seq_index], sequence.confidence[:, prob.seq_index], dev, dt,
               smoothness=float(smoothness), chunk_size=cs, progress=progress, max_iter=int(max_iter),
               warm_stride=max(1, int(warm_stride)))
    q, fitted, resid, conv, valid = out
    n_bad = int((~valid).sum())
    if n_bad:
        warnings.warn(f"fit: {n_bad} of {T} frames have fewer than {prob.min_keypoints} keypoints with confidence "
                      f">= {prob.min_confidence:g} (or fewer than 3 on the trunk and pelvis); their angles are NaN",
                      stacklevel=2)
    lo, hi = prob.lower, prob.upper
    tol = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(lo), lo, 0)))
    at = np.isfinite(q) & ((np.abs(q - lo) <= tol) | (np.abs(q - hi) <= tol)) & prob.observable
    sk = prob.skeleton
    return Fit(q, sk.dof_names, sequence.rate, sequence.start, sequence.frame, sk, prob.limits, prob.patient,
               prob.observable, prob.alignment, prob.kp_names, fitted, resid, at, conv, valid)


def _run(prob: FitProblem, pos: np.ndarray, conf: np.ndarray, dev: torch.device, dt: torch.dtype, *,
         smoothness: float, chunk_size: int, progress: bool | None, max_iter: int, warm_stride: int):
    sk = prob.skeleton
    T, K = pos.shape[:2]
    D = len(sk.dof_names)
    ctx = _Context(sk, prob.kp_index, dev, dt, prob.observable)
    tt = lambda a, d=dt: torch.as_tensor(np.array(a), device=dev, dtype=d)  # noqa: E731
    lo, hi = tt(prob.lower), tt(prob.upper)
    free = torch.as_tensor(prob.observable, device=dev)
    # neutral value of unobservable DoFs: 0 clipped into range
    neutral = tt(np.clip(0.0, prob.lower, prob.upper))
    template = tt(forward_kinematics(sk, np.zeros((1, D)))[0][prob.kp_index])
    seg_names = sk.segment_names
    torso_seg = {sk.segment_index("pelvis") if "pelvis" in seg_names else 0}
    torso_seg |= {i for i, n in enumerate(seg_names) if n == "trunk"}
    torso_np = np.array([sk.keypoint_segment[k] in torso_seg or sk.keypoint_names[k].startswith("shoulder")
                         for k in prob.kp_index])
    torso = tt(np.flatnonzero(torso_np), torch.long)
    root = int(np.flatnonzero(sk.parent_index < 0)[0])
    root_rot = tt([d if d >= 0 else D for d in sk.joint_dof_index[root]], torch.long)
    root_sign = tt(np.where(sk.joint_dof_index[root] >= 0, sk.joint_dof_sign[root], 1.0))
    trans = tt(sk.translation_dof_index, torch.long)
    margin, weight = prob.limits.soft_margin_deg, prob.limits.soft_weight
    A = prob.alignment

    q_all = np.full((T, D), np.nan)
    fit_all = np.full((T, K, 3), np.nan)
    res_all = np.full((T, K), np.nan)
    conv_all = np.zeros(T, dtype=bool)
    valid_all = np.zeros(T, dtype=bool)
    starts = list(range(0, T, chunk_size))
    bar = None
    if progress or (progress is None and len(starts) > 1):
        from tqdm.auto import tqdm
        bar = tqdm(total=T, unit="frame", desc="fit")
    prev_last: torch.Tensor | None = None
    for s0 in starts:
        s1 = min(T, s0 + chunk_size)
        P = np.asarray(pos[s0:s1], dtype=float)
        C = np.asarray(conf[s0:s1], dtype=float)
        finite = np.isfinite(P).all(axis=2)
        w_np = np.where(finite & (C >= prob.min_confidence), C, 0.0)
        x_np = np.where(finite[..., None], P, 0.0) @ A.T                 # skeleton axes
        x_obs, w = tt(x_np), tt(w_np)
        q0, rig_ok = _rigid_init(ctx, template, torso, x_obs, w, sk.sequences[root], root_sign, root_rot,
                                 trans, D + 1)    # column D catches fixed root axes
        q0 = q0[:, :D]
        q0 = torch.where(free[None], q0, neutral[None])
        valid = rig_ok & ((w > 0).sum(dim=1) >= prob.min_keypoints)
        vidx = torch.nonzero(valid)[:, 0]
        n = s1 - s0
        q = torch.full((n, D), float("nan"), device=dev, dtype=dt)
        xf = torch.full((n, K, 3), float("nan"), device=dev, dtype=dt)
        cv = torch.zeros(n, dtype=torch.bool, device=dev)
        if vidx.numel():
            # stage 1: every warm_stride-th valid frame from the rigid initialisation
            coarse = vidx[::warm_stride]
            qc, _, _ = _solve(ctx, q0[coarse], x_obs[coarse], w[coarse], lo, hi, margin=margin,
                              weight=weight, max_iter=max_iter)
            # stage 2: every valid frame from its nearest solved neighbour (translation re-centred)
            pos_in_coarse = torch.clamp(torch.round(torch.arange(vidx.numel(), device=dev) / warm_stride).long(),
                                        max=coarse.numel() - 1)
            qn = qc[pos_in_coarse].clone()
            qn[:, trans] = qn[:, trans] + (q0[vidx][:, trans] - q0[coarse][pos_in_coarse][:, trans])
            nb = None
            if smoothness > 0:
                nb = _neighbours(vidx, n, prev_last if s0 > 0 else None)
            # with smoothness the frames are coupled (block-Jacobi): a few sweeps, not to full tolerance
            qv, xv, cvv = _solve(ctx, qn, x_obs[vidx], w[vidx], lo, hi, margin=margin, weight=weight,
                                 smooth=smoothness, neighbours=nb,
                                 max_iter=max_iter if nb is None else min(max_iter, 20))
            q[vidx], xf[vidx], cv[vidx] = qv, xv, cvv
            prev_last = q[-1].clone() if bool(valid[-1]) else None
        wv = w_np > 0
        xf_np = xf.double().cpu().numpy()
        q_all[s0:s1] = q.double().cpu().numpy()
        fit_all[s0:s1] = xf_np @ A                                         # back to the data frame
        res_all[s0:s1] = np.where(wv, np.linalg.norm(xf_np @ A - P, axis=2), np.nan)
        conv_all[s0:s1] = cv.cpu().numpy()
        valid_all[s0:s1] = valid.cpu().numpy()
        if bar is not None:
            bar.update(s1 - s0)
    if bar is not None:
        bar.close()
    return q_all, fit_all, res_all, conv_all, valid_all


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
    first_uses_prev = prev_last is not None and m > 0 and int(vidx[0]) == 0

    def f(q: torch.Tensor):
        prev = q[torch.clamp(ar - 1, min=0)]
        nxt = q[torch.clamp(ar + 1, max=m - 1)]
        hp = has_prev.clone()
        if first_uses_prev:
            prev = prev.clone()
            prev[0] = prev_last
            hp[0] = True
        cnt = hp.to(q.dtype) + has_next.to(q.dtype)
        s = torch.where(hp[:, None], prev, 0.0) + torch.where(has_next[:, None], nxt, 0.0)
        mean = s / cnt.clamp(min=1.0)[:, None]
        return torch.nan_to_num(mean), cnt > 0
    return f
