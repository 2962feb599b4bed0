"""Leaf segments seen through one keypoint near their joint: the joint's first rotation read from
that keypoint's direction, not from its position.

A Kinect v2 foot (UI-PRMD) has one joint on it, ``midfoot`` (the Kinect's *Foot*), about 120 mm
in front of and below ``ankle``.  The Kinect's joints slide along the limbs with the posture (in
a deep squat its shank is up to a fifth shorter at the bottom than standing), so a rigid skeleton
puts its ankle up to 60 mm from the Kinect's, and over a 120 mm lever that turns the foot by up
to 30 degrees: fitted on its position, the ankle's dorsiflexion on 200 UI-PRMD leg-repetitions
read 9.5 deg RMS (median; offset removed) from the Kinect's own knee-ankle-foot angle, and the
foot's keypoint pulled the knee (a squat's flexion peak 5.7 deg above the Kinect's).  The
direction from the observed joint centre to the observed keypoint does not depend on where
along the limb the tracker put them.  So such a keypoint (:func:`find_aimed`: alone on a leaf
segment whose joint centre is itself an observed keypoint of the parent) stays out of the fit,
and afterwards (:func:`aim`) the leaf's first joint rotation (the ankle's dorsiflexion) turns
the keypoint's direction, in the fitted parent's frame and the plane of that rotation, onto the
observed one.  The joint's other rotations stay unobserved: one point cannot tell the foot's
inversion from its turn.  Frames where either keypoint is missing are bridged as the fit bridges
its own gaps (:mod:`.gaps`): the rotation interpolated between the nearest frames that saw both,
across gaps of up to :data:`~.gaps.MAX_GAP_S` (half that at the recording's ends), else held at
neutral as any DoF no keypoint sees in a frame (a NaN would make every keypoint of the frame's
forward kinematics NaN).
Read so, on the same 200 legs: r = 0.99 and 2.3 deg RMS (medians) over the frames off the
ankle's limits, and every other angle as without the foot (docs/fit.md).  The keypoint's place
on its segment (``resources/skeleton.yaml``) sets the rotation's zero; ``mp.calibrate`` leaves
such keypoints out (``Fit.residual`` still reports them; ``Fit.frame_rms`` does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fk import segment_poses
from ..skeleton import Skeleton

__all__ = ["Aimed", "find_aimed", "aim"]

#: Frames whose segment poses are computed at once (about 90 MB in float64).
_CHUNK = 1 << 16


@dataclass(frozen=True, eq=False)
class Aimed:
    """The aimed keypoints of a problem (A of them) and what reads each."""

    seq_index: np.ndarray  # (A,) their columns in the sequence
    kp_index: np.ndarray  # (A,) their skeleton keypoints
    names: tuple[str, ...]  # (A,) medpose names
    joint_seq: np.ndarray  # (A,) sequence column of the leaf's joint-centre keypoint
    segment: np.ndarray  # (A,) the leaf segment
    dof: np.ndarray  # (A,) q column of the leaf joint's first rotation


def _joint_keypoint(sk: Skeleton, leaf: int) -> set[int]:
    """Keypoints of the leaf's parent that sit at the leaf's joint centre in the skeleton's
    declared geometry (not moved by :meth:`Skeleton.with_offsets`)."""
    parent = sk._segments[int(sk.parent_index[leaf])]
    centre = sk._segments[leaf].offset.evaluate(sk.lengths)
    names = [n for n, off in parent.keypoints if np.allclose(off.evaluate(sk.lengths), centre)]
    return {sk.keypoint_names.index(n) for n in names}


def find_aimed(
    sk: Skeleton, seq_index: np.ndarray, kp_index: np.ndarray, names: tuple[str, ...]
) -> tuple[np.ndarray, Aimed | None]:
    """(K,) bool: the keypoints to aim (see the module docstring), and their :class:`Aimed`
    (None when there are none)."""
    kseg = sk.keypoint_segment[kp_index]
    parents = set(sk.parent_index.tolist())
    out = np.zeros(len(kp_index), dtype=bool)
    joint, seg, dof = [], [], []
    for i, k in enumerate(kp_index):
        leaf = int(kseg[i])
        first = int(sk.joint_dof_index[leaf, 0])
        if leaf in parents or (kseg == leaf).sum() != 1 or sk.parent_index[leaf] < 0 or first < 0:
            continue
        at = [j for j, kj in enumerate(kp_index) if kj in _joint_keypoint(sk, leaf)]
        if not at or np.linalg.norm(sk.keypoint_offsets[k]) < 1.0:
            continue
        out[i] = True
        joint.append(int(seq_index[at[0]]))
        seg.append(leaf)
        dof.append(first)
    if not out.any():
        return out, None
    return out, Aimed(
        seq_index=np.asarray(seq_index)[out],
        kp_index=np.asarray(kp_index)[out],
        names=tuple(n for n, a in zip(names, out) if a),
        joint_seq=np.array(joint),
        segment=np.array(seg),
        dof=np.array(dof),
    )


def aim(
    sk: Skeleton,
    aimed: Aimed,
    q: np.ndarray,
    positions: np.ndarray,
    confidence: np.ndarray,
    alignment: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    min_confidence: float,
    bridge: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``q`` (T, D) with each aimed leaf's first joint rotation set from the observed direction
    (clipped into its limits, rounded inwards to ``q``'s precision as the fit's own; bridged
    over up to ``bridge`` frames where the keypoint or the joint centre is not observed, else
    neutral; NaN only in frames not fitted), and (T, D) bool: where the clipping held it on a
    limit."""
    dtype = np.asarray(q).dtype
    q = np.array(q, dtype=float)
    held = np.zeros(q.shape, dtype=bool)
    pos = np.asarray(positions)
    conf = np.asarray(confidence)
    turn = np.full((len(q), len(aimed.kp_index)), np.nan)
    for s0 in range(0, len(q), _CHUNK):  # segment poses of every segment: bounded memory
        s1 = min(len(q), s0 + _CHUNK)
        turn[s0:s1] = _turns(sk, aimed, q[s0:s1], pos[s0:s1], np.asarray(alignment))
    for i, (col, j, leaf, d) in enumerate(
        zip(aimed.seq_index, aimed.joint_seq, aimed.segment, aimed.dof)
    ):
        seen = np.ones(len(q), dtype=bool)
        for c_ in (col, j):
            seen &= (conf[:, c_] >= min_confidence) & np.isfinite(pos[:, c_]).all(axis=1)
        new = q[:, d] + sk.joint_dof_sign[leaf, 0] * turn[:, i]
        ok = seen & np.isfinite(new)
        held[:, d] = ok & ((new <= lower[d]) | (new >= upper[d]))
        lo, hi = (dtype.type(x) for x in (lower[d], upper[d]))
        lo = lo if lo >= lower[d] else np.nextafter(lo, dtype.type(np.inf))
        hi = hi if hi <= upper[d] else np.nextafter(hi, dtype.type(-np.inf))
        neutral = float(np.clip(0.0, lo, hi))
        q[:, d] = _bridged(np.clip(new, lo, hi), ok, np.isfinite(q[:, d]), bridge, neutral)
    return q.astype(dtype), held


