"""What every ``medpose`` command shares: exit codes and the problem listing."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
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
    "check_text_arguments",
    "check_output",
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


def _option_of(text: str, dest: str, argv: Sequence[str]) -> str:
    """The option ``text`` was given with on the command line (``--out``), else ``DEST``."""
    for i, tok in enumerate(argv):
        name, sep, value = tok.partition("=")
        if sep and name.startswith("-") and value == text:
            return name
        if tok == text and i > 0 and argv[i - 1].startswith("-"):
            return argv[i - 1]
    return dest.upper()


def check_text_arguments(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Refuse any argument (a path above all) that is not valid UTF-8 text, naming its option,
    before a command passes it to a C library (SimpleITK aborts the process on such a path)."""
    from ..io._util import require_text_path

    for dest, value in vars(args).items():
        for v in value if isinstance(value, list | tuple) else (value,):
            for text in v if isinstance(v, tuple) else (v,):
                if isinstance(text, str | Path):
                    try:
                        os.fspath(text).encode("utf-8")
                    except UnicodeEncodeError:
                        require_text_path(text, _option_of(os.fspath(text), dest, argv))


def check_output(path: Path, option: str, *, folder: bool = False) -> None:
    """Check before any work that ``path`` can be written: an output file (``folder=False``) or
    an output folder replaced as a whole.  Raises InputError naming ``option`` and ``path`` when
    ``path`` is of the other kind, when a part of the folders above it is a file, or when the
    folder it is written in (where the temporary file or folder goes) is not writable."""
    from ..errors import InputError
    from ..io._util import require_text_path

    p = require_text_path(path, option)
    where = f"{option} {os.fspath(p)!r}"
    if folder and p.exists() and not p.is_dir():
        raise InputError(f"{where}: exists and is not a folder; expected a folder to write into")
    if not folder and p.is_dir():
        raise InputError(f"{where}: is a folder; expected the name of a file to write")
    above = p.parent
    while not above.exists() and not above.is_symlink() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise InputError(
            f"{where}: {os.fspath(above)!r} is a file, not a folder; expected a folder (or a "
            "name that does not exist yet) above the output"
        )
    for place in (above, p) if folder and p.is_dir() else (above,):
        if not os.access(place, os.W_OK | os.X_OK):
            raise InputError(
                f"{where}: the folder {os.fspath(place)!r} is not writable; expected a folder "
                "where medpose may create files (choose another location or change its "
                "permissions)"
            )
