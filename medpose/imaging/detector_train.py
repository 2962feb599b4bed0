"""Training and evaluating landmark detectors on synthetic phantoms.

:func:`training_phantoms` draws CT-like phantoms of varied body height (1.50-1.95 m), joint
angles (hips, knees, ankles or shoulders, elbows, forearms), placement on the table
(+-6 deg, +-30 mm) and noise (5-40 HU).  :func:`train_landmarks` trains a
:class:`~medpose.imaging.detector.LandmarkDetector` on them with random rigid poses, mirrors
(names swapped) and MONAI intensity augmentation, under
:class:`~medpose.learning.losses.PoseAlignmentLoss` (smooth L1 on mm coordinates plus KL
between heatmaps) and optionally distillation from a larger teacher detector.
:func:`evaluate_detector` gives radial errors against the phantoms' truth and
:func:`mean_position_errors` the baseline of predicting each landmark's mean position.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..kinematics.skeleton import Skeleton
from ..learning.losses import PoseAlignmentLoss
from ..synthetic.phantom import Phantom, make_phantom
from .detector import DetectorConfig, LandmarkDetector, save_detector, soft_argmax
from .detector_run import autocast, coarse_affine, fine_affines, predict
from .transforms import (
    Augmentation,
    IntensityAugment,
    mirror_permutation,
    random_pose,
    resample,
    to_voxels,
    volume_affine,
    windowed_tensor,
)

__all__ = [
    "training_phantoms",
    "varied_phantom",
    "train_landmarks",
    "TrainResult",
    "evaluate_detector",
    "validation_record",
    "mean_position_errors",
]

#: The augmentation :func:`train_landmarks` uses by default.
DEFAULT_AUGMENTATION = Augmentation()

#: Joint angle ranges (deg) drawn per side for each phantom region.
POSE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "pelvis_legs": {
        "hip_flexion_{s}": (-8.0, 15.0),
        "hip_adduction_{s}": (-6.0, 6.0),
        "hip_rotation_{s}": (-10.0, 10.0),
        "knee_flexion_{s}": (0.0, 15.0),
        "ankle_dorsiflexion_{s}": (-10.0, 10.0),
    },
    "shoulder_arm": {
        "shoulder_flexion_{s}": (-10.0, 15.0),
        "shoulder_abduction_{s}": (-5.0, 10.0),
        "elbow_flexion_{s}": (0.0, 25.0),
        "forearm_pronation_{s}": (-20.0, 20.0),
    },
}


def varied_phantom(
    seed: int,
    *,
    region: str = "pelvis_legs",
    spacing_mm: float = 1.5,
    max_voxels: int = 80_000_000,
    variety: bool = True,
) -> Phantom:
    """One phantom with body height, joint angles, placement and noise drawn from ``seed``.

    ``variety=False`` gives :func:`~medpose.synthetic.make_phantom`'s defaults (1.70 m,
    static pose, +-3 deg / +-20 mm placement, 20 HU noise).
    """
    if not variety:
        return make_phantom(
            region=region, spacing=(spacing_mm,) * 3, max_voxels=max_voxels, seed=seed
        )
    rng = np.random.default_rng([seed, 1729])
    skeleton = Skeleton.default(height_mm=float(rng.uniform(1500.0, 1950.0)))
    angles = {
        name.format(s=s): float(rng.uniform(lo, hi))
        for name, (lo, hi) in POSE_RANGES.get(region, {}).items()
        for s in ("r", "l")
    }
    return make_phantom(
        skeleton,
        region=region,
        spacing=(spacing_mm,) * 3,
        max_voxels=max_voxels,
        seed=seed,
        angles=angles,
        wobble_deg=6.0,
        shift_mm=30.0,
        noise_hu=float(rng.uniform(5.0, 40.0)),
    )


def _one(args: tuple[int, str, float, int, bool]) -> Phantom:
    seed, region, spacing, max_voxels, variety = args
    return varied_phantom(
        seed, region=region, spacing_mm=spacing, max_voxels=max_voxels, variety=variety
    )


def training_phantoms(
    n: int,
    *,
    seed: int = 0,
    region: str = "pelvis_legs",
    spacing_mm: float = 1.5,
    max_voxels: int = 80_000_000,
    variety: bool = True,
    workers: int = 1,
    progress: bool = False,
    desc: str = "phantoms",
) -> list[Phantom]:
    """``n`` varied phantoms with seeds ``seed .. seed + n - 1`` (see :func:`varied_phantom`).

    ``workers > 1`` builds them in that many processes; ``progress``: a tqdm bar (``desc``).
    """
    if int(n) < 1:
        raise InputError(f"training_phantoms: n must be >= 1, found {n!r}")
    jobs = [(seed + i, region, float(spacing_mm), int(max_voxels), variety) for i in range(n)]
    with contextlib.ExitStack() as stack:
        pool = (
            stack.enter_context(ProcessPoolExecutor(max_workers=int(workers)))
            if workers > 1
            else None
        )
        built = map(_one, jobs) if pool is None else pool.map(_one, jobs)
        shown = tqdm(built, total=len(jobs), disable=not progress, desc=desc, unit="phantom")
        return list(shown)


@dataclass(frozen=True)
class TrainResult:
    """A trained detector and how training went.

    Attributes
    ----------
    detector : LandmarkDetector
    history : DataFrame
        Per logged step: ``loss``, ``coarse_mm`` and ``fine_mm`` (mean radial error of the
        training batch, mm), ``lr``, ``seconds``.
    seconds : float
        Wall time of the training loop.
    volumes : int
        Training volumes seen (steps x batch size).
    device : str
    """

    detector: LandmarkDetector
    history: pd.DataFrame
    seconds: float
    volumes: int
    device: str

    @property
    def volumes_per_s(self) -> float:
        """Training throughput."""
        return self.volumes / self.seconds if self.seconds > 0 else float("nan")

    def plot(self, ax: Any = None) -> Any:
        """Batch radial errors against step (log scale)."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
        for col in ("coarse_mm", "fine_mm"):
            if col in self.history and self.history[col].notna().any():
                ax.plot(self.history.index, self.history[col], label=col)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training radial error (mm)")
        ax.legend()
        return ax

    def __repr__(self) -> str:
        last = self.history.iloc[-1] if len(self.history) else None
        err = (
            f", last batch error coarse {last['coarse_mm']:.2f} mm fine {last['fine_mm']:.2f} mm"
            if last is not None
            else ""
        )
        return (
            f"TrainResult({self.volumes} volumes in {self.seconds:.1f} s on {self.device}, "
            f"{self.volumes_per_s:.2f} volumes/s{err})"
        )


