"""Which files of a session a protocol reads, and their content hashes.

:func:`trial_map` pairs the protocol's trials with the session's (and refuses, before any work,
a session that lacks some); :func:`input_hashes_for` hashes every file the run will read:
``session.yaml`` (the patient's age and sex choose the norms), the trials' 3D keypoint files
or, when the protocol triangulates, their 2D camera folders and the calibration, and the
imaging landmarks of a registration.  Keys are paths relative to the session folder (POSIX);
values are ``"sha256:<hex>"``.  A folder (a camera's OpenPose JSON files) has one hash: the
SHA-256 of its files' relative names and hashes, one line each, in name order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ProtocolError
from .paths import SESSION_FILE
from .session import Session

if TYPE_CHECKING:
    from .definition import Protocol

__all__ = ["trial_map", "input_hashes_for", "file_hash"]

_CHUNK = 1 << 20


def file_hash(path: Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes, or of a folder's files (see the module docstring)."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path).as_posix()}\0{file_hash(f)}\n".encode())
        return "sha256:" + h.hexdigest()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def trial_map(
    protocol: Protocol, session: Session, trials: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Protocol trial -> session trial; every trial the protocol needs must exist.

    Parameters
    ----------
    trials : mapping, optional
        Protocol trial name -> session trial name where they differ (default: same name).

    Raises
    ------
    ProtocolError
        Listing every missing trial (with the session trial it was looked for as) and the
        trials the session has; or a ``trials`` key that is not a trial of the protocol.
    """
    given = dict(trials or {})
    names = [t.name for t in protocol.trials]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ProtocolError(
            f"{protocol.name}: trials {unknown} given a session trial but are not trials of the "
            f"protocol; its trials: {names}"
        )
    have = [t.name for t in session.trials]
    mapping = {n: given.get(n, n) for n in names}
    missing = [
        n if mapping[n] == n else f"{n} (as {mapping[n]!r})"
        for n in names
        if mapping[n] not in have
    ]
    if missing:
        unmapped = [n for n in names if mapping[n] not in have and n not in given]
        raise ProtocolError(
            f"session {session.name!r} lacks {len(missing)} trial(s) that protocol "
            f"{protocol.name} needs: {', '.join(missing)}; the session has: "
            f"{', '.join(have) or 'no trials'}"
            + (
                f" (a session trial named otherwise is mapped by trials={{{unmapped[0]!r}: "
                f"'<session trial>'}}, or on the command line --trial {unmapped[0]}=<session trial>;"
                " one recording may serve two trials, e.g. both arms)"
                if have and unmapped
                else ""
            )
        )
    return mapping


def _rel(session: Session, path: Path) -> str:
    try:
        return path.relative_to(session.root).as_posix()
    except ValueError:
        return path.name


def input_hashes_for(
    protocol: Protocol, session: Session, mapping: Mapping[str, str]
) -> dict[str, str]:
    """The hash of every file the run of ``protocol`` on ``session`` reads (module docstring).

    Raises
    ------
    ProtocolError
        A file the run needs is not named in ``session.yaml`` (no keypoints, no cameras, no
        calibration, no landmarks).
    """
    files: dict[str, Path] = {SESSION_FILE: session.root / SESSION_FILE}
    triangulate = protocol.spec.steps.triangulate is not None
    for name in dict.fromkeys(mapping.values()):
        trial = session.trial(name)
        if triangulate:
            if not trial.cameras:
                raise ProtocolError(
                    f"trial {name!r}: protocol {protocol.name} triangulates 2D keypoints, but the "
                    "trial names no cameras; expected trials[].cameras in session.yaml"
                )
            for folder in trial.cameras.values():
                files[_rel(session, folder)] = folder
        elif trial.keypoints is None:
            hint = (
                " (the trial has 2D camera keypoints: triangulate them into a 3D file with "
                "'medpose triangulate' and name it there, or run a protocol with a triangulate "
                "step)"
                if trial.cameras
                else ""
            )
            raise ProtocolError(
                f"trial {name!r}: protocol {protocol.name} reads 3D keypoints, but the trial "
                f"names no keypoint file; expected trials[].keypoints in session.yaml{hint}"
            )
        else:
            files[_rel(session, trial.keypoints)] = trial.keypoints
    if triangulate:
        if session.calibration_path is None:
            raise ProtocolError(
                f"protocol {protocol.name} triangulates, but the session names no calibration; "
                "expected calibration: in session.yaml"
            )
        files[_rel(session, session.calibration_path)] = session.calibration_path
    if protocol.spec.steps.get("detect_landmarks") is not None:
        if session.imaging.volume is None:
            raise ProtocolError(
                f"protocol {protocol.name} detects imaging landmarks, but the session names no "
                "volume; expected imaging.volume in session.yaml"
            )
        files[_rel(session, session.imaging.volume)] = session.imaging.volume
    elif protocol.spec.registration is not None:
        if session.imaging.landmarks is None:
            raise ProtocolError(
                f"protocol {protocol.name} registers imaging landmarks, but the session names "
                "none; expected imaging.landmarks in session.yaml"
            )
        files[_rel(session, session.imaging.landmarks)] = session.imaging.landmarks
    out = {}
    for key in sorted(files):
        path = files[key]
        if not path.exists():
            raise ProtocolError(f"{key}: not found; expected the file session.yaml names")
        out[key] = file_hash(path)
    return out
