"""The fit's problem on its device: the constants every chunk shares (:class:`Setup`) and a
chunk's observed keypoints, weights and rigid starts (:func:`load`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..fk import forward_kinematics
from .context import Context
from .problem import FitProblem
from .solver import Priors
from .starts import branch_moves, rigid_init

__all__ = [
    "Setup",
    "setup",
    "load",
    "rigid_start",
    "default_chunk",
    "default_dtype",
    "inward",
    "to_device",
    "STAGE_BYTES",
    "Chunk",
]


def default_chunk(device: torch.device) -> int:
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


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 everywhere (on the CPU too: about 25% faster, angles within 0.3 deg of float64)."""
    return torch.float32


def inward(lower: np.ndarray, upper: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Limits in ``dtype``, each rounded towards the inside of its range (infinite ones kept)."""
    lo = np.asarray(lower, dtype=np.float64).astype(dtype)
    hi = np.asarray(upper, dtype=np.float64).astype(dtype)
    lo = np.where(lo.astype(np.float64) < lower, np.nextafter(lo, dtype(np.inf)), lo).astype(dtype)
    hi = np.where(hi.astype(np.float64) > upper, np.nextafter(hi, dtype(-np.inf)), hi).astype(dtype)
    return lo, hi


#: A GPU's inputs travel through page-locked buffers of at most this many bytes each.
STAGE_BYTES = 1 << 26


def to_device(a: np.ndarray, dev: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A (possibly read-only) numpy array as a tensor on ``dev``, in ``dtype`` (default its own);
    never written to.  To a GPU it is converted on the host, into page-locked buffers of at most
    :data:`STAGE_BYTES` (reused through torch's pinned-memory cache), and copied from there: a
    copy from pageable memory runs at a fraction of the bus's speed (a million frames' keypoints
    and confidences in float64 took 80 ms on an H100, converted and staged about 30 ms)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: we only read
        src = torch.from_numpy(np.ascontiguousarray(a))
    dt = dtype or src.dtype
    if dev.type != "cuda" or src.numel() == 0:
        return src.to(dev, dt)
    out = torch.empty(src.shape, dtype=dt, device=dev)
    flat, dst = src.reshape(-1), out.view(-1)
    step = max(1, STAGE_BYTES // dt.itemsize)
    for i in range(0, flat.numel(), step):
        piece = flat[i : i + step]
        buf = torch.empty(piece.shape, dtype=dt, pin_memory=True)
        buf.copy_(piece)
        dst[i : i + step].copy_(buf, non_blocking=True)  # the cache keeps buf until copied
    return out


@dataclass(frozen=True, eq=False)
class Setup:
    """A problem's constants on the fit's device, shared by every chunk."""

    prob: FitProblem
    ctx: Context
    dev: torch.device
    dt: torch.dtype
    lo: torch.Tensor  # (D,) hard limits
    hi: torch.Tensor
    free: torch.Tensor  # (D,) bool: observable DoFs
    rot: torch.Tensor  # (D,) bool: rotational DoFs
    neutral: torch.Tensor  # (D,) posture prior's mean
    inv_sd: torch.Tensor  # (F,) 1 / prior standard deviation per variable (0: no prior)
    rhythm: torch.Tensor  # (F,) the lumbopelvic prior's row, 1/deg (zeros: none)
    moves: list  # branch moves (:func:`~medpose.kinematics.fit.starts.branch_moves`)
    template: torch.Tensor  # (K, 3) zero-pose keypoints
    torso: torch.Tensor  # (M,) keypoints of the rigid start
    root_seq: str
    root_sign: torch.Tensor
    root_rot: torch.Tensor
    trans: torch.Tensor  # (3,) translation DoFs
    At: torch.Tensor  # data -> skeleton axes, transposed (row vectors)
    Ad: torch.Tensor  # skeleton -> data axes (row vectors)
    cols: torch.Tensor | None  # the sequence's columns used (None: all, in order)
    bridge: int = 0  # gaps of up to this many frames held across (:mod:`.gaps`; 0: none)
    odd: bool = True  # frames clearly worse than their neighbours restarted (:mod:`.stuck`)

    @property
    def n_var(self) -> int:
        return int(self.ctx.var_dofs.numel())

    def priors(self, sigma: float, smoothness: float = 0.0) -> Priors:
        """The priors for keypoint noise ``sigma`` mm: posture weight ``sigma / sd`` per degree."""
        has = bool((self.inv_sd > 0).any()) or bool(self.rhythm.any())
        return Priors(
            self.prob.limits.soft_margin_deg,
            self.prob.limits.soft_weight,
            sigma * self.inv_sd if has else None,
            self.neutral[self.ctx.var_dofs],
            smoothness,
            sigma * self.rhythm if bool(self.rhythm.any()) else None,
        )


def setup(
    prob: FitProblem,
    pos_columns: int,
    dev: torch.device,
    dt: torch.dtype,
    bridge: int = 0,
    odd: bool = True,
) -> Setup:
    """The device constants of ``prob`` for a sequence with ``pos_columns`` keypoint columns
    (``bridge``, ``odd``: :attr:`Setup.bridge`, :attr:`Setup.odd`)."""
    sk = prob.skeleton
    D = len(sk.dof_names)
    ctx = Context(sk, prob.kp_index, dev, dt, prob.observable)
    tt = lambda a, d=dt: torch.as_tensor(np.array(a), device=dev, dtype=d)  # noqa: E731
    seg_names = sk.segment_names
    torso_seg = {sk.segment_index("pelvis") if "pelvis" in seg_names else 0}
    torso_seg |= {i for i, n in enumerate(seg_names) if n == "trunk"}
    torso_np = np.array(
        [
            sk.keypoint_segment[k] in torso_seg or sk.keypoint_names[k].startswith("shoulder")
            for k in prob.kp_index
        ]
    )
    root = int(np.flatnonzero(sk.parent_index < 0)[0])
    A = prob.alignment
    return Setup(
        prob=prob,
        ctx=ctx,
        dev=dev,
        dt=dt,
        lo=tt(prob.lower),
        hi=tt(prob.upper),
        free=torch.as_tensor(prob.observable, device=dev),
        rot=torch.as_tensor(np.array(sk.rotational), device=dev),
        neutral=tt(prob.prior_mean),
        inv_sd=tt(prob.inv_sd)[ctx.var_dofs],
        rhythm=tt(prob.rhythm)[ctx.var_dofs],
        moves=branch_moves(sk, prob.observable),
        template=tt(forward_kinematics(sk, np.zeros((1, D)))[0][prob.kp_index]),
        torso=tt(np.flatnonzero(torso_np), torch.long),
        root_seq=sk.sequences[root],
        root_sign=tt(np.where(sk.joint_dof_index[root] >= 0, sk.joint_dof_sign[root], 1.0)),
        root_rot=tt([d if d >= 0 else D for d in sk.joint_dof_index[root]], torch.long),
        trans=tt(sk.translation_dof_index, torch.long),
        At=tt(A.T),
        Ad=tt(A),
        cols=(
            None
            if np.array_equal(prob.seq_index, np.arange(pos_columns))
            else tt(prob.seq_index, torch.long)
        ),
        bridge=bridge,
        odd=odd,
    )


def load(
    st: Setup, pos: np.ndarray, conf: np.ndarray, sel
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observed keypoints in skeleton axes, weights, rigid start and validity of frames ``sel``."""
    prob, dev, dt = st.prob, st.dev, st.dt
    P, C = to_device(pos[sel], dev, dt), to_device(conf[sel], dev, dt)
    if st.cols is not None:  # the keypoints used, on the device
        P, C = P[:, st.cols], C[:, st.cols]
    finite = torch.isfinite(P).all(dim=2)
    w = torch.where(finite & (prob.min_confidence <= C), C, 0.0).to(dt)
    x_obs = torch.where(finite[..., None], P, 0.0).to(dt) @ st.At
    q0, ok = rigid_start(st, x_obs, w)
    return x_obs, w, q0, ok


def rigid_start(
    st: Setup, x_obs: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rigid start (T, D) of loaded keypoints on ``st``'s skeleton, and which frames can be
    fitted (a rigid start and at least the problem's ``min_keypoints``)."""
    D = len(st.prob.skeleton.dof_names)
    q0, rig_ok = rigid_init(
        st.ctx,
        st.template,
        st.torso,
        x_obs,
        w,
        st.root_seq,
        st.root_sign,
        st.root_rot,
        st.trans,
        D + 1,
    )  # column D catches fixed root axes
    q0 = torch.where(st.free[None], q0[:, :D], st.neutral[None])
    return q0, rig_ok & ((w > 0).sum(dim=1) >= st.prob.min_keypoints)


@dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk's results on the device (q in skeleton axes; keypoints in the data frame)."""

    q: torch.Tensor  # (n, D), NaN for frames not fitted
    fitted: torch.Tensor | None  # (n, K, 3) data frame, mm (None when not asked for)
    residual: torch.Tensor | None  # (n, K) mm, NaN where not observed (likewise)
    converged: torch.Tensor  # (n,) bool
    valid: torch.Tensor  # (n,) bool
    last: torch.Tensor | None  # (1, D) the last frame, the next chunk's first neighbour
