"""``medpose demo --out DIR``: a synthetic patient seen twice, through the whole pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_INVALID, EXIT_OK, check_output

__all__ = ["register", "ORDER"]

ORDER = 0

#: The session folders the demo writes (and replaces) under ``OUT/sessions``.
SESSION_NAMES = ("baseline", "follow-up")


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "demo",
        help="a synthetic patient's two sessions through the whole pipeline, to reports",
        description="Write a synthetic patient's baseline and follow-up sessions (CT phantom, "
        "four cameras, static trial, deep squat and shoulder abduction; the left side "
        "improves between them) to OUT/sessions, run navigation_check, deep_squat and "
        "shoulder_abduction on both (registration, triangulation, skeleton fit, scores), "
        "record the runs in OUT/study.sqlite and write each run's clinical report (HTML and "
        "PDF) to OUT/reports. Prints the scores, the changes larger than the minimal "
        "detectable change and where everything is; the summary also goes to "
        "OUT/summary.json.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("medpose-demo"),
        help="output folder (default: ./medpose-demo)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (default 0); the same seed gives the same sessions",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes (default: 2 with at least two CPU cores, else 1)",
    )
    p.add_argument("--no-pdf", action="store_true", help="write the HTML reports only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose demo``."""
    check_output(args.out, "--out", folder=True)
    for name in SESSION_NAMES:
        target = args.out / "sessions" / name
        if target.exists() and any(target.iterdir()) and not (target / "session.yaml").is_file():
            print(
                f"error: {target} exists and is not a medpose session; choose another --out",
                file=sys.stderr,
            )
            return EXIT_INVALID
    if args.jobs is not None and args.jobs < 1:
        print(f"error: --jobs: found {args.jobs}; expected 1 or more", file=sys.stderr)
        return EXIT_INVALID
    # The demo runs every stage, the torch-backed fit included: imported only for `medpose demo`,
    # so that `medpose validate` starts without torch.
    from ..demo import run_demo

    summary = run_demo(args.out, seed=args.seed, jobs=args.jobs, pdf=not args.no_pdf)
    if not summary.get("valid"):
        print("a demo session is not valid:", file=sys.stderr)
        for p in summary.get("problems", []):
            print(f"  {p}", file=sys.stderr)
        return EXIT_INVALID
    print("demo finished")
    return EXIT_OK
