"""Scores against published norms: percent of normal, z-score, range flag, MDC95, composites.

Every score here is a clinical convention applied to a published normative row (see
:mod:`~medpose.scoring.norms`); nothing is fitted to data.

* percent of normal: ``100 * value / mean`` where higher is better (range of motion, gait
  speed) or neither is (cadence), ``100 * mean / value`` where lower is better (timed tests),
  clipped to
  ``[0, cap]`` (``cap = 150`` unless given);
* z-score: ``(value - mean) / sd`` where the source published an SD, else NaN with the reason;
* flag: ``"within"``, ``"below"`` or ``"above"`` the normal range ``[lower, upper]``
  (bounds inclusive), ``"n/a"`` with the reason where no range was published;
* criterion (a normative row with ``mode: criterion``, a clinical test's pass limit
  ``lower`` and/or ``upper`` rather than a population mean): ``100 * (1 - e / span)`` clipped to
  ``[0, 100]``, with ``e`` how far the value lies beyond the limit (0 within it) and ``span``
  the excess that scores 0 (:data:`CRITERION_SPAN`: 90 degrees, a right angle, for angles);
* MDC95 = ``1.96 * sqrt(2) * SEM`` (Weir 2005, *J Strength Cond Res* 19:231), the SEM
  published for the measure (``sem``, or an ICC and a between-subject SD through
  ``SEM = SD * sqrt(1 - ICC)``; ``mdc95_source`` ``"published: <citation>"``) where there is
  one, else the value's own standard error from its 95 % confidence interval,
  ``SEM = (high - low) / 3.92`` (``mdc95_source`` ``"this measurement"``); for an angle
  (degrees) that SEM only holds the repetitions' scatter within one session, so the
  between-session error of markerless joint angles is added in quadrature,
  ``SEM = sqrt(SEM_ci^2 + 2.75^2)`` (Kanko et al. 2021, *J Biomech* 121:110422: 2.75 degrees
  averaged over the joints; ``mdc95_source`` :data:`MEASURED_SESSION`); in percent points
  through the slope of the percent transform at the value (``100 / mean``, ``100 mean /
  value^2`` where lower is better, ``100 / span`` for a criterion), the cap left out.

The 0-100 composites of these scores are in :mod:`~medpose.scoring.composites`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .norms import reliability_for
from .result import MetricResult
from .statistics import mdc95, sem_from_ci, sem_from_icc

__all__ = ["CRITERION_SPAN", "MEASURED", "MEASURED_SESSION", "ScoreResult", "score_metric"]

#: ``mdc95_source`` of an MDC95 from the value's own confidence interval.
MEASURED = "this measurement"
#: ``mdc95_source`` of an angle's MDC95: its CI and the published between-session error.
MEASURED_SESSION = "this measurement and the between-session error of markerless angles"

#: Excess beyond a criterion's limit that scores 0, per unit (see :func:`score_metric`).
CRITERION_SPAN: Mapping[str, float] = MappingProxyType({"deg": 90.0})


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def _norm_field(norm: Mapping[str, Any] | pd.Series, name: str) -> float:
    value = norm.get(name) if hasattr(norm, "get") else None
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"score_metric: norm field {name!r} must be a number, found {value!r}"
        ) from exc


def _limits(
    norm: Mapping[str, Any] | pd.Series, key: str, lower: float, upper: float
) -> tuple[float, float, float] | None:
    """``(lower, upper, span)`` of a criterion row (``mode: criterion``), None for a norm."""
    if str(norm.get("mode", "")) != "criterion":
        return None
    unit = str(norm.get("unit", ""))
    if unit not in CRITERION_SPAN or (math.isnan(lower) and math.isnan(upper)):
        raise InputError(
            f"score_metric: criterion {key!r} needs a lower or an upper limit, criteria are "
            f"scored in {sorted(CRITERION_SPAN)}; found {lower!r}, {upper!r} in {unit!r}"
        )
    return lower, upper, CRITERION_SPAN[unit]


def _percent(
    x: np.ndarray,
    mean: float,
    better: str,
    cap: float,
    limits: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percent of the normative mean (of a criterion's limits: 100 within, 100 less per span
    beyond them) and a mask of values it is undefined for."""
    if limits is not None:
        lo, hi, span = limits
        e = np.fmax(np.nan_to_num(lo - x, nan=0.0), 0) + np.fmax(np.nan_to_num(x - hi, nan=0.0), 0)
        bad = ~np.isfinite(x)
        return np.where(bad, np.nan, 100.0 * np.clip(1.0 - e / span, 0.0, 1.0)), bad
    with np.errstate(divide="ignore", invalid="ignore"):
        if better == "lower":
            bad = ~(x > 0)
            p = 100.0 * mean / x
        else:
            bad = ~np.isfinite(x)
            p = 100.0 * x / mean
    p = np.where(bad, np.nan, np.clip(p, 0.0, cap))
    return p, np.asarray(bad)


