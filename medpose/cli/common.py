"""What every ``medpose`` command shares: exit codes and the problem listing."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ..protocol.problems import Problem

__all__ = [
    "EXIT_OK",
    "EXIT_INVALID",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "print_problems",
    "read_3d_keypoints",
    "printed_warnings",
]

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


#: Keypoint inputs that carry their own frame rate (``--rate`` does not apply to them).
_RATED = (".trc", ".c3d")


def read_3d_keypoints(path: Path, rate: float | None) -> Any:
    """A 3D keypoint sequence for ``medpose fit`` / ``medpose calibrate``: any file
    :func:`medpose.read_keypoints` reads, ``rate`` (Hz) for those without their own; a 2D one
    (an OpenPose folder) is refused with what to do instead."""
    from ..errors import InputError
    from ..io._util import display_name
    from ..io.keypoints import read_keypoints

    if rate is not None and path.suffix.lower() in _RATED and not path.is_dir():
        raise InputError(
            f"{display_name(path)}: a {path.suffix} file has its own frame rate; "
            "--rate applies to CSV and Parquet inputs"
        )
    seq = read_keypoints(path, **({} if rate is None else {"rate": rate}))
    if seq.ndim != 3:
        raise InputError(
            f"{display_name(path)}: {seq.ndim}D keypoints; expected 3D keypoints in mm "
            "(triangulate the cameras' 2D keypoints first: medpose triangulate)"
        )
    return seq


@contextmanager
def printed_warnings(
    stream: TextIO | None = None, redact: Callable[[str], str] | None = None
) -> Iterator[None]:
    """Print the warnings raised inside as ``warning: <message>`` lines (no source paths),
    each passed through ``redact`` first where given (a session's patient id and folder)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen: set[str] = set()
            for w in caught:
                text = str(w.message) if redact is None else redact(str(w.message))
                if text not in seen:
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr if stream is None else stream)
