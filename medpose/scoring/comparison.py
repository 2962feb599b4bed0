"""Comparisons: left/right symmetry, distance to a template, consistency across repetitions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..temporal import dtw_align, time_normalise
from .batch import as_repetitions, usable
from .result import MetricResult, build

__all__ = ["symmetry_index", "symmetry_index_ci", "dtw_distance", "consistency"]


def symmetry_index(left: np.ndarray | float, right: np.ndarray | float) -> MetricResult:
    """Symmetry index of a bilateral quantity, percent: ``(L - R) / (0.5 (L + R)) * 100``.

    The difference between the sides relative to their mean (Robinson, Herzog & Nigg 1987,
    *J Manipulative Physiol Ther* 10:172).  Sign convention: **positive when the left value
    is larger**; 0 is perfect symmetry; the index is antisymmetric (swapping the sides
    changes its sign) and lies in (-200, 200) for positive values.  Robinson et al. wrote it
    as right minus left: call ``symmetry_index(right, left)`` for their sign.  It is meant for
    positive magnitudes (ROM, peak velocity, step time).

    Parameters
    ----------
    left, right : float or array_like
        The two sides' values, same unit; broadcast against each other (e.g. one value per
        repetition).

    Returns
    -------
    MetricResult
        ``value``: SI in percent, the broadcast shape.  NaN with a reason where a side is
        missing, ``L + R = 0``, or the sides have opposite signs (no meaningful ratio).

    Raises
    ------
    InputError
        If the shapes do not broadcast.
    """
    func = "symmetry_index"
    lft, rgt = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
    try:
        lft, rgt = np.broadcast_arrays(lft, rgt)
    except ValueError:
        raise InputError(
            f"{func}: left shape {lft.shape} and right shape {rgt.shape} do not broadcast"
        ) from None
    total = lft + rgt
    missing = ~(np.isfinite(lft) & np.isfinite(rgt))
    opposite = ~missing & (lft * rgt < 0)
    zero = ~missing & ~opposite & (total == 0)
    bad = missing | opposite | zero
    with np.errstate(divide="ignore", invalid="ignore"):
        si = np.where(bad, np.nan, (lft - rgt) / (0.5 * np.where(bad, 1.0, total)) * 100.0)
    reasons = np.full(si.shape, "", dtype=object)
    reasons[missing] = "a side is missing"
    reasons[opposite] = "left and right have opposite signs; SI needs magnitudes"
    reasons[zero] = "left + right is 0"
    return MetricResult(func, si, "%", tuple(reasons.ravel()), {"convention": "(L - R) / mean"})


def symmetry_index_ci(
    left: np.ndarray | Sequence[float],
    right: np.ndarray | Sequence[float],
    stat: Callable[..., np.ndarray] = np.median,
    n: int = 2000,
    seed: int | None = 0,
    level: float = 0.95,
) -> MetricResult:
    """Percentile bootstrap confidence interval of the symmetry index of two sides' summaries.

    The sides are segmented separately, so their repetitions are two independent samples: each
    resample draws the left and the right repetitions with replacement on their own, takes
    ``stat`` of each (the summary the assessment reports, e.g. the median) and their
    :func:`symmetry_index`; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles over ``n`` resamples (Efron & Tibshirani 1993, ch. 13).

    Parameters
    ----------
    left, right : array_like, shape (R,)
        One value per repetition of each side (NaN left out).
    stat : callable
        Summary of one side, called as ``stat(samples, axis=1)``.
    n, seed, level
        Resamples (>= 100), randomness, confidence level in (0, 1).

    Returns
    -------
    MetricResult
        ``value``: ``[low, high]`` in percent; ``params``: ``estimate``, ``level``,
        ``n_resamples``, ``n_left``, ``n_right``.  NaN with a reason when a side has fewer than
        2 finite values.
    """
    func = "symmetry_index_ci"
    lft, rgt = (np.asarray(v, dtype=float).reshape(-1) for v in (left, right))
    if isinstance(n, bool) or int(n) != n or n < 100:
        raise InputError(f"{func}: n must be an integer >= 100 resamples, found {n!r}")
    if not (np.isfinite(level) and 0 < level < 1):
        raise InputError(f"{func}: level must lie in (0, 1), found {level!r}")
    lft, rgt = lft[np.isfinite(lft)], rgt[np.isfinite(rgt)]
    params = {"level": float(level), "n_resamples": int(n)}
    params.update(n_left=int(lft.size), n_right=int(rgt.size))
    if min(lft.size, rgt.size) < 2:
        why = f"{lft.size} left and {rgt.size} right value(s); at least 2 per side needed"
        return MetricResult(func, np.array([np.nan, np.nan]), "%", (why, why), params)
    rng = np.random.default_rng(seed)
    ls = stat(lft[rng.integers(0, lft.size, size=(int(n), lft.size))], axis=1)
    rs = stat(rgt[rng.integers(0, rgt.size, size=(int(n), rgt.size))], axis=1)
    si = np.asarray(symmetry_index(ls, rs).value, dtype=float)
    si = si[np.isfinite(si)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(si, [alpha, 1.0 - alpha]) if si.size else (np.nan, np.nan)
    params["estimate"] = float(np.asarray(symmetry_index(stat(lft), stat(rgt)).value))
    return MetricResult(func, np.array([low, high]), "%", ("", ""), params)


def _series_batch(
    x: np.ndarray | Sequence[np.ndarray], template_ndim: int, func: str
) -> tuple[list[np.ndarray], bool]:
    if not isinstance(x, np.ndarray):
        items = [np.asarray(item, dtype=float) for item in x]
        if not items:
            raise InputError(f"{func}: x holds no repetitions; expected at least one")
        for i, item in enumerate(items):
            if item.ndim != template_ndim:
                raise InputError(
                    f"{func}: x[{i}] has shape {item.shape}; expected {template_ndim} "
                    "dimension(s) like the template"
                )
        return items, False
    a = np.asarray(x, dtype=float)
    if a.ndim == template_ndim:
        return [a], True
    if a.ndim == template_ndim + 1 and a.shape[0] > 0:
        return [a[i] for i in range(a.shape[0])], False
    raise InputError(
        f"{func}: x must have the template's shape (T[, D]) or a leading repetition axis, "
        f"found shape {a.shape} for a template of {template_ndim} dimension(s)"
    )


def dtw_distance(
    x: np.ndarray | Sequence[np.ndarray], template: np.ndarray, window: int | None = None
) -> MetricResult:
    """DTW distance of repetitions to a template, per matched sample, in the signal's unit.

    Each repetition is aligned to the template by dynamic time warping
    (:func:`medpose.temporal.dtw_align`, dtaidistance's C routines; Sakoe & Chiba 1978,
    *IEEE Trans ASSP* 26:43).  The DTW distance ``sqrt(sum over the path of ||x_i - t_j||^2)``
    grows with the length of the path, so it is normalised per sample: the reported value is
    ``distance / sqrt(L)`` with ``L`` the number of matched pairs on the warping path, the
    root mean square difference along the path (degrees for joint angles).  0 means the
    repetition is the template up to timing.

    Parameters
    ----------
    x : array_like, shape (T,) or (T, D) for one repetition, (R, T[, D]) or a sequence
        The repetitions; leading and trailing NaN rows (padding) are dropped.
    template : array_like, shape (T0,) or (T0, D)
        The reference movement (e.g. :func:`medpose.temporal.average_template`), no NaN.
    window : int, optional
        Sakoe-Chiba band half-width in samples.

    Returns
    -------
    MetricResult
        ``value``: RMS difference along the warping path, signal unit (``"unit"``);
        ``details``: ``path_length``.  NaN with a reason for fewer than 2 samples or interior
        missing samples.

    Raises
    ------
    InputError
        For a template with NaN or of a bad shape, or dimensions that differ.
    """
    func = "dtw_distance"
    t = np.asarray(template, dtype=float)
    if t.ndim not in (1, 2) or t.shape[0] < 2:
        raise InputError(
            f"{func}: template must have shape (T,) or (T, D), T >= 2, found {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise InputError(f"{func}: template has NaN or infinite values; fill gaps first")
    reps, single = _series_batch(x, t.ndim, func)
    values, reasons, lengths = [], [], []
    for rep in reps:
        value, length, why = np.nan, np.nan, ""
        rows = np.all(np.isfinite(rep.reshape(rep.shape[0], -1)), axis=1).astype(float)
        rows[rows == 0] = np.nan
        core, why = usable(rows, 2)
        if not why:
            first = int(np.flatnonzero(np.isfinite(rows))[0])
            series = rep[first : first + core.size]
            if series.shape[1:] != t.shape[1:]:
                raise InputError(
                    f"{func}: repetition shape {series.shape} and template shape {t.shape} "
                    "differ in dimension"
                )
            alignment = dtw_align(series, t, window=window)
            length = float(alignment.path.shape[0])
            value = alignment.distance / np.sqrt(length)
        values.append(value)
        reasons.append(why)
        lengths.append(length)
    return build(
        func,
        values,
        reasons,
        "unit",
        single,
        params={"normalisation": "distance / sqrt(path length)", "window": window},
        details={"path_length": lengths},
    )


def consistency(
    curves: np.ndarray | Sequence[np.ndarray], method: str = "cmc", n_points: int = 101
) -> MetricResult:
    """Consistency of repeated waveforms: coefficient of multiple correlation or mean r.

    Each repetition is time-normalised to ``n_points`` samples
    (:func:`medpose.temporal.time_normalise`); repetitions with missing samples are left out.

    * ``method="cmc"`` (default): the coefficient of multiple correlation of Kadaba et al.
      1989 (*J Orthop Res* 7:849, within-day form), for ``N`` curves ``Y_it`` of ``T``
      samples, ``CMC = sqrt(1 - [sum (Y_it - Ybar_t)^2 / (T (N - 1))] /
      [sum (Y_it - Ybar)^2 / (T N - 1)])``: 1 for identical curves, lower as they scatter
      about their mean curve; it reflects both shape and offset differences.  When the
      scatter exceeds the waveform's own variation the square root is of a negative number
      and CMC is undefined (Ferrari et al. 2010, *Gait Posture* 31:540): NaN with a reason.
    * ``"correlation"``: the mean Pearson correlation over all pairs of curves: shape only,
      insensitive to offsets and gains.

    Parameters
    ----------
    curves : array_like, shape (R, T), or sequence of 1-D arrays
        The repetitions of one angle (any unit).
    method : {"cmc", "correlation"}
    n_points : int
        Samples after time normalisation (>= 3).

    Returns
    -------
    MetricResult
        ``value``: dimensionless, shape (); ``params``: ``method``, ``n_used`` (repetitions
        used).  NaN with a reason for fewer than 2 usable repetitions, a flat mean waveform
        or a negative CMC radicand.

    Raises
    ------
    InputError
        For an unknown method, ``n_points`` < 3 or a bad shape.
    """
    func = "consistency"
    if method not in ("cmc", "correlation"):
        raise InputError(f"{func}: method must be 'cmc' or 'correlation', found {method!r}")
    if isinstance(n_points, bool) or int(n_points) != n_points or n_points < 3:
        raise InputError(f"{func}: n_points must be an integer >= 3, found {n_points!r}")
    reps, _ = as_repetitions(curves, func, "curves")
    used = []
    for rep in reps:
        core, why = usable(rep, 2)
        if not why:
            used.append(time_normalise(core, int(n_points)))
    value, why = np.nan, ""
    if len(used) < 2:
        why = f"{len(used)} complete repetition(s) of {len(reps)}; at least 2 needed"
    else:
        y = np.stack(used)
        n, t = y.shape
        if method == "cmc":
            within = np.sum((y - y.mean(axis=0)) ** 2) / (t * (n - 1))
            total = np.sum((y - y.mean()) ** 2) / (t * n - 1)
            if not total > 0:
                why = "every curve is the same constant; CMC is undefined"
            elif within > total:
                why = "the scatter between curves exceeds their variation; CMC is undefined"
            else:
                value = float(np.sqrt(1.0 - within / total))
        else:
            sd = y.std(axis=1)
            if np.any(sd == 0):
                why = f"{int(np.sum(sd == 0))} curve(s) are constant; correlation is undefined"
            else:
                r = np.corrcoef(y)
                value = float(np.mean(r[np.triu_indices(n, 1)]))
    return build(func, [value], [why], "1", True, params={"method": method, "n_used": len(used)})