@dataclass(frozen=True)
class ScoreResult:
    """One metric's values scored against one normative row.

    Attributes
    ----------
    key : str
        Key of the normative row (``"rom.aaos.knee_flexion"``).
    value : ndarray
        The values scored, in ``unit``; shape ``()`` or ``(R,)``.
    unit : str
    reference : float
        Normative mean the percent refers to.
    better : str
        ``"higher"``, ``"lower"`` or ``"none"``.
    percent, z : ndarray
        Same shape as ``value``; NaN with a reason in ``reasons``.
    flag : ndarray of str
        ``"within"``, ``"below"``, ``"above"`` or ``"n/a"``.
    ci_low, ci_high : ndarray
        The values' confidence interval as given (NaN where none), in ``unit``.
    percent_ci_low, percent_ci_high : ndarray
        The interval carried through the percent transform (ordered low <= high).
    mdc95 : ndarray
        Minimal detectable change at 95 % in ``unit``, same shape as ``value`` (NaN with
        ``reasons["mdc95"]``).
    reasons : mapping
        ``"percent"``, ``"z"``, ``"flag"``: one string per value (``""`` where computed);
        ``"mdc95"``: one string.
    norm : mapping
        The normative row used (source, table, range basis...).
    cap : float
        The maximum percent.
    mdc95_percent : ndarray
        The MDC95 in percent points of ``percent`` (see the module docstring).
    mdc95_source : str
        ``"published: <citation>"``, ``"given"`` (an SEM or ICC the caller gave),
        ``"this measurement"`` (:data:`MEASURED`: from the CI), :data:`MEASURED_SESSION` (an
        angle: its CI and the between-session error of markerless angles) or ``""`` where
        there is none.
    """

    key: str
    value: np.ndarray
    unit: str
    reference: float
    better: str
    percent: np.ndarray
    z: np.ndarray
    flag: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    percent_ci_low: np.ndarray
    percent_ci_high: np.ndarray
    mdc95: np.ndarray
    reasons: Mapping[str, Any] = field(default_factory=dict)
    norm: Mapping[str, Any] = field(default_factory=dict)
    cap: float = 150.0
    mdc95_percent: np.ndarray = field(default_factory=lambda: np.array(np.nan))
    mdc95_source: str = ""

    def __post_init__(self) -> None:
        for name in (
            "value",
            "percent",
            "z",
            "flag",
            "ci_low",
            "ci_high",
            "percent_ci_low",
            "percent_ci_high",
        ):
            object.__setattr__(self, name, _ro(getattr(self, name)))
        for name in ("mdc95", "mdc95_percent"):
            m = np.broadcast_to(np.asarray(getattr(self, name), dtype=float), self.value.shape)
            object.__setattr__(self, name, _ro(m))
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))
        object.__setattr__(self, "norm", MappingProxyType(dict(self.norm)))

    def __repr__(self) -> str:
        def arr(a: np.ndarray) -> str:
            return np.array2string(np.asarray(a, dtype=float), precision=3, threshold=6)

        flags = (
            str(self.flag)
            if self.flag.ndim == 0
            else "[" + " ".join(str(f) for f in self.flag.ravel()[:6]) + "]"
        )
        why = sorted({r for k in ("percent", "z", "flag") for r in self.reasons.get(k, ()) if r})
        tail = f"; nan: {'; '.join(why)}" if why else ""
        return (
            f"ScoreResult({self.key}: {arr(self.value)} {self.unit} -> {arr(self.percent)} % of "
            f"{self.reference:g}, z {arr(self.z)}, {flags}, mdc95 {arr(self.mdc95)}{tail})"
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per value with percent, z, flag, CI, MDC95 and reasons."""
        n = self.value.size
        df = pd.DataFrame(
            {
                "key": [self.key] * n,
                "value": self.value.ravel(),
                "unit": [self.unit] * n,
                "reference": [self.reference] * n,
                "percent": self.percent.ravel(),
                "z": self.z.ravel(),
                "flag": [str(f) for f in self.flag.ravel()],
                "ci_low": self.ci_low.ravel(),
                "ci_high": self.ci_high.ravel(),
                "percent_ci_low": self.percent_ci_low.ravel(),
                "percent_ci_high": self.percent_ci_high.ravel(),
                "mdc95": self.mdc95.ravel(),
                "mdc95_percent": self.mdc95_percent.ravel(),
                "mdc95_source": [self.mdc95_source] * n,
            }
        )
        for k in ("percent", "z", "flag"):
            df[f"{k}_reason"] = list(self.reasons.get(k, ("",) * n))
        df.attrs.update(
            {"source": self.norm.get("source", ""), "cap": self.cap, "better": self.better}
        )
        return df

    def plot(self, ax: Any = None) -> Any:
        """The percent of the normative mean of each repetition on a matplotlib axis, with its
        confidence interval where known, 100 % (the normative mean) dashed; markers coloured
        by flag (within, below, above the normal range)."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        p = self.percent.ravel()
        x = np.arange(p.size)
        lo = np.clip(p - self.percent_ci_low.ravel(), 0, None)
        hi = np.clip(self.percent_ci_high.ravel() - p, 0, None)
        ax.errorbar(x, p, yerr=np.nan_to_num(np.vstack([lo, hi])), fmt="none", ecolor="grey",
                    capsize=3)  # fmt: skip
        colours = {"within": "#2ca02c", "below": "#d62728", "above": "#ff7f0e"}
        for flag, colour in colours.items():
            sel = self.flag.ravel() == flag
            if sel.any():
                ax.scatter(x[sel], p[sel], color=colour, zorder=3, label=flag)
        ax.axhline(100.0, color="black", ls="--", lw=1, label=f"normal mean {self.reference:g}")
        ax.set_xticks(x)
        ax.set_xlabel("repetition")
        ax.set_ylabel("% of normal")
        ax.set_title(self.key, fontsize="medium")
        ax.legend(fontsize="small")
        return ax

    def _repr_html_(self) -> str:
        cols = ["key", "value", "unit", "reference", "percent", "z", "flag", "mdc95"]
        return str(self.to_frame()[cols].to_html(index=False, max_rows=20, float_format="%.3g"))


def _values(value: Any) -> tuple[np.ndarray, tuple[str, ...], str | None]:
    if isinstance(value, MetricResult):
        return np.array(value.value, dtype=float), value.reasons, value.unit
    try:
        x = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"score_metric: value must be numeric, found {value!r}") from exc
    if x.ndim > 1:
        raise InputError(f"score_metric: value must have shape () or (R,), found {x.shape}")
    return x, ("",) * x.size, None


