"""navigation_auto: landmarks detected in the session's CT, registered to camera keypoints."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import medpose as mp
from medpose.errors import ProtocolError


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("nav") / "s"
    # the shipped detector was trained at 1.5 mm; a 3 mm phantom keeps the test small
    truth = mp.synthetic.make_session(
        root, seed=3, protocol="navigation_auto", phantom_spacing=(3.0, 3.0, 3.0),
        phantom_max_voxels=3_000_000,
    )  # fmt: skip
    return root, truth


def test_detected_landmarks_register_and_pass_the_gate(session):
    root, _ = session
    a = mp.Protocol.load("navigation_auto").run(root)
    assert a.gate.passed, a.gate
    reg = a.registration
    used = reg.loc[reg["item"] == "detection", "name"].tolist()
    pairs = mp.Protocol.load("navigation_auto").spec.registration.pairs
    fid = reg.loc[reg["item"] == "fiducial", "name"].tolist()
    assert set(fid) == set(pairs) - set(reg.loc[reg["item"] == "flagged", "name"])
    assert set(fid) <= set(used)
    tre = reg.loc[reg["item"] == "tre"]
    assert set(tre["name"]) == {"hip_r", "hip_l"} and (tre["value"] < 10.0).all()


def test_a_low_confidence_detection_is_left_out_and_reported(session, tmp_path):
    root, _ = session
    proto = mp.Protocol.load("navigation_auto")
    a = proto.run(root)
    reg = a.registration
    det = reg[reg["item"].isin(["detection", "flagged"])].set_index("name")["value"]
    conf = det.loc[list(proto.spec.registration.pairs)]
    # a threshold just above the least confident paired detection flags exactly that one
    worst = str(conf.idxmin())
    thr = float(np.nextafter(conf.min(), 1.0))
    text = resources.files("medpose.resources").joinpath("protocols/navigation_auto.yaml")
    text = text.read_text()
    path = tmp_path / "auto.yaml"
    path.write_text(text.replace("{min_confidence: 0.3}", f"{{min_confidence: {thr!r}}}"))
    b = mp.Protocol.load(path).run(root)
    reg = b.registration
    assert worst in set(reg.loc[reg["item"] == "flagged", "name"])
    assert worst not in set(reg.loc[reg["item"] == "fiducial", "name"])


def test_a_session_without_a_volume_is_refused(tmp_path):
    root = tmp_path / "s"
    mp.synthetic.make_session(root, seed=1, protocol="navigation_check")
    vol = next((root / "imaging").glob("ct*"))
    vol.unlink()
    with pytest.raises(ProtocolError, match=r"imaging\.volume"):
        mp.Protocol.load("navigation_auto").run(root)
