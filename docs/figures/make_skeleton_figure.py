"""Draw medpose's default skeleton in its zero pose with every segment's axes.

Run from the repository root:  python docs/figures/make_skeleton_figure.py
Writes docs/figures/skeleton_zero_pose.png (front and side views; ISB axes: X anterior red,
Y superior green, Z right blue).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from medpose.io._util import atomic_path
from medpose.kinematics import Skeleton, forward_kinematics, segment_poses

__all__ = ["main"]

BONES = [
    ("pelvis", "neck"),
    ("neck", "head_top"),
    ("hip_r", "hip_l"),
    ("shoulder_r", "shoulder_l"),
    ("asis_r", "asis_l"),
    ("asis_r", "psis_r"),
    ("asis_l", "psis_l"),
    ("psis_r", "psis_l"),
]
for s in "rl":
    BONES += [
        (f"hip_{s}", f"knee_{s}"),
        (f"knee_{s}", f"ankle_{s}"),
        (f"ankle_{s}", f"heel_{s}"),
        (f"heel_{s}", f"big_toe_{s}"),
        (f"ankle_{s}", f"big_toe_{s}"),
        (f"shoulder_{s}", f"elbow_{s}"),
        (f"elbow_{s}", f"wrist_{s}"),
        (f"wrist_{s}", f"hand_{s}"),
    ]


OUT = Path(__file__).with_name("skeleton_zero_pose.png")


def main(out: Path = OUT) -> Path:
    sk = Skeleton.default(1700.0)
    q = sk.make_q({"pelvis_ty": 901.0})  # heels on the floor (y = 0)
    x = forward_kinematics(sk, q)[0]
    R, o = segment_poses(sk, q)
    idx = {n: i for i, n in enumerate(sk.keypoint_names)}
    fig, axes = plt.subplots(1, 2, figsize=(9, 8))
    # (horizontal world axis, its sign on screen, title): front view looks at the patient
    # (their right on our left), side view from their right (anterior to the right)
    for ax, (h, flip, title, hname) in zip(
        axes,
        [
            (2, -1, "front view (patient facing us)", "Z (right)"),
            (0, 1, "right side view", "X (anterior)"),
        ],
    ):
        for a, b in BONES:
            ax.plot(x[[idx[a], idx[b]], h], x[[idx[a], idx[b]], 1], "-", color="0.55", lw=1.5)
        ax.plot(x[:, h], x[:, 1], ".", color="k", ms=3)
        for s in range(len(sk.segment_names)):
            for k, col in enumerate(("tab:red", "tab:green", "tab:blue")):
                d = R[0, s, :, k] * 60.0
                ax.annotate(
                    "",
                    xy=((o[0, s, h] + d[h]), o[0, s, 1] + d[1]),
                    xytext=(o[0, s, h], o[0, s, 1]),
                    arrowprops=dict(arrowstyle="->", color=col, lw=1.2),
                )
        if flip < 0:
            ax.invert_xaxis()  # patient's right on the viewer's left
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.set_xlabel(f"{hname}, mm")
        ax.set_ylabel("Y (superior), mm")
        ax.grid(alpha=0.3)
    fig.suptitle(
        "medpose default skeleton (H = 1700 mm), zero pose: all DoFs 0\n"
        "segment axes: X anterior (red), Y superior (green), Z right (blue); palms face the thighs"
    )
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
