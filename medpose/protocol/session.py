"""Session folders: ``session.yaml`` plus the imaging, calibration and trial files it names.

Layout (all paths in ``session.yaml`` are relative to the session folder and may not
leave it; see ``docs/sessions.md``)::

    session_dir/
      session.yaml
      imaging/ct.nii.gz                 optional volume
      imaging/landmarks.mrk.json        optional landmarks (.mrk.json / .fcsv / .csv)
      calibration/calibration.toml      required if any trial has cameras
      trials/<trial>.trc                3D keypoints (.trc / .c3d / .csv / .parquet)
      trials/<trial>/<camNN>_json/      2D keypoints per camera (OpenPose JSON folders)
      truth/                            synthetic sessions only; ignored

:func:`validate_session` checks the YAML against the schema and opens every named
file with its reader, collecting every problem; :meth:`Session.load` raises
:class:`~medpose.errors.ProtocolError` listing them all.  No message contains the
patient id.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import MedposeError, ProtocolError
from ..io._util import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from ..camera.model import Camera
    from ..data import KeypointSequence, Landmarks

__all__ = [
    "Session",
    "Trial",
    "Patient",
    "Imaging",
    "Problem",
    "SessionSchema",
    "validate_session",
    "write_session_yaml",
    "SESSION_FILE",
]

SESSION_FILE = "session.yaml"
_NAME = r"^[A-Za-z0-9_-]+$"
# Errors a reader may raise on a bad file; anything else is a bug and propagates.
_READ_ERRORS = (MedposeError, OSError, ValueError, RuntimeError)


# ---------------------------------------------------------------------------- schema
_DUPLICATE_TRIALS = "trial names must be unique; repeated: {}"


def _duplicates(names: list[Any]) -> list[str]:
    return sorted({str(n) for n in names if names.count(n) > 1})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientSchema(_Strict):
    id: str = Field(min_length=1)
    sex: Literal["female", "male", "unknown"] = "unknown"
    age_years: float | None = Field(default=None, ge=0, le=130)
    height_mm: float | None = Field(default=None, ge=500, le=2500)
    mass_kg: float | None = Field(default=None, ge=2, le=400)

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class ImagingSchema(_Strict):
    volume: str | None = None
    landmarks: str | None = None


class TrialSchema(_Strict):
    name: str = Field(pattern=_NAME)
    kind: Literal["static", "exercise"]
    exercise: str | None = None
    keypoints: str | None = None
    cameras: dict[str, str] | None = None
    rate_hz: float | None = Field(default=None, gt=0)

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
    trials: list[TrialSchema] = Field(min_length=1)
    notes: str | None = None

    @field_validator("trials")
    @classmethod
    def _unique(cls, trials: list[TrialSchema]) -> list[TrialSchema]:
        dup = _duplicates([t.name for t in trials])
        if dup:
            raise ValueError(_DUPLICATE_TRIALS.format(dup))
        return trials

    @model_validator(mode="after")
    def _calibration_if_cameras(self) -> SessionSchema:
        if any(t.cameras for t in self.trials) and not self.calibration:
            raise ValueError("'calibration' is required because a trial has 'cameras'")
        return self


# ---------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a session.

    Attributes
    ----------
    file : str
        The file concerned, relative to the session folder (posix), e.g. ``"session.yaml"``.
    field : str
        The ``session.yaml`` field, e.g. ``"trials[1].rate_hz"`` (empty if none).
    message : str
        What was found and what was expected.
    """

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field + ': ' if self.field else ''}{self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _relative_path_problem(rel: Any) -> str | None:
    """Syntactic check of a session path: a relative path that stays in the folder."""
    if not isinstance(rel, str) or not rel.strip():
        return f"must be a relative path (text), found {type(rel).__name__}"
    if (
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or PureWindowsPath(rel).drive
    ):
        return "absolute paths are not allowed; give a path relative to the session folder"
    depth = 0
    for part in PurePosixPath(rel.replace("\\", "/")).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return "path leaves the session folder ('..'); files must lie inside it"
    return None


def _resolve(root: Path, rel: Any) -> tuple[Path | None, str | None]:
    """Resolve ``rel`` under ``root``; refuse absolute paths, '..' escapes and outward symlinks."""
    why = _relative_path_problem(rel)
    if why:
        return None, why
    try:
        real_root = root.resolve()
        p = (root / rel).resolve()
    except (OSError, ValueError) as e:
        return None, f"is not a usable path ({e})"
    if p != real_root and real_root not in p.parents:
        return (
            None,
            "resolves (through a symbolic link) to a place outside the session folder; refused",
        )
    return root / rel, None


# ---------------------------------------------------------------------------- readers (lazy)
def _read_volume(path: Path) -> Any:
    from ..imaging.volume import read_volume

    return read_volume(path)


def _read_landmarks(path: Path) -> Landmarks:
    from ..io.landmarks import read_landmarks

    return read_landmarks(path)


def _read_calibration(path: Path) -> list[Camera]:
    from ..io.calibration import read_calibration

    return read_calibration(path)


def _read_keypoints(path: Path) -> KeypointSequence:
    from ..io.keypoints import read_keypoints

    return read_keypoints(path)


def _read_openpose(folder: Path, rate: float, camera: str) -> KeypointSequence:
    """2D keypoints of one camera (px), ``frame`` = the camera's name."""
    from ..io.openpose import read_openpose

    return read_openpose(folder, rate=rate, camera=camera)


# ---------------------------------------------------------------------------- validation
class _Collector:
    """Gathers problems; ``open_files=False`` turns :meth:`read` into a no-op."""

    def __init__(self, root: Path, open_files: bool = True) -> None:
        self.root = root
        self.open_files = open_files
        self.problems: list[Problem] = []

    def add(self, file: str, field: str, message: str) -> None:
        self.problems.append(Problem(file, field, message))

    def path(self, rel: Any, field: str, *, folder: bool = False) -> Path | None:
        """Check a session path: inside the folder and present; returns it or None."""
        if not isinstance(rel, str):
            return None  # the schema check reports the wrong type
        p, why = _resolve(self.root, rel)
        if p is None:
            self.add(SESSION_FILE, field, f"{rel!r}: {why}")
            return None
        shown = str(rel)
        if folder and not p.is_dir():
            self.add(
                shown,
                field,
                "folder not found" if not p.exists() else "expected a folder, found a file",
            )
            return None
        if not folder and not p.is_file():
            self.add(
                shown,
                field,
                "file not found" if not p.exists() else "expected a file, found a folder",
            )
            return None
        return p

    def read(self, rel: str, field: str, reader: Any, *args: Any) -> Any:
        if not self.open_files:
            return None
        try:
            return reader(*args)
        except ImportError as e:
            self.add(rel, field, f"cannot be checked: its reader is not available ({e})")
        except _READ_ERRORS as e:
            self.add(rel, field, str(e) or type(e).__name__)
        return None


def _schema_problems(doc: dict, out: _Collector) -> SessionSchema | None:
    try:
        return SessionSchema.model_validate(doc)
    except ValidationError as e:
        for err in e.errors(include_url=False, include_input=False):
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field (not in the session.yaml schema)"
            out.add(SESSION_FILE, _loc(err["loc"]), msg.removeprefix("Value error, "))
        # pydantic skips the uniqueness check when a trial fails; report it anyway
        trials = doc.get("trials") if isinstance(doc.get("trials"), list) else []
        dup = _duplicates(
            [t.get("name") for t in trials if isinstance(t, dict) and t.get("name") is not None]
        )
        if dup and not any(p.field == "trials" and "unique" in p.message for p in out.problems):
            out.add(SESSION_FILE, "trials", _DUPLICATE_TRIALS.format(dup))
        return None


def _check_files(doc: dict, out: _Collector) -> None:
    """Open every file ``doc`` names; tolerant of a ``doc`` that failed the schema."""
    imaging = doc.get("imaging") if isinstance(doc.get("imaging"), dict) else {}
    for key, reader in (("volume", _read_volume), ("landmarks", _read_landmarks)):
        p = out.path(imaging.get(key), f"imaging.{key}")
        if p:
            out.read(imaging[key], f"imaging.{key}", reader, p)
    camera_names: set[str] | None = None
    calib = doc.get("calibration")
    p = out.path(calib, "calibration")
    if p:
        cams = out.read(calib, "calibration", _read_calibration, p)
        if cams is not None:
            camera_names = {c.name for c in cams}
    trials = doc.get("trials") if isinstance(doc.get("trials"), list) else []
    for i, trial in enumerate(trials):
        if not isinstance(trial, dict):
            continue
        where = f"trials[{i}]"
        kp, seq = trial.get("keypoints"), None
        p = out.path(kp, f"{where}.keypoints")
        if p:
            seq = out.read(kp, f"{where}.keypoints", _read_keypoints, p)
            if seq is not None and seq.ndim != 3:
                out.add(
                    kp,
                    f"{where}.keypoints",
                    f"expected 3D keypoints (mm), found {seq.ndim}D; "
                    "give 2D keypoints under 'cameras'",
                )
        cameras = trial.get("cameras")
        if not isinstance(cameras, dict):
            continue
        rate = trial.get("rate_hz")
        if rate is None and kp is not None and seq is not None:
            rate = seq.rate  # a trial with a 3D file takes its rate from it
        if camera_names is not None:
            unknown = sorted(str(c) for c in cameras if str(c) not in camera_names)
            if unknown:
                out.add(
                    SESSION_FILE,
                    f"{where}.cameras",
                    f"camera(s) {unknown} are not in the calibration {calib!r}, which has {sorted(camera_names)}",
                )
        for cam, folder in cameras.items():
            field = f"{where}.cameras.{cam}"
            p = out.path(folder, field, folder=True)
            if p and isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
                out.read(folder, field, _read_openpose, p, float(rate), str(cam))


def _scrub(problems: list[Problem], patient_id: Any) -> list[Problem]:
    """Replace the patient id wherever it appears (a short id only as a whole word)."""
    pid = str(patient_id).strip() if patient_id is not None else ""
    if not pid:
        return problems
    pattern = re.compile(
        re.escape(pid) if len(pid) >= 4 else rf"(?<![A-Za-z0-9]){re.escape(pid)}(?![A-Za-z0-9])"
    )
    return [
        Problem(
            pattern.sub("<patient-id>", p.file), p.field, pattern.sub("<patient-id>", p.message)
        )
        for p in problems
    ]


def _session_root(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_file() or p.suffix.lower() in (".yaml", ".yml"):
        return p.parent, p
    return p, p / SESSION_FILE


def _read_yaml(file: Path, out: _Collector) -> dict | None:
    if not file.is_file():
        out.add(
            SESSION_FILE,
            "",
            f"not found in the session folder "
            f"({'the folder does not exist' if not file.parent.exists() else 'expected session.yaml'})",
        )
        return None
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        out.add(SESSION_FILE, "", "is not UTF-8 text")
        return None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        out.add(
            SESSION_FILE,
            "",
            f"{at}not valid YAML ({getattr(e, 'problem', None) or 'syntax error'})",
        )
        return None
    if not isinstance(doc, dict):
        out.add(
            SESSION_FILE,
            "",
            f"expected a mapping of fields (medpose_session, patient, ...), "
            f"found {type(doc).__name__}",
        )
        return None
    return doc


def validate_session(path: str | os.PathLike, *, check_files: bool = True) -> list[Problem]:
    """Check a session folder and return every problem found (empty list: valid).

    Checks ``session.yaml`` against :class:`SessionSchema`, then every path it names:
    relative and inside the folder (absolute paths, ``..`` escapes and symbolic links
    pointing outside are refused), present, and readable by its reader (volume,
    landmarks, calibration, 3D keypoints, OpenPose folders); camera names of each trial
    must be in the calibration.  Reader errors are passed through with the file's name.

    Parameters
    ----------
    path : path-like
        The session folder (or its ``session.yaml``).
    check_files : bool
        ``False`` checks the schema and paths only, without opening the files.

    Returns
    -------
    list of Problem
        In the order found: ``session.yaml`` first, then file by file.  No message
        contains the patient id.
    """
    root, file = _session_root(path)
    out = _Collector(root, open_files=check_files)
    doc = _read_yaml(file, out)
    if doc is None:
        return out.problems
    _schema_problems(doc, out)
    _check_files(doc, out)
    patient = doc.get("patient")
    return _scrub(out.problems, patient.get("id") if isinstance(patient, dict) else None)


# ---------------------------------------------------------------------------- the session
@dataclass(frozen=True)
class Patient:
    """Patient information from ``session.yaml``.  ``id`` is pseudonymous and never shown in reprs."""

    id: str = field(repr=False)
    sex: str = "unknown"
    age_years: float | None = None
    height_mm: float | None = None
    mass_kg: float | None = None


@dataclass(frozen=True)
class Imaging:
    """Imaging files of a session (absolute paths, or None)."""

    volume: Path | None = None
    landmarks: Path | None = None


@dataclass(frozen=True)
class Trial:
    """One recorded trial.

    Attributes
    ----------
    name, kind, exercise : str
        ``kind`` is ``"static"`` or ``"exercise"``.
    keypoints : Path or None
        3D keypoint file.
    cameras : Mapping[str, Path]
        Camera name (as in the calibration) -> OpenPose JSON folder.
    rate_hz : float or None
        Sampling rate of the 2D keypoints (Hz); None if given by the 3D file.
    """

    name: str
    kind: str
    exercise: str | None = None
    keypoints: Path | None = None
    cameras: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    rate_hz: float | None = None

    def read_keypoints(self) -> KeypointSequence:
        """The trial's 3D keypoints (mm); ProtocolError if the trial has none."""
        if self.keypoints is None:
            raise ProtocolError(
                f"trial {self.name!r} has no 3D keypoint file (only cameras); triangulate them"
            )
        return _read_keypoints(self.keypoints)

    def read_camera_keypoints(self) -> dict[str, KeypointSequence]:
        """The 2D keypoints of every camera, ``{camera name: KeypointSequence (px, frame=name)}``."""
        if not self.cameras:
            return {}
        rate = self.rate_hz if self.rate_hz is not None else self.read_keypoints().rate
        return {cam: _read_openpose(folder, rate, cam) for cam, folder in self.cameras.items()}


@dataclass(frozen=True)
class Session:
    """A validated session folder.  Build it with :meth:`Session.load`.

    Attributes
    ----------
    root : Path
        The session folder.
    patient : Patient
    date : datetime.date
    side_of_interest : str
        ``"left"``, ``"right"`` or ``"both"``.
    trials : tuple of Trial
    imaging : Imaging
    calibration_path : Path or None
    notes : str or None
    """

    root: Path
    patient: Patient
    date: _dt.date
    side_of_interest: str
    trials: tuple[Trial, ...]
    imaging: Imaging
    calibration_path: Path | None
    notes: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, *, check_files: bool = True) -> Session:
        """Validate and load a session folder.

        Parameters
        ----------
        path : path-like
            The session folder (or its ``session.yaml``).
        check_files : bool
            Open every file to check it (default); ``False`` checks the schema and paths only.

        Raises
        ------
        ProtocolError
            Listing every problem :func:`validate_session` found.
        """
        root, file = _session_root(path)
        problems = validate_session(file, check_files=check_files)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise ProtocolError(f"invalid session ({len(problems)} problem(s)):\n{lines}")
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        m = SessionSchema.model_validate(doc)
        trials = tuple(
            Trial(
                t.name,
                t.kind,
                t.exercise,
                root / t.keypoints if t.keypoints else None,
                MappingProxyType({c: root / f for c, f in (t.cameras or {}).items()}),
                t.rate_hz,
            )
            for t in m.trials
        )
        imaging = Imaging(
            *(
                root / p if p else None
                for p in ((m.imaging.volume, m.imaging.landmarks) if m.imaging else (None, None))
            )
        )
        return cls(
            root,
            Patient(**m.patient.model_dump()),
            m.date,
            m.side_of_interest,
            trials,
            imaging,
            root / m.calibration if m.calibration else None,
            m.notes,
        )

    def trial(self, name: str) -> Trial:
        """The trial called ``name``."""
        for t in self.trials:
            if t.name == name:
                return t
        raise KeyError(f"trial {name!r} not found; known: {[t.name for t in self.trials]}")

    def read_volume(self) -> Any:
        """The imaging volume (:func:`medpose.imaging.volume.read_volume`)."""
        if self.imaging.volume is None:
            raise ProtocolError("session has no imaging volume (imaging.volume)")
        return _read_volume(self.imaging.volume)

    def read_landmarks(self) -> Landmarks:
        """The imaging landmarks in LPS, mm."""
        if self.imaging.landmarks is None:
            raise ProtocolError("session has no imaging landmarks (imaging.landmarks)")
        return _read_landmarks(self.imaging.landmarks)

    def read_calibration(self) -> list[Camera]:
        """The cameras of the calibration file."""
        if self.calibration_path is None:
            raise ProtocolError("session has no calibration")
        return _read_calibration(self.calibration_path)

    def __repr__(self) -> str:
        return (
            f"Session({self.date.isoformat()}, side={self.side_of_interest}, "
            f"trials={[t.name for t in self.trials]})"
        )


def write_session_yaml(session: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Check a session description against the schema and write it atomically.

    Parameters
    ----------
    session : mapping
        The ``session.yaml`` content (see ``docs/sessions.md``).
    path : path-like
        The ``session.yaml`` file, or the session folder (``session.yaml`` is written in it).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ProtocolError
        If the content does not follow the schema or a path is absolute or leaves the
        folder (the files themselves are not checked; use :func:`validate_session`).
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / SESSION_FILE
    out = _Collector(path.parent)
    model = _schema_problems(dict(session), out)
    if model is not None:
        paths = [("calibration", model.calibration)]
        if model.imaging:
            paths += [
                ("imaging.volume", model.imaging.volume),
                ("imaging.landmarks", model.imaging.landmarks),
            ]
        for i, t in enumerate(model.trials):
            paths.append((f"trials[{i}].keypoints", t.keypoints))
            paths += [(f"trials[{i}].cameras.{c}", f) for c, f in (t.cameras or {}).items()]
        for where, rel in paths:
            why = _relative_path_problem(rel) if rel is not None else None
            if why:
                out.add(SESSION_FILE, where, f"{rel!r}: {why}")
    if out.problems:
        pid = (
            session.get("patient", {}).get("id")
            if isinstance(session.get("patient"), dict)
            else None
        )
        lines = "\n".join(f"  - {p}" for p in _scrub(out.problems, pid))
        raise ProtocolError(f"write_session_yaml: {len(out.problems)} problem(s):\n{lines}")
    assert model is not None
    data = model.model_dump(mode="json", exclude_none=True)
    data["date"] = model.date  # YAML writes an unquoted ISO date
    for key in ("height_mm", "mass_kg", "age_years"):  # 1680 rather than 1680.0 where integral
        v = data["patient"].get(key)
        if isinstance(v, float) and v.is_integer():
            data["patient"][key] = int(v)
    for t in data["trials"]:
        if isinstance(t.get("rate_hz"), float) and t["rate_hz"].is_integer():
            t["rate_hz"] = int(t["rate_hz"])
    with atomic_write(path) as fh:
        yaml.safe_dump(data, fh, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return path
