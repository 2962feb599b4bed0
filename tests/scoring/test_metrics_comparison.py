"""Symmetry index, DTW distance to a template, consistency across repetitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medpose.errors import InputError
from medpose.scoring import consistency, dtw_distance, symmetry_index, symmetry_index_ci

positive = st.floats(1e-3, 1e4)


def test_symmetry_index_known_value_and_sign_convention():
    # left 110, right 90: difference 20 over the mean 100 -> +20 %, positive as left is larger
    assert float(symmetry_index(110.0, 90.0)) == pytest.approx(20.0)
    assert float(symmetry_index(90.0, 110.0)) == pytest.approx(-20.0)
    got = symmetry_index([100.0, 50.0], 50.0)
    assert got.unit == "%" and got.value.shape == (2,)
    np.testing.assert_allclose(got.value, [200.0 / 3.0 * 1.0, 0.0])


@settings(max_examples=100, deadline=None)
@given(left=positive, right=positive)
def test_symmetry_index_is_zero_for_equal_sides_and_antisymmetric(left, right):
    assert float(symmetry_index(left, left)) == 0.0
    a, b = float(symmetry_index(left, right)), float(symmetry_index(right, left))
    assert a == pytest.approx(-b, abs=1e-12)
    assert -200.0 < a < 200.0


def test_symmetry_index_that_cannot_be_computed_is_nan_with_a_reason():
    got = symmetry_index([0.0, -10.0, np.nan, 5.0], [0.0, 10.0, 3.0, 5.0])
    assert np.isnan(got.value[:3]).all() and got.value[3] == 0.0
    assert got.reasons[0] == "left + right is 0"
    assert "opposite signs" in got.reasons[1]
    assert "missing" in got.reasons[2]


def test_symmetry_index_shapes_must_broadcast():
    with pytest.raises(InputError, match=r"left shape \(3,\) and right shape \(2,\)"):
        symmetry_index(np.ones(3), np.ones(2))


def _template(n: int = 101) -> np.ndarray:
    return 45.0 * (1 - np.cos(2 * np.pi * np.linspace(0.0, 1.0, n)))


def test_dtw_distance_is_zero_up_to_timing():
    t = _template()
    slow = np.repeat(t, 2)  # the same movement at half the speed
    got = dtw_distance([t, slow], t)
    np.testing.assert_allclose(got.value, 0.0, atol=1e-12)
    assert got.details["path_length"][1] == 2 * t.size


def test_dtw_distance_is_per_sample_and_in_the_signal_unit():
    """Two constants a and b differ by |a - b| at every matched pair, whatever the path:
    the per-sample distance is |a - b| exactly, for any lengths."""
    got = dtw_distance([np.full(30, 12.0), np.full(80, 7.0)], np.full(50, 10.0))
    np.testing.assert_allclose(got.value, [2.0, 3.0], rtol=1e-12)
    assert got.params["normalisation"] == "distance / sqrt(path length)"
    assert list(got.details["path_length"]) == [50.0, 80.0]


def test_dtw_distance_multidimensional_and_padded_batches():
    t = np.stack([_template(), -_template()], axis=1)
    # an offset of 1 on both coordinates: the diagonal path costs sqrt(2) per pair, DTW's
    # path no more in total, over at least as many pairs
    one = dtw_distance(t + 1.0, t)
    assert one.value.shape == () and 0 < float(one) <= np.sqrt(2) + 1e-12
    batch = np.full((2, 120, 2), np.nan)
    batch[0, :101] = t
    batch[1, 5:106] = t
    got = dtw_distance(batch, t)
    np.testing.assert_allclose(got.value, 0.0, atol=1e-12)


def test_dtw_distance_not_computable_is_nan_with_a_reason():
    t = _template()
    gap = t.copy()
    gap[40] = np.nan
    got = dtw_distance([gap, np.full(10, np.nan), t[:1]], t)
    assert np.isnan(got.value).all()
    assert "fill gaps" in got.reasons[0]
    assert "all 10 samples are missing" in got.reasons[1]
    assert "at least 2 needed" in got.reasons[2]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: dtw_distance(np.ones(5), np.ones(1)), "template must have shape"),
        (lambda: dtw_distance(np.ones(5), np.r_[1.0, np.nan, 2.0]), "template has NaN"),
        (lambda: dtw_distance(np.ones((2, 3, 4)), np.ones(5)), r"found shape \(2, 3, 4\)"),
        (lambda: dtw_distance([np.ones((4, 2))], np.ones(5)), r"x\[0\] has shape \(4, 2\)"),
        (lambda: dtw_distance(np.ones((4, 3)), np.ones((5, 2))), "differ in dimension"),
        (lambda: dtw_distance([], np.ones(5)), "x holds no repetitions"),
        (lambda: dtw_distance(np.ones(5), np.ones(5), window=0), "window"),
    ],
)
def test_dtw_distance_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_consistency_of_identical_curves_is_one():
    curves = np.tile(_template(), (5, 1))
    assert float(consistency(curves)) == pytest.approx(1.0)
    assert float(consistency(curves, method="correlation")) == pytest.approx(1.0)


def test_consistency_time_normalises_repetitions_of_any_length():
    base = np.linspace(0.0, 1.0, 400)
    reps = [45.0 * (1 - np.cos(2 * np.pi * base[::k])) for k in (1, 2, 4)]
    assert float(consistency(reps)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("method", ["cmc", "correlation"])
def test_consistency_does_not_change_with_a_common_gain(method):
    rng = np.random.default_rng(0)
    curves = _template() + rng.normal(0.0, 5.0, (8, 101))
    a, b = consistency(curves, method=method), consistency(3.7 * curves, method=method)
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_cmc_of_a_waveform_with_independent_noise():
    """Y_i = s + e_i, e iid N(0, sd^2): the within-time variance estimates sd^2 and the total
    variance var_t(s) + sd^2, so CMC^2 -> var_t(s) / (var_t(s) + sd^2).  Tolerance: 4
    standard errors of the variance ratio, sqrt(2 / (T (N - 1)) + 2 / (T N)) relative."""
    n, t, sd = 200, 101, 15.0
    s = _template(t)
    rng = np.random.default_rng(1)
    got = float(consistency(s + rng.normal(0.0, sd, (n, t))))
    ratio = sd**2 / (s.var() + sd**2)
    se = ratio * np.sqrt(2 / (t * (n - 1)) + 2 / (t * n))
    assert got**2 == pytest.approx(1 - ratio, abs=4 * se)


def test_consistency_not_computable_is_nan_with_a_reason():
    one = consistency([_template(), np.full(101, np.nan)])
    assert np.isnan(float(one)) and "1 complete repetition(s) of 2" in one.reasons[0]
    flat = consistency(np.zeros((3, 50)))
    assert np.isnan(float(flat)) and "undefined" in flat.reasons[0]
    rng = np.random.default_rng(2)
    # offsets larger than the waveform's variation: the CMC radicand is negative
    scatter = consistency(np.sin(np.linspace(0, 6, 101)) + rng.normal(0, 50, (2, 1))[:, :1])
    assert np.isnan(float(scatter)) and "exceeds" in scatter.reasons[0]
    const = consistency(np.zeros((3, 50)), method="correlation")
    assert np.isnan(float(const)) and "constant" in const.reasons[0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: consistency(np.ones((3, 10)), method="icc"), "method must be"),
        (lambda: consistency(np.ones((3, 10)), n_points=2), "n_points must be an integer"),
        (lambda: consistency(np.ones((3, 10, 2))), r"curves must have shape"),
    ],
)
def test_consistency_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_symmetry_index_ci_covers_the_true_index_at_about_its_level():
    """Two sides' repetitions drawn from N(100, 5) and N(90, 5): the true index of the means is
    (100 - 90) / 95 * 100 = 10.53 %.  A 95 % interval must cover it in about 95 % of draws; the
    percentile bootstrap undercovers with 10 values per side, so the band is 0.88-0.99
    (binomial SD over 300 draws ~1.3 points)."""
    rng = np.random.default_rng(1)
    true = (100.0 - 90.0) / 95.0 * 100.0
    hits = 0
    for k in range(300):
        left, right = rng.normal(100.0, 5.0, 10), rng.normal(90.0, 5.0, 10)
        low, high = symmetry_index_ci(left, right, stat=np.mean, n=500, seed=k).value
        hits += low <= true <= high
    assert 0.88 <= hits / 300 <= 0.99


def test_symmetry_index_ci_brackets_its_estimate_and_says_why_it_is_missing():
    left, right = [100.0, 102.0, 98.0, np.nan], [90.0, 91.0, 89.0]
    r = symmetry_index_ci(left, right)
    est = float(symmetry_index(100.0, 90.0).value)  # the medians
    assert r.params["estimate"] == pytest.approx(est)
    assert r.value[0] <= est <= r.value[1] and r.unit == "%"
    assert r.params["n_left"] == 3 and r.params["n_right"] == 3
    one = symmetry_index_ci([100.0], [90.0, 91.0])
    assert np.isnan(one.value).all() and "at least 2 per side" in one.reasons[0]
    with pytest.raises(InputError, match="n must be an integer >= 100"):
        symmetry_index_ci(left, right, n=10)
