"""``medpose demo --out DIR``: a synthetic patient through every pipeline stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_INVALID, EXIT_OK

__all__ = ["register", "ORDER"]

ORDER = 0


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "demo",
        help="build a synthetic demo session and validate it",
        description="Write a synthetic patient session (known truth) to OUT/session with "
        "medpose.synthetic.make_session, validate it and summarise it.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("medpose-demo"),
        help="output folder (default: ./medpose-demo); the session is written to OUT/session",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (default 0); the same seed gives the same files",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose demo``."""
    target = args.out / "session"
    if target.exists() and any(target.iterdir()) and not (target / "session.yaml").is_file():
        print(
            f"error: {target} exists and is not a medpose session; choose another --out",
            file=sys.stderr,
        )
        return EXIT_INVALID
    # The demo runs every stage, the torch-backed fit included: imported only for `medpose demo`,
    # so that `medpose validate` starts without torch.
    from ..demo import run_demo

    summary = run_demo(args.out, seed=args.seed)
    if not summary.get("valid"):
        print("the demo session is not valid:", file=sys.stderr)
        for p in summary.get("problems", []):
            print(f"  {p}", file=sys.stderr)
        return EXIT_INVALID
    print("session is valid; demo finished")
    return EXIT_OK
