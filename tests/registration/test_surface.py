"""Surface extraction and trimmed ICP refinement against a synthetic head-like volume."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.spatial.transform import Rotation

from medpose import DegenerateConfiguration, FrameMismatch, InputError, Landmarks, Transform
from medpose.imaging.volume import Volume
from medpose.registration import Surface, extract_surface, refine_surface, register


def _head_volume() -> tuple[Volume, callable]:
    """An ellipsoid 'head' (semi-axes 70, 85, 60 mm) with a box 'nose', CT-like values, 2 mm voxels."""
    spacing = np.array([2.0, 2.0, 2.0])
    origin = np.array([-100.0, -110.0, -80.0])
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in (100, 110, 80)], indexing="ij"), -1)
    p = origin + ijk * spacing

    def inside(q):
        ell = (q[..., 0] / 70) ** 2 + (q[..., 1] / 85) ** 2 + (q[..., 2] / 60) ** 2 <= 1
        nose = (
            (np.abs(q[..., 0]) < 12)
            & (q[..., 1] < -75)
            & (q[..., 1] > -100)
            & (np.abs(q[..., 2]) < 20)
        )
        return ell | nose

    arr = np.where(inside(p), 40, -1000).astype(np.int16)
    return Volume(arr, spacing, origin, np.eye(3)), inside


def test_extract_surface_points_lie_on_the_boundary():
    vol, inside = _head_volume()
    surf = extract_surface(vol, -300, max_points=5000)
    assert isinstance(surf, Surface) and surf.frame == "LPS" and 1000 < len(surf) <= 5000
    assert inside(surf.points).all()  # boundary voxels of the region
    assert not inside(surf.points + 2.5 * surf.normals).all()  # normals point out
    r = (
        (surf.points[:, 0] / 70) ** 2
        + (surf.points[:, 1] / 85) ** 2
        + (surf.points[:, 2] / 60) ** 2
    )
    on_ell = np.abs(surf.points[:, 1]) < 60
    assert np.all(np.abs(np.sqrt(r[on_ell]) - 1) < 0.06)
    # outward normal of the ellipsoid at the top is +z
    top = np.argmax(surf.points[:, 2])
    assert surf.normals[top, 2] > 0.9
    with pytest.raises(InputError, match="no surface at threshold"):
        extract_surface(vol, 500)
    with pytest.raises(InputError, match="threshold must be finite"):
        extract_surface(vol, np.nan)


@pytest.mark.parametrize("method", ["point_to_plane", "point_to_point"])
def test_icp_refines_a_rough_start(method):
    vol, _ = _head_volume()
    surf = extract_surface(vol, -300, max_points=8000)
    truth = Transform(
        Rotation.from_rotvec([0.2, -0.1, 0.5]), [20.0, -30.0, 700.0], source="LPS", target="camera"
    )
    rng = np.random.default_rng(0)
    # the camera sees the front of the face only (partial overlap), with 0.3 mm noise and 5% stray points
    front = surf.points[surf.points[:, 1] < -20]
    cloud = truth.apply(front) + rng.normal(scale=0.3, size=front.shape)
    stray = rng.choice(len(cloud), len(cloud) // 20, replace=False)
    cloud[stray] += rng.normal(scale=30, size=(len(stray), 3))
    start = (
        Transform(
            Rotation.from_rotvec([0.03, 0.02, -0.03]),
            [2.0, -3.0, 2.5],
            source="camera",
            target="camera",
        )
        @ truth
    )
    fit = refine_surface(start, surf, cloud, method=method, overlap=0.9)
    assert fit.converged
    probe = np.array([[0.0, -90.0, 0.0], [0.0, 0.0, 60.0], [60.0, 0.0, 0.0]])
    before = np.linalg.norm(start.apply(probe) - truth.apply(probe), axis=1).max()
    after = np.linalg.norm(fit.transform.apply(probe) - truth.apply(probe), axis=1).max()
    assert before > 5 and after < 0.5
    assert fit.transform.source == "LPS" and fit.transform.target == "camera"
    assert fit.rms < 1.0 and fit.inliers.sum() == int(np.ceil(0.9 * len(cloud)))
    assert np.median(fit.distances[stray]) > 5  # stray points stay far
    # the histogram counts every point once, kept and trimmed apart; the RMS line sits at rms
    ax = Figure().add_subplot()
    assert fit.plot(ax=ax) is ax
    heights = [sum(p.get_height() for p in c) for c in ax.containers]
    assert heights[0] == pytest.approx(fit.inliers.sum())
    assert heights[1] == pytest.approx((~fit.inliers).sum())
    assert ax.lines[0].get_xdata()[0] == pytest.approx(fit.rms)
    page = fit._repr_html_()
    assert (
        f"{fit.inliers.sum()} / {len(cloud)}" in page and "<img" in page and "LPS → camera" in page
    )


def test_icp_bad_input():
    surf = Surface(
        points=np.random.default_rng(0).normal(size=(100, 3)),
        normals=np.tile([0, 0, 1.0], (100, 1)),
        frame="LPS",
    )
    t = Transform(source="LPS", target="camera")
    with pytest.raises(FrameMismatch, match="surface is in 'RAS'"):
        refine_surface(
            t, Surface(points=surf.points, normals=surf.normals, frame="RAS"), np.zeros((10, 3))
        )
    with pytest.raises(FrameMismatch, match="cloud is in 'LPS'"):
        refine_surface(t, surf, Landmarks(("a",), [[0, 0, 0]], "LPS"))
    with pytest.raises(InputError, match="method"):
        refine_surface(t, surf, np.zeros((10, 3)), method="plane")
    with pytest.raises(InputError, match="overlap"):
        refine_surface(t, surf, np.zeros((10, 3)), overlap=0)
    with pytest.raises(DegenerateConfiguration, match="at least 6"):
        refine_surface(t, surf, np.full((10, 3), np.nan))
    x = np.array([[0, 0, 0], [50, 0, 0], [0, 40, 0], [0, 0, 30.0]])
    reg = register(
        Landmarks(tuple("abcd"), 2 * x, "camera"), Landmarks(tuple("abcd"), x, "LPS"), scale=True
    )
    with pytest.raises(InputError, match="rigid ICP only"):
        refine_surface(reg, surf, np.zeros((10, 3)))
