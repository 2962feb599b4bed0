"""``medpose batch PROTOCOL SESSION_DIR... --db URL``: one protocol on many sessions, on Dask."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EXIT_INVALID, EXIT_OK, check_output

__all__ = ["register", "ORDER"]

ORDER = 31


def register(sub: Any) -> None:
    """Add the ``batch`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "batch",
        help="run a protocol on many sessions on Dask, recording each in the study",
        description="Run PROTOCOL (a catalogue name or a .yaml file) on every SESSION_DIR on a "
        "Dask cluster: a local one by default, or an existing one by its scheduler's address. "
        "Sessions already recorded in the study with the same protocol and inputs are skipped; "
        "a session that fails is listed and the others complete. Workers only compute; this "
        "program alone writes the database, one transaction per session, so an interrupted "
        "batch leaves it consistent and the next one picks up where it stopped. Exit code 0 "
        "when every session is done or skipped, 1 when some failed.",
    )
    p.add_argument("protocol", metavar="PROTOCOL", help="protocol name or .yaml file")
    p.add_argument("sessions", metavar="SESSION_DIR", type=Path, nargs="+", help="session folders")
    p.add_argument(
        "--db", metavar="URL", required=True, help="study database: SQLite file or SQLAlchemy URL"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786"
    )
    where.add_argument(
        "--workers", metavar="N", type=int, help="local cluster workers (default: the CPUs, max 8)"
    )
    p.add_argument(
        "--threads", action="store_true", help="local workers as threads of this process"
    )
    p.add_argument(
        "--out", metavar="DIR", type=Path, help="also write each session's tables to DIR/<session>"
    )
    p.add_argument(
        "--trial",
        metavar="PROTOCOL_TRIAL=SESSION_TRIAL",
        action="append",
        default=[],
        help="assess a session trial named otherwise as the protocol's trial (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose batch``."""
    from ..errors import InputError
    from ..protocol.batch import run_batch

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: found {args.workers}; expected a whole number >= 1")
    if args.out is not None:
        check_output(args.out, "--out", folder=True)
    trials = {}
    for text in args.trial:
        name, sep, trial = text.partition("=")
        if not sep or not name or not trial:
            raise InputError(f"--trial: found {text!r}; expected PROTOCOL_TRIAL=SESSION_TRIAL")
        trials[name] = trial
    report = run_batch(
        args.protocol,
        args.sessions,
        args.db,
        scheduler=args.scheduler,
        workers=args.workers,
        out=args.out,
        progress=not args.no_progress,
        trials=trials or None,
        processes=not args.threads,
    )
    print(report)
    if not report.ok:
        print(f"{len(report.failed)} session(s) failed: {', '.join(report.failed['session'])}")
        return EXIT_INVALID
    return EXIT_OK
