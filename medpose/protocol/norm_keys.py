"""The ``norm`` a protocol's metric names: a key of medpose's normative table
(``medpose.scoring.load_norms``) that measures the same thing as the metric.

Checked when a protocol is loaded, so that a typo (``rom.aaos.hip_flexon``) or a norm of another
joint (``rom.aaos.knee_flexion`` on a hip_flexion metric) is an error naming the metric, not a
metric left unscored or scored against the wrong normal range.
"""

from __future__ import annotations

import difflib
from functools import lru_cache

__all__ = ["norm_key_problem"]

#: Norm metrics measured by a protocol metric of another name: the five-times sit-to-stand time
#: is the ``movement_time`` summed over its five repetitions.
_MEASURED_BY = {"five_times_sit_to_stand": {"movement_time"}}


@lru_cache(maxsize=1)
def _rows() -> dict[str, tuple[str, str]]:
    """Every normative key -> (its metric, its joint or measure; "" where none)."""
    from ..scoring.norms import load_norms

    table = load_norms()
    return {
        str(k): (str(m), "" if j != j or j is None else str(j))  # j != j: NaN
        for k, m, j in zip(table["key"], table["metric"], table["joint"])
    }


def _body_part(joint: str) -> str:
    """The anatomical joint of a joint angle: ``hip`` of ``hip_flexion_l``."""
    return joint.removesuffix("_l").removesuffix("_r").split("_")[0]


def norm_key_problem(key: str, metric: str, joint: str | None) -> str | None:
    """Why ``key`` is not a norm for the protocol metric ``metric`` (of ``joint``); None when it
    is one.  A key is a row's key, or ``metric.source`` (the rows of a whole-body test, by age
    and sex group)."""
    rows = _rows()
    found = [r for k, r in rows.items() if k == key or k.startswith(key + ".")]
    if not found:
        prefixes = {k.rsplit(".", 1)[0] for k in rows if k.count(".") >= 2}
        close = difflib.get_close_matches(key, [*rows, *prefixes], n=3, cutoff=0.6)
        return f"found {key!r}, not a key of the normative table; " + (
            f"close matches: {', '.join(close)}" if close else "see medpose.load_norms()"
        )
    norm_metric, norm_joint = found[0]
    if norm_metric == "criterion":
        if norm_joint != metric:
            return f"found {key!r}, a criterion for {norm_joint}; the metric is {metric}"
        return None
    if norm_metric == "rom":
        if metric != "rom":
            return f"found {key!r}, a range-of-motion norm; the metric is {metric}, not rom"
        if joint is not None and _body_part(norm_joint) != _body_part(joint):
            return (
                f"found {key!r}, a norm of the {_body_part(norm_joint)} ({norm_joint}); the "
                f"metric is the range of motion of {joint}: expected a "
                f"rom.<source>.{_body_part(joint)}_... norm"
            )
        return None
    if metric != norm_metric and metric not in _MEASURED_BY.get(norm_metric, set()):
        return f"found {key!r}, a norm of {norm_metric}; the metric is {metric}"
    return None
