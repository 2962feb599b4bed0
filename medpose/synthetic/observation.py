"""Observation models: what a measurement system makes of true 3D keypoints.

Two models act on true keypoint trajectories ``(T, K, 3)`` in millimetres:

* :func:`markerless` - video-based pose estimation followed by triangulation:
  a per-keypoint bias constant over the trial, frame-wise jitter, random
  dropouts, occlusion gaps, left/right identity swaps over runs of frames and
  isolated outlier frames.  Everything injected is listed in
  :attr:`Observed.report`, so a test can check that a later stage detects it.
* :func:`marker_based` - optical marker tracking: isotropic sub-millimetre to
  millimetre jitter only.

Default magnitudes and their sources
------------------------------------
* Kanko et al. 2021 (J Biomech 127:110665, Theia3D vs. markers, treadmill gait):
  root-mean-square distance between corresponding joint centres below 25 mm for
  every joint except the hip (36 mm).
* Needham et al. 2021 (Sci Rep 11:20673, OpenPose/AlphaPose/DeepLabCut vs.
  markers): systematic differences at the hip and knee of about 30-50 mm;
  where systematic differences were lower (ankle) 1-15 mm.
* Uhlrich et al. 2023 (PLoS Comput Biol 19:e1011462, OpenCap) report joint-angle
  errors of a few degrees; they give no per-keypoint position noise that we use.

From these we take ``bias_mm=20`` (the typical size of the constant per-keypoint
offset; hips and knees get 1.5x, i.e. ~30 mm, after Needham et al.) and
``sigma_mm=8`` per axis of frame-wise jitter (assumption: with the bias the total
RMS distance is ~25 mm, the size Kanko et al. report).  Dropout, gap, swap and
outlier rates are our assumptions, chosen so that a few faults of each kind occur
in a trial of tens of seconds; they are not measured values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import KeypointSequence
from ..errors import InputError
from ..layouts import lr_pair_indices

#: index pairs of ``*_l`` / ``*_r`` keypoints (kept under this name for existing callers)
lr_pairs = lr_pair_indices

__all__ = ["Observed", "markerless", "marker_based", "lr_pairs"]


@dataclass(frozen=True)
class Observed:
    """Noisy keypoints and what was injected.

    Attributes
    ----------
    positions : ndarray, shape (T, K, 3)
        Observed positions in mm, NaN where missing.
    confidence : ndarray, shape (T, K)
        In [0, 1]; 0 where missing.
    report : dict
        JSON-able record of the injected faults (see :func:`markerless`).
    """

    positions: np.ndarray
    confidence: np.ndarray
    report: dict = field(default_factory=dict)

    def to_sequence(
        self, names: Sequence[str], rate: float, frame: str = "camera", start: float = 0.0
    ) -> KeypointSequence:
        """Wrap as a :class:`~medpose.data.KeypointSequence`."""
        return KeypointSequence(
            self.positions, tuple(names), rate, confidence=self.confidence, frame=frame, start=start
        )


def _unpack(kp: Any, names: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(kp, KeypointSequence):
        if kp.ndim != 3:
            raise InputError(f"observation: expected a 3D KeypointSequence, found {kp.ndim}D")
        return np.array(kp.positions, dtype=float), kp.names
    arr = np.array(kp, dtype=float)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(
            f"observation: keypoints must have shape (T, K, 3) in mm, found {arr.shape}"
        )
    if names is None:
        names = tuple(f"kp{i}" for i in range(arr.shape[1]))
    names = tuple(names)
    if len(names) != arr.shape[1]:
        raise InputError(f"observation: {len(names)} names for {arr.shape[1]} keypoints")
    return arr, names


def _check_rate(value: float, what: str, hi: float | None = None) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (hi is not None and v > hi):
        rng = f"[0, {hi}]" if hi is not None else ">= 0"
        raise InputError(f"observation: {what} must be a number in {rng}, found {value!r}")
    return v


def random_runs(
    rng: np.random.Generator, n_frames: int, rate_per_frame: float, mean_len: float
) -> list[tuple[int, int]]:
    """Non-overlapping runs ``[start, stop)`` of frames, a Poisson-distributed number of them.

    Their count has mean ``rate_per_frame * n_frames`` and each length is ``mean_len`` times a
    uniform factor in [0.5, 1.5]; a run overlapping an earlier one is dropped.
    """
    n = int(rng.poisson(rate_per_frame * n_frames))
    runs: list[tuple[int, int]] = []
    for _ in range(n):
        length = int(max(1, round(rng.uniform(0.5, 1.5) * mean_len)))
        start = int(rng.integers(0, max(1, n_frames - length)))
        stop = min(n_frames, start + length)
        if all(stop <= a or start >= b for a, b in runs):
            runs.append((start, stop))
    return sorted(runs)


def markerless(
    kp: Any,
    *,
    names: Sequence[str] | None = None,
    rate: float = 30.0,
    sigma_mm: float = 8.0,
    bias_mm: float = 20.0,
    dropout: float = 0.005,
    gap_rate: float = 0.02,
    gap_len: float = 15.0,
    swap_rate: float = 0.05,
    swap_len: float = 10.0,
    outlier_rate: float = 0.01,
    seed: int | np.random.Generator = 0,
    segment_rotations: Any = None,
) -> Observed:
    """Markerless (video pose estimation) observation of true 3D keypoints.

    Parameters
    ----------
    kp : array_like (T, K, 3) or KeypointSequence
        True positions in mm.
    names : sequence of str, optional
        Keypoint names (taken from ``kp`` if it is a KeypointSequence); left/right
        pairs are found by the ``_l`` / ``_r`` suffixes.
    rate : float
        Sampling rate in Hz (used to turn the per-second rates into per-frame ones;
        taken from ``kp`` if it is a KeypointSequence).
    sigma_mm : float
        Standard deviation of the frame-wise Gaussian jitter, per axis (mm).
    bias_mm : float
        Typical size of the per-keypoint constant offset (mm): each keypoint gets
        a random direction and a length drawn from ``|N(bias_mm, 0.3 bias_mm)|``;
        ``hip_*`` and ``knee_*`` get 1.5 times that (Needham et al. 2021).
    dropout : float
        Probability that a single keypoint in a single frame is missing.
    gap_rate : float
        Occlusion gaps per keypoint per second (Poisson).
    gap_len : float
        Mean gap length in frames (uniform in 0.5-1.5 times this).
    swap_rate : float
        Left/right identity-swap runs per second (Poisson).  A run swaps either all
        left/right pairs, the arms only or the legs only.
    swap_len : float
        Mean swap-run length in frames.
    outlier_rate : float
        Fraction of frames with one keypoint displaced by 100-300 mm.
    seed : int or numpy.random.Generator
    segment_rotations : array_like (T, K, 3, 3), optional
        Rotation of each keypoint's segment in every frame (segment to the frame of ``kp``).
        Given, each keypoint's constant offset is fixed in its segment and turns with it, as a
        detector's systematic error does (its "hip" sits where it sees the hip, relative to the
        pelvis and thigh); without, the offset is a constant vector in the frame of ``kp``.

    Returns
    -------
    Observed
        ``report`` holds ``bias_mm`` (per keypoint offset vectors, in the segment's frame with
        ``segment_rotations``, else in the frame of ``kp``; ``bias_frame`` says which), ``dropouts``
        (``[frame, keypoint]`` pairs), ``gaps`` (``{keypoint, start, stop}``),
        ``swaps`` (``{start, stop, pairs}``), ``outliers`` (``{frame, keypoint,
        offset_mm}``) with frame ranges as ``[start, stop)``.

    Raises
    ------
    InputError
        If the array is not (T, K, 3) or a rate is negative / a probability not in [0, 1].

    Notes
    -----
    Magnitudes: see the module docstring (Kanko et al. 2021; Needham et al. 2021);
    the fault rates are assumptions.
    """
    truth, names = _unpack(kp, names)
    if isinstance(kp, KeypointSequence):
        rate = kp.rate
    rate = _check_rate(rate, "rate")
    if rate <= 0:
        raise InputError(f"observation: rate must be > 0 Hz, found {rate!r}")
    sigma_mm, bias_mm = _check_rate(sigma_mm, "sigma_mm"), _check_rate(bias_mm, "bias_mm")
    dropout = _check_rate(dropout, "dropout", 1.0)
    outlier_rate = _check_rate(outlier_rate, "outlier_rate", 1.0)
    gap_rate, swap_rate = _check_rate(gap_rate, "gap_rate"), _check_rate(swap_rate, "swap_rate")
    gap_len, swap_len = _check_rate(gap_len, "gap_len"), _check_rate(swap_len, "swap_len")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t, k, _ = truth.shape

    # constant per-keypoint bias
    direction = rng.normal(size=(k, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    length = np.abs(rng.normal(bias_mm, 0.3 * bias_mm, size=k))
    length *= np.array([1.5 if n.startswith(("hip_", "knee_")) else 1.0 for n in names])
    bias = direction * length[:, None]
    if segment_rotations is None:
        moved = np.broadcast_to(bias, truth.shape)
    else:
        rot = np.asarray(segment_rotations, dtype=float)
        if rot.shape != (t, k, 3, 3):
            raise InputError(
                f"observation: segment_rotations must have shape ({t}, {k}, 3, 3) to match the "
                f"keypoints, found {rot.shape}"
            )
        moved = rot @ bias[..., None]
        moved = moved[..., 0]
    pos = truth + moved + rng.normal(0.0, sigma_mm, size=truth.shape)
    conf = rng.uniform(0.7, 1.0, size=(t, k))

    # left/right identity swaps over runs of frames
    pairs = lr_pairs(names)
    arm_words, leg_words = (
        (
            "shoulder",
            "elbow",
            "wrist",
            "hand",
            "thumb",
            "index",
            "pinky",
            "acromion",
            "styloid",
            "humerus",
        ),
        ("hip", "knee", "ankle", "heel", "toe", "malleolus", "femur", "trochanter"),
    )
    groups = {
        "all": pairs,
        "arms": [p for p in pairs if any(w in names[p[0]] for w in arm_words)],
        "legs": [p for p in pairs if any(w in names[p[0]] for w in leg_words)],
    }
    swaps = []
    for start, stop in random_runs(rng, t, swap_rate / rate, swap_len):
        group = ("all", "arms", "legs")[int(rng.integers(0, 3))]
        sel = groups[group] or pairs
        if not sel:
            continue
        li, ri = np.array(sel).T
        pos[start:stop, np.r_[li, ri]] = pos[start:stop, np.r_[ri, li]]
        conf[start:stop, np.r_[li, ri]] = conf[start:stop, np.r_[ri, li]]
        swaps.append(
            {
                "start": start,
                "stop": stop,
                "group": group,
                "pairs": [[names[a], names[b]] for a, b in sel],
            }
        )

    # outlier frames: one keypoint displaced 100-300 mm
    out_frames = np.flatnonzero(rng.random(t) < outlier_rate)
    out_kp = rng.integers(0, k, size=out_frames.size)
    off_dir = rng.normal(size=(out_frames.size, 3))
    off_dir /= np.linalg.norm(off_dir, axis=1, keepdims=True)
    offsets = off_dir * rng.uniform(100.0, 300.0, size=(out_frames.size, 1))
    pos[out_frames, out_kp] += offsets
    outliers = [
        {"frame": int(f), "keypoint": names[j], "offset_mm": [round(float(v), 6) for v in o]}
        for f, j, o in zip(out_frames, out_kp, offsets)
    ]

    # occlusion gaps and dropouts
    missing = rng.random((t, k)) < dropout
    dropouts = [[int(a), names[b]] for a, b in np.argwhere(missing)]
    gaps = []
    for j in range(k):
        for start, stop in random_runs(rng, t, gap_rate / rate, gap_len):
            missing[start:stop, j] = True
            gaps.append({"keypoint": names[j], "start": start, "stop": stop})
    pos[missing] = np.nan
    conf[missing] = 0.0

    report = {
        "model": "markerless",
        "seed": seed if isinstance(seed, int) else None,
        "sigma_mm": sigma_mm,
        "bias_mm": {n: [round(float(v), 6) for v in b] for n, b in zip(names, bias)},
        "bias_frame": "world" if segment_rotations is None else "segment",
        "dropout": dropout,
        "gap_rate_per_s": gap_rate,
        "gap_len_frames": gap_len,
        "swap_rate_per_s": swap_rate,
        "swap_len_frames": swap_len,
        "outlier_rate": outlier_rate,
        "dropouts": dropouts,
        "gaps": gaps,
        "swaps": swaps,
        "outliers": outliers,
    }
    return Observed(pos, conf, report)


def marker_based(
    kp: Any,
    sigma_mm: float = 1.0,
    *,
    names: Sequence[str] | None = None,
    seed: int | np.random.Generator = 0,
) -> Observed:
    """Optical marker-based observation: isotropic Gaussian jitter only.

    Parameters
    ----------
    kp : array_like (T, K, 3) or KeypointSequence
        True positions in mm.
    sigma_mm : float
        Per-axis standard deviation (mm).  Optical marker tracking is accurate to
        well below a millimetre in a calibrated volume; 1 mm also covers marker
        placement jitter (assumption).
    names : sequence of str, optional
    seed : int or numpy.random.Generator

    Returns
    -------
    Observed
        Confidence 1 everywhere the truth is finite.
    """
    truth, names = _unpack(kp, names)
    sigma_mm = _check_rate(sigma_mm, "sigma_mm")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pos = truth + rng.normal(0.0, sigma_mm, size=truth.shape)
    conf = np.all(np.isfinite(pos), axis=2).astype(float)
    return Observed(
        pos,
        conf,
        {
            "model": "marker_based",
            "sigma_mm": sigma_mm,
            "seed": seed if isinstance(seed, int) else None,
        },
    )
