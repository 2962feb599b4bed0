"""Cut a movement into repetitions and time-normalise them.

:func:`segment_repetitions` finds the repetitions of an exercise in a joint angle (degrees)
or a keypoint trajectory (mm): each repetition rises from rest to a peak and returns, with
a minimum range and duration, found by :func:`scipy.signal.find_peaks` with a prominence
threshold on a low-passed copy of the signal.  :func:`time_normalise` resamples a cycle onto
0-100 % (the convention of gait and exercise analysis, e.g. Winter 2009, ch. 1), and
:func:`cut_repetitions` stacks all repetitions of a sequence so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from ..errors import InputError
from .filters import butterworth

__all__ = [
    "REPETITION_COLUMNS",
    "cut_repetitions",
    "principal_component",
    "segment_repetitions",
    "time_normalise",
]

#: the columns of the table :func:`segment_repetitions` returns
REPETITION_COLUMNS = [
    "repetition",
    "start_frame",
    "peak_frame",
    "end_frame",
    "start_s",
    "peak_s",
    "end_s",
    "duration_s",
    "range",
    "peak_value",
]


def principal_component(trajectory: np.ndarray) -> np.ndarray:
    """Project a (T, D) trajectory on its first principal direction (centred), shape (T,).

    The sign is chosen so that the projection is positively correlated with the largest
    coordinate excursion; NaN rows stay NaN.
    """
    x = np.asarray(trajectory, dtype=float)
    ok = np.all(np.isfinite(x), axis=1)
    if ok.sum() < 2:
        raise InputError("principal_component: fewer than 2 finite frames in the trajectory")
    c = x[ok] - x[ok].mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    d = vt[0]
    d = d * np.sign(d[np.argmax(np.abs(d))])
    return (x - x[ok].mean(axis=0)) @ d


def segment_repetitions(
    signal: np.ndarray,
    fs: float,
    min_range: float,
    min_duration_s: float = 0.5,
    max_duration_s: float | None = None,
    direction: str = "auto",
    smooth_hz: float | None = 3.0,
    rest_fraction: float = 0.05,
) -> pd.DataFrame:
    """Find repetitions: excursions from rest to a peak and back.

    The signal is low-passed (:func:`~medpose.temporal.butterworth`, ``smooth_hz``) for
    detection only; peaks are local extrema with prominence at least ``min_range`` and at
    least ``min_duration_s`` apart (:func:`scipy.signal.find_peaks`); neighbouring peaks
    between which the signal does not drop by ``min_range`` (a hold) count as one.  A repetition spans from
    the lowest point between the previous peak and its peak to the lowest point between its
    peak and the next one; its ends are then moved in to where the signal leaves (and
    returns to) within ``rest_fraction`` of its range of that low point, so time spent
    resting between repetitions is not part of any cycle.  Repetitions whose range is below
    ``min_range`` or whose duration is outside ``[min_duration_s, max_duration_s]`` are
    dropped.

    Parameters
    ----------
    signal : array_like, shape (T,) or (T, D)
        Joint angle (degrees) or keypoint trajectory (mm); a (T, D) trajectory is projected
        on its first principal direction.  Interior NaN are interpolated for detection.
    fs : float
        Sampling rate, Hz.
    min_range : float
        Smallest excursion that counts as a repetition, in the signal's unit.
    min_duration_s, max_duration_s : float
        Allowed repetition duration, seconds.
    direction : {"auto", "up", "down"}
        ``"up"``: repetitions are excursions to a maximum (knee flexion in a squat);
        ``"down"``: to a minimum; ``"auto"``: up if the rest level (the median of the first and
        last 5 % of the trial) lies in the lower half of the range, else down.
    smooth_hz : float or None
        Low-pass cut-off for detection (clipped below Nyquist); None = no smoothing.
    rest_fraction : float
        Fraction of the range that counts as "still at rest" when trimming the ends.

    Returns
    -------
    pandas.DataFrame
        One row per repetition: ``repetition`` (0, 1, ...), ``start_frame``, ``peak_frame``,
        ``end_frame`` (inclusive), ``start_s``, ``peak_s``, ``end_s``, ``duration_s``,
        ``range`` and ``peak_value`` (signal units, on the unsmoothed signal).

    Raises
    ------
    InputError
        For an all-NaN signal, a bad shape, or invalid thresholds.
    """
    x = np.asarray(signal, dtype=float)
    if x.ndim == 2:
        x = principal_component(x) if x.shape[1] > 1 else x[:, 0]
    if x.ndim != 1:
        raise InputError(
            f"segment_repetitions: signal must have shape (T,) or (T, D), found {np.shape(signal)}"
        )
    if not (np.isfinite(fs) and fs > 0):
        raise InputError(f"segment_repetitions: fs must be a positive number of Hz, found {fs!r}")
    if not (np.isfinite(min_range) and min_range > 0):
        raise InputError(f"segment_repetitions: min_range must be positive, found {min_range!r}")
    if not (np.isfinite(min_duration_s) and min_duration_s >= 0):
        raise InputError(
            f"segment_repetitions: min_duration_s must be >= 0 s, found {min_duration_s!r}"
        )
    if direction not in ("auto", "up", "down"):
        raise InputError(
            f"segment_repetitions: direction must be 'auto', 'up' or 'down', found {direction!r}"
        )
    ok = np.isfinite(x)
    if ok.sum() < 3:
        raise InputError(
            f"segment_repetitions: the signal has {int(ok.sum())} finite samples of {x.size}; "
            "expected at least 3"
        )
    t = np.arange(x.size)
    xf = np.interp(t, t[ok], x[ok])
    y = xf
    if smooth_hz is not None and x.size > 12:
        y = butterworth(xf, fs, min(float(smooth_hz), 0.45 * fs), order=2)
    if direction == "auto":  # a trial starts and ends at rest: the rest level is at its edges
        lo, hi = np.min(y), np.max(y)
        n_edge = max(1, y.size // 20)
        rest = np.median(np.concatenate([y[:n_edge], y[-n_edge:]]))
        direction = "up" if rest - lo <= hi - rest else "down"
    s = y if direction == "up" else -y
    raw = xf if direction == "up" else -xf
    distance = max(1, round(min_duration_s * fs))
    peaks, _ = find_peaks(s, prominence=min_range, distance=distance)
    # two maxima on one plateau (a hold) both get full prominence: merge peaks that the signal
    # does not leave by min_range between them
    merged: list[int] = []
    for p in peaks:
        if merged and s[merged[-1] : p + 1].min() > min(s[merged[-1]], s[p]) - min_range:
            if s[p] > s[merged[-1]]:
                merged[-1] = int(p)
            continue
        merged.append(int(p))
    peaks = np.asarray(merged, dtype=int)
    rows = []
    bounds = np.concatenate([[0], peaks, [x.size - 1]])
    for i, p in enumerate(peaks):
        a, b = bounds[i], bounds[i + 2]
        left = a + int(np.argmin(s[a : p + 1]))
        right = p + int(np.argmin(s[p : b + 1]))
        rise_l, rise_r = s[p] - s[left], s[p] - s[right]
        # trim rest: last sample before the peak still near the left low point, and the first after
        near_l = np.flatnonzero(s[left : p + 1] <= s[left] + rest_fraction * rise_l)
        near_r = np.flatnonzero(s[p : right + 1] <= s[right] + rest_fraction * rise_r)
        start = left + int(near_l[-1]) if near_l.size else left
        end = p + int(near_r[0]) if near_r.size else right
        peak = start + int(np.argmax(raw[start : end + 1]))
        rng = float(raw[peak] - min(raw[start], raw[end]))
        dur = (end - start) / fs
        if (
            rng < min_range
            or dur < min_duration_s
            or (max_duration_s is not None and dur > max_duration_s)
        ):
            continue
        rows.append((start, peak, end, rng, float(xf[peak])))
    df = pd.DataFrame(
        rows, columns=["start_frame", "peak_frame", "end_frame", "range", "peak_value"]
    )
    df.insert(0, "repetition", np.arange(len(df)))
    for c in ("start", "peak", "end"):
        df[f"{c}_s"] = df[f"{c}_frame"] / fs
    df["duration_s"] = (df["end_frame"] - df["start_frame"]) / fs
    df = df[REPETITION_COLUMNS].astype({"start_frame": int, "peak_frame": int, "end_frame": int})
    df.attrs.update({"rate_hz": float(fs), "direction": direction})
    return df


def time_normalise(segment: np.ndarray, n_points: int = 101) -> np.ndarray:
    """Resample one cycle onto ``n_points`` samples spanning 0-100 % of its duration.

    Linear interpolation along axis 0, all columns at once; an output sample that falls
    next to a NaN input sample is NaN.

    Parameters
    ----------
    segment : array_like, shape (T, ...)
        The cycle, first to last sample inclusive (T >= 2).
    n_points : int
        Samples in the output (101 gives one per percent).

    Returns
    -------
    ndarray, shape (n_points, ...)
    """
    a = np.asarray(segment, dtype=float)
    if a.ndim == 0 or a.shape[0] < 2:
        raise InputError(f"time_normalise: a cycle needs at least 2 samples, found shape {a.shape}")
    if int(n_points) != n_points or n_points < 2:
        raise InputError(f"time_normalise: n_points must be an integer >= 2, found {n_points!r}")
    flat = a.reshape(a.shape[0], -1)
    # batched linear interpolation: index of the left sample and the fraction
    pos = np.linspace(0.0, a.shape[0] - 1, int(n_points))
    i0 = np.minimum(np.floor(pos).astype(int), a.shape[0] - 2)
    f = (pos - i0)[:, None]
    mixed = flat[i0] * (1 - f) + flat[i0 + 1] * f
    out = np.where(f == 0, flat[i0], np.where(f == 1, flat[i0 + 1], mixed))
    return out.reshape((int(n_points),) + a.shape[1:])


def cut_repetitions(x: np.ndarray, repetitions: pd.DataFrame, n_points: int = 101) -> np.ndarray:
    """Cut each repetition out of ``x`` and time-normalise it: shape (R, n_points, ...).

    ``repetitions`` is the table of :func:`segment_repetitions` (``start_frame`` and
    ``end_frame`` inclusive).
    """
    a = np.asarray(x, dtype=float)
    for col in ("start_frame", "end_frame"):
        if col not in repetitions.columns:
            raise InputError(f"cut_repetitions: the repetition table has no {col!r} column")
    if len(repetitions) == 0:
        return np.empty((0, int(n_points)) + a.shape[1:])
    return np.stack(
        [
            time_normalise(a[s : e + 1], n_points)
            for s, e in zip(repetitions["start_frame"], repetitions["end_frame"])
        ]
    )
