"""Real data: Pose2Sim's four-camera demo with MediaPipe keypoints (../shared/data/pose2sim).

What is asserted is what the product promises on it: the consensus beats a plain all-camera
DLT computed here on the same observations; the fraction of visible observations within
20 px is at least the 84 % the data's README reports for a consensus over camera subsets;
every visible observation is reported; bone lengths are those of an adult and steady.
Numbers measured on this data are in docs/triangulation.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from medpose.camera.dlt import dlt, reproject
from medpose.camera.refine import refine_calibration
from medpose.camera.triangulation import ImageSizeWarning, triangulate
from medpose.io.calibration import read_calibration
from medpose.io.openpose import read_openpose
from medpose.temporal import butterworth, clean_gaps

#: the videos of cam01 and cam02 are 1080 px wide (data README), the calibration says 1088
VIDEO_SIZES = {
    "cam01": (1080, 1920),
    "cam02": (1080, 1920),
    "cam03": (1088, 1920),
    "cam04": (1088, 1920),
}


def _load(shared_data):
    root = shared_data / "pose2sim"
    cams = read_calibration(root / "Calib_qualisys.toml")
    kp = {
        c.name: read_openpose(root / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0)
        for c in cams
    }
    return cams, kp


@pytest.fixture(scope="module")
def result(shared_data):
    cams, kp = _load(shared_data)
    with pytest.warns(ImageSizeWarning) as rec:
        res = triangulate(cams, kp, image_sizes=VIDEO_SIZES)
    return res, [str(w.message) for w in rec]


@pytest.fixture(scope="module")
def plain(shared_data):
    """The reference the consensus must beat: one unweighted DLT per point over every camera
    that saw it with confidence >= 0.3 (undistorted pixels), reprojected into every camera
    with visibility >= 0.5: the errors of those observations, and how many there are."""
    cams, kp = _load(shared_data)
    px = np.stack([kp[c.name].positions for c in cams], axis=2)  # (T, K, C, 2)
    cf = np.stack([kp[c.name].confidence for c in cams], axis=2)
    und = np.stack(
        [c.undistort_points(px[:, :, i], normalized=False) for i, c in enumerate(cams)], axis=2
    )
    X = dlt(
        np.stack([c.projection_matrix for c in cams]), np.where((cf >= 0.3)[..., None], und, np.nan)
    )
    err = np.linalg.norm(reproject(cams, X) - px, axis=-1)
    visible = (cf >= 0.5) & np.isfinite(px).all(-1)
    return err[visible], int(visible.sum())


def test_image_width_mismatch_is_warned_with_its_size(result):
    _, messages = result
    assert any("cam01" in m and "-8 px in width" in m for m in messages)
    assert any("cam02" in m and "-8 px in width" in m for m in messages)
    assert not any("cam03" in m for m in messages)


def _check_reprojection(res, plain):
    tab = res.error_table(min_visibility=0.5)  # every visible observation, used or not
    plain_err, n_visible = plain
    assert len(tab) == n_visible and tab["error_px"].notna().all()
    median, within = tab["error_px"].median(), (tab["error_px"] < 20).mean()
    assert median < np.nanmedian(plain_err), (
        f"median {median:.2f} px, plain DLT {np.nanmedian(plain_err):.2f} px"
    )
    assert within > np.mean(plain_err < 20)
    assert within >= 0.84, f"{within:.1%} within 20 px"  # the data README's consensus figure


def test_consensus_beats_the_plain_dlt(result, plain):
    _check_reprojection(result[0], plain)


def test_result_is_named_framed_and_in_mm(result):
    res, _ = result
    seq = res.sequence
    assert (
        seq.n_frames == 100 and seq.n_keypoints == 33 and seq.rate == 60.0 and seq.frame == "camera"
    )
    assert "knee_l" in seq.names and np.isfinite(seq.positions).all(-1).mean() > 0.99
    # the world is Z-up in mm: the nose is 1.0-1.9 m above the ankles
    height = np.nanmedian(seq["nose"][:, 2] - (seq["ankle_l"][:, 2] + seq["ankle_r"][:, 2]) / 2)
    assert 1000 < height < 1900
    assert (res.swaps["stage"] == "view").sum() > 0  # this recording has per-view swaps


@pytest.fixture(scope="module")
def temporal(shared_data):
    cams, kp = _load(shared_data)
    with pytest.warns(ImageSizeWarning):
        return triangulate(cams, kp, image_sizes=VIDEO_SIZES, temporal=True)


def _lengths(res):
    """Thigh and shank lengths (mm) per frame after clean_gaps and a 6 Hz Butterworth; frames
    left missing (gaps longer than 0.2 s) are dropped."""
    seq = res.sequence
    clean = clean_gaps(seq, max_gap_s=0.2)
    p = butterworth(clean.sequence.positions, seq.rate, 6.0)
    out = {}
    for side in "lr":
        for seg, (a, b) in {"thigh": ("hip", "knee"), "shank": ("knee", "ankle")}.items():
            d = np.linalg.norm(
                p[:, seq.index(f"{a}_{side}")] - p[:, seq.index(f"{b}_{side}")], axis=-1
            )
            out[f"{seg}_{side}"] = d[np.isfinite(d)]
    return out


def _cv(d):
    return np.std(d) / np.mean(d)


def test_segment_lengths_plausible(result):
    res, _ = result
    for name, d in _lengths(res).items():
        assert 300 < np.median(d) < 480, f"{name}: median {np.median(d):.0f} mm"
        assert _cv(d) < 0.12, f"{name} varies by {_cv(d):.1%}"


def test_temporal_mode_segment_lengths_steady_within_5_percent(temporal):
    """The issue's "< 5 %" as the coefficient of variation over frames (std / mean)."""
    lengths = _lengths(temporal)
    for name, d in lengths.items():
        assert len(d) >= 80, f"{name}: only {len(d)} of 100 frames"
        assert 300 < np.median(d) < 480, f"{name}: median {np.median(d):.0f} mm"
        assert _cv(d) < 0.05, f"{name} varies by {_cv(d):.1%}"


