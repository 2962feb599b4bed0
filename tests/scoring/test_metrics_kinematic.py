"""ROM, angular velocity, movement time, tempo, repetition count and split_repetitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import savgol_coeffs

import medpose as mp
from medpose.errors import InputError
from medpose.scoring import (
    angular_velocity,
    mean_angular_velocity,
    movement_time,
    peak_angular_velocity,
    repetition_count,
    rom,
    split_repetitions,
    tempo,
)
from medpose.temporal import segment_repetitions


def sine_bound(amplitude: float, per_period: int, level: float = 0.02) -> float:
    """Largest error of an empirical percentile of A sin over whole periods sampled evenly.

    The q-th quantile of A sin(phi), phi uniform, is A sin(pi (q - 1/2)), i.e. A cos(pi
    level) for q = 1 - level.  Evenly spaced samples put the empirical quantile within one
    sample spacing 2 pi / N of that phase, where the slope |A cos(phi)| is at most
    A sin(pi level + 2 pi / N); each end errs by at most A (2 pi / N) sin(pi level + 2 pi / N).
    """
    step = 2 * np.pi / per_period
    return 2 * amplitude * step * np.sin(np.pi * level + step)


@settings(max_examples=60, deadline=None)
@given(
    amplitude=st.floats(1.0, 90.0),
    offset=st.floats(-90.0, 90.0),
    per_period=st.integers(20, 400),
    periods=st.integers(1, 5),
    phase=st.floats(0.0, 2 * np.pi),
)
def test_rom_of_a_sine_is_2a_within_its_derived_tolerance(
    amplitude, offset, per_period, periods, phase
):
    k = np.arange(per_period * periods)
    x = offset + amplitude * np.sin(2 * np.pi * k / per_period + phase)
    got = float(rom(x))
    expected = 2 * amplitude * np.cos(0.02 * np.pi)  # P98 - P2 of a sine: 0.998 * 2A
    assert abs(got - expected) <= sine_bound(amplitude, per_period) + 1e-9 * amplitude
    # and so within 0.2 % (the percentile bias) plus the sampling term of 2A
    assert (
        abs(got - 2 * amplitude)
        <= 2 * amplitude * (1 - np.cos(0.02 * np.pi))
        + sine_bound(amplitude, per_period)
        + 1e-9 * amplitude
    )


def test_rom_ignores_a_few_outlier_frames():
    """1 % of frames at +-1000 deg: the 2nd and 98th percentiles of the contaminated sample
    are the clean sine's quantiles at levels 0.02/0.99 and 0.98/0.99, so the range stays in
    [2A cos(0.0202 pi), 2A] (within the sampling bound); max - min would give 2000."""
    amplitude, n = 30.0, 2000
    x = amplitude * np.sin(2 * np.pi * np.arange(n) / 200)
    spikes = np.r_[np.full(n // 200, 1000.0), np.full(n // 200, -1000.0)]
    got = float(rom(np.r_[x, spikes]))
    lower = 2 * amplitude * np.cos(np.pi * 0.02 / 0.99)
    assert lower - sine_bound(amplitude, 200) <= got <= 2 * amplitude
    assert float(rom(np.r_[x, spikes], percentiles=(0, 100))) == 2000.0


def test_rom_batches_and_reports_percentiles():
    reps = [np.linspace(0.0, 90.0, 101), np.linspace(10.0, 40.0, 51)]
    got = rom(reps, percentiles=(0, 100))
    assert got.unit == "deg" and got.value.shape == (2,)
    np.testing.assert_allclose(got.value, [90.0, 30.0])
    np.testing.assert_allclose(got.details["low_deg"], [0.0, 10.0])
    frame = got.to_frame()
    assert list(frame.columns) == ["repetition", "rom_deg", "low_deg", "high_deg", "reason"]


def test_rom_not_computable_is_nan_with_a_reason():
    half = np.r_[np.linspace(0.0, 50.0, 40), np.full(60, np.nan)]
    gappy = np.linspace(0.0, 50.0, 100)
    gappy[::3] = np.nan  # a third missing: still computed
    got = rom([np.full(10, np.nan), np.array([1.0, 2.0]), gappy, half], max_missing=0.5)
    assert np.isnan(got.value[0]) and "all 10 samples are missing" in got.reasons[0]
    assert np.isnan(got.value[1]) and "at least 3 needed" in got.reasons[1]
    assert np.isfinite(got.value[2])
    # trailing NaN of a padded row are padding, not missing
    assert np.isfinite(got.value[3])
    inside = np.linspace(0.0, 50.0, 100)
    inside[10:80] = np.nan
    bad = rom(inside)
    assert np.isnan(float(bad)) and "70% of the samples are missing" in bad.reasons[0]


def _savgol_gain(freq: float, fs: float, window_s: float) -> float:
    """Gain of the cubic Savitzky-Golay derivative at ``freq``: its coefficients applied to
    a unit sine, over the true derivative's amplitude."""
    n = round(window_s * fs)
    n += (n + 1) % 2
    c = savgol_coeffs(n, 3, deriv=1, delta=1 / fs, use="dot")
    j = np.arange(n) - n // 2
    omega = 2 * np.pi * freq
    return float(abs(np.sum(c * np.sin(omega * j / fs))) / omega)


