"""The public fit: :func:`fit` calibrates the subject on the sequence first
(:func:`~medpose.kinematics.calibrate.calibrate`; by default kept where the data warrant it),
then fits every frame (:func:`.core.fit_sequence`)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Literal

import torch

from ...data import KeypointSequence
from ...errors import InputError
from ..limits import JointLimits
from ..patient import PatientSkeleton
from ..skeleton import Skeleton
from .core import fit_sequence
from .result import Fit, poor_frames_note

__all__ = ["fit"]


def fit(
    sequence: KeypointSequence,
    skeleton: Skeleton | PatientSkeleton | None = None,
    limits: JointLimits | None = None,
    *,
    calibrate: bool | Literal["auto"] = "auto",
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
        given, the coarse frames (one in ``warm_stride``) are solved on the lengths-only skeleton
        first, for their Euler branch (see :func:`.run.solve_frames`), 0.9-1.8 times a plain
        fit's time.
    limits : JointLimits, optional
        Hard limits (and soft prior); default :meth:`JointLimits.default`.
    calibrate : bool or "auto"
        ``"auto"`` (default): without a ``skeleton`` or ``init``, calibrate the subject on
        this sequence first
        (:func:`~medpose.kinematics.calibrate.calibrate` with its defaults: keypoint offsets,
        joint centres and lengths on up to 200 frames, a few seconds on the CPU) and fit with
        the calibration where the data warrant it
        (:attr:`PatientSkeleton.warranted <medpose.kinematics.patient.PatientSkeleton.warranted>`:
        it lowers the RMS keypoint residual by at least 10 % and 1 mm), else with lengths only;
        ``Fit.calibration`` holds the calibration either way, and its warnings are shown only
        when it is used.  Layouts whose keypoint model says so
        (:attr:`KeypointModel.auto_calibrate <medpose.kinematics.keypoint_models.KeypointModel.auto_calibrate>`:
        ``kinect_v2``, whose joints' errors change with posture) are not calibrated
        (``Fit.calibration`` is None).  ``True``: fit with the calibration in any case.  ``False``: lengths
        only, no calibration (the fastest; see docs/calibration.md).  A ``skeleton`` given is
        fitted as it is unless ``calibrate=True``.
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
        Not a 3D KeypointSequence; ``calibrate=True`` with a PatientSkeleton (already
        calibrated) or where calibration fails (``"auto"`` then warns and fits with lengths
        only); a ``calibrate`` other than True, False or "auto"; a layout missing the keypoints
        the fit needs (named); bone lengths implausible for a human (e.g. metres instead of
        millimetres); a bad ``prior``, ``smoothness``, ``chunk_size``, ``up`` or ``noise_mm``;
        an ``init`` of another length or other DoFs.
    LimitError
        Empty or inverted limits (from :class:`JointLimits`).

    Examples
    --------
    >>> import medpose as mp                                     # doctest: +SKIP
    >>> f = mp.fit(mp.read_keypoints("trial.trc"))               # doctest: +SKIP
    >>> f.angles["knee_flexion_r"].max()                         # doctest: +SKIP
    """
    if calibrate not in (True, False, "auto"):
        raise InputError(f"fit: calibrate must be True, False or 'auto', found {calibrate!r}")
    tried: PatientSkeleton | None = None
    failed = ""
    if calibrate is True:
        if isinstance(skeleton, PatientSkeleton):
            raise InputError(
                "fit: calibrate=True with a PatientSkeleton, which is a calibration already; "
                "expected a Skeleton (or None) to calibrate, or calibrate=False"
            )
        from ..calibrate import calibrate as calibrate_subject

        skeleton = tried = calibrate_subject(
            sequence, skeleton, min_confidence=min_confidence, up=up
        )
    elif (
        calibrate == "auto"
        and skeleton is None
        and init is None
        and isinstance(sequence, KeypointSequence)
        and sequence.ndim == 3
    ):
        tried, shown, failed = _auto_calibration(sequence, min_confidence, up)
        if tried is not None and tried.warranted:
            skeleton = tried
            for w in shown:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    result = fit_sequence(
        sequence,
        skeleton,
        limits,
        device=device,
        dtype=dtype,
        smoothness=smoothness,
        prior=prior,
        chunk_size=chunk_size,
        progress=progress,
        min_confidence=min_confidence,
        min_keypoints=min_keypoints,
        max_iter=max_iter,
        warm_stride=warm_stride,
        tol_deg=tol_deg,
        threads=threads,
        up=up,
        init=init,
        noise_mm=noise_mm,
    )
    if result.residual_ is not None:  # a GPU fit's residuals wait until asked for
        note = poor_frames_note(result)
        if note:
            warnings.warn(f"fit: {note}", stacklevel=2)
    if failed:  # said only now: where the fit fails too, its own error says what is wrong
        warnings.warn(
            f"fit: could not calibrate on this sequence ({failed}); fitted with lengths only",
            stacklevel=2,
        )
    return result if tried is None else dataclasses.replace(result, calibration=tried)


def _auto_calibration(
    sequence: KeypointSequence, min_confidence: float, up: str | None
) -> tuple[PatientSkeleton | None, list[warnings.WarningMessage], str]:
    """``calibrate="auto"``: the calibration on the sequence, the warnings it gave (held back:
    they matter only if it is used) and, where it cannot be calibrated, None and why.  None and
    no reason where the layout's keypoint model says not to calibrate by default
    (:attr:`KeypointModel.auto_calibrate <medpose.kinematics.keypoint_models.KeypointModel.auto_calibrate>`)."""
    from ..calibrate import calibrate as calibrate_subject
    from ..keypoint_models import keypoint_model_for

    try:
        model = keypoint_model_for(sequence)
    except InputError:  # names no layout holds: calibrate() says what it can use
        model = None
    if model is not None and not model.auto_calibrate:
        return None, [], ""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        try:
            patient = calibrate_subject(sequence, min_confidence=min_confidence, up=up)
        except InputError as exc:
            return None, [], str(exc)
    return patient, list(shown), ""
