"""Figure for docs/registration.md: predicted versus simulated TRE along the weakest axis.

Run: ``python docs/figures/make_registration_figure.py`` (about 10 s); writes
``docs/figures/registration_tre.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medpose.io._util import atomic_path
from medpose.registration import camera_fle, predict_tre, simulate_tre, tre_fitzpatrick
from medpose.synthetic.fiducials import head_fiducials

OUT = Path(__file__).resolve().parent / "registration_tre.png"


def head_layout(n: int) -> np.ndarray:
    """n fiducials over a head-sized ellipsoid (80 x 100 x 70 mm)."""
    return head_fiducials(n)


def main() -> None:
    x = head_layout(6)
    c = x.mean(0)
    axis = np.linalg.svd(x - c)[2][2]
    dist = np.linspace(0, 150, 16)
    tg = c + np.outer(dist, axis)
    aniso = camera_fle(0.25, 1.0, axis=(1, 0, 0))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    ax[0].plot(dist, predict_tre(x, tg, 1.0), "-", label="predicted (Fitzpatrick 1998)")
    ax[0].plot(
        dist, simulate_tre(x, tg, 1.0, 10_000, seed=0), "o", label="simulated, 10,000 trials"
    )
    ax[0].set_title("isotropic FLE 1 mm, 6 fiducials")
    ax[1].plot(
        dist,
        predict_tre(x, tg, aniso, weighted_by_fle=False),
        "-",
        label="predicted, covariance propagation",
    )
    ax[1].plot(
        dist,
        tre_fitzpatrick(x, tg, float(np.sqrt(np.trace(aniso)))),
        "--",
        label="isotropic formula, same RMS FLE",
    )
    ax[1].plot(
        dist,
        simulate_tre(x, tg, aniso, 10_000, weighted_by_fle=False, seed=1),
        "o",
        label="simulated (plain least squares)",
    )
    ax[1].plot(dist, predict_tre(x, tg, aniso), "-", label="predicted, FLE-weighted registration")
    ax[1].plot(
        dist,
        simulate_tre(x, tg, aniso, 10_000, seed=2),
        "s",
        ms=4,
        label="simulated (FLE-weighted)",
    )
    ax[1].set_title("camera FLE: 0.25 mm lateral, 1.0 mm depth")
    for a in ax:
        a.set_xlabel("target distance from centroid along weakest axis (mm)")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax[0].set_ylabel("RMS TRE (mm)")
    fig.tight_layout()
    with atomic_path(OUT) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
