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


#: Published adult AVERAGE active ROM (AAOS 1965, reprinted in Greene & Heckman 1994), degrees,
#: in medpose's signs: DoF -> (min, max); knee and elbow hyperextension 5 (Soucie et al. 2011).
AAOS = {
    "hip_flexion": (-30, 120),  # flexion 120, extension 30
    "hip_rotation": (-45, 45),  # external 45, internal 45
    "knee_flexion": (-5, 135),
    "ankle_dorsiflexion": (-50, 20),  # plantarflexion 50, dorsiflexion 20
    "shoulder_flexion": (-60, 180),
    "elbow_flexion": (-5, 150),
    "wrist_flexion": (-70, 80),
}

#: Jung H, Yamasaki M, J Physiol Anthropol 2016;35:30, Table 3: 95 community-dwelling women
#: aged 65-83 y; ROM mean, SD, minimum, maximum (degrees), transcribed from the table.
JUNG2016 = {
    "hip flexion": (122.6, 10.8, 53, 144),
    "hip extension": (16.8, 4.5, 8, 27),
    "knee flexion": (127.6, 8.3, 104, 144),
    "hip internal rotation": (27.9, 6.1, 14, 47),
    "hip external rotation": (28.5, 4.9, 17, 42),
    "ankle dorsiflexion": (17.7, 6.0, 5, 31),
    "ankle plantar flexion": (58.0, 7.9, 28, 74),
}

#: Each side of a row and the motion of the table that reaches it (max: the positive motion).
SIDES = {
    ("hip_flexion", "max"): "hip flexion",
    ("hip_flexion", "min"): "hip extension",
    ("knee_flexion", "max"): "knee flexion",
    ("hip_rotation", "max"): "hip internal rotation",
    ("hip_rotation", "min"): "hip external rotation",
    ("ankle_dorsiflexion", "max"): "ankle dorsiflexion",
    ("ankle_dorsiflexion", "min"): "ankle plantar flexion",
}


def _rows():
    path = (
        Path(medpose.kinematics.__file__).resolve().parents[1] / "resources" / "joint_ranges.yaml"
    )
    return yaml.safe_load(path.read_text(encoding="utf-8"))["ranges"]


def test_default_matches_resource(sk):
    """JointLimits.default carries every row of the resource file (parsed here on its own, not
    through default_ranges)."""
    lim = JointLimits.default(sk)
    assert lim.dof_names == sk.dof_names
    rows = _rows()
    for n in sk.dof_names:
        row = rows.get(n, rows.get(n[:-2]))
        assert lim.range(n) == (float(row["min"]), float(row["max"])), n
        assert lim.range(n) == default_ranges(sk)[n]
    assert "Jung2016" in lim.sources["knee_flexion_r"]
    assert "AAOS" in lim.sources["elbow_flexion_l"]
    df = lim.to_dataframe()
    assert df.loc["elbow_flexion_l", "max_deg"] == 150


def test_hard_limits_are_what_adults_reach_not_the_average(sk):
    """Each side of a lower-limb row is the wider of the AAOS average and the mean + 2 SD of
    the adult group of Jung & Yamasaki (2016, Table 3), whose numbers the row states; rows
    without such a group keep the AAOS average."""
    lim, rows = JointLimits.default(sk), _rows()
    for (dof, side), motion in SIDES.items():
        mean, sd, _, observed_max = JUNG2016[motion]
        sign = 1.0 if side == "max" else -1.0
        aaos = AAOS[dof][side == "max"]
        want = sign * max(abs(aaos), round(mean + 2.0 * sd, 1))
        for s in ("_r", "_l"):
            got = lim.range(dof + s)[side == "max"]
            assert got == pytest.approx(want, abs=1e-9), (dof, side)
            assert abs(got) >= abs(aaos)  # never narrower than the average
        if abs(want) > abs(aaos):  # taken from the table: the row says so, and the group's
            assert rows[dof][f"{side}_from"] == {"mean": mean, "sd": sd}, (dof, side)
            assert abs(abs(want) - observed_max) <= 2.0  # largest value agrees within 2 deg
        else:
            assert f"{side}_from" not in rows[dof], (dof, side)
    assert lim.range("hip_flexion_r") == (-30.0, 144.2)  # AAOS average 120
    assert lim.range("knee_flexion_l") == (-5.0, 144.2)  # AAOS average 135
    assert lim.range("ankle_dorsiflexion_r") == (-73.8, 29.7)  # AAOS averages 50 / 20
    for dof in ("shoulder_flexion", "elbow_flexion", "wrist_flexion"):  # no adult SD read
        assert lim.range(dof + "_l") == AAOS[dof]


def test_age_sex_variant_widens_rows(sk):
    """A variant row is its group's mean (Soucie et al. 2011): it widens a side it lies outside
    of, and never narrows the default (what adults reach) to a mean."""
    adult = JointLimits.default(sk)
    lim = JointLimits.default(sk, age_group="2-8", sex="female")
    assert lim.range("knee_flexion_r") == (-5.4, 152.6)
    assert lim.range("knee_flexion_l") == (-5.4, 152.6)
    assert lim.sources["knee_flexion_l"].startswith("min and max: Soucie 2011")
    # girls' mean hip flexion 140.8 is inside the adult 144.2; their extension 26.2 inside 30
    assert lim.range("hip_flexion_l") == adult.range("hip_flexion_l") == (-30.0, 144.2)
    assert lim.sources["hip_flexion_l"] == adult.sources["hip_flexion_l"]
    assert lim.range("shoulder_flexion_r") == adult.range("shoulder_flexion_r")
    boys = JointLimits.default(sk, age_group="2-8", sex="male")
    assert boys.range("knee_flexion_r") == (-5.0, 147.8)  # hyperextension 1.6 < 5: default
    assert boys.sources["knee_flexion_r"].startswith("max: Soucie 2011")
    for group in ("9-19", "20-44", "45-69"):  # not read in the source: the adult defaults
        for sex in ("female", "male"):
            v = JointLimits.default(sk, age_group=group, sex=sex)
            assert v.to_dataframe().equals(adult.to_dataframe()), (group, sex)


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
    assert lim.range("knee_flexion_l") == JointLimits.default(sk).range("knee_flexion_l")
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
