from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import medpose.kinematics
from medpose.errors import InputError, LimitError
from medpose.kinematics.limits import JointLimits
from medpose.kinematics.skeleton import Skeleton, default_ranges


@pytest.fixture(scope="module")
def sk():
    return Skeleton.default()


#: Published adult active ROM (AAOS 1965, reprinted in Greene & Heckman 1994), degrees, in
#: medpose's signs: (DoF, min, max).
AAOS = [
    ("hip_flexion_r", -30, 120),
    ("knee_flexion_l", -5, 135),  # 135 flexion; 5 hyperextension (Soucie et al. 2011)
    ("ankle_dorsiflexion_r", -50, 20),
    ("shoulder_flexion_l", -60, 180),
    ("elbow_flexion_r", -5, 150),
    ("wrist_flexion_l", -70, 80),
]


def test_default_matches_resource(sk):
    """JointLimits.default carries the published values, and every row of the resource file
    (parsed here on its own, not through default_ranges)."""
    lim = JointLimits.default(sk)
    assert lim.dof_names == sk.dof_names
    for name, lo, hi in AAOS:
        assert lim.range(name) == (lo, hi), name
    path = (
        Path(medpose.kinematics.__file__).resolve().parents[1] / "resources" / "joint_ranges.yaml"
    )
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))["ranges"]
    for n in sk.dof_names:
        row = rows.get(n, rows.get(n[:-2]))
        assert lim.range(n) == (float(row["min"]), float(row["max"])), n
        assert lim.range(n) == default_ranges(sk)[n]
    assert "AAOS" in lim.sources["knee_flexion_r"]
    df = lim.to_dataframe()
    assert df.loc["elbow_flexion_l", "max_deg"] == 150


def test_age_sex_variant_replaces_rows(sk):
    lim = JointLimits.default(sk, age_group="2-8", sex="female")
    assert lim.range("knee_flexion_r") == (-5.4, 152.6)
    assert lim.range("knee_flexion_l") == (-5.4, 152.6)
    assert "Soucie" in lim.sources["hip_flexion_l"]
    assert lim.range("shoulder_flexion_r") == JointLimits.default(sk).range("shoulder_flexion_r")


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"age_group": "70-90", "sex": "male"}, "age_group"),
        ({"age_group": "2-8", "sex": "x"}, "sex"),
        ({"age_group": "2-8"}, "both"),
    ],
)
def test_bad_variant(sk, kw, word):
    with pytest.raises(InputError, match=word):
        JointLimits.default(sk, **kw)


def test_yaml_overrides(tmp_path, sk):
    p = tmp_path / "patient.yaml"
    p.write_text(
        "limits:\n  knee_flexion_r: {min: 0, max: 90, source: post-op}\n"
        "  shoulder_abduction: {max: 120}\nsoft_prior: {margin_deg: 8, weight: 2}\n"
    )
    lim = JointLimits.from_yaml(p, sk)
    assert lim.range("knee_flexion_r") == (0.0, 90.0)
    assert lim.range("knee_flexion_l") == (-5.0, 135.0)
    assert (
        lim.range("shoulder_abduction_r")[1] == 120 and lim.range("shoulder_abduction_l")[1] == 120
    )
    assert lim.sources["knee_flexion_r"] == "post-op"
    assert (lim.soft_margin_deg, lim.soft_weight) == (8.0, 2.0)


@pytest.mark.parametrize(
    "text, err, words",
    [
        (
            "limits:\n  knee_flexion_r: {min: 100, max: 90}\n",
            LimitError,
            ["knee_flexion_r", "inverted", "patient.yaml"],
        ),
        ("limits:\n  elbow_flexion: {min: 30, max: 30}\n", LimitError, ["elbow_flexion", "empty"]),
        ("limits:\n  elbow_flexion: {}\n", LimitError, ["elbow_flexion", "empty"]),
        ("limits:\n  elbow_flexion: {max: .nan}\n", LimitError, ["elbow_flexion", "NaN"]),
        ("limits:\n  elbow_flex: {max: 90}\n", InputError, ["elbow_flex", "unknown DoF"]),
        ("limits:\n  elbow_flexion: {max: lots}\n", InputError, ["elbow_flexion.max", "lots"]),
        ("limits: [1, 2\n", InputError, ["not valid YAML"]),
        ("limit:\n  elbow_flexion: {max: 9}\n", InputError, ["unknown top-level", "limit"]),
        ("- 1\n- 2\n", InputError, ["mapping"]),
    ],
)
def test_bad_yaml(tmp_path, sk, text, err, words):
    p = tmp_path / "patient.yaml"
    p.write_text(text)
    with pytest.raises(err) as ei:
        JointLimits.from_yaml(p, sk)
    for w in words:
        assert w in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        JointLimits.from_yaml(tmp_path / "nope.yaml")


def test_with_overrides_clip_at_limit(sk):
    lim = JointLimits.default(sk).with_overrides({"knee_flexion": (None, 60)})
    i = sk.dof_index("knee_flexion_r")
    q = np.zeros((2, len(sk.dof_names)))
    q[:, i] = [30, 200]
    c = lim.clip(q)
    assert c[1, i] == 60 and c[0, i] == 30
    assert lim.at_limit(c)[1, i] and not lim.at_limit(c)[0, i]
    with pytest.raises(LimitError, match="knee_flexion_l"):
        lim.with_overrides({"knee_flexion_l": (70, 10)})
    with pytest.raises(InputError, match="soft_margin"):
        lim.with_soft_prior(-1, 1)
