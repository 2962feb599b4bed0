"""The public fit: :func:`fit` checks its arguments, sets the problem up and runs the solver.

:func:`fit` finds, for every frame, the DoF values ``q`` of a
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
from ..patient import PatientSkeleton, estimate_skeleton
from ..skeleton import Skeleton
from .problem import FitProblem, prepare
from .result import Fit, Observed
from .run import default_chunk, default_dtype, run
from .starts import interpolate

__all__ = ["fit"]

#: A calibrated fit's lengths-only first pass measures the lengths on at most this many frames.
_LENGTH_FRAMES = 4000


def fit(
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
) -> Fit:
    """Fit a skeleton to every frame of a 3D keypoint sequence under joint limits.

    Parameters
    ----------
    sequence : KeypointSequence
        3D keypoints in mm in any frame (e.g. ``"camera"``), names in any known layout
        (HALPE_26 / Pose2Sim ``RKnee``..., COCO, MediaPipe, medpose names).
    skeleton : Skeleton or PatientSkeleton, optional
        Default: lengths estimated from the sequence
        (:func:`~medpose.kinematics.patient.estimate_skeleton`, medians over confident frames);
        reported in ``Fit.patient``.  A :class:`~medpose.kinematics.patient.PatientSkeleton`
        (e.g. from :func:`~medpose.kinematics.calibrate.calibrate` or
        :meth:`PatientSkeleton.load <medpose.kinematics.patient.PatientSkeleton.load>`) is
        checked against the sequence's keypoints (InputError naming the difference when it was
        calibrated on another layout), used, and reported in ``Fit.patient``; unless ``init`` is
        given, its fit starts every frame from a lengths-only fit's poses (see
        :func:`_lengths_first`), 1.2-1.8 times a plain fit's time.
    limits : JointLimits, optional
        Hard limits (and soft prior); default :meth:`JointLimits.default`.
    device : str or torch.device, optional
        ``"cpu"`` (default) or ``"cuda"``.
    dtype : torch.dtype, optional
        Default float32 on the CPU and on a GPU: on the CPU about 25% faster than float64.  On a
        synthetic squat with 5 mm keypoint noise the well-determined angles (knee, hip, ankle,
        elbow flexion) agree with float64 within 0.06 degrees in the worst frame (median over
        all DoFs 1e-3 degrees) and their RMS errors against the truth agree to 0.01 degrees:
        the two precisions stop a little apart (the cost falling by less than 1e-5 relative),
        float32 rounding itself being about 2e-5 degrees.  DoFs the keypoints barely determine
        (upper-arm rotation with a nearly straight elbow) can stop at different solutions,
        degrees apart.  Pass ``torch.float64`` for bit-for-bit reproducible double precision.  With float32, ``Fit.q``, ``Fit.fitted`` and
        ``Fit.residual`` are float32 arrays; ``q`` is clamped to the limits rounded inwards to
        float32, so it never leaves the (float64) hard limits.
    smoothness : float
        Weight of the temporal smoothness term, mm of keypoint residual per degree of
        departure from the mean of the two neighbouring frames (0 = off; 1-5 smooths jitter).
    prior : Mapping[str, float], optional
        Posture prior: mm of keypoint residual per degree away from the neutral pose, by DoF
        (``"lumbar_flexion"``), by DoF without side (``"shoulder_rotation"``) or ``"*"``;
        updates :data:`DEFAULT_PRIOR` (0.05 mm/deg everywhere, 1 mm/deg on the lumbar DoFs,
        0 on the pelvis).  ``{"*": 0, "lumbar_flexion": 0, "lumbar_bending": 0,
        "lumbar_rotation": 0}`` turns it off.
    chunk_size : int, optional
        Frames per batch (default 2048 on the CPU; on a GPU 1,048,576 where 64 GB are free, else
        524,288, 262,144 or 65,536); memory grows with it, not with the recording.
    progress : bool, optional
        Show a tqdm progress bar (default: when there is more than one chunk).
    min_confidence : float
        Keypoints below this confidence are ignored (weight 0); others are weighted by it.
    min_keypoints : int, optional
        Frames with fewer confident keypoints are not fitted (NaN, with a warning giving their
        count); default half of the keypoints used, at least 4.
    max_iter : int
        Levenberg-Marquardt iterations per stage.
    warm_stride : int, optional
        Every ``warm_stride``-th frame is solved first; the others start from the linear
        interpolation of their solved neighbours.  Default: one frame in every 1/10 s
        (6 at 60 Hz, 1 at 10 Hz or less).
    tol_deg : float
        A frame has converged when its step is below ``tol_deg`` (degrees, mm) or its cost
        falls by less than 1e-5 relative.
    threads : int or None
        torch CPU threads during the fit (restored afterwards).  Default None: torch's setting
        (``torch.get_num_threads()``, all physical cores unless changed), about 1.6x one thread's
        speed on 2 cores.  Pass 1 when several fits run in parallel processes (oversubscribed
        OpenMP threads wait for each other).
    up : str, optional
        The data's up axis (``"+y"``, ``"+z"``...) if it should not be estimated.
    init : Fit, optional
        A previous fit of the same sequence (same frames, same DoFs) whose poses start every
        frame, e.g. after a small change of the skeleton: one solve from there and the repair of
        frames left in a local minimum, without the rigid starts, the warm-start stages and the
        branch choice, so several times faster.  The noise is measured on the pilot frames
        solved from these poses instead of their rigid starts (or given: ``noise_mm``).
        Ignored (a full fit) where the data's axes were found differently.
    noise_mm : float, optional
        The keypoint noise (mm per axis) that weighs the posture prior, if known: the pilot that
        measures it is skipped; measured again on the result as usual (default: measured on a
        pilot of up to 64 frames).

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Not a 3D KeypointSequence; a layout missing the keypoints the fit needs (named);
        bone lengths implausible for a human (e.g. metres instead of millimetres); a bad
        ``prior``, ``smoothness``, ``chunk_size``, ``up`` or ``noise_mm``; an ``init`` of
        another length or other DoFs.
    LimitError
        Empty or inverted limits (from :class:`JointLimits`).

    Examples
    --------
    >>> import medpose as mp                                     # doctest: +SKIP
    >>> f = mp.fit(mp.read_keypoints("trial.trc"))               # doctest: +SKIP
    >>> f.angles["knee_flexion_r"].max()                         # doctest: +SKIP
    """
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
    start = noise = None
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

    def run_on(problem: FitProblem, start: np.ndarray | None = None, frames=slice(None)):
        one = not isinstance(frames, slice)  # a first pass on the coarse frames only
        return run(
            problem,
            sequence.positions[frames],
            sequence.confidence[frames],
            dev,
            dt,
            smoothness=0.0 if one else float(smoothness),
            chunk_size=cs,
            progress=progress,
            max_iter=int(max_iter),
            warm_stride=1 if one else stride,
            xtol=float(tol_deg),
            noise_mm=noise,
            start=start,
            remeasure=True,
        )

    try:
        if calibration is not None and start is None:
            # a calibrated skeleton starts from the lengths-only fit's poses (see _lengths_first)
            first = _lengths_first(sequence, prob, limits, min_confidence, min_keypoints, up, prior)
            if first is not None:
                coarse = np.unique(np.r_[np.arange(0, T, stride), T - 1])
                start = _spread(run_on(first, frames=coarse).q, coarse, T, first.skeleton)
        out = run_on(prob, start)
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
    if n_bad:
        warnings.warn(
            f"fit: {n_bad} of {T} frames have fewer than {prob.min_keypoints} keypoints with confidence "
            f">= {prob.min_confidence:g} (or fewer than 3 on the trunk and pelvis); their angles are NaN",
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
    calibrated skeleton, or None where its DoFs or axes differ.

    With a straight elbow, a raised arm's two Euler branches (abduction 150; flexion ~170 with
    abduction ~35, the arm turned half about itself) differ only by where the calibrated elbow
    keypoint sits off the humerus's axis (~14 mm on a synthetic session with 8 mm noise), and
    the start decides between them: from the rigid start every top frame of a synthetic
    shoulder abduction read the far branch.  On the lengths-only skeleton they fit exactly
    alike and the branch choice keeps the one nearest neutral; the calibrated solve started
    from there stays on it (``tests/kinematics/test_calibrate.py``).  The lengths are the
    medians over at most :data:`_LENGTH_FRAMES` evenly spaced frames (estimated over a million
    frames they took seconds, longer than the fit on a GPU)."""
    try:
        base = None
        T = sequence.n_frames
        if T > _LENGTH_FRAMES:
            few = np.unique(np.linspace(0, T - 1, _LENGTH_FRAMES).round().astype(int))
            sub = KeypointSequence(
                sequence.positions[few],
                sequence.names,
                sequence.rate,
                confidence=sequence.confidence[few],
                frame=sequence.frame,
            )
            base = estimate_skeleton(sub, min_confidence=max(min_confidence, 0.3)).skeleton
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
    same = first.skeleton.dof_names == prob.skeleton.dof_names and np.allclose(
        first.alignment, prob.alignment, atol=1e-9
    )
    return first if same else None


def _spread(q: np.ndarray, at: np.ndarray, T: int, sk: Skeleton) -> np.ndarray:
    """Start poses for all ``T`` frames from those fitted at frames ``at`` (:func:`.starts.interpolate`:
    linear in time between fitted neighbours, the nearer one across a jump of a rotation);
    NaN where no frame was fitted."""
    ok = np.isfinite(q).all(axis=1)
    if not ok.any():
        return np.full((T, q.shape[1]), np.nan)
    qt = torch.as_tensor(np.asarray(q[ok], dtype=float))
    out = interpolate(
        qt,
        torch.as_tensor(at[ok]),
        torch.clamp(torch.arange(T), int(at[ok][0]), int(at[ok][-1])),
        torch.as_tensor(np.asarray(sk.rotational)),
    )
    return out.numpy()
