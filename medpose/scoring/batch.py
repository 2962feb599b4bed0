"""Argument checks and the repetition batch shared by the metrics.

A batch of repetitions is given as a 1-D array (one repetition), a 2-D array ``(R, T)``
(``R`` repetitions padded with NaN to a common length ``T``) or a sequence of 1-D arrays of
any lengths; :func:`split_repetitions` cuts a whole trial into that list with the table of
:func:`medpose.temporal.segment_repetitions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "split_repetitions",
    "as_repetitions",
    "check_rate",
    "trim_missing",
    "usable",
    "INSIDE",
]


def check_rate(fs: float, func: str, name: str = "fs") -> float:
    """``fs`` as a float, or InputError naming it when it is not a positive finite number."""
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise InputError(f"{func}: {name} must be a positive number of Hz, found {fs!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{func}: {name} must be a positive number of Hz, found {fs!r}")
    return value


def as_repetitions(
    x: np.ndarray | Sequence[np.ndarray], func: str, name: str
) -> tuple[list[np.ndarray], bool]:
    """The repetitions of ``x`` as a list of 1-D float arrays, and whether ``x`` was one.

    Raises
    ------
    InputError
        For an array of more than 2 dimensions, an empty batch, a scalar, or a sequence
        item that is not 1-D; the message names ``name`` and the shape found.
    """
    if isinstance(x, pd.DataFrame):
        raise InputError(
            f"{func}: {name} is a table of {x.shape[1]} columns; pass one column (one angle) "
            "per call, e.g. angles['knee_flexion_r']"
        )
    try:
        return _as_repetitions(x, func, name)
    except (TypeError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{func}: {name} must hold numbers, found {type(x).__name__}") from None


def _as_repetitions(
    x: np.ndarray | Sequence[np.ndarray], func: str, name: str
) -> tuple[list[np.ndarray], bool]:
    if isinstance(x, np.ndarray) or np.isscalar(x):
        a = np.asarray(x, dtype=float)
        if a.ndim == 1:
            return [a], True
        if a.ndim == 2 and a.shape[0] > 0:
            return [a[i] for i in range(a.shape[0])], False
        raise InputError(
            f"{func}: {name} must have shape (T,) for one repetition or (R, T) for R "
            f"repetitions, found shape {a.shape}"
        )
    if isinstance(x, pd.Series):
        return [np.asarray(x, dtype=float)], True
    items = list(x)
    if not items:
        raise InputError(f"{func}: {name} holds no repetitions; expected at least one")
    if all(np.isscalar(v) for v in items):
        return [np.asarray(items, dtype=float)], True
    reps = []
    for i, item in enumerate(items):
        a = np.asarray(item, dtype=float)
        if a.ndim != 1:
            raise InputError(
                f"{func}: {name}[{i}] must be a 1-D array (one repetition), found shape {a.shape}"
            )
        reps.append(a)
    return reps, False


def trim_missing(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` without its leading and trailing NaN (padding), and the number of interior NaN."""
    finite = np.flatnonzero(np.isfinite(a))
    if finite.size == 0:
        return a[:0], 0
    core = a[finite[0] : finite[-1] + 1]
    return core, int(np.count_nonzero(~np.isfinite(core)))


#: The reason :func:`usable` gives for gaps inside a repetition (after their count).
INSIDE = "missing samples inside the repetition"


def usable(a: np.ndarray, min_samples: int, gaps_allowed: bool = False) -> tuple[np.ndarray, str]:
    """Trim NaN padding; return the samples and ``""``, or an empty array and the reason.

    The reason says what was found and what is needed: all missing, fewer than
    ``min_samples`` samples, or interior gaps (when ``gaps_allowed`` is False).
    """
    if a.size == 0 or not np.any(np.isfinite(a)):
        return a[:0], f"all {a.size} samples are missing"
    core, gaps = trim_missing(a)
    n = int(core.size - gaps)
    if n < min_samples:
        return a[:0], f"{n} finite samples; at least {min_samples} needed"
    if gaps and not gaps_allowed:
        return a[:0], f"{gaps} {INSIDE}; fill gaps first (medpose.temporal.fill_gaps)"
    return core, ""


def split_repetitions(signal: np.ndarray, repetitions: pd.DataFrame) -> list[np.ndarray]:
    """Cut a trial into its repetitions, first to last frame inclusive.

    Parameters
    ----------
    signal : array_like, shape (T,) or (T, ...)
        A joint angle (degrees), a speed, a trajectory... with time on axis 0.
    repetitions : pandas.DataFrame
        The table of :func:`medpose.temporal.segment_repetitions` (``start_frame`` and
        ``end_frame``, inclusive).

    Returns
    -------
    list of ndarray
        One array per repetition, in the table's order.

    Raises
    ------
    InputError
        If the table lacks ``start_frame``/``end_frame`` or a repetition lies outside the
        signal.
    """
    a = np.asarray(signal, dtype=float)
    if a.ndim == 0:
        raise InputError("split_repetitions: signal must have time on axis 0, found a scalar")
    for col in ("start_frame", "end_frame"):
        if col not in repetitions.columns:
            raise InputError(
                f"split_repetitions: repetitions has no {col!r} column; expected the table "
                "of medpose.temporal.segment_repetitions"
            )
    out = []
    for s, e in zip(repetitions["start_frame"], repetitions["end_frame"]):
        if not (0 <= int(s) <= int(e) < a.shape[0]):
            raise InputError(
                f"split_repetitions: repetition frames {int(s)}..{int(e)} lie outside the "
                f"signal's {a.shape[0]} frames"
            )
        out.append(a[int(s) : int(e) + 1])
    return out
