"""The ``medpose`` command line (``medpose --help``; also ``python -m medpose``).

Each command is a module of this package with ``register(subparsers)`` (adds its subparser and
sets ``func``) and ``ORDER`` (its place in ``--help``); :func:`build_parser` finds them all, so a
new command is a new module.  Exit codes: 0 success, 1 invalid input or a medpose error, 2 wrong
usage (argparse), 130 interrupted.  No command prints a traceback: an unexpected error is one
``error:`` line, without absolute paths.  A command imports heavy libraries (torch, dask) inside
its ``run``, so that ``medpose --help`` and ``medpose validate`` start fast.  See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..errors import MedposeError
from ..protocol.problems import Redactor
from .common import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, check_text_arguments

__all__ = ["main", "build_parser", "command_modules"]

_NOT_COMMANDS = {"common"}


def command_modules() -> list[str]:
    """The command modules of this package, in ``--help`` order."""
    mods = [
        importlib.import_module(f"{__name__}.{m.name}")
        for m in pkgutil.iter_modules(__path__)
        if m.name not in _NOT_COMMANDS and not m.name.startswith("_")
    ]
    mods.sort(key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
    return [m.__name__ for m in mods]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="medpose",
        description="Medical motion assessment and surgical navigation: imaging landmarks, "
        "camera keypoints, registration, constrained skeleton fits and rehabilitation scores.",
        epilog="Exit codes: 0 success, 1 invalid input or error, 2 wrong usage. "
        "Run 'medpose COMMAND --help'.",
    )
    parser.add_argument("--version", action="version", version=f"medpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(name).register(sub)
    return parser


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
        check_text_arguments(args, sys.argv[1:] if argv is None else list(argv))
        return int(args.func(args))
    except MedposeError as e:
        print(f"error: {redact.text(str(e))}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): nothing more to say, and no one to
        # say it to; stdout is pointed at devnull so that the interpreter's flush is silent too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # a full disk, a folder made read-only meanwhile: the file and why
        where = f"{redact.text(str(e.filename))}: " if e.filename is not None else ""
        print(f"error: {where}{redact.text(e.strerror or str(e))}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as e:  # the command line never prints a traceback
        print(
            f"error: unexpected {type(e).__name__} in 'medpose {args.command}': "
            f"{redact.text(str(e))}",
            file=sys.stderr,
        )
        return EXIT_INVALID
