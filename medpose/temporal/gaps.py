"""Outlier frames and gaps in keypoint trajectories.

* :func:`hampel_outliers` flags frames whose speed is an outlier against a running median
  (a Hampel identifier on velocities; Hampel 1974, *JASA* 69:383; Pearson 2002, *IEEE
  Trans. Control Syst. Technol.* 10:403 for the filter form).
* :func:`fill_gaps` fills gaps up to a stated length with a cubic spline (or linear
  interpolation) through the samples around them, leaves longer gaps missing and reports
  every gap with its extent.
* :func:`clean_gaps` runs both on a 3D :class:`~medpose.data.KeypointSequence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.interpolate import CubicSpline, PchipInterpolator

from ..data import KeypointSequence
from ..errors import InputError
from .filters import finite_runs

__all__ = [
    "hampel_outliers",
    "bone_length_outliers",
    "fill_gaps",
    "clean_gaps",
    "GapResult",
    "CleanResult",
    "DEFAULT_BONES",
]

#: Segments whose length is constant on a rigid body, in medpose keypoint names (thigh, shank,
#: foot, upper arm, forearm, pelvis and shoulder widths).  Pairs absent from a sequence are skipped.
DEFAULT_BONES: tuple[tuple[str, str], ...] = tuple(
    [(f"hip_{s}", f"knee_{s}") for s in "lr"]
    + [(f"knee_{s}", f"ankle_{s}") for s in "lr"]
    + [(f"ankle_{s}", f"heel_{s}") for s in "lr"]
    + [(f"heel_{s}", f"big_toe_{s}") for s in "lr"]
    + [(f"shoulder_{s}", f"elbow_{s}") for s in "lr"]
    + [(f"elbow_{s}", f"wrist_{s}") for s in "lr"]
    + [("hip_l", "hip_r"), ("shoulder_l", "shoulder_r")]
)


def hampel_outliers(
    positions: np.ndarray,
    fs: float,
    window_s: float = 0.25,
    n_sigmas: float = 4.0,
    min_speed: float = 0.0,
) -> np.ndarray:
    """Frames whose keypoint position jumps: a Hampel identifier on speeds.

    The speed ``v[t] = |p[t+1] - p[t]| * fs`` of every keypoint is compared with its running
    median ``m`` over a centred window; ``|v - m| > n_sigmas * max(1.4826 * MAD, 0.1 m)`` (and
    ``v > min_speed``) flags the transition (Hampel identifier, Pearson 2002; the floor keeps
    a steady movement, whose MAD is near zero, from being flagged).  A frame is an
    outlier when both the transition into it and the one out of it are flagged (a spike that
    leaves and comes back), or when it is the first/last finite frame of a run and its one
    transition is flagged.

    Parameters
    ----------
    positions : array_like, shape (T, K, D)
        Keypoint positions (mm or px); NaN = missing.
    fs : float
        Sampling rate, Hz.
    window_s : float
        Length of the running window in seconds (at least 3 samples).
    n_sigmas : float
        Threshold in robust standard deviations.
    min_speed : float
        Speeds below this (units of positions per second) are never outliers; guards
        against flagging jitter on a keypoint at rest, where the MAD is tiny.

    Returns
    -------
    ndarray of bool, shape (T, K)
    """
    p = np.asarray(positions, dtype=float)
    if p.ndim != 3:
        raise InputError(f"hampel_outliers: positions must have shape (T, K, D), found {p.shape}")
    if not (np.isfinite(fs) and fs > 0):
        raise InputError(f"hampel_outliers: fs must be a positive number of Hz, found {fs!r}")
    n_t = p.shape[0]
    out = np.zeros(p.shape[:2], dtype=bool)
    if n_t < 3:
        return out
    v = np.linalg.norm(np.diff(p, axis=0), axis=2) * fs  # (T-1, K)
    w = max(3, round(window_s * fs) | 1)
    half = w // 2
    padded = np.pad(v, ((half, half), (0, 0)), constant_values=np.nan)
    win = sliding_window_view(padded, w, axis=0)  # (T-1, K, w)
    # an all-NaN window has no median (NaN: never flags); it is filled with zeros first, so
    # numpy does not warn (a warnings filter is not thread-safe: sessions run in threads)
    empty = ~np.isfinite(win).any(axis=2)
    win = np.where(empty[..., None], 0.0, win)
    med = np.nanmedian(win, axis=2)
    mad = np.nanmedian(np.abs(win - med[..., None]), axis=2)
    med[empty], mad[empty] = np.nan, np.nan
    scale = np.maximum(1.4826 * mad, 0.1 * med)  # floor: a steady movement has a MAD near 0
    flag = (np.abs(v - med) > n_sigmas * scale) & (v > min_speed) & np.isfinite(v)
    into = np.zeros_like(out)
    outof = np.zeros_like(out)
    into[1:] = flag
    outof[:-1] = flag
    fin = np.all(np.isfinite(p), axis=2)
    has_prev = np.zeros_like(fin)
    has_prev[1:] = fin[:-1] & fin[1:]
    has_next = np.zeros_like(fin)
    has_next[:-1] = fin[1:] & fin[:-1]
    out = (into & outof) | (into & ~has_next) | (outof & ~has_prev)
    return out & fin


def bone_length_outliers(
    positions: np.ndarray,
    names: Sequence[str],
    bones: Sequence[tuple[str, str]] = DEFAULT_BONES,
    tolerance: float = 0.15,
    window: int | None = None,
) -> np.ndarray:
    """Keypoints that make a rigid segment change length: a bone-length consistency check.

    Every bone whose length differs from its median over the sequence by more than
    ``tolerance`` (a fraction) is bad in that frame; with ``window``, only where it also
    differs by that much from its running median over ``window`` frames (centred): a length
    that drifts with the pose is kept, a break shorter than about half the window is caught.
    A Kinect's per-frame bone lengths (UI-PRMD) shorten the shank by up to a fifth at the
    bottom of a deep squat, and the median alone took the ankle out of 7-11 frames there, where
    the knee is most flexed.  A keypoint is flagged when all of its bones present in that frame are bad
    (it is the odd one out); a bad bone with neither end flagged flags both ends.

    Parameters
    ----------
    positions : array_like, shape (T, K, 3)
        mm.
    names : sequence of str, length K
    bones : sequence of (a, b) names
        Default :data:`DEFAULT_BONES`; bones with a name not in ``names`` are skipped.
    tolerance : float
        Allowed relative deviation from the median length.
    window : int, optional
        Frames of the running median (at least 3); None: the sequence's median alone.

    Returns
    -------
    ndarray of bool, shape (T, K)
    """
    p = np.asarray(positions, dtype=float)
    names = list(names)
    if p.ndim != 3 or p.shape[1] != len(names):
        raise InputError(
            f"bone_length_outliers: positions must have shape (T, {len(names)}, 3), found {p.shape}"
        )
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise InputError(
            f"bone_length_outliers: tolerance must be a positive fraction, found {tolerance!r}"
        )
    if window is not None and not (isinstance(window, (int, np.integer)) and window >= 3):
        raise InputError(
            f"bone_length_outliers: window must be a number of frames of at least 3, found {window!r}"
        )
    idx = {n: i for i, n in enumerate(names)}
    use = [(idx[a], idx[b]) for a, b in bones if a in idx and b in idx]
    flags = np.zeros(p.shape[:2], dtype=bool)
    if not use:
        return flags
    ia, ib = np.array(use).T
    length = np.linalg.norm(p[:, ia] - p[:, ib], axis=-1)  # (T, B)
    present = np.isfinite(length)
    seen = present.any(axis=0)  # a bone never seen has no median (and numpy is not asked)
    med = np.full(length.shape[1], np.nan)
    med[seen] = np.nanmedian(length[:, seen], axis=0)
    bad = present & (np.abs(length - med) > tolerance * med)
    if window is not None:
        run = pd.DataFrame(length).rolling(int(window), center=True, min_periods=1).median()
        bad &= np.abs(length - run.to_numpy()) > tolerance * med
    k = p.shape[1]
    onehot_a = np.eye(k, dtype=int)[ia]  # (B, K)
    onehot_b = np.eye(k, dtype=int)[ib]
    inc = onehot_a + onehot_b
    n_bad = bad.astype(int) @ inc  # (T, K)
    n_present = present.astype(int) @ inc
    flags = (n_bad > 0) & (n_bad == n_present)
    orphan = bad & ~flags[:, ia] & ~flags[:, ib]  # (T, B)
    flags |= (orphan.astype(int) @ inc) > 0
    return flags


@dataclass(frozen=True)
class GapResult:
    """The outcome of :func:`fill_gaps`.

    Attributes
    ----------
    values : ndarray
        The input with the short gaps filled (same shape).
    gaps : pandas.DataFrame
        One row per gap: ``column`` (index into the trailing axes, or the keypoint name when
        known), ``start_frame``, ``stop_frame`` (exclusive), ``n_frames``, ``duration_s``,
        ``filled`` (bool) and ``reason`` (``"filled"``, ``"too long"``, ``"at the start"``,
        ``"at the end"``, ``"too few samples"``).
    """

    values: np.ndarray
    gaps: pd.DataFrame


def fill_gaps(
    x: np.ndarray,
    fs: float,
    max_gap_s: float = 0.2,
    method: str = "spline",
    names: list[str] | tuple[str, ...] | None = None,
) -> GapResult:
    """Fill interior gaps up to ``max_gap_s`` long; report every gap.

    A gap is a run of NaN between two finite samples.  Gaps of at most
    ``round(max_gap_s * fs)`` frames are filled by a cubic spline through all finite
    samples of the column (:class:`scipy.interpolate.CubicSpline`, not-a-knot ends;
    de Boor 1978), by shape-preserving PCHIP (:class:`scipy.interpolate.PchipInterpolator`;
    Fritsch & Carlson 1980) or linearly (:func:`numpy.interp`).  Longer gaps and gaps
    touching the start or end (no extrapolation) stay NaN and are reported.

    Parameters
    ----------
    x : array_like, shape (T, ...)
        Time on axis 0; columns are handled independently but a (T, K, 3) array is reported
        per keypoint (a gap is where any coordinate is missing).
    fs : float
        Sampling rate, Hz.
    max_gap_s : float
        Longest gap filled, seconds (>= 0).
    method : {"spline", "pchip", "linear"}
    names : sequence of str, optional
        Keypoint names for axis 1, used in the report.

    Returns
    -------
    GapResult
    """
    if method not in ("spline", "pchip", "linear"):
        raise InputError(
            f"fill_gaps: method must be 'spline', 'pchip' or 'linear', found {method!r}"
        )
    if not (np.isfinite(fs) and fs > 0):
        raise InputError(f"fill_gaps: fs must be a positive number of Hz, found {fs!r}")
    if not (np.isfinite(max_gap_s) and max_gap_s >= 0):
        raise InputError(
            f"fill_gaps: max_gap_s must be a non-negative number of seconds, found {max_gap_s!r}"
        )
    a = np.asarray(x, dtype=float)
    if a.ndim == 0 or a.shape[0] == 0:
        raise InputError(f"fill_gaps: expected an array with time on axis 0, found shape {a.shape}")
    shape = a.shape
    n_t = shape[0]
    # a "point" is axis 1 (keypoint) when there is one; its coordinates are filled together
    pts = a.reshape(n_t, shape[1] if a.ndim >= 2 else 1, -1)
    if names is not None and len(names) != pts.shape[1]:
        raise InputError(f"fill_gaps: {len(names)} names for {pts.shape[1]} keypoints")
    max_n = round(max_gap_s * fs)
    out = pts.copy()
    t = np.arange(n_t, dtype=float)
    rows = []
    present = np.all(np.isfinite(pts), axis=2)  # (T, P)
    for j in range(pts.shape[1]):
        ok = present[:, j]
        label = names[j] if names is not None else j
        holes = finite_runs(~ok)
        if len(holes) == 0:
            continue
        fill_idx = []
        n_ok = int(ok.sum())
        for s, e in holes:
            n = int(e - s)
            if s == 0:
                reason = "at the start"
            elif e == n_t:
                reason = "at the end"
            elif n > max_n:
                reason = "too long"
            elif n_ok < 2 or (method != "linear" and n_ok < 4):
                reason = "too few samples"
            else:
                reason = "filled"
                fill_idx.append(np.arange(s, e))
            rows.append((label, int(s), int(e), n, n / fs, reason == "filled", reason))
        if fill_idx:
            idx = np.concatenate(fill_idx)
            tk, yk = t[ok], pts[ok, j, :]
            if method == "spline":
                out[idx, j, :] = CubicSpline(tk, yk, axis=0)(t[idx])
            elif method == "pchip":
                out[idx, j, :] = PchipInterpolator(tk, yk, axis=0)(t[idx])
            else:
                for c in range(pts.shape[2]):
                    out[idx, j, c] = np.interp(t[idx], tk, yk[:, c])
    gaps = pd.DataFrame(
        rows,
        columns=[
            "keypoint",
            "start_frame",
            "stop_frame",
            "n_frames",
            "duration_s",
            "filled",
            "reason",
        ],
    )
    gaps.attrs.update({"rate_hz": float(fs), "max_gap_s": float(max_gap_s), "method": method})
    return GapResult(out.reshape(shape), gaps)


@dataclass(frozen=True)
class CleanResult:
    """Outcome of :func:`clean_gaps`: the sequence, the outlier mask (T, K) and the gap table."""

    sequence: KeypointSequence
    outliers: np.ndarray
    gaps: pd.DataFrame


def clean_gaps(
    sequence: KeypointSequence,
    max_gap_s: float = 0.2,
    method: str = "spline",
    hampel_window_s: float = 0.25,
    n_sigmas: float = 4.0,
    min_speed: float = 0.0,
    bones: Sequence[tuple[str, str]] | None = DEFAULT_BONES,
    bone_tolerance: float = 0.15,
    bone_window_s: float | None = 1.0,
) -> CleanResult:
    """Remove outliers (speed spikes, bone-length breaks) and fill short gaps in a 3D sequence.

    Samples flagged by :func:`hampel_outliers` or :func:`bone_length_outliers` (skipped when
    ``bones`` is None; its running median over ``bone_window_s`` seconds, at least 3 frames,
    None for the sequence's median alone) become NaN, then :func:`fill_gaps` fills gaps up to
    ``max_gap_s``; longer gaps stay NaN and are reported.  Filled samples get confidence 0
    (they were not measured).

    Returns
    -------
    CleanResult
        ``sequence``, ``outliers`` (T, K) bool, ``gaps`` (the table of :func:`fill_gaps`).
    """
    flags = hampel_outliers(sequence.positions, sequence.rate, hampel_window_s, n_sigmas, min_speed)
    if bones is not None:
        if bone_window_s is not None and not (np.isfinite(bone_window_s) and bone_window_s > 0):
            raise InputError(
                f"clean_gaps: bone_window_s must be a positive number of seconds or None, "
                f"found {bone_window_s!r}"
            )
        win = None if bone_window_s is None else max(3, round(bone_window_s * sequence.rate))
        flags |= bone_length_outliers(
            sequence.positions, sequence.names, bones, bone_tolerance, window=win
        )
    pos = np.where(flags[..., None], np.nan, sequence.positions)
    res = fill_gaps(pos, sequence.rate, max_gap_s, method, names=sequence.names)
    was = np.all(np.isfinite(pos), axis=2)
    conf = np.where(was, sequence.confidence, 0.0)
    return CleanResult(sequence.with_positions(res.values, conf), flags, res.gaps)
