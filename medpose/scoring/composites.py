"""0-100 composites of per-metric percent scores, with their MDC95.

:func:`composite` combines per-metric percent scores (:func:`~medpose.scoring.score_metric`)
into one 0-100 number with weights the caller (the protocol) gives; the accepted formulas are
listed in :data:`FORMULAS`.  Its MDC95 propagates the components' standard errors in percent
points (``SEM_i = MDC95_i / (1.96 sqrt 2)``, published or from the value's CI) through the
formula to first order (the delta method), components taken as independent and the cap at 100
left out, over the components present (weights renormalised as for the value):

* weighted means: ``SEM = sqrt(sum_i w_i^2 SEM_i^2) / sum_i w_i``;
* weighted geometric mean ``G``: ``SEM = G sqrt(sum_i w_i^2 SEM_i^2 / p_i^2) / sum_i w_i``
  (NaN when a component is 0, where ``ln`` has no slope);
* minimum: the SEM of the component that is the minimum (the chance that noise makes another
  component the minimum is left out);

``MDC95 = 1.96 sqrt(2) SEM`` (Weir 2005, *J Strength Cond Res* 19:231).  A weighted component
present without an SEM makes the composite's MDC95 NaN, its reason naming the component.
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
from .scores import ScoreResult

__all__ = ["FORMULAS", "CompositeResult", "composite"]

_MDC_PER_SEM = 1.96 * math.sqrt(2.0)


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


FORMULAS: Mapping[str, str] = MappingProxyType(
    {
        "weighted_mean_capped": "sum_i w_i min(p_i, 100) / sum_i w_i",
        "weighted_mean": "min(100, sum_i w_i p_i / sum_i w_i)",
        "weighted_geometric_capped": "exp(sum_i w_i ln min(p_i, 100) / sum_i w_i), 0 if any p_i = 0",
        "min_capped": "min_i min(p_i, 100) over components with w_i > 0",
    }
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
    mdc95 : ndarray
        Minimal detectable change at 95 % of ``value``, in points of the 0-100 scale (the
        module docstring says how), same shape as ``value``; NaN with ``mdc95_reason``.
    mdc95_reason : str
    """

    value: np.ndarray
    formula: str
    weights: Mapping[str, float]
    components: Mapping[str, np.ndarray]
    missing_fraction: np.ndarray
    max_missing: float
    reasons: tuple[str, ...]
    mdc95: np.ndarray = field(default_factory=lambda: np.array(np.nan))
    mdc95_reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _ro(np.asarray(self.value, dtype=float)))
        mdc = np.broadcast_to(np.asarray(self.mdc95, dtype=float), self.value.shape)
        object.__setattr__(self, "mdc95", _ro(mdc))
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
        mdc = np.array2string(self.mdc95, precision=2, threshold=6)
        return (
            f"CompositeResult({shown} / 100, mdc95 {mdc}, {self.formula}, "
            f"{len(self.weights)} components{tail})"
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

    def plot(self, ax: Any = None) -> Any:
        """Each component's percent (mean over its values, weight in the label) as bars on a
        matplotlib axis, the composite's mean as a dashed line; a component with no value is
        labelled so."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        names = list(self.components)
        means = [_finite_mean(self.components[n]) for n in names]
        y = np.arange(len(names))
        ax.barh(y, np.nan_to_num(means), color="#8da0cb")
        for k, m in enumerate(means):
            if math.isnan(m):
                ax.annotate("no value", (0, k), xytext=(3, -3), textcoords="offset points",
                            fontsize="small")  # fmt: skip
        ax.axvline(_finite_mean(self.value), color="black", ls="--", lw=1,
                   label=f"composite {_finite_mean(self.value):.0f} / 100")  # fmt: skip
        ax.set_yticks(y, [f"{n} (w {self.weights.get(n, 1.0):g})" for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("% of normal")
        ax.legend(fontsize="small")
        return ax

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False, max_rows=20, float_format="%.3g"))


def _finite_mean(a: Any) -> float:
    v = np.asarray(a, dtype=float).ravel()
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


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
    sems: Mapping[str, float | np.ndarray] | None = None,
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
    sems : mapping of str to float or array, optional
        Standard error of each component's percent, in percent points, for the MDC95 (module
        docstring); a ScoreResult without an entry gives ``mdc95_percent / (1.96 sqrt 2)``.

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
    sem, mdc_why = _composite_sem(scores, sems or {}, stack, w, present, formula, value)
    return CompositeResult(
        mdc95=np.where(np.isfinite(value), _MDC_PER_SEM * sem, np.nan),
        mdc95_reason=mdc_why,
        value=value,
        formula=formula,
        weights={n: float(weights[n]) for n in names},
        components=parts,
        missing_fraction=missing_fraction,
        max_missing=float(max_missing),
        reasons=tuple(reasons),
    )


def _composite_sem(
    scores: Mapping[str, ScoreResult | float | np.ndarray],
    sems: Mapping[str, float | np.ndarray],
    p: np.ndarray,
    w: np.ndarray,
    present: np.ndarray,
    formula: str,
    value: np.ndarray,
) -> tuple[np.ndarray, str]:
    """First-order SEM of the composite (module docstring) and why it is NaN, if it is."""
    names = list(scores)
    unknown = sorted(set(sems) - set(names))
    if unknown:
        raise InputError(f"composite: sems for components that are not scored: {unknown}")
    parts = []
    for n in names:
        s = scores[n]
        if n in sems:
            parts.append(np.asarray(sems[n], dtype=float))
        elif isinstance(s, ScoreResult):
            parts.append(np.asarray(s.mdc95_percent, dtype=float) / _MDC_PER_SEM)
        else:
            parts.append(np.array(np.nan))
    se = np.stack([np.broadcast_to(x, p.shape[1:]) for x in parts])
    if np.any(se < 0):
        raise InputError("composite: sems must be >= 0")
    wb = w.reshape((-1,) + (1,) * (p.ndim - 1)) * present
    used = present & (wb > 0)
    lacking = used & ~np.isfinite(se)
    capped = np.minimum(p, 100.0)
    zero = used & (capped <= 0) if formula == "weighted_geometric_capped" else np.zeros_like(used)
    with np.errstate(invalid="ignore", divide="ignore"):
        if formula == "min_capped":
            pick = np.where(used, capped, np.inf).argmin(axis=0)[None]
            out = np.take_along_axis(se, pick, axis=0)[0]
            lacking = lacking & (
                np.arange(len(names)).reshape(wb.shape[:1] + (1,) * (p.ndim - 1)) == pick
            )
        else:
            terms = np.where(used, wb * se, 0.0)
            if formula == "weighted_geometric_capped":
                terms = np.where(used, terms / capped, 0.0)
            out = np.sqrt((terms**2).sum(axis=0)) / wb.sum(axis=0)
            if formula == "weighted_geometric_capped":
                out = out * value
    out = np.where((lacking | zero).any(axis=0), np.nan, out)
    why = []
    if lacking.any():
        gone = [n for i, n in enumerate(names) if lacking[i].any()]
        why.append(f"no SEM for {', '.join(gone)}")
    if zero.any():
        why.append(f"{', '.join(n for i, n in enumerate(names) if zero[i].any())} at 0")
    return out, "; ".join(why)
