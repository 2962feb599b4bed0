"""The shipped landmark detector's validation record and the honesty of its TRE bound.

Two stages::

    python benchmarks/detector_validation.py measure --out DIR   # GPU (or CPU: slow)
    python benchmarks/detector_validation.py assess DIR          # CPU, seconds to minutes

``measure`` runs the shipped detector on 40 held-back *validation* phantoms at 1.5 mm (seeds
from 2,000,000; training used 0-47, the learning benchmark's test set 1,000,000-1,000,007)
and writes their errors (``val_errors.csv``, :func:`~medpose.imaging.detector_train.
evaluate_detector`), then detects the landmarks of 32 *other* held-back patients (seeds from
3,000,000) and writes detections and truth (``patients.json``).  The files of the run behind
``docs/detector.md`` are kept in ``benchmarks/detector_validation/``.

``assess`` builds the validation record (:func:`~medpose.imaging.detector_train.
validation_record`), registers every patient's accepted detections to camera points with
1 mm RMS isotropic Gaussian noise (``--draws`` noise draws per patient) with the detected
side's FLE taken from the record (per landmark, as ``detect_and_register`` does) and, for
comparison, a single scalar FLE, and counts the targets (all 14 landmarks) whose true TRE lies
inside the predicted 95 % bound: the 95th percentile of the norm of a Gaussian with the
predicted TRE covariance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpose.data import Landmarks
from medpose.imaging.detector import load_detector, shipped_detector
from medpose.imaging.detector_train import evaluate_detector, training_phantoms, validation_record
from medpose.registration import register

KEPT = Path(__file__).resolve().parent / "detector_validation"


def bound95(cov: np.ndarray, n: int = 200_000, seed: int = 0) -> np.ndarray:
    """95th percentile of |e| for e ~ N(0, C), for each (3, 3) C of ``cov`` (M, 3, 3)."""
    z2 = np.random.default_rng(seed).standard_normal((n, 3)) ** 2
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None)  # (M, 3)
    return np.quantile(np.sqrt(z2 @ lam.T), 0.95, axis=0)


def measure(out: Path, n_val: int, n_pat: int, workers: int) -> None:
    import torch

    from medpose.imaging.detector_run import detect_landmarks

    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    det = load_detector(shipped_detector()).to(dev)
    kw: dict[str, Any] = dict(spacing_mm=1.5, workers=workers)
    val = training_phantoms(n_val, seed=2_000_000, **kw)
    evaluate_detector(det, val).to_csv(out / "val_errors.csv", index=False)
    del val
    rows = []
    for ph in training_phantoms(n_pat, seed=3_000_000, **kw):
        d = detect_landmarks(ph.volume, det)
        truth = np.asarray(ph.landmarks.positions)
        rows.append(
            {
                "names": list(ph.landmarks.names),
                "truth": truth.tolist(),
                "body": ph.image_to_body.apply(truth).tolist(),
                "det_names": list(d.landmarks.names),
                "det": d.landmarks.positions.tolist(),
                "conf": d.confidence.tolist(),
                "min_conf": d.min_confidence,
            }
        )
    (out / "patients.json").write_text(json.dumps(rows))


def _moments(df: pd.DataFrame) -> dict[str, np.ndarray]:
    rec = validation_record(df, 0.3)["landmarks"]
    return {n: np.asarray(r["moment_mm2"]) for n, r in rec.items()}


def assess(folder: Path, draws: int) -> dict[str, Any]:
    errors = pd.read_csv(folder / "val_errors.csv")
    pats = json.loads((folder / "patients.json").read_text())
    per = _moments(errors)
    scalar = float(np.sqrt(np.mean(errors.error_mm.to_numpy() ** 2)))
    models = {
        "per-landmark record": lambda k: np.array([per[n] for n in k]),
        f"scalar RMS of all validation errors ({scalar:.2f} mm)": lambda k: scalar,
    }
    res: dict[str, Any] = {}
    for label, fle_of in models.items():
        for robust in (True, False):
            inside = total = 0
            for rep in range(draws):
                rng = np.random.default_rng(1000 + rep)
                for p in pats:
                    body, truth = np.asarray(p["body"]), np.asarray(p["truth"])
                    cam = Landmarks(
                        tuple(p["names"]), body + rng.normal(0, 1 / np.sqrt(3), body.shape),
                        frame="skeleton",
                    )  # fmt: skip
                    keep = [n for n, c in zip(p["det_names"], p["conf"]) if c >= p["min_conf"]]
                    det = Landmarks(tuple(p["det_names"]), np.asarray(p["det"]), frame="LPS")
                    reg = register(
                        cam, det.subset(keep), names=keep, robust=robust,
                        fle={"fixed": 1.0, "moving": fle_of(keep)},
                    )  # fmt: skip
                    tre = np.linalg.norm(reg.transform.apply(truth) - body, axis=1)
                    inside += int((tre <= bound95(reg.tre_covariance(truth))).sum())
                    total += len(tre)
            key = f"{label}, robust={robust}"
            res[key] = {"inside": inside, "targets": total, "fraction": inside / total}
            print(f"{key}: {inside}/{total} = {inside / total:.3f}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--validation", type=int, default=40)
    m.add_argument("--patients", type=int, default=32)
    m.add_argument("--workers", type=int, default=12)
    a = sub.add_parser("assess")
    a.add_argument("folder", type=Path, nargs="?", default=KEPT)
    a.add_argument("--draws", type=int, default=10)
    args = ap.parse_args(argv)
    if args.cmd == "measure":
        measure(args.out, args.validation, args.patients, args.workers)
    else:
        assess(args.folder, args.draws)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
