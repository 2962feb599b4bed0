"""Named 3D keypoints for the compensation and gait metrics, the lab's vertical and heading.

The keypoint metrics (:mod:`~medpose.scoring.compensation`, :mod:`~medpose.scoring.gait`) take
*points*: a mapping from medpose keypoint names (``hip_r``, ``acromion_l``, ``heel_r``...) to
positions in mm, each of shape ``(..., T, 3)`` (frames on the second-to-last axis, any leading
batch axes), in a frame whose vertical is known (``up``, default ``"+y"``: medpose's skeleton
frame, ISB axes X anterior, Y superior, Z right).  :func:`as_points` makes them from a
:class:`~medpose.kinematics.fit.Fit` (forward kinematics of the fitted pose: every anatomical
keypoint of the fitted skeleton, in the skeleton's axes, whose up axis the fit took from the
data), from 3D keypoints, or from joint angles of a skeleton.

:func:`heading` gives the patient's anterior and right directions in the horizontal plane,
from the pelvis; :func:`noise_interval` propagates keypoint noise to a metric by Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..data import JointAngles, KeypointSequence
from ..errors import InputError
from ..layouts import to_medpose_names

__all__ = [
    "Points",
    "Up",
    "as_points",
    "up_vector",
    "pick",
    "heading",
    "signed_angle",
    "noise_interval",
]

#: Named keypoint positions, mm, each ``(..., T, 3)``.
Points = Mapping[str, np.ndarray]
#: The lab's up direction: an axis name (``"+y"``) or a 3-vector.
Up = str | Sequence[float] | np.ndarray

_AXES = {"x": 0, "y": 1, "z": 2}


def up_vector(up: Up = "+y") -> np.ndarray:
    """The lab's upward unit vector: an axis name (``"+y"``, ``"-z"``...) or a 3-vector."""
    if isinstance(up, str):
        key = up.strip().lower()
        if key[-1:] not in _AXES or key[:-1] not in ("", "+", "-"):
            raise InputError(f"up: found {up!r}; expected '+x', '-x', '+y', '-y', '+z' or '-z'")
        v = np.zeros(3)
        v[_AXES[key[-1]]] = -1.0 if key.startswith("-") else 1.0
        return v
    v = np.asarray(up, dtype=float).reshape(-1)
    n = float(np.linalg.norm(v)) if v.size == 3 else 0.0
    if not (np.isfinite(n) and n > 0):
        raise InputError(f"up: found {up!r}; expected an axis name or a non-zero 3-vector")
    return v / n


def _present(points: Points, name: str) -> bool:
    return name in points and bool(np.isfinite(np.asarray(points[name], dtype=float)).any())


def pick(points: Points, *options: str | tuple[str, ...]) -> tuple[np.ndarray, str]:
    """The first available option: a keypoint name, or a tuple of names (their midpoint).

    Returns the position ``(..., T, 3)`` and the option's label (``"mid(px, t8)"``).

    Raises
    ------
    InputError
        If no option has all its keypoints (the message lists the options and the names found).
    """
    for opt in options:
        names = (opt,) if isinstance(opt, str) else tuple(opt)
        if all(_present(points, n) for n in names):
            arrs = [np.asarray(points[n], dtype=float) for n in names]
            for n, a in zip(names, arrs):
                if a.shape[-1:] != (3,):
                    raise InputError(f"points[{n!r}]: found shape {a.shape}; expected (..., 3) mm")
            label = names[0] if len(names) == 1 else f"mid({', '.join(names)})"
            return sum(arrs[1:], arrs[0]) / len(arrs), label
    wanted = [o if isinstance(o, str) else "+".join(o) for o in options]
    raise InputError(
        f"points: none of {wanted} found (with a finite position); keypoints given: "
        f"{sorted(points)[:40]}"
    )


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def heading(points: Points, up: Up = "+y") -> tuple[np.ndarray, np.ndarray]:
    """The patient's anterior and right directions in the horizontal plane, per frame.

    Right: ``hip_l -> hip_r`` (else ``asis_l -> asis_r``, else the shoulders) with its vertical
    component removed; anterior: ``up x right`` (ISB: X = Y x Z).  Unit vectors ``(..., T, 3)``.
    """
    u = up_vector(up)
    r_pt, _ = pick(points, "hip_r", "asis_r", "shoulder_r")
    l_pt, _ = pick(points, "hip_l", "asis_l", "shoulder_l")
    right = r_pt - l_pt
    right = _unit(right - (right @ u)[..., None] * u)
    return np.cross(u, right), right


def signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle from ``a`` to ``b`` about ``axis`` (right-hand rule), degrees, in (-180, 180]."""
    return np.degrees(np.arctan2(np.cross(a, b) @ axis, np.sum(a * b, axis=-1)))


def as_points(data: Any, skeleton: Any = None) -> tuple[dict[str, np.ndarray], float]:
    """Named keypoints ``(T, 3)`` in mm with +Y up, and the keypoint noise (mm per axis, NaN if
    unknown), from a fit, 3D keypoints or joint angles.

    * :class:`~medpose.kinematics.fit.Fit`: forward kinematics of the fitted pose (``Fit.q``) on
      the fitted skeleton, in the skeleton's axes (``x_skeleton = Fit.alignment @ x_data``, the
      data axis nearest the trunk made +Y); noise: ``Fit.noise_mm``;
    * :class:`~medpose.data.KeypointSequence` (3D, names of any known layout): rotated by
      :func:`~medpose.kinematics.fit.alignment_rotation` onto the same axes;
    * :class:`~medpose.data.JointAngles` with every DoF of ``skeleton`` (default
      ``Skeleton.default()``): forward kinematics;
    * a mapping of name to ``(..., T, 3)`` positions: used as it is (+Y assumed up).
    """
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in data.items()}, float("nan")
    from ..kinematics.fit import Fit, alignment_rotation
    from ..kinematics.fk import forward_kinematics
    from ..kinematics.skeleton import Skeleton

    if isinstance(data, Fit):
        x = np.asarray(forward_kinematics(data.skeleton, np.asarray(data.q, dtype=float)))
        names = tuple(data.skeleton.keypoint_names)
        return {n: x[:, i] for i, n in enumerate(names)}, float(data.noise_mm)
    if isinstance(data, KeypointSequence):
        if data.ndim != 3:
            raise InputError(f"as_points: found {data.ndim}D keypoints; expected 3D, in mm")
        pos = np.asarray(data.positions, dtype=float)
        names = to_medpose_names(data.names)
        x = pos @ alignment_rotation(pos, names).T
        return {n: x[:, i] for i, n in enumerate(names)}, float("nan")
    if isinstance(data, JointAngles):
        sk = skeleton if skeleton is not None else Skeleton.default()
        missing = [d for d in sk.dof_names if d not in data.names]
        if missing:
            raise InputError(
                f"as_points: joint angles lack {len(missing)} DoF(s) of the skeleton "
                f"({missing[:6]}...); expected every DoF, pelvis translations included"
            )
        q = np.stack([np.asarray(data[d], dtype=float) for d in sk.dof_names], axis=-1)
        x = np.asarray(forward_kinematics(sk, q))
        return {n: x[:, i] for i, n in enumerate(sk.keypoint_names)}, float("nan")
    raise InputError(
        f"as_points: found {type(data).__name__}; expected a Fit, a KeypointSequence, "
        "JointAngles or a mapping of keypoint name to positions (mm)"
    )


class _Noisy(Mapping[str, np.ndarray]):
    """``points`` with Gaussian noise added to a keypoint when it is first read (only the
    keypoints a metric reads cost a draw)."""

    def __init__(self, points: Points, keys: set[str], sd: float, rng: np.random.Generator) -> None:
        self._points, self._keys, self._sd, self._rng = points, keys, sd, rng
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            p = np.asarray(self._points[key], dtype=float)
            if key in self._keys:
                p = p + self._rng.normal(0.0, self._sd, size=p.shape)
            self._cache[key] = p
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def __contains__(self, key: object) -> bool:
        return key in self._points


def noise_interval(
    stat: Callable[[Points], float],
    points: Points,
    noise_mm: float,
    *,
    names: Sequence[str] | None = None,
    draws: int = 20,
    seed: int = 0,
) -> tuple[float, float, float]:
    """95 % interval of ``stat(points)`` under keypoint noise, by Monte Carlo.

    Each draw adds independent Gaussian noise of ``noise_mm`` per axis (the noise the fit
    measured, :attr:`Fit.noise_mm`) to every frame of the keypoints ``names`` (default all) and
    recomputes ``stat`` (a keypoint gets its noise when ``stat`` first reads it); the interval is ``stat(points) +- 1.96 SD`` of the draws (normal
    approximation; 20 draws give the SD within about +-30 %).  Applied to fitted keypoints, which
    the skeleton has already averaged over many observations, this bounds the error from above.

    Returns
    -------
    (low, high, sd)
        NaN when ``noise_mm`` is not a finite non-negative number or ``stat`` is NaN.
    """
    value = float(stat(points))
    if not (np.isfinite(noise_mm) and noise_mm >= 0 and np.isfinite(value)):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    keys = set(names) if names is not None else set(points)
    out = [float(stat(_Noisy(points, keys, noise_mm, rng))) for _ in range(int(draws))]
    vals = np.asarray(out)
    vals = vals[np.isfinite(vals)]
    if vals.size < 2:
        return float("nan"), float("nan"), float("nan")
    sd = float(np.std(vals, ddof=1))
    return value - 1.96 * sd, value + 1.96 * sd, sd
