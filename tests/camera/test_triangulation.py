"""Triangulation, per-view left/right repair and their bad-input paths, on synthetic rigs with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import medpose.synthetic as syn
from medpose.camera.model import Camera
from medpose.camera.swaps import swap_assignments
from medpose.camera.triangulation import (
    ImageSizeWarning,
    dlt,
    reproject,
    triangulate,
    triangulate_points,
)
from medpose.data import KeypointSequence
from medpose.errors import DegenerateConfiguration, InputError
from medpose.kinematics.fk import forward_kinematics
from medpose.kinematics.skeleton import Skeleton
from medpose.layouts import get_layout, lr_pairs


def _views(rig, truth, **kw):
    return syn.project_to_cameras(rig, truth, **kw)


def test_dlt_is_exact_without_noise(rig):
    rng = np.random.default_rng(0)
    X = rng.uniform([-800, -800, 0], [800, 800, 1800], (500, 3))
    P = np.stack([c.projection_matrix for c in rig])
    px = np.stack([c.project(X, distort=False) for c in rig], axis=1)
    np.testing.assert_allclose(dlt(P, px), X, atol=1e-6)
    px[:10, 1:] = np.nan  # seen by one camera only
    assert np.isnan(dlt(P, px)[:10]).all()
    with pytest.raises(InputError, match=r"\(C, 3, 4\)"):
        dlt(P[:, :2], px)


def test_triangulate_recovers_truth_and_names(rig, truth):
    views = _views(rig, truth, pixel_sigma=0.0, occluded_confidence=0.9)
    res = triangulate(rig, views)
    seq = res.sequence
    assert seq.names == truth.names and seq.frame == "camera" and seq.rate == truth.rate
    ok = np.isfinite(seq.positions).all(-1)
    assert ok.mean() > 0.99
    np.testing.assert_allclose(seq.positions[ok], truth.positions[ok], atol=1e-6)
    assert np.nanmax(res.reprojection_error) < 1e-6
    assert res.errors.shape == truth.positions.shape[:2] + (4,)
    assert res.n_cameras.max() == 4 and res.camera_names == tuple(c.name for c in rig)
    assert (res.confidence[ok] > 0.5).all()
    assert res.swaps.empty


def test_triangulate_with_noise_and_an_outlier_camera(rig, truth):
    views = _views(rig, truth, pixel_sigma=1.0, occluded_confidence=0.9, seed=3)
    bad = views["cam02"].positions.copy()
    bad[:, truth.index("knee_r")] += 150.0  # cam02 is wrong about the right knee
    views["cam02"] = views["cam02"].with_positions(bad)
    res = triangulate(rig, views)
    err = np.linalg.norm(res.sequence.positions - truth.positions, axis=-1)
    assert np.nanmedian(err) < 5.0
    k = truth.index("knee_r")
    assert not res.used[:, k, 1].any()  # rejected in every frame
    assert np.nanmax(err[:, k]) < 15.0
    assert np.nanmin(res.errors[:, k, 1]) > 100.0  # reported against the camera that made it


def test_triangulate_points_batched_shapes(rig):
    X = np.array([[0.0, 0.0, 1000.0], [100.0, 50.0, 1500.0]])
    px = reproject(rig, X)  # (2, C, 2)
    pts, err, used = triangulate_points(rig, np.stack([px, px]))
    assert pts.shape == (2, 2, 3) and err.shape == (2, 2, 4) and used.shape == (2, 2, 4)
    np.testing.assert_allclose(pts[1], X, atol=1e-6)
    with pytest.raises(InputError, match="min_cameras"):
        triangulate_points(rig, px, min_cameras=5)


def test_swap_assignments():
    g = swap_assignments(4)
    assert len(g) == 8 and not g[0].any() and (g.sum(1) <= 2).all()
    assert lr_pairs(["knee_l", "knee_r", "nose", "hip_l"]) == [("knee_l", "knee_r")]


def test_injected_view_swaps_are_found_and_undone(rig, truth):
    views, report = _views(
        rig, truth, pixel_sigma=2.0, swap_rate=1.0, swap_len=4.0, seed=5, return_report=True
    )
    clean = _views(rig, truth, pixel_sigma=0.0)
    res = triangulate(rig, views)
    pairs = lr_pairs(truth.names)
    li = [truth.index(a) for a, _ in pairs]
    ri = [truth.index(b) for _, b in pairs]
    injected = fixed = 0
    for cam in res.camera_names:
        out = res.keypoints_2d[cam].positions
        ref = clean[cam].positions
        for run in report[cam]["swaps"]:
            for t in range(run["start"], run["stop"]):
                for a, b in zip(li, ri):
                    if not (np.isfinite(ref[t, a]).all() and np.isfinite(ref[t, b]).all()):
                        continue
                    injected += 1
                    # labelled as the truth again (the 2 px noise and the pair's separation decide)
                    fixed += np.linalg.norm(out[t, a] - ref[t, a]) < np.linalg.norm(
                        out[t, a] - ref[t, b]
                    )
    assert injected > 200
    assert fixed / injected >= 0.95, f"{fixed} of {injected} injected swaps undone"
    assert set(res.swaps["stage"]) <= {"view", "3d"} and (res.swaps["stage"] == "view").any()
    err = np.linalg.norm(res.sequence.positions - truth.positions, axis=-1)
    assert np.nanmedian(err) < 10.0


@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_clean_views_are_not_relabelled_into_ghosts(sigma):
    """Views without swaps, 4 cameras in two opposite pairs (``make_rig``): relabelling one
    opposite pair of views is a "ghost" that reprojects as well as the truth for a pair level
    across the body (shoulders, hips, ears) and lies 100-400 mm off in 3D.  The default
    triangulation keeps the labels (the as-labelled consensus explains every view) and no point
    lies farther from the truth than 10 x the pixel noise in mm at 3.5 m (1 px ~ 2.5 mm)."""
    rig = syn.make_rig(4, seed=0)
    ex = syn.make_exercise("squat", rate=30.0, repetitions=2, seed=1)
    names = get_layout("halpe26").medpose
    x = np.asarray(
        forward_kinematics(Skeleton.default(), np.array(ex.angles.values), keypoints=names)
    )
    truth = KeypointSequence(np.stack([x[..., 0], -x[..., 2], x[..., 1]], -1), names, 30.0)
    truth = KeypointSequence(truth.positions, names, 30.0, frame="camera")
    views = _views(rig, truth, pixel_sigma=sigma, seed=7)
    res = triangulate(rig, views)
    assert res.swaps.empty, res.swaps.groupby(["camera", "keypoint_l"]).size()
    err = np.linalg.norm(res.sequence.positions - truth.positions, axis=-1)
    assert np.isfinite(err).mean() > 0.99
    assert np.nanmax(err) < 25.0 * sigma, f"{np.nanmax(err):.0f} mm"


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def views(rig, truth):
    return _views(rig, truth, pixel_sigma=0.5, seed=1)


def test_camera_missing_from_calibration(rig, views):
    v = dict(views)
    v["cam09"] = v.pop("cam01")
    with pytest.raises(InputError, match=r"camera\(s\) \['cam09'\].*calibration has only"):
        triangulate(rig, v)


def test_frame_count_and_rate_mismatch(rig, views):
    v = dict(views)
    v["cam03"] = views["cam03"].slice(0, 10)
    with pytest.raises(InputError, match="camera 'cam03' has 10 frames"):
        triangulate(rig, v)
    s = views["cam02"]
    v = dict(views)
    v["cam02"] = KeypointSequence(
        s.positions, s.names, 25.0, confidence=s.confidence, frame=s.frame
    )
    with pytest.raises(InputError, match="camera 'cam02' is at 25 Hz"):
        triangulate(rig, v)


def test_all_nan_camera_and_missing_keypoint(rig, views):
    s = views["cam04"]
    v = dict(views)
    v["cam04"] = s.with_positions(np.full(s.positions.shape, np.nan))
    with pytest.raises(InputError, match="every keypoint of camera 'cam04' is NaN"):
        triangulate(rig, v)
    v = dict(views)
    v["cam04"] = s.select([n for n in s.names if n != "nose"])
    with pytest.raises(InputError, match=r"camera 'cam04' lacks keypoints \['nose'\]"):
        triangulate(rig, v)


def test_wrong_kind_of_keypoints(rig, views, truth):
    with pytest.raises(InputError, match="2D KeypointSequence"):
        triangulate(rig, {"cam01": truth, "cam02": views["cam02"]})
    with pytest.raises(InputError, match="at least 2"):
        triangulate(rig, {"cam01": views["cam01"]})


def test_image_size_warning_names_camera_and_amount(rig, views):
    with pytest.warns(
        ImageSizeWarning,
        match=r"camera 'cam01': images are 1912x1080 px .*1920x1080 px \(-8 px in width",
    ):
        triangulate(rig, views, image_sizes={"cam01": (1912, 1080)}, repair_swaps=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        triangulate(
            rig, views, image_sizes={"cam01": (1921, 1080)}, repair_swaps=False
        )  # within tolerance


def test_unseen_keypoint_warns_and_nothing_seen_raises(rig, views):
    v = {
        n: s.with_positions(
            np.where(np.arange(len(s.names))[None, :, None] == 0, np.nan, s.positions)
        )
        for n, s in views.items()
    }
    with pytest.warns(UserWarning, match=r"keypoints \['nose'\] were not seen"):
        res = triangulate(rig, v, repair_swaps=False)
    assert np.isnan(res.sequence.positions[:, 0]).all()
    v = {
        n: s.with_positions(s.positions, np.full(s.confidence.shape, 0.1)) for n, s in views.items()
    }
    with pytest.raises(DegenerateConfiguration, match="no keypoint was seen"):
        triangulate(rig, v)


def test_camera_objects_are_used_by_name(rig, views):
    subset = {n: views[n] for n in ("cam03", "cam01")}
    res = triangulate({c.name: c for c in rig}, subset, repair_swaps=False)
    assert res.camera_names == ("cam03", "cam01")
    assert isinstance(rig[0], Camera)
