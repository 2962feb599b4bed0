""".trc and .mot read without holding the text (medpose.io._bulk): the lean path returns what the
careful line-by-line path returns, and a damaged file still gets the careful path's message
naming its line and column."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from medpose.data import JointAngles, KeypointSequence
from medpose.errors import InputError
from medpose.io import _bulk
from medpose.io.mot import read_mot, write_mot
from medpose.io.trc import read_trc, write_trc

N = 3000  # rows: several pyarrow blocks with the small block size below


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small pyarrow blocks and scan chunks, so that rows and characters straddle them."""
    monkeypatch.setattr(_bulk, "BLOCK_BYTES", 8192)
    monkeypatch.setattr(_bulk, "SCAN_CHUNK", 4099)


def _careful_used(*args: object, **kw: object) -> str:
    raise AssertionError("the careful path read the file")


@contextlib.contextmanager
def lean_only(mp: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the careful path reads the file."""
    with mp.context() as m:
        m.setattr("medpose.io.trc.read_text", _careful_used)
        m.setattr("medpose.io.mot.read_text", _careful_used)
        yield


@contextlib.contextmanager
def careful_only(mp: pytest.MonkeyPatch) -> Iterator[None]:
    """Take the careful path, as when the lean scan declines."""
    with mp.context() as m:
        m.setattr("medpose.io.trc.scan_text", lambda path: None)
        m.setattr("medpose.io.mot.scan_text", lambda path: None)
        yield


def outcome(read: Callable[[], object]) -> object:
    """The value read, as arrays, or the error message."""
    try:
        out = read()
    except InputError as e:
        return f"InputError: {e}"
    if isinstance(out, KeypointSequence):
        return (out.positions, out.confidence, out.names, out.rate, out.start, out.frame)
    assert isinstance(out, JointAngles)
    return (out.values, out.names, out.rate, out.start)


def assert_same(a: object, b: object) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
        else:
            assert x == y


def lean_equals_careful(mp: pytest.MonkeyPatch, read: Callable[[], object]) -> object:
    """Read with the lean path only, then with the careful path only: the same result."""
    with lean_only(mp):
        lean = outcome(read)
    with careful_only(mp):
        careful = outcome(read)
    assert not isinstance(lean, str), lean
    assert_same(lean, careful)
    return lean


def same_as_careful(mp: pytest.MonkeyPatch, read: Callable[[], object]) -> object:
    """Read as a user does (lean, else careful), then careful only: the same value or message."""
    out = outcome(read)
    with careful_only(mp):
        careful = outcome(read)
    assert_same(out, careful)
    return out


# ----------------------------------------------------------------------------- .trc
def seq(n: int = N, k: int = 4, seed: int = 0) -> KeypointSequence:
    rng = np.random.default_rng(seed)
    pos = rng.normal(0, 400, (n, k, 3))
    pos[rng.random((n, k)) < 0.05] = np.nan
    pos[-1, -1] = np.nan  # the file's last cell empty
    return KeypointSequence(pos, [f"m{i}" for i in range(k)], 100.0, start=0.5)


@pytest.fixture
def trc_text(tmp_path: Path) -> str:
    return write_trc(seq(), tmp_path / "w.trc").read_text()


def _put(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("units", ["mm", "cm", "m"])
def test_lean_trc_equals_careful(tmp_path: Path, monkeypatch, units: str) -> None:
    p = write_trc(seq(), tmp_path / "a.trc", units=units)
    got = lean_equals_careful(monkeypatch, lambda: read_trc(p))
    assert np.isnan(got[0]).any() and got[0].shape == (N, 4, 3)  # type: ignore[index]


def test_lean_trc_full_precision_values(tmp_path: Path, monkeypatch, trc_text: str) -> None:
    """Cells printed with 17 significant digits, exponents and single empty coordinates read
    to the same float64 values on both paths (and as Python's float())."""
    rng = np.random.default_rng(1)
    lines = trc_text.split("\n")
    values = rng.normal(0, 1, (N, 12)) * 10.0 ** rng.integers(-12, 12, (N, 12))
    rows = []
    for i, v in enumerate(values):
        cells = [repr(float(x)) for x in v]
        if i % 7 == 0:
            cells[i % 12] = ""  # one coordinate missing: the marker is missing
        rows.append("\t".join([str(i + 1), f"{i / 100:.10g}", *cells]))
    p = _put(tmp_path / "p.trc", "\n".join(lines[:5] + rows) + "\n")
    got = lean_equals_careful(monkeypatch, lambda: read_trc(p))
    pos = got[0].reshape(N, 12)  # type: ignore[index]
    want = np.array([[float(c) if c else np.nan for c in r.split("\t")[2:]] for r in rows])
    marker_missing = np.isnan(want.reshape(N, 4, 3)).any(axis=2).repeat(3, axis=1)
    want[marker_missing] = np.nan
    assert np.array_equal(pos, want, equal_nan=True)


@pytest.mark.parametrize(
    "variant",
    ["crlf", "cr", "bom", "trailing_tab", "blank_lines", "no_blank_line_after_header"],
)
def test_lean_trc_line_ends_and_layouts(tmp_path: Path, monkeypatch, trc_text, variant) -> None:
    lines = trc_text.rstrip("\n").split("\n")
    if variant == "trailing_tab":
        lines = lines[:5] + [ln + "\t" for ln in lines[5:]]
    if variant == "blank_lines":
        lines = lines[:5] + ["", ""] + lines[5:100] + ["", ""] + lines[100:] + [""]
    text = "\n".join(lines) + "\n"
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    if variant == "cr":
        text = text.replace("\n", "\r")
    if variant == "bom":
        text = "\ufeff" + text
    p = _put(tmp_path / "v.trc", text)
    lean_equals_careful(monkeypatch, lambda: read_trc(p))


def test_lean_trc_crlf_cut_at_the_head_read(tmp_path, monkeypatch, trc_text) -> None:
    """A \\r\\n split by the first read of the header is one line break, not two."""
    text = trc_text.replace("\n", "\r\n")
    cut = text.index("\r\n", 40) + 1  # the first read ends between \r and \n
    monkeypatch.setattr(_bulk, "HEAD_BYTES", cut)
    p = _put(tmp_path / "c.trc", text)
    lean_equals_careful(monkeypatch, lambda: read_trc(p))


def test_lean_trc_non_ascii_names_across_scan_chunks(tmp_path, monkeypatch) -> None:
    s = seq(50)
    s = KeypointSequence(s.positions, ["épaule", "genou_é", "m2", "m3"], s.rate)
    text = write_trc(s, tmp_path / "u.trc").read_bytes()
    i = text.index("é".encode())
    monkeypatch.setattr(_bulk, "SCAN_CHUNK", i + 1)  # a chunk ends inside the two-byte é
    p = _put(tmp_path / "u.trc", text)
    got = lean_equals_careful(monkeypatch, lambda: read_trc(p, rename=False))
    assert got[2][:2] == ("épaule", "genou_é")  # type: ignore[index]


def _cell(text: str, row: int, col: int, value: str) -> str:
    lines = text.split("\n")
    cells = lines[row - 1].split("\t")
    cells[col] = value
    lines[row - 1] = "\t".join(cells)
    return "\n".join(lines)


ROW = 2006  # a row deep in the body: file line 2006


@pytest.mark.parametrize(
    "value",
    [
        " 1.5",
        "1.5 ",
        "+1",
        "1e-400",
        ".5",
        "5.",
        "NAN",
        "-NaN",
        "Na",
        " nan",
        "+nan",
        "nan(1)",
        " ",
        "\u00a01",
        "\u0661",
        "1_0",
        "0x10",
        "1,5",
        '"1"',
        "1d5",
        "Infinity",
        "1e999",
        "-inf",
        "oops",
    ],
)
def test_odd_trc_cells_read_as_the_careful_path_reads_them(
    tmp_path: Path, monkeypatch, trc_text: str, value: str
) -> None:
    """Whatever a cell holds, the reader returns what the careful path returns, or raises its
    very message: the lean path reads only cells it reads the same way, else declines."""
    p = _put(tmp_path / "o.trc", _cell(trc_text, ROW, 6, value))
    same_as_careful(monkeypatch, lambda: read_trc(p))


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (
            lambda t: _cell(t, ROW, 5, "oops"),
            rf"x\.trc: line {ROW}, column m1/X: found 'oops'; expected a number",
        ),
        (
            lambda t: _cell(t, ROW, 6, "inf"),
            rf"x\.trc: line {ROW}, column m1/Y: found inf; expected a finite number",
        ),
        (
            lambda t: _cell(t, ROW, 7, "1e999"),
            rf"x\.trc: line {ROW}, column m1/Z: found inf; expected a finite number",
        ),
        (
            lambda t: _cell(t, ROW, 3, "2\t3"),
            rf"x\.trc: line {ROW}: found 15 cells; expected 14",
        ),
        (
            lambda t: _cell(t, ROW, 3, ""),
            None,  # an empty cell is a missing value, not an error
        ),
        (
            lambda t: "\n".join(
                ln if i != ROW - 1 else "\t".join(ln.split("\t")[:9])
                for i, ln in enumerate(t.split("\n"))
            ),
            rf"x\.trc: line {ROW}: found 9 cells; expected 14",
        ),
        (lambda t: t[:-5], rf"x\.trc: line {N + 5}: the file ends inside this row"),
        (
            lambda t: t[: t.rindex("\t")] + "\n",
            rf"x\.trc: line {N + 5}: truncated file\? found 13 cells; expected 14",
        ),
        (
            lambda t: t.replace(f"\t{N}\t4\t", f"\t{N + 5}\t4\t", 1),
            rf"x\.trc: NumFrames is {N + 5} but {N} data rows were found \(truncated file\?\)",
        ),
        (
            lambda t: t.replace(f"\t{N}\t4\t", f"\t{N - 1}\t4\t", 1),
            rf"x\.trc: NumFrames is {N - 1} but {N} data rows were found$",
        ),
        (
            lambda t: _cell(t, ROW, 1, "0.1"),
            rf"x\.trc: line {ROW}: time 0\.1 s does not increase",
        ),
        (lambda t: _cell(t, ROW, 1, ""), rf"x\.trc: line {ROW}: Time is empty"),
        (lambda t: _cell(t, ROW, 1, "nan"), rf"x\.trc: line {ROW}: Time is empty"),
        (lambda t: _cell(t, ROW, 0, "x"), rf"x\.trc: line {ROW}, column Frame#: found 'x'"),
    ],
)
def test_trc_errors_deep_in_a_big_file_name_the_line(
    tmp_path: Path, monkeypatch, trc_text: str, edit, pattern: str | None
) -> None:
    p = _put(tmp_path / "x.trc", edit(trc_text))
    out = same_as_careful(monkeypatch, lambda: read_trc(p))
    if pattern is None:
        assert not isinstance(out, str), out
    else:
        assert isinstance(out, str) and re.search(pattern, out), out


