"""The pydantic schema of a protocol file (format version 1).

:class:`ProtocolSchema` is the whole file and :func:`cross_check` finds what the schema alone
cannot see (references to trials and metric ids, steps that need other steps);
:mod:`medpose.protocol.definition` reads the YAML, applies both and wraps the result in
:class:`~medpose.protocol.definition.Protocol`.
Every setting of a step is named after the keyword argument of the medpose function the
step calls (``triangulate(min_confidence=...)``, ``segment_repetitions(min_range=...)``), so a
runner can pass it on unchanged.  See ``docs/protocols.md`` for the meaning of every field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .norm_keys import norm_key_problem
from .vocabulary import (
    FORMULAS,
    INPUT_STEPS,
    METRICS,
    NORM_KEY,
    STEPS,
    joint_problem,
    keypoint_names,
)

__all__ = [
    "NAME_PATTERN",
    "FieldProblem",
    "cross_check",
    "ProtocolSchema",
    "TrialSpec",
    "StepsSpec",
    "TriangulateSettings",
    "ReadKeypointsSettings",
    "CleanSettings",
    "GapSettings",
    "SwapSettings",
    "FilterSettings",
    "FitSettings",
    "RepetitionSettings",
    "MetricsSettings",
    "ScoresSettings",
    "RegisterSettings",
    "MetricSpec",
    "CompositeSpec",
    "RegistrationSpec",
    "GateSpec",
    "VariantSpec",
]

#: Names of protocols, trials, metric ids, variants and targets.
NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
_VERSION = r"^\d+\.\d+(\.\d+)?$"
_Name = Field(pattern=NAME_PATTERN, min_length=1, max_length=64)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


# ------------------------------------------------------------------------------- trials
class TrialSpec(_Strict):
    """A trial the protocol needs."""

    name: str = _Name
    movement: str = Field(min_length=1)
    kind: Literal["static", "exercise"] = "exercise"
    side: Literal["left", "right", "both", "auto"] | None = None
    min_repetitions: int = Field(default=1, ge=1, le=100)


# -------------------------------------------------------------------------------- steps
class TriangulateSettings(_Strict):
    """``steps.triangulate``: keyword arguments of :func:`medpose.triangulate`."""

    min_confidence: float = Field(default=0.3, ge=0, le=1)
    threshold_px: float = Field(default=20.0, gt=0)
    min_cameras: int = Field(default=2, ge=2)
    repair_swaps: bool = True
    temporal: bool = False


class ReadKeypointsSettings(_Strict):
    """``steps.read_keypoints``: the trial's 3D keypoint file is read as it is (no settings)."""


class GapSettings(_Strict):
    """``steps.clean.gaps``: keyword arguments of :func:`medpose.temporal.clean_gaps`."""

    max_gap_s: float = Field(default=0.2, ge=0)
    method: Literal["spline", "pchip", "linear"] = "spline"
    hampel_window_s: float = Field(default=0.25, gt=0)
    n_sigmas: float = Field(default=4.0, gt=0)
    bone_tolerance: float = Field(default=0.15, gt=0)
    bone_window_s: float | None = Field(default=1.0, gt=0)


class SwapSettings(_Strict):
    """``steps.clean.swaps``: keyword arguments of :func:`medpose.temporal.repair_swaps_3d`."""

    ratio: float = Field(default=0.5, gt=0, le=1)
    min_jump_mm: float = Field(default=50.0, ge=0)


class FilterSettings(_Strict):
    """``steps.clean.filter``: a zero-lag low-pass of :mod:`medpose.temporal`.

    ``butterworth`` uses ``cutoff_hz`` and ``order``; ``savgol`` uses ``window_s`` and
    ``polyorder``.
    """

    method: Literal["butterworth", "savgol"] = "butterworth"
    cutoff_hz: float | None = Field(default=None, gt=0)
    order: int = Field(default=4, ge=1, le=8)
    window_s: float | None = Field(default=None, gt=0)
    polyorder: int = Field(default=3, ge=1, le=6)

    @model_validator(mode="after")
    def _method_settings(self) -> FilterSettings:
        if self.method == "butterworth" and self.cutoff_hz is None:
            raise ValueError("method 'butterworth' needs 'cutoff_hz' (Hz)")
        if self.method == "savgol" and self.window_s is None:
            raise ValueError("method 'savgol' needs 'window_s' (seconds)")
        return self


