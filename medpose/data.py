"""The small frozen data types that every pipeline stage passes along.

* :class:`Landmarks` - named 3D points ``(N, 3)`` in mm, tagged with a frame.
* :class:`KeypointSequence` - named keypoints over time ``(T, K, D)`` (D = 3 for
  3D in mm, D = 2 for image keypoints in pixels), confidence ``(T, K)``,
  sampling rate in Hz, frame name.  Missing is NaN, never zero.
* :class:`JointAngles` - joint angles over time ``(T, J)`` in degrees.

Arrays are stored as read-only float64 copies.  Object methods only forward to
functions; the data are plain arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from .errors import FrameMismatch, InputError

if TYPE_CHECKING:  # geometry imports data at run time; data needs Transform for types only
    from .geometry import Transform

__all__ = ["Landmarks", "KeypointSequence", "JointAngles", "MAX_RATE_HZ"]

#: Highest frame rate (Hz) taken as a motion-capture rate (docs/formats-keypoints.md, "Frame
#: rate"): optical marker systems record at tens to a few thousand Hz, video at 25-240 Hz.  A
#: larger value is a damaged or mistyped header, and would size buffers from it (1e9 Hz: a
#: one-second filter window of 1e9 frames).
MAX_RATE_HZ = 10_000.0


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(str(n) for n in names)
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        raise InputError(f"{what}: duplicate names {sorted(set(dup))}; names must be unique")
    if any(not n.strip() for n in names):
        raise InputError(f"{what}: empty name found; every point needs a name")
    return names


@dataclass(frozen=True)
class Landmarks:
    """Named 3D points in one coordinate frame.

    Parameters
    ----------
    names : sequence of str
        Unique names, one per point.
    positions : array_like, shape (N, 3)
        Millimetres; NaN marks a point that was not placed.
    frame : str
        Coordinate frame, e.g. ``"LPS"`` (imaging) or ``"camera"``.
    """

    names: tuple[str, ...]
    positions: np.ndarray
    frame: str = "LPS"

    def __post_init__(self) -> None:
        names = _check_names(self.names, "Landmarks")
        pos = np.asarray(self.positions, dtype=float)
        if pos.size == 0 and len(names) == 0:
            pos = pos.reshape(0, 3)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise InputError(f"Landmarks: positions must have shape (N, 3), found {pos.shape}")
        if pos.shape[0] != len(names):
            raise InputError(f"Landmarks: {len(names)} names but {pos.shape[0]} positions")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "positions", _readonly(pos))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> np.ndarray:
        """Position of one landmark by name (mm)."""
        try:
            return self.positions[self.names.index(name)]
        except ValueError:
            raise KeyError(f"landmark {name!r} not found; known: {list(self.names)}") from None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {n: self.positions[i] for i, n in enumerate(self.names)}

    def subset(self, names: Iterable[str]) -> Landmarks:
        names = list(names)
        missing = [n for n in names if n not in self.names]
        if missing:
            raise KeyError(f"landmarks {missing} not found; known: {list(self.names)}")
        idx = [self.names.index(n) for n in names]
        return Landmarks(tuple(names), self.positions[idx], self.frame)

    def common(self, other: Landmarks) -> tuple[Landmarks, Landmarks]:
        """Pair two sets by name: both restricted to the names they share, in this set's order.

        Points that are NaN in either set are dropped from both.
        """
        shared = [n for n in self.names if n in other.names]
        a, b = self.subset(shared), other.subset(shared)
        ok = np.all(np.isfinite(a.positions), axis=1) & np.all(np.isfinite(b.positions), axis=1)
        keep = [n for n, k in zip(shared, ok) if k]
        return self.subset(keep), other.subset(keep)

    def with_frame(self, frame: str) -> Landmarks:
        return Landmarks(self.names, self.positions, frame)

    def to_dataframe(self) -> pd.DataFrame:
        df = pd.DataFrame(self.positions, columns=["x_mm", "y_mm", "z_mm"])
        df.insert(0, "name", list(self.names))
        df.attrs["frame"] = self.frame
        return df

    def __repr__(self) -> str:
        return f"Landmarks({len(self)} points in {self.frame}: {list(self.names)[:6]}{'...' if len(self) > 6 else ''})"

    def _repr_html_(self) -> str:
        from .report.display_data import landmarks_html

        return landmarks_html(self)

    def plot(self, axes: Sequence[str] | None = None, ax: Any = None) -> Any:
        """The placed points projected on a plane, each named, on a matplotlib axis (equal
        aspect, mm; points not placed are left out).

        ``axes``: two of ``"x"``, ``"y"``, ``"z"`` of this set's frame, e.g. ``("x", "z")``
        (seen along y); by default the plane of the points' two principal axes (x and y with
        fewer than three points placed), each labelled with its direction.  InputError for
        other ``axes``."""
        import matplotlib.pyplot as plt

        from .report.display_data import landmarks_plot

        return landmarks_plot(self, ax or plt.gca(), axes)


@dataclass(frozen=True, init=False)
class KeypointSequence:
    """Named keypoints over time.

    Parameters
    ----------
    positions : array_like, shape (T, K, D)
        D = 3: millimetres in ``frame``; D = 2: pixels in an image (``frame`` is the
        camera's name).  NaN marks a missing keypoint.
    names : sequence of str, length K
    rate : float
        Sampling rate in Hz (> 0).
    confidence : array_like, shape (T, K), optional, keyword-only
        In [0, 1]; defaults to 1 where the position is finite and 0 where it is NaN.
    frame : str, keyword-only
        Coordinate frame name.
    start : float, keyword-only
        Time of the first frame in seconds.
    copy : bool, keyword-only
        ``False`` lets the sequence take over ``positions`` instead of copying it, when it is
        a writeable C-contiguous float64 array (readers of large files use it): the array is
        then marked read-only (a keypoint with a missing coordinate set wholly NaN in it) and
        the caller must not write it.

    Raises
    ------
    InputError
        Positions not (T, K, 2) or (T, K, 3), names not unique or not one per keypoint, rate not
        a positive number, confidence of another shape or outside [0, 1].
    """

    positions: np.ndarray
    names: tuple[str, ...]
    rate: float
    confidence: np.ndarray
    frame: str
    start: float

    def __init__(
        self,
        positions: npt.ArrayLike,
        names: Sequence[str],
        rate: float,
        *,
        confidence: npt.ArrayLike | None = None,
        frame: str = "camera",
        start: float = 0.0,
        copy: bool = True,
    ) -> None:
        checked = _check_names(names, "KeypointSequence")
        pos = np.asarray(positions, dtype=float)
        if pos.ndim != 3 or pos.shape[2] not in (2, 3):
            raise InputError(
                f"KeypointSequence: positions must have shape (T, K, 3) or (T, K, 2), found {pos.shape}"
            )
        if pos.shape[1] != len(checked):
            raise InputError(
                f"KeypointSequence: {len(checked)} names but {pos.shape[1]} keypoints in positions"
            )
        hz = float(rate)
        if not np.isfinite(hz) or not 0 < hz <= MAX_RATE_HZ:
            raise InputError(
                f"KeypointSequence: rate must be a number of Hz in (0, {MAX_RATE_HZ:g}], "
                f"found {rate!r}"
            )
        finite = np.all(np.isfinite(pos), axis=2)
        if confidence is None:
            conf = finite.astype(float)
        else:
            conf = np.asarray(confidence, dtype=float)
            if conf.shape != pos.shape[:2]:
                raise InputError(
                    f"KeypointSequence: confidence must have shape {pos.shape[:2]}, found {conf.shape}"
                )
            conf = np.where(finite, np.nan_to_num(conf, nan=0.0), 0.0)
            if np.any(conf < 0) or np.any(conf > 1 + 1e-9):
                raise InputError(
                    "KeypointSequence: confidence must lie in [0, 1], found "
                    f"values from {conf.min():.3g} to {conf.max():.3g}"
                )
        owned = pos is positions and pos.flags.c_contiguous and pos.flags.writeable
        if copy or not owned:
            pos = np.array(pos, dtype=float, order="C", copy=True)
        pos[~finite] = np.nan
        pos.setflags(write=False)
        object.__setattr__(self, "names", checked)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "confidence", _readonly(conf))
        object.__setattr__(self, "rate", hz)
        object.__setattr__(self, "frame", str(frame))
        object.__setattr__(self, "start", float(start))

    # --------------------------------------------------------------- basics
    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_keypoints(self) -> int:
        return self.positions.shape[1]

    @property
    def ndim(self) -> int:
        """2 for image keypoints (pixels), 3 for 3D keypoints (mm)."""
        return self.positions.shape[2]

    @property
    def times(self) -> np.ndarray:
        """Time of each frame in seconds, shape (T,)."""
        return self.start + np.arange(self.n_frames) / self.rate

    def __len__(self) -> int:
        return self.n_frames

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"keypoint {name!r} not found; known: {list(self.names)}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        """Trajectory of one keypoint, shape (T, D)."""
        return self.positions[:, self.index(name)]

    def select(self, names: Iterable[str]) -> KeypointSequence:
        idx = [self.index(n) for n in names]
        return self._checked(
            self.positions[:, idx],
            _check_names(tuple(self.names[i] for i in idx), "KeypointSequence"),
            self.confidence[:, idx],
            self.start,
        )

    def rename(self, mapping: dict[str, str]) -> KeypointSequence:
        """Rename keypoints (names absent from ``mapping`` are kept)."""
        return self._checked(
            self.positions,
            _check_names(tuple(mapping.get(n, n) for n in self.names), "KeypointSequence"),
            self.confidence,
            self.start,
        )

    def _checked(
        self, positions: np.ndarray, names: tuple[str, ...], confidence: np.ndarray, start: float
    ) -> KeypointSequence:
        """A sequence like this one from arrays taken from checked ones (a rename, a slice, a
        selection): the checks are not repeated and views of the read-only arrays are shared
        (checking and copying a million frames took 1.7 s)."""
        out = object.__new__(KeypointSequence)
        for a in (positions, confidence):
            a.setflags(write=False)  # views of read-only arrays, or fresh copies
        for k, v in (
            ("names", names),
            ("positions", positions),
            ("confidence", confidence),
            ("rate", self.rate),
            ("frame", self.frame),
            ("start", float(start)),
        ):
            object.__setattr__(out, k, v)
        return out

    def slice(self, start: int | None = None, stop: int | None = None) -> KeypointSequence:
        sl = slice(start, stop)
        first = 0 if start is None else (start if start >= 0 else self.n_frames + start)
        return self._checked(
            self.positions[sl], self.names, self.confidence[sl], self.start + first / self.rate
        )

    def with_positions(
        self, positions: np.ndarray, confidence: np.ndarray | None = None, frame: str | None = None
    ) -> KeypointSequence:
        return KeypointSequence(
            positions,
            self.names,
            self.rate,
            confidence=self.confidence if confidence is None else confidence,
            frame=self.frame if frame is None else frame,
            start=self.start,
        )

    def transformed(self, transform: Transform) -> KeypointSequence:
        """Apply a :class:`~medpose.geometry.Transform` (its source must be this frame)."""
        if transform.source != self.frame:
            raise FrameMismatch(
                f"Transform {transform.source}->{transform.target} applied to a sequence in "
                f"frame '{self.frame}'"
            )
        return self.with_positions(transform.apply(self.positions), frame=transform.target)

    def landmarks_at(self, frame_index: int) -> Landmarks:
        """The keypoints of one frame as :class:`Landmarks` (3D only)."""
        if self.ndim != 3:
            raise InputError("landmarks_at: only 3D sequences convert to Landmarks")
        return Landmarks(self.names, self.positions[frame_index], self.frame)

    # --------------------------------------------------------------- tables
    def to_dataframe(self) -> pd.DataFrame:
        """Tidy table: one row per frame and keypoint.

        Columns ``frame, time_s, keypoint, x, y[, z], confidence``; units
        (``mm`` or ``px``) and the frame name are in ``df.attrs``.
        """
        t, k, d = self.positions.shape
        axes = ["x", "y", "z"][:d]
        df = pd.DataFrame(
            {
                "frame": np.repeat(np.arange(t), k),
                "time_s": np.repeat(self.times, k),
                "keypoint": np.tile(np.array(self.names, dtype=object), t),
            }
        )
        flat = self.positions.reshape(t * k, d)
        for i, a in enumerate(axes):
            df[a] = flat[:, i]
        df["confidence"] = self.confidence.reshape(-1)
        df.attrs.update(
            {"units": "mm" if d == 3 else "px", "rate_hz": self.rate, "frame": self.frame}
        )
        return df

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        rate: float | None = None,
        frame: str | None = None,
        source: str = "DataFrame",
    ) -> KeypointSequence:
        """Inverse of :meth:`to_dataframe`.  ``rate`` and ``frame`` default to ``df.attrs``
        (the rate is otherwise inferred from ``time_s``)."""
        need = {"keypoint", "x", "y"}
        missing = need - set(df.columns)
        if missing:
            raise InputError(
                f"{source}: missing columns {sorted(missing)}; expected keypoint, x, y[, z], "
                "and frame or time_s"
            )
        if "frame" not in df.columns and "time_s" not in df.columns:
            raise InputError(f"{source}: needs a 'frame' or 'time_s' column")
        d = 3 if "z" in df.columns else 2
        names = list(dict.fromkeys(df["keypoint"].astype(str)))
        key = "frame" if "frame" in df.columns else "time_s"
        if key == "frame":  # integer frame numbers: a frame with no rows stays a (missing) frame
            fr = df["frame"].to_numpy()
            frames = np.arange(int(fr.min()), int(fr.max()) + 1) if len(fr) else np.arange(0)
        else:
            frames = np.sort(df[key].unique())
        fi = np.searchsorted(frames, df[key].to_numpy())
        ki = pd.Index(names).get_indexer(df["keypoint"].astype(str))
        pos = np.full((len(frames), len(names), d), np.nan)
        pos[fi, ki] = df[["x", "y", "z"][:d]].to_numpy(dtype=float)
        conf = None
        if "confidence" in df.columns:
            conf = np.zeros((len(frames), len(names)))
            conf[fi, ki] = df["confidence"].to_numpy(dtype=float)
        if rate is None:
            rate = df.attrs.get("rate_hz")
        if rate is None and "time_s" in df.columns:
            times = np.sort(df["time_s"].unique())
            if len(times) < 2:
                raise InputError(
                    f"{source}: cannot infer the sampling rate from one time stamp; pass rate="
                )
            dt = np.diff(times)
            if np.any(dt <= 0):
                raise InputError(f"{source}: time stamps are not increasing")
            rate = 1.0 / float(np.median(dt))
        if rate is None:
            raise InputError(f"{source}: no sampling rate: pass rate= or include a time_s column")
        start = float(df["time_s"].min()) if "time_s" in df.columns else 0.0
        return cls(
            pos,
            tuple(names),
            float(rate),
            confidence=conf,
            frame=frame or df.attrs.get("frame", "camera"),
            start=start,
        )

    def __repr__(self) -> str:
        unit = "mm" if self.ndim == 3 else "px"
        return (
            f"KeypointSequence({self.n_frames} frames x {self.n_keypoints} keypoints, {self.ndim}D {unit}, "
            f"{self.rate:g} Hz, frame={self.frame!r})"
        )

    def _repr_html_(self) -> str:
        from .report.display_data import keypoints_html

        return keypoints_html(self)

    def plot(
        self, keypoints: str | Sequence[str] | None = None, axis: str | None = None, ax: Any = None
    ) -> Any:
        """Keypoints over time (s, from ``start``) on a matplotlib axis, one line each, missing
        frames left as gaps.

        ``keypoints``: names (default: the six whose trajectories span most, in this sequence's
        order).  ``axis``: the coordinate drawn, ``"x"``, ``"y"`` or ``"z"`` (3D only), in mm
        or px; or ``"speed"``, the distance between consecutive frames times the rate (mm/s or
        px/s), drawn at the later frame; by default ``"y"`` for image keypoints (vertical in the
        image) and, in 3D, the coordinate along which the keypoints drawn vary most.
        InputError for an unknown name or axis."""
        import matplotlib.pyplot as plt

        from .report.display_data import keypoints_plot

        return keypoints_plot(self, ax or plt.gca(), keypoints, axis)


@dataclass(frozen=True)
class JointAngles:
    """Joint angles over time in degrees.

    Parameters
    ----------
    values : array_like, shape (T, J)
        Degrees; NaN where a frame could not be solved.
    names : sequence of str, length J
        Degree-of-freedom names, e.g. ``knee_flexion_r``.
    rate : float
        Hz.
    start : float, keyword-only
        Time of the first frame, seconds.
    """

    values: np.ndarray
    names: tuple[str, ...]
    rate: float
    _: KW_ONLY
    start: float = 0.0

    def __post_init__(self) -> None:
        names = _check_names(self.names, "JointAngles")
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 2 or v.shape[1] != len(names):
            raise InputError(
                f"JointAngles: values must have shape (T, {len(names)}), found {v.shape}"
            )
        rate = float(self.rate)
        if not np.isfinite(rate) or not 0 < rate <= MAX_RATE_HZ:
            raise InputError(
                f"JointAngles: rate must be a number of Hz in (0, {MAX_RATE_HZ:g}], "
                f"found {self.rate!r}"
            )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "values", _readonly(v))
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "start", float(self.start))

    @property
    def times(self) -> np.ndarray:
        return self.start + np.arange(self.values.shape[0]) / self.rate

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"angle {name!r} not found; known: {list(self.names)}") from None

    def to_dataframe(self) -> pd.DataFrame:
        """Wide table indexed by ``time_s`` with one column per DoF (degrees)."""
        df = pd.DataFrame(
            self.values, columns=list(self.names), index=pd.Index(self.times, name="time_s")
        )
        df.attrs.update({"units": "deg", "rate_hz": self.rate})
        return df

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, rate: float | None = None) -> JointAngles:
        times = np.asarray(df.index, dtype=float)
        if rate is None:
            rate = df.attrs.get("rate_hz")
        if rate is None:
            if len(times) < 2:
                raise InputError(
                    "JointAngles.from_dataframe: cannot infer rate from fewer than 2 rows"
                )
            rate = 1.0 / float(np.median(np.diff(times)))
        return cls(
            df.to_numpy(dtype=float),
            tuple(map(str, df.columns)),
            float(rate),
            start=float(times[0]) if len(times) else 0.0,
        )

    def __repr__(self) -> str:
        return (
            f"JointAngles({self.values.shape[0]} frames x {len(self.names)} DoF, {self.rate:g} Hz)"
        )

    def _repr_html_(self) -> str:
        from .report.display_data import angles_html

        return angles_html(self)

    def plot(self, dofs: str | Sequence[str] | None = None, ax: Any = None) -> Any:
        """Joint angles (degrees) over time (s, from ``start``) on a matplotlib axis, one line per
        DoF, missing frames left as gaps.

        ``dofs``: names (default: the eight joint angles with the widest range, in this set's
        order; the pelvis's orientation only when no other angle moves).  The pelvis
        translations ``pelvis_tx/ty/tz`` (mm) are drawn only when named.  InputError for a
        name not in :attr:`names`."""
        import matplotlib.pyplot as plt

        from .report.display_data import angles_plot

        return angles_plot(self, ax or plt.gca(), dofs)
