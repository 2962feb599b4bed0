"""Validation of a session folder: every problem at once, none of them a traceback.

:func:`check_session` reads ``session.yaml`` once (:mod:`~medpose.protocol.document`), checks
it against the schema (:mod:`~medpose.protocol.schema`), then checks every path it names
(:mod:`~medpose.protocol.paths`: inside the folder, present) and opens every file with its
reader.  A reader's error, whatever it is, becomes a :class:`~medpose.protocol.problems.Problem`
attributed to that file.  The problems are redacted (:class:`~medpose.protocol.problems.Redactor`):
no patient id, no path outside the session folder, unless ``show_identifiers=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedposeError
from ..imaging.volume import read_volume
from ..io.calibration import read_calibration
from ..io.keypoints import read_keypoints
from ..io.landmarks import read_landmarks
from ..io.openpose import read_openpose
from .document import read_session_document
from .paths import (
    SESSION_FILE,
    describe_path,
    folder_entry_problems,
    resolve_inside,
    session_location,
)
from .problems import Problem, Redactor
from .schema import SessionSchema, check_schema

__all__ = ["SessionCheck", "check_session", "validate_session"]


@dataclass(frozen=True)
class SessionCheck:
    """The outcome of :func:`check_session`.

    Attributes
    ----------
    root : Path
        The session folder.
    model : SessionSchema or None
        The parsed ``session.yaml`` when it follows the schema, else None.
    problems : tuple of Problem
        Every problem found, redacted (see :func:`check_session`); empty: the session is valid.
    """

    root: Path
    model: SessionSchema | None
    problems: tuple[Problem, ...]


class _Checker:
    """Gathers problems; ``open_files=False`` turns :meth:`read` into a no-op."""

    def __init__(self, root: Path, open_files: bool, show_identifiers: bool) -> None:
        self.root = root
        self.open_files = open_files
        self.show_identifiers = show_identifiers
        self.problems: list[Problem] = []

    def add(self, file: str, field: str, message: str) -> None:
        self.problems.append(Problem(file, field, message))

    def path(self, rel: Any, field: str, *, kind: str = "file") -> Path | None:
        """Check a session path (inside the folder, present, a ``kind``); the path or None.

        ``kind`` is ``"file"``, ``"folder"`` or ``"any"``.  The entries of a folder are checked
        too (:func:`~medpose.protocol.paths.folder_entry_problems`).
        """
        if not isinstance(rel, str):
            return None  # the schema check reports the wrong type
        p, why = resolve_inside(self.root, rel)
        if p is None:
            shown = repr(rel) if self.show_identifiers else describe_path(rel)
            self.add(SESSION_FILE, field, f"{shown}: {why}")
            return None
        try:
            is_dir, is_file = p.is_dir(), p.is_file()
        except OSError as e:
            self.add(rel, field, f"cannot be checked ({e.strerror or type(e).__name__})")
            return None
        if not (is_dir or is_file):
            found = "not found" if not os.path.exists(p) else "neither a file nor a folder"
            self.add(rel, field, f"{'folder' if kind == 'folder' else 'file'} {found}")
            return None
        if kind == "folder" and not is_dir:
            self.add(rel, field, "expected a folder, found a file")
            return None
        if kind == "file" and not is_file:
            self.add(rel, field, "expected a file, found a folder")
            return None
        if is_dir:
            entry_problems = folder_entry_problems(p, self.root)
            for message in entry_problems:
                self.add(rel, field, message)
            if entry_problems:
                return None
        return p

    def read(
        self, rel: Any, field: str, reader: Callable[..., Any], *, kind: str = "file", **kw: Any
    ) -> Any:
        """Check the path ``rel`` (:meth:`path`) and return ``reader(path, **kw)``.

        None when the path is refused, when files are not opened, or after recording the
        reader's error as a problem.
        """
        p = self.path(rel, field, kind=kind)
        if p is None or not self.open_files:
            return None
        rel = str(rel)
        try:
            return reader(p, **kw)
        except ImportError as e:
            self.add(rel, field, f"cannot be checked: its reader is not available ({e})")
        except (MedposeError, OSError, ValueError) as e:
            self.add(rel, field, str(e) or type(e).__name__)
        except Exception as e:  # validation reports, it never crashes: any reader failure
            self.add(rel, field, f"could not be read ({type(e).__name__}: {e})")
        return None


def _check_files(doc: dict, out: _Checker) -> None:
    """Open every file ``doc`` names; tolerant of a ``doc`` that failed the schema."""
    imaging = doc.get("imaging")
    if isinstance(imaging, dict):
        out.read(imaging.get("volume"), "imaging.volume", read_volume, kind="any", root=out.root)
        out.read(imaging.get("landmarks"), "imaging.landmarks", read_landmarks)
    calib = doc.get("calibration")
    cams = out.read(calib, "calibration", read_calibration)
    camera_names = None if cams is None else {c.name for c in cams}
    trials = doc.get("trials")
    for i, trial in enumerate(trials if isinstance(trials, list) else []):
        if isinstance(trial, dict):
            _check_trial(trial, f"trials[{i}]", calib, camera_names, out)


def _check_trial(
    trial: dict, where: str, calib: Any, camera_names: set[str] | None, out: _Checker
) -> None:
    kp = trial.get("keypoints")
    seq = out.read(kp, f"{where}.keypoints", read_keypoints)
    if seq is not None and seq.ndim != 3:
        out.add(
            str(kp),
            f"{where}.keypoints",
            f"expected 3D keypoints (mm), found {seq.ndim}D; give 2D keypoints under 'cameras'",
        )
    cameras = trial.get("cameras")
    if not isinstance(cameras, dict):
        return
    rate = trial.get("rate_hz")
    if rate is None and seq is not None:
        rate = seq.rate  # a trial with a 3D file takes its rate from it
    if camera_names is not None:
        unknown = sorted(str(c) for c in cameras if str(c) not in camera_names)
        if unknown:
            out.add(
                SESSION_FILE,
                f"{where}.cameras",
                f"camera(s) {unknown} are not in the calibration {calib!r}, "
                f"which has {sorted(camera_names)}",
            )
    rate_hz = None  # unless usable: the schema reports a bad rate
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
        rate_hz = float(rate)
    for cam, folder in cameras.items():
        field = f"{where}.cameras.{cam}"
        if rate_hz is None:
            out.path(folder, field, kind="folder")
            continue
        out.read(
            folder,
            field,
            read_openpose,
            kind="folder",
            rate=rate_hz,
            camera=str(cam),
            missing_frames="error",
        )


def check_session(
    path: str | os.PathLike, *, check_files: bool = True, show_identifiers: bool = False
) -> SessionCheck:
    """Check a session folder; the parsed model (when valid) and every problem found.

    Parameters
    ----------
    path : path-like
        The session folder (or its ``session.yaml``).
    check_files : bool
        ``False`` checks the YAML, the schema and the paths only, without opening the files.
    show_identifiers : bool
        Keep the patient id and the absolute paths written in ``session.yaml`` in the
        messages (default: replaced by ``<patient-id>`` and the path's last part).

    Returns
    -------
    SessionCheck
        ``root``, ``model`` (None unless the YAML follows the schema) and ``problems``.
    """
    root, file = session_location(path)
    out = _Checker(root, check_files, show_identifiers)
    try:
        doc, problems = read_session_document(root, file)
    except Exception as e:  # validation reports, it never crashes
        doc, problems = (
            None,
            [Problem(file.name, "", f"could not be read ({type(e).__name__}: {e})")],
        )
    out.problems.extend(problems)
    model = None
    patient_id = None
    if doc is not None:
        model, problems = check_schema(doc)
        out.problems.extend(problems)
        _check_files(doc, out)
        patient = doc.get("patient")
        patient_id = patient.get("id") if isinstance(patient, dict) else None
    redact = Redactor(
        root, None if show_identifiers else patient_id, cut_absolute=not show_identifiers
    )
    return SessionCheck(root, model, tuple(redact.problems(out.problems)))


def validate_session(
    path: str | os.PathLike, *, check_files: bool = True, show_identifiers: bool = False
) -> list[Problem]:
    """Check a session folder and return every problem found (empty list: valid).

    Checks ``session.yaml`` against :class:`~medpose.protocol.schema.SessionSchema`, then every
    path it names: relative and inside the folder (absolute paths, ``..`` escapes and symbolic
    links pointing outside are refused, also inside the folders that readers list), present,
    and readable by its reader (volume, whose detached data file must lie in the folder too;
    landmarks, calibration, 3D keypoints, OpenPose folders, where a missing frame is a
    problem); camera names of each trial must be in the calibration.  A reader's error is
    passed through with the file's name.

    Parameters
    ----------
    path : path-like
        The session folder (or its ``session.yaml``).
    check_files : bool
        ``False`` checks the schema and paths only, without opening the files.
    show_identifiers : bool
        Keep the patient id and outside paths in the messages (default False).

    Returns
    -------
    list of Problem
        In the order found: ``session.yaml`` first, then file by file.  No message contains
        the patient id nor a folder above the session folder (unless ``show_identifiers``).
    """
    return list(
        check_session(path, check_files=check_files, show_identifiers=show_identifiers).problems
    )
