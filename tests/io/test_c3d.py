"""C3D through ezc3d: files made by ezc3d itself, read back; units, residuals, labels, bad input."""

from __future__ import annotations

import signal
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.io import c3d as c3d_module
from medpose.io.c3d import check_c3d, read_c3d, write_c3d, write_c3d_points
from medpose.io.keypoints import read_keypoints


def make_c3d(
    path: Path,
    points: np.ndarray,
    labels: list[str],
    *,
    rate: float = 100.0,
    units: str = "mm",
    residuals: np.ndarray | None = None,
    first_frame: int = 0,
) -> Path:
    """A C3D written by ezc3d's own API (not medpose's sequence writer). points: (T, K, 3).

    ezc3d writes in a child interpreter (``write_c3d_points``): once SimpleITK is loaded in a
    process, ezc3d's writer breaks, and other tests in this worker load SimpleITK.
    """
    pts = np.ones((4, points.shape[1], points.shape[0]))
    pts[:3] = np.transpose(points, (2, 1, 0))
    return write_c3d_points(
        path,
        pts,
        labels,
        rate=rate,
        units=units,
        residuals=None if residuals is None else residuals.T[None],
        first_frame=first_frame,
    )


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(7).normal(0, 0.5, (12, 3, 3))


def test_read_ezc3d_file_in_metres(tmp_path: Path, points: np.ndarray) -> None:
    res = np.zeros((12, 3))
    res[4, 1] = -1.0  # invalid sample
    p = make_c3d(
        tmp_path / "trial.c3d",
        points,
        ["RASI", "RKnee", "LHip"],
        rate=200.0,
        units="m",
        residuals=res,
        first_frame=20,
    )
    seq = read_c3d(p)
    assert seq.names == ("RASI", "knee_r", "hip_l")  # unknown labels kept, known ones renamed
    assert seq.rate == 200.0 and seq.frame == "camera" and seq.start == pytest.approx(0.1)
    expected = points * 1000.0
    expected[4, 1] = np.nan
    np.testing.assert_allclose(seq.positions, expected, rtol=1e-5, atol=1e-3)  # C3D stores float32
    assert seq.confidence[4, 1] == 0 and seq.confidence[5, 1] == 1
    assert read_c3d(p, rename=False).names == ("RASI", "RKnee", "LHip")
    assert read_keypoints(p).n_keypoints == 3


@pytest.mark.parametrize("units,scale", [("mm", 1.0), ("cm", 10.0), ("m", 1000.0)])
def test_units(tmp_path: Path, points: np.ndarray, units: str, scale: float) -> None:
    seq = read_c3d(make_c3d(tmp_path / "u.c3d", points, ["a", "b", "c"], units=units))
    np.testing.assert_allclose(seq.positions, points * scale, rtol=1e-5, atol=1e-4)


def test_round_trip_with_medpose_writer(tmp_path: Path) -> None:
    pos = np.random.default_rng(1).normal(0, 300, (30, 4, 3))
    pos[3, 2] = np.nan
    seq = KeypointSequence(pos, ("hip_r", "knee_r", "ankle_r", "c7"), 150.0, start=0.2)
    for units in ("mm", "m"):
        p = write_c3d(seq, tmp_path / f"out_{units}.c3d", units=units)
        back = read_c3d(p)
        assert back.names == seq.names and back.rate == 150.0 and back.start == pytest.approx(0.2)
        np.testing.assert_allclose(back.positions, pos, rtol=1e-5, atol=1e-3)
        assert np.array_equal(np.isnan(back.positions), np.isnan(pos))
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "out_m.c3d",
        "out_mm.c3d",
    ]  # no temporaries


def test_unknown_units(tmp_path: Path, points: np.ndarray) -> None:
    p = make_c3d(tmp_path / "bad.c3d", points, ["a", "b", "c"], units="in")
    with pytest.raises(InputError, match=r"bad\.c3d: POINT:UNITS is 'in'; expected one of"):
        read_c3d(p)


