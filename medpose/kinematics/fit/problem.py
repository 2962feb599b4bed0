"""The fit's problem set-up: which keypoints are used, limits, posture prior, axes.

:func:`prepare` checks a sequence against a skeleton and gathers everything the solvers need
into a :class:`FitProblem` (numpy only, no tensors): the skeleton (the patient's, estimated from
the sequence, when none is given), the hard limits, the keypoints the skeleton knows, the DoFs
they can observe, the rotation onto the skeleton's axes and the posture prior
(:data:`DEFAULT_PRIOR`, :func:`prior_sd`).  The torch solver (:func:`medpose.kinematics.fit.fit`)
and the scipy reference (:func:`medpose.kinematics.reference.fit_reference`) both start here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from ...data import KeypointSequence
from ...errors import InputError
from ...layouts import to_medpose_names
from ..limits import JointLimits
from ..patient import PatientSkeleton, estimate_skeleton
from ..skeleton import Skeleton
from .context import Context
from .orientation import UP_KEYPOINTS, alignment_rotation, check_handedness

__all__ = [
    "FitProblem",
    "prepare",
    "DEFAULT_PRIOR",
    "prior_sd",
    "NOISE_FLOOR_MM",
    "LUMBAR_SHARE",
    "lumbar_rhythm",
]

#: Keypoints the fit cannot do without: the pelvis (both hips) and the trunk's direction
#: (:data:`~medpose.kinematics.fit.orientation.UP_KEYPOINTS`).
_REQUIRED = ("hip_r", "hip_l")
#: Frames (evenly spaced) on which a given skeleton's units are checked and the axes aligned.
CHECK_FRAMES = 4000


#: The lengths measured on sequences (by content) whose units passed the check of a given
#: skeleton, oldest first (a calibration fits the same frames in every round; a calibrated
#: fit's lengths-only problem starts from these lengths).
_CHECKED: dict[tuple, PatientSkeleton] = {}


def _content_key(seq: KeypointSequence, min_confidence: float) -> tuple:
    """A key of a sequence's keypoints (names, positions, confidences) and the threshold."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(seq.positions).tobytes())
    h.update(np.ascontiguousarray(seq.confidence).tobytes())
    return (seq.names, seq.positions.shape, float(min_confidence), h.hexdigest())


@dataclass(frozen=True, eq=False, kw_only=True)
class FitProblem:
    """Everything the solvers need, independent of torch: skeleton, keypoints used, limits.

    Built by :func:`prepare`; shared by :func:`fit` and the scipy reference solver
    (:func:`medpose.kinematics.reference.fit_reference`).
    """

    skeleton: Skeleton
    limits: JointLimits
    lower: np.ndarray  # (D,)
    upper: np.ndarray  # (D,)
    seq_index: np.ndarray  # (K,) columns of the sequence used
    kp_index: np.ndarray  # (K,) matching skeleton keypoints
    kp_names: tuple[str, ...]  # (K,) medpose names
    observable: np.ndarray  # (D,) bool
    alignment: np.ndarray  # (3, 3) data -> skeleton axes
    patient: PatientSkeleton | None
    min_confidence: float
    min_keypoints: int
    prior_sd: np.ndarray  # (D,) posture prior standard deviation about prior_mean, deg
    prior_mean: np.ndarray  # (D,) neutral pose (0 clipped into the limits)
    #: (D,) the lumbopelvic prior's row, 1/deg (:func:`lumbar_rhythm`; zeros: none)
    rhythm: np.ndarray
    #: a given skeleton's units check: the lengths measured on up to :data:`CHECK_FRAMES`
    #: evenly spaced frames, on the default skeleton's proportions (None without a skeleton)
    measured: PatientSkeleton | None = None

    @property
    def inv_sd(self) -> np.ndarray:
        """(D,) 1 / the posture prior's standard deviation about ``prior_mean`` (0: none); the
        DoF the lumbopelvic row replaces carries none here."""
        out = 1.0 / self.prior_sd
        out[self.rhythm > 0] = 0.0
        return out


#: Default posture prior: standard deviation (degrees) of each DoF about the neutral pose.
#: The fit charges ``(sigma / sd * (q - neutral))**2`` per DoF, where ``sigma`` (mm) is the keypoint
#: noise it measures on the first, coarse pass (at least :data:`NOISE_FLOOR_MM`): a Gaussian
#: prior on the angle beside Gaussian keypoint noise (maximum a posteriori, e.g. Bishop 2006,
#: *Pattern Recognition and Machine Learning*, sec. 3.3), so clean data are barely pulled.
#: ``"*"`` (100 deg) only decides directions the keypoints leave free (upper-arm rotation with
#: a straight elbow, flexion vs rotation at the shoulder's gimbal lock).  The lumbar DoFs get
#: 5 deg: keypoint sets without pelvis landmarks (HALPE_26, COCO) barely tell pelvis tilt +
#: hip flexion from lumbar flexion, and noise would swing them by several degrees (OpenSim
#: models without a lumbar joint, e.g. Pose2Sim's, hold them together rigidly).  The pelvis
#: (whole-body orientation) carries no prior (``inf``).
DEFAULT_PRIOR: Mapping[str, float] = MappingProxyType(
    {
        "*": 100.0,
        "lumbar_flexion": 5.0,
        "lumbar_bending": 5.0,
        "lumbar_rotation": 5.0,
        "pelvis_tilt": math.inf,
        "pelvis_list": math.inf,
        "pelvis_rotation": math.inf,
    }
)

