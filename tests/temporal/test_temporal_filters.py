"""Filters of medpose.temporal against known signals and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from medpose.errors import InputError
from medpose.temporal import butterworth, kalman_rts, one_euro, savgol, weighted_moving_average

FS = 100.0
T = np.arange(0, 4, 1 / FS)


def test_butterworth_zero_phase_lag_on_sinusoid():
    x = np.sin(2 * np.pi * 1.0 * T)
    y = butterworth(x, FS, cutoff=6)
    core = slice(50, -50)
    # same phase: the cross-correlation peaks at lag 0, and the samples agree
    lags = np.arange(-10, 11)
    xc = [np.dot(x[core], np.roll(y, k)[core]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0
    assert np.max(np.abs(y[core] - x[core])) < 1e-3


def test_butterworth_matches_scipy_and_handles_shapes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(T), 3, 3))
    sos = signal.butter(4, 8, fs=FS, output="sos")
    np.testing.assert_allclose(
        butterworth(x, FS, 8), signal.sosfiltfilt(sos, x, axis=0), atol=1e-12
    )


def test_butterworth_nan_runs_filtered_separately():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(len(T), 2)), axis=0)
    x[100:120, 0] = np.nan
    y = butterworth(x, FS, 5)
    assert (
        np.isnan(y[100:120, 0]).all()
        and np.isfinite(y[:100, 0]).all()
        and np.isfinite(y[120:, 0]).all()
    )
    np.testing.assert_allclose(y[:100, 0], butterworth(x[:100, 0], FS, 5), atol=1e-12)
    np.testing.assert_allclose(y[120:, 0], butterworth(x[120:, 0], FS, 5), atol=1e-12)
    np.testing.assert_allclose(y[:, 1], butterworth(x[:, 1], FS, 5), atol=1e-12)


@pytest.mark.parametrize("cutoff", [50.0, 60.0])
def test_butterworth_cutoff_at_or_above_nyquist(cutoff):
    with pytest.raises(InputError, match=rf"cutoff {cutoff:g} Hz .*Nyquist frequency 50 Hz"):
        butterworth(T, FS, cutoff)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"cutoff": 0.0}, "positive frequency"),
        ({"order": 0}, "order"),
        ({"cutoff": 5.0, "fs": -1.0}, "sampling rate"),
    ],
)
def test_butterworth_bad_arguments(kw, msg):
    args = {"fs": FS, "cutoff": 5.0} | kw
    with pytest.raises(InputError, match=msg):
        butterworth(T, **args)


def test_savgol_matches_scipy_and_derivative_of_sine():
    x = np.sin(2 * np.pi * 0.5 * T)
    y = savgol(x, FS, window_s=0.11, polyorder=3)
    np.testing.assert_allclose(y, signal.savgol_filter(x, 11, 3, mode="interp"), atol=1e-12)
    d = savgol(x, FS, window_s=0.11, polyorder=3, deriv=1)
    np.testing.assert_allclose(d[20:-20], np.pi * np.cos(np.pi * T)[20:-20], atol=1e-3)


def test_savgol_short_window_and_short_runs():
    with pytest.raises(InputError, match=r"window_s=0\.01"):
        savgol(T, FS, window_s=0.01, polyorder=3)
    x = np.sin(T)
    x[5] = np.nan  # a run of 5 samples is shorter than the window: copied, derivative NaN
    assert np.allclose(savgol(x, FS, 0.11)[:5], x[:5])
    assert np.isnan(savgol(x, FS, 0.11, deriv=1)[:5]).all()


def _one_euro_reference(x, fs, min_cutoff, beta, d_cutoff):
    """Scalar transcription of Casiez et al. 2012, Algorithm 1."""

    def alpha(fc):
        tau = 1 / (2 * np.pi * fc)
        return 1 / (1 + tau * fs)

    out, xprev, dprev = [], None, 0.0
    for v in x:
        if xprev is None:
            xprev = v
            out.append(v)
            continue
        dx = (v - xprev) * fs
        dhat = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dprev
        a = alpha(min_cutoff + beta * abs(dhat))
        xprev = a * v + (1 - a) * xprev
        dprev = dhat
        out.append(xprev)
    return np.array(out)


def test_one_euro_matches_reference_and_restarts_after_nan():
    rng = np.random.default_rng(2)
    x = np.sin(2 * np.pi * 0.7 * T) + rng.normal(0, 0.05, T.size)
    y = one_euro(x, FS, min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    np.testing.assert_allclose(y, _one_euro_reference(x, FS, 1.0, 0.5, 1.0), atol=1e-12)
    x2 = x.copy()
    x2[50] = np.nan
    y2 = one_euro(np.stack([x2, x], 1), FS, 1.0, 0.5)
    assert np.isnan(y2[50, 0])
    np.testing.assert_allclose(
        y2[51:, 0], _one_euro_reference(x[51:], FS, 1.0, 0.5, 1.0), atol=1e-12
    )
    np.testing.assert_allclose(y2[:, 1], y, atol=1e-12)
    # less jitter than the input at rest
    rest = rng.normal(0, 1, 400)
    assert np.std(one_euro(rest, FS, min_cutoff=1.0)[50:]) < 0.3 * np.std(rest)


def test_one_euro_bad_arguments():
    with pytest.raises(InputError, match="min_cutoff 60 Hz"):
        one_euro(T, FS, min_cutoff=60)
    with pytest.raises(InputError, match="beta"):
        one_euro(T, FS, beta=-1)


def test_kalman_rts_smooths_noise_and_keeps_nan():
    rng = np.random.default_rng(3)
    truth = 100 * np.sin(2 * np.pi * 0.5 * T)
    x = truth + rng.normal(0, 2.0, T.size)
    y = kalman_rts(x, FS, process_noise=1e5, measurement_noise=2.0)
    rms_in = np.sqrt(np.mean((x - truth) ** 2))
    rms_out = np.sqrt(np.mean((y - truth)[20:-20] ** 2))
    assert rms_out < 0.5 * rms_in
    x[100:110] = np.nan
    y = kalman_rts(np.stack([x, x], 1), FS, 1e5, 2.0)
    assert np.isnan(y[100:110]).all()
    yf = kalman_rts(x, FS, 1e5, 2.0, fill_gaps=True)
    assert np.isfinite(yf[100:110]).all()
    assert np.max(np.abs(yf[100:110] - truth[100:110])) < 5.0


def test_kalman_rts_exact_on_constant_acceleration_without_noise():
    x = 3.0 + 2.0 * T + 5.0 * T**2
    y = kalman_rts(x, FS, process_noise=1e-6, measurement_noise=1e-3)
    np.testing.assert_allclose(y, x, atol=1e-3)


def test_kalman_rts_bad_arguments():
    with pytest.raises(InputError, match="process_noise"):
        kalman_rts(T, FS, process_noise=0)
    with pytest.raises(InputError, match="measurement_noise"):
        kalman_rts(T, FS, measurement_noise=-1)


def test_weighted_moving_average_lags_by_a_third_of_its_window():
    n = 10
    ramp = np.arange(200.0)
    y = weighted_moving_average(ramp, n)
    np.testing.assert_allclose(ramp[n:] - y[n:], (n - 1) / 3, atol=1e-9)
    with pytest.raises(InputError, match="window"):
        weighted_moving_average(ramp, 0)


def test_weighted_moving_average_attenuates_a_peak_more_than_butterworth():
    x = np.exp(-0.5 * ((T - 2) / 0.1) ** 2)
    w, b = weighted_moving_average(x, 15), butterworth(x, FS, 6)
    assert w.max() < 0.95 < b.max()
    assert np.argmax(b) == np.argmax(x)  # zero lag
    assert np.argmax(w) - np.argmax(x) >= 3  # the baseline lags (~(n-1)/3 samples)
