"""Plain-language labels: every metric a protocol may name reads as words, with its unit."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medpose.protocol.vocabulary import METRICS
from medpose.report.labels import format_value, metric_label, repetition_counts, unit_label


@pytest.mark.parametrize(
    ("key", "joint", "label"),
    [
        ("rom_knee_flexion", "knee_flexion", "Range of motion, knee flexion"),
        ("rom_knee_flexion", None, "Range of motion, knee flexion"),
        ("peak_angular_velocity_elbow_flexion", None, "Peak angular speed, elbow flexion"),
        ("symmetry_index_rom_knee_flexion", "knee_flexion",
         "Left/right difference of range of motion, knee flexion"),
        ("tempo", None, "Tempo"),
        ("rom_hip_flexion_l", None, "Range of motion, hip flexion (left)"),
    ],
)  # fmt: skip
def test_metric_keys_read_as_words(key, joint, label):
    assert metric_label(key, joint) == label


def test_every_metric_of_the_vocabulary_has_a_label_and_a_printed_unit():
    for name, info in METRICS.items():
        label = metric_label(name)
        assert "_" not in label and label[0].isupper(), name
        assert unit_label(info.unit), name


def test_values_carry_their_units():
    assert format_value(95.0, "deg") == "95.0°"
    assert format_value(13.6, "1/min") == "13.6 per minute"
    assert format_value(31.2, "mm") == "31.2 mm"
    assert format_value(-3.148, "1") == "-3.15"
    assert format_value(49.0, "frames") == "49 frames"
    assert format_value(math.nan, "deg") == "not available"


def test_a_criterion_missed_by_less_than_the_measurement_error_is_borderline():
    """A limit of 0 for the trunk's side bending: 0.2 degrees past it, with an MDC95 of 10
    (1.96 SEM of one measurement = 10 / sqrt 2 = 7.1), is borderline, not a miss; 20 past it
    is a miss; inside the limit it is met; without an MDC95 only met or not met."""
    from types import SimpleNamespace

    from medpose.report.content import _flag_text, _norm_rows

    norms = _norm_rows()
    key = "criterion.norkin_white_shoulder.trunk_lateral_flexion"
    assert float(norms.loc[key, "upper"]) == 0.0

    def row(value, flag, mdc95=10.0):
        return SimpleNamespace(norm=key, flag=flag, value=value, unit="deg", mdc95=mdc95)

    near = _flag_text(row(0.2, "above"), norms)
    assert near.startswith("borderline") and "0.2°" in near and "7.1°" in near
    assert _flag_text(row(20.0, "above"), norms) == "criterion NOT met"
    assert _flag_text(row(-1.0, "within"), norms) == "criterion met"
    assert _flag_text(row(0.2, "above", math.nan), norms) == "criterion NOT met"


def test_repetitions_are_counted_per_side():
    # a bilateral squat: each squat is one repetition of each side, not two repetitions
    reps = pd.DataFrame({"repetition": [0, 1, 2, 0, 1, 2], "side": ["left"] * 3 + ["right"] * 3})
    assert repetition_counts(reps) == "left 3, right 3"
    assert repetition_counts(reps[reps["side"] == "right"]) == "right 3"
    assert repetition_counts(reps.drop(columns="side")) == "6"
    assert repetition_counts(reps.iloc[:0]) == "none"
