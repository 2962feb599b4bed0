"""Triangulation on the real four-camera recording: speed and reprojection error.

Run: ``python benchmarks/triangulation.py [--tile 10] [--no-pose2sim] [--no-write]``.  Prints a
table and writes it to ``benchmarks/RESULTS.md`` between the ``triangulation`` markers.

Data: ``../shared/data/pose2sim`` (Pose2Sim's demo: 4 calibrated cameras, MediaPipe's 33
keypoints, 100 frames), tiled ``--tile`` times in time (1,000 frames by default) for the speed
of ``medpose.triangulate`` (``temporal=False`` and ``True``).  Rows:

* medpose ``triangulate`` (per-view left/right repair, consensus over camera subsets, 3D swap
  repair), and with ``temporal=True``;
* a plain all-camera DLT (every camera with confidence >= 0.3, unweighted, undistorted
  pixels; numpy, batched): the baseline the consensus must beat;
* Pose2Sim 0.10.49's own ``triangulation_from_best_cameras`` (its per-keypoint loop, with the
  demo's ``Config.toml`` settings: 15 px threshold, likelihood 0.3, at least 2 cameras, no
  left/right swap handling, no undistortion) from the ``bench`` extra, when it imports; it runs on
  the 100 original frames (a per-point loop: its speed does not depend on the length).

Reprojection error: every observation with visibility >= 0.5, reprojected with the lens
distortion into its own camera, used or not (as ``TriangulationResult.error_table``); for a
method that leaves points out (Pose2Sim drops points above its threshold) over the points it
gave, with the share of visible observations that have a point.  Frames per second are given
by wall-clock and by CPU time of the process (the machine may be shared).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.camera.dlt import dlt, reproject
from medpose.camera.triangulation import triangulate
from medpose.io.calibration import read_calibration
from medpose.io.openpose import read_openpose

try:  # optional: Pose2Sim's own triangulation, for comparison
    from Pose2Sim.common import computeP, retrieve_calib_params
    from Pose2Sim.triangulation import triangulation_from_best_cameras

    POSE2SIM_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the environment
    POSE2SIM_ERROR = str(exc)

__all__ = ["main"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim"


def _load(root: Path, tile: int):
    cams = read_calibration(root / "Calib_qualisys.toml")
    kp = {
        c.name: read_openpose(root / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    tiled = {
        n: s.with_positions(np.tile(s.positions, (tile, 1, 1)), np.tile(s.confidence, (tile, 1)))
        for n, s in kp.items()
    }
    return cams, kp, tiled


def _stats(err: np.ndarray, n_visible: int) -> tuple[float, float, float, float]:
    """median, 90th percentile, share within 20 px (of the errors) and share with a point."""
    e = err[np.isfinite(err)]
    return (
        float(np.median(e)),
        float(np.percentile(e, 90)),
        float(np.mean(e < 20)),
        len(e) / n_visible,
    )


def _timed(fn, repeats: int):
    best_wall = best_cpu = np.inf
    out = None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return out, best_wall, best_cpu


def _observations(cams, kp):
    px = np.stack([kp[c.name].positions for c in cams], axis=2)  # (T, K, C, 2)
    cf = np.stack([kp[c.name].confidence for c in cams], axis=2)
    visible = (cf >= 0.5) & np.isfinite(px).all(-1)
    return px, cf, visible


def _plain_dlt(cams, px, cf) -> np.ndarray:
    und = np.stack(
        [c.undistort_points(px[:, :, i], normalized=False) for i, c in enumerate(cams)], axis=2
    )
    P = np.stack([c.projection_matrix for c in cams])
    return dlt(P, np.where((cf >= 0.3)[..., None], und, np.nan))


def _pose2sim(root: Path, cams, px, cf):
    """Pose2Sim's per-keypoint triangulation on the original frames: points (T, K, 3) mm."""
    config = {
        "triangulation": {
            "reproj_error_threshold_triangulation": 15,
            "likelihood_threshold_triangulation": 0.3,
            "min_cameras_for_triangulation": 2,
            "handle_LR_swap": False,
            "undistort_points": False,
        }
    }
    calib = root / "Calib_qualisys.toml"  # rtoml reads a path; a str would be TOML text
    P = computeP(calib, undistort=False)
    params = retrieve_calib_params(calib)
    x = np.where(cf >= 0.3, px[..., 0], np.nan)
    y = np.where(cf >= 0.3, px[..., 1], np.nan)
    lk = np.where(cf >= 0.3, cf, np.nan)
    n_t, n_k = px.shape[:2]
    out = np.full((n_t, n_k, 3), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(n_t):  # Pose2Sim's own loop over frames and keypoints
            for k in range(n_k):
                coords = np.array((x[t, k], y[t, k], lk[t, k]))
                Q, *_ = triangulation_from_best_cameras(config, coords, coords, P, params)
                out[t, k] = np.asarray(Q, dtype=float)[:3] * 1000.0  # m -> mm
    return out


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=10, help="copies of the 100 frames (default 10)")
    ap.add_argument("--data", type=Path, default=DATA, help="the pose2sim data folder")
    ap.add_argument("--no-pose2sim", action="store_true", help="skip Pose2Sim")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    ap.add_argument("--note", default="", help="a sentence appended to the section")
    args = ap.parse_args(argv)
    cams, kp, tiled = _load(args.data, args.tile)
    n_t = next(iter(tiled.values())).n_frames
    warnings.simplefilter("ignore")
    triangulate(cams, kp, progress=False)  # warm-up
    rows = []
    for temporal in (False, True):
        res, wall, cpu = _timed(
            lambda t=temporal: triangulate(cams, tiled, temporal=t, progress=False),
            1 if temporal else 3,
        )
        tab = res.error_table(min_visibility=0.5)
        med, p90, within, cover = _stats(tab["error_px"].to_numpy(), len(tab))
        rows.append(
            [
                f"medpose triangulate(temporal={temporal})",
                n_t,
                round(n_t / wall),
                round(n_t / cpu),
                med,
                p90,
                f"{within:.1%}",
                f"{cover:.1%}",
            ]
        )
    px, cf, visible = _observations(cams, tiled)
    X, wall, cpu = _timed(lambda: _plain_dlt(cams, px, cf), 3)
    err = np.linalg.norm(reproject(cams, X) - px, axis=-1)
    med, p90, within, cover = _stats(err[visible], int(visible.sum()))
    rows.append(
        [
            "plain all-camera DLT (numpy)",
            n_t,
            round(n_t / wall),
            round(n_t / cpu),
            med,
            p90,
            f"{within:.1%}",
            f"{cover:.1%}",
        ]
    )
    note = ""
    if not args.no_pose2sim:
        if POSE2SIM_ERROR:
            note = f"Pose2Sim could not be imported here ({POSE2SIM_ERROR}); its row is absent."
        else:
            px1, cf1, vis1 = _observations(cams, kp)
            X, wall, cpu = _timed(lambda: _pose2sim(args.data, cams, px1, cf1), 1)
            err = np.linalg.norm(reproject(cams, X) - px1, axis=-1)
            med, p90, within, cover = _stats(err[vis1], int(vis1.sum()))
            rows.append(
                [
                    "Pose2Sim 0.10.49 triangulation_from_best_cameras",
                    px1.shape[0],
                    round(px1.shape[0] / wall),
                    round(px1.shape[0] / cpu),
                    med,
                    p90,
                    f"{within:.1%}",
                    f"{cover:.1%}",
                ]
            )
    header = [
        "method",
        "frames",
        "frames/s (wall)",
        "frames/s (CPU)",
        "median error (px)",
        "90th pct (px)",
        "within 20 px",
        "observations with a point",
    ]
    text = "\n\n".join(
        s
        for s in (
            "## Triangulation on the real recording (`benchmarks/triangulation.py`)",
            f"Command: `python benchmarks/triangulation.py --tile {args.tile}`. Machine: {machine()}.",
            "Pose2Sim's demo recording (4 cameras, MediaPipe 33 keypoints, 100 frames) tiled "
            f"{args.tile} times; every observation with visibility >= 0.5 reprojected with the "
            "lens distortion into its own camera, used or not. Pose2Sim runs its per-keypoint "
            "loop on the 100 original frames with the demo's Config.toml settings (15 px, "
            "likelihood 0.3, no swap handling, no undistortion) and leaves out points above "
            "its threshold: its errors are over the points it gave. CPU frames/s count the "
            "process's CPU time (the machine is shared; wall-clock is the slower figure).",
            markdown_table(rows, header),
            note,
            args.note,
        )
        if s
    )
    print(text)
    if not args.no_write:
        update_results("triangulation", text)
    return text


if __name__ == "__main__":
    main()
