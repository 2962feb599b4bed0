"""Patient skeleton from imaging: registered imaging landmarks expressed in the camera frame.

The constrained skeleton fit takes segment lengths and joint centres from these points
(joint centres such as ``hip_r`` and bony landmarks such as ``asis_r``, medpose's canonical
names in ``resources/keypoints.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import yaml

from ..data import Landmarks
from ..errors import FrameMismatch, InputError
from .result import Registration

__all__ = ["skeleton_landmarks_from_imaging", "canonical_keypoints"]


@lru_cache(maxsize=1)
def canonical_keypoints() -> dict[str, dict]:
    """medpose's anatomical keypoint names and their ``segment`` and ``kind`` (from keypoints.yaml)."""
    text = (
        resources.files("medpose").joinpath("resources/keypoints.yaml").read_text(encoding="utf-8")
    )
    return dict(yaml.safe_load(text)["keypoints"])


def skeleton_landmarks_from_imaging(
    registration: Registration,
    imaging: Landmarks,
    *,
    kinds: Sequence[str] = ("joint_centre", "bony"),
    names: Sequence[str] | None = None,
) -> Landmarks:
    """Map the anatomical imaging landmarks into the camera frame for the skeleton fit.

    Parameters
    ----------
    registration : Registration
        Imaging (moving) -> camera (fixed) registration.
    imaging : Landmarks
        Landmarks in the registration's moving frame (e.g. LPS), named with medpose's canonical
        keypoint names; other names (e.g. skin fiducials ``fid1``) are left out.
    kinds : sequence of str
        Keypoint kinds to keep (``joint_centre``, ``bony``, ``surface``).
    names : sequence of str, optional
        Keep only these names (each must be present and canonical).

    Returns
    -------
    Landmarks
        Positions in the registration's fixed frame (mm); NaN where the imaging landmark is NaN.

    Raises
    ------
    FrameMismatch
        If ``imaging`` is not in the registration's moving frame.
    InputError
        If no anatomical landmark is left, or a requested name is missing or not canonical.
    """
    t = registration.transform
    if imaging.frame != t.source:
        raise FrameMismatch(
            f"skeleton_landmarks_from_imaging: imaging landmarks are in frame '{imaging.frame}', "
            f"the registration maps '{t.source}' to '{t.target}'"
        )
    table = canonical_keypoints()
    if names is not None:
        bad = [n for n in names if n not in table]
        if bad:
            raise InputError(
                f"skeleton_landmarks_from_imaging: {bad} are not medpose keypoint names "
                "(resources/keypoints.yaml)"
            )
        missing = [n for n in names if n not in imaging.names]
        if missing:
            raise InputError(
                f"skeleton_landmarks_from_imaging: {missing} not among the imaging landmarks"
            )
        keep = list(names)
    else:
        keep = [n for n in imaging.names if n in table and table[n].get("kind") in set(kinds)]
    if not keep:
        raise InputError(
            f"skeleton_landmarks_from_imaging: none of the imaging landmarks {list(imaging.names)[:8]} is "
            f"a medpose keypoint of kind {list(kinds)}; name them as in resources/keypoints.yaml"
        )
    return t.apply(imaging.subset(keep))