def test_missing_units(tmp_path: Path) -> None:
    # ezc3d leaves POINT:UNITS empty unless told
    write_c3d_points(
        tmp_path / "nounits.c3d", np.full((4, 3, 5), 2.0), ["a", "b", "c"], rate=100.0, units=""
    )
    with pytest.raises(
        InputError, match=r"nounits\.c3d: POINT:UNITS is missing or empty; pass units="
    ):
        read_c3d(tmp_path / "nounits.c3d")
    seq = read_c3d(tmp_path / "nounits.c3d", units="cm")
    np.testing.assert_allclose(seq.positions, 20.0)


def test_not_a_c3d_and_missing(tmp_path: Path) -> None:
    (tmp_path / "junk.c3d").write_bytes(b"\x00" * 10)
    with pytest.raises(
        InputError, match=r"junk\.c3d: 10 bytes; a C3D file starts with a 512-byte header"
    ):
        read_c3d(tmp_path / "junk.c3d")
    with pytest.raises(InputError, match=r"none\.c3d.*not found"):
        read_c3d(tmp_path / "none.c3d")


def test_write_rejects_2d(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"o\.c3d.*3D points.*2D"):
        write_c3d(KeypointSequence(np.zeros((2, 1, 2)), ("a",), 30.0), tmp_path / "o.c3d")


def test_missing_ezc3d_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ezc3d", None)  # makes `import ezc3d` raise ImportError
    with pytest.raises(ImportError, match=r"medpose\[c3d\]"):
        read_c3d(tmp_path / "x.c3d")


# ---------------------------------------------------------------------------- damaged files
@pytest.fixture
def good(tmp_path: Path, points: np.ndarray) -> bytes:
    """An ezc3d file: header block 1, parameters from block 2, float data from block 4."""
    p = make_c3d(tmp_path / "good.c3d", points, ["a", "b", "c"])
    info = check_c3d(p)
    assert info["processor"] == "Intel" and info["float"] and info["frames"] == 12
    assert info["points"] == 3 and info["first_frame"] == 1 and info["last_frame"] == 12
    return p.read_bytes()


def _damaged(tmp_path: Path, raw: bytes | bytearray) -> Path:
    p = tmp_path / "damaged.c3d"
    p.write_bytes(bytes(raw))
    return p


def _patch(raw: bytes, offset: int, value: bytes) -> bytearray:
    b = bytearray(raw)
    b[offset : offset + len(value)] = value
    return b


def _alarm(seconds: int):
    def stop(*_):
        raise TimeoutError("read_c3d did not return")

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)


@pytest.mark.parametrize(
    "change, message",
    [
        ((1, b"\x00"), r"header byte 2 is 0x00; a C3D file has the key 0x50 there"),
        (
            (0, b"\x09"),
            r"header word 1 names parameter block 9; expected a block >= 2 inside the file",
        ),
        ((512 + 3, b"\x00"), r"parameter section processor type 0; expected 84 \(Intel\)"),
        (
            (16, struct.pack("<H", 2)),
            r"header word 9 puts the data at block 2; expected a block after",
        ),
        (
            (6, struct.pack("<H", 100)),
            r"header frame range is 100\.\.12; expected 1 <= first frame",
        ),
        (
            (8, struct.pack("<H", 400)),
            r"file is \d+ bytes; its header promises 400 frames of 3 points .* the file is truncated",
        ),
        ((2, struct.pack("<H", 5)), r"header word 2 says 5 points per frame, POINT:USED says 3"),
        (
            (512 + 11, struct.pack("<h", 32767)),
            r"entry 'POINT' points to the next entry at byte 32778",
        ),
        (
            (512 + 13, b"\xff"),
            r"entry 'POINT' points to the next entry .* expected a position after its own data",
        ),
        (  # POINT:USED's type byte: ezc3d crashed on it stored as characters
            (534, b"\xff"),
            r"parameter POINT:USED has data type -1 and dimensions \[\]; the C3D format stores it as int",
        ),
        (
            (12, struct.pack("<f", float("nan"))),
            r"header scale factor is nan; expected a non-zero finite",
        ),
    ],
)
def test_damaged_header_and_parameters_refused(
    tmp_path: Path, good: bytes, change, message
) -> None:
    """Each of these made ezc3d crash (SIGSEGV), hang or return nonsense when read in-process."""
    _alarm(20)
    try:
        with pytest.raises(InputError, match=r"damaged\.c3d: " + message):
            read_c3d(_damaged(tmp_path, _patch(good, *change)))
    finally:
        signal.alarm(0)


