"""Plain-language labels for what a report shows: metric keys, joints, units, flags.

A protocol names its metrics with keys such as ``rom_knee_flexion`` or
``symmetry_index_rom_knee_flexion``; a clinician reads "Range of motion, knee flexion" and
"Left/right difference of range of motion, knee flexion".  Nothing here imports the rest of
medpose, so every module may use it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "METRIC_LABELS",
    "UNIT_LABELS",
    "FLAG_LABELS",
    "joint_label",
    "metric_label",
    "unit_label",
    "flag_label",
    "format_value",
    "side_label",
    "trial_label",
    "measure_label",
]

#: Base metric name -> what a clinician calls it.
METRIC_LABELS: dict[str, str] = {
    "rom": "Range of motion",
    "peak_angular_velocity": "Peak angular speed",
    "mean_angular_velocity": "Mean angular speed",
    "movement_time": "Movement time",
    "tempo": "Tempo",
    "repetition_count": "Number of repetitions",
    "sparc": "Smoothness (spectral arc length)",
    "ldlj": "Smoothness (log dimensionless jerk)",
    "velocity_peaks": "Number of speed peaks",
    "symmetry_index": "Left/right difference",
    "dtw_distance": "Difference from the average repetition",
    "consistency": "Consistency of the repetitions",
    "gait_speed": "Walking speed",
    "cadence": "Cadence",
    "step_length": "Step length",
    "trunk_lean": "Trunk lean",
    "knee_valgus": "Knee valgus",
    "heel_lift": "Heel lift",
    "pelvic_drop": "Pelvic drop",
    "thigh_angle": "Thigh angle",
    "torso_tibia_angle": "Trunk against tibia angle",
    "knee_over_foot": "Knee over foot",
    "arm_trunk_angle": "Arm against trunk angle",
    "humeral_elevation": "Arm elevation",
    "elevation_plane": "Plane of arm elevation",
    "trunk_lateral_flexion": "Trunk side bending",
    "fre": "Fiducial registration error",
    "tre": "Predicted target registration error",
    "fiducial_residual": "Residual at fiducial",
    "n_outliers": "Outlier fiducials",
    "gate_passed": "Registration accuracy check passed",
}

#: Unit as stored -> unit as printed (dimensionless values say so).
UNIT_LABELS: dict[str, str] = {
    "deg": "°",
    "deg/s": "°/s",
    "1/min": "per minute",
    "1": "no unit",
    "": "no unit",
    "count": "count",
    "%": "%",
    "mm": "mm",
    "mm/s": "mm/s",
    "m/s": "m/s",
    "s": "s",
    "px": "pixels",
    "steps/min": "steps per minute",
}

#: Score flag -> words.
FLAG_LABELS: dict[str, str] = {
    "within": "within the normal range",
    "below": "below normal",
    "above": "above normal",
    "n/a": "no normal range published",
}

_SIDES = {"left": "left", "right": "right", "both": "left vs right", "": "", "none": ""}


def _base(key: str) -> tuple[str, str]:
    """Split a metric key into its base metric and the rest (``rom_knee_flexion`` ->
    ``rom``, ``knee_flexion``); the longest known base wins."""
    for base in sorted(METRIC_LABELS, key=len, reverse=True):
        if key == base:
            return base, ""
        if key.startswith(base + "_"):
            return base, key[len(base) + 1 :]
    return key, ""


def joint_label(joint: Any) -> str:
    """``knee_flexion`` -> ``knee flexion``; ``hip_flexion_l`` -> ``hip flexion (left)``."""
    if not isinstance(joint, str) or not joint or joint == "nan":
        return ""
    side = {"_l": " (left)", "_r": " (right)"}.get(joint[-2:], "")
    core = joint[:-2] if side else joint
    return core.replace("_", " ") + side


def metric_label(key: str, joint: Any = None) -> str:
    """Readable name of a metric key: ``"Range of motion, knee flexion"``.

    ``symmetry_index_rom_knee_flexion`` -> ``"Left/right difference of range of motion,
    knee flexion"``.  An unknown key is shown with spaces for underscores, never raw.  A study
    key ``metric.name`` (``tre.hip_r``) names its target, fiducial or joint after the dot.
    """
    key, dot, named = str(key).partition(".")
    if dot and not joint:
        joint = named
    base, rest = _base(key)
    if base not in METRIC_LABELS:
        return str(key).replace("_", " ").capitalize()
    label = METRIC_LABELS[base]
    if base == "symmetry_index" and rest:
        inner = metric_label(rest, joint)
        return f"{label} of {inner[0].lower()}{inner[1:]}"
    where = joint_label(joint) or joint_label(rest)
    return f"{label}, {where}" if where else label


def unit_label(unit: Any) -> str:
    """A unit as printed (``deg`` -> ``°``; dimensionless -> ``no unit``)."""
    if unit is None or (isinstance(unit, float) and math.isnan(unit)):
        return "no unit"
    return UNIT_LABELS.get(str(unit), str(unit))


def flag_label(flag: Any) -> str:
    """A score flag in words (missing -> ``no normal range published``)."""
    if not isinstance(flag, str) or not flag:
        return FLAG_LABELS["n/a"]
    return FLAG_LABELS.get(flag, flag)


def side_label(side: Any) -> str:
    """``left``/``right``; ``both`` (a left/right comparison) -> ``left vs right``."""
    if not isinstance(side, str):
        return ""
    return _SIDES.get(side, side)


def trial_label(trial: Any) -> str:
    """A protocol trial in words: ``abduction_left`` -> ``abduction left``;
    ``abduction_left+abduction_right`` -> ``abduction left + abduction right``."""
    if not isinstance(trial, str) or not trial or trial == "nan":
        return ""
    return " + ".join(part.replace("_", " ") for part in trial.split("+"))


def measure_label(key: str, joint: Any = None, side: Any = None, trial: Any = None) -> str:
    """A metric with its side and, where given, its trial: ``"Trunk lean (trial abduction
    left)"``, ``"Range of motion, shoulder elevation (left; trial abduction left)"``."""
    parts = [side_label(side), f"trial {trial_label(trial)}" if trial_label(trial) else ""]
    where = "; ".join(p for p in parts if p)
    return metric_label(key, joint) + (f" ({where})" if where else "")


def format_value(value: Any, unit: Any = None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits and its printed unit (``95.0°``);
    NaN -> ``not available``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "not available"
    if not math.isfinite(v):
        return "not available"
    if str(unit) in ("frames", "count") and v == round(v):
        return f"{int(v)}" + ("" if str(unit) == "count" else f" {unit}")
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0
    text = f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"
    if abs(v) >= 1 and "." not in text and "e" not in text and abs(v) < 10 ** (digits - 1):
        text = f"{v:.1f}"
    u = unit_label(unit)
    if u in ("no unit", "count"):
        return text
    return f"{text}{u}" if u in ("°", "%", "°/s") else f"{text} {u}"


def repetition_counts(repetitions: Any) -> str:
    """The repetitions found per side, ``"left 3, right 3"`` (a bilateral repetition counts
    on each side), ``"3"`` for a table without sides, ``"none"`` for an empty one."""
    n = len(repetitions)
    if not n:
        return "none"
    if "side" not in getattr(repetitions, "columns", ()):
        return str(n)
    counts = repetitions["side"].fillna("no side").astype(str).value_counts().sort_index()
    return ", ".join(f"{k} {v}" for k, v in counts.items())