@pytest.mark.parametrize("bad,what", [(b"\xff", "byte 0xff is not UTF-8 text"), (b"\0", "NUL")])
def test_trc_binary_bytes_deep_in_the_file_name_the_line(
    tmp_path: Path, monkeypatch, trc_text: str, bad: bytes, what: str
) -> None:
    data = trc_text.encode()
    lines = data.split(b"\n")
    lines[ROW - 1] = lines[ROW - 1].replace(b"\t", b"\t" + bad, 1)
    p = _put(tmp_path / "b.trc", b"\n".join(lines))
    out = same_as_careful(monkeypatch, lambda: read_trc(p))
    assert isinstance(out, str) and f"b.trc: line {ROW}: {what}" in out


def test_whitespace_lines_are_skipped_as_the_careful_path_skips_them(
    tmp_path: Path, monkeypatch, trc_text: str
) -> None:
    lines = trc_text.split("\n")
    for blank in ("\t" * 13, "  ", "\t \t"):
        text = "\n".join(lines[:ROW] + [blank] + lines[ROW:])
        p = _put(tmp_path / "w.trc", text)
        out = same_as_careful(monkeypatch, lambda p=p: read_trc(p))
        assert not isinstance(out, str), out


def test_header_errors_need_no_careful_read(tmp_path: Path, monkeypatch, trc_text: str) -> None:
    """A wrong header is refused from the first lines (the careful path's own message)."""
    p = _put(tmp_path / "h.trc", trc_text.replace("\tmm\t", "\tinch\t", 1))
    with lean_only(monkeypatch), pytest.raises(InputError, match=r"h\.trc: Units .*'inch'"):
        read_trc(p)


