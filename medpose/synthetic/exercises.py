"""Synthetic rehabilitation exercises with known joint angles.

:func:`make_exercise` returns the true joint angles of every degree of freedom of a
:class:`~medpose.kinematics.Skeleton` over a trial of several repetitions, with the
time windows of the repetitions.  Forward kinematics of those angles gives the true
keypoints; :mod:`medpose.synthetic.observation` and :mod:`medpose.synthetic.rig`
turn them into what a measurement system would see.

Movement model
--------------
Each repetition moves the exercise's main joints from a start angle to a peak angle
and back along minimum-jerk segments (Flash & Hogan 1985, J Neurosci 5:1688-1703:
``s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5``), with a hold at the peak and a rest
between repetitions.  ``submovements > 0`` splits every outward and return movement
into ``submovements + 1`` overlapping minimum-jerk submovements of unequal
amplitude (the superposition model of Rohrer & Hogan 2003, Biol Cybern 88:190-201),
which makes the movement less smooth while it still reaches exactly the same angles.
Tremor is a sinusoid of 4-6 Hz (frequency drawn from the seed).  An impaired side
reaches ``(1 - impairment)`` of the range and its movements take ``(1 + impairment)``
times as long; compensations (trunk lean away from the impaired side, shoulder
hiking on it) grow with the movement.  Gait uses periodic splines through sagittal
hip, knee and ankle curves shaped like the published normative gait curves
(Winter 2009, *Biomechanics and Motor Control of Human Movement*, 4th ed., ch. 4;
Perry & Burnfield 2010, *Gait Analysis*, 2nd ed.).

The root translation is set so the feet stay on the floor (standing exercises and
gait: the lowest foot point at height 0; standing exercises also keep the feet from
sliding) or the pelvis stays on the seat (seated exercises).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from ..data import JointAngles
from ..errors import InputError, LimitError
from ..kinematics.fk import forward_kinematics
from ..kinematics.skeleton import Skeleton, default_ranges

__all__ = ["ExerciseTruth", "EXERCISES", "make_exercise", "minimum_jerk", "repetition_profile"]


@dataclass(frozen=True, kw_only=True)
class ExerciseTruth:
    """The true angles of one synthetic exercise trial.

    Attributes
    ----------
    angles : JointAngles
        Every DoF of the skeleton, degrees (rotations) and mm (``pelvis_tx/ty/tz``).
    repetitions : list of (start_s, end_s)
        Time window of each repetition (for gait: each stride of the right leg,
        heel strike to heel strike).
    exercise : str
    params : dict
        Every parameter used (JSON-able), with the derived ones (tremor frequency,
        peak angles per side, ...).
    """

    angles: JointAngles
    repetitions: list[tuple[float, float]]
    exercise: str
    params: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- profiles
def minimum_jerk(tau: Any) -> np.ndarray:
    """Minimum-jerk position profile ``10 tau^3 - 15 tau^4 + 6 tau^5`` for ``tau`` clipped to [0, 1].

    Flash & Hogan 1985, J Neurosci 5(7):1688-1703, eq. (A2) with zero boundary velocity
    and acceleration.
    """
    s = np.clip(np.asarray(tau, dtype=float), 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s * s)


def _segments(
    t: np.ndarray, t0: float, dur: float, n_sub: int, rng: np.random.Generator
) -> np.ndarray:
    """0 -> 1 over [t0, t0 + dur] as a sum of ``n_sub + 1`` overlapping minimum-jerk submovements."""
    if n_sub <= 0:
        return minimum_jerk((t - t0) / dur)
    m = n_sub + 1
    amp = rng.dirichlet(np.full(m, 2.0))
    # each submovement lasts 'sub' seconds; consecutive ones overlap by 40%
    sub = dur / (1 + 0.6 * (m - 1))
    starts = t0 + 0.6 * sub * np.arange(m)
    return np.sum(amp[:, None] * minimum_jerk((t[None, :] - starts[:, None]) / sub), axis=0)


def repetition_profile(
    t: np.ndarray,
    rep_starts: Sequence[float] | np.ndarray,
    up_s: float,
    hold_s: float,
    down_s: float,
    submovements: int = 0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Movement fraction in [0, 1] over time: for each repetition 0 -> 1 (``up_s``), hold
    (``hold_s``), 1 -> 0 (``down_s``).

    Parameters
    ----------
    t : ndarray (T,)
        Times in s.
    rep_starts : sequence of float
        Start time of each repetition, s.
    up_s, hold_s, down_s : float
        Durations, s.
    submovements : int
        Extra overlapping submovements per outward / return movement.
    rng : numpy.random.Generator
        Draws the submovement amplitudes.
    """
    rng = rng or np.random.default_rng(0)
    out = np.zeros_like(t, dtype=float)
    for t0 in rep_starts:
        out += _segments(t, t0, up_s, submovements, rng) - _segments(
            t, t0 + up_s + hold_s, down_s, submovements, rng
        )
    return out


