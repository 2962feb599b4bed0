"""How medpose's data show in Jupyter and on a matplotlib axis: landmarks, keypoint sequences,
joint angles and image volumes.

:class:`~medpose.data.Landmarks`, :class:`~medpose.data.KeypointSequence`,
:class:`~medpose.data.JointAngles` and :class:`~medpose.imaging.volume.Volume` call these
functions from their ``_repr_html_`` and ``plot``; the functions read the objects' public
attributes only (nothing here imports those classes).  The small plots of the HTML draw every
n-th frame, at most :data:`HTML_FRAMES` of them, so that a million-frame sequence shows at once.
"""

from __future__ import annotations

import html
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FrameMismatch, InputError
from .display import box, html_table, img_tag, small_figure
from .figures import angle_frame

__all__ = [
    "HTML_FRAMES",
    "PLOT_KEYPOINTS",
    "PLOT_DOFS",
    "TRANSLATIONS",
    "landmarks_html",
    "landmarks_plot",
    "keypoints_html",
    "keypoints_plot",
    "angles_html",
    "angles_plot",
    "orientation_code",
    "volume_html",
    "volume_plot",
]

#: Most frames the small plot of a keypoint sequence's or joint angles' HTML draws.
HTML_FRAMES = 2000
#: Keypoints :func:`keypoints_plot` draws by default: those whose trajectories span most.
PLOT_KEYPOINTS = 6
#: Degrees of freedom :func:`angles_plot` draws by default: the joint angles with the widest range.
PLOT_DOFS = 8
#: The degrees of freedom of :class:`~medpose.data.JointAngles` in mm (all others are degrees).
TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")

_AXES = ("x", "y", "z")
#: LPS axis and sign -> the anatomical direction it points to.
_TOWARDS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}
#: Plane -> LPS axes (normal, screen horizontal, screen vertical) and the axis labels.
_PLANES = {
    "axial": (2, 0, 1, "x (mm, LPS): to the patient's left", "y (mm, LPS): anterior up"),
    "coronal": (1, 0, 2, "x (mm, LPS): to the patient's left", "z (mm, LPS): superior up"),
    "sagittal": (0, 1, 2, "y (mm, LPS): to posterior", "z (mm, LPS): superior up"),
}


def _step(n_frames: int) -> int:
    return max(1, math.ceil(n_frames / HTML_FRAMES))


def _shrink(ax: Any) -> None:
    """Small fonts for the HTML's plots."""
    for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
        text.set_fontsize(6)
    for text in ax.texts:
        text.set_fontsize(5)
    if ax.get_legend() is not None:
        for text in ax.get_legend().get_texts():
            text.set_fontsize(5)


def _no_data(ax: Any, why: str) -> Any:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.4")
    return ax


