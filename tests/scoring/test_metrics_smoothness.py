"""SPARC, LDLJ and velocity peaks: invariances, known values, missing data, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medpose.errors import InputError
from medpose.scoring import ldlj, sparc, velocity_peaks

#: Continuous LDLJ of a minimum-jerk speed profile v = 30 A/D tau^2 (1 - tau)^2:
#: peak 1.875 A/D, jerk A/D^3 * 30 (12 tau^2 - 12 tau + 2), integral of jerk^2 720 A^2/D^5,
#: so D^3 / vpeak^2 * 720 A^2 / D^5 = 720 / 1.875^2 = 204.8, whatever A and D.
LDLJ_MJT = -np.log(204.8)


def mjt_speed(duration: float, fs: float, amplitude: float = 1.0) -> np.ndarray:
    """Minimum-jerk speed profile (Flash & Hogan 1985), r + 1 samples for r = duration * fs."""
    r = round(duration * fs)
    tau = np.arange(r + 1) / r
    return 30.0 * amplitude / duration * tau**2 * (1 - tau) ** 2


def two_submovements(duration: float, shift: float, fs: float) -> np.ndarray:
    r, k = round(duration * fs), round(shift * fs)
    one = mjt_speed(duration, fs)
    out = np.zeros(r + 1 + k)
    out[: r + 1] += one
    out[k:] += one
    return out


@settings(max_examples=40, deadline=None)
@given(
    duration=st.floats(0.3, 3.0),
    fs=st.sampled_from([50.0, 100.0, 120.0, 200.0]),
    gain=st.floats(1e-3, 1e3),
    shift=st.floats(0.0, 0.8),
)
def test_sparc_does_not_change_with_amplitude(duration, fs, gain, shift):
    v = two_submovements(duration, shift, fs)
    a, b = sparc(v, fs), sparc(gain * v, fs)
    assert float(b) == pytest.approx(float(a), abs=1e-9)
    assert float(a) <= -1.0  # an arc over a normalised band is at least the band's length


@settings(max_examples=40, deadline=None)
@given(
    duration=st.floats(0.3, 3.0),
    fs=st.sampled_from([50.0, 100.0, 200.0]),
    gain=st.floats(1e-3, 1e3),
    data_type=st.sampled_from(["speed", "accl", "jerk"]),
)
def test_ldlj_does_not_change_with_amplitude(duration, fs, gain, data_type):
    v = mjt_speed(duration, fs)
    x = {"speed": v, "accl": np.abs(np.gradient(v, 1 / fs)), "jerk": v}[data_type]
    a, b = ldlj(x, fs, data_type=data_type), ldlj(gain * x, fs, data_type=data_type)
    assert float(b) == pytest.approx(float(a), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(samples=st.integers(20, 400), duration=st.floats(0.2, 5.0), scale=st.floats(0.1, 10.0))
def test_ldlj_does_not_change_with_duration_for_minimum_jerk(samples, duration, scale):
    """The same sampled shape over a duration ``scale`` times longer gives the same LDLJ."""
    fs = samples / duration
    a = ldlj(mjt_speed(duration, fs), fs)
    b = ldlj(mjt_speed(duration * scale, fs / scale), fs / scale)
    assert float(b) == pytest.approx(float(a), abs=1e-9)


@pytest.mark.parametrize("fs", [50.0, 100.0, 200.0, 1000.0])
@pytest.mark.parametrize("duration", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("amplitude", [1.0, 350.0])
def test_ldlj_of_minimum_jerk_converges_to_the_continuous_value(fs, duration, amplitude):
    """With r = D fs intervals: the duration N / fs = D (1 + 1/r) adds -3/r, the jerk sum
    misses half an end sample at each end (jerk^2 there is 3600 A^2 / D^6, the integral
    720 A^2 / D^5), +5/r; so LDLJ = -ln(204.8) + 2/r + O(1/r^2).  10/r^2 bounds the rest
    (the sampled peak and the rectangle rule's second-order terms) for r >= 25."""
    r = duration * fs
    got = float(ldlj(mjt_speed(duration, fs, amplitude), fs))
    assert abs(got - (LDLJ_MJT + 2.0 / r)) <= 10.0 / r**2


def mjt_position(duration: float, fs: float, amplitude: float = 1.0) -> np.ndarray:
    """Minimum-jerk position A (10 tau^3 - 15 tau^4 + 6 tau^5), r + 1 samples."""
    r = round(duration * fs)
    tau = np.arange(r + 1) / r
    return amplitude * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)


