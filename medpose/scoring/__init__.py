"""Rehabilitation motion metrics, available as ``mp.metrics``.

Range of motion, angular velocity, movement time, tempo and repetition count
(:mod:`~medpose.scoring.kinematic`); smoothness: SPARC, LDLJ, velocity peaks
(:mod:`~medpose.scoring.smoothness`); symmetry, DTW distance to a template and consistency
across repetitions (:mod:`~medpose.scoring.comparison`); bootstrap confidence intervals,
SEM and MDC95 (:mod:`~medpose.scoring.statistics`); published normative values
(:mod:`~medpose.scoring.norms`) and the scores against them: percent of normal, z-score, range
flag, MDC95 (:mod:`~medpose.scoring.scores`) and 0-100 composites (:mod:`~medpose.scoring.composites`); compensations per frame from
3D keypoints: trunk lean and rotation, pelvic drop, shoulder hiking, head tilt, knee valgus,
heel lift (:mod:`~medpose.scoring.compensation`); gait events, speed, cadence and step length
(:mod:`~medpose.scoring.gait`), on named keypoints (:func:`as_points`); clinical test
criteria per frame (deep squat, shoulder abduction: :mod:`~medpose.scoring.criteria`).

Metrics work on arrays with units (degrees, deg/s, seconds, Hz), batched over repetitions:
one repetition ``(T,)``, a NaN-padded batch ``(R, T)`` or a list of 1-D arrays (see
:func:`split_repetitions`).  Each returns a :class:`MetricResult`: the values, their unit,
and for every NaN the reason it could not be computed.  Bad arguments raise
:class:`~medpose.errors.InputError` naming the argument.
"""

from __future__ import annotations

from .batch import split_repetitions
from .comparison import consistency, dtw_distance, symmetry_index, symmetry_index_ci
from .compensation import (
    head_tilt,
    heel_lift,
    knee_valgus,
    pelvic_drop,
    shoulder_hiking,
    trunk_axis,
    trunk_lean,
    trunk_rotation,
)
from .composites import FORMULAS, CompositeResult, composite
from .criteria import (
    arm_trunk_angle,
    elevation_plane,
    humeral_elevation,
    knee_over_foot,
    shoulder_girdle_elevation,
    thigh_angle,
    torso_tibia_angle,
    trunk_lateral_flexion,
)
from .gait import cadence, gait_events, gait_speed, gait_steps, step_length, walking_direction
from .kinematic import (
    angular_velocity,
    mean_angular_velocity,
    movement_time,
    peak_angular_velocity,
    repetition_count,
    rom,
    tempo,
)
from .norms import load_norms, norm_for, reliability_for
from .points import as_points, noise_interval
from .result import MetricResult
from .scores import ScoreResult, score_metric
from .smoothness import ldlj, sparc, velocity_peaks
from .statistics import bootstrap_ci, mdc95, sem_from_ci, sem_from_icc

__all__ = [
    "MetricResult",
    "split_repetitions",
    "rom",
    "angular_velocity",
    "peak_angular_velocity",
    "mean_angular_velocity",
    "movement_time",
    "tempo",
    "repetition_count",
    "sparc",
    "ldlj",
    "velocity_peaks",
    "symmetry_index",
    "symmetry_index_ci",
    "dtw_distance",
    "consistency",
    "bootstrap_ci",
    "mdc95",
    "sem_from_icc",
    "sem_from_ci",
    "load_norms",
    "norm_for",
    "reliability_for",
    "score_metric",
    "composite",
    "ScoreResult",
    "CompositeResult",
    "FORMULAS",
    "trunk_lean",
    "trunk_rotation",
    "pelvic_drop",
    "shoulder_hiking",
    "head_tilt",
    "knee_valgus",
    "heel_lift",
    "trunk_axis",
    "gait_events",
    "gait_steps",
    "gait_speed",
    "cadence",
    "step_length",
    "walking_direction",
    "as_points",
    "noise_interval",
    "thigh_angle",
    "torso_tibia_angle",
    "knee_over_foot",
    "arm_trunk_angle",
    "humeral_elevation",
    "elevation_plane",
    "trunk_lateral_flexion",
    "shoulder_girdle_elevation",
]