def _names(value: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """The names asked for (one name or several), checked against ``known``."""
    names = [value] if isinstance(value, str) else list(value or [])
    if not names:
        raise InputError(f"{what}: found an empty list; expected at least one name")
    bad = [n for n in names if n not in known]
    if bad:
        raise InputError(f"{what}: {bad} not found; known: {list(known)}")
    return names


# ------------------------------------------------------------------------ Landmarks
def _plane(
    points: np.ndarray, axes: Sequence[str] | None, frame: str
) -> tuple[np.ndarray, list[str]]:
    """(2, 3) unit vectors of the drawing plane and the labels of its axes."""
    if axes is not None:
        names = [str(a) for a in axes]
        if len(names) != 2 or len(set(names)) != 2 or not set(names) <= set(_AXES):
            raise InputError(
                f"Landmarks.plot: axes {axes!r}; expected two different of 'x', 'y', 'z', "
                "e.g. ('x', 'z')"
            )
        return np.eye(3)[[_AXES.index(n) for n in names]], [f"{n} ({frame}, mm)" for n in names]
    ok = points[np.isfinite(points).all(axis=1)]
    if len(ok) < 3:
        return np.eye(3)[:2], [f"{n} ({frame}, mm)" for n in _AXES[:2]]
    vt = np.linalg.svd(ok - ok.mean(axis=0))[2][:2]
    vt *= np.sign(vt[np.arange(2), np.abs(vt).argmax(axis=1)])[:, None]  # largest part > 0
    return vt, [
        f"principal axis {k + 1} = ({v[0]:.2f}, {v[1]:.2f}, {v[2]:.2f}) {frame} (mm)"
        for k, v in enumerate(vt)
    ]


def landmarks_plot(lm: Any, ax: Any, axes: Sequence[str] | None = None) -> Any:
    """The placed points of ``lm`` projected on a plane, each named, equal aspect (mm): on the
    frame axes ``axes`` (two of ``"x"``, ``"y"``, ``"z"``), by default on the points' two
    principal axes (on x and y with fewer than three points placed)."""
    pos = np.asarray(lm.positions, dtype=float)
    basis, labels = _plane(pos, axes, lm.frame)
    ok = np.isfinite(pos).all(axis=1)
    uv = pos[ok] @ basis.T
    ax.scatter(uv[:, 0], uv[:, 1], s=14, color="#4c72b0")
    for name, (u, v) in zip([n for n, k in zip(lm.names, ok) if k], uv):
        ax.annotate(name, (u, v), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal", adjustable="datalim")
    missing = f"; {int((~ok).sum())} not placed" if not ok.all() else ""
    ax.set_title(f"{int(ok.sum())} landmarks in {lm.frame}{missing}", fontsize=8)
    return ax


def landmarks_html(lm: Any) -> str:
    """The coordinates of each landmark (table) and the points on their principal plane."""
    pos = np.asarray(lm.positions, dtype=float)
    df = pd.DataFrame(
        {"name": list(lm.names), "x (mm)": pos[:, 0], "y (mm)": pos[:, 1], "z (mm)": pos[:, 2]}
    )
    placed = np.isfinite(pos).all(axis=1)
    missing = f", {int((~placed).sum())} not placed" if not placed.all() else ""
    title = f"<b>Landmarks</b>: {len(df)} points in {html.escape(str(lm.frame))} (mm){missing}"
    plot = ""
    if placed.any():
        fig, ax = small_figure(2.6, 2.4)
        _shrink(landmarks_plot(lm, ax))
        plot = img_tag(fig, alt="landmarks")
    return box(title, html_table(df), plot)


# ------------------------------------------------------------------------ KeypointSequence
def _spans(pos: np.ndarray) -> np.ndarray:
    """Per keypoint, the widest range of one coordinate over the frames (NaN if never seen)."""
    if not len(pos):
        return np.full(pos.shape[1], np.nan)
    return (np.fmax.reduce(pos, axis=0) - np.fmin.reduce(pos, axis=0)).max(axis=-1)


def keypoints_plot(
    seq: Any,
    ax: Any,
    keypoints: str | Sequence[str] | None = None,
    axis: str | None = None,
    step: int = 1,
) -> Any:
    """One coordinate (``axis`` ``"x"``, ``"y"``, ``"z"``) or the speed (``"speed"``, between
    consecutive frames, drawn at the later one) of ``keypoints`` over time (s), missing frames
    as gaps; by default the :data:`PLOT_KEYPOINTS` keypoints whose trajectories span most, in
    the sequence's order.  ``axis`` None: ``"y"`` for image keypoints, else the coordinate
    along which the keypoints drawn vary most.  ``step``: draw every ``step``-th frame only."""
    unit = "mm" if seq.ndim == 3 else "px"
    allowed = (*_AXES[: seq.ndim], "speed")
    if axis is not None and axis not in allowed:
        raise InputError(
            f"KeypointSequence.plot: axis {axis!r} for a {seq.ndim}D sequence; expected one of "
            f"{list(allowed)}"
        )
    pos = np.asarray(seq.positions)[::step]
    if keypoints is None:
        span = _spans(pos)
        ranked = [int(k) for k in np.argsort(-np.nan_to_num(span, nan=-1.0), kind="stable")]
        idx = sorted(k for k in ranked[:PLOT_KEYPOINTS] if np.isfinite(span[k]))
        if not idx:
            return _no_data(ax, "no keypoint in any frame")
    else:
        names = _names(keypoints, seq.names, "KeypointSequence.plot: keypoints")
        idx = [list(seq.names).index(n) for n in names]
    t = seq.start + np.arange(0, seq.n_frames, step) / seq.rate
    sel = pos[:, idx]
    if axis is None:
        axis = "y" if seq.ndim == 2 else _AXES[_widest(sel)]
    if axis == "speed":
        d = np.linalg.norm(np.diff(sel, axis=0), axis=-1) * (seq.rate / step)
        values = np.vstack([np.full((1, len(idx)), np.nan), d])
        ax.set_ylabel(f"speed ({unit}/s)")
    else:
        values = sel[..., _AXES.index(axis)]
        ax.set_ylabel(f"{axis} ({unit}, {seq.frame})")
    for j, k in enumerate(idx):
        ax.plot(t, values[:, j], lw=1, label=seq.names[k])
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, ncols=2)
    return ax


def _widest(sel: np.ndarray) -> int:
    """The coordinate (0, 1, 2) along which the keypoints ``sel`` (T, K, 3) vary most over
    time (their variances summed)."""
    ok = np.isfinite(sel).all(axis=-1).any(axis=0)
    if not ok.any():
        return 1
    var = np.nanvar(sel[:, ok], axis=0).sum(axis=0)
    return int(np.argmax(var))


def keypoints_html(seq: Any, max_rows: int = 8) -> str:
    """Frames, duration, rate and missing points (title); the keypoints missing most, with their
    share of missing frames and mean confidence (table); a coordinate over time (plot)."""
    n, k = seq.n_frames, seq.n_keypoints
    missing = np.isnan(np.asarray(seq.positions)[..., 0])
    share = missing.mean(axis=0) if n else np.zeros(k)
    present = n - missing.sum(axis=0)
    total = np.asarray(seq.confidence).sum(axis=0)
    conf = np.divide(total, present, out=np.full(k, np.nan), where=present > 0)
    order = np.argsort(-share, kind="stable")
    df = pd.DataFrame(
        {
            "keypoint": [seq.names[i] for i in order],
            "missing (%)": 100 * share[order],
            "mean confidence": conf[order],
        }
    )
    unit = "mm" if seq.ndim == 3 else "px"
    title = (
        f"<b>KeypointSequence</b>: {n:,} frames × {k} keypoints ({seq.ndim}D, {unit}), "
        f"{n / seq.rate:.2f} s at {seq.rate:g} Hz from {seq.start:g} s, frame "
        f"'{html.escape(str(seq.frame))}'; {100 * float(share.mean()) if k else 0:.1f} % "
        "of the points missing"
    )
    plot = ""
    if (share < 1).any():
        fig, ax = small_figure(3.4, 1.8)
        _shrink(keypoints_plot(seq, ax, step=_step(n)))
        plot = img_tag(fig, alt="keypoints over time")
    return box(title, html_table(df, max_rows=max_rows), plot)


# ------------------------------------------------------------------------ JointAngles
def angles_plot(ja: Any, ax: Any, dofs: str | Sequence[str] | None = None, step: int = 1) -> Any:
    """The DoFs ``dofs`` of ``ja`` over time (s), degrees (:data:`TRANSLATIONS` in mm), missing
    frames as gaps; by default the :data:`PLOT_DOFS` joint angles with the widest range, in
    ``ja``'s order (the pelvis's orientation only if no other angle moves; the translations
    only when named).  ``step``: draw every ``step``-th frame only."""
    df = angle_frame(ja)
    if dofs is None:
        rng = (df.max() - df.min()).fillna(0.0)
        angles = [c for c in df.columns if c not in TRANSLATIONS and rng[c] > 0]
        pool = [c for c in angles if not c.startswith("pelvis_")] or angles
        top = set(rng[pool].sort_values(ascending=False, kind="stable").index[:PLOT_DOFS])
        names = [c for c in pool if c in top]
        if not names:
            return _no_data(ax, "no angle moves")
    else:
        names = _names(dofs, list(df.columns), "JointAngles.plot: dofs")
    t = np.asarray(df.index, dtype=float)[::step]
    for c in names:
        ax.plot(t, df[c].to_numpy(dtype=float)[::step], lw=1, label=c)
    mm = [c in TRANSLATIONS for c in names]
    ax.set_ylabel(
        "translation (mm)"
        if all(mm)
        else "angle (°) / translation (mm)"
        if any(mm)
        else "angle (°)"
    )
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7, ncols=2)
    return ax


