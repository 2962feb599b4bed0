"""Run a protocol on one trial's data: ``Protocol.load("deep_squat").run(x)``.

The steps, on the joint angles of one trial:

1. angles: a :class:`~medpose.data.KeypointSequence` is fitted with :func:`medpose.fit` and the
   protocol's ``steps.fit`` settings, its frames fitted poorly left out
   (:mod:`medpose.protocol.trial_inputs`); a :class:`~medpose.kinematics.fit.Fit`, a
   :class:`~medpose.data.JointAngles` or a DataFrame of angles (degrees, index time in s,
   ``attrs["rate_hz"]`` or an evenly spaced index) is used as it is;
2. sides: the trial's ``side`` (``both``: left and right; ``auto``: the side whose
   repetition signal (``steps.repetitions.signal``) has the larger range of motion);
3. repetitions: :func:`~medpose.temporal.segment_repetitions` on the signal of each side with
   the ``steps.repetitions`` settings;
4. metrics: each metric of the protocol on each side, per repetition (for ``rom``, the
   repetition extended to the rest level, the extreme opposite its peak between the
   neighbouring repetitions, since the segmentation trims ``rest_fraction`` of the range off
   its ends), summarised by the
   metric's ``aggregate`` (median by default) with a 95 % percentile bootstrap interval over
   the repetitions (:func:`~medpose.scoring.bootstrap_ci`, seed 0); with fewer than 3
   repetitions, and for a single value (a metric with ``over: trial``), the interval of the
   fit's keypoint noise propagated by Monte Carlo, where the data are a fit
   (:mod:`medpose.protocol.keypoint_metrics`), else NaN with the reason; a metric of a whole
   set (``consistency``, ``tempo``) or with ``over: trial`` has one value;
   ``symmetry_index`` compares the left and right summaries of the metric it is ``of``.
   Compensations and gait metrics are measured on the fitted skeleton's keypoints
   (:mod:`medpose.protocol.keypoint_metrics`).  A metric declared but not computed by medpose is NaN with the
   reason ``"not computed by this version"``, never a number.  Smoothness metrics
   (``sparc``, ``ldlj``, ``velocity_peaks``) take the angular speed, a cubic Savitzky-Golay
   derivative over max(0.1 s, 5 samples), the default window of the angular-velocity
   metrics too;
5. scores: each summary with a ``norm`` key scored by :func:`~medpose.scoring.score_metric`
   against :func:`~medpose.scoring.norm_for` (the key is ``metric.source.joint``, or
   ``metric.source`` for a whole-body test scored by the patient's age and sex);
6. composite: :func:`~medpose.scoring.composite` of the scored metrics' percents with the
   protocol's weights; a metric measured on both sides counts with its lower (worse) percent.
   The protocol's formula names map onto :data:`medpose.scoring.FORMULAS`
   (``weighted_mean_capped_100`` -> ``weighted_mean_capped``, ``minimum`` -> ``min_capped``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import scoring
from ..data import KeypointSequence
from ..errors import InputError, MedposeError
from ..temporal.repetitions import REPETITION_COLUMNS, segment_repetitions
from .assessment import METRIC_COLUMNS, QUALITY_COLUMNS, SCORE_COLUMNS, Assessment
from .capped import note_capped, note_left_out
from .clean import quality_rows
from .composite import COMPOSITE_FORMULAS, composite_of, published_reliability
from .criteria import criterion_rows, is_criterion
from .definition_schema import MetricSpec, TrialSpec
from .keypoint_metrics import KEYPOINT_INPUTS, KeypointSource, keypoint_metric
from .trial_inputs import trial_inputs
from .vocabulary import METRICS, bilateral_bases

if TYPE_CHECKING:
    from .definition import Protocol

__all__ = ["NOT_COMPUTED", "COMPOSITE_FORMULAS", "composite_of", "run_protocol"]

#: Reason given to a metric the protocol declares but medpose does not compute.
NOT_COMPUTED = "not computed by this version"
_SUFFIX = {"left": "_l", "right": "_r"}
_MIN_CI = 3
_AGGREGATE: dict[str, Callable[..., Any]] = {
    "median": np.median,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "sum": np.sum,
}


def _trial(protocol: Protocol, trial: str | None) -> TrialSpec:
    if trial is None:
        return protocol.trials[0]
    names = [t.name for t in protocol.trials]
    if trial not in names:
        raise InputError(f"{protocol.name}.run: trial {trial!r} not found; trials: {names}")
    return protocol.trial(trial)


def _sided(joint: str) -> bool:
    """Whether ``joint`` is a bilateral base (``knee_flexion``) that takes the side's suffix."""
    return joint in bilateral_bases()


