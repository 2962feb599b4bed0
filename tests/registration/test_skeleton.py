"""Patient skeleton from imaging, and the end-to-end check on a synthetic patient with known truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medpose import FrameMismatch, InputError, Landmarks, Transform
from medpose.registration import register, skeleton_landmarks_from_imaging
from medpose.synthetic import session as synthetic


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg") / "patient"
    synthetic.make_session(
        root,
        seed=1,
        exercises=("elbow_flexion",),
        repetitions=1,
        n_cameras=2,
        phantom_max_voxels=200_000,
    )
    return root


def test_synthetic_patient_registration_within_predicted_tre(session):
    from medpose.io.landmarks import read_landmarks
    from medpose.io.trc import read_trc

    imaging = read_landmarks(session / "imaging" / "landmarks.mrk.json")
    static = read_trc(session / "trials" / "static.trc")
    camera = Landmarks(static.names, np.nanmean(static.positions, axis=0), frame=static.frame)
    truth = Transform.from_dict(
        json.loads((session / "truth" / "transforms.json").read_text())["image_to_camera"]
    )
    names = [n for n in imaging.names if n in camera.names]
    assert len(names) >= 6
    reg = register(camera, imaging, names=names)
    assert (
        (reg.transform.source, reg.transform.target)
        == ("LPS", "camera")
        == (truth.source, truth.target)
    )
    err = np.linalg.norm(
        reg.transform.apply(imaging.positions) - truth.apply(imaging.positions), axis=1
    )
    tre = reg.predict_tre(imaging).to_numpy()  # FLE estimated from the FRE
    assert np.sqrt(np.mean(err**2)) < 1.5 * np.sqrt(np.mean(tre**2))
    assert np.all(err < 3 * tre)

    skel = skeleton_landmarks_from_imaging(reg, imaging)
    assert skel.frame == "camera" and set(skel.names) == set(names)
    true_cam = truth.apply(imaging.subset(skel.names))
    assert np.abs(skel.positions - true_cam.positions).max() < 3 * tre.max()


def test_skeleton_helper_filters_and_checks(pair):
    cam, ct = pair
    reg = register(cam, ct)
    lm = Landmarks(
        ("hip_r", "asis_l", "fid0", "nose"),
        [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10.0]],
        "LPS",
    )
    out = skeleton_landmarks_from_imaging(reg, lm)
    assert out.names == ("hip_r", "asis_l") and out.frame == "camera"
    assert np.allclose(out["asis_l"], reg.transform.apply([[10, 0, 0.0]])[0])
    assert skeleton_landmarks_from_imaging(reg, lm, kinds=("surface",)).names == ("nose",)
    with pytest.raises(FrameMismatch, match="frame 'camera'"):
        skeleton_landmarks_from_imaging(reg, lm.with_frame("camera"))
    with pytest.raises(InputError, match="none of the imaging landmarks"):
        skeleton_landmarks_from_imaging(reg, lm.subset(["fid0"]))
    with pytest.raises(InputError, match=r"\['fid0'\] are not medpose keypoint names"):
        skeleton_landmarks_from_imaging(reg, lm, names=["fid0"])
    with pytest.raises(InputError, match=r"\['knee_r'\] not among"):
        skeleton_landmarks_from_imaging(reg, lm, names=["knee_r"])