#: Lowest keypoint noise (mm) the posture prior assumes, so that it still breaks exact ties.
NOISE_FLOOR_MM = 0.1

#: Share of the trunk's sagittal inclination over the pelvis (``pelvis_tilt + lumbar_flexion``)
#: that the posture prior expects in the lumbar spine (:func:`lumbar_rhythm`).  In forward
#: bending the lumbar spine and the pelvis share the trunk's flexion (lumbopelvic rhythm; review:
#: Vazirian, Van Dillen, Bazrgari 2016, Int Musculoskelet Med 38:51-58); a third is an assumption
#: within that range, and the synthetic movements' squats, sit-to-stand and deep squat have
#: 0.29-0.33.
LUMBAR_SHARE = 1.0 / 3.0


def lumbar_rhythm(skeleton: Skeleton, sd: np.ndarray, share: float = LUMBAR_SHARE) -> np.ndarray:
    """The lumbopelvic prior's row ``c`` (D,), 1/deg: the fit charges
    ``(sigma * c @ (q - neutral))**2`` with ``c @ q = (lumbar_flexion - share * (pelvis_tilt +
    lumbar_flexion)) / sd_lumbar_flexion``, in place of ``lumbar_flexion``'s own posture term.

    Keypoints without pelvis landmarks (HALPE_26, COCO: the hips lie on the pelvis's lateral
    axis) see the trunk's inclination, not how it divides between pelvis tilt and lumbar
    flexion; a prior of lumbar flexion about 0 puts all of it in the pelvis and into hip flexion
    (it reads the demo's deep squat to hip flexion 100, pelvis tilt 20 and lumbar flexion 10 as
    pelvis 29, lumbar 1, hip 109).  Zeros where the skeleton lacks either DoF or ``lumbar_flexion`` has no
    prior (``sd`` inf).
    """
    row = np.zeros(len(skeleton.dof_names))
    names = skeleton.dof_names
    if "lumbar_flexion" not in names or "pelvis_tilt" not in names:
        return row
    lf, pt = names.index("lumbar_flexion"), names.index("pelvis_tilt")
    if not math.isfinite(sd[lf]):
        return row
    row[lf] = (1.0 - share) / sd[lf]
    row[pt] = -share / sd[lf]
    return row


def prior_sd(skeleton: Skeleton, prior: Mapping[str, float] | None = None) -> np.ndarray:
    """Posture-prior standard deviation per DoF (D,), degrees, from :data:`DEFAULT_PRIOR` updated by ``prior``.

    Keys: a DoF name (``shoulder_rotation_r``), a name without its side (``shoulder_rotation``:
    both sides) or ``"*"`` (every other rotational DoF); the most specific key wins; ``inf``
    means no prior.  Translations never carry one.

    Raises
    ------
    InputError
        An unknown key, or a value that is not a number > 0.
    """
    merged = dict(DEFAULT_PRIOR)
    if prior is not None:
        if not isinstance(prior, Mapping):
            raise InputError(
                f"fit: prior must be a mapping of DoF name to standard deviation in degrees, "
                f"found {type(prior).__name__}"
            )
        merged.update(prior)
    names = skeleton.dof_names
    bases = {n[:-2] for n in names if n[-2:] in ("_r", "_l")}
    for key, val in merged.items():
        if key != "*" and key not in names and key not in bases and (prior is None or key in prior):
            raise InputError(
                f"fit: prior: unknown DoF {key!r}; expected '*', a DoF name or one without "
                f"its side, e.g. 'shoulder_rotation'"
            )
        try:
            v = float(val)
        except (TypeError, ValueError):
            v = float("nan")
        if not v > 0:
            raise InputError(
                f"fit: prior: standard deviation of {key!r} must be a number > 0 degrees "
                f"(inf: no prior), found {val!r}"
            )
    out = np.full(len(names), np.inf)
    for i, (n, rot) in enumerate(zip(names, skeleton.rotational)):
        if rot:
            base = n[:-2] if n[-2:] in ("_r", "_l") else n
            out[i] = float(merged.get(n, merged.get(base, merged.get("*", math.inf))))
    return out


