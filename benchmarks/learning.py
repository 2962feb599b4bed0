"""Learning benchmarks.  Detector part: the CT landmark detector (section ``learning-detector``).

Detector run (on a machine with a CUDA GPU; ``--device cpu`` for a smoke run)::

    python benchmarks/learning.py detector --out OUTDIR [--teacher-seconds 240] [--quick]

builds varied synthetic phantoms at 1.5 mm (training and held-back), trains a teacher
detector with bfloat16 autocast, distils a smaller student from it (and trains the same
student without the teacher, for comparison), measures training throughput (volumes/s)
and inference latency (GPU fp32 and bf16; CPU), exports both stages to ONNX and checks them
with onnxruntime, and detects + registers held-back synthetic patients (TRE against the
predicted bound).  Everything lands in ``OUTDIR/detector.json`` (and the teacher checkpoint).

``python benchmarks/learning.py detector-report OUTDIR/detector.json`` prints the tables and
writes them to ``benchmarks/RESULTS.md`` between the ``learning-detector`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.data import Landmarks
from medpose.errors import MedposeError
from medpose.imaging.detector import DetectorConfig, save_detector
from medpose.imaging.detector_export import check_onnx, export_onnx
from medpose.imaging.detector_run import coarse_affine, detect_and_register, detect_landmarks
from medpose.imaging.detector_train import (
    evaluate_detector,
    mean_position_errors,
    train_landmarks,
    training_phantoms,
)
from medpose.imaging.transforms import resample, volume_affine, windowed_tensor

#: 95th percentile of the 3D error over its RMS for an isotropic Gaussian: sqrt(chi2_3(0.95) / 3).
Q95_OVER_RMS = float(np.sqrt(7.8147 / 3.0))


def _latency(fn: Any, repeats: int, sync: bool) -> float:
    fn()  # warm-up
    if sync:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _summary(ev: Any) -> dict[str, Any]:
    return {
        "mre_mm": float(ev.error_mm.mean()),
        "median_mm": float(ev.error_mm.median()),
        "p95_mm": float(ev.error_mm.quantile(0.95)),
        "max_mm": float(ev.error_mm.max()),
        "coarse_mre_mm": float(ev.coarse_error_mm.mean()),
        "per_landmark_mm": ev.groupby("landmark").error_mm.mean().round(3).to_dict(),
        "flagged": int((ev.confidence < 0.3).sum()),
        "n": len(ev),
    }


def detector_run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    torch.backends.cudnn.benchmark = cuda
    res: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    res["machine"] = machine()
    res["torch"] = torch.__version__

    def dump() -> None:
        (out / "detector.json").write_text(json.dumps(res, indent=1, default=float))

    t0 = time.perf_counter()
    common = dict(spacing_mm=args.phantom_spacing, workers=args.workers)
    train = training_phantoms(args.phantoms, seed=0, **common)
    test = training_phantoms(args.test_phantoms, seed=1_000_000, **common)
    res["phantoms"] = {
        "train": args.phantoms,
        "test": args.test_phantoms,
        "spacing_mm": args.phantom_spacing,
        "test_shapes": [list(p.volume.array.shape) for p in test],
        "seconds": time.perf_counter() - t0,
    }
    print("phantoms", res["phantoms"], flush=True)
    names = tuple(train[0].landmarks.names)
    if args.quick:
        teacher_cfg = DetectorConfig(
            landmarks=names, spacing_mm=16.0, grid=(40, 24, 80), channels=(8, 16, 32),
            fine_patch=16, fine_spacing_mm=3.0, fine_channels=(8, 16),
        )  # fmt: skip
        student_cfg = teacher_cfg.with_(channels=(4, 8, 16), fine_channels=(4, 8))
    else:
        teacher_cfg = DetectorConfig(landmarks=names)
        student_cfg = teacher_cfg.with_(channels=(8, 16, 32, 64), fine_channels=(8, 16, 32))
    base = mean_position_errors(train, test, names)
    res["baseline_mean_position_mm"] = float(base.error_mm.mean())
    dump()

    kw = dict(device=dev, batch_size=args.batch_size, steps=10**7, lr=args.lr, progress=False)
    runs: dict[str, Any] = {}
    res["runs"] = runs
    fits = {}
    plan = [
        ("teacher", teacher_cfg, None, args.teacher_seconds),
        ("student_distilled", student_cfg, "teacher", args.student_seconds),
        ("student_scratch", student_cfg, None, args.student_seconds),
    ]
    for name, cfg, teacher, seconds in plan:
        if seconds <= 0:
            continue
        r = train_landmarks(
            train,
            cfg,
            teacher=fits[teacher].detector if teacher else None,
            max_seconds=seconds,
            seed=1,
            **kw,
        )
        fits[name] = r
        ev = evaluate_detector(r.detector, test, device=dev)
        runs[name] = {
            "parameters": r.detector.n_parameters(),
            "train_seconds": r.seconds,
            "volumes": r.volumes,
            "volumes_per_s": r.volumes_per_s,
            "config": r.detector.config.to_dict(),
            **_summary(ev),
            "history_tail": r.history.tail(5).reset_index().to_dict(orient="records"),
        }
        print(name, {k: runs[name][k] for k in ("mre_mm", "coarse_mre_mm", "volumes_per_s")})
        dump()
        if name == "teacher":
            save_detector(
                r.detector,
                out / "teacher.safetensors",
                info={"command": " ".join(sys.argv), "test_mre_mm": runs[name]["mre_mm"]},
            )
    vol = test[0].volume
    for stage in (_precision, _throughput, _onnx, _registration):
        try:
            stage(res, fits, train, test, vol, dev, kw, teacher_cfg, out)
        except Exception as exc:  # record and go on: the other measurements still count
            import traceback

            res.setdefault("errors", {})[stage.__name__] = traceback.format_exc()[-2000:]
            print("stage failed", stage.__name__, exc, flush=True)
        dump()
    res["total_seconds"] = time.perf_counter() - t0
    dump()
    return res


def _precision(res, fits, train, test, vol, dev, kw, teacher_cfg, out):  # type: ignore[no-untyped-def]
    """Mixed precision: accuracy and latency with and without bf16 autocast; CPU latency."""
    cuda = dev.type == "cuda"
    runs = res["runs"]
    for name, r in fits.items():
        d = r.detector.to(dev).eval()
        row = runs[name]
        if cuda:
            ev32 = evaluate_detector(d, test, device=dev, amp=False)
            row["mre_mm_fp32"] = float(ev32.error_mm.mean())
            row["gpu_ms_fp32"] = _latency(lambda d=d: detect_landmarks(vol, d, amp=False), 10, True)
            row["gpu_ms_bf16"] = _latency(lambda d=d: detect_landmarks(vol, d, amp=True), 10, True)
        torch.set_num_threads(os.cpu_count() or 1)
        dc = r.detector.to("cpu")
        row["cpu_ms"] = _latency(lambda dc=dc: detect_landmarks(vol, dc, device="cpu"), 2, False)
        r.detector.to(dev)


def _throughput(res, fits, train, test, vol, dev, kw, teacher_cfg, out):  # type: ignore[no-untyped-def]
    """Training throughput with and without autocast (short runs) and on the CPU."""
    cuda = dev.type == "cuda"
    thr: dict[str, Any] = {}
    res["throughput"] = thr
    if cuda:
        for amp in (True, False):
            r = train_landmarks(train, teacher_cfg, amp=amp, seed=2, **{**kw, "steps": 30})
            thr[f"gpu_{'bf16' if amp else 'fp32'}_volumes_per_s"] = r.volumes_per_s
    r = train_landmarks(
        train[:2], teacher_cfg, steps=2, batch_size=1, device="cpu", progress=False, seed=2
    )
    thr["cpu_volumes_per_s"] = r.volumes_per_s


def _onnx(res, fits, train, test, vol, dev, kw, teacher_cfg, out):  # type: ignore[no-untyped-def]
    """ONNX export of both stages of every detector, checked on real resampled inputs."""
    onnx: dict[str, Any] = {}
    res["onnx"] = onnx
    img = windowed_tensor(vol, teacher_cfg.window)
    a_v = volume_affine(vol)
    a_c = coarse_affine(a_v, img.shape[1:], teacher_cfg.spacing_mm, teacher_cfg.grid)
    x = resample(img, a_v, [a_c], teacher_cfg.grid)
    truth = np.asarray(test[0].landmarks.positions)
    from medpose.imaging.detector_run import fine_affines

    xf = resample(img, a_v, fine_affines(truth[:1], teacher_cfg.fine_spacing_mm,
                                          teacher_cfg.fine_patch), (teacher_cfg.fine_patch,) * 3)  # fmt: skip
    for name, r in fits.items():
        d = r.detector.to("cpu").eval()
        for stage, inp in (("coarse", x), ("fine", xf)):
            path = out / f"{name}_{stage}.onnx"
            export_onnx(d, path, stage=stage)
            chk = check_onnx(d, path, inp, stage=stage)
            onnx[f"{name}/{stage}"] = {
                "max_logit_diff": chk.max_logit_diff,
                "max_coord_diff_vox": chk.max_coord_diff_vox,
                "torch_cpu_ms": chk.torch_ms,
                "onnxruntime_cpu_ms": chk.onnx_ms,
                "bytes": path.stat().st_size,
            }
            path.unlink()
        r.detector.to(dev)


def _registration(res, fits, train, test, vol, dev, kw, teacher_cfg, out):  # type: ignore[no-untyped-def]
    """Detection + registration of held-back synthetic patients."""
    best = fits["teacher"].detector.to(dev)
    det_rms = float(np.sqrt(np.mean(np.square(evaluate_detector(best, test).error_mm))))
    cam_fle = 1.0  # mm RMS, camera side
    rng = np.random.default_rng(7)
    regs = []
    for i, ph in enumerate(test):
        truth_lps = np.asarray(ph.landmarks.positions)
        body = ph.image_to_body.apply(truth_lps)
        noisy = body + rng.normal(0.0, cam_fle / np.sqrt(3.0), body.shape)
        cam = Landmarks(ph.landmarks.names, noisy, frame="skeleton")
        try:
            reg = detect_and_register(
                ph.volume, best, cam, fle={"fixed": cam_fle, "moving": det_rms}, device=dev
            )
        except MedposeError as exc:
            regs.append({"phantom": i, "error": str(exc)[:300]})
            continue
        targets = Landmarks(ph.landmarks.names, truth_lps, frame="LPS")
        pred = np.asarray(reg.predict_tre(targets))
        tre = np.linalg.norm(reg.transform.apply(truth_lps) - body, axis=1)
        regs.append(
            {
                "phantom": i,
                "fiducials": reg.n_fiducials,
                "fre_mm": reg.fre,
                "tre_mean_mm": float(tre.mean()),
                "tre_max_mm": float(tre.max()),
                "predicted_rms_tre_mm": float(np.sqrt(np.mean(pred**2))),
                "inside_95_bound": float(np.mean(tre <= Q95_OVER_RMS * pred)),
            }
        )
    res["registration"] = {"detector_fle_rms_mm": det_rms, "camera_fle_mm": cam_fle, "rows": regs}


def _reading(res: dict[str, Any]) -> str:
    """Plain-language summary of the mixed-precision, distillation and ONNX measurements."""
    runs, thr, onnx = res["runs"], res["throughput"], res["onnx"]
    t, d, s = runs["teacher"], runs["student_distilled"], runs["student_scratch"]
    out = []
    if "gpu_bf16_volumes_per_s" in thr:
        out.append(
            f"Mixed precision: bf16 autocast trains at {thr['gpu_bf16_volumes_per_s']:.1f} "
            f"volumes/s against {thr['gpu_fp32_volumes_per_s']:.1f} in fp32 "
            f"({thr['gpu_bf16_volumes_per_s'] / thr['gpu_fp32_volumes_per_s']:.1f}x); the "
            f"teacher's held-back MRE is {t['mre_mm']:.3f} mm with bf16 inference and "
            f"{t.get('mre_mm_fp32', float('nan')):.3f} mm with fp32."
        )
    out.append(
        f"Distillation: in the same {d['train_seconds']:.0f} s, the student "
        f"({d['parameters']:,} parameters, {100 * d['parameters'] / t['parameters']:.0f}% of the "
        f"teacher's) reaches {d['mre_mm']:.2f} mm MRE with the teacher and {s['mre_mm']:.2f} mm "
        f"without it ({d['flagged']} and {s['flagged']} of {d['n']} detections flagged)."
    )
    coarse = max(v["max_coord_diff_vox"] for k, v in onnx.items() if k.endswith("coarse"))
    fine = max(v["max_coord_diff_vox"] for k, v in onnx.items() if k.endswith("fine"))
    sp = t["config"]["spacing_mm"]
    fsp = t["config"]["fine_spacing_mm"]
    out.append(
        f"ONNX: onnxruntime and torch positions agree within {coarse:.1e} coarse voxels "
        f"({coarse * sp:.1e} mm) and {fine:.1e} fine voxels ({fine * fsp:.1e} mm) on real "
        "resampled inputs.  The CPU times are of one forward pass of one network; a whole "
        "CPU detection (table above) also windows and resamples the volume."
    )
    return "\n\n".join(out)


def detector_report(path: str, command: str = "", checkpoint: str = "") -> str:
    res = json.loads(Path(path).read_text())
    runs = res["runs"]
    rows = []
    for name, r in runs.items():
        rows.append(
            [
                name,
                f"{r['parameters']:,}",
                r["mre_mm"],
                r.get("mre_mm_fp32", float("nan")),
                r["p95_mm"],
                r["coarse_mre_mm"],
                r["train_seconds"],
                r["volumes_per_s"],
                r.get("gpu_ms_fp32", float("nan")),
                r.get("gpu_ms_bf16", float("nan")),
                r["cpu_ms"],
            ]
        )
    t1 = markdown_table(
        rows,
        [
            "detector",
            "parameters",
            "MRE mm (bf16)",
            "MRE mm (fp32)",
            "95th pct mm",
            "coarse MRE mm",
            "train s",
            "train volumes/s",
            "GPU ms fp32",
            "GPU ms bf16",
            "CPU ms",
        ],
    )
    thr = res["throughput"]
    t2 = markdown_table(
        [[k, v] for k, v in thr.items()], ["training throughput (teacher config)", "volumes/s"]
    )
    t3 = markdown_table(
        [
            [k, v["max_logit_diff"], v["max_coord_diff_vox"], v["torch_cpu_ms"], v["onnxruntime_cpu_ms"]]
            for k, v in res["onnx"].items()
        ],
        ["ONNX stage", "max logit diff", "max coord diff (vox)", "torch CPU ms", "onnxruntime CPU ms"],
    )  # fmt: skip
    reg = res["registration"]
    t4 = markdown_table(
        [
            [r["phantom"], r["fiducials"], r["fre_mm"], r["tre_mean_mm"], r["tre_max_mm"],
             r["predicted_rms_tre_mm"], r["inside_95_bound"]]
            for r in reg["rows"] if "error" not in r
        ],
        ["patient", "fiducials", "FRE mm", "TRE mean mm", "TRE max mm", "predicted RMS TRE mm",
         "fraction inside 95% bound"],
    )  # fmt: skip
    ph = res["phantoms"]
    ok = [r for r in reg["rows"] if "error" not in r]
    inside = float(np.mean([r["inside_95_bound"] for r in ok])) if ok else float("nan")
    all_in = sum(r["inside_95_bound"] == 1.0 for r in ok)
    cmd = f"Command: `{command}`" if command else ""
    if checkpoint:
        cmd += f"\n\nThe teacher's checkpoint: `{checkpoint}` (`load_detector` reads it)."
    text = f"""## Landmark detector (`benchmarks/learning.py detector`)

