from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.geometry import lps_to_ras


def _random_transform(seed: int, source="a", target="b", scale=1.0) -> mp.Transform:
    rng = np.random.default_rng(seed)
    return mp.Transform(
        Rotation.random(random_state=seed), rng.normal(0, 100, 3), scale, source, target
    )


def test_apply_matches_matrix():
    T = _random_transform(1, scale=1.3)
    p = np.random.default_rng(2).normal(size=(5, 4, 3)) * 100
    homog = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], axis=-1)
    expected = (homog @ T.matrix.T)[..., :3]
    np.testing.assert_allclose(T.apply(p), expected, atol=1e-9)
    assert T.apply(p).shape == p.shape


def test_known_rotation_about_z():
    T = mp.Transform(
        Rotation.from_euler("z", 90, degrees=True), [10, 0, 0], source="LPS", target="camera"
    )
    np.testing.assert_allclose(T.apply([1.0, 0.0, 0.0]), [10.0, 1.0, 0.0], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.2, 5.0))
def test_inverse_roundtrip(seed, scale):
    T = _random_transform(seed, scale=scale)
    p = np.random.default_rng(seed).normal(size=(7, 3)) * 50
    np.testing.assert_allclose(T.inverse().apply(T.apply(p)), p, atol=1e-8)
    assert T.inverse().source == "b" and T.inverse().target == "a"
    np.testing.assert_allclose((T.inverse() @ T).matrix, np.eye(4), atol=1e-9)


def test_composition_order_and_frames():
    a = _random_transform(3, "ct", "tracker")
    b = _random_transform(4, "tracker", "camera", scale=2.0)
    c = b @ a
    assert (c.source, c.target) == ("ct", "camera")
    p = np.random.default_rng(5).normal(size=(3, 3))
    np.testing.assert_allclose(c.apply(p), b.apply(a.apply(p)), atol=1e-9)
    np.testing.assert_allclose(c.matrix, b.matrix @ a.matrix, atol=1e-9)
    with pytest.raises(mp.FrameMismatch, match=r"'ct' is not 'camera'|is not"):
        a @ b


def test_apply_to_landmarks_checks_frame():
    T = _random_transform(6, "LPS", "camera")
    lm = mp.Landmarks(("a", "b"), [[0, 0, 0], [1, 2, 3]], frame="LPS")
    out = T.apply(lm)
    assert out.frame == "camera" and out.names == ("a", "b")
    with pytest.raises(mp.FrameMismatch, match="RAS"):
        T.apply(lm.with_frame("RAS"))
    with pytest.raises(mp.FrameMismatch):
        T.apply(np.zeros((1, 3)), frame="RAS")


def test_from_matrix_roundtrip_and_rejects_bad():
    T = _random_transform(7, scale=0.5)
    T2 = mp.Transform.from_matrix(T.matrix, "a", "b")
    assert T2.allclose(T)
    assert abs(T2.scale - 0.5) < 1e-12
    reflect = np.diag([-1.0, 1, 1, 1])
    with pytest.raises(mp.InputError, match="determinant"):
        mp.Transform.from_matrix(reflect)
    shear = np.eye(4)
    shear[0, 1] = 0.3
    with pytest.raises(mp.InputError, match=r"shear|scaled rotation"):
        mp.Transform.from_matrix(shear)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(mp.InputError, match="NaN"):
        mp.Transform.from_matrix(bad)
    with pytest.raises(mp.InputError, match="4x4"):
        mp.Transform.from_matrix(np.eye(3))


def test_bad_constructor_arguments():
    with pytest.raises(mp.InputError, match="scale"):
        mp.Transform(scale=0.0)
    with pytest.raises(mp.InputError, match="translation"):
        mp.Transform(translation=[1, 2])


def test_dict_roundtrip():
    T = _random_transform(8, "LPS", "camera")
    assert mp.Transform.from_dict(T.to_dict()).allclose(T)
    with pytest.raises(mp.InputError, match="matrix"):
        mp.Transform.from_dict({"source": "a", "target": "b"})


def test_lps_ras_flip_is_involution():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(lps_to_ras(p), [[-1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(lps_to_ras(lps_to_ras(p)), p)
