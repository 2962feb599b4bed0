"""How medpose's results show in Jupyter: a compact table and a small inline plot.

The result classes (``Registration``, ``TriangulationResult``, ``Fit``, ``Assessment``,
``Study``) call these functions from their ``__repr__`` / ``_repr_html_``; the functions read
the results' public attributes only (nothing here imports those classes).  Plots are small
PNGs embedded as base64 (no file, no network).
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .labels import flag_label, format_value, metric_label, repetition_counts, side_label

__all__ = [
    "figure_png",
    "figure_svg",
    "img_tag",
    "html_table",
    "small_figure",
    "box",
    "registration_repr",
    "registration_html",
    "gate_repr",
    "gate_html",
    "surface_fit_html",
    "metric_result_html",
    "triangulation_repr",
    "triangulation_html",
    "fit_repr",
    "fit_html",
    "assessment_html",
    "study_html",
]

_STYLE = "font-family:sans-serif;font-size:12px"


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML header, fonts as paths)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def img_tag(fig: Figure, dpi: int = 110, alt: str = "plot", width: str | None = None) -> str:
    """An ``<img>`` element holding the figure as a base64 PNG."""
    data = base64.b64encode(figure_png(fig, dpi)).decode("ascii")
    size = f' style="width:{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{size}>'


def html_table(df: pd.DataFrame, max_rows: int = 20) -> str:
    """A compact HTML table (values escaped, 4 significant digits, NaN shown as ``–``)."""
    more = len(df) - max_rows
    body = df.head(max_rows).to_html(index=False, float_format="%.4g", na_rep="–", border=0)
    return body + (f"<div><i>... {more} more rows</i></div>" if more > 0 else "")


def small_figure(width: float = 3.2, height: float = 1.6) -> tuple[Figure, Any]:
    """A small figure (inches) and its one axis, small tick labels: the plot of an HTML repr."""
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.tick_params(labelsize=6)
    return fig, ax


def box(title: str, table: str, plot: str = "") -> str:
    """An HTML repr: ``title`` above ``table`` and ``plot`` side by side (HTML given escaped)."""
    return (
        f'<div style="{_STYLE}"><div style="margin-bottom:4px">{title}</div>'
        f'<div style="display:flex;gap:12px;align-items:flex-start">'
        f"<div>{table}</div><div>{plot}</div></div></div>"
    )


# ------------------------------------------------------------------------ Registration
def registration_repr(reg: Any) -> str:
    """``Registration(LPS -> camera, 6 fiducials, FRE 0.512 mm, max residual 0.9 mm (F3),
    outliers: none)``."""
    res = reg.residuals
    worst = f", max residual {res.max():.3f} mm ({res.idxmax()})" if len(res) else ""
    outl = ", ".join(str(o) for o in reg.outliers) or "none"
    scale = f", scale {reg.transform.scale:.4f}" if reg.scaled else ""
    return (
        f"Registration({reg.transform.source}->{reg.transform.target}, "
        f"{reg.n_fiducials} fiducials, FRE={reg.fre:.3f} mm{worst}{scale}, outliers: {outl})"
    )


def registration_html(reg: Any) -> str:
    """Residual per fiducial (table and bar plot), FRE and estimated FLE."""
    df = reg.to_dataframe()
    fig, ax = small_figure()
    reg.plot(ax=ax)
    ax.yaxis.label.set_fontsize(7)
    ax.legend(fontsize=6)
    e = html.escape
    n = reg.n_fiducials
    fle = (
        f", estimated FLE {reg.estimated_fle():.3f} mm" if n * 3 > (7 if reg.scaled else 6) else ""
    )
    title = (
        f"<b>Registration</b> {e(str(reg.transform.source))} → {e(str(reg.transform.target))}: "
        f"{n} fiducials, FRE <b>{reg.fre:.3f} mm</b>{fle}; outliers: "
        f"{e(', '.join(str(o) for o in reg.outliers) or 'none')}"
    )
    return box(title, html_table(df), img_tag(fig, alt="residual per fiducial"))


def _gate_line(row: Any) -> str:
    what = f"{row.criterion} {row.target}".strip()
    unit = f" {row.unit}" if row.unit else ""
    value = f"{row.value:.2f}" if row.unit else f"{row.value:g}"
    if math.isnan(row.limit):
        return f"{what} {value}{unit}"
    low = row.criterion == "fiducials in the fit"  # a minimum; the others are maxima
    sign = (">=" if low else "<=") if row.passed else ("<" if low else ">")
    mark = "" if row.passed else " FAILED"
    return f"{what} {value}{unit} {sign} {row.limit:g}{unit}{mark}"


def gate_repr(gate: Any) -> str:
    """``GateResult(PASS: FRE 0.25 mm <= 2 mm, predicted TRE hip_r 0.61 mm <= 3 mm, ...)``."""
    lines = [_gate_line(r) for r in gate.to_dataframe().itertuples()]
    return f"GateResult({'PASS' if gate.passed else 'FAIL'}: {', '.join(lines)})"


def gate_html(gate: Any) -> str:
    """The criteria with their values and limits (table), FRE and TRE against their limits
    (bars), and the reasons of a failure."""
    df = gate.to_dataframe()
    verdict = "PASS" if gate.passed else "FAIL"
    colour = "#2ca02c" if gate.passed else "#d62728"
    why = "".join(f"<li>{html.escape(r)}</li>" for r in gate.reasons)
    title = f'<b>Quality gate</b>: <b style="color:{colour}">{verdict}</b>' + (
        f"<ul style='margin:2px 0'>{why}</ul>" if why else ""
    )
    plot = ""
    if (df["unit"] == "mm").any():
        fig, ax = small_figure(3.2, 0.3 * int((df["unit"] == "mm").sum()) + 0.8)
        gate.plot(ax=ax)
        ax.title.set_fontsize(7)
        plot = img_tag(fig, alt="quality gate")
    return box(title, html_table(df), plot)


def surface_fit_html(fit: Any) -> str:
    """The refinement's outcome (table) and its closest-point distances (histogram)."""
    d = np.asarray(fit.distances, dtype=float)
    keep = np.asarray(fit.inliers, dtype=bool)
    kept = d[keep & np.isfinite(d)]
    df = pd.DataFrame(
        {
            "RMS (mm)": [fit.rms],
            "pairs kept": [f"{int(keep.sum())} / {len(keep)}"],
            "95th pct kept (mm)": [float(np.percentile(kept, 95)) if kept.size else math.nan],
            "iterations": [fit.iterations],
            "converged": [bool(fit.converged)],
        }
    )
    fig, ax = small_figure()
    fit.plot(ax=ax)
    ax.legend(fontsize=6)
    e = html.escape
    t = fit.transform
    title = f"<b>Surface refinement</b> {e(str(t.source))} → {e(str(t.target))}"
    return box(title, html_table(df), img_tag(fig, alt="closest-point distances"))


