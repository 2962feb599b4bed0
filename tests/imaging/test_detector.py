"""Landmark detector: soft-argmax, geometry, mirrors, checkpoints, bad input, ONNX, CLI."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import medpose as mp
from medpose.errors import DegenerateConfiguration, InputError
from medpose.imaging.detector import (
    DetectorConfig,
    LandmarkDetector,
    load_detector,
    save_detector,
    soft_argmax,
)
from medpose.imaging.detector_export import check_onnx, export_onnx
from medpose.imaging.detector_run import detect_and_register, detect_landmarks
from medpose.imaging.transforms import (
    Augmentation,
    grid_affine,
    mirror_name,
    mirror_permutation,
    random_pose,
    resample,
    to_lps,
    to_voxels,
    volume_affine,
)
from medpose.synthetic.phantom import make_phantom

NAMES = ("a_r", "a_l", "mid")


def tiny_config(**kw):
    base = dict(
        landmarks=NAMES,
        spacing_mm=8.0,
        grid=(16, 16, 16),
        channels=(4, 8),
        fine_patch=8,
        fine_spacing_mm=2.0,
        fine_channels=(4, 8),
    )
    return DetectorConfig(**{**base, **kw})


def gaussian_logits(shape, centre, sigma):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    d2 = ((idx - np.asarray(centre)) ** 2).sum(-1)
    return torch.as_tensor(-d2 / (2 * sigma**2), dtype=torch.float64)


def blob_volume(points, spacing, origin, direction, shape=(40, 36, 44), sigma_mm=3.0):
    """A float volume with a Gaussian blob (peak 1000) at each LPS point."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(direction) * np.asarray(spacing)[None]
    aff[:3, 3] = origin
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    lps = to_lps(idx, aff)
    arr = np.zeros(shape, np.float32)
    for p in points:
        arr += 1000 * np.exp(-((lps - p) ** 2).sum(-1) / (2 * sigma_mm**2))
    return mp.Volume(arr, spacing, origin, direction)


# ------------------------------------------------------------------ soft-argmax


def test_soft_argmax_recovers_subvoxel_gaussian_centres():
    centres = [(10.3, 11.8, 12.45), (13.02, 9.61, 12.9)]  # >= 6 sd from the borders
    logits = torch.stack([gaussian_logits((24, 22, 26), c, 1.5) for c in centres])[None]
    coords, probs = soft_argmax(logits)
    assert coords.shape == (1, 2, 3)
    np.testing.assert_allclose(coords[0].numpy(), np.array(centres), atol=1e-4)  # float32
    np.testing.assert_allclose(probs.sum(dim=(2, 3, 4)).numpy(), 1.0, atol=1e-6)


def test_soft_argmax_of_two_equal_peaks_is_their_midpoint_and_differentiable():
    logits = torch.full((1, 1, 6, 6, 6), -1e4, dtype=torch.float64)
    logits[0, 0, 1, 2, 3] = 0.0
    logits[0, 0, 4, 5, 0] = 0.0
    coords, _ = soft_argmax(logits)
    np.testing.assert_allclose(coords[0, 0].numpy(), [2.5, 3.5, 1.5], atol=1e-9)
    x = torch.randn(1, 1, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_argmax(t)[0], (x,))


# ------------------------------------------------------------------ geometry


def test_affines_match_volume_geometry_and_round_trip():
    direction = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    direction[:, 2] *= -1  # a left-handed (flipped) axis too
    vol = mp.Volume(np.zeros((5, 6, 7), np.int16), [0.7, 1.1, 2.5], [10, -20, 30], direction)
    ijk = np.array([[0, 0, 0], [4, 5, 6], [1.5, 2.25, 3.75]])
    np.testing.assert_allclose(to_lps(ijk, volume_affine(vol)), vol.index_to_lps(ijk), atol=1e-9)
    g = grid_affine([1, 2, 3], 4.0, (8, 6, 10), direction)
    np.testing.assert_allclose(to_lps([3.5, 2.5, 4.5], g), [1, 2, 3], atol=1e-9)
    np.testing.assert_allclose(to_voxels(to_lps(ijk, g), g), ijk, atol=1e-9)


def test_resampled_blob_found_at_its_lps_position_through_an_oblique_volume():
    direction = Rotation.from_euler("zyx", [30, 10, -15], degrees=True).as_matrix()
    target = np.array([5.0, -12.0, 40.0])
    origin = target - direction @ (np.array([20.0, 18.0, 22.0]) * [1.2, 1.0, 1.5])
    vol = blob_volume([target], [1.2, 1.0, 1.5], origin, direction)
    img = torch.as_tensor(np.array(vol.array))[None]
    grid = grid_affine(target + [3.3, -2.1, 1.7], 1.25, (24, 24, 24))
    x = resample(img, volume_affine(vol), [grid], (24, 24, 24))
    coords, _ = soft_argmax(torch.log(x.clamp_min(1e-12)).double() * 1.0)
    found = to_lps(coords[0, 0].numpy(), grid)
    assert np.linalg.norm(found - target) < 0.05  # mm; trilinear sampling of a 3 mm blob


