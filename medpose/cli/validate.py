"""``medpose validate SESSION``: check a session folder and every file it names."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..protocol.validate import validate_session
from .common import EXIT_INVALID, EXIT_OK, print_problems

__all__ = ["register", "ORDER"]

ORDER = 10


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "validate",
        help="check a session folder and every file it names",
        description="Check session.yaml against the schema and open every file it names "
        "(imaging, calibration, keypoints). Prints the problems file by file. "
        "Exit 0 if the session is valid, 1 otherwise.",
    )
    p.add_argument(
        "session", metavar="SESSION", type=Path, help="session folder (or its session.yaml)"
    )
    p.add_argument(
        "--json", action="store_true", help="print a JSON object {valid, problems: [...]} instead"
    )
    p.add_argument(
        "--schema-only",
        action="store_true",
        help="check the YAML and the paths only, without opening the files",
    )
    p.add_argument(
        "--show-identifiers",
        action="store_true",
        help="show the patient id and absolute paths in the messages "
        "(hidden by default: replaced by <patient-id> and the path's last part)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose validate``."""
    problems = validate_session(
        args.session, check_files=not args.schema_only, show_identifiers=args.show_identifiers
    )
    if args.json:
        print(
            json.dumps(
                {"valid": not problems, "problems": [p.to_dict() for p in problems]}, indent=2
            )
        )
    elif problems:
        print_problems(problems)
    else:
        print("session is valid")
    return EXIT_OK if not problems else EXIT_INVALID
