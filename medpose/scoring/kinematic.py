"""Range of motion, angular velocity, movement time, tempo and repetition count.

Joint angles are in degrees (``mp.fit(seq).angles``), sampling rates in Hz, times in seconds.
Each metric takes one repetition (shape ``(T,)``), a batch ``(R, T)`` padded with NaN or a
list of repetitions (:func:`~medpose.scoring.split_repetitions`) and returns a
:class:`~medpose.scoring.MetricResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..temporal import butterworth, savgol, segment_repetitions
from .batch import as_repetitions, check_rate, usable
from .result import MetricResult, build

__all__ = [
    "rom",
    "angular_velocity",
    "peak_angular_velocity",
    "mean_angular_velocity",
    "movement_time",
    "tempo",
    "repetition_count",
]

#: Smallest number of finite samples for a range of motion.
_MIN_ROM_SAMPLES = 3


def rom(
    angle_deg: np.ndarray | Sequence[np.ndarray],
    percentiles: tuple[float, float] = (2.0, 98.0),
    max_missing: float = 0.5,
) -> MetricResult:
    """Range of motion per repetition, robust to outlier frames: P98 - P2 of the angle.

    The range is the difference of two percentiles of the repetition's finite samples
    (:func:`numpy.nanpercentile`, linear interpolation), by default the 2nd and 98th: up to
    2 % of frames at either end (tracking spikes, a swapped frame) cannot move it, which a
    max - min would report as range.  The price is a small known bias: for a sine of
    amplitude ``A`` sampled evenly over whole cycles the result is ``2 A cos(0.02 pi)`` =
    ``0.998 * 2A``.  Set ``percentiles=(0, 100)`` for the plain max - min.

    Parameters
    ----------
    angle_deg : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        Joint angle per frame, degrees; NaN = missing.
    percentiles : (float, float)
        Lower and upper percentile, 0 <= low < high <= 100.
    max_missing : float
        Largest fraction of missing samples between the repetition's first and last finite
        sample (NaN padding of a batch does not count) for which the range is still reported,
        in [0, 1).

    Returns
    -------
    MetricResult
        ``value``: range, degrees; ``details``: ``low_deg``, ``high_deg`` (the two
        percentiles).  NaN with a reason when fewer than 3 samples are finite or more than
        ``max_missing`` of them are missing.

    Raises
    ------
    InputError
        For bad percentiles, ``max_missing`` or shape.
    """
    func = "rom"
    low, high = (float(p) for p in percentiles)
    if not (0 <= low < high <= 100):
        raise InputError(
            f"{func}: percentiles must satisfy 0 <= low < high <= 100, found {percentiles!r}"
        )
    if not (np.isfinite(max_missing) and 0 <= max_missing < 1):
        raise InputError(f"{func}: max_missing must lie in [0, 1), found {max_missing!r}")
    reps, single = as_repetitions(angle_deg, func, "angle_deg")
    values, reasons, lows, highs = [], [], [], []
    for rep in reps:
        x, why = usable(rep, _MIN_ROM_SAMPLES, gaps_allowed=True)
        lo = hi = np.nan
        if not why:
            missing = float(np.mean(~np.isfinite(x)))  # inside the repetition, not padding
            if missing > max_missing:
                why = f"{missing:.0%} of the samples are missing; at most {max_missing:.0%} allowed"
            else:
                lo, hi = (float(v) for v in np.nanpercentile(x, [low, high]))
        values.append(hi - lo)
        reasons.append(why)
        lows.append(lo)
        highs.append(hi)
    return build(
        func,
        values,
        reasons,
        "deg",
        single,
        params={"percentiles": (low, high), "max_missing": float(max_missing)},
        details={"low_deg": lows, "high_deg": highs},
    )


def angular_velocity(
    angle_deg: np.ndarray,
    fs: float,
    smoothing: str = "savgol",
    window_s: float = 0.1,
    cutoff_hz: float = 6.0,
) -> np.ndarray:
    """Angular velocity of a joint angle, deg/s, with a stated smoothing.

    * ``smoothing="savgol"`` (default): the first derivative of a cubic Savitzky-Golay fit in
      a window of ``window_s`` seconds (:func:`medpose.temporal.savgol`; Savitzky & Golay
      1964, *Anal Chem* 36:1627).  Its gain at ``f`` Hz is that of
      ``scipy.signal.savgol_coeffs(n, 3, deriv=1)``: 0.99 of the true derivative at 2 Hz for
      the default 0.1 s window.
    * ``"butterworth"``: zero-lag 4th-order Butterworth low-pass at ``cutoff_hz``
      (:func:`medpose.temporal.butterworth`; 6 Hz, Winter 2009 section 3.4) then central
      differences (:func:`numpy.gradient`).

    Time is axis 0; NaN stay NaN (each finite run is processed separately; Savitzky-Golay
    runs shorter than the window give NaN).

    Parameters
    ----------
    angle_deg : array_like, shape (T, ...)
        Joint angle(s), degrees.
    fs : float
        Sampling rate, Hz.
    smoothing : {"savgol", "butterworth"}
    window_s : float
        Savitzky-Golay window, seconds.
    cutoff_hz : float
        Butterworth cut-off, Hz (below ``fs / 2``).

    Returns
    -------
    ndarray, same shape as ``angle_deg``
        Angular velocity, deg/s.

    Raises
    ------
    InputError
        For a bad ``fs``, ``smoothing``, window or cut-off.
    """
    func = "angular_velocity"
    fs = check_rate(fs, func)
    x = np.asarray(angle_deg, dtype=float)
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError(f"{func}: angle_deg must have time on axis 0, found shape {x.shape}")
    if smoothing == "savgol":
        return savgol(x, fs, window_s, polyorder=3, deriv=1)
    if smoothing == "butterworth":
        if x.shape[0] < 2:
            return np.full(x.shape, np.nan)
        # central differences: a sample next to a gap has no neighbour and becomes NaN
        return np.gradient(butterworth(x, fs, cutoff_hz, order=4), 1.0 / fs, axis=0)
    raise InputError(f"{func}: smoothing must be 'savgol' or 'butterworth', found {smoothing!r}")


def _velocity_metric(
    func: str,
    angle_deg: np.ndarray | Sequence[np.ndarray],
    fs: float,
    reduce: str,
    smoothing: str,
    window_s: float,
    cutoff_hz: float,
) -> MetricResult:
    fs = check_rate(fs, func)
    reps, single = as_repetitions(angle_deg, func, "angle_deg")
    min_samples = max(4, round(window_s * fs) + 1) if smoothing == "savgol" else 4
    values, reasons = [], []
    for rep in reps:
        x, why = usable(rep, min_samples, gaps_allowed=True)
        value = np.nan
        if not why:
            w = np.abs(angular_velocity(x, fs, smoothing, window_s, cutoff_hz))
            if not np.any(np.isfinite(w)):
                why = "no finite run is long enough for the smoothing window"
            else:
                value = float(np.nanmax(w) if reduce == "max" else np.nanmean(w))
        values.append(value)
        reasons.append(why)
    params: dict[str, Any] = {"smoothing": smoothing, "fs_hz": fs}
    params.update({"window_s": window_s} if smoothing == "savgol" else {"cutoff_hz": cutoff_hz})
    return build(func, values, reasons, "deg/s", single, params=params)


def peak_angular_velocity(
    angle_deg: np.ndarray | Sequence[np.ndarray],
    fs: float,
    smoothing: str = "savgol",
    window_s: float = 0.1,
    cutoff_hz: float = 6.0,
) -> MetricResult:
    """Peak absolute angular velocity per repetition, deg/s.

    The largest ``|d angle / dt|`` over the repetition, the derivative taken as in
    :func:`angular_velocity` (default: cubic Savitzky-Golay, 0.1 s window).  For
    ``A sin(2 pi f t)`` it is ``2 pi f A`` times the smoothing's gain at ``f``.

    Parameters
    ----------
    angle_deg : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        Joint angle, degrees; NaN = missing.
    fs : float
        Sampling rate, Hz.
    smoothing, window_s, cutoff_hz
        As in :func:`angular_velocity`.

    Returns
    -------
    MetricResult
        ``value``: deg/s; NaN with a reason for a repetition shorter than the window or all
        missing.
    """
    return _velocity_metric(
        "peak_angular_velocity", angle_deg, fs, "max", smoothing, window_s, cutoff_hz
    )


def mean_angular_velocity(
    angle_deg: np.ndarray | Sequence[np.ndarray],
    fs: float,
    smoothing: str = "savgol",
    window_s: float = 0.1,
    cutoff_hz: float = 6.0,
) -> MetricResult:
    """Mean absolute angular velocity per repetition, deg/s.

    The time average of ``|d angle / dt|`` over the repetition's finite samples (derivative
    as in :func:`angular_velocity`): the total angle travelled divided by the time.  For a
    sine over whole cycles it is ``4 f A`` (``2/pi`` of the peak) times the smoothing's gain.

    Parameters and returns are those of :func:`peak_angular_velocity`.
    """
    return _velocity_metric(
        "mean_angular_velocity", angle_deg, fs, "mean", smoothing, window_s, cutoff_hz
    )


def movement_time(
    signal: np.ndarray | Sequence[np.ndarray],
    fs: float,
    threshold: float | None = None,
) -> MetricResult:
    """Movement time per repetition, seconds.

    * ``threshold=None``: the repetition's duration, first to last finite sample,
      ``(N - 1) / fs`` (the convention of :func:`medpose.temporal.segment_repetitions`).
    * ``threshold`` in (0, 1): ``signal`` is a speed; the time from the first to the last
      sample where it is at least ``threshold`` times its peak (onset and offset at a
      fraction of peak speed, e.g. 0.05 or 0.1; Rohrer et al. 2002, *J Neurosci* 22:8297).

    Parameters
    ----------
    signal : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        The repetition's samples (any signal), or its speed when ``threshold`` is given.
    fs : float
        Sampling rate, Hz.
    threshold : float or None
        Onset/offset fraction of the peak speed.

    Returns
    -------
    MetricResult
        ``value``: seconds; NaN with a reason for fewer than 2 finite samples or a speed
        that is not positive.
    """
    func = "movement_time"
    fs = check_rate(fs, func)
    if threshold is not None and not (np.isfinite(threshold) and 0 < threshold < 1):
        raise InputError(f"{func}: threshold must be None or lie in (0, 1), found {threshold!r}")
    reps, single = as_repetitions(signal, func, "signal")
    values, reasons = [], []
    for rep in reps:
        x, why = usable(rep, 2, gaps_allowed=True)
        value = np.nan
        if not why:
            if threshold is None:
                value = (x.size - 1) / fs
            else:
                top = float(np.nanmax(x))
                if not top > 0:
                    why = "the speed is not positive anywhere"
                else:
                    above = np.flatnonzero(x >= threshold * top)
                    value = (above[-1] - above[0]) / fs
        values.append(value)
        reasons.append(why)
    return build(func, values, reasons, "s", single, params={"threshold": threshold, "fs_hz": fs})


def tempo(repetitions: pd.DataFrame | np.ndarray | Sequence[float]) -> MetricResult:
    """Tempo of a set, repetitions per minute: ``60 (R - 1) / (t_start[R-1] - t_start[0])``.

    The mean onset-to-onset interval of the repetitions, inverted: rest between repetitions
    counts (it is part of the pace), the time after the last onset does not.

    Parameters
    ----------
    repetitions : pandas.DataFrame or array_like
        The table of :func:`medpose.temporal.segment_repetitions` (its ``start_s``
        column), or the onset times in seconds, increasing.

    Returns
    -------
    MetricResult
        ``value``: repetitions per minute (unit ``"1/min"``), shape (); NaN with a reason
        for fewer than 2 repetitions.

    Raises
    ------
    InputError
        For a table without ``start_s``, or onsets that are not finite and increasing.
    """
    func = "tempo"
    if isinstance(repetitions, pd.DataFrame):
        if "start_s" not in repetitions.columns:
            raise InputError(
                f"{func}: repetitions has no 'start_s' column; expected the table of "
                "medpose.temporal.segment_repetitions or onset times in seconds"
            )
        starts = np.asarray(repetitions["start_s"], dtype=float)
    else:
        starts = np.asarray(repetitions, dtype=float)
    if starts.ndim != 1:
        raise InputError(f"{func}: onset times must have shape (R,), found {starts.shape}")
    if not np.all(np.isfinite(starts)) or np.any(np.diff(starts) <= 0):
        raise InputError(f"{func}: onset times must be finite and increasing, found {starts}")
    if starts.size < 2:
        value, why = np.nan, f"{starts.size} repetition(s); tempo needs at least 2"
    else:
        value, why = 60.0 * (starts.size - 1) / (starts[-1] - starts[0]), ""
    return build(func, [value], [why], "1/min", True, params={"n_repetitions": int(starts.size)})


def repetition_count(
    signal: np.ndarray, fs: float, min_range: float, **segment_options: Any
) -> MetricResult:
    """Number of repetitions in a trial, by :func:`medpose.temporal.segment_repetitions`.

    Parameters
    ----------
    signal : array_like, shape (T,) or (T, D)
        Joint angle (degrees) or trajectory (mm) of the whole trial.
    fs : float
        Sampling rate, Hz.
    min_range : float
        Smallest excursion that counts as a repetition, in the signal's unit.
    **segment_options
        Passed to :func:`~medpose.temporal.segment_repetitions` (``min_duration_s``,
        ``direction``, ``smooth_hz``...).

    Returns
    -------
    MetricResult
        ``value``: the count, shape (); ``details``: none; ``params`` holds the options.  NaN
        with a reason when fewer than 3 samples are finite.
    """
    func = "repetition_count"
    fs = check_rate(fs, func)
    x = np.asarray(signal, dtype=float)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise InputError(f"{func}: signal must have shape (T,) or (T, D), found {x.shape}")
    n_finite = int(np.count_nonzero(np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)))
    if n_finite < 3:
        value, why = np.nan, f"{n_finite} finite samples; at least 3 needed"
    else:
        table = segment_repetitions(x, fs, min_range, **segment_options)
        value, why = float(len(table)), ""
    return build(
        func,
        [value],
        [why],
        "1",
        True,
        params={"min_range": float(min_range), **segment_options},
    )
