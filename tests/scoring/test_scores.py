"""Scores against norms: percent of normal, z, flags, CI, MDC95 and composites, by hand."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from medpose.errors import InputError
from medpose.scoring import (
    FORMULAS,
    bootstrap_ci,
    composite,
    norm_for,
    rom,
    score_metric,
)

# a normative row written out, so every expected number below is computed by hand from it
NORM = {
    "key": "test.gait",
    "mean": 1.24,
    "sd": 0.28,
    "lower": 0.68,
    "upper": 1.80,
    "better": "higher",
    "unit": "m/s",
}
TIMED = {
    "key": "test.sts",
    "mean": 12.0,
    "sd": 2.0,
    "lower": None,
    "upper": 16.0,
    "better": "lower",
    "unit": "s",
}


def test_percent_z_and_flag_by_hand():
    r = score_metric([1.24, 0.62, 2.0], NORM)
    np.testing.assert_allclose(r.percent, [100.0, 50.0, min(2.0 / 1.24 * 100, 150.0)])
    np.testing.assert_allclose(r.z, [0.0, (0.62 - 1.24) / 0.28, (2.0 - 1.24) / 0.28])
    assert list(r.flag) == ["within", "below", "above"]
    assert r.reasons["z"] == ("", "", "") and r.reference == 1.24


def test_lower_is_better_inverts_the_percent():
    r = score_metric([12.0, 24.0, 6.0], TIMED)
    np.testing.assert_allclose(r.percent, [100.0, 50.0, 150.0])  # 200 % capped at 150
    np.testing.assert_allclose(r.z, [0.0, 6.0, -3.0])
    assert list(r.flag) == ["within", "above", "within"]  # no lower limit for a timed test


def test_cap_is_stated_and_applied():
    r = score_metric(3.0, NORM, cap=120.0)
    assert float(r.percent) == 120.0 and r.cap == 120.0
    assert float(score_metric(-1.0, NORM).percent) == 0.0  # floor at 0


def test_values_exactly_at_the_bounds_are_within():
    r = score_metric([0.68, 1.80, np.nextafter(0.68, 0), np.nextafter(1.80, 2)], NORM)
    assert list(r.flag) == ["within", "within", "below", "above"]


def test_missing_sd_gives_nan_z_with_the_reason():
    row = norm_for("rom", "knee_flexion", age=40, source="aaos")
    r = score_metric(120.0, row)
    assert math.isnan(float(r.z))
    assert r.reasons["z"] == ("no SD published for rom.aaos.knee_flexion",)
    assert float(r.percent) == pytest.approx(120 / 135 * 100)
    assert str(r.flag) == "n/a" and "no normal range" in r.reasons["flag"][0]


def test_nan_values_carry_their_reason():
    r = score_metric([np.nan, 1.0], NORM)
    assert math.isnan(r.percent[0]) and r.reasons["percent"] == ("value is NaN", "")
    assert r.flag[0] == "n/a"
    bad = score_metric([0.0, 10.0], TIMED)
    assert math.isnan(bad.percent[0]) and math.isnan(bad.z[0])
    assert "must be > 0, found 0" in bad.reasons["percent"][0]


def test_metric_result_and_its_bootstrap_ci_go_through():
    t = np.linspace(0, 1, 101)
    reps = [60 * np.sin(np.pi * t) ** 2 * a for a in (1.0, 1.1, 0.9, 1.05)]
    result = rom(reps)
    norm = dict(NORM, key="test.rom", mean=60.0, sd=None, lower=None, upper=None, unit="deg")
    r = score_metric(result, norm)
    np.testing.assert_allclose(r.percent, result.value / 60 * 100)
    ci = bootstrap_ci(result.value, seed=0)
    mean_score = score_metric(float(np.mean(result.value)), norm, ci=ci)
    np.testing.assert_allclose(
        [mean_score.percent_ci_low, mean_score.percent_ci_high], ci.value / 60 * 100
    )


def test_ci_is_carried_through_the_percent_transform():
    r = score_metric([1.0, 1.2], NORM, ci=[[0.9, 1.1], [1.1, 1.3]])
    np.testing.assert_allclose(r.ci_low, [0.9, 1.1])
    np.testing.assert_allclose(r.percent_ci_low, np.array([0.9, 1.1]) / 1.24 * 100)
    timed = score_metric(12.0, TIMED, ci=[10.0, 15.0])
    # lower is better: the slow end of the interval is the low end of the percent
    assert float(timed.percent_ci_low) == pytest.approx(80.0)
    assert float(timed.percent_ci_high) == pytest.approx(120.0)


def test_mdc95_from_sem_or_from_icc_and_sd():
    assert score_metric(10.0, TIMED, sem=0.9).mdc95 == pytest.approx(1.96 * math.sqrt(2) * 0.9)
    # Goldberg 2012 published SEM 0.9 s and MDC95 2.5 s for the five-times sit-to-stand
    assert score_metric(10.0, TIMED, sem=0.9).mdc95 == pytest.approx(2.5, abs=0.05)
    r = score_metric(10.0, TIMED, icc=0.75)  # norm SD 2.0 -> SEM 1.0
    assert r.mdc95 == pytest.approx(1.96 * math.sqrt(2) * 2.0 * math.sqrt(0.25))
    none = score_metric(1.0, dict(NORM, sd=None), icc=0.9)
    assert math.isnan(none.mdc95) and "needs the between-subject SD" in none.reasons["mdc95"]
    assert score_metric(1.0, NORM).reasons["mdc95"] == "no SEM or ICC given"


def test_result_repr_html_and_frame():
    r = score_metric([1.0, np.nan], NORM, sem=0.05)
    text = repr(r)
    assert text.startswith("ScoreResult(test.gait") and "value is NaN" in text
    df = r.to_frame()
    assert list(df["flag"]) == ["within", "n/a"] and len(df) == 2
    assert "<table" in r._repr_html_()


def test_composite_weighted_mean_of_capped_percent_by_hand():
    c = composite({"rom": 80.0, "speed": 120.0, "sts": 50.0}, {"rom": 2, "speed": 1, "sts": 1})
    assert float(c) == pytest.approx((2 * 80 + 1 * 100 + 1 * 50) / 4)
    assert c.formula == "weighted_mean_capped" and float(c.missing_fraction) == 0.0


def test_composite_other_formulas_by_hand():
    s, w = {"a": 81.0, "b": 121.0, "c": 25.0}, {"a": 1.0, "b": 1.0, "c": 2.0}
    assert float(composite(s, w, "weighted_mean")) == pytest.approx((81 + 121 + 50) / 4)
    geo = (81 * 100 * 25 * 25) ** 0.25
    assert float(composite(s, w, "weighted_geometric_capped")) == pytest.approx(geo)
    assert float(composite(s, w, "min_capped")) == 25.0
    assert (
        float(composite({"a": 0.0, "b": 90.0}, {"a": 1, "b": 1}, "weighted_geometric_capped")) == 0
    )
    assert set(FORMULAS) == {
        "weighted_mean_capped",
        "weighted_mean",
        "weighted_geometric_capped",
        "min_capped",
    }


def test_composite_nan_components_renormalise_or_make_it_missing():
    w = {"a": 1.0, "b": 1.0, "c": 2.0}
    c = composite({"a": 60.0, "b": np.nan, "c": 90.0}, w)
    assert float(c) == pytest.approx((60 + 2 * 90) / 3) and float(c.missing_fraction) == 0.25
    # exactly the allowed fraction still gives a composite; more does not
    assert float(composite({"a": 60.0, "b": 70.0, "c": np.nan}, w)) == 65.0
    gone = composite({"a": np.nan, "b": 70.0, "c": np.nan}, w)
    assert math.isnan(float(gone))
    assert gone.reasons[0] == "missing a, c (75% of the weight; at most 50% allowed)"


def test_composite_batches_over_sessions_and_takes_score_results():
    speed = score_metric([1.24, 0.62, np.nan], NORM)
    c = composite({"speed": speed, "rom": np.array([100.0, 100.0, 40.0])}, {"speed": 1, "rom": 1})
    np.testing.assert_allclose(c.value, [100.0, 75.0, 40.0])
    df = c.to_frame()
    assert list(df.columns) == [
        "composite",
        "speed_percent",
        "rom_percent",
        "missing_fraction",
        "reason",
    ]
    assert "<table" in c._repr_html_() and "CompositeResult" in repr(c)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: composite({"a": 1.0}, {"a": 1.0}, "median"), ["'median'", "weighted_mean"]),
        (lambda: composite({"a": 1.0}, {"b": 1.0}), ["'a'", "'b'"]),
        (lambda: composite({"a": 1.0}, {"a": -1.0}), ["weights", "-1.0"]),
        (lambda: composite({"a": 1.0}, {"a": 0.0}), ["sum to > 0"]),
        (lambda: composite({}, {}), ["empty"]),
        (lambda: composite({"a": 1.0}, {"a": 1.0}, max_missing=1.0), ["max_missing", "1.0"]),
        (lambda: composite({"a": np.ones(2), "b": np.ones(3)}, {"a": 1, "b": 1}), ["broadcast"]),
        (lambda: score_metric(1.0, dict(NORM, mean=0)), ["positive mean", "test.gait"]),
        (lambda: score_metric(1.0, dict(NORM, better="up")), ["better", "'up'"]),
        (lambda: score_metric(1.0, NORM, ci=[1.0, 2.0, 3.0]), ["ci must have shape", "(3,)"]),
        (lambda: score_metric(1.0, NORM, ci=[2.0, 1.0]), ["low must not exceed high"]),
        (lambda: score_metric("fast", NORM), ["numeric", "'fast'"]),
        (lambda: score_metric(np.ones((2, 2)), NORM), ["shape", "(2, 2)"]),
        (lambda: score_metric(1.0, NORM, cap=0), ["cap", "0"]),
        (lambda: score_metric(1.0, NORM, sem=-1.0), ["sem", "-1.0"]),
        (lambda: score_metric(1.0, NORM, icc=1.5), ["icc", "1.5"]),
        (lambda: score_metric(rom(np.ones(20)), NORM), ["'deg'", "'m/s'"]),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_problem(call, words):
    with pytest.raises(InputError) as err:
        call()
    for word in words:
        assert word in str(err.value)


def test_docs_example_gives_the_numbers_its_comments_state():
    page = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert namespace["norm"]["mean"] == 1.13
    np.testing.assert_allclose(namespace["speed"].percent, [100.0, 0.90 / 1.13 * 100])
    assert np.isnan(namespace["speed"].z).all()
    assert float(namespace["sts"].percent) == pytest.approx(12.6 / 14 * 100)
    assert namespace["sts"].mdc95 == pytest.approx(1.96 * math.sqrt(2) * 0.9)
    expected = (2 * 0.90 / 1.13 * 100 + 12.6 / 14 * 100) / 3
    assert float(namespace["overall"]) == pytest.approx(expected)


def test_plots_show_the_values_scored():
    from matplotlib.figure import Figure

    from medpose.scoring import MetricResult

    m = MetricResult("rom", [40.0, np.nan, 44.0], "deg", ("", "no repetition", ""))
    ax = Figure().add_subplot()
    assert m.plot(ax=ax) is ax
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), m.value)
    assert ax.lines[1].get_ydata()[0] == 42.0  # the median of the values present
    assert list(ax.lines[2].get_xdata()) == [1]  # the missing repetition marked
    assert ax.get_ylabel() == "rom (deg)"
    page = m._repr_html_()
    assert "no repetition" in page and "Range of motion" in page and "<img" in page
    r = score_metric([1.24, 0.62, 2.0], NORM, ci=[[1.1, 1.3], [0.5, 0.7], [1.9, 2.1]])
    ax = Figure().add_subplot()
    assert r.plot(ax=ax) is ax
    by_flag = {c.get_label(): c.get_offsets()[:, 1] for c in ax.collections if c.get_label()}
    np.testing.assert_allclose(by_flag["within"], [100.0])
    np.testing.assert_allclose(by_flag["below"], [50.0])
    assert ax.lines[-1].get_ydata()[0] == 100.0
    c = composite({"rom": 80.0, "speed": 120.0, "sts": np.nan}, {"rom": 2, "speed": 1, "sts": 1})
    ax = Figure().add_subplot()
    assert c.plot(ax=ax) is ax
    assert [b.get_width() for b in ax.containers[0]] == [80.0, 120.0, 0.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rom (w 2)", "speed (w 1)", "sts (w 1)"]
    assert "no value" in [t.get_text() for t in ax.texts]
    assert ax.lines[0].get_xdata()[0] == pytest.approx(float(c))
