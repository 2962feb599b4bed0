"""Training data and training loop of the keypoint refiner.

Training pairs come from synthetic patients: a random body height, exercise, sampling rate,
impairment and heading; true joint angles from :func:`medpose.synthetic.make_exercise`,
true keypoints from forward kinematics (placed in a Z-up world as
:func:`medpose.synthetic.make_session` does), and what a markerless system would report from
:func:`medpose.synthetic.markerless` (bias, jitter, dropouts, gaps, left/right swaps and
outliers), with its noise magnitudes drawn around the defaults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from ..errors import InputError
from ..kinematics import Skeleton, forward_kinematics
from ..layouts import get_layout
from ..synthetic.exercises import EXERCISES, make_exercise
from ..synthetic.observation import markerless
from .refiner import KeypointRefiner, RefinerConfig, clean_input, normalise_windows

__all__ = ["RefinerData", "TrainingLog", "make_refiner_data", "train_refiner", "DEFAULT_KEYPOINTS"]

#: The shipped refiner's keypoints: MediaPipe Pose's 33, as medpose names them.
DEFAULT_KEYPOINTS: tuple[str, ...] = tuple(get_layout("mediapipe33").medpose)


@dataclass(frozen=True)
class RefinerData:
    """Synthetic sequences, lists of (T_i, K, 3) mm arrays: ``noisy`` (the markerless
    observation), ``inputs`` (it after :func:`~medpose.learning.refiner.clean_input`: what the
    refiner sees) and ``truth``."""

    noisy: list[np.ndarray]
    inputs: list[np.ndarray]
    truth: list[np.ndarray]
    rates: list[float]
    exercises: list[str]
    keypoints: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.noisy)

    def __repr__(self) -> str:
        frames = sum(len(a) for a in self.noisy)
        return (
            f"RefinerData({len(self)} sequences, {frames} frames, {len(self.keypoints)} keypoints)"
        )


def make_refiner_data(
    n_sequences: int,
    *,
    keypoints: Sequence[str] = DEFAULT_KEYPOINTS,
    seed: int = 0,
    rates: Sequence[float] = (30.0, 60.0),
    min_frames: int = 64,
    exercises: Sequence[str] | None = None,
    noise_scale: tuple[float, float] = (0.5, 1.5),
    markerless_options: Mapping[str, Any] | None = None,
) -> RefinerData:
    """Synthetic markerless sequences with their truth (everything drawn from ``seed``).

    Each sequence: body height uniform in 1500-1950 mm; an exercise of ``exercises`` (default
    all of :data:`medpose.synthetic.EXERCISES`) with 2-4 repetitions, half of them with a
    one-sided impairment up to 0.5; a rate from ``rates``; a heading uniform in 0-360 deg and
    a floor position within 1 m of the origin; :func:`~medpose.synthetic.markerless` with its
    ``sigma_mm`` and ``bias_mm`` multiplied by a factor uniform in ``noise_scale``;
    ``markerless_options`` override any of its keyword arguments (e.g. ``{"bias_mm": 0}``).
    """
    names = tuple(keypoints)
    choices = tuple(exercises) if exercises is not None else tuple(EXERCISES)
    unknown = [e for e in choices if e not in EXERCISES]
    if unknown or n_sequences < 1:
        raise InputError(
            f"make_refiner_data: need n_sequences >= 1 and known exercises; unknown {unknown}"
        )
    rng = np.random.default_rng(seed)
    skeletons: dict[int, Skeleton] = {}
    out = RefinerData([], [], [], [], [], names)
    for _ in range(n_sequences):
        height = int(rng.integers(150, 196)) * 10
        sk = skeletons.get(height)
        if sk is None:
            sk = skeletons[height] = Skeleton.default(height_mm=float(height))
        missing = [n for n in names if n not in sk.keypoint_names]
        if missing:
            raise InputError(f"make_refiner_data: keypoints {missing} are not on the skeleton")
        ex = choices[int(rng.integers(len(choices)))]
        rate = float(rates[int(rng.integers(len(rates)))])
        side = ("left", "right")[int(rng.integers(2))] if rng.random() < 0.5 else None
        reps = int(rng.integers(2, 5)) + (2 if ex == "gait" else 0)
        truth_angles = make_exercise(
            ex,
            skeleton=sk,
            rate=rate,
            repetitions=reps,
            impaired_side=side,
            impairment=float(rng.uniform(0.0, 0.5)) if side else 0.0,
            seed=int(rng.integers(2**31 - 1)),
        )
        kp = np.asarray(forward_kinematics(sk, np.array(truth_angles.angles.values)))
        kp = kp[:, [sk.keypoint_names.index(n) for n in names]]
        while kp.shape[0] < min_frames:  # a short trial: hold the last pose
            kp = np.concatenate([kp, kp[-1:]], axis=0)
        rot = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True) * Rotation.from_euler(
            "x", 90, degrees=True
        )
        offset = np.array([*rng.uniform(-1000, 1000, 2), 0.0])
        kp = rot.apply(kp.reshape(-1, 3)).reshape(kp.shape) + offset
        kp[..., 2] -= kp[..., 2].min() - 50.0  # lowest keypoint 50 mm above the floor
        scale = rng.uniform(*noise_scale)
        options: dict[str, Any] = {"sigma_mm": 8.0 * scale, "bias_mm": 20.0 * scale}
        options.update(markerless_options or {})
        obs = markerless(kp, names=names, rate=rate, seed=int(rng.integers(2**31 - 1)), **options)
        out.noisy.append(obs.positions.astype(np.float32))
        out.inputs.append(clean_input(obs.positions, names, rate).astype(np.float32))
        out.truth.append(kp.astype(np.float32))
        out.rates.append(rate)
        out.exercises.append(ex)
    return out


@dataclass
class TrainingLog:
    """What :func:`train_refiner` did: per-step losses, time and the settings used."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        last = np.mean(self.losses[-50:]) if self.losses else float("nan")
        return (
            f"TrainingLog({len(self.losses)} steps in {self.seconds:.1f} s, final loss {last:.4g})"
        )

    def plot(self, ax: Any = None) -> Any:
        """Loss per step (log scale) on a matplotlib axis."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        ax.semilogy(self.losses)
        ax.set_xlabel("step")
        ax.set_ylabel("smooth L1 (normalised units)")
        return ax


def _sample_windows(
    data: RefinerData, window: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = rng.integers(len(data), size=batch)
    noisy, truth, times = [], [], []
    for i in idx:
        n = data.noisy[i].shape[0]
        s = int(rng.integers(0, n - window + 1))
        noisy.append(data.inputs[i][s : s + window])
        truth.append(data.truth[i][s : s + window])
        times.append(np.arange(window, dtype=np.float32) / data.rates[i])
    return np.stack(noisy), np.stack(truth), np.stack(times)


def train_refiner(
    data: RefinerData,
    config: RefinerConfig | None = None,
    *,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[KeypointRefiner, TrainingLog]:
    """Train a :class:`KeypointRefiner` on ``data`` (see :func:`make_refiner_data`).

    Each step draws ``batch_size`` random windows of ``config.window`` frames, normalises each
    from its cleaned noisy observation (``data.inputs``) (:func:`~medpose.learning.refiner.normalise_windows`) and
    minimises the smooth L1 distance (beta 0.01, normalised units) between the refined and
    the true positions over every sample, observed or missing.  AdamW with weight decay 0.01,
    linear warm-up over 5 % of the steps then cosine decay, gradients clipped at norm 1.
    Deterministic for a given ``seed`` on the CPU.
    """
    config = config or RefinerConfig(keypoints=data.keypoints)
    if tuple(config.keypoints) != tuple(data.keypoints):
        raise InputError("train_refiner: config.keypoints differ from the data's keypoints")
    short = min(a.shape[0] for a in data.noisy)
    if short < config.window:
        raise InputError(
            f"train_refiner: a sequence has {short} frames, fewer than the window ({config.window})"
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = KeypointRefiner(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    log = TrainingLog(
        settings={
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "sequences": len(data),
            "frames": int(sum(a.shape[0] for a in data.noisy)),
        }
    )
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc="refiner", disable=not progress, mininterval=1.0)
    for _ in bar:
        noisy_np, truth_np, times_np = _sample_windows(data, config.window, batch_size, rng)
        noisy = torch.from_numpy(noisy_np).to(device)
        truth = torch.from_numpy(truth_np).to(device)
        x, observed, centre, scale = normalise_windows(noisy)
        target = (truth - centre) / scale
        pred = model(x, observed, torch.from_numpy(times_np).to(device))
        loss = torch.nn.functional.smooth_l1_loss(pred, target, beta=0.01)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        log.losses.append(float(loss.detach()))
        if len(log.losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(log.losses[-50:]):.4f}")
    log.seconds = time.perf_counter() - t0
    model.eval()
    return model, log
