"""Ranges of motion that a joint's hard limit may have cut short.

The fit keeps every joint angle inside its range (``joint_ranges.yaml``); where the keypoints
push an angle past it, the angle stays on the limit and the range of motion read from it can be
no larger than the limit allows.  :func:`note_capped` adds that to the reason of each such
range-of-motion value (per repetition, and the summary over the repetitions), with the number
of frames and the limit, so a reader does not take a limit for the patient's range:
``on the body model's limit (120 deg) in 12 frame(s): the range may be larger``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CAPPED", "note_capped"]

#: Words that mark the note in a reason (the report shows it beside the value).
CAPPED = "on the body model's limit"
_SUFFIX = {"left": "_l", "right": "_r", "": ""}


def _frames(reps: pd.DataFrame, repetition: float) -> np.ndarray:
    """Frame indices of one repetition, or of every repetition where ``repetition`` is NaN."""
    rows = reps if np.isnan(repetition) else reps[reps["repetition"] == repetition]
    spans = [np.arange(int(a), int(b) + 1) for a, b in zip(rows["start_frame"], rows["end_frame"])]
    return np.concatenate(spans) if spans else np.zeros(0, dtype=int)


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
    for row in rows:
        dof = f"{row['joint']}{_SUFFIX.get(str(row['side']), '?')}"
        side_reps = reps.get(str(row["side"]))
        if not str(row["metric"]).startswith("rom") or dof not in at.columns or side_reps is None:
            continue
        idx = _frames(side_reps, float(row["repetition"]))
        idx = idx[idx < len(flags)]
        hit = idx[flags[idx, at.columns.get_loc(dof)]]
        if not hit.size or not np.isfinite(row["value"]):
            continue
        x = angles[dof].to_numpy(float)
        limit = float(np.nanmedian(x[hit]))
        seen = x[idx][np.isfinite(x[idx])]  # the repetition's angles, first to last
        rest = seen[0]
        peak = seen[np.argmax(np.abs(seen - rest))]
        if abs(limit - peak) >= abs(limit - rest):  # the limit held the rest, not the peak
            continue
        note = f"{CAPPED} ({limit:.0f} deg) in {hit.size} frame(s): the range may be larger"
        row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note
    return rows
