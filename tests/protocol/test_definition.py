"""Protocol files: the catalogue loads, bad files are refused naming file, line and field."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import medpose as mp
from medpose.camera.triangulation import triangulate
from medpose.cli import main
from medpose.errors import InputError, ProtocolError
from medpose.kinematics import Skeleton
from medpose.kinematics.fit import fit
from medpose.protocol import Protocol
from medpose.protocol.definition import MAX_PROTOCOL_BYTES, catalogue_names, parse_protocol
from medpose.protocol.definition_schema import (
    FitSettings,
    GapSettings,
    GateSpec,
    RegisterSettings,
    RepetitionSettings,
    SwapSettings,
    TriangulateSettings,
)
from medpose.protocol.vocabulary import METRICS, dof_names, keypoint_names
from medpose.registration import QualityGate, register
from medpose.scoring.norms import load_norms
from medpose.temporal import clean_gaps, repair_swaps_3d, segment_repetitions

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = [
    "deep_squat",
    "hurdle_step",
    "inline_lunge",
    "side_lunge",
    "sit_to_stand",
    "active_straight_leg_raise",
    "shoulder_abduction",
    "shoulder_flexion",
    "shoulder_extension",
    "shoulder_scaption",
    "shoulder_rotation",
    "elbow_flexion",
    "knee_extension",
    "gait",
    "navigation_check",
    "navigation_auto",
]

MINIMAL = """\
schema_version: 1
name: mini
version: "0.1"
title: Minimal knee protocol
purpose: test
instructions: bend your knee
measures: knee range
sources: [none]
trials:
  - name: knee
    movement: knee bends
    side: auto
    min_repetitions: 2
steps:
  read_keypoints:
  fit: {smoothness: 0.1}
  repetitions: {signal: knee_flexion, min_range: 20}
  metrics:
  scores:
metrics:
  - name: rom
    joint: knee_flexion_r
    norm: rom.aaos.knee_flexion
composite:
  formula: weighted_mean
  weights: {rom_knee_flexion_r: 1}
