"""Landmarks, KeypointSequence, JointAngles and Volume in Jupyter (``_repr_html_``) and on a
matplotlib axis (``plot``)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from medpose.data import JointAngles, KeypointSequence, Landmarks
from medpose.errors import FrameMismatch, InputError
from medpose.imaging.volume import Volume
from medpose.report import display_data

IMG = 'src="data:image/png;base64,'


def _ax():
    return Figure().add_subplot()


# ------------------------------------------------------------------------ Landmarks
@pytest.fixture
def landmarks():
    pos = [[-158.1234, 20.5, 912.75], [40.0, -61.25, 930.0], [12.5, 80.0, 1001.5], [np.nan] * 3]
    return Landmarks(("ASIS_r", "ASIS_l", "PSIS_l", "knee_r"), pos, frame="LPS")


def test_landmarks_html_lists_each_coordinate(landmarks):
    page = landmarks._repr_html_()
    assert "<b>Landmarks</b>: 4 points in LPS (mm), 1 not placed" in page
    for name, p in landmarks.as_dict().items():
        assert f"<td>{name}</td>" in page
        if np.isfinite(p).all():
            assert all(f"<td>{v:.4g}</td>" in page for v in p)
    assert "<td>-158.1</td>" in page and IMG in page


def test_landmarks_plot_on_chosen_axes_names_each_placed_point(landmarks):
    ax = _ax()
    assert landmarks.plot(axes=("x", "z"), ax=ax) is ax
    np.testing.assert_array_equal(
        ax.collections[0].get_offsets(), landmarks.positions[:3][:, [0, 2]]
    )
    assert [t.get_text() for t in ax.texts] == ["ASIS_r", "ASIS_l", "PSIS_l"]
    assert [t.xy for t in ax.texts] == [tuple(p) for p in landmarks.positions[:3][:, [0, 2]]]
    assert ax.get_xlabel() == "x (LPS, mm)" and ax.get_ylabel() == "z (LPS, mm)"
    assert ax.get_aspect() == 1.0
    assert "3 landmarks in LPS; 1 not placed" in ax.get_title()


def test_landmarks_plot_default_plane_keeps_the_distances_of_coplanar_points():
    rng = np.random.default_rng(0)
    u, v = np.linalg.qr(rng.normal(size=(3, 3)))[0][:, :2].T  # a tilted plane
    pos = 200 * rng.normal(size=(6, 1)) * u + 200 * rng.normal(size=(6, 1)) * v + [5, 9, 800]
    lm = Landmarks(tuple("ABCDEF"), pos, frame="camera")
    ax = lm.plot(ax=_ax())
    uv = np.asarray(ax.collections[0].get_offsets())
    d2 = np.linalg.norm(uv[:, None] - uv[None], axis=-1)
    d3 = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    np.testing.assert_allclose(d2, d3, atol=1e-9)
    assert ax.get_xlabel().startswith("principal axis 1 = (") and "camera (mm)" in ax.get_xlabel()


@pytest.mark.parametrize("axes", [("x",), ("x", "x"), ("x", "w"), ("x", "y", "z")])
def test_landmarks_plot_refuses_other_axes(landmarks, axes):
    with pytest.raises(InputError, match=r"Landmarks.plot: axes .*expected two different of"):
        landmarks.plot(axes=axes, ax=_ax())


# ------------------------------------------------------------------------ KeypointSequence
@pytest.fixture
def walk():
    """8 keypoints, 3D mm at 50 Hz from 1.5 s: keypoint k swings k * 10 mm in y; 'kp3' is
    missing in frames 20 to 39."""
    t = np.arange(200) / 50.0
    pos = np.zeros((200, 8, 3))
    pos[:, :, 0] = np.arange(8) * 100.0
    pos[:, :, 1] = np.sin(2 * np.pi * t)[:, None] * (10.0 * np.arange(8))
    pos[:, :, 2] = 900.0 + t[:, None]
    pos[20:40, 3] = np.nan
    return KeypointSequence(pos, [f"kp{k}" for k in range(8)], 50.0, start=1.5)


def test_keypoints_plot_draws_the_coordinate_over_time_with_gaps(walk):
    ax = _ax()
    assert walk.plot(["kp3", "kp5"], ax=ax) is ax
    assert [ln.get_label() for ln in ax.lines] == ["kp3", "kp5"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), 1.5 + np.arange(200) / 50.0)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), walk["kp3"][:, 1])
    assert np.isnan(ax.lines[0].get_ydata()[20:40]).all()  # a gap, not a line across
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "y (mm, camera)"
    ax = walk.plot("kp5", axis="z", ax=_ax())
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), walk["kp5"][:, 2])


def test_keypoints_plot_speed_is_the_distance_between_frames_times_the_rate(walk):
    ax = walk.plot("kp3", axis="speed", ax=_ax())
    y = ax.lines[0].get_ydata()
    step = np.linalg.norm(np.diff(walk["kp3"], axis=0), axis=1) * 50.0
    assert np.isnan(y[0]) and np.isnan(y[20:41]).all()
    np.testing.assert_allclose(y[1:], step)
    assert ax.get_ylabel() == "speed (mm/s)"


def test_keypoints_plot_default_draws_those_that_move_most_in_order(walk):
    ax = walk.plot(ax=_ax())
    assert [ln.get_label() for ln in ax.lines] == [f"kp{k}" for k in range(2, 8)]


def test_keypoints_plot_default_coordinate_is_the_one_that_varies_most(walk):
    assert walk.plot(ax=_ax()).get_ylabel() == "y (mm, camera)"  # they swing in y
    up = KeypointSequence(walk.positions[..., [0, 2, 1]], walk.names, 50.0)  # now in z
    ax = up.plot(["kp3", "kp5"], ax=_ax())
    assert ax.get_ylabel() == "z (mm, camera)"
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), walk["kp5"][:, 1])


def test_keypoints_plot_of_image_keypoints_in_pixels(walk):
    px = KeypointSequence(walk.positions[..., :2], walk.names, 50.0, frame="cam01")
    assert px.plot("kp1", ax=_ax()).get_ylabel() == "y (px, cam01)"  # vertical in the image
    ax = px.plot("kp1", axis="x", ax=_ax())
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), px["kp1"][:, 0])
    assert ax.get_ylabel() == "x (px, cam01)"
    with pytest.raises(
        InputError, match=r"axis 'z' for a 2D sequence; expected one of \['x', 'y', 'speed'\]"
    ):
        px.plot(axis="z", ax=_ax())


def test_keypoints_plot_names_the_known_keypoints(walk):
    with pytest.raises(InputError, match=r"\['elbow_l'\] not found; known: \['kp0', 'kp1'"):
        walk.plot(["kp1", "elbow_l"], ax=_ax())
    with pytest.raises(InputError, match="keypoints: found an empty list"):
        walk.plot([], ax=_ax())


def test_keypoints_plot_draws_on_the_current_axis_by_default(walk):
    fig, ax = plt.subplots()
    try:
        assert walk.plot() is ax
    finally:
        plt.close(fig)


def test_keypoints_html_sums_up_and_ranks_missing_keypoints(walk):
    page = walk._repr_html_()
    assert "200 frames × 8 keypoints (3D, mm), 4.00 s at 50 Hz from 1.5 s, frame 'camera'" in page
    assert f"{100 * 20 / (200 * 8):.1f} % of the points missing" in page  # 1.2 %
    first = page.index("<td>kp3</td>")
    assert first < page.index("<td>kp0</td>") and "<td>10</td>" in page[first:][:80]
    assert IMG in page
    assert "... 5 more rows" in display_data.keypoints_html(walk, max_rows=3)


def test_keypoints_html_of_a_long_sequence_draws_a_few_thousand_frames(monkeypatch):
    drawn = []
    original = display_data.small_figure

    def small(*args):
        fig, ax = original(*args)
        drawn.append(ax)
        return fig, ax

    monkeypatch.setattr(display_data, "small_figure", small)
    n = 200_000
    pos = np.random.default_rng(1).normal(size=(n, 2, 2))
    seq = KeypointSequence(pos, ("a", "b"), 100.0, frame="cam01")
    page = seq._repr_html_()
    assert "200,000 frames × 2 keypoints (2D, px), 2000.00 s at 100 Hz" in page
    (ax,) = drawn
    assert len(ax.lines) == 2
    x = ax.lines[0].get_xdata()
    assert len(x) <= display_data.HTML_FRAMES and x[-1] > 1990.0  # the whole span, thinned
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), pos[:: n // len(x), 0, 1])


# ------------------------------------------------------------------------ JointAngles
@pytest.fixture
def angles():
    t = np.arange(100) / 20.0
    values = np.column_stack(
        [
            30.0 + 5.0 * t,  # pelvis_tx, mm
            np.full(100, 2.0),  # pelvis_tilt, constant
            60.0 * np.sin(t),  # knee_flexion_r
            20.0 * np.sin(t),  # hip_flexion_r
            np.full(100, np.nan),  # ankle_dorsiflexion_r, never measured
        ]
    )
    values[10:30, 2] = np.nan
    names = ("pelvis_tx", "pelvis_tilt", "knee_flexion_r", "hip_flexion_r", "ankle_dorsiflexion_r")
    return JointAngles(values, names, 20.0, start=0.5)


def test_angles_html_tabulates_the_dofs_that_move(angles):
    page = angles._repr_html_()
    assert "100 frames × 5 DoF, 5.00 s at 20 Hz from 0.5 s; 3 DoF move (2 constant" in page
    knee = angles["knee_flexion_r"]
    row = page[page.index("<td>knee_flexion_r</td>") :].split("</tr>")[0]
    for v in (np.nanmin(knee), np.nanmax(knee), np.nanmean(knee), 20.0):
        assert f"<td>{round(v, 3):.4g}</td>" in row
    # angles by range first, the translation (mm) last; constant / empty DoFs not listed
    assert page.index("knee_flexion_r") < page.index("hip_flexion_r") < page.index("pelvis_tx")
    assert "<td>mm</td>" in page[page.index("<td>pelvis_tx</td>") :]
    assert "pelvis_tilt" not in page and "ankle_dorsiflexion_r" not in page
    assert IMG in page


def test_angles_plot_draws_the_moving_angles_and_translations_only_when_named(angles):
    ax = angles.plot(ax=_ax())
    assert [ln.get_label() for ln in ax.lines] == ["knee_flexion_r", "hip_flexion_r"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), angles["knee_flexion_r"])
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), angles.times)
    assert ax.get_ylabel() == "angle (°)" and ax.get_xlabel() == "time (s)"
    ax = angles.plot("pelvis_tx", ax=_ax())
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), angles["pelvis_tx"])
    assert ax.get_ylabel() == "translation (mm)"
    ax = angles.plot(["pelvis_tx", "hip_flexion_r"], ax=_ax())
    assert ax.get_ylabel() == "angle (°) / translation (mm)"


def test_angles_plot_names_the_known_dofs(angles):
    with pytest.raises(InputError, match=r"dofs: \['knee_flex'\] not found; known: \['pelvis_tx'"):
        angles.plot(["knee_flex"], ax=_ax())


# ------------------------------------------------------------------------ Volume
SHAPE = (12, 10, 8)
SPACING = np.array([0.8, 1.5, 3.0])
ORIGIN = np.array([-40.0, 25.0, 100.0])
DIRECTIONS = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    "SLP": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),  # i up, j left, k back
}
PLANES = {"axial": (2, 0, 1), "coronal": (1, 0, 2), "sagittal": (0, 1, 2)}  # normal, across, up


def _volume(code="LPS"):
    """A volume with one bright voxel, [7, 3, 5]."""
    arr = np.zeros(SHAPE, np.int16)
    arr[7, 3, 5] = 1000
    return Volume(arr, SPACING, ORIGIN, DIRECTIONS[code])


def test_axial_slice_extent_and_pixels_are_those_of_the_voxels():
    vol = _volume()
    ax = vol.plot("axial", index=5, ax=_ax())
    (im,) = ax.images
    half = SPACING / 2
    far = ORIGIN + (np.array(SHAPE) - 1) * SPACING
    expected = (ORIGIN[0] - half[0], far[0] + half[0], ORIGIN[1] - half[1], far[1] + half[1])
    np.testing.assert_allclose(im.get_extent(), expected)
    np.testing.assert_array_equal(im.get_array(), vol.array[:, :, 5].T)  # rows along y
    assert im.origin == "lower"
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y grows downwards: anterior up
    assert ax.get_xlim()[0] < ax.get_xlim()[1]  # x grows to the right: patient's left right
    assert ax.get_title() == "axial slice k = 5 (z = 115.0 mm)"
    assert ax.get_xlabel().startswith("x (mm, LPS)")


@pytest.mark.parametrize("code", list(DIRECTIONS))
@pytest.mark.parametrize("plane", list(PLANES))
def test_every_plane_draws_a_voxel_at_its_lps_position(code, plane):
    vol = _volume(code)
    bright = np.array([7, 3, 5])
    normal, h, v = PLANES[plane]
    a_n = int(np.abs(DIRECTIONS[code][normal]).argmax())  # voxel axis across the plane
    ax = vol.plot(plane, index=int(bright[a_n]), ax=_ax())
    img = np.asarray(ax.images[0].get_array())
    left, right, bottom, top = ax.images[0].get_extent()
    assert left < right and bottom < top
    r, c = np.unravel_index(img.argmax(), img.shape)
    centre = (left + (c + 0.5) * (right - left) / img.shape[1],
              bottom + (r + 0.5) * (top - bottom) / img.shape[0])  # fmt: skip
    np.testing.assert_allclose(centre, vol.index_to_lps(bright)[[h, v]], atol=1e-9)
    up = ax.get_ylim()[1] > ax.get_ylim()[0]
    assert up == (plane != "axial")  # axial: anterior (smaller y) up


def test_volume_plot_draws_the_landmarks_of_the_slice_at_their_lps_position():
    vol = _volume()
    on = vol.index_to_lps([4.0, 6.0, 5.3])  # nearest slice 5
    off = vol.index_to_lps([4.0, 6.0, 5.6])  # nearest slice 6
    outside = vol.index_to_lps([40.0, 6.0, 5.0])
    lm = Landmarks(("on", "off", "outside", "unplaced"), [on, off, outside, [np.nan] * 3])
    ax = vol.plot(index=5, landmarks=lm, ax=_ax(), cmap="bone", vmin=0, vmax=500)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [on[:2]])
    assert [t.get_text() for t in ax.texts] == ["on"]
    assert ax.images[0].get_cmap().name == "bone" and ax.images[0].get_clim() == (0, 500)
    ax = vol.plot("sagittal", index=4, landmarks=lm, ax=_ax())
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [on[1:], off[1:]])


def test_volume_plot_errors_say_what_was_found_and_expected():
    vol = _volume()
    with pytest.raises(
        InputError, match=r"plane 'transverse'; expected one of \['axial', 'coronal', 'sagittal'\]"
    ):
        vol.plot("transverse", ax=_ax())
    with pytest.raises(
        InputError,
        match=r"index 8 is outside the volume; its axial slices \(voxel axis k\) are numbered 0 to 7",
    ):
        vol.plot(index=8, ax=_ax())
    with pytest.raises(InputError, match=r"index -1 is outside"):
        vol.plot("coronal", index=-1, ax=_ax())
    with pytest.raises(InputError, match=r"index 2.5; expected a whole number"):
        vol.plot(index=2.5, ax=_ax())  # type: ignore[arg-type]
    lm = Landmarks(("a",), [[0.0, 0.0, 0.0]], frame="camera")
    with pytest.raises(FrameMismatch, match="landmarks in frame 'camera'; expected 'LPS'"):
        vol.plot(landmarks=lm, ax=_ax())


def test_volume_html_tabulates_the_geometry_and_shows_the_middle_slice():
    page = _volume("RAS")._repr_html_()
    for text in ("12 × 10 × 8", "int16", "0.8 × 1.5 × 3", "9.6 × 15 × 24", "(-40, 25, 100)",
                 "<td>RAS</td>", "0 to 1000", 'alt="middle axial slice"', IMG):  # fmt: skip
        assert text in page, text
    arr = np.full(SHAPE, np.nan)
    arr[0, 0, 0], arr[1, 0, 0] = -2.5, 7.25
    page = Volume(arr, SPACING, ORIGIN, np.eye(3))._repr_html_()
    assert "-2.5 to 7.25" in page and f"<td>{arr.size - 2:,}</td>" in page


def test_orientation_code_names_where_the_voxel_axes_point():
    assert display_data.orientation_code(np.eye(3)) == "LPS"
    assert display_data.orientation_code(DIRECTIONS["RAS"]) == "RAS"
    assert display_data.orientation_code(DIRECTIONS["SLP"]) == "SLP"
    a = np.radians(10)
    tilt = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    assert display_data.orientation_code(tilt) == "LPS (oblique)"