def metric_result_html(m: Any) -> str:
    """One metric's values per repetition (table, with the reason for each missing value) and
    their plot."""
    df = m.to_frame()
    title = f"<b>{html.escape(metric_label(m.name))}</b> ({html.escape(str(m.unit))})"
    plot = ""
    if m.value.size > 1:
        fig, ax = small_figure()
        m.plot(ax=ax)
        ax.legend(fontsize=6)
        ax.yaxis.label.set_fontsize(7)
        plot = img_tag(fig, alt=m.name)
    return box(title, html_table(df), plot)


# ------------------------------------------------------------------------ triangulation
def _camera_table(res: Any) -> pd.DataFrame:
    err = np.asarray(res.errors, dtype=float)
    used = np.asarray(res.used, dtype=bool)
    rows = []
    for c, name in enumerate(res.camera_names):
        e = err[..., c][used[..., c] & np.isfinite(err[..., c])]
        rows.append(
            {
                "camera": name,
                "points used": int(used[..., c].sum()),
                "median error (px)": float(np.median(e)) if e.size else math.nan,
                "95th pct (px)": float(np.percentile(e, 95)) if e.size else math.nan,
            }
        )
    return pd.DataFrame(rows)


def triangulation_repr(res: Any) -> str:
    """``TriangulationResult(300 frames x 26 keypoints, 4 cameras, 97.1 % triangulated,
    median reprojection error 1.84 px, 3 left/right swaps repaired)``."""
    seq = res.sequence
    t, k = np.asarray(seq.positions).shape[:2]
    ok = np.isfinite(np.asarray(seq.positions)).all(axis=-1)
    rep = np.asarray(res.reprojection_error, dtype=float)[ok]
    med = f"{np.median(rep):.2f} px" if rep.size else "n/a"
    return (
        f"TriangulationResult({t} frames x {k} keypoints, {len(res.camera_names)} cameras "
        f"({', '.join(res.camera_names)}), {100 * ok.mean() if ok.size else 0:.1f} % "
        f"triangulated, median reprojection error {med}, {len(res.swaps)} left/right swaps "
        f"repaired, {seq.rate:g} Hz)"
    )


