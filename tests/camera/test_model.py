from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from medpose.camera import Camera
from medpose.errors import InputError

K = [[800.0, 0.0, 320.0], [0.0, 820.0, 240.0], [0.0, 0.0, 1.0]]


def _opencv_reference(cam: Camera, X: np.ndarray) -> np.ndarray:
    """cv::projectPoints written out point by point from the OpenCV calib3d documentation:

    x' = x/z, y' = y/z, r^2 = x'^2 + y'^2
    x'' = x' (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6) + 2 p1 x'y' + p2 (r^2 + 2 x'^2)
    y'' = y' (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6) + p1 (r^2 + 2 y'^2) + 2 p2 x'y'
    u = fx x'' + cx, v = fy y'' + cy
    """
    d = list(cam.distortion) + [0.0] * (8 - len(cam.distortion))
    k1, k2, p1, p2, k3, k4, k5, k6 = d
    R = Rotation.from_rotvec(np.array(cam.rotation)).as_matrix()  # scipy refuses read-only arrays
    out = []
    for p in X:
        x, y, z = R @ p + cam.translation
        xp, yp = x / z, y / z
        r2 = xp**2 + yp**2
        num = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        den = 1 + k4 * r2 + k5 * r2**2 + k6 * r2**3
        xpp = xp * num / den + 2 * p1 * xp * yp + p2 * (r2 + 2 * xp**2)
        ypp = yp * num / den + p1 * (r2 + 2 * yp**2) + 2 * p2 * xp * yp
        out.append(
            [cam.matrix[0, 0] * xpp + cam.matrix[0, 2], cam.matrix[1, 1] * ypp + cam.matrix[1, 2]]
        )
    return np.array(out)


def _points(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(-600, 600, n), rng.uniform(-400, 400, n), rng.uniform(1500, 3000, n)]
    )


def test_pinhole_projection_hand_computed():
    cam = Camera("c", (640, 480), K)
    # u = 800 * 100/2000 + 320 = 360 ; v = 820 * -50/2000 + 240 = 219.5
    np.testing.assert_allclose(cam.project([100.0, -50.0, 2000.0]), [360.0, 219.5], atol=1e-12)


def test_rotation_convention_is_rodrigues_world_to_camera():
    # 90 degrees about y: (x, y, z) -> (z, y, -x); X = (-1000, 50, 100) -> camera (100, 50, 1000) + t
    cam = Camera("c", (640, 480), K, rotation=[0, np.pi / 2, 0], translation=[0, 0, 1000])
    X = np.array([-1000.0, 50.0, 100.0])
    xc = Rotation.from_rotvec([0, np.pi / 2, 0]).apply(X) + [0, 0, 1000]
    np.testing.assert_allclose(xc, [100, 50, 2000], atol=1e-9)
    np.testing.assert_allclose(cam.world_to_camera().apply(X), xc, atol=1e-9)
    np.testing.assert_allclose(
        cam.project(X), [800 * 100 / 2000 + 320, 820 * 50 / 2000 + 240], atol=1e-9
    )
    np.testing.assert_allclose(
        cam.rotation_matrix, Rotation.from_rotvec([0, np.pi / 2, 0]).as_matrix()
    )


@pytest.mark.parametrize(
    "dist",
    [
        [-0.2, 0.05, 0.001, -0.002],
        [-0.2, 0.05, 0.001, -0.002, 0.01],
        [0.1, -0.03, 0.0005, 0.001, 0.002, 0.05, -0.01, 0.003],
    ],
)
def test_distortion_matches_opencv_formula(dist):
    cam = Camera("c", (640, 480), K, dist, rotation=[0.1, -0.2, 0.05], translation=[20, -30, 100])
    X = _points()
    np.testing.assert_allclose(cam.project(X), _opencv_reference(cam, X), atol=1e-9)


def test_project_is_batched_and_keeps_shape():
    cam = Camera("c", (640, 480), K, [-0.1, 0.01, 0, 0])
    X = _points(24).reshape(2, 3, 4, 3)
    px = cam.project(X)
    assert px.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(px.reshape(-1, 2), cam.project(X.reshape(-1, 3)))


def test_points_behind_camera_and_nan_give_nan():
    cam = Camera("c", (640, 480), K)
    px = cam.project([[0, 0, -1000.0], [0, 0, 0.0], [np.nan, 0, 1000], [0, 0, 1000.0]])
    assert np.all(np.isnan(px[:3]))
    np.testing.assert_allclose(px[3], [320, 240])


def test_skew_is_applied():
    cam = Camera("c", (640, 480), [[800, 5, 320], [0, 820, 240], [0, 0, 1]])
    np.testing.assert_allclose(cam.project([100.0, -50.0, 2000.0]), [360 + 5 * -0.025, 219.5])
    np.testing.assert_allclose(
        cam.undistort_points(cam.project([100.0, -50.0, 2000.0])), [0.05, -0.025]
    )


