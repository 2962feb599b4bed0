"""The result of running a protocol on one trial: :class:`Assessment`.

Built by :func:`medpose.protocol.runner.run_protocol` (``Protocol.load(...).run(x)``); it holds
tidy tables only (no arrays of the trial), so it is cheap to keep, print and save.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .capped import BESIDE

__all__ = [
    "METRIC_COLUMNS",
    "SCORE_COLUMNS",
    "QUALITY_COLUMNS",
    "REGISTRATION_COLUMNS",
    "Assessment",
    "explain_missing_ci",
]

#: Columns of :attr:`Assessment.metrics`.
METRIC_COLUMNS = (
    "trial",
    "metric",
    "joint",
    "side",
    "repetition",
    "value",
    "unit",
    "ci_low",
    "ci_high",
    "reason",
)
#: Columns of :attr:`Assessment.scores`.
SCORE_COLUMNS = (
    "metric",
    "joint",
    "side",
    "value",
    "unit",
    "percent",
    "z",
    "flag",
    "norm",
    "source",
    "mdc95",
    "mdc95_percent",
    "mdc95_source",
    "reason",
)
#: Columns of :attr:`Assessment.quality` (a session run's data-quality table).
QUALITY_COLUMNS = ("trial", "check", "name", "value", "unit")
#: Columns of :attr:`Assessment.registration` (``navigation_check``).
REGISTRATION_COLUMNS = ("trial", "item", "name", "value", "unit", "limit", "outlier", "passed")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def explain_missing_ci(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every finite value without a CI says why (a single value has no spread to resample),
    before any note its reason holds that the report prints beside the value
    (:data:`~medpose.protocol.capped.BESIDE`)."""
    need = {"value", "ci_low", "ci_high", "reason", "repetition"}
    if metrics.empty or not need <= set(metrics.columns):
        return metrics
    value = pd.to_numeric(metrics["value"], errors="coerce").to_numpy(float)
    low = pd.to_numeric(metrics["ci_low"], errors="coerce").to_numpy(float)
    high = pd.to_numeric(metrics["ci_high"], errors="coerce").to_numpy(float)
    reason = metrics["reason"].fillna("").astype(str)
    notes_only = reason.map(lambda r: all(any(w in p for w in BESIDE) for p in r.split("; ")))
    todo = np.isfinite(value) & ~(np.isfinite(low) & np.isfinite(high))
    todo &= ((reason == "") | notes_only).to_numpy()
    if not todo.any():
        return metrics
    m = metrics.copy()
    per_rep = m["repetition"].notna().to_numpy()
    why = np.where(
        per_rep, "no CI: the value of one repetition", "no CI: one value for the whole trial"
    )
    m.loc[todo, "reason"] = [f"{w}; {r}" if r else w for w, r in zip(why[todo], reason[todo])]
    return m


