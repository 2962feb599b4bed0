"""Running a landmark detector on a volume: :func:`detect_landmarks`, :func:`detect_and_register`.

The volume is windowed and resampled onto the detector's coarse grid (always: its spacing,
orientation and field of view are the detector's own, whatever the volume's; the
:class:`Detection` says what was resampled), the coarse network locates every landmark, and
the fine network (if any) refines each one in a cube of fine voxels around it.  Detections
whose confidence is below the detector's ``min_confidence`` are *flagged*: they are kept in
:attr:`Detection.landmarks` (for inspection) but left out of :attr:`Detection.accepted`, of
the written file by default, and of the registration in :func:`detect_and_register`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import Landmarks
from ..errors import InputError
from ..geometry import LPS
from .detector import (
    LandmarkDetector,
    heatmap_confidence,
    load_detector,
    shipped_detector,
    soft_argmax,
)
from .transforms import grid_affine, resample, to_lps, volume_affine, windowed_tensor
from .volume import Volume

__all__ = [
    "Detection",
    "detect_landmarks",
    "detect_and_register",
    "detector_fle",
    "detect_and_register_with",
    "coarse_affine",
    "fine_affines",
    "autocast",
]

log = logging.getLogger("medpose.detector")


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 mixed precision on a CUDA device when ``amp``; otherwise full precision."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def coarse_affine(
    image_affine: np.ndarray,
    image_shape: Sequence[int],
    spacing_mm: float,
    grid: Sequence[int],
    axes: Any = None,
    shift: Any = None,
) -> np.ndarray:
    """Affine of the coarse grid: centred on the volume's centre (+ ``shift`` mm), ``axes`` (3, 3)."""
    centre = to_lps((np.asarray(image_shape, float) - 1.0) / 2.0, image_affine)
    if shift is not None:
        centre = centre + np.asarray(shift, float)
    return grid_affine(centre, spacing_mm, grid, axes)


def fine_affines(centres: Any, spacing_mm: float, patch: int, axes: Any = None) -> np.ndarray:
    """(K, 4, 4) affines of fine cubes centred at ``centres`` (K, 3) LPS."""
    return np.stack([grid_affine(c, spacing_mm, (patch,) * 3, axes) for c in np.asarray(centres)])


@dataclass(frozen=True)
class Detection:
    """Landmarks found in one volume, with their confidence.

    Attributes
    ----------
    landmarks : Landmarks
        Every landmark of the detector, ``"LPS"`` mm (flagged ones included).
    confidence : ndarray (K,)
        Probability mass within the detector's ``confidence_radius_mm`` of each position.
    spread_mm : ndarray (K,)
        RMS spread of each probability map about its position.
    coarse : Landmarks
        Positions from the coarse stage alone.
    min_confidence : float
        Detections below it are flagged.
    notes : tuple of str
        What was done to the volume (resampling, field of view).
    """

    landmarks: Landmarks
    confidence: np.ndarray
    spread_mm: np.ndarray
    coarse: Landmarks
    min_confidence: float
    notes: tuple[str, ...] = ()

    @property
    def flagged(self) -> tuple[str, ...]:
        """Names of the low-confidence detections (left out of :attr:`accepted`)."""
        return tuple(
            n for n, c in zip(self.landmarks.names, self.confidence) if c < self.min_confidence
        )

    @property
    def accepted(self) -> Landmarks:
        """The detections at or above ``min_confidence``."""
        keep = self.confidence >= self.min_confidence
        names = tuple(n for n, k in zip(self.landmarks.names, keep) if k)
        return Landmarks(names, self.landmarks.positions[keep], frame=self.landmarks.frame)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per landmark: x, y, z (LPS mm), confidence, spread_mm, flagged."""
        df = pd.DataFrame(
            self.landmarks.positions, index=list(self.landmarks.names), columns=["x", "y", "z"]
        )
        df["confidence"] = self.confidence
        df["spread_mm"] = self.spread_mm
        df["flagged"] = self.confidence < self.min_confidence
        df.index.name = "landmark"
        return df

    def write(self, path: str | os.PathLike, *, include_flagged: bool = False) -> Path:
        """Write the accepted (or all) landmarks as Slicer ``.mrk.json``/``.fcsv``/``.csv``.

        Raises
        ------
        InputError
            Every detection is flagged and ``include_flagged`` is False (nothing to write).
        """
        from ..io.landmarks import write_landmarks

        chosen = self.landmarks if include_flagged else self.accepted
        if len(chosen) == 0:
            raise InputError(
                f"Detection.write: every detection is below the confidence "
                f"{self.min_confidence:g} ({list(self.flagged)}); nothing to write "
                f"(include_flagged=True writes them all)"
            )
        return write_landmarks(chosen, path)

    def plot(self, ax: Any = None) -> Any:
        """Bar chart of the confidence per landmark, flagged ones red, the threshold dashed."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(7, 3.5))[1]
        names = list(self.landmarks.names)
        colours = ["tab:red" if c < self.min_confidence else "tab:blue" for c in self.confidence]
        ax.bar(range(len(names)), self.confidence, color=colours)
        ax.axhline(self.min_confidence, color="k", ls="--", lw=1, label="min_confidence")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("confidence")
        ax.legend(loc="upper right", fontsize=8)
        return ax

    def __repr__(self) -> str:
        n, f = len(self.landmarks), self.flagged
        flag = f", flagged (confidence < {self.min_confidence:g}): {list(f)}" if f else ""
        return (
            f"Detection({n} landmarks, median confidence {float(np.median(self.confidence)):.2f}"
            f"{flag})"
        )

    def _repr_html_(self) -> str:
        return f"<p>{self!r}</p>" + self.to_dataframe().to_html(float_format="%.2f")


