"""UI-PRMD Kinect reader: real recordings from ../shared/data/ui-prmd and damaged copies.

The reconstruction is checked against what a body must do, not against numbers it printed:
bones keep the lengths of the file's offsets, limbs are nearly constant and left/right
alike within Kinect noise, the feet are the lowest points and stay planted, a deep squat
bends the knees deeply, shoulder abduction lifts the elbows above the shoulders.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.errors import InputError
from medpose.io import uiprmd
from medpose.io.uiprmd import (
    KINECT_FRAME,
    UIPRMD_MEDPOSE_NAMES,
    UIPRMD_NAMES,
    UIPRMD_PARENTS,
    angles_path,
    is_uiprmd_path,
    read_uiprmd,
    uiprmd_forward_kinematics,
)
from medpose.layouts import canonical_keypoints

BONES = {
    "thigh": ("hip", "knee"),
    "shank": ("knee", "ankle"),
    "upper_arm": ("shoulder", "elbow"),
    "forearm": ("elbow", "wrist"),
}
FEET = ("ankle_l", "ankle_r", "toes_l", "toes_r")


@pytest.fixture(scope="module")
def kinect(shared_data: Path) -> Path:
    return shared_data / "ui-prmd" / "kinect"


@pytest.fixture(scope="module")
def sample(kinect: Path) -> list[Path]:
    """Every 10th positions file in name order: 40 of 400, both movements, correct and not."""
    files = sorted(kinect.glob("*/positions/*_positions*.txt.gz"))
    assert len(files) == 400, "expected 2 movements x 10 subjects x 10 episodes x 2 kinds"
    return files[::10]


@pytest.fixture(scope="module")
def sequences(sample: list[Path]) -> dict[Path, mp.KeypointSequence]:
    return {p: mp.read_keypoints(p) for p in sample}


def _raw(path: Path) -> np.ndarray:
    """A UI-PRMD file as (T, 22, 3), read without medpose."""
    with gzip.open(path, "rt") as fh:
        return np.loadtxt(fh, delimiter=",", ndmin=2).reshape(-1, 22, 3)


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle ABC in degrees, per frame."""
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _fk_loop(off: np.ndarray, ang: np.ndarray, order: str) -> np.ndarray:
    """Frame-by-frame forward kinematics, Euler matrix ``R_a R_b R_c`` for ``order = "abc"``."""
    cols = ["xyz".index(c) for c in order]
    out = np.zeros_like(off)
    for t in range(len(off)):
        e = [
            Rotation.from_euler(order.upper(), ang[t, j, cols], degrees=True).as_matrix()
            for j in range(22)
        ]
        g = [np.eye(3)] * 22
        out[t, 0], g[0] = off[t, 0], e[0]
        for j in range(1, 22):
            p = UIPRMD_PARENTS[j]
            out[t, j] = out[t, p] + g[p] @ off[t, j]
            g[j] = g[p] @ e[j]
    return out


# --------------------------------------------------------------------------- real data


def test_sample_reads_as_kinect_keypoints_in_mm(sequences: dict[Path, mp.KeypointSequence]) -> None:
    for p, seq in sequences.items():
        assert seq.positions.shape == (len(_raw(p)), 22, 3)
        assert seq.names == UIPRMD_NAMES
        assert seq.frame == KINECT_FRAME == "kinect" and seq.rate == 30.0
        assert np.isfinite(seq.positions).all() and (seq.confidence == 1.0).all()
        # the waist is the file's absolute position, converted from cm
        np.testing.assert_allclose(seq.positions[:, 0], _raw(p)[:, 0] * 10.0)


def test_names_are_medpose_names_where_they_correspond() -> None:
    table = canonical_keypoints()
    assert set(UIPRMD_MEDPOSE_NAMES) <= set(table)
    assert len(set(UIPRMD_NAMES)) == 22
    others = set(UIPRMD_NAMES) - set(UIPRMD_MEDPOSE_NAMES)
    assert not others & set(table), "a non-medpose name collides with a canonical keypoint"
    for side in "lr":
        for j in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            assert f"{j}_{side}" in UIPRMD_MEDPOSE_NAMES


