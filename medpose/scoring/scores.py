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
* MDC95 = ``1.96 * sqrt(2) * SEM`` from a published SEM, or from an ICC and a between-subject
  SD through ``SEM = SD * sqrt(1 - ICC)`` (Weir 2005, *J Strength Cond Res* 19:231).

:func:`composite` combines per-metric percent scores into one 0-100 number with weights the
caller (the protocol) gives; the accepted formulas are listed in :data:`FORMULAS`.
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
from .result import MetricResult
from .statistics import mdc95, sem_from_icc

__all__ = [
    "FORMULAS",
    "CRITERION_SPAN",
    "CompositeResult",
    "ScoreResult",
    "composite",
    "score_metric",
]

FORMULAS: Mapping[str, str] = MappingProxyType(
    {
        "weighted_mean_capped": "sum_i w_i min(p_i, 100) / sum_i w_i",
        "weighted_mean": "min(100, sum_i w_i p_i / sum_i w_i)",
        "weighted_geometric_capped": "exp(sum_i w_i ln min(p_i, 100) / sum_i w_i), 0 if any p_i = 0",
        "min_capped": "min_i min(p_i, 100) over components with w_i > 0",
    }
)

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
    mdc95 : float
        Minimal detectable change at 95 % in ``unit`` (NaN with ``reasons["mdc95"]``).
    reasons : mapping
        ``"percent"``, ``"z"``, ``"flag"``: one string per value (``""`` where computed);
        ``"mdc95"``: one string.
    norm : mapping
        The normative row used (source, table, range basis...).
    cap : float
        The maximum percent.
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
    mdc95: float
    reasons: Mapping[str, Any] = field(default_factory=dict)
    norm: Mapping[str, Any] = field(default_factory=dict)
    cap: float = 150.0

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
            f"{self.reference:g}, z {arr(self.z)}, {flags}, mdc95 {self.mdc95:.3g}{tail})"
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
                "mdc95": [self.mdc95] * n,
            }
        )
        for k in ("percent", "z", "flag"):
            df[f"{k}_reason"] = list(self.reasons.get(k, ("",) * n))
        df.attrs.update(
            {"source": self.norm.get("source", ""), "cap": self.cap, "better": self.better}
        )
        return df

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