@pytest.mark.parametrize("freq", [0.25, 0.5, 1.0, 2.5])
@pytest.mark.parametrize("amplitude", [10.0, 60.0])
def test_angular_velocity_of_a_sine_is_its_derivative_times_the_filter_gain(freq, amplitude):
    """A (1 - cos(2 pi f t)) over whole cycles: the velocity 2 pi f A sin(.) is 0 at the ends
    and peaks mid-cycle, where a sample falls (fs / f divisible by 4).  In the interior the
    symmetric Savitzky-Golay derivative returns gain * the true derivative exactly."""
    fs, cycles = 100.0, 2
    t = np.arange(round(cycles * fs / freq) + 1) / fs
    x = amplitude * (1 - np.cos(2 * np.pi * freq * t))
    gain = _savgol_gain(freq, fs, 0.1)
    assert 0.95 < gain <= 1.0
    peak = float(peak_angular_velocity(x, fs))
    assert peak == pytest.approx(gain * 2 * np.pi * freq * amplitude, rel=1e-9)
    # mean |velocity|: the samples' mean of |gain v|; the 5 samples at each end use the
    # end-of-signal fit, each off by at most the peak velocity there
    truth = gain * 2 * np.pi * freq * amplitude * np.abs(np.sin(2 * np.pi * freq * t))
    edge = 2 * 5 * 2 * np.pi * freq * amplitude * np.sin(2 * np.pi * freq * 5 / fs) / t.size
    assert float(mean_angular_velocity(x, fs)) == pytest.approx(truth.mean(), abs=edge)
    # the truth's mean: M = fs / f samples per cycle sum |sin| to 2 cot(pi / M) each
    per_cycle = round(fs / freq)
    exact = gain * 2 * np.pi * freq * amplitude * cycles * 2 / np.tan(np.pi / per_cycle) / t.size
    assert truth.mean() == pytest.approx(exact, rel=1e-9)


def test_butterworth_angular_velocity_of_a_slow_sine():
    """Low-pass at 6 Hz passes 0.5 Hz with gain 1 - 1e-9; central differences have gain
    sin(w dt) / (w dt) = 1 - 4e-5; the ends (zero velocity there) add under 0.1 %."""
    fs, freq, amplitude = 100.0, 0.5, 40.0
    t = np.arange(401) / fs
    x = amplitude * (1 - np.cos(2 * np.pi * freq * t))
    got = peak_angular_velocity(x, fs, smoothing="butterworth")
    assert float(got) == pytest.approx(2 * np.pi * freq * amplitude, rel=1e-3)
    assert got.params["smoothing"] == "butterworth" and got.params["cutoff_hz"] == 6.0
    v = angular_velocity(x, fs, smoothing="butterworth")
    assert v.shape == x.shape


def test_angular_velocity_keeps_gaps_and_short_repetitions_are_nan():
    x = np.sin(np.linspace(0, 6, 300)) * 30
    x[100:110] = np.nan
    v = angular_velocity(x, 100.0)
    assert np.all(np.isnan(v[100:110])) and np.isfinite(v[:95]).all()
    got = peak_angular_velocity([x, x[:5]], 100.0)
    assert np.isfinite(got.value[0]) and np.isnan(got.value[1])
    assert "at least 11 needed" in got.reasons[1]


def test_movement_time_is_the_duration_or_the_time_above_a_fraction_of_peak():
    fs, duration = 200.0, 1.2
    tau = np.arange(round(duration * fs) + 1) / round(duration * fs)
    speed = 30 / duration * tau**2 * (1 - tau) ** 2
    assert float(movement_time(speed, fs)) == pytest.approx(duration)
    # minimum jerk: v >= th * vpeak while tau (1 - tau) >= sqrt(th) / 4, a span of
    # D sqrt(1 - sqrt(th)); the sampled span is shorter by less than 2 / fs
    for th in (0.05, 0.1):
        got = float(movement_time(speed, fs, threshold=th))
        expected = duration * np.sqrt(1 - np.sqrt(th))
        assert expected - 2 / fs < got <= expected
    padded = np.r_[np.full(5, np.nan), speed, np.full(7, np.nan)]
    assert float(movement_time(padded, fs)) == pytest.approx(duration)
    bad = movement_time([np.zeros(10), [np.nan, 1.0]], fs, threshold=0.1)
    assert "not positive" in bad.reasons[0] and "at least 2 needed" in bad.reasons[1]


