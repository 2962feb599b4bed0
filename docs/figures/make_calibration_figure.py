"""Figure for docs/calibration.md: what calibration changes, on data medpose did not make.

Left: Pose2Sim's four-camera recording (``../shared/data/pose2sim``, MediaPipe 33 keypoints,
triangulated with ``temporal=True``), per keypoint the median fit residual with lengths only and
after ``mp.calibrate`` (``PatientSkeleton.plot``).  Right: the OpenSim-generated markers of
``tests/data/opensim`` (noise-free), left elbow flexion from OpenSim's generating coordinates,
from a lengths-only fit and from a calibrated fit (constant offset between the models removed).

Run: ``python docs/figures/make_calibration_figure.py`` (writes ``docs/figures/calibration.png``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import medpose as mp
from medpose.io._util import atomic_path
from medpose.io.openpose import read_openpose

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
POSE2SIM = ROOT.parent / "shared" / "data" / "pose2sim"
OPENSIM = ROOT / "tests" / "data" / "opensim"


def main() -> Path:
    cams = mp.read_calibration(POSE2SIM / "Calib_qualisys.toml")
    views = {
        c.name: read_openpose(POSE2SIM / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = mp.triangulate(cams, views, temporal=True, progress=False).sequence
        patient = mp.calibrate(seq)
        markers = mp.read_keypoints(OPENSIM / "pose2sim_random.trc")
        truth = pd.read_csv(OPENSIM / "pose2sim_random_truth.csv")["elbow_flex_l"].to_numpy()
        plain = (
            mp.fit(markers, progress=False, calibrate=False).angles["elbow_flexion_l"].to_numpy()
        )
        cal = mp.calibrate(markers, keypoint_model="pose2sim_halpe26")
        calibrated = mp.fit(markers, cal, progress=False).angles["elbow_flexion_l"].to_numpy()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 6), width_ratios=(1, 1.3))
    patient.plot(left)
    left.set_title("four-camera recording (MediaPipe 33)", fontsize=9)
    t = np.arange(len(truth)) / markers.rate
    right.plot(t, truth, "k-", lw=2, label="OpenSim's coordinate (truth)")
    for v, label, style in ((plain, "lengths only", "C7--"), (calibrated, "calibrated", "C0-")):
        v = v - np.nanmean(v - truth)  # the two models' zero poses differ by a constant
        rms = np.sqrt(np.nanmean((v - truth) ** 2))
        right.plot(t, v, style, lw=1.2, label=f"{label}: RMS {rms:.1f} deg")
    right.set_xlabel("time (s)")
    right.set_ylabel("left elbow flexion (deg)")
    right.set_title("OpenSim markers of Pose2Sim's model, noise-free", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    out = Path(__file__).resolve().parent / "calibration.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return out


if __name__ == "__main__":
    print(main())
