"""One visit of the demo's synthetic patient: the session folder, its protocol runs, the truth check.

:func:`run_visit` is what a worker process of :func:`medpose.demo.run_demo` does for one
session: write the synthetic session (:func:`medpose.synthetic.make_session`), give it the
visit's date and the patient's record, validate it, run the demo's protocols on it
(:func:`medpose.protocol.execute_session`: pure computation, nothing written) and compare what
they measured with the generator's truth.  The protocol results come back to the parent, which
records them in the study database and writes the reports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .packaged import resource_text
from .protocol.definition import Protocol
from .protocol.execute import execute_session
from .protocol.session import validate_session, write_session_yaml
from .protocol.session_result import SessionResult
from .synthetic import SessionTruth, make_session

__all__ = [
    "Visit",
    "VisitResult",
    "PATIENT",
    "EXERCISES",
    "PROTOCOLS",
    "TRIALS",
    "demo_protocol",
    "run_visit",
]

#: The demo patient's record (pseudonymous id; the same at every visit, so that the norms of
#: her age and sex score both sessions and the study links them).
PATIENT: dict[str, Any] = {"sex": "female", "age_years": 58, "height_mm": 1680, "mass_kg": 71}
#: The exercise trials of every visit (a static trial is always recorded too).
EXERCISES = ("deep_squat", "shoulder_abduction")
#: The protocols run on every visit, in this order.
PROTOCOLS = ("navigation_check", "deep_squat", "shoulder_abduction")
#: Protocol trial -> session trial, where the names differ: one recording of both arms is
#: assessed as the left and the right arm's trial.
TRIALS = {
    "shoulder_abduction": {
        "abduction_left": "shoulder_abduction",
        "abduction_right": "shoulder_abduction",
    }
}
#: Joint angles compared with the truth, per exercise trial.
CHECKED = {
    "deep_squat": ("knee_flexion_l", "knee_flexion_r", "hip_flexion_l", "hip_flexion_r"),
    "shoulder_abduction": ("shoulder_abduction_l", "shoulder_abduction_r"),
}


@dataclass(frozen=True)
class Visit:
    """One session of the demo patient: folder name, date, impairment of the left side."""

    name: str
    date: str
    impairment: float


@dataclass
class VisitResult:
    """What :func:`run_visit` returns: the session folder, each protocol's result, the checks."""

    visit: Visit
    session: Path
    problems: list[str] = field(default_factory=list)
    results: dict[str, SessionResult] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)


def demo_protocol(name: str, folder: Path) -> Protocol:
    """The catalogue's protocol ``name``, its input step set to triangulate the cameras.

    The catalogue's exercise protocols read a trial's 3D keypoint file; the demo starts from
    the four cameras' 2D keypoints instead, so its copy of the file (written to
    ``folder/<name>.yaml``, comments kept) triangulates them.  ``navigation_check`` reads the
    static trial and is used as it is.
    """
    if name == "navigation_check":
        return Protocol.load(name)
    text = resource_text(f"protocols/{name}.yaml")
    if "\n  read_keypoints:\n" not in text:
        return Protocol.load(name)
    text = text.replace(
        "\n  read_keypoints:\n",
        "\n  triangulate: {}   # the demo: 2D keypoints of the cameras -> 3D\n",
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return Protocol.load(path)


def _staging_root(out: Path) -> Path:
    """Where sessions are built: memory-backed ``/dev/shm`` where there is one (a session is
    about 4000 small 2D keypoint files, each synced to disk as it is written), else ``out``."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return out


def _build(out: Path, visit: Visit, seed: int, pseudonym: str) -> tuple[SessionTruth, Path]:
    """Write the visit's session to ``out/<visit.name>``, replacing an earlier one."""
    target = out / visit.name
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".medpose-demo-", dir=_staging_root(out)))
    try:
        built = staging / visit.name
        truth = make_session(
            built,
            seed=seed,
            exercises=EXERCISES,
            impairment={"side": "left", "amount": visit.impairment},
            height_mm=float(PATIENT["height_mm"]),
            phantom_max_voxels=250_000,
        )
        doc = yaml.safe_load((built / "session.yaml").read_text(encoding="utf-8"))
        doc["date"] = visit.date
        doc["patient"] = {"id": pseudonym, **PATIENT}
        write_session_yaml(doc, built)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(built), str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return truth, target


def _angle_errors(result: SessionResult, truth: SessionTruth) -> dict[str, dict[str, float]]:
    """RMS error (deg) of the fitted joint angles against the true ones, per trial and angle."""
    out: dict[str, dict[str, float]] = {}
    for trial, fitted in result.angles.items():
        true = truth.exercises[trial].angles.to_dataframe()
        rows = {}
        for dof in CHECKED.get(trial, ()):
            n = min(len(fitted), len(true))
            e = fitted[dof].to_numpy()[:n] - true[dof].to_numpy()[:n]
            e = e[np.isfinite(e)]
            rows[dof] = float(np.sqrt(np.mean(e**2))) if e.size else float("nan")
        out[trial] = rows
    return out


def _registration_summary(result: SessionResult) -> dict[str, Any]:
    """The registration's FRE, largest predicted TRE at the targets, fiducials and gate."""
    reg = result.assessment.registration
    gate = result.assessment.gate
    out: dict[str, Any] = {"gate_passed": bool(gate.passed) if gate is not None else None}
    if reg is None:
        return out
    item = reg["item"].astype(str)
    out["fre_mm"] = float(reg.loc[item == "fre", "value"].max())
    out["tre_max_mm"] = float(reg.loc[item == "tre", "value"].max())
    fid = reg[item == "fiducial"]
    out["fiducials"] = len(fid)
    out["outliers"] = [str(n) for n in fid.loc[fid["outlier"] == True, "name"]]  # noqa: E712
    return out


def run_visit(
    out: str | os.PathLike,
    visit: Visit,
    seed: int,
    pseudonym: str,
    protocols: dict[str, Protocol],
    threads: int | None = None,
) -> VisitResult:
    """Build one visit's session under ``out`` and run ``protocols`` on it (nothing else written).

    Parameters
    ----------
    out : path-like
        The sessions' folder; the session is ``out/<visit.name>``.
    visit : Visit
    seed : int
        The session's random seed (each visit has its own: new noise, a new camera set-up).
    pseudonym : str
        The patient's pseudonymous id written to ``session.yaml``.
    protocols : dict of str -> Protocol
        Name -> protocol (:func:`demo_protocol`).
    threads : int, optional
        torch threads in this process (a worker beside others: 1).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    truth, path = _build(Path(out), visit, seed, pseudonym)
    done = VisitResult(visit, path)
    done.problems = [str(p) for p in validate_session(path)]
    if done.problems:
        return done
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-camera points, short trials: in the quality rows
        for name, protocol in protocols.items():
            done.results[name] = execute_session(protocol, path, trials=TRIALS.get(name))
    angles: dict[str, dict[str, float]] = {}
    for name, result in done.results.items():
        if name == "navigation_check":
            done.checks["registration"] = _registration_summary(result)
        else:
            angles.update(_angle_errors(result, truth))
    done.checks["angle_rms_error_deg"] = angles
    return done
