"""Dynamic time warping of repetitions against a template, and average templates.

DTW (Sakoe & Chiba 1978, *IEEE Trans. ASSP* 26:43) is computed by dtaidistance's C
routines (Meert et al., `dtaidistance <https://github.com/wannesm/dtaidistance>`_); its
distance is ``sqrt(sum over the warping path of ||q_i - t_j||^2)``.  The average template is
DTW Barycenter Averaging (Petitjean, Ketterlin & Gancarski 2011, *Pattern Recognition*
44:678), also from dtaidistance.  dtaidistance is a runtime dependency of this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .repetitions import time_normalise

__all__ = ["Alignment", "dtw_align", "dtw_distance", "average_template"]


def _dtai():
    try:
        from dtaidistance import dtw, dtw_barycenter, dtw_ndim
    except ImportError as e:  # pragma: no cover - dependency is declared
        raise ImportError(
            "medpose.temporal DTW needs the 'dtaidistance' package: pip install dtaidistance"
        ) from e
    return dtw, dtw_ndim, dtw_barycenter


def _series(x: np.ndarray, what: str) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if a.ndim == 2 and a.shape[1] == 1:
        a = np.ascontiguousarray(a[:, 0])
    if a.ndim not in (1, 2) or a.shape[0] < 1:
        raise InputError(f"DTW: {what} must have shape (T,) or (T, D), found {np.shape(x)}")
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1))
        raise InputError(
            f"DTW: {what} has NaN or infinite values at {bad.size} frames (first at frame "
            f"{int(bad[0])}); fill gaps first (medpose.temporal.fill_gaps)"
        )
    return a


def _window(window: int | None, what: str = "window") -> dict:
    if window is None:
        return {}
    if int(window) != window or window < 1:
        raise InputError(f"DTW: {what} must be a positive number of samples, found {window!r}")
    return {"window": int(window)}


@dataclass(frozen=True)
class Alignment:
    """A DTW alignment of a query to a template.

    Attributes
    ----------
    distance : float
        DTW distance, in the signal's unit (``sqrt`` of the summed squared differences
        along the path).
    path : ndarray, shape (L, 2), int
        Pairs ``(query_index, template_index)`` from ``(0, 0)`` to the last samples.
    """

    distance: float
    path: np.ndarray

    def warp(self, query: np.ndarray) -> np.ndarray:
        """The query resampled onto the template's time axis (mean of the matched samples)."""
        q = np.asarray(query, dtype=float)
        n = int(self.path[-1, 1]) + 1
        counts = np.bincount(self.path[:, 1], minlength=n).astype(float)
        flat = q.reshape(q.shape[0], -1)
        sums = np.zeros((n, flat.shape[1]))
        np.add.at(sums, self.path[:, 1], flat[self.path[:, 0]])
        return (sums / counts[:, None]).reshape((n,) + q.shape[1:])


def dtw_distance(query: np.ndarray, template: np.ndarray, window: int | None = None) -> float:
    """DTW distance only (dtaidistance's C ``distance_fast``), shape (T,) or (T, D) inputs."""
    dtw, dtw_ndim, _ = _dtai()
    q, t = _series(query, "query"), _series(template, "template")
    if q.ndim != t.ndim or (q.ndim == 2 and q.shape[1] != t.shape[1]):
        raise InputError(
            f"DTW: query shape {q.shape} and template shape {t.shape} differ in dimension"
        )
    mod = dtw if q.ndim == 1 else dtw_ndim
    return float(mod.distance_fast(q, t, **_window(window)))


def dtw_align(query: np.ndarray, template: np.ndarray, window: int | None = None) -> Alignment:
    """Align ``query`` to ``template`` with DTW: warping path and distance.

    Parameters
    ----------
    query, template : array_like, shape (T,) or (T, D)
        Joint angles or trajectories, same D; no NaN (fill gaps first).
    window : int, optional
        Sakoe-Chiba band half-width in samples (None = unconstrained).

    Returns
    -------
    Alignment

    Raises
    ------
    InputError
        On NaN, mismatched dimensions or a bad window.
    """
    dtw, dtw_ndim, _ = _dtai()
    q, t = _series(query, "query"), _series(template, "template")
    if q.ndim != t.ndim or (q.ndim == 2 and q.shape[1] != t.shape[1]):
        raise InputError(
            f"DTW: query shape {q.shape} and template shape {t.shape} differ in dimension"
        )
    mod = dtw if q.ndim == 1 else dtw_ndim
    d, paths = mod.warping_paths_fast(q, t, **_window(window))
    path = np.asarray(dtw.best_path(paths), dtype=int)
    return Alignment(float(d), path)


def average_template(
    repetitions, n_points: int = 101, max_iter: int = 20, window: int | None = None
) -> np.ndarray:
    """Average template of several repetitions by DTW Barycenter Averaging.

    Each repetition is first time-normalised to ``n_points`` samples
    (:func:`~medpose.temporal.time_normalise`); DBA (Petitjean et al. 2011) then starts from
    their pointwise mean and iterates (dtaidistance ``dtw_barycenter.dba_loop``, C routines)
    so that peaks that happen at different times are averaged, not blurred.

    Parameters
    ----------
    repetitions : sequence of array_like, each (T_i,) or (T_i, D); or an array (R, T[, D])
        The good repetitions (at least one).
    n_points : int
        Length of the template (101 = one sample per percent of the cycle).
    max_iter : int
        DBA iterations.
    window : int, optional
        Sakoe-Chiba band half-width in samples.

    Returns
    -------
    ndarray, shape (n_points,) or (n_points, D)
    """
    _, _, dtw_barycenter = _dtai()
    reps = [_series(r, f"repetition {i}") for i, r in enumerate(repetitions)]
    if not reps:
        raise InputError("average_template: no repetitions given; expected at least one")
    if len({r.shape[1:] for r in reps}) != 1:
        raise InputError(
            f"average_template: repetitions differ in dimension: {[r.shape for r in reps]}"
        )
    norm = [np.ascontiguousarray(time_normalise(r, n_points)) for r in reps]
    if len(norm) == 1:
        return norm[0]
    start = np.mean(norm, axis=0)
    return np.asarray(
        dtw_barycenter.dba_loop(norm, c=start, max_it=int(max_iter), use_c=True, **_window(window)),
        dtype=float,
    )
