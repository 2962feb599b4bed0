"""What a calibration (:func:`~medpose.kinematics.calibrate.calibrate`) found: per parameter,
whether the data determined it, and the residuals it is judged by."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .fit.starts import outliers
from .skeleton import Skeleton

#: An undetermined offset further than this many prior standard deviations from its prior is
#: reported as having moved (``"undetermined, N mm from its prior"``), not as ``"prior"``.
MOVED = 0.5


def determined(
    sk: Skeleton,
    labels: list[str],
    hinge: list[tuple[int, int]],
    x: np.ndarray,
    x0: np.ndarray,
    prior_sd: np.ndarray,
    post_sd: np.ndarray,
    held: np.ndarray,
) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Per keypoint, joint centre (three parameters each, ``labels``) and hinge axis (one angle
    each after them), what the data determined: a parameter whose posterior standard deviation
    ``post_sd`` is below half its prior's is determined; ``held`` ones were fixed on a rotation
    axis.  Returns the status per label (and ``"<segment> axis"``) and the axes' angles."""
    ratio = post_sd / prior_sd
    P0 = 3 * len(labels)
    status = {}
    for i, n in enumerate(labels):
        det = ratio[3 * i : 3 * i + 3] < 0.5
        hold = held[3 * i : 3 * i + 3]
        if (det | hold).all() and det.any():
            status[n] = "determined" + (" (held on a rotation axis)" if hold.any() else "")
        elif det.any():
            loose = ~(det | hold)
            free = ",".join("xyz"[a] for a in range(3) if loose[a])
            # the axes the data left undetermined, at their prior or moved (as below)
            moved = (x[3 * i : 3 * i + 3] - x0[3 * i : 3 * i + 3])[loose]
            dist = float(np.linalg.norm(moved))
            gone = dist > MOVED * float(prior_sd[3 * i : 3 * i + 3][loose].max())
            where = f"undetermined, {dist:.0f} mm from its prior" if gone else "at the prior"
            status[n] = f"partly determined ({free} {where})"
        else:
            # undetermined, yet moved (by what it trades with, or by the fit's posture prior):
            # say so, a parameter reported at its prior should be there
            dist = float(np.linalg.norm(x[3 * i : 3 * i + 3] - x0[3 * i : 3 * i + 3]))
            gone = dist > MOVED * float(prior_sd[3 * i : 3 * i + 3].max())
            status[n] = f"undetermined, {dist:.0f} mm from its prior" if gone else "prior"
    axes: dict[str, list[float]] = {}
    for i, (s, j) in enumerate(hinge):
        name = sk.segment_names[s]
        axes.setdefault(name, [0.0, 0.0, 0.0])[j] = float(x[P0 + i])
        key = f"{name} axis"
        slot = sk.sequences[s][j]
        det = "determined" if ratio[P0 + i] < 0.5 else "prior"
        status[key] = f"{status[key]}, {slot} {det}" if key in status else f"{slot} {det}"
    return status, axes


def weighted_rms(fits, confidence: np.ndarray, min_conf: float) -> list[float]:
    """Confidence-weighted RMS residual (mm) of each fit of the same frames, over the observations
    every one of them kept (confident, fitted, not a gross outlier:
    :func:`.fit.starts.outliers`)."""
    w = np.where(confidence >= min_conf, np.nan_to_num(confidence), 0.0)
    res = [np.asarray(f.residual, dtype=float) for f in fits]
    keep = w > 0
    for r in res:
        keep &= np.isfinite(r) & ~outliers(torch.as_tensor(r)).numpy()
    total = float(w[keep].sum())
    if total <= 0:
        return [float("nan")] * len(res)
    return [float(np.sqrt((w * np.where(keep, r, 0.0) ** 2).sum() / total)) for r in res]


def medians(res: np.ndarray, used: list[str]) -> dict[str, float]:
    """Median residual per keypoint (mm), NaN for one never observed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(res, axis=0)
    return {n: float(v) for n, v in zip(used, med)}