@pytest.mark.parametrize(
    "dist",
    [[-0.2, 0.05, 0.001, -0.002, 0.01], [0.1, -0.03, 0.0005, 0.001, 0.002, 0.05, -0.01, 0.003]],
)
def test_undistort_inverts_project(dist):
    cam = Camera("c", (640, 480), K, dist, rotation=[0.1, -0.2, 0.05], translation=[20, -30, 100])
    X = _points()
    xc = cam.world_to_camera().apply(X)
    normalised = cam.undistort_points(cam.project(X))
    np.testing.assert_allclose(normalised, xc[:, :2] / xc[:, 2:], atol=1e-10)
    np.testing.assert_allclose(
        cam.undistort_points(cam.project(X), normalized=False),
        cam.project(X, distort=False),
        atol=1e-6,
    )


@settings(max_examples=40, deadline=None)
@given(
    k1=st.floats(-0.3, 0.3),
    k2=st.floats(-0.1, 0.1),
    p1=st.floats(-0.005, 0.005),
    p2=st.floats(-0.005, 0.005),
    u=st.floats(0, 640),
    v=st.floats(0, 480),
)
def test_project_undistort_roundtrip_property(k1, k2, p1, p2, u, v):
    """For pixels inside the image, undistort then re-distort returns the pixel (iteration converged)."""
    cam = Camera("c", (640, 480), K, [k1, k2, p1, p2])
    xy = cam.undistort_points([u, v])
    back = cam.project(np.append(xy, 1.0))
    np.testing.assert_allclose(back, [u, v], atol=1e-6)


def test_center_and_projection_matrix():
    cam = Camera("c", (640, 480), K, rotation=[0.3, -0.4, 1.2], translation=[150, -80, 2500])
    np.testing.assert_allclose(cam.world_to_camera().apply(cam.center), 0, atol=1e-9)
    np.testing.assert_allclose(cam.center, cam.world_to_camera().inverse().translation, atol=1e-9)
    X = _points(10)
    h = np.column_stack([X, np.ones(len(X))]) @ cam.projection_matrix.T
    np.testing.assert_allclose(h[:, :2] / h[:, 2:], cam.project(X, distort=False), atol=1e-9)
    assert cam.projection_matrix.shape == (3, 4)


def test_world_to_camera_frames():
    T = Camera("cam07", (640, 480), K, world="lab").world_to_camera()
    assert (T.source, T.target) == ("lab", "cam07")
    assert Camera("cam07", (640, 480), K).world_to_camera().source == "camera"


def test_arrays_are_readonly_float64():
    cam = Camera("c", [640.0, 480.0], np.array(K, dtype=np.float32), [0, 0, 0, 0])
    assert cam.size == (640, 480) and isinstance(cam.size[0], int)
    assert cam.matrix.dtype == np.float64 and not cam.matrix.flags.writeable
    with pytest.raises(ValueError):
        cam.translation[0] = 1.0


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"matrix": [[800, 0, 320], [0, 820, 240]]}, "matrix must be 3x3"),
        ({"matrix": [[800, 0, 320], [0, np.nan, 240], [0, 0, 1]]}, "matrix contains NaN"),
        ({"matrix": [[800, 0, 320], [3, 820, 240], [0, 0, 1]]}, "upper-triangular"),
        ({"matrix": [[800, 0, 320], [0, 820, 240], [0, 0, 2]]}, "K[2,2] = 1"),
        ({"matrix": [[-800, 0, 320], [0, 820, 240], [0, 0, 1]]}, "focal lengths must be positive"),
        ({"distortion": [0.1, 0.2, 0.3]}, "4, 5 or 8 coefficients"),
        ({"distortion": [0.1, 0.2, 0.3, 0.0, 0.0, 0.0]}, "found 6"),
        ({"distortion": [0.1, np.inf, 0, 0]}, "distortion contains NaN"),
        ({"size": (0, 480)}, "size must be two positive integers"),
        ({"size": (640.5, 480)}, "size must be two positive integers"),
        ({"size": (640,)}, "size must be two positive integers"),
        ({"rotation": [0, 0]}, "rotation must have 3 values"),
        ({"translation": [0, np.nan, 0]}, "translation contains NaN"),
        ({"matrix": "abc"}, "matrix: expected numbers"),
    ],
)
def test_bad_camera_parameters(kwargs, expected):
    args = {"name": "camA", "size": (640, 480), "matrix": K} | kwargs
    with pytest.raises(InputError) as e:
        Camera(**args)
    assert expected in str(e.value)
    assert "camA" in str(e.value)


def test_bad_name_and_bad_points():
    with pytest.raises(InputError, match="name must be a non-empty string"):
        Camera("", (640, 480), K)
    cam = Camera("c", (640, 480), K)
    with pytest.raises(InputError, match=r"shape \(\.\.\., 3\)"):
        cam.project([1.0, 2.0])
    with pytest.raises(InputError, match=r"shape \(\.\.\., 2\)"):
        cam.undistort_points([1.0, 2.0, 3.0])


def test_allclose_and_repr():
    a = Camera("c", (640, 480), K, translation=[1, 2, 3])
    assert a.allclose(Camera("c", (640, 480), K, translation=[1, 2, 3 + 1e-12]))
    assert not a.allclose(Camera("c", (640, 480), K, translation=[1, 2, 4]))
    assert "640x480" in repr(a)
