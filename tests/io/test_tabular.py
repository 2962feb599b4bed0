"""Keypoint CSV (tidy, wide) and Parquet; the read_keypoints / write_keypoints dispatch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.io.keypoints import read_keypoints, write_keypoints
from medpose.io.openpose import read_openpose
from medpose.io.tabular import (
    read_csv_keypoints,
    read_parquet_keypoints,
    write_csv_keypoints,
    write_parquet_keypoints,
)
from medpose.layouts import get_layout


@pytest.fixture
def seq3d() -> KeypointSequence:
    rng = np.random.default_rng(11)
    pos = rng.normal(0, 250, (20, 5, 3))
    pos[2, 1] = np.nan
    conf = np.clip(rng.uniform(0.2, 1.0, (20, 5)), 0, 1)
    return KeypointSequence(
        pos,
        ("hip_r", "knee_r", "ankle_r", "pelvis", "my marker"),
        59.94,
        confidence=conf,
        frame="lab",
        start=0.5,
    )


@pytest.fixture
def seq2d(shared_data: Path) -> KeypointSequence:
    return read_openpose(
        shared_data / "pose2sim" / "keypoints-mediapipe" / "cam04_json", rate=60
    ).slice(0, 30)


def assert_same(a: KeypointSequence, b: KeypointSequence, atol: float = 0.0) -> None:
    assert a.names == b.names and a.frame == b.frame and a.ndim == b.ndim
    assert a.rate == pytest.approx(b.rate, rel=1e-12) and a.start == pytest.approx(
        b.start, abs=1e-12
    )
    np.testing.assert_allclose(a.positions, b.positions, atol=atol, rtol=0)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-12)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("wide", [False, True])
def test_csv_round_trip_3d(tmp_path: Path, seq3d: KeypointSequence, wide: bool) -> None:
    p = write_csv_keypoints(seq3d, tmp_path / "k.csv", wide=wide)
    assert p.read_text().startswith(
        "# medpose-keypoints: rate_hz=59.94; frame=lab; units=mm; start_s=0.5\n"
    )
    assert_same(read_csv_keypoints(p), seq3d)


@pytest.mark.parametrize("wide", [False, True])
def test_csv_round_trip_real_2d(tmp_path: Path, seq2d: KeypointSequence, wide: bool) -> None:
    p = write_csv_keypoints(seq2d, tmp_path / "k.csv", wide=wide)
    assert_same(read_csv_keypoints(p), seq2d)


def test_parquet_round_trip(
    tmp_path: Path, seq3d: KeypointSequence, seq2d: KeypointSequence
) -> None:
    for s in (seq3d, seq2d):
        p = write_parquet_keypoints(s, tmp_path / "k.parquet")
        assert_same(read_parquet_keypoints(p), s)
    meta = json.loads(pq.read_schema(tmp_path / "k.parquet").metadata[b"medpose"])
    assert meta == {"rate_hz": 60.0, "frame": "cam04", "units": "px", "start_s": 0.0}


@pytest.mark.parametrize("suffix", [".trc", ".csv", ".parquet"])
def test_dispatch_round_trip(tmp_path: Path, seq3d: KeypointSequence, suffix: str) -> None:
    p = write_keypoints(seq3d, tmp_path / f"k{suffix}")
    back = read_keypoints(p)
    np.testing.assert_allclose(back.positions, seq3d.positions, atol=1e-6)
    assert back.names == seq3d.names and back.rate == pytest.approx(59.94)


def test_dispatch_errors(tmp_path: Path, seq3d: KeypointSequence) -> None:
    with pytest.raises(
        InputError,
        match=r"k\.xlsx: unsupported keypoint file type '\.xlsx'; supported: \.trc, \.c3d",
    ):
        read_keypoints(tmp_path / "k.xlsx")
    with pytest.raises(
        InputError,
        match=r"k\.json: cannot write keypoints as '\.json'; supported: \.trc, \.csv, \.parquet",
    ):
        write_keypoints(seq3d, tmp_path / "k.json")
    with pytest.raises(InputError, match=r"gone\.csv: file not found"):
        read_keypoints(tmp_path / "gone.csv")


# ----------------------------------------------------------------------------- plain files
def test_tidy_without_metadata(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        "frame,time_s,keypoint,x,y,z\n0,1.0,RHip,1,2,3\n0,1.0,LHip,4,5,6\n"
        "2,1.02,RHip,7,8,9\n1,1.01,LHip,,,\n"
    )
    s = read_csv_keypoints(p, units="cm")
    assert (
        s.names == ("hip_r", "hip_l") and s.rate == 100.0 and s.start == 1.0 and s.frame == "camera"
    )
    np.testing.assert_allclose(s.positions[0], [[10, 20, 30], [40, 50, 60]])
    np.testing.assert_allclose(s.positions[2, 0], [70, 80, 90])
    assert (
        np.isnan(s.positions[1]).all() and np.isnan(s.positions[2, 1]).all()
    )  # absent rows -> NaN


def test_tidy_by_time_only(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("time_s,keypoint,x,y\n0.5,a,1,2\n0.7,a,3,4\n0.6,a,5,6\n")
    s = read_csv_keypoints(p, rename=False)
    assert s.ndim == 2 and s.rate == 10.0 and s.start == 0.5
    np.testing.assert_allclose(s.positions[:, 0], [[1, 2], [5, 6], [3, 4]])


def test_wide_mediapipe_indexed(tmp_path: Path) -> None:
    lay = get_layout("mediapipe33")
    rng = np.random.default_rng(2)
    data: dict[str, Any] = {"time": [0.0, 1 / 30]}
    vals = rng.uniform(0, 1, (2, 33, 4))
    for i in range(33):
        for j, a in enumerate(("x", "y", "z", "visibility")):
            data[f"{a}{i}"] = vals[:, i, j]
    p = tmp_path / "mp.csv"
    pd.DataFrame(data).to_csv(p, index=False)
    s3 = read_csv_keypoints(p, units="m")
    assert s3.names == lay.medpose and s3.ndim == 3 and s3.rate == 30.0
    np.testing.assert_allclose(s3.positions, vals[..., :3] * 1000)
    np.testing.assert_allclose(s3.confidence, vals[..., 3])
    s2 = read_csv_keypoints(p, ndim=2)  # MediaPipe image landmarks: z is not a length
    assert s2.ndim == 2
    np.testing.assert_allclose(s2.positions, vals[..., :2])
    assert read_csv_keypoints(p, rename=False).names[31] == "left_foot_index"


def test_wide_named_without_time(tmp_path: Path) -> None:
    p = tmp_path / "w.csv"
    p.write_text("left_hip_x,left_hip_y,RKnee_x,RKnee_y\n1,2,3,4\n5,6,,\n")
    s = read_csv_keypoints(p, rate=25)
    assert s.names == ("hip_l", "knee_r") and s.rate == 25 and s.ndim == 2
    assert np.isnan(s.positions[1, 1]).all() and s.confidence[1, 1] == 0


# ----------------------------------------------------------------------------- bad input
def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text,kw,pattern",
    [
        ("", {}, r"bad\.csv: empty file"),
        ("frame,keypoint,x\n0,a,1\n", {}, r"bad\.csv: missing columns \['y'\]"),
        ("keypoint,x,y\na,1,2\n", {}, r"bad\.csv: needs a 'frame' or 'time_s' column"),
        (
            "frame,time_s,keypoint,x,y\n0,0,a,1,2\n1,0.1,a,one,2\n",
            {},
            r"bad\.csv: line 3, column 'x': found 'one'; expected a number",
        ),
        (
            "frame,time_s,keypoint,x,y\n0,0,a,1,2\n0,0,a,3,4\n",
            {},
            r"bad\.csv: line 3: keypoint 'a' appears twice in the same frame",
        ),
        (
            "frame,time_s,keypoint,x,y\n0,0.1,a,1,2\n1,0.0,a,3,4\n",
            {},
            r"bad\.csv: line 3: time_s 0 does not increase with frame",
        ),
        (
            "frame,keypoint,x,y\n0.5,a,1,2\n",
            {},
            r"bad\.csv: line 2: frame is 0\.5; expected an integer",
        ),
        ("frame,keypoint,x,y\n0,a,1,2\n", {}, r"bad\.csv: no sampling rate: pass rate="),
        (
            "time_s,keypoint,x,y\n0,a,1,2\n",
            {},
            r"bad\.csv: cannot infer the sampling rate from one time stamp",
        ),
        (
            "frame,time_s,keypoint,x,y,z\n0,0,a,1,2,3\n1,0.1,a,1,2,3\n",
            {"units": "ft"},
            r"bad\.csv: units is 'ft'",
        ),
        (
            "frame,keypoint,x,y\n0,a,1,2\n",
            {"rate": 10, "units": "mm"},
            r"bad\.csv: 2D keypoints must be in pixels",
        ),
        (
            "frame,keypoint,x,y,confidence\n0,a,1,2,5\n",
            {"rate": 10},
            r"bad\.csv: confidence ranges from .* to 5",
        ),
        (
            "# medpose-keypoints: rate_hz=fast\nframe,keypoint,x,y\n0,a,1,2\n",
            {},
            r"bad\.csv: metadata rate_hz is 'fast'",
        ),
        ("frame,keypoint,x,y\n0,a,1,2\n", {"rate": -3}, r"bad\.csv: rate is -3"),
        (
            "frame,Hip,pelvis\n0,1,2\n",
            {"rate": 1},
            r"bad\.csv: column 'Hip' is neither frame, time_s nor a keypoint column",
        ),
        (
            "a_x,a_y,a_z,b_x,b_y\n1,2,3,4,5\n",
            {"rate": 1},
            r"bad\.csv: some keypoints have a z column and others not",
        ),
        ("a_x,b_x,b_y\n1,2,3\n", {"rate": 1}, r"bad\.csv: keypoint 'a' has no y column"),
        (
            "a_x,a_y,a_visibility,a_confidence\n1,2,1,1\n",
            {"rate": 1},
            r"bad\.csv: column 'a_confidence' duplicates",
        ),
        ("time,a_x,a_y\n0.2,1,2\n0.1,1,2\n", {}, r"bad\.csv: line 3: time 0\.1 does not increase"),
        (
            "frame,a_x,a_y\n1,1,2\n1,1,2\n",
            {"rate": 1},
            r"bad\.csv: column 'frame' must hold increasing integers",
        ),
        ("x0,y0\n1,2\n", {"layout": "nope"}, r"unknown keypoint layout 'nope'"),
        (
            "x40,y40\n1,2\n",
            {"layout": "coco17", "rate": 1},
            r"bad\.csv: columns index 41 keypoints but layout coco17 has 17",
        ),
        ("a_x,a_y\n1,2\n", {"rate": 1, "ndim": 4}, r"bad\.csv: ndim=4"),
        (
            "frame,keypoint,x,y\n0,Hip,1,2\n0,pelvis,1,2\n",
            {"rate": 1},
            r"bad\.csv: duplicate keypoint name: 'Hip' and 'pelvis'",
        ),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, kw: dict, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        read_csv_keypoints(_csv(tmp_path, text), **kw)


def test_bad_parquet(tmp_path: Path, seq3d: KeypointSequence) -> None:
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"junk\.parquet: not a readable Parquet file"):
        read_parquet_keypoints(tmp_path / "junk.parquet")
    df = seq3d.to_dataframe()
    df["x"] = df["x"].astype(str)
    df.attrs = {}
    df.to_parquet(tmp_path / "str.parquet")
    with pytest.raises(InputError, match=r"str\.parquet: column 'x' has type .*; expected numbers"):
        read_parquet_keypoints(tmp_path / "str.parquet")
    import pyarrow as pa

    t = pa.Table.from_pandas(seq3d.to_dataframe().drop(columns="keypoint"), preserve_index=False)
    pq.write_table(t.replace_schema_metadata({b"medpose": b"{oops"}), tmp_path / "meta.parquet")
    with pytest.raises(
        InputError, match=r"meta\.parquet: metadata 'medpose': invalid JSON at line 1"
    ):
        read_parquet_keypoints(tmp_path / "meta.parquet")
    pq.write_table(t, tmp_path / "nokp.parquet")
    with pytest.raises(InputError, match=r"nokp\.parquet: missing columns \['keypoint'\]"):
        read_parquet_keypoints(tmp_path / "nokp.parquet")


def test_atomic_csv_write(
    tmp_path: Path, seq3d: KeypointSequence, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "k.csv"
    p.write_text("previous")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("medpose.io.tabular.write_csv_table", boom)
    with pytest.raises(OSError):
        write_csv_keypoints(seq3d, p)
    assert p.read_text() == "previous" and [f.name for f in tmp_path.iterdir()] == ["k.csv"]
