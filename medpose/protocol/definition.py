"""Assessment protocols: versioned YAML files, validated on load.

A protocol says which trials a session needs, which pipeline steps run on them with which
settings, which metrics are computed on which joint angles, which normative data score them
and how the scores combine (``docs/protocols.md``).  :meth:`Protocol.load` takes the name of a
protocol of the catalogue (``"deep_squat"``, the YAML files under
``medpose/resources/protocols/``) or the path of a user's own file.

Loading is safe and every problem is named: the file is read with
:func:`medpose.io._text.read_text` (strict UTF-8, size limit) and parsed by a
:class:`medpose.io._text.SafeYAMLLoader` (no Python tags, no aliases, bounded nesting; a key
written twice is refused), then validated against
:class:`~medpose.protocol.definition_schema.ProtocolSchema` and cross-checked (trials,
metric ids, steps that need other steps).  A :class:`~medpose.errors.ProtocolError` lists every
problem as ``file: line N: field: what was found; what was expected``; an unknown step, metric,
joint, keypoint or trial is refused with the list of known names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import os
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..data import KeypointSequence
from ..errors import InputError, ProtocolError
from ..io._text import StrictYAMLLoader, load_yaml, read_text
from ..io._util import display_name
from ..registration.gate import QualityGate
from .assessment import QUALITY_COLUMNS, Assessment
from .clean import clean_sequence, missing_rows
from .definition_schema import (
    NAME_PATTERN,
    FieldProblem,
    MetricSpec,
    ProtocolSchema,
    TrialSpec,
    cross_check,
)
from .session import Session
from .vocabulary import FORMULAS, STEPS, node_line

__all__ = ["MAX_PROTOCOL_BYTES", "Protocol", "catalogue", "catalogue_names"]

#: Largest protocol file read, in bytes.
MAX_PROTOCOL_BYTES = 1 << 20

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
# Top-level fields kept as the text written (``version: 1.10`` is not the float 1.1).
_TEXT_FIELDS = ("name", "version", "title")
_ECHO = 60


class _ProtocolLoader(StrictYAMLLoader):
    """The strict loader; ``name``, ``version`` and ``title`` stay the text written."""

    def construct_document(self, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (
                    key.value in _TEXT_FIELDS
                    and isinstance(value, yaml.ScalarNode)
                    and value.tag != _NULL
                ):
                    value.tag = _STR
        return super().construct_document(node)


# ------------------------------------------------------------------------------ messages
def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in str(part):  # pydantic's union branch tags (``function-after[...]``)
            out += f".{part}" if out else str(part)
    return out


def _found(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= _ECHO else text[: _ECHO - 3] + "..."


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X | None``, ``list[X]``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema's model at ``loc`` (indices and mapping keys skipped)."""
    model: type[BaseModel] = ProtocolSchema
    for part in loc:
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        if isinstance(part, str) and part in fields:
            inner = _model_of(fields[part].annotation)
            if inner is None:
                break
            model = inner
    return [f.alias or name for name, f in model.model_fields.items()]


def _message(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        loc = tuple(err["loc"])
        if loc[:1] == ("steps",) and len(loc) == 2:
            return f"unknown step {loc[1]!r}; known steps: {', '.join(STEPS)}"
        known = _known_fields(loc[:-1])
        return f"unknown field {loc[-1]!r}; known fields here: {', '.join(known)}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    expected = {
        "greater_than": f"a number greater than {ctx.get('gt')}",
        "greater_than_equal": f"a number >= {ctx.get('ge')}",
        "less_than": f"a number < {ctx.get('lt')}",
        "less_than_equal": f"a number <= {ctx.get('le')}",
        "literal_error": f"one of {ctx.get('expected')}",
        "string_type": "text",
        "string_too_short": "non-empty text",
        "string_too_long": f"at most {ctx.get('max_length')} characters",
        "string_pattern_mismatch": "a name of letters, digits, '_' and '-' only"
        if ctx.get("pattern") == NAME_PATTERN
        else f"text matching {ctx.get('pattern')}",
        "dict_type": "a mapping",
        "model_type": "a mapping of fields",
        "list_type": "a list",
        "too_short": f"at least {ctx.get('min_length')} item(s)",
        "too_long": f"at most {ctx.get('max_length')} item(s)",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
    }.get(kind)
    if expected is None and kind.startswith(("int", "float", "finite")):
        expected = "a whole number" if kind.startswith("int") else "a finite number"
    if expected is None:
        return str(err["msg"])
    return f"found {_found(err.get('input'))}; expected {expected}"