def test_vectorised_fk_agrees_with_a_frame_loop(sample: list[Path]) -> None:
    p = sample[0]
    off, ang = _raw(p), _raw(angles_path(p))
    np.testing.assert_allclose(
        uiprmd_forward_kinematics(off, ang), _fk_loop(off, ang, "zxy"), atol=1e-9
    )


def test_bones_have_the_length_of_the_file_offsets(
    sequences: dict[Path, mp.KeypointSequence],
) -> None:
    # rotations keep lengths: every reconstructed bone is as long as its offset in that frame
    for p, seq in sequences.items():
        off = _raw(p)
        for j, parent in enumerate(UIPRMD_PARENTS[1:], start=1):
            bone = np.linalg.norm(seq.positions[:, j] - seq.positions[:, parent], axis=-1)
            np.testing.assert_allclose(bone, np.linalg.norm(off[:, j], axis=-1) * 10.0, atol=1e-9)


def test_limb_lengths_are_stable_and_symmetric(sequences: dict[Path, mp.KeypointSequence]) -> None:
    """The offsets are Kinect v2 estimates made anew in every frame, not a fixed skeleton, so
    the bound is the tracker's noise: a typical (median) spread of at most 2 cm, none above
    5 cm (an eighth of a thigh), and left/right means within 5 cm."""
    spread: dict[str, list[float]] = {k: [] for k in BONES}
    for p, seq in sequences.items():
        x = seq.positions
        for bone, (a, b) in BONES.items():
            lengths = [
                np.linalg.norm(x[:, seq.index(f"{b}_{s}")] - x[:, seq.index(f"{a}_{s}")], axis=-1)
                for s in "lr"
            ]
            for ln in lengths:
                assert ln.std() < 50.0, f"{p.name} {bone}: SD {ln.std():.1f} mm"
                spread[bone].append(float(ln.std()))
            diff = abs(lengths[0].mean() - lengths[1].mean())
            assert diff < 50.0, f"{p.name} {bone}: left/right differ by {diff:.1f} mm"
    for bone, sds in spread.items():
        assert np.median(sds) < 20.0, f"{bone}: median SD {np.median(sds):.1f} mm"


def test_feet_are_the_lowest_points(sequences: dict[Path, mp.KeypointSequence]) -> None:
    for p, seq in sequences.items():
        lowest = seq.positions[..., 1].argmin(axis=1)
        feet = [seq.index(n) for n in FEET]
        share = np.isin(lowest, feet).mean()
        assert share >= 0.9, f"{p.name}: a foot is lowest in only {share:.0%} of frames"


def test_feet_stay_planted_and_the_authors_euler_product_does_not(sample: list[Path]) -> None:
    """Both exercises keep the feet on the floor.  The Euler product used (Rz Rx Ry) keeps the
    ankle height within 3 cm (median SD over correct repetitions); the Rz Ry Rx product of the
    authors' visualisation script, computed here on the same files, moves the ankles more."""
    ours: list[float] = []
    theirs: list[float] = []
    for p in [q for q in sample if "/correct/" in q.as_posix()][:8]:
        off, ang = _raw(p), _raw(angles_path(p))
        for order, out in (("zxy", ours), ("zyx", theirs)):
            x = _fk_loop(off, ang, order)
            out.append(float(x[:, [16, 20], 1].std(axis=0).max()))
    assert np.median(ours) < 3.0  # cm
    assert np.median(theirs) > 2 * np.median(ours)


def test_deep_squat_bends_the_knees(sequences: dict[Path, mp.KeypointSequence]) -> None:
    squats = {
        p: s
        for p, s in sequences.items()
        if p.name.startswith("m01") and "/correct/" in p.as_posix()
    }
    assert len(squats) >= 5
    for p, seq in squats.items():
        x = seq.positions
        flex = max(
            float(
                (
                    180.0 - _angle(*(x[:, seq.index(f"{j}_{s}")] for j in ("hip", "knee", "ankle")))
                ).max()
            )
            for s in "lr"
        )
        assert flex > 60.0, f"{p.name}: knee flexion peaks at {flex:.0f} deg"
        waist = x[:, seq.index("waist"), 1]
        assert waist.max() - waist.min() > 200.0, (
            f"{p.name}: the waist drops only {np.ptp(waist):.0f} mm"
        )


