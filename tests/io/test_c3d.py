"""C3D through ezc3d: files made by ezc3d itself, read back; units, residuals, labels, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.io.c3d import read_c3d, write_c3d, write_c3d_points
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
    with pytest.raises(InputError, match=r"junk\.c3d: not a readable C3D file"):
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
