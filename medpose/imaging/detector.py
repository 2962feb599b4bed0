"""A 3D landmark detector for CT/MRI: MONAI U-Nets, heatmaps and soft-argmax, safetensors checkpoints.

The detector works in two stages, each a MONAI :class:`~monai.networks.nets.UNet` with one
output heatmap channel per landmark:

* **coarse**: the whole volume, resampled to an isotropic grid of ``spacing_mm`` and
  ``grid`` voxels centred on the volume (LPS axes), gives every landmark's position;
* **fine** (optional, ``fine_patch > 0``): for landmark *k*, a cube of ``fine_patch``
  voxels of ``fine_spacing_mm`` centred on the coarse position; channel *k* of the fine
  network's output gives the refined position.

Positions come from a differentiable soft-argmax (integral regression: Sun et al., "Integral
Human Pose Regression", ECCV 2018): the softmax of a channel over the grid is a probability
map, its mean the sub-voxel position, mapped to LPS millimetres through the grid's affine.
The confidence of a detection is the probability mass within ``confidence_radius_mm`` of
that mean (1: a sharp, single peak; near 0: spread out or several peaks); its spread is the
RMS distance (mm) of the map about the mean.

Checkpoints are ``.safetensors`` files whose metadata hold the :class:`DetectorConfig` (the
landmark names, spacings, window and networks): :func:`load_detector` refuses a checkpoint
whose configuration differs from the one expected, naming each difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks.nets import UNet
from torch import nn

from ..errors import InputError
from ..io._util import atomic_path, display_name

__all__ = [
    "DetectorConfig",
    "LandmarkDetector",
    "HeatmapNet",
    "soft_argmax",
    "heatmap_confidence",
    "save_detector",
    "load_detector",
    "CHECKPOINT_FORMAT",
    "shipped_detector",
]

#: ``format`` entry of a detector checkpoint's metadata.
CHECKPOINT_FORMAT = "medpose-landmark-detector/1"


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in v)


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that defines a detector besides its weights (stored in each checkpoint).

    Attributes
    ----------
    landmarks : tuple of str
        Landmark names, one heatmap channel each, in channel order.
    spacing_mm : float
        Isotropic voxel spacing of the coarse grid (volumes are resampled to it).
    grid : (3,) int
        Coarse grid size in voxels along LPS x, y, z; each a multiple of
        ``2 ** (len(channels) - 1)``.
    window : (2,) float
        Intensity window (e.g. HU) mapped to [0, 1], values outside clipped.
    channels : tuple of int
        Feature channels per U-Net level of the coarse network.
    fine_patch : int
        Edge (voxels) of the fine stage's cube; 0: no fine stage.
    fine_spacing_mm : float
        Voxel spacing of the fine cubes.
    fine_channels : tuple of int
        Feature channels per U-Net level of the fine network.
    res_units : int
        Residual units per U-Net block.
    sigma_vox : float
        Standard deviation (voxels) of the Gaussian target heatmaps used in training.
    confidence_radius_mm : float
        Radius of the ball whose probability mass is a detection's confidence (at least
        twice the target heatmap's standard deviation, ``2 * sigma_vox * spacing``).
    min_confidence : float
        Detections below this confidence are flagged and left out of registration.
    """

    landmarks: tuple[str, ...]
    spacing_mm: float = 6.0
    grid: tuple[int, int, int] = (112, 80, 224)
    window: tuple[float, float] = (-200.0, 1300.0)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    fine_patch: int = 32
    fine_spacing_mm: float = 1.5
    fine_channels: tuple[int, ...] = (16, 32, 64)
    res_units: int = 1
    sigma_vox: float = 1.5
    confidence_radius_mm: float = 4.0
    min_confidence: float = 0.3
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.landmarks)
        if not names or len(set(names)) != len(names):
            raise InputError(
                f"DetectorConfig: landmarks must be unique names, at least one; found {list(names)}"
            )
        object.__setattr__(self, "landmarks", names)
        object.__setattr__(self, "grid", _ints(self.grid))
        object.__setattr__(self, "channels", _ints(self.channels))
        object.__setattr__(self, "fine_channels", _ints(self.fine_channels))
        object.__setattr__(self, "window", tuple(float(w) for w in self.window))
        if len(self.grid) != 3 or len(self.window) != 2 or not self.window[0] < self.window[1]:
            raise InputError(
                f"DetectorConfig: grid must be 3 sizes and window (low, high) with low < high; "
                f"found grid {self.grid}, window {self.window}"
            )
        for name in ("spacing_mm", "fine_spacing_mm", "sigma_vox", "confidence_radius_mm"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise InputError(f"DetectorConfig: {name} must be > 0, found {v!r}")
        if not 0.0 <= float(self.min_confidence) <= 1.0:
            raise InputError(
                f"DetectorConfig: min_confidence must be in [0, 1], found {self.min_confidence!r}"
            )
        for what, size, chans in (
            ("grid", self.grid, self.channels),
            ("fine_patch", (self.fine_patch,) * 3 if self.fine_patch else (), self.fine_channels),
        ):
            if len(chans) < 2:
                raise InputError(f"DetectorConfig: {what} network needs >= 2 levels, found {chans}")
            step = 2 ** (len(chans) - 1)
            if any(s <= 0 or s % step for s in size):
                raise InputError(
                    f"DetectorConfig: {what} {tuple(size)} must be positive multiples of {step} "
                    f"(2 ** (levels - 1) for channels {chans})"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary (lists for tuples)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "detector config") -> DetectorConfig:
        """Build from :meth:`to_dict` output; unknown keys are an InputError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{source}: unknown config entries {unknown}; known: {sorted(known)}")
        if "landmarks" not in d:
            raise InputError(f"{source}: the config has no 'landmarks'")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)

    def differences(self, other: DetectorConfig) -> list[str]:
        """Human-readable differences from ``other`` (``[]`` when they match)."""
        out = []
        a, b = self.to_dict(), other.to_dict()
        for k in a:
            if k == "extra" or a[k] == b[k]:
                continue
            if k == "landmarks":
                only_a = [n for n in a[k] if n not in b[k]]
                only_b = [n for n in b[k] if n not in a[k]]
                what = (
                    f"only in checkpoint {only_a}, only expected {only_b}"
                    if only_a or only_b
                    else "same names in another order"
                )
                out.append(f"landmarks differ: {what}")
            else:
                out.append(f"{k}: checkpoint {a[k]!r}, expected {b[k]!r}")
        return out

    def with_(self, **changes: Any) -> DetectorConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


class HeatmapNet(nn.Module):
    """A MONAI 3D U-Net whose input is the image plus three coordinate channels.

    The coordinate channels (each axis's position, -1 to 1 across the grid) let the
    convolutions tell apart landmarks that look alike locally (left and right, say) by where
    they are in the grid.  ``forward``: (B, 1, X, Y, Z) -> (B, K, X, Y, Z) logits.
    """

    def __init__(self, channels: Sequence[int], k: int, res_units: int) -> None:
        super().__init__()
        self.unet = UNet(
            spatial_dims=3,
            in_channels=4,
            out_channels=k,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=res_units,
            norm="instance",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Heatmap logits."""
        b = x.shape[0]
        axes = [
            torch.linspace(-1.0, 1.0, int(n), dtype=x.dtype, device=x.device) for n in x.shape[2:]
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))[None].expand(b, 3, *x.shape[2:])
        out: torch.Tensor = self.unet(torch.cat([x, grid], dim=1))
        return out


class LandmarkDetector(nn.Module):
    """The coarse (and optional fine) heatmap networks of a :class:`DetectorConfig`.

    ``forward(x)`` runs the coarse network: (B, 1, *grid) -> (B, K, *grid) logits.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        k = len(config.landmarks)
        self.coarse = HeatmapNet(config.channels, k, config.res_units)
        self.fine = (
            HeatmapNet(config.fine_channels, k, config.res_units) if config.fine_patch else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Coarse heatmap logits."""
        out: torch.Tensor = self.coarse(x)
        return out

    def n_parameters(self) -> int:
        """Number of trainable parameters (both stages)."""
        return sum(p.numel() for p in self.parameters())

    def __repr__(self) -> str:
        c = self.config
        fine = (
            f", fine {c.fine_patch}^3 x {c.fine_spacing_mm:g} mm {list(c.fine_channels)}"
            if c.fine_patch
            else ""
        )
        return (
            f"LandmarkDetector({len(c.landmarks)} landmarks, coarse {list(c.grid)} x "
            f"{c.spacing_mm:g} mm {list(c.channels)}{fine}, {self.n_parameters():,} parameters)"
        )


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable sub-voxel position of each heatmap channel (integral regression).

    Parameters
    ----------
    logits : tensor (B, K, X, Y, Z)

    Returns
    -------
    coords : tensor (B, K, 3)
        Expected voxel index (i, j, k) under the softmax of each channel over the grid.
    probs : tensor (B, K, X, Y, Z)
        That softmax (sums to 1 over the grid), float32 (float64 for float64 logits).
    """
    b, k = logits.shape[:2]
    shape = logits.shape[2:]
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    probs = torch.softmax(x.reshape(b, k, -1), dim=-1).reshape(logits.shape)
    coords = []
    for axis in range(3):
        others = tuple(2 + a for a in range(3) if a != axis)
        marginal = probs.sum(dim=others)  # (B, K, n_axis)
        idx = torch.arange(shape[axis], dtype=probs.dtype, device=probs.device)
        coords.append((marginal * idx).sum(-1))
    return torch.stack(coords, dim=-1), probs


def heatmap_confidence(
    probs: torch.Tensor, coords: torch.Tensor, spacing_mm: float, radius_mm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence and spread of probability maps about their means.

    Parameters
    ----------
    probs : tensor (B, K, X, Y, Z)
        Maps summing to 1.
    coords : tensor (B, K, 3)
        Their means (voxels).
    spacing_mm, radius_mm : float

    Returns
    -------
    confidence : tensor (B, K)
        Probability mass within ``radius_mm`` of the mean.
    spread_mm : tensor (B, K)
        RMS distance of the map from its mean, mm.
    """
    shape = probs.shape[2:]
    idx = [torch.arange(int(s), dtype=probs.dtype, device=probs.device) for s in shape]
    d2 = torch.zeros_like(probs)
    for axis in range(3):
        view = [1, 1, 1, 1, 1]
        view[2 + axis] = int(shape[axis])
        d2 = (
            d2 + (idx[axis].view(view) - coords[..., axis].reshape(*coords.shape[:2], 1, 1, 1)) ** 2
        )
    d2 = d2 * float(spacing_mm) ** 2
    conf = (probs * (d2 <= float(radius_mm) ** 2)).sum(dim=(2, 3, 4))
    spread = torch.sqrt((probs * d2).sum(dim=(2, 3, 4)))
    return conf, spread


def save_detector(
    detector: LandmarkDetector, path: str | os.PathLike, info: Mapping[str, Any] | None = None
) -> Path:
    """Write the detector's weights and config to a ``.safetensors`` file, atomically.

    ``info`` (JSON-able: training command, data, metrics) is stored beside the config.
    """
    from safetensors.torch import save_file

    dest = Path(path)
    if not dest.name.endswith(".safetensors"):
        raise InputError(
            f"save_detector: {display_name(dest)} must end in .safetensors, found {dest.suffix!r}"
        )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in detector.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(detector.config.to_dict()),
        "info": json.dumps(dict(info or {})),
    }
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return dest


