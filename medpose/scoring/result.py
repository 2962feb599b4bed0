"""The result every metric returns: values per repetition, their unit, and why any is NaN.

A metric that cannot be computed for a repetition (too short, all missing, zero speed...)
gives NaN for it and says why in :attr:`MetricResult.reasons`; it never returns a number
that looks valid but is not.  Bad arguments (wrong shape, ``fs <= 0``) raise
:class:`~medpose.errors.InputError` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["MetricResult"]


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class MetricResult:
    """Values of one metric, one per repetition, with the unit and the reasons for NaN.

    Attributes
    ----------
    name : str
        Metric name (``"sparc"``, ``"rom"``...).
    value : ndarray of float
        Shape ``()`` for a single repetition (``float(result)`` gives the number), ``(R,)``
        for ``R`` repetitions, or the broadcast shape for element-wise metrics.  NaN where
        the metric could not be computed.
    unit : str
        Unit of ``value`` (``"deg"``, ``"deg/s"``, ``"s"``, ``"1/min"``, ``"%"``, ``"1"``
        for dimensionless).
    reasons : tuple of str
        One entry per element of ``value`` (C order): ``""`` where the value was computed,
        else why it is NaN.
    params : mapping
        The parameters the metric used (cut-offs, thresholds, smoothing), read-only.
    details : mapping of str to ndarray
        Per-repetition by-products, same shape as ``value`` (e.g. SPARC's adaptive cut-off
        frequency ``cutoff_hz``), read-only.
    """

    name: str
    value: np.ndarray
    unit: str
    reasons: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        value = np.array(self.value, dtype=float)
        value.setflags(write=False)
        object.__setattr__(self, "value", value)
        reasons = tuple(str(r) for r in self.reasons)
        if len(reasons) != value.size:
            raise InputError(
                f"MetricResult {self.name!r}: {len(reasons)} reasons for {value.size} values"
            )
        object.__setattr__(self, "reasons", reasons)
        object.__setattr__(self, "params", _frozen(self.params))
        details = {}
        for key, arr in dict(self.details).items():
            a = np.array(arr)
            a.setflags(write=False)
            details[key] = a
        object.__setattr__(self, "details", MappingProxyType(details))

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask, same shape as :attr:`value`: True where the metric was computed."""
        return np.array([r == "" for r in self.reasons], dtype=bool).reshape(self.value.shape)

    def __float__(self) -> float:
        if self.value.size != 1:
            raise TypeError(
                f"{self.name}: float() needs a single value, this result holds {self.value.size}"
            )
        return float(self.value.reshape(-1)[0])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self.value, dtype=dtype)

    def __len__(self) -> int:
        return int(self.value.size)

    def __repr__(self) -> str:
        shown = np.array2string(self.value, precision=4, threshold=8)
        why = sorted({r for r in self.reasons if r})
        tail = f", nan: {'; '.join(why)}" if why else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"MetricResult({self.name}: {shown}{unit}{tail})"

    def plot(self, ax: Any = None) -> Any:
        """The value of each repetition on a matplotlib axis (markers joined by a line, the
        median dashed); a repetition without a value is an ``x`` on the axis's bottom edge."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        v = self.value.ravel()
        x = np.arange(v.size)
        ok = np.isfinite(v)
        ax.plot(x, v, marker="o", color="#4c72b0", label=self.name)
        if ok.any():
            ax.axhline(float(np.median(v[ok])), color="black", ls="--", lw=1, label="median")
        if (~ok).any():
            ax.plot(x[~ok], np.zeros((~ok).sum()), "x", color="#d62728", label="no value",
                    transform=ax.get_xaxis_transform(), clip_on=False)  # fmt: skip
        ax.set_xticks(x)
        ax.set_xlabel("repetition")
        ax.set_ylabel(f"{self.name} ({self.unit})" if self.unit not in ("", "1") else self.name)
        ax.legend(fontsize="small")
        return ax

    def _repr_html_(self) -> str:
        from ..report.display import metric_result_html

        return metric_result_html(self)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per value, ``repetition``, ``<name>_<unit>``, ``reason`` and
        the per-repetition details.
        """
        unit = self.unit.replace("/", "_per_").replace("%", "pct")
        col = self.name if unit in ("", "1") else f"{self.name}_{unit}"
        df = pd.DataFrame({"repetition": np.arange(self.value.size), col: self.value.ravel()})
        for key, arr in self.details.items():
            if arr.size == self.value.size:
                df[key] = arr.ravel()
        df["reason"] = list(self.reasons)
        df.attrs.update({"metric": self.name, "unit": self.unit, **dict(self.params)})
        return df


def build(
    name: str,
    values: list[float],
    reasons: list[str],
    unit: str,
    single: bool,
    params: Mapping[str, Any] | None = None,
    details: Mapping[str, list[float]] | None = None,
) -> MetricResult:
    """Assemble a :class:`MetricResult` from per-repetition lists (shape () when ``single``)."""
    shape: tuple[int, ...] = () if single else (len(values),)
    det = {k: np.asarray(v, dtype=float).reshape(shape) for k, v in (details or {}).items()}
    return MetricResult(
        name,
        np.asarray(values, dtype=float).reshape(shape),
        unit,
        tuple(reasons),
        params or {},
        det,
    )