def _problems_text(src: str, root: yaml.Node | None, problems: list[FieldProblem]) -> str:
    lines = []
    for p in problems:
        line = node_line(root, p.loc)
        at = f"line {line}: " if line is not None else ""
        field = _field(p.loc)
        lines.append(f"{src}: {at}{field + ': ' if field else ''}{p.message}")
    return "\n".join(lines)


def _compose(text: str) -> yaml.Node | None:
    """The node tree (for line numbers); the text already parsed, so this cannot fail."""
    loader = _ProtocolLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    return node


def parse_protocol(text: str, src: str) -> ProtocolSchema:
    """Validate the text of a protocol file.

    Parameters
    ----------
    text : str
        The YAML.
    src : str
        The file's name for messages.

    Raises
    ------
    ProtocolError
        Every problem, one line each: ``src: line N: field: found ...; expected ...``.
    """
    try:
        doc = load_yaml(text, src, loader=_ProtocolLoader)
    except InputError as e:
        raise ProtocolError(str(e)) from None
    if not isinstance(doc, dict):
        raise ProtocolError(
            f"{src}: found {type(doc).__name__}; expected a mapping of fields "
            "(schema_version, name, version, ...)"
        )
    root = _compose(text)
    try:
        model = ProtocolSchema.model_validate(doc)
    except ValidationError as e:
        problems = [FieldProblem(tuple(err["loc"]), _message(err)) for err in e.errors()]
        raise ProtocolError(_problems_text(src, root, problems)) from None
    cross = cross_check(model)
    if cross:
        raise ProtocolError(_problems_text(src, root, cross))
    return model


# ----------------------------------------------------------------------------- catalogue
def _catalogue_dir() -> Any:
    return resources.files("medpose.resources").joinpath("protocols")


def catalogue_names() -> tuple[str, ...]:
    """Names of the protocols of the catalogue (``medpose/resources/protocols/*.yaml``), sorted."""
    return tuple(
        sorted(
            p.name.removesuffix(".yaml")
            for p in _catalogue_dir().iterdir()
            if p.name.endswith(".yaml")
        )
    )


def catalogue() -> tuple[Protocol, ...]:
    """Every protocol of the catalogue, loaded, in name order."""
    return tuple(Protocol.load(name) for name in catalogue_names())


