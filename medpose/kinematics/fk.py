"""Forward kinematics of a :class:`~medpose.kinematics.Skeleton`: batched, numpy or torch.

One torch implementation serves both: numpy input is wrapped as a float64 CPU tensor and the
result handed back as numpy, torch input keeps its device and dtype and stays differentiable
(the later constrained fit back-propagates through it).  Elementary rotations about
the coordinate axes are assembled from cos/sin entries (the textbook matrices, e.g. Craig,
*Introduction to Robotics*, 3rd ed., ch. 2) and composed in each joint's intrinsic
sequence, ``R = R_a1(t1) R_a2(t2) R_a3(t3)``, the same convention as scipy's
``Rotation.from_euler`` with uppercase axes; written by hand only because scipy's Rotation
has no autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import torch

from ..errors import InputError
from .skeleton import Skeleton

__all__ = ["forward_kinematics", "segment_poses"]

ArrayLike: TypeAlias = np.ndarray | torch.Tensor

_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _t(a: np.ndarray, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A copy of a (read-only) skeleton array as a tensor on ``device``."""
    return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)


def _as_tensor(skeleton: Skeleton, q: ArrayLike) -> tuple[torch.Tensor, bool]:
    is_numpy = not isinstance(q, torch.Tensor)
    if isinstance(q, torch.Tensor):
        t = q if torch.is_floating_point(q) else q.to(torch.get_default_dtype())
    else:
        t = torch.from_numpy(np.array(q, dtype=np.float64))
    d = len(skeleton.dof_names)
    if t.ndim != 2 or t.shape[1] != d:
        raise InputError(
            f"forward_kinematics: q must have shape (T, {d}) (frames x DoFs, in "
            f"skeleton.dof_names order), found {tuple(t.shape)}"
        )
    return t, is_numpy