def _turns(
    sk: Skeleton, aimed: Aimed, q: np.ndarray, pos: np.ndarray, alignment: np.ndarray
) -> np.ndarray:
    """(T, A) degrees: how far each aimed leaf's first rotation must turn its keypoint's
    direction, in the parent's frame and that rotation's plane, onto the observed direction."""
    R, _ = segment_poses(sk, q)  # (T, S, 3, 3) segment -> skeleton axes
    out = np.full((len(q), len(aimed.kp_index)), np.nan)
    for i, (k, col, j, leaf) in enumerate(
        zip(aimed.kp_index, aimed.seq_index, aimed.joint_seq, aimed.segment)
    ):
        # observed joint centre -> keypoint, in the skeleton's axes (x_skeleton = x_data @ A.T)
        v = (pos[:, col].astype(float) - pos[:, j]) @ alignment.T
        Rp = R[:, int(sk.parent_index[leaf])]
        rel = np.einsum("tji,tjk->tik", Rp, R[:, leaf])  # the leaf in its parent's frame
        want = np.einsum("tji,tj->ti", Rp, v)  # the observed direction, parent's frame
        now = rel @ sk.keypoint_offsets[k]  # the keypoint's direction at the fitted pose
        a = "XYZ".index(sk.sequences[leaf][0])
        b, c = (a + 1) % 3, (a + 2) % 3  # the plane that the rotation about axis a turns
        turn = np.arctan2(want[:, c], want[:, b]) - np.arctan2(now[:, c], now[:, b])
        out[:, i] = np.degrees((turn + np.pi) % (2 * np.pi) - np.pi)
    return out


def _bridged(x: np.ndarray, seen: np.ndarray, fitted: np.ndarray, n: int, neutral: float):
    """``x`` (T,) where ``seen``; in the other fitted frames the linear interpolation between the
    nearest seen frames when at most ``n`` frames lie between them (the nearer end's value
    within ``n // 2`` frames of a recording's first or last seen frame), else ``neutral``; NaN
    where not ``fitted``."""
    t = np.arange(len(x))
    prev = np.maximum.accumulate(np.where(seen, t, -1))
    nxt = np.minimum.accumulate(np.where(seen, t, len(x))[::-1])[::-1]
    out = np.full(len(x), neutral)
    inner = (prev >= 0) & (nxt < len(x)) & (nxt - prev - 1 <= n)
    if seen.any():
        a, b = np.clip(prev, 0, None), np.clip(nxt, None, len(x) - 1)
        w = np.divide(t - a, b - a, out=np.zeros(len(x)), where=b > a)
        out = np.where(inner, (1 - w) * x[a] + w * x[b], out)
        out = np.where((prev < 0) & (nxt - t <= n // 2), x[b], out)
        out = np.where((nxt >= len(x)) & (t - prev <= n // 2), x[a], out)
    out = np.where(seen, x, out)
    return np.where(fitted, out, np.nan)
