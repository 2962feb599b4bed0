"""Uncertainty over repetitions and measurement error: bootstrap CI, SEM and MDC95."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from scipy.special import ndtri

from ..errors import InputError
from .result import MetricResult

__all__ = ["bootstrap_ci", "mdc95", "sem_from_ci", "sem_from_icc"]


def _accepts_axis(stat: Callable[..., object]) -> bool:
    try:
        return "axis" in inspect.signature(stat).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def bootstrap_ci(
    values: np.ndarray,
    stat: Callable[..., object] = np.mean,
    n: int = 2000,
    seed: int | np.random.Generator | None = None,
    level: float = 0.95,
    unit: str | None = None,
) -> MetricResult:
    """Percentile bootstrap confidence interval of a statistic over repetitions.

    ``n`` resamples of the finite values, drawn with replacement with a
    :class:`numpy.random.Generator`; the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the statistic over the resamples (Efron & Tibshirani
    1993, *An Introduction to the Bootstrap*, ch. 13).  For the mean of ``m`` values its
    coverage is close to that of ``mean +- 1.96 s sqrt((m - 1) / m) / sqrt(m)``, slightly
    below the nominal level for small ``m`` (0.94 for ``m = 50``).

    Parameters
    ----------
    values : array_like, shape (R,)
        One value per repetition; NaN (a metric that could not be computed) are left out.
    stat : callable
        The statistic; called as ``stat(resamples, axis=1)`` on an ``(n, m)`` array when it
        takes ``axis`` (NumPy reductions do), else once per resample.
    n : int
        Number of resamples (>= 100).
    seed : int, Generator or None
        Randomness: the same seed gives the same interval.
    level : float
        Confidence level in (0, 1).
    unit : str, optional
        The values' unit (``"deg/s"``); by default that of ``values`` when it is a
        :class:`MetricResult`, else none (``""``).

    Returns
    -------
    MetricResult
        ``value``: ``[low, high]``, shape (2,), in the values' unit (:attr:`~MetricResult.unit`
        as above);
        ``params``: ``estimate`` (``stat`` of the values), ``level``, ``n_resamples``,
        ``n_values``.  NaN with a reason for fewer than 2 finite values.

    Raises
    ------
    InputError
        For ``values`` that are not 1-D, ``n`` < 100 or ``level`` outside (0, 1).
    """
    func = "bootstrap_ci"
    if unit is None:
        unit = str(values.unit) if isinstance(values, MetricResult) else ""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise InputError(f"{func}: values must have shape (R,), found shape {x.shape}")
    if isinstance(n, bool) or int(n) != n or n < 100:
        raise InputError(f"{func}: n must be an integer >= 100 resamples, found {n!r}")
    if not (np.isfinite(level) and 0 < level < 1):
        raise InputError(f"{func}: level must lie in (0, 1), found {level!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    finite = x[np.isfinite(x)]
    params = {"level": float(level), "n_resamples": int(n), "n_values": int(finite.size)}
    if finite.size < 2:
        why = f"{finite.size} finite value(s) of {x.size}; at least 2 needed"
        return MetricResult(
            func, np.array([np.nan, np.nan]), unit, (why, why), {**params, "estimate": np.nan}
        )
    samples = finite[rng.integers(0, finite.size, size=(int(n), finite.size))]
    if _accepts_axis(stat):
        stats = np.asarray(stat(samples, axis=1), dtype=float)
    else:
        stats = np.array([float(stat(row)) for row in samples])  # type: ignore[arg-type]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    params["estimate"] = float(stat(finite))  # type: ignore[arg-type]
    return MetricResult(func, np.array([low, high]), unit, ("", ""), params)


def sem_from_icc(sd: float | np.ndarray, icc: float | np.ndarray) -> MetricResult:
    """Standard error of measurement from the between-subject SD and an ICC.

    ``SEM = SD * sqrt(1 - ICC)`` (Weir 2005, *J Strength Cond Res* 19:231, in the
    unit of ``sd``.

    Parameters
    ----------
    sd : float or array_like
        Standard deviation of the scores over subjects (>= 0).
    icc : float or array_like
        Intraclass correlation coefficient in [0, 1].

    Returns
    -------
    MetricResult
        ``value``: SEM, the broadcast shape, unit of ``sd`` (``"unit"``).

    Raises
    ------
    InputError
        For a negative or non-finite ``sd`` or an ``icc`` outside [0, 1].
    """
    s, r = np.asarray(sd, dtype=float), np.asarray(icc, dtype=float)
    if not np.all(np.isfinite(s) & (s >= 0)):
        raise InputError(f"sem_from_icc: sd must be finite and >= 0, found {sd!r}")
    if not np.all(np.isfinite(r) & (r >= 0) & (r <= 1)):
        raise InputError(f"sem_from_icc: icc must lie in [0, 1], found {icc!r}")
    value = s * np.sqrt(1.0 - r)
    return MetricResult("sem", value, "unit", ("",) * value.size, {"formula": "sd*sqrt(1-icc)"})


def mdc95(sem: float | np.ndarray) -> MetricResult:
    """Minimal detectable change at 95 % confidence: ``1.96 * sqrt(2) * SEM``.

    The smallest change between two measurements of one patient that exceeds measurement
    error with 95 % confidence (Weir 2005, *J Strength Cond Res* 19:231): the
    ``sqrt(2)`` accounts for the error of both measurements.

    Parameters
    ----------
    sem : float or array_like
        Standard error of measurement (>= 0), e.g. from :func:`sem_from_icc`.

    Returns
    -------
    MetricResult
        ``value``: MDC95 in the unit of ``sem`` (``"unit"``).

    Raises
    ------
    InputError
        For a negative or non-finite ``sem``.
    """
    s = np.asarray(sem, dtype=float)
    if not np.all(np.isfinite(s) & (s >= 0)):
        raise InputError(f"mdc95: sem must be finite and >= 0, found {sem!r}")
    value = 1.96 * np.sqrt(2.0) * s
    return MetricResult("mdc95", value, "unit", ("",) * value.size, {"z": 1.96})


def sem_from_ci(
    low: float | np.ndarray, high: float | np.ndarray, level: float = 0.95
) -> MetricResult:
    """Standard error of a value from its two-sided confidence interval.

    ``SE = (high - low) / (2 z)`` with ``z`` the normal quantile of ``(1 + level) / 2``
    (1.96 at 95 %, the value :func:`mdc95` uses), so that ``mdc95(sem_from_ci(lo, hi))`` is
    ``1.96 * sqrt(2) * (hi - lo) / 3.92``.  Used as the SEM of one measurement when no
    published test-retest error exists (the interval of a bootstrap over repetitions or of
    the keypoint noise propagated through the fit: the measurement's own noise; Weir 2005,
    *J Strength Cond Res* 19:231, for SEM and MDC).

    Parameters
    ----------
    low, high : float or array_like
        Interval bounds (broadcast together); NaN where there is none.
    level : float
        Confidence level of the interval in (0, 1).

    Returns
    -------
    MetricResult
        ``value``: the standard error, the broadcast shape, in the bounds' unit (``"unit"``);
        NaN with a reason where a bound is NaN.

    Raises
    ------
    InputError
        For ``level`` outside (0, 1) or a finite ``low`` above ``high``.
    """
    if not (np.isfinite(level) and 0 < level < 1):
        raise InputError(f"sem_from_ci: level must lie in (0, 1), found {level!r}")
    lo, hi = np.broadcast_arrays(np.asarray(low, dtype=float), np.asarray(high, dtype=float))
    if np.any(lo > hi):
        raise InputError("sem_from_ci: low must not exceed high")
    z = 1.96 if level == 0.95 else float(ndtri((1.0 + level) / 2.0))
    value = (hi - lo) / (2.0 * z)
    why = tuple("" if np.isfinite(v) else "no confidence interval" for v in value.ravel())
    return MetricResult("sem", value, "unit", why, {"level": float(level), "z": z})
