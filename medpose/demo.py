"""The demo: a synthetic patient through every pipeline stage that exists, checked against truth.

``medpose demo`` (and ``make demo``) call :func:`run_demo`.  Stages:

1. build a synthetic session (:func:`medpose.synthetic.make_session`) and validate it;
2. register the CT phantom's landmarks (LPS) to the static trial (camera frame), with the quality
   gate, and compare the transform with the true one;
3. triangulate every exercise trial from its four cameras' 2D keypoints and compare with the true
   3D keypoints;
4. fit the skeleton to each triangulated trial and compare the joint angles with the true ones.

Every number printed is measured in this run against the generator's truth.  A summary is written
to ``OUT/summary.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .camera.model import Camera
from .camera.triangulation import triangulate
from .data import KeypointSequence, Landmarks
from .io._util import atomic_write
from .kinematics.fit import fit
from .protocol.session import Session, Trial, validate_session
from .registration import QualityGate, register
from .synthetic import SessionTruth, make_session

__all__ = ["run_demo"]


Say = Callable[[str], Any]


def _build(out: Path, seed: int) -> tuple[SessionTruth, Path]:
    """Build the session into a staging folder beside ``out/session`` and swap it in."""
    target = out / "session"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".session-", dir=out))
    try:
        truth = make_session(staging / "session", seed=seed)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "session", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return truth, target


def _registration_stage(session: Session, truth: SessionTruth, say: Say) -> dict[str, Any]:
    imaging = session.read_landmarks()
    static = session.trial("static").read_keypoints()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of unseen markers
        mean = np.nanmedian(static.positions, axis=0)
    fixed = Landmarks(static.names, mean, static.frame)
    names = [n for n in imaging.names if n in fixed.names and np.all(np.isfinite(fixed[n]))]
    reg = register(fixed, imaging, names=names, robust=True)
    true_t = truth.transforms["image_to_camera"]
    moved = reg.transform.apply(imaging.subset(names).positions)
    err = np.linalg.norm(moved - true_t.apply(imaging.subset(names).positions), axis=1)
    # a target deep in the anatomy, planned on the CT and not a fiducial: the centre of the volume
    vol = session.read_volume()
    centre = vol.index_to_lps([(n - 1) / 2 for n in vol.shape])
    target_lm = Landmarks(("ct_centre",), np.reshape(centre, (1, 3)), imaging.frame)
    tre_pred = np.asarray(reg.predict_tre(target_lm), dtype=float)
    tre_true = np.linalg.norm(
        reg.transform.apply(target_lm.positions) - true_t.apply(target_lm.positions), axis=1
    )
    gate = QualityGate(max_fre_mm=3.0, max_tre_mm=5.0, min_fiducials=4).check(reg, target_lm)
    say(
        f"  registration CT -> camera: {len(names)} fiducials, FRE {reg.fre:.2f} mm, "
        f"outliers {list(reg.outliers) or 'none'}"
    )
    say(
        f"    true error at the fiducials: max {err.max():.2f} mm; at the CT's centre (a target, not a fiducial): "
        f"{tre_true[0]:.2f} mm, predicted RMS TRE there {tre_pred[0]:.2f} mm"
    )
    say(
        f"    quality gate: {'PASS' if gate.passed else 'FAIL'}"
        + ("" if gate.passed else f" ({'; '.join(gate.reasons)})")
    )
    return {
        "fiducials": len(names),
        "fre_mm": float(reg.fre),
        "outliers": list(reg.outliers),
        "max_fiducial_error_mm": float(err.max()),
        "target_error_rms_mm": float(np.sqrt(np.mean(tre_true**2))),
        "predicted_tre_rms_mm": float(np.sqrt(np.mean(tre_pred**2))),
        "gate_passed": bool(gate.passed),
    }


def _triangulation_stage(
    trial: Trial, cameras: list[Camera], truth: SessionTruth, say: Say
) -> tuple[KeypointSequence, dict[str, Any]]:
    kp2d = trial.read_camera_keypoints()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tri = triangulate(cameras, kp2d)
    seq = tri.sequence
    true = truth.keypoints[trial.name]
    common = [n for n in seq.names if n in true.names]
    d = np.linalg.norm(seq.select(common).positions - true.select(common).positions, axis=-1)
    ok = np.isfinite(d)
    reproj = tri.reprojection_error[np.isfinite(tri.reprojection_error)]
    say(
        f"  triangulation {trial.name}: {seq.n_frames} frames x {len(common)} keypoints from {len(cameras)} cameras; "
        f"3D error median {np.median(d[ok]):.1f} mm (95th pct {np.percentile(d[ok], 95):.1f} mm), "
        f"reprojection median {np.median(reproj):.1f} px, {100 * (1 - ok.mean()):.1f}% missing"
    )
    return seq, {
        "frames": int(seq.n_frames),
        "keypoints": len(common),
        "error_median_mm": float(np.median(d[ok])),
        "error_p95_mm": float(np.percentile(d[ok], 95)),
        "reprojection_median_px": float(np.median(reproj)),
        "missing_fraction": float(1 - ok.mean()),
    }


def _fit_stage(
    seq: KeypointSequence, trial: Trial, truth: SessionTruth, say: Say
) -> dict[str, Any]:
    ex = truth.exercises[trial.name]
    result = fit(seq, progress=False)
    angles = result.angles
    true = ex.angles.to_dataframe()
    dofs = [
        c
        for c in (
            "shoulder_abduction_r",
            "shoulder_abduction_l",
            "elbow_flexion_r",
            "hip_flexion_r",
            "knee_flexion_r",
            "knee_flexion_l",
        )
        if c in angles.columns and c in true.columns
    ]
    rows = {}
    for c in dofs:
        e = angles[c].to_numpy() - true[c].to_numpy()[: len(angles)]
        e = e[np.isfinite(e)]
        rows[c] = float(np.sqrt(np.mean(e**2))) if e.size else float("nan")
    say(
        f"  skeleton fit {trial.name}: RMS angle error vs truth: "
        + ", ".join(f"{k} {v:.1f} deg" for k, v in rows.items())
    )
    return {"rms_error_deg": rows}


def run_demo(out: str | os.PathLike, seed: int = 0, say: Say = print) -> dict[str, Any]:
    """Run the demo into ``out`` and return the summary (also written to ``out/summary.json``)."""
    out = Path(out)
    say(f"building a synthetic patient session (seed {seed}) ...")
    truth, target = _build(out, seed)
    problems = validate_session(target)
    if problems:
        return {"valid": False, "problems": [str(p) for p in problems]}
    session = Session.load(target)
    say(
        f"  session written to {target} and validated: {len(session.trials)} trials, "
        f"{'imaging, ' if session.imaging.volume else ''}{len(session.read_calibration())} cameras"
    )
    summary: dict[str, Any] = {"valid": True, "session": str(target), "seed": seed}
    if session.imaging.landmarks is not None:
        summary["registration"] = _registration_stage(session, truth, say)
    cameras = session.read_calibration()
    summary["trials"] = {}
    for trial in session.trials:
        if not trial.cameras:
            continue
        seq, tri = _triangulation_stage(trial, cameras, truth, say)
        entry: dict[str, Any] = {"triangulation": tri, "fit": _fit_stage(seq, trial, truth, say)}
        summary["trials"][trial.name] = entry
    with atomic_write(out / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    say(f"summary written to {out / 'summary.json'}")
    return summary