def test_tempo_from_the_repetition_table_and_from_onsets():
    table = pd.DataFrame({"start_s": [1.0, 4.0, 7.0, 10.0]})
    assert float(tempo(table)) == pytest.approx(20.0)
    assert tempo(table).unit == "1/min"
    assert float(tempo([0.0, 2.0])) == pytest.approx(30.0)
    one = tempo([3.0])
    assert np.isnan(float(one)) and "at least 2" in one.reasons[0]


def _exercise(n_reps: int, fs: float = 50.0) -> np.ndarray:
    """n_reps knee flexions of 60 deg, 2 s each, with 1 s rest between and at both ends."""
    rep = 30.0 * (1 - np.cos(2 * np.pi * np.arange(round(2 * fs)) / (2 * fs)))
    rest = np.zeros(round(fs))
    return np.concatenate([rest] + [np.r_[rep, rest] for _ in range(n_reps)])


@pytest.mark.parametrize("n_reps", [1, 3, 5])
def test_repetition_count_and_split(n_reps):
    fs = 50.0
    x = _exercise(n_reps, fs)
    got = repetition_count(x, fs, min_range=20.0)
    assert float(got) == n_reps and got.params["min_range"] == 20.0
    reps = split_repetitions(x, segment_repetitions(x, fs, min_range=20.0))
    assert len(reps) == n_reps
    # segmentation trims the rest within rest_fraction = 5 % of the range at either end
    ranges = rom(reps, percentiles=(0, 100)).value
    assert np.all((ranges >= 60.0 * (1 - 0.05)) & (ranges <= 60.0))
    if n_reps > 1:
        # onsets 3 s apart: 20 repetitions per minute (onsets found within a sample or two)
        table = segment_repetitions(x, fs, min_range=20.0)
        assert float(tempo(table)) == pytest.approx(20.0, rel=0.02)


def test_repetition_count_of_a_missing_signal_is_nan():
    got = repetition_count(np.full(100, np.nan), 50.0, min_range=10.0)
    assert np.isnan(float(got)) and "0 finite samples" in got.reasons[0]


def test_metrics_is_the_scoring_package():
    assert mp.metrics is mp.scoring
    assert mp.metrics.rom is rom


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rom(np.ones(10), percentiles=(98, 2)), "percentiles must satisfy"),
        (lambda: rom(np.ones(10), percentiles=(-1, 98)), "percentiles must satisfy"),
        (lambda: rom(np.ones(10), max_missing=1.0), "max_missing must lie"),
        (lambda: rom(np.ones((2, 2, 2))), r"angle_deg must have shape .* \(2, 2, 2\)"),
        (lambda: rom(pd.DataFrame({"a": [1.0], "b": [2.0]})), "angle_deg is a table of 2"),
        (lambda: rom(["knee", "hip"]), "angle_deg must hold numbers, found list"),
        (lambda: rom("knee"), "angle_deg must hold numbers, found str"),
        (lambda: peak_angular_velocity(np.ones(20), 0.0), "fs must be a positive"),
        (lambda: mean_angular_velocity(np.ones(20), -5.0), "fs must be a positive"),
        (lambda: peak_angular_velocity(np.ones(20), 100.0, smoothing="x"), "smoothing must be"),
        (lambda: angular_velocity(np.ones(20), 100.0, window_s=0.02), "window_s"),
        (lambda: angular_velocity(np.ones(20), 100.0, "butterworth", cutoff_hz=80), "cutoff"),
        (lambda: angular_velocity(np.float64(3.0), 100.0), "angle_deg must have time"),
        (lambda: movement_time(np.ones(10), 0.0), "fs must be a positive"),
        (lambda: movement_time(np.ones(10), 100.0, threshold=1.5), "threshold must be"),
        (lambda: tempo(pd.DataFrame({"start": [1.0]})), "no 'start_s' column"),
        (lambda: tempo([3.0, 1.0]), "finite and increasing"),
        (lambda: tempo(np.ones((2, 2))), r"onset times must have shape"),
        (lambda: repetition_count(np.ones(10), 0.0, 5.0), "fs must be a positive"),
        (lambda: repetition_count(np.ones((2, 2, 2)), 50.0, 5.0), "signal must have shape"),
        (lambda: repetition_count(np.arange(10.0), 50.0, -5.0), "min_range must be positive"),
        (lambda: split_repetitions(np.ones(10), pd.DataFrame({"a": [1]})), "no 'start_frame'"),
        (
            lambda: split_repetitions(
                np.ones(10), pd.DataFrame({"start_frame": [2], "end_frame": [12]})
            ),
            "outside the signal's 10 frames",
        ),
    ],
)
def test_bad_input_is_an_input_error_naming_the_argument(call, match):
    with pytest.raises(InputError, match=match):
        call()