def test_a_header_claiming_more_rows_than_the_file_holds_allocates_nothing(
    tmp_path: Path, monkeypatch, trc_text: str
) -> None:
    p = _put(tmp_path / "n.trc", trc_text.replace(f"\t{N}\t4\t", "\t2000000\t4\t", 1))
    monkeypatch.setattr("medpose.io.trc.read_float_body", _careful_used)
    with pytest.raises(InputError, match=r"NumFrames is 2000000 but 3000 data rows"):
        read_trc(p)


def test_big_trc(tmp_path: Path, monkeypatch) -> None:
    """20,000 frames of 26 markers (about 16 MB): default block sizes, several blocks."""
    monkeypatch.setattr(_bulk, "BLOCK_BYTES", 4 << 20)
    monkeypatch.setattr(_bulk, "SCAN_CHUNK", 16 << 20)
    p = write_trc(seq(20_000, 26, seed=3), tmp_path / "big.trc")
    got = lean_equals_careful(monkeypatch, lambda: read_trc(p))
    assert got[0].shape == (20_000, 26, 3)  # type: ignore[index]


# ----------------------------------------------------------------------------- .mot
def angles(n: int = N, seed: int = 0) -> JointAngles:
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 30, (n, 5))
    v[rng.random(v.shape) < 0.05] = np.nan
    names = ("knee_angle_r", "hip_flexion_r", "pelvis_tx", "pelvis_ty", "ankle_angle_r")
    return JointAngles(v, names, 100.0, start=0.25)


