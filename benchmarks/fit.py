"""Benchmark: medpose's constrained fit against OpenSim 4.6 inverse kinematics on the same markers.

Truth: a synthetic gait trial (``medpose.synthetic.make_exercise("gait")``) on medpose's
skeleton; its HALPE_26 keypoints plus Gaussian noise (``--noise`` mm per axis) are written as a
Pose2Sim-style ``.trc`` (metres, Y up).  medpose fits them (``medpose.kinematics.fit.fit``);
OpenSim 4.6 runs inverse kinematics with Pose2Sim's model, HALPE_26 marker set and IK set-up
(``../shared/data/pose2sim/``; the generic model, not scaled to the subject).  Both are timed
(frames per second) and compared with the true knee, hip and elbow flexion (RMS, degrees).

Usage::

    python benchmarks/fit.py                       # CPU (float32), 6000 frames, OpenSim on 300 of them
    python benchmarks/fit.py --device cuda --frames 1000000 --no-opensim --repeats 5

The results go to ``benchmarks/RESULTS.md`` between ``<!-- fit:start -->`` and ``<!-- fit:end -->``
(GPU runs: ``<!-- fit-gpu:start -->``).  On the CPU medpose runs once on one torch thread and once on
all cores (``--threads``); OpenSim's IK is serial.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.data import KeypointSequence
from medpose.io.mot import read_mot
from medpose.io.trc import write_trc
from medpose.kinematics.calibrate import calibrate
from medpose.kinematics.fit import fit
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout
from medpose.synthetic.exercises import make_exercise

__all__ = ["main"]

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pose2sim"
# medpose DoF -> (OpenSim coordinate, sign to medpose convention)
COMPARE = {
    "knee_flexion_r": ("knee_angle_r", 1.0),
    "knee_flexion_l": ("knee_angle_l", 1.0),
    "hip_flexion_r": ("hip_flexion_r", 1.0),
    "hip_flexion_l": ("hip_flexion_l", 1.0),
    "elbow_flexion_r": ("elbow_flex_r", 1.0),
    "elbow_flexion_l": ("elbow_flex_l", 1.0),
}
__all__ += ["COMPARE"]


def make_data(frames: int, noise: float, rate: float = 60.0, seed: int = 0, device: str = "cpu"):
    sk = Skeleton.default(1750.0)
    strides = min(20, max(1, int(np.ceil(frames / (rate * 1.1)))))
    truth = make_exercise(
        "gait", skeleton=sk, rate=rate, repetitions=strides, seed=seed
    ).angles.values[:frames]
    if len(truth) < frames:  # tile (the fit is per frame)
        truth = np.tile(truth, (int(np.ceil(frames / len(truth))), 1))[:frames]
    lay = get_layout("halpe26")
    # forward kinematics on the benchmark's device (a million frames on the CPU would take minutes)
    x = torch.cat(
        [
            forward_kinematics(
                sk,
                torch.as_tensor(truth[i : i + (1 << 18)], device=device),
                keypoints=list(lay.medpose),
            ).cpu()
            for i in range(0, frames, 1 << 18)
        ]
    ).numpy()
    x = x + np.random.default_rng(seed).normal(0.0, noise, x.shape)
    seq = KeypointSequence(x, tuple(lay.native), rate, frame="camera")
    return sk, truth, seq


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean((a - b) ** 2)))


def run_medpose(
    sk,
    truth,
    seq,
    device: str,
    dtype,
    chunk,
    threads: int | None = 1,
    estimate: bool = False,
    repeats: int = 2,
    patient=None,
):
    """Fit with the true skeleton, or (``estimate=True``) with segment lengths estimated from the data.

    Returns frames/s of the first full-size call (after a 4096-frame warm-up), the best of
    ``repeats`` further calls, the RMS errors of the last one, and the seconds its fitted
    keypoints and residuals took when first asked (a GPU fit computes them then).
    """
    kw = dict(device=device, dtype=dtype, progress=False, threads=threads, calibrate=False)
    if chunk:
        kw["chunk_size"] = chunk
    model = patient if patient is not None else (None if estimate else sk)
    fit(seq.slice(0, min(4096, seq.n_frames)), model, **kw)  # warm-up (CUDA context, kernels)
    times = []
    for _ in range(1 + repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        f = fit(seq, model, **kw)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    a = f.angles
    err = {k: rms(a[k].to_numpy(), truth[:, sk.dof_index(k)]) for k in COMPARE}
    t = time.perf_counter()
    _ = f.residual  # a GPU fit computes keypoints and residuals when first asked
    lazy_s = time.perf_counter() - t
    return seq.n_frames / times[0], seq.n_frames / min(times[1:]) if repeats else None, err, lazy_s


def run_opensim(sk, truth, seq, n: int):
    import opensim as osim

    osim.Logger.setLevelString("warn")
    if hasattr(osim.Logger, "removeFileSink"):  # no opensim.log in the working directory
        osim.Logger.removeFileSink()
    sub = seq.slice(0, n)
    with tempfile.TemporaryDirectory() as tmp:
        trc = write_trc(sub, Path(tmp) / "markers.trc", units="m")
        model = osim.Model(str(DATA / "Model_Pose2Sim_simple.osim"))
        model.set_MarkerSet(osim.MarkerSet(str(DATA / "Markers_Halpe26.xml")))
        model.initSystem()
        ik = osim.InverseKinematicsTool(str(DATA / "IK_Setup_Pose2Sim_Halpe26.xml"))
        ik.setModel(model)
        ik.setMarkerDataFileName(str(trc))
        ik.setStartTime(float(sub.times[0]))
        ik.setEndTime(float(sub.times[-1]))
        out = Path(tmp) / "ik.mot"
        ik.setOutputMotionFileName(str(out))
        ik.set_results_directory(tmp)
        t = time.perf_counter()
        ik.run()
        dt = time.perf_counter() - t
        mot = read_mot(out)
    err = {}
    for k, (c, sign) in COMPARE.items():
        v = sign * np.asarray(mot[c])
        err[k] = rms(v, truth[: len(v), sk.dof_index(k)])
    return len(mot.values) / dt, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--opensim-frames", type=int, default=300)
    ap.add_argument("--noise", type=float, default=5.0, help="keypoint noise, mm per axis")
    ap.add_argument("--float64", action="store_true", help="float64 instead of the default float32")
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for the 'all cores' row (default: torch's setting)",
    )
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed calls after the first (the best is reported)"
    )
    ap.add_argument("--no-opensim", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)
    dtype = torch.float64 if args.float64 else torch.float32
    prec = " float32" if dtype == torch.float32 else " float64"
    cuda = args.device.startswith("cuda")
    sk, truth, seq = make_data(args.frames, args.noise, device=args.device)
    errs = lambda e: [round(e[k], 2) for k in COMPARE]  # noqa: E731
    rows = []
    if cuda:
        first, best, err_m, lazy_s = run_medpose(
            sk, truth, seq, args.device, dtype, args.chunk, None, repeats=args.repeats
        )
        rows.append([f"medpose cuda{prec}, first call", args.frames, round(first, 1)] + errs(err_m))
        rows.append(
            [
                f"medpose cuda{prec}, next calls (best of {args.repeats})",
                args.frames,
                round(best, 1),
            ]
            + errs(err_m)
        )
        fps_m = best
        # a subject calibrated on the first 6000 frames (mp.calibrate on the CPU), then the whole
        # recording fitted with it on the GPU
        patient = calibrate(seq.slice(0, min(6000, seq.n_frames)))
        _, best_c, err_c, _ = run_medpose(
            sk,
            truth,
            seq,
            args.device,
            dtype,
            args.chunk,
            None,
            repeats=args.repeats,
            patient=patient,
        )
        rows.append(
            [
                f"medpose cuda{prec}, calibrated skeleton (best of {args.repeats})",
                args.frames,
                round(best_c, 1),
            ]
            + errs(err_c)
        )
    else:
        nthreads = args.threads or torch.get_num_threads()
        _, one, err_1, _ = run_medpose(
            sk, truth, seq, args.device, dtype, args.chunk, 1, repeats=args.repeats
        )
        rows.append([f"medpose cpu{prec}, 1 thread", args.frames, round(one, 1)] + errs(err_1))
        _, fps_m, err_m, _ = run_medpose(
            sk, truth, seq, args.device, dtype, args.chunk, nthreads, repeats=args.repeats
        )
        rows.append(
            [f"medpose cpu{prec}, {nthreads} threads (all cores)", args.frames, round(fps_m, 1)]
            + errs(err_m)
        )
        # the fair comparison: lengths from the data, as OpenSim's user has
        _, fps_e, err_e, _ = run_medpose(
            sk,
            truth,
            seq,
            args.device,
            dtype,
            args.chunk,
            nthreads,
            estimate=True,
            repeats=args.repeats,
        )
        rows.append(
            [
                f"medpose, {nthreads} threads, skeleton estimated from the data",
                args.frames,
                round(fps_e, 1),
            ]
            + errs(err_e)
        )
    note = ""
    gpu = ""
    if cuda:
        gpu = (
            f" GPU: {torch.cuda.get_device_name()}, float32, chunk "
            f"{args.chunk or 'default (2^20 frames where 64 GB are free)'}; the time includes moving the "
            "float64 keypoints to the GPU (converted to float32 on the way, through page-locked buffers) and "
            "the angles back into numpy (page-locked arrays: the first call of a size pays for locking them, "
            "torch's pinned-memory cache keeps them for the next calls). The "
            "fitted keypoints and residuals are computed when first asked (forward kinematics of the angles "
            f"on the GPU): {lazy_s:.2f} s for these {args.frames} frames, not in the frames/s."
        )
    if not args.no_opensim:
        try:
            fps_o, err_o = run_opensim(sk, truth, seq, min(args.opensim_frames, args.frames))
            rows.append(
                [
                    "OpenSim 4.6 IK (one thread: its IK is serial)",
                    min(args.opensim_frames, args.frames),
                    round(fps_o, 1),
                ]
                + errs(err_o)
            )
            note = f"\nSpeed-up medpose / OpenSim: **{fps_m / fps_o:.0f}x**"
            if not cuda:
                note += f" with all cores, {one / fps_o:.0f}x on one thread"
            note += ".\n"
        except Exception as exc:
            note = f"\nOpenSim could not run here: {type(exc).__name__}: {exc}\n"
    header = ["solver", "frames", "frames/s"] + [f"{k} RMS deg" for k in COMPARE]
    table = markdown_table(rows, header)
    print(table)
    print(note)
    if not args.no_write:
        text = (
            f"## Constrained skeleton fit{' on the GPU' if cuda else ''} (`benchmarks/fit.py`)\n\n"
            f"Synthetic gait, HALPE_26 keypoints with {args.noise:g} mm Gaussian noise per axis, "
            f"60 Hz; truth = the generating angles.  Machine: {machine()}.{gpu}  medpose's frames/s are the "
            f"best of {args.repeats} timed calls after a first one; OpenSim runs once.  OpenSim uses Pose2Sim's "
            "generic (unscaled) model, so its errors include the model mismatch; the medpose rows fit its own "
            "skeleton with the true lengths, except the 'estimated' row, which estimates the segment lengths "
            "from the noisy keypoints themselves (medians over the trial), with no truth."
            " The 'calibrated skeleton' row fits with `mp.calibrate` run on the first 6000 frames (on the CPU, not timed).\n\n"
            f"{table}\n{note}"
        )
        update_results("fit-gpu" if cuda else "fit", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