def _dof(joint: str, side: str) -> str:
    """The angle column of ``joint`` on ``side``: a bilateral base takes the side's suffix; a
    joint with no side (``lumbar_flexion``) or with its suffix already is used as it is."""
    return joint + _SUFFIX[side] if _sided(joint) and side in _SUFFIX else joint


def _column(angles: pd.DataFrame, joint: str, side: str) -> np.ndarray | None:
    name = _dof(joint, side)
    return np.asarray(angles[name], dtype=float) if name in angles.columns else None


def _range(x: np.ndarray | None) -> float:
    if x is None or not np.isfinite(x).any():
        return -math.inf
    lo, hi = np.nanpercentile(x, [2.0, 98.0])
    return float(hi - lo)


def _sides(
    protocol: Protocol, spec: TrialSpec, side: str | None, angles: pd.DataFrame
) -> tuple[tuple[str, ...], dict[str, Any]]:
    chosen = side if side is not None else (spec.side or "both")
    if chosen not in ("left", "right", "both", "auto"):
        raise InputError(
            f"{protocol.name}.run: side {chosen!r} is unknown; expected left, right, both or auto"
        )
    if chosen == "both":
        return ("left", "right"), {}
    if chosen != "auto":
        return (chosen,), {}
    reps = protocol.spec.steps.repetitions
    signal = reps.signal if reps is not None else protocol.metrics[0].joint
    if signal is None:
        raise InputError(f"{protocol.name}.run: side 'auto' needs steps.repetitions.signal")
    ranges = {s: _range(_column(angles, signal, s)) for s in ("left", "right")}
    pick = max(ranges, key=lambda s: ranges[s])
    return (pick,), {"auto_side": pick, "auto_ranges_deg": ranges}


# ------------------------------------------------------------------------------ metrics
def symmetry_base(pair: MetricSpec, specs: Sequence[MetricSpec]) -> str:
    """The key of the metric a ``symmetry_index`` compares: the trial's metric named ``of`` on
    the same joint or keypoint (its own ``id`` if it has one, e.g. ``rom_shoulder_extension``)."""
    name = pair.of or "rom"
    for m in specs:
        if m.name == name and (m.joint, m.keypoint) == (pair.joint, pair.keypoint):
            return m.key
    return MetricSpec(name=name, joint=pair.joint, keypoint=pair.keypoint).key


def _row(
    trial: str, key: str, joint: str, side: str, rep: float, value: float, unit: str, why: str
) -> dict[str, Any]:
    return {
        "trial": trial,
        "metric": key,
        "joint": joint,
        "side": side,
        "repetition": rep,
        "value": float(value),
        "unit": unit,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "reason": why if not np.isfinite(value) else "",
    }


def _segments(x: np.ndarray, reps: pd.DataFrame, to_rest: bool = False) -> list[np.ndarray]:
    """The repetitions of ``x``; ``to_rest``: each extended to the extreme opposite its peak
    (the rest level) between the neighbouring repetitions, the segmentation's untrimmed ends."""
    starts = reps["start_frame"].to_numpy(int)
    ends = reps["end_frame"].to_numpy(int)
    out = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        # the direction needs a value inside and at an end (else: left as segmented)
        if to_rest and np.isfinite(x[a : b + 1]).any() and np.isfinite(x[[a, b]]).any():
            up = np.nanmean(x[a : b + 1]) >= np.nanmean(x[[a, b]])
            pick = np.nanargmin if up else np.nanargmax
            lo = int(ends[i - 1]) + 1 if i > 0 else 0
            hi = int(starts[i + 1]) - 1 if i + 1 < len(starts) else len(x) - 1
            if np.isfinite(x[lo : a + 1]).any():
                a = lo + int(pick(x[lo : a + 1]))
            if np.isfinite(x[b : hi + 1]).any():
                b = b + int(pick(x[b : hi + 1]))
        out.append(x[a : b + 1])
    return out