def triangulation_html(res: Any) -> str:
    """Per camera: points used and reprojection error; plot: error over time."""
    rep = np.asarray(res.reprojection_error, dtype=float)
    fig, ax = small_figure()
    t = float(res.sequence.start) + np.arange(len(rep)) / float(res.sequence.rate)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(np.isfinite(rep), rep, np.nan), axis=1)
    ax.plot(t, med, lw=1, color="#4c72b0")
    ax.set_xlabel("time (s)", fontsize=7)
    ax.set_ylabel("median error (px)", fontsize=7)
    title = html.escape(triangulation_repr(res))
    return box(title, html_table(_camera_table(res)), img_tag(fig, alt="reprojection error"))


# ------------------------------------------------------------------------ Fit
def fit_repr(fit: Any) -> str:
    """``Fit(300 frames at 30 Hz, 300 fitted, 298 converged, 35 DoF (12 observable),
    median residual 4.1 mm, 3 frames at a joint limit)``."""
    n = int(np.asarray(fit.q).shape[0])
    parts = [
        f"{n} frames at {fit.rate:g} Hz",
        f"{int(np.sum(fit.valid))} fitted",
        f"{int(np.sum(fit.converged_mask))} converged",
        f"{len(fit.dof_names)} DoF ({int(np.sum(fit.observable))} observable)",
    ]
    if fit.fitted_ is not None and fit.residual_ is not None:
        r = np.asarray(fit.residual_, dtype=float)
        if np.isfinite(r).any():
            parts.append(f"median residual {np.nanmedian(r):.2f} mm")
            if len(fit.poor_frames):
                parts.append(f"{len(fit.poor_frames)} frames fitted poorly (Fit.poor_frames)")
    parts.append(f"{int(np.asarray(fit.limit_active).any(axis=1).sum())} frames at a joint limit")
    patient = getattr(fit, "patient", None)
    tried = getattr(fit, "calibration", None)
    if patient is not None and getattr(patient, "keypoint_offsets", None):
        parts.append(f"skeleton from {patient.source}")  # a calibration (no patient id)
    if tried is not None and np.isfinite(tried.gain):
        used = "used" if tried is patient else "not used"
        parts.append(
            f"calibration {used}: RMS residual {tried.rms_prior_mm:.1f} -> "
            f"{tried.rms_calibrated_mm:.1f} mm ({100 * tried.gain:.0f} % lower)"
        )
    return f"Fit({', '.join(parts)})"


def fit_html(fit: Any, max_columns: int = 6) -> str:
    """Range per joint angle (table) and the angles that move most over time (plot)."""
    ang = fit.angles
    moving = ang.dropna(axis=1, how="all")
    rng = (moving.max() - moving.min()).sort_values(ascending=False)
    table = pd.DataFrame(
        {
            "joint angle": rng.index,
            "min (°)": moving.min()[rng.index].to_numpy(),
            "max (°)": moving.max()[rng.index].to_numpy(),
            "frames at limit": fit.at_limit[rng.index].sum().to_numpy(),
        }
    )
    fig, ax = small_figure(3.6, 1.9)
    for col in rng.index[:max_columns]:
        ax.plot(moving.index, moving[col], lw=1, label=col)
    ax.set_xlabel("time (s)", fontsize=7)
    ax.set_ylabel("angle (°)", fontsize=7)
    if len(rng):
        ax.legend(fontsize=5, ncols=2)
    return box(
        f"<b>{html.escape(fit_repr(fit))}</b>",
        html_table(table, max_rows=12),
        img_tag(fig, alt="joint angles"),
    )


