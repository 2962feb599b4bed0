"""Triangulation and temporal benchmark: speed, accuracy against known truth, filter lag, DTW speed.

Run: ``python benchmarks/temporal.py [--quick]``.  Prints the tables and writes them to
``benchmarks/RESULTS.md`` between the ``temporal`` markers.

* Triangulation speed: 4 synthetic cameras (``medpose.synthetic.make_rig``), 33 MediaPipe
  keypoints of a synthetic squat, frames per second of the consensus triangulation alone and
  of the whole ``triangulate`` (with the per-view and 3D left/right repair).
* Accuracy: 3D error (mm) against the known truth as a function of the pixel noise, plain
  all-camera DLT against the consensus; and the share of injected per-view left/right swaps
  undone, per frame and with ``temporal=True``.
* The accuracy targets on the real Pose2Sim recording, both modes, with the calibration as given
  and refined from the recording (``medpose.camera.refine.refine_calibration``); the corrections
  found, and a hold-out check (refined on one half of the frames, measured on the other).
* Filters: a 0.6 s Gaussian bump of 100 mm plus 2 mm noise at 100 Hz: lag of the peak (ms) and
  peak attenuation (%) for each filter.
* DTW: medpose ``dtw_align`` (path + distance) and ``dtw_distance`` against dtaidistance's C
  ``distance_fast`` and its pure-Python ``distance`` on the same series.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from _common import machine, markdown_table, update_results
except ImportError:  # pragma: no cover - the shared helper is absent
    machine = markdown_table = update_results = None

import medpose.synthetic as syn
from medpose.camera.swaps import lr_pairs
from medpose.camera.triangulation import dlt, triangulate, triangulate_points
from medpose.data import KeypointSequence
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.temporal import (
    butterworth,
    dtw_align,
    dtw_distance,
    kalman_rts,
    one_euro,
    savgol,
    weighted_moving_average,
)

__all__ = ["main"]


def _table(rows, header) -> str:
    if markdown_table is not None:
        return markdown_table(rows, header)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    )


def _best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def _squat(n_frames: int, rate: float = 60.0) -> KeypointSequence:
    sk = Skeleton.default()
    reps = max(1, int(np.ceil(n_frames / rate / 4.0)))
    ex = syn.make_exercise("squat", rate=rate, repetitions=reps, seed=0)
    names = get_layout("mediapipe33").medpose
    x = np.asarray(forward_kinematics(sk, np.array(ex.angles.values), keypoints=names))[:n_frames]
    world = np.stack([x[..., 0], -x[..., 2], x[..., 1]], -1)  # ISB Y-up -> rig Z-up
    return KeypointSequence(world, names, rate, frame="camera")


def bench_triangulation(quick: bool) -> tuple[str, str, str]:
    rig = syn.make_rig(4, distortion=[-0.05, 0.02, 0.0005, -0.0003], seed=0)
    truth = _squat(200 if quick else 1200)
    views = syn.project_to_cameras(rig, truth, pixel_sigma=1.0, occluded_confidence=0.9, seed=1)
    px = np.stack([views[c.name].positions for c in rig], 2)
    cf = np.stack([views[c.name].confidence for c in rig], 2)
    t_core = _best(lambda: triangulate_points(rig, px, cf), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_full = _best(lambda: triangulate(rig, views), 2)
        t_temp = _best(lambda: triangulate(rig, views, temporal=True), 1)
    P = np.stack([c.projection_matrix for c in rig])
    und = np.stack(
        [c.undistort_points(px[:, :, i], normalized=False) for i, c in enumerate(rig)], 2
    )
    t_dlt = _best(lambda: dlt(P, und, cf), 3)
    n = truth.n_frames
    speed = _table(
        [
            ["plain weighted DLT (all cameras)", round(n / t_dlt)],
            ["consensus over the 11 camera subsets", round(n / t_core)],
            ["triangulate() with per-view and 3D left/right repair", round(n / t_full)],
            ["triangulate(temporal=True): labels and cameras chosen over time", round(n / t_temp)],
        ],
        ["4 cameras x 33 keypoints, 1 px noise", "frames per second"],
    )

    rows = []
    for sigma in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        v = syn.project_to_cameras(rig, truth, pixel_sigma=sigma, occluded_confidence=0.9, seed=2)
        p = np.stack([v[c.name].positions for c in rig], 2)
        c = np.stack([v[c.name].confidence for c in rig], 2)
        u = np.stack(
            [cam.undistort_points(p[:, :, i], normalized=False) for i, cam in enumerate(rig)], 2
        )
        e_dlt = np.linalg.norm(dlt(P, u, c) - truth.positions, axis=-1)
        e_con = np.linalg.norm(triangulate_points(rig, p, c)[0] - truth.positions, axis=-1)
        rows.append(
            [
                sigma,
                float(np.nanmedian(e_dlt)),
                float(np.nanpercentile(e_dlt, 95)),
                float(np.nanmedian(e_con)),
                float(np.nanpercentile(e_con, 95)),
            ]
        )
    acc = _table(
        rows,
        [
            "pixel noise (px, per axis)",
            "DLT median (mm)",
            "DLT p95 (mm)",
            "consensus median (mm)",
            "consensus p95 (mm)",
        ],
    )

    # injected per-view swaps (whole body, 1 run/s/view of ~4 frames) undone
    short = truth.slice(0, 200)
    sw_rows = []
    for sigma, temporal in (
        (1.0, False),
        (2.0, False),
        (4.0, False),
        (1.0, True),
        (2.0, True),
        (4.0, True),
    ):
        v, rep = syn.project_to_cameras(
            rig, short, pixel_sigma=sigma, swap_rate=1.0, swap_len=4.0, seed=5, return_report=True
        )
        clean = syn.project_to_cameras(rig, short, pixel_sigma=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = triangulate(rig, v, temporal=temporal)
        pairs = [(short.index(a), short.index(b)) for a, b in lr_pairs(short.names)]
        inj = fixed = false = 0
        li = np.array(pairs)[:, 0]
        for cam in res.camera_names:
            out, ref = res.keypoints_2d[cam].positions, clean[cam].positions
            for run in rep[cam]["swaps"]:
                for t in range(run["start"], run["stop"]):
                    for a, b in pairs:
                        if np.isfinite(ref[t, [a, b]]).all():
                            inj += 1
                            fixed += np.linalg.norm(out[t, a] - ref[t, a]) < np.linalg.norm(
                                out[t, a] - ref[t, b]
                            )
            # (frame, pair) of this view without an injected swap that came out relabelled
            hit = np.zeros(short.n_frames, dtype=bool)
            for run in rep[cam]["swaps"]:
                hit[run["start"] : run["stop"]] = True
            a_in, a_out = v[cam].positions[:, li], out[:, li]
            moved = ~((a_out == a_in) | (np.isnan(a_out) & np.isnan(a_in))).all(axis=-1)
            false += int((moved & ~hit[:, None]).sum())
        err = np.linalg.norm(res.sequence.positions - short.positions, axis=-1)
        sw_rows.append(
            [
                "temporal" if temporal else "per frame",
                sigma,
                inj,
                f"{fixed / max(inj, 1):.1%}",
                false,
                float(np.nanmedian(err)),
                int(np.sum(err > 50.0)),
            ]
        )
    swaps = _table(
        sw_rows,
        [
            "mode",
            "pixel noise (px)",
            "injected (view, frame, pair)",
            "undone",
            "relabelled where none was injected (view, frame, pair)",
            "3D median error after repair (mm)",
            "points > 50 mm from the truth",
        ],
    )
    return speed, acc, swaps


def bench_real() -> tuple[str, str, str] | None:
    """The accuracy targets on the real Pose2Sim recording (../shared/data/pose2sim), both modes,
    with the calibration as given and refined; the corrections; a hold-out check."""
    from medpose.camera.refine import refine_calibration
    from medpose.io.calibration import read_calibration
    from medpose.io.openpose import read_openpose
    from medpose.temporal import clean_gaps

    root = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pose2sim"
    if not root.is_dir():
        return None
    cams = read_calibration(root / "Calib_qualisys.toml")
    kp = {
        c.name: read_openpose(root / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        cams2, table = refine_calibration(cams, kp)
        t_refine = time.perf_counter() - t0
    rows = []
    for (calib, cc, extra), temporal in (
        (c, t)
        for c in (("as given", cams, 0.0), ("refined", cams2, t_refine))
        for t in (False, True)
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            res = triangulate(cc, kp, temporal=temporal)
            dt = time.perf_counter() - t0 + extra
        e = res.error_table(0.5)["error_px"]
        seq = res.sequence
        p = butterworth(clean_gaps(seq, max_gap_s=0.2).sequence.positions, seq.rate, 6.0)
        cells = []
        for _seg, (a, b) in (("thigh", ("hip", "knee")), ("shank", ("knee", "ankle"))):
            for side in "lr":
                d = np.linalg.norm(
                    p[:, seq.index(f"{a}_{side}")] - p[:, seq.index(f"{b}_{side}")], axis=-1
                )
                d = d[np.isfinite(d)]
                cv = np.std(d) / np.mean(d)
                spread = (np.percentile(d, 95) - np.percentile(d, 5)) / np.median(d)
                cells.append(f"{cv:.1%} / {spread:.0%} ({len(d)})")
        rows.append(
            [
                calib,
                "temporal=True" if temporal else "default (per frame)",
                f"{e.median():.2f}",
                f"{(e < 20).mean():.1%}",
                *cells,
                f"{dt:.1f}",
            ]
        )
    real = _table(
        rows,
        [
            "calibration",
            "mode",
            "median reprojection (px)",
            "within 20 px",
            "thigh l",
            "thigh r",
            "shank l",
            "shank r",
            "time (s)",
        ],
    )
    corr = _table(
        [
            [
                r.camera,
                f"{r.dcx_px:+.1f}",
                f"{r.dcy_px:+.1f}",
                r.n_observations,
                f"{r.median_error_before_px:.2f}",
                f"{r.median_error_after_px:.2f}",
            ]
            for r in table.itertuples()
        ],
        [
            "camera",
            "dcx (px)",
            "dcy (px)",
            "observations",
            "median error before (px)",
            "median error after (px)",
        ],
    )
    hold = []

    def half(s: KeypointSequence, a: int, b: int) -> KeypointSequence:
        return KeypointSequence(
            s.positions[a:b],
            s.names,
            s.rate,
            confidence=s.confidence[a:b],
            frame=s.frame,
            start=s.start + a / s.rate,
        )

    for fit, test in (((0, 50), (50, 100)), ((50, 100), (0, 50))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c_fit, _ = refine_calibration(cams, {n: half(s, *fit) for n, s in kp.items()})
            kp_test = {n: half(s, *test) for n, s in kp.items()}
            e0, e1 = (
                triangulate(c, kp_test, temporal=True).error_table(0.5)["error_px"]
                for c in (cams, c_fit)
            )
        hold.append(
            [
                f"{fit[0]}-{fit[1] - 1}",
                f"{test[0]}-{test[1] - 1}",
                f"{e0.median():.2f} / {(e0 < 20).mean():.1%}",
                f"{e1.median():.2f} / {(e1 < 20).mean():.1%}",
            ]
        )
    hold = _table(
        hold,
        [
            "refined on frames",
            "measured on frames",
            "as given: median (px) / within 20 px",
            "refined: median (px) / within 20 px",
        ],
    )
    return real, corr, hold


def bench_filters() -> str:
    fs = 100.0
    t = np.arange(0, 4, 1 / fs)
    truth = 100 * np.exp(-0.5 * ((t - 2) / 0.15) ** 2)  # a 0.6 s movement of 100 mm
    x = truth + np.random.default_rng(0).normal(0, 2.0, t.size)
    filters = {
        "butterworth 6 Hz (zero lag)": lambda: butterworth(x, fs, 6.0),
        "savgol 0.21 s, cubic": lambda: savgol(x, fs, 0.21, 3),
        "kalman_rts (q=1e7, r=2 mm)": lambda: kalman_rts(x, fs, 1e7, 2.0),
        "one_euro (1 Hz, beta 0.05), causal": lambda: one_euro(x, fs, 1.0, 0.05),
        "weighted moving average n=10 (baseline), causal": lambda: weighted_moving_average(x, 10),
    }
    rows = []
    for name, f in filters.items():
        y = f()
        lag_ms = (np.argmax(y) - np.argmax(truth)) / fs * 1000
        att = 100 * (1 - y.max() / truth.max())
        rms = float(np.sqrt(np.mean((y - truth)[20:-20] ** 2)))
        rows.append([name, float(lag_ms), float(att), rms, _best(f, 5) * 1e3])
    return _table(
        rows,
        [
            "filter (100 Hz, 2 mm noise)",
            "peak lag (ms)",
            "peak attenuation (%)",
            "RMS error (mm)",
            "time (ms, 400 samples)",
        ],
    )


def bench_dtw(quick: bool) -> str:
    from dtaidistance import dtw

    rng = np.random.default_rng(0)
    rows = []
    for n in (101, 500) if quick else (101, 500, 2000):
        a = np.cumsum(rng.normal(size=n))
        b = np.cumsum(rng.normal(size=int(n * 1.2)))
        r = 20 if n <= 500 else 3
        d_med = dtw_align(a, b).distance
        row = [
            n,
            _best(lambda a=a, b=b: dtw_align(a, b), r) * 1e3,
            _best(lambda a=a, b=b: dtw_distance(a, b), r) * 1e3,
            _best(lambda a=a, b=b: dtw.distance_fast(a, b), r) * 1e3,
        ]
        if n <= 500:
            row.append(_best(lambda a=a, b=b: dtw.distance(a, b, use_c=False), 1) * 1e3)
        else:
            row.append("-")
        row.append(f"{abs(d_med - dtw.distance_fast(a, b)):.1e}")
        rows.append(row)
    return _table(
        rows,
        [
            "length",
            "medpose dtw_align, path + distance (ms)",
            "medpose dtw_distance (ms)",
            "dtaidistance distance_fast, C (ms)",
            "dtaidistance pure Python (ms)",
            "|distance difference|",
        ],
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames and lengths")
    args = ap.parse_args(argv)
    speed, acc, swaps = bench_triangulation(args.quick)
    real = bench_real()
    filt = bench_filters()
    dtwt = bench_dtw(args.quick)
    where = machine() if machine is not None else ""
    text = "\n\n".join(
        [
            "## Triangulation and temporal (`benchmarks/temporal.py`)",
            f"Machine: {where}." if where else "",
            "### Triangulation speed",
            speed,
            "### Triangulation accuracy against known 3D truth (synthetic 4-camera rig, squat)",
            acc,
            "### Injected per-view left/right swaps",
            swaps,
            "### Real recording (Pose2Sim demo, 4 cameras, 100 frames, MediaPipe 33)",
            "Observations with visibility >= 0.5 (12 946). Segment lengths after `clean_gaps` (0.2 s) and a 6 Hz "
            "Butterworth, per cell: coefficient of variation / (p95 - p5) / median (frames with a length). "
            "Target: median < 10 px, >= 85 % within 20 px, length variation < 5 %.",
            real[0] if real else "(../shared/data/pose2sim absent)",
            "Calibration refined from the recording (`refine_calibration`, defaults: principal points, soft-L1 "
            "f_scale 5 px, prior 10 px, mean of the points held, 2 rounds); its time is included in the refined rows. "
            "Corrections found:"
            if real
            else "",
            real[1] if real else "",
            "Hold-out check (temporal=True; the metric over the measured frames only):"
            if real
            else "",
            real[2] if real else "",
            "### Filters on a known movement",
            filt,
            "### DTW",
            dtwt,
        ]
    )
    print(text)
    if update_results is not None:
        update_results("temporal", text)
    else:  # pragma: no cover
        path = Path(__file__).resolve().parent / "RESULTS.md"
        from medpose.io._util import atomic_write

        old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
        start, end = "<!-- temporal:start -->", "<!-- temporal:end -->"
        if start in old and end in old:
            old = old[: old.index(start)] + old[old.index(end) + len(end) :]
        with atomic_write(path) as fh:
            fh.write(old.rstrip("\n") + f"\n\n{start}\n{text}\n{end}\n")


if __name__ == "__main__":
    main()