def test_shoulder_abduction_lifts_the_elbows(sequences: dict[Path, mp.KeypointSequence]) -> None:
    abd = {
        p: s
        for p, s in sequences.items()
        if p.name.startswith("m07") and "/correct/" in p.as_posix()
    }
    assert len(abd) >= 5
    for p, seq in abd.items():
        x = seq.positions
        rise = max(
            float((x[:, seq.index(f"elbow_{s}"), 1] - x[:, seq.index(f"shoulder_{s}"), 1]).max())
            for s in "lr"
        )
        assert rise > 0.0, f"{p.name}: the elbow stays {-rise:.0f} mm below the shoulder"


def test_fit_gives_finite_deep_knee_flexion(kinect: Path) -> None:
    seq = read_uiprmd(kinect / "correct" / "positions" / "m01_s01_e01_positions.txt.gz")
    res = mp.fit(seq)  # the Kinect-only joints are left out by the fit
    knees = res.angles[["knee_flexion_l", "knee_flexion_r"]].to_numpy(dtype=float)
    assert np.isfinite(knees).all()
    assert knees.max() > 60.0


def test_read_keypoints_dispatches_gz_and_plain_text(sample: list[Path], tmp_path: Path) -> None:
    p = sample[-1]
    pos = tmp_path / "Positions" / p.name[: -len(".gz")]
    ang = tmp_path / "Angles" / angles_path(p).name[: -len(".gz")]
    for src, dst in ((p, pos), (angles_path(p), ang)):
        dst.parent.mkdir(exist_ok=True)
        with gzip.open(src, "rb") as fh:
            dst.write_bytes(fh.read())
    assert angles_path(pos) == ang
    a, b = mp.read_keypoints(p), mp.read_keypoints(pos)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert mp.read_keypoints(p, rate=15.0).rate == 15.0


def test_file_names() -> None:
    assert is_uiprmd_path("m01_s01_e01_positions.txt.gz")
    assert is_uiprmd_path("m07_s10_e04_positions_inc.txt")
    assert not is_uiprmd_path("m01_s01_e01_angles.txt.gz")
    assert not is_uiprmd_path("trial.csv")
    assert angles_path("kinect/incorrect/positions/m07_s03_e08_positions_inc.txt.gz") == Path(
        "kinect/incorrect/angles/m07_s03_e08_angles_inc.txt.gz"
    )


# --------------------------------------------------------------------------- bad inputs


def _pair(
    tmp_path: Path, kinect: Path, pos_text: str | None = None, ang_text: str | None = None
) -> Path:
    """A copy of one real pair under tmp_path, optionally with replaced (gzipped) text."""
    src = kinect / "correct" / "positions" / "m01_s01_e01_positions.txt.gz"
    pos = tmp_path / "positions" / src.name
    ang = tmp_path / "angles" / angles_path(src).name
    for s, d, text in ((src, pos, pos_text), (angles_path(src), ang, ang_text)):
        d.parent.mkdir(exist_ok=True)
        if text is None:
            shutil.copyfile(s, d)
        else:
            d.write_bytes(gzip.compress(text.encode()))
    return pos


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def _raises(path: Path, *words: str) -> str:
    with pytest.raises(InputError) as info:
        read_uiprmd(path)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert str(path.parent.parent) not in msg  # no absolute paths
    return msg


def test_missing_angles_file_is_named(tmp_path: Path, kinect: Path) -> None:
    pos = _pair(tmp_path, kinect)
    angles_path(pos).unlink()
    _raises(pos, "m01_s01_e01_positions.txt.gz", "angles/m01_s01_e01_angles.txt.gz", "not found")


