"""The patient's skeleton: segment lengths held constant over a session.

Lengths (mm) are measured between pairs of keypoints whose distance does not depend on the pose
(a joint centre and the next joint centre: hip-knee gives the thigh), as the **median over
confident frames** of a static trial or of a whole movement sequence, or from one set of
imaging landmarks registered into the camera frame.  The median makes the estimate robust to
jitter, outliers and short left/right swaps.  Lengths that no keypoint pair measures are scaled
from a body height estimated from the measured ones (the skeleton's default fractions of height,
Winter 2009, Fig. 4.1), and the report says which is which.

The distance between the two keypoints of a pair is an affine function of the length in the
skeleton's zero pose (``d = a L + b``); ``a`` and ``b`` are read off the skeleton itself, so the
estimate stays consistent with ``resources/skeleton.yaml`` whatever its offsets.  The trunk
length from ``pelvis``-``neck`` is exact only at neutral lumbar flexion (the median over a
sequence is close for upright movements).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..data import KeypointSequence, Landmarks
from ..errors import InputError
from ..io._structured import load_json, load_yaml
from ..io._util import atomic_write, display_name
from ..layouts import to_medpose_names
from .fk import forward_kinematics
from .keypoint_models import KeypointModel
from .patient_file import patient_document, patient_fields
from .skeleton import Skeleton

__all__ = [
    "PatientSkeleton",
    "estimate_skeleton",
    "skeleton_from_landmarks",
    "LENGTH_PAIRS",
    "plausible_height_mm",
]

#: Keypoint pairs that measure each length, best first ("_s" = each side).
LENGTH_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("pelvis_width", "asis_r", "asis_l"),
    ("pelvis_width", "hip_r", "hip_l"),
    ("shoulder_width", "shoulder_r", "shoulder_l"),
    ("trunk", "pelvis", "neck"),
    ("head", "neck", "head_top"),
    ("head", "ear_r", "ear_l"),
    ("thigh_s", "hip_s", "knee_s"),
    ("shank_s", "knee_s", "ankle_s"),
    ("foot_s", "heel_s", "big_toe_s"),
    ("foot_s", "ankle_s", "big_toe_s"),
    ("upper_arm_s", "shoulder_s", "elbow_s"),
    ("forearm_s", "elbow_s", "wrist_s"),
    ("hand_s", "wrist_s", "hand_s"),
    ("hand_s", "wrist_s", "index_s"),
)

#: Body heights (mm) accepted as human; outside, the data are taken to be in the wrong unit.
plausible_height_mm = (700.0, 2700.0)


#: Version of the file :meth:`PatientSkeleton.save` writes.
FILE_VERSION = 1

#: A calibration is *warranted* (:attr:`PatientSkeleton.warranted`) when it lowers the
#: confidence-weighted RMS keypoint residual of its frames by at least this fraction of the
#: prior skeleton's.  Measured (docs/calibration.md): 0.7-2.5 % where the keypoints sit at the
#: default skeleton's joint centres (nothing to find: fitting noise and the posture prior), 41-59 %
#: with a 20 mm detector bias, 46-93 % on OpenSim's markers, 38-66 % on the real recordings.
WARRANTED_GAIN = 0.10
#: ... and by at least this many mm: on exact keypoints (no noise, nothing to find) a few hundredths
#: of a mm fall to thousandths, a large fraction that moves the poorly seen offsets for nothing.
WARRANTED_MM = 1.0


@dataclass(frozen=True, kw_only=True)
class PatientSkeleton:
    """A patient's skeleton and how it was obtained: lengths, and after a calibration
    (:func:`medpose.kinematics.calibrate.calibrate`) where each keypoint and joint centre sits.

    Attributes
    ----------
    skeleton : Skeleton
        The personalised skeleton.
    lengths : Mapping[str, float]
        Every length in mm.
    method : Mapping[str, str]
        Per length: ``"median of 412 frames, hip_r-knee_r"`` or ``"scaled from height"``.
    source : str
        ``"static trial"``, ``"sequence"``, ``"imaging landmarks"``, or ``"calibration on a
        static trial"`` / ``"calibration on the movement"``.
    height_mm : float
        Body height implied by the measured lengths (median over them).
    keypoints : tuple of str
        The keypoints (medpose names) the calibration used: its layout.  Empty for lengths only.
    keypoint_offsets, joint_centres : Mapping[str, tuple of 3 floats]
        Calibrated positions (mm): each keypoint in its segment's frame, each joint centre in
        its parent's frame (:meth:`Skeleton.with_offsets`).
    joint_axes : Mapping[str, tuple of 3 floats]
        Calibrated hinge axes: per segment, the constant angles (degrees) of the fixed
        rotations of its joint's sequence (:meth:`Skeleton.with_axes`), e.g. the elbow's
        carrying angle (``forearm_r`` X) and the knee's frontal and axial alignment.
    keypoint_model : str or None
        The keypoint model (:mod:`~medpose.kinematics.keypoint_models`) whose priors and names
        the calibration used; :func:`~medpose.kinematics.fit.fit` renames a sequence's
        keypoints with it before using this skeleton.
    status : Mapping[str, str]
        Per calibrated keypoint or joint centre, what the data determined: ``"determined"``,
        ``"partly determined (x at the prior)"`` (the axes the data left undetermined, at their
        prior, or ``"(z undetermined, N mm from its prior)"`` where they moved), ``"prior"`` (not
        determined, and at its prior) or ``"undetermined, N mm from its prior"`` (not
        determined, yet moved more than half its prior's standard deviation).
    residual_before_mm, residual_after_mm : Mapping[str, float]
        Median keypoint residual of the fit before calibration (lengths only) and after, mm.
    rms_prior_mm, rms_calibrated_mm : float
        Confidence-weighted RMS keypoint residual (mm) over the calibration's frames, of the
        fit on the prior skeleton (the keypoint model's priors on the measured lengths) and on
        the calibrated one, over the observations both kept (gross outliers left out); NaN when
        not calibrated.  Their ratio decides :attr:`warranted`.
    patient_id : str or None
        Whom it belongs to (never printed; :meth:`load` refuses a file for another patient).
    """

    skeleton: Skeleton
    lengths: Mapping[str, float]
    method: Mapping[str, str]
    source: str
    height_mm: float
    n_frames: int = 0
    spread_mm: Mapping[str, float] = field(default_factory=dict)
    keypoints: tuple[str, ...] = ()
    keypoint_offsets: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    joint_centres: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    joint_axes: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    keypoint_model: str | None = None
    status: Mapping[str, str] = field(default_factory=dict)
    residual_before_mm: Mapping[str, float] = field(default_factory=dict)
    residual_after_mm: Mapping[str, float] = field(default_factory=dict)
    rms_prior_mm: float = float("nan")
    rms_calibrated_mm: float = float("nan")
    patient_id: str | None = field(default=None, repr=False)

    @property
    def gain(self) -> float:
        """How much the calibration lowered the RMS keypoint residual, as a fraction of the prior
        skeleton's (``1 - rms_calibrated_mm / rms_prior_mm``); NaN when not calibrated."""
        if not (self.rms_prior_mm > 0 and np.isfinite(self.rms_calibrated_mm)):
            return float("nan")
        return 1.0 - self.rms_calibrated_mm / self.rms_prior_mm

    @property
    def warranted(self) -> bool:
        """The data support the calibration: it explains the keypoints better than the prior
        skeleton by at least :data:`WARRANTED_GAIN` of the RMS residual (fitting noise alone gains
        a few percent) and by at least :data:`WARRANTED_MM`.  ``mp.fit(seq)`` fits with the
        calibration only then."""
        drop = self.rms_prior_mm - self.rms_calibrated_mm
        return bool(self.gain >= WARRANTED_GAIN and drop >= WARRANTED_MM)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per length: ``length_mm``, ``method``, ``spread_mm`` (IQR over frames)."""
        names = list(self.lengths)
        return pd.DataFrame(
            {
                "length_mm": [self.lengths[n] for n in names],
                "method": [self.method[n] for n in names],
                "spread_mm": [self.spread_mm.get(n, np.nan) for n in names],
            },
            index=pd.Index(names, name="length"),
        )

    def calibration_table(self) -> pd.DataFrame:
        """One row per calibrated keypoint (``kind`` keypoint) or joint centre (``kind`` joint):
        position (mm), its distance from the default skeleton's (scaled to the lengths), what the data determined, and
        for keypoints the median fit residual before and after (mm)."""
        plain = Skeleton.default().with_lengths(dict(self.lengths))  # length-scaled positions
        rows = []
        for kind, table in (("keypoint", self.keypoint_offsets), ("joint", self.joint_centres)):
            for name, xyz in table.items():
                if kind == "keypoint":
                    ref = plain.keypoint_offsets[plain.keypoint_names.index(name)]
                else:
                    ref = plain.joint_offsets[plain.segment_names.index(name)]
                d = np.asarray(xyz) - ref
                rows.append(
                    {
                        "kind": kind,
                        "name": name,
                        "x_mm": xyz[0],
                        "y_mm": xyz[1],
                        "z_mm": xyz[2],
                        "change_mm": float(np.linalg.norm(d)),
                        "status": self.status.get(name, ""),
                        "residual_before_mm": self.residual_before_mm.get(name, np.nan)
                        if kind == "keypoint"
                        else np.nan,
                        "residual_after_mm": self.residual_after_mm.get(name, np.nan)
                        if kind == "keypoint"
                        else np.nan,
                    }
                )
        for name, abc in self.joint_axes.items():
            rows.append(
                {
                    "kind": "axis (deg)",
                    "name": name,
                    "x_mm": abc[0],
                    "y_mm": abc[1],
                    "z_mm": abc[2],
                    "change_mm": np.nan,
                    "status": self.status.get(f"{name} axis", ""),
                    "residual_before_mm": np.nan,
                    "residual_after_mm": np.nan,
                }
            )
        return pd.DataFrame(rows)

    def check(self, keypoints: Sequence[str], *, patient_id: str | None = None) -> None:
        """Refuse to be used on another layout or patient.

        Raises
        ------
        InputError
            ``keypoints`` (any layout's names) are not the calibration's (the message lists the
            differences), or ``patient_id`` is given and is not this calibration's, or the
            calibration records no patient id (the ids are not printed).
        """
        if patient_id is not None and patient_id != self.patient_id:
            why = "has no patient id" if self.patient_id is None else "belongs to another patient"
            raise InputError(
                f"patient skeleton: the calibration {why}; calibrate this patient first "
                "(mp.calibrate, --patient-id) or load their own file"
            )
        if not self.keypoints:
            return
        have = set(to_medpose_names(tuple(keypoints)))
        known = set(self.skeleton.keypoint_names)
        used = have & known
        want = set(self.keypoints)
        if used != want:
            missing, extra = sorted(want - used), sorted(used - want)
            raise InputError(
                "patient skeleton: calibrated on another keypoint layout ("
                + (
                    f"keypoint model {Path(self.keypoint_model).name}, "
                    if self.keypoint_model
                    else ""
                )
                + f"{len(want)} keypoints); "
                f"the sequence lacks {missing[:8]}{'...' if len(missing) > 8 else ''} and has "
                f"{extra[:8]}{'...' if len(extra) > 8 else ''} that the calibration did not see; "
                "calibrate on this layout (mp.calibrate)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The file's content (JSON-able): everything needed to rebuild the skeleton."""
        return patient_document(self, FILE_VERSION)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``.yaml``/``.yml`` or ``.json`` (atomically); :meth:`load` reads it back."""
        p = Path(path)
        doc = self.to_dict()
        with atomic_write(p) as fh:
            if p.suffix.lower() == ".json":
                json.dump(doc, fh, indent=1, allow_nan=True)
            elif p.suffix.lower() in (".yaml", ".yml"):
                yaml.safe_dump(doc, fh, sort_keys=False)
            else:
                raise InputError(
                    f"PatientSkeleton.save: {display_name(p)}: expected a .yaml, .yml or .json "
                    f"file, found suffix {p.suffix!r}"
                )
        return p

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        keypoints: Sequence[str] | None = None,
        patient_id: str | None = None,
        base: Skeleton | None = None,
    ) -> PatientSkeleton:
        """Read a file written by :meth:`save`; with ``keypoints`` / ``patient_id``, refuse one
        made on another layout or for another patient (:meth:`check`).

        Raises
        ------
        InputError
            Not a patient skeleton file (naming the file and the field), or another layout or
            patient.
        """
        p = Path(path)
        where = f"PatientSkeleton.load: {display_name(p)}"
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{where}: cannot read ({exc.strerror})") from None
        doc = load_json(text, where) if p.suffix.lower() == ".json" else load_yaml(text, where)
        if not isinstance(doc, Mapping) or doc.get("medpose") != "patient_skeleton":
            raise InputError(f"{where}: field 'medpose': expected 'patient_skeleton'")
        if doc.get("version") != FILE_VERSION:
            raise InputError(
                f"{where}: field 'version': found {doc.get('version')!r}, expected {FILE_VERSION}"
            )
        try:
            out = cls(**patient_fields(doc, base or Skeleton.default()))
        except (InputError, ValueError) as exc:
            raise InputError(f"{where}: {exc}") from None
        except (KeyError, TypeError, AttributeError) as exc:  # e.g. an offset of an unknown name
            raise InputError(f"{where}: malformed content ({exc!r})") from None
        if keypoints is not None or patient_id is not None:
            out.check(keypoints if keypoints is not None else out.keypoints, patient_id=patient_id)
        return out

    def __repr__(self) -> str:
        return f"PatientSkeleton({self})"  # no patient identifier

    def _repr_html_(self) -> str:
        import html

        table = self.calibration_table() if self.keypoint_offsets else self.to_dataframe()
        return f"<p><b>PatientSkeleton</b>: {html.escape(str(self))}</p>" + table.to_html(
            float_format=lambda v: f"{v:.1f}", na_rep="-"
        )

    def plot(self, ax: Any = None) -> Any:
        """Per keypoint, the median fit residual before and after calibration (mm), as bars on
        a matplotlib axis; for a skeleton that was not calibrated, the segment lengths."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        if self.residual_after_mm:
            names = sorted(self.residual_after_mm, key=lambda n: -self.residual_before_mm.get(n, 0))
            y = np.arange(len(names))
            before = [self.residual_before_mm.get(n, np.nan) for n in names]
            after = [self.residual_after_mm[n] for n in names]
            ax.barh(y - 0.2, before, height=0.4, color="0.7", label="lengths only")
            ax.barh(y + 0.2, after, height=0.4, color="C0", label="calibrated")
            ax.set_yticks(y, names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("median keypoint residual (mm)")
            ax.legend(fontsize=8, loc="lower right")
        else:
            df = self.to_dataframe()
            ax.barh(np.arange(len(df)), df["length_mm"], color="C0")
            ax.set_yticks(np.arange(len(df)), list(df.index), fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("length (mm)")
        ax.set_title(str(self), fontsize=8, wrap=True)
        return ax

    def __str__(self) -> str:
        measured = sum(not m.startswith("scaled") for m in self.method.values())
        text = (
            f"patient skeleton from {self.source}: height {self.height_mm:.0f} mm, "
            f"{measured} of {len(self.lengths)} lengths measured"
        )
        if self.status:
            det = sum(v.startswith("determined") for v in self.status.values())
            text += f", {det} of {len(self.status)} keypoints and joint centres determined"
            # wholly or on some axes: "undetermined, N mm", "partly determined (z undetermined, N mm"
            moved = [k for k, v in self.status.items() if "undetermined, " in v]
            if moved:
                shown = ", ".join(moved[:4]) + (", ..." if len(moved) > 4 else "")
                text += f", {len(moved)} undetermined but moved from their prior ({shown})"
        if np.isfinite(self.gain):
            text += (
                f"; RMS residual {self.rms_prior_mm:.1f} -> {self.rms_calibrated_mm:.1f} mm "
                f"({100 * self.gain:.0f} % lower: "
                + (
                    "warranted)"
                    if self.warranted
                    else f"not warranted: below {100 * WARRANTED_GAIN:.0f} % or "
                    f"{WARRANTED_MM:g} mm)"
                )
            )
        return text


def _expand_pairs(length_names: tuple[str, ...]) -> list[tuple[str, str, str]]:
    out = []
    for L, a, b in LENGTH_PAIRS:
        if L.endswith("_s"):
            for s in ("r", "l"):
                out.append(
                    (
                        L[:-1] + s,
                        a[:-1] + s if a.endswith("_s") else a,
                        b[:-1] + s if b.endswith("_s") else b,
                    )
                )
        else:
            out.append((L, a, b))
    return [p for p in out if p[0] in length_names]


def _affine(
    base: Skeleton,
    length: str,
    a: str,
    b: str,
    lengths: Mapping[str, float],
    model: KeypointModel | None = None,
) -> tuple[float, float]:
    """Zero-pose distance between keypoints a and b as ``slope * L + offset`` (with the
    keypoints where ``model`` puts them at those lengths, if given)."""
    d = []
    for val in (100.0, 300.0):
        sk = base.with_lengths({**lengths, length: val})
        if model is not None:
            sk = model.apply(sk)
        x = forward_kinematics(sk, np.zeros((1, len(sk.dof_names))), keypoints=[a, b])[0]
        d.append(float(np.linalg.norm(x[0] - x[1])))
    slope = (d[1] - d[0]) / 200.0
    return slope, d[0] - slope * 100.0


def _estimate(
    positions: np.ndarray,
    confidence: np.ndarray,
    names: tuple[str, ...],
    base: Skeleton,
    source: str,
    what: str,
    min_confidence: float,
    model: KeypointModel | None = None,
) -> PatientSkeleton:
    names = to_medpose_names(names)
    pos = np.asarray(positions, dtype=float)
    conf = np.asarray(confidence, dtype=float)
    idx = {n: i for i, n in reversed(list(enumerate(names)))}
    if "pelvis" not in idx and "hip_r" in idx and "hip_l" in idx:  # mid-hip = pelvis origin
        mid = 0.5 * (pos[:, idx["hip_r"]] + pos[:, idx["hip_l"]])
        pos = np.concatenate([pos, mid[:, None]], axis=1)
        conf = np.concatenate(
            [conf, np.minimum(conf[:, idx["hip_r"]], conf[:, idx["hip_l"]])[:, None]], axis=1
        )
        idx["pelvis"] = pos.shape[1] - 1
    ok = np.isfinite(pos).all(axis=2) & (conf >= min_confidence)
    hgt = base.height_mm or 1700.0
    ratio = {n: base.lengths[n] / hgt for n in base.length_names}
    measured: dict[str, float] = {}
    method: dict[str, str] = {}
    spread: dict[str, float] = {}
    nf: dict[str, int] = {}
    used: dict[str, tuple[str, str]] = {}
    for L, a, b in _expand_pairs(base.length_names):
        if L in measured or a not in idx or b not in idx:
            continue
        good = ok[:, idx[a]] & ok[:, idx[b]]
        if not good.any():
            continue
        d = np.linalg.norm(pos[good, idx[a]] - pos[good, idx[b]], axis=1)
        measured[L] = float(np.median(d))
        spread[L] = float(np.subtract(*np.percentile(d, [75, 25])))
        nf[L] = int(good.sum())
        method[L] = f"median of {int(good.sum())} frames, {a}-{b}"
        used[L] = (a, b)
    if not measured:
        raise InputError(
            f"{what}: no keypoint pair measures a segment length (need e.g. hip_r and knee_r "
            f"with confidence >= {min_confidence}); recognised keypoints: {sorted(set(names))}"
        )
    # distances -> lengths through the skeleton's own geometry (pelvis_width first: others use it)
    lengths = dict(base.lengths)
    order = sorted(measured, key=lambda n: n != "pelvis_width")
    raw = {}
    for L in order:
        a, b = used[L]
        slope, off = _affine(base, L, a, b, lengths, model)
        if abs(slope) < 1e-9:  # placed explicitly (Skeleton.with_offsets): not a length
            continue
        raw[L] = (measured[L] - off) / slope
        if L == "pelvis_width" and raw[L] > 0:
            lengths[L] = raw[L]
    heights = np.array([raw[L] / ratio[L] for L in raw if raw[L] > 0])
    h = float(np.median(heights)) if heights.size else float("nan")
    lo_h, hi_h = plausible_height_mm
    if not (lo_h <= h <= hi_h):
        med = {L: round(measured[L], 3) for L in list(measured)[:4]}
        hint = (
            " The keypoints look like metres."
            if 0.5 <= h <= 3.0
            else " The keypoints look like centimetres."
            if 50 <= h <= 300
            else ""
        )
        raise InputError(
            f"{what}: implausible bone lengths for a human: distances {med} imply a body height "
            f"of {h:.4g} mm, expected {lo_h:g}-{hi_h:g} mm.{hint} medpose expects millimetres "
            "(readers convert .trc/.c3d units; multiply other arrays by 1000 if in metres)"
        )
    out: dict[str, float] = {}
    for n in base.length_names:
        expected = ratio[n] * h
        if n in raw and 0.5 * expected <= raw[n] <= 2.0 * expected:
            out[n] = raw[n]
        else:
            if n in raw:
                method[n] = f"scaled from height (measured {raw[n]:.0f} mm was implausible)"
            else:
                method[n] = "scaled from height"
            out[n] = expected
    sk = base.with_lengths(out)
    return PatientSkeleton(
        skeleton=sk,
        lengths=MappingProxyType(out),
        method=MappingProxyType({n: method[n] for n in out}),
        source=source,
        height_mm=h,
        n_frames=int(max(nf.values(), default=0)),
        spread_mm=MappingProxyType(spread),
    )


def estimate_skeleton(
    sequence: KeypointSequence,
    *,
    static: bool = False,
    base: Skeleton | None = None,
    min_confidence: float = 0.5,
    keypoint_model: KeypointModel | None = None,
) -> PatientSkeleton:
    """Segment lengths from a keypoint sequence: medians over confident frames.

    Parameters
    ----------
    sequence : KeypointSequence
        3D keypoints in mm in any frame; names in any known layout (``RKnee``, ``knee_r``...).
    static : bool
        The sequence is a static trial (reported as such; the estimate is the same median).
    base : Skeleton, optional
        Skeleton to personalise (default :meth:`Skeleton.default`).
    min_confidence : float
        Frames where either keypoint of a pair has a lower confidence are ignored.
    keypoint_model : KeypointModel, optional
        Where the keypoints sit (:mod:`~medpose.kinematics.keypoint_models`; the sequence
        named as after its :meth:`~medpose.kinematics.keypoint_models.KeypointModel.rename`):
        each distance becomes a length through the model's positions at that length, not the
        skeleton's own.  Pose2Sim's ``RHip`` and ``LHip`` markers lie 22 mm outside the hip
        joint centres, so without the model their distance reads a pelvis 29 % too wide.

    Returns
    -------
    PatientSkeleton

    Raises
    ------
    InputError
        Not 3D, no measurable pair, or bone lengths implausible for a human (the message says
        when the data look like metres or centimetres).
    """
    if not isinstance(sequence, KeypointSequence) or sequence.ndim != 3:
        raise InputError(f"estimate_skeleton: expected a 3D KeypointSequence, found {sequence!r}")
    return _estimate(
        sequence.positions,
        sequence.confidence,
        sequence.names,
        base or Skeleton.default(),
        "static trial" if static else "sequence",
        "estimate_skeleton",
        min_confidence,
        keypoint_model,
    )


def skeleton_from_landmarks(
    landmarks: Landmarks, *, base: Skeleton | None = None
) -> PatientSkeleton:
    """Segment lengths from imaging landmarks (e.g. registered into the camera frame), mm.

    Landmarks named as keypoints (``hip_r``, ``knee_r``, ``asis_l``...) measure the lengths
    between them; distances do not depend on the frame, so any rigidly registered frame works.

    Raises
    ------
    InputError
        As :func:`estimate_skeleton`.
    """
    pos = np.asarray(landmarks.positions, dtype=float)[None]
    return _estimate(
        pos,
        np.isfinite(pos).all(axis=2).astype(float),
        landmarks.names,
        base or Skeleton.default(),
        "imaging landmarks",
        "skeleton_from_landmarks",
        0.5,
    )
