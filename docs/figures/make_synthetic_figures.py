"""Make the figures of docs/synthetic.md: ``python docs/figures/make_synthetic_figures.py``.

* synthetic_angles.png - true angles of a shoulder-abduction trial with a left-side
  impairment (30%), submovements and tremor, with the repetition windows.
* synthetic_keypoints.png - markerless-like observation vs. truth: the right wrist's
  height over time, and the noisy 3D keypoints of one frame against the true skeleton.
* synthetic_sticks.png - stick figures (sagittal view) of every exercise at a few frames.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.synthetic.exercises import EXERCISES, make_exercise
from medpose.synthetic.observation import markerless

__all__: list[str] = []

OUT = Path(__file__).resolve().parent
BONES = [
    ("head_top", "neck"),
    ("neck", "pelvis"),
    ("neck", "shoulder_r"),
    ("neck", "shoulder_l"),
    ("shoulder_r", "elbow_r"),
    ("elbow_r", "wrist_r"),
    ("shoulder_l", "elbow_l"),
    ("elbow_l", "wrist_l"),
    ("hip_r", "hip_l"),
    ("hip_r", "knee_r"),
    ("knee_r", "ankle_r"),
    ("ankle_r", "heel_r"),
    ("heel_r", "big_toe_r"),
    ("ankle_r", "big_toe_r"),
    ("hip_l", "knee_l"),
    ("knee_l", "ankle_l"),
    ("ankle_l", "heel_l"),
    ("heel_l", "big_toe_l"),
    ("ankle_l", "big_toe_l"),
]


def _sticks(ax, kp: np.ndarray, names: tuple[str, ...], a: int, b: int, **kw) -> None:
    idx = {n: i for i, n in enumerate(names)}
    for p, q in BONES:
        col = (
            "tab:red"
            if p.endswith("_r") or q.endswith("_r")
            else "tab:blue"
            if p.endswith("_l") or q.endswith("_l")
            else "k"
        )
        ax.plot(kp[[idx[p], idx[q]], a], kp[[idx[p], idx[q]], b], color=col, **kw)


def main() -> None:
    sk = Skeleton.default(1700.0)
    names = sk.keypoint_names
    # 1. angles
    ex = make_exercise(
        "shoulder_abduction",
        skeleton=sk,
        impaired_side="left",
        impairment=0.3,
        submovements=2,
        tremor_deg=1.5,
        trunk_lean_deg=6.0,
        seed=1,
    )
    fig, ax = plt.subplots(figsize=(9, 4))
    for d in ("shoulder_abduction_r", "shoulder_abduction_l", "elbow_flexion_l", "lumbar_bending"):
        ax.plot(ex.angles.times, ex.angles[d], label=d)
    for a, b in ex.repetitions:
        ax.axvspan(a, b, color="0.9", zorder=0)
    ax.set(
        xlabel="time (s)",
        ylabel="angle (deg)",
        title="shoulder_abduction, left impaired 30%, 2 submovements, 1.5 deg tremor, 6 deg trunk lean",
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "synthetic_angles.png", dpi=110)
    plt.close(fig)

    # 2. noisy keypoints vs truth
    kp = forward_kinematics(sk, np.array(ex.angles.values))
    obs = markerless(kp, names=names, rate=ex.angles.rate, seed=3, swap_rate=0.1, outlier_rate=0.02)
    w = names.index("wrist_r")
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    axs[0].plot(
        ex.angles.times, obs.positions[:, w, 1], ".", ms=3, color="tab:orange", label="markerless"
    )
    axs[0].plot(ex.angles.times, kp[:, w, 1], "k-", lw=1.2, label="truth")
    for s in obs.report["swaps"]:
        axs[0].axvspan(
            s["start"] / ex.angles.rate, s["stop"] / ex.angles.rate, color="tab:purple", alpha=0.15
        )
    axs[0].set(
        xlabel="time (s)",
        ylabel="right wrist height (mm)",
        title="right wrist: truth vs markerless (shaded: L/R swaps)",
    )
    axs[0].legend(fontsize=8)
    f = int(np.argmax(kp[:, w, 1]))
    _sticks(axs[1], kp[f], names, 2, 1, lw=2)
    axs[1].plot(obs.positions[f, :, 2], obs.positions[f, :, 1], "o", ms=3, color="tab:orange")
    axs[1].set(
        aspect="equal", xlabel="Z right (mm)", ylabel="Y up (mm)", title=f"frontal view, frame {f}"
    )
    fig.tight_layout()
    fig.savefig(OUT / "synthetic_keypoints.png", dpi=110)
    plt.close(fig)

    # 3. stick figures of every exercise: four frames from rest to the peak of repetition 1
    views = {  # (horizontal axis, vertical axis, label): frontal, top or sagittal
        "frontal": (2, 1, "Z right", "Y up"),
        "top": (2, 0, "Z right", "X anterior"),
        "sagittal": (0, 1, "X anterior", "Y up"),
    }
    view_of = {
        "shoulder_abduction": "frontal",
        "shoulder_scaption": "frontal",
        "side_lunge": "frontal",
        "shoulder_internal_rotation": "top",
        "shoulder_external_rotation": "top",
    }
    fig, axs = plt.subplots(4, 4, figsize=(15, 16))
    for ax, name in zip(axs.ravel(), EXERCISES):
        e = make_exercise(name, skeleton=sk, repetitions=1)
        q = np.array(e.angles.values)
        kp = forward_kinematics(sk, q)
        a0, a1 = (round(v * e.angles.rate) for v in e.repetitions[0])
        stop = a1 if name == "gait" else a0 + int(0.45 * (a1 - a0))
        a, b, xl, yl = views[view_of.get(name, "sagittal")]
        for k, fi in enumerate(np.linspace(a0, min(stop, len(q) - 1), 4).astype(int)):
            _sticks(ax, kp[fi], names, a, b, lw=1.5, alpha=0.3 + 0.23 * k)
        ax.set(
            aspect="equal",
            title=f"{name} ({e.params['side']})",
            xlabel=xl + " (mm)",
            ylabel=yl + " (mm)",
        )
        if b == 1:
            ax.axhline(0, color="0.6", lw=0.8)
    for ax in axs.ravel()[len(EXERCISES) :]:
        ax.axis("off")
    fig.suptitle(
        "true skeleton from rest to the peak (darker = later; red right, blue left); "
        "sagittal view unless labelled otherwise"
    )
    fig.tight_layout()
    fig.savefig(OUT / "synthetic_sticks.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
