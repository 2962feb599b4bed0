"""What every ``medpose`` command shares: exit codes and the problem listing."""

from __future__ import annotations

import sys
from typing import TextIO

from ..protocol.problems import Problem

__all__ = ["EXIT_OK", "EXIT_INVALID", "EXIT_USAGE", "EXIT_INTERRUPTED", "print_problems"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def print_problems(problems: list[Problem], stream: TextIO | None = None) -> None:
    """Print problems grouped by file, then a one-line count."""
    stream = sys.stdout if stream is None else stream
    by_file: dict[str, list[Problem]] = {}
    for pr in problems:
        by_file.setdefault(pr.file, []).append(pr)
    for file, items in by_file.items():
        print(file, file=stream)
        for pr in items:
            print(f"  {pr.field + ': ' if pr.field else ''}{pr.message}", file=stream)
    print(f"{len(problems)} problem(s) in {len(by_file)} file(s)", file=stream)