# --------------------------------------------------------------------------- exercise table
# main: (dof template, start, peak) - the first entry is the one range_deg sets; the others
# scale with it.  base: the posture held throughout.  "{s}" is a side suffix.
EXERCISES: dict[str, dict[str, Any]] = {
    "shoulder_abduction": dict(
        main=[("shoulder_abduction_{s}", 5.0, 150.0), ("elbow_flexion_{s}", 5.0, 5.0)],
        base={},
        tempo_s=4.0,
        anchor="feet",
        compensation="arm",
    ),
    "shoulder_flexion": dict(
        main=[("shoulder_flexion_{s}", 0.0, 150.0), ("elbow_flexion_{s}", 5.0, 5.0)],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=4.0,
        anchor="feet",
        compensation="arm",
    ),
    "elbow_flexion": dict(
        main=[("elbow_flexion_{s}", 5.0, 130.0)],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=3.0,
        anchor="feet",
        compensation="arm",
    ),
    "seated_knee_extension": dict(
        main=[("knee_flexion_{s}", 90.0, 5.0)],
        base={
            "hip_flexion_{s}": 90.0,
            "shoulder_abduction_{s}": 5.0,
            "elbow_flexion_{s}": 60.0,
            "shoulder_flexion_{s}": 20.0,
        },
        tempo_s=4.0,
        anchor="pelvis",
        compensation="trunk",
    ),
    "squat": dict(
        main=[
            ("knee_flexion_{s}", 0.0, 95.0),
            ("hip_flexion_{s}", 0.0, 100.0),
            ("ankle_dorsiflexion_{s}", 0.0, 18.0),
            ("pelvis_tilt", 0.0, 25.0),
            ("shoulder_flexion_{s}", 0.0, 80.0),
            ("lumbar_flexion", 0.0, 10.0),
        ],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=4.0,
        anchor="feet",
        compensation="trunk",
    ),
    "sit_to_stand": dict(
        main=[
            ("knee_flexion_{s}", 90.0, 0.0),
            ("hip_flexion_{s}", 90.0, 0.0),
            ("ankle_dorsiflexion_{s}", 10.0, 0.0),
            ("shoulder_abduction_{s}", 5.0, 5.0),
        ],
        lean=[("pelvis_tilt", 30.0), ("lumbar_flexion", 15.0), ("hip_flexion_{s}", 30.0)],
        base={"elbow_flexion_{s}": 10.0},
        tempo_s=5.0,
        anchor="feet",
        compensation="trunk",
    ),
    "gait": dict(main=[], base={}, tempo_s=1.1, anchor="floor", compensation="trunk"),
}

_SIDES = ("r", "l")


def _dofs(skeleton: Any) -> tuple[str, ...]:
    return tuple(skeleton.dof_names)


def _ranges(skeleton: Any) -> dict[str, tuple[float, float]]:
    return dict(default_ranges(skeleton))


def _check_in_range(
    dof: str, values: Sequence[float], ranges: dict[str, tuple[float, float]], what: str
) -> None:
    if dof not in ranges:
        return
    lo, hi = ranges[dof]
    bad = [v for v in values if v < lo - 1e-9 or v > hi + 1e-9]
    if bad:
        raise LimitError(
            f"make_exercise: {what} puts {dof} at {bad[0]:g} deg, outside its range "
            f"[{lo:g}, {hi:g}] deg"
        )


