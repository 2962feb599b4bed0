"""The figures of a clinical report, each usable on its own and returning a matplotlib Figure.

* :func:`angle_curves`: joint angles over time, left and right, repetitions shaded, normal range;
* :func:`left_right`: the average repetition of the left against the right side;
* :func:`repetition_overlay`: every repetition, time-normalised, against a template;
* :func:`skeleton_3d`: the 3D keypoints at chosen frames;
* :func:`tre_map`: predicted target registration error over the plane of the fiducials;
* :func:`reprojection_errors`: reprojection error per camera;
* :func:`cohort_distributions`: a cohort's distribution of metrics, one patient marked;
* :func:`progress`: a metric over sessions with its minimal detectable change (MDC95).

The figures are plain :class:`matplotlib.figure.Figure` objects, not registered with pyplot
(no display, no network; saving uses the Agg renderer); they take plain tables
(pandas) and medpose's results, and draw angles in degrees, distances in mm, time in s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from .labels import joint_label, metric_label, unit_label

__all__ = [
    "SIDE_COLOURS",
    "angle_frame",
    "angle_curves",
    "left_right",
    "repetition_overlay",
    "skeleton_3d",
    "tre_map",
    "reprojection_errors",
    "cohort_distributions",
    "progress",
]

#: Colours of the two sides in every figure (colour-blind safe pair).
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d95f02", "": "#333333"}
_SUFFIX = {"left": "_l", "right": "_r"}
#: Segments drawn by :func:`skeleton_3d` (medpose keypoint names; pairs absent are skipped).
BONES = (
    ("head_top", "neck"),
    ("nose", "neck"),
    ("neck", "pelvis"),
    ("neck", "shoulder_l"),
    ("neck", "shoulder_r"),
    ("shoulder_l", "elbow_l"),
    ("shoulder_r", "elbow_r"),
    ("elbow_l", "wrist_l"),
    ("elbow_r", "wrist_r"),
    ("pelvis", "hip_l"),
    ("pelvis", "hip_r"),
    ("hip_l", "knee_l"),
    ("hip_r", "knee_r"),
    ("knee_l", "ankle_l"),
    ("knee_r", "ankle_r"),
    ("ankle_l", "heel_l"),
    ("ankle_r", "heel_r"),
    ("ankle_l", "big_toe_l"),
    ("ankle_r", "big_toe_r"),
    ("shoulder_l", "shoulder_r"),
    ("hip_l", "hip_r"),
    ("shoulder_l", "hip_l"),
    ("shoulder_r", "hip_r"),
)


def _figure(width: float = 7.0, height: float = 3.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def angle_frame(angles: Any) -> pd.DataFrame:
    """Joint angles as a DataFrame indexed by time (s), one column per angle (degrees).

    Accepts a DataFrame (index in seconds, or ``attrs["rate_hz"]`` for a frame index), a
    :class:`~medpose.kinematics.fit.Fit` (its ``angles``) or :class:`~medpose.data.JointAngles`.
    """
    if isinstance(angles, pd.DataFrame):
        df = angles
        rate = df.attrs.get("rate_hz")
        if rate and not (df.index.name == "time_s" or pd.api.types.is_float_dtype(df.index)):
            df = df.set_axis(np.arange(len(df)) / float(rate), axis=0)
        return df
    frame = getattr(angles, "angles", None)
    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(angles, "names") and hasattr(angles, "values") and hasattr(angles, "rate"):
        values = np.asarray(angles.values, dtype=float)
        t = float(getattr(angles, "start", 0.0)) + np.arange(len(values)) / float(angles.rate)
        return pd.DataFrame(values, index=pd.Index(t, name="time_s"), columns=list(angles.names))
    raise InputError(
        f"angles: found {type(angles).__name__}; expected a DataFrame of joint angles in "
        "degrees (time index in s), a Fit or JointAngles"
    )


def _columns(df: pd.DataFrame, joint: str, sides: Sequence[str]) -> dict[str, str]:
    """Side -> column of ``joint`` (``knee_flexion`` -> ``knee_flexion_l``); an unsided
    joint (``lumbar_flexion``) is side ``""``."""
    found = {s: joint + _SUFFIX[s] for s in sides if joint + _SUFFIX.get(s, "?") in df.columns}
    if not found and joint in df.columns:
        found = {"": joint}
    if not found:
        raise InputError(
            f"angles: no column for joint {joint!r} (sides {list(sides)}); columns: "
            f"{list(df.columns)}"
        )
    return found


def _norm_band(ax: Any, norm: Mapping[str, Any] | None) -> None:
    """Draw a normal range (``lower``..``upper``) as a band, or its mean as a dashed line."""
    if not norm:
        return
    lo, hi, mean = (float(norm.get(k, np.nan)) for k in ("lower", "upper", "mean"))
    label = str(norm.get("label", "normal range"))
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axhspan(lo, hi, color="#2ca02c", alpha=0.12, label=label)
    elif np.isfinite(mean):
        ax.axhline(mean, color="#2ca02c", ls="--", lw=1.2, label=label)


def _windows(repetitions: pd.DataFrame | None, side: str) -> list[tuple[float, float]]:
    if repetitions is None or repetitions.empty:
        return []
    reps = repetitions
    if side and "side" in reps.columns:
        reps = reps[reps["side"] == side]
    return [(float(a), float(b)) for a, b in zip(reps["start_s"], reps["end_s"])]


def angle_curves(
    angles: Any,
    joints: Sequence[str],
    *,
    repetitions: pd.DataFrame | None = None,
    sides: Sequence[str] = ("left", "right"),
    norms: Mapping[str, Mapping[str, Any]] | None = None,
) -> Figure:
    """Joint angles over time, one panel per joint, left and right in their colours.

    Parameters
    ----------
    angles : DataFrame, Fit or JointAngles
        See :func:`angle_frame`; columns ``<joint>_l`` / ``<joint>_r`` (or ``<joint>``).
    joints : sequence of str
        Joints without side (``"knee_flexion"``).
    repetitions : DataFrame, optional
        ``start_s``, ``end_s`` (and ``side``): each repetition is shaded in its side's colour.
    norms : mapping, optional
        Joint -> ``{"lower", "upper"}`` (a band) or ``{"mean"}`` (a dashed line), degrees,
        with an optional ``label``.
    """
    df = angle_frame(angles)
    if not joints:
        raise InputError("angle_curves: joints is empty; expected at least one joint name")
    fig = _figure(7.0, 2.3 * len(joints) + 0.4)
    axes = fig.subplots(len(joints), 1, sharex=True, squeeze=False)[:, 0]
    t = np.asarray(df.index, dtype=float)
    for ax, joint in zip(axes, joints):
        cols = _columns(df, joint, sides)
        for side, col in cols.items():
            ax.plot(
                t, df[col].to_numpy(float), color=SIDE_COLOURS[side], lw=1.4, label=side or "angle"
            )
        # every side's repetitions (a one-arm trial has them on one side only), each once
        spans = sorted({w for side in cols for w in _windows(repetitions, side)})
        for a, b in spans:
            ax.axvspan(a, b, color="#999999", alpha=0.15, lw=0, label="repetition")
        if all(np.isnan(df[c].to_numpy(float)).all() for c in cols.values()):
            ax.text(0.5, 0.5, "not measured (no value in any frame)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=8, color="0.4")  # fmt: skip
            ax.set_yticks([])
        else:
            _norm_band(ax, (norms or {}).get(joint))
        ax.set_ylabel(f"{joint_label(joint)} (°)")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    labels: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(lab, h)
    fig.legend(list(labels.values()), list(labels), loc="outside upper center",
               ncols=min(len(labels), 5), fontsize=8)  # fmt: skip
    return fig


def _normalised(
    signal: np.ndarray, t: np.ndarray, windows: Sequence[tuple[float, float]], n: int = 101
) -> np.ndarray:
    """Each window resampled to ``n`` points over 0-100 % of the repetition, (R, n)."""
    out = []
    for a, b in windows:
        sel = (t >= a) & (t <= b) & np.isfinite(signal)
        if sel.sum() < 2:
            continue
        u = (t[sel] - a) / max(b - a, 1e-12)
        out.append(np.interp(np.linspace(0.0, 1.0, n), u, signal[sel]))
    return np.array(out).reshape(-1, n)


def left_right(
    angles: Any, joints: Sequence[str], repetitions: pd.DataFrame, *, n: int = 101
) -> Figure:
    """The average repetition (mean ± 1 SD, 0-100 % of the repetition) of each side.

    One panel per joint; each side's repetitions are taken from ``repetitions`` rows of
    that side (``start_s``, ``end_s``, ``side``).
    """
    df = angle_frame(angles)
    fig = _figure(3.2 * len(joints) + 0.4, 2.8)
    axes = fig.subplots(1, len(joints), squeeze=False)[0]
    t = np.asarray(df.index, dtype=float)
    pct = np.linspace(0.0, 100.0, n)
    for ax, joint in zip(axes, joints):
        drawn = 0
        for side, col in _columns(df, joint, ("left", "right")).items():
            curves = _normalised(df[col].to_numpy(float), t, _windows(repetitions, side), n)
            if not len(curves):
                continue
            m, s = curves.mean(axis=0), curves.std(axis=0)
            colour = SIDE_COLOURS[side]
            ax.plot(pct, m, color=colour, lw=1.6, label=f"{side} (n={len(curves)})")
            ax.fill_between(pct, m - s, m + s, color=colour, alpha=0.2)
            drawn += 1
        ax.set_title(joint_label(joint), fontsize=9)
        ax.set_xlabel("repetition (%)")
        ax.set_ylabel("angle (°)")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
        else:  # e.g. an angle the keypoints do not determine (NaN in every frame)
            ax.text(0.5, 0.5, "not measured in the repetitions", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="0.4")  # fmt: skip
    return fig


def repetition_overlay(
    angles: Any,
    joint: str,
    repetitions: pd.DataFrame,
    *,
    side: str = "left",
    template: np.ndarray | None = None,
    n: int = 101,
) -> Figure:
    """Every repetition of one joint and side, time-normalised, against a template.

    ``template`` (degrees, any length, resampled to ``n`` points) defaults to the mean of the
    repetitions shown.
    """
    df = angle_frame(angles)
    cols = _columns(df, joint, (side,))
    col = cols.get(side) or cols[""]
    t = np.asarray(df.index, dtype=float)
    curves = _normalised(df[col].to_numpy(float), t, _windows(repetitions, side), n)
    if not len(curves):
        raise InputError(f"repetition_overlay: no repetition of side {side!r} in the table")
    pct = np.linspace(0.0, 100.0, n)
    fig = _figure(4.2, 3.0)
    ax = fig.add_subplot()
    for k, c in enumerate(curves):
        ax.plot(pct, c, color=SIDE_COLOURS.get(side, "#333"), alpha=0.5, lw=1, label=f"#{k + 1}")
    if template is None:
        tpl, name = curves.mean(axis=0), "mean repetition"
    else:
        tpl = np.asarray(template, dtype=float)
        tpl, name = np.interp(pct, np.linspace(0, 100, len(tpl)), tpl), "template"
    ax.plot(pct, tpl, color="black", lw=2.2, ls="--", label=name)
    ax.set_title(f"{joint_label(joint)}, {side}", fontsize=9)
    ax.set_xlabel("repetition (%)")
    ax.set_ylabel("angle (°)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    return fig


def skeleton_3d(keypoints: Any, frames: Sequence[int] = (0,)) -> Figure:
    """The 3D keypoints (mm) of a :class:`~medpose.data.KeypointSequence` at ``frames``,
    one panel per frame, segments between the keypoints present."""
    pos = np.asarray(keypoints.positions, dtype=float)
    names = list(keypoints.names)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise InputError(f"skeleton_3d: positions of shape {pos.shape}; expected (T, K, 3) mm")
    bad = [f for f in frames if not -len(pos) <= f < len(pos)]
    if bad:
        raise InputError(f"skeleton_3d: frames {bad} outside the {len(pos)} frames")
    idx = {n: i for i, n in enumerate(names)}
    fig = _figure(3.0 * len(frames) + 0.4, 3.4)
    for k, f in enumerate(frames):
        ax: Any = fig.add_subplot(1, len(frames), k + 1, projection="3d")
        p = pos[f]
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=6, color="#555555")
        for a, b in BONES:
            if a in idx and b in idx:
                seg = p[[idx[a], idx[b]]]
                side = "left" if a.endswith("_l") else "right" if a.endswith("_r") else ""
                ax.plot(*seg.T, color=SIDE_COLOURS[side], lw=2)
        ok = np.isfinite(p).all(axis=1)
        if ok.any():
            centre = (p[ok].max(axis=0) + p[ok].min(axis=0)) / 2
            half = max(float(np.ptp(p[ok], axis=0).max()) / 2, 1.0)
            for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
                setter(c - half, c + half)
        t = float(keypoints.start) + f / float(keypoints.rate)
        ax.set_title(f"frame {f} ({t:.2f} s)", fontsize=9)
        ax.set_xlabel("x (mm)", fontsize=7)
        ax.set_ylabel("y (mm)", fontsize=7)
        ax.set_zlabel("z (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
    return fig


def tre_map(
    registration: Any,
    targets: Any = None,
    *,
    fle: Any = None,
    grid: int = 60,
    margin: float = 0.5,
) -> Figure:
    """Predicted target registration error (mm) over the plane of the fiducials.

    The plane is spanned by the two principal axes of the fiducials (moving frame, where
    targets are planned); the map is :meth:`Registration.predict_tre` on a ``grid`` x ``grid``
    lattice extending ``margin`` times the fiducials' extent beyond them.  Fiducials are drawn
    with their residual (mm), targets (Landmarks in the moving frame) with their predicted TRE.
    """
    moving = np.asarray(registration.moving, dtype=float)
    inl = np.asarray(registration.inliers, dtype=bool)
    centre = moving[inl].mean(axis=0)
    _, _, vt = np.linalg.svd(moving[inl] - centre)
    uv = (moving - centre) @ vt[:2].T
    tuv = np.zeros((0, 2))
    if targets is not None:
        tp = np.atleast_2d(np.asarray(getattr(targets, "positions", targets), dtype=float))
        tuv = (tp - centre) @ vt[:2].T
    both = np.vstack([uv, tuv])
    lo, hi = both.min(axis=0), both.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1.0)
    gu = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid)
    gv = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
    uu, vv = np.meshgrid(gu, gv)
    pts = centre + uu.ravel()[:, None] * vt[0] + vv.ravel()[:, None] * vt[1]
    tre = np.asarray(registration.predict_tre(pts, fle=fle), dtype=float).reshape(uu.shape)
    fig = _figure(5.2, 4.2)
    ax = fig.add_subplot()
    cs = ax.contourf(uu, vv, tre, levels=12, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="predicted TRE (mm)")
    res = np.asarray(registration.residuals, dtype=float)
    ax.scatter(uv[inl, 0], uv[inl, 1], c="white", edgecolors="black", s=40, label="fiducial")
    if (~inl).any():
        ax.scatter(uv[~inl, 0], uv[~inl, 1], marker="x", c="red", s=50, label="outlier")
    box = {"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.45, "lw": 0}
    for (u, v), name, r in zip(uv, registration.names, res):
        ax.annotate(f"{name}\n{r:.2f} mm", (u, v), fontsize=6, color="white", bbox=box,
                    xytext=(4, 4), textcoords="offset points")  # fmt: skip
    if targets is not None:
        values = registration.predict_tre(targets, fle=fle)
        labels = list(getattr(values, "index", range(len(tuv))))
        ax.scatter(tuv[:, 0], tuv[:, 1], marker="*", c="#ff7f0e", s=90, label="target")
        for (u, v), name, e in zip(tuv, labels, np.atleast_1d(np.asarray(values, float))):
            ax.annotate(f"{name}\n{e:.2f} mm", (u, v), fontsize=7, color="#ffb347", bbox=box,
                        xytext=(5, -14), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("first principal axis of the fiducials (mm)")
    ax.set_ylabel("second principal axis (mm)")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"FRE {registration.fre:.2f} mm, {registration.n_fiducials} fiducials", fontsize=9)
    return fig


def reprojection_errors(result: Any, *, min_visibility: float = 0.5) -> Figure:
    """Reprojection error (pixels) per camera of a
    :class:`~medpose.camera.triangulation.TriangulationResult`: a box per camera of the
    observations used, the median printed above it."""
    table = result.error_table(min_visibility)
    cams = list(result.camera_names)
    data = [table.loc[(table["camera"] == c) & table["used"], "error_px"].to_numpy() for c in cams]
    fig = _figure(1.1 * len(cams) + 2.0, 3.0)
    ax = fig.add_subplot()
    ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(cams) + 1), cams, rotation=30, fontsize=8)
    for k, d in enumerate(data, start=1):
        if len(d):
            ax.annotate(f"{np.median(d):.1f}", (k, float(np.percentile(d, 75))), fontsize=7,
                        ha="center", xytext=(0, 4), textcoords="offset points")  # fmt: skip
    ax.set_ylabel("reprojection error (pixels)")
    ax.set_title("reprojection error per camera (observations used)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return fig


def cohort_distributions(
    cohort: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    highlight: Mapping[str, float] | None = None,
) -> Figure:
    """Histograms of cohort metric columns (:meth:`Study.cohort`), one panel per column.

    ``highlight``: column -> one patient's value, drawn as a vertical line.
    """
    meta = {"patient", "session", "date", "run_id", "status"}
    cols = list(columns) if columns is not None else [c for c in cohort.columns if c not in meta]
    cols = [c for c in cols if pd.api.types.is_numeric_dtype(cohort[c])]
    if not cols:
        raise InputError("cohort_distributions: no numeric metric column to draw")
    ncol = min(3, len(cols))
    nrow = -(-len(cols) // ncol)
    fig = _figure(3.0 * ncol + 0.4, 2.5 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, c in zip(axes, cols):
        v = cohort[c].to_numpy(float)
        v = v[np.isfinite(v)]
        ax.hist(v, bins=min(20, max(5, len(v) // 3)), color="#8da0cb", edgecolor="white")
        if highlight and c in highlight:
            ax.axvline(float(highlight[c]), color="#d62728", lw=2, label="this patient")
            ax.legend(fontsize=7)
        ax.set_title(f"{c} (n={len(v)})", fontsize=8)
        ax.set_ylabel("sessions")
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    return fig


def progress(
    values: pd.DataFrame, *, metric: str, joint: Any = None, unit: Any = None, mdc95: float
) -> Figure:
    """One metric across sessions with its minimal detectable change.

    Parameters
    ----------
    values : DataFrame
        One row per session and side: ``date``, ``side``, ``value`` and optionally ``ci_low``,
        ``ci_high`` (the summary rows of :meth:`Study.progress` for one metric).
    metric : str
        The metric key, for the title (``rom_knee_flexion``).
    mdc95 : float
        Minimal detectable change (95 %), in the metric's unit: a band of ± MDC95 is drawn
        around each side's first session; a change outside it exceeds measurement error.
    """
    fig = _figure(5.0, 2.8)
    ax = fig.add_subplot()
    dates = pd.to_datetime(values["date"])
    order = sorted(dates.unique())
    x_of = {d: k for k, d in enumerate(order)}
    for side, grp in values.assign(_d=dates).groupby("side", dropna=False, sort=True):
        s = side if isinstance(side, str) and side in SIDE_COLOURS else ""
        g = grp.sort_values("_d")
        x = np.array([x_of[d] for d in g["_d"]], dtype=float)
        y = g["value"].to_numpy(float)
        colour = SIDE_COLOURS[s]
        if {"ci_low", "ci_high"} <= set(g.columns):
            lo = np.clip(y - g["ci_low"].to_numpy(float), 0, None)
            hi = np.clip(g["ci_high"].to_numpy(float) - y, 0, None)
            err = np.nan_to_num(np.vstack([lo, hi]))
            ax.errorbar(x, y, yerr=err, color=colour, marker="o", capsize=3, label=s or "value")
        else:
            ax.plot(x, y, color=colour, marker="o", label=s or "value")
        if np.isfinite(mdc95) and len(y) and np.isfinite(y[0]):
            ax.fill_between([x[0], max(x[-1], x[0] + 1e-9)], y[0] - mdc95, y[0] + mdc95,
                            color=colour, alpha=0.12, label=f"{s} first ± MDC95".strip())  # fmt: skip
    ax.set_xticks(range(len(order)), [pd.Timestamp(d).strftime("%Y-%m-%d") for d in order],
                  fontsize=7)  # fmt: skip
    u = unit_label(unit)
    ax.set_ylabel(f"value ({u})")
    ax.set_title(metric_label(metric, joint), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
