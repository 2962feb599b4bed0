"""The names a protocol file may use, and the line of a field in a YAML file.

A protocol (:mod:`medpose.protocol.definition`) names pipeline steps, metrics, joint angles,
keypoints, normative keys and composite formulas.  This module holds the lists those names
are checked against, so that an unknown name is refused with the list of known ones:

* :data:`STEPS`: the pipeline steps, in the order they run;
* :data:`METRICS`: every metric a protocol may declare (:class:`MetricInfo`): the functions of
  :mod:`medpose.scoring` (``computable``), compensations and gait metrics on the fitted
  keypoints among them, and any declared but not computed by medpose
  (``computable=False``);
* :func:`dof_names` and :func:`keypoint_names`: the joint angles and keypoints of medpose's
  default skeleton (``resources/skeleton.yaml``), read from the data file itself so that
  checking a protocol does not load torch;
* :data:`FORMULAS`: the composite-score formulas;
* :data:`NORM_KEY`: the syntax of a key into the normative data;
* :func:`node_line`: the 1-based line of a field path (``("metrics", 2, "joint")``) in a YAML
  node tree composed by :class:`~medpose.io._text.SafeYAMLLoader`.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .. import scoring
from ..packaged import resource_yaml
from ..scoring.criteria import CRITERION_METRICS
from ..scoring.derived_angles import DERIVED
from ..temporal.repetitions import segment_repetitions

__all__ = [
    "STEPS",
    "INPUT_STEPS",
    "METRICS",
    "MetricInfo",
    "FORMULAS",
    "NORM_KEY",
    "SIDES",
    "derived_names",
    "dof_names",
    "keypoint_names",
    "bilateral_bases",
    "joint_problem",
    "node_line",
]

#: Pipeline steps a protocol may run, in the order they run.
STEPS = (
    "triangulate",
    "read_keypoints",
    "clean",
    "fit",
    "repetitions",
    "metrics",
    "scores",
    "detect_landmarks",
    "register",
)
#: Steps that produce the 3D keypoints: a protocol runs exactly one of them.
INPUT_STEPS = ("triangulate", "read_keypoints")
#: Sides a unilateral trial may be measured on.
SIDES = ("left", "right", "both", "auto")

#: Composite-score formulas: name -> what it computes from the metric scores s_i, weights w_i.
FORMULAS: Mapping[str, str] = {
    "weighted_mean": "sum(w_i * s_i) / sum(w_i)",
    "weighted_mean_capped_100": "sum(w_i * min(s_i, 100)) / sum(w_i)",
    "minimum": "min(s_i) over the weighted metrics (weights ignored)",
}

#: A normative key: 2 to 6 lowercase parts of letters, digits, '_' or '-', joined by '.'
#: (``rom.knee_flexion.adult``); resolved against the normative tables when scoring.
NORM_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*){1,5}$")

# Parameters of a metric that the runner supplies from the data, never from a protocol (the
# rate; the up axis: the runner measures keypoints in the skeleton's axes, +Y up).
_SUPPLIED = {"fs", "up"}


@dataclass(frozen=True)
class MetricInfo:
    """A metric a protocol may name.

    Attributes
    ----------
    name : str
    computable : bool
        True when :mod:`medpose.scoring` has a function of that name; False for a metric
        declared so that protocols can name it, not yet computed by medpose.
    input : str
        What it is computed from: ``"angle"`` (a joint angle), ``"speed"`` (angular speed of a
        joint, or the speed of a keypoint), ``"repetitions"`` (the repetition table),
        ``"pair"`` (left and right values of another metric), ``"gait"`` (gait events
        detected from keypoints, :mod:`medpose.scoring.gait`), ``"compensation"`` (a
        compensation per frame from the fitted keypoints, :mod:`medpose.scoring.compensation`)
        or ``"keypoints"`` (3D keypoint positions).
    unit : str
    params : tuple of str
        The parameters a protocol may set (keyword arguments of the function).
    description : str
    """

    name: str
    computable: bool
    input: str
    unit: str
    params: tuple[str, ...]
    description: str

    @property
    def frame_noise_ci(self) -> bool:
        """Whether a joint-angle value without a bootstrap takes its interval from the fit's
        angle noise drawn independently in every frame: for a metric of the angle's values (a
        range, a curve's distance), not of its rate of change (speeds, the time spent moving,
        smoothness).  The angle errors of neighbouring frames are not independent (the
        keypoints are low-pass filtered, and much of a markerless fit's residual is a constant
        offset of a keypoint), and differences of independent draws make a speed's spread many
        times too large: a Kinect abduction's peak speed of 310 deg/s got -313 to 934 deg/s."""
        return self.input == "angle" and self.name not in _RATES


#: Metrics of an angle's rate of change (see :attr:`MetricInfo.frame_noise_ci`).
_RATES = frozenset({"peak_angular_velocity", "mean_angular_velocity", "movement_time"})


def _params(func: Any) -> tuple[str, ...]:
    """Keyword parameters with a default value, those the runner supplies excepted."""
    return tuple(
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name not in _SUPPLIED
    )


def _computable(name: str, input: str, unit: str, description: str) -> MetricInfo:
    func = getattr(scoring, name)
    params = _params(func)
    if name == "repetition_count":  # **segment_options of segment_repetitions
        params = ("min_range", *_params(segment_repetitions))
    return MetricInfo(name, True, input, unit, params, description)


def _planned(name: str, input: str, unit: str, description: str) -> MetricInfo:
    return MetricInfo(name, False, input, unit, (), description)


