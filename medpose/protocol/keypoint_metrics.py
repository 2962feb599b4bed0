"""The runner's compensation and gait metrics, measured on the fitted skeleton's keypoints.

:func:`keypoint_metric` gives, for one declared metric (``trunk_lean``, ``knee_valgus``...,
``gait_speed``, ``cadence``, ``step_length``) and each side the trial measures, the values the
runner summarises (:mod:`medpose.protocol.runner`):

* the keypoints: forward kinematics of the fitted pose (:func:`medpose.scoring.points.as_points`
  of the :class:`~medpose.kinematics.fit.Fit`), so every anatomical keypoint (ISB thorax points,
  acromions, heels) is there, in the skeleton's axes with the lab vertical +Y; joint angles of
  every DoF of the default skeleton are posed the same way; a DataFrame of angles has no
  keypoints (NaN with the reason);
* a compensation per frame (:mod:`medpose.scoring.compensation`), read per repetition (the
  runner's segmentation) or over the trial (``over: trial``, or no repetition step) as its
  peak: the 98th percentile of the value (:data:`PEAK_PERCENTILE`; of its magnitude for the
  two-sided ones: trunk lean, trunk rotation, head tilt);
* gait metrics over the walk (:mod:`medpose.scoring.gait`): speed and cadence one value, step
  length one value per step of the side (summarised over the steps);
* a 95 % interval for a single (whole-trial) value: the fit's keypoint noise
  (``Fit.noise_mm``, per axis) propagated by Monte Carlo
  (:func:`medpose.scoring.points.noise_interval`, 20 draws, seed 0); values over repetitions
  or steps get the runner's bootstrap instead.  A DoF a metric depends on that the keypoints
  do not constrain (``Fit.observable``) makes the metric NaN with that reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import scoring
from ..data import JointAngles, KeypointSequence
from ..errors import MedposeError
from ..scoring.compensation import PEAK_PERCENTILE
from ..scoring.points import Points, as_points, noise_interval
from .definition_schema import MetricSpec
from .vocabulary import METRICS

__all__ = [
    "KEYPOINT_INPUTS",
    "COMPENSATIONS",
    "GAIT",
    "KeypointSource",
    "KeypointValue",
    "keypoint_metric",
]

#: :attr:`MetricInfo.input` of the metrics this module computes.
KEYPOINT_INPUTS = ("compensation", "gait")
#: Compensation metric -> (per side, read as the peak of its magnitude, DoFs it rests on).
COMPENSATIONS: dict[str, tuple[bool, bool, tuple[str, ...]]] = {
    "trunk_lean": (False, True, ("lumbar_flexion", "lumbar_bending")),
    "trunk_rotation": (False, True, ("lumbar_rotation",)),
    "pelvic_drop": (True, False, ("pelvis_list",)),
    "shoulder_hiking": (True, False, ("lumbar_bending",)),
    "head_tilt": (False, True, ("neck_bending",)),
    "knee_valgus": (True, False, ("hip_adduction_{s}", "hip_rotation_{s}", "knee_flexion_{s}")),
    "heel_lift": (True, False, ("ankle_dorsiflexion_{s}",)),
}
#: Gait metric -> per side.
GAIT = {"gait_speed": False, "cadence": False, "step_length": True}
_GAIT_DOFS = ("hip_flexion_{s}", "knee_flexion_{s}", "ankle_dorsiflexion_{s}")
_S = {"left": "l", "right": "r"}
_DRAWS = 20


@dataclass
class KeypointSource:
    """The trial's keypoints for these metrics, posed once and shared by all of them."""

    data: Any
    _points: dict[str, np.ndarray] | None = field(default=None, repr=False)
    noise_mm: float = math.nan
    why: str = ""

    def points(self) -> dict[str, np.ndarray] | None:
        """Named keypoints ``(T, 3)``, +Y up; None (see :attr:`why`) without keypoints."""
        if self._points is None and not self.why:
            if not isinstance(self.data, (JointAngles, KeypointSequence)) and not hasattr(
                self.data, "q"
            ):
                self.why = "needs keypoints or a Fit; the data are a table of joint angles"
                return None
            try:
                self._points, self.noise_mm = as_points(self.data)
            except MedposeError as e:
                self.why = str(e)
        return self._points

    def unconstrained(self, dofs: tuple[str, ...]) -> list[str]:
        """The DoFs among ``dofs`` that a fit's keypoints did not constrain."""
        obs = getattr(self.data, "observable", None)
        names = getattr(self.data, "dof_names", None)
        if obs is None or names is None:
            return []
        seen = dict(zip(names, np.asarray(obs, bool)))
        return [d for d in dofs if d in seen and not seen[d]]