def _call(
    spec: MetricSpec, x: np.ndarray, reps: pd.DataFrame, rate: float, over_trial: bool
) -> scoring.MetricResult:
    """The metric on the repetitions of ``x`` (or the whole trial): a MetricResult."""
    info = METRICS[spec.name]
    func = getattr(scoring, spec.name)
    params = dict(spec.params)
    if spec.name == "tempo":
        return func(reps)
    if spec.name == "repetition_count":
        return scoring.MetricResult(
            "repetition_count", np.array(float(len(reps))), "count", ("",), {}
        )
    window = max(0.1, 5.0 / rate)  # cubic Savitzky-Golay over >= 0.1 s and >= 5 samples
    if spec.name in ("peak_angular_velocity", "mean_angular_velocity"):
        params.setdefault("window_s", window)
    if info.input == "speed":
        x = np.abs(scoring.angular_velocity(x, rate, window_s=window))
    if over_trial and spec.name == "movement_time" and reps is not None and not reps.empty:
        # a timed test (5xSTS): from the first repetition's start to the last one's end
        x = x[int(reps["start_frame"].min()) : int(reps["end_frame"].max()) + 1]
    parts: Any = [x] if over_trial else _segments(x, reps, to_rest=spec.name == "rom")
    if spec.name == "dtw_distance":
        template = np.mean(
            [np.interp(np.linspace(0, 1, 101), np.linspace(0, 1, p.size), p) for p in parts], axis=0
        )
        return func(parts, template, **params)
    if spec.name in ("rom", "consistency"):
        return func(parts, **params)
    return func(parts, rate, **params)