def _gait_curves() -> dict[str, CubicSpline]:
    """Periodic splines of sagittal joint angles (deg) over the gait cycle (0-1, right heel strike = 0).

    Knots read off the shape of the normative curves in Winter 2009 (fig. 4.x, natural cadence)
    and Perry & Burnfield 2010: hip ~30 deg flexed at heel strike, ~-10 deg extension at 50%,
    knee loading-response flexion ~18 deg and swing peak ~60 deg at ~72%, ankle plantarflexion
    ~-18 deg just after toe-off at ~62%.  Shapes, not exact means.
    """
    knots = {
        "hip": ([0, 10, 30, 50, 60, 75, 87, 100], [30, 25, 5, -10, 0, 25, 33, 30]),
        "knee": ([0, 15, 40, 60, 72, 85, 97, 100], [3, 18, 4, 38, 62, 35, 2, 3]),
        "ankle": ([0, 7, 30, 45, 62, 75, 90, 100], [0, -6, 7, 10, -18, -2, 2, 0]),
    }
    return {
        k: CubicSpline(np.array(x) / 100.0, y, bc_type="periodic") for k, (x, y) in knots.items()
    }


def _as_range(range_deg: Any, start: float, peak: float, dof: str) -> tuple[float, float]:
    if range_deg is None:
        return start, peak
    arr = np.atleast_1d(np.asarray(range_deg, dtype=float))
    if arr.size == 1:
        return start, float(arr[0])
    if arr.size == 2:
        return float(arr[0]), float(arr[1])
    raise InputError(
        f"make_exercise: range_deg for {dof} must be a peak angle or (start, peak) in degrees, "
        f"found {range_deg!r}"
    )