@dataclass
class _Item:
    image: torch.Tensor
    affine: np.ndarray
    points: np.ndarray  # (K, 3) LPS in the config's landmark order


def _items(phantoms: Sequence[Phantom], config: DetectorConfig, dev: torch.device) -> list[_Item]:
    out = []
    for i, ph in enumerate(phantoms):
        lm = ph.landmarks
        missing = [n for n in config.landmarks if n not in lm.names]
        if missing:
            raise InputError(f"train_landmarks: phantom {i} lacks landmarks {missing}")
        idx = [lm.names.index(n) for n in config.landmarks]
        img = windowed_tensor(ph.volume, config.window, f"phantom {i}", dev)
        out.append(_Item(img, volume_affine(ph.volume), np.asarray(lm.positions)[idx]))
    return out


def _distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over channels of KL(softmax(teacher) || softmax(student)) over the voxels."""
    t = torch.log_softmax(teacher.float().flatten(2), -1)
    s = torch.log_softmax(student.float().flatten(2), -1)
    return (t.exp() * (t - s)).sum(-1).mean()


def train_landmarks(
    phantoms: Sequence[Phantom],
    config: DetectorConfig | None = None,
    *,
    steps: int = 2000,
    batch_size: int = 2,
    lr: float = 2e-3,
    alpha: float = 0.3,
    augmentation: Augmentation | None = DEFAULT_AUGMENTATION,
    fine_jitter_mm: float = 12.0,
    teacher: LandmarkDetector | None = None,
    distill_weight: float = 0.5,
    device: str | torch.device | None = None,
    amp: bool = True,
    seed: int = 0,
    max_seconds: float | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    info: dict[str, Any] | None = None,
    log_every: int = 10,
    validation: Sequence[Phantom] | None = None,
) -> TrainResult:
    """Train a landmark detector on phantoms (or any volumes with true landmarks).

    Parameters
    ----------
    phantoms : sequence of Phantom
        Training volumes and their true landmarks (any objects with ``.volume`` and
        ``.landmarks``).
    config : DetectorConfig, optional
        Default: the phantoms' landmark names with the default config.
    steps, batch_size, lr : int, int, float
        Adam with a cosine learning-rate decay from ``lr`` to 0 over the run.
    alpha : float
        Weight of the coordinate term of :class:`~medpose.learning.losses.PoseAlignmentLoss`.
    augmentation : Augmentation or None
        Random poses, mirrors and intensity changes; None: none.
    fine_jitter_mm : float
        Fine cubes are centred at the truth plus a uniform offset of up to this (per axis).
    teacher : LandmarkDetector, optional
        Knowledge distillation: the student also matches the teacher's heatmaps (KL, weight
        ``distill_weight``); the teacher needs the same grids and landmarks.
    device : str or torch.device, optional
        Default CUDA if available, else CPU.
    amp : bool
        bfloat16 autocast on CUDA.
    seed : int
        Seeds the weights, the sampling and the augmentation (runs on the CPU repeat exactly).
    max_seconds : float, optional
        Stop after this long; the learning-rate schedule follows elapsed time as well as steps.
    progress : bool
        tqdm progress bar.
    checkpoint : path, optional
        Where to save the trained detector (``.safetensors``, with ``info``).
    validation : sequence of Phantom, optional
        Held-back phantoms (never the training ones): the trained detector's error on them
        per landmark (:func:`validation_record`) is stored in the checkpoint's ``info``
        under ``"validation"``, where :func:`~medpose.imaging.detector_run.detect_and_register`
        takes its FLE from.

    Returns
    -------
    TrainResult
    """
    if not phantoms:
        raise InputError("train_landmarks: no training phantoms")
    if config is None:
        config = DetectorConfig(landmarks=tuple(phantoms[0].landmarks.names))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    det = LandmarkDetector(config).to(dev).train()
    if teacher is not None:
        diff = [
            d
            for d in teacher.config.differences(config)
            if not d.startswith(("channels", "fine_channels", "res_units", "min_confidence"))
        ]
        if diff:
            raise InputError(f"train_landmarks: the teacher differs from the student: {diff}")
        teacher = teacher.to(dev).eval()
    perm = mirror_permutation(config.landmarks) if augmentation and augmentation.mirror else None
    items = _items(phantoms, config, dev)
    intens = IntensityAugment(augmentation, seed) if augmentation is not None else None
    loss_fn = PoseAlignmentLoss(alpha=alpha, sigma=config.sigma_vox)
    opt = torch.optim.Adam(det.parameters(), lr=lr)
    k = len(config.landmarks)
    p = config.fine_patch
    rows = []
    bar = tqdm(total=steps, disable=not progress, desc="train-landmarks", unit="step")
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        frac = step / steps
        if max_seconds is not None:
            frac = max(frac, (time.perf_counter() - t0) / max_seconds)
            if frac >= 1.0:
                break
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * frac))
        xs, ts, fxs, fts = [], [], [], []
        for _ in range(batch_size):
            it = items[int(rng.integers(len(items)))]
            axes, shift, mirrored = random_pose(rng, augmentation)
            pts = it.points[perm] if (mirrored and perm is not None) else it.points
            a_c = coarse_affine(
                it.affine, it.image.shape[1:], config.spacing_mm, config.grid, axes, shift
            )
            x = resample(it.image, it.affine, [a_c], config.grid)[0]
            xs.append(intens(x) if intens is not None else x)
            ts.append(to_voxels(pts, a_c))
            if p:
                centres = pts + rng.uniform(-fine_jitter_mm, fine_jitter_mm, pts.shape)
                a_f = fine_affines(centres, config.fine_spacing_mm, p, axes)
                fx = resample(it.image, it.affine, a_f, (p, p, p))
                fxs.append(intens(fx[:, 0])[:, None] if intens is not None else fx)
                fts.append(np.stack([to_voxels(pts[i], a_f[i]) for i in range(k)]))
        x = torch.stack(xs)
        t = torch.as_tensor(np.stack(ts), dtype=torch.float32, device=dev)
        with autocast(dev, amp):
            logits = det.coarse(x)
        coords, _ = soft_argmax(logits)
        sp = config.spacing_mm
        terms = loss_fn(coords * sp, t * sp, logits.float(), target_voxels=t)
        loss = terms.total
        coarse_mm = float(((coords - t).norm(dim=-1) * sp).mean().detach())
        fine_mm = float("nan")
        if teacher is not None:
            with torch.no_grad(), autocast(dev, amp):
                t_logits = teacher.coarse(x)
            loss = (1 - distill_weight) * loss + distill_weight * _distill(logits, t_logits)
        if p and det.fine is not None:
            fx = torch.cat(fxs)  # (B*K, 1, P, P, P)
            ft = torch.as_tensor(np.stack(fts), dtype=torch.float32, device=dev)
            with autocast(dev, amp):
                flog = det.fine(fx)
            sel = torch.arange(k, device=dev)
            own = flog.reshape(batch_size, k, k, p, p, p)[:, sel, sel]  # (B, K, P, P, P)
            fc, _ = soft_argmax(own)
            fsp = config.fine_spacing_mm
            fterms = loss_fn(fc * fsp, ft * fsp, own.float(), target_voxels=ft)
            floss = fterms.total
            if teacher is not None and teacher.fine is not None:
                with torch.no_grad(), autocast(dev, amp):
                    tf = teacher.fine(fx).reshape(batch_size, k, k, p, p, p)[:, sel, sel]
                floss = (1 - distill_weight) * floss + distill_weight * _distill(own, tf)
            loss = loss + floss
            fine_mm = float(((fc - ft).norm(dim=-1) * fsp).mean().detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % log_every == 0 or step == steps:
            rows.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    "coarse_mm": coarse_mm,
                    "fine_mm": fine_mm,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - t0,
                }
            )
            bar.set_postfix(coarse_mm=f"{coarse_mm:.1f}", fine_mm=f"{fine_mm:.2f}")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    bar.close()
    det.eval()
    history = pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()
    if checkpoint is not None:
        meta: dict[str, Any] = {
            "steps": step,
            "batch_size": batch_size,
            "seed": seed,
            "seconds": seconds,
        }
        if validation:
            meta["validation"] = validation_record(evaluate_detector(det, validation, amp=amp))
        save_detector(det, checkpoint, info={**meta, **(info or {})})
    return TrainResult(
        detector=det, history=history, seconds=seconds, volumes=step * batch_size, device=str(dev)
    )


def evaluate_detector(
    detector: LandmarkDetector,
    phantoms: Sequence[Phantom],
    *,
    device: str | torch.device | None = None,
    amp: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Radial errors (mm) of the detector on phantoms with known landmarks (``progress``: a
    tqdm bar over the phantoms).

    Returns
    -------
    DataFrame
        One row per phantom and landmark: ``phantom``, ``landmark``, ``error_mm``, the error
        vector ``dx_mm``, ``dy_mm``, ``dz_mm`` (detected minus true, LPS),
        ``coarse_error_mm``, ``confidence``, ``spread_mm``.
    """
    dev = torch.device(device) if device is not None else next(detector.parameters()).device
    detector = detector.to(dev).eval()
    c = detector.config
    rows = []
    items = _items(phantoms, c, dev)
    for i, it in enumerate(tqdm(items, disable=not progress, desc="evaluate", unit="phantom")):
        out = predict(detector, it.image, it.affine, amp=amp)
        vec = out["landmarks"] - it.points
        err = np.linalg.norm(vec, axis=1)
        cerr = np.linalg.norm(out["coarse"] - it.points, axis=1)
        for j, name in enumerate(c.landmarks):
            rows.append(
                {
                    "phantom": i,
                    "landmark": name,
                    "error_mm": float(err[j]),
                    "dx_mm": float(vec[j, 0]),
                    "dy_mm": float(vec[j, 1]),
                    "dz_mm": float(vec[j, 2]),
                    "coarse_error_mm": float(cerr[j]),
                    "confidence": float(out["confidence"][j]),
                    "spread_mm": float(out["spread_mm"][j]),
                }
            )
    return pd.DataFrame(rows)


