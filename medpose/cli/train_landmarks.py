"""``medpose train-landmarks``: train a landmark detector on synthetic CT phantoms."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import EXIT_INVALID, EXIT_OK, check_output

__all__ = ["register", "ORDER"]

ORDER = 60


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def register(sub: Any) -> None:
    """Add the ``train-landmarks`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "train-landmarks",
        help="train a CT landmark detector on synthetic phantoms",
        description="Train a two-stage heatmap landmark detector (MONAI U-Nets, soft-argmax) "
        "on synthetic CT phantoms of varied body size, pose and noise, evaluate it on "
        "held-back phantoms and save it as a .safetensors checkpoint with its config. "
        "Deterministic for a given --seed on the CPU.",
    )
    p.add_argument("output", type=Path, help="checkpoint to write (.safetensors)")
    p.add_argument("--region", default="pelvis_legs", choices=["pelvis_legs", "shoulder_arm"])
    p.add_argument("--phantoms", type=int, default=64, help="training phantoms (default 64)")
    p.add_argument("--test-phantoms", type=int, default=8, help="held-back phantoms (default 8)")
    p.add_argument(
        "--phantom-spacing", type=float, default=1.5, help="phantom voxel spacing, mm (1.5)"
    )
    p.add_argument("--spacing", type=float, default=6.0, help="coarse grid spacing, mm (6)")
    p.add_argument(
        "--grid", type=_ints, default=(112, 80, 224), help="coarse grid, e.g. 112,80,224"
    )
    p.add_argument(
        "--channels", type=_ints, default=(16, 32, 64, 128), help="coarse U-Net channels"
    )
    p.add_argument("--fine-patch", type=int, default=32, help="fine cube edge, voxels (0: none)")
    p.add_argument("--fine-spacing", type=float, default=1.5, help="fine cube spacing, mm (1.5)")
    p.add_argument("--fine-channels", type=_ints, default=(16, 32, 64), help="fine U-Net channels")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-seconds", type=float, default=None, help="stop training after this long")
    p.add_argument("--teacher", type=Path, default=None, help="distil from this checkpoint")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 mixed precision on the GPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="processes building phantoms")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose train-landmarks``."""
    import sys

    from ..errors import InputError
    from ..imaging.detector import DetectorConfig, load_detector
    from ..imaging.detector_train import (
        evaluate_detector,
        mean_position_errors,
        train_landmarks,
        training_phantoms,
    )

    try:
        check_output(args.output, "OUTPUT")
        common = dict(region=args.region, spacing_mm=args.phantom_spacing, workers=args.workers)
        shown = not args.quiet
        train = training_phantoms(
            args.phantoms, seed=args.seed, progress=shown, desc="training phantoms", **common
        )
        test = training_phantoms(
            args.test_phantoms,
            seed=args.seed + 1_000_000,
            progress=shown,
            desc="held-back phantoms",
            **common,
        )
        config = DetectorConfig(
            landmarks=tuple(train[0].landmarks.names),
            spacing_mm=args.spacing,
            grid=args.grid,
            channels=args.channels,
            fine_patch=args.fine_patch,
            fine_spacing_mm=args.fine_spacing,
            fine_channels=args.fine_channels,
        )
        teacher = load_detector(args.teacher) if args.teacher else None
        command = "medpose train-landmarks " + " ".join(sys.argv[2:])
        result = train_landmarks(
            train,
            config,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            teacher=teacher,
            device=args.device,
            amp=not args.no_amp,
            seed=args.seed,
            max_seconds=args.max_seconds,
            progress=not args.quiet,
        )
        ev = evaluate_detector(result.detector, test, amp=not args.no_amp, progress=shown)
        base = mean_position_errors(train, test, config.landmarks)
        summary = {
            "mean_radial_error_mm": float(ev.error_mm.mean()),
            "mean_position_baseline_mm": float(base.error_mm.mean()),
            "test_phantoms": args.test_phantoms,
            "volumes_per_s": result.volumes_per_s,
            "train_seconds": result.seconds,
            "device": result.device,
        }
        from ..imaging.detector import save_detector

        save_detector(result.detector, args.output, info={"command": command, **summary})
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(result)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.output}")
    return EXIT_OK