def test_per_frame_mode_keeps_the_pelvis_facing_the_shoulders_way(result, temporal):
    """After the stretch of badly triangulated frames 60-68 (one hip jumping 150-300 mm from
    frame to frame), the per-frame mode's 3D repair found one flip of the hips and relabelled
    them for the rest of the recording: the pelvis faced backwards against the shoulders in
    frames 69-99, and its hips lay 81 mm (median) from the temporal mode's, which chooses the
    labels over the whole recording.  The 3D repair may not turn a trunk pair against the
    body's left-right direction (docs/temporal.md).  The shoulders it is judged against are the
    temporal mode's: in frame 81 cam02+cam03 and cam01+cam04 place the left shoulder 300 mm
    apart, and the per-frame choice there is the wrong one."""
    res, _ = result
    seq, ref = res.sequence, temporal.sequence

    def lr(s, name):
        return s.positions[:, s.index(f"{name}_l")] - s.positions[:, s.index(f"{name}_r")]

    facing = np.sum(lr(seq, "hip") * lr(ref, "shoulder"), axis=-1)
    assert (facing[70:] > 0).all(), np.flatnonzero(facing[70:] <= 0) + 70
    for k in ("hip_l", "hip_r"):
        d = np.linalg.norm(seq.positions[:, seq.index(k)] - ref.positions[:, ref.index(k)], axis=-1)
        assert np.nanmedian(d) < 20.0, f"{k}: {np.nanmedian(d):.0f} mm from the temporal mode's"


def test_temporal_mode_beats_the_plain_dlt(temporal, plain):
    _check_reprojection(temporal, plain)
    assert set(temporal.swaps["stage"]) == {"temporal"}


