"""Volume preparation for the landmark detector: checks, windowing, resampling, augmentation.

Everything is expressed through 4x4 affines that map voxel indices ``(i, j, k, 1)`` to LPS
millimetres, voxel centres at integer indices (the :class:`~medpose.imaging.volume.Volume`
convention).  A detector sees a volume through a *grid*: a box of ``shape`` voxels of
isotropic ``spacing`` whose centre and axes are given in LPS (:func:`grid_affine`).  The
volume is windowed to [0, 1] (MONAI ``ScaleIntensityRange``) and sampled on that grid by
trilinear interpolation (MONAI ``Resample``); outside the volume the value is 0 (air).

Augmentation draws a random rigid pose of the grid (rotation about its centre, shift, and a
left/right mirror), so the landmark positions in grid voxels follow exactly; a mirror swaps
the ``_r``/``_l`` landmark names (:func:`mirror_permutation`).  Intensity augmentation uses
MONAI's ``RandGaussianSmooth``, ``RandScaleIntensity`` and ``RandShiftIntensity`` and
Gaussian noise drawn with torch on the image's device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    RandGaussianSmooth,
    RandScaleIntensity,
    RandShiftIntensity,
    Resample,
    ScaleIntensityRange,
)
from scipy.spatial.transform import Rotation

from ..errors import InputError
from .volume import Volume

__all__ = [
    "Augmentation",
    "check_volume",
    "volume_affine",
    "windowed_tensor",
    "grid_affine",
    "resample",
    "to_voxels",
    "to_lps",
    "mirror_name",
    "mirror_permutation",
    "random_pose",
    "IntensityAugment",
]

#: Left/right suffixes swapped by a mirror (``asis_r`` <-> ``asis_l``).
_SIDES = (("_r", "_l"), ("_right", "_left"))


def check_volume(volume: Volume, what: str = "volume") -> np.ndarray:
    """The volume's voxels (own dtype), refusing an empty volume, NaN/inf or constant voxels."""
    if not isinstance(volume, Volume):
        raise InputError(f"{what}: expected a medpose Volume, found {type(volume).__name__}")
    arr = np.asarray(volume.array)
    if arr.size == 0 or min(arr.shape) == 0:
        raise InputError(f"{what}: empty volume (shape {tuple(arr.shape)}); expected voxels")
    if not np.issubdtype(arr.dtype, np.integer):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise InputError(
                f"{what}: {bad} of {arr.size} voxels are NaN or infinite; expected finite values"
            )
    if arr.max() == arr.min():
        raise InputError(
            f"{what}: every voxel has the value {float(arr.min()):g}; expected an image"
        )
    return arr


