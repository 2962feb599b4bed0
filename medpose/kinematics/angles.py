"""Clinical joint angles back from segment poses (the inverse of :func:`segment_poses`).

Each joint's rotation (child relative to parent) is decomposed with
:meth:`scipy.spatial.transform.Rotation.as_euler` in the joint's intrinsic sequence.  A
Tait-Bryan sequence has two solutions, ``(a, b, c)`` and ``(a + 180, 180 - b, c + 180)``
(e.g. Diebel 2006, "Representing attitude", sec. 5); we keep the one that leaves the joint
ranges least, then the one nearest the reference pose, so shoulder abduction 150 deg comes
back as 150, not as its mirror branch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..errors import InputError
from .skeleton import Skeleton, default_ranges

__all__ = ["angles_from_poses"]

ArrayLike: TypeAlias = np.ndarray | torch.Tensor


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wrap degrees to [-180, 180)."""
    return (a + 180.0) % 360.0 - 180.0


def angles_from_poses(
    skeleton: Skeleton,
    R: ArrayLike,
    origin: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> ArrayLike:
    """Joint angles ``q`` (T, D) from segment orientations and the pelvis origin.

    Parameters
    ----------
    skeleton : Skeleton
    R : array_like, shape (T, S, 3, 3)
        Segment-to-world rotations, as returned by :func:`segment_poses`.
    origin : array_like, shape (T, S, 3)
        Segment origins in mm; only the root's is used (it gives ``pelvis_tx/ty/tz``).
    reference : array_like, shape (D,) or (T, D), optional
        A nearby pose (degrees), e.g. the previous frame's solution: each angle is returned as
        the 360-degree equivalent nearest it, and it breaks ties between the two Euler
        branches.  Default: the zero pose.
    ranges : Mapping[str, (float, float)], optional
        Joint ranges in degrees used to choose the Euler branch (default:
        :func:`default_ranges`).

    Returns
    -------
    numpy.ndarray, shape (T, D)
        DoF values in ``skeleton.dof_names`` order (degrees, mm).  A torch input gives a torch
        tensor back (same device and dtype), computed on the CPU through scipy and NOT
        differentiable.  Rotations about a fixed (DoF-less) axis of a joint are dropped, i.e.
        the joint rotation is projected onto its DoFs.

    Raises
    ------
    InputError
        If ``R`` or ``origin`` have the wrong shape, or ``reference`` is not (D,) or (T, D).

    Notes
    -----
    At a gimbal lock (middle angle +-90 deg, e.g. shoulder abduction 90) the first and third
    angles are not separable; scipy then sets the third to 0 and the first carries their sum
    (its warning is silenced here).  Branch choice per frame: minimise the total excursion
    outside ``ranges`` (fixed axes count as range [0, 0]), then the distance to ``reference``.
    """
    like = R if isinstance(R, torch.Tensor) else None
    Rn = (
        R.detach().cpu().double().numpy()
        if isinstance(R, torch.Tensor)
        else np.asarray(R, dtype=float)
    )
    On = (
        origin.detach().cpu().double().numpy()
        if isinstance(origin, torch.Tensor)
        else np.asarray(origin, dtype=float)
    )
    S, D = len(skeleton.segment_names), len(skeleton.dof_names)
    if Rn.ndim != 4 or Rn.shape[1:] != (S, 3, 3):
        raise InputError(f"angles_from_poses: R must have shape (T, {S}, 3, 3), found {Rn.shape}")
    T = Rn.shape[0]
    if On.shape != (T, S, 3):
        raise InputError(
            f"angles_from_poses: origin must have shape ({T}, {S}, 3), found {On.shape}"
        )
    ref = (
        np.zeros((T, D))
        if reference is None
        else (
            reference.detach().cpu().double().numpy()
            if isinstance(reference, torch.Tensor)
            else np.asarray(reference, dtype=float)
        )
    )
    if ref.shape == (D,):
        ref = np.broadcast_to(ref, (T, D))
    if ref.shape != (T, D):
        raise InputError(
            f"angles_from_poses: reference must have shape ({D},) or ({T}, {D}), found {ref.shape}"
        )
    rng = default_ranges(skeleton) if ranges is None else dict(ranges)
    lo = np.array([rng.get(n, (-np.inf, np.inf))[0] for n in skeleton.dof_names] + [0.0])
    hi = np.array([rng.get(n, (-np.inf, np.inf))[1] for n in skeleton.dof_names] + [0.0])
    refz = np.concatenate([ref, np.zeros((T, 1))], axis=1)  # column -1: fixed axes -> 0

    parent = skeleton.parent_index
    Rp = np.where((parent >= 0)[None, :, None, None], Rn[:, np.maximum(parent, 0)], np.eye(3))
    local = np.einsum("tsji,tsjk->tsik", Rp, Rn)  # R_parent^T R_child
    q = np.zeros((T, D))
    idx, sign = skeleton.joint_dof_index, skeleton.joint_dof_sign
    fixed_sign = np.where(idx < 0, 1.0, sign)
    bad = ~np.isfinite(local).all(axis=(2, 3))  # (T, S): missing poses -> NaN
    local[bad] = np.eye(3)
    for s, seq in enumerate(skeleton.sequences):  # loop over segments, not frames
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Gg]imbal lock.*")
            e1 = Rotation.from_matrix(local[:, s]).as_euler(seq, degrees=True)
        e1[bad[:, s]] = np.nan
        e2 = _wrap(e1 + np.array([180.0, 0.0, 180.0]))
        e2[:, 1] = _wrap(180.0 - e1[:, 1])
        cols = idx[s]
        best: np.ndarray | None = None
        best_score: np.ndarray | None = None
        for e in (e1, e2):
            v = e * fixed_sign[s]  # DoF values (fixed axes: raw)
            r = refz[:, cols]
            v = r + _wrap(v - r)  # nearest 360-equivalent
            viol = (np.maximum(lo[cols] - v, 0) + np.maximum(v - hi[cols], 0)).sum(axis=1)
            dist = np.abs(v - r).sum(axis=1)
            score = np.stack([viol, dist], axis=1)
            if best is None or best_score is None:
                best, best_score = v, score
            else:
                better = (score[:, 0] < best_score[:, 0] - 1e-9) | (
                    (np.abs(score[:, 0] - best_score[:, 0]) <= 1e-9)
                    & (score[:, 1] < best_score[:, 1])
                )
                best = np.where(better[:, None], v, best)
                best_score = np.where(better[:, None], score, best_score)
        assert best is not None  # the loop above ran twice
        for j in range(3):
            if cols[j] >= 0:
                q[:, cols[j]] = best[:, j]
    root = int(np.flatnonzero(parent < 0)[0])
    q[:, skeleton.translation_dof_index] = On[:, root] - skeleton.joint_offsets[root]
    if like is not None:
        return torch.as_tensor(q, dtype=like.dtype, device=like.device)
    return q
