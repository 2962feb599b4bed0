"""An OpenSim model's zero pose as a fitted skeleton reads it, for :meth:`Fit.to_mot`.

medpose's skeleton and an OpenSim model agree on axes and signs (``resources/opensim_models``),
but not on where each keypoint sits against its bone frame, so the same posture can read a few
degrees apart in the two (a calibrated knee 4-8 degrees on Pose2Sim's model in
``benchmarks/calibration.py``).  :func:`opensim_zero` fits the skeleton of a fit (its
calibration, when it has one) to the model's own markers in the model's reference pose (every
coordinate 0, ``pro_sup`` 90: medpose's zero pose), and returns, per coordinate, what that pose
reads as; ``Fit.to_mot(..., zero=...)`` subtracts it, so the model's zero pose is written as 0.
This needs markers the keypoints were made to match, e.g. Pose2Sim's marker set on the model
it scaled.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ...data import JointAngles, KeypointSequence
from ...errors import InputError
from ...io.opensim import (
    opensim_mapping,
    osim_reference_markers,
    reference_coordinates,
    to_opensim,
)
from ..keypoint_models import load_keypoint_model
from ..skeleton import Skeleton
from .core import fit_sequence
from .result import Fit

__all__ = ["opensim_zero"]

_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
#: Median distance (mm) of the reference markers from the fitted skeleton above which the
#: markers are not those the keypoints are: OpenSim's own markers of Pose2Sim's model, calibrated
#: with either keypoint model, fit within 0.1-0.4 mm (``tests/data/opensim``); real detector
#: keypoints leave 10-17 mm on a calibrated skeleton (Pose2Sim's recording, docs/calibration.md).
FAR_MM = 10.0


def opensim_zero(
    fit: Fit,
    reference: str | os.PathLike | KeypointSequence,
    model: str = "pose2sim",
    markers: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Per coordinate of the OpenSim ``model`` (degrees), the value the fit's skeleton reads in
    the model's reference pose, less the value the mapping gives medpose's zero pose.

    Parameters
    ----------
    fit : Fit
        A fit whose keypoints are the model's markers (e.g. a ``.trc`` of Pose2Sim's HALPE_26
        markers), calibrated or not; its :attr:`~Fit.patient` (else its skeleton) is fitted.
    reference : path or KeypointSequence
        The model file (``.osim``, e.g. one Pose2Sim scaled; its markers are read in its
        reference pose with the ``opensim`` package, :func:`medpose.io.opensim.osim_reference_markers`),
        or those markers already read: one or more frames of the model's markers in that pose.
    model : str
        The packaged mapping (:data:`medpose.io.opensim.OPENSIM_MODELS`).
    markers : path, optional
        With a model file: a marker set file added to it (Pose2Sim's ``Markers_Halpe26.xml``
        for its unscaled model, which holds no markers).

    Returns
    -------
    dict
        Rotational coordinate -> degrees, for ``Fit.to_mot(..., zero=...)``.

    Warns
    -----
    UserWarning
        The reference markers lie more than :data:`FAR_MM` (median) from the fitted skeleton:
        not the markers the keypoints are, so the zero read there is uncertain.

    Raises
    ------
    InputError
        An unknown model, a reference that is not a 3D sequence or a readable model, markers of
        another layout than the fit's calibration, or a reference pose that cannot be fitted.
    """
    mapping = opensim_mapping(model)  # an unknown model fails first
    if not isinstance(fit, Fit):
        raise InputError(f"opensim_zero: expected a Fit, found {type(fit).__name__}")
    if isinstance(reference, (str, os.PathLike)):
        reference = osim_reference_markers(reference, model, markers)
    if not isinstance(reference, KeypointSequence) or reference.ndim != 3:
        raise InputError(
            f"opensim_zero: reference: expected an .osim file or a 3D KeypointSequence of the "
            f"model's markers, found {type(reference).__name__} of shape "
            f"{getattr(reference, 'shape', '?')}"
        )
    try:
        reference, skeleton = _on_skeleton(fit, reference)
        with warnings.catch_warnings():  # a static pose: no noise to measure, nothing to smooth
            warnings.simplefilter("ignore", UserWarning)
            ref = fit_sequence(reference, skeleton, fit.limits, progress=False)
    except InputError as e:
        raise InputError(f"opensim_zero: the model's markers are not the fit's: {e}") from None
    if not ref.valid.any():
        raise InputError(
            "opensim_zero: the model's markers in its reference pose could not be fitted; "
            f"expected the keypoints of the fit ({len(fit.keypoint_names)}), found "
            f"{len(reference.names)} markers"
        )
    far = float(np.nanmedian(ref.residual[ref.valid]))
    if far > FAR_MM:
        warnings.warn(
            f"opensim_zero: the model's markers in its reference pose lie {far:.0f} mm (median) "
            f"from the fitted skeleton, expected within {FAR_MM:g} mm for the markers the "
            "keypoints are (the same marker set, on the model scaled to this subject): the zero "
            "read there is uncertain",
            stacklevel=2,
        )
    q = np.nanmean(ref.q[ref.valid].astype(float), axis=0)[None]
    angles = JointAngles(q, ref.dof_names, 1.0)
    read = to_opensim(angles, model, alignment=ref.alignment)
    zero = reference_coordinates(model)
    fixed = mapping.get("fixed", {})
    return {
        name: float(read.values[0, i]) - zero[name]
        for i, name in enumerate(read.names)
        if name not in _TRANSLATIONS and name not in fixed
    }


def _on_skeleton(fit: Fit, reference: KeypointSequence) -> tuple[KeypointSequence, Skeleton]:
    """The reference markers under the names the fit's calibration gave its keypoints, and the
    skeleton to fit them with.  A marker set may hold fewer keypoints than the layout the fit
    was calibrated on (Pose2Sim's HALPE_26 markers have no eyes or ears), never others."""
    patient = fit.patient
    if patient is None:
        return reference, fit.skeleton
    if patient.keypoint_model:
        reference = load_keypoint_model(patient.keypoint_model).rename(reference)
    if patient.keypoints:
        other = sorted(set(reference.names) - set(patient.keypoints))
        if other:
            raise InputError(
                f"keypoints {other[:6]} were not calibrated (the calibration has "
                f"{len(patient.keypoints)}: {list(patient.keypoints)[:6]}...)"
            )
    return reference, patient.skeleton
