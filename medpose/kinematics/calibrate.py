"""Subject calibration: where this person's keypoints and joint centres sit in their segments.

A real body is not medpose's default skeleton, and a detector's keypoints are not its joint
centres.  :func:`calibrate` estimates, for one subject, each keypoint's position in its segment's
frame and each joint centre in its parent's frame (hence the segment lengths), jointly with the
poses of a subset of frames: a bundle adjustment,

.. math::

    \\min_{\\theta, q_t} \\sum_{t,k} \\frac{c_{tk}}{\\sigma^2}
        \\lVert FK_k(q_t; \\theta) - x_{tk} \\rVert^2
        + \\sum_j \\frac{\\lVert \\theta_j - \\theta^0_j \\rVert^2}{s_j^2}
        + \\sum_{(r,l)} \\frac{\\lVert \\theta_r - M \\theta_l \\rVert^2}{s_{sym}^2}

(``theta``: the subject's offsets, ``theta^0`` their priors from the layout's keypoint model
(:mod:`~medpose.kinematics.keypoint_models`) on the default skeleton scaled to the measured
lengths, ``s_j`` the prior's standard deviation, ``M`` the mirror z -> -z between the right and
left sides: symmetry is a prior, not a constraint; ``sigma`` the keypoint noise the fit measures).
It is solved in rounds: the poses by the batched fit (:func:`medpose.kinematics.fit.fit`) with
the subject held, then one Gauss-Newton step of the subject's parameters on the reduced system,
every frame's pose eliminated (the Schur complement of bundle adjustment; a keypoint moves by
``R_seg`` times its own offset and by ``R_parent`` times each joint centre on its chain), with
the poses' freedom in that step bounded, the step minimising the reduced model within the
plausible range (an active set, not the unconstrained step clipped), and a round that worsens
the residual rejected and halved.  Optional hinge axes (``axes=``) enter through the
rotations.  With movement this is a functional joint-centre estimate in the sense of SCoRE
(Ehrig et al. 2006, J Biomech 39:2798-2809: the joint centre is the point fixed in both
segments), solved together with the keypoints' offsets; a static trial leaves what only
movement reveals at its prior.

What the data determined is read off the posterior: a parameter whose posterior standard
deviation is below half its prior's is ``determined``; otherwise the report says whether it
stayed at its prior or how far it moved all the same (:attr:`PatientSkeleton.status`).  No
offset moves more than ``max_change_mm`` from its prior (a warning names it and the range when
the data push it there).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import to_medpose_names
from .calibrate_report import determined, medians, weighted_rms
from .calibrate_step import box_step, reduced_system
from .fit.core import fit_sequence
from .fit.problem import observable_dofs
from .fit.starts import gross
from .fk import forward_kinematics, segment_poses
from .keypoint_models import (
    KeypointModel,
    keypoint_model_for,
    list_keypoint_models,
    load_keypoint_model,
)
from .patient import PatientSkeleton, estimate_skeleton
from .skeleton import Skeleton, default_ranges

__all__ = ["calibrate", "StaticTrialWarning"]

#: A static trial whose fitted joint angles (:data:`_STATIC_DOFS`) span more than this (degrees,
#: 5th to 95th percentile) is not static.
STATIC_DEG = 5.0
#: Window (seconds) of the running median over a static trial's fitted angles before their span is
#: compared with :data:`STATIC_DEG`.
STATIC_WINDOW_S = 0.5
_MIRROR = np.array([1.0, 1.0, -1.0])
#: Prior standard deviation (mm) of an offset component held fixed (a keypoint on an axis).
_HELD = 1e-3
#: A round whose score (:func:`_score`) exceeds the best round's by this factor is rejected.
_ACCEPT = 1.002
#: The score leaves out this share of the frames, those with the largest residuals.
_TRIM = 0.1
#: The subject's step leaves out a frame whose RMS residual exceeds this many times the median
#: frame's (:func:`_gross`); 3 cost up to 0.4 degrees of hip flexion on noise-free OpenSim
#: trials, whose frames of extreme poses are the informative ones early on.
_FRAME_FACTOR = 5.0
#: ... and this many mm: a noise-free trial's frames fit within a few mm, and those of its
#: extreme poses are the informative ones.
_FRAME_MM = 30.0
#: Step (degrees) of the numerical derivative of the keypoints with respect to a joint axis.
_STEP_DEG = 1e-3
#: The DoFs (without side) checked for a static trial: those the keypoints of every layout
#: determine (a barely observed one, e.g. upper-arm rotation with a straight elbow, wanders).
_STATIC_DOFS = (
    "hip_flexion",
    "hip_adduction",
    "knee_flexion",
    "ankle_dorsiflexion",
    "shoulder_flexion",
    "shoulder_abduction",
    "elbow_flexion",
)


def _warn_movement(model) -> None:
    """Warn that a calibration on the movement distorts the angles of a model that says so."""
    if model is not None and not model.auto_calibrate:
        warnings.warn(
            f"calibrate: the {model.name} keypoint model's joints move in their segments "
            "with posture, and a calibration on the movement turns that into offsets that "
            "distort the joint angles (docs/calibration.md); mp.fit(seq) fits this layout "
            "with lengths only",
            stacklevel=3,
        )


class StaticTrialWarning(UserWarning):
    """The trial given as static moves; it is calibrated on as a movement."""


def _frames(seq: KeypointSequence, names: list[int], n: int, min_conf: float) -> np.ndarray:
    """Up to ``n`` evenly spaced frames with at least half the used keypoints confident."""
    c = seq.confidence[:, names]
    ok = np.isfinite(seq.positions[:, names]).all(axis=2) & (c >= min_conf)
    good = np.flatnonzero(ok.sum(axis=1) >= max(4, math.ceil(0.5 * len(names))))
    if good.size == 0:
        raise InputError(
            "calibrate: no frame has at least half of the keypoints with confidence "
            f">= {min_conf:g}"
        )
    pick = np.unique(np.linspace(0, good.size - 1, min(n, good.size)).round().astype(int))
    return good[pick]


def _chains(sk: Skeleton) -> list[list[int]]:
    """Per segment, the segments from it up to (not including) the root."""
    out = []
    for s in range(len(sk.segment_names)):
        chain, a = [], s
        while sk.parent_index[a] >= 0:
            chain.append(a)
            a = int(sk.parent_index[a])
        out.append(chain)
    return out


def _twin(name: str) -> str | None:
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return None


def calibrate(
    sequence: KeypointSequence,
    skeleton: Skeleton | None = None,
    *,
    static: bool = False,
    frames: int = 200,
    rounds: int = 6,
    keypoint_sd_mm: float = 15.0,
    joint_sd_mm: float = 15.0,
    symmetry_sd_mm: float = 5.0,
    max_change_mm: float = 60.0,
    keypoint_model: str | KeypointModel | None = None,
    axes: Sequence[str] = (),
    axis_sd_deg: float = 8.0,
    symmetry_sd_deg: float = 4.0,
    max_axis_deg: float = 25.0,
    min_confidence: float = 0.3,
    patient_id: str | None = None,
    up: str | None = None,
) -> PatientSkeleton:
    """Calibrate one subject's skeleton on a static trial or a movement.

    Parameters
    ----------
    sequence : KeypointSequence
        3D keypoints (mm) of the subject, any layout the fit reads.
    skeleton : Skeleton, optional
        The skeleton to personalise (default :meth:`Skeleton.default`); its lengths are first
        measured from the sequence (:func:`~medpose.kinematics.patient.estimate_skeleton`).
    static : bool
        The sequence is a static trial.  If its joints move more than :data:`STATIC_DEG`
        degrees, a :class:`StaticTrialWarning` names them and it is treated as a movement.
    frames : int
        Frames (evenly spaced among the usable ones) whose poses are estimated with the offsets.
    rounds : int
        Alternations between poses and offsets.
    keypoint_sd_mm, joint_sd_mm : float
        Prior standard deviation (mm, per axis) of each keypoint's position in its segment and
        of each joint centre in its parent, about the default skeleton scaled to the lengths.
    symmetry_sd_mm : float
        Prior standard deviation of the difference between a right offset and the mirrored
        left one (``inf``: no symmetry prior).
    max_change_mm : float
        No offset moves further than this from its prior, per axis.
    keypoint_model : str or KeypointModel, optional
        The priors of the keypoints (name of a packaged model, a file, or a model); default: the
        model of the sequence's layout (:func:`~medpose.kinematics.keypoint_models.keypoint_model_for`),
        none for names no layout holds.  Its ``fit_prior`` weighs the poses' prior.
    axes : sequence of str
        Segments (without side, e.g. ``("forearm", "shank")``) whose hinge axes, the constant
        angles of their joints' non-DoF rotations (:meth:`Skeleton.with_axes`), are estimated.
    axis_sd_deg, symmetry_sd_deg, max_axis_deg : float
        Prior standard deviation of a hinge axis about 0, of the difference between a right
        axis and the mirrored left one, and the largest departure from 0 (degrees).
    min_confidence : float
        Keypoints below this confidence are ignored.
    patient_id : str, optional
        Stored in the result (and its file) so that it is not used for another patient; never
        printed.
    up : str, optional
        The data's up axis, as for :func:`~medpose.kinematics.fit.fit`.

    Returns
    -------
    PatientSkeleton
        With :attr:`~PatientSkeleton.keypoint_offsets`, :attr:`~PatientSkeleton.joint_centres`,
        what the data determined (:attr:`~PatientSkeleton.status`) and the median residual per
        keypoint before and after.

    Raises
    ------
    InputError
        Not a 3D sequence, a layout the fit cannot use, no usable frame, or bad parameters.
    """
    if not isinstance(sequence, KeypointSequence) or sequence.ndim != 3:
        raise InputError(f"calibrate: expected a 3D KeypointSequence, found {sequence!r}")
    for label, v in (
        ("keypoint_sd_mm", keypoint_sd_mm),
        ("joint_sd_mm", joint_sd_mm),
        ("symmetry_sd_mm", symmetry_sd_mm),
        ("max_change_mm", max_change_mm),
    ):
        if not float(v) > 0:
            raise InputError(f"calibrate: {label} must be a number > 0 (mm), found {v!r}")
    if int(frames) < 10 or int(rounds) < 1:
        raise InputError(
            f"calibrate: frames must be >= 10 and rounds >= 1, found {frames!r}, {rounds!r}"
        )
    model = _model(keypoint_model, sequence)
    if model is not None:
        sequence = model.rename(sequence)
        if not static:
            _warn_movement(model)
    measured = estimate_skeleton(
        sequence,
        static=static,
        base=skeleton,
        min_confidence=max(min_confidence, 0.3),
        keypoint_model=model,
    )
    sk0 = measured.skeleton
    names = to_medpose_names(sequence.names)
    cols: list[int] = []
    used: list[str] = []
    for i, n in enumerate(names):
        if n in sk0.keypoint_names and n not in used:
            cols.append(i)
            used.append(n)
    sel = _frames(sequence, cols, int(frames), min_confidence)
    sub = KeypointSequence(
        sequence.positions[sel][:, cols],
        tuple(used),
        sequence.rate,
        confidence=sequence.confidence[sel][:, cols],
        frame=sequence.frame,
    )
    kp = np.array([sk0.keypoint_index(n) for n in used])
    kseg = sk0.keypoint_segment[kp]
    chains = _chains(sk0)
    # joint centres the keypoints can see: segments (not the root) with a used keypoint at or below
    segs = sorted({s for k in kseg for s in chains[int(k)]})
    # hinge axes: the fixed rotations of those joints' sequences (a joint with at least one DoF)
    hinge = [
        (s, j)
        for s in segs
        if (sk0.joint_dof_index[s] >= 0).any()
        for j in range(3)
        if sk0.joint_dof_index[s, j] < 0
    ]
    want = {str(a).removesuffix("_r").removesuffix("_l") for a in axes}
    side_free = [
        sk0.segment_names[s].removesuffix("_r").removesuffix("_l")
        for s in range(len(sk0.segment_names))
    ]
    unknown = sorted(want - set(side_free))
    if unknown:
        raise InputError(
            f"calibrate: axes: unknown segment(s) {unknown}; expected names among "
            f"{sorted(set(side_free))}"
        )
    hinge = [(s, j) for s, j in hinge if side_free[s] in want]
    K, J, A = len(kp), len(segs), len(hinge)
    P0 = 3 * (K + J)  # offsets first, then the hinge axes' angles
    P = P0 + A
    col_of_seg = {s: 3 * (K + j) for j, s in enumerate(segs)}
    kp_prior, kp_sd = model.prior(sk0) if model is not None else ({}, {})
    x0 = np.concatenate(
        [
            np.array([kp_prior.get(n, sk0.keypoint_offsets[k]) for n, k in zip(used, kp)]).ravel(),
            sk0.joint_offsets[segs].ravel(),
            np.array([sk0.joint_fixed_deg[s, j] for s, j in hinge]),
        ]
    )
    prior_sd = np.concatenate(
        [
            np.repeat([kp_sd.get(n, keypoint_sd_mm) for n in used], 3),
            np.full(3 * J, joint_sd_mm),
            np.full(A, axis_sd_deg),
        ]
    )
    # a keypoint on the axis of a rotation no keypoint observes (the wrist on the forearm's
    # pronation axis, for layouts without hand keypoints) stays on it: moving it off would make
    # that rotation trade with the joint's flexion (a carrying angle is an axis, below)
    for d in np.flatnonzero(sk0.rotational & ~_observable_dofs(sk0, kp)):
        sd_, jd_ = (int(v[0]) for v in np.nonzero(sk0.joint_dof_index == d))
        on = "XYZ".index(sk0.sequences[sd_][jd_])
        for ki in np.flatnonzero(kseg == sd_).tolist():
            off = x0[3 * ki : 3 * ki + 3]
            perp = [c for c in range(3) if c != on]
            if np.allclose(off[perp], 0.0, atol=1e-6):
                prior_sd[3 * ki + np.array(perp)] = _HELD
    # symmetry pairs: (first column of the right block, of the left block, width, mirror)
    labels = used + [sk0.segment_names[s] for s in segs]
    pos = {n: i for i, n in enumerate(labels)}
    pairs = [
        (3 * pos[n], 3 * pos[t], _MIRROR)
        for n in labels
        if (t := _twin(n)) is not None and t in pos
    ]
    labels_a = [f"{sk0.segment_names[s]} axis {sk0.sequences[s][j]}" for s, j in hinge]
    apos = {(sk0.segment_names[s], j): P0 + i for i, (s, j) in enumerate(hinge)}
    for (name, j), c in apos.items():  # X and Y rotations change sign in the mirror, Z does not
        if (t := _twin(name)) is not None and (t, j) in apos:
            ax = sk0.sequences[sk0.segment_index(name)][j]
            pairs.append((c, apos[(t, j)], np.array([1.0 if ax == "Z" else -1.0])))
    rows = []
    for a, b, m in pairs:  # symmetry residuals C @ x / s_sym
        for i in range(len(m)):
            row = np.zeros(P)
            row[a + i], row[b + i] = 1.0, -m[i]
            rows.append(row / (symmetry_sd_mm if a < P0 else symmetry_sd_deg))
    sym = np.array(rows).reshape(-1, P) if math.isfinite(symmetry_sd_mm) else np.zeros((0, P))
    x = x0.copy()
    before: dict[str, float] = {}
    H_data = np.zeros((P, P))
    sk = sk0
    f = f0 = None
    best: tuple | None = None  # (score, x, skeleton, fit) of the best round so far
    pushed: set[str] = set()  # parameters a step pushed beyond the plausible range
    for r in range(int(rounds) + 1):
        sk = _with(sk0, used, segs, hinge, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            f = fit_sequence(  # a few hundred frames: one thread is faster than several
                sub,
                sk,
                progress=False,
                min_confidence=min_confidence,
                warm_stride=1,
                up=up,
                threads=1,
                prior=dict(model.fit_prior) if model is not None and model.fit_prior else None,
                # round 1 from scratch (round 0's poses fit the prior skeleton and keep its
                # compensations), later rounds from the best round's poses: a third to half
                # the time of fitting every round from scratch, as accurate (docs/calibration.md)
                init=None if r <= 1 or best is None else best[3],
                # a gap's hold would only pull the poses its keypoint offsets are read from
                bridge=False,
                odd=False,  # a few stuck frames do not move the skeleton; restarts cost a third
            )
        res = f.residual
        score = _score(res)
        if best is not None and not score <= best[0] * _ACCEPT:
            # the linearised step overshot (poses do not follow it as the model assumed):
            # back to the best parameters, half as far
            x = best[1] + 0.5 * (x - best[1])
            if r == int(rounds):
                x, sk, f = best[1], best[2], best[3]
                break
            continue
        best = (score, x.copy(), sk, f)
        if r == 0:
            f0 = f
            before = medians(res, used)
            if static:
                spread = _moving(f, sel / float(sequence.rate))
                if spread:
                    warnings.warn(
                        f"calibrate: the static trial moves: {spread}; expected every joint "
                        f"within {STATIC_DEG:g} degrees - calibrating on it as a movement",
                        StaticTrialWarning,
                        stacklevel=2,
                    )
                    static = False
                    _warn_movement(model)
        if r == int(rounds):
            break
        ok = f.valid
        q = f.q[ok].astype(float)
        X = sub.positions[ok] @ f.alignment.T  # skeleton axes
        w = (np.isfinite(X).all(axis=2) & (sub.confidence[ok] >= min_confidence)) * np.nan_to_num(
            sub.confidence[ok]
        )
        # gross outliers (a wrong triangulation, a left/right swap) would pull the subject's
        # offsets towards them: weight 0, and their whole frame where they are many
        w = w * ~_gross(res[ok])
        X = np.nan_to_num(X)
        R, _ = segment_poses(sk, q)
        R = np.asarray(R)  # (T, S, 3, 3)
        xhat = np.asarray(forward_kinematics(sk, q, keypoints=used))
        sigma = max(float(f.noise_mm), 1.0) if math.isfinite(f.noise_mm) else 1.0
        Jm = np.zeros((q.shape[0], K, 3, P))
        for k in range(K):
            Jm[:, k, :, 3 * k : 3 * k + 3] = R[:, kseg[k]]
            for s in chains[int(kseg[k])]:
                c0 = col_of_seg[s]
                Jm[:, k, :, c0 : c0 + 3] = R[:, sk0.parent_index[s]]
        for i, (s, j) in enumerate(hinge):  # axes enter through the rotations: numerically
            name = sk0.segment_names[s]
            abc = np.array(sk.joint_fixed_deg[s])
            abc[j] += _STEP_DEG
            moved = np.asarray(
                forward_kinematics(sk.with_axes({name: tuple(abc.tolist())}), q, keypoints=used)
            )
            Jm[..., P0 + i] = (moved - xhat) / _STEP_DEG
        sw = np.sqrt(w)[..., None] / sigma
        Bt = (Jm * sw[..., None]).reshape(q.shape[0], -1, P)  # (T, 3K, P) whitened
        rt = ((X - xhat) * sw).reshape(q.shape[0], -1)  # (T, 3K)
        H_data, g_data = reduced_system(sk, f, q, kp, Bt, rt, sw)
        Hp = np.diag(1.0 / prior_sd**2)
        H = H_data + Hp + sym.T @ sym
        g = g_data - Hp @ (x - x0) - sym.T @ (sym @ x)
        # the step minimises the quadratic model within the plausible range (not the
        # unconstrained step clipped to it: docs/calibration.md)
        half = np.concatenate([np.full(P0, max_change_mm), np.full(A, max_axis_deg)])
        lo, hi = x0 - half, x0 + half
        far = np.flatnonzero(np.abs(x + np.linalg.solve(H, g) - x0) > half)
        pushed.update(labels[i // 3] if i < P0 else labels_a[i - P0] for i in far)
        x = x + box_step(H, g, x, lo, hi)
    if pushed:  # once, naming every parameter any round's step pushed out
        warnings.warn(
            f"calibrate: the data push {sorted(pushed)} beyond the plausible range (prior +- "
            f"{max_change_mm:g} mm per axis for a position, +- {max_axis_deg:g} degrees for "
            "a joint axis); held at the edge of that range",
            stacklevel=2,
        )
    assert f is not None and f0 is not None
    after = medians(f.residual, used)
    rms_prior, rms_cal = weighted_rms((f0, f), sub.confidence, min_confidence)
    post = np.sqrt(np.diag(np.linalg.inv(H_data + np.diag(1.0 / prior_sd**2))))
    status, ax_out = determined(sk0, labels, hinge, x, x0, prior_sd, post, prior_sd == _HELD)
    lengths, method = _lengths(sk0, measured, segs, x[3 * K : P0].reshape(J, 3))
    kp_off = {n: tuple(float(v) for v in x[3 * i : 3 * i + 3]) for i, n in enumerate(used)}
    jt_off = {
        sk0.segment_names[s]: tuple(float(v) for v in x[3 * (K + j) : 3 * (K + j) + 3])
        for j, s in enumerate(segs)
    }
    jt_axes = {k: tuple(v) for k, v in ax_out.items()}
    final = sk0.with_lengths(lengths).with_offsets(kp_off, jt_off).with_axes(jt_axes)
    return PatientSkeleton(
        skeleton=final,
        lengths=MappingProxyType(dict(final.lengths)),
        method=MappingProxyType(method),
        source="calibration on a static trial" if static else "calibration on the movement",
        height_mm=measured.height_mm,
        n_frames=int(sel.size),
        spread_mm=measured.spread_mm,
        keypoints=tuple(used),
        keypoint_offsets=MappingProxyType(kp_off),
        joint_centres=MappingProxyType(jt_off),
        joint_axes=MappingProxyType(jt_axes),
        keypoint_model=None if model is None else _model_name(model),
        status=MappingProxyType(status),
        residual_before_mm=MappingProxyType(before),
        residual_after_mm=MappingProxyType(after),
        rms_prior_mm=rms_prior,
        rms_calibrated_mm=rms_cal,
        patient_id=patient_id,
    )


def _with(
    sk0: Skeleton, used: list[str], segs: list[int], axes: list[tuple[int, int]], x: np.ndarray
) -> Skeleton:
    K, P0 = len(used), 3 * (len(used) + len(segs))
    ax: dict[str, list[float]] = {}
    for i, (s, j) in enumerate(axes):
        ax.setdefault(sk0.segment_names[s], [0.0, 0.0, 0.0])[j] = float(x[P0 + i])
    return sk0.with_offsets(
        {n: x[3 * i : 3 * i + 3].tolist() for i, n in enumerate(used)},
        {
            sk0.segment_names[s]: x[3 * (K + j) : 3 * (K + j) + 3].tolist()
            for j, s in enumerate(segs)
        },
    ).with_axes(ax)


def _gross(res: np.ndarray) -> np.ndarray:
    """(T, K) keypoints the subject's step leaves out, from the residuals ``res`` (T, K) mm:

    - residuals above both :data:`~medpose.kinematics.fit.starts.OUTLIER_FACTOR` times their
      keypoint's median and :data:`~medpose.kinematics.fit.starts.OUTLIER_MM` (a wrong
      triangulation), and every keypoint of a frame where more than
      :data:`~medpose.kinematics.fit.starts.OUTLIER_SHARE` of them are: the fit keeps such a
      frame (its pose, not its keypoints, is then wrong), but a left/right swap of the arms that
      the pose follows is no evidence of the subject's offsets;
    - every keypoint of a frame whose RMS residual exceeds :data:`_FRAME_FACTOR` times the
      median frame's and :data:`_FRAME_MM`: a swap of the legs, which the pose follows with the legs crossed, leaves
      few keypoints gross.

    Left/right swaps in 16 frames of 194 moved calibrated offsets by 35-90 mm when only a
    frame's few gross outliers were left out (``tests/kinematics/test_calibrate.py``)."""
    out, many = (v.numpy() for v in gross(torch.as_tensor(res, dtype=torch.float64)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        frame = np.nan_to_num(np.sqrt(np.nanmean(np.square(res), axis=1)))
    many |= frame > max(_FRAME_FACTOR * float(np.median(frame)), _FRAME_MM)
    return out | many[:, None]


def _score(res: np.ndarray) -> float:
    """A round's score: the RMS keypoint residual (mm) over the frames, the :data:`_TRIM` share
    with the largest left out (a frame one round leaves in a local minimum does not decide).
    Not the median keypoint residual: a step that improves a few keypoints (a shank axis moves
    the ankles) barely moves it, and rounds near convergence were kept or rejected by chance
    (``tests/kinematics/test_calibrate.py``'s 4-degree knee axis read 1.7 degrees)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        e = np.nanmean(np.square(res), axis=1)
    e = e[np.isfinite(e)]
    if e.size == 0:
        return math.inf
    return float(np.sqrt(np.mean(e[e <= np.quantile(e, 1.0 - _TRIM)])))


def _model(given: str | KeypointModel | None, sequence: KeypointSequence) -> KeypointModel | None:
    """The keypoint model to calibrate with: the one given (a name or a file), or the default
    for the sequence's layout; None for names no layout holds (medpose's own keypoints)."""
    if isinstance(given, KeypointModel):
        return given
    if given is not None:
        return load_keypoint_model(given)
    try:
        return keypoint_model_for(sequence)
    except InputError:
        return None


def _model_name(model: KeypointModel) -> str:
    return model.name if model.name in list_keypoint_models() else model.source_file


def _observable_dofs(sk: Skeleton, kp: np.ndarray) -> np.ndarray:
    """The DoFs that move at least one of the keypoints ``kp`` (indices into the skeleton's)."""
    rng = default_ranges(sk)
    lo = np.array([rng.get(n, (-np.inf, np.inf))[0] for n in sk.dof_names], dtype=float)
    hi = np.array([rng.get(n, (-np.inf, np.inf))[1] for n in sk.dof_names], dtype=float)
    return observable_dofs(sk, np.asarray(kp), lo, hi)


def _moving(f, seconds: np.ndarray) -> str:
    """The DoFs of a fit that span more than STATIC_DEG degrees (5th-95th percentile) after a
    running median over :data:`STATIC_WINDOW_S` (``seconds``: each fitted frame's time): the
    keypoints' frame-to-frame noise moves a straight joint's angle by several degrees (elbow
    flexion spans about 10 degrees on a still subject with 5 mm of noise), a movement lasts."""
    a = f.angles.copy()
    a.index = pd.to_timedelta(np.asarray(seconds, dtype=float), unit="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = a.rolling(pd.Timedelta(seconds=STATIC_WINDOW_S), center=True, min_periods=1).median()
        span = a.quantile(0.95) - a.quantile(0.05)
    span = span[[c for c in span.index if c[:-2] in _STATIC_DOFS]].dropna()
    big = span[span > STATIC_DEG].sort_values(ascending=False)
    return ", ".join(f"{k} {v:.0f} deg" for k, v in big.head(4).items())


def _lengths(
    sk0: Skeleton, measured: PatientSkeleton, segs: list[int], centres: np.ndarray
) -> tuple[dict[str, float], dict[str, str]]:
    """Segment lengths implied by the calibrated joint centres: a segment whose child's default
    joint centre lies at its length (thigh -> knee) takes the calibrated distance."""
    lengths = dict(sk0.lengths)
    method = dict(measured.method)
    for j, s in enumerate(segs):
        p = sk0.segment_names[int(sk0.parent_index[s])]
        if p in lengths and abs(np.linalg.norm(sk0.joint_offsets[s]) - lengths[p]) < 1e-6:
            lengths[p] = float(np.linalg.norm(centres[j]))
            method[p] = f"calibrated joint centre of {sk0.segment_names[s]}"
    return lengths, method
