"""``medpose detect-landmarks``: find landmarks in a CT/MRI volume with a trained detector."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EXIT_INVALID, EXIT_OK, check_output

__all__ = ["register", "ORDER"]

ORDER = 61


def register(sub: Any) -> None:
    """Add the ``detect-landmarks`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "detect-landmarks",
        help="find landmarks in a volume with a trained detector",
        description="Run a detector checkpoint (from train-landmarks) on a volume (NIfTI, "
        "NRRD, MetaImage or a DICOM folder) and write the landmarks as a Slicer .mrk.json "
        "(or .fcsv/.csv by extension). Low-confidence detections are flagged and left out "
        "unless --include-flagged. Exit 1 on a bad volume or checkpoint.",
    )
    p.add_argument("volume", type=Path, help="image volume file or DICOM folder")
    p.add_argument("checkpoint", type=Path, help="detector checkpoint (.safetensors)")
    p.add_argument("output", type=Path, help="landmarks file to write (.mrk.json, .fcsv, .csv)")
    p.add_argument("--min-confidence", type=float, default=None, help="flagging threshold")
    p.add_argument("--include-flagged", action="store_true", help="also write flagged ones")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose detect-landmarks``."""
    import sys

    from ..errors import InputError
    from ..imaging.detector_run import detect_landmarks
    from ..imaging.volume import read_volume

    try:
        check_output(args.output, "OUTPUT")
        volume = read_volume(args.volume)
        det = detect_landmarks(
            volume, args.checkpoint, device=args.device, min_confidence=args.min_confidence
        )
        if len(det.accepted) == 0 and not args.include_flagged:
            print(det.to_dataframe().round(2).to_string())
            raise InputError(
                f"every detection is below --min-confidence {det.min_confidence:g}; nothing "
                f"written to {args.output.name} (--include-flagged writes them all, or lower "
                "--min-confidence; an undertrained checkpoint: train longer)"
            )
        det.write(args.output, include_flagged=args.include_flagged)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for note in det.notes:
        print(note)
    print(det.to_dataframe().round(2).to_string())
    print(det)
    print(f"wrote {args.output}")
    return EXIT_OK
