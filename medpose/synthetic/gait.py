"""Synthetic gait: sagittal hip, knee and ankle curves shaped like the normative gait curves.

Periodic splines through knots read off Winter 2009 (*Biomechanics and Motor Control of Human
Movement*, 4th ed., ch. 4) and Perry & Burnfield 2010 (*Gait Analysis*, 2nd ed.); the left leg
half a cycle after the right, arm swing with the opposite leg, pelvis rotation, list and tilt,
and forward progression at a set speed.  Used by :func:`medpose.synthetic.make_exercise`.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = ["gait_curves", "gait_angles"]

_SIDES = ("r", "l")


def gait_curves() -> dict[str, CubicSpline]:
    """Periodic splines of sagittal joint angles (deg) over the gait cycle (0-1, right heel strike = 0).

    Knots read off the shape of the normative curves in Winter 2009 (fig. 4.x, natural cadence)
    and Perry & Burnfield 2010: hip ~30 deg flexed at heel strike, ~-10 deg extension at 50%,
    knee loading-response flexion ~18 deg and swing peak ~60 deg at ~72%, ankle plantarflexion
    ~-18 deg just after toe-off at ~62%.  Shapes, not exact means.
    """
    knots = {
        "hip": ([0, 10, 30, 50, 60, 75, 87, 100], [30, 25, 5, -10, 0, 25, 33, 30]),
        "knee": ([0, 15, 40, 60, 72, 85, 97, 100], [3, 18, 4, 38, 62, 35, 2, 3]),
        "ankle": ([0, 7, 30, 45, 62, 75, 90, 100], [0, -6, 7, 10, -18, -2, 2, 0]),
    }
    return {
        k: CubicSpline(np.array(x) / 100.0, y, bc_type="periodic") for k, (x, y) in knots.items()
    }


def gait_angles(
    dofs: tuple[str, ...],
    col: dict[str, int],
    base: np.ndarray,
    rate: float,
    strides: int,
    tempo: float,
    imp: float,
    imp_s: str | None,
    scale: float,
    speed: float,
) -> tuple[np.ndarray, list[tuple[float, float]], dict]:
    """Gait angles: sagittal curves per leg (left half a cycle later), pelvis and arm swing."""
    curves = gait_curves()
    stride = tempo * (1.0 + 0.5 * imp)
    n = int(np.ceil(strides * stride * rate - 1e-9)) + 1
    t = np.arange(n) / rate
    values = np.tile(base, (n, 1))
    phase = {"r": (t / stride) % 1.0, "l": (t / stride + 0.5) % 1.0}
    dof_of = {
        "hip": "hip_flexion_{s}",
        "knee": "knee_flexion_{s}",
        "ankle": "ankle_dorsiflexion_{s}",
    }
    for s in _SIDES:
        f = scale * ((1.0 - imp) if s == imp_s else 1.0)
        for key, tmpl in dof_of.items():
            d = tmpl.format(s=s)
            if d in col:
                c = curves[key]
                mean = float(np.mean(c(np.linspace(0, 1, 101)[:-1])))
                values[:, col[d]] = mean + f * (c(phase[s]) - mean)
        if f"shoulder_flexion_{s}" in col:  # arm swings with the opposite leg
            other = "l" if s == "r" else "r"
            values[:, col[f"shoulder_flexion_{s}"]] = 0.5 * (curves["hip"](phase[other]) - 10.0)
        if f"elbow_flexion_{s}" in col:
            other = "l" if s == "r" else "r"
            values[:, col[f"elbow_flexion_{s}"]] = 20.0 + 0.3 * (curves["hip"](phase[other]) - 10.0)
        if f"shoulder_abduction_{s}" in col:
            values[:, col[f"shoulder_abduction_{s}"]] = 5.0
    w = 2 * np.pi * t / stride
    for d, v in (
        ("pelvis_rotation", 5.0 * np.cos(w)),
        ("pelvis_list", 4.0 * np.sin(2 * w)),
        ("pelvis_tilt", 2.0 * np.sin(2 * w)),
    ):
        if d in col:
            values[:, col[d]] = v
    if "pelvis_tx" in col:
        values[:, col["pelvis_tx"]] = speed * t
    reps = [(float(i * stride), float((i + 1) * stride)) for i in range(strides)]
    return values, reps, {"stride_s": stride, "speed_mm_s": speed, "gait_scale": scale}