@dataclass(frozen=True, eq=False)
class Assessment:
    """One trial assessed by a protocol.

    Attributes
    ----------
    protocol : str
        ``name version`` of the protocol.
    protocol_hash : str
        SHA-256 of the protocol's content (:attr:`Protocol.hash`).
    trial : str
        The protocol's trial the data were assessed as.
    sides : tuple of str
        The side(s) measured (``"left"``, ``"right"``); for ``side: auto`` the side chosen.
    metrics : DataFrame
        Tidy, one row per value (:data:`METRIC_COLUMNS`): ``repetition`` is the repetition
        index for per-repetition values and NaN for the summary over the repetitions (the
        aggregate named by the protocol, median by default) and for whole-trial metrics.
        ``ci_low``/``ci_high``: 95 % percentile bootstrap interval of the summary over the
        repetitions (NaN for fewer than 3).  NaN values carry a ``reason``, and so do values
        without a CI (``"no CI: ..."``).
    scores : DataFrame
        One row per summary value scored against a norm (:data:`SCORE_COLUMNS`); ``mdc95``
        in the value's unit, ``mdc95_percent`` in percent points, ``mdc95_source``
        ``"published: <citation>"`` or ``"this measurement"`` (from the value's CI), see
        :func:`~medpose.scoring.score_metric`.
    repetitions : DataFrame
        The segmentation (:func:`medpose.temporal.segment_repetitions`) with a ``side`` column.
    score : float
        The protocol's 0-100 composite (NaN with :attr:`score_reason`).
    score_reason : str
    composite : Any
        The :class:`~medpose.scoring.CompositeResult` (None without a composite).
    rate : float
        Sampling rate of the angles, Hz.
    info : dict
        How it was computed (side selection, composite components...).

    A session run (:func:`medpose.protocol.execute_session`, ``Protocol.run(session)``) fills
    the keyword-only fields below as well; an assessment of one trial leaves them empty.

    trials : tuple of str
        The protocol's trials assessed (a session run); ``trial`` is then their names joined.
    quality : DataFrame
        Data quality per trial (:data:`QUALITY_COLUMNS`): missing keypoints, outliers removed,
        gaps filled, swaps repaired, frames at a joint limit, fit residual per keypoint.
    provenance : dict
        medpose version, protocol name, version and hash, the input files' hashes, the
        session date (never the patient id: that stays in the session run's result).
    registration : DataFrame or None
        ``navigation_check``: the registration (:data:`REGISTRATION_COLUMNS`): FRE, predicted
        TRE per target, each fiducial's residual and outlier flag, the gate's verdict.
    gate : GateResult or None
        The protocol's gate applied to the registration (:class:`medpose.QualityGate`).
    angles : DataFrame or None
        The joint angles (degrees, time in s as the index) the trial was assessed on, which
        the report draws (:meth:`to_report`); None where none were read (a registration).
    """

    protocol: str
    protocol_hash: str
    trial: str
    sides: tuple[str, ...]
    metrics: pd.DataFrame
    scores: pd.DataFrame
    repetitions: pd.DataFrame
    score: float
    score_reason: str
    composite: Any
    rate: float
    info: dict[str, Any] = field(default_factory=dict)
    trials: tuple[str, ...] = field(default=(), kw_only=True)
    quality: pd.DataFrame = field(default_factory=lambda: _empty(QUALITY_COLUMNS), kw_only=True)
    provenance: dict[str, Any] = field(default_factory=dict, kw_only=True)
    registration: pd.DataFrame | None = field(default=None, kw_only=True)
    gate: Any = field(default=None, kw_only=True)
    angles: pd.DataFrame | None = field(default=None, kw_only=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", explain_missing_ci(self.metrics))

    @property
    def score_mdc95(self) -> float:
        """MDC95 of :attr:`score` in points of the 0-100 scale, the scored metrics' SEMs
        propagated through the composite's formula (:mod:`medpose.scoring.composites`);
        NaN without a composite or where a component has no SEM."""
        mdc = getattr(self.composite, "mdc95", None)
        if mdc is None or math.isnan(self.score):
            return math.nan
        return float(np.ravel(mdc)[0])

    def summary(self) -> pd.DataFrame:
        """The summary rows of :attr:`metrics` (``repetition`` NaN)."""
        return self.metrics[self.metrics["repetition"].isna()].reset_index(drop=True)

    def value(self, metric: str, side: str | None = None) -> float:
        """The summary value of ``metric`` (its protocol key, ``"rom_knee_flexion"``).

        Raises
        ------
        KeyError
            No such metric (or side); the message lists the metric keys.
        """
        s = self.summary()
        rows = s[s["metric"] == metric]
        if side is not None:
            rows = rows[rows["side"] == side]
        if rows.empty:
            raise KeyError(
                f"{metric!r} (side {side!r}) not in this assessment; metrics: "
                f"{sorted(set(s['metric']))}"
            )
        return float(rows["value"].iloc[0])

    def __repr__(self) -> str:
        from ..report.labels import repetition_counts

        s = self.summary()
        score = "nan" if math.isnan(self.score) else f"{self.score:.1f}"
        lines = [
            f"Assessment({self.protocol}, trial {self.trial}, side(s) {', '.join(self.sides)}, "
            f"repetitions {repetition_counts(self.repetitions)}, score {score}/100"
            + (f" ({self.score_reason})" if self.score_reason else "")
            + ")"
        ]
        sc = self.scores
        flags = (
            {(m, str(x)): f for m, x, f in zip(sc["metric"], sc["side"], sc["flag"])}
            if len(sc)
            else {}
        )
        for row in s.itertuples(index=False):
            val = "nan" if math.isnan(row.value) else f"{row.value:.4g}"
            ci = (
                f" [{row.ci_low:.4g}, {row.ci_high:.4g}]"
                if math.isfinite(row.ci_low) and math.isfinite(row.ci_high)
                else ""
            )
            why = f"  ({row.reason})" if row.reason else ""
            flag = flags.get((row.metric, str(row.side)), "")
            flag = f"  {flag} norm" if flag in ("within", "below", "above") else ""
            name = row.metric
            if row.joint and row.joint not in name:  # a registration target, a fiducial
                name = f"{name} {row.joint}"
            if len(self.trials) > 1:
                name = f"{row.trial}: {name}"
            lines.append(f"  {name:<36} {row.side:<6} {val} {row.unit}{ci}{flag}{why}")
        lines += [f"  {line}" for line in self.missing_repetitions()]
        if self.gate is not None:
            lines.append(f"  gate: {self.gate}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..report.display import assessment_html

        return assessment_html(self)

    def missing_repetitions(self) -> list[str]:
        """One sentence per trial side with fewer repetitions than the protocol asks for (its
        ``repetitions_missing`` quality rows), e.g. ``"abduction_right (right): 2
        repetition(s) fewer than the protocol asks for"``."""
        q = self.quality
        short = q[(q["check"] == "repetitions_missing") & (q["value"].astype(float) > 0)]
        return [
            f"{t} ({n}): {v:.0f} repetition(s) fewer than the protocol asks for"
            for t, n, v in short[["trial", "name", "value"]].values
        ]

    def plot(self, ax: Any = None) -> Any:
        """The percent of normal of each scored metric, as bars on a matplotlib axis (the
        normal average dashed at 100 %); without a scored metric, the score's reason.  The
        angle curves, repetitions and comparisons are in :mod:`medpose.report.figures`."""
        import matplotlib.pyplot as plt

        from ..report.display import percent_of_normal

        ax = ax or plt.gca()
        percent_of_normal(self, ax)
        score = "n/a" if math.isnan(self.score) else f"{self.score:.1f}/100"
        ax.set_title(f"{self.protocol}, trial {self.trial}: score {score}", fontsize=8)
        return ax

    def to_report(
        self,
        path: str | os.PathLike[str],
        *,
        pdf: bool = True,
        study: Any = None,
        **options: Any,
    ) -> Any:
        """Write the clinical report: self-contained HTML and a PDF from the same template.

        ``path`` is a folder (``report.html``, ``report.pdf``) or a ``.html`` file; ``study``
        (a :class:`medpose.Study`) adds the progress over earlier sessions of the patient.
        ``options`` are those of :func:`medpose.report.write_report` (``angles``, ``patient``,
        ``date``, ``identifiers``, ``show_identifiers``, ``template``).  Returns its
        :class:`~medpose.report.render.ReportFiles`.
        """
        from ..report.render import write_report

        return write_report(self, path, pdf=pdf, study=study, **options)
