"""The ``register`` step of a protocol (``navigation_check``): imaging landmarks to cameras.

:func:`check_navigation` registers the session's imaging landmarks (the moving set, LPS) to
the same anatomical points in the cleaned keypoints of the registration's trial (the fixed
set: each keypoint's mean position over the trial, frame of the keypoints), paired by the
protocol's ``registration.pairs`` (imaging landmark -> keypoint), with
:func:`medpose.register` and the protocol's ``steps.register`` settings and ``fle_mm``.  The
predicted TRE (:meth:`~medpose.registration.Registration.predict_tre`) is given at each of the
protocol's ``targets``: an imaging landmark of that name, else the keypoint of that name mapped
into the imaging frame by the inverse registration (a joint centre such as ``hip_r`` is seen by
the cameras, not picked on the image).  The protocol's gate (:class:`medpose.QualityGate`)
decides pass or fail.

With the step ``detect_landmarks`` (``navigation_auto``) the imaging landmarks are not read
from a file: they are detected in the session's volume by a landmark detector
(:func:`medpose.imaging.detector_run.detect_landmarks`; ``checkpoint:`` a ``.safetensors``
path, relative to the working folder, default the detector shipped with medpose;
``min_confidence:`` overrides the detector's threshold).  Detections below the confidence
threshold are left out of the pairs and reported (``flagged`` rows); each detection used is a
``detection`` row (its confidence).  When the protocol gives ``fle_mm`` (the camera side), the
detected side's FLE is the detector's own per-landmark error
(:func:`~medpose.imaging.detector_run.detector_fle`); otherwise the FLE is estimated from the
residuals, as without detection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..data import KeypointSequence, Landmarks
from ..errors import ProtocolError
from ..registration.paired import register
from .assessment import METRIC_COLUMNS, REGISTRATION_COLUMNS, SCORE_COLUMNS, Assessment
from .session import Session

if TYPE_CHECKING:
    from ..registration.gate import GateResult
    from .definition import Protocol

__all__ = ["check_navigation"]

_NO_CI = "no CI: one registration"


def _metric(trial: str, key: str, name: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "trial": trial,
        "metric": key,
        "joint": name,
        "side": "",
        "repetition": math.nan,
        "value": float(value),
        "unit": unit,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "reason": _NO_CI if math.isfinite(value) else "not measured",
    }


def check_navigation(
    protocol: Protocol, session: Session, sequence: KeypointSequence
) -> tuple[pd.DataFrame, GateResult, Assessment]:
    """Register the imaging landmarks to ``sequence`` and apply the protocol's gate.

    Returns
    -------
    registration : DataFrame
        :data:`~medpose.protocol.assessment.REGISTRATION_COLUMNS`: one ``fre`` row, one
        ``tre`` row per target, one ``fiducial`` row per pair (residual, outlier), one
        ``gate`` row (``passed``) and one ``reason`` row per failed criterion.
    gate : GateResult
    assessment : Assessment
        The same as metrics (``fre``, ``tre`` per target, ``fiducial_residual`` per
        fiducial, ``n_outliers``, ``gate_passed``) of the registration's trial.

    Raises
    ------
    ProtocolError
        Paired names missing from the landmarks or the keypoints (listed with the names
        present), or a target found in neither.
    """
    spec = protocol.spec.registration
    if spec is None:
        raise ProtocolError(f"{protocol.name}: no registration section")
    trial = spec.trial
    pairs = dict(spec.pairs)
    detect = protocol.spec.steps.get("detect_landmarks")
    found: dict[str, Any] | None = None
    if detect is None:
        image = session.read_landmarks()
    else:
        found = _detect(session, detect)
        image = found["detection"].landmarks
        pairs = {k: v for k, v in pairs.items() if k not in found["detection"].flagged}
    lost_img = [n for n in pairs if n not in image.names]
    lost_kp = [k for k in pairs.values() if k not in sequence.names]
    if lost_img or lost_kp:
        raise ProtocolError(
            f"{protocol.name}: registration pairs missing from the imaging landmarks "
            f"{lost_img} and from the keypoints of trial {trial!r} {lost_kp}; landmarks: "
            f"{list(image.names)}; keypoints: {list(sequence.names)}"
        )
    with np.errstate(all="ignore"):
        mean = np.nanmean(sequence.positions, axis=0)  # (K, 3)
    idx = [sequence.names.index(k) for k in pairs.values()]
    fixed = Landmarks(tuple(pairs), mean[idx], frame=sequence.frame)
    moving = image.subset(list(pairs))
    settings = protocol.spec.steps.register_
    kwargs = settings.model_dump() if settings is not None else {}
    fle: Any = spec.fle_mm
    if found is not None and spec.fle_mm is not None:
        from ..imaging.detector_run import detector_fle

        own = detector_fle(found["model"], list(pairs))
        fle = fle if own is None else {"fixed": spec.fle_mm, "moving": own}
    reg = register(fixed, moving, fle=fle, **kwargs)
    # targets in the imaging frame
    back = reg.transform.inverse()
    names, points = [], []
    for t in spec.targets:
        if t in image.names:
            points.append(image.positions[image.names.index(t)])
        elif t in sequence.names and np.isfinite(mean[sequence.names.index(t)]).all():
            points.append(np.asarray(back.apply(mean[sequence.names.index(t)]), dtype=float))
        else:
            raise ProtocolError(
                f"{protocol.name}: target {t!r} is neither an imaging landmark nor a keypoint "
                f"seen in trial {trial!r}; landmarks: {list(image.names)}"
            )
        names.append(t)
    targets = Landmarks(tuple(names), np.reshape(points, (-1, 3)), frame=image.frame)
    gate_spec = protocol.quality_gate()
    assert gate_spec is not None
    gate = gate_spec.check(reg, targets if names else None, landmarks=image)
    tre = gate.values.get("tre_mm") or (
        dict(zip(names, np.atleast_1d(np.asarray(reg.predict_tre(targets), float)).tolist()))
        if names
        else {}
    )
    limits = gate_spec.max_tre_mm
    rows: list[dict[str, Any]] = [
        _reg(trial, "fre", "", reg.fre, "mm", gate_spec.max_fre_mm, None),
    ]
    for name, v in tre.items():
        lim = limits.get(name) if isinstance(limits, Mapping) else limits
        rows.append(_reg(trial, "tre", name, v, "mm", lim, None))
    outliers = set(reg.outliers)
    for name, v in reg.residuals.items():
        rows.append(_reg(trial, "fiducial", str(name), float(v), "mm", None, name in outliers))
    if found is not None:
        d = found["detection"]
        for name, c in zip(d.landmarks.names, d.confidence):
            item = "flagged" if name in d.flagged else "detection"
            rows.append(_reg(trial, item, str(name), float(c), "1", d.min_confidence, None))
    rows.append(_reg(trial, "gate", str(gate), float(gate.passed), "1", None, None))
    for why in gate.reasons:
        rows.append(_reg(trial, "reason", why, math.nan, "", None, None))
    table = pd.DataFrame(rows, columns=list(REGISTRATION_COLUMNS))
    table["passed"] = bool(gate.passed)
    metrics = [_metric(trial, "fre", "", reg.fre, "mm")]
    metrics += [_metric(trial, "tre", n, v, "mm") for n, v in tre.items()]
    metrics += [
        _metric(trial, "fiducial_residual", str(n), float(v), "mm")
        for n, v in reg.residuals.items()
    ]
    metrics.append(_metric(trial, "n_outliers", "", float(len(outliers)), "count"))
    metrics.append(_metric(trial, "gate_passed", "", float(gate.passed), "1"))
    assessment = Assessment(
        protocol=f"{protocol.name} {protocol.version}",
        protocol_hash=protocol.hash,
        trial=trial,
        sides=(),
        metrics=pd.DataFrame(metrics, columns=list(METRIC_COLUMNS)),
        scores=pd.DataFrame(columns=list(SCORE_COLUMNS)),
        repetitions=pd.DataFrame(),
        score=math.nan,
        score_reason="the protocol defines no composite",
        composite=None,
        rate=float(sequence.rate),
        info={
            "registration": {
                "outliers": sorted(map(str, outliers)),
                "gate": str(gate),
                **(
                    {}
                    if found is None
                    else {
                        "flagged": list(found["detection"].flagged),
                        "detection": list(found["detection"].notes),
                    }
                ),
            }
        },
    )
    return table, gate, assessment


def _detect(session: Session, settings: Any) -> dict[str, Any]:
    """Detect the landmarks in the session's volume (``steps.detect_landmarks``)."""
    from ..imaging.detector import load_detector, shipped_detector
    from ..imaging.detector_run import detect_landmarks

    path = settings.checkpoint or shipped_detector()
    model = load_detector(path)
    detection = detect_landmarks(
        session.read_volume(), model, min_confidence=settings.min_confidence
    )
    return {"model": model, "detection": detection}


def _reg(
    trial: str,
    item: str,
    name: str,
    value: float,
    unit: str,
    limit: float | None,
    outlier: bool | None,
) -> dict[str, Any]:
    return {
        "trial": trial,
        "item": item,
        "name": name,
        "value": float(value),
        "unit": unit,
        "limit": math.nan if limit is None else float(limit),
        "outlier": outlier,
        "passed": None,
    }
