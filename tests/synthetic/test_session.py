"""Tests of medpose.synthetic.session: the session validates, loads, is deterministic and true."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from medpose.errors import InputError
from medpose.geometry import Transform
from medpose.io.trc import read_trc
from medpose.kinematics.fk import forward_kinematics, segment_poses
from medpose.synthetic.session import make_session, read_truth_angles


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "session"
    return make_session(root, seed=0, repetitions=1)  # one repetition: fewer 2D frame files


def test_default_session_validates_and_loads(made):
    from medpose.protocol.session import Session, validate_session

    assert validate_session(made.path) == []
    s = Session.load(made.path)
    assert [t.name for t in s.trials] == ["static", "shoulder_abduction", "squat"]
    assert "SYN-0000" not in repr(s)
    views = s.trial("squat").read_camera_keypoints()
    assert sorted(views) == ["cam01", "cam02", "cam03", "cam04"]


def test_same_seed_gives_byte_identical_files(made, tmp_path):
    other = make_session(tmp_path / "again", seed=0, repetitions=1)
    a, b = _hashes(made.path), _hashes(other.path)
    assert a.keys() == b.keys() and len(a) > 100
    assert a == b
    with (made.path / "imaging" / "ct.nii.gz").open("rb") as fh:
        head = fh.read(10)
    assert head[:2] == b"\x1f\x8b"


def test_every_file_reads_back(made):
    from medpose.imaging.volume import read_volume
    from medpose.io.calibration import read_calibration
    from medpose.io.keypoints import read_keypoints
    from medpose.io.landmarks import read_landmarks
    from medpose.io.mot import read_mot
    from medpose.io.openpose import read_openpose

    root = made.path
    vol = read_volume(root / "imaging" / "ct.nii.gz")
    assert np.array_equal(vol.array, made.phantom.volume.array)
    np.testing.assert_allclose(vol.origin, made.phantom.volume.origin, atol=1e-4)
    lm = read_landmarks(root / "imaging" / "landmarks.mrk.json")
    np.testing.assert_allclose(lm.positions, made.phantom.landmarks.positions, atol=1e-3)
    cams = read_calibration(root / "calibration" / "calibration.toml")
    assert all(c.allclose(m, atol=1e-6) for c, m in zip(cams, made.cameras))
    static = read_keypoints(root / "trials" / "static.trc")
    true_static = made.keypoints["static"]
    err = static.select(true_static.names).positions - true_static.positions
    assert np.std(err) == pytest.approx(1.0, rel=0.1)  # marker-based, 1 mm
    ml = read_keypoints(root / "trials" / "squat.trc")
    assert ml.rate == 30.0 and ml.n_frames == made.keypoints["squat"].n_frames
    op = read_openpose(root / "trials" / "squat" / "cam02_json", rate=30.0)
    assert op.n_frames == ml.n_frames
    mot = read_mot(root / "truth" / "angles_squat.mot", translations="keep")
    v = made.exercises["squat"].angles
    assert mot.names == v.names and mot.rate == pytest.approx(30.0)
    np.testing.assert_allclose(mot.values, v.values, atol=1e-5)
    for f in (
        "transforms.json",
        "landmarks_camera.json",
        "landmarks_lps.json",
        "segment_lengths.json",
        "faults.json",
        "params.json",
    ):
        json.loads((root / "truth" / f).read_text())


def test_truth_is_consistent(made):
    tr = json.loads((made.path / "truth" / "transforms.json").read_text())
    img2cam = Transform.from_dict(tr["image_to_camera"])
    assert img2cam.source == "LPS" and img2cam.target == "camera"
    # imaging landmarks mapped by the truth transform = static-trial landmarks in the camera frame
    mapped = img2cam.apply(made.phantom.landmarks)
    np.testing.assert_allclose(mapped.positions, made.landmarks_camera.positions, atol=1e-6)
    names = made.keypoints["static"].names
    idx = [names.index(n) for n in mapped.names]
    np.testing.assert_allclose(
        mapped.positions, made.keypoints["static"].positions[0, idx], atol=1e-6
    )
    # FK of the true angles = the true keypoints
    sk2cam = Transform.from_dict(tr["skeleton_to_camera"])
    for name, ex in made.exercises.items():
        kp = sk2cam.apply(forward_kinematics(made.skeleton, np.asarray(ex.angles.values)))
        np.testing.assert_allclose(kp, made.keypoints[name].positions, atol=1e-6)
    lengths = json.loads((made.path / "truth" / "segment_lengths.json").read_text())["lengths"]
    assert lengths["thigh_r"] == pytest.approx(made.skeleton.lengths["thigh_r"])


def test_2d_keypoints_reproject_from_truth(made):
    from medpose.io.openpose import read_openpose

    truth = made.keypoints["shoulder_abduction"]
    errs = []
    for cam in made.cameras:
        op = read_openpose(
            made.path / "trials" / "shoulder_abduction" / f"{cam.name}_json", rate=30.0
        )
        px = cam.project(truth.select(op.names).positions)
        errs.append(np.linalg.norm(op.positions - px, axis=2)[np.isfinite(op.positions[..., 0])])
    e = np.concatenate(errs)
    assert np.median(e) == pytest.approx(
        2.0 * np.sqrt(2 * np.log(2)), rel=0.15
    )  # Rayleigh median, sigma 2 px


def test_faults_are_reported(made):
    faults = json.loads((made.path / "truth" / "faults.json").read_text())
    rep = faults["squat"]["markerless_3d"]
    assert {"gaps", "swaps", "outliers", "dropouts", "bias_mm"} <= set(rep)
    assert set(faults["squat"]["views"]) == {"cam01", "cam02", "cam03", "cam04"}


def test_bad_arguments(tmp_path, made):
    with pytest.raises(InputError, match="not an empty folder"):
        make_session(made.path)
    with pytest.raises(InputError, match=r"unknown exercises \['yoga'\]"):
        make_session(tmp_path / "x", exercises=("yoga",))
    with pytest.raises(InputError, match="impairment"):
        make_session(tmp_path / "y", impairment={"side": "up", "amount": 0.3})


def test_a_session_with_a_segment_fixed_detector_bias(tmp_path):
    """``markerless_options={"bias_frame": "segment"}``: each trial keypoint's offset from the
    truth is the reported vector turned by its segment's true rotation (no jitter or faults
    here, so exactly)."""
    quiet = {"sigma_mm": 0.0, "dropout": 0.0, "gap_rate": 0.0, "swap_rate": 0.0}
    made = make_session(
        tmp_path / "s",
        seed=2,
        exercises=("squat",),
        repetitions=1,
        imaging=False,
        camera_views=False,
        markerless_options={**quiet, "outlier_rate": 0.0, "bias_frame": "segment"},
    )
    rep = json.loads((made.path / "truth" / "faults.json").read_text())["squat"]["markerless_3d"]
    assert rep["bias_frame"] == "segment"
    obs = read_trc(made.path / "trials" / "squat.trc")
    sk = made.skeleton
    truth = made.keypoints["squat"].select(obs.names).positions
    seg_r, _ = segment_poses(sk, np.asarray(made.exercises["squat"].angles.values))
    cam = made.transforms["skeleton_to_camera"].rotation.as_matrix()
    segs = [int(sk.keypoint_segment[sk.keypoint_index(n)]) for n in obs.names]
    bias = np.array([rep["bias_mm"][n] for n in obs.names])
    turned = np.einsum("tkij,kj->tki", cam @ np.asarray(seg_r)[:, segs], bias)
    np.testing.assert_allclose(obs.positions, truth + turned, atol=1e-3)  # .trc precision
    assert np.ptp(turned, axis=0).max() > 20.0  # the knees' offsets swing through the squat
    with pytest.raises(InputError, match="bias_frame must be 'world' or 'segment', found 'body'"):
        make_session(tmp_path / "t", markerless_options={"bias_frame": "body"})


def test_read_truth_angles(made):
    """The true angles written for a trial read back as generated, with the frames inside its
    repetition windows; an unknown trial is refused naming the file."""
    trial = next(iter(made.exercises))
    angles, inside = read_truth_angles(made.path, trial)
    want = made.exercises[trial].angles
    assert list(angles.columns) == list(want.names)
    np.testing.assert_allclose(angles.to_numpy(), np.asarray(want.values), atol=1e-6)
    windows = made.params["repetition_windows_s"][trial]
    t = angles.index.to_numpy()
    assert inside.sum() == sum(int(((t >= a) & (t <= b)).sum()) for a, b in windows) > 0
    with pytest.raises(InputError, match=r"angles_yoga\.csv: file not found"):
        read_truth_angles(made.path, "yoga")
