"""Figure for docs/fit.md: fitted vs true joint angles (synthetic gait, HALPE_26, 5 mm noise).

Run: ``python docs/figures/make_fit_figure.py`` (writes ``docs/figures/fit_angles.png``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medpose.data import KeypointSequence
from medpose.io._util import atomic_path
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

__all__ = ["main"]


def main() -> Path:
    sk = Skeleton.default(1750.0)
    truth = make_exercise("gait", skeleton=sk, rate=60.0, repetitions=2, seed=0).angles
    lay = get_layout("halpe26")
    x = forward_kinematics(sk, truth.values, keypoints=list(lay.medpose))
    x = x + np.random.default_rng(0).normal(0, 5.0, x.shape)
    f = fit(KeypointSequence(x, tuple(lay.native), 60.0), sk)
    dofs = ["hip_flexion_r", "knee_flexion_r", "ankle_dorsiflexion_r", "elbow_flexion_r"]
    fig, axes = plt.subplots(len(dofs), 1, figsize=(7, 8), sharex=True)
    for ax, d in zip(axes, dofs):
        ax.plot(truth.times, truth[d], "k-", lw=2, label="true")
        ax.plot(f.angles.index, f.angles[d], "C1.", ms=3, label="fitted (HALPE_26, 5 mm noise)")
        rms = np.sqrt(np.nanmean((f.angles[d].to_numpy() - truth[d]) ** 2))
        ax.set_ylabel(f"{d}\n(deg)")
        ax.set_title(f"RMS error {rms:.2f} deg", fontsize=9, loc="right")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    out = Path(__file__).resolve().parent / "fit_angles.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return out


if __name__ == "__main__":
    print(main())