def _ci(ci: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if ci is None:
        nan = np.full(shape, np.nan)
        return nan, nan.copy()
    c = np.array(ci.value if isinstance(ci, MetricResult) else ci, dtype=float)
    if c.shape != (*shape, 2):
        raise InputError(
            f"score_metric: ci must have shape {(*shape, 2)} (low, high per value), found {c.shape}"
        )
    low, high = c[..., 0], c[..., 1]
    if np.any(low > high):
        raise InputError("score_metric: ci low must not exceed high")
    return low, high


def _published_mdc(
    sem: float | None, icc: float | None, sd: float | None, norm_sd: float
) -> tuple[float, str]:
    if sem is not None:
        return float(mdc95(sem).value), ""
    if icc is not None:
        s = norm_sd if sd is None else float(sd)
        if not math.isfinite(s):
            return (
                math.nan,
                "an ICC needs the between-subject SD (sd=...), none was given or published",
            )
        return float(mdc95(sem_from_icc(s, icc).value).value), ""
    return math.nan, "no SEM or ICC given"


def _mdc(
    published: tuple[float, str], source: str, low: np.ndarray, high: np.ndarray, unit: str
) -> tuple[np.ndarray, str, str]:
    """MDC95 per value, its reason and its source: published, else from the value's CI (an
    angle's with the between-session error of markerless angles added in quadrature)."""
    m, why = published
    if math.isfinite(m):
        return np.full(low.shape, m), "", source
    if not (np.isfinite(low) & np.isfinite(high)).any():
        return np.full(low.shape, math.nan), why, ""  # and no CI to take it from
    sem = np.asarray(sem_from_ci(low, high).value, dtype=float)
    label = MEASURED
    if unit == "deg":
        sem = np.hypot(sem, reliability_for("markerless_angle")["sem"])
        label = MEASURED_SESSION
    ci_mdc = 1.96 * math.sqrt(2.0) * sem
    return ci_mdc, "" if np.isfinite(ci_mdc).all() else why, label


def _percent_slope(
    x: np.ndarray, mean: float, better: str, limits: tuple[float, float, float] | None
) -> np.ndarray:
    """|d percent / d value| at ``x``, the cap left out (percent points per unit)."""
    if limits is not None:
        return np.full(x.shape, 100.0 / limits[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        if better == "lower":
            return np.where(x > 0, 100.0 * mean / x**2, np.nan)
        return np.full(x.shape, 100.0 / mean)


def score_metric(
    value: Any,
    norm: Mapping[str, Any] | pd.Series,
    *,
    ci: Any = None,
    sem: float | None = None,
    icc: float | None = None,
    sd: float | None = None,
    cap: float = 150.0,
    reliability: Mapping[str, Any] | None = None,
) -> ScoreResult:
    """Score values of one metric against a normative row.

    Parameters
    ----------
    value : float, array_like (R,) or MetricResult
        The measured values, in the norm's unit (a MetricResult's unit must match it).
    norm : Series or mapping
        A normative row (:func:`~medpose.scoring.norms.norm_for`): ``mean`` (> 0), ``sd``,
        ``lower``, ``upper`` (NaN where not published), ``better``, ``unit``, ``key``.
    ci : array_like (..., 2), MetricResult or None
        Confidence interval of each value (``(2,)`` for a single value, ``(R, 2)`` for a batch;
        the result of :func:`~medpose.scoring.bootstrap_ci` is accepted), carried through the
        percent transform.
    sem : float or None
        Standard error of measurement in the value's unit, for MDC95.
    icc, sd : float or None
        Test-retest ICC and the between-subject SD (default: the norm's SD), used when no
        ``sem`` is given.
    reliability : mapping or None
        A published measurement error (:func:`~medpose.scoring.norms.reliability_for`): its
        ``sem``, else its ``icc``, is used where ``sem`` and ``icc`` are not given, and its
        ``source`` named in ``mdc95_source``.  With neither, the MDC95 comes from ``ci``
        (``SEM = (high - low) / 3.92``), else it is NaN with the reason.
    cap : float
        Maximum percent (> 0), stated in the result.

    Returns
    -------
    ScoreResult

    Raises
    ------
    InputError
        For a norm without a positive mean, an unknown ``better``, a unit mismatch, a ``ci``
        of the wrong shape, a non-positive ``cap`` or an invalid SEM / ICC / SD.
    """
    x, in_reasons, unit = _values(value)
    key = str(norm.get("key", "norm"))
    mean = _norm_field(norm, "mean")
    sd_n, lower, upper = (_norm_field(norm, f) for f in ("sd", "lower", "upper"))
    limits = _limits(norm, key, lower, upper)
    if limits is None and not (math.isfinite(mean) and mean > 0):
        raise InputError(f"score_metric: norm {key!r} needs a positive mean, found {mean!r}")
    better = str(norm.get("better", "higher"))
    if better not in ("higher", "lower", "none"):
        raise InputError(
            f"score_metric: norm {key!r}: better must be 'higher', 'lower' or 'none', "
            f"found {better!r}"
        )
    norm_unit = str(norm.get("unit", ""))
    if unit is not None and norm_unit and unit != norm_unit:
        raise InputError(f"score_metric: value in {unit!r} but norm {key!r} in {norm_unit!r}")
    if not (isinstance(cap, (int, float)) and cap > 0 and math.isfinite(cap)):
        raise InputError(f"score_metric: cap must be a positive percent, found {cap!r}")

    why_value = [r or "value is NaN" for r in in_reasons]
    if better == "lower" and limits is None:  # a timed result of 0 or less is not a measurement
        for i, v in enumerate(x.ravel()):
            if v <= 0:
                why_value[i] = f"a result where lower is better must be > 0, found {v:g}"
        x = np.where(x > 0, x, np.nan)
    percent, bad = _percent(x, mean, better, cap, limits)
    p_why = [why_value[i] if b else "" for i, b in enumerate(bad.ravel())]
    if math.isfinite(sd_n) and sd_n > 0 and limits is None:
        z = (x - mean) / sd_n
        z_why = ["" if np.isfinite(v) else why_value[i] for i, v in enumerate(x.ravel())]
    else:
        z = np.full(x.shape, np.nan)
        z_why = [f"no SD published for {key}"] * x.size
    flag = np.full(x.shape, "n/a", dtype=object)
    if math.isnan(lower) and math.isnan(upper):
        f_why = [str(norm.get("range_basis") or "no normal range published")] * x.size
    else:
        ok = np.isfinite(x)
        flag[ok] = "within"
        if math.isfinite(lower):
            flag[ok & (x < lower)] = "below"
        if math.isfinite(upper):
            flag[ok & (x > upper)] = "above"
        f_why = ["" if o else why_value[i] for i, o in enumerate(ok.ravel())]
    low, high = _ci(ci, x.shape)
    pl, _ = _percent(low, mean, better, cap, limits)
    ph, _ = _percent(high, mean, better, cap, limits)
    source = "given"
    if sem is None and icc is None and reliability is not None:
        r_sem, r_icc = (_norm_field(reliability, f) for f in ("sem", "icc"))
        sem = r_sem if math.isfinite(r_sem) else None
        icc = r_icc if sem is None and math.isfinite(r_icc) else None
        source = f"published: {reliability.get('source', '') or reliability.get('key', '')}"
    m, m_why, m_src = _mdc(
        _published_mdc(sem, icc, sd, sd_n), source, low, high, norm_unit or (unit or "")
    )
    m_pct = m * _percent_slope(x, mean, better, limits)
    return ScoreResult(
        key=key,
        value=x,
        unit=norm_unit or (unit or ""),
        reference=mean if limits is None else (upper if math.isfinite(upper) else lower),
        better=better,
        percent=percent,
        z=z,
        flag=flag.astype(str),
        ci_low=low,
        ci_high=high,
        percent_ci_low=np.fmin(pl, ph),
        percent_ci_high=np.fmax(pl, ph),
        mdc95=m,
        reasons={"percent": tuple(p_why), "z": tuple(z_why), "flag": tuple(f_why), "mdc95": m_why},
        norm=dict(norm.items()),
        cap=float(cap),
        mdc95_percent=m_pct,
        mdc95_source=m_src,
    )
