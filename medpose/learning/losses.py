"""Pose alignment loss: a coordinate term in millimetres plus a heatmap KL term.

The loss is ``alpha * L_coord + (1 - alpha) * L_heatmap`` where

* ``L_coord`` is the smooth L1 (Huber with transition ``beta_mm``; plain L1 when ``beta_mm=0``)
  distance between predicted and true landmark coordinates in millimetres, averaged over the
  three axes and over the visible landmarks;
* ``L_heatmap`` is ``KL(target || predicted)`` between the two heatmaps of each landmark, each
  normalised to a probability distribution over the voxels, averaged over the visible landmarks.
  Predicted heatmaps are either logits (``heatmaps="logits"``, normalised by a softmax over all
  voxels of a channel) or non-negative scores (``heatmaps="scores"``, divided by their sum).
  Targets are normalised Gaussians centred on the true voxel position (see
  :func:`gaussian_heatmaps`), given directly or built by the loss from voxel centres.

``alpha`` is constant or follows an :class:`AlphaSchedule` over epochs (``loss.set_epoch(e)``).

Shapes: heatmaps ``(B, K, D, H, W)`` whose axes are the volume's ``i, j, k`` axes; coordinates
``(B, K, 3)`` in mm; voxel centres ``(B, K, 3)`` as continuous ``(i, j, k)`` indices; optional
visibility mask ``(B, K)`` (``True``/1 = landmark counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import InputError

__all__ = ["AlignmentLossTerms", "AlphaSchedule", "PoseAlignmentLoss", "gaussian_heatmaps"]


def gaussian_heatmaps(
    centres: Tensor,
    shape: tuple[int, int, int],
    sigma: float = 2.0,
    *,
    spacing: tuple[float, float, float] | None = None,
) -> Tensor:
    """Normalised 3D Gaussian heatmaps centred on continuous voxel positions.

    Parameters
    ----------
    centres : Tensor, shape (B, K, 3)
        Continuous voxel indices ``(i, j, k)`` along the heatmap axes ``(D, H, W)``.
    shape : (D, H, W)
        Heatmap size.
    sigma : float
        Standard deviation of the Gaussian: in voxels, or in millimetres when ``spacing`` is given.
    spacing : (3,) floats, optional
        Voxel spacing (mm) along ``D, H, W``; distances are then measured in mm.

    Returns
    -------
    Tensor, shape (B, K, D, H, W)
        Each channel sums to 1 over its voxels (the Gaussian truncated to the grid and
        renormalised), in the dtype and on the device of ``centres``.
    """
    if centres.ndim != 3 or centres.shape[-1] != 3:
        raise InputError(
            f"gaussian_heatmaps: centres must have shape (B, K, 3), found {tuple(centres.shape)}"
        )
    if len(shape) != 3 or any(int(n) < 1 for n in shape):
        raise InputError(f"gaussian_heatmaps: shape must be 3 positive sizes, found {shape}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InputError(f"gaussian_heatmaps: sigma must be finite and > 0, found {sigma}")
    step = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(step) != 3 or any(not (s > 0) for s in step):
        raise InputError(f"gaussian_heatmaps: spacing must be 3 positive numbers, found {spacing}")
    b, k = centres.shape[:2]
    log_density = centres.new_zeros((b, k, 1, 1, 1))
    for axis in range(3):
        grid = torch.arange(int(shape[axis]), dtype=centres.dtype, device=centres.device)
        d = (grid[None, None, :] - centres[..., axis, None]) * step[axis] / sigma  # (B, K, n)
        view = [b, k, 1, 1, 1]
        view[2 + axis] = int(shape[axis])
        log_density = log_density + (-0.5 * d**2).reshape(view)
    flat = log_density.reshape(b, k, -1)
    return torch.softmax(flat, dim=-1).reshape(b, k, *(int(n) for n in shape))


@dataclass(frozen=True)
class AlphaSchedule:
    """Weight of the coordinate term over training: ``start`` at epoch 0 to ``end`` at ``epochs``.

    ``kind`` is ``"constant"`` (always ``start``), ``"linear"`` or ``"cosine"`` (half-cosine
    ramp, flat at both ends).  Epochs past ``epochs`` keep ``end``.  Typical use: start with a
    small alpha (the heatmap term shapes the early heatmaps) and move weight to the coordinates.
    """

    start: float = 0.2
    end: float = 0.8
    epochs: int = 50
    kind: Literal["constant", "linear", "cosine"] = "cosine"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"AlphaSchedule: {name} must be in [0, 1], found {value}")
        if self.epochs < 1:
            raise InputError(f"AlphaSchedule: epochs must be >= 1, found {self.epochs}")
        if self.kind not in ("constant", "linear", "cosine"):
            raise InputError(
                f"AlphaSchedule: kind must be 'constant', 'linear' or 'cosine', found {self.kind!r}"
            )

    def __call__(self, epoch: int) -> float:
        """Alpha at ``epoch`` (0-based)."""
        if self.kind == "constant":
            return float(self.start)
        t = min(max(epoch / self.epochs, 0.0), 1.0)
        if self.kind == "cosine":
            t = 0.5 - 0.5 * math.cos(math.pi * t)
        return float(self.start + (self.end - self.start) * t)


class AlignmentLossTerms(NamedTuple):
    """What :class:`PoseAlignmentLoss` returns: ``total`` (backpropagate this) and its parts."""

    total: Tensor
    coord: Tensor
    heatmap: Tensor
    alpha: float


class PoseAlignmentLoss(nn.Module):
    """``alpha * smooth-L1(coordinates, mm) + (1 - alpha) * KL(target heatmap || predicted)``.

    Parameters
    ----------
    alpha : float, optional
        Constant weight of the coordinate term in ``[0, 1]`` (default 0.5).  Not allowed together
        with ``schedule``.
    schedule : AlphaSchedule, optional
        Alpha per epoch; the loss starts at epoch 0, advance it with :meth:`set_epoch`.
    beta_mm : float
        Smooth L1 transition (mm): quadratic below, linear above; 0 gives plain L1.
    heatmaps : "logits" or "scores"
        How predicted heatmaps are normalised: softmax over the voxels of each channel, or
        non-negative scores divided by their sum.
    sigma : float
        Standard deviation of the Gaussian targets built from ``target_voxels`` (voxels, or mm
        when ``spacing`` is given to :meth:`forward`).

    Examples
    --------
    >>> loss = PoseAlignmentLoss(alpha=0.7)
    >>> out = loss(pred_mm, true_mm, logits, target_voxels=true_ijk, mask=visible)  # doctest: +SKIP
    >>> out.total.backward()  # doctest: +SKIP
    """

    def __init__(
        self,
        alpha: float | None = None,
        *,
        schedule: AlphaSchedule | None = None,
        beta_mm: float = 1.0,
        heatmaps: Literal["logits", "scores"] = "logits",
        sigma: float = 2.0,
    ) -> None:
        super().__init__()
        if alpha is not None and schedule is not None:
            raise InputError("PoseAlignmentLoss: give alpha or schedule, not both")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise InputError(f"PoseAlignmentLoss: alpha must be in [0, 1], found {alpha}")
        if not beta_mm >= 0.0:
            raise InputError(f"PoseAlignmentLoss: beta_mm must be >= 0, found {beta_mm}")
        if heatmaps not in ("logits", "scores"):
            raise InputError(
                f"PoseAlignmentLoss: heatmaps must be 'logits' or 'scores', found {heatmaps!r}"
            )
        if not sigma > 0:
            raise InputError(f"PoseAlignmentLoss: sigma must be > 0, found {sigma}")
        self.schedule = (
            schedule
            if schedule is not None
            else AlphaSchedule(start=0.5 if alpha is None else float(alpha), kind="constant")
        )
        self.beta_mm = float(beta_mm)
        self.heatmaps = heatmaps
        self.sigma = float(sigma)
        self.epoch = 0

    @property
    def alpha(self) -> float:
        """Current weight of the coordinate term."""
        return self.schedule(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        """Move the alpha schedule to ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def log_probabilities(self, heatmaps: Tensor) -> Tensor:
        """Per-channel log-probabilities over the voxels of predicted heatmaps (B, K, D, H, W)."""
        flat = heatmaps.flatten(2)
        if self.heatmaps == "logits":
            return torch.log_softmax(flat, dim=-1).reshape(heatmaps.shape)
        if bool((flat < 0).any()):
            raise InputError("PoseAlignmentLoss: heatmaps='scores' needs non-negative heatmaps")
        total = flat.sum(-1, keepdim=True)
        if bool((total <= 0).any()):
            raise InputError("PoseAlignmentLoss: a predicted heatmap channel sums to zero")
        tiny = torch.finfo(flat.dtype).tiny
        return (torch.log(flat.clamp_min(tiny)) - torch.log(total)).reshape(heatmaps.shape)

    def forward(
        self,
        pred_coords: Tensor,
        target_coords: Tensor,
        pred_heatmaps: Tensor,
        target_heatmaps: Tensor | None = None,
        *,
        target_voxels: Tensor | None = None,
        spacing: tuple[float, float, float] | None = None,
        mask: Tensor | None = None,
    ) -> AlignmentLossTerms:
        """Loss of one batch.

        Parameters
        ----------
        pred_coords, target_coords : Tensor, shape (B, K, 3)
            Landmark coordinates in millimetres.
        pred_heatmaps : Tensor, shape (B, K, D, H, W)
            Logits or non-negative scores (see ``heatmaps``).
        target_heatmaps : Tensor, shape (B, K, D, H, W), optional
            Target distributions (non-negative; normalised here).  Give this or ``target_voxels``.
        target_voxels : Tensor, shape (B, K, 3), optional
            True continuous voxel indices; Gaussian targets of width ``sigma`` are built.
        spacing : (3,) floats, optional
            Voxel spacing used with ``target_voxels`` (``sigma`` then in mm).
        mask : Tensor, shape (B, K), optional
            Visibility: landmarks with 0/False contribute to neither term.

        Returns
        -------
        AlignmentLossTerms
            ``total``, ``coord`` (mm), ``heatmap`` (nats) and the ``alpha`` used.
        """
        if pred_coords.ndim != 3 or pred_coords.shape[-1] != 3:
            raise InputError(
                f"PoseAlignmentLoss: pred_coords must be (B, K, 3), found {tuple(pred_coords.shape)}"
            )
        if target_coords.shape != pred_coords.shape:
            raise InputError(
                f"PoseAlignmentLoss: target_coords shape {tuple(target_coords.shape)} differs "
                f"from pred_coords {tuple(pred_coords.shape)}"
            )
        bk = tuple(pred_coords.shape[:2])
        if pred_heatmaps.ndim != 5 or tuple(pred_heatmaps.shape[:2]) != bk:
            raise InputError(
                f"PoseAlignmentLoss: pred_heatmaps must be (B, K, D, H, W) with (B, K) = {bk}, "
                f"found {tuple(pred_heatmaps.shape)}"
            )
        if (target_heatmaps is None) == (target_voxels is None):
            raise InputError(
                "PoseAlignmentLoss: give exactly one of target_heatmaps, target_voxels"
            )
        if target_voxels is not None:
            if tuple(target_voxels.shape) != tuple(pred_coords.shape):
                raise InputError(
                    f"PoseAlignmentLoss: target_voxels must be (B, K, 3) = {tuple(pred_coords.shape)}, "
                    f"found {tuple(target_voxels.shape)}"
                )
            d, h, w = (int(n) for n in pred_heatmaps.shape[2:])
            target = gaussian_heatmaps(
                target_voxels.to(pred_heatmaps.dtype), (d, h, w), self.sigma, spacing=spacing
            )
        else:
            assert target_heatmaps is not None
            if target_heatmaps.shape != pred_heatmaps.shape:
                raise InputError(
                    f"PoseAlignmentLoss: target_heatmaps shape {tuple(target_heatmaps.shape)} "
                    f"differs from pred_heatmaps {tuple(pred_heatmaps.shape)}"
                )
            t = target_heatmaps.flatten(2)
            if bool((t < 0).any()) or bool((t.sum(-1) <= 0).any()):
                raise InputError(
                    "PoseAlignmentLoss: target_heatmaps must be non-negative with positive sums"
                )
            target = (t / t.sum(-1, keepdim=True)).reshape(target_heatmaps.shape)
        if mask is None:
            weight = pred_coords.new_ones(bk)
        else:
            if tuple(mask.shape) != bk:
                raise InputError(
                    f"PoseAlignmentLoss: mask must be (B, K) = {bk}, found {tuple(mask.shape)}"
                )
            weight = mask.to(pred_coords.dtype)
        count = weight.sum()

        if self.beta_mm > 0:
            per_axis = nn.functional.smooth_l1_loss(
                pred_coords, target_coords, reduction="none", beta=self.beta_mm
            )
        else:
            per_axis = (pred_coords - target_coords).abs()
        coord_per = per_axis.mean(-1)  # (B, K)

        log_p = self.log_probabilities(pred_heatmaps).flatten(2)
        t = target.flatten(2).to(log_p.dtype)
        kl_per = (torch.special.xlogy(t, t) - t * log_p).sum(-1)  # (B, K)

        # Masked means; zero-visible batches give 0 with the graph kept (no NaN).
        denom = count.clamp_min(1.0)
        coord = (coord_per * weight).sum() / denom
        heat = (kl_per * weight.to(kl_per.dtype)).sum() / denom
        a = self.alpha
        total = a * coord + (1.0 - a) * heat
        return AlignmentLossTerms(total=total, coord=coord, heatmap=heat, alpha=a)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha:.3g}, schedule={self.schedule.kind}, beta_mm={self.beta_mm}, "
            f"heatmaps={self.heatmaps!r}, sigma={self.sigma}"
        )
