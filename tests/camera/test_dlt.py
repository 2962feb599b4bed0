"""The batched DLT and consensus of medpose.camera.dlt against straightforward references
computed here point by point (SVD of the DLT matrix, camera subsets enumerated in Python)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest

import medpose.camera.dlt as dlt_module
import medpose.synthetic as syn
from medpose.camera.dlt import consensus, smallest_eigvec, triangulate_points
from medpose.camera.swaps import view_swap_consensus
from medpose.camera.triangulation import triangulate
from medpose.errors import InputError
from medpose.io.calibration import read_calibration
from medpose.io.openpose import read_openpose
from medpose.layouts import lr_pairs


# ----------------------------------------------------------------------------- eigenvectors
def _eigh_reference(M: np.ndarray) -> np.ndarray:
    _, v = np.linalg.eigh(M)
    return v[..., :3, 0] / v[..., 3:, 0]


def test_smallest_eigvec_agrees_with_eigh_on_random_matrices():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5000, 8, 4))
    M = np.einsum("nij,nik->njk", A, A)
    np.testing.assert_allclose(smallest_eigvec(M), _eigh_reference(M), rtol=1e-8, atol=1e-8)


def test_smallest_eigvec_on_nearly_singular_dlt_systems():
    """DLT systems of consistent observations: A X = 0 up to tiny noise; the eigenvector is X."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.uniform(-1, 1, (4000, 3)), np.ones((4000, 1))], axis=1)
    A = rng.normal(size=(4000, 6, 4))
    A -= np.einsum("nij,nj->ni", A, X)[..., None] * X[:, None, :] / (X * X).sum(1)[:, None, None]
    M0 = np.einsum("nij,nik->njk", A, A)
    np.testing.assert_allclose(smallest_eigvec(M0), X[:, :3], atol=1e-9)
    A += 1e-4 * rng.normal(size=A.shape)
    M = np.einsum("nij,nik->njk", A, A)
    np.testing.assert_allclose(smallest_eigvec(M), _eigh_reference(M), atol=1e-8)
    assert smallest_eigvec(M.reshape(40, 100, 4, 4)).shape == (40, 100, 3)


def test_smallest_eigvec_bad_shape():
    with pytest.raises(InputError, match=r"\(\.\.\., 4, 4\), found \(2, 3, 3\)"):
        smallest_eigvec(np.zeros((2, 3, 3)))


# ----------------------------------------------------------------------------- consensus
def _reference_consensus(cams, px, cf, min_confidence=0.3, threshold_px=20.0, min_cameras=2):
    """The documented rule, one point at a time: weighted DLT (SVD) of every camera subset
    whose observations are all valid; the largest subset whose cameras all reproject within
    the threshold (ties: the smaller mean error), else the smallest worst error; a solution
    behind one of its own cameras is no solution."""
    n_c = len(cams)
    origin = np.mean([c.center for c in cams], axis=0)
    scale = np.mean([np.linalg.norm(c.center - origin) for c in cams])
    # normalised-coordinate projections in a world centred on the cameras, scaled to unit size
    P = [
        np.hstack(
            [c.rotation_matrix, ((c.rotation_matrix @ origin + c.translation) / scale)[:, None]]
        )
        for c in cams
    ]
    out_X = np.full((len(px), 3), np.nan)
    out_E = np.full((len(px), n_c), np.nan)
    out_U = np.zeros((len(px), n_c), dtype=bool)
    for i in range(len(px)):
        valid = [np.isfinite(px[i, c]).all() and cf[i, c] >= min_confidence for c in range(n_c)]
        xn = [c.undistort_points(px[i, k]) if valid[k] else None for k, c in enumerate(cams)]
        best = None
        for r in range(min_cameras, n_c + 1):
            for sub in itertools.combinations(range(n_c), r):
                if not all(valid[c] for c in sub):
                    continue
                rows = []
                for c in sub:
                    x, y = xn[c]
                    rows += [cf[i, c] * (x * P[c][2] - P[c][0]), cf[i, c] * (y * P[c][2] - P[c][1])]
                h = np.linalg.svd(np.array(rows))[2][-1]
                X = h[:3] / h[3] * scale + origin
                err = np.array([np.linalg.norm(cams[c].project(X) - px[i, c]) for c in range(n_c)])
                own = np.nan_to_num(err[list(sub)], nan=np.inf)  # NaN: behind the camera
                worst, mean = own.max(), own.mean()
                if not np.isfinite(worst):  # not a solution in front of its own cameras
                    continue
                key = (0, -r, mean) if worst < threshold_px else (1, worst, 0.0)
                if best is None or key < best[0]:
                    best = (key, X, err, sub)
        if best is not None:
            _, out_X[i], err, sub = best
            out_E[i] = np.where(np.isfinite(px[i]).all(-1), err, np.nan)
            out_U[i, list(sub)] = True
    return out_X, out_E, out_U


@pytest.fixture(scope="module")
def outlier_points(rig):
    """Points seen by a distorted 4-camera rig with 1 px noise, gross outliers (40-300 px) in
    a quarter of the observations, missing and low-confidence views."""
    rng = np.random.default_rng(7)
    X = rng.uniform([-700, -700, 100], [700, 700, 1700], (300, 3))
    px = np.stack([c.project(X) for c in rig], 1) + rng.normal(0, 1.0, (300, len(rig), 2))
    out = rng.random((300, len(rig))) < 0.25
    px[out] += rng.uniform(40, 300, (int(out.sum()), 2)) * rng.choice([-1, 1], (int(out.sum()), 2))
    px[rng.random((300, len(rig))) < 0.05] = np.nan
    cf = rng.uniform(0.2, 1.0, (300, len(rig)))
    return px, cf


