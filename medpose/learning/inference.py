"""``refine(sequence)``: the keypoint refiner applied to a 3D KeypointSequence."""

from __future__ import annotations

import numpy as np

from ..data import KeypointSequence
from .checkpoint import default_refiner
from .refiner import KeypointRefiner, check_sequence, clean_input, refine_positions

__all__ = ["refine"]

_DEFAULT: list[KeypointRefiner] = []


def refine(sequence: KeypointSequence, model: KeypointRefiner | None = None) -> KeypointSequence:
    """Refined copy of a 3D keypoint sequence (mm, Z-up world).

    The model's keypoints are first cleaned (:func:`~medpose.learning.refiner.clean_input`:
    left/right swap repair, outlier removal, short gaps filled), then refined.
    The keypoints the model was trained on (``model.config.keypoints``; the shipped model:
    MediaPipe Pose's 33) are replaced by the refiner's output, gaps included; any other
    keypoint is returned unchanged.  Confidence is kept (0 where a sample was missing, even if
    it is now filled: it was not measured).

    Parameters
    ----------
    sequence : KeypointSequence
        3D, millimetres, vertical along the third axis.
    model : KeypointRefiner, optional
        Default: the shipped model (:func:`medpose.learning.default_refiner`), loaded once.

    Raises
    ------
    InputError
        Not a 3D sequence, or it lacks keypoints the model needs (named in the message).
    """
    if model is None:
        if not _DEFAULT:
            _DEFAULT.append(default_refiner())
        model = _DEFAULT[0]
    names = model.config.keypoints
    pos = check_sequence(sequence, names, "refine")
    out = refine_positions(model, clean_input(pos, names, sequence.rate), sequence.rate)
    full = np.array(sequence.positions, dtype=float)
    idx = [sequence.index(n) for n in names]
    full[:, idx] = np.where(np.isfinite(out), out, full[:, idx])
    return sequence.with_positions(full, sequence.confidence)