def test_mirror_swaps_sided_names_and_shows_the_other_side_there():
    assert mirror_name("asis_r") == "asis_l" and mirror_name("hand_left") == "hand_right"
    assert mirror_name("c7") == "c7"
    perm = mirror_permutation(NAMES)
    assert [NAMES[i] for i in perm] == ["a_l", "a_r", "mid"]
    with pytest.raises(InputError, match="b_l"):
        mirror_permutation(["b_r", "mid"])
    # patient's right at LPS -x, left at +x; a brighter blob on the left
    pts = np.array([[-30.0, 0.0, 0.0], [30.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    vol = blob_volume(pts[:2], [2.0, 2.0, 2.0], [-44, -40, -44], np.eye(3), shape=(45, 41, 45))
    img = torch.as_tensor(np.array(vol.array))[None]
    plain = grid_affine([0, 0, 0], 2.0, (40, 40, 40))
    mirrored = grid_affine([0, 0, 0], 2.0, (40, 40, 40), np.diag([-1.0, 1, 1]))
    a = resample(img, volume_affine(vol), [plain, mirrored], (40, 40, 40))
    # the mirrored grid is the plain one flipped left/right
    torch.testing.assert_close(a[1], torch.flip(a[0], dims=[1]), atol=1e-4, rtol=0)
    # the swapped names point, in the mirrored grid, where the plain names point in the plain one
    np.testing.assert_allclose(to_voxels(pts[perm], mirrored), to_voxels(pts, plain), atol=1e-9)
    axes, _, flipped = random_pose(np.random.default_rng(3), Augmentation(mirror=1.0))
    assert flipped and np.linalg.det(axes) < 0


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    det = LandmarkDetector(tiny_config()).eval()
    path = save_detector(det, tmp_path / "d.safetensors", info={"note": "test"})
    back = load_detector(path, expect=NAMES)
    assert back.config == det.config and back.config.extra["note"] == "test"
    for k, v in det.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(x), det(x))
    with pytest.raises(InputError, match=r"landmarks differ: only in checkpoint \['mid'\]"):
        load_detector(path, expect=("a_r", "a_l", "c7"))
    with pytest.raises(InputError, match="another order"):
        load_detector(path, expect=("a_l", "a_r", "mid"))
    with pytest.raises(InputError, match=r"spacing_mm: checkpoint 8\.0, expected 4\.0"):
        load_detector(path, expect={"spacing_mm": 4.0})
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"bad\.safetensors"):
        load_detector(tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match="no such file"):
        load_detector(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="multiples of 2"):
        tiny_config(grid=(16, 15, 16))


def test_bad_volumes_refused(tmp_path):
    det = LandmarkDetector(tiny_config()).eval()
    nan = np.zeros((8, 8, 8), np.float32)
    nan[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="1 of 512 voxels are NaN"):
        detect_landmarks(mp.Volume(nan, [1, 1, 1], [0, 0, 0], np.eye(3)), det)
    with pytest.raises(InputError, match="empty volume"):
        detect_landmarks(mp.Volume(np.zeros((0, 8, 8), np.int16), [1] * 3, [0] * 3, np.eye(3)), det)
    with pytest.raises(InputError, match="every voxel has the value -1000"):
        detect_landmarks(
            mp.Volume(np.full((8, 8, 8), -1000, np.int16), [1] * 3, [0] * 3, np.eye(3)), det
        )


def test_detection_flags_low_confidence_writes_slicer_json_and_keeps_flagged_out(tmp_path):
    torch.manual_seed(1)
    ph = make_phantom(spacing=(8.0, 8.0, 8.0), seed=2)
    names = tuple(ph.landmarks.names)
    det = LandmarkDetector(tiny_config(landmarks=names, spacing_mm=16.0, grid=(32, 24, 72))).eval()
    found = detect_landmarks(ph.volume, det)
    assert "resampled" in found.notes[0] and "8.0" in found.notes[0]
    assert found.landmarks.names == names and np.all(np.isfinite(found.landmarks.positions))
    assert np.all((found.confidence >= 0) & (found.confidence <= 1))
    strict = detect_landmarks(ph.volume, det, min_confidence=1.0)
    assert strict.flagged == names and len(strict.accepted) == 0  # untrained: spread-out maps
    loose = detect_landmarks(ph.volume, det, min_confidence=0.0)
    assert loose.flagged == () and len(loose.accepted) == len(names)
    out = loose.write(tmp_path / "found.mrk.json")
    back = mp.read_landmarks(out)
    assert back.names == names
    np.testing.assert_allclose(back.positions, loose.landmarks.positions, atol=1e-3)
    with pytest.raises(InputError, match="nothing to write"):
        strict.write(tmp_path / "none.mrk.json")
    assert not (tmp_path / "none.mrk.json").exists()
    cam = mp.Landmarks(names, ph.image_to_body.apply(ph.landmarks.positions), frame="skeleton")
    with pytest.raises(DegenerateConfiguration, match="flagged as low-confidence"):
        detect_and_register(ph.volume, det, cam, min_confidence=1.0)
    reg = detect_and_register(ph.volume, det, cam, min_confidence=0.0)
    assert reg.n_fiducials == len(names)
    assert "median confidence" in repr(found) and "<table" in found._repr_html_()
    import matplotlib

    matplotlib.use("Agg")
    ax = found.plot()
    assert len(ax.patches) == len(names)


# ------------------------------------------------------------------ ONNX


def test_onnx_export_agrees_with_torch(tmp_path):
    pytest.importorskip("onnxruntime")  # an optional extra ('onnx'); in the dev install
    torch.manual_seed(2)
    det = LandmarkDetector(tiny_config()).eval()
    for stage in ("coarse", "fine"):
        path = export_onnx(det, tmp_path / f"{stage}.onnx", stage=stage)
        chk = check_onnx(det, path, stage=stage, repeats=1)
        assert chk.max_logit_diff < 1e-4  # float32 kernels of two runtimes
        assert chk.max_coord_diff_vox < 1e-3
    with pytest.raises(InputError, match="no fine stage"):
        export_onnx(LandmarkDetector(tiny_config(fine_patch=0)), tmp_path / "x.onnx", stage="fine")


# ------------------------------------------------------------------ phantoms and CLI


def test_phantom_angles_move_only_the_limb_they_bend():
    a = make_phantom(spacing=(10.0, 10.0, 10.0), seed=4)
    b = make_phantom(spacing=(10.0, 10.0, 10.0), seed=4, angles={"knee_flexion_r": 40.0})

    def dist(ph, m, n):  # placement is re-centred on the landmarks: compare distances
        p = dict(zip(ph.landmarks.names, ph.landmarks.positions))
        return float(np.linalg.norm(p[m] - p[n]))

    assert (
        abs(dist(a, "asis_r", "lateral_malleolus_r") - dist(b, "asis_r", "lateral_malleolus_r"))
        > 20
    )
    for m, n in [("asis_r", "lateral_malleolus_l"), ("psis_l", "lateral_epicondyle_femur_r")]:
        assert abs(dist(a, m, n) - dist(b, m, n)) < 1e-6
    with pytest.raises(InputError, match="unknown angles"):
        make_phantom(spacing=(10.0, 10.0, 10.0), angles={"knee_bend": 3.0})


def test_cli_train_then_detect(tmp_path):
    from medpose.cli import main

    ckpt = tmp_path / "d.safetensors"
    rc = main(
        ["train-landmarks", str(ckpt), "--phantoms", "2", "--test-phantoms", "1",
         "--phantom-spacing", "10", "--spacing", "24", "--grid", "24,16,56", "--channels", "4,8",
         "--fine-patch", "0", "--steps", "2", "--quiet", "--device", "cpu"]
    )  # fmt: skip
    assert rc == 0
    cfg = load_detector(ckpt).config
    assert cfg.grid == (24, 16, 56) and "train-landmarks" in cfg.extra["command"]
    assert np.isfinite(cfg.extra["mean_radial_error_mm"])
    ph = make_phantom(spacing=(10.0, 10.0, 10.0), seed=9)
    vol_path = mp.write_volume(ph.volume, tmp_path / "ct.nii.gz")
    out = tmp_path / "found.mrk.json"
    rc = main(["detect-landmarks", str(vol_path), str(ckpt), str(out), "--min-confidence", "0"])
    assert rc == 0 and mp.read_landmarks(out).names == ph.landmarks.names
    none = tmp_path / "none.mrk.json"  # two training steps: no detection is confident
    args = ["detect-landmarks", str(vol_path), str(ckpt), str(none), "--min-confidence", "1"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(args) == 1
    assert "--include-flagged writes them all" in err.getvalue() and not none.exists()
    bad = tmp_path / "nan.nii.gz"
    arr = np.asarray(ph.volume.array, np.float32).copy()
    arr[0, 0, 0] = np.nan
    mp.write_volume(mp.Volume(arr, ph.volume.spacing, ph.volume.origin, ph.volume.direction), bad)
    assert main(["detect-landmarks", str(bad), str(ckpt), str(tmp_path / "x.mrk.json")]) == 1
    meta = json.loads(json.dumps(cfg.to_dict()))
    assert meta["landmarks"] == list(ph.landmarks.names)