def test_consensus_agrees_with_a_point_by_point_reference(rig, outlier_points):
    px, cf = outlier_points
    X, E, U = triangulate_points(rig, px, cf)
    Xr, Er, Ur = _reference_consensus(rig, px, cf)
    np.testing.assert_array_equal(U, Ur)
    np.testing.assert_allclose(X, Xr, atol=1e-6)
    np.testing.assert_allclose(E, Er, atol=1e-6)
    assert 0.1 < (U.sum(1) < 4).mean() < 0.9  # the outliers did make it choose


def test_consensus_of_mixes_is_the_consensus_of_each_mix(rig, outlier_points):
    """Two labels per camera and every mix at once equal each mix triangulated on its own."""
    px, cf = outlier_points
    rig_ = dlt_module.Rig.build(rig, 2)
    two_px = np.stack([px[:150], px[150:]], axis=1)  # (150, 2, C, 2)
    two_cf = np.stack([cf[:150], cf[150:]], axis=1)
    mixes = np.array(list(itertools.product([0, 1], repeat=len(rig))))
    X, E, U = consensus(rig_, two_px, two_cf, mixes=mixes)
    cams = np.arange(len(rig))
    for m, mix in enumerate(mixes):
        Xm, Em, Um = triangulate_points(rig, two_px[:, mix, cams], two_cf[:, mix, cams])
        np.testing.assert_array_equal(U[:, m], Um)
        np.testing.assert_allclose(X[:, m], Xm, atol=1e-6)
        np.testing.assert_allclose(E[:, m], Em, atol=1e-6)


def test_view_swap_consensus_is_the_consensus_of_the_repaired_views(rig, truth):
    views = syn.project_to_cameras(rig, truth, pixel_sigma=1.0, occluded_confidence=0.9, seed=2)
    p = views["cam03"].positions.copy()
    for a, b in lr_pairs(truth.names):
        p[3:9, [truth.index(a), truth.index(b)]] = p[3:9, [truth.index(b), truth.index(a)]]
    views["cam03"] = views["cam03"].with_positions(p)
    r = view_swap_consensus(rig, views)
    assert (r.report["camera"] == "cam03").any()
    names = [c.name for c in rig]
    px = np.stack([r.keypoints_2d[n].positions for n in names], axis=2)
    cf = np.stack([r.keypoints_2d[n].confidence for n in names], axis=2)
    X, E, U = triangulate_points(rig, px, cf)
    k = r.solved
    assert k.sum() == 2 * len(lr_pairs(truth.names))
    np.testing.assert_array_equal(r.used[:, k], U[:, k])
    np.testing.assert_allclose(r.points[:, k], X[:, k], atol=1e-6)
    np.testing.assert_allclose(r.errors[:, k], E[:, k], atol=1e-6)


def test_real_recording_consensus_agrees_with_the_reference(shared_data):
    """On 5 frames of the real four-camera recording (distortion, real outliers)."""
    root = shared_data / "pose2sim"
    cams = read_calibration(root / "Calib_qualisys.toml")
    kp = [read_openpose(root / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0) for c in cams]
    px = np.stack([s.positions[40:45] for s in kp], axis=2).reshape(-1, len(cams), 2)
    cf = np.stack([s.confidence[40:45] for s in kp], axis=2).reshape(-1, len(cams))
    X, E, U = triangulate_points(cams, px, cf)
    Xr, Er, Ur = _reference_consensus(cams, px, cf)
    np.testing.assert_array_equal(U, Ur)
    np.testing.assert_allclose(X, Xr, atol=1e-4)
    np.testing.assert_allclose(E, Er, atol=1e-4)


def test_progress_bar_only_when_asked_or_long(rig, truth, capsys, monkeypatch):
    views = syn.project_to_cameras(rig, truth, pixel_sigma=1.0, occluded_confidence=0.9, seed=2)
    monkeypatch.setattr(dlt_module, "BLOCK", 2000)  # several blocks on this short sequence
    triangulate(rig, views)
    assert "left/right per view" not in capsys.readouterr().err
    triangulate(rig, views, progress=True)
    assert "left/right per view" in capsys.readouterr().err
    triangulate(rig, views, progress=False, temporal=False)
    assert "triangulating" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- structure
def test_camera_modules_import_at_the_top_and_no_private_names():
    """Every import of medpose.camera sits at its module's top; none takes a private name from
    another medpose module."""
    root = Path(dlt_module.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
                assert not inner, f"{path.name}: import inside {node.name}()"
            if isinstance(node, ast.ImportFrom) and (
                node.level or "medpose" in (node.module or "")
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name}: imports private {private} from {node.module}"


def test_rig_projection_is_the_camera_model(rig):
    """Rig.project (coordinate arrays, conditioned world) agrees with Camera.project."""
    rng = np.random.default_rng(3)
    X = rng.uniform([-900, -900, 0], [900, 900, 1900], (50, 4, 3))
    expected = np.stack([c.project(X) for c in rig], axis=-2)
    np.testing.assert_allclose(dlt_module.Rig.build(rig).project(X), expected, atol=1e-9)
