"""Input checks of paired-point registration: pairing, finite and plausible coordinates, weights,
conditioning (collinear sets) and mirrored sets.

Each check raises :class:`~medpose.errors.InputError` or
:class:`~medpose.errors.DegenerateConfiguration` with a message that names what was found and
what is expected; nothing returns a silent transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data import Landmarks
from ..errors import DegenerateConfiguration, InputError

__all__ = [
    "MIN_SPREAD_RATIO",
    "MIRROR_RATIO",
    "MAX_COORDINATE_MM",
    "spread_ratio",
    "check_coordinates",
    "check_conditioning",
    "check_weights",
    "pair_sets",
    "mirrored",
    "check_mirror",
    "left_right_pairs",
    "wrong_side_pairs",
]

#: Default conditioning threshold: RMS spread along the 2nd principal axis / along the 1st.
MIN_SPREAD_RATIO = 0.01
#: A set is called mirrored when the best reflection fits this many times better (in sum of
#: squares) than the best rotation.
MIRROR_RATIO = 10.0
#: Plausibility bound on coordinates (mm): 10 km.  Anything larger is not a position in a
#: clinic (a unit or file error, or uninitialised memory), and its squares would lose the
#: precision the fit needs (or overflow, beyond about 1e154).
MAX_COORDINATE_MM = 1e7


def spread_ratio(points: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """RMS spread along the second principal axis over that along the first, shape (B, N, 3) -> (B,).

    0 for collinear (or coincident) points, 1 for points spread equally in two directions.
    The points are centred on their (weighted) centroid first, so the ratio depends on the
    shape alone, not on how far the set lies from the origin.  A cheap invariant test clears
    most sets; the others get exact eigenvalues (numpy).
    """
    b, n, _ = points.shape
    if w is None:
        wn = np.full((1, 1, n), 1.0 / n)
    else:
        wn = (w / w.sum(-1, keepdims=True))[:, None, :]
    m = np.matmul(wn, points)[:, 0]
    centred = points - m[:, None, :]
    wp = centred * wn.transpose(0, 2, 1)
    c = np.matmul(wp.transpose(0, 2, 1), centred)
    cs = np.ascontiguousarray(c.transpose(1, 2, 0))  # component arrays: contiguous arithmetic
    tr = cs[0, 0] + cs[1, 1] + cs[2, 2]
    m2 = (
        cs[0, 0] * cs[1, 1]
        - cs[0, 1] ** 2
        + cs[0, 0] * cs[2, 2]
        - cs[0, 2] ** 2
        + cs[1, 1] * cs[2, 2]
        - cs[1, 2] ** 2
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        cheap = m2 / tr**2  # <= 3 l2 / l1 (l1 >= l2 >= l3 the eigenvalues)
    out = np.ones(b)
    exact = ~(np.isfinite(cheap) & (cheap >= 3.0 * 0.1**2))  # clears ratios >= 0.1 without eigh
    if exact.any():
        lam = np.clip(np.linalg.eigvalsh(c[exact]), 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[exact] = np.where(lam[:, 2] > 0, np.sqrt(lam[:, 1] / lam[:, 2]), 0.0)
    return out


def check_coordinates(a: np.ndarray, labels: Sequence[Any], what: str) -> None:
    """Raise InputError unless every row of ``a`` (N, 3) is finite and within |x| < 1e7 mm."""
    bad = ~np.all(np.isfinite(a), axis=-1)
    if bad.any():
        which = [labels[int(i)] for i in np.flatnonzero(bad)]
        raise InputError(
            f"{what}: NaN or infinite coordinates at {which}; every fiducial needs 3 finite "
            "numbers (mm) - drop unplaced points or pass names= to choose the fiducials"
        )
    mag = np.abs(a).max(axis=-1) if a.size else np.zeros(0)
    big = mag >= MAX_COORDINATE_MM
    if big.any():
        which = [labels[int(i)] for i in np.flatnonzero(big)][:10]
        raise InputError(
            f"{what}: coordinates of magnitude up to {mag.max():.3g} mm at {which}; positions "
            f"must lie within |x| < {MAX_COORDINATE_MM:.0e} mm (10 km) of the frame's origin - "
            "check the file's units and that the points were read from the right columns"
        )


def check_conditioning(
    fixed: np.ndarray,
    moving: np.ndarray,
    w: np.ndarray | None,
    min_spread_ratio: float,
    labels: Sequence[Any] | None = None,
) -> None:
    """Raise DegenerateConfiguration for < 3 points or collinear/coincident sets (either side).

    ``fixed`` and ``moving`` are (N, 3); ``w`` (N,) weights or None.
    """
    n = fixed.shape[-2]
    if n < 3:
        raise DegenerateConfiguration(
            f"register: {n} common fiducial(s){'' if labels is None else ' ' + str(list(labels))}; "
            "at least 3 non-collinear points are needed for a unique transform"
        )
    if w is not None and np.count_nonzero(w) < 3:
        raise DegenerateConfiguration(
            f"register: only {np.count_nonzero(w)} fiducial(s) have a non-zero weight; "
            "at least 3 are needed"
        )
    for side, pts in (("moving", moving), ("fixed", fixed)):
        ratio = spread_ratio(pts[None], None if w is None else w[None])[0]
        if not ratio >= min_spread_ratio:
            kind = "collinear" if ratio < 1e-9 else "nearly collinear"
            raise DegenerateConfiguration(
                f"register: the {side} fiducials are {kind}: RMS spread along the second "
                f"principal axis is {ratio:.3g} of that along the first, below the conditioning "
                f"threshold min_spread_ratio={min_spread_ratio:g}; the rotation about their line "
                "is undetermined - add a fiducial off the line"
            )


def check_weights(weights: Any, n: int, labels: Sequence[Any], named: bool) -> np.ndarray | None:
    """Per-fiducial weights (N,) in pairing order from an array or a ``{name: weight}`` mapping."""
    if weights is None:
        return None
    if isinstance(weights, (Mapping, pd.Series)):
        w_map = dict(weights.items())
        missing = [lab for lab in labels if lab not in w_map]
        if missing:
            raise InputError(f"register: weights missing for {missing}")
        w = np.array([w_map[lab] for lab in labels], dtype=float)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.shape != (n,):
            raise InputError(
                f"register: weights must give one number per fiducial ({n}"
                f"{', in the order of names' if named else ''}), found shape {np.shape(weights)}"
            )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InputError(
            f"register: weights must be finite, >= 0 and not all zero, found {w.tolist()}"
        )
    return w


def pair_sets(
    fixed: Any, moving: Any, names: Sequence[str] | None, allow_same_frame: bool
) -> tuple[np.ndarray, np.ndarray, tuple[Any, ...], str, str, bool]:
    """Pair the two sets by name (Landmarks) or by row (arrays), checking them.

    Returns fixed (N, 3), moving (N, 3), the labels, the source (moving) frame, the target
    (fixed) frame and whether the sets were named.
    """
    if isinstance(fixed, Landmarks) != isinstance(moving, Landmarks):
        raise InputError(
            "register: fixed and moving must both be Landmarks (paired by name) or both arrays "
            f"(paired by row), found {type(fixed).__name__} and {type(moving).__name__}"
        )
    if isinstance(fixed, Landmarks) and isinstance(moving, Landmarks):
        if fixed.frame == moving.frame and not allow_same_frame:
            raise InputError(
                f"register: fixed and moving are both in frame '{fixed.frame}'; the moving set "
                "(imaging, e.g. 'LPS') must be registered to a fixed set in another frame (e.g. "
                "'camera') - check which landmarks were passed, or pass allow_same_frame=True"
            )
        if names is None:
            only_f = [n for n in fixed.names if n not in moving.names]
            only_m = [n for n in moving.names if n not in fixed.names]
            if only_f or only_m:
                raise InputError(
                    f"register: landmark names on one side only - fixed ({fixed.frame}) only: "
                    f"{only_f}; moving ({moving.frame}) only: {only_m}; rename them, or pass "
                    "names= to choose the fiducials"
                )
            names = list(fixed.names)
        else:
            names = [str(n) for n in names]
            for side, lm in (("fixed", fixed), ("moving", moving)):
                missing = [n for n in names if n not in lm.names]
                if missing:
                    raise InputError(
                        f"register: names {missing} not in the {side} landmarks ({lm.frame})"
                    )
            if len(set(names)) != len(names):
                raise InputError(f"register: names has duplicates: {names}")
        f_sub, m_sub = fixed.subset(names), moving.subset(names)
        check_coordinates(f_sub.positions, names, f"register: fixed landmarks ({fixed.frame})")
        check_coordinates(m_sub.positions, names, f"register: moving landmarks ({moving.frame})")
        fa, ma = f_sub.common(m_sub)  # all finite: pairs by name in this order
        return (
            np.array(fa.positions),
            np.array(ma.positions),
            tuple(fa.names),
            moving.frame,
            fixed.frame,
            True,
        )
    f = np.asarray(fixed, dtype=float)
    m = np.asarray(moving, dtype=float)
    for side, arr in (("fixed", f), ("moving", m)):
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise InputError(f"register: {side} points must have shape (N, 3), found {arr.shape}")
    if f.shape != m.shape:
        raise InputError(
            f"register: mismatched counts - {f.shape[0]} fixed and {m.shape[0]} moving points; "
            "arrays are paired by row and need the same number of rows"
        )
    labels: tuple[Any, ...] = tuple(range(f.shape[0]))
    if names is not None:
        raise InputError("register: names= selects Landmarks by name; index the arrays instead")
    check_coordinates(f, labels, "register: fixed points (rows)")
    check_coordinates(m, labels, "register: moving points (rows)")
    return f, m, labels, "moving", "fixed", False


def mirrored(fit: Mapping[str, np.ndarray]) -> np.ndarray:
    """Which problems of a :func:`~medpose.registration.solve.procrustes_batch` result are mirrored.

    A problem is mirrored when the best reflection fits at least :data:`MIRROR_RATIO` times
    better (in sum of squares) than the best rotation (Umeyama 1991: a reflection saves
    ``4 s_3`` of the sum of squares) and that saving is above rounding.  The rigid sum of
    squares at unit weights is ``total - 2 trace(R^T H)``.  Returns a bool array (B,).
    """
    gain = fit["mirror_gain"]
    sse_rot = fit["total"] - 2.0 * fit["sv_sum"]
    sse_refl = np.maximum(sse_rot - gain, 0.0)
    return (gain > 0) & (gain > 1e-10 * fit["total"]) & (sse_rot > MIRROR_RATIO * sse_refl)


def check_mirror(fit: Mapping[str, np.ndarray], what: str = "register") -> None:
    """Raise DegenerateConfiguration naming the mirrored problems of a ``procrustes_batch`` result.

    One problem: the message gives both fits' sums of squares; several: their indices.
    """
    bad = mirrored(fit)
    if not bad.any():
        return
    if len(bad) == 1:
        gain = float(fit["mirror_gain"][0])
        sse_rot = float(fit["total"][0] - 2.0 * fit["sv_sum"][0])
        sse_refl = max(sse_rot - gain, 0.0)
        raise DegenerateConfiguration(
            f"{what}: the fiducial sets are mirror images - the best orthogonal fit is a "
            f"reflection (determinant -1), which fits with a weighted sum of squares "
            f"{sse_refl:.4g} mm^2 against {sse_rot:.4g} mm^2 for the best rotation; check "
            "left/right landmark names and the LPS/RAS convention of the imaging landmarks"
        )
    raise DegenerateConfiguration(
        f"{what}: mirrored point sets (a reflection fits at least {MIRROR_RATIO:g} times better "
        f"than any rotation) in problems {np.flatnonzero(bad)[:10].tolist()}; check left/right "
        "and the LPS/RAS convention"
    )


#: Name parts that mark a patient's side: ``asis_l``, ``hip_left``, ``left-acromion``.
_SIDES = {"l": "l", "left": "l", "r": "r", "right": "r"}
#: Sign of x toward the patient's left in the image frames medpose reads.
_LEFT_X = {"LPS": 1.0, "RAS": -1.0}


def left_right_pairs(names: Sequence[Any]) -> list[tuple[str, str]]:
    """The (left, right) name pairs in ``names``: names equal but for one side part (``l`` or
    ``left`` against ``r`` or ``right``, any case, between ``_``, ``-``, ``.`` or spaces), as
    ``asis_l``/``asis_r`` or ``left_hip``/``right_hip``."""
    import re

    keyed: dict[str, dict[str, str]] = {}
    for name in map(str, names):
        parts = re.split(r"([_\-.\s]+)", name)
        sides = [i for i, p in enumerate(parts) if p.lower() in _SIDES]
        if len(sides) != 1:
            continue
        side = _SIDES[parts[sides[0]].lower()]
        key = "".join("*" if i == sides[0] else p.lower() for i, p in enumerate(parts))
        keyed.setdefault(key, {}).setdefault(side, name)
    return [(d["l"], d["r"]) for d in keyed.values() if len(d) == 2]


def wrong_side_pairs(landmarks: Landmarks) -> tuple[list[tuple[str, str]], list[str]]:
    """The left/right pairs of ``landmarks`` (frame LPS or RAS) and those on the wrong side.

    In LPS +x points to the patient's left (in RAS to the right), so the left landmark of a
    pair must lie further along +x (RAS: -x) than the right one.  Returns the pairs checked
    (both points finite; none for other frames) and one line per pair on the wrong side
    (``asis_l is 212.0 mm to the right of asis_r``).
    """
    sign = _LEFT_X.get(str(landmarks.frame).upper())
    if sign is None:
        return [], []
    pos = np.asarray(landmarks.positions, dtype=float)
    index = {str(n): i for i, n in enumerate(landmarks.names)}
    checked: list[tuple[str, str]] = []
    wrong: list[str] = []
    for left, right in left_right_pairs(landmarks.names):
        a, b = pos[index[left]], pos[index[right]]
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        checked.append((left, right))
        toward_left = sign * (a[0] - b[0])
        if toward_left < 0:
            wrong.append(f"{left} is {-toward_left:.1f} mm to the right of {right}")
    return checked, wrong
