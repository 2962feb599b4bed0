"""Which synthetic trials a session needs: from an exercise list or from an assessment protocol.

:func:`trial_plan` turns ``make_session``'s ``exercises=`` or ``protocol=`` into a list of
:class:`PlannedTrial` (trial name, exercise of :data:`~medpose.synthetic.exercises.EXERCISES`,
moving side, repetitions).  A catalogue protocol's trials map to exercises through
:data:`PROTOCOL_EXERCISES`; a user's own protocol is matched by trial name or by an exercise
name in the trial's name.  :func:`fiducial_fault` reads the ``fault=`` option that moves one
imaging landmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..protocol.definition import Protocol
from .movements import EXERCISES

__all__ = ["PROTOCOL_EXERCISES", "PlannedTrial", "trial_plan", "fiducial_fault", "protocol_of"]

#: Catalogue protocol -> exercise of its trials (one name for every trial, or trial -> exercise).
PROTOCOL_EXERCISES: dict[str, str | dict[str, str]] = {
    "deep_squat": "deep_squat",
    "hurdle_step": "hurdle_step",
    "inline_lunge": "inline_lunge",
    "side_lunge": "side_lunge",
    "sit_to_stand": "sit_to_stand",
    "active_straight_leg_raise": "straight_leg_raise",
    "shoulder_abduction": "shoulder_abduction",
    "shoulder_flexion": "shoulder_flexion",
    "shoulder_extension": "shoulder_extension",
    "shoulder_scaption": "shoulder_scaption",
    "shoulder_rotation": {
        "internal_rotation": "shoulder_internal_rotation",
        "external_rotation": "shoulder_external_rotation",
    },
    "elbow_flexion": "elbow_flexion",
    "knee_extension": "seated_knee_extension",
    "gait": "gait",
    "navigation_check": {},
    "navigation_auto": {},
}


@dataclass(frozen=True)
class PlannedTrial:
    """One exercise trial of a synthetic session."""

    name: str
    exercise: str
    side: str | None  # "left", "right", "both" or None (the exercise's default)
    repetitions: int


def protocol_of(protocol: Any, variant: str | None) -> Protocol:
    """A :class:`~medpose.protocol.Protocol` from a name, a path or a ``Protocol``."""
    if isinstance(protocol, Protocol):
        return protocol if variant is None else protocol.with_variant(variant)
    return Protocol.load(protocol, variant=variant)


def _exercise_for(protocol: Protocol, trial: str) -> str:
    known = PROTOCOL_EXERCISES.get(protocol.name)
    if isinstance(known, str):
        return known
    if isinstance(known, dict) and trial in known:
        return known[trial]
    if trial in EXERCISES:
        return trial
    hits = sorted((e for e in EXERCISES if e in trial), key=len, reverse=True)
    if hits:
        return hits[0]
    raise InputError(
        f"make_session: protocol {protocol.name}: no synthetic exercise for trial {trial!r}; "
        f"name the trial after one of {sorted(EXERCISES)}"
    )


def trial_plan(
    exercises: Sequence[str],
    protocol: Protocol | None,
    repetitions: int | None,
) -> tuple[list[PlannedTrial], str]:
    """The exercise trials of a session and the name of its static trial.

    With a protocol: its exercise trials with their names, sides and ``min_repetitions``
    (``repetitions``, if given, instead); without: one trial per exercise (a repeated
    exercise gets ``_<i>``), ``repetitions`` (default 3) each.
    """
    if protocol is None:
        unknown = [e for e in exercises if e not in EXERCISES]
        if unknown or not exercises:
            raise InputError(
                f"make_session: unknown exercises {unknown}; known: {sorted(EXERCISES)}"
            )
        plan: list[PlannedTrial] = []
        names: list[str] = []
        for i, ex in enumerate(exercises):
            tname = ex if ex not in names and ex != "static" else f"{ex}_{i + 1}"
            names.append(tname)
            plan.append(PlannedTrial(tname, ex, None, int(repetitions or 3)))
        return plan, "static"
    statics = [t.name for t in protocol.trials if t.kind == "static"]
    if len(statics) > 1:
        raise InputError(
            f"make_session: protocol {protocol.name} names {len(statics)} static trials "
            f"({', '.join(statics)}); a synthetic session has one"
        )
    plan = []
    for t in protocol.trials:
        if t.kind == "static":
            continue
        ex = _exercise_for(protocol, t.name)
        side = t.side if t.side in ("left", "right", "both") else None
        if side == "both" and EXERCISES[ex]["sides"] == "one":
            raise InputError(
                f"make_session: protocol {protocol.name}, trial {t.name}: side 'both' for "
                f"{ex}, which moves one side at a time; expected left or right"
            )
        plan.append(PlannedTrial(t.name, ex, side, int(repetitions or t.min_repetitions)))
    return plan, (statics[0] if statics else "static")


def fiducial_fault(
    fault: Mapping[str, Any] | None, landmark_names: Sequence[str], seed: int
) -> dict[str, Any] | None:
    """The landmark to move and its displacement (LPS, mm) from ``fault``, or None.

    ``fault = {"move_fiducial": (name, distance_mm)}`` moves the imaging landmark ``name``
    by ``distance_mm`` in a direction drawn from ``seed``; ``(name, (dx, dy, dz))`` by that
    vector (LPS, mm).
    """
    if not fault:
        return None
    if set(fault) != {"move_fiducial"}:
        raise InputError(
            f"make_session: fault: found keys {sorted(fault)}; expected "
            f"{{'move_fiducial': (landmark name, distance_mm or (dx, dy, dz))}}"
        )
    spec = fault["move_fiducial"]
    if not isinstance(spec, (tuple, list)) or len(spec) != 2:
        raise InputError(
            f"make_session: fault.move_fiducial: found {spec!r}; expected (landmark name, "
            f"distance_mm or (dx, dy, dz))"
        )
    name, amount = spec
    if name not in landmark_names:
        raise InputError(
            f"make_session: fault.move_fiducial: no imaging landmark {name!r}; the phantom's "
            f"landmarks: {', '.join(landmark_names)}"
        )
    arr = np.atleast_1d(np.asarray(amount, dtype=float))
    if arr.shape == (1,):
        if not np.isfinite(arr[0]) or arr[0] < 0:
            raise InputError(
                f"make_session: fault.move_fiducial: distance must be a finite number of mm "
                f">= 0, found {amount!r}"
            )
        d = np.random.default_rng([int(seed), 7919]).normal(size=3)
        vector = arr[0] * d / np.linalg.norm(d)
    elif arr.shape == (3,) and np.all(np.isfinite(arr)):
        vector = arr
    else:
        raise InputError(
            f"make_session: fault.move_fiducial: found {amount!r}; expected a distance in mm "
            f"or a vector (dx, dy, dz) in mm"
        )
    vector = np.round(vector, 9)
    return {
        "move_fiducial": str(name),
        "vector_lps_mm": vector.tolist(),
        "distance_mm": float(np.linalg.norm(vector)),
        "file": "imaging/landmarks.mrk.json",
    }
