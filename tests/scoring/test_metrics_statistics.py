"""Bootstrap confidence intervals, SEM from an ICC, MDC95; the MetricResult container."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from medpose.errors import InputError
from medpose.scoring import MetricResult, bootstrap_ci, mdc95, sem_from_icc, sparc


def test_bootstrap_ci_covers_the_true_mean_at_about_95_percent():
    """K data sets of m normal values: the percentile bootstrap interval of the mean behaves
    like mean +- 1.96 s sqrt((m-1)/m) / sqrt(m), whose exact coverage p0 is
    P(|t_(m-1)| <= 1.96 sqrt((m-1)/m)) (0.942 for m = 50).  The observed coverage is
    binomial(K, p0): allowed 4 standard deviations from p0."""
    k, m, mu = 400, 50, 3.0
    p0 = 2 * stats.t.cdf(1.96 * np.sqrt((m - 1) / m), df=m - 1) - 1
    hits = 0
    for seed in range(k):
        data = np.random.default_rng(10_000 + seed).normal(mu, 2.0, m)
        low, high = bootstrap_ci(data, seed=seed).value
        hits += low <= mu <= high
    sd = np.sqrt(p0 * (1 - p0) / k)
    assert abs(hits / k - p0) <= 4 * sd, f"coverage {hits / k:.3f}, expected {p0:.3f}"
    assert abs(hits / k - 0.95) <= 4 * sd + (0.95 - p0)


def test_bootstrap_ci_is_reproducible_and_reports_its_parameters():
    values = np.random.default_rng(0).normal(10, 1, 20)
    a, b = bootstrap_ci(values, seed=7), bootstrap_ci(values, seed=7)
    assert a.value.tobytes() == b.value.tobytes()
    c = bootstrap_ci(values, seed=np.random.default_rng(7))
    assert c.value.tobytes() == a.value.tobytes()
    assert a.params["estimate"] == pytest.approx(values.mean())
    assert a.params["n_resamples"] == 2000 and a.params["level"] == 0.95
    low, high = a.value
    assert low < values.mean() < high


def test_bootstrap_ci_drops_nan_and_accepts_any_statistic():
    values = np.r_[np.arange(10.0), np.nan, np.nan]
    got = bootstrap_ci(values, stat=np.median, seed=1)
    assert got.params["n_values"] == 10
    assert 0.0 <= got.value[0] <= got.value[1] <= 9.0

    def spread(x):  # no axis argument: called per resample
        return float(np.max(x) - np.min(x))

    wide = bootstrap_ci(np.arange(10.0), stat=spread, n=200, seed=1)
    assert 0.0 <= wide.value[0] <= wide.value[1] <= 9.0


def test_bootstrap_ci_of_too_few_values_is_nan_with_a_reason():
    got = bootstrap_ci(np.array([1.0, np.nan]))
    assert np.isnan(got.value).all() and "1 finite value(s) of 2" in got.reasons[0]


def test_sem_and_mdc95_known_values():
    # Weir 2005: SEM = SD sqrt(1 - ICC); SD 10 and ICC 0.91 give 3
    sem = sem_from_icc(10.0, 0.91)
    assert float(sem) == pytest.approx(3.0)
    assert float(mdc95(sem)) == pytest.approx(1.96 * np.sqrt(2) * 3.0)
    assert float(mdc95(1.0)) == pytest.approx(2.7718585822512662)
    np.testing.assert_allclose(sem_from_icc([4.0, 4.0], [0.0, 1.0]).value, [4.0, 0.0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bootstrap_ci(np.ones((3, 3))), r"values must have shape \(R,\)"),
        (lambda: bootstrap_ci(np.ones(5), n=10), "n must be an integer >= 100"),
        (lambda: bootstrap_ci(np.ones(5), level=95), r"level must lie in \(0, 1\)"),
        (lambda: sem_from_icc(-1.0, 0.5), "sd must be finite and >= 0"),
        (lambda: sem_from_icc(1.0, 1.2), r"icc must lie in \[0, 1\]"),
        (lambda: sem_from_icc(1.0, np.nan), r"icc must lie in \[0, 1\]"),
        (lambda: mdc95(-0.1), "sem must be finite and >= 0"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_argument(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_metric_result_is_read_only_and_converts():
    t = np.arange(-1, 1, 0.01)
    got = sparc([np.exp(-5 * t**2), np.zeros(10)], 100.0)
    assert isinstance(got, MetricResult) and len(got) == 2
    with pytest.raises(ValueError):
        got.value[0] = 1.0
    with pytest.raises(TypeError):
        got.params["fc_hz"] = 5.0  # type: ignore[index]
    with pytest.raises(TypeError, match="float\\(\\) needs a single value"):
        float(got)
    np.testing.assert_array_equal(np.asarray(got), got.value)
    frame = got.to_frame()
    assert list(frame.columns) == ["repetition", "sparc", "cutoff_hz", "nfft", "reason"]
    assert frame.attrs["fc_hz"] == 10.0 and frame["reason"].iloc[1] != ""


def test_metric_result_needs_one_reason_per_value():
    with pytest.raises(InputError, match="2 reasons for 3 values"):
        MetricResult("x", np.zeros(3), "1", ("", ""))


def test_metric_result_repr_shows_value_unit_and_reasons():
    text = repr(sparc([np.zeros(5), np.exp(-(np.linspace(-2, 2, 50) ** 2))], 100.0))
    assert text.startswith("MetricResult(sparc: [") and "zero everywhere" in text


def test_bootstrap_ci_carries_the_real_unit_or_none():
    x = np.array([10.0, 12.0, 11.0, 13.0])
    plain = bootstrap_ci(x, seed=0)
    assert plain.unit == "" and "unit" not in repr(plain)
    assert repr(plain).endswith("])")
    assert bootstrap_ci(x, seed=0, unit="deg").unit == "deg"
    speed = MetricResult("peak_angular_velocity", x, "deg/s", ("",) * 4, {})
    ci = bootstrap_ci(speed, seed=0)
    assert ci.unit == "deg/s" and repr(ci).endswith(" deg/s)")
    np.testing.assert_array_equal(ci.value, plain.value)  # the same numbers
    assert bootstrap_ci(np.array([1.0]), seed=0, unit="mm").unit == "mm"  # NaN result too
