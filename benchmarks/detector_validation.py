"""The shipped landmark detector's validation record and the honesty of its TRE bound.

Run (GPU or CPU; phantoms at 1.5 mm as in training)::

    python benchmarks/detector_validation.py --out OUTDIR [--validation 24] [--patients 16]

1. measures the detector's error per landmark on held-back *validation* phantoms (seeds from
   2,000,000; training used 0-47, the benchmark's test set 1,000,000-1,000,007):
   :func:`~medpose.imaging.detector_train.validation_record`, and writes the checkpoint
   again with it (``OUTDIR/landmark_detector.safetensors``);
2. detects and registers *other* held-back patients (seeds from 3,000,000) to camera points
   with 1 mm RMS isotropic noise, once with a single scalar detector FLE (the RMS of the
   validation errors, every landmark alike) and once with the checkpoint's per-landmark FLE
   (:func:`~medpose.imaging.detector_run.detect_and_register`'s default), and counts the
   landmarks (targets) whose true TRE lies inside the predicted 95 % bound: the 95th
   percentile of the norm of a Gaussian with the predicted TRE covariance.

Everything lands in ``OUTDIR/detector_validation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from medpose.data import Landmarks
from medpose.imaging.detector import load_detector, save_detector, shipped_detector
from medpose.imaging.detector_run import detect_and_register
from medpose.imaging.detector_train import evaluate_detector, training_phantoms, validation_record

SOURCE = shipped_detector()


def bound95(cov: np.ndarray, n: int = 200_000, seed: int = 0) -> np.ndarray:
    """95th percentile of |e| for e ~ N(0, C), for each (3, 3) C of ``cov`` (M, 3, 3)."""
    z2 = np.random.default_rng(seed).standard_normal((n, 3)) ** 2
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None)  # (M, 3)
    return np.quantile(np.sqrt(z2 @ lam.T), 0.95, axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=SOURCE)
    ap.add_argument("--validation", type=int, default=24)
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--spacing", type=float, default=1.5)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    det = load_detector(args.checkpoint, device=args.device or "cpu")
    if args.device is None:
        import torch

        det = det.to("cuda" if torch.cuda.is_available() else "cpu")
    kw = dict(spacing_mm=args.spacing, workers=args.workers)
    val_ph = training_phantoms(args.validation, seed=2_000_000, **kw)
    errors = evaluate_detector(det, val_ph)
    del val_ph
    record = validation_record(
        errors,
        det.config.min_confidence,
        seeds=f"2000000-{2_000_000 + args.validation - 1}",
        spacing_mm=args.spacing,
        command=" ".join(["benchmarks/detector_validation.py", *(argv or sys.argv[1:])]),
    )
    info = {k: v for k, v in det.config.extra.items() if k != "validation"}
    dest = save_detector(
        det, args.out / "landmark_detector.safetensors", {**info, "validation": record}
    )
    det = load_detector(dest, device=str(next(det.parameters()).device))
    scalar = float(np.sqrt(np.mean(errors.error_mm.to_numpy() ** 2)))
    print(f"validation: {args.validation} phantoms, scalar RMS {scalar:.3f} mm", flush=True)
    for n, r in record["landmarks"].items():
        print(f"  {n:28s} rms {r['rms_mm']:.3f} bias {np.round(r['bias_mm'], 3).tolist()}")

    patients = training_phantoms(args.patients, seed=3_000_000, **kw)
    cam_fle = 1.0
    rng = np.random.default_rng(7)
    rows: list[dict[str, Any]] = []
    for i, ph in enumerate(patients):
        truth = np.asarray(ph.landmarks.positions)
        body = ph.image_to_body.apply(truth)
        cam = Landmarks(
            ph.landmarks.names, body + rng.normal(0.0, cam_fle / np.sqrt(3.0), body.shape),
            frame="skeleton",
        )  # fmt: skip
        targets = Landmarks(ph.landmarks.names, truth, frame="LPS")
        for mode, fle in (
            ("scalar", {"fixed": cam_fle, "moving": scalar}),
            ("per_landmark", cam_fle),
        ):
            reg = detect_and_register(ph.volume, det, cam, fle=fle)
            tre = np.linalg.norm(reg.transform.apply(truth) - body, axis=1)
            b = bound95(reg.tre_covariance(targets))
            rows.append(
                {
                    "patient": i,
                    "mode": mode,
                    "fiducials": reg.n_fiducials,
                    "fre_mm": reg.fre,
                    "tre_mean_mm": float(tre.mean()),
                    "tre_max_mm": float(tre.max()),
                    "bound95_mean_mm": float(b.mean()),
                    "inside": int((tre <= b).sum()),
                    "targets": len(tre),
                }
            )
            print(rows[-1], flush=True)
    summary = {}
    for mode in ("scalar", "per_landmark"):
        rs = [r for r in rows if r["mode"] == mode]
        inside, total = sum(r["inside"] for r in rs), sum(r["targets"] for r in rs)
        summary[mode] = {
            "targets_inside": inside,
            "targets": total,
            "fraction_inside": inside / total,
            "patients_all_inside": sum(r["inside"] == r["targets"] for r in rs),
            "patients": len(rs),
        }
    print(json.dumps(summary, indent=1))
    res = {
        "validation": record,
        "scalar_fle_mm": scalar,
        "camera_fle_mm": cam_fle,
        "rows": rows,
        "summary": summary,
        "seconds": time.perf_counter() - t0,
    }
    (args.out / "detector_validation.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
