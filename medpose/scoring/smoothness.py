"""Movement smoothness: SPARC, LDLJ and the number of velocity peaks.

Each metric takes one speed profile (shape ``(T,)``), a batch ``(R, T)`` padded with NaN, or
a list of profiles of any lengths, and returns a :class:`~medpose.scoring.MetricResult`
with one value per repetition.  The profile should be one segmented movement (a
repetition, see :func:`medpose.temporal.segment_repetitions`): both SPARC and LDLJ depend
on how much rest is included, LDLJ strongly (its duration is the array's length).

SPARC and LDLJ reproduce the reference implementation of Balasubramanian and colleagues
(github.com/siva82kb/SPARC, ``scripts/smoothness.py``: ``sparc`` and
``log_dimensionless_jerk``) to floating-point rounding; the test suite checks them against
values computed with that code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import find_peaks

from ..errors import InputError
from .batch import as_repetitions, check_rate, usable
from .result import MetricResult, build

__all__ = ["sparc", "ldlj", "velocity_peaks"]

#: LDLJ's duration exponent and number of differences to reach jerk, per input type.
_LDLJ_TYPES = {
    "position": (3, 2, 4),
    "speed": (3, 2, 3),
    "accl": (1, 1, 2),
    "jerk": (-1, 0, 1),
}


def sparc(
    speed: np.ndarray | Sequence[np.ndarray],
    fs: float,
    padlevel: int = 4,
    fc: float = 10.0,
    amp_th: float = 0.05,
) -> MetricResult:
    """Spectral arc length (SPARC) of speed profiles: smoothness, dimensionless, <= 0.

    For each profile ``v`` of ``N`` samples: the magnitude of its discrete Fourier transform,
    zero-padded to ``nfft = 2 ** (ceil(log2(N)) + padlevel)`` points, is normalised by its
    maximum, ``M(f) = |V(f)| / max|V|``.  The spectrum is kept up to ``fc``, and then from the
    first to the last bin where ``M >= amp_th`` (the adaptive cut-off ``f_c``); SPARC is minus
    the arc length of that curve with frequency normalised by the kept band,

    ``SPARC = -sum sqrt((df / (f_c - f_0)) ** 2 + dM ** 2)``

    (Balasubramanian, Melendez-Calderon, Roby-Brami & Burdet 2015, *J NeuroEng Rehabil*
    12:112, eq. 3-4; the spectral arc length of Balasubramanian et al. 2012, *IEEE Trans
    Biomed Eng* 59:2126, with the adaptive cut-off).  Less negative is smoother: a minimum-
    jerk reach gives about -1.41; two overlapping submovements give down to about -2.7.
    SPARC does not depend on the movement's amplitude (the spectrum is normalised), and little
    on added rest (zero padding), e.g. by 0.02 for 0.5 s of rest on either side of a 0.5 s
    double reach.  This is the reference implementation's algorithm, bin for bin.

    Parameters
    ----------
    speed : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        Speed profile(s), any unit (mm/s, deg/s): one segmented movement each.  Leading and
        trailing NaN (padding of a batch) are dropped.
    fs : float
        Sampling rate, Hz (> 0).
    padlevel : int
        Extra powers of two of zero padding (>= 0; default 4, as the reference).
    fc : float
        Largest cut-off frequency, Hz (default 10 Hz: human movement lies below it); must be
        in (0, fs / 2].
    amp_th : float
        Amplitude threshold of the normalised spectrum for the adaptive cut-off, in (0, 1)
        (default 0.05).

    Returns
    -------
    MetricResult
        ``value``: SPARC (unit ``"1"``); ``details``: ``cutoff_hz`` (the adaptive cut-off
        ``f_c``), ``nfft``; ``params``: ``padlevel``, ``fc_hz``, ``amp_th``, ``fs_hz``.
        NaN with a reason for: fewer than 3 samples, interior missing samples, a speed that
        is zero everywhere, or a kept band of a single bin.

    Raises
    ------
    InputError
        If ``fs``, ``padlevel``, ``fc`` or ``amp_th`` is out of range, or ``speed`` has a
        bad shape; the message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(-1, 1, 0.01)
    >>> round(float(sparc(np.exp(-5 * t**2), fs=100.0)), 5)
    -1.41403
    """
    func = "sparc"
    fs = check_rate(fs, func)
    if isinstance(padlevel, bool) or int(padlevel) != padlevel or padlevel < 0:
        raise InputError(f"{func}: padlevel must be an integer >= 0, found {padlevel!r}")
    if not (np.isfinite(fc) and 0 < fc <= fs / 2):
        raise InputError(
            f"{func}: fc must be a frequency in (0, fs/2] = (0, {fs / 2:g}] Hz, found {fc!r}"
        )
    if not (np.isfinite(amp_th) and 0 < amp_th < 1):
        raise InputError(f"{func}: amp_th must lie in (0, 1), found {amp_th!r}")
    reps, single = as_repetitions(speed, func, "speed")
    values, reasons, cutoffs, nffts = [], [], [], []
    for rep in reps:
        v, why = usable(rep, 3)
        value, cutoff, nfft = np.nan, np.nan, np.nan
        if not why:
            n = int(2 ** (np.ceil(np.log2(v.size)) + int(padlevel)))
            nfft = float(n)
            spectrum = np.abs(np.fft.rfft(v, n))
            peak = spectrum.max()
            if not peak > 0:
                why = "the speed is zero everywhere; SPARC needs a movement"
            else:
                mag = spectrum / peak
                freq = np.arange(mag.size) * (fs / n)
                keep = freq <= fc
                f_sel, m_sel = freq[keep], mag[keep]
                above = np.flatnonzero(m_sel >= amp_th)
                if above.size == 0:
                    why = f"no frequency up to fc={fc:g} Hz reaches amp_th={amp_th:g}"
                elif above[-1] == above[0]:
                    why = (
                        "the spectrum above amp_th spans a single frequency bin; the "
                        "movement is too short for this padlevel"
                    )
                else:
                    f_sel = f_sel[above[0] : above[-1] + 1]
                    m_sel = m_sel[above[0] : above[-1] + 1]
                    df = np.diff(f_sel) / (f_sel[-1] - f_sel[0])
                    value = -float(np.sum(np.sqrt(df**2 + np.diff(m_sel) ** 2)))
                    cutoff = float(f_sel[-1])
        values.append(value)
        reasons.append(why)
        cutoffs.append(cutoff)
        nffts.append(nfft)
    return build(
        func,
        values,
        reasons,
        "1",
        single,
        params={
            "padlevel": int(padlevel),
            "fc_hz": float(fc),
            "amp_th": float(amp_th),
            "fs_hz": fs,
        },
        details={"cutoff_hz": cutoffs, "nfft": nffts},
    )


def ldlj(
    movement: np.ndarray | Sequence[np.ndarray],
    fs: float,
    data_type: str = "speed",
) -> MetricResult:
    """Log dimensionless jerk (LDLJ) of movement profiles: smoothness, dimensionless, < 0.

    ``LDLJ = -ln(T**p / peak**2 * integral |j(t)|**2 dt)`` with ``T`` the duration, ``peak``
    the largest absolute value of the given profile and ``j`` its jerk:

    * ``data_type="speed"``: ``p = 3``, ``j`` = second derivative of the speed (Hogan &
      Sternad 2009, *J Mot Behav* 41:529, in the form of Balasubramanian et al. 2015,
      *J NeuroEng Rehabil* 12:112, eq. 2, with the peak speed);
    * ``"accl"``: ``p = 1``, ``j`` = first derivative of the acceleration magnitude
      (gravity removed), ``peak`` = the peak acceleration: LDLJ-A of Melendez-Calderon,
      Shirota & Balasubramanian 2021, *Front Bioeng Biotechnol* 8:558771;
    * ``"jerk"``: ``p = -1``, ``j`` = the given jerk, ``peak`` = its peak;
    * ``"position"``: a 1-D position (a joint angle, a displacement along the path): its
      velocity ``v = diff(x) * fs`` (signed, ``N - 1`` samples) is used as ``"speed"``, so
      ``j`` is the third derivative of the position and ``T = (N - 1) / fs`` the time from
      the first to the last sample (Hogan & Sternad 2009's definition on a position).

    As in the reference implementation (github.com/siva82kb/SPARC and
    github.com/siva82kb/smoothness, ``log_dimensionless_jerk``): derivatives are forward
    differences divided by ``dt = 1 / fs``, the integral is their sum times ``dt``, and the
    duration is the array's length ``T = N / fs`` (so rest included in the array lengthens
    the movement: give the segmented movement).  LDLJ does not change with amplitude, nor
    with duration for a given shape; a minimum-jerk reach gives ``-ln(204.8) = -5.322`` in
    the continuous limit (within about ``2 / (fs T)`` when sampled).

    Parameters
    ----------
    movement : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        Speed (default), acceleration magnitude, jerk magnitude or 1-D position profile(s),
        any unit.
        Leading and trailing NaN (padding) are dropped.
    fs : float
        Sampling rate, Hz (> 0).
    data_type : {"speed", "accl", "jerk", "position"}
        What ``movement`` is.

    Returns
    -------
    MetricResult
        ``value``: LDLJ (unit ``"1"``); ``details``: ``duration_s``; ``params``:
        ``data_type``, ``duration_exponent``, ``fs_hz``.  NaN with a reason for too few
        samples, interior missing samples, a zero profile or zero jerk.

    Raises
    ------
    InputError
        If ``fs`` is not positive, ``data_type`` is unknown or the shape is bad.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(-1, 1, 0.01)
    >>> round(float(ldlj(np.exp(-5 * t**2), fs=100.0)), 5)
    -5.81636
    """
    func = "ldlj"
    fs = check_rate(fs, func)
    if data_type not in _LDLJ_TYPES:
        raise InputError(
            f"{func}: data_type must be 'speed', 'accl', 'jerk' or 'position', found {data_type!r}"
        )
    power, n_diff, min_samples = _LDLJ_TYPES[data_type]
    dt = 1.0 / fs
    reps, single = as_repetitions(movement, func, "movement")
    values, reasons, durations = [], [], []
    for rep in reps:
        x, why = usable(rep, min_samples)
        value, duration = np.nan, np.nan
        if not why:
            if data_type == "position":
                x = np.diff(x) / dt  # signed velocity, then as a speed profile
            duration = x.size * dt
            peak = float(np.max(np.abs(x)))
            steps = np.diff(x, n_diff)
            integral = float(np.sum((steps / dt**n_diff) ** 2)) * dt
            if not peak > 0:
                why = f"the {data_type} profile is zero everywhere; LDLJ needs a movement"
            elif np.max(np.abs(steps)) <= 1e-12 * peak:  # rounding error, not jerk
                why = f"the jerk of the {data_type} profile is zero everywhere"
            else:
                value = -float(np.log(duration**power / peak**2 * integral))
        values.append(value)
        reasons.append(why)
        durations.append(duration)
    return build(
        func,
        values,
        reasons,
        "1",
        single,
        params={"data_type": data_type, "duration_exponent": power, "fs_hz": fs},
        details={"duration_s": durations},
    )


def velocity_peaks(
    speed: np.ndarray | Sequence[np.ndarray],
    fs: float,
    prominence: float = 0.1,
    min_separation_s: float = 0.0,
) -> MetricResult:
    """Number of peaks in speed profiles (Rohrer et al. 2002, *J Neurosci* 22:8297).

    Peaks are the local maxima found by :func:`scipy.signal.find_peaks` whose prominence is at
    least ``prominence`` times the profile's peak speed and that lie at least
    ``min_separation_s`` apart.  A smooth single reach has 1; each extra submovement adds one.
    The profile is used as given (smooth it first, e.g. :func:`medpose.temporal.butterworth`):
    measurement noise adds peaks.  A maximum at the first or last sample is not a peak (the
    movement should start and end at rest).

    Parameters
    ----------
    speed : array_like, shape (T,) or (R, T), or sequence of 1-D arrays
        Speed profile(s), any unit.
    fs : float
        Sampling rate, Hz (> 0).
    prominence : float
        Smallest prominence as a fraction of the peak speed, in (0, 1] (default 0.1).
    min_separation_s : float
        Smallest time between peaks, seconds (>= 0).

    Returns
    -------
    MetricResult
        ``value``: number of peaks (unit ``"1"``); NaN with a reason for fewer than 3
        samples, interior gaps or a zero profile.

    Raises
    ------
    InputError
        For a bad ``fs``, ``prominence``, ``min_separation_s`` or shape.
    """
    func = "velocity_peaks"
    fs = check_rate(fs, func)
    if not (np.isfinite(prominence) and 0 < prominence <= 1):
        raise InputError(f"{func}: prominence must lie in (0, 1], found {prominence!r}")
    if not (np.isfinite(min_separation_s) and min_separation_s >= 0):
        raise InputError(
            f"{func}: min_separation_s must be >= 0 seconds, found {min_separation_s!r}"
        )
    distance = max(1, round(min_separation_s * fs))
    reps, single = as_repetitions(speed, func, "speed")
    values, reasons = [], []
    for rep in reps:
        v, why = usable(rep, 3)
        value = np.nan
        if not why:
            top = float(np.max(v))
            if not top > 0:
                why = "the speed is zero (not positive) everywhere"
            else:
                peaks, _ = find_peaks(v, prominence=prominence * top, distance=distance)
                value = float(peaks.size)
        values.append(value)
        reasons.append(why)
    return build(
        func,
        values,
        reasons,
        "1",
        single,
        params={"prominence": float(prominence), "min_separation_s": float(min_separation_s)},
    )
