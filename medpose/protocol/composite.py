"""A protocol's 0-100 composite of its scores table, with the composite's MDC95, and the
published measurement error a score's MDC95 comes from.

Used by :func:`medpose.protocol.runner.run_protocol` (one trial) and by session runs (all the
protocol's trials): per weighted metric its lower (worse) percent over sides or trials, with
that row's SEM in percent points (``mdc95_percent / (1.96 sqrt 2)``), combined by
:func:`medpose.scoring.composite`, which propagates the SEMs (:mod:`medpose.scoring.composites`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import scoring
from ..errors import InputError

if TYPE_CHECKING:
    from .definition import Protocol

__all__ = ["COMPOSITE_FORMULAS", "NO_COMPOSITE", "composite_of", "published_reliability"]

#: The score reason of a protocol without a composite (not a missing score).
NO_COMPOSITE = "the protocol defines no composite"

#: Protocol composite formula -> :data:`medpose.scoring.FORMULAS` key.
COMPOSITE_FORMULAS = {
    "weighted_mean_capped_100": "weighted_mean_capped",
    "weighted_mean": "weighted_mean",
    "minimum": "min_capped",
}


def published_reliability(norm_key: str) -> dict[str, Any] | None:
    """The published measurement error (:func:`medpose.scoring.reliability_for`) of the
    measure a norm key names (``metric.source.joint`` or ``metric.source``), None where none
    is published."""
    parts = norm_key.split(".")
    try:
        return scoring.reliability_for(parts[0], parts[-1] if len(parts) > 2 else None)
    except InputError:
        return None


def composite_of(protocol: Protocol, scores: pd.DataFrame) -> tuple[Any, float, str]:
    """The protocol's composite of a scores table
    (:data:`medpose.protocol.assessment.SCORE_COLUMNS`): per metric its lower (worse) percent
    over sides or trials, with that row's SEM in percent points for the composite's MDC95.

    Returns
    -------
    tuple
        The :class:`~medpose.scoring.CompositeResult` (None without a composite), its value
        and its reason.
    """
    comp = protocol.spec.composite
    if comp is None:
        return None, math.nan, NO_COMPOSITE
    parts: dict[str, float] = {}
    sems: dict[str, float] = {}
    for key in comp.weights:
        rows = scores[scores["metric"] == key]
        p = rows["percent"].astype(float)
        p = p[np.isfinite(p)]
        parts[key] = float(p.min()) if not p.empty else math.nan
        mdc = float(rows.loc[p.idxmin(), "mdc95_percent"]) if not p.empty else math.nan
        sems[key] = mdc / (1.96 * math.sqrt(2.0))
    result = scoring.composite(parts, comp.weights, COMPOSITE_FORMULAS[comp.formula], sems=sems)
    return result, float(result), result.reasons[0]