class CleanSettings(_Strict):
    """``steps.clean``: each part that is present runs, in the order gaps, swaps, filter."""

    gaps: GapSettings | None = None
    swaps: SwapSettings | None = None
    filter: FilterSettings | None = None


class FitSettings(_Strict):
    """``steps.fit``: keyword arguments of :func:`medpose.fit`, and ``calibrate``: the subject's
    skeleton from :func:`medpose.calibrate` on each exercise trial itself (``movement``), on the
    protocol's static trial (``static``), lengths only (``none``), or (``auto``, the default)
    on the static trial where the protocol has one with the exercise trial's keypoints, no
    more and no fewer (the same detector's), else lengths only.

    ``smoothness`` defaults to 2 here (``medpose.fit``'s own default is 0): a protocol's trials
    are short, markerless keypoints are noisy, and the temporal term keeps the angles that the
    keypoints barely determine (the upper arm's rotation with a straight elbow) continuous
    with the frames that do; docs/protocols.md gives the measured effect."""

    smoothness: float = Field(default=2.0, ge=0)
    min_confidence: float = Field(default=0.3, ge=0, le=1)
    max_iter: int = Field(default=100, ge=1, le=10_000)
    tol_deg: float = Field(default=1e-3, gt=0)
    calibrate: Literal["auto", "none", "movement", "static"] = "auto"

    def fit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`medpose.fit`."""
        return self.model_dump(exclude={"calibrate"})


class RepetitionSettings(_Strict):
    """``steps.repetitions``: the joint angle to segment on and the keyword arguments of
    :func:`medpose.temporal.segment_repetitions` (``n_points``: samples per time-normalised
    repetition, :func:`medpose.temporal.cut_repetitions`)."""

    signal: str
    min_range: float = Field(gt=0)
    min_duration_s: float = Field(default=0.5, ge=0)
    max_duration_s: float | None = Field(default=None, gt=0)
    direction: Literal["auto", "up", "down"] = "auto"
    smooth_hz: float | None = Field(default=3.0, gt=0)
    rest_fraction: float = Field(default=0.05, gt=0, lt=1)
    n_points: int = Field(default=101, ge=2, le=10_000)

    @field_validator("signal")
    @classmethod
    def _joint(cls, v: str) -> str:
        why = joint_problem(v)
        if why:
            raise ValueError(why)
        return v


class MetricsSettings(_Strict):
    """``steps.metrics``: computes the protocol's ``metrics`` (no settings)."""


class ScoresSettings(_Strict):
    """``steps.scores``: scores the metrics that name a ``norm`` (no settings)."""


class RegisterSettings(_Strict):
    """``steps.register``: keyword arguments of :func:`medpose.register`."""

    robust: bool = True
    scale: bool = False
    outlier_p: float = Field(default=0.001, gt=0, lt=1)
    min_spread_ratio: float = Field(default=0.01, gt=0)


class DetectLandmarksSettings(_Strict):
    """``steps.detect_landmarks``: the imaging landmarks are detected in the session's volume
    (:func:`medpose.imaging.detector_run.detect_and_register`) instead of read from a file."""

    checkpoint: str | None = None  # default: the detector shipped with medpose
    min_confidence: float | None = Field(default=None, ge=0, le=1)


class StepsSpec(_Strict):
    """``steps``: the steps that run; a step is run when its key is present (its value may be
    empty: default settings)."""

    triangulate: TriangulateSettings | None = None
    read_keypoints: ReadKeypointsSettings | None = None
    clean: CleanSettings | None = None
    fit: FitSettings | None = None
    repetitions: RepetitionSettings | None = None
    metrics: MetricsSettings | None = None
    scores: ScoresSettings | None = None
    detect_landmarks: DetectLandmarksSettings | None = None
    # ``register`` would shadow BaseModel.register (ABCMeta): stored as ``register_``
    register_: RegisterSettings | None = Field(default=None, alias="register")

    @model_validator(mode="before")
    @classmethod
    def _present_means_run(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: ({} if v is None else v) for k, v in data.items()}

    def get(self, step: str) -> BaseModel | None:
        """The settings of ``step`` (a name of :data:`~medpose.protocol.vocabulary.STEPS`), or
        None when it does not run."""
        if step not in STEPS:
            raise KeyError(f"unknown step {step!r}; known steps: {', '.join(STEPS)}")
        value: BaseModel | None = getattr(self, "register_" if step == "register" else step)
        return value

    def names(self) -> tuple[str, ...]:
        """The steps that run, in pipeline order."""
        return tuple(s for s in STEPS if self.get(s) is not None)


