"""Ranges of motion that a joint's hard limit may have cut short.

The fit keeps every joint angle inside its range (``joint_ranges.yaml``); where the keypoints
push an angle past it, the angle stays on the limit and the range of motion read from it can be
no larger than the limit allows.  :func:`note_capped` adds that to the reason of each such
range-of-motion value (per repetition, and the summary over the repetitions), with the number
of frames and the limit, so a reader does not take a limit for the patient's range:
``on the body model's limit (144 deg) in 12 frame(s): the range may be larger``.
:func:`note_left_out` likewise notes the frames of a repetition without a fitted angle (not
fitted, or fitted poorly and left out), around which the range was read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..scoring.batch import INSIDE

__all__ = ["BESIDE", "CAPPED", "LEFT_OUT", "NEAR", "note_capped", "note_left_out"]

#: Words that mark the notes in a reason (the report shows them beside the value).
CAPPED = "on the body model's limit"
LEFT_OUT = "frame(s) of the repetition left out"
#: A criterion read at a key frame next to frames without keypoints (:mod:`.criteria`).
NEAR = "frame(s) left out next to the key frame"
BESIDE = (CAPPED, LEFT_OUT, NEAR)
_SUFFIX = {"left": "_l", "right": "_r", "": ""}


def _frames(reps: pd.DataFrame, repetition: float) -> np.ndarray:
    """Frame indices of one repetition, or of every repetition where ``repetition`` is NaN."""
    rows = reps if np.isnan(repetition) else reps[reps["repetition"] == repetition]
    spans = [np.arange(int(a), int(b) + 1) for a, b in zip(rows["start_frame"], rows["end_frame"])]
    return np.concatenate(spans) if spans else np.zeros(0, dtype=int)


def _angle_rows(
    rows: list[dict[str, Any]], columns: Any, reps: Mapping[str, pd.DataFrame], rom: bool = True
):
    """The rows of a joint angle among ``columns``, each with the angle's name and its
    repetition's frames (every repetition's for a summary row): the ``rom`` rows with a finite
    value, or with ``rom=False`` every other row of such an angle, finite or not."""
    for row in rows:
        dof = f"{row['joint']}{_SUFFIX.get(str(row['side']), '?')}"
        side_reps = reps.get(str(row["side"]))
        if str(row["metric"]).startswith("rom") != rom or dof not in columns or side_reps is None:
            continue
        if np.isfinite(row["value"]) or not rom:
            yield row, dof, _frames(side_reps, float(row["repetition"]))


def _add(row: dict[str, Any], note: str) -> None:
    row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note


def note_capped(
    rows: list[dict[str, Any]], source: Any, reps: Mapping[str, pd.DataFrame]
) -> list[dict[str, Any]]:
    """``rows`` (metric rows) with the note added to each ``rom`` value whose joint angle sits
    on a hard limit at the peak side of its repetition(s) (nearer the angle's extreme than its
    starting value; a limit holding the rest, such as the knee's full extension, is left out);
    unchanged unless ``source`` is a fit (with ``at_limit`` and ``angles``)."""
    at = getattr(source, "at_limit", None)
    if not isinstance(at, pd.DataFrame):
        return rows
    flags = at.to_numpy(bool)
    angles = source.angles
    for row, dof, idx in _angle_rows(rows, at.columns, reps):
        idx = idx[idx < len(flags)]
        hit = idx[flags[idx, at.columns.get_loc(dof)]]
        if not hit.size:
            continue
        x = angles[dof].to_numpy(float)
        limit = float(np.nanmedian(x[hit]))
        seen = x[idx][np.isfinite(x[idx])]  # the repetition's angles, first to last
        rest = seen[0]
        peak = seen[np.argmax(np.abs(seen - rest))]
        if abs(limit - peak) >= abs(limit - rest):  # the limit held the rest, not the peak
            continue
        _add(row, f"{CAPPED} ({limit:.0f} deg) in {hit.size} frame(s): the range may be larger")
    return rows


def note_left_out(
    rows: list[dict[str, Any]], source: Any, reps: Mapping[str, pd.DataFrame]
) -> list[dict[str, Any]]:
    """``rows`` with a note on each ``rom`` value whose repetition(s) hold frames without a
    fitted angle (frames not fitted, or fitted poorly and left out,
    :meth:`~medpose.kinematics.fit.Fit.without_frames`), so a reader knows the range was read
    around them; unchanged unless ``source`` is a fit."""
    if not hasattr(source, "poor_frames"):
        return rows
    angles = source.angles
    for row, dof, idx in _angle_rows(rows, angles.columns, reps):
        x = angles[dof].to_numpy(float)[idx[idx < len(angles)]]
        gone = int(np.isnan(x).sum())
        if 0 < gone < len(x):
            _add(row, f"{gone} {LEFT_OUT} (not fitted, or fitted poorly): the range may be larger")
    # a measure that needs every sample (SPARC) names those frames, not a gap to fill
    for row, dof, idx in _angle_rows(rows, angles.columns, reps, rom=False):
        x = angles[dof].to_numpy(float)[idx[idx < len(angles)]]
        if INSIDE in str(row["reason"]) and 0 < int(np.isnan(x).sum()) < len(x):
            row["reason"] = str(row["reason"]).split(";")[0] + (
                ": frames not fitted, or fitted poorly and left out; this measure needs every "
                "sample of the repetition"
            )
    return rows
