"""Keypoint layouts of pose detectors, as data.

A layout is the ordered list of keypoints a detector outputs (COCO 17, HALPE 26, MediaPipe 33,
OpenPose BODY_25, Human3.6M 17), each with the medpose canonical name it maps to
(``resources/keypoints.yaml``) and the aliases other tools use for it (Pose2Sim's marker names).
The layouts live in ``medpose/resources/layouts/*.yaml``; their headers cite where each order
comes from.  The idea of keypoint layouts as declarative data follows Pose2Sim's ``skeletons.py``.

Examples
--------
>>> get_layout("body25").medpose[8]
'pelvis'
>>> to_medpose_names(["left_hip", "MidHip", "RBigToe", "my_marker"])
('hip_l', 'pelvis', 'big_toe_r', 'my_marker')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from .errors import InputError

__all__ = [
    "Layout",
    "get_layout",
    "list_layouts",
    "detect_layout",
    "to_medpose_names",
    "canonical_keypoints",
    "lr_pairs",
    "lr_pair_indices",
]

_LAYOUT_NAMES = ("coco17", "halpe26", "mediapipe33", "body25", "h36m17")


@dataclass(frozen=True)
class Layout:
    """One detector's keypoint order.

    Parameters
    ----------
    name : str
        Layout id, e.g. ``"coco17"``.
    native : tuple of str
        The detector's own keypoint names, in its output index order.
    medpose : tuple of str
        The medpose canonical name of each keypoint (same order).
    aliases : tuple of tuple of str
        Other names for each keypoint (e.g. Pose2Sim's), same order.
    description, source : str
        What the layout is and where its order is specified.
    """

    name: str
    native: tuple[str, ...]
    medpose: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.native) != len(self.medpose):
            raise InputError(
                f"layout {self.name}: {len(self.native)} native names but "
                f"{len(self.medpose)} medpose names"
            )
        if not self.aliases:
            object.__setattr__(self, "aliases", tuple(() for _ in self.native))

    def __len__(self) -> int:
        return len(self.native)

    @property
    def mapping(self) -> dict[str, str]:
        """Native name and aliases -> medpose name."""
        out = {n: m for n, m in zip(self.native, self.medpose)}
        for al, m in zip(self.aliases, self.medpose):
            out.update({a: m for a in al})
        return out


def _load_yaml(*parts: str) -> dict:
    res = resources.files("medpose").joinpath("resources", *parts)
    with res.open("r", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@cache
def canonical_keypoints() -> dict[str, dict]:
    """The canonical keypoint table from ``resources/keypoints.yaml``.

    Returns
    -------
    dict
        ``{name: {"segment": ..., "kind": ..., "description": ...}}`` in file order.
        Treat it as read-only (it is cached).
    """
    return dict(_load_yaml("keypoints.yaml")["keypoints"])


def get_layout(name: str) -> Layout:
    """A layout by id (case-insensitive): one of :func:`list_layouts`.

    Raises
    ------
    InputError
        If the layout is unknown (the message lists the known ones).
    """
    key = str(name).lower().replace("_", "").replace("-", "")
    if key not in _LAYOUT_NAMES:
        raise InputError(f"unknown keypoint layout {name!r}; known layouts: {list(_LAYOUT_NAMES)}")
    return _load_layout(key)


@cache
def _load_layout(key: str) -> Layout:
    d = _load_yaml("layouts", f"{key}.yaml")
    kps = d["keypoints"]
    return Layout(
        name=d["name"],
        native=tuple(str(k["native"]) for k in kps),
        medpose=tuple(str(k["medpose"]) for k in kps),
        aliases=tuple(tuple(str(a) for a in k.get("aliases") or ()) for k in kps),
        description=str(d.get("description", "")),
        source=str(d.get("source", "")),
    )


def list_layouts() -> list[str]:
    """Ids of the packaged layouts."""
    return list(_LAYOUT_NAMES)


def detect_layout(n_keypoints: int, *, prefer: str | None = None) -> Layout:
    """Guess a layout from the number of keypoints a detector wrote.

    25 -> ``body25``, 26 -> ``halpe26``, 33 -> ``mediapipe33``, 17 -> ``coco17`` (pass
    ``prefer="h36m17"`` for Human3.6M-ordered data, which also has 17 points).

    Parameters
    ----------
    n_keypoints : int
    prefer : str, optional
        A layout to use when it has ``n_keypoints`` points.

    Raises
    ------
    InputError
        If no layout has that many keypoints, or ``prefer`` has a different count.
    """
    n = int(n_keypoints)
    if prefer is not None:
        lay = get_layout(prefer)
        if len(lay) != n:
            raise InputError(f"layout {lay.name} has {len(lay)} keypoints, but {n} were found")
        return lay
    by_count = {17: "coco17", 25: "body25", 26: "halpe26", 33: "mediapipe33"}
    if n not in by_count:
        raise InputError(
            f"no known keypoint layout has {n} keypoints; expected one of "
            f"{sorted(by_count)} ({', '.join(f'{k}: {v}' for k, v in sorted(by_count.items()))})"
        )
    return get_layout(by_count[n])


@cache
def _name_table() -> tuple[dict[str, str], dict[str, str]]:
    exact: dict[str, str] = {n: n for n in canonical_keypoints()}
    for lay in map(get_layout, _LAYOUT_NAMES):
        exact.update(lay.mapping)
    folded = {k.casefold(): v for k, v in exact.items()}
    return exact, folded


def to_medpose_names(names: Iterable[str]) -> tuple[str, ...]:
    """Map native or alias keypoint names to medpose canonical names.

    Exact matches are tried first, then a case-insensitive match; unknown names are kept
    as they are.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    tuple of str
    """
    exact, folded = _name_table()
    return tuple(exact.get(n, folded.get(str(n).casefold(), n)) for n in map(str, names))


def lr_pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    """Left/right pairs among keypoint names: ``x_l`` with ``x_r`` (medpose naming).

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of (str, str)
        ``(left, right)`` in the order of the left names.

    Examples
    --------
    >>> lr_pairs(["knee_l", "knee_r", "nose", "hip_l"])
    [('knee_l', 'knee_r')]
    """
    names = list(names)
    present = set(names)
    return [(n, n[:-2] + "_r") for n in names if n.endswith("_l") and n[:-2] + "_r" in present]


def lr_pair_indices(names: Iterable[str]) -> list[tuple[int, int]]:
    """Index pairs ``(left, right)`` of the keypoints that :func:`lr_pairs` pairs.

    Examples
    --------
    >>> lr_pair_indices(["nose", "knee_r", "knee_l"])
    [(2, 1)]
    """
    names = list(names)
    idx = {n: i for i, n in enumerate(names)}
    return [(idx[a], idx[b]) for a, b in lr_pairs(names)]
