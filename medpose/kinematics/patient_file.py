"""The content of a :class:`~medpose.kinematics.patient.PatientSkeleton` file (YAML or JSON;
docs/calibration.md, "The patient skeleton file"): the document written, and the fields read
back from it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .skeleton import Skeleton

#: The fields of a patient skeleton file, in the order written; every one is required.
FIELDS = (
    "medpose",
    "version",
    "patient_id",
    "source",
    "height_mm",
    "n_frames",
    "keypoints",
    "lengths_mm",
    "method",
    "keypoint_offsets_mm",
    "joint_centres_mm",
    "joint_axes_deg",
    "keypoint_model",
    "status",
    "residual_before_mm",
    "residual_after_mm",
    "rms_prior_mm",
    "rms_calibrated_mm",
)


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
    the file's lengths, offsets and axes apply to).  ValueError naming the field that is missing
    or malformed, with what was found.

    Every field :func:`patient_document` writes must be there (a file cut short loses its last
    fields, so a truncated file is refused rather than read with defaults that change the
    angles), and ``lengths_mm`` must give every segment of ``base``."""
    missing = [k for k in FIELDS if k not in doc]
    if missing:
        raise ValueError(
            f"field {missing[0]!r} is missing"
            + (f" (and {', '.join(map(repr, missing[1:]))})" if missing[1:] else "")
            + "; expected every field a patient skeleton file has (a file cut short? "
            "calibrate again: medpose calibrate)"
        )

    def read(key: str, convert: Any) -> Any:
        try:
            return convert(doc[key])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            found = "" if isinstance(doc[key], Mapping) else f", found {doc[key]!r}"
            raise ValueError(f"field {key!r}: malformed ({exc}){found}") from None

    def triples(v: Any) -> MappingProxyType:
        out = {k: tuple(map(float, t)) for k, t in (v or {}).items()}
        bad = {k: t for k, t in out.items() if len(t) != 3}
        if bad:
            raise ValueError(f"expected 3 numbers (x, y, z) per name, found {bad}")
        return MappingProxyType(out)

    floats = lambda v: MappingProxyType({k: float(x) for k, x in v.items()})  # noqa: E731
    lengths = read("lengths_mm", floats)
    absent = [s for s in base.length_names if s not in lengths]
    if absent:
        raise ValueError(
            f"field 'lengths_mm': no length for {absent}; expected one for every segment "
            f"({len(base.length_names)}), found {len(lengths)}"
        )
    offsets = read("keypoint_offsets_mm", triples)
    centres = read("joint_centres_mm", triples)
    axes = read("joint_axes_deg", triples)
    sk = base.with_lengths(dict(lengths)).with_offsets(offsets, centres).with_axes(dict(axes))
    return dict(
        skeleton=sk,
        lengths=lengths,
        method=read("method", lambda v: MappingProxyType(dict(v))),
        source=read("source", str),
        height_mm=read("height_mm", float),
        n_frames=read("n_frames", int),
        keypoints=read("keypoints", lambda v: tuple(str(k) for k in v)),
        keypoint_offsets=offsets,
        joint_centres=centres,
        joint_axes=axes,
        keypoint_model=read("keypoint_model", lambda v: v if v is None else str(v)),
        status=read("status", lambda v: MappingProxyType(dict(v))),
        residual_before_mm=read("residual_before_mm", floats),
        residual_after_mm=read("residual_after_mm", floats),
        rms_prior_mm=read("rms_prior_mm", float),
        rms_calibrated_mm=read("rms_calibrated_mm", float),
        patient_id=read("patient_id", lambda v: v if v is None else str(v)),
    )