def make_exercise(
    name: str,
    *,
    skeleton: Any = None,
    rate: float = 30.0,
    repetitions: int = 5,
    tempo_s: float | None = None,
    range_deg: Any = None,
    impaired_side: str | None = None,
    impairment: float = 0.0,
    submovements: int = 0,
    tremor_deg: float = 0.0,
    trunk_lean_deg: float = 0.0,
    shoulder_hiking_deg: float = 0.0,
    speed_mm_s: float = 1200.0,
    seed: int = 0,
) -> ExerciseTruth:
    """True joint angles of a synthetic exercise trial.

    Parameters
    ----------
    name : str
        One of :data:`EXERCISES`: ``shoulder_abduction``, ``shoulder_flexion``,
        ``elbow_flexion``, ``seated_knee_extension``, ``squat``, ``sit_to_stand``, ``gait``.
        Arm and leg exercises move both sides at once.
    skeleton : Skeleton, optional
        Default ``Skeleton.default()``.  Its ``dofs`` are the columns of the result.
    rate : float
        Sampling rate, Hz.
    repetitions : int
        Number of repetitions (gait: strides).
    tempo_s : float, optional
        Duration of one repetition of the unimpaired side, s (default per exercise:
        3-5 s; gait: stride time 1.1 s).  Split 35% out, 10% hold, 35% back, 20% rest.
    range_deg : float or (start, peak), optional
        Angles of the exercise's main DoF (e.g. ``shoulder_abduction_*``), degrees.
        For gait: a scale factor of the normative curves (1 = normal).
    impaired_side : {"left", "right"}, optional
    impairment : float in [0, 0.9]
        The impaired side reaches ``(1 - impairment)`` of the range and moves
        ``(1 + impairment)`` times slower; in gait its sagittal curves are scaled by
        ``(1 - impairment)`` about their mean and the stride time by ``(1 + impairment / 2)``.
    submovements : int
        Extra overlapping submovements per movement (0 = one smooth minimum-jerk
        movement); applied to the impaired side, or to both if none is given.
    tremor_deg : float
        Amplitude of a 4-6 Hz sinusoidal tremor on the main DoFs (of the impaired side
        if any), degrees.  Angles are clipped to the joint ranges afterwards.
    trunk_lean_deg : float
        Lumbar lateral bending away from the impaired side (right if none) at the peak of
        each repetition, degrees (``lumbar_bending``; skipped if the skeleton has no such DoF).
    shoulder_hiking_deg : float
        Shoulder elevation on the impaired side at the peak (``shoulder_elevation_*``;
        if the skeleton has none, the trunk bends towards the other side by this amount
        instead, which raises the shoulder), degrees.
    speed_mm_s : float
        Gait only: walking speed (mm/s), default 1.2 m/s.
    seed : int

    Returns
    -------
    ExerciseTruth

    Raises
    ------
    InputError
        Unknown exercise (the message lists the known ones), bad side, impairment outside
        [0, 0.9], non-positive rate/tempo, negative counts.
    LimitError
        If a requested angle lies outside the skeleton's joint range (message names the
        DoF and its range).
    """
    if name not in EXERCISES:
        raise InputError(f"make_exercise: unknown exercise {name!r}; known: {sorted(EXERCISES)}")
    spec = EXERCISES[name]
    if impaired_side not in (None, "left", "right"):
        raise InputError(
            f"make_exercise: impaired_side must be 'left', 'right' or None, found {impaired_side!r}"
        )
    if not 0.0 <= float(impairment) <= 0.9:
        raise InputError(f"make_exercise: impairment must be in [0, 0.9], found {impairment!r}")
    if not rate > 0 or (tempo_s is not None and not tempo_s > 0):
        raise InputError(
            f"make_exercise: rate and tempo_s must be positive, found rate={rate!r}, tempo_s={tempo_s!r}"
        )
    if int(repetitions) != repetitions or repetitions < 1 or submovements < 0 or tremor_deg < 0:
        raise InputError(
            f"make_exercise: repetitions must be >= 1 and submovements, tremor_deg >= 0, found "
            f"{repetitions!r}, {submovements!r}, {tremor_deg!r}"
        )
    skeleton = skeleton if skeleton is not None else Skeleton.default()
    dofs = _dofs(skeleton)
    ranges = _ranges(skeleton)
    rng = np.random.default_rng(seed)
    imp = float(impairment) if impaired_side else 0.0
    imp_s = {"left": "l", "right": "r"}.get(impaired_side or "")
    tempo = float(tempo_s or spec["tempo_s"])
    col = {d: i for i, d in enumerate(dofs)}

    params: dict[str, Any] = {
        "exercise": name,
        "rate_hz": float(rate),
        "repetitions": int(repetitions),
        "tempo_s": tempo,
        "range_deg": range_deg
        if range_deg is None
        else np.atleast_1d(np.asarray(range_deg, float)).tolist(),
        "impaired_side": impaired_side,
        "impairment": imp,
        "submovements": int(submovements),
        "tremor_deg": float(tremor_deg),
        "trunk_lean_deg": float(trunk_lean_deg),
        "shoulder_hiking_deg": float(shoulder_hiking_deg),
        "seed": int(seed),
    }

    def side_scale(s: str) -> float:
        return 1.0 - imp if s == imp_s else 1.0

    # ---- base posture (held), checked against ranges
    base = np.zeros(len(dofs))
    for tmpl, v in spec["base"].items():
        for s in _SIDES if "{s}" in tmpl else ("",):
            d = tmpl.format(s=s)
            if d in col:
                _check_in_range(d, [v], ranges, f"the {name} posture")
                base[col[d]] = v

    if name == "gait":
        values, reps, extra = _gait(
            dofs,
            col,
            base,
            rate,
            int(repetitions),
            tempo,
            imp,
            imp_s,
            float(range_deg) if range_deg is not None else 1.0,
            float(speed_mm_s),
            rng,
        )
        params.update(extra)
        main_cols: list[int] = [
            col[d]
            for d in ("hip_flexion_r", "hip_flexion_l", "knee_flexion_r", "knee_flexion_l")
            if d in col
        ]
        prof = {s: np.zeros(values.shape[0]) for s in _SIDES}
    else:
        up, hold, down, rest = 0.35 * tempo, 0.10 * tempo, 0.35 * tempo, 0.20 * tempo
        slow = 1.0 + imp
        period = (up + down) * slow + hold + rest
        lead = 0.5
        starts = lead + period * np.arange(int(repetitions))
        n = int(np.ceil((starts[-1] + period + lead) * rate)) + 1
        t = np.arange(n) / rate
        prof = {}
        for s in _SIDES:
            sl = slow if s == imp_s else 1.0
            u, dn = up * sl, down * sl
            h = period - rest - u - dn
            sub = int(submovements) if (imp_s is None or s == imp_s) else 0
            prof[s] = repetition_profile(t, starts, u, h, dn, sub, rng)
        values = np.tile(base, (n, 1))
        main_cols = []
        for i, (tmpl, a0, a1) in enumerate(spec["main"]):
            sides = _SIDES if "{s}" in tmpl else ("",)
            for s in sides:
                d = tmpl.format(s=s)
                if d not in col:
                    if i == 0:
                        raise InputError(
                            f"make_exercise: the skeleton has no DoF {d!r}, needed by {name}; "
                            f"its DoFs: {list(dofs)}"
                        )
                    continue
                lo_hi = _as_range(range_deg, a0, a1, d) if i == 0 else (a0, a1)
                if i > 0 and range_deg is not None:  # scale the companions with the main DoF
                    m0, m1 = _as_range(range_deg, spec["main"][0][1], spec["main"][0][2], d)
                    f = (m1 - m0) / (spec["main"][0][2] - spec["main"][0][1])
                    lo_hi = (a0, a0 + f * (a1 - a0))
                _check_in_range(
                    d, lo_hi, ranges, "the requested range" if i == 0 else f"the {name} movement"
                )
                p = prof[s] if s else 0.5 * (prof["r"] + prof["l"])
                values[:, col[d]] = lo_hi[0] + side_scale(s) * (lo_hi[1] - lo_hi[0]) * p
                if i == 0:
                    main_cols.append(col[d])
                    params.setdefault("peak_deg", {})[d] = float(
                        lo_hi[0] + side_scale(s) * (lo_hi[1] - lo_hi[0])
                    )
        # forward lean that peaks mid-movement (sit to stand: the trunk leans to lift off)
        both = 0.5 * (prof["r"] + prof["l"])
        bump = np.clip(4.0 * both * (1.0 - both), 0.0, 1.0)
        for tmpl, amp in spec.get("lean", []):
            for d in {tmpl.format(s=s) for s in _SIDES}:
                if d in col:
                    values[:, col[d]] += amp * bump
        reps = [(float(a), float(a + period - rest)) for a in starts]

    # ---- compensations: trunk lean away from the impaired side, shoulder hiking on it
    cside = imp_s or "r"
    cprof = (
        prof.get(cside, np.zeros(values.shape[0])) if name != "gait" else np.ones(values.shape[0])
    )
    away = (
        -1.0 if cside == "r" else 1.0
    )  # positive lumbar_bending = towards the right (assumed sign)
    if trunk_lean_deg and "lumbar_bending" in col:
        values[:, col["lumbar_bending"]] += away * trunk_lean_deg * cprof
    if shoulder_hiking_deg:
        d = f"shoulder_elevation_{cside}"
        if d in col:
            values[:, col[d]] += shoulder_hiking_deg * cprof
        elif "lumbar_bending" in col:
            values[:, col["lumbar_bending"]] += away * shoulder_hiking_deg * cprof

    # ---- tremor on the main DoFs of the impaired side (or all)
    if tremor_deg > 0:
        freq = float(rng.uniform(4.0, 6.0))
        phase = float(rng.uniform(0, 2 * np.pi))
        t = np.arange(values.shape[0]) / rate
        cols = [c for c in main_cols if imp_s is None or dofs[c].endswith("_" + imp_s)]
        values[:, cols] += tremor_deg * np.sin(2 * np.pi * freq * t + phase)[:, None]
        params["tremor_hz"] = freq

    # ---- keep inside the ranges (tremor and compensations may touch them)
    for d, (lo, hi) in ranges.items():
        if d in col and not d.startswith("pelvis_t"):
            values[:, col[d]] = np.clip(values[:, col[d]], lo, hi)

    values = _place_root(skeleton, dofs, col, values, spec["anchor"])
    angles = JointAngles(values, dofs, rate)
    return ExerciseTruth(angles=angles, repetitions=reps, exercise=name, params=params)


