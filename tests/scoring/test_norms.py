"""Normative values: the packaged YAML, group selection, fallbacks and bad inputs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import yaml

from medpose.errors import InputError
from medpose.packaged import resource_text
from medpose.scoring import load_norms, norm_for, reliability_for
from medpose.scoring.norms import COLUMNS, SEXES


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(resource_text("normative/norms.yaml"))


def test_yaml_parses_and_every_row_names_a_source_and_table(doc):
    sources = doc["sources"]
    assert doc["norms"] and doc["reliability"]
    for row in doc["norms"] + doc["reliability"]:
        assert row["source"] in sources, row["key"]
        assert row.get("table"), row["key"]
    for key, src in sources.items():
        # author, year and where it was published
        assert re.search(r"\b(19|20)\d\d\b", src["citation"]) or "Norkin" in src["citation"], key
        assert len(src["citation"]) > 40, key


def test_every_row_is_complete_and_consistent():
    df = load_norms()
    assert list(df.columns) == list(COLUMNS)
    assert df["key"].is_unique
    assert set(df["sex"]) <= set(SEXES)
    assert set(df["better"]) == {"higher", "lower", "none"}
    criterion = df["mode"] == "criterion"  # a clinical test's pass limit, not a population mean
    assert (df.loc[~criterion, "mean"] > 0).all()
    assert (df.loc[criterion, "lower"].notna() | df.loc[criterion, "upper"].notna()).all()
    assert (df["age_min"] <= df["age_max"]).all()
    assert df["source"].str.len().gt(40).all()
    with_range = df["lower"].notna() | df["upper"].notna()
    assert (df.loc[with_range, "range_basis"] != "").all()
    # a row with lower and upper from mean +- 2 SD says so and agrees with its numbers
    two_sd = df[df["range_basis"] == "mean +- 2 SD"]
    assert not two_sd.empty
    np.testing.assert_allclose(two_sd["lower"], two_sd["mean"] - 2 * two_sd["sd"])
    np.testing.assert_allclose(two_sd["upper"], two_sd["mean"] + 2 * two_sd["sd"])
    # 95 % CIs of the mean bracket their mean
    ci = df.dropna(subset=["mean_ci_low", "mean_ci_high"])
    assert ((ci["mean_ci_low"] < ci["mean"]) & (ci["mean"] < ci["mean_ci_high"])).all()


def test_transcribed_values_match_their_sources():
    # Soucie 2011 / CDC, age 2-8: knee flexion 152.6 (F), 147.8 (M)
    assert norm_for("rom", "knee_flexion", age=5, sex="female")["mean"] == 152.6
    assert norm_for("rom", "knee_flexion", age=5, sex="male")["mean"] == 147.8
    # the same numbers the joint-limit variants use
    variants = yaml.safe_load(resource_text("joint_limits_variants.yaml"))["variants"]["2-8"]
    assert variants["female"]["knee_flexion"]["max"] == 152.6
    # Bohannon 2006 five-times sit-to-stand, and Bohannon & Andrews 2011 abstract extremes
    assert norm_for("five_times_sit_to_stand", age=75, source="bohannon")["mean"] == 12.6
    assert norm_for("gait_speed", age=45, sex="male")["mean"] == pytest.approx(1.434)
    assert norm_for("gait_speed", age=85, sex="female")["mean"] == pytest.approx(0.943)
    # Hollman 2011 cadence, 85 and over: open-ended age range, mean +- 2 SD
    row = norm_for("cadence", age=92, sex="male")
    assert (row["mean"], row["sd"], row["lower"], row["upper"]) == (102, 11, 80, 124)
    # the AAOS averages are norms; the fit's hard limits are what adults reach, never less
    ranges = yaml.safe_load(resource_text("joint_ranges.yaml"))["ranges"]
    for joint, average in (("knee_flexion", 135), ("hip_flexion", 120)):
        assert norm_for("rom", joint, age=40, source="aaos")["mean"] == average
        assert ranges[joint]["max"] > average  # mean + 2 SD (Jung & Yamasaki 2016)


def test_group_selection_prefers_own_sex_and_narrow_ages():
    row = norm_for("gait_speed", age=65, sex="female")
    assert row["key"] == "gait_speed.bohannon2011.f60" and row["fallback"] == ""
    # without a sex, only the row for both sexes applies at 65
    assert norm_for("gait_speed", age=65)["key"] == "gait_speed.kasovic2021.60"
    # completed years: 69.9 is still in 60-69, 70 is not
    assert norm_for("gait_speed", age=69.9, sex="male")["key"].endswith("m60")
    assert norm_for("gait_speed", age=70, sex="male")["key"].endswith("m70")
    table = load_norms(age=65, sex="female")
    assert set(table["sex"]) <= {"female", "any"}
    assert (
        (table["age_min"] <= 65) & (table["age_max"] + 1 > 65) | (table["fallback"] != "")
    ).all()


def test_fallback_to_adult_rows_is_labelled():
    table = load_norms(age=10, sex="male")
    knee = table[(table["metric"] == "rom") & (table["joint"] == "knee_flexion")]
    assert len(knee) == 1 and knee["key"].iloc[0] == "rom.aaos.knee_flexion"
    assert "no row for age 10, male" in knee["fallback"].iloc[0]
    row = norm_for("five_times_sit_to_stand", age=10)
    assert row["key"] == "ftsts.klukowska2021.adult" and row["fallback"]
    assert (load_norms()["fallback"] == "").all()


def test_reliability_rows_and_their_sources():
    rel = reliability_for("five_times_sit_to_stand")
    assert rel["sem"] == 0.9 and rel["icc"] == 0.95 and "Goldberg" in rel["source"]
    gait = reliability_for("gait_speed")
    assert math.isnan(gait["sem"]) and gait["icc"] == 0.88


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"metric": "grip_strength"}, ["grip_strength", "gait_speed", "rom"]),
        ({"metric": "rom", "joint": "neck_flexion"}, ["neck_flexion", "knee_flexion"]),
        ({"metric": "rom"}, ["needs a joint", "knee_flexion"]),
        ({"metric": "gait_speed", "sex": "woman"}, ["'woman'", "female", "male", "any"]),
        ({"metric": "gait_speed", "age": 130}, ["age", "130", "[0, 120]"]),
        ({"metric": "gait_speed", "age": -1}, ["age", "-1"]),
        ({"metric": "gait_speed", "age": "old"}, ["age", "'old'"]),
        ({"metric": "rom", "joint": "knee_extension", "age": 30}, ["knee_extension", "2-8"]),
        ({"metric": "gait_speed", "age": 70, "source": "nobody"}, ["nobody", "bohannon2011"]),
    ],
)
def test_bad_inputs_name_the_problem_and_list_known_values(kwargs, words):
    metric = kwargs.pop("metric")
    joint = kwargs.pop("joint", None)
    with pytest.raises(InputError) as err:
        norm_for(metric, joint, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_load_norms_bad_sex_and_unknown_reliability():
    with pytest.raises(InputError, match="sex must be one of"):
        load_norms(sex="F")
    with pytest.raises(InputError, match=r"no measurement error published for rom/hip_flexion"):
        reliability_for("rom", "hip_flexion")
