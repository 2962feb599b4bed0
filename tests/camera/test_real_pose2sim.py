"""The issue's real-data target: Pose2Sim's four-camera demo with MediaPipe keypoints.

Numbers measured on this data are in docs/triangulation.md.
"""
from __future__ import annotations

import numpy as np
import pytest

from medpose.camera.triangulation import ImageSizeWarning, triangulate
from medpose.io.calibration import read_calibration
from medpose.io.openpose import read_openpose
from medpose.temporal import butterworth, clean_gaps

#: the videos of cam01 and cam02 are 1080 px wide (data README), the calibration says 1088
VIDEO_SIZES = {"cam01": (1080, 1920), "cam02": (1080, 1920), "cam03": (1088, 1920), "cam04": (1088, 1920)}


@pytest.fixture(scope="module")
def result(shared_data):
    root = shared_data / "pose2sim"
    cams = read_calibration(root / "Calib_qualisys.toml")
    kp = {c.name: read_openpose(root / "keypoints-mediapipe" / f"{c.name}_json", rate=60.0) for c in cams}
    with pytest.warns(ImageSizeWarning) as rec:
        res = triangulate(cams, kp, image_sizes=VIDEO_SIZES)
    return res, [str(w.message) for w in rec]


def test_image_width_mismatch_is_warned_with_its_size(result):
    _, messages = result
    assert any("cam01" in m and "-8 px in width" in m for m in messages)
    assert any("cam02" in m and "-8 px in width" in m for m in messages)
    assert not any("cam03" in m for m in messages)


def test_reprojection_error_target(result):
    res, _ = result
    tab = res.error_table(min_visibility=0.5)        # every visible observation, used or not
    assert len(tab) > 12000 and tab["error_px"].notna().all()
    median = tab["error_px"].median()
    within = (tab["error_px"] < 20).mean()
    assert median < 10.0, f"median reprojection error {median:.2f} px"
    assert within >= 0.85, f"{within:.1%} within 20 px"


def test_result_is_named_framed_and_in_mm(result):
    res, _ = result
    seq = res.sequence
    assert seq.n_frames == 100 and seq.n_keypoints == 33 and seq.rate == 60.0 and seq.frame == "camera"
    assert "knee_l" in seq.names and np.isfinite(seq.positions).all(-1).mean() > 0.99
    # the world is Z-up in mm: the nose is 1.0-1.9 m above the ankles
    height = np.nanmedian(seq["nose"][:, 2] - (seq["ankle_l"][:, 2] + seq["ankle_r"][:, 2]) / 2)
    assert 1000 < height < 1900
    assert (res.swaps["stage"] == "view").sum() > 0   # this recording has per-view swaps


def _lengths(res):
    seq = res.sequence
    clean = clean_gaps(seq, max_gap_s=0.2)
    p = butterworth(clean.sequence.positions, seq.rate, 6.0)
    out = {}
    for side in "lr":
        for seg, (a, b) in {"thigh": ("hip", "knee"), "shank": ("knee", "ankle")}.items():
            d = np.linalg.norm(p[:, seq.index(f"{a}_{side}")] - p[:, seq.index(f"{b}_{side}")], axis=-1)
            out[f"{seg}_{side}"] = d[np.isfinite(d)]
    return out


def test_segment_lengths_plausible(result):
    res, _ = result
    for name, d in _lengths(res).items():
        assert 300 < np.median(d) < 480, f"{name}: median {np.median(d):.0f} mm"
        assert np.std(d) / np.mean(d) < 0.12, f"{name} varies by {np.std(d) / np.mean(d):.1%}"


@pytest.mark.xfail(strict=True, reason="issue target not reached yet: thigh_l varies by 5.0%, the shanks by ~10% "
                                       "(frames 60-80, legs confused in several views); see docs/triangulation.md")
def test_segment_lengths_steady_within_5_percent(result):
    res, _ = result
    for name, d in _lengths(res).items():
        assert np.std(d) / np.mean(d) < 0.05, f"{name} varies by {np.std(d) / np.mean(d):.1%}"
