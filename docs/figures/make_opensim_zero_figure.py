"""Figure for docs/fit.md: a ``.mot`` written from the OpenSim model's own zero pose.

The OpenSim-generated markers of ``tests/data/opensim`` (Pose2Sim's model, the functional trial,
noise-free), calibrated with ``keypoint_model="pose2sim_halpe26"`` and fitted.  Right knee and
left elbow flexion as ``Fit.to_mot`` writes them, plainly and with ``zero=opensim_zero(...)``
(the model's markers in its zero pose, ``pose2sim_reference_pose.trc``), against OpenSim's
generating coordinates.  Nothing is subtracted here: the curves are as written.

Run: ``python docs/figures/make_opensim_zero_figure.py`` (writes
``docs/figures/opensim_zero.png``).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import medpose as mp
from medpose.io._util import atomic_path
from medpose.kinematics.fit import opensim_zero

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
OPENSIM = ROOT / "tests" / "data" / "opensim"
PANELS = (("knee_angle_r", "right knee flexion"), ("elbow_flex_l", "left elbow flexion"))


def _written(f: mp.Fit, path: Path, zero=None) -> dict[str, np.ndarray]:
    ja = mp.read_mot(f.to_mot(path, model="pose2sim", zero=zero), translations="keep")
    return {n: ja.values[:, i] for i, n in enumerate(ja.names)}


def main() -> Path:
    markers = mp.read_keypoints(OPENSIM / "pose2sim_functional.trc")
    truth = pd.read_csv(OPENSIM / "pose2sim_functional_truth.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = mp.fit(
            markers, mp.calibrate(markers, keypoint_model="pose2sim_halpe26"), progress=False
        )
        zero = opensim_zero(f, mp.read_keypoints(OPENSIM / "pose2sim_reference_pose.trc"))
    with tempfile.TemporaryDirectory() as tmp:
        plain = _written(f, Path(tmp) / "plain.mot")
        zeroed = _written(f, Path(tmp) / "zeroed.mot", zero)
    t = np.arange(len(truth)) / markers.rate
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (col, label) in zip(axes, PANELS):
        want = truth[col].to_numpy(float)
        ax.plot(t, want, "k-", lw=2.2, label="OpenSim's coordinate (truth)")
        for v, name, style in ((plain[col], "to_mot", "C7--"),
                               (zeroed[col], "to_mot(zero=opensim_zero(...))", "C0-")):  # fmt: skip
            rms = np.sqrt(np.nanmean((v - want) ** 2))
            ax.plot(t, v, style, lw=1.2, label=f"{name}: RMS {rms:.2f} deg")
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{label} (deg), as written")
        ax.legend(fontsize=8)
    fig.suptitle("OpenSim markers of Pose2Sim's model, noise-free functional trial", fontsize=10)
    fig.tight_layout()
    out = Path(__file__).resolve().parent / "opensim_zero.png"
    with atomic_path(out) as tmp_png:
        fig.savefig(tmp_png, dpi=100, format="png")
    return out


if __name__ == "__main__":
    print(main())