def _gait(
    dofs: tuple[str, ...],
    col: dict[str, int],
    base: np.ndarray,
    rate: float,
    strides: int,
    tempo: float,
    imp: float,
    imp_s: str | None,
    scale: float,
    speed: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[float, float]], dict]:
    """Gait angles: sagittal curves per leg (left half a cycle later), pelvis and arm swing."""
    curves = _gait_curves()
    stride = tempo * (1.0 + 0.5 * imp)
    n = int(np.ceil(strides * stride * rate - 1e-9)) + 1
    t = np.arange(n) / rate
    values = np.tile(base, (n, 1))
    phase = {"r": (t / stride) % 1.0, "l": (t / stride + 0.5) % 1.0}
    dof_of = {
        "hip": "hip_flexion_{s}",
        "knee": "knee_flexion_{s}",
        "ankle": "ankle_dorsiflexion_{s}",
    }
    for s in _SIDES:
        f = scale * ((1.0 - imp) if s == imp_s else 1.0)
        for key, tmpl in dof_of.items():
            d = tmpl.format(s=s)
            if d in col:
                c = curves[key]
                mean = float(np.mean(c(np.linspace(0, 1, 101)[:-1])))
                values[:, col[d]] = mean + f * (c(phase[s]) - mean)
        if f"shoulder_flexion_{s}" in col:  # arm swings with the opposite leg
            other = "l" if s == "r" else "r"
            values[:, col[f"shoulder_flexion_{s}"]] = 0.5 * (curves["hip"](phase[other]) - 10.0)
        if f"elbow_flexion_{s}" in col:
            other = "l" if s == "r" else "r"
            values[:, col[f"elbow_flexion_{s}"]] = 20.0 + 0.3 * (curves["hip"](phase[other]) - 10.0)
        if f"shoulder_abduction_{s}" in col:
            values[:, col[f"shoulder_abduction_{s}"]] = 5.0
    w = 2 * np.pi * t / stride
    for d, v in (
        ("pelvis_rotation", 5.0 * np.cos(w)),
        ("pelvis_list", 4.0 * np.sin(2 * w)),
        ("pelvis_tilt", 2.0 * np.sin(2 * w)),
    ):
        if d in col:
            values[:, col[d]] = v
    if "pelvis_tx" in col:
        values[:, col["pelvis_tx"]] = speed * t
    reps = [(float(i * stride), float((i + 1) * stride)) for i in range(strides)]
    return values, reps, {"stride_s": stride, "speed_mm_s": speed, "gait_scale": scale}