def _mdc(
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


def score_metric(
    value: Any,
    norm: Mapping[str, Any] | pd.Series,
    *,
    ci: Any = None,
    sem: float | None = None,
    icc: float | None = None,
    sd: float | None = None,
    cap: float = 150.0,
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
        Standard error of measurement in the value's unit, for MDC95 (e.g. from
        :func:`~medpose.scoring.norms.reliability_for`).
    icc, sd : float or None
        Test-retest ICC and the between-subject SD (default: the norm's SD), used when no
        ``sem`` is given.
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
    m, m_why = _mdc(sem, icc, sd, sd_n)
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
    )


@dataclass(frozen=True)
class CompositeResult:
    """A 0-100 composite of per-metric percent scores.

    Attributes
    ----------
    value : ndarray
        Shape ``()`` or the components' common shape; NaN with a reason.
    formula : str
        A key of :data:`FORMULAS`.
    weights : mapping
        The weights given, per component.
    components : mapping
        Per-component percent arrays used.
    missing_fraction : ndarray
        Weight of missing (NaN) components over the total weight, same shape as ``value``.
    max_missing : float
        Above this missing fraction the composite is NaN.
    reasons : tuple of str
        One per value: ``""`` or why it is NaN; the names of missing components otherwise
        appear in :meth:`to_frame`.
    """

    value: np.ndarray
    formula: str
    weights: Mapping[str, float]
    components: Mapping[str, np.ndarray]
    missing_fraction: np.ndarray
    max_missing: float
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _ro(np.asarray(self.value, dtype=float)))
        object.__setattr__(
            self, "missing_fraction", _ro(np.asarray(self.missing_fraction, dtype=float))
        )
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(
            self, "components", MappingProxyType({k: _ro(v) for k, v in self.components.items()})
        )

    def __float__(self) -> float:
        if self.value.size != 1:
            raise TypeError(
                f"composite: float() needs one value, this result holds {self.value.size}"
            )
        return float(self.value.reshape(-1)[0])

    def __repr__(self) -> str:
        shown = np.array2string(self.value, precision=2, threshold=6)
        why = sorted({r for r in self.reasons if r})
        tail = f"; nan: {'; '.join(why)}" if why else ""
        return (
            f"CompositeResult({shown} / 100, {self.formula}, {len(self.weights)} components{tail})"
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per value, the composite, each component's percent, the missing
        fraction and the reason."""
        n = self.value.size
        df = pd.DataFrame({"composite": self.value.ravel()})
        for name, p in self.components.items():
            df[f"{name}_percent"] = np.broadcast_to(p, self.value.shape).ravel() if n else p
        df["missing_fraction"] = self.missing_fraction.ravel()
        df["reason"] = list(self.reasons)
        df.attrs.update({"formula": self.formula, "weights": dict(self.weights)})
        return df

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False, max_rows=20, float_format="%.3g"))


def _combine(p: np.ndarray, w: np.ndarray, present: np.ndarray, formula: str) -> np.ndarray:
    """Combine percent stack ``p`` (C, ...) with weights ``w`` (C,) over ``present``."""
    wb = w.reshape((-1,) + (1,) * (p.ndim - 1)) * present
    total = wb.sum(axis=0)
    capped = np.where(present, np.minimum(p, 100.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if formula == "weighted_mean_capped":
            return (wb * capped).sum(axis=0) / total
        if formula == "weighted_mean":
            return np.minimum((wb * np.where(present, p, 0.0)).sum(axis=0) / total, 100.0)
        if formula == "weighted_geometric_capped":
            zero = (present & (capped <= 0) & (wb > 0)).any(axis=0)
            logs = np.where(present & (capped > 0), np.log(np.where(capped > 0, capped, 1.0)), 0.0)
            out = np.exp((wb * logs).sum(axis=0) / total)
            return np.where(zero, 0.0, out)
        use = present & (wb > 0)
        return np.where(use, capped, np.inf).min(axis=0)


def composite(
    scores: Mapping[str, ScoreResult | float | np.ndarray],
    weights: Mapping[str, float],
    formula: str = "weighted_mean_capped",
    *,
    max_missing: float = 0.5,
) -> CompositeResult:
    """A 0-100 composite from per-metric percent scores and the caller's weights.

    Formulas (:data:`FORMULAS`), with ``p_i`` the percent of normal of component ``i``:

    * ``"weighted_mean_capped"`` (default): ``sum w_i min(p_i, 100) / sum w_i``, so doing
      better than normal in one metric cannot hide a deficit in another;
    * ``"weighted_mean"``: ``min(100, sum w_i p_i / sum w_i)``;
    * ``"weighted_geometric_capped"``: ``exp(sum w_i ln min(p_i, 100) / sum w_i)`` (0 when a
      weighted component is 0), which penalises one low component more;
    * ``"min_capped"``: the lowest ``min(p_i, 100)`` among components with ``w_i > 0``.

    Missing components (NaN percent) are left out and the weights of the others renormalised
    (divided by the sum of the present weights).  When the missing weight exceeds
    ``max_missing`` of the total, the composite is NaN and its reason names the missing
    components.

    Parameters
    ----------
    scores : mapping of str to ScoreResult, float or array
        Per-component percent scores (a ScoreResult gives its ``percent``); arrays broadcast
        together (one composite per session or repetition).
    weights : mapping of str to float
        Non-negative weights with the same keys as ``scores`` and a positive sum.
    formula : str
        A key of :data:`FORMULAS`.
    max_missing : float
        Largest missing weight fraction, in [0, 1), for which a composite is still given.

    Returns
    -------
    CompositeResult

    Raises
    ------
    InputError
        For an unknown formula (the message lists them), weights that do not match the
        scores' keys, negative or non-finite weights, weights summing to 0, or a
        ``max_missing`` outside [0, 1).
    """
    if formula not in FORMULAS:
        raise InputError(f"composite: formula {formula!r} is unknown; accepted: {sorted(FORMULAS)}")
    if set(scores) != set(weights):
        raise InputError(
            f"composite: weights must have the keys of scores; scores without a weight: "
            f"{sorted(set(scores) - set(weights))}, weights without a score: "
            f"{sorted(set(weights) - set(scores))}"
        )
    if not scores:
        raise InputError("composite: scores is empty; at least one component is needed")
    if not (isinstance(max_missing, (int, float)) and 0 <= max_missing < 1):
        raise InputError(f"composite: max_missing must lie in [0, 1), found {max_missing!r}")
    names = list(scores)
    w = np.array([weights[n] for n in names], dtype=float)
    if not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
        raise InputError(
            f"composite: weights must be finite, >= 0 and sum to > 0, found {dict(weights)}"
        )
    parts = {
        n: np.asarray(s.percent if isinstance(s, ScoreResult) else s, dtype=float)
        for n, s in scores.items()
    }
    try:
        stack = np.stack(np.broadcast_arrays(*parts.values()))
    except ValueError as exc:
        shapes = {n: p.shape for n, p in parts.items()}
        raise InputError(f"composite: component shapes do not broadcast: {shapes}") from exc
    present = np.isfinite(stack)
    wb = w.reshape((-1,) + (1,) * (stack.ndim - 1))
    missing_fraction = (wb * ~present).sum(axis=0) / w.sum()
    value = _combine(stack, w, present, formula)
    too_many = missing_fraction > max_missing
    value = np.where(too_many, np.nan, value)
    reasons = []
    for idx in np.ndindex(value.shape):
        if too_many[idx]:
            gone = [n for i, n in enumerate(names) if not present[(i,) + idx]]
            reasons.append(
                f"missing {', '.join(gone)} ({missing_fraction[idx]:.0%} of the weight; "
                f"at most {max_missing:.0%} allowed)"
            )
        else:
            reasons.append("")
    return CompositeResult(
        value=value,
        formula=formula,
        weights={n: float(weights[n]) for n in names},
        components=parts,
        missing_fraction=missing_fraction,
        max_missing=float(max_missing),
        reasons=tuple(reasons),
    )