{cmd}

Device: {res["device"]} (torch {res["torch"]}); host {res["machine"]}.
Phantoms: {ph["train"]} training and {ph["test"]} held-back pelvis/leg CT phantoms at
{ph["spacing_mm"]} mm (varied height, joint angles, placement, noise; built in
{ph["seconds"]:.0f} s).  Predicting each landmark's mean training position gives a mean
radial error of {res["baseline_mean_position_mm"]:.1f} mm on the held-back phantoms.
MRE: mean radial error over {runs["teacher"]["n"]} held-back landmarks.  Latency: one whole
detection (windowing, resampling, both stages) of a {ph["test_shapes"][0]} voxel volume.

{t1}

{t2}

{t3}

Detection + registration (teacher; camera FLE {reg["camera_fle_mm"]} mm RMS, detector FLE
{reg["detector_fle_rms_mm"]:.2f} mm RMS from the held-back errors; TRE at every landmark;
95% bound = {Q95_OVER_RMS:.3f} x predicted RMS TRE):

{t4}

{100 * inside:.0f}% of the target errors lie inside their 95% bound; {all_in} of {len(ok)}
patients have every target inside it.

{_reading(res)}
"""
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("detector")
    d.add_argument("--out", required=True)
    d.add_argument("--device", default=None)
    d.add_argument("--phantoms", type=int, default=48)
    d.add_argument("--test-phantoms", type=int, default=8)
    d.add_argument("--phantom-spacing", type=float, default=1.5)
    d.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    d.add_argument("--batch-size", type=int, default=4)
    d.add_argument("--lr", type=float, default=2e-3)
    d.add_argument("--teacher-seconds", type=float, default=240.0)
    d.add_argument("--student-seconds", type=float, default=90.0)
    d.add_argument("--quick", action="store_true", help="tiny networks and grids (smoke run)")
    r = sub.add_parser("detector-report")
    r.add_argument("json")
    r.add_argument("--no-write", action="store_true")
    r.add_argument("--command", default="", help="the command that produced the JSON")
    r.add_argument("--checkpoint", default="", help="where the teacher checkpoint is kept")
    args = ap.parse_args()
    if args.what == "detector":
        detector_run(args)
    else:
        text = detector_report(args.json, args.command, args.checkpoint)
        print(text)
        if not args.no_write:
            update_results("learning-detector", text)


if __name__ == "__main__":
    main()