def angles_html(ja: Any, max_rows: int = 12) -> str:
    """Per DoF that moves: min, max, range, mean and share of missing frames (table, joint
    angles by range, then the translations); the angles that move most over time (plot)."""
    df = angle_frame(ja)
    n = len(df)
    lo, hi, mean, miss = df.min(), df.max(), df.mean(), df.isna().mean()
    rng = (hi - lo).fillna(0.0)
    moving = rng[rng > 0]
    rot = moving.drop([c for c in TRANSLATIONS if c in moving.index])
    order = [*rot.sort_values(ascending=False, kind="stable").index]
    order += [c for c in moving.sort_values(ascending=False, kind="stable").index if c not in rot]
    stats = pd.DataFrame(
        {"min": lo, "max": hi, "range": rng, "mean": mean, "missing (%)": 100 * miss}
    )
    table = (stats.loc[order].round(3) + 0.0).rename_axis("DoF").reset_index()  # no -6.7e-14
    table.insert(1, "unit", ["mm" if c in TRANSLATIONS else "°" for c in order])
    still = len(df.columns) - len(order)
    title = (
        f"<b>JointAngles</b>: {n:,} frames × {len(df.columns)} DoF, {n / ja.rate:.2f} s at "
        f"{ja.rate:g} Hz from {ja.start:g} s; {len(order)} DoF move"
        + (f" ({still} constant or never measured, not listed)" if still else "")
    )
    plot = ""
    if len(rot):
        fig, ax = small_figure(3.6, 1.9)
        _shrink(angles_plot(ja, ax, step=_step(n)))
        plot = img_tag(fig, alt="joint angles")
    return box(title, html_table(table, max_rows=max_rows), plot)