@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(30, 400),
    duration=st.floats(0.2, 5.0),
    scale=st.floats(0.1, 10.0),
    amplitude=st.floats(1e-2, 1e3),
)
def test_ldlj_of_a_position_is_amplitude_and_duration_invariant(
    samples, duration, scale, amplitude
):
    fs = samples / duration
    a = ldlj(mjt_position(duration, fs), fs, data_type="position")
    b = ldlj(mjt_position(duration * scale, fs / scale, amplitude), fs / scale, "position")
    assert float(b) == pytest.approx(float(a), abs=1e-9)
    assert a.details["duration_s"] == pytest.approx(duration)  # (N - 1) / fs


@pytest.mark.parametrize("fs", [100.0, 200.0, 1000.0])
@pytest.mark.parametrize("duration", [0.5, 1.0, 2.0])
def test_ldlj_of_a_minimum_jerk_position_converges_to_the_continuous_value(fs, duration):
    """From a position the velocity has r samples and duration exactly D; its second
    differences span r - 2 samples, missing one sample of jerk^2 (3600 A^2 / D^6) at each
    end of the integral 720 A^2 / D^5: +10 / r.  20 / r^2 bounds the second-order rest."""
    r = duration * fs
    got = float(ldlj(mjt_position(duration, fs, 45.0), fs, data_type="position"))
    assert abs(got - (LDLJ_MJT + 10.0 / r)) <= 20.0 / r**2


def test_sparc_of_minimum_jerk_is_close_to_its_known_value():
    """Balasubramanian et al. 2015 (fig. 3) give about -1.4 for one minimum-jerk reach and
    lower values for two submovements further apart."""
    v = mjt_speed(1.0, 100.0)
    assert float(sparc(v, 100.0)) == pytest.approx(-1.406, abs=0.005)
    values = sparc([two_submovements(0.5, s, 100.0) for s in (0.2, 0.4, 0.6)], 100.0).value
    assert np.all(np.diff(values) < 0)


def test_sparc_reports_its_parameters_and_cutoff():
    v = mjt_speed(1.0, 100.0)
    got = sparc(v, 100.0, padlevel=3, fc=8.0, amp_th=0.1)
    assert got.params["padlevel"] == 3 and got.params["fc_hz"] == 8.0
    assert got.params["amp_th"] == 0.1
    assert got.details["nfft"] == 2 ** (7 + 3)  # 101 samples -> 2**7, times 2**padlevel
    assert 0 < got.details["cutoff_hz"] <= 8.0
    # the cut-off is where the normalised spectrum last reaches amp_th
    spectrum = np.abs(np.fft.rfft(v, 1024))
    freq = np.arange(spectrum.size) * 100.0 / 1024
    above = freq[(spectrum / spectrum.max() >= 0.1) & (freq <= 8.0)]
    assert got.details["cutoff_hz"] == above.max()


def test_a_padded_batch_equals_the_list_of_repetitions():
    reps = [mjt_speed(d, 100.0) for d in (0.5, 1.0, 1.5)]
    padded = np.full((3, max(r.size for r in reps)), np.nan)
    for i, r in enumerate(reps):
        padded[i, : r.size] = r
    for metric in (sparc, ldlj, velocity_peaks):
        a, b = metric(reps, 100.0), metric(padded, 100.0)
        assert a.value.shape == (3,)
        np.testing.assert_array_equal(a.value, b.value)


