"""Gait events, speed, cadence and step length from 3D keypoints.

Events follow the coordinate-based method of Zeni, Richards & Higginson 2008 (Gait Posture
27:710-714): in the walking direction, relative to the pelvis, a **heel strike** is a maximum of
the heel's position (the foot furthest forwards) and a **toe off** a minimum of the toe's (the
foot furthest back).  Zeni et al. used a sacral marker; medpose uses the midpoint of the hip
joint centres (``pelvis``, else ``hip_r`` and ``hip_l``), which moves with the sacrum in the
horizontal plane.  The walking direction is the horizontal direction of the pelvis's travel
from the first to the last frame (for walking on the spot, a treadmill, the pelvis's anterior
direction).

*Points* are as in :mod:`medpose.scoring.points`: medpose keypoint names to positions in mm,
``(T, 3)``, in a frame whose up direction is ``up`` (default ``"+y"``, the skeleton frame of
:func:`~medpose.scoring.points.as_points`).  Definitions (Perry & Burnfield 2010, *Gait
Analysis*, 2nd ed., ch. 1; Whittle 2007, *Gait Analysis*, 4th ed., ch. 2):

* gait speed, m/s: pelvis travel along the walking direction between the first and the last
  heel strike of the same foot (whole strides), divided by the time between them;
* cadence, steps/min: two steps per stride, 120 / the mean stride time (heel strike to heel
  strike of the same foot, both feet);
* step length of a side, m: at each heel strike of that foot, the distance along the walking
  direction from the other foot's heel at its preceding heel strike (the distance between
  successive footprints).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from ..errors import InputError
from .points import Points, Up, heading, pick, up_vector
from .result import MetricResult

__all__ = ["gait_events", "walking_direction", "gait_speed", "cadence", "step_length", "gait_steps"]

_SIDES = {"right": "r", "left": "l"}
#: Events closer than this (s) are one event: strides last 0.8 to 1.6 s, steps at least 0.3 s.
MIN_STRIDE_S = 0.6
#: A peak must rise by this fraction of the signal's range (P5 to P95) above its surroundings.
MIN_PROMINENCE = 0.3


def _frames(points: Points, func: str) -> int:
    pel, _ = pick(points, "pelvis", ("hip_r", "hip_l"))
    if pel.ndim != 2:
        raise InputError(f"{func}: points must be (T, 3) per keypoint, found {pel.shape}")
    return pel.shape[0]


def walking_direction(points: Points, up: Up = "+y") -> np.ndarray:
    """Horizontal unit vector of the pelvis's travel (first to last finite frame); the pelvis's
    median anterior direction when it travels less than 0.2 m (walking on the spot)."""
    u = up_vector(up)
    pel, _ = pick(points, "pelvis", ("hip_r", "hip_l"))
    ok = np.isfinite(pel).all(axis=-1)
    if ok.sum() < 2:
        raise InputError("walking_direction: fewer than 2 frames with the pelvis")
    idx = np.flatnonzero(ok)
    d = pel[idx[-1]] - pel[idx[0]]
    d = d - (d @ u) * u
    if np.linalg.norm(d) < 200.0:
        ant, _ = heading(points, u)
        d = np.nanmedian(ant, axis=0)
        d = d - (d @ u) * u
    n = float(np.linalg.norm(d))
    if not n > 0:
        raise InputError("walking_direction: cannot tell the walking direction")
    return d / n


def _peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """Maxima of ``x`` (Zeni's extremum picking), as fractional frames: each refined by the
    vertex of the parabola through it and its two neighbours (sub-frame timing)."""
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return np.zeros(0)
    lo, hi = np.percentile(x[ok], [5.0, 95.0])
    y = np.where(ok, x, -np.inf)
    found, _ = find_peaks(
        y,
        distance=max(1, round(MIN_STRIDE_S * fs)),
        prominence=max(MIN_PROMINENCE * (hi - lo), 1e-9),
    )
    found = found[np.isfinite(y[found]) & np.isfinite(y[found - 1]) & np.isfinite(y[found + 1])]
    a, b, c = y[found - 1], y[found], y[found + 1]
    curv = a - 2.0 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curv < 0, 0.5 * (a - c) / curv, 0.0)
    return found + np.clip(shift, -0.5, 0.5)


def _at(x: np.ndarray, frame: float) -> np.ndarray:
    """``x`` (T, ...) linearly interpolated at a fractional frame."""
    i = int(np.clip(np.floor(frame), 0, len(x) - 2))
    w = frame - i
    return (1.0 - w) * x[i] + w * x[i + 1]


def gait_events(points: Points, fs: float, up: Up = "+y") -> pd.DataFrame:
    """Heel strikes and toe offs of both feet (Zeni et al. 2008).

    Parameters
    ----------
    points : mapping of str to ndarray (T, 3)
        mm; the pelvis (or both hips), ``heel_r/l`` and ``big_toe_r/l`` (else ``small_toe``, else
        the heel for the toe).
    fs : float
        Sampling rate, Hz.
    up : str or 3-vector

    Returns
    -------
    DataFrame
        One row per event, in time order: ``side`` (left/right), ``event`` (heel_strike,
        toe_off), ``frame`` (the nearest), ``time_s`` (sub-frame: the vertex of the parabola
        through the extreme sample and its neighbours).  Extremes at the first or last frame
        are not events.
    """
    if not (np.isfinite(fs) and fs > 0):
        raise InputError(f"gait_events: fs must be a positive rate in Hz, found {fs!r}")
    _frames(points, "gait_events")
    u = up_vector(up)
    d = walking_direction(points, u)
    pel, _ = pick(points, "pelvis", ("hip_r", "hip_l"))
    rows = []
    for side, s in _SIDES.items():
        heel, _ = pick(points, f"heel_{s}")
        toe, _ = pick(points, f"big_toe_{s}", f"small_toe_{s}", f"heel_{s}")
        for event, x in (("heel_strike", (heel - pel) @ d), ("toe_off", -((toe - pel) @ d))):
            for f in _peaks(x, fs):
                rows.append({"side": side, "event": event, "frame": round(f), "time_s": f / fs})
    df = pd.DataFrame(rows, columns=["side", "event", "frame", "time_s"])
    return df.sort_values(["frame", "side"], ignore_index=True)


def gait_steps(points: Points, fs: float, up: Up = "+y") -> pd.DataFrame:
    """One row per step: ``side`` (the foot that strikes), ``frame``, ``time_s``, ``step_time_s``
    (since the other foot's preceding heel strike) and ``step_length_m``."""
    ev = gait_events(points, fs, up)
    hs = ev[ev["event"] == "heel_strike"].reset_index(drop=True)
    d = walking_direction(points, up)
    heels = {s: pick(points, f"heel_{_SIDES[s]}")[0] @ d for s in _SIDES}
    rows = []
    for i in range(1, len(hs)):
        cur, prev = hs.iloc[i], hs.iloc[i - 1]
        if cur["side"] == prev["side"]:
            continue  # a missed event of the other foot: no step
        length = _at(heels[cur["side"]], cur["time_s"] * fs) - _at(
            heels[prev["side"]], prev["time_s"] * fs
        )
        rows.append(
            {
                "side": cur["side"],
                "frame": int(cur["frame"]),
                "time_s": float(cur["time_s"]),
                "step_time_s": float(cur["time_s"] - prev["time_s"]),
                "step_length_m": float(length) / 1000.0,
            }
        )
    cols = ["side", "frame", "time_s", "step_time_s", "step_length_m"]
    return pd.DataFrame(rows, columns=cols)


def _scalar(name: str, value: float, unit: str, why: str, details: dict) -> MetricResult:
    v = float(value) if not why else float("nan")
    return MetricResult(
        name, np.asarray(v), unit, (why if not np.isfinite(v) else "",), {}, details
    )


def gait_speed(points: Points, fs: float, up: Up = "+y") -> MetricResult:
    """Walking speed, m/s: pelvis travel between the first and last heel strike of one foot
    (the foot with more strides), over the time between them (whole strides, so the pelvis's
    within-stride oscillation cancels).  NaN with a reason without a whole stride."""
    hs = gait_events(points, fs, up)
    hs = hs[hs["event"] == "heel_strike"]
    counts = hs["side"].value_counts()
    if counts.empty or counts.max() < 2:
        return _scalar("gait_speed", np.nan, "m/s", "fewer than 2 heel strikes of one foot", {})
    times = hs[hs["side"] == counts.idxmax()]["time_s"].to_numpy(float)
    pel, _ = pick(points, "pelvis", ("hip_r", "hip_l"))
    d = walking_direction(points, up)
    a, b = times[0], times[-1]
    value = (_at(pel, b * fs) - _at(pel, a * fs)) @ d / 1000.0 / (b - a)
    why = "" if np.isfinite(value) else "pelvis missing at a heel strike"
    return _scalar("gait_speed", value, "m/s", why, {"strides": np.asarray(len(times) - 1)})


def cadence(points: Points, fs: float, up: Up = "+y") -> MetricResult:
    """Steps per minute: 120 / the mean stride time (two steps per stride), the strides being
    the intervals between successive heel strikes of the same foot, both feet pooled; whole
    strides, so the alternating step times of an asymmetric gait do not bias it.  NaN with a
    reason without a whole stride."""
    hs = gait_events(points, fs, up)
    hs = hs[hs["event"] == "heel_strike"]
    strides = np.concatenate(
        [np.diff(hs.loc[hs["side"] == side, "time_s"].to_numpy(float)) for side in _SIDES]
    )
    if strides.size == 0:
        why = "fewer than 2 heel strikes of one foot: no whole stride"
        return _scalar("cadence", np.nan, "steps/min", why, {})
    value = 120.0 / float(np.mean(strides))
    return _scalar("cadence", value, "steps/min", "", {"strides": np.asarray(strides.size)})


def step_length(points: Points, fs: float, side: str, up: Up = "+y") -> MetricResult:
    """Step length of ``side``, m, one value per step (see :func:`gait_steps`): shape ``(R,)``.

    An empty result (no step of that foot) raises no error: its value has shape ``(0,)``.
    """
    if side not in _SIDES:
        raise InputError(f"step_length: side must be 'left' or 'right', found {side!r}")
    st = gait_steps(points, fs, up)
    v = st.loc[st["side"] == side, "step_length_m"].to_numpy(float)
    reasons = tuple("" if np.isfinite(x) else "heel missing at a heel strike" for x in v)
    return MetricResult("step_length", v, "m", reasons, {"side": side})
