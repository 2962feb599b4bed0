"""Temporal processing of keypoint and angle sequences.

Filters (zero-lag Butterworth, Savitzky-Golay, One Euro, Kalman/RTS and a causal
weighted moving average as a baseline), outliers and gaps, left/right repair over time,
repetition segmentation, time normalisation and DTW alignment to templates.
Time is always axis 0; sampling rates are in Hz; missing samples are NaN.
"""

from __future__ import annotations

from .alignment import Alignment, average_template, dtw_align, dtw_distance
from .filters import butterworth, finite_runs, kalman_rts, one_euro, savgol, weighted_moving_average
from .gaps import (
    DEFAULT_BONES,
    CleanResult,
    GapResult,
    bone_length_outliers,
    clean_gaps,
    fill_gaps,
    hampel_outliers,
)
from .repetitions import cut_repetitions, principal_component, segment_repetitions, time_normalise
from .swaps import repair_swaps_3d

__all__ = [
    "butterworth",
    "savgol",
    "one_euro",
    "kalman_rts",
    "weighted_moving_average",
    "finite_runs",
    "hampel_outliers",
    "bone_length_outliers",
    "DEFAULT_BONES",
    "fill_gaps",
    "clean_gaps",
    "GapResult",
    "CleanResult",
    "repair_swaps_3d",
    "segment_repetitions",
    "time_normalise",
    "cut_repetitions",
    "principal_component",
    "Alignment",
    "dtw_align",
    "dtw_distance",
    "average_template",
]