def _place_root(
    skeleton: Any, dofs: tuple[str, ...], col: dict[str, int], values: np.ndarray, anchor: str
) -> np.ndarray:
    """Set pelvis_tx/ty/tz so the feet stay on the floor (and, for 'feet', do not slide)."""
    if not all(d in col for d in ("pelvis_tx", "pelvis_ty", "pelvis_tz")):
        return values
    names = tuple(skeleton.keypoint_names)
    feet = [
        i
        for i, n in enumerate(names)
        if n.startswith(
            ("heel_", "big_toe_", "small_toe_", "ankle_", "lateral_malleolus_", "medial_malleolus_")
        )
    ]
    if not feet:
        return values
    trans = np.array([col["pelvis_tx"], col["pelvis_ty"], col["pelvis_tz"]])
    q = values.copy()
    keep = q[:, trans].copy()
    q[:, trans] = 0.0
    kp = np.asarray(forward_kinematics(skeleton, q))
    foot = kp[:, feet]
    out = values.copy()
    if (
        anchor == "pelvis"
    ):  # seated: keep the pelvis where the first frame has it, seat at knee height
        out[:, trans[1]] = -np.min(foot[0, :, 1])
        return out
    out[:, trans[1]] = -np.min(foot[:, :, 1], axis=1)
    if anchor == "feet":
        ank = [i for i, n in enumerate(names) if n.startswith("ankle_")] or feet
        centre = kp[:, ank].mean(axis=1)
        out[:, trans[0]] = keep[:, 0] - (centre[:, 0] - centre[0, 0])
        out[:, trans[2]] = keep[:, 2] - (centre[:, 2] - centre[0, 2])
    return out
