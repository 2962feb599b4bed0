"""Criterion metrics of a protocol, measured on the trial's 3D keypoints per repetition.

The per-frame angles are those of :mod:`medpose.scoring.criteria`; this module names them as
protocol metrics (:data:`~medpose.scoring.criteria.CRITERION_METRICS`), reads them per
repetition and summarises them like the runner's other metrics (``aggregate`` over
repetitions, 95 % bootstrap interval with at least 3 repetitions).  The keypoints are the
trial's own (a :class:`~medpose.data.KeypointSequence`, cleaned by the protocol; a session
passes its cleaned keypoints with their fit), a :class:`~medpose.kinematics.fit.Fit`'s fitted
ones when no keypoints are given, or joint angles posed on the default skeleton by forward
kinematics (:func:`keypoints_of`); the lab's up direction is the superior
axis that :func:`medpose.kinematics.fit.alignment_rotation` finds in them.

Each repetition of the runner's segmentation is widened to the frames between its neighbours
(the whole trial for a single repetition), since the segmentation trims the ends of the
repetition signal's range.  In that window each criterion is read at a key frame, the median
over +-0.1 s around it:

* deep squat (``thigh_angle``, ``torso_tibia_angle``, ``knee_over_foot``, ``arm_trunk_angle``):
  the deepest frame, where the midpoint of the hips is lowest;
* ``humeral_elevation``: the top, where the side's humeral elevation is highest;
* ``elevation_plane``: instead the median over the frames with the humerus between 45 and 135
  degrees from the trunk, where the plane of elevation is defined (it is not with the arm
  near vertical);
* compensations (``trunk_lateral_flexion``, ``shoulder_girdle_elevation``): the change from
  the window's first 0.2 s to the top (trunk: its absolute value), so a posture held
  throughout is not counted.

A value read at a key frame next to frames without keypoints (a gap the clean-up left, or frames
fitted poorly and left out) says how many in its reason (:data:`~.capped.NEAR`): the extreme
the key frame stands for may lie among them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from .. import scoring
from ..data import JointAngles, KeypointSequence
from ..errors import MedposeError
from ..kinematics.fit import Fit, alignment_rotation
from ..kinematics.fk import forward_kinematics
from ..kinematics.skeleton import Skeleton
from ..scoring import criteria as cr
from ..scoring import points
from ..scoring.criteria import CRITERION_METRICS
from ..temporal.filters import finite_runs
from .capped import NEAR

__all__ = ["is_criterion", "keypoints_of", "criterion_rows"]

_SQUAT = ("thigh_angle", "torso_tibia_angle", "knee_over_foot", "arm_trunk_angle")
_BILATERAL = (*_SQUAT, "humeral_elevation", "elevation_plane", "shoulder_girdle_elevation")
_HALF_WINDOW_S = 0.1
_PLANE_RANGE = (45.0, 135.0)
_CHANGE = ("trunk_lateral_flexion", "shoulder_girdle_elevation")
_MIN_CI = 3
_AGGREGATE: dict[str, Callable[..., Any]] = {
    "median": np.median,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "sum": np.sum,
}
_S = {"left": "l", "right": "r"}


def is_criterion(name: str) -> bool:
    """Whether ``name`` is a criterion metric of this module (computed here, not by the runner)."""
    return name in CRITERION_METRICS


def keypoints_of(data: Any) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """The 3D keypoints ``(T, K, 3)`` and names of a trial's data.

    A :class:`~medpose.data.KeypointSequence` gives its own, a
    :class:`~medpose.kinematics.fit.Fit` its fitted ones; joint angles (``JointAngles`` or a
    DataFrame) holding every rotation of the default skeleton are posed on it by forward
    kinematics (translations 0 where absent: angles between segments do not depend on them);
    None otherwise.
    """
    if isinstance(data, KeypointSequence):
        return (np.asarray(data.positions, float), tuple(data.names)) if data.ndim == 3 else None
    if isinstance(data, Fit):
        return np.asarray(data.fitted, float), tuple(data.keypoint_names)
    if isinstance(data, JointAngles):
        data = pd.DataFrame(np.asarray(data.values, float), columns=list(data.names))
    if not isinstance(data, pd.DataFrame):
        return None
    sk = Skeleton.default()
    q = np.zeros((len(data), len(sk.dof_names)))
    for j, name in enumerate(sk.dof_names):
        if name in data.columns:
            q[:, j] = np.asarray(data[name], dtype=float)
        elif sk.rotational[j]:
            return None
    return np.asarray(forward_kinematics(sk, q)), tuple(sk.keypoint_names)


def _series(name: str, P: Mapping[str, np.ndarray], side: str, up: np.ndarray) -> np.ndarray:
    s = _S.get(side, "")
    pelvis = (P["hip_l"] + P["hip_r"]) / 2.0
    forward, right = cr.body_axes(P["hip_l"], P["hip_r"], up)
    if name == "thigh_angle":
        return cr.thigh_angle(P[f"hip_{s}"], P[f"knee_{s}"], up)
    if name == "torso_tibia_angle":
        return cr.torso_tibia_angle(pelvis, P["neck"], P[f"knee_{s}"], P[f"ankle_{s}"], up, forward)
    if name == "knee_over_foot":
        medial = right if s == "l" else -right
        return cr.knee_over_foot(P[f"knee_{s}"], P[f"ankle_{s}"], up, medial)
    if name == "arm_trunk_angle":
        return cr.arm_trunk_angle(
            P[f"shoulder_{s}"], P[f"wrist_{s}"], pelvis, P["neck"], up, forward
        )
    if name == "humeral_elevation":
        return cr.humeral_elevation(P[f"shoulder_{s}"], P[f"elbow_{s}"], pelvis, P["neck"])
    if name == "elevation_plane":
        return cr.elevation_plane(P[f"shoulder_{s}"], P[f"elbow_{s}"], up, forward)
    if name == "trunk_lateral_flexion":
        return cr.trunk_lateral_flexion(pelvis, P["neck"], up, right)
    return cr.shoulder_girdle_elevation(P["neck"], P[f"shoulder_{s}"], up)


def _key_signal(name: str, P: Mapping[str, np.ndarray], side: str, up: np.ndarray) -> np.ndarray:
    """The series whose smallest value in a repetition marks criterion ``name``'s key frame:
    the hips' height for the squat's criteria, else minus the humeral elevation."""
    if name in _SQUAT:
        return ((P["hip_l"] + P["hip_r"]) / 2.0) @ up
    s = _S.get(side, "")
    sides = [s] if s else ["l", "r"]
    pelvis = (P["hip_l"] + P["hip_r"]) / 2.0
    arms = [
        cr.humeral_elevation(P[f"shoulder_{k}"], P[f"elbow_{k}"], pelvis, P["neck"]) for k in sides
    ]
    with warnings.catch_warnings():  # a frame with no arm seen (a gap the clean-up left)
        warnings.simplefilter("ignore", RuntimeWarning)
        return -np.nanmax(arms, axis=0)


def _key_frame(key: np.ndarray, a: int, b: int) -> int:
    w = key[a : b + 1]
    return a + int(np.nanargmin(w)) if np.isfinite(w).any() else -1


def _windows(reps: pd.DataFrame, n: int) -> list[tuple[int, int]]:
    """Each repetition widened to the frames between its neighbours (the whole trial for one)."""
    starts = reps["start_frame"].to_numpy(int)
    ends = reps["end_frame"].to_numpy(int)
    out = []
    for i in range(len(starts)):
        lo = int(ends[i - 1]) + 1 if i > 0 else 0
        hi = int(starts[i + 1]) - 1 if i + 1 < len(starts) else n - 1
        out.append((min(lo, int(starts[i])), max(hi, int(ends[i]))))
    return out


def _per_repetition(
    name: str,
    P: Mapping[str, np.ndarray],
    side: str,
    up: np.ndarray,
    reps: pd.DataFrame,
    rate: float,
) -> list[tuple[float, str, int]]:
    x = _series(name, P, side, up)
    key = _key_signal(name, P, side, up) if name != "elevation_plane" else x
    h = max(1, round(_HALF_WINDOW_S * rate))
    out: list[tuple[float, str, int]] = []
    for a, b in _windows(reps, len(x)):
        if name == "elevation_plane":  # defined with the arm away from vertical
            e = _series("humeral_elevation", P, side, up)[a : b + 1]
            mid = (e >= _PLANE_RANGE[0]) & (e <= _PLANE_RANGE[1]) & np.isfinite(x[a : b + 1])
            if not mid.any():
                out.append((math.nan, f"the arm never between {_PLANE_RANGE} degrees", 0))
            else:
                out.append((float(np.median(x[a : b + 1][mid])), "", 0))
            continue
        k = _key_frame(key, a, b)
        win = x[max(a, k - h) : min(b, k + h) + 1] if k >= 0 else x[:0]
        if not np.isfinite(win).any():
            out.append((math.nan, "keypoints missing at the key frame", 0))
            continue
        v = float(np.nanmedian(win))
        near = _missing_near(key, k, h, a, b)
        if name in _CHANGE:
            start = x[a : min(b, a + 2 * h) + 1]
            if not np.isfinite(start).any():
                out.append((math.nan, "keypoints missing at the repetition's start", 0))
                continue
            v -= float(np.nanmedian(start))
            v = abs(v) if name == "trunk_lateral_flexion" else v
        out.append((v, _near_note(name, near) if near else "", near))
    return out


def _near_note(name: str, n: int, reps: str = "") -> str:
    where = "deepest point" if name in _SQUAT else "top"
    return f"{n} {NEAR} {reps}(keypoints missing, or fitted poorly): the {where} may be among them"


def _missing_near(key: np.ndarray, k: int, h: int, a: int, b: int) -> int:
    """Frames without the key-frame signal ``key`` in the runs of missing frames (within the
    window ``a``..``b``) that reach the key frame ``k``'s +-``h`` frames or the frame next to
    them: the extreme the key frame stands for may lie among them."""
    gone = ~np.isfinite(key[a : b + 1])
    lo, hi = max(0, k - a - h - 1), min(len(gone) - 1, k - a + h + 1)
    if not gone[lo : hi + 1].any():
        return 0
    runs = finite_runs(gone)  # [start, stop) of each run of missing frames
    touch = (runs[:, 0] <= hi) & (runs[:, 1] > lo)
    return int((runs[touch, 1] - runs[touch, 0]).sum())


def _summary(
    name: str,
    side: str,
    up: np.ndarray,
    reps: pd.DataFrame,
    rate: float,
    agg: Callable[..., Any],
    P: Mapping[str, np.ndarray],
) -> float:
    """The summary over the repetitions of criterion ``name`` on keypoints ``P``."""
    v = np.array([x for x, _, _ in _per_repetition(name, P, side, up, reps, rate)])
    return float(agg(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def _row(
    trial: str, key: str, side: str, rep: float, value: float, unit: str, why: str
) -> dict[str, Any]:
    return {
        "trial": trial,
        "metric": key,
        "joint": "",
        "side": side,
        "repetition": rep,
        "value": float(value),
        "unit": unit,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "reason": why,
    }


def criterion_rows(
    specs: list[Any],
    trial: str,
    sides: tuple[str, ...],
    keypoints: tuple[np.ndarray, tuple[str, ...]] | None,
    reps: Mapping[str, pd.DataFrame],
    rate: float,
    noise_mm: float = math.nan,
) -> list[dict[str, Any]]:
    """Rows of the runner's metric table (per repetition, then the summary) for the criterion
    metrics among ``specs`` (:class:`~medpose.protocol.definition_schema.MetricSpec`).

    A summary of fewer than 3 repetitions (no bootstrap) takes the 95 % interval of the
    keypoints' noise ``noise_mm`` (mm per axis, the fit's :attr:`~medpose.kinematics.fit.Fit.noise_mm`)
    propagated by Monte Carlo (:func:`~medpose.scoring.points.noise_interval`, 20 draws, seed 0).
    """
    rows: list[dict[str, Any]] = []
    specs = [s for s in specs if s.name in CRITERION_METRICS]
    if not specs:
        return rows
    P: dict[str, np.ndarray] = {}
    up = np.array([math.nan] * 3)
    why_all = ""
    if keypoints is None:
        why_all = "needs 3D keypoints, or joint angles with every rotation of the skeleton"
    else:
        X, names = keypoints
        P = {n: X[:, i] for i, n in enumerate(names)}
        try:
            up = alignment_rotation(X, names)[1]
        except MedposeError as e:
            why_all = str(e)
    for spec in specs:
        unit = CRITERION_METRICS[spec.name][0]
        for side in sides if spec.name in _BILATERAL else ("",):
            rep = reps.get(side) if side else next(iter(reps.values()), None)
            s = _S.get(side, "")
            need = ["hip_l", "hip_r", "neck"] + [
                f"{j}_{s}" for j in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist") if s
            ]
            missing = [n for n in need if n not in P]
            why = why_all or (f"keypoints {', '.join(missing)} missing" if missing else "")
            if not why and (rep is None or rep.empty):
                why = "no repetition found"
            if why:
                rows.append(_row(trial, spec.key, side, math.nan, math.nan, unit, why))
                continue
            values = _per_repetition(spec.name, P, side, up, rep, rate)
            for i, (val, w, _) in enumerate(values):
                rows.append(_row(trial, spec.key, side, float(i), val, unit, w))
            arr = np.array([val for val, _, _ in values])
            finite = arr[np.isfinite(arr)]
            if finite.size == 0:
                reasons = sorted({w for _, w, _ in values if w}) or ["no repetition"]
                rows.append(
                    _row(trial, spec.key, side, math.nan, math.nan, unit, "; ".join(reasons))
                )
                continue
            agg = _AGGREGATE[spec.aggregate]
            summ = _row(trial, spec.key, side, math.nan, float(agg(finite)), unit, "")
            if finite.size >= _MIN_CI:
                ci = scoring.bootstrap_ci(finite, stat=agg, seed=0)
                summ["ci_low"], summ["ci_high"] = (float(c) for c in ci.value)
            else:
                stat = partial(_summary, spec.name, side, up, rep, rate, agg)
                low, high, _ = points.noise_interval(stat, P, noise_mm)
                if math.isfinite(low):
                    summ["ci_low"], summ["ci_high"] = low, high
                    summ["reason"] = (
                        f"CI from the fit's keypoint noise ({noise_mm:.3g} mm): "
                        f"{finite.size} repetition(s), bootstrap needs {_MIN_CI}"
                    )
                else:
                    summ["reason"] = (
                        f"no CI: {finite.size} repetition(s), at least {_MIN_CI} needed"
                    )
            near = [n for v, _, n in values if n and math.isfinite(v)]
            if near:  # the summary says how many of its repetitions were read so
                note = _near_note(spec.name, sum(near), f"in {len(near)} of {finite.size} "
                                  "repetition(s) ")  # fmt: skip
                summ["reason"] = "; ".join(w for w in (summ["reason"], note) if w)
            rows.append(summ)
    return rows
