"""Figures of docs/triangulation.md from the real Pose2Sim recording (../shared/data/pose2sim).

Run: ``python docs/figures/make_triangulation_figures.py``; writes
``docs/figures/pose2sim_skeleton_3d.png`` and ``docs/figures/pose2sim_reprojection.png``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medpose.camera.refine import refine_calibration
from medpose.camera.triangulation import triangulate
from medpose.io._util import atomic_path
from medpose.io.calibration import read_calibration
from medpose.io.openpose import read_openpose
from medpose.temporal import butterworth, clean_gaps

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / ".." / "shared" / "data" / "pose2sim"
BONES = (
    [
        ("shoulder_l", "shoulder_r"),
        ("hip_l", "hip_r"),
        ("shoulder_l", "hip_l"),
        ("shoulder_r", "hip_r"),
    ]
    + [
        (f"{a}_{s}", f"{b}_{s}")
        for s in "lr"
        for a, b in [
            ("shoulder", "elbow"),
            ("elbow", "wrist"),
            ("hip", "knee"),
            ("knee", "ankle"),
            ("ankle", "heel"),
            ("heel", "big_toe"),
            ("ankle", "big_toe"),
        ]
    ]
    + [("nose", "eye_l"), ("nose", "eye_r"), ("eye_l", "ear_l"), ("eye_r", "ear_r")]
)


def main() -> None:
    cams = read_calibration(DATA / "Calib_qualisys.toml")
    kp = {
        c.name: read_openpose(DATA / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = triangulate(cams, kp)
        res_t = triangulate(cams, kp, temporal=True)
        cams2, _ = refine_calibration(cams, kp)
        res_r = triangulate(cams2, kp, temporal=True)
    seq = res_r.sequence
    p = butterworth(clean_gaps(seq).sequence.positions, seq.rate, 6.0)

    fig = plt.figure(figsize=(11, 4.2))
    for i, f in enumerate((0, 33, 66, 72)):
        ax = fig.add_subplot(1, 4, i + 1, projection="3d")
        for a, b in BONES:
            xa, xb = p[f, seq.index(a)], p[f, seq.index(b)]
            col = (
                "tab:red"
                if a.endswith("_r") and b.endswith("_r")
                else ("tab:blue" if a.endswith("_l") and b.endswith("_l") else "0.3")
            )
            ax.plot(*np.stack([xa, xb]).T, color=col, lw=2)
        ax.scatter(*p[f].T, s=4, color="k")
        c = np.nanmean(p[f], axis=0)
        for setlim, k in ((ax.set_xlim, 0), (ax.set_ylim, 1)):
            setlim(c[k] - 900, c[k] + 900)
        ax.set_zlim(0, 1800)
        ax.set_box_aspect((1, 1, 1))
        ax.set_title(f"frame {f} ({f / seq.rate:.2f} s)", fontsize=9)
        ax.set_xlabel("x mm", fontsize=7)
        ax.set_ylabel("y mm", fontsize=7)
        ax.set_zlabel("z mm", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        "Pose2Sim demo, 4 cameras, MediaPipe 33: refine_calibration + triangulate(temporal=True) + "
        "Hampel/gap fill + Butterworth 6 Hz (blue left, red right)",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(HERE / "pose2sim_skeleton_3d.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for r, lab, col in (
        (res, "per frame (default)", "tab:gray"),
        (res_t, "temporal=True", "tab:blue"),
        (res_r, "refined calibration, temporal=True", "tab:green"),
    ):
        e = r.error_table(0.5)["error_px"]
        ax.hist(
            np.clip(e, 0, 80),
            bins=80,
            histtype="step",
            color=col,
            label=f"{lab}: median {e.median():.2f} px, {(e < 20).mean():.1%} within 20 px",
        )
    ax.axvline(20, color="tab:red", ls=":")
    ax.set_xlabel("reprojection error (px, clipped at 80)")
    ax.set_ylabel("observations (visibility >= 0.5)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(HERE / "pose2sim_reprojection.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    main()
