"""The content of a :class:`~medpose.kinematics.patient.PatientSkeleton` file (YAML or JSON;
docs/calibration.md, "The patient skeleton file"): the document written, and the fields read
back from it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .skeleton import Skeleton


def patient_document(p: Any, version: int) -> dict[str, Any]:
    """The file's content (JSON-able) for the patient skeleton ``p``."""
    r3 = lambda t: [round(float(v), 4) for v in t]  # noqa: E731
    return {
        "medpose": "patient_skeleton",
        "version": version,
        "patient_id": p.patient_id,
        "source": p.source,
        "height_mm": float(p.height_mm),
        "n_frames": int(p.n_frames),
        "keypoints": list(p.keypoints),
        "lengths_mm": {k: float(v) for k, v in p.lengths.items()},
        "method": dict(p.method),
        "keypoint_offsets_mm": {k: r3(v) for k, v in p.keypoint_offsets.items()},
        "joint_centres_mm": {k: r3(v) for k, v in p.joint_centres.items()},
        "joint_axes_deg": {k: r3(v) for k, v in p.joint_axes.items()},
        "keypoint_model": p.keypoint_model,
        "status": dict(p.status),
        "residual_before_mm": {k: float(v) for k, v in p.residual_before_mm.items()},
        "residual_after_mm": {k: float(v) for k, v in p.residual_after_mm.items()},
        "rms_prior_mm": float(p.rms_prior_mm),
        "rms_calibrated_mm": float(p.rms_calibrated_mm),
    }


def patient_fields(doc: Mapping[str, Any], base: Skeleton) -> dict[str, Any]:
    """The keyword arguments of ``PatientSkeleton`` from a file's content (``base``: the skeleton
    the file's lengths, offsets and axes apply to).  KeyError, TypeError or ValueError on a
    missing or malformed field."""
    sk = base.with_lengths(dict(doc["lengths_mm"]))
    sk = sk.with_offsets(doc.get("keypoint_offsets_mm"), doc.get("joint_centres_mm"))
    sk = sk.with_axes(doc.get("joint_axes_deg") or {})
    triples = lambda key: MappingProxyType(  # noqa: E731
        {k: tuple(map(float, v)) for k, v in (doc.get(key) or {}).items()}
    )
    return dict(
        skeleton=sk,
        lengths=MappingProxyType({k: float(v) for k, v in doc["lengths_mm"].items()}),
        method=MappingProxyType(dict(doc.get("method", {}))),
        source=str(doc["source"]),
        height_mm=float(doc["height_mm"]),
        n_frames=int(doc.get("n_frames", 0)),
        keypoints=tuple(str(k) for k in doc.get("keypoints", ())),
        keypoint_offsets=triples("keypoint_offsets_mm"),
        joint_centres=triples("joint_centres_mm"),
        joint_axes=triples("joint_axes_deg"),
        keypoint_model=doc.get("keypoint_model"),
        status=MappingProxyType(dict(doc.get("status", {}))),
        residual_before_mm=MappingProxyType(dict(doc.get("residual_before_mm", {}))),
        residual_after_mm=MappingProxyType(dict(doc.get("residual_after_mm", {}))),
        rms_prior_mm=float(doc.get("rms_prior_mm", float("nan"))),
        rms_calibrated_mm=float(doc.get("rms_calibrated_mm", float("nan"))),
        patient_id=doc.get("patient_id"),
    )
