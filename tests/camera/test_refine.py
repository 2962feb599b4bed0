"""Calibration refinement (medpose.camera.refine) on a synthetic rig with known truth."""

from __future__ import annotations

import numpy as np
import pytest

import medpose.synthetic as syn
from medpose.camera.refine import apply_corrections, refine_calibration
from medpose.camera.triangulation import triangulate
from medpose.data import KeypointSequence
from medpose.errors import DegenerateConfiguration, InputError

SHIFT = (6.0, -4.0)  # px added to cam02's principal point in the "wrong" calibration


@pytest.fixture(scope="module")
def truth(truth):
    return truth.slice(0, 40)  # 40 frames at 15 Hz


@pytest.fixture(scope="module")
def views(rig, truth):
    return syn.project_to_cameras(rig, truth, pixel_sigma=1.0, seed=1)


@pytest.fixture(scope="module")
def wrong(rig):
    return [apply_corrections(c, principal_point_px=SHIFT) if c.name == "cam02" else c for c in rig]


def test_apply_corrections_known_effects(rig):
    cam = rig[0]
    same = apply_corrections(cam)
    assert same.allclose(cam, atol=1e-12)
    X = np.array([[100.0, -200.0, 900.0], [0.0, 300.0, 1500.0]])
    moved = apply_corrections(cam, principal_point_px=(3.0, -2.0)).project(X)
    np.testing.assert_allclose(
        moved - cam.project(X), [[3.0, -2.0]] * 2, atol=1e-9
    )  # exactly a shift
    turned = apply_corrections(cam, rotation_deg=(0.3, -0.2, 1.0))
    np.testing.assert_allclose(turned.center, cam.center, atol=1e-9)  # about the centre
    assert not np.allclose(turned.project(X), cam.project(X))
    # a rotation about the optical axis turns the undistorted image about the principal point
    roll = apply_corrections(cam, rotation_deg=(0.0, 0.0, 90.0))
    pp = cam.matrix[:2, 2]
    a = cam.project(X, distort=False) - pp
    b = roll.project(X, distort=False) - pp
    np.testing.assert_allclose(b, np.stack([-a[:, 1], a[:, 0]], 1), atol=1e-6)
    big = apply_corrections(cam, focal_scale=1.01)
    np.testing.assert_allclose(big.matrix[0, 0], 1.01 * cam.matrix[0, 0])
    np.testing.assert_allclose(big.matrix[:2, 2], cam.matrix[:2, 2])


def test_a_shifted_principal_point_is_recovered(rig, wrong, views, truth):
    """The other cameras fixed (they define the world): cam02's shift comes back exactly."""
    out, table = refine_calibration(
        wrong, views, fixed=("cam01", "cam03", "cam04"), rounds=1, temporal=False
    )
    row = table.set_index("camera").loc["cam02"]
    assert row["dcx_px"] == pytest.approx(-SHIFT[0], abs=0.3) and row["dcy_px"] == pytest.approx(
        -SHIFT[1], abs=0.3
    )
    np.testing.assert_allclose(out[1].matrix, rig[1].matrix, atol=0.3)
    assert table.set_index("camera").loc[["cam01", "cam03", "cam04"], "fixed"].all()
    assert [c.name for c in out] == ["cam01", "cam02", "cam03", "cam04"] and out[0] is wrong[0]
    assert (
        row["median_error_before_px"] > 1.5 and row["median_error_after_px"] < 0.7
    )  # 1 px noise per axis
    err = {
        tag: np.nanmedian(
            np.linalg.norm(triangulate(c, views).sequence.positions - truth.positions, axis=-1)
        )
        for tag, c in (("wrong", wrong), ("refined", out), ("true", rig))
    }
    assert err["wrong"] > 6.0 and err["refined"] < err["true"] + 0.3


def test_default_gauge_keeps_the_world_and_explains_the_images(wrong, views):
    """No camera fixed: the mean of the points stays where the first triangulation put it,
    so cam02's error is shared among the cameras, yet the images are explained to noise level."""
    out, table = refine_calibration(wrong, views, rounds=1, temporal=False)
    assert not table["fixed"].any() and (table["median_error_after_px"] < 0.7).all()
    before, after = triangulate(wrong, views), triangulate(out, views)
    assert (
        after.error_table()["error_px"].median()
        < 0.7
        < 1.2
        < before.error_table()["error_px"].median()
    )
    centre = lambda r: np.nanmean(r.sequence.positions.reshape(-1, 3), axis=0)  # noqa: E731
    assert np.linalg.norm(centre(after) - centre(before)) < 1.0  # mm
    t = table.set_index("camera")
    assert t.loc["cam02", "dcx_px"] < -2.0 and t.loc["cam02", "dcy_px"] > 2.0  # the largest share
    assert np.hypot(t["dcx_px"], t["dcy_px"]).idxmax() == "cam02"


def test_refine_bad_input(rig, views):
    with pytest.raises(
        InputError,
        match=r"params must be distinct names among .*'principal_point'.*found \['skew'\]",
    ):
        refine_calibration(rig, views, params=["skew"])
    with pytest.raises(InputError, match=r"fixed camera\(s\) \['cam09'\] have no keypoints"):
        refine_calibration(rig, views, fixed=("cam09",))
    with pytest.raises(InputError, match="f_scale_px must be a positive number, found -1"):
        refine_calibration(rig, views, f_scale_px=-1)
    with pytest.raises(InputError, match="rounds must be an integer >= 1, found 0"):
        refine_calibration(rig, views, rounds=0)
    with pytest.raises(InputError, match=r"loss must be one of .* found 'l7'"):
        refine_calibration(rig, views, loss="l7", rounds=1, temporal=False)
    with pytest.raises(
        InputError, match=r"keypoints for camera\(s\) \['cam01'\] but the calibration has only"
    ):
        refine_calibration(rig[1:], views)
    with pytest.raises(InputError, match="keypoints_2d must be a mapping"):
        refine_calibration(rig, list(views.values()))
    few = {
        n: KeypointSequence(
            s.positions[:1, :3], s.names[:3], s.rate, confidence=s.confidence[:1, :3], frame=s.frame
        )
        for n, s in views.items()
    }
    with pytest.raises(
        DegenerateConfiguration, match=r"usable observations for 8 camera parameters"
    ):
        refine_calibration(rig, few, temporal=False)
    with pytest.raises(InputError, match="principal_point_px must have 2 values"):
        apply_corrections(rig[0], principal_point_px=(1.0,))
