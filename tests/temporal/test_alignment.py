"""DTW alignment against dtaidistance and an independent dynamic programme."""

from __future__ import annotations

import numpy as np
import pytest
from dtaidistance import dtw, dtw_ndim

from medpose.errors import InputError
from medpose.temporal import average_template, dtw_align, dtw_distance


def _dp(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook DTW (Sakoe & Chiba 1978) with squared-Euclidean cost, sqrt at the end."""
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(np.sqrt(acc[-1, -1]))


def _warped(n, seed, d=None):
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, n) ** rng.uniform(0.7, 1.4)
    x = 90 * np.sin(np.pi * u) ** 2 + rng.normal(0, 1, n)
    return x if d is None else np.stack([x * (k + 1) for k in range(d)], 1)


@pytest.mark.parametrize("d", [None, 3])
def test_dtw_distance_equals_dtaidistance_and_textbook(d):
    q, t = _warped(60, 0, d), _warped(75, 1, d)
    ref_c = (dtw if d is None else dtw_ndim).distance_fast(q, t)
    ref_py = (dtw if d is None else dtw_ndim).distance(q, t, use_c=False)
    al = dtw_align(q, t)
    assert abs(al.distance - ref_c) <= 1e-9
    assert abs(al.distance - ref_py) <= 1e-9
    assert abs(al.distance - _dp(q, t)) <= 1e-9
    assert abs(dtw_distance(q, t) - ref_c) <= 1e-9
    # the path is monotone, joins both ends, and its cost is the distance
    p = al.path
    assert tuple(p[0]) == (0, 0) and tuple(p[-1]) == (len(q) - 1, len(t) - 1)
    assert np.all(np.diff(p, axis=0) >= 0) and np.all(np.diff(p, axis=0).sum(1) >= 1)
    diff = (q[p[:, 0]] - t[p[:, 1]]).reshape(len(p), -1)
    assert abs(np.sqrt((diff**2).sum()) - al.distance) <= 1e-9


def test_window_and_warp():
    q, t = _warped(50, 2), _warped(50, 3)
    assert dtw_align(q, t, window=5).distance >= dtw_align(q, t).distance - 1e-12
    assert abs(dtw_align(q, t, window=5).distance - dtw.distance_fast(q, t, window=5)) <= 1e-9
    w = dtw_align(q, t).warp(q)
    assert w.shape == t.shape
    assert np.sqrt(((w - t) ** 2).sum()) < np.sqrt(((q - t) ** 2).sum())


def test_dtw_bad_input():
    q = _warped(30, 0)
    bad = q.copy()
    bad[7] = np.nan
    with pytest.raises(InputError, match=r"query has NaN .*frame 7"):
        dtw_align(bad, q)
    with pytest.raises(InputError, match="differ in dimension"):
        dtw_align(q, np.stack([q, q], 1))
    with pytest.raises(InputError, match="window"):
        dtw_align(q, q, window=0)


def test_average_template_recovers_the_shape():
    reps = [_warped(n, s) for n, s in ((80, 4), (95, 5), (120, 6), (70, 7))]
    tmpl = average_template(reps)
    assert tmpl.shape == (101,)
    assert abs(tmpl.max() - 90) < 5
    plain = np.mean(
        [np.interp(np.linspace(0, 1, 101), np.linspace(0, 1, len(r)), r) for r in reps], 0
    )
    # DBA keeps the peak that a plain average of time-warped repetitions blurs
    assert tmpl.max() > plain.max()
    # DBA minimises the summed squared DTW distance to the repetitions (Petitjean et al. 2011)
    norm = [np.interp(np.linspace(0, 1, 101), np.linspace(0, 1, len(r)), r) for r in reps]
    assert sum(dtw_distance(tmpl, r) ** 2 for r in norm) < sum(
        dtw_distance(plain, r) ** 2 for r in norm
    )
    multi = average_template([np.stack([r, -r], 1) for r in reps])
    assert multi.shape == (101, 2)
    with pytest.raises(InputError, match="no repetitions"):
        average_template([])
