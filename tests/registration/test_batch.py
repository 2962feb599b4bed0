"""Batched registration: equals one-by-one registration, checks every problem, simulate_tre."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medpose import DegenerateConfiguration, InputError
from medpose.registration import camera_fle, register, register_batch, simulate_tre

from .conftest import head_layout


def _problems(b: int, n: int = 6, seed: int = 0, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    x = head_layout(n)
    rot = Rotation.random(b, random_state=seed).as_matrix()
    y = np.einsum("bij,nj->bni", rot, x) + rng.normal(scale=100, size=(b, 1, 3))
    return (
        y + rng.normal(scale=noise, size=y.shape),
        x + rng.normal(scale=noise, size=(b, n, 3)),
        rot,
    )


@pytest.mark.parametrize(
    "kw",
    [{}, {"scale": True}, {"weights": np.arange(1.0, 7.0)}, {"fle": camera_fle(0.3, 1.2)}],
    ids=["rigid", "scale", "weights", "aniso"],
)
def test_batch_equals_single(kw):
    y, x, _ = _problems(20)
    res = register_batch(y, x, **kw)
    assert len(res) == 20 and res.matrix.shape == (20, 4, 4)
    for b in (0, 7, 19):
        single = register(y[b], x[b], **kw)
        assert np.abs(res.matrix[b] - single.transform.matrix).max() < 1e-9
        assert res.fre[b] == pytest.approx(single.fre, rel=1e-9)
        assert res.transform(b).allclose(single.transform, atol=1e-9)


def test_batch_exact_recovers_rotations_including_near_180_degrees():
    x = head_layout(6)
    rot = Rotation.random(500, random_state=1)
    rv = rot.as_rotvec()
    rv[:5] = rv[:5] / np.linalg.norm(rv[:5], axis=1, keepdims=True) * (np.pi - 1e-9)
    rot = Rotation.from_rotvec(rv)
    y = np.einsum("bij,nj->bni", rot.as_matrix(), x) + 7.0
    res = register_batch(y, x)
    assert np.abs(res.rotation - rot.as_matrix()).max() < 1e-11
    assert np.abs(res.translation - 7.0).max() < 1e-9
    assert np.abs(res.apply(x) - y).max() < 1e-9


def test_batch_planar_three_point_problems_use_fallback():
    x = np.array([[0.0, 0, 0], [90, 0, 0], [0, 60, 0]])
    rot = Rotation.random(50, random_state=2).as_matrix()
    y = np.einsum("bij,nj->bni", rot, x)
    res = register_batch(y, x)
    assert np.abs(res.rotation - rot).max() < 1e-10


def test_batch_bad_input_names_problems():
    y, x, _ = _problems(10)
    bad = y.copy()
    bad[4, 2, 1] = np.nan
    with pytest.raises(InputError, match=r"NaN or infinite fixed coordinates in problems \[4\]"):
        register_batch(bad, x)
    line = np.array(x)
    line[3] = np.outer(np.arange(6.0), [10, 5, 1])
    with pytest.raises(
        DegenerateConfiguration, match=r"moving points nearly collinear in problems \[3\].*0.01"
    ):
        register_batch(y, line)
    mir = np.array(y)
    mir[6] = x[6] * [1, -1, 1]
    with pytest.raises(DegenerateConfiguration, match=r"mirrored.*\[6\]"):
        register_batch(mir, x)
    with pytest.raises(InputError, match="mismatched counts"):
        register_batch(y[:, :5], x)
    with pytest.raises(InputError, match="batch sizes"):
        register_batch(y[:3], x[:4])
    with pytest.raises(DegenerateConfiguration, match="at least 3"):
        register_batch(y[:, :2], x[:, :2])
    far = np.array(x)
    far[5] *= 1e160
    with pytest.raises(
        InputError,
        match=r"moving coordinates of magnitude up to [\d.]+e\+16\d mm in problems \[5\]",
    ):
        register_batch(y, far)


def test_simulate_tre_is_reproducible_and_checks_input():
    x = head_layout(6)
    a = simulate_tre(x, x.mean(0), 1.0, trials=500, seed=4)
    b = simulate_tre(x, x.mean(0), 1.0, trials=500, seed=4, chunk=128)
    assert a.shape == (1,) and np.array_equal(a, b)
    # at the centroid the RMS TRE is FLE / sqrt(N) (Fitzpatrick 1998, eq. 46 with d_k = 0)
    assert simulate_tre(x, x.mean(0), 1.0, trials=20_000, seed=5)[0] == pytest.approx(
        1 / np.sqrt(6), rel=0.03
    )
    with pytest.raises(InputError, match="trials"):
        simulate_tre(x, x.mean(0), 1.0, trials=0)
    with pytest.raises(InputError, match="NaN"):
        simulate_tre(x, [np.nan, 0, 0], 1.0)
