"""What a protocol reads from one trial's data: its joint angles and the keypoints of its criteria.

:func:`trial_inputs` fits 3D keypoints with the protocol's fit settings (a Fit, joint angles or a
DataFrame of angles are read as they are) and drops the frames the fit fitted poorly
(:attr:`Fit.poor_frames`: no posture of the skeleton comes near all their keypoints) from the
angles and from the keypoints the criteria are measured on, so that every metric reads around
them as it reads around frames with too few keypoints.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..data import JointAngles, KeypointSequence
from ..errors import InputError
from ..kinematics.fit import Fit, fit
from ..scoring.derived_angles import with_derived
from .criteria import keypoints_of

if TYPE_CHECKING:
    from .definition import Protocol

__all__ = ["trial_inputs", "sequence_without_frames"]


def sequence_without_frames(seq: KeypointSequence, frames: np.ndarray) -> KeypointSequence:
    """``seq`` with every keypoint of ``frames`` missing (NaN, confidence 0)."""
    pos = np.array(seq.positions, dtype=float)
    conf = np.array(seq.confidence, dtype=float)
    pos[frames], conf[frames] = np.nan, 0.0
    return KeypointSequence(pos, seq.names, seq.rate, confidence=conf, frame=seq.frame,
                            start=seq.start)  # fmt: skip


def _fitted(protocol: Protocol, data: KeypointSequence) -> Fit:
    settings = protocol.spec.steps.fit
    kwargs = settings.fit_kwargs() if settings is not None else {}
    patient = None
    mode = settings.calibrate if settings is not None else "auto"
    if mode in ("movement", "static"):
        from ..kinematics.calibrate import calibrate

        if mode == "static":  # one trial given: no static trial at hand
            warnings.warn(
                f"protocol {protocol.name}: steps.fit.calibrate is 'static', but one trial "
                "was given; calibrating on the movement itself",
                stacklevel=4,
            )
        patient = calibrate(data, min_confidence=kwargs.get("min_confidence", 0.3))
    return fit(data, patient, **kwargs, calibrate=False)


def trial_inputs(
    protocol: Protocol, data: Any, keypoints: KeypointSequence | None = None
) -> tuple[pd.DataFrame, float, Any, tuple[np.ndarray, tuple[str, ...]] | None]:
    """Joint angles (T, D) in degrees with the derived ones, the rate (Hz), the data (3D
    keypoints fitted), and the keypoints ``(T, K, 3)`` and names the criteria read (``keypoints``,
    else the data's own: :func:`~medpose.protocol.criteria.keypoints_of`).  Keypoints fitted
    here lose their frames fitted poorly, in the fit and in the criteria's keypoints alike."""
    if isinstance(data, KeypointSequence):
        seq, data = data, _fitted(protocol, data)
        poor = data.poor_frames
        if len(poor):  # their angles are uncertain: read around them
            data = data.without_frames(poor)
            seq = sequence_without_frames(seq, poor)
        keypoints = seq if keypoints is None else keypoints
    points = keypoints_of(data if keypoints is None else keypoints)
    if isinstance(data, Fit):
        return with_derived(data.angles), float(data.rate), data, points
    if isinstance(data, JointAngles):
        values = pd.DataFrame(np.asarray(data.values, float), columns=list(data.names))
        return with_derived(values), float(data.rate), data, points
    if isinstance(data, pd.DataFrame):
        rate = data.attrs.get("rate_hz")
        if rate is None:
            t = np.asarray(data.index, dtype=float)
            step = np.diff(t)
            if t.size < 2 or not np.all(step > 0) or np.ptp(step) > 1e-6 * step.mean():
                raise InputError(
                    f"{protocol.name}.run: a DataFrame of angles needs attrs['rate_hz'] or an "
                    "evenly spaced, increasing time index in seconds; found neither"
                )
            rate = 1.0 / float(step.mean())
        return with_derived(data), float(rate), data, points
    raise InputError(
        f"{protocol.name}.run: found {type(data).__name__}; expected a KeypointSequence, a Fit, "
        "JointAngles or a DataFrame of joint angles in degrees"
    )
