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
  runner's segmentation; none when it found no repetition) or over the trial (``over:
  trial``, or no repetition step) as its peak: the 98th percentile of the value
  (:data:`PEAK_PERCENTILE`; of its magnitude for the two-sided ones: trunk lean, trunk
  rotation, head tilt).  Pelvic drop and heel lift are read
  from the patient's own level unless the protocol gives ``reference_deg`` / ``reference_mm``:
  per repetition the median over the 0.3 s of rest before it (standing on both feet), over a
  trial the trial's median obliquity (pelvic drop; a walk's mean posture).  Heel lift per
  repetition is the heel's height at the deepest point (median over +-0.2 s around the
  repetition's peak, where the FMS deep squat is judged) above that level: medians, so the
  frame-to-frame keypoint noise that lifts a peak by about 2 SD does not read as a lift, and
  references, so the constant per-keypoint bias of markerless keypoints (20-30 mm, which tilts
  the short hip line by up to 10 degrees) cancels; a heel further below that level than the
  noise allows is no reading (NaN with the reason, :data:`_SINK_MM`);
* gait metrics over the walk (:mod:`medpose.scoring.gait`): speed and cadence one value, step
  length one value per step of the side (summarised over the steps);
* a 95 % interval for a single (whole-trial) value: the fit's keypoint noise
  (``Fit.noise_mm``, per axis) propagated by Monte Carlo
  (:func:`medpose.scoring.points.noise_interval`, 20 draws, seed 0), and likewise the summary
  of fewer than 3 repetitions; for a joint-angle metric (``rom`` ``over: trial``, or of 1-2
  repetitions), the angle noise that the keypoint noise implies (:func:`angle_sd`, the fit's
  Gauss-Newton posterior) added to the angle (not for a speed or smoothness, see
  :attr:`~medpose.protocol.vocabulary.MetricInfo.frame_noise_ci`); 3 or more repetitions or
  steps get the runner's bootstrap instead.  A DoF a metric depends on that the keypoints do
  not constrain (``Fit.observable``) makes the metric NaN with that reason.
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
from ..scoring.derived_angles import DERIVED
from ..scoring.points import Points, as_points, noise_interval
from .definition_schema import MetricSpec
from .vocabulary import METRICS