@pytest.fixture
def mot_text(tmp_path: Path) -> str:
    return write_mot(angles(), tmp_path / "w.mot").read_text()


@pytest.mark.parametrize("translations", ["drop", "keep"])
@pytest.mark.parametrize(
    "variant", ["plain", "radians", "no_nrows", "crlf", "trailing_tab", "padded", "blank_lines"]
)
def test_lean_mot_equals_careful(tmp_path, monkeypatch, mot_text, translations, variant) -> None:
    text = mot_text
    if variant == "radians":
        text = text.replace("inDegrees=yes", "inDegrees=no")
    if variant == "no_nrows":
        text = text.replace(f"nRows={N}\n", "")
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    if variant == "trailing_tab":
        text = text.replace("\n", "\t\n")
    if variant == "padded":  # OpenSim pads its cells with spaces (here no NaN: see below)
        lines = text.replace("NaN", "0").split("\n")
        lines[7:] = ["\t".join(f"{c:>20}" for c in ln.split("\t")) for ln in lines[7:] if ln]
        text = "\n".join(lines) + "\n"
    if variant == "blank_lines":
        text = text.replace("endheader\n", "endheader\n\n\n").replace("\n", "\n\n", 30)
    p = _put(tmp_path / "a.mot", text)
    lean_equals_careful(monkeypatch, lambda: read_mot(p, translations=translations))


def test_padded_mot_with_nan_cells_takes_the_careful_path(tmp_path, monkeypatch, mot_text) -> None:
    """'   NaN' is not a missing-value token as it stands: the careful path reads it."""
    lines = mot_text.split("\n")
    lines[7:] = ["\t".join(f"{c:>20}" for c in ln.split("\t")) for ln in lines[7:] if ln]
    p = _put(tmp_path / "a.mot", "\n".join(lines) + "\n")
    out = same_as_careful(monkeypatch, lambda: read_mot(p))
    assert not isinstance(out, str) and np.isnan(out[0]).any()  # type: ignore[index]