# ------------------------------------------------------------------------ Volume
def orientation_code(direction: Any) -> str:
    """The anatomical directions the voxel axes i, j, k point to, e.g. ``"LPS"`` for the
    identity direction matrix (``"RAS"``: i to the right, j anterior, k superior), each axis
    read from its largest LPS component; ``" (oblique)"`` is added when an axis is more than
    0.1 % off its nearest LPS axis."""
    d = np.asarray(direction, dtype=float)
    big = np.abs(d).argmax(axis=0)
    code = "".join(_TOWARDS[(int(b), int(np.sign(d[b, a])))] for a, b in enumerate(big))
    unit = d / np.linalg.norm(d, axis=0)
    return code + (" (oblique)" if np.abs(unit[big, range(3)]).min() < 0.999 else "")


def _voxel_axes(direction: np.ndarray, plane: str) -> tuple[int, int, int]:
    """The voxel axes closest to the plane's normal, screen horizontal and screen vertical."""
    normal, h, _, _, _ = _PLANES[plane]
    d = np.abs(direction)
    a_n = int(d[normal].argmax())
    rest = [a for a in range(3) if a != a_n]
    a_h = max(rest, key=lambda a: d[h, a])
    return a_n, a_h, rest[0] + rest[1] - a_h


def volume_plot(
    vol: Any,
    ax: Any,
    plane: str = "axial",
    index: int | None = None,
    landmarks: Any = None,
    **imshow_kwargs: Any,
) -> Any:
    """One voxel slice of ``vol`` in LPS mm, with the ``landmarks`` whose nearest slice it is;
    see :meth:`~medpose.imaging.volume.Volume.plot`."""
    if plane not in _PLANES:
        raise InputError(f"Volume.plot: plane {plane!r}; expected one of {list(_PLANES)}")
    normal, h, v, xlabel, ylabel = _PLANES[plane]
    a_n, a_h, a_v = _voxel_axes(np.asarray(vol.direction), plane)
    shape, n = vol.shape, vol.shape[a_n]
    if index is None:
        index = n // 2
    try:
        index = operator.index(index)
    except TypeError:
        raise InputError(
            f"Volume.plot: index {index!r}; expected a whole number of slices"
        ) from None
    if not 0 <= index < n:
        raise InputError(
            f"Volume.plot: index {index} is outside the volume; its {plane} slices (voxel axis "
            f"{'ijk'[a_n]}) are numbered 0 to {n - 1}"
        )
    img = np.take(np.asarray(vol.array), index, axis=a_n)
    if a_h < a_v:  # rows along a_v, columns along a_h
        img = img.T
    ijk = np.zeros((3, 3))
    ijk[:, a_n] = index
    ijk[1, a_h], ijk[2, a_v] = shape[a_h] - 1, shape[a_v] - 1
    corner, far_h, far_v = vol.index_to_lps(ijk)
    spacing, direction = np.asarray(vol.spacing), np.asarray(vol.direction)
    half_h = spacing[a_h] * abs(direction[h, a_h]) / 2
    half_v = spacing[a_v] * abs(direction[v, a_v]) / 2
    (h0, h1), (v0, v1) = (corner[h], far_h[h]), (corner[v], far_v[v])
    if h1 < h0:
        img, h0, h1 = img[:, ::-1], h1, h0
    if v1 < v0:
        img, v0, v1 = img[::-1], v1, v0
    extent = (h0 - half_h, h1 + half_h, v0 - half_v, v1 + half_v)
    kw = {"cmap": "gray", "interpolation": "nearest", **imshow_kwargs}
    img = img.astype(np.uint8) if img.dtype == bool else img
    ax.imshow(img, origin="lower", extent=extent, **kw)
    if landmarks is not None:
        _slice_landmarks(vol, ax, landmarks, a_n, index, (h, v))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(*((extent[3], extent[2]) if plane == "axial" else (extent[2], extent[3])))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    centre = vol.index_to_lps(np.where(np.arange(3) == a_n, index, (np.array(shape) - 1) / 2))
    ax.set_title(
        f"{plane} slice {'ijk'[a_n]} = {index} ({_AXES[normal]} = {centre[normal]:.1f} mm)",
        fontsize=8,
    )
    return ax