def shipped_detector() -> Path:
    """Path of the detector shipped with medpose (``medpose/resources/models/``): 14 pelvis and
    leg landmarks of CT, trained on synthetic phantoms; ``docs/detector.md`` gives its training
    command and validation record."""
    from importlib import resources

    return Path(str(resources.files("medpose.resources").joinpath("models").joinpath(SHIPPED)))


#: File name of the shipped detector in ``medpose/resources/models/``.
SHIPPED = "landmark_detector.safetensors"


def _expected_config(expect: Any, have: DetectorConfig) -> DetectorConfig | None:
    if expect is None:
        return None
    if isinstance(expect, DetectorConfig):
        return expect
    if isinstance(expect, Mapping):
        return DetectorConfig.from_dict({**have.to_dict(), **dict(expect)}, "expected config")
    return have.with_(landmarks=tuple(expect))


def load_detector(
    path: str | os.PathLike,
    *,
    expect: DetectorConfig | Mapping[str, Any] | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> LandmarkDetector:
    """Read a detector written by :func:`save_detector` (no pickle: safetensors only).

    Parameters
    ----------
    path : path-like
    expect : DetectorConfig, mapping or sequence of names, optional
        What the checkpoint must be: a whole config, some config fields, or the landmark
        names in channel order.  Any difference is an InputError naming it.
    device : str or torch.device

    Raises
    ------
    InputError
        Missing file, not a detector checkpoint, a config that differs from ``expect``, or
        weights that do not fit the config's networks.
    """
    from safetensors import safe_open

    p = Path(path)
    name = display_name(p)
    if not p.is_file():
        raise InputError(f"load_detector: {name}: no such file")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (a safe_open handle, no __iter__)
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"load_detector: {name}: not a safetensors file ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            f"load_detector: {name}: metadata 'format' is {meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}"
        )
    try:
        raw = json.loads(meta.get("config", ""))
    except json.JSONDecodeError as exc:
        raise InputError(f"load_detector: {name}: metadata 'config' is not JSON ({exc})") from None
    config = DetectorConfig.from_dict(raw, f"load_detector: {name}")
    info = json.loads(meta.get("info", "{}") or "{}")
    config = config.with_(extra=dict(info))
    want = _expected_config(expect, config)
    if want is not None:
        diff = config.differences(want)
        if diff:
            raise InputError(
                f"load_detector: {name} does not match the expected detector: " + "; ".join(diff)
            )
    det = LandmarkDetector(config)
    state = det.state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    wrong = [k for k, v in tensors.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise InputError(
            f"load_detector: {name}: weights do not fit the config's networks "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]})"
        )
    det.load_state_dict(tensors)
    return det.to(device).eval()