@dataclass(frozen=True)
class KeypointValue:
    """One side's values of a metric for the runner: ``result`` (per repetition or step, or one
    value when ``over_trial``) and the 95 % interval of a single value; or a ``reason``."""

    side: str
    result: scoring.MetricResult | None
    over_trial: bool = True
    ci: tuple[float, float] | None = None
    reason: str = ""


def _peak(x: np.ndarray, magnitude: bool) -> float:
    x = np.abs(x) if magnitude else x
    x = x[np.isfinite(x)]
    return float(np.percentile(x, PEAK_PERCENTILE)) if x.size else math.nan


def _compensation(
    spec: MetricSpec, side: str, source: KeypointSource, reps: pd.DataFrame | None
) -> KeypointValue:
    per_side, magnitude, _ = COMPENSATIONS[spec.name]
    func = getattr(scoring, spec.name)
    params = dict(spec.params)
    pts = source.points()
    assert pts is not None

    def series(p: Points) -> np.ndarray:
        res = func(p, side, **params) if per_side else func(p, **params)
        return np.asarray(res.value, dtype=float)

    x = series(pts)
    over_trial = spec.over == "trial" or reps is None or reps.empty
    if over_trial:
        value = _peak(x, magnitude)
        why = "" if math.isfinite(value) else "keypoints missing in every frame"
        res = scoring.MetricResult(spec.name, np.asarray(value), METRICS[spec.name].unit, (why,))
        lo, hi, _ = noise_interval(
            lambda p: _peak(series(p), magnitude), pts, source.noise_mm, draws=_DRAWS
        )
        return KeypointValue(side, res, True, (lo, hi))
    assert reps is not None
    values, reasons = [], []
    for a, b in zip(reps["start_frame"].to_numpy(int), reps["end_frame"].to_numpy(int)):
        v = _peak(x[a : b + 1], magnitude)
        values.append(v)
        reasons.append("" if math.isfinite(v) else "keypoints missing in the repetition")
    res = scoring.MetricResult(
        spec.name, np.asarray(values), METRICS[spec.name].unit, tuple(reasons)
    )
    return KeypointValue(side, res, False)


def _gait(spec: MetricSpec, side: str, source: KeypointSource, rate: float) -> KeypointValue:
    pts = source.points()
    assert pts is not None
    if spec.name == "step_length":
        return KeypointValue(side, scoring.step_length(pts, rate, side), False)
    func: Callable[..., scoring.MetricResult] = getattr(scoring, spec.name)
    res = func(pts, rate)
    lo, hi, _ = noise_interval(lambda p: float(func(p, rate)), pts, source.noise_mm, draws=_DRAWS)
    return KeypointValue(side, res, True, (lo, hi))


def keypoint_metric(
    spec: MetricSpec,
    sides: tuple[str, ...],
    source: KeypointSource,
    reps: dict[str, pd.DataFrame],
    rate: float,
) -> list[KeypointValue]:
    """The values of one compensation or gait metric, one :class:`KeypointValue` per side
    (``""`` for a whole-body metric), see the module docstring."""
    gait = spec.name in GAIT
    per_side = GAIT[spec.name] if gait else COMPENSATIONS[spec.name][0]
    out = []
    for side in sides if per_side else ("",):
        pts = source.points()
        if pts is None:
            out.append(KeypointValue(side, None, reason=source.why))
            continue
        s = _S.get(side, "")
        tmpl = _GAIT_DOFS if gait else COMPENSATIONS[spec.name][2]
        dofs = tuple(dict.fromkeys(d.format(s=k) for d in tmpl for k in ((s,) if s else "rl")))
        loose = source.unconstrained(dofs)
        if loose:
            why = f"{', '.join(loose)} not constrained by the keypoints"
            out.append(KeypointValue(side, None, reason=why))
            continue
        rep = reps.get(side) if side else next(iter(reps.values()), None)
        try:
            value = (
                _gait(spec, side, source, rate) if gait else _compensation(spec, side, source, rep)
            )
        except MedposeError as e:
            value = KeypointValue(side, None, reason=str(e))
        out.append(value)
    return out
