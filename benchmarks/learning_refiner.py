"""Keypoint attention refiner: training, and comparison with the temporal filters.

Train (the shipped model was made so; the exact command is recorded in its JSON)::

    python benchmarks/learning_refiner.py train --device cuda --sequences 1600 --steps N \
        --out medpose/resources/models/refiner.safetensors

Evaluate (prints tables, writes the ``learning-refiner`` section of ``benchmarks/RESULTS.md``)::

    python benchmarks/learning_refiner.py [--model PATH] [--sequences 40] [--no-write]

* Held-back synthetic sequences (``make_refiner_data(seed=HELD_OUT_SEED)``; training used
  seeds 0..workers-1, drawn independently): keypoint RMSE against truth of the noisy input, and
  of the refiner and each temporal filter (Butterworth, Savitzky-Golay, One Euro, Kalman/RTS)
  both run after medpose's own clean-up (``clean_input``: ``repair_swaps_3d`` then
  ``clean_gaps``), each filter's
  parameter chosen as the best on these same sequences (which favours the filters).  RMSE is
  over the samples every method gives (the filters leave long gaps empty).
* The real recording ``../shared/data/pose2sim`` triangulated with ``temporal=True``: steadiness
  of thigh, shank, upper-arm and forearm lengths (coefficient of variation over frames) and the
  median reprojection error over every visible observation (visibility >= 0.5), for the raw
  triangulation, clean_gaps + 6 Hz Butterworth (as ``tests/camera/test_real_pose2sim.py``) and
  the refiner.
* INT8 dynamic quantization: agreement with the float model (mm), state size, CPU latency.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.learning.checkpoint import default_refiner_path, load_refiner, save_refiner
from medpose.learning.inference import refine
from medpose.learning.quantize import quantize_refiner, state_size_bytes
from medpose.learning.refiner import KeypointRefiner, RefinerConfig, refine_positions
from medpose.learning.training import RefinerData, make_refiner_data, train_refiner
from medpose.temporal import butterworth, clean_gaps, kalman_rts, one_euro, savgol

__all__ = ["main", "merged_data", "evaluate_synthetic", "FILTERS", "HELD_OUT_SEED"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim"
HELD_OUT_SEED = 20261204
VIDEO_SIZES = {
    "cam01": (1080, 1920),
    "cam02": (1080, 1920),
    "cam03": (1088, 1920),
    "cam04": (1088, 1920),
}
#: filter name -> (parameter name, candidate values, function(x, fs, value))
FILTERS = {
    "butterworth": (
        "cutoff_hz",
        (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0),
        lambda x, fs, v: butterworth(x, fs, v),
    ),
    "savgol": (
        "window_s",
        (0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5),
        lambda x, fs, v: savgol(x, fs, v, 3),
    ),
    "one_euro": (
        "min_cutoff_hz",
        (0.5, 1.0, 2.0, 4.0),
        lambda x, fs, v: one_euro(x, fs, min_cutoff=v, beta=0.001),
    ),
    "kalman_rts": (
        "process_noise",
        (1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6),
        lambda x, fs, v: kalman_rts(x, fs, process_noise=v),
    ),
}


# ----------------------------------------------------------------------------- training
def _chunk(args: tuple[int, int]) -> RefinerData:
    n, seed = args
    torch.set_num_threads(1)  # one process per core: no oversubscription
    return make_refiner_data(n, seed=seed)


def merged_data(n_sequences: int, workers: int, seed0: int = 0) -> RefinerData:
    """``make_refiner_data`` in ``workers`` processes (seeds ``seed0 .. seed0+workers-1``)."""
    sizes = [n_sequences // workers + (i < n_sequences % workers) for i in range(workers)]
    jobs = [(n, seed0 + i) for i, n in enumerate(sizes) if n]
    if workers == 1:
        parts = [_chunk(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, jobs))
    out = RefinerData([], [], [], [], [], parts[0].keypoints)
    for p in parts:
        out.noisy.extend(p.noisy)
        out.inputs.extend(p.inputs)
        out.truth.extend(p.truth)
        out.rates.extend(p.rates)
        out.exercises.extend(p.exercises)
    return out


def train_main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = merged_data(args.sequences, args.workers)
    t_data = time.perf_counter() - t0
    print(f"{data} generated in {t_data:.1f} s")
    config = RefinerConfig(
        keypoints=data.keypoints, d_model=args.d_model, layers=args.layers, window=args.window
    )
    model, log = train_refiner(
        data,
        config,
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
    )
    print(log)
    device = torch.cuda.get_device_name() if str(args.device).startswith("cuda") else "cpu"
    record = {
        **log.settings,
        "command": "python benchmarks/learning_refiner.py " + shlex.join(sys.argv[1:]),
        "device": device,
        "train_seconds": round(log.seconds, 1),
        "data_seconds": round(t_data, 1),
        "final_loss": float(np.mean(log.losses[-100:])),
        "data": f"make_refiner_data(n, seed=s) for s in 0..{args.workers - 1}, {len(data)} sequences",
    }
    path = save_refiner(model.cpu(), args.out, training=record)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


# ----------------------------------------------------------------------------- synthetic
def _rmse(est: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    d = np.linalg.norm(est - truth, axis=-1)[mask]
    return float(np.sqrt(np.mean(d**2)))


def evaluate_synthetic(
    model: torch.nn.Module, data: RefinerData
) -> tuple[list[tuple], dict[str, float]]:
    """Rows (method, parameter, RMSE mm on common samples, RMSE mm on all its samples, share)."""
    cleaned = data.inputs  # clean_input: repair_swaps_3d then clean_gaps
    refined = [refine_positions(model, c, r) for c, r in zip(cleaned, data.rates)]
    filtered: dict[str, list[np.ndarray]] = {}
    best: dict[str, float] = {}
    for fname, (_pname, values, fn) in FILTERS.items():
        scores = []
        outs = []
        for v in values:
            out = [fn(c, r, v) for c, r in zip(cleaned, data.rates)]
            m = [np.isfinite(o).all(-1) for o in out]
            scores.append(np.mean([_rmse(o, t, mm) for o, t, mm in zip(out, data.truth, m)]))
            outs.append(out)
        i = int(np.argmin(scores))
        best[fname] = values[i]
        filtered[fname] = outs[i]
    common = [
        np.isfinite(n).all(-1) & np.all([np.isfinite(f[i]).all(-1) for f in filtered.values()], 0)
        for i, n in enumerate(data.noisy)
    ]

    def row(label: str, param: str, outs: list[np.ndarray]) -> tuple:
        rm = np.mean([_rmse(o, t, c) for o, t, c in zip(outs, data.truth, common)])
        own = [np.isfinite(o).all(-1) for o in outs]
        ra = np.mean([_rmse(o, t, m) for o, t, m in zip(outs, data.truth, own)])
        share = float(np.mean(np.concatenate([m.ravel() for m in own])))
        return (label, param, float(rm), float(ra), share)

    rows = [row("noisy input", "", data.noisy), row("clean-up only", "", cleaned)]
    for fname, outs in filtered.items():
        rows.append(row(f"clean-up + {fname}", f"{FILTERS[fname][0]}={best[fname]:g}", outs))
    rows.append(row("refiner", "", refined))
    return rows, best


# ----------------------------------------------------------------------------- real recording
def _real(model: torch.nn.Module) -> list[tuple]:
    from medpose.camera.dlt import reproject
    from medpose.camera.triangulation import triangulate
    from medpose.io.calibration import read_calibration
    from medpose.io.openpose import read_openpose

    cams = read_calibration(DATA / "Calib_qualisys.toml")
    kp = {
        c.name: read_openpose(DATA / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = triangulate(cams, kp, image_sizes=VIDEO_SIZES, temporal=True, progress=False)
    seq = res.sequence
    cleaned = clean_gaps(seq, max_gap_s=0.2).sequence
    variants = {
        "triangulated (temporal=True)": seq.positions,
        "clean_gaps + butterworth 6 Hz": butterworth(cleaned.positions, seq.rate, 6.0),
        "refiner (after clean_input)": np.array(refine(seq, model).positions),
    }
    px = np.stack([res.keypoints_2d[c].positions for c in res.camera_names], axis=2)
    cf = np.stack([res.keypoints_2d[c].confidence for c in res.camera_names], axis=2)
    visible = (cf >= 0.5) & np.isfinite(px).all(-1)
    order = [next(c for c in cams if c.name == n) for n in res.camera_names]
    bones = {
        "thigh": ("hip", "knee"),
        "shank": ("knee", "ankle"),
        "upper arm": ("shoulder", "elbow"),
        "forearm": ("elbow", "wrist"),
    }
    rows = []
    for label, pos in variants.items():
        cvs = []
        for a, b in bones.values():
            for s in "lr":
                d = np.linalg.norm(
                    pos[:, seq.index(f"{a}_{s}")] - pos[:, seq.index(f"{b}_{s}")], axis=-1
                )
                d = d[np.isfinite(d)]
                cvs.append(np.std(d) / np.mean(d))
        err = np.linalg.norm(reproject(order, pos) - px, axis=-1)
        e = err[visible & np.isfinite(err)]
        rows.append(
            (
                label,
                100 * float(np.mean(cvs[:4])),
                100 * float(np.mean(cvs[4:])),
                float(np.median(e)),
                float(np.mean(e < 20)),
                float(len(e) / visible.sum()),
            )
        )
    return rows


# ----------------------------------------------------------------------------- quantization
def _latency(model: torch.nn.Module, frames: int, repeats: int = 5) -> float:
    k = len(model.config.keypoints)  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    x = rng.normal(0, 300, size=(frames, k, 3)).astype(np.float32)
    refine_positions(model, x, 60.0)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        refine_positions(model, x, 60.0)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def evaluate_quantized(model: KeypointRefiner, data: RefinerData) -> list[tuple]:
    torch.set_num_threads(1)
    q = quantize_refiner(model)
    diffs, rm_f, rm_q = [], [], []
    for n, t, r in zip(data.inputs, data.truth, data.rates):
        a, b = refine_positions(model, n, r), refine_positions(q, n, r)
        m = np.isfinite(a).all(-1)
        diffs.append(np.linalg.norm(a - b, axis=-1)[m])
        rm_f.append(_rmse(a, t, m))
        rm_q.append(_rmse(b, t, m))
    d = np.concatenate(diffs)
    w = model.config.window
    rows = []
    for label, m, rm in (("float32", model, rm_f), ("int8 dynamic", q, rm_q)):
        rows.append(
            (
                label,
                state_size_bytes(m) / 1e6,
                _latency(m, w),
                _latency(m, 1000),
                float(np.mean(rm)),
            )
        )
    rows.append(
        (
            "int8 - float32 (mm)",
            float(np.sqrt(np.mean(d**2))),
            float(np.percentile(d, 99)),
            float(d.max()),
            float("nan"),
        )
    )
    return rows


# ----------------------------------------------------------------------------- main
def evaluate_main(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    path = Path(args.model) if args.model else default_refiner_path()
    model = load_refiner(path)
    record = getattr(model, "training_record", {})
    data = make_refiner_data(args.sequences, seed=HELD_OUT_SEED)
    print(f"held-back: {data}")
    syn_rows, _ = evaluate_synthetic(model, data)
    h1 = ["method", "tuned parameter", "RMSE common (mm)", "RMSE own (mm)", "samples given"]
    t1 = markdown_table(syn_rows, h1)
    best = min((r for r in syn_rows if r[0].startswith("clean-up +")), key=lambda r: r[2])
    ours = next(r for r in syn_rows if r[0] == "refiner")
    verdict = (
        f"Refiner {ours[2]:.2f} mm against the best tuned filter ({best[0]}, {best[1]}) "
        f"{best[2]:.2f} mm on the common samples: "
        + ("better" if ours[2] < best[2] else "worse")
        + f" by {abs(ours[2] - best[2]):.2f} mm ({100 * (ours[2] - best[2]) / best[2]:+.1f} %)."
    )
    print(verdict)
    print(t1)
    t2 = ""
    if DATA.exists() and not args.no_real:
        real_rows = _real(model)
        h2 = [
            "3D keypoints",
            "leg CV (%)",
            "arm CV (%)",
            "median reproj. (px)",
            "< 20 px",
            "obs. with a point",
        ]
        t2 = markdown_table(real_rows, h2)
        print(t2)
    q_rows = evaluate_quantized(model, data)
    h3 = [
        "model",
        "size (MB) / RMS diff",
        f"ms per {model.config.window}-frame window (1 thread) / p99",
        "ms per 1000 frames / max",
        "RMSE vs truth (mm)",
    ]
    t3 = markdown_table(q_rows, h3)
    print(t3)
    if not args.no_write:
        cfg = model.config
        text = "\n\n".join(
            [
                f"Machine: {machine()}, torch {torch.__version__}.  Model: `{path.name}` "
                f"({sum(p.numel() for p in model.parameters())} parameters, d_model {cfg.d_model}, "
                f"{cfg.layers} blocks, window {cfg.window}), trained with "
                f"`{record.get('command', '?')}` on {record.get('device', '?')} "
                f"({record.get('steps', '?')} steps, {record.get('train_seconds', '?')} s).  "
                f"Run: `python benchmarks/learning_refiner.py --sequences {args.sequences}`.",
                f"**Held-back synthetic sequences** ({len(data)} patients, "
                "`make_refiner_data(seed=HELD_OUT_SEED)`): keypoint RMSE against truth. "
                "Filters run after medpose's clean-up (repair_swaps_3d, clean_gaps) with their "
                "parameter tuned on these same sequences; 'common' = samples every method gives.",
                t1,
                verdict,
                "**Real recording** (pose2sim demo, MediaPipe 33 keypoints, triangulated with "
                "`temporal=True`): coefficient of variation of thigh+shank and upper-arm+forearm "
                "lengths over frames, reprojection error of every visible observation.",
                t2 or "(not run: data absent)",
                "**INT8 dynamic quantization** (Linear layers, `quantize_dynamic`), CPU, one thread; "
                "last row: difference between the two models' outputs on the held-back sequences "
                "(RMS, 99th percentile, max, mm).  Latencies are medians of 5 runs on a machine "
                "shared with other jobs (upper bounds); a refine() call adds clean_input.",
                t3,
            ]
        )
        update_results("learning-refiner", text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    t = sub.add_parser("train")
    t.add_argument("--sequences", type=int, default=800)
    t.add_argument("--workers", type=int, default=8)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--d-model", type=int, default=64)
    t.add_argument("--layers", type=int, default=3)
    t.add_argument("--window", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    t.add_argument("--out", default=str(default_refiner_path()))
    p.add_argument("--model", default=None)
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    return train_main(args) if args.cmd == "train" else evaluate_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
