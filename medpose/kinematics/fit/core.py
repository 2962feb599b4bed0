"""The fit proper: :func:`fit_sequence` checks its arguments, sets the problem up and runs the
solver (the public :func:`~medpose.kinematics.fit.api.fit` calibrates first when asked).

:func:`fit_sequence` finds, for every frame, the DoF values ``q`` of a
:class:`~medpose.kinematics.skeleton.Skeleton` whose keypoints best match the observed ones,

.. math::

    \\min_{lo \\le q \\le hi} \\sum_k c_k \\lVert FK_k(q) - x_k \\rVert^2
        + \\sum_d (w_s\\, b_d(q_d))^2 + \\sum_d (\\lambda (q_d - \\bar q_d))^2

(confidence-weighted keypoint residuals in mm; an optional soft prior ``b_d`` = depth inside a
band near the limits, :class:`~medpose.kinematics.limits.JointLimits`; an optional temporal
smoothness towards the mean ``\\bar q`` of the neighbouring frames).  The pieces:
:mod:`.problem` (set-up), :mod:`.solver` (projected Levenberg-Marquardt), :mod:`.starts`
(rigid starts, Euler branches, repairs), :mod:`.run` (the chunked driver), :mod:`.result`
(:class:`~medpose.kinematics.fit.result.Fit`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import torch

from ...data import KeypointSequence
from ...errors import InputError
from ..keypoint_models import load_keypoint_model
from ..limits import JointLimits
from ..patient import PatientSkeleton
from ..skeleton import Skeleton
from .device import default_chunk, default_dtype
from .gaps import MAX_GAP_S
from .problem import FitProblem, prepare
from .result import Fit, Observed
from .run import run

__all__ = ["fit_sequence"]


def fit_sequence(
    sequence: KeypointSequence,
    skeleton: Skeleton | PatientSkeleton | None = None,
    limits: JointLimits | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    smoothness: float = 0.0,
    prior: Mapping[str, float] | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    min_confidence: float = 0.3,
    min_keypoints: int | None = None,
    max_iter: int = 100,
    warm_stride: int | None = None,
    tol_deg: float = 1e-3,
    threads: int | None = None,
    up: str | None = None,
    init: Fit | None = None,
    noise_mm: float | None = None,
    bridge: bool = True,
    odd: bool = True,
) -> Fit:
    """:func:`~medpose.kinematics.fit.api.fit` on the skeleton given (a calibrated one's
    coarse frames solved on the lengths-only problem first, see :func:`_lengths_first`), or on
    the lengths measured from the sequence: never calibrates.  Parameters, result and errors as
    there; ``bridge=False`` leaves frames with keypoints missing as solved instead of holding
    them across gaps of up to :data:`~.gaps.MAX_GAP_S` (:mod:`.gaps`), for the calibration,
    which reads nothing from what a gap hides; ``odd=False`` leaves frames that fit clearly
    worse than their neighbours as solved (:mod:`.stuck`), for the calibration's rounds, which
    a few such frames do not move and whose time it would add to by a third."""
    calibration = None
    if isinstance(skeleton, PatientSkeleton):
        if isinstance(sequence, KeypointSequence):
            if skeleton.keypoint_model:  # the names the calibration gave these keypoints
                model = load_keypoint_model(skeleton.keypoint_model)
                sequence = model.rename(sequence)
                # and the posture prior for the rotations that layout barely sees
                prior = {**model.fit_prior, **(prior or {})} if model.fit_prior else prior
            skeleton.check(sequence.names)
        calibration, skeleton = skeleton, skeleton.skeleton
    prob = prepare(
        sequence,
        skeleton,
        limits,
        min_confidence=min_confidence,
        min_keypoints=min_keypoints,
        up=up,
        prior=prior,
    )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dt = dtype or default_dtype(dev)
    if smoothness < 0 or not math.isfinite(smoothness):
        raise InputError(f"fit: smoothness must be a finite number >= 0, found {smoothness!r}")
    if not (tol_deg > 0 and math.isfinite(tol_deg)):
        raise InputError(f"fit: tol_deg must be a finite number > 0, found {tol_deg!r}")
    T = sequence.n_frames
    cs = int(chunk_size) if chunk_size is not None else default_chunk(dev)
    if cs < 1:
        raise InputError(
            f"fit: chunk_size must be a positive number of frames, found {chunk_size!r}"
        )
    old_threads = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            raise InputError(f"fit: threads must be a positive number or None, found {threads!r}")
        torch.set_num_threads(int(threads))
    noise = None
    start: np.ndarray | torch.Tensor | None = None
    if init is not None:
        if init.q.shape != (T, len(prob.skeleton.dof_names)) or tuple(init.dof_names) != tuple(
            prob.skeleton.dof_names
        ):
            raise InputError(
                f"fit: init is a fit of {init.q.shape[0]} frames with {init.q.shape[1]} DoFs; "
                f"expected {T} frames with this skeleton's {len(prob.skeleton.dof_names)} DoFs"
            )
        if np.allclose(init.alignment, prob.alignment, atol=1e-9):
            start = np.asarray(init.q, dtype=float)
    if noise_mm is not None:
        if not (math.isfinite(noise_mm) and noise_mm > 0):
            raise InputError(f"fit: noise_mm must be a finite number > 0, found {noise_mm!r}")
        noise = float(noise_mm)

    stride = max(1, int(warm_stride) if warm_stride is not None else int(sequence.rate // 10))

    try:
        first = None
        if calibration is not None and start is None:
            # a calibrated skeleton's coarse frames start from the lengths-only fit's poses
            first = _lengths_first(sequence, prob, limits, min_confidence, min_keypoints, up, prior)
        out = run(
            prob,
            sequence.positions,
            sequence.confidence,
            dev,
            dt,
            smoothness=float(smoothness),
            chunk_size=cs,
            progress=progress,
            max_iter=int(max_iter),
            warm_stride=stride,
            xtol=float(tol_deg),
            noise_mm=noise,
            start=start,
            remeasure=True,
            first=first,
            bridge=round(MAX_GAP_S * sequence.rate) if bridge else 0,
            odd=odd,
        )
    finally:
        torch.set_num_threads(old_threads)
    source = None
    if out.fitted is None:  # GPU: computed when asked
        source = Observed(
            sequence.positions,
            sequence.confidence,
            prob.seq_index,
            prob.kp_index,
            prob.min_confidence,
            str(dev),
            np.dtype(np.float64 if dt == torch.float64 else np.float32),
        )
    n_bad = int((~out.valid).sum())
    if n_bad:  # which of the two conditions each frame failed
        pos = np.asarray(sequence.positions)[:, prob.seq_index]
        conf = np.asarray(sequence.confidence)[:, prob.seq_index]
        seen = ((conf >= prob.min_confidence) & np.isfinite(pos).all(axis=2)).sum(axis=1)
        few = int((~out.valid & (seen < prob.min_keypoints)).sum())
        why = [f"{few} have fewer than {prob.min_keypoints} keypoints"] if few else []
        if n_bad > few:  # enough keypoints, but not where the pose starts from
            why.append(f"{n_bad - few} have fewer than 3 on the pelvis, trunk and shoulders")
        warnings.warn(
            f"fit: {n_bad} of {T} frames not fitted: {' and '.join(why)} with confidence >= "
            f"{prob.min_confidence:g}; their angles are NaN",
            stacklevel=2,
        )
    sk = prob.skeleton
    return Fit(
        q=out.q,
        dof_names=sk.dof_names,
        rate=sequence.rate,
        start=sequence.start,
        frame=sequence.frame,
        skeleton=sk,
        limits=prob.limits,
        patient=calibration if calibration is not None else prob.patient,
        observable=prob.observable,
        alignment=prob.alignment,
        keypoint_names=prob.kp_names,
        fitted_=out.fitted,
        residual_=out.residual,
        limit_active=out.at_limit,
        converged_mask=out.converged,
        valid=out.valid,
        noise_mm=out.noise_mm,
        prior_sd=prob.prior_sd,
        source=source,
    )


def _lengths_first(
    sequence: KeypointSequence,
    prob: FitProblem,
    limits: JointLimits | None,
    min_confidence: float,
    min_keypoints: int | None,
    up: str | None,
    prior: Mapping[str, float] | None,
) -> FitProblem | None:
    """The lengths-only problem (:func:`fit` without a skeleton) of a sequence fitted with a
    calibrated skeleton, or None where its keypoints, DoFs or axes differ: the coarse frames'
    Euler branches are chosen on it (:func:`.run.solve_frames` says why).  Its lengths are the
    medians over at most :data:`~.problem.CHECK_FRAMES` evenly spaced frames (every frame of a
    shorter sequence) that ``prob``'s units check measured (``prob.measured``: measured again,
    they took a seventh of a calibrated 1000-frame fit's time, and over a million frames
    seconds, longer than the fit on a GPU)."""
    try:
        base = None
        if prob.measured is not None:
            base = prob.measured.skeleton  # measured by prob's units check, on the same frames
        first = prepare(
            sequence,
            base,
            limits,
            min_confidence=min_confidence,
            min_keypoints=min_keypoints,
            up=up,
            prior=prior,
        )
    except InputError:  # keypoints a lengths-only fit cannot use (a model's renamed markers)
        return None
    same = (
        first.skeleton.dof_names == prob.skeleton.dof_names
        and np.array_equal(first.seq_index, prob.seq_index)
        and first.min_keypoints == prob.min_keypoints
        and np.allclose(first.alignment, prob.alignment, atol=1e-9)
    )
    return first if same else None
