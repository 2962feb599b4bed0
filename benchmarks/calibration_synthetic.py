"""What subject calibration does to medpose's own synthetic patients, where the truth is known.

Run: ``python benchmarks/calibration_synthetic.py [--no-write]``.  Prints one table and writes it
to ``benchmarks/RESULTS.md`` between the ``calibration-synthetic`` markers.

Each exercise of :data:`EXERCISES` is generated on the default skeleton (1.75 m, 60 Hz) and
observed as HALPE_26 keypoints in two ways:

* ``joint centres``: the keypoints exactly where the default skeleton (and the ``halpe26``
  keypoint model's prior) puts them, plus 5 mm of Gaussian noise per axis: there is no offset to
  find, so calibration can only keep or lose accuracy;
* ``detector bias``: :func:`medpose.synthetic.markerless` with a 20 mm offset per keypoint fixed
  in its segment's frame (it turns with the segment, as a detector's systematic error on a
  body part does) and 8 mm of noise, no dropouts, swaps or outliers.

Both are fitted with lengths only (``mp.fit(seq, calibrate=False)``) and after
``mp.calibrate(seq)`` on the same sequence (``mp.fit(seq, patient)``).  Cells: RMS error
(degrees, as fitted, no offset removed) against the generating angles, lengths only ->
calibrated; right and left averaged.  The second-to-last column counts the joint centres that
the calibration reports as ``undetermined, N mm from its prior`` (undetermined by the data, yet
moved), and the last one how much the calibration lowered the RMS keypoint residual, hence what
``mp.fit(seq)`` fits by default (the calibration where the gain is 10 % and 1 mm or more).  The baseline is the lengths-only fit in the same
run; the comparison with other bodies and with OpenSim's own inverse kinematics is
``benchmarks/calibration.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

import medpose as mp
from medpose.kinematics.fk import segment_poses
from medpose.layouts import get_layout
from medpose.synthetic import make_exercise, markerless

DESCRIPTION = (
    "Each exercise generated on the default skeleton (1.75 m, 60 Hz) and observed as HALPE_26 "
    "keypoints: 'joint centres': exactly where the default skeleton (and the `halpe26` keypoint "
    "model's prior) puts them, plus 5 mm of Gaussian noise per axis (no offset to find: "
    "calibration can only keep or lose accuracy); 'detector bias': `mp.synthetic.markerless` "
    "with a 20 mm offset per keypoint fixed in its segment's frame and 8 mm of noise (no "
    "dropouts, swaps or outliers).  Fitted with lengths only (`mp.fit(seq, calibrate=False)`) "
    "and after `mp.calibrate(seq)` on the same sequence.  Cells: RMS error (degrees, as fitted, "
    "no offset removed) against the generating angles, lengths only -> calibrated, right and "
    "left averaged.  Second-to-last column: the joint centres the calibration reports as "
    "'undetermined, N mm from its prior' (the data did not determine them, yet they moved).  "
    "Last column: how much "
    "the calibration lowered the RMS keypoint residual (`PatientSkeleton.gain`), and so what "
    "`mp.fit(seq)` (`calibrate='auto'`) fits: the calibration where it is warranted (10 % and "
    "1 mm or more), else the lengths-only fit."
)
EXERCISES = ("gait", "squat", "deep_squat", "shoulder_flexion", "elbow_flexion")
RATE = 60.0
#: (column, DoFs averaged)
COLUMNS = (
    ("pelvis tilt", ("pelvis_tilt",)),
    ("lumbar flexion", ("lumbar_flexion",)),
    ("hip flexion", ("hip_flexion_r", "hip_flexion_l")),
    ("knee flexion", ("knee_flexion_r", "knee_flexion_l")),
    ("ankle dorsiflexion", ("ankle_dorsiflexion_r", "ankle_dorsiflexion_l")),
    ("elbow flexion", ("elbow_flexion_r", "elbow_flexion_l")),
)


def observe(exercise: str, kind: str, seed: int) -> tuple[mp.KeypointSequence, np.ndarray]:
    """HALPE_26 keypoints of one synthetic exercise, and the generating angles (T, D)."""
    sk = mp.Skeleton.default(1750.0)
    q = make_exercise(exercise, skeleton=sk, rate=RATE, seed=seed).angles.values
    layout = get_layout("halpe26")
    names = list(layout.medpose)
    x = np.asarray(mp.forward_kinematics(sk, q, keypoints=names))
    if kind == "joint centres":
        x = x + np.random.default_rng(seed).normal(0.0, 5.0, x.shape)
    else:
        R, _ = segment_poses(sk, q)
        seg = sk.keypoint_segment[[sk.keypoint_index(n) for n in names]]
        x = markerless(
            x,
            names=names,
            rate=RATE,
            sigma_mm=8.0,
            bias_mm=20.0,
            dropout=0.0,
            gap_rate=0.0,
            swap_rate=0.0,
            outlier_rate=0.0,
            seed=seed,
            segment_rotations=np.asarray(R)[:, seg],
        ).positions
    return mp.KeypointSequence(np.asarray(x), tuple(layout.native), RATE, frame="camera"), q


def rms(fit: mp.Fit, q: np.ndarray, dofs: tuple[str, ...]) -> float:
    names = list(fit.skeleton.dof_names)
    errs = [
        float(np.sqrt(np.nanmean((fit.angles[d].to_numpy() - q[:, names.index(d)]) ** 2)))
        for d in dofs
    ]
    return float(np.mean(errs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for kind in ("joint centres", "detector bias"):
        for i, exercise in enumerate(EXERCISES):
            seq, q = observe(exercise, kind, seed=1 + i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                plain = mp.fit(seq, progress=False, calibrate=False)
                patient = mp.calibrate(seq)
                calibrated = mp.fit(seq, patient, progress=False)
            moved = sum(
                patient.status.get(n, "").startswith("undetermined") for n in patient.joint_centres
            )
            row = [
                kind,
                exercise,
                seq.n_frames,
                f"{np.nanmedian(plain.residual):.1f} -> {np.nanmedian(calibrated.residual):.1f}",
            ]
            for _, dofs in COLUMNS:
                row.append(f"{rms(plain, q, dofs):.2f} -> {rms(calibrated, q, dofs):.2f}")
            row.append(f"{moved} of {len(patient.joint_centres)}")
            row.append(
                f"{100 * patient.gain:.1f} %: "
                + ("calibrated" if patient.warranted else "lengths only")
            )
            rows.append(row)
            print(" | ".join(str(v) for v in row), flush=True)
    header = [
        "keypoints",
        "exercise",
        "frames",
        "median residual mm",
        *(f"{c} deg" for c, _ in COLUMNS),
        "joint centres undetermined but moved",
        "RMS residual gain: mp.fit(seq) fits",
    ]
    table = markdown_table(rows, header)
    print("\n" + table)
    if args.no_write:
        return
    text = (
        "## Subject calibration on medpose's synthetic patients "
        "(`benchmarks/calibration_synthetic.py`)\n\n"
        f"{DESCRIPTION}\n\nMachine: {machine()}; {time.perf_counter() - t0:.0f} s.  Command: "
        "`.venv/bin/python benchmarks/calibration_synthetic.py`.\n\n" + table
    )
    update_results("calibration-synthetic", text)


if __name__ == "__main__":
    main()
