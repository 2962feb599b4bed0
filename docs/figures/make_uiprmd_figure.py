"""Draw a UI-PRMD deep squat reconstructed by :func:`medpose.io.uiprmd.read_uiprmd`.

Run from the repository root:  python docs/figures/make_uiprmd_figure.py
Reads ../shared/data/ui-prmd/kinect/correct/positions/m01_s01_e01_positions.txt.gz and writes
docs/figures/uiprmd_squat.png: side views (Kinect z forward to the right, y up) at five
moments of one repetition, left side in blue, right side in red, and the heights of the
waist, knees and ankles over the repetition.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medpose.io._util import atomic_path
from medpose.io.uiprmd import UIPRMD_NAMES, UIPRMD_PARENTS, read_uiprmd

__all__ = ["main"]

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ui-prmd" / "kinect"
TRIAL = DATA / "correct" / "positions" / "m01_s01_e01_positions.txt.gz"
OUT = Path(__file__).with_name("uiprmd_squat.png")


def _colour(j: int) -> str:
    name = UIPRMD_NAMES[j]
    return "tab:blue" if name.endswith("_l") else "tab:red" if name.endswith("_r") else "k"


def main(out: Path = OUT) -> Path:
    seq = read_uiprmd(TRIAL)
    x = seq.positions / 1000.0  # m
    t = np.arange(len(x)) / seq.rate
    waist_y = x[:, 0, 1]
    deep = int(np.argmin(waist_y))
    frames = [0, deep // 2, deep, (deep + len(x) - 1) // 2, len(x) - 1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [2.3, 1]})
    for k, f in enumerate(frames):
        shift = 0.9 * k - x[f, 0, 2]
        for j, p in enumerate(UIPRMD_PARENTS):
            if p < 0:
                continue
            ax.plot(x[f, [p, j], 2] + shift, x[f, [p, j], 1], "-", color=_colour(j), lw=2)
        ax.plot(x[f, :, 2] + shift, x[f, :, 1], "o", color="0.3", ms=2.5)
        ax.text(0.9 * k, -0.14, f"{t[f]:.1f} s", ha="center", fontsize=9)
    ax.axhline(0.0, color="0.6", lw=1)
    ax.set_aspect("equal")
    ax.set_ylim(-0.2, 1.9)
    ax.set_xlabel("Kinect z (m, towards the sensor; figures shifted apart)")
    ax.set_ylabel("Kinect y (m, up)")
    ax.set_title("UI-PRMD m01 deep squat (s01 e01), side view; left blue, right red")
    for name, style in (("waist", "k-"), ("knee_l", "b-"), ("knee_r", "r--"),
                        ("ankle_l", "b-"), ("ankle_r", "r--")):  # fmt: skip
        ax2.plot(t, x[:, UIPRMD_NAMES.index(name), 1], style, lw=1.5, label=name)
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("height y (m)")
    ax2.set_title("joint heights")
    ax2.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
