"""Lean reading of large numeric text tables (.trc, .mot): memory close to the data returned.

The careful readers in :mod:`medpose.io.trc` and :mod:`medpose.io.mot` read the whole file as
text and check it line by line, which costs several times the file's size in memory.  These
helpers let them first try a lean path that never holds the file in memory:

* :func:`scan_text` reads the file in chunks and says whether all of it is strict UTF-8 without
  NUL bytes (what :func:`~medpose.io._text.read_text` demands), how many line breaks it has at
  most, and whether it ends with a line break;
* :func:`read_head` decodes the first lines (the header) and gives the byte offset where the
  body starts;
* :func:`read_float_body` streams the tab-separated body through ``pyarrow.csv`` (strict cell
  counts, no quoting) straight into preallocated float64 columns.

They never raise for a damaged file: they return ``None`` when the lean path cannot vouch that
the careful path would return the very same values, and the reader then falls back to the
careful path, which names the file, line and column of the problem.  A body is accepted only if
every row has exactly the expected cells (a trailing tab tolerated when the first row has one),
every cell is a number or a missing-value token (``""``, ``nan``, ``na``, ``-nan`` in any case),
and no cell is infinite or a NaN written otherwise.
"""

from __future__ import annotations

import codecs
import itertools
import os
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["TextScan", "scan_text", "read_head", "read_float_body", "MISSING_TOKENS"]

#: Bytes read at a time by :func:`scan_text`.
SCAN_CHUNK = 16 << 20
#: Bytes :func:`read_head` reads first (four times more at each try).
HEAD_BYTES = 64 << 10
#: Most bytes :func:`read_head` reads to find the header.
MAX_HEAD_BYTES = 8 << 20
#: Bytes per block given to the pyarrow CSV reader.
BLOCK_BYTES = 4 << 20

#: Cells read as missing (NaN): the careful path's ``""``, ``nan``, ``na``, ``-nan``, any case.
MISSING_TOKENS = sorted(
    {
        "".join(chars)
        for word in ("", "nan", "na", "-nan")
        for chars in itertools.product(*[(c.lower(), c.upper()) for c in word])
    }
)

_EOL = re.compile(rb"\r\n|\r|\n")


class TextScan(NamedTuple):
    """What :func:`scan_text` found: at most ``line_breaks`` line breaks (``\\r\\n`` counts two),
    and whether the file's last byte is a line break (``True`` for an empty file)."""

    line_breaks: int
    complete: bool


def scan_text(path: str | os.PathLike) -> TextScan | None:
    """Read ``path`` in chunks; ``None`` unless it is strict UTF-8 without NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    breaks, last = 0, b"\n"
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(SCAN_CHUNK):
                if b"\0" in chunk:
                    return None
                decoder.decode(chunk)
                breaks += chunk.count(b"\n") + chunk.count(b"\r")
                last = chunk[-1:]
            decoder.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return None
    return TextScan(breaks, last in (b"\n", b"\r"))


def read_head(
    path: str | os.PathLike, header_lines: Callable[[list[str]], int | None]
) -> tuple[list[str], int] | None:
    """The first lines of ``path`` and the byte offset just after the header.

    Lines are split at ``\\n``, ``\\r\\n`` or ``\\r`` as :func:`~medpose.io._text.text_lines`
    does, with a leading byte-order mark dropped.  ``header_lines(lines)`` gets the complete
    lines read so far and returns how many of them make the header, or ``None`` to ask for
    more.  ``None`` when the header is not found in the first :data:`MAX_HEAD_BYTES` bytes or a
    line is not UTF-8.
    """
    size = HEAD_BYTES
    try:
        with open(path, "rb") as fh:
            while True:
                fh.seek(0)
                data = fh.read(size)
                at_end = len(data) < size
                bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
                lines: list[str] = []
                ends: list[int] = []
                start = bom
                for m in _EOL.finditer(data, bom):
                    if m.group() == b"\r" and m.end() == len(data) and not at_end:
                        break  # perhaps the first half of a \r\n cut by the read
                    lines.append(data[start : m.start()].decode("utf-8"))
                    ends.append(m.end())
                    start = m.end()
                n = header_lines(lines)
                if n is not None:
                    return lines[:n], ends[n - 1] if n else bom
                if at_end or size >= MAX_HEAD_BYTES:
                    return None
                size = min(size * 4, MAX_HEAD_BYTES)
    except (OSError, UnicodeDecodeError):
        return None


def _trailing_tab(path: str | os.PathLike, offset: int, ncol: int) -> bool:
    """Whether the first non-empty line from ``offset`` has ``ncol`` cells and a trailing tab."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(MAX_HEAD_BYTES).lstrip(b"\r\n")  # blank lines are skipped
    m = _EOL.search(data)
    line = data[: m.start()] if m else data
    return line.endswith(b"\t") and line.count(b"\t") == ncol


def read_float_body(
    path: str | os.PathLike,
    offset: int,
    dest: Sequence[np.ndarray | None],
    max_rows: int,
) -> int | None:
    """Read the tab-separated rows from byte ``offset`` into ``dest``; the number of rows.

    ``dest`` holds one 1-D float64 array (of at least ``max_rows`` items) per column, or
    ``None`` for a column that is checked but not kept; row ``r`` goes to ``dest[j][r]``,
    missing cells as NaN.  ``None`` (nothing to trust in ``dest``) when the rows are not exactly
    ``len(dest)`` cells (one more is allowed if the first row ends with a tab, and that last
    cell is then empty in every row), a cell is neither a number nor a missing-value token, a
    cell is infinite or a spelled-out NaN other than a missing-value token, there are more than
    ``max_rows`` rows, or the file cannot be read.
    """
    ncol = len(dest)
    try:
        extra = _trailing_tab(path, offset, ncol)
        names = [f"c{j}" for j in range(ncol + extra)]
        stream = pa.OSFile(os.fspath(path))
        stream.seek(offset)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                delimiter="\t",
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.float64() for n in names},
                null_values=MISSING_TOKENS,
                quoted_strings_can_be_null=False,
            ),
        )
        rows = 0
        with stream, reader:
            for batch in reader:
                n = batch.num_rows
                if rows + n > max_rows:
                    return None
                if extra and batch.column(ncol).null_count != n:
                    return None
                for j, out in enumerate(dest):
                    col = batch.column(j)
                    values = col.to_numpy(zero_copy_only=False)
                    # nulls read as NaN; any other non-finite value (inf, a spelled NaN) is not
                    # accepted here: the careful path names it, or reads it its own way
                    if np.count_nonzero(~np.isfinite(values)) != col.null_count:
                        return None
                    if out is not None:
                        out[rows : rows + n] = values
                rows += n
    except (pa.ArrowException, OSError, ValueError):
        return None
    return rows