__all__ = [
    "angle_sd",
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
#: Fewest repetitions the runner bootstraps over; fewer get the keypoint-noise interval.
_MIN_BOOTSTRAP = 3
#: Heel lift and pelvic drop per repetition are measured from the patient's level as the
#: repetition starts: the median over this stretch (s) of the rest before it (its first frame
#: at least), which averages the keypoint noise of about 10 frames at 30 Hz.
_REST_S = 0.3
#: Compensations read relative to the patient's own level (see :func:`_compensation`).
_RELATIVE = ("heel_lift", "pelvic_drop")
#: Heel lift per repetition is read at the deepest point: the median over this half-width (s)
#: around the repetition's peak, where the FMS deep squat is judged (Cook et al. 2014).
_BOTTOM_S = 0.2
#: A heel cannot go below the floor it stands on: a heel lift below -max(:data:`_SINK_MM`,
#: :data:`_SINK_NOISE` x the fit's keypoint noise) is no reading but keypoints of the lower leg
#: that sink with the posture, and is NaN with that reason.  20 mm is 3 SD of the heel-lift value
#: under 8 mm of markerless keypoint noise (tests/protocol/test_compensations_markerless.py:
#: about 6.7 mm); 2 x the noise per axis is about 2.4 SD of it for noisier keypoints.
_SINK_MM = 20.0
_SINK_NOISE = 2.0
#: Frames (evenly spaced among the fitted ones) at which :func:`angle_sd` linearises the fit.
_SD_FRAMES = 8


def angle_sd(fit: Any, frames: int = _SD_FRAMES) -> dict[str, float]:
    """Standard deviation (degrees) of each fitted joint angle under the fit's keypoint noise.

    The Gauss-Newton posterior of the fit's least-squares problem: at ``frames`` evenly spaced
    fitted frames, the Jacobian ``J`` (mm per degree, central differences of 0.05 degree or
    0.05 mm through forward kinematics) of the observed keypoints with respect to the
    constrained DoFs gives ``Cov = (J'J / noise^2 + diag(1 / prior_sd^2))^-1``, with
    ``noise = Fit.noise_mm`` per axis and the fit's posture prior; the SD of each DoF is the
    median over the frames of ``sqrt(Cov_dd)``.  Joint limits and smoothing, which only narrow
    the solution, are ignored, so this bounds the angle noise from above.  Empty when the fit
    measured no noise.
    """
    from ..kinematics.fk import forward_kinematics

    noise = float(getattr(fit, "noise_mm", math.nan))
    q = np.asarray(fit.q, dtype=float)
    ok = np.flatnonzero(np.isfinite(q).all(axis=1))
    if not (math.isfinite(noise) and noise > 0) or ok.size == 0:
        return {}
    pick = ok[np.unique(np.linspace(0, ok.size - 1, min(frames, ok.size)).round().astype(int))]
    sk = fit.skeleton
    free = np.flatnonzero(np.asarray(fit.observable, bool))
    kp = [sk.keypoint_names.index(n) for n in fit.keypoint_names]
    seen = np.isfinite(np.asarray(fit.residual, dtype=float)[pick])  # (F, K) observed
    h = 0.05
    n = free.size
    base = np.repeat(q[pick], 2 * n, axis=0).reshape(pick.size, 2 * n, -1)
    idx = np.arange(n)
    base[:, idx, free] += h
    base[:, n + idx, free] -= h
    x = np.asarray(forward_kinematics(sk, base.reshape(-1, q.shape[1])), dtype=float)
    x = x.reshape(pick.size, 2 * n, -1, 3)[:, :, kp]
    J = (x[:, :n] - x[:, n:]) / (2 * h)  # (F, n, K, 3)
    psd = getattr(fit, "prior_sd", None)
    prior = np.zeros(n) if psd is None else 1.0 / np.asarray(psd, float)[free] ** 2
    sds = []
    for f in range(pick.size):
        Jf = J[f][:, seen[f]].reshape(n, -1)  # (n, 3 K_seen)
        info = Jf @ Jf.T / noise**2 + np.diag(prior)
        try:
            cov = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            continue
        sds.append(np.sqrt(np.clip(np.diag(cov), 0.0, None)))
    if not sds:
        return {}
    med = np.median(np.asarray(sds), axis=0)
    return {sk.dof_names[d]: float(v) for d, v in zip(free, med)}


@dataclass
class KeypointSource:
    """The trial's keypoints for these metrics, posed once and shared by all of them."""

    data: Any
    _points: dict[str, np.ndarray] | None = field(default=None, repr=False)
    noise_mm: float = math.nan
    why: str = ""
    _sd: dict[str, float] | None = field(default=None, repr=False)

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

    def angle_interval(
        self, stat: Callable[[np.ndarray], float], angle: np.ndarray, dof: str
    ) -> tuple[float, float] | None:
        """95 % interval of ``stat(angle)`` (a whole-trial metric of one joint angle) under the
        fit's angle noise: :func:`angle_sd` of ``dof`` added independently to every frame, 20
        Monte-Carlo draws (:func:`~medpose.scoring.points.noise_interval`); None without a fit
        or a noise estimate.  A derived angle (``shoulder_elevation``) takes the root sum of
        squares of its inputs' SDs: its derivative with respect to each is at most 1."""
        if self._sd is None:
            self._sd = angle_sd(self.data) if hasattr(self.data, "q") else {}
        base, side = dof[:-2], dof[-2:]
        if base in DERIVED:  # each input moves it by at most its own change: a bound
            sd = math.sqrt(sum(self._sd.get(f"{b}{side}", math.nan) ** 2 for b in DERIVED[base]))
        else:
            sd = self._sd.get(dof, math.nan)
        if not math.isfinite(sd):
            return None

        def safe(p: Points) -> float:
            try:
                return stat(p["angle"])
            except MedposeError:
                return math.nan

        lo, hi, _ = noise_interval(safe, {"angle": np.asarray(angle, float)}, sd, draws=_DRAWS)
        return (lo, hi) if math.isfinite(lo) else None

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
    spec: MetricSpec, side: str, source: KeypointSource, reps: pd.DataFrame | None, rate: float
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
    over_trial = spec.over == "trial" or reps is None
    relative = spec.name in _RELATIVE and not ({"reference_mm", "reference_deg"} & set(params))
    if over_trial:

        def whole(p: Points) -> float:
            v = series(p)
            if relative and spec.name == "pelvic_drop" and np.isfinite(v).any():
                v = v - np.nanmedian(v)  # the patient's mean obliquity over the trial
            return _peak(v, magnitude)

        value = whole(pts)
        why = "" if math.isfinite(value) else "keypoints missing in every frame"
        res = scoring.MetricResult(spec.name, np.asarray(value), METRICS[spec.name].unit, (why,))
        lo, hi, _ = noise_interval(whole, pts, source.noise_mm, draws=_DRAWS)
        return KeypointValue(side, res, True, (lo, hi))
    assert reps is not None
    lead = max(1, round(_REST_S * rate))
    bounds = list(zip(reps["start_frame"].to_numpy(int), reps["end_frame"].to_numpy(int)))
    rests = [max(a - lead, bounds[i - 1][1] + 1 if i else 0) for i, (a, _) in enumerate(bounds)]
    half = max(1, round(_BOTTOM_S * rate))
    peaks = reps["peak_frame"].to_numpy(int) if "peak_frame" in reps else None
    bottom = spec.name == "heel_lift" and peaks is not None
    noise = source.noise_mm if math.isfinite(source.noise_mm) else 0.0
    sink = max(_SINK_MM, _SINK_NOISE * noise) if bottom else math.inf

    def per_rep(v: np.ndarray) -> np.ndarray:
        out = []
        for i, ((a, b), r) in enumerate(zip(bounds, rests)):
            seg = v[a : b + 1]
            if relative:  # the level as the repetition starts (standing on both feet)
                rest = v[min(r, a) : a + 1]
                seg = seg - (np.nanmedian(rest) if np.isfinite(rest).any() else math.nan)
            if bottom:  # the heel at the deepest point
                assert peaks is not None
                lo = int(np.clip(peaks[i] - half - a, 0, len(seg) - 1))
                mid = seg[lo : peaks[i] + half + 1 - a]
                out.append(float(np.nanmedian(mid)) if np.isfinite(mid).any() else math.nan)
            else:
                out.append(_peak(seg, magnitude))
        return np.asarray(out, dtype=float)

    def read(v: np.ndarray) -> np.ndarray:  # a heel below the floor is no reading
        return np.where(v < -sink, math.nan, v)

    raw = per_rep(x)
    values = read(raw).tolist()
    reasons = [
        ""
        if math.isfinite(v)
        else f"the heel reads {-h:.0f} mm below its standing level at the deepest point, beyond "
        f"the keypoint noise ({sink:.0f} mm): below the floor, so the keypoints of the lower leg "
        "sink with the posture and no heel lift can be read"
        if h < -sink
        else "keypoints missing in the repetition"
        for v, h in zip(values, raw)
    ]
    res = scoring.MetricResult(
        spec.name, np.asarray(values), METRICS[spec.name].unit, tuple(reasons)
    )
    if np.isfinite(values).sum() >= _MIN_BOOTSTRAP:
        return KeypointValue(side, res, False)  # the runner's bootstrap over repetitions
    agg = getattr(np, spec.aggregate)  # median, mean, max, min, sum

    def summary(p: Points) -> float:
        v = read(per_rep(series(p)))
        v = v[np.isfinite(v)]
        return float(agg(v)) if v.size else math.nan

    lo, hi, _ = noise_interval(summary, pts, source.noise_mm, draws=_DRAWS)
    return KeypointValue(side, res, False, (lo, hi))


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
        if not gait and spec.over != "trial" and rep is not None and rep.empty:
            out.append(KeypointValue(side, None, reason="no repetition found"))
            continue
        try:
            value = (
                _gait(spec, side, source, rate)
                if gait
                else _compensation(spec, side, source, rep, rate)
            )
        except MedposeError as e:
            value = KeypointValue(side, None, reason=str(e))
        out.append(value)
    return out
