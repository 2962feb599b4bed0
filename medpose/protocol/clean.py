"""A protocol's ``clean`` step on one trial's 3D keypoints, and the data-quality rows it reports.

Used by a session run (:mod:`medpose.protocol.session_run`) and by
:meth:`Protocol.run <medpose.protocol.definition.Protocol.run>` on a
:class:`~medpose.data.KeypointSequence`, so that one recording gives the same result either
way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import KeypointSequence
from ..errors import InputError

if TYPE_CHECKING:
    from .definition import Protocol

__all__ = ["clean_sequence", "missing_rows", "quality_rows", "REPROJECTION_ERROR_LIMIT_PX"]

#: A trial's median reprojection error (median over keypoints of each keypoint's median, px)
#: above which a run warns and a report flags it: Pose2Sim's default limit for accepting a
#: triangulated point (``reproj_error_threshold_triangulation = 15``, Pagnon et al. 2022,
#: *JOSS* 7:4362).  A well calibrated lab with a good detector stays far below it; cameras
#: given each other's keypoint folders, or a wrong calibration, go above it.
REPROJECTION_ERROR_LIMIT_PX = 15.0


def quality_rows(
    trial: str, check: str, names: Any, values: Any, unit: str
) -> list[dict[str, Any]]:
    """One :data:`~medpose.protocol.assessment.QUALITY_COLUMNS` row per name and value."""
    return [
        {"trial": trial, "check": check, "name": str(n), "value": float(v), "unit": unit}
        for n, v in zip(names, np.atleast_1d(np.asarray(values, dtype=float)))
    ]


def missing_rows(trial: str, seq: KeypointSequence) -> list[dict[str, Any]]:
    """``missing_fraction`` per keypoint: the share of frames without a position."""
    missing = ~np.all(np.isfinite(seq.positions), axis=2)
    return quality_rows(trial, "missing_fraction", seq.names, missing.mean(axis=0), "1")


def clean_sequence(
    protocol: Protocol, seq: KeypointSequence, trial: str
) -> tuple[KeypointSequence, list[dict[str, Any]]]:
    """The protocol's ``clean`` step on one trial's 3D keypoints, and its quality rows.

    Samples filled by ``gaps`` (outliers removed and short gaps) get the confidence
    ``steps.fit.min_confidence`` (the lowest the fit uses) so that the fit uses them, at the
    lowest weight; :func:`~medpose.temporal.clean_gaps` alone leaves them at 0.

    Returns
    -------
    sequence : KeypointSequence
    rows : list of dict
        :data:`~medpose.protocol.assessment.QUALITY_COLUMNS` rows: ``outliers_removed``,
        ``gap_frames_filled``, ``gap_frames_unfilled`` per keypoint (frames),
        ``swaps_repaired`` per left/right pair (frames).
    """
    from ..temporal import butterworth, clean_gaps, repair_swaps_3d, savgol

    settings = protocol.spec.steps.clean
    rows: list[dict[str, Any]] = []
    if settings is None:
        return seq, rows
    # swaps before outliers: the outlier test takes the first frames of a swap for outliers
    # and fills them between the two labellings, which hides the swap's start from the repair
    if settings.swaps is not None:
        seq, report = repair_swaps_3d(seq, **settings.swaps.model_dump())
        pairs = report.groupby(["keypoint_l", "keypoint_r"]).size()
        rows += quality_rows(
            trial, "swaps_repaired", [f"{a}/{b}" for a, b in pairs.index], pairs, "frames"
        )
    if settings.gaps is not None:
        res = clean_gaps(seq, **settings.gaps.model_dump())
        # clean_gaps gives filled samples confidence 0 (not measured); the protocol fills them
        # for the fit, which uses them at the lowest confidence it accepts
        fit = protocol.spec.steps.fit
        floor = fit.min_confidence if fit is not None else 0.0
        filled = np.isfinite(res.sequence.positions).all(axis=2) & (
            res.outliers | ~np.isfinite(seq.positions).all(axis=2)
        )
        conf = np.where(filled, np.maximum(res.sequence.confidence, floor), res.sequence.confidence)
        seq = res.sequence.with_positions(res.sequence.positions, conf)
        rows += quality_rows(
            trial, "outliers_removed", seq.names, res.outliers.sum(axis=0), "frames"
        )
        gaps = res.gaps
        for check, filled in (("gap_frames_filled", True), ("gap_frames_unfilled", False)):
            n = gaps[gaps["filled"] == filled].groupby("keypoint")["n_frames"].sum()
            rows += quality_rows(
                trial, check, seq.names, [n.get(k, 0) for k in seq.names], "frames"
            )
    if settings.filter is not None:
        f = settings.filter
        pos = seq.positions
        try:
            if f.method == "butterworth":
                assert f.cutoff_hz is not None  # checked by the schema
                out = butterworth(pos, seq.rate, f.cutoff_hz, order=f.order)
            else:
                assert f.window_s is not None
                out = savgol(pos, seq.rate, f.window_s, polyorder=f.polyorder)
        except InputError as e:  # e.g. a cut-off above a slow recording's Nyquist frequency
            raise InputError(f"protocol {protocol.name}, steps.clean.filter: {e}") from None
        seq = seq.with_positions(out, seq.confidence)
    return seq, rows
