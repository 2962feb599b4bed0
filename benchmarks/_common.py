"""Small helpers shared by the benchmarks: print a table, update one section of RESULTS.md."""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medpose.io._util import atomic_write

__all__ = ["markdown_table", "update_results", "machine"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """One line naming the machine the numbers come from."""
    import os

    import numpy as np

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )


def markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table; floats are printed with 4 significant digits."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_results(section: str, text: str, path: Path = RESULTS) -> Path:
    """Replace the text between ``<!-- section:start -->`` and ``<!-- section:end -->`` (appended if absent)."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    new = (
        pattern.sub(lambda _: block, old)
        if pattern.search(old)
        else old.rstrip("\n") + "\n\n" + block + "\n"
    )
    with atomic_write(path) as fh:
        fh.write(new)
    return path
