"""OpenSim .trc marker files: real Pose2Sim output, round trips, every bad-input path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medpose.data import KeypointSequence
from medpose.errors import InputError
from medpose.io import _text as kpmod
from medpose.io.trc import read_trc, write_trc

# Real Pose2Sim output (Pose2Sim 0.x, BSD-3-Clause, (c) perfanalytics): the header and first three
# frames of Pose2Sim/Demo/opensim/Balancing_for_IK.trc, verbatim except NumFrames/OrigNumFrames
# edited from 100 to 3 to match the excerpt.  Metres, Y up (OpenSim convention).
POSE2SIM_NAMES = [
    "RHip",
    "RKnee",
    "RAnkle",
    "RBigToe",
    "RSmallToe",
    "RHeel",
    "LHip",
    "LKnee",
    "LAnkle",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "Neck",
    "Head",
    "Nose",
    "RShoulder",
    "RElbow",
    "RWrist",
    "LShoulder",
    "LElbow",
    "LWrist",
]
POSE2SIM_ROWS = [
    "1 0.0166666666666666 -0.06499776880731584 0.9015132201416929 -1.4005735926016618 -0.03953823544185855 0.4928670195676177 -1.4488398285119384 0.043722239677177546 0.14392102600475692 -1.5950232476837605 -0.016930358013220913 0.06443271631692336 -1.4465817927970495 -0.023659406882450114 0.07649613531234134 -1.504955670851614 0.059985551516713226 0.10449043759251578 -1.6357123947948065 0.10412925185379157 0.9087452234460844 -1.4589563098305751 0.03046064437340479 0.5362746404904444 -1.2634604115734183 0.013825475610302005 0.18117305106442444 -1.1375271880024058 -0.022230130873009023 0.09538301202311449 -1.0124216532378894 0.002585112527233243 0.11342035499030148 -0.9900955931253046 0.02324341098571149 0.10281046967820899 -1.226940406627339 -0.028691117162967534 1.4640467742574672 -1.3966877075073407 -0.05637421589160283 1.7024200638322964 -1.2516128899060592 -0.05303931035925115 1.5572384516777784 -1.1970436207520263 -0.167442086648298 1.392947588015956 -1.4130332081978958 -0.27295446083447816 1.1455669190226074 -1.4797215568704447 -0.363078065347936 0.9229656892080893 -1.3696481415007873 0.1449346084625672 1.4142103983448608 -1.4453320504539162 0.277046555117822 1.1648130235865395 -1.4725039614568265 0.35463254276602035 0.937737730471396 -1.4579500717624179",
    "2 0.0333333333333333 -0.07104221539355539 0.9043857718248944 -1.3935290026984142 -0.03880590057606989 0.49350054440359026 -1.446546013508329 0.042171226978639384 0.1456514778923865 -1.5952702035359851 -0.01726238596964083 0.06489677662461549 -1.4471475723743108 -0.023450287553422086 0.07552904378809105 -1.503324160367071 0.05909754623411686 0.10738317958411918 -1.636385597839711 0.10071723690326366 0.9082867353873171 -1.4465696738127223 0.03768271444426343 0.5291465823978587 -1.2425930838408041 0.011219622298424652 0.1726017604584103 -1.149628403484432 -0.023506949025403796 0.09085042852301174 -1.0128543960362535 -0.0017343510873553073 0.09846739691190844 -1.0095156760416237 0.019979298828053854 0.10451892856850689 -1.217635806244642 -0.023391910591897516 1.4638619184705208 -1.3856850474961646 -0.043915425552927254 1.7026548729321063 -1.2512145404992965 -0.037401443003060704 1.556111109962116 -1.1993429627695789 -0.16398493590089255 1.3941321603107173 -1.421332180236123 -0.27591600807308203 1.1487930488475269 -1.4801962058940867 -0.36572816332854563 0.9359377608915077 -1.360064165244055 0.1497446791896487 1.4100972780266514 -1.4377593851411463 0.2812419795732824 1.160081452984462 -1.4560701338967506 0.35944636657246337 0.9320159286708114 -1.4383584093560937",
    "3 0.05 -0.07645198561087355 0.9069940575482702 -1.386021592722144 -0.03822743922871416 0.49409662221293527 -1.4441913244047033 0.04056369624494717 0.14734992674577058 -1.595505291073214 -0.017867244863870865 0.0654855226798009 -1.4470331418421103 -0.02356921111498618 0.07515743354397725 -1.502082608316526 0.058118048710675066 0.11063680953345591 -1.6371707607521462 0.09720199175920108 0.9080798844258202 -1.4346185098781312 0.04490296203786441 0.5227327874168545 -1.2224064807806698 0.008571391007630368 0.16532945071820646 -1.1604310273275136 -0.02531132479031102 0.08630322929983965 -1.0131031181997188 -0.006238421296742498 0.08592374531388872 -1.025611629506082 0.016708852486160237 0.10632323927914533 -1.209276544835169 -0.017674284528190354 1.463763485102624 -1.3748427241451058 -0.03143945788304647 1.7028880007733869 -1.2490642166058654 -0.02309858181356092 1.5552175702276105 -1.2002725099379585 -0.1600340329378888 1.3961490903770342 -1.4255817971801812 -0.27883793278844965 1.1531479796379254 -1.4784308333074834 -0.36904576783040505 0.9489834612138168 -1.3489596196539768 0.15414429522636164 1.406907438321292 -1.430821359357215 0.28512078106741273 1.1550622245569269 -1.4402949572925516 0.36357677312515185 0.9264522765266473 -1.419229549778169",
]


def trc_text(
    names=POSE2SIM_NAMES,
    rows=POSE2SIM_ROWS,
    *,
    units="m",
    n_frames=None,
    n_markers=None,
    rate="60",
    blank_after_header=False,
) -> str:
    n_frames = len(rows) if n_frames is None else n_frames
    n_markers = len(names) if n_markers is None else n_markers
    lines = [
        "PathFileType\t4\t(X/Y/Z)\tDemo_0-100.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate}\t60\t{n_frames}\t{n_markers}\t{units}\t60\t0\t{n_frames}",
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, len(names) + 1)),
    ]
    if blank_after_header:
        lines.append("")
    lines += [r.replace(" ", "\t") if " " in r else r for r in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture
def pose2sim_trc(tmp_path: Path) -> Path:
    p = tmp_path / "Balancing_for_IK.trc"
    p.write_text(trc_text())
    return p


def test_read_real_pose2sim_trc(pose2sim_trc: Path) -> None:
    seq = read_trc(pose2sim_trc)
    assert seq.positions.shape == (3, 21, 3)
    assert seq.rate == 60.0 and seq.frame == "camera"
    assert seq.start == pytest.approx(0.0166666666666666)
    # Pose2Sim HALPE_26 names -> medpose names
    assert seq.names[:3] == ("hip_r", "knee_r", "ankle_r")
    assert {"neck", "head_top", "nose", "big_toe_l", "heel_r", "wrist_l"} <= set(seq.names)
    # metres -> millimetres, axes as in the file (Y up)
    np.testing.assert_allclose(
        seq["hip_r"][0], [-64.99776880731584, 901.5132201416929, -1400.5735926016618]
    )
    np.testing.assert_allclose(
        seq["wrist_l"][2], [363.57677312515185, 926.4522765266473, -1419.229549778169]
    )
    assert np.all(seq.confidence == 1.0)


def test_read_keeps_native_names_when_asked(pose2sim_trc: Path) -> None:
    seq = read_trc(pose2sim_trc, rename=False, frame="lab")
    assert seq.names == tuple(POSE2SIM_NAMES) and seq.frame == "lab"


def test_blank_line_after_header_and_trailing_tabs(tmp_path: Path) -> None:
    rows = [r.replace(" ", "\t") + "\t" for r in POSE2SIM_ROWS]  # trailing tab on every row
    p = tmp_path / "t.trc"
    p.write_text(trc_text(rows=rows, blank_after_header=True))
    np.testing.assert_allclose(read_trc(p).positions, read_trc_str(tmp_path, trc_text()).positions)


def read_trc_str(tmp_path: Path, text: str, name: str = "x.trc") -> KeypointSequence:
    p = tmp_path / name
    p.write_text(text)
    return read_trc(p)


@pytest.mark.parametrize("units,scale", [("mm", 1.0), ("cm", 10.0), ("m", 1000.0), ("M", 1000.0)])
def test_units_are_converted_to_mm(tmp_path: Path, units: str, scale: float) -> None:
    seq = read_trc_str(
        tmp_path, trc_text(["A"], ["1\t0\t1\t2\t3", "2\t0.01\t4\t5\t6"], units=units, rate="100")
    )
    np.testing.assert_allclose(seq.positions[:, 0], np.array([[1, 2, 3], [4, 5, 6]]) * scale)


def test_empty_cells_are_missing(tmp_path: Path) -> None:
    seq = read_trc_str(
        tmp_path,
        trc_text(
            ["A", "B"], ["1\t0\t1\t2\t3\t\t\t", "2\t0.01\t\t\t\t4\t5\t6"], units="mm", rate="100"
        ),
    )
    assert np.isnan(seq.positions[0, 1]).all() and np.isnan(seq.positions[1, 0]).all()
    np.testing.assert_array_equal(seq.confidence, [[1, 0], [0, 1]])


@pytest.mark.parametrize("units", ["mm", "m", "cm"])
def test_round_trip(tmp_path: Path, units: str) -> None:
    rng = np.random.default_rng(3)
    pos = rng.normal(0, 400, (40, 4, 3))
    pos[5, 2] = np.nan
    pos[-1, -1] = np.nan  # last cell of the file empty
    seq = KeypointSequence(pos, ("hip_r", "knee_r", "my marker", "c7"), 120.0, start=0.25)
    p = write_trc(seq, tmp_path / "out.trc", units=units)
    back = read_trc(p)
    assert back.names == seq.names and back.rate == 120.0
    assert back.start == pytest.approx(0.25)
    atol = {"mm": 1e-6, "cm": 1e-5, "m": 1e-3}[units]  # 6 decimals in the file's units
    np.testing.assert_allclose(back.positions, seq.positions, atol=atol)
    assert np.array_equal(np.isnan(back.positions), np.isnan(seq.positions))
    header = p.read_text().splitlines()[2].split("\t")
    assert header[2:5] == ["40", "4", units]


def _missing_last_marker(tmp_path: Path) -> tuple[KeypointSequence, Path]:
    pos = np.random.default_rng(4).normal(0, 400, (6, 3, 3))
    pos[2, -1] = np.nan  # the row's last marker missing: its trailing cells
    pos[3, 0] = np.nan
    seq = KeypointSequence(pos, ("hip_r", "knee_r", "ankle_r"), 60.0)
    return seq, write_trc(seq, tmp_path / "gap.trc", units="m")


def test_missing_coordinates_are_written_as_nan_cells(tmp_path: Path) -> None:
    """Every data row has all its cells: OpenSim 4.6 refuses a row whose last cells are empty."""
    seq, p = _missing_last_marker(tmp_path)
    rows = [r.split("\t") for r in p.read_text().splitlines()[5:]]
    assert all(len(r) == 2 + 3 * 3 and all(c != "" for c in r) for r in rows)
    assert rows[2][-3:] == ["nan"] * 3 and rows[3][2:5] == ["nan"] * 3
    back = read_trc(p)
    assert np.array_equal(np.isnan(back.positions), np.isnan(seq.positions))


def test_opensim_reads_a_written_file_with_a_missing_last_marker(tmp_path: Path) -> None:
    osim = pytest.importorskip("opensim")  # the bench extra's peer
    seq, p = _missing_last_marker(tmp_path)
    table = osim.TimeSeriesTableVec3(str(p))
    assert table.getNumRows() == 6
    row = table.getRowAtIndex(2)
    assert np.isnan(row[2][0]) and row[1][0] == pytest.approx(
        seq.positions[2, 1, 0] / 1000, abs=1e-6
    )


def test_writer_rejects_2d_and_bad_units(tmp_path: Path) -> None:
    seq2d = KeypointSequence(np.zeros((2, 1, 2)), ("a",), 30.0)
    with pytest.raises(InputError, match=r"out\.trc.*3D.*2D"):
        write_trc(seq2d, tmp_path / "out.trc")
    seq = KeypointSequence(np.zeros((2, 1, 3)), ("a",), 30.0)
    with pytest.raises(InputError, match=r"out\.trc.*'inch'"):
        write_trc(seq, tmp_path / "out.trc", units="inch")
    assert not (tmp_path / "out.trc").exists()


def test_interrupted_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "keep.trc"
    p.write_text("old")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("medpose.io.trc.write_csv_table", boom)
    with pytest.raises(RuntimeError):
        write_trc(KeypointSequence(np.zeros((2, 1, 3)), ("a",), 30.0), p)
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["keep.trc"]


# ----------------------------------------------------------------------------- bad input
def _err(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        read_trc_str(tmp_path, text, "bad.trc")


def test_unknown_units(tmp_path: Path) -> None:
    _err(tmp_path, trc_text(units="inches"), r"bad\.trc.*Units.*'inches'.*expected")


def test_num_frames_disagrees(tmp_path: Path) -> None:
    _err(tmp_path, trc_text(n_frames=100), r"bad\.trc.*NumFrames is 100 but 3 data rows.*truncated")
    _err(tmp_path, trc_text(n_frames=2), r"bad\.trc.*NumFrames is 2 but 3 data rows")


def test_num_markers_disagrees(tmp_path: Path) -> None:
    _err(
        tmp_path, trc_text(n_markers=22), r"bad\.trc.*line 4 names 21 markers but NumMarkers is 22"
    )


def test_time_not_increasing(tmp_path: Path) -> None:
    rows = [POSE2SIM_ROWS[0], POSE2SIM_ROWS[2], POSE2SIM_ROWS[1]]
    _err(tmp_path, trc_text(rows=rows), r"bad\.trc.*line 8.*time 0\.0333333 s does not increase")


def test_truncated_last_row(tmp_path: Path) -> None:
    rows = POSE2SIM_ROWS[:2] + [POSE2SIM_ROWS[2][:200]]
    _err(
        tmp_path,
        trc_text(rows=rows),
        r"bad\.trc.*line 8.*truncated file\?.*found \d+ cells; expected 65",
    )


def test_truncated_header(tmp_path: Path) -> None:
    _err(
        tmp_path,
        "PathFileType\t4\t(X/Y/Z)\tx.trc\nDataRate\n",
        r"bad\.trc.*truncated file.*2 lines",
    )


def test_not_a_trc(tmp_path: Path) -> None:
    _err(tmp_path, "hello\n" * 6, r"bad\.trc: line 1 does not start with 'PathFileType'")


def test_bad_name_row(tmp_path: Path) -> None:
    text = trc_text().replace("Frame#\tTime", "Frame\tTime")
    _err(tmp_path, text, r"bad\.trc: line 4 does not start with 'Frame#<tab>Time'")


def test_missing_header_field(tmp_path: Path) -> None:
    text = trc_text().replace("\tUnits\t", "\tUnitz\t")
    _err(tmp_path, text, r"bad\.trc.*header field 'Units' missing")


def test_bad_rate(tmp_path: Path) -> None:
    _err(tmp_path, trc_text(rate="fast"), r"bad\.trc.*line 3.*DataRate is 'fast'")
    _err(tmp_path, trc_text(rate="0"), r"bad\.trc.*DataRate is '0'")


def test_non_numeric_cell(tmp_path: Path) -> None:
    cells = POSE2SIM_ROWS[1].split(" ")
    cells[2 + 3 * 1 + 1] = "oops"  # RKnee Y
    rows = [POSE2SIM_ROWS[0], " ".join(cells), POSE2SIM_ROWS[2]]
    _err(
        tmp_path,
        trc_text(rows=rows),
        r"bad\.trc.*line 7, column RKnee/Y: found 'oops'; expected a number",
    )


def test_missing_time(tmp_path: Path) -> None:
    _err(
        tmp_path,
        trc_text(["A"], ["1\t0\t1\t2\t3", "2\t\t4\t5\t6"], units="mm"),
        r"bad\.trc.*line 7: Time is empty",
    )


def test_duplicate_after_renaming(tmp_path: Path) -> None:
    text = trc_text(["Hip", "pelvis"], ["1\t0\t1\t2\t3\t4\t5\t6"], units="mm")
    _err(tmp_path, text, r"bad\.trc.*'Hip' and 'pelvis' both map to 'pelvis'.*rename=False")
    p = tmp_path / "ok.trc"
    p.write_text(text)
    assert read_trc(p, rename=False).names == ("Hip", "pelvis")


def test_missing_file_and_axes(tmp_path: Path, pose2sim_trc: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.trc.*not found"):
        read_trc(tmp_path / "nope.trc")
    with pytest.raises(InputError, match=r"axes='opencv'.*only 'as_is'"):
        read_trc(pose2sim_trc, axes="opencv")  # type: ignore[arg-type]


def test_unit_scale_helper() -> None:
    assert kpmod.unit_scale(" CM ", "f") == 10.0
    with pytest.raises(InputError, match=r"f: Units is 'ft'"):
        kpmod.unit_scale("ft", "f")


@pytest.mark.parametrize("field", ["DataRate", "CameraRate", "OrigDataRate"])
@pytest.mark.parametrize("value", ["1e9", "10001", "-30", "nan"])
def test_a_rate_beyond_any_motion_capture_is_refused(tmp_path: Path, field, value) -> None:
    lines = trc_text().split("\n")
    keys, vals = lines[1].split("\t"), lines[2].split("\t")
    vals[keys.index(field)] = value
    lines[2] = "\t".join(vals)
    _err(tmp_path, "\n".join(lines), rf"bad\.trc: line 3: {field} is '{value}'.*\(0, 10000\]")


def test_the_highest_plausible_rate_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fast.trc"
    path.write_text(trc_text(rate="10000"))
    assert read_trc(path).rate == 10000.0