def _run(
    net: torch.nn.Module,
    x: torch.Tensor,
    spacing: float,
    radius: float,
    device: torch.device,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.no_grad(), autocast(device, amp):
        logits = net(x)
    coords, probs = soft_argmax(logits)
    conf, spread = heatmap_confidence(probs, coords, spacing, radius)
    return coords, conf, spread


def _radius(c: Any, spacing: float) -> float:
    """Confidence radius of a stage: ``confidence_radius_mm``, at least twice the target sd."""
    return max(float(c.confidence_radius_mm), 2.0 * float(c.sigma_vox) * float(spacing))


def predict(
    detector: LandmarkDetector,
    image: torch.Tensor,
    image_affine: np.ndarray,
    *,
    amp: bool = True,
) -> dict[str, np.ndarray]:
    """Coarse and fine positions (LPS), confidence and spread for one windowed (1, I, J, K) image."""
    c = detector.config
    dev = image.device
    a_c = coarse_affine(image_affine, image.shape[1:], c.spacing_mm, c.grid)
    x = resample(image, image_affine, [a_c], c.grid)
    coords, conf, spread = _run(
        detector.coarse, x, c.spacing_mm, _radius(c, c.spacing_mm), dev, amp
    )
    coarse = to_lps(coords[0].cpu().numpy(), a_c)
    out = {
        "coarse": coarse,
        "landmarks": coarse,
        "confidence": conf[0].cpu().numpy(),
        "spread_mm": spread[0].cpu().numpy(),
    }
    if detector.fine is not None:
        k = len(c.landmarks)
        a_f = fine_affines(coarse, c.fine_spacing_mm, c.fine_patch)
        xs = resample(image, image_affine, a_f, (c.fine_patch,) * 3)
        with torch.no_grad(), autocast(dev, amp):
            logits = detector.fine(xs)
        own = logits[torch.arange(k), torch.arange(k)][None]  # (1, K, P, P, P): channel k of cube k
        fc, probs = soft_argmax(own)
        fconf, fspread = heatmap_confidence(
            probs, fc, c.fine_spacing_mm, _radius(c, c.fine_spacing_mm)
        )
        vox = fc[0].cpu().numpy()
        out["landmarks"] = np.stack([to_lps(vox[i], a_f[i]) for i in range(k)])
        out["confidence"] = fconf[0].cpu().numpy()
        out["spread_mm"] = fspread[0].cpu().numpy()
    return out


def _notes(volume: Volume, detector: LandmarkDetector) -> list[str]:
    c = detector.config
    sp = [round(float(v), 3) for v in volume.spacing]
    oblique = not np.allclose(np.asarray(volume.direction, float), np.eye(3), atol=1e-6)
    notes = [
        f"resampled: volume spacing {sp} mm{' with non-LPS axes' if oblique else ''} -> "
        f"coarse grid {list(c.grid)} x {c.spacing_mm:g} mm"
        + (f", fine cubes {c.fine_patch}^3 x {c.fine_spacing_mm:g} mm" if c.fine_patch else "")
    ]
    a_v = volume_affine(volume)
    shape = np.asarray(volume.array.shape, float)
    a_c = coarse_affine(a_v, volume.array.shape, c.spacing_mm, c.grid)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (shape - 1)
    in_grid = np.linalg.solve(a_c[:3, :3], (to_lps(corners, a_v) - a_c[:3, 3]).T).T
    over = np.maximum(-in_grid, in_grid - (np.asarray(c.grid) - 1)).max(axis=0) * c.spacing_mm
    if np.any(over > 0):
        notes.append(
            "field of view: the volume extends up to "
            f"{[round(float(max(o, 0.0)), 1) for o in over]} mm beyond the coarse grid along "
            "x, y, z; landmarks there cannot be found"
        )
    return notes


def detect_landmarks(
    volume: Volume,
    model: LandmarkDetector | str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    min_confidence: float | None = None,
    amp: bool = True,
) -> Detection:
    """Find the detector's landmarks in a volume.

    Parameters
    ----------
    volume : Volume
        Any spacing and orientation (resampled to the detector's grid; the Detection's
        ``notes`` say so).
    model : LandmarkDetector or path of a ``.safetensors`` checkpoint
    device : str or torch.device, optional
        Default: the detector's device (a checkpoint loads on the CPU).
    min_confidence : float, optional
        Overrides the detector's threshold for flagging.
    amp : bool
        bfloat16 mixed precision on a CUDA device (ignored on the CPU).

    Returns
    -------
    Detection

    Raises
    ------
    InputError
        An empty volume, NaN/infinite or constant voxels, or an unreadable checkpoint.
    """
    det = model if isinstance(model, LandmarkDetector) else load_detector(model)
    dev = torch.device(device) if device is not None else next(det.parameters()).device
    det = det.to(dev).eval()
    c = det.config
    image = windowed_tensor(volume, c.window, "detect_landmarks", dev)
    out = predict(det, image, volume_affine(volume), amp=amp)
    notes = _notes(volume, det)
    for n in notes:
        log.info("detect_landmarks: %s", n)
    thr = c.min_confidence if min_confidence is None else float(min_confidence)
    if not 0.0 <= thr <= 1.0:
        raise InputError(f"detect_landmarks: min_confidence must be in [0, 1], found {thr!r}")
    return Detection(
        landmarks=Landmarks(c.landmarks, out["landmarks"], frame=LPS),
        confidence=out["confidence"].astype(float),
        spread_mm=out["spread_mm"].astype(float),
        coarse=Landmarks(c.landmarks, out["coarse"], frame=LPS),
        min_confidence=thr,
        notes=tuple(notes),
    )


def detector_fle(detector: LandmarkDetector, names: Sequence[str]) -> np.ndarray | None:
    """The detector's FLE covariance (mm^2, LPS) of each named landmark, shape (N, 3, 3).

    It is the second moment of the error vector measured on held-back phantoms when the
    checkpoint was made (``info["validation"]``, :func:`~medpose.imaging.detector_train.
    validation_record`): the landmark's error covariance plus its steady offset (bias), so a
    landmark found with a steady offset counts with its full RMS error.  None when the
    checkpoint records no validation.

    Raises
    ------
    InputError
        The record lacks a named landmark or holds a malformed entry.
    """
    val = detector.config.extra.get("validation")
    if not val:
        return None
    per = val.get("landmarks", {}) if isinstance(val, dict) else {}
    missing = [n for n in names if n not in per]
    if missing:
        raise InputError(
            f"detector_fle: the checkpoint's validation record lacks landmarks {missing}; "
            f"it has {sorted(per)}"
        )
    cov = np.array([per[n].get("moment_mm2") for n in names], dtype=float)
    if cov.shape != (len(names), 3, 3) or not np.all(np.isfinite(cov)):
        raise InputError(
            f"detector_fle: the checkpoint's validation 'moment_mm2' entries must be finite "
            f"3 x 3 matrices, found shape {cov.shape}"
        )
    return cov


def detect_and_register(
    volume: Volume,
    checkpoint: LandmarkDetector | str | os.PathLike | None,
    camera_points: Landmarks,
    *,
    fle: Any = None,
    robust: bool = False,
    min_confidence: float | None = None,
    device: str | torch.device | None = None,
) -> Any:
    """Detect landmarks in a volume and register them (moving, LPS) to camera points (fixed).

    ``checkpoint`` None: the detector shipped with medpose
    (:func:`~medpose.imaging.detector.shipped_detector`).  Low-confidence detections are left
    out; the fiducials are the accepted detections that
    ``camera_points`` also names.  Returns :class:`~medpose.registration.Registration`.

    The FLE of the detected (moving) side is the detector's own, measured per landmark on
    held-back phantoms (:func:`detector_fle`: covariance plus bias, so each fiducial has its
    own, anisotropic FLE); the registration weights the fiducials by it and its predicted TRE
    uses it.  ``fle`` is the camera side's FLE (a number: RMS 3D mm; or a covariance), or a
    mapping ``{"fixed": .., "moving": ..}`` whose ``"moving"`` replaces the detector's.
    ``robust`` is passed to :func:`~medpose.registration.register`.

    Raises
    ------
    InputError
        Bad volume or checkpoint (see :func:`detect_landmarks`).
    DegenerateConfiguration
        Fewer than 3 accepted detections named in ``camera_points`` (the message lists the
        flagged ones).
    """
    reg, _ = detect_and_register_with(
        volume, checkpoint, camera_points, fle=fle, robust=robust,
        min_confidence=min_confidence, device=device,
    )  # fmt: skip
    return reg


def detect_and_register_with(
    volume: Volume,
    checkpoint: LandmarkDetector | str | os.PathLike | None,
    camera_points: Landmarks,
    *,
    fle: Any = None,
    robust: bool = False,
    min_confidence: float | None = None,
    device: str | torch.device | None = None,
    scale: bool = False,
    **register_kw: Any,
) -> tuple[Any, Detection]:
    """:func:`detect_and_register` that also returns the :class:`Detection` (and takes
    :func:`~medpose.registration.register`'s ``scale`` and other options)."""
    from collections.abc import Mapping

    from ..errors import DegenerateConfiguration
    from ..registration import register

    if checkpoint is None:
        checkpoint = shipped_detector()
    model = checkpoint if isinstance(checkpoint, LandmarkDetector) else load_detector(checkpoint)
    det = detect_landmarks(volume, model, device=device, min_confidence=min_confidence)
    acc = det.accepted
    names = [n for n in acc.names if n in set(camera_points.names)]
    if len(names) < 3:
        raise DegenerateConfiguration(
            f"detect_and_register: {len(names)} confident detections named in the camera "
            f"points ({names}); at least 3 are needed; flagged as low-confidence: "
            f"{list(det.flagged)}"
        )
    log.info("detect_and_register: fiducials %s; left out (low confidence) %s", names, det.flagged)
    own = detector_fle(model, names)
    if isinstance(fle, Mapping):
        spec: Any = dict(fle) if fle.get("moving") is not None else {**fle, "moving": own}
    else:
        spec = {"fixed": fle, "moving": own}
    if spec.get("fixed") is None and spec.get("moving") is None:
        spec = None
    reg = register(
        camera_points, acc, names=names, fle=spec, robust=robust, scale=scale, **register_kw
    )
    return reg, det