def _slice_landmarks(
    vol: Any, ax: Any, landmarks: Any, a_n: int, index: int, hv: tuple[int, int]
) -> None:
    """The landmarks inside the volume whose nearest slice is ``index``, named."""
    if landmarks.frame != "LPS":
        raise FrameMismatch(
            f"Volume.plot: landmarks in frame {landmarks.frame!r}; expected 'LPS', the volume's"
        )
    pos = np.asarray(landmarks.positions, dtype=float)
    ijk = vol.lps_to_index(pos)
    inside = np.all((ijk >= -0.5) & (ijk <= np.array(vol.shape) - 0.5), axis=1)
    near = inside & (np.abs(ijk[:, a_n] - index) <= 0.5)
    pts = pos[near][:, list(hv)]
    ax.scatter(pts[:, 0], pts[:, 1], marker="+", s=60, color="#ff7f0e")
    for name, (x, y) in zip([n for n, k in zip(landmarks.names, near) if k], pts):
        ax.annotate(
            name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color="#ff7f0e"
        )


def volume_html(vol: Any) -> str:
    """Shape, spacing, size, origin, orientation and intensity range (table); the middle axial
    slice (plot)."""
    arr = np.asarray(vol.array)
    spacing, origin = np.asarray(vol.spacing), np.asarray(vol.origin)
    rows = {
        "voxels (i × j × k)": " × ".join(str(s) for s in vol.shape),
        "type": str(arr.dtype),
        "spacing (mm)": " × ".join(f"{s:.4g}" for s in spacing),
        "size (mm)": " × ".join(f"{s * d:.4g}" for s, d in zip(vol.shape, spacing)),
        "origin (LPS, mm)": "(" + ", ".join(f"{o:.4g}" for o in origin) + ")",
        "orientation": orientation_code(vol.direction),
    }
    if arr.dtype.kind == "f":
        rows["NaN voxels"] = f"{int(np.isnan(arr).sum()):,}"
    if arr.size:  # NaN left out
        lo, hi = float(np.fmin.reduce(arr, axis=None)), float(np.fmax.reduce(arr, axis=None))
        rows["intensity"] = f"{lo:.6g} to {hi:.6g}" if lo == lo else "none (all NaN)"
    table = pd.DataFrame({"property": list(rows), "value": list(rows.values())})
    title = f"<b>Volume</b>: {' × '.join(str(s) for s in vol.shape)} voxels, LPS mm"
    plot = ""
    if np.asarray(vol.array).size:
        fig, ax = small_figure(2.6, 2.6)
        _shrink(volume_plot(vol, ax))
        plot = img_tag(fig, alt="middle axial slice")
    return box(title, html_table(table), plot)