# ------------------------------------------------------------------------ Assessment
def _readable_summary(a: Any) -> pd.DataFrame:
    s = a.summary()
    scores = a.scores
    flags: dict[tuple[str, str], str] = {}
    if not scores.empty:
        for row in scores.itertuples(index=False):
            flags[(row.metric, str(row.side))] = flag_label(row.flag)
    return pd.DataFrame(
        {
            "measure": [metric_label(m, j) for m, j in zip(s["metric"], s["joint"])],
            "side": [side_label(x) for x in s["side"]],
            "value": [format_value(v, u) for v, u in zip(s["value"], s["unit"])],
            "95 % CI": [
                f"{format_value(lo, u)} to {format_value(hi, u)}"
                if math.isfinite(lo) and math.isfinite(hi)
                else "–"
                for lo, hi, u in zip(s["ci_low"], s["ci_high"], s["unit"])
            ],
            "norm": [flags.get((m, str(x)), "") for m, x in zip(s["metric"], s["side"])],
            "key": s["metric"],
            "note": s["reason"].fillna(""),
        }
    )


def assessment_html(a: Any) -> str:
    """Score, the summary metrics in words with units and flags (table), and the percent of
    normal of each scored metric (plot)."""
    e = html.escape
    score = "n/a" if math.isnan(a.score) else f"{a.score:.1f}"
    reps = repetition_counts(a.repetitions)
    head = (
        f"<b>{e(a.protocol)}</b>, trial {e(a.trial)}, side(s) {e(', '.join(a.sides))}, "
        f"repetitions {e(reps)}; score <b>{e(score)}</b>/100"
        + (f" <i>({e(a.score_reason)})</i>" if a.score_reason else "")
    )
    head += "".join(f"<br>{e(line)}" for line in a.missing_repetitions())
    plot = ""
    n = len(_scored(a))
    if n:
        fig, ax = small_figure(3.4, 0.35 * n + 0.7)
        percent_of_normal(a, ax)
        plot = img_tag(fig, alt="percent of normal")
    return box(head, html_table(_readable_summary(a), max_rows=40), plot)


def _scored(a: Any) -> pd.DataFrame:
    sc = a.scores
    return sc[np.isfinite(sc["percent"].to_numpy(float))] if len(sc) else sc


def percent_of_normal(a: Any, ax: Any) -> Any:
    """The percent of normal of each scored metric of an Assessment as bars on ``ax``, the
    normal average (100 %) dashed; without a scored metric, why (the score's reason)."""
    sc = _scored(a)
    if not len(sc):
        ax.text(
            0.5,
            0.5,
            f"no scored metric\n{a.score_reason}",
            ha="center",
            va="center",
            wrap=True,
            fontsize=8,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return ax
    labels = [f"{metric_label(m, j)} ({x})" for m, j, x in zip(sc.metric, sc.joint, sc.side)]
    ax.barh(labels[::-1], sc["percent"].to_numpy(float)[::-1], color="#4c72b0")
    ax.axvline(100, color="black", lw=1, ls="--")
    ax.set_xlabel("% of normal average", fontsize=7)
    return ax


# ------------------------------------------------------------------------ Study
def study_html(head: str, summary: pd.DataFrame, runs: pd.DataFrame | None) -> str:
    """The counts per protocol (table) and runs per month (plot); ``head`` is escaped HTML.

    ``runs`` holds ``date`` and ``protocol`` only: no patient id is drawn."""
    plot = ""
    if runs is not None and len(runs):
        month = pd.to_datetime(runs["date"]).dt.to_period("M").astype(str)
        counts = pd.crosstab(month, runs["protocol"])
        fig, ax = small_figure()
        bottom = np.zeros(len(counts))
        for col in counts.columns:
            ax.bar(counts.index, counts[col], bottom=bottom, label=str(col))
            bottom += counts[col].to_numpy()
        ax.set_ylabel("runs", fontsize=7)
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=5)
        plot = img_tag(fig, alt="runs per month")
    return box(head, html_table(summary), plot)