def test_missing_positions_file(tmp_path: Path) -> None:
    _raises(tmp_path / "positions" / "m01_s09_e09_positions.txt.gz", "not found")


def test_wrong_column_count_names_file_line_found_expected(tmp_path: Path, kinect: Path) -> None:
    src = kinect / "correct" / "positions" / "m01_s01_e01_positions.txt.gz"
    lines = _lines(src)
    lines[4] = ",".join(lines[4].split(",")[:63])
    pos = _pair(tmp_path, kinect, pos_text="\n".join(lines) + "\n")
    _raises(pos, "m01_s01_e01_positions.txt.gz", "line 5", "found 63", "expected 66")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "abc", ""])
def test_non_finite_or_non_numeric_values(tmp_path: Path, kinect: Path, bad: str) -> None:
    src = kinect / "correct" / "angles" / "m01_s01_e01_angles.txt.gz"
    lines = _lines(src)
    cells = lines[2].split(",")
    cells[46] = bad  # joint 15 (left lower leg), y: the 47th cell
    lines[2] = ",".join(cells)
    pos = _pair(tmp_path, kinect, ang_text="\n".join(lines) + "\n")
    _raises(
        pos,
        "m01_s01_e01_angles.txt.gz",
        "line 3",
        "column 47",
        "left lower leg y",
        repr(bad),
        "finite",
    )


def test_damaged_gzip(tmp_path: Path, kinect: Path) -> None:
    pos = _pair(tmp_path, kinect)
    data = pos.read_bytes()
    pos.write_bytes(data[: len(data) // 2])
    _raises(pos, "m01_s01_e01_positions.txt.gz", "truncated")
    pos.write_bytes(b"this is not gzip data at all")
    _raises(pos, "m01_s01_e01_positions.txt.gz", "damaged gzip")


def test_binary_content_and_empty_file(tmp_path: Path, kinect: Path) -> None:
    pos = _pair(tmp_path, kinect)
    pos.write_bytes(gzip.compress(b"\xff\xfe\x00\x01"))
    _raises(pos, "m01_s01_e01_positions.txt.gz", "line 1", "not text")
    pos.write_bytes(gzip.compress(b""))
    _raises(pos, "m01_s01_e01_positions.txt.gz", "no frames")


def test_frame_count_mismatch(tmp_path: Path, kinect: Path) -> None:
    src = kinect / "correct" / "angles" / "m01_s01_e01_angles.txt.gz"
    lines = _lines(src)
    pos = _pair(tmp_path, kinect, ang_text="\n".join(lines[:-3]) + "\n")
    _raises(pos, "m01_s01_e01_positions.txt.gz", f"{len(lines)} frames", f"has {len(lines) - 3}")


def test_not_a_positions_file_name(tmp_path: Path, kinect: Path) -> None:
    pos = _pair(tmp_path, kinect)
    _raises(angles_path(pos), "m01_s01_e01_angles.txt.gz", "not a UI-PRMD positions file name")


def test_decompressed_size_is_bounded(
    tmp_path: Path, kinect: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uiprmd, "MAX_TABLE_BYTES", 1000)  # stands in for 1 GiB
    pos = _pair(tmp_path, kinect)
    _raises(pos, "m01_s01_e01_positions.txt.gz", "decompresses to more than 1000 bytes")


def test_multi_member_gzip_reads_like_one(tmp_path: Path, kinect: Path) -> None:
    src = kinect / "correct" / "positions" / "m01_s01_e01_positions.txt.gz"
    lines = [ln + "\n" for ln in _lines(src)]
    pos = _pair(tmp_path, kinect)
    half = len(lines) // 2
    pos.write_bytes(
        gzip.compress("".join(lines[:half]).encode())
        + gzip.compress("".join(lines[half:]).encode())
    )
    np.testing.assert_array_equal(read_uiprmd(pos).positions, read_uiprmd(src).positions)
    pos.write_bytes(gzip.compress("".join(lines).encode()) + b"trailing junk")
    _raises(pos, "m01_s01_e01_positions.txt.gz", "damaged gzip")