def _map_keypoints(
    sequence: KeypointSequence, skeleton: Skeleton
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    names = to_medpose_names(sequence.names)
    known = {n: i for i, n in enumerate(skeleton.keypoint_names)}
    seq_idx, kp_idx, used = [], [], []
    for i, n in enumerate(names):
        if n in known and n not in used:
            seq_idx.append(i)
            kp_idx.append(known[n])
            used.append(n)
    missing = [n for n in _REQUIRED if n not in used]
    if not any(n in used for n in UP_KEYPOINTS):
        missing.append("neck or shoulder_r/shoulder_l")
    if missing:
        raise InputError(
            f"fit: the skeleton cannot use this keypoint layout: missing keypoints {missing}; "
            f"recognised {len(used)} of {len(names)} names ({used[:12]}{'...' if len(used) > 12 else ''}); "
            "the fit needs hip_r, hip_l and neck or both shoulders, by medpose name or a known "
            "layout's name (RHip, LHip, Neck...)"
        )
    return np.array(seq_idx), np.array(kp_idx), tuple(used)


def observable_dofs(
    skeleton: Skeleton, kp_index: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """DoFs that move at least one used keypoint at generic poses (Jacobian column non-zero)."""
    rng = np.random.default_rng(12345)
    lo = np.where(np.isfinite(lower), lower, -100.0)
    hi = np.where(np.isfinite(upper), upper, 100.0)
    q = torch.as_tensor(
        lo + (hi - lo) * rng.uniform(0.2, 0.8, size=(4, len(lo))), dtype=torch.float64
    )
    ctx = Context(skeleton, kp_index, torch.device("cpu"), torch.float64)
    _, _, _, J = ctx.evaluate(q, jacobian=True)
    obs = np.zeros(len(lo), dtype=bool)
    obs[ctx.var_dofs.numpy()] = (J.abs().amax(dim=(0, 1, 2)) > 1e-9).numpy()
    return obs


def prepare(
    sequence: KeypointSequence,
    skeleton: Skeleton | None = None,
    limits: JointLimits | None = None,
    *,
    min_confidence: float = 0.3,
    min_keypoints: int | None = None,
    up: str | None = None,
    prior: Mapping[str, float] | None = None,
) -> FitProblem:
    """Check a sequence against a skeleton and set up the fit (see :func:`fit` for parameters)."""
    if not isinstance(sequence, KeypointSequence):
        raise InputError(f"fit: expected a KeypointSequence, found {type(sequence).__name__}")
    if sequence.ndim != 3:
        raise InputError(
            f"fit: expected 3D keypoints (T, K, 3) in mm, found {sequence.ndim}D "
            "(image keypoints must be triangulated first)"
        )
    if sequence.n_frames == 0:
        raise InputError("fit: the sequence has no frames")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise InputError(f"fit: min_confidence must lie in [0, 1], found {min_confidence!r}")
    base = skeleton if skeleton is not None else Skeleton.default()
    seq_idx, kp_idx, used = _map_keypoints(sequence, base)
    # a given skeleton is only checked (units), and the axis alignment is a median direction:
    # evenly spaced frames suffice (a million-frame GPU batch must not spend seconds here)
    T = sequence.n_frames
    few = np.unique(np.linspace(0, T - 1, min(T, CHECK_FRAMES)).round().astype(int))
    sub = few if skeleton is not None else slice(None)
    renamed = KeypointSequence(
        sequence.positions[sub][:, seq_idx],
        used,
        sequence.rate,
        confidence=sequence.confidence[sub][:, seq_idx],
        frame=sequence.frame,
        start=sequence.start,
    )
    patient = measured = None
    try:
        if skeleton is None:
            patient = estimate_skeleton(renamed, base=base, min_confidence=max(min_confidence, 0.3))
        else:
            # a given skeleton is only checked for units, against the default's proportions,
            # once per sequence
            key = _content_key(renamed, min_confidence)
            measured = _CHECKED.get(key)
            if measured is None:
                measured = estimate_skeleton(
                    renamed, base=Skeleton.default(), min_confidence=max(min_confidence, 0.3)
                )
                _CHECKED[key] = measured
                while len(_CHECKED) > 16:
                    _CHECKED.pop(next(iter(_CHECKED)))
    except InputError as exc:
        if "implausible" in str(exc) or skeleton is None:
            raise InputError(f"fit: {exc}".replace("estimate_skeleton: ", "")) from None
    if skeleton is None:
        assert patient is not None
        skeleton = patient.skeleton
    lim = limits if limits is not None else JointLimits.default(skeleton)
    if not isinstance(lim, JointLimits):
        raise InputError(f"fit: limits must be a JointLimits, found {type(lim).__name__}")
    lo, hi = lim.for_skeleton(skeleton)
    obs = observable_dofs(skeleton, kp_idx, lo, hi)
    sampled = renamed.positions if isinstance(sub, np.ndarray) else renamed.positions[few]
    A = alignment_rotation(sampled, used, up)
    check_handedness(sampled, used)
    k = len(used)
    mk = int(min_keypoints) if min_keypoints is not None else max(4, math.ceil(0.5 * k))
    if mk < 3:
        raise InputError(f"fit: min_keypoints must be at least 3, found {min_keypoints!r}")
    psd = prior_sd(skeleton, prior)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return FitProblem(
        skeleton=skeleton,
        limits=lim,
        lower=lo,
        upper=hi,
        seq_index=seq_idx,
        kp_index=kp_idx,
        kp_names=used,
        observable=obs,
        alignment=A,
        patient=patient,
        min_confidence=float(min_confidence),
        min_keypoints=mk,
        prior_sd=psd,
        prior_mean=np.clip(0.0, lo, hi),
        rhythm=lumbar_rhythm(skeleton, psd) * obs,
        measured=measured,
    )
