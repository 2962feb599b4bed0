"""The ``medpose`` command line (``medpose --help``; also ``python -m medpose``).

Commands: ``validate`` (check a session folder), ``demo`` (build and check a
synthetic session) and ``protocols`` (list or describe the assessment protocols).  Exit codes: 0 success, 1 invalid input or a medpose error,
2 wrong usage (argparse), 130 interrupted.  No command prints a traceback: an unexpected
error is one ``error:`` line, without absolute paths.  See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ._version import __version__
from .errors import MedposeError
from .protocol.definition import Protocol, catalogue
from .protocol.problems import Problem, Redactor
from .protocol.validate import validate_session

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="medpose",
        description="Medical motion assessment and surgical navigation: imaging landmarks, camera keypoints, "
        "registration, constrained skeleton fits and rehabilitation scores.",
        epilog="Exit codes: 0 success, 1 invalid input or error, 2 wrong usage. Run 'medpose COMMAND --help'.",
    )
    parser.add_argument("--version", action="version", version=f"medpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.set_defaults(func=_cmd_validate)

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
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "protocols",
        help="list the assessment protocols, or describe one",
        description="Without NAME: one line per protocol of the catalogue (name, version, "
        "title). With NAME (a catalogue name or a protocol .yaml file): check it and describe it.",
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="protocol name or .yaml file")
    p.set_defaults(func=_cmd_protocols)
    return parser


def _print_problems(problems: list[Problem], stream: TextIO | None = None) -> None:
    stream = sys.stdout if stream is None else stream
    by_file: dict[str, list[Problem]] = {}
    for pr in problems:
        by_file.setdefault(pr.file, []).append(pr)
    for file, items in by_file.items():
        print(file, file=stream)
        for pr in items:
            print(f"  {pr.field + ': ' if pr.field else ''}{pr.message}", file=stream)
    print(f"{len(problems)} problem(s) in {len(by_file)} file(s)", file=stream)


def _cmd_validate(args: argparse.Namespace) -> int:
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
        _print_problems(problems)
    else:
        print("session is valid")
    return EXIT_OK if not problems else EXIT_INVALID


def _cmd_demo(args: argparse.Namespace) -> int:
    target = args.out / "session"
    if target.exists() and any(target.iterdir()) and not (target / "session.yaml").is_file():
        print(
            f"error: {target} exists and is not a medpose session; choose another --out",
            file=sys.stderr,
        )
        return EXIT_INVALID
    # The demo runs every stage, the torch-backed fit included: imported only for `medpose demo`,
    # so that `medpose validate` starts without torch.
    from .demo import run_demo

    summary = run_demo(args.out, seed=args.seed)
    if not summary.get("valid"):
        print("the demo session is not valid:", file=sys.stderr)
        for p in summary.get("problems", []):
            print(f"  {p}", file=sys.stderr)
        return EXIT_INVALID
    print("session is valid; demo finished")
    return EXIT_OK


def _cmd_protocols(args: argparse.Namespace) -> int:
    if args.name is None:
        for protocol in catalogue():
            print(f"{protocol.name}\t{protocol.version}\t{protocol.title}")
        return EXIT_OK
    print(Protocol.load(args.name).describe())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medpose`` command; returns the exit code (``--help``/``--version`` included)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return (
            int(e.code) if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_USAGE)
        )
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # what a message may name: the folder the command works in, relative; nothing above it
    redact = Redactor(Path(getattr(args, "session", None) or getattr(args, "out", None) or "."))
    try:
        return int(args.func(args))
    except MedposeError as e:
        print(f"error: {redact.text(str(e))}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # the command line never prints a traceback
        print(
            f"error: unexpected {type(e).__name__} in 'medpose {args.command}': "
            f"{redact.text(str(e))}",
            file=sys.stderr,
        )
        return EXIT_INVALID
