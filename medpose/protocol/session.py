"""The session model: a validated session folder and the files it names.

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

:meth:`Session.load` checks the folder (:func:`~medpose.protocol.validate.check_session`,
which reads ``session.yaml`` once) and builds the model, or raises
:class:`~medpose.errors.ProtocolError` listing every problem; :func:`write_session_yaml`
writes a ``session.yaml`` that follows the schema.  No message contains the patient id.

The schema lives in :mod:`medpose.protocol.schema`, the checks in
:mod:`medpose.protocol.validate`; their public names are importable from here too.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..camera.model import Camera
from ..data import KeypointSequence, Landmarks
from ..errors import ProtocolError
from ..imaging.volume import Volume, read_volume
from ..io._util import atomic_write
from ..io.calibration import read_calibration
from ..io.keypoints import read_keypoints
from ..io.landmarks import read_landmarks
from ..io.openpose import read_openpose
from .paths import SESSION_FILE, describe_path, path_text_problem
from .problems import Problem, Redactor, format_problems
from .schema import ImagingSchema, PatientSchema, SessionSchema, TrialSchema, check_schema
from .validate import check_session, validate_session

__all__ = [
    "SESSION_FILE",
    "Imaging",
    "ImagingSchema",
    "Patient",
    "PatientSchema",
    "Problem",
    "Session",
    "SessionSchema",
    "Trial",
    "TrialSchema",
    "validate_session",
    "write_session_yaml",
]


def _name(path: Path | None) -> str | None:
    return None if path is None else repr(path.name)


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
    """Imaging files of a session (paths under the session folder, or None)."""

    volume: Path | None = None
    landmarks: Path | None = None

    def __repr__(self) -> str:  # file names only: the folders above may name the patient
        return f"Imaging(volume={_name(self.volume)}, landmarks={_name(self.landmarks)})"


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

    def __repr__(self) -> str:  # file names only: the folders above may name the patient
        return (
            f"Trial({self.name!r}, kind={self.kind!r}, keypoints={_name(self.keypoints)}, "
            f"cameras={list(self.cameras)}, rate_hz={self.rate_hz})"
        )

    def read_keypoints(self) -> KeypointSequence:
        """The trial's 3D keypoints (mm); ProtocolError if the trial has none."""
        if self.keypoints is None:
            raise ProtocolError(
                f"trial {self.name!r} has no 3D keypoint file (only cameras); triangulate them"
            )
        return read_keypoints(self.keypoints)

    def read_camera_keypoints(self) -> dict[str, KeypointSequence]:
        """The 2D keypoints of every camera, ``{camera name: KeypointSequence (px, frame=name)}``."""
        if not self.cameras:
            return {}
        rate = self.rate_hz if self.rate_hz is not None else self.read_keypoints().rate
        return {
            cam: read_openpose(folder, rate=rate, camera=cam)
            for cam, folder in self.cameras.items()
        }


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

    @property
    def name(self) -> str:
        """The session folder's name (also when it was given as ``.`` or as its
        ``session.yaml``): how runs and the study tell sessions apart."""
        return Path(os.path.abspath(self.root)).name

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
            Listing every problem :func:`~medpose.protocol.validate.validate_session` finds.
        """
        checked = check_session(path, check_files=check_files)
        if checked.problems or checked.model is None:
            raise ProtocolError(
                f"invalid session ({len(checked.problems)} problem(s)):\n"
                + format_problems(checked.problems)
            )
        return cls.from_model(checked.root, checked.model)

    @classmethod
    def from_model(cls, root: Path, m: SessionSchema) -> Session:
        """The session described by a parsed ``session.yaml`` (paths joined to ``root``)."""
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

    def read_volume(self) -> Volume:
        """The imaging volume (:func:`medpose.imaging.volume.read_volume`), data inside the folder."""
        if self.imaging.volume is None:
            raise ProtocolError("session has no imaging volume (imaging.volume)")
        return read_volume(self.imaging.volume, root=self.root)

    def read_landmarks(self) -> Landmarks:
        """The imaging landmarks in LPS, mm."""
        if self.imaging.landmarks is None:
            raise ProtocolError("session has no imaging landmarks (imaging.landmarks)")
        return read_landmarks(self.imaging.landmarks)

    def read_calibration(self) -> list[Camera]:
        """The cameras of the calibration file."""
        if self.calibration_path is None:
            raise ProtocolError("session has no calibration")
        return read_calibration(self.calibration_path)

    def __repr__(self) -> str:
        return (
            f"Session({self.date.isoformat()}, side={self.side_of_interest}, "
            f"trials={[t.name for t in self.trials]})"
        )


def _paths(model: SessionSchema) -> list[tuple[str, str | None]]:
    """Every ``(field, path)`` a session description names."""
    paths: list[tuple[str, str | None]] = [("calibration", model.calibration)]
    if model.imaging:
        paths += [
            ("imaging.volume", model.imaging.volume),
            ("imaging.landmarks", model.imaging.landmarks),
        ]
    for i, t in enumerate(model.trials):
        paths.append((f"trials[{i}].keypoints", t.keypoints))
        paths += [(f"trials[{i}].cameras.{c}", f) for c, f in (t.cameras or {}).items()]
    return paths


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
    model, problems = check_schema(dict(session))
    if model is not None:
        for where, rel in _paths(model):
            why = path_text_problem(rel) if rel is not None else None
            if why and rel is not None:
                problems.append(Problem(SESSION_FILE, where, f"{describe_path(rel)}: {why}"))
    if problems or model is None:
        patient = session.get("patient")
        pid = patient.get("id") if isinstance(patient, Mapping) else None
        redact = Redactor(path.parent, None if pid is None else str(pid))
        raise ProtocolError(
            f"write_session_yaml: {len(problems)} problem(s):\n"
            + format_problems(redact.problems(problems))
        )
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
