"""The detector's own FLE: validation record in the checkpoint, used by detect_and_register."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medpose.data import Landmarks
from medpose.errors import InputError
from medpose.imaging.detector import (
    DetectorConfig,
    LandmarkDetector,
    load_detector,
    shipped_detector,
)
from medpose.imaging.detector_run import detect_and_register_with, detector_fle
from medpose.imaging.detector_train import validation_record, varied_phantom


def _errors(bias, sd, n, seed=0, names=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for k, name in enumerate(names):
            e = np.asarray(bias[k]) + rng.normal(0.0, sd[k], 3)
            rows.append(
                {"phantom": i, "landmark": name, "dx_mm": e[0], "dy_mm": e[1], "dz_mm": e[2],
                 "error_mm": float(np.linalg.norm(e)), "confidence": 0.9}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_validation_record_holds_bias_and_second_moment_and_skips_flagged():
    bias = [(0.8, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, -0.3, 0.3)]
    sd = [0.2, 0.5, 0.1]
    df = _errors(bias, sd, 4000)
    df.loc[df.index[:3], ["dx_mm", "confidence"]] = [50.0, 0.05]  # gross failures, flagged
    rec = validation_record(df, 0.3, seeds="x")
    a, b = rec["landmarks"]["a"], rec["landmarks"]["b"]
    assert rec["phantoms"] == 4000 and rec["seeds"] == "x" and a["flagged"] == 1
    np.testing.assert_allclose(a["bias_mm"], bias[0], atol=0.02)
    # second moment = covariance + bias bias^T; RMS includes the bias
    want = 0.2**2 * np.eye(3) + np.outer(bias[0], bias[0])
    np.testing.assert_allclose(a["moment_mm2"], want, atol=0.01)
    assert a["rms_mm"] == pytest.approx(np.sqrt(0.64 + 3 * 0.04), rel=0.02)
    assert b["rms_mm"] == pytest.approx(np.sqrt(3) * 0.5, rel=0.03)
    with pytest.raises(InputError, match="at least 2"):
        validation_record(df[df.phantom == 0])


def test_detector_fle_reads_the_record_and_refuses_missing_landmarks():
    cfg = DetectorConfig(landmarks=("a", "b", "c"), spacing_mm=8.0, grid=(16, 16, 16),
                         channels=(4, 8), fine_patch=0)  # fmt: skip
    det = LandmarkDetector(cfg)
    assert detector_fle(det, ["a", "b"]) is None  # no record: no FLE
    rec = validation_record(_errors([(0.5, 0, 0)] * 3, [0.2] * 3, 50))
    det = LandmarkDetector(cfg.with_(extra={"validation": rec}))
    cov = detector_fle(det, ["c", "a"])
    np.testing.assert_allclose(cov[1], rec["landmarks"]["a"]["moment_mm2"])
    with pytest.raises(InputError, match=r"lacks landmarks \['zz'\]"):
        detector_fle(det, ["a", "zz"])


def test_shipped_detector_records_its_validation_error():
    det = load_detector(shipped_detector())
    val = det.config.extra["validation"]
    assert set(val["landmarks"]) == set(det.config.landmarks)
    assert val["phantoms"] >= 20 and val["min_confidence"] == det.config.min_confidence
    for r in val["landmarks"].values():
        assert r["rms_mm"] ** 2 == pytest.approx(np.trace(r["moment_mm2"]))


@pytest.mark.slow
def test_detect_and_register_uses_the_detectors_fle_on_a_small_phantom():
    ph = varied_phantom(4_000_000, spacing_mm=3.0)
    truth = np.asarray(ph.landmarks.positions)
    body = ph.image_to_body.apply(truth)
    cam = Landmarks(ph.landmarks.names, body, frame="skeleton")
    reg, det = detect_and_register_with(ph.volume, None, cam, fle=1.0)
    names = [str(n) for n in reg.names]
    model = load_detector(shipped_detector())
    # the moving side's FLE is the record's, per fiducial; the camera side the number given
    np.testing.assert_allclose(reg.fle[1], detector_fle(model, names))
    np.testing.assert_allclose(reg.fle[0], np.broadcast_to(np.eye(3) / 3.0, (len(names), 3, 3)))
    assert set(det.flagged).isdisjoint(names)
    # the registration is good where the detections are (3 mm voxels: a few mm at most)
    tre = np.linalg.norm(reg.transform.apply(truth) - body, axis=1)
    assert tre.max() < 5.0, tre
