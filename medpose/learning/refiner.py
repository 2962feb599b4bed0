"""Keypoint attention refiner: a small transformer over keypoints and time.

Input: a noisy 3D keypoint sequence ``(T, K, 3)`` in millimetres (NaN where missing), in a
Z-up world (the vertical is the third axis, as the camera/lab frame of medpose's
triangulation and synthetic sessions).  Output: the refined sequence, every sample given
(gaps filled) except for a keypoint never observed in a window.

How it works
------------
* Each window of ``config.window`` frames is normalised on its own: centred on the
  per-axis median of its observed positions and divided by the median distance of the
  observed positions from that centre (about half a body height); the network sees
  dimensionless numbers, whatever the person's size and place in the room.
* A token per (keypoint, patch of ``config.patch`` consecutive frames): a linear embedding
  of the patch's normalised positions and observed flags (missing samples enter as 0 with
  flag 0, so their values never matter) plus a learned keypoint identity embedding plus a
  sinusoidal encoding of the patch's time in seconds (so the network knows the sampling rate).
* ``config.layers`` blocks, each: self-attention across the keypoints of one frame, then
  self-attention across the frames of one keypoint, then an MLP, all pre-norm with residual
  connections.  Attention projects queries, keys and values to the hidden size
  ``config.d_model`` split over ``config.heads`` heads (not to the number of keypoints).
* A linear head predicts, per token, a correction for each frame of the patch, added to the
  observed normalised position (a residual; a missing sample's base is the linear
  interpolation between its keypoint's nearest observations); the result is mapped back to
  millimetres.
* The input is first cleaned as medpose does before any filter (:func:`clean_input`:
  :func:`~medpose.temporal.repair_swaps_3d` then :func:`~medpose.temporal.clean_gaps`), in
  training and in :func:`medpose.learning.refine`, so the network refines what a low-pass
  filter would otherwise smooth.
* Long sequences are processed in windows overlapping by half, blended with triangular weights.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data import KeypointSequence
from ..errors import InputError
from ..temporal import clean_gaps, repair_swaps_3d

__all__ = [
    "KeypointAttention",
    "KeypointRefiner",
    "RefinerConfig",
    "clean_input",
    "interpolate_missing",
    "normalise_windows",
    "refine_positions",
]

#: Lowest and highest frequency (Hz) of the sinusoidal time encoding.
TIME_FREQUENCIES_HZ = (0.1, 30.0)


@dataclass(frozen=True)
class RefinerConfig:
    """Architecture of a :class:`KeypointRefiner` (recorded with every checkpoint).

    Attributes
    ----------
    keypoints : tuple of str
        Names of the keypoints, in the order the network expects them (its identity embedding).
    d_model : int
        Hidden size of every token; queries, keys and values are projected to it.
    heads : int
        Attention heads (``d_model`` must be divisible by it).
    layers : int
        Blocks of (keypoint attention, time attention, MLP).
    mlp_ratio : int
        Width of the MLP in multiples of ``d_model``.
    window : int
        Frames per window during training and inference (a multiple of ``patch``).
    patch : int
        Consecutive frames of one keypoint embedded as one token.
    """

    keypoints: tuple[str, ...]
    d_model: int = 64
    heads: int = 4
    layers: int = 3
    mlp_ratio: int = 2
    window: int = 64
    patch: int = 4

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.keypoints)
        object.__setattr__(self, "keypoints", names)
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError(
                f"RefinerConfig: keypoints must be at least 2 unique names, found {list(names)}"
            )
        for name in ("d_model", "heads", "layers", "mlp_ratio", "window", "patch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(
                    f"RefinerConfig: {name} must be a positive integer, found {value!r}"
                )
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise InputError(
                f"RefinerConfig: d_model ({self.d_model}) must be divisible by heads "
                f"({self.heads}) into an even head size"
            )
        if self.window % self.patch:
            raise InputError(
                f"RefinerConfig: window ({self.window}) must be a multiple of patch ({self.patch})"
            )
        if self.d_model % 2:
            raise InputError(f"RefinerConfig: d_model must be even, found {self.d_model}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["keypoints"] = list(self.keypoints)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> RefinerConfig:
        """Build from :meth:`to_dict` output; unknown or missing fields are an InputError."""
        expected = {"keypoints", "d_model", "heads", "layers", "mlp_ratio", "window", "patch"}
        if not isinstance(d, dict) or set(d) != expected:
            found = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise InputError(
                f"{source}: refiner config must have the fields {sorted(expected)}, found {found}"
            )
        return cls(**{**d, "keypoints": tuple(d["keypoints"])})


class KeypointAttention(nn.Module):
    """Multi-head self-attention over the second axis of ``(N, L, d_model)`` tokens.

    Queries, keys and values are linear projections to ``d_model`` (split over ``heads``);
    weights are ``softmax(Q K^T / sqrt(d_head))`` over the ``L`` tokens; the heads' outputs
    are concatenated and projected back by ``out``.
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        n, length, d = x.shape
        h = self.heads

        def split(t: Tensor) -> Tensor:
            return t.reshape(n, length, h, d // h).transpose(1, 2)  # (N, h, L, d_head)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(n, length, d))


class _Block(nn.Module):
    def __init__(self, d_model: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_space = nn.LayerNorm(d_model)
        self.space = KeypointAttention(d_model, heads)
        self.norm_time = nn.LayerNorm(d_model)
        self.time = KeypointAttention(d_model, heads)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
        )

    def forward(self, h: Tensor) -> Tensor:
        b, t, k, d = h.shape
        h = h + self.space(self.norm_space(h).reshape(b * t, k, d)).reshape(b, t, k, d)
        ht = self.norm_time(h).transpose(1, 2).reshape(b * k, t, d)
        h = h + self.time(ht).reshape(b, k, t, d).transpose(1, 2)
        return h + self.mlp(self.norm_mlp(h))


def time_encoding(times: Tensor, d_model: int) -> Tensor:
    """Sinusoidal encoding ``(B, T, d_model)`` of times ``(B, T)`` in seconds."""
    lo, hi = TIME_FREQUENCIES_HZ
    freq = torch.logspace(
        math.log10(lo), math.log10(hi), d_model // 2, dtype=times.dtype, device=times.device
    )
    phase = 2.0 * math.pi * times[..., None] * freq
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class KeypointRefiner(nn.Module):
    """Transformer over keypoints and time that refines normalised keypoint windows.

    ``forward(x, observed, times)`` takes normalised positions ``x`` (B, T, K, 3) (values
    where ``observed`` is False are ignored), ``observed`` (B, T, K) bool and ``times`` (B, T)
    in seconds, and returns refined normalised positions (B, T, K, 3).  Use
    :func:`refine_positions` or :func:`medpose.learning.refine` for millimetre sequences.
    """

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Linear(4 * config.patch, d)
        self.identity = nn.Embedding(len(config.keypoints), d)
        self.blocks = nn.ModuleList(
            [_Block(d, config.heads, config.mlp_ratio) for _ in range(config.layers)]
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3 * config.patch)
        nn.init.normal_(self.identity.weight, std=0.5)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self, x: Tensor, observed: Tensor, times: Tensor, keypoint_ids: Tensor | None = None
    ) -> Tensor:
        """Refined normalised positions; ``keypoint_ids`` (K,) reorders the identity embedding."""
        k = len(self.config.keypoints)
        if x.ndim != 4 or x.shape[2:] != (k, 3):
            raise InputError(f"KeypointRefiner: x must be (B, T, {k}, 3), found {tuple(x.shape)}")
        if observed.shape != x.shape[:3] or times.shape != x.shape[:2]:
            raise InputError(
                f"KeypointRefiner: observed must be {tuple(x.shape[:3])} and times "
                f"{tuple(x.shape[:2])}, found {tuple(observed.shape)} and {tuple(times.shape)}"
            )
        b, t, p = x.shape[0], x.shape[1], self.config.patch
        if t % p:
            raise InputError(f"KeypointRefiner: frames ({t}) must be a multiple of patch ({p})")
        base = interpolate_missing(x, observed)
        feats = torch.cat([base, observed[..., None].to(x.dtype)], dim=-1)  # (B, T, K, 4)
        tokens = (
            feats.reshape(b, t // p, p, k, 4).permute(0, 1, 3, 2, 4).reshape(b, t // p, k, 4 * p)
        )
        ids = torch.arange(k, device=x.device) if keypoint_ids is None else keypoint_ids
        patch_times = times.reshape(b, t // p, p).mean(-1)
        h = self.embed(tokens) + self.identity(ids)
        h = h + time_encoding(patch_times, self.config.d_model)[:, :, None, :]
        for block in self.blocks:
            h = block(h)
        delta = self.head(self.norm(h)).reshape(b, t // p, k, p, 3).permute(0, 1, 3, 2, 4)
        return base + delta.reshape(b, t, k, 3)


def interpolate_missing(x: Tensor, observed: Tensor) -> Tensor:
    """Fill unobserved samples of ``x`` (B, T, K, 3) linearly in time between the nearest
    observed ones (held constant before the first / after the last); 0 where a keypoint has no
    observation in the window.  Values at unobserved samples are never read."""
    t = x.shape[1]
    idx = torch.arange(t, device=x.device)[None, :, None].expand(observed.shape)
    prev = torch.cummax(torch.where(observed, idx, torch.full_like(idx, -1)), dim=1).values
    nxt = torch.where(observed, idx, torch.full_like(idx, t)).flip(1)
    nxt = torch.cummin(nxt, dim=1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < t
    p, n = prev.clamp(0, t - 1), nxt.clamp(0, t - 1)
    xp = torch.gather(x, 1, p[..., None].expand(x.shape))
    xn = torch.gather(x, 1, n[..., None].expand(x.shape))
    span = (n - p).clamp_min(1).to(x.dtype)
    w = ((idx - p).to(x.dtype) / span)[..., None]
    both = torch.lerp(xp, xn, w)
    fill = torch.where(
        (has_prev & has_next)[..., None],
        both,
        torch.where(has_prev[..., None], xp, torch.where(has_next[..., None], xn, 0.0 * x)),
    )
    fill = torch.nan_to_num(fill, nan=0.0)
    return torch.where(observed[..., None], torch.nan_to_num(x, nan=0.0), fill)


def normalise_windows(positions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre and scale each window ``(B, T, K, 3)`` (mm, NaN = missing).

    Returns ``(x, observed, centre, scale)``: ``x = (positions - centre) / scale`` with missing
    samples set to 0, ``observed`` (B, T, K) bool, ``centre`` (B, 1, 1, 3) the per-axis median
    of the observed positions and ``scale`` (B, 1, 1, 1) their median distance from it (at
    least 1 mm).  A window without any observation gets centre 0 and scale 1.
    """
    observed = torch.isfinite(positions).all(-1)
    b = positions.shape[0]
    flat = positions.reshape(b, -1, 3)
    centre = torch.nan_to_num(torch.nanmedian(flat, dim=1).values, nan=0.0)[:, None, None, :]
    dist = torch.linalg.vector_norm(positions - centre, dim=-1).reshape(b, -1)
    scale = torch.nanmedian(dist, dim=1).values
    scale = torch.nan_to_num(scale, nan=1.0).clamp_min(1.0)[:, None, None, None]
    x = torch.where(observed[..., None], (positions - centre) / scale, torch.zeros_like(positions))
    return x, observed, centre, scale


def window_starts(n_frames: int, window: int) -> list[int]:
    """First frames of windows of ``window`` frames overlapping by half and covering every frame."""
    if n_frames <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


@torch.no_grad()
def refine_positions(
    model: nn.Module, positions: Any, rate: float, *, batch_size: int = 64
) -> np.ndarray:
    """Refine a ``(T, K, 3)`` millimetre array (NaN = missing) at ``rate`` Hz with ``model``.

    The keypoints must be in the model's order (``model.config.keypoints``).  Windows overlap
    by half and are blended with triangular weights; a keypoint with no observation in a
    window gets nothing from that window, and stays NaN where no window observed it.
    Works with the float model and with its :func:`~medpose.learning.quantize.quantize_refiner`
    copy (CPU).
    """
    config: RefinerConfig = model.config  # type: ignore[assignment]
    pos = np.asarray(positions, dtype=np.float32)
    k = len(config.keypoints)
    if pos.ndim != 3 or pos.shape[1:] != (k, 3):
        raise InputError(f"refine_positions: positions must be (T, {k}, 3) mm, found {pos.shape}")
    if not (np.isfinite(rate) and rate > 0):
        raise InputError(f"refine_positions: rate must be a positive number of Hz, found {rate!r}")
    n = pos.shape[0]
    w = config.window
    if n < w:  # pad with missing frames; the model fills nothing from them
        pos = np.concatenate([pos, np.full((w - n, k, 3), np.nan, np.float32)])
    n_pad = pos.shape[0]
    starts = window_starts(n_pad, w)
    weight_t = np.minimum(np.arange(w) + 1.0, w - np.arange(w)).astype(np.float32)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    total = np.zeros((n_pad, k, 3), np.float64)
    wsum = np.zeros((n_pad, k), np.float64)
    times = torch.arange(w, dtype=torch.float32, device=device)[None] / float(rate)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        win = torch.from_numpy(np.stack([pos[s : s + w] for s in chunk])).to(device)
        x, observed, centre, scale = normalise_windows(win)
        y = model(x, observed, times.expand(len(chunk), w)) * scale + centre
        seen = observed.any(1).cpu().numpy()  # (B, K)
        y_np = y.float().cpu().numpy()
        for j, s in enumerate(chunk):
            wt = weight_t[:, None] * seen[j][None, :]
            total[s : s + w] += y_np[j] * wt[..., None]
            wsum[s : s + w] += wt
    model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / wsum[..., None]
    return np.where((wsum > 0)[..., None], out, np.nan)[:n]


def clean_input(positions: Any, names: Sequence[str], rate: float) -> np.ndarray:
    """medpose's clean-up before filtering: left/right swap repair
    (:func:`~medpose.temporal.repair_swaps_3d`), then outlier removal and short-gap filling
    (:func:`~medpose.temporal.clean_gaps`, defaults).  ``(T, K, 3)`` mm in and out."""
    seq = KeypointSequence(np.asarray(positions, dtype=float), tuple(names), rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. too few frames for a statistic: nothing to clean
        seq, _ = repair_swaps_3d(seq)
        return np.array(clean_gaps(seq).sequence.positions)


def check_sequence(seq: KeypointSequence, keypoints: Sequence[str], what: str) -> np.ndarray:
    """Positions ``(T, K, 3)`` of ``keypoints`` from a 3D sequence, or an InputError."""
    if not isinstance(seq, KeypointSequence):
        raise InputError(f"{what}: expected a 3D KeypointSequence, found {type(seq).__name__}")
    if seq.ndim != 3:
        raise InputError(f"{what}: expected a 3D sequence (mm), found {seq.ndim}D keypoints")
    missing = [n for n in keypoints if n not in seq.names]
    if missing:
        raise InputError(
            f"{what}: the sequence lacks keypoints {missing} the refiner was trained on; "
            f"found {list(seq.names)}"
        )
    return np.asarray(seq.positions[:, [seq.index(n) for n in keypoints]])