def _constants(
    skeleton: Skeleton, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The skeleton's arrays as tensors, built once per (device, dtype)."""
    key = (str(device), dtype)
    if key not in skeleton._cache:
        S = len(skeleton.sequences)
        # elementary rotation about a coordinate axis: each of its 9 entries is one of
        # 0, 1, cos t, sin t, -sin t (code 0..4), e.g. Rx = [[1,0,0],[0,c,-s],[0,s,c]]
        code = np.zeros((3, S, 9), dtype=np.int64)  # (slot, segment, entry)
        for s, seq in enumerate(skeleton.sequences):
            for j, ax in enumerate(seq):
                i = _AXIS[ax]
                k1, k2 = (i + 1) % 3, (i + 2) % 3
                m = np.zeros((3, 3), dtype=np.int64)
                m[i, i], m[k1, k1], m[k2, k2], m[k2, k1], m[k1, k2] = 1, 2, 2, 3, 4
                code[j, s] = m.reshape(9)
        # keypoint offsets as one (S*3, K) matrix so that all keypoints are one GEMM
        K = len(skeleton.keypoint_names)
        P = np.zeros((S, 3, K))
        P[skeleton.keypoint_segment, :, np.arange(K)] = skeleton.keypoint_offsets
        skeleton._cache[key] = {
            "code": _t(code[:, :, None, :], device),  # (3, S, 1, 9)
            "idx": _t(skeleton.joint_dof_index, device),
            "sign": _t(skeleton.joint_dof_sign, device, dtype),
            "fixed": _t(skeleton.joint_fixed_deg, device, dtype),
            "offs": _t(skeleton.joint_offsets, device, dtype),
            "trans": _t(skeleton.translation_dof_index, device),
            "kseg": _t(skeleton.keypoint_segment, device),
            "P": _t(P.reshape(S * 3, K), device, dtype),
        }
    return skeleton._cache[key]


def _local_rotations(
    skeleton: Skeleton, q: torch.Tensor, c: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Joint rotations (child in parent), shape (S, T, 3, 3), from q (T, D) in degrees."""
    qz = torch.cat([q, q.new_zeros(q.shape[0], 1)], dim=1)  # column -1 -> 0
    ang = torch.deg2rad(qz[:, c["idx"]] * c["sign"] + c["fixed"]).permute(2, 1, 0)  # (3, S, T)
    table = torch.stack(
        [
            torch.zeros_like(ang),
            torch.ones_like(ang),
            torch.cos(ang),
            torch.sin(ang),
            -torch.sin(ang),
        ],
        dim=-1,
    )  # (3, S, T, 5)
    code = c["code"].expand(*ang.shape, 9)
    E = torch.gather(table, -1, code).reshape(*ang.shape, 3, 3)  # (3, S, T, 3, 3)
    return E[0] @ E[1] @ E[2]


def _poses(
    skeleton: Skeleton, q: torch.Tensor, c: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    local = _local_rotations(skeleton, q, c)
    offs = c["offs"]
    trans = q[:, c["trans"]]
    Rs: list[torch.Tensor] = []
    Os: list[torch.Tensor] = []
    for i, p in enumerate(skeleton.parent_index.tolist()):  # ~15 segments, not frames
        if p < 0:
            Rs.append(local[i])
            Os.append(offs[i] + trans)
        else:
            Rs.append(Rs[p] @ local[i])
            Os.append(Os[p] + Rs[p] @ offs[i])
    return torch.stack(Rs, dim=1), torch.stack(Os, dim=1)


def segment_poses(skeleton: Skeleton, q: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Pose of every segment in the skeleton's world frame.

    Parameters
    ----------
    skeleton : Skeleton
    q : numpy.ndarray or torch.Tensor, shape (T, D)
        DoF values in ``skeleton.dof_names`` order: degrees for rotations, mm for the pelvis
        translations.  NaN rows give NaN poses.

    Returns
    -------
    R : shape (T, S, 3, 3)
        Segment-to-world rotation matrices (columns: the segment's X, Y, Z axes in world).
    origin : shape (T, S, 3)
        Segment origins (joint centres) in world, mm.
        numpy in gives float64 numpy out; torch in gives torch out (same device and dtype,
        differentiable).

    Raises
    ------
    InputError
        If ``q`` does not have shape (T, D).
    """
    qt, is_numpy = _as_tensor(skeleton, q)
    R, o = _poses(skeleton, qt, _constants(skeleton, qt.device, qt.dtype))
    return (R.numpy(), o.numpy()) if is_numpy else (R, o)


def forward_kinematics(
    skeleton: Skeleton, q: ArrayLike, *, keypoints: Sequence[str] | None = None
) -> ArrayLike:
    """Keypoint positions of a posed skeleton: ``x = origin[seg] + R[seg] @ offset``.

    Parameters
    ----------
    skeleton : Skeleton
    q : numpy.ndarray or torch.Tensor, shape (T, D)
        DoF values in ``skeleton.dof_names`` order (degrees, mm).
    keypoints : sequence of str, optional
        Which keypoints, in which order (default: ``skeleton.keypoint_names``).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (T, K, 3)
        Positions in mm in the skeleton's world frame (ISB axes: X anterior, Y superior,
        Z right).  numpy in gives float64 numpy out; torch in gives torch out on the same
        device and dtype, differentiable with respect to ``q``.

    Raises
    ------
    InputError
        Wrong ``q`` shape, or an unknown keypoint name (the message lists the known ones).

    Examples
    --------
    >>> from medpose.kinematics import Skeleton
    >>> sk = Skeleton.default(1700.0)
    >>> x = forward_kinematics(sk, sk.make_q({"knee_flexion_r": 90}), keypoints=["knee_r", "ankle_r"])
    >>> x.shape
    (1, 2, 3)
    """
    qt, is_numpy = _as_tensor(skeleton, q)
    c = _constants(skeleton, qt.device, qt.dtype)
    R, o = _poses(skeleton, qt, c)
    T, S = R.shape[:2]
    # rotated offsets of all keypoints at once: (T*3, S*3) @ (S*3, K)
    rot = (R.permute(0, 2, 1, 3).reshape(T * 3, S * 3) @ c["P"]).reshape(T, 3, -1).transpose(1, 2)
    x = o[:, c["kseg"]] + rot
    if keypoints is not None:
        x = x[:, _t(np.atleast_1d(skeleton.keypoint_index(list(keypoints))), qt.device)]
    return x.numpy() if is_numpy else x