def volume_affine(volume: Volume) -> np.ndarray:
    """4x4 voxel-index -> LPS mm affine of a volume: ``o + D diag(s) (i, j, k)``."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(volume.direction, float) * np.asarray(volume.spacing, float)[None, :]
    a[:3, 3] = np.asarray(volume.origin, float)
    return a


def windowed_tensor(
    volume: Volume,
    window: Sequence[float],
    what: str = "volume",
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """(1, I, J, K) float32 tensor of the volume windowed to [0, 1] (outside clipped), on ``device``."""
    arr = check_volume(volume, what)
    keep = arr.dtype in (np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.uint8))
    raw = torch.from_numpy(np.array(arr, dtype=arr.dtype if keep else np.float32))
    lo, hi = float(window[0]), float(window[1])
    scale = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
    out = scale(raw.to(device).float()[None])
    return torch.as_tensor(out, dtype=torch.float32)


def grid_affine(centre: Any, spacing: float, shape: Sequence[int], axes: Any = None) -> np.ndarray:
    """4x4 affine of a grid of ``shape`` voxels, ``spacing`` mm, centred at ``centre`` (LPS).

    ``axes`` (3, 3): columns are the grid axes in LPS (a rotation, possibly times a mirror);
    default the LPS axes.
    """
    r = np.eye(3) if axes is None else np.asarray(axes, float)
    half = (np.asarray(shape, float) - 1.0) / 2.0
    a = np.eye(4)
    a[:3, :3] = r * float(spacing)
    a[:3, 3] = np.asarray(centre, float) - a[:3, :3] @ half
    return a


def to_voxels(points: Any, affine: np.ndarray) -> np.ndarray:
    """LPS points (..., 3) -> voxel coordinates (..., 3) of the grid or volume ``affine``."""
    p = np.asarray(points, float)
    inv = np.linalg.inv(affine)
    return p @ inv[:3, :3].T + inv[:3, 3]


def to_lps(voxels: Any, affine: np.ndarray) -> np.ndarray:
    """Voxel coordinates (..., 3) -> LPS mm (..., 3)."""
    v = np.asarray(voxels, float)
    return v @ affine[:3, :3].T + affine[:3, 3]


def resample(
    image: torch.Tensor,
    image_affine: np.ndarray,
    grid_affines: Sequence[np.ndarray] | np.ndarray,
    shape: Sequence[int],
) -> torch.Tensor:
    """Sample a (1, I, J, K) image on one or more grids: (N, 1, *shape) (MONAI ``Resample``).

    Trilinear; 0 outside the image.  All grids share ``shape``; they are sampled in one call.
    """
    affines = np.asarray(grid_affines, float).reshape(-1, 4, 4)
    n = affines.shape[0]
    m = np.linalg.inv(image_affine) @ affines  # grid voxel -> image voxel, per grid
    dev = image.device
    idx = [torch.arange(int(s), dtype=torch.float32, device=dev) for s in shape]
    vox = torch.stack(torch.meshgrid(*idx, indexing="ij"), dim=-1)  # (*shape, 3)
    mt = torch.as_tensor(m, dtype=torch.float32, device=dev)
    src = torch.einsum("nab,xyzb->naxyz", mt[:, :3, :3], vox) + mt[:, :3, 3, None, None, None]
    centre = torch.as_tensor(
        (np.asarray(image.shape[1:], float) - 1.0) / 2.0, dtype=torch.float32, device=dev
    )
    src = src - centre.view(1, 3, 1, 1, 1)
    # the N grids side by side along the first axis: one Resample call
    grid = src.permute(1, 0, 2, 3, 4).reshape(3, n * int(shape[0]), int(shape[1]), int(shape[2]))
    out = Resample(mode="bilinear", padding_mode="zeros")(image, grid=grid)
    out_t = torch.as_tensor(out)
    return out_t.reshape(1, n, *[int(s) for s in shape]).permute(1, 0, 2, 3, 4).contiguous()


def mirror_name(name: str) -> str:
    """The name of the mirror-image landmark (``asis_r`` -> ``asis_l``); midline names unchanged."""
    for right, left in _SIDES:
        if name.endswith(right):
            return name[: -len(right)] + left
        if name.endswith(left):
            return name[: -len(left)] + right
    return name


def mirror_permutation(names: Sequence[str]) -> np.ndarray:
    """Index ``p`` with ``names[p[k]] == mirror_name(names[k])``.

    Raises
    ------
    InputError
        A sided name whose mirror is not among the names.
    """
    pos = {n: i for i, n in enumerate(names)}
    missing = [mirror_name(n) for n in names if mirror_name(n) not in pos]
    if missing:
        raise InputError(
            f"mirror_permutation: the mirror images {missing} of sided landmarks are not in "
            f"the landmark names; expected both sides of every sided landmark"
        )
    return np.array([pos[mirror_name(n)] for n in names], dtype=int)


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation used in training.

    Attributes
    ----------
    rotation_deg : float
        Largest rotation of the grid about each LPS axis.
    shift_mm : float
        Largest shift of the grid centre along each axis.
    mirror : float
        Probability of a left/right mirror (names swapped).
    noise : float
        Largest standard deviation of added Gaussian noise (windowed units, 0..1 range).
    scale, offset : float
        Intensity multiplied by ``1 + U(-scale, scale)`` and shifted by ``U(-offset, offset)``.
    smooth : tuple of float
        Range of the Gaussian blur sigma (voxels), applied with probability 0.3.
    """

    rotation_deg: float = 10.0
    shift_mm: float = 15.0
    mirror: float = 0.5
    noise: float = 0.04
    scale: float = 0.1
    offset: float = 0.05
    smooth: tuple[float, float] = (0.25, 1.0)


def random_pose(
    rng: np.random.Generator, aug: Augmentation | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Random grid axes (3, 3), shift (3,) mm and whether the pose mirrors left/right."""
    if aug is None:
        return np.eye(3), np.zeros(3), False
    rot = Rotation.from_rotvec(np.deg2rad(rng.uniform(-1.0, 1.0, 3) * aug.rotation_deg))
    mirrored = bool(rng.random() < aug.mirror)
    axes = rot.as_matrix() @ (np.diag([-1.0, 1.0, 1.0]) if mirrored else np.eye(3))
    return axes, rng.uniform(-1.0, 1.0, 3) * aug.shift_mm, mirrored


class IntensityAugment:
    """MONAI intensity augmentation of one (1, ...) image in windowed units, seeded."""

    def __init__(self, aug: Augmentation, seed: int) -> None:
        self.transforms = [
            RandGaussianSmooth(
                sigma_x=aug.smooth, sigma_y=aug.smooth, sigma_z=aug.smooth, prob=0.3
            ),
            RandScaleIntensity(factors=aug.scale, prob=1.0),
            RandShiftIntensity(offsets=aug.offset, prob=1.0),
        ]
        for i, t in enumerate(self.transforms):
            t.set_random_state(seed=seed + i)
        # noise drawn on the image's device (MONAI's RandGaussianNoise draws it with numpy on
        # the CPU, which dominates a GPU training step); same law: N(0, U(0, noise)^2)
        self.noise = float(aug.noise)
        self.rng = np.random.default_rng(seed + len(self.transforms))
        self.generators: dict[str, torch.Generator] = {}
        self.seed = seed

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Augmented copy of ``image`` (same device and dtype)."""
        out: Any = image
        for t in self.transforms:
            out = t(out)
        out = torch.as_tensor(out, dtype=image.dtype, device=image.device)
        key = str(image.device)
        if key not in self.generators:
            self.generators[key] = torch.Generator(device=image.device).manual_seed(self.seed)
        std = float(self.rng.uniform(0.0, self.noise))
        noise = torch.randn(
            out.shape, generator=self.generators[key], device=out.device, dtype=out.dtype
        )
        return out + std * noise
