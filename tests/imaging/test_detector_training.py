"""One training test: a small detector learns landmark positions on the CPU."""

from __future__ import annotations

import pytest

from medpose.imaging.detector import DetectorConfig
from medpose.imaging.detector_train import (
    evaluate_detector,
    mean_position_errors,
    train_landmarks,
    training_phantoms,
)


@pytest.mark.slow
def test_trained_detector_beats_the_mean_position_baseline_on_held_back_phantoms():
    # varied phantoms (height 1.50-1.95 m, joint angles, +-6 deg / +-30 mm placement, noise)
    train = training_phantoms(16, seed=0, spacing_mm=8.0)
    test = training_phantoms(4, seed=500, spacing_mm=8.0)
    names = tuple(train[0].landmarks.names)
    config = DetectorConfig(
        landmarks=names, spacing_mm=24.0, grid=(24, 16, 56), channels=(8, 16, 32), fine_patch=0
    )
    result = train_landmarks(
        train, config, steps=300, batch_size=2, lr=5e-3, alpha=0.1, augmentation=None,
        device="cpu", seed=0, progress=False,
    )  # fmt: skip
    learned = evaluate_detector(result.detector, test).error_mm.mean()
    baseline = mean_position_errors(train, test, names).error_mm.mean()
    assert baseline > 30.0  # the phantoms do vary: placement and body size move the landmarks
    assert learned < 0.6 * baseline, (learned, baseline)
