"""Temporally consistent triangulation (medpose.camera.tracking) on synthetic rigs with known truth."""

from __future__ import annotations

import numpy as np
import pytest

import medpose.synthetic as syn
from medpose.camera.dlt import reproject
from medpose.camera.tracking import _viterbi, refine_points, track_points
from medpose.camera.triangulation import triangulate
from medpose.errors import InputError
from medpose.layouts import lr_pairs
from medpose.temporal import DEFAULT_BONES


def _stack(rig, views):
    px = np.stack([views[c.name].positions for c in rig], 2)
    cf = np.stack([views[c.name].confidence for c in rig], 2)
    return px, cf


def test_viterbi_prefers_the_continuous_path():
    # one chain, two candidates per frame: 0 sits still at the origin, 1 jumps out and back;
    # the jump is cheaper in the image in frame 2 only, by less than the motion it costs
    X = np.zeros((5, 1, 2, 1, 3))
    X[:, 0, 1, 0] = [500.0, 0, 0]
    cost = np.array([[0.0, 9.0], [0.0, 9.0], [5.0, 0.0], [0.0, 9.0], [0.0, 9.0]])[:, None, :]
    assert (_viterbi(X, cost, motion_weight=0.1)[:, 0] == 0).all()
    assert _viterbi(X, cost, motion_weight=0.0)[2, 0] == 1  # no motion cost: frame by frame


def test_track_points_recovers_truth_without_noise(rig, truth):
    px, cf = _stack(
        rig, syn.project_to_cameras(rig, truth, pixel_sigma=0.0, occluded_confidence=0.9)
    )
    r = track_points(rig, px, cf, truth.names, bones=DEFAULT_BONES)
    ok = np.isfinite(truth.positions).all(-1)
    err = np.linalg.norm(r.points - truth.positions, axis=-1)[ok]
    assert np.nanmax(err) < 1e-3 and not r.swapped.any() and r.explained[ok].all()


@pytest.mark.filterwarnings(
    "ignore::medpose.camera.triangulation.ImageSizeWarning"
)  # wild points leave the image
def test_injected_swaps_and_outliers_are_undone(rig, truth):
    """Through ``triangulate(temporal=True)``: the per-view repair (whole body first, which
    decides the face pairs too close to decide alone) and then the tracking."""
    views, report = syn.project_to_cameras(
        rig, truth, pixel_sigma=2.0, swap_rate=1.0, swap_len=4.0, seed=5, return_report=True
    )
    clean = syn.project_to_cameras(rig, truth, pixel_sigma=0.0)
    rng = np.random.default_rng(3)
    bad = {}
    for cam in rig:  # 3% wild detections
        p = views[cam.name].positions
        bad[cam.name] = rng.random(p.shape[:2]) < 0.03
        wild = p + rng.uniform(150, 300, p.shape) * rng.choice([-1, 1], p.shape)
        views[cam.name] = views[cam.name].with_positions(
            np.where(bad[cam.name][..., None], wild, p)
        )
    res = triangulate(rig, views, temporal=True)
    names = truth.names
    injected = undone = 0
    for cam in rig:
        out, ref = res.keypoints_2d[cam.name].positions, clean[cam.name].positions
        for run in report[cam.name]["swaps"]:
            for t in range(run["start"], run["stop"]):
                for a, b in lr_pairs(names):
                    ka, kb = names.index(a), names.index(b)
                    if (
                        bad[cam.name][t, ka]
                        or bad[cam.name][t, kb]
                        or not np.isfinite(ref[t, [ka, kb]]).all()
                    ):
                        continue  # a wild detection has no side
                    injected += 1
                    undone += np.linalg.norm(out[t, ka] - ref[t, ka]) < np.linalg.norm(
                        out[t, ka] - ref[t, kb]
                    )
    assert injected > 1000 and undone / injected >= 0.95, f"{undone} of {injected}"
    err = np.linalg.norm(res.sequence.positions - truth.positions, axis=-1)
    assert (
        np.nanmedian(err) < 8.0 and np.nanpercentile(err, 99) < 40.0
    )  # 2 px noise alone gives ~6 mm


def test_triangulate_temporal_mode(rig, truth):
    views = syn.project_to_cameras(rig, truth, pixel_sigma=1.0, swap_rate=1.0, swap_len=4.0, seed=2)
    res = triangulate(rig, views, temporal=True)
    assert res.sequence.names == truth.names and res.sequence.frame == "camera"
    assert set(res.swaps["stage"]) <= {"view", "temporal"}
    err = np.linalg.norm(res.sequence.positions - truth.positions, axis=-1)
    assert np.nanmedian(err) < 4.0
    tab = res.error_table()
    assert tab["error_px"].median() < 2.5  # 1 px noise per axis


def test_refine_points_reduces_the_reprojection_error(rig):
    rng = np.random.default_rng(0)
    X = rng.uniform([-500, -500, 200], [500, 500, 1600], (200, 3))
    px = np.stack([c.project(X) for c in rig], 1) + rng.normal(0, 2.0, (200, len(rig), 2))
    start = X + rng.normal(0, 20.0, X.shape)
    w = np.ones((200, len(rig)))
    out = refine_points(rig, start, px, w)
    e0 = np.linalg.norm(reproject(rig, start) - px, axis=-1).mean()
    e1 = np.linalg.norm(reproject(rig, out) - px, axis=-1).mean()
    assert e1 < 3.0 < e0 and np.linalg.norm(out - X, axis=-1).mean() < 8.0  # 2 px noise: ~5 mm
    w[:5, 1:] = 0  # one camera: left as given
    np.testing.assert_array_equal(refine_points(rig, start, px, w)[:5], start[:5])


def test_track_points_bad_input(rig, truth):
    px = np.zeros((3, 2, len(rig), 2))
    cf = np.ones((3, 2, len(rig)))
    with pytest.raises(
        InputError, match=r"expected pixels \(T, K, 4, 2\).*found \(3, 2, 4, 2\), \(3, 2, 4\) and 3"
    ):
        track_points(rig, px, cf, ["a", "b", "c"])
    with pytest.raises(InputError, match=r"motion_weight.*-1"):
        track_points(rig, px, cf, ["a", "b"], motion_weight=-1)
    with pytest.raises(InputError, match=r"\['knee_x'\]"):
        track_points(rig, px, cf, ["a", "b"], bones=[("a", "knee_x")])
