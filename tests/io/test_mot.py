"""OpenSim .mot / .sto joint angles: a real OpenSim IK result, round trips, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medpose.data import JointAngles
from medpose.errors import InputError
from medpose.io._text import rate_from_times
from medpose.io.mot import read_mot, write_mot

# Real OpenSim 4 inverse-kinematics output shipped with Pose2Sim (BSD-3-Clause, (c) perfanalytics):
# Pose2Sim/Demo/.../S00_P00_T01_BalancingTrial_0-100_body25b.mot, header verbatim (nRows edited
# from 100 to 3 to match the excerpt), first three rows verbatim (space-padded, tab-separated).
_COLS = [
    "time",
    "pelvis_tilt",
    "pelvis_list",
    "pelvis_rotation",
    "pelvis_tx",
    "pelvis_ty",
    "pelvis_tz",
    "hip_flexion_r",
    "hip_adduction_r",
    "hip_rotation_r",
    "knee_angle_r",
    "knee_angle_r_beta",
    "ankle_angle_r",
    "subtalar_angle_r",
    "mtp_angle_r",
    "hip_flexion_l",
    "hip_adduction_l",
    "hip_rotation_l",
    "knee_angle_l",
    "knee_angle_l_beta",
    "ankle_angle_l",
    "subtalar_angle_l",
    "mtp_angle_l",
    "L5_S1_Flex_Ext",
    "L5_S1_Lat_Bending",
    "L5_S1_axial_rotation",
    "L4_L5_Flex_Ext",
    "L4_L5_Lat_Bending",
    "L4_L5_axial_rotation",
    "L3_L4_Flex_Ext",
    "L3_L4_Lat_Bending",
    "L3_L4_axial_rotation",
    "L2_L3_Flex_Ext",
    "L2_L3_Lat_Bending",
    "L2_L3_axial_rotation",
    "L1_L2_Flex_Ext",
    "L1_L2_Lat_Bending",
    "L1_L2_axial_rotation",
    "L1_T12_Flex_Ext",
    "L1_T12_Lat_Bending",
    "L1_T12_axial_rotation",
    "Abs_r3",
    "Abs_r2",
    "Abs_r1",
    "Abs_t1",
    "Abs_t2",
    "neck_flexion",
    "neck_bending",
    "neck_rotation",
    "arm_flex_r",
    "arm_add_r",
    "arm_rot_r",
    "elbow_flex_r",
    "pro_sup_r",
    "wrist_flex_r",
    "wrist_dev_r",
    "arm_flex_l",
    "arm_add_l",
    "arm_rot_l",
    "elbow_flex_l",
    "pro_sup_l",
    "wrist_flex_l",
    "wrist_dev_l",
]
_ROWS = [
    "0.01666667 -0.37118309 4.07891167 -74.22478634 0.03453299 0.95240847 -1.35873394 0.47973213 5.63334603 -36.06894751 20.22092186 0.35292166 19.38493920 -10.87258308 0.00000000 29.94763685 16.20405257 29.37389575 16.54159011 0.28870521 -18.32274681 -18.65620491 0.00000000 -0.02192814 0.42997965 -1.71117175 -0.04072275 0.57187293 -1.81811999 -0.03602574 1.04545252 -1.81811999 -0.02506167 1.04545252 -1.49727529 -0.02036247 0.87681450 -1.39032705 -0.01252974 0.66603848 -1.28337882 -0.15663053 4.86401578 -9.51702395 0.00000000 0.00000000 -10.55913217 4.81528286 -13.49372672 -20.21355149 -20.98477251 -28.84280635 49.64535641 89.99559364 0.00000000 0.00000000 -6.97043375 -23.67701267 19.35573796 24.22873484 89.99559364 0.00000000 0.00000000",
    "0.03333333 -2.15755308 3.59546511 -76.16711155 0.02880955 0.94967046 -1.34483864 -1.16619822 8.48835454 -33.90068645 18.21157993 0.31785203 19.38465267 -8.43090793 0.00000000 29.68003748 12.47919050 21.30103148 20.07837459 0.35043375 -10.56472782 -16.83922921 0.00000000 -0.02084991 0.49585376 -1.50236279 -0.03872037 0.65948550 -1.59626046 -0.03425432 1.20561884 -1.59626046 -0.02382936 1.20561884 -1.31456744 -0.01936123 1.01114499 -1.22066976 -0.01191364 0.76807748 -1.12677209 -0.14892884 5.60919693 -8.35569110 0.00000000 0.00000000 -9.23023722 5.45832716 -11.74749136 -22.85809574 -21.13858576 -29.66285615 53.90255802 89.99559364 0.00000000 0.00000000 -8.48795765 -24.33752176 18.56939766 25.78427528 89.99559364 0.00000000 0.00000000",
    "0.05000000 -0.67152717 1.90080022 -79.92111593 0.01948011 0.95495433 -1.34199324 -2.92110121 7.58907036 -28.88234369 19.40764334 0.33872728 16.96584892 -12.25943439 0.00000000 29.38767833 12.14764311 19.24491545 19.33221750 0.33741085 -21.84580048 -14.55776257 0.00000000 -0.03044255 0.23155062 -2.51467712 -0.05653485 0.30796233 -2.67184444 -0.05001406 0.56299219 -2.67184444 -0.03479279 0.56299219 -2.20034248 -0.02826895 0.47217803 -2.04317516 -0.01739487 0.35867192 -1.88600784 -0.21744807 2.61934697 -13.98587976 0.00000000 0.00000000 -16.86052315 5.89759484 4.91563576 -10.50804679 -22.64166720 -18.56201673 46.60735281 89.99559364 0.00000000 0.00000000 -11.69432526 -24.11597494 4.40785055 23.65816038 89.99559364 0.00000000 0.00000000",
]


def mot_text(
    rows=_ROWS, cols=_COLS, *, n_rows=None, n_cols=None, in_degrees="yes", header_extra=()
) -> str:
    head = [
        "Coordinates",
        "version=1",
        f"nRows={len(rows) if n_rows is None else n_rows}",
        f"nColumns={len(cols) if n_cols is None else n_cols}",
    ]
    if in_degrees is not None:
        head.append(f"inDegrees={in_degrees}")
    head += [
        "",
        "Units are S.I. units (second, meters, Newtons, ...)",
        "If the header above contains a line with 'inDegrees', this indicates whether rotational "
        "values are in degrees (yes) or radians (no).",
        "",
        *header_extra,
        "endheader",
        "\t".join(cols),
    ]
    body = ["\t".join(f"{c:>16}" for c in r.split(" ")) if " " in r else r for r in rows]
    return "\n".join(head + body) + "\n"


def write(tmp_path: Path, text: str, name: str = "ik.mot") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_real_opensim_ik(tmp_path: Path) -> None:
    ang = read_mot(write(tmp_path, mot_text()))
    assert ang.values.shape == (3, 62 - 3)  # translations pelvis_tx/ty/tz dropped
    assert "pelvis_tx" not in ang.names and ang.names[:3] == (
        "pelvis_tilt",
        "pelvis_list",
        "pelvis_rotation",
    )
    assert ang.rate == 60.0  # 0.01666667, 0.03333333, 0.05 -> 60 Hz
    assert ang.start == pytest.approx(0.01666667)
    assert ang["knee_angle_r"][0] == pytest.approx(20.22092186)
    assert ang["elbow_flex_l"][2] == pytest.approx(23.65816038)


def test_translations_kept_in_mm(tmp_path: Path) -> None:
    ang = read_mot(write(tmp_path, mot_text()), translations="keep")
    assert len(ang.names) == 62
    np.testing.assert_allclose(ang["pelvis_tx"], [34.53299, 28.80955, 19.48011])


def test_radians_are_converted(tmp_path: Path) -> None:
    rows = ["0\t0.5\t1.0\t0.25", "0.01\t-0.5\t1.5\t0.5"]
    ang = read_mot(
        write(tmp_path, mot_text(rows, ["time", "a", "b", "hip_tx"], in_degrees="no")),
        translations="keep",
    )
    np.testing.assert_allclose(ang["a"], np.degrees([0.5, -0.5]))
    np.testing.assert_allclose(ang["hip_tx"], [250.0, 500.0])  # metres -> mm, not "degrees"
    assert ang.rate == 100.0


def test_sto_with_whitespace_columns(tmp_path: Path) -> None:
    text = "states\nversion=1\nnRows=2\nnColumns=2\ninDegrees=yes\nendheader\ntime knee\n0.0 1\n0.5 2\n"
    ang = read_mot(write(tmp_path, text, "s.sto"))
    assert ang.names == ("knee",) and ang.rate == 2.0
    np.testing.assert_array_equal(ang["knee"], [1, 2])


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(0, 30, (25, 3))
    v[4, 1] = np.nan
    ang = JointAngles(v, ("knee_flexion_r", "hip_flexion_r", "pelvis_ty"), 59.94, start=1.5)
    p = write_mot(ang, tmp_path / "out.mot")
    back = read_mot(p, translations="keep")
    assert back.names == ang.names
    np.testing.assert_allclose(back.values, ang.values, rtol=1e-10, atol=1e-9)
    assert back.rate == pytest.approx(59.94, rel=1e-9) and back.start == pytest.approx(1.5)
    text = p.read_text().splitlines()
    assert text[:6] == ["out", "version=1", "nRows=25", "nColumns=4", "inDegrees=yes", "endheader"]
    assert "NaN" in text[7 + 4]
    # translations in metres in the file
    assert float(text[7].split("\t")[3]) == pytest.approx(v[0, 2] / 1000)


def test_rate_from_times_snaps_printed_times() -> None:
    assert rate_from_times(np.round(np.arange(5) / 60, 8)) == 60.0
    assert rate_from_times(np.arange(5) / 59.94) == pytest.approx(59.94)
    assert rate_from_times(np.array([0.0, 0.0334, 0.0667])) == pytest.approx(1 / (0.0667 / 2))


# ----------------------------------------------------------------------------- bad input
def _err(tmp_path: Path, text: str, pattern: str, **kw) -> None:
    with pytest.raises(InputError, match=pattern):
        read_mot(write(tmp_path, text, "bad.mot"), **kw)


def test_no_endheader(tmp_path: Path) -> None:
    _err(tmp_path, "Coordinates\nversion=1\ntime\ta\n0\t1\n", r"bad\.mot.*no 'endheader'")


def test_in_degrees_missing_or_bad(tmp_path: Path) -> None:
    _err(tmp_path, mot_text(in_degrees=None), r"bad\.mot.*no 'inDegrees'.*in_degrees=")
    _err(tmp_path, mot_text(in_degrees="maybe"), r"bad\.mot.*inDegrees is 'maybe'")
    ang = read_mot(write(tmp_path, mot_text(in_degrees=None)), in_degrees=True)
    assert ang["knee_angle_r"][0] == pytest.approx(20.22092186)


def test_row_and_column_counts(tmp_path: Path) -> None:
    _err(tmp_path, mot_text(n_rows=100), r"bad\.mot.*nRows is 100 but 3 data rows.*truncated")
    _err(tmp_path, mot_text(n_cols=64), r"bad\.mot.*nColumns is 64 but line 11 names 63 columns")
    _err(tmp_path, mot_text(n_rows="many"), r"bad\.mot.*'nrows' is 'many'")


def test_truncated_row(tmp_path: Path) -> None:
    rows = _ROWS[:2] + [" ".join(_ROWS[2].split(" ")[:10])]
    _err(
        tmp_path, mot_text(rows), r"bad\.mot.*line 14: truncated file\? found 10 cells; expected 63"
    )


def test_time_problems(tmp_path: Path) -> None:
    cols = ["time", "a"]
    _err(
        tmp_path,
        mot_text(["0\t1", "0.02\t2", "0.01\t3"], cols),
        r"bad\.mot.*line 14: time 0\.01 s does not increase",
    )
    _err(
        tmp_path,
        mot_text(["0\t1", "0.01\t2", "0.05\t3"], cols),
        r"bad\.mot.*line 13: time step.*uniform",
    )
    _err(tmp_path, mot_text(["0\t1", "\t2"], cols), r"bad\.mot.*line 13: time is empty")
    _err(
        tmp_path,
        mot_text(["1\t2"], ["a", "b"]),
        r"bad\.mot.*line 11: first column is 'a'; expected 'time'",
    )


def test_non_numeric_and_empty(tmp_path: Path) -> None:
    _err(
        tmp_path,
        mot_text(["0\t1", "0.01\tx1"], ["time", "knee"]),
        r"bad\.mot.*line 13, column 'knee': found 'x1'; expected a number",
    )
    _err(tmp_path, mot_text([], ["time", "a"]), r"bad\.mot.*no data rows")
    _err(tmp_path, "x\nendheader\n", r"bad\.mot.*truncated file: no column names", in_degrees=True)
    _err(tmp_path, mot_text(), r"translations='all'", translations="all")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"none\.mot.*not found"):
        read_mot(tmp_path / "none.mot")