@pytest.mark.parametrize("metric", [sparc, ldlj, velocity_peaks])
@pytest.mark.parametrize(
    "speed, reason",
    [
        (np.full(50, np.nan), "all 50 samples are missing"),
        (np.array([np.nan, 0.5, 1.0, np.nan]), "2 finite samples"),
        (np.zeros(50), "zero"),
        (np.r_[mjt_speed(0.5, 100.0)[:20], np.nan, mjt_speed(0.5, 100.0)[21:]], "fill gaps"),
    ],
)
def test_what_cannot_be_computed_is_nan_with_a_reason(metric, speed, reason):
    got = metric([speed, mjt_speed(1.0, 100.0)], 100.0)
    assert np.isnan(got.value[0]) and reason in got.reasons[0]
    assert np.isfinite(got.value[1]) and got.reasons[1] == ""
    assert list(got.ok) == [False, True]


def test_ldlj_of_zero_jerk_is_nan():
    got = ldlj(np.linspace(0.0, 1.0, 30), 100.0)
    assert np.isnan(float(got)) and "jerk" in got.reasons[0]


def test_sparc_of_a_band_of_one_bin_is_nan():
    got = sparc(np.ones(3), 100.0, padlevel=0, fc=10.0)
    assert np.isnan(float(got)) and "single frequency bin" in got.reasons[0]


def test_sparc_without_a_component_below_fc_is_nan():
    t = np.arange(200) / 100.0
    got = sparc(np.sin(2 * np.pi * 30 * t), 100.0, fc=5.0)
    assert np.isnan(float(got)) and "amp_th" in got.reasons[0]


def test_velocity_peaks_counts_submovements():
    assert float(velocity_peaks(mjt_speed(1.0, 100.0), 100.0)) == 1
    # two reaches of 0.5 s, 0.5 s apart: two peaks; 0.1 s apart they fuse into one
    counts = velocity_peaks([two_submovements(0.5, 0.5, 100), two_submovements(0.5, 0.1, 100)], 100)
    assert list(counts.value) == [2, 1]
    # a small wobble below the prominence threshold is not a peak
    v = mjt_speed(1.0, 100.0)
    wobble = v + 0.04 * v.max() * np.sin(2 * np.pi * 10 * np.arange(v.size) / 100.0)
    assert float(velocity_peaks(wobble, 100.0, prominence=0.1)) == 1
    assert float(velocity_peaks(wobble, 100.0, prominence=0.01)) > 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sparc(np.ones(10), 0.0), "fs must be a positive"),
        (lambda: sparc(np.ones(10), -100.0), "fs must be a positive"),
        (lambda: sparc(np.ones(10), float("nan")), "fs must be a positive"),
        (lambda: sparc(np.ones(10), "fast"), "fs must be a positive"),
        (lambda: sparc(np.ones(10), 100.0, fc=60.0), "fc must be a frequency in"),
        (lambda: sparc(np.ones(10), 100.0, fc=0.0), "fc must be a frequency in"),
        (lambda: sparc(np.ones(10), 100.0, amp_th=1.5), "amp_th must lie in"),
        (lambda: sparc(np.ones(10), 100.0, padlevel=-1), "padlevel must be an integer"),
        (lambda: sparc(np.ones(10), 100.0, padlevel=2.5), "padlevel must be an integer"),
        (lambda: sparc(np.ones((2, 3, 4)), 100.0), r"speed must have shape .* \(2, 3, 4\)"),
        (lambda: sparc(np.float64(1.0), 100.0), r"speed must have shape .* \(\)"),
        (lambda: sparc([], 100.0), "speed holds no repetitions"),
        (lambda: sparc([np.ones(4), np.ones((2, 2))], 100.0), r"speed\[1\] must be a 1-D"),
        (lambda: ldlj(np.ones(10), 0.0), "fs must be a positive"),
        (lambda: ldlj(np.ones(10), 100.0, data_type="angle"), "data_type must be"),
        (lambda: ldlj(np.ones((2, 3, 4)), 100.0), "movement must have shape"),
        (lambda: velocity_peaks(np.ones(10), 100.0, prominence=0.0), "prominence must lie"),
        (lambda: velocity_peaks(np.ones(10), 100.0, min_separation_s=-1), "min_separation_s"),
        (lambda: velocity_peaks(np.ones(10), -1.0), "fs must be a positive"),
    ],
)
def test_bad_input_is_an_input_error_naming_the_argument(call, match):
    with pytest.raises(InputError, match=match):
        call()