MOT_ROW = 8 + 2000  # file line of data row 2001


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (
            lambda t: _cell(t, MOT_ROW, 2, "x1"),
            rf"m\.mot: line {MOT_ROW}, column 'hip_flexion_r': found 'x1'; expected a number",
        ),
        (
            lambda t: _cell(t, MOT_ROW, 1, "inf"),
            rf"m\.mot: line {MOT_ROW}, column 'knee_angle_r': found inf; expected a finite",
        ),
        (lambda t: _cell(t, MOT_ROW, 1, "1\t2"), rf"m\.mot: line {MOT_ROW}: found 7 cells"),
        (lambda t: _cell(t, MOT_ROW, 0, "100"), rf"m\.mot: line {MOT_ROW + 1}: time .* does not"),
        (lambda t: _cell(t, MOT_ROW, 0, "20.254"), rf"m\.mot: line {MOT_ROW}: time step"),
        (lambda t: _cell(t, MOT_ROW, 0, ""), rf"m\.mot: line {MOT_ROW}: time is empty"),
        (lambda t: t[:-4], rf"m\.mot: line {N + 7}: the file ends inside this row"),
        (
            lambda t: t.replace(f"nRows={N}", f"nRows={N + 1}"),
            rf"m\.mot: nRows is {N + 1} but {N} data rows were found \(truncated file\?\)",
        ),
        (lambda t: _cell(t, MOT_ROW, 3, "NaN"), None),
        (lambda t: _cell(t, MOT_ROW, 3, " 1.25 "), None),
    ],
)
def test_mot_errors_deep_in_a_big_file_name_the_line(
    tmp_path: Path, monkeypatch, mot_text: str, edit, pattern: str | None
) -> None:
    p = _put(tmp_path / "m.mot", edit(mot_text))
    out = same_as_careful(monkeypatch, lambda: read_mot(p))
    if pattern is None:
        assert not isinstance(out, str), out
    else:
        assert isinstance(out, str) and re.search(pattern, out), out


def test_whitespace_separated_sto_takes_the_careful_path(tmp_path: Path, monkeypatch) -> None:
    text = "s\ninDegrees=yes\nendheader\ntime knee\n" + "".join(
        f"{i / 10} {i}\n" for i in range(50)
    )
    p = _put(tmp_path / "s.sto", text)
    out = same_as_careful(monkeypatch, lambda: read_mot(p))
    assert not isinstance(out, str) and out[2] == 10.0  # type: ignore[index]


# ----------------------------------------------------------------------------- helpers
def test_scan_text(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_bulk, "SCAN_CHUNK", 3)
    assert _bulk.scan_text(_put(tmp_path / "a", "aé\r\nb\n")) == (3, True)
    assert _bulk.scan_text(_put(tmp_path / "a", "aéb")) == (0, False)
    assert _bulk.scan_text(_put(tmp_path / "a", b"")) == (0, True)
    assert _bulk.scan_text(_put(tmp_path / "a", b"ab\xc3")) is None  # cut inside a character
    assert _bulk.scan_text(_put(tmp_path / "a", b"abc\n\xff\n")) is None
    assert _bulk.scan_text(_put(tmp_path / "a", b"abc\n\0\n")) is None
    assert _bulk.scan_text(tmp_path / "missing") is None


def test_read_head(tmp_path: Path) -> None:
    two = lambda lines: 2 if len(lines) >= 2 else None  # noqa: E731
    p = _put(tmp_path / "h", b"\xef\xbb\xbfa\r\nb\rc\n")
    assert _bulk.read_head(p, two) == (["a", "b"], 8)
    assert _bulk.read_head(_put(tmp_path / "h", "a\nb"), two) is None  # b has no line break
    assert _bulk.read_head(_put(tmp_path / "h", b"a\n\xff\n"), two) is None


def test_read_float_body(tmp_path: Path) -> None:
    p = _put(tmp_path / "b", "H\n1\t\t3\t\n\n4\tNA\t-nan\t\n")
    cols = [np.zeros(2) for _ in range(3)]
    assert _bulk.read_float_body(p, 2, cols, 2) == 2
    assert np.array_equal(np.array(cols), [[1, 4], [np.nan] * 2, [3, np.nan]], equal_nan=True)
    assert _bulk.read_float_body(p, 2, cols, 1) is None  # more rows than room
    assert _bulk.read_float_body(p, 2, [np.zeros(2), None], 2) is None  # 4 cells, not 2
    p = _put(tmp_path / "b", "H\n1\t2\t3\t\n4\t5\t6\t7\n")
    assert _bulk.read_float_body(p, 2, [None] * 3, 2) is None  # the trailing cell holds a value
    p = _put(tmp_path / "b", "H\n1\t2\t3\n4\tnan(1)\t6\n")
    assert _bulk.read_float_body(p, 2, [None] * 3, 2) is None  # a NaN that is not a token