def _summary_value(
    spec: MetricSpec, reps: Any, rate: float, over_trial: bool, x: np.ndarray
) -> float:
    """The summary of the metric on the angle ``x`` (for the noise propagation)."""
    v = np.asarray(_call(spec, x, reps, rate, over_trial).value, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    return float(_AGGREGATE[spec.aggregate](v)) if v.size else math.nan


def _noise_ci(row: dict[str, Any], ci: tuple[float, float] | None) -> None:
    """A summary without a bootstrap interval takes the one propagated from the fit's noise."""
    if ci is None or not math.isfinite(row["value"]) or math.isfinite(row["ci_low"]):
        return
    row["ci_low"], row["ci_high"] = ci
    if row["reason"].startswith("no CI"):
        why = row["reason"].replace(f"at least {_MIN_CI} needed", f"bootstrap needs {_MIN_CI}")
        row["reason"] = why.replace("no CI", "CI from the fit's keypoint noise", 1)


def _per_minute(intervals: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Tempo (1/min) of onset-to-onset intervals (s): 60 over their mean."""
    return np.asarray(60.0 / np.mean(intervals, axis=axis))


def _summarise(
    rows: list[dict[str, Any]],
    spec: MetricSpec,
    trial: str,
    side: str,
    result: scoring.MetricResult,
    over_trial: bool,
    reps: pd.DataFrame | None = None,
) -> float:
    joint = spec.joint or spec.keypoint or ""
    v = np.atleast_1d(np.asarray(result.value, dtype=float))
    why = tuple(result.reasons) or ("",) * v.size
    if over_trial or (v.size == 1 and np.asarray(result.value).ndim == 0):
        rows.append(_row(trial, spec.key, joint, side, math.nan, v[0], result.unit, why[0]))
        if spec.name == "tempo" and reps is not None and len(reps) >= _MIN_CI:
            gaps = np.diff(np.asarray(reps["start_s"], dtype=float))  # onset-to-onset intervals
            ci = scoring.bootstrap_ci(gaps, stat=_per_minute, seed=0)
            rows[-1]["ci_low"], rows[-1]["ci_high"] = (float(c) for c in ci.value)
        return float(v[0])
    for i, val in enumerate(v):
        rows.append(_row(trial, spec.key, joint, side, float(i), val, result.unit, why[i]))
    finite = v[np.isfinite(v)]
    agg = _AGGREGATE[spec.aggregate]
    if finite.size == 0:
        reasons = sorted({r for r in why if r}) or ["no repetition"]
        summ = _row(
            trial, spec.key, joint, side, math.nan, math.nan, result.unit, "; ".join(reasons)
        )
        rows.append(summ)
        return math.nan
    value = float(agg(finite))
    summ = _row(trial, spec.key, joint, side, math.nan, value, result.unit, "")
    if finite.size >= _MIN_CI:
        ci = scoring.bootstrap_ci(finite, stat=agg, seed=0)
        summ["ci_low"], summ["ci_high"] = (float(c) for c in ci.value)
    else:
        summ["reason"] = f"no CI: {finite.size} repetition(s), at least {_MIN_CI} needed"
    rows.append(summ)
    return value


def _metric_rows(
    protocol: Protocol,
    trial: str,
    sides: tuple[str, ...],
    angles: pd.DataFrame,
    reps: dict[str, pd.DataFrame],
    rate: float,
    source: KeypointSource,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], float]]:
    rows: list[dict[str, Any]] = []
    done: dict[tuple[str, str], float] = {}  # (metric key, side) -> summary value
    per_rep: dict[tuple[str, str], np.ndarray] = {}  # ... -> its values per repetition
    specs = [m for m in protocol.metrics if m.trial in (None, trial)]
    pairs = [m for m in specs if m.name == "symmetry_index"]
    for spec in (m for m in specs if m.name != "symmetry_index" and not is_criterion(m.name)):
        joint = spec.joint or spec.keypoint or ""
        info = METRICS[spec.name]
        unit = info.unit
        needs_joint = info.input in ("angle", "speed")
        if info.input in KEYPOINT_INPUTS:  # compensations and gait, on the fitted keypoints
            for kv in keypoint_metric(spec, sides, source, reps, rate):
                if kv.result is None:
                    rows.append(
                        _row(trial, spec.key, "", kv.side, math.nan, math.nan, unit, kv.reason)
                    )
                    continue
                value = _summarise(rows, spec, trial, kv.side, kv.result, kv.over_trial)
                done[(spec.key, kv.side)] = value
                _noise_ci(rows[-1], kv.ci)
            continue
        # a joint with no side (lumbar_flexion) is measured once, on the first side's repetitions
        one = (spec.joint and not _sided(spec.joint)) or not (spec.joint or spec.keypoint)
        for side in ("",) if one else sides:
            if not spec.computable:
                rows.append(
                    _row(trial, spec.key, joint, side, math.nan, math.nan, unit, NOT_COMPUTED)
                )
                continue
            over_trial = spec.over == "trial"
            x = _column(angles, spec.joint, side) if spec.joint else None
            if needs_joint and (x is None or not np.isfinite(x).any()):
                if spec.keypoint and not spec.joint:
                    why = f"{NOT_COMPUTED} on a keypoint ({spec.keypoint})"
                elif x is None:
                    why = f"joint angle {_dof(joint, side)} missing from the data"
                elif source.unconstrained((_dof(joint, side),)):
                    # no keypoint the fit used lies beyond this joint (a Kinect's legs end at
                    # the ankle for the fit: its Foot joint is not used)
                    why = (
                        f"joint angle {_dof(joint, side)} not constrained by the keypoints "
                        "(none on the segment it moves)"
                    )
                else:
                    why = f"joint angle {_dof(joint, side)} is NaN in every frame"
                rows.append(_row(trial, spec.key, joint, side, math.nan, math.nan, unit, why))
                continue
            rep = reps.get(side) if side else next(iter(reps.values()), None)
            if not over_trial and (rep is None or rep.empty):
                why = "no repetition found"
                rows.append(_row(trial, spec.key, joint, side, math.nan, math.nan, unit, why))
                continue
            short = spec.repetitions_missing(0 if rep is None else len(rep))
            if short:
                rows.append(_row(trial, spec.key, joint, side, math.nan, math.nan, unit, short))
                continue
            try:
                res = _call(spec, x if x is not None else np.zeros(0), rep, rate, over_trial)
            except MedposeError as e:
                rows.append(_row(trial, spec.key, joint, side, math.nan, math.nan, unit, str(e)))
                continue
            done[(spec.key, side)] = _summarise(rows, spec, trial, side, res, over_trial, rep)
            per_rep[(spec.key, side)] = np.asarray(res.value, dtype=float).reshape(-1)
            if x is not None and info.frame_noise_ci and not math.isfinite(rows[-1]["ci_low"]):
                # no bootstrap (one value, or < 3 repetitions): the fit's angle noise
                dof = _dof(str(spec.joint), side)
                stat = partial(_summary_value, spec, rep, rate, over_trial)
                _noise_ci(rows[-1], source.angle_interval(stat, x, dof))
    for spec in pairs:
        joint = spec.joint or ""
        base = symmetry_base(spec, specs)
        left, right = done.get((base, "left")), done.get((base, "right"))
        if not spec.computable:
            why = NOT_COMPUTED
        elif left is None or right is None:
            valued = [s for s, v in (("left", left), ("right", right)) if v is not None]
            why = f"needs {base} on both sides; measured: {', '.join(valued) or 'neither side'}"
        else:
            res = scoring.symmetry_index(left, right)
            v = float(np.asarray(res.value, dtype=float).reshape(-1)[0])
            why = res.reasons[0] if res.reasons else ""
            rows.append(_row(trial, spec.key, joint, "both", math.nan, v, res.unit, why))
            base_spec = next((m for m in specs if m.key == base), spec)
            lv, rv = per_rep.get((base, "left")), per_rep.get((base, "right"))
            if math.isfinite(v) and lv is not None and rv is not None and lv.size > 1:
                ci = scoring.symmetry_index_ci(lv, rv, stat=_AGGREGATE[base_spec.aggregate])
                rows[-1]["ci_low"], rows[-1]["ci_high"] = (float(c) for c in ci.value)
            continue
        rows.append(
            _row(
                trial,
                spec.key,
                joint,
                "both",
                math.nan,
                math.nan,
                METRICS["symmetry_index"].unit,
                why,
            )
        )
    return rows, done


# ------------------------------------------------------------------------------ scores
def _norm(key: str, age: float | None, sex: str | None) -> pd.Series:
    parts = key.split(".")
    if len(parts) == 2:  # metric.source of a whole-body test: the row of the patient's group
        table = scoring.load_norms()
        named = table.loc[table["key"].astype(str).str.startswith(key + "."), "metric"]
        if named.empty:
            raise InputError(f"norm key {key!r} not found; no row's key starts with it")
        row = scoring.norm_for(str(named.iloc[0]), age=age, sex=sex, source=parts[1])
        if str(row["key"]).startswith(key + "."):
            return row
        raise InputError(f"norm key {key!r} not found; nearest row {row['key']!r}")
    if len(parts) < 3:
        raise InputError(f"norm key {key!r}: expected metric.source.joint or metric.source")
    row = scoring.norm_for(parts[0], parts[-1], age=age, sex=sex, source=parts[1])
    if str(row["key"]) != key:
        raise InputError(f"norm key {key!r} not found; nearest row {row['key']!r}")
    return row


def _score_rows(
    protocol: Protocol, metrics: pd.DataFrame, age: float | None, sex: str | None
) -> tuple[pd.DataFrame, dict[str, float]]:
    rows: list[dict[str, Any]] = []
    percents: dict[str, float] = {}
    summary = metrics[metrics["repetition"].isna()]
    for spec in protocol.metrics:
        if spec.norm is None:
            continue
        for r in summary[summary["metric"] == spec.key].itertuples(index=False):
            out = {
                "metric": spec.key,
                "joint": r.joint,
                "side": r.side,
                "value": r.value,
                "unit": r.unit,
                "percent": math.nan,
                "z": math.nan,
                "flag": "n/a",
                "norm": spec.norm,
                "source": "",
                "mdc95": math.nan,
                "mdc95_percent": math.nan,
                "mdc95_source": "",
                "reason": r.reason,
            }
            try:
                norm = _norm(spec.norm, age, sex)
                ci = None
                if math.isfinite(r.ci_low) and math.isfinite(r.ci_high):
                    ci = [r.ci_low, r.ci_high]
                rel = published_reliability(spec.norm)
                s = scoring.score_metric(r.value, norm, ci=ci, reliability=rel)
            except MedposeError as e:
                out["reason"] = str(e)
            else:
                out.update(
                    percent=float(s.percent),
                    z=float(s.z),
                    flag=str(s.flag),
                    source=str(norm.get("source", "")),
                    mdc95=float(s.mdc95),
                    mdc95_percent=float(s.mdc95_percent),
                    mdc95_source=s.mdc95_source,
                    reason=s.reasons["percent"][0] or r.reason,
                )
            rows.append(out)
            p = out["percent"]
            if math.isfinite(p):
                percents[spec.key] = min(percents.get(spec.key, math.inf), p)
            else:
                percents.setdefault(spec.key, math.nan)
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS)), percents


# ------------------------------------------------------------------------------ entry
def run_protocol(
    protocol: Protocol,
    data: Any,
    *,
    trial: str | None = None,
    side: str | None = None,
    age: float | None = None,
    sex: str | None = None,
    keypoints: KeypointSequence | None = None,
) -> Assessment:
    """Assess one trial's data with ``protocol`` (the steps in the module docstring).

    Parameters
    ----------
    protocol : Protocol
    data : KeypointSequence, Fit, JointAngles or DataFrame
        One trial: 3D keypoints (fitted first with the protocol's fit settings) or joint
        angles in degrees.
    trial : str, optional
        The protocol's trial the data are (default: the trial of the side measured when the
        protocol has one trial per side, else its first trial).
    side : {"left", "right", "both", "auto"}, optional
        Overrides the trial's side; ``"auto"`` picks the side whose repetition signal has the
        larger range of motion (2nd-98th percentile) and records it in ``info``.
    age, sex : optional
        The patient's group for the norms (:func:`~medpose.scoring.norm_for`).
    keypoints : KeypointSequence, optional
        The trial's 3D keypoints the criteria are measured on (default: the data's own, or a
        Fit's fitted ones); a session passes its cleaned keypoints with their fit.

    Returns
    -------
    Assessment

    Raises
    ------
    InputError
        For data of an unknown type, an unknown trial or side, or a DataFrame without a rate.
    """
    spec = _trial(protocol, trial)
    angles, rate, source, points = trial_inputs(protocol, data, keypoints)
    sides, info = _sides(protocol, spec, side, angles)
    if trial is None and len(sides) == 1 and spec.side not in (sides[0], "both", "auto", None):
        # a protocol with one trial per side: the trial of the side measured
        spec = next((t for t in protocol.trials if t.side == sides[0]), spec)
    settings = protocol.spec.steps.repetitions
    reps: dict[str, pd.DataFrame] = {}
    tables = []
    for s in sides:
        if settings is None:
            break
        x = _column(angles, settings.signal, s)
        kwargs = settings.model_dump(exclude={"signal", "n_points"})
        if x is None or not np.isfinite(x).any():
            info[f"repetitions_{s}"] = f"signal {settings.signal} missing or NaN"
            continue
        try:
            table = segment_repetitions(x, rate, **kwargs)
        except MedposeError as e:
            info[f"repetitions_{s}"] = str(e)
            continue
        reps[s] = table
        tables.append(table.assign(side=s))
    repetitions = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=[*REPETITION_COLUMNS, "side"])
    )
    # fewer repetitions than the trial asks for: reported, the values still computed
    short = [max(0, spec.min_repetitions - len(reps.get(s, ()))) for s in sides]
    quality = quality_rows(spec.name, "repetitions_missing", sides, short, "count")
    rows, _ = _metric_rows(protocol, spec.name, sides, angles, reps, rate, KeypointSource(source))
    rows = note_capped(rows, source, reps)  # a range a joint limit cut short says so
    rows = note_left_out(rows, source, reps)  # as does one read around frames left out
    mine = [m for m in protocol.metrics if m.trial in (None, spec.name)]
    noise = float(getattr(source, "noise_mm", math.nan))
    rows += criterion_rows(mine, spec.name, sides, points, reps, rate, noise)
    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    scores, percents = _score_rows(protocol, metrics, age, sex)
    result, value, why = composite_of(protocol, scores)
    info["composite_percents"] = percents
    return Assessment(
        protocol=f"{protocol.name} {protocol.version}",
        protocol_hash=protocol.hash,
        trial=spec.name,
        sides=sides,
        metrics=metrics,
        scores=scores,
        repetitions=repetitions,
        score=value,
        score_reason=why,
        composite=result,
        rate=rate,
        info=info,
        quality=pd.DataFrame(quality if settings is not None else [], columns=QUALITY_COLUMNS),
        angles=angles,
    )
