"""Joint angles derived from the fitted DoFs that do not depend on the Euler branch.

medpose's shoulder is the intrinsic ``ZXY`` sequence flexion, abduction, axial rotation
(``resources/skeleton.yaml``).  With the arm high those three angles have two equivalent
solutions, ``(f, a, r)`` and ``(f + 180, 180 - a, r + 180)``, so a range of motion of flexion or
abduction alone can jump between them.  The humerothoracic elevation, the angle between the
humerus and the thorax's long axis, is the same on both branches: with the humerus along the
upper arm's ``-Y`` and ``R = Rz(f) Rx(-a) Ry(r)``, ``R e_y . e_y = cos f cos a``, so

    shoulder_elevation = arccos(cos(flexion) cos(abduction))   (degrees, 0 = arm hanging)

(the ISB's recommended humerothoracic elevation angle, Wu et al. 2005, J Biomech 38:981-992,
sec. 2.4.3, whose Y-X-Y decomposition makes the elevation its second angle).  Elevation in
the scapular plane (scaption) is read with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DERIVED", "shoulder_elevation", "with_derived"]

#: Derived angle base -> the DoF bases it is computed from.
DERIVED: dict[str, tuple[str, ...]] = {
    "shoulder_elevation": ("shoulder_flexion", "shoulder_abduction")
}


def shoulder_elevation(flexion_deg: np.ndarray, abduction_deg: np.ndarray) -> np.ndarray:
    """Humerothoracic elevation, degrees in [0, 180], from shoulder flexion and abduction."""
    f, a = np.radians(np.asarray(flexion_deg, float)), np.radians(np.asarray(abduction_deg, float))
    return np.degrees(np.arccos(np.clip(np.cos(f) * np.cos(a), -1.0, 1.0)))


def with_derived(angles: pd.DataFrame) -> pd.DataFrame:
    """``angles`` (columns of DoF names, degrees) with the derived angles added per side where
    their DoFs are present (``shoulder_elevation_r`` and ``_l``); a copy."""
    out = angles.copy()
    for side in ("_r", "_l"):
        flex, abd = (f"{b}{side}" for b in DERIVED["shoulder_elevation"])
        if flex in out.columns and abd in out.columns:
            out[f"shoulder_elevation{side}"] = shoulder_elevation(out[flex], out[abd])
    return out