# ------------------------------------------------------------------------------ Protocol
class Protocol:
    """An assessment protocol, validated (see the module docstring and ``docs/protocols.md``).

    Build one with :meth:`load`.  The validated file is :attr:`spec`
    (:class:`~medpose.protocol.definition_schema.ProtocolSchema`); the common fields are
    properties.

    Examples
    --------
    >>> p = Protocol.load("deep_squat")
    >>> p.name, p.steps[0]
    ('deep_squat', 'read_keypoints')
    """

    def __init__(self, spec: ProtocolSchema, source: str, variant: str | None = None) -> None:
        self.spec = spec
        self.source = source
        self.variant = variant

    # -- loading
    @classmethod
    def load(cls, name_or_path: str | os.PathLike, variant: str | None = None) -> Protocol:
        """A protocol of the catalogue by name (``"deep_squat"``), or a YAML file by path.

        Parameters
        ----------
        name_or_path : str or path-like
            A catalogue name (letters, digits, ``_``, ``-``, no suffix) or a file path.
        variant : str, optional
            A variant of the protocol (``Protocol.load("sit_to_stand", variant="single")``);
            default: the protocol's ``default_variant``.

        Raises
        ------
        ProtocolError
            Unknown catalogue name (the message lists them), an invalid file (every problem
            with its line), an unknown variant.
        InputError
            The file is missing, a folder, too large or not UTF-8.
        """
        text_name = os.fspath(name_or_path)
        is_name = (
            isinstance(name_or_path, str)
            and Path(text_name).suffix == ""
            and "/" not in text_name
            and "\\" not in text_name
        )
        if is_name:
            if text_name not in catalogue_names():
                raise ProtocolError(
                    f"protocol {text_name!r}: not in the catalogue; known protocols: "
                    f"{', '.join(catalogue_names())} (or give the path of a .yaml file)"
                )
            src = f"{text_name}.yaml"
            text = _catalogue_dir().joinpath(src).read_text(encoding="utf-8")
        else:
            path = Path(name_or_path)
            src = display_name(path)
            text = read_text(path, "protocol file", MAX_PROTOCOL_BYTES)
        spec = parse_protocol(text, src)
        if is_name and spec.name != text_name:
            raise ProtocolError(f"{src}: name: found {spec.name!r}; expected {text_name!r}")
        return cls(spec, src).with_variant(variant)

    def with_variant(self, variant: str | None) -> Protocol:
        """This protocol with ``variant``'s trial repetitions (None: the default variant).

        Raises
        ------
        ProtocolError
            Unknown variant; the message lists the variants.
        """
        variant = variant if variant is not None else self.spec.default_variant
        if variant is None:
            return self
        if variant not in self.spec.variants:
            known = ", ".join(self.spec.variants) or "none"
            raise ProtocolError(
                f"{self.source}: variant {variant!r} not found; variants of {self.name}: {known}"
            )
        reps = self.spec.variants[variant].min_repetitions
        trials = [
            t.model_copy(update={"min_repetitions": reps.get(t.name, t.min_repetitions)})
            for t in self.spec.trials
        ]
        return Protocol(self.spec.model_copy(update={"trials": trials}), self.source, variant)

    # -- fields
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def trials(self) -> tuple[TrialSpec, ...]:
        return tuple(self.spec.trials)

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps that run, in pipeline order."""
        return self.spec.steps.names()

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return tuple(self.spec.metrics)

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.spec.variants)

    def trial(self, name: str) -> TrialSpec:
        """The trial called ``name``; KeyError listing the trials otherwise."""
        for t in self.spec.trials:
            if t.name == name:
                return t
        raise KeyError(f"{self.name}: no trial {name!r}; trials: {[t.name for t in self.trials]}")

    def quality_gate(self) -> QualityGate | None:
        """The registration gate as a :class:`~medpose.registration.QualityGate` (None without
        a ``registration`` section)."""
        if self.spec.registration is None:
            return None
        return QualityGate.from_dict(
            self.spec.registration.gate.model_dump(), f"{self.source}: registration.gate"
        )

    def run(
        self,
        data: Any,
        *,
        trial: str | None = None,
        side: str | None = None,
        age: float | None = None,
        sex: str | None = None,
        trials: typing.Mapping[str, str] | None = None,
        progress: bool | None = None,
    ) -> Assessment:
        """Assess one trial's data, or a whole session, with this protocol.

        A :class:`~medpose.protocol.session.Session` or a session folder's path runs every
        step of the protocol on every trial it needs
        (:func:`medpose.protocol.execute_session`; ``trials`` maps protocol trials to
        session trials named otherwise, ``progress`` shows a progress bar) and returns the
        assessment over all trials.  One trial's data is forwarded to
        :func:`medpose.protocol.runner.run_protocol`, a
        :class:`~medpose.data.KeypointSequence` through the protocol's ``clean`` step first
        (:func:`~medpose.protocol.clean.clean_sequence`, as in a session, so that a recording
        gives the same result either way; its rows in ``Assessment.quality``): it fits the
        keypoints with the protocol's fit settings (or takes a
        :class:`~medpose.kinematics.fit.Fit`, joint angles), segments the repetitions,
        computes each metric per repetition with its median and bootstrap 95 % CI, scores them
        against their norms and computes the composite.

        Parameters
        ----------
        data : KeypointSequence, Fit, JointAngles, DataFrame of angles (degrees), Session or path
            One trial's data, or a session (its folder's path).
        trial : str, optional
            The protocol's trial (default: the first; for a protocol with one trial per side,
            such as ``abduction_left`` and ``abduction_right``, the trial of the side that
            moves: ``side="auto"``).
        side : {"left", "right", "both", "auto"}, optional
            Overrides the trial's side; ``"auto"``: the side with the larger range of motion
            of the repetition signal (recorded in ``info["auto_side"]``).
        age, sex : optional
            The patient's group for the norms.

        Returns
        -------
        Assessment
        """
        if isinstance(data, (str, os.PathLike, Session)):
            from .session_run import run_session

            return run_session(self, data, trials=trials, progress=progress).assessment
        from .runner import run_protocol  # torch (fitting) is loaded only when a protocol runs

        rows: list[dict[str, Any]] = []
        if isinstance(data, KeypointSequence) and data.positions.shape[-1] == 3:
            label = trial or self.trials[0].name
            rows = missing_rows(label, data)
            data, more = clean_sequence(self, data, label)
            rows += more
        if trial is None and side is None and {"left", "right"} <= {t.side for t in self.trials}:
            side = "auto"  # one trial per side: assess the side that moves
        out = run_protocol(self, data, trial=trial, side=side, age=age, sex=sex)
        if not rows:
            return out
        cleaned = pd.DataFrame(rows, columns=list(QUALITY_COLUMNS)).assign(trial=out.trial)
        return dataclasses.replace(
            out, quality=pd.concat([cleaned, out.quality], ignore_index=True)
        )

    def to_dict(self) -> dict[str, Any]:
        """The validated protocol as plain data, every default filled in (JSON types)."""
        out: dict[str, Any] = self.spec.model_dump(mode="json", by_alias=True)
        return out

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical content: :meth:`to_dict` as JSON with sorted keys.

        Key order, comments, quoting and settings written at their default value do not
        change it; any change of meaning does (a changed default of medpose too).
        """
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def summary(self) -> str:
        """One line: name, version and title."""
        return f"{self.name}  {self.version}  {self.title}"

    def describe(self) -> str:
        """A few lines for people: title, purpose, trials, steps, metrics, sources."""
        s = self.spec
        lines = [
            f"{s.name} {s.version}: {s.title}" + (f" [{self.variant}]" if self.variant else "")
        ]
        lines += [f"purpose: {s.purpose.strip()}", f"measures: {s.measures.strip()}"]
        lines.append(f"instructions: {s.instructions.strip()}")
        for t in s.trials:
            side = f", side {t.side}" if t.side else ""
            lines.append(
                f"trial {t.name}: {t.movement.strip()} ({t.kind}, at least "
                f"{t.min_repetitions} repetition(s){side})"
            )
        lines.append("steps: " + " -> ".join(self.steps))
        for mt in s.metrics:
            planned = "" if mt.computable else " (declared; not yet computed)"
            what = mt.name + (f" of {mt.of}" if mt.of else "")
            on = mt.joint or mt.keypoint
            where = (f" on {on}" if on else "") + (f", trial {mt.trial}" if mt.trial else "")
            norm = f", norm {mt.norm}" if mt.norm else ""
            if mt.requires_repetitions is not None:
                norm += f", only with at least {mt.requires_repetitions} repetitions found"
            over = "over the trial" if mt.over == "trial" else f"{mt.aggregate} of the repetitions"
            lines.append(f"metric {mt.key}: {what}{where}, {over}{norm}{planned}")
        if s.composite is not None:
            lines.append(
                f"composite: {s.composite.formula} = {FORMULAS[s.composite.formula]}, "
                f"weights {s.composite.weights}"
            )
        if s.registration is not None:
            lines.append(f"registration gate: {self.quality_gate()}")
        if s.variants:
            lines.append("variants: " + ", ".join(s.variants))
        lines += [f"source: {src}" for src in s.sources]
        return "\n".join(lines)

    def __repr__(self) -> str:
        variant = f", variant={self.variant!r}" if self.variant else ""
        return (
            f"Protocol({self.name!r} {self.version}{variant}: {len(self.trials)} trial(s), "
            f"steps {'>'.join(self.steps)}, {len(self.metrics)} metric(s), "
            f"hash {self.hash[:12]})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        s = self.spec
        rows = "".join(
            f"<tr><td>{e(mt.key)}</td><td>{e(mt.name)}</td><td>{e(mt.joint or mt.keypoint or mt.of or '')}</td>"
            f"<td>{e(mt.norm or '')}</td></tr>"
            for mt in s.metrics
        )
        trials = ", ".join(e(t.name) for t in s.trials)
        return (
            f"<div><b>{e(s.title)}</b> <code>{e(s.name)} {e(s.version)}</code>"
            f"<p>{e(s.purpose)}</p><p>trials: {trials}; steps: {e(' → '.join(self.steps))}</p>"
            "<table><tr><th>metric</th><th>function</th><th>on</th><th>norm</th></tr>"
            f"{rows}</table><small>sha256 {e(self.hash[:16])}…</small></div>"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Protocol) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)