@pytest.fixture(scope="module")
def refined(shared_data):
    """The recipe of docs/triangulation.md: refine the calibration from the recording itself
    (principal points, robust bundle adjustment), then triangulate with temporal=True."""
    cams, kp = _load(shared_data)
    cams2, table = refine_calibration(cams, kp)
    with pytest.warns(ImageSizeWarning):
        res = triangulate(cams2, kp, image_sizes=VIDEO_SIZES, temporal=True)
    return res, table


def test_issue_target_on_one_output(refined, plain):
    """The issue's target on one output: refined calibration + temporal mode: a median
    reprojection error below 10 px over every visible observation (reprojected into its own
    camera with the refined cameras, used or not, after relabelling) and thigh and shank
    lengths steady within 5 % (coefficient of variation, as in _lengths)."""
    res, _ = refined
    _check_reprojection(res, plain)
    median = res.error_table(min_visibility=0.5)["error_px"].median()
    assert median < 10.0, f"median reprojection error {median:.2f} px"
    for name, d in _lengths(res).items():
        assert len(d) >= 80, f"{name}: only {len(d)} of 100 frames"
        assert 300 < np.median(d) < 480, f"{name}: median {np.median(d):.0f} mm"
        assert _cv(d) < 0.05, f"{name} varies by {_cv(d):.1%}"


def test_refined_corrections_are_small_and_reported(refined):
    _, table = refined
    assert (
        list(table["camera"]) == ["cam01", "cam02", "cam03", "cam04"] and not table["fixed"].any()
    )
    shift = np.hypot(table["dcx_px"], table["dcy_px"])
    assert (shift < 25).all() and (table[["rot_x_deg", "rot_y_deg", "rot_z_deg"]] == 0).all().all()
    assert (table["focal_scale"] == 1).all()
    # cam03, the camera with the largest residual bias (x and y), gets the largest correction
    assert table.set_index("camera")["dcy_px"].idxmax() == "cam03" and shift.idxmax() == 2
    assert (table["median_error_after_px"] < table["median_error_before_px"]).sum() >= 3


def test_per_frame_mode_keeps_the_knees_under_their_hips(result, temporal):
    """In frames 86-99 the 3D repair read the knees (and the hips) as exchanged after the same
    badly triangulated stretch; the trunk check kept the hips, but the knees had been judged
    against the hips as exchanged and stayed crossed, each 140-190 mm from the temporal mode's
    (the left hip then adducted 15-21 degrees in the fit instead of 2-5).  The bone check is
    repeated with the trunk's decisions (docs/temporal.md)."""
    res, _ = result
    seq, ref = res.sequence, temporal.sequence
    for k in ("knee_l", "knee_r"):
        d = np.linalg.norm(seq.positions[:, seq.index(k)] - ref.positions[:, ref.index(k)], axis=-1)
        assert np.nanmedian(d[70:]) < 20.0, (
            f"{k}: {np.nanmedian(d[70:]):.0f} mm from the temporal mode's"
        )


def test_the_plot_shows_each_cameras_error_and_the_relabelled_frames(result):
    """TriangulationResult.plot: per camera the median over keypoints of the error table's
    errors (computed here from :meth:`error_table`, a separate path), frame by frame, and one
    tick per frame the swap report names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res, _ = result
    fig, ax = plt.subplots()
    try:
        res.plot(ax=ax)
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert set(lines) == set(res.camera_names) | {"relabelled"}
        table = res.error_table()
        for cam in res.camera_names:
            want = table[table.camera == cam].groupby("frame")["error_px"].median()
            got = np.asarray(lines[cam].get_ydata())
            np.testing.assert_allclose(got[want.index.to_numpy()], want.to_numpy())
            assert np.isnan(np.delete(got, want.index.to_numpy())).all()
        ticks = lines["relabelled"].get_xdata()
        assert len(ticks) == res.swaps["frame"].nunique() > 0
    finally:
        plt.close(fig)