# ------------------------------------------------------------------------------ metrics
_ParamValue = bool | int | float | str | list[float] | list[str]


class MetricSpec(_Strict):
    """One metric the protocol computes (see ``docs/protocols.md``)."""

    name: str
    id: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    joint: str | None = None
    keypoint: str | None = None
    of: str | None = None
    trial: str | None = None
    over: Literal["repetitions", "trial"] = "repetitions"
    aggregate: Literal["median", "mean", "max", "min", "sum"] = "median"
    params: dict[str, _ParamValue] = Field(default_factory=dict)
    norm: str | None = Field(default=None, max_length=120)
    requires_repetitions: int | None = Field(default=None, ge=1, le=100)

    def repetitions_missing(self, found: int) -> str:
        """Why the metric has no value with ``found`` repetitions: fewer than its
        ``requires_repetitions`` (a timed test of N repetitions, such as the five-repetition
        sit-to-stand); "" when it has them or requires none."""
        need = self.requires_repetitions
        if need is None or found >= need:
            return ""
        return f"{found} of the {need} repetitions the metric is defined on were found"

    @field_validator("name")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(
                f"found {v!r}; expected a metric known to medpose: {', '.join(METRICS)}"
            )
        return v

    @field_validator("joint")
    @classmethod
    def _known_joint(cls, v: str | None) -> str | None:
        why = None if v is None else joint_problem(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("keypoint")
    @classmethod
    def _known_keypoint(cls, v: str | None) -> str | None:
        if v is not None and v not in keypoint_names():
            raise ValueError(
                f"found {v!r}; expected a keypoint of the skeleton: {', '.join(keypoint_names())}"
            )
        return v

    @field_validator("of")
    @classmethod
    def _known_of(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(
                f"found {v!r}; expected a metric known to medpose: {', '.join(METRICS)}"
            )
        return v

    @field_validator("norm")
    @classmethod
    def _norm_key(cls, v: str | None) -> str | None:
        if v is not None and not NORM_KEY.match(v):
            raise ValueError(
                f"found {v!r}; expected a normative key of 2 to 6 lowercase parts joined by "
                "'.' (e.g. 'rom.knee_flexion.adult')"
            )
        return v

    @property
    def computable(self) -> bool:
        """Whether medpose computes this metric (and the metric it compares, for ``of``)."""
        compared = METRICS[self.of].computable if self.of else True
        return METRICS[self.name].computable and compared

    @property
    def key(self) -> str:
        """The metric's id: ``id`` if given, else ``<name>[_<of>][_<joint or keypoint>]``
        (``rom_knee_flexion``, ``symmetry_index_rom_knee_flexion``, ``tempo``)."""
        if self.id:
            return self.id
        parts = (self.name, self.of, self.joint or self.keypoint)
        return "_".join(p for p in parts if p)


class CompositeSpec(_Strict):
    """``composite``: how metric scores combine into one score."""

    formula: str
    weights: dict[str, float] = Field(min_length=1)

    @field_validator("formula")
    @classmethod
    def _known_formula(cls, v: str) -> str:
        if v not in FORMULAS:
            raise ValueError(f"found {v!r}; expected one of: {', '.join(FORMULAS)}")
        return v

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not w > 0}
        if bad:
            raise ValueError(f"weights must be positive numbers, found {bad}")
        return v


# ------------------------------------------------------------------------- registration
class GateSpec(_Strict):
    """``registration.gate``: the thresholds of :class:`medpose.QualityGate` (same names)."""

    max_fre_mm: float | None = Field(default=None, gt=0)
    max_tre_mm: float | dict[str, float] | None = None
    min_fiducials: int = Field(default=4, ge=3)
    max_outliers: int | None = Field(default=None, ge=0)

    @field_validator("max_tre_mm")
    @classmethod
    def _positive(cls, v: float | dict[str, float] | None) -> float | dict[str, float] | None:
        values = v.values() if isinstance(v, dict) else ([] if v is None else [v])
        if any(not x > 0 for x in values):
            raise ValueError(f"found {v!r}; expected positive numbers of millimetres")
        return v


class RegistrationSpec(_Strict):
    """``registration``: imaging landmarks to camera keypoints, and the pass/fail gate."""

    trial: str
    pairs: dict[str, str] = Field(min_length=3)
    targets: list[str] = Field(default_factory=list)
    fle_mm: float | None = Field(default=None, gt=0)
    gate: GateSpec = Field(default_factory=GateSpec)

    @field_validator("pairs")
    @classmethod
    def _keypoints(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v.values() if k not in keypoint_names()]
        if bad:
            raise ValueError(
                f"found keypoint {bad[0]!r}; expected a keypoint of the skeleton: "
                f"{', '.join(keypoint_names())}"
            )
        return v


class VariantSpec(_Strict):
    """One variant: a description and the trials' minimum repetitions it sets."""

    description: str = Field(min_length=1)
    min_repetitions: dict[str, int] = Field(default_factory=dict)


# ---------------------------------------------------------------------------- the file
class ProtocolSchema(_Strict):
    """A protocol file, format version 1."""

    schema_version: Literal[1]
    name: str = _Name
    version: str = Field(pattern=_VERSION)
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    instructions: str = Field(min_length=1)
    measures: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    trials: list[TrialSpec] = Field(min_length=1, max_length=100)
    steps: StepsSpec
    metrics: list[MetricSpec] = Field(default_factory=list, max_length=200)
    composite: CompositeSpec | None = None
    registration: RegistrationSpec | None = None
    variants: dict[str, VariantSpec] = Field(default_factory=dict)
    default_variant: str | None = None


# ------------------------------------------------------------------ cross-references
@dataclass(frozen=True)
class FieldProblem:
    """A problem of a protocol file: the field path (``("metrics", 0, "trial")``) and what
    was found against what was expected."""

    loc: tuple[Any, ...]
    message: str


def cross_check(m: ProtocolSchema) -> list[FieldProblem]:
    """Problems between fields that the schema alone cannot see: references to trials and
    metric ids, steps that need other steps, metric parameters and inputs.

    Returns
    -------
    list of FieldProblem
        Empty when the protocol is consistent.
    """
    return list(_cross_problems(m))


def _cross_problems(m: ProtocolSchema) -> Iterator[FieldProblem]:
    steps = m.steps
    names = [t.name for t in m.trials]
    known_trials = ", ".join(names)
    for i, t in enumerate(m.trials):
        if t.name in names[:i]:
            yield FieldProblem(("trials", i, "name"), f"trial {t.name!r} is declared twice")
    inputs = [s for s in INPUT_STEPS if steps.get(s) is not None]
    if len(inputs) != 1:
        yield FieldProblem(
            ("steps",),
            f"found {inputs or 'neither'}; expected exactly one of {' or '.join(INPUT_STEPS)}",
        )
    needs = {
        "repetitions": "fit",
        "scores": "metrics",
        "detect_landmarks": "register",
    }
    for step, needed in needs.items():
        if steps.get(step) is not None and steps.get(needed) is None:
            yield FieldProblem(("steps", step), f"step {step!r} needs step {needed!r}")
    fit = steps.fit
    if fit is not None and fit.calibrate == "static" and all(t.kind != "static" for t in m.trials):
        yield FieldProblem(
            ("steps", "fit", "calibrate"),
            f"found 'static' but no trial has kind static (trials: {known_trials}); expected "
            "a static trial, or calibrate: movement",
        )
    if m.metrics and steps.get("metrics") is None:
        yield FieldProblem(("steps",), "the protocol declares metrics; expected the step 'metrics'")
    if steps.get("metrics") is not None and not m.metrics:
        yield FieldProblem(("metrics",), "step 'metrics' runs; expected at least one metric")
    if (steps.get("register") is None) != (m.registration is None):
        yield FieldProblem(
            ("registration",) if m.registration else ("steps",),
            "'registration' and the step 'register' go together; found only one of them",
        )
    keys: list[str] = []
    for i, metric in enumerate(m.metrics):
        yield from _check_metric(metric, ("metrics", i), steps.get("repetitions") is not None)
        if metric.trial is not None and metric.trial not in names:
            yield FieldProblem(
                ("metrics", i, "trial"),
                f"found {metric.trial!r}; expected a trial of the protocol: {known_trials}",
            )
        if metric.key in keys:
            yield FieldProblem(
                ("metrics", i),
                f"metric id {metric.key!r} is used twice; give one of them an 'id'",
            )
        keys.append(metric.key)
    if m.composite is not None:
        if steps.get("scores") is None:
            yield FieldProblem(("composite",), "a composite score needs the step 'scores'")
        normed = {mt.key for mt in m.metrics if mt.norm}
        for key in m.composite.weights:
            if key not in normed:
                yield FieldProblem(
                    ("composite", "weights", key),
                    f"found {key!r}; expected the id of a metric that names a 'norm': "
                    f"{', '.join(sorted(normed)) or '(none)'}",
                )
    if m.registration is not None:
        reg = m.registration
        if reg.trial not in names:
            yield FieldProblem(
                ("registration", "trial"),
                f"found {reg.trial!r}; expected a trial of the protocol: {known_trials}",
            )
        tre = reg.gate.max_tre_mm
        for target in tre if isinstance(tre, dict) else ():
            if target not in reg.targets:
                yield FieldProblem(
                    ("registration", "gate", "max_tre_mm", target),
                    f"found target {target!r}; expected one of 'targets': {reg.targets}",
                )
        if tre is not None and not reg.targets:
            yield FieldProblem(("registration", "targets"), "max_tre_mm is set; expected targets")
    for vname, variant in m.variants.items():
        for trial in variant.min_repetitions:
            if trial not in names:
                yield FieldProblem(
                    ("variants", vname, "min_repetitions", trial),
                    f"found {trial!r}; expected a trial of the protocol: {known_trials}",
                )
    if m.variants and m.default_variant not in m.variants:
        yield FieldProblem(
            ("default_variant",),
            f"found {m.default_variant!r}; expected one of the variants: {', '.join(m.variants)}",
        )
    if not m.variants and m.default_variant is not None:
        yield FieldProblem(("default_variant",), "set, but the protocol declares no 'variants'")


def _check_metric(
    metric: MetricSpec, loc: tuple[Any, ...], repetitions: bool
) -> Iterator[FieldProblem]:
    info = METRICS[metric.name]
    why = None if metric.norm is None else norm_key_problem(metric.norm, metric.name, metric.joint)
    if why:
        yield FieldProblem((*loc, "norm"), why)
    unknown = sorted(set(metric.params) - set(info.params))
    if unknown:
        allowed = ", ".join(info.params) or "none"
        yield FieldProblem(
            (*loc, "params", unknown[0]),
            f"unknown parameter {unknown[0]!r} of {metric.name}; known: {allowed}",
        )
    wants_joint = info.input in ("angle", "repetitions")
    if info.input == "speed" and metric.joint is None and metric.keypoint is None:
        yield FieldProblem(loc, f"{metric.name} needs a 'joint' (angular speed) or a 'keypoint'")
    if wants_joint and info.name != "tempo" and metric.joint is None:
        yield FieldProblem(loc, f"{metric.name} needs a 'joint' (a joint angle)")
    if info.input == "pair":
        compared = METRICS.get(metric.of or "")
        if compared is None:
            yield FieldProblem(loc, f"{metric.name} needs 'of': the metric compared left to right")
        elif compared.input in ("pair", "repetitions"):
            yield FieldProblem(
                (*loc, "of"), f"found {metric.of!r}; expected a metric with a value per side"
            )
        elif compared.input in ("angle", "speed") and metric.joint is None:
            yield FieldProblem(loc, f"{metric.name} of {metric.of} needs a 'joint' (without side)")
        elif metric.joint is not None and metric.joint.endswith(("_r", "_l")):
            yield FieldProblem(
                (*loc, "joint"),
                f"found {metric.joint!r}; {metric.name} compares sides: expected a joint "
                f"without its side ({metric.joint[:-2]!r})",
            )
    elif metric.of is not None:
        yield FieldProblem((*loc, "of"), f"only symmetry_index takes 'of', not {metric.name}")
    needs_reps = info.name in ("tempo", "consistency", "dtw_distance") or (
        metric.over == "repetitions" and info.input in ("angle", "speed")
    )
    if needs_reps and not repetitions and info.name != "repetition_count":
        yield FieldProblem(
            loc,
            f"{metric.name} over repetitions needs the step 'repetitions' (or over: trial)",
        )
    if metric.requires_repetitions is not None and not repetitions:
        yield FieldProblem(
            (*loc, "requires_repetitions"),
            f"found {metric.requires_repetitions}, but the protocol has no 'repetitions' step "
            "to count them",
        )