def validation_record(
    errors: pd.DataFrame, min_confidence: float | None = None, **about: Any
) -> dict[str, Any]:
    """The detector's localisation error per landmark, as stored in a checkpoint's ``validation``.

    ``errors`` is :func:`evaluate_detector`'s table on held-back phantoms (never the training
    ones).  Per landmark: ``bias_mm`` (mean error vector, LPS), ``moment_mm2`` (the second
    moment ``E[e e^T]`` of the error vector: its covariance plus the bias's outer product;
    used as the landmark's FLE covariance), ``rms_mm`` (RMS 3D error, bias included:
    ``sqrt(trace(moment_mm2))``) and ``n`` (detections measured).  With ``min_confidence``,
    detections below it are left out (they are flagged, never registered); ``flagged``
    counts them.  ``about`` (JSON-able: seeds, spacing) is kept beside it.

    Raises
    ------
    InputError
        Fewer than 2 phantoms (no spread to measure) or missing error-vector columns.
    """
    need = {"phantom", "landmark", "dx_mm", "dy_mm", "dz_mm"}
    if not need <= set(errors.columns):
        raise InputError(
            f"validation_record: the errors table lacks {sorted(need - set(errors.columns))}; "
            "expected evaluate_detector's output"
        )
    n = int(errors["phantom"].nunique())
    if n < 2:
        raise InputError(f"validation_record: {n} phantom(s); at least 2 held-back are needed")
    out: dict[str, Any] = {}
    for name, g in errors.groupby("landmark", sort=False):
        low = np.zeros(len(g), dtype=bool)
        if min_confidence is not None:
            low = g["confidence"].to_numpy(float) < float(min_confidence)
        g = g[~low]
        if len(g) < 2:
            raise InputError(
                f"validation_record: landmark {name!r} has {len(g)} accepted detection(s); "
                "at least 2 are needed"
            )
        e = g[["dx_mm", "dy_mm", "dz_mm"]].to_numpy(float)
        moment = e.T @ e / len(e)
        out[str(name)] = {
            "rms_mm": float(np.sqrt(np.trace(moment))),
            "bias_mm": e.mean(axis=0).tolist(),
            "moment_mm2": moment.tolist(),
            "n": len(e),
            "flagged": int(np.sum(low)),
        }
    info = {"phantoms": n, "min_confidence": min_confidence, **about}
    return {**info, "landmarks": out}


def mean_position_errors(
    train: Sequence[Phantom], test: Sequence[Phantom], names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Radial errors (mm) on ``test`` of predicting each landmark at its mean LPS position in ``train``."""
    names = list(names or train[0].landmarks.names)

    def pos(ph: Phantom) -> np.ndarray:
        return np.asarray(ph.landmarks.positions)[[ph.landmarks.names.index(n) for n in names]]

    mean = np.mean([pos(ph) for ph in train], axis=0)
    rows = [
        {"phantom": i, "landmark": n, "error_mm": float(e)}
        for i, ph in enumerate(test)
        for n, e in zip(names, np.linalg.norm(pos(ph) - mean, axis=1))
    ]
    return pd.DataFrame(rows)