def test_cut_files_refused(tmp_path: Path, good: bytes) -> None:
    with pytest.raises(
        InputError,
        match=r"damaged\.c3d: the parameter section declares 2 blocks from block 2; the file ends after 512",
    ):
        read_c3d(_damaged(tmp_path, good[:1024]))
    with pytest.raises(
        InputError,
        match=r"damaged\.c3d: file is 1600 bytes; its header promises 12 frames of 3 points and 0 analog samples \(float32\) from block 4, which needs 2112 bytes",
    ):  # 3 x 512 + 12 x 3 x 4 x 4
        read_c3d(_damaged(tmp_path, good[:1600]))
    with pytest.raises(
        InputError, match=r"damaged\.c3d: 100 bytes; a C3D file starts with a 512-byte header"
    ):
        read_c3d(_damaged(tmp_path, good[:100]))


def test_folder_refused(tmp_path: Path) -> None:
    (tmp_path / "trial.c3d").mkdir()
    with pytest.raises(InputError, match=r"trial\.c3d: not a regular file; expected a C3D file"):
        read_c3d(tmp_path / "trial.c3d")


def test_child_crash_and_hang_give_input_error(
    tmp_path: Path, good: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever check_c3d misses, ezc3d runs in a child: a crash or a hang there is an InputError."""
    p = _damaged(tmp_path, good)
    monkeypatch.setattr(
        c3d_module, "_READER", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    )
    with pytest.raises(
        InputError, match=r"damaged\.c3d: ezc3d crashed reading the file \(signal 11\)"
    ):
        read_c3d(p)
    monkeypatch.setattr(c3d_module, "_READER", "import time; time.sleep(60)")
    monkeypatch.setattr(c3d_module, "C3D_READ_TIMEOUT_S", 0.5)
    with pytest.raises(
        InputError, match=r"damaged\.c3d: ezc3d did not finish reading the file within 1 s"
    ):
        read_c3d(p)
    monkeypatch.setattr(
        c3d_module, "_READER", "raise RuntimeError('bad block in ' + __import__('sys').argv[1])"
    )
    with pytest.raises(
        InputError,
        match=r"damaged\.c3d: not a readable C3D file \(ezc3d: RuntimeError: bad block in damaged\.c3d\)",
    ) as info:
        read_c3d(p)
    assert str(tmp_path) not in str(info.value)


def test_labels_that_are_not_text_are_refused(tmp_path: Path, good: bytes) -> None:
    raw = bytearray(good)
    # POINT:LABELS: name, offset (2 bytes), type, 2 dimensions (label length, count), the labels
    start = raw.index(b"LABELS")
    assert raw[start + 8] == 0xFF and raw[start + 9] == 2 and raw[start + 11] == 3  # char, 3
    raw[start + 12] = 0xFF  # the first byte of the first label: not UTF-8
    with pytest.raises(InputError, match=r"damaged\.c3d: POINT:LABELS: label \d of 3 is not valid"):
        read_c3d(_damaged(tmp_path, raw))


def test_random_bytes_over_the_parameters_never_give_labels_that_are_not_text(
    tmp_path: Path, good: bytes
) -> None:
    """The audit's damage: bytes 600-700 overwritten with random bytes.  The file is refused,
    or read with printable labels that every writer can write."""
    for seed in range(10):
        raw = bytearray(good)
        raw[600:700] = np.random.default_rng(seed).integers(0, 256, 100, dtype=np.uint8).tobytes()
        try:
            seq = read_c3d(_damaged(tmp_path, raw))
        except InputError as exc:
            assert "damaged.c3d" in str(exc)
            continue
        assert all(n.isprintable() and n.encode("utf-8") for n in seq.names)


def test_a_rate_beyond_any_motion_capture_is_refused(tmp_path: Path, points: np.ndarray) -> None:
    p = make_c3d(tmp_path / "fast.c3d", points, ["a", "b", "c"], rate=1e9)
    with pytest.raises(InputError, match=r"fast\.c3d: POINT:RATE is \[1000000000\.0\].*10000\]"):
        read_c3d(p)