"""


def _write(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


# ------------------------------------------------------------------------------ catalogue
def test_catalogue_holds_the_fifteen_protocols():
    assert sorted(catalogue_names()) == sorted(CATALOGUE)


@pytest.mark.parametrize("name", CATALOGUE)
def test_every_catalogue_protocol_loads_and_documents_itself(name):
    p = Protocol.load(name)
    assert p.name == name and p.version and p.title
    spec = p.spec
    assert spec.purpose and spec.instructions and spec.measures and spec.sources
    # the same information as comments at the top of the file
    text = (ROOT / "medpose" / "resources" / "protocols" / f"{name}.yaml").read_text()
    head = text.split("schema_version")[0].lower()
    for word in ("purpose:", "instructions to the patient:", "measured:", "sources:"):
        assert f"# {word}" in head, f"{name}.yaml: no '# {word}' comment at its top"
    assert p.steps[0] in ("read_keypoints", "triangulate")
    assert name in repr(p) and p.hash[:12] in repr(p)
    assert "<table>" in p._repr_html_()


def test_sit_to_stand_has_a_single_and_a_five_repetition_variant():
    five = Protocol.load("sit_to_stand")
    single = Protocol.load("sit_to_stand", variant="single")
    assert five.variant == "five" and five.trial("sit_to_stand").min_repetitions == 5
    assert single.trial("sit_to_stand").min_repetitions == 1
    assert five.hash != single.hash
    with pytest.raises(ProtocolError, match=r"variant 'three' not found.*five, single"):
        Protocol.load("sit_to_stand", variant="three")


def test_navigation_check_gate_is_a_quality_gate():
    gate = Protocol.load("navigation_check").quality_gate()
    assert isinstance(gate, QualityGate)
    assert gate.max_fre_mm == 10.0 and gate.max_tre_mm == {"hip_r": 10.0, "hip_l": 10.0}
    assert Protocol.load("deep_squat").quality_gate() is None


def test_gait_declares_its_metrics_as_computable():
    names = {m.name for m in Protocol.load("gait").metrics}
    assert {"gait_speed", "cadence", "step_length", "symmetry_index"} <= names
    assert all(METRICS[n].computable for n in ("gait_speed", "cadence", "step_length"))
    symmetry = {m.key: m.computable for m in Protocol.load("gait").metrics if m.of}
    assert symmetry == {
        "symmetry_index_step_length": True,
        "symmetry_index_rom_knee_flexion": True,
    }


def test_catalogue_norm_keys_name_rows_of_the_normative_data():
    """Keys are checked on load (below); the catalogue's own exist: a row's key, or a family of
    rows (``gait_speed.bohannon2011`` for ``gait_speed.bohannon2011.f20`` ...)."""
    keys = set(load_norms()["key"])
    missing = [
        f"{p.name}: {m.key}: {m.norm}"
        for p in map(Protocol.load, CATALOGUE)
        for m in p.metrics
        if m.norm and m.norm not in keys and not any(k.startswith(m.norm + ".") for k in keys)
    ]
    assert not missing, missing


def test_unknown_catalogue_name_lists_the_known_ones():
    with pytest.raises(ProtocolError, match=r"'squat': not in the catalogue.*deep_squat"):
        Protocol.load("squat")


def test_public_api_exports_protocol():
    assert mp.Protocol is Protocol and "Protocol" in mp.__all__


# --------------------------------------------------------------- names agree with medpose
def test_dof_and_keypoint_names_agree_with_the_skeleton():
    sk = Skeleton.default()
    assert dof_names() == sk.dof_names
    assert keypoint_names() == sk.keypoint_names


def test_computable_metrics_are_the_functions_of_medpose_scoring():
    for name, info in METRICS.items():
        assert hasattr(mp.metrics, name) == info.computable, name


@pytest.mark.parametrize(
    ("model", "func"),
    [
        (TriangulateSettings, triangulate),
        (GapSettings, clean_gaps),
        (SwapSettings, repair_swaps_3d),
        (FitSettings, fit),
        (RegisterSettings, register),
    ],
)
def test_step_settings_are_keyword_arguments_of_the_functions_they_configure(model, func):
    params = set(inspect.signature(func).parameters)
    # steps.fit's ``calibrate`` chooses the data of mp.calibrate, run before the fit
    own = {"calibrate"} if model is FitSettings else set()
    assert set(model.model_fields) - own <= params
    if model is FitSettings:
        assert set(FitSettings().fit_kwargs()) == set(model.model_fields) - own


def test_repetition_and_gate_settings_match_their_functions():
    reps = set(RepetitionSettings.model_fields) - {"signal", "n_points"}
    assert reps <= set(inspect.signature(segment_repetitions).parameters)
    assert set(GateSpec.model_fields) == set(QualityGate().to_dict())


# -------------------------------------------------------------------------- user files
def test_user_file_loads_by_path(tmp_path):
    p = Protocol.load(_write(tmp_path, MINIMAL))
    assert p.name == "mini" and p.steps == (
        "read_keypoints",
        "fit",
        "repetitions",
        "metrics",
        "scores",
    )
    assert p.trial("knee").min_repetitions == 2
    assert p.metrics[0].key == "rom_knee_flexion_r"
    assert p.spec.steps.fit is not None and p.spec.steps.fit.smoothness == 0.1
    assert p.spec.steps.get("clean") is None


def test_hash_is_stable_under_key_reordering_and_comments(tmp_path):
    doc = yaml.safe_load(MINIMAL)
    reordered = dict(reversed(list(doc.items())))
    reordered["steps"] = dict(reversed(list(doc["steps"].items())))
    text = "# a comment\n" + yaml.safe_dump(reordered, sort_keys=False)
    a = Protocol.load(_write(tmp_path, MINIMAL, "a.yaml"))
    b = Protocol.load(_write(tmp_path, text, "b.yaml"))
    assert a.hash == b.hash and a == b
    # a setting written at its default value means the same protocol
    c = Protocol.load(
        _write(tmp_path, MINIMAL.replace("side: auto", "side: auto\n    kind: exercise"), "c.yaml")
    )
    assert c.hash == a.hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("min_repetitions: 2", "min_repetitions: 3"),
        ("smoothness: 0.1", "smoothness: 0.2"),
        ('version: "0.1"', 'version: "0.2"'),
        ("weights: {rom_knee_flexion_r: 1}", "weights: {rom_knee_flexion_r: 2}"),
    ],
)
def test_hash_changes_with_content(tmp_path, old, new):
    a = Protocol.load(_write(tmp_path, MINIMAL, "a.yaml"))
    b = Protocol.load(_write(tmp_path, MINIMAL.replace(old, new), "b.yaml"))
    assert a.hash != b.hash
    assert len(a.hash) == 64 and int(a.hash, 16) >= 0


def test_version_stays_text():
    spec = parse_protocol(MINIMAL.replace('version: "0.1"', "version: 1.10"), "v.yaml")
    assert spec.version == "1.10"


# --------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    ("old", "new", "field", "known"),
    [
        (
            "  - name: rom\n",
            "  - name: range_of_motion\n",
            "metrics[0].name",
            "peak_angular_velocity",
        ),
        ("  scores:\n", "  score:\n", "steps.score", "read_keypoints, clean, fit"),
        ("joint: knee_flexion_r", "joint: knee_bend_r", "metrics[0].joint", "knee_flexion_r"),
        ("signal: knee_flexion,", "signal: knee,", "steps.repetitions.signal", "elbow_flexion"),
        ("    norm: rom.aaos", "    trial: kne\n    norm: rom.aaos", "metrics[0].trial", "knee"),
        (
            "    norm: rom.aaos",
            "    params: {pctl: 1}\n    norm: rom.aaos",
            "metrics[0].params.pctl",
            "percentiles",
        ),
        (
            "formula: weighted_mean",
            "formula: average",
            "composite.formula",
            "weighted_mean_capped_100",
        ),
        (
            "{rom_knee_flexion_r: 1}",
            "{rom_knee: 1}",
            "composite.weights.rom_knee",
            "rom_knee_flexion_r",
        ),
        ("    side: auto", "    sidee: auto", "trials[0].sidee", "min_repetitions"),
    ],
)
def test_unknown_names_are_refused_with_the_known_names_and_the_line(
    tmp_path, old, new, field, known
):
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    with pytest.raises(ProtocolError) as err:
        Protocol.load(_write(tmp_path, text))
    msg = str(err.value)
    line = _line_of(text, new.strip().split("\n")[0])
    assert msg.startswith("mine.yaml: line ")
    assert f"line {line}: {field}" in msg, msg
    assert known in msg
    assert str(tmp_path) not in msg


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("schema_version: 1", "schema_version: 2", "schema_version: found 2; expected one of 1"),
        (
            "min_repetitions: 2",
            "min_repetitions: 0",
            "min_repetitions: found 0; expected a number >= 1",
        ),
        (
            "side: auto",
            "side: up",
            "side: found 'up'; expected one of 'left', 'right', 'both' or 'auto'",
        ),
        ("title: Minimal knee protocol\n", "", "title: required field is missing"),
        ("norm: rom.aaos.knee_flexion", "norm: Rom/AAOS", "expected a normative key"),
        ("  read_keypoints:\n", "", "expected exactly one of triangulate or read_keypoints"),
        ("  fit: {smoothness: 0.1}\n", "", "step 'repetitions' needs step 'fit'"),
        ("sources: [none]", "sources: [none]\nextra_field: 1", "extra_field: unknown field"),
        ("min_repetitions: 2", "min_repetitions: true", "found True; expected a whole number"),
        ("min_repetitions: 2", "min_repetitions: '2'", "found '2'; expected a whole number"),
        ("min_range: 20", "min_range: .inf", "min_range: found inf; expected a finite number"),
        ("smoothness: 0.1", "smoothness: yes", "smoothness: found True; expected a finite number"),
        (
            "norm: rom.aaos.knee_flexion",
            "norm: rom.aaos.knee_flexion\n    requires_repetitions: 0",
            "requires_repetitions: found 0; expected a number >= 1",
        ),
    ],
)
def test_invalid_values_name_field_found_and_expected(tmp_path, old, new, expected):
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    with pytest.raises(ProtocolError, match=r"mine\.yaml: line [0-9]+: ") as err:
        Protocol.load(_write(tmp_path, text))
    assert expected in str(err.value)


def test_required_repetitions_need_the_step_that_counts_them(tmp_path):
    text = (
        MINIMAL.replace("  repetitions: {signal: knee_flexion, min_range: 20}\n", "")
        .replace("norm: rom.aaos.knee_flexion", "norm: rom.aaos.knee_flexion\n    over: trial")
        .replace("over: trial", "over: trial\n    requires_repetitions: 2")
    )
    with pytest.raises(ProtocolError) as err:
        Protocol.load(_write(tmp_path, text))
    msg = str(err.value)
    assert "requires_repetitions: found 2, but the protocol has no 'repetitions' step" in msg, msg


def test_every_problem_is_listed_at_once(tmp_path):
    text = MINIMAL.replace("name: rom", "name: romm").replace("side: auto", "side: up")
    with pytest.raises(ProtocolError) as err:
        Protocol.load(_write(tmp_path, text))
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and all(ln.startswith("mine.yaml: line ") for ln in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!!python/object/apply:os.system ['echo hi']\n", "could not determine a constructor"),
        ("a: &x [1, 2]\nb: *x\n", "aliases are not accepted"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64 levels"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("- just\n- a list\n", "expected a mapping of fields"),
        ("a: [1, 2\n", "not valid YAML at line"),
    ],
)
def test_unsafe_or_malformed_yaml_is_refused(tmp_path, text, expected):
    with pytest.raises(ProtocolError, match=r"mine\.yaml") as err:
        Protocol.load(_write(tmp_path, text))
    assert expected in str(err.value)


def test_deep_block_nesting_is_refused(tmp_path):
    text = "".join("  " * i + f"k{i}:\n" for i in range(80)) + "  " * 80 + "v: 1\n"
    with pytest.raises(ProtocolError, match="nested deeper than 64 levels"):
        Protocol.load(_write(tmp_path, text))


def test_missing_file_folder_and_binary_file_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.yaml: protocol file not found"):
        Protocol.load(tmp_path / "nothere.yaml")
    with pytest.raises(InputError, match="is a folder"):
        Protocol.load(tmp_path)
    (tmp_path / "big.yaml").write_text("# " + "x" * MAX_PROTOCOL_BYTES + "\n")
    with pytest.raises(InputError, match=r"big\.yaml: file size \d+ bytes; expected at most"):
        Protocol.load(tmp_path / "big.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(InputError, match=r"bin.yaml: line 1: byte 0xff is not UTF-8"):
        Protocol.load(tmp_path / "bin.yaml")


def test_registration_references_are_checked(tmp_path):
    text = (ROOT / "medpose/resources/protocols/navigation_check.yaml").read_text()
    bad = text.replace("max_tre_mm: {hip_r: 10.0,", "max_tre_mm: {knee_r: 10.0,")
    with pytest.raises(ProtocolError) as err:
        Protocol.load(_write(tmp_path, bad))
    assert "registration.gate.max_tre_mm.knee_r: found target 'knee_r'" in str(err.value)
    assert f"line {_line_of(bad, 'knee_r: 10.0')}:" in str(err.value)
    bad = text.replace("asis_r: asis_r", "asis_r: asis_right")
    with pytest.raises(
        ProtocolError, match=r"registration.pairs: found keypoint 'asis_right'.*asis_r"
    ):
        Protocol.load(_write(tmp_path, bad))


# -------------------------------------------------------------------------------- CLI
def test_cli_lists_the_catalogue_one_line_each(capsys):
    assert main(["protocols"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CATALOGUE)
    rows = [ln.split("\t") for ln in lines]
    assert sorted(r[0] for r in rows) == sorted(CATALOGUE)
    deep = next(r for r in rows if r[0] == "deep_squat")
    assert deep == ["deep_squat", Protocol.load("deep_squat").version, "Deep squat (FMS)"]


def test_cli_describes_one_protocol(capsys):
    assert main(["protocols", "navigation_check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("navigation_check 1.0.0: Navigation check")
    assert "registration gate: QualityGate(max_fre_mm=10.0" in out


def test_cli_refuses_a_bad_protocol_file_with_its_line(tmp_path, capsys):
    path = _write(tmp_path, MINIMAL.replace("name: rom", "name: romm"))
    assert main(["protocols", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"error: mine.yaml: line {_line_of(MINIMAL, 'name: rom')}: metrics[0].name" in err
    assert str(tmp_path) not in err


def test_cli_protocols_runs_as_a_command():
    out = subprocess.run(
        [sys.executable, "-m", "medpose", "protocols"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(out.splitlines()) == len(CATALOGUE)


@pytest.mark.parametrize(
    ("norm", "expected"),
    [
        (
            "rom.aaos.knee_flexon",
            r"metrics\[0\]\.norm: found 'rom\.aaos\.knee_flexon', not a key of the normative "
            r"table; close matches: rom\.aaos\.knee_flexion",
        ),
        (
            "rom.aaos.hip_flexion",
            r"metrics\[0\]\.norm: found 'rom\.aaos\.hip_flexion', a norm of the hip "
            r"\(hip_flexion\); the metric is the range of motion of knee_flexion_r",
        ),
        (
            "gait_speed.bohannon2011",
            r"metrics\[0\]\.norm: found 'gait_speed\.bohannon2011', a norm of gait_speed; the "
            r"metric is rom",
        ),
        (
            "criterion.cook2014.thigh_angle",
            r"metrics\[0\]\.norm: found 'criterion\.cook2014\.thigh_angle', a criterion for "
            r"thigh_angle; the metric is rom",
        ),
    ],
)
def test_a_norm_that_is_unknown_or_of_another_measure_is_refused(tmp_path, capsys, norm, expected):
    path = _write(tmp_path, MINIMAL.replace("norm: rom.aaos.knee_flexion", f"norm: {norm}"))
    with pytest.raises(ProtocolError, match=r"mine\.yaml: line \d+: " + expected):
        Protocol.load(path)
    assert main(["protocols", str(path)]) == 1
    assert "error: mine.yaml: line" in capsys.readouterr().err


def test_a_norm_of_the_same_joint_in_another_direction_is_accepted(tmp_path):
    """As side_lunge scores its hip_adduction angle against the hip abduction norm."""
    old = "joint: knee_flexion_r\n    norm: rom.aaos.knee_flexion"
    text = MINIMAL.replace(old, "joint: hip_adduction_r\n    norm: rom.aaos.hip_abduction")
    text = text.replace("rom_knee_flexion_r: 1", "rom_hip_adduction_r: 1")
    metric = Protocol.load(_write(tmp_path, text)).metrics[0]
    assert (metric.joint, metric.norm) == ("hip_adduction_r", "rom.aaos.hip_abduction")
