"""Low-pass filters for keypoint trajectories, NaN-aware.

Every filter takes an array with time on axis 0 (``(T,)``, ``(T, K)``, ``(T, K, 3)``...)
and the sampling rate in Hz, and returns an array of the same shape.  Missing samples
(NaN) stay missing: the offline filters (:func:`butterworth`, :func:`savgol`,
:func:`weighted_moving_average`) run on each finite run separately, so a gap never
smears into its neighbours; the recursive filters (:func:`one_euro`, :func:`kalman_rts`)
skip the missing samples.

* :func:`butterworth` - zero-lag low-pass, the biomechanics default (Winter 2009, ch. 3).
* :func:`savgol` - Savitzky-Golay smoothing / differentiation (Savitzky & Golay 1964).
* :func:`one_euro` - the 1 euro filter for live use (Casiez, Roussel & Vogel 2012, CHI).
* :func:`kalman_rts` - constant-acceleration Kalman filter with Rauch-Tung-Striebel
  smoothing (Rauch, Tung & Striebel 1965).
* :func:`weighted_moving_average` - a causal, linearly weighted moving average (the
  smoother of early markerless-capture pipelines); a *baseline only*: it lags and flattens peaks (see ``benchmarks/temporal.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from ..errors import InputError

__all__ = [
    "butterworth",
    "savgol",
    "one_euro",
    "kalman_rts",
    "weighted_moving_average",
    "finite_runs",
]


# ----------------------------------------------------------------------------- helpers
def _as_2d(x: np.ndarray, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0 or a.shape[0] == 0:
        raise InputError(f"{what}: expected an array with time on axis 0, found shape {a.shape}")
    return a.reshape(a.shape[0], -1), a.shape


def _check_rate(fs: float, what: str) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"{what}: sampling rate fs must be a positive number of Hz, found {fs!r}")
    return fs


def _check_cutoff(cutoff: float, fs: float, what: str, name: str = "cutoff") -> float:
    c = float(cutoff)
    nyq = fs / 2.0
    if not np.isfinite(c) or c <= 0:
        raise InputError(f"{what}: {name} must be a positive frequency in Hz, found {cutoff!r}")
    if c >= nyq:
        raise InputError(
            f"{what}: {name} {c:g} Hz is at or above the Nyquist frequency {nyq:g} Hz "
            f"(fs = {fs:g} Hz); expected a cut-off below {nyq:g} Hz"
        )
    return c


def finite_runs(mask: np.ndarray) -> np.ndarray:
    """Start and stop indices of the runs of ``True`` in a 1D boolean mask.

    Returns
    -------
    ndarray, shape (R, 2), int
        ``[start, stop)`` of each run, in order.
    """
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return d.reshape(-1, 2)


def _apply_runs(
    x2: np.ndarray, func: Callable[[np.ndarray], np.ndarray], min_len: int
) -> np.ndarray:
    """Apply ``func`` (acting along axis 0 of a (n, m) block) to every finite run.

    Columns that share the same missing pattern are processed together, so a
    (T, K, 3) sequence costs one call per distinct (keypoint) gap pattern and run, never
    one per frame.  Runs shorter than ``min_len`` are returned unfiltered.
    """
    finite = np.isfinite(x2)
    out = np.full_like(x2, np.nan)
    if finite.all():
        return func(x2) if x2.shape[0] >= min_len else x2.copy()
    patterns, inverse = np.unique(finite.T, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for g, pattern in enumerate(patterns):
        cols = np.flatnonzero(inverse == g)
        for start, stop in finite_runs(pattern):
            block = x2[start:stop][:, cols]
            out[start:stop, cols] = func(block) if stop - start >= min_len else block
    return out


# ----------------------------------------------------------------------------- Butterworth
def butterworth(
    x: np.ndarray, fs: float, cutoff: float, order: int = 4, btype: str = "low"
) -> np.ndarray:
    """Zero-lag Butterworth filter (forward-backward), NaN-aware.

    The filter is designed with :func:`scipy.signal.butter` as second-order sections
    and run forward and backward with :func:`scipy.signal.sosfiltfilt`, so it has zero
    phase lag; the magnitude response is squared (gain 0.5, -6 dB, at ``cutoff``).
    This is the standard low-pass for kinematic data (Winter, *Biomechanics and Motor
    Control of Human Movement*, 4th ed. 2009, section 3.4).  Each finite run of each
    column is filtered separately (edge padding as in ``sosfiltfilt``, shortened for short
    runs); NaN samples stay NaN; runs of fewer than 4 samples are returned unfiltered.

    Parameters
    ----------
    x : array_like, shape (T, ...)
        Signal with time on axis 0 (any unit; the output has the same unit).
    fs : float
        Sampling rate, Hz.
    cutoff : float
        Cut-off frequency, Hz; must lie strictly between 0 and ``fs / 2``.
    order : int
        Order of the single-pass design (default 4; effective order 8 after the two passes).
    btype : {"low", "high"}
        Low-pass (default) or high-pass.

    Returns
    -------
    ndarray, same shape as ``x``

    Raises
    ------
    InputError
        If ``fs`` is not positive, ``cutoff`` is not in (0, fs/2) (the message names the
        value and the Nyquist frequency), or ``order`` is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0, 2, 1 / 100)
    >>> y = butterworth(np.sin(2 * np.pi * 1 * t), fs=100, cutoff=6)
    >>> bool(np.abs(y - np.sin(2 * np.pi * 1 * t))[20:-20].max() < 1e-3)
    True
    """
    fs = _check_rate(fs, "butterworth")
    cutoff = _check_cutoff(cutoff, fs, "butterworth")
    if int(order) != order or order < 1:
        raise InputError(f"butterworth: order must be a positive integer, found {order!r}")
    if btype not in ("low", "high"):
        raise InputError(f"butterworth: btype must be 'low' or 'high', found {btype!r}")
    sos = signal.butter(int(order), cutoff, btype=btype, fs=fs, output="sos")
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))

    def run(block: np.ndarray) -> np.ndarray:
        return signal.sosfiltfilt(sos, block, axis=0, padlen=min(default_pad, block.shape[0] - 1))

    x2, shape = _as_2d(x, "butterworth")
    return _apply_runs(x2, run, min_len=4).reshape(shape)


# ----------------------------------------------------------------------------- Savitzky-Golay
def savgol(
    x: np.ndarray, fs: float, window_s: float, polyorder: int = 3, deriv: int = 0
) -> np.ndarray:
    """Savitzky-Golay smoothing (or derivative), NaN-aware.

    Fits a polynomial of degree ``polyorder`` in a sliding window by least squares
    (Savitzky & Golay 1964, *Anal. Chem.* 36:1627) via :func:`scipy.signal.savgol_filter`
    (``mode="interp"`` at the ends).  Each finite run is filtered separately; runs shorter
    than the window are returned unchanged (or NaN for a derivative).

    Parameters
    ----------
    x : array_like, shape (T, ...)
        Time on axis 0.
    fs : float
        Sampling rate, Hz.
    window_s : float
        Window length in seconds; rounded to the nearest odd number of samples.
    polyorder : int
        Polynomial degree, smaller than the window length in samples.
    deriv : int
        Derivative order; the result is in units of ``x`` per second**deriv.

    Raises
    ------
    InputError
        If the window has fewer samples than ``polyorder + 1`` or the values are invalid.
    """
    fs = _check_rate(fs, "savgol")
    n = round(float(window_s) * fs)
    n += (n + 1) % 2  # odd
    if not np.isfinite(window_s) or window_s <= 0 or n <= polyorder:
        raise InputError(
            f"savgol: window_s={window_s!r} s gives {n} samples at {fs:g} Hz; "
            f"expected more than polyorder={polyorder} samples"
        )
    if deriv < 0 or deriv > polyorder:
        raise InputError(f"savgol: deriv must be in [0, polyorder={polyorder}], found {deriv!r}")

    def run(block: np.ndarray) -> np.ndarray:
        return signal.savgol_filter(
            block, n, polyorder, deriv=deriv, delta=1.0 / fs, axis=0, mode="interp"
        )

    x2, shape = _as_2d(x, "savgol")
    out = _apply_runs(x2, run, min_len=n)
    if deriv > 0:  # short runs were copied through unfiltered: a position is not a derivative
        finite = np.isfinite(x2)
        for j in range(x2.shape[1]):
            for a, b in finite_runs(finite[:, j]):
                if b - a < n:
                    out[a:b, j] = np.nan
    return out.reshape(shape)


# ----------------------------------------------------------------------------- moving average
def weighted_moving_average(x: np.ndarray, window: int = 5) -> np.ndarray:
    """Causal, linearly weighted moving average (a common markerless-capture smoother; baseline only).

    ``y[t] = sum_{i=0}^{n-1} (n - i) x[t - i] / sum_{i=1}^{n} i``: the newest sample weighs
    ``n``, the oldest ``1``.  Being causal it lags the signal by
    ``sum_i i (n - i) / sum_i (n - i) = (n - 1) / 3`` samples and attenuates peaks; it is
    kept only to show that in ``benchmarks/temporal.py``.  The first ``n - 1`` samples of
    each finite run use the samples available (weights renormalised).  Implemented with
    :func:`scipy.signal.lfilter`.

    Parameters
    ----------
    x : array_like, shape (T, ...)
    window : int
        Number of samples ``n`` (>= 1).
    """
    n = int(window)
    if n != window or n < 1:
        raise InputError(
            f"weighted_moving_average: window must be a positive integer, found {window!r}"
        )
    w = np.arange(n, 0, -1, dtype=float)

    def run(block: np.ndarray) -> np.ndarray:
        num = signal.lfilter(w, [1.0], block, axis=0)
        den = signal.lfilter(w, [1.0], np.ones(block.shape[0]))
        return num / den[:, None]

    x2, shape = _as_2d(x, "weighted_moving_average")
    return _apply_runs(x2, run, min_len=1).reshape(shape)


# ----------------------------------------------------------------------------- One Euro
def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=float))
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    x: np.ndarray, fs: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0
) -> np.ndarray:
    """The 1 euro filter: a causal low-pass whose cut-off rises with speed.

    Casiez, Roussel & Vogel (2012), "1 euro filter: a simple speed-based low-pass filter
    for noisy input in interactive systems", CHI '12, pp. 2527-2530, Algorithm 1::

        dx_hat[t] = lp(dx[t], alpha(d_cutoff))       with dx[t] = (x[t] - x_hat[t-1]) * fs
        fc[t]     = min_cutoff + beta * |dx_hat[t]|
        x_hat[t]  = lp(x[t], alpha(fc[t])),  alpha(fc) = 1 / (1 + fs / (2 pi fc))

    The speed is taken per column (each coordinate separately, as in the reference
    implementation).  The recursion has a time-varying coefficient, so no linear-filter
    routine of scipy applies: it is written here as a loop over frames, vectorised over
    all columns.  A NaN sample gives NaN and restarts that column's filter.

    Parameters
    ----------
    x : array_like, shape (T, ...)
    fs : float
        Sampling rate, Hz.
    min_cutoff : float
        Minimum cut-off in Hz (lower = less jitter at rest, more lag).
    beta : float
        Speed coefficient, in Hz per (unit of x / s) (higher = less lag when moving).
    d_cutoff : float
        Cut-off for the derivative, Hz.

    Raises
    ------
    InputError
        On a non-positive rate or cut-off, a cut-off at or above Nyquist, or a negative beta.
    """
    fs = _check_rate(fs, "one_euro")
    _check_cutoff(min_cutoff, fs, "one_euro", "min_cutoff")
    _check_cutoff(d_cutoff, fs, "one_euro", "d_cutoff")
    if not np.isfinite(beta) or beta < 0:
        raise InputError(f"one_euro: beta must be a non-negative number, found {beta!r}")
    x2, shape = _as_2d(x, "one_euro")
    dt = 1.0 / fs
    a_d = _alpha(d_cutoff, dt)
    out = np.full_like(x2, np.nan)
    prev = np.full(x2.shape[1], np.nan)
    dprev = np.zeros(x2.shape[1])
    for t in range(x2.shape[0]):
        xt = x2[t]
        fresh = np.isnan(prev)
        dx = np.where(fresh, 0.0, (xt - prev) * fs)
        dhat = np.where(fresh, 0.0, a_d * dx + (1 - a_d) * dprev)
        a = _alpha(min_cutoff + beta * np.abs(dhat), dt)
        xhat = np.where(fresh, xt, a * xt + (1 - a) * prev)
        out[t] = xhat
        prev, dprev = xhat, np.where(np.isnan(xhat), 0.0, dhat)
    return out.reshape(shape)


# ----------------------------------------------------------------------------- Kalman / RTS
def kalman_rts(
    x: np.ndarray,
    fs: float,
    process_noise: float = 1e4,
    measurement_noise: float = 2.0,
    fill_gaps: bool = False,
) -> np.ndarray:
    """Constant-acceleration Kalman filter followed by Rauch-Tung-Striebel smoothing.

    Each column is modelled independently with state ``[p, v, a]`` and transition
    ``F = [[1, dt, dt^2/2], [0, 1, dt], [0, 0, 1]]``; the process noise is white jerk with
    spectral density ``q = process_noise`` (units of x per s^3, squared, per Hz), giving the
    discretised covariance of Bar-Shalom, Li & Kirubarajan (2001), *Estimation with
    Applications to Tracking and Navigation*, section 6.2.3; the measurement is ``p`` with
    standard deviation ``measurement_noise`` (units of x).  The backward pass is the RTS
    smoother (Rauch, Tung & Striebel 1965, *AIAA J.* 3(8):1445).

    Why by hand: scipy has no Kalman smoother, and the maintained alternatives are not
    dependencies of medpose; the recursion is a few lines, and here it runs vectorised over
    all columns at once (one loop over frames forward and one backward, each step a batched
    3x3 operation), where a per-column library call would loop over columns and frames.

    Parameters
    ----------
    x : array_like, shape (T, ...)
        Measurements, time on axis 0; NaN = no measurement at that sample (prediction only).
    fs : float
        Sampling rate, Hz.
    process_noise : float
        Jerk spectral density ``q`` (> 0); larger follows fast movement more closely.
    measurement_noise : float
        Measurement standard deviation in units of ``x`` (> 0).
    fill_gaps : bool
        If False (default) samples that were NaN in ``x`` stay NaN; if True the smoother's
        prediction fills interior gaps (samples before the first and after the last
        measurement of a column stay NaN either way).

    Returns
    -------
    ndarray, same shape as ``x``
    """
    fs = _check_rate(fs, "kalman_rts")
    if not (np.isfinite(process_noise) and process_noise > 0):
        raise InputError(f"kalman_rts: process_noise must be positive, found {process_noise!r}")
    if not (np.isfinite(measurement_noise) and measurement_noise > 0):
        raise InputError(
            f"kalman_rts: measurement_noise must be positive, found {measurement_noise!r}"
        )
    x2, shape = _as_2d(x, "kalman_rts")
    n_t, m = x2.shape
    dt = 1.0 / fs
    F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    q = float(process_noise)
    Q = q * np.array(
        [
            [dt**5 / 20, dt**4 / 8, dt**3 / 6],
            [dt**4 / 8, dt**3 / 3, dt**2 / 2],
            [dt**3 / 6, dt**2 / 2, dt],
        ]
    )
    r = float(measurement_noise) ** 2
    obs = np.isfinite(x2)

    # initial state: first measurement of each column, broad prior on velocity/acceleration
    first = np.argmax(obs, axis=0)
    has = obs.any(axis=0)
    xs = np.zeros((m, 3))
    xs[:, 0] = np.where(has, x2[first, np.arange(m)], 0.0)
    P0 = np.diag([r, 1e6 * r + 1e6, 1e8 * r + 1e8])
    P = np.broadcast_to(P0, (m, 3, 3)).copy()
    xf = np.empty((n_t, m, 3))
    Pf = np.empty((n_t, m, 3, 3))
    xp_all = np.empty((n_t, m, 3))
    Pp_all = np.empty((n_t, m, 3, 3))
    started = np.zeros(m, dtype=bool)
    for t in range(n_t):
        if t == 0:
            xp, Pp = xs, P
        else:
            xp = xf[t - 1] @ F.T
            Pp = F @ Pf[t - 1] @ F.T + Q
        # before a column's first measurement, hold the prior (no dynamics yet)
        xp = np.where(started[:, None], xp, xs)
        Pp = np.where(started[:, None, None], Pp, P0)
        xp_all[t], Pp_all[t] = xp, Pp
        o = obs[t]
        s = Pp[:, 0, 0] + r
        k = Pp[:, :, 0] / s[:, None]
        innov = np.where(o, np.nan_to_num(x2[t]) - xp[:, 0], 0.0)
        xn = xp + k * innov[:, None]
        Pn = Pp - k[:, :, None] * Pp[:, None, 0, :]
        xf[t] = np.where(o[:, None], xn, xp)
        Pf[t] = np.where(o[:, None, None], Pn, Pp)
        started |= o
    # RTS backward pass
    xsm = xf.copy()
    for t in range(n_t - 2, -1, -1):
        C = Pf[t] @ F.T @ np.linalg.inv(Pp_all[t + 1])
        xsm[t] = xf[t] + np.einsum("mij,mj->mi", C, xsm[t + 1] - xp_all[t + 1])
    out = xsm[..., 0]
    cummax = np.maximum.accumulate(obs, axis=0)
    after_last = np.maximum.accumulate(obs[::-1], axis=0)[::-1]
    out = np.where(cummax & after_last, out, np.nan)
    if not fill_gaps:
        out = np.where(obs, out, np.nan)
    return out.reshape(shape)
