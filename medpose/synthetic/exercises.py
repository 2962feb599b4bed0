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

One-sided movements (``side="left"`` or ``"right"``; the lunges, the hurdle step and the
straight-leg raise always are) move that side only; the other side holds the start posture
(or, for the legs of a lunge, follows so that both feet stay planted).  In the squats and
sit to stand both feet stay planted too, so an impaired leg bending less makes both legs meet
half-way (:func:`~medpose.synthetic.legs.planted_legs`).  The table of
movements is :data:`EXERCISES` (:mod:`medpose.synthetic.movements`).

The root translation is set so the feet stay on the floor (standing exercises and
gait: the lowest foot point at height 0; standing exercises also keep the planted feet from
sliding), the pelvis stays on the seat (seated exercises) or the back on the floor (supine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import JointAngles
from ..errors import InputError, LimitError
from ..kinematics.skeleton import Skeleton, default_ranges
from .gait import gait_angles
from .legs import inline_lunge, leg_geometry, place_root, planted_legs, scaption, side_lunge
from .movements import EXERCISES

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


# --------------------------------------------------------------------------- helpers
_SIDES = ("r", "l")
_SIDE_LETTER = {"left": "l", "right": "r"}


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


def _template_sides(tmpl: str, moving: tuple[str, ...]) -> list[tuple[str, str]]:
    """(DoF side, profile side) pairs of a template: ``{s}`` the moving sides, ``{o}`` the other."""
    if "{o}" in tmpl:
        if len(moving) != 1:
            return []
        other = "l" if moving[0] == "r" else "r"
        return [(other, moving[0])]
    if "{s}" in tmpl:
        return [(s, s) for s in moving]
    return [("", "")]


def _check_arguments(
    name: str,
    side: str | None,
    impaired_side: str | None,
    impairment: float,
    rate: float,
    tempo_s: float | None,
    repetitions: int,
    submovements: int,
    tremor_deg: float,
) -> None:
    if name not in EXERCISES:
        raise InputError(f"make_exercise: unknown exercise {name!r}; known: {sorted(EXERCISES)}")
    if impaired_side not in (None, "left", "right"):
        raise InputError(
            f"make_exercise: impaired_side must be 'left', 'right' or None, found {impaired_side!r}"
        )
    if side not in (None, "left", "right", "both"):
        raise InputError(
            f"make_exercise: side must be 'left', 'right', 'both' or None, found {side!r}"
        )
    if side == "both" and EXERCISES[name]["sides"] == "one":
        raise InputError(
            f"make_exercise: {name} moves one side at a time; side must be 'left' or 'right', "
            f"found 'both'"
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


def make_exercise(
    name: str,
    *,
    skeleton: Any = None,
    rate: float = 30.0,
    repetitions: int = 5,
    tempo_s: float | None = None,
    range_deg: Any = None,
    side: str | None = None,
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
        ``shoulder_extension``, ``shoulder_scaption``, ``shoulder_internal_rotation``,
        ``shoulder_external_rotation`` (elbow at 90 deg), ``elbow_flexion``,
        ``seated_knee_extension``, ``squat``, ``deep_squat`` (dowel overhead),
        ``sit_to_stand``, ``hurdle_step``, ``inline_lunge``, ``side_lunge``,
        ``straight_leg_raise`` (supine), ``gait``.
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
        Angles of the exercise's main DoF (e.g. ``shoulder_abduction_*``; for
        ``shoulder_scaption`` the elevation in the scapular plane; for the lunges the
        knee of the moving side), degrees.  For gait: a scale factor of the normative
        curves (1 = normal).
    side : {"left", "right", "both"}, optional
        The side that moves (the leading, lunging or raised leg).  Default: both sides for
        two-sided movements (arm and knee exercises, squats, sit to stand, gait); the
        impaired side, else the right, for one-sided ones (hurdle step, lunges,
        straight-leg raise), which refuse ``"both"``.
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
        Lumbar lateral bending away from the impaired side (else the moving side, else the
        right) at the peak of each repetition, degrees (``lumbar_bending``; skipped if the
        skeleton has no such DoF).
    shoulder_hiking_deg : float
        Shoulder elevation on that side at the peak (``shoulder_elevation_*``; if the
        skeleton has none, the trunk bends towards the other side by this amount instead,
        which raises the shoulder), degrees.
    speed_mm_s : float
        Gait only: walking speed (mm/s), default 1.2 m/s.
    seed : int

    Returns
    -------
    ExerciseTruth
        ``params`` holds every parameter with ``side`` (the moving sides) and ``peak_deg``
        (the main DoF's peak per side).

    Raises
    ------
    InputError
        Unknown exercise (the message lists the known ones), bad side, impairment outside
        [0, 0.9], non-positive rate/tempo, negative counts.
    LimitError
        If a requested angle lies outside the skeleton's joint range (message names the
        DoF and its range).
    """
    _check_arguments(
        name,
        side,
        impaired_side,
        impairment,
        rate,
        tempo_s,
        repetitions,
        submovements,
        tremor_deg,
    )
    spec = EXERCISES[name]
    skeleton = skeleton if skeleton is not None else Skeleton.default()
    dofs = _dofs(skeleton)
    ranges = _ranges(skeleton)
    rng = np.random.default_rng(seed)
    imp = float(impairment) if impaired_side else 0.0
    imp_s = _SIDE_LETTER.get(impaired_side or "")
    tempo = float(tempo_s or spec["tempo_s"])
    col = {d: i for i, d in enumerate(dofs)}
    if side in ("left", "right"):
        moving: tuple[str, ...] = (_SIDE_LETTER[side],)
    elif spec["sides"] == "one" and side is None:
        moving = (imp_s or "r",)
    else:
        moving = _SIDES

    params: dict[str, Any] = {
        "exercise": name,
        "rate_hz": float(rate),
        "repetitions": int(repetitions),
        "tempo_s": tempo,
        "range_deg": range_deg
        if range_deg is None
        else np.atleast_1d(np.asarray(range_deg, float)).tolist(),
        "side": "both" if len(moving) == 2 else {"r": "right", "l": "left"}[moving[0]],
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

    if spec["kind"] == "gait":
        values, reps, extra = gait_angles(
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
        )
        params.update(extra)
        main_cols: list[int] = [
            col[d]
            for d in ("hip_flexion_r", "hip_flexion_l", "knee_flexion_r", "knee_flexion_l")
            if d in col
        ]
        prof = {s: np.zeros(values.shape[0]) for s in _SIDES}
    else:
        values, prof, reps, main_cols = _repetitions(
            name,
            spec,
            dofs,
            col,
            base,
            ranges,
            rate,
            int(repetitions),
            tempo,
            range_deg,
            imp,
            imp_s,
            moving,
            int(submovements),
            rng,
            params,
            side_scale,
        )
        _closed_chain(name, spec, skeleton, col, values, prof, moving, params, side_scale)

    # ---- compensations: trunk lean away from the impaired (or moving) side, shoulder hiking
    cside = imp_s or (moving[0] if len(moving) == 1 else "r")
    cprof = (
        prof.get(cside, np.zeros(values.shape[0]))
        if spec["kind"] != "gait"
        else np.ones(values.shape[0])
    )
    away = -1.0 if cside == "r" else 1.0  # positive lumbar_bending = towards the right
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
    translations = ("pelvis_tx", "pelvis_ty", "pelvis_tz")  # every other DoF is an angle
    for d, (lo, hi) in ranges.items():
        if d in col and d not in translations:
            values[:, col[d]] = np.clip(values[:, col[d]], lo, hi)

    plant = moving[0] if spec.get("plant") == "moving" else ("l" if moving[0] == "r" else "r")
    values = place_root(skeleton, col, values, spec["anchor"], plant)
    angles = JointAngles(values, dofs, rate)
    return ExerciseTruth(angles=angles, repetitions=reps, exercise=name, params=params)


def _repetitions(
    name: str,
    spec: dict[str, Any],
    dofs: tuple[str, ...],
    col: dict[str, int],
    base: np.ndarray,
    ranges: dict[str, tuple[float, float]],
    rate: float,
    repetitions: int,
    tempo: float,
    range_deg: Any,
    imp: float,
    imp_s: str | None,
    moving: tuple[str, ...],
    submovements: int,
    rng: np.random.Generator,
    params: dict[str, Any],
    side_scale: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[tuple[float, float]], list[int]]:
    """Angles of the repeated movements of the ``main`` table entries, and their profiles."""
    up, hold, down, rest = 0.35 * tempo, 0.10 * tempo, 0.35 * tempo, 0.20 * tempo
    slow = 1.0 + imp
    period = (up + down) * slow + hold + rest
    lead = 0.5
    starts = lead + period * np.arange(repetitions)
    n = int(np.ceil((starts[-1] + period + lead) * rate)) + 1
    t = np.arange(n) / rate
    prof = {}
    for s in _SIDES:
        sl = slow if s == imp_s else 1.0
        u, dn = up * sl, down * sl
        h = period - rest - u - dn
        sub = submovements if (imp_s is None or s == imp_s) else 0
        prof[s] = repetition_profile(t, starts, u, h, dn, sub, rng)
    values = np.tile(base, (n, 1))
    main_cols = []
    for i, (tmpl, a0, a1) in enumerate(spec["main"]):
        for s in _SIDES if "{s}" in tmpl and len(moving) == 1 else ():  # still side: start
            if s not in moving and tmpl.format(s=s) in col:
                values[:, col[tmpl.format(s=s)]] = a0
        for s, ps in _template_sides(tmpl, moving):
            d = tmpl.format(s=s, o=s)
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
            p = prof[ps] if ps else np.mean([prof[m] for m in moving], axis=0)
            scale = side_scale(ps) if ps else 1.0
            values[:, col[d]] = lo_hi[0] + scale * (lo_hi[1] - lo_hi[0]) * p
            if i == 0:
                main_cols.append(col[d])
                params.setdefault("peak_deg", {})[d] = float(
                    lo_hi[0] + scale * (lo_hi[1] - lo_hi[0])
                )
                params.setdefault("start_deg", {})[d] = float(lo_hi[0])
    # forward lean that peaks mid-movement (sit to stand: the trunk leans to lift off)
    both = np.mean([prof[m] for m in moving], axis=0)
    bump = np.clip(4.0 * both * (1.0 - both), 0.0, 1.0)
    for tmpl, amp in spec.get("lean", []):
        for d in {tmpl.format(s=s) for s in moving}:
            if d in col:
                values[:, col[d]] += amp * bump
    reps = [(float(a), float(a + period - rest)) for a in starts]
    return values, prof, reps, main_cols


def _closed_chain(
    name: str,
    spec: dict[str, Any],
    skeleton: Any,
    col: dict[str, int],
    values: np.ndarray,
    prof: dict[str, np.ndarray],
    moving: tuple[str, ...],
    params: dict[str, Any],
    side_scale: Any,
) -> None:
    """Angles that follow from the main ones: scapular-plane elevation, planted legs, lunges."""
    kind = spec["kind"]
    if kind == "scaption":
        for s in moving:
            fl, ab = f"shoulder_flexion_{s}", f"shoulder_abduction_{s}"
            if fl in col and ab in col:
                params.setdefault("elevation_deg", {})[s] = float(values[:, col[fl]].max())
                values[:, col[fl]], values[:, col[ab]] = scaption(values[:, col[fl]])
        params["scapular_plane_deg"] = 30.0
        return
    if kind == "planted":
        values[:] = planted_legs(skeleton, col, values)
        for d, a0 in params.get("start_deg", {}).items():  # the peaks the legs now reach
            v = values[:, col[d]]
            params["peak_deg"][d] = float(v.max() if params["peak_deg"][d] >= a0 else v.min())
        return
    if kind not in ("inline_lunge", "side_lunge"):
        return
    m = moving[0]
    o = "l" if m == "r" else "r"
    knee = values[:, col[f"knee_flexion_{m}"]]
    k0, k1 = float(knee[0]), float(params["peak_deg"][f"knee_flexion_{m}"])
    geo = leg_geometry(skeleton)
    if kind == "inline_lunge":
        full = spec["main"][0][2] - spec["main"][0][1]
        legs = inline_lunge(prof[m], geo, (k0, k1), depth=min(1.0, (k1 - k0) / full))
        pairs = (("front", m), ("rear", o))
    else:
        if k1 - k0 < 1.0:
            raise InputError(f"make_exercise: {name} needs a knee peak above its start angle")
        legs, tilt = side_lunge(prof[m], geo, k1)
        pairs = (("lunge", m), ("trail", o))
        if "pelvis_tilt" in col:
            values[:, col["pelvis_tilt"]] += tilt
    for key, s in pairs:
        for dof, v in legs[key].items():
            if f"{dof}_{s}" in col:
                values[:, col[f"{dof}_{s}"]] = v
    params["legs"] = {k: {"r": "right", "l": "left"}[s] for k, s in pairs}