_ALL = (
    _computable("rom", "angle", "deg", "range of motion (percentile range of the angle)"),
    _computable("peak_angular_velocity", "angle", "deg/s", "largest angular speed"),
    _computable("mean_angular_velocity", "angle", "deg/s", "mean angular speed"),
    _computable("movement_time", "angle", "s", "time spent moving"),
    _computable("tempo", "repetitions", "1/min", "repetitions per minute"),
    _computable("repetition_count", "angle", "count", "number of repetitions"),
    _computable("sparc", "speed", "1", "spectral arc length (smoothness)"),
    _computable("ldlj", "speed", "1", "log dimensionless jerk (smoothness)"),
    _computable("velocity_peaks", "speed", "count", "number of speed peaks (smoothness)"),
    _computable("symmetry_index", "pair", "%", "left/right symmetry of another metric"),
    _computable("dtw_distance", "angle", "deg", "DTW distance to the mean repetition"),
    _computable("consistency", "angle", "1", "similarity of the repetitions' curves"),
    _computable("gait_speed", "gait", "m/s", "walking speed (gait events, Zeni et al. 2008)"),
    _computable("cadence", "gait", "steps/min", "steps per minute"),
    _computable("step_length", "gait", "m", "step length per side, one value per step"),
    _computable(
        "trunk_lean",
        "compensation",
        "deg",
        "trunk inclination to vertical, sideways (plane: frontal) or forwards (sagittal)",
    ),
    _computable("trunk_rotation", "compensation", "deg", "thorax rotation relative to the pelvis"),
    _computable(
        "pelvic_drop", "compensation", "deg", "pelvic obliquity: drop of the side's pelvis"
    ),
    _computable("shoulder_hiking", "compensation", "deg", "elevation of the side's shoulder line"),
    _computable("head_tilt", "compensation", "deg", "lateral head tilt (ear line)"),
    _computable(
        "knee_valgus", "compensation", "deg", "frontal-plane knee projection angle (valgus +)"
    ),
    _computable("heel_lift", "compensation", "mm", "heel rise above its standing level"),
)

#: Every metric a protocol may name, computable or declared (see :class:`MetricInfo`).
_CRITERIA = tuple(
    MetricInfo(n, True, "keypoints", unit, (), text)
    for n, (unit, text) in CRITERION_METRICS.items()
)
METRICS: Mapping[str, MetricInfo] = {m.name: m for m in (*_ALL, *_CRITERIA)}


def _skeleton_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """DoF and keypoint names of ``resources/skeleton.yaml``, bilateral segments expanded
    (``<name>_r`` then ``<name>_l``), in the order of :class:`medpose.kinematics.Skeleton`."""
    spec = resource_yaml("skeleton.yaml")
    dofs: list[str] = []
    kps: list[str] = []
    for seg in spec["segments"].values():
        joint = seg["joint"]
        sides = ("_r", "_l") if seg.get("bilateral") else ("",)
        for side in sides:
            dofs.extend(str(t) for t in joint.get("translations") or ())
            dofs.extend(f"{d['name']}{side}" for d in joint["dofs"] if d)
            kps.extend(f"{k}{side}" for k in seg.get("keypoints") or {})
    return tuple(dofs), tuple(kps)


@functools.cache
def dof_names() -> tuple[str, ...]:
    """The joint angles (and root translations) of the default skeleton, e.g. ``knee_flexion_r``."""
    return _skeleton_names()[0]


@functools.cache
def keypoint_names() -> tuple[str, ...]:
    """The keypoints of the default skeleton, e.g. ``knee_r``."""
    return _skeleton_names()[1]


@functools.cache
def derived_names() -> tuple[str, ...]:
    """Angles derived from the DoFs (:mod:`medpose.scoring.derived_angles`), with their sides."""
    return tuple(f"{b}{s}" for b in DERIVED for s in ("_r", "_l"))


@functools.cache
def bilateral_bases() -> tuple[str, ...]:
    """Joint-angle names without their side (``knee_flexion``): both ``_r`` and ``_l`` exist
    (a DoF of the skeleton, or a derived angle such as ``shoulder_elevation``)."""
    names = set(dof_names()) | set(derived_names())
    return tuple(sorted(n[:-2] for n in names if n.endswith("_r") and n[:-2] + "_l" in names))


def joint_problem(name: Any) -> str | None:
    """Why ``name`` is not a joint angle of the default skeleton, or None when it is one.

    A joint is a DoF name (``knee_flexion_r``), a derived angle (``shoulder_elevation_r``,
    :mod:`medpose.scoring.derived_angles`) or a bilateral base of either (``knee_flexion``: the
    side or sides the trial measures).
    """
    known = (*dof_names(), *derived_names())
    if isinstance(name, str) and (name in known or name in bilateral_bases()):
        return None
    return (
        f"found {name!r}; expected a joint angle of the skeleton (a DoF name, or one without "
        f"its _r/_l side for the side(s) of the trial): {', '.join(bilateral_bases())}; or one "
        f"of {', '.join(known)}"
    )


def node_line(root: yaml.Node | None, path: Sequence[Any]) -> int | None:
    """The 1-based line of the field at ``path`` in a composed YAML node tree.

    ``path`` holds mapping keys (str) and list indices (int); parts that name nothing in the
    tree (pydantic's union branch tags) are skipped.  The line is that of the deepest node
    reached: the key itself for the last key of a mapping (so an unknown field points at its
    key), the value otherwise; None for an empty tree.
    """
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line
