"""The helpers of ``benchmarks/calibration.py`` that its real-data tables rest on.

- ``fitted_reprojection``: the fitted keypoints' pixel errors are measured on exactly the
  observations (and with the projection) of the triangulated points' own errors;
- ``uiprmd_reference``: the knee angle derived from UI-PRMD's angles files is the three-point
  angle of the reconstructed joints (the claim the benchmark's text makes).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import medpose as mp

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # for its ``_common``
    try:
        spec = importlib.util.spec_from_file_location("bench_calibration", BENCH / "calibration.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


def _fake_triangulation(cams, X, names, rng):
    """A TriangulationResult-like record: detections = projections of X + noise."""
    T, K = X.shape[:2]
    kp2d, errs = {}, []
    for c in cams:
        uv = c.project(X) + rng.normal(0, 3.0, (T, K, 2))
        conf = rng.uniform(0.2, 1.0, (T, K))
        kp2d[c.name] = SimpleNamespace(positions=uv, confidence=conf)
        errs.append(np.linalg.norm(c.project(X) - uv, axis=-1))
    E = np.stack(errs, axis=-1)
    E[0, 0, :] = np.nan  # a keypoint without a triangulated point
    seq = SimpleNamespace(names=tuple(names))
    cam_names = tuple(c.name for c in cams)[::-1]  # another order than the cameras'
    E = E[..., ::-1]
    return SimpleNamespace(sequence=seq, camera_names=cam_names, keypoints_2d=kp2d, errors=E)


def test_fitted_reprojection_uses_the_triangulated_points_observations(bench, shared_data):
    cams = mp.read_calibration(shared_data / "pose2sim" / "Calib_qualisys.toml")
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    centre = np.array([0.0, 0.0, 1000.0])  # mm, inside the capture volume
    X = centre + rng.normal(0, 300.0, (5, 3, 3))
    tri = _fake_triangulation(cams, X, names, rng)
    conf = np.stack([tri.keypoints_2d[n].confidence for n in tri.camera_names], axis=-1)
    n_expected = int(((conf >= 0.5) & np.isfinite(tri.errors)).sum())

    # the fitted keypoints are the triangulated points, named in another order, one extra
    fit_names = ["c", "extra", "a", "b"]
    fitted = np.stack([X[:, 2], X[:, 0] + 1e4, X[:, 0], X[:, 1]], axis=1)
    e_fit, e_tri = bench.fitted_reprojection(cams, fitted, fit_names, tri)
    assert len(e_fit) == len(e_tri) == n_expected
    np.testing.assert_allclose(e_fit, e_tri, atol=1e-9)

    # moved fitted keypoints are measured against the same detections
    e_moved, e_tri2 = bench.fitted_reprojection(cams, fitted + [100.0, 0.0, 0.0], fit_names, tri)
    np.testing.assert_array_equal(e_tri2, e_tri)
    assert np.median(e_moved) > np.median(e_tri) + 5.0


def test_uiprmd_knee_from_the_angles_files_is_the_three_point_angle(bench, shared_data):
    path = shared_data / "ui-prmd" / "kinect" / "correct" / "positions"
    ref = bench.uiprmd_reference(path / "m01_s01_e01_positions.txt.gz")
    for side in "lr":
        np.testing.assert_allclose(
            ref[f"knee|data|{side}"], ref[f"knee|3pt|{side}"], atol=1e-3
        )  # the files round
        assert 100.0 < ref[f"knee|data|{side}"].max() < 160.0  # a deep squat
    ref = bench.uiprmd_reference(path / "m07_s01_e01_positions.txt.gz")
    moved = max("lr", key=lambda s: np.ptp(ref[f"elevation|data|{s}"]))
    assert ref[f"elevation|data|{moved}"].max() > 120.0  # the arm raised above the shoulder
