"""The ``session.yaml`` schema (format version 1) and its problems in plain words.

:class:`SessionSchema` is a pydantic v2 model of the file (see ``docs/sessions.md``);
:func:`check_schema` validates a document against it and turns every violation into a
:class:`~medpose.protocol.problems.Problem` that names the field, echoes the value found and
says what was expected (``trials[1].rate_hz: found -30, expected a number greater than 0``).
The patient id is never echoed.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ..data import MAX_RATE_HZ
from .paths import SESSION_FILE
from .problems import Problem

__all__ = [
    "MAX_TRIALS",
    "ImagingSchema",
    "PatientSchema",
    "SessionSchema",
    "TrialSchema",
    "check_schema",
    "duplicate_names",
]

#: Most trials in one session.
MAX_TRIALS = 1000
_NAME = r"^[A-Za-z0-9_-]+$"
_DUPLICATE_TRIALS = "trial names must be unique; repeated: {}"
# Longest echo of a found value in a message.
_ECHO = 60


def duplicate_names(names: list[Any]) -> list[str]:
    """The names that appear more than once, sorted."""
    seen: set[str] = set()
    dup: set[str] = set()
    for n in names:
        (dup if str(n) in seen else seen).add(str(n))
    return sorted(dup)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PatientSchema(_Strict):
    """``patient``: a pseudonymous id, never shown in messages, and optional body data."""

    id: str = Field(min_length=1)
    sex: Literal["female", "male", "unknown"] = "unknown"
    age_years: float | None = Field(default=None, ge=0, le=130)
    height_mm: float | None = Field(default=None, ge=500, le=2500)
    mass_kg: float | None = Field(default=None, ge=2, le=400)

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, coerce_numbers_to_str=True
    )


class ImagingSchema(_Strict):
    """``imaging``: a volume and a landmark file, paths relative to the session folder."""

    volume: str | None = None
    landmarks: str | None = None


class TrialSchema(_Strict):
    """One entry of ``trials``: a 3D keypoint file, OpenPose folders per camera, or both."""

    name: str = Field(pattern=_NAME)
    kind: Literal["static", "exercise"]
    exercise: str | None = None
    keypoints: str | None = None
    cameras: dict[str, str] | None = None
    rate_hz: float | None = Field(default=None, gt=0, le=MAX_RATE_HZ)

    @model_validator(mode="after")
    def _needs_data(self) -> TrialSchema:
        if not self.keypoints and not self.cameras:
            raise ValueError(
                "a trial needs 'keypoints' (a 3D file), 'cameras' (2D folders) or both"
            )
        if self.cameras and not self.keypoints and self.rate_hz is None:
            raise ValueError(
                "'rate_hz' is required when only 'cameras' are given (OpenPose JSON has no rate)"
            )
        return self


class SessionSchema(_Strict):
    """The ``session.yaml`` schema (format version 1)."""

    medpose_session: Literal[1]
    patient: PatientSchema
    date: _dt.date
    side_of_interest: Literal["left", "right", "both"] = "both"
    imaging: ImagingSchema | None = None
    calibration: str | None = None
    trials: list[TrialSchema] = Field(min_length=1, max_length=MAX_TRIALS)
    notes: str | None = None

    @field_validator("trials")
    @classmethod
    def _unique(cls, trials: list[TrialSchema]) -> list[TrialSchema]:
        dup = duplicate_names([t.name for t in trials])
        if dup:
            raise ValueError(_DUPLICATE_TRIALS.format(dup))
        return trials

    @model_validator(mode="after")
    def _calibration_if_cameras(self) -> SessionSchema:
        if any(t.cameras for t in self.trials) and not self.calibration:
            raise ValueError("'calibration' is required because a trial has 'cameras'")
        return self


# ---------------------------------------------------------------------------- messages
def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _found(value: Any, loc: tuple) -> str:
    """The value found, for a message; the patient id is described, never echoed."""
    if value is None:
        return "nothing (null)"
    if loc[:2] == ("patient", "id"):
        return f"a {type(value).__name__}" if not isinstance(value, str) else "the text given"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, _dt.date):
        text = value.isoformat()
    return text if len(text) <= _ECHO else text[: _ECHO - 3] + "..."


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _expected(err: ErrorDetails) -> str | None:
    """What was expected, from the pydantic error type; None for a validator's own message."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "greater_than":
        return f"a number greater than {_number(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"a number >= {_number(ctx['ge'])}"
    if kind == "less_than_equal":
        return f"a number <= {_number(ctx['le'])}"
    if kind == "less_than":
        return f"a number < {_number(ctx['lt'])}"
    if kind == "literal_error":
        return str(ctx.get("expected", "one of the allowed values"))
    if kind in ("string_type", "string_sub_type"):
        return "text"
    if kind == "string_too_short":
        return "non-empty text"
    if kind == "string_pattern_mismatch":
        return "a name of letters, digits, '_' and '-' only"
    if kind.startswith(("float", "int", "finite")):
        return "a number"
    if kind.startswith(("date", "datetime")):
        msg = err["msg"]
        if "," in msg:
            reason = msg.split(",", 1)[1].strip()
        else:
            reason = "" if msg.startswith("Input should be") else msg[:1].lower() + msg[1:]
        return "a date YYYY-MM-DD" + (f" ({reason})" if reason else "")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "a mapping of fields"
    if kind == "list_type":
        return "a list"
    if kind == "too_short":
        return f"at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} item(s)"
    return None


def _problem(err: ErrorDetails) -> Problem:
    loc = tuple(err["loc"])
    field = _field(loc)
    if err["type"] == "missing":
        return Problem(SESSION_FILE, field, "required field is missing")
    if err["type"] == "extra_forbidden":
        return Problem(SESSION_FILE, field, "unknown field (not in the session.yaml schema)")
    if err["type"] == "value_error":
        return Problem(SESSION_FILE, field, err["msg"].removeprefix("Value error, "))
    expected = _expected(err)
    if expected is None:
        return Problem(SESSION_FILE, field, err["msg"])
    return Problem(
        SESSION_FILE, field, f"found {_found(err.get('input'), loc)}, expected {expected}"
    )


def check_schema(doc: dict) -> tuple[SessionSchema | None, list[Problem]]:
    """Validate a ``session.yaml`` document against :class:`SessionSchema`.

    Parameters
    ----------
    doc : dict
        The parsed file.

    Returns
    -------
    (SessionSchema or None, list of Problem)
        The model and no problem, or None and every violation (file ``session.yaml``, the
        field, the value found and what was expected).
    """
    try:
        return SessionSchema.model_validate(doc), []
    except ValidationError as e:
        problems = [_problem(err) for err in e.errors(include_url=False)]
    # pydantic skips the uniqueness check when a trial fails; report it anyway
    trials = doc.get("trials")
    dup = duplicate_names(
        [
            t.get("name")
            for t in (trials if isinstance(trials, list) else [])
            if isinstance(t, dict) and t.get("name") is not None
        ]
    )
    if dup and not any(p.field == "trials" and "unique" in p.message for p in problems):
        problems.append(Problem(SESSION_FILE, "trials", _DUPLICATE_TRIALS.format(dup)))
    return None, problems
