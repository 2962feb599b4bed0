"""The result of a fit: :class:`Fit` (built with keyword arguments).

Joint angles, pelvis translations, fitted keypoints and residuals, limit and convergence
masks, and their export (OpenSim ``.mot``, Parquet, CSV).  A GPU fit leaves the fitted
keypoints and residuals on the device and computes them when first asked (:class:`Observed`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...data import JointAngles, KeypointSequence
from ...errors import InputError
from ...io._util import atomic_path
from ..fk import forward_kinematics
from ..limits import JointLimits
from ..patient import PatientSkeleton
from ..skeleton import Skeleton

__all__ = ["PLOT_DOFS", "POOR_MARGIN_MM", "POOR_RATIO", "Fit", "Observed", "poor_frames_note"]

#: How many DoFs :meth:`Fit.plot` draws by default: the joint angles that move most.
PLOT_DOFS = 8
#: A frame is fitted poorly (:attr:`Fit.poor_frames`) when its RMS residual is more than
#: ``POOR_RATIO`` times the trial's median and more than ``POOR_MARGIN_MM`` above it.  The UI-PRMD
#: Kinect v2 shoulder abductions (keypoint noise about 20 mm) stay within 3.3 times their median,
#: Pose2Sim's four-camera recording triangulated over the whole recording within 2.5; frames
#: with the left and right labels of a whole body swapped, a lower leg the Kinect folded up at
#: the bottom of a deep squat, or points triangulated from the wrong detections are 4 to 12
#: times it (docs/fit.md).
POOR_RATIO = 4.0
POOR_MARGIN_MM = 30.0


@dataclass(frozen=True, eq=False)
class Observed:
    """The observations a fit was made from (references, no copies) and how to recompute its
    fitted keypoints and residuals from ``q``: forward kinematics on ``device`` in chunks."""

    positions: np.ndarray  # (T, K_seq, 3) the sequence's, mm
    confidence: np.ndarray  # (T, K_seq)
    seq_index: np.ndarray  # (K,) columns used
    kp_index: np.ndarray  # (K,) matching skeleton keypoints
    min_confidence: float
    device: str
    dtype: np.dtype

    def compute(
        self, skeleton: Skeleton, q: np.ndarray, alignment: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        T, K = q.shape[0], len(self.kp_index)
        fitted = np.empty((T, K, 3), dtype=self.dtype)
        resid = np.empty((T, K), dtype=self.dtype)
        names = [skeleton.keypoint_names[k] for k in self.kp_index]
        dev = torch.device(self.device)
        A = torch.as_tensor(alignment, device=dev, dtype=torch.float64)
        step = 1 << 18
        for s0 in range(0, T, step):
            s1 = min(T, s0 + step)
            qq = torch.as_tensor(q[s0:s1], device=dev, dtype=torch.float64)
            # skeleton -> data axes (a tensor in, a tensor out)
            x = torch.as_tensor(forward_kinematics(skeleton, qq, keypoints=names)) @ A
            obs = torch.as_tensor(
                self.positions[s0:s1][:, self.seq_index], device=dev, dtype=torch.float64
            )
            c = torch.as_tensor(
                self.confidence[s0:s1][:, self.seq_index], device=dev, dtype=torch.float64
            )
            seen = torch.isfinite(obs).all(dim=2) & (c >= self.min_confidence) & (c > 0)
            r = torch.where(seen, torch.linalg.vector_norm(x - obs, dim=2), float("nan"))
            fitted[s0:s1] = x.cpu().numpy()
            resid[s0:s1] = r.cpu().numpy()
        return fitted, resid


@dataclass(frozen=True, eq=False, kw_only=True)
class Fit:
    """The result of :func:`fit`.

    Attributes
    ----------
    q : numpy.ndarray, shape (T, D)
        Every DoF of the skeleton (degrees; ``pelvis_tx/ty/tz`` in mm, in the skeleton's axes
        after :attr:`alignment`); NaN for frames that could not be fitted.  In the fit's precision
        (float32 by default), inside the hard limits.
    skeleton : Skeleton
        The skeleton fitted (the patient's, when estimated).
    limits : JointLimits
    patient : PatientSkeleton or None
        How the lengths were estimated, or the calibration given (None when a plain skeleton
        was given).
    observable : numpy.ndarray of bool, shape (D,)
        DoFs that the keypoints constrain; the others are held at their neutral value and
        reported as NaN in :attr:`angles`.
    alignment : numpy.ndarray, shape (3, 3)
        Rotation from the data's axes to the skeleton's (``x_skel = A @ x_data``).
    calibration : PatientSkeleton or None
        The calibration :func:`fit` made on this sequence (``calibrate="auto"`` or True), used or
        not: with ``"auto"`` it is used (and is :attr:`patient`) only where
        :attr:`PatientSkeleton.warranted <medpose.kinematics.patient.PatientSkeleton.warranted>`;
        None when none was made.
    """

    q: np.ndarray
    dof_names: tuple[str, ...]
    rate: float
    start: float
    frame: str
    skeleton: Skeleton
    limits: JointLimits
    patient: PatientSkeleton | None
    observable: np.ndarray
    alignment: np.ndarray
    keypoint_names: tuple[str, ...]
    fitted_: np.ndarray | None  # (T, K, 3) in the data frame, mm (None: computed when asked)
    residual_: np.ndarray | None  # (T, K) mm, NaN where not observed (likewise)
    limit_active: np.ndarray  # (T, D) bool
    converged_mask: np.ndarray  # (T,) bool
    valid: np.ndarray  # (T,) bool
    noise_mm: float = float("nan")  # keypoint noise measured on the pilot frames, mm per axis
    prior_sd: np.ndarray | None = None  # (D,) posture prior standard deviation, degrees
    source: Observed | None = None  # what the lazy keypoints and residuals are computed from
    calibration: PatientSkeleton | None = None

    @property
    def fitted(self) -> np.ndarray:
        """Fitted keypoints (T, K, 3) in the data frame, mm.  A GPU fit computes them when first
        asked (forward kinematics of :attr:`q` on the fit's device), so a million-frame fit does not
        move 0.3 GB back to the host that nobody may read."""
        return self._lazy()[0]

    @property
    def residual(self) -> np.ndarray:
        """Distance fitted-observed (T, K), mm; NaN where a keypoint was not observed."""
        return self._lazy()[1]

    def _lazy(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted keypoints and residuals, computed from :attr:`source` when first asked."""
        if self.fitted_ is not None and self.residual_ is not None:
            return self.fitted_, self.residual_
        if self.source is None:
            raise ValueError("Fit: no fitted keypoints, and no observations to compute them from")
        x, r = self.source.compute(self.skeleton, self.q, self.alignment)
        object.__setattr__(self, "fitted_", x)
        object.__setattr__(self, "residual_", r)
        return x, r

    @cached_property
    def frame_rms(self) -> np.ndarray:
        """RMS residual of each frame (T,), mm, over the keypoints observed in it (NaN for a
        frame not fitted); computed once."""
        r = np.asarray(self.residual, dtype=float)
        n = np.isfinite(r).sum(axis=1)
        total = np.nansum(r * r, axis=1)
        return np.sqrt(np.divide(total, n, out=np.full(len(n), np.nan), where=n > 0))

    @cached_property
    def poor_frames(self) -> np.ndarray:
        """Indices of the frames fitted poorly: RMS residual more than :data:`POOR_RATIO` times
        the trial's median frame RMS and more than :data:`POOR_MARGIN_MM` above it.  No posture
        of the skeleton comes near all their keypoints (a keypoint far off, left and right
        labels swapped, a frame triangulated badly), so the angles of the segments the far
        keypoints sit on are uncertain there (:func:`poor_frames_note` names them)."""
        r = self.frame_rms
        if not np.isfinite(r).any():
            return np.zeros(0, dtype=int)
        med = float(np.nanmedian(r))
        with np.errstate(invalid="ignore"):
            return np.flatnonzero((r > POOR_RATIO * med) & (r > med + POOR_MARGIN_MM))

    def without_frames(self, frames: Sequence[int] | np.ndarray) -> Fit:
        """A copy with ``frames`` (indices) as frames not fitted: NaN pose, keypoints and
        residuals, not valid, not converged.  Protocols drop :attr:`poor_frames` so (their
        metrics read the frames left, as they read around frames with too few keypoints)."""
        idx = np.asarray(frames, dtype=int).reshape(-1)
        if idx.size and (idx.min() < -len(self.q) or idx.max() >= len(self.q)):
            raise InputError(
                f"Fit.without_frames: frame {int(idx.max())} outside the fit's {len(self.q)} frames"
            )
        fitted, resid = self._lazy()
        q, x, r = self.q.copy(), fitted.copy(), resid.copy()
        q[idx], x[idx], r[idx] = np.nan, np.nan, np.nan
        keep = np.ones(len(q), dtype=bool)
        keep[idx] = False
        return replace(
            self,
            q=q,
            fitted_=x,
            residual_=r,
            source=None,
            valid=self.valid & keep,
            converged_mask=self.converged_mask & keep,
            limit_active=self.limit_active & keep[:, None],
        )

    @property
    def times(self) -> np.ndarray:
        """Time of each frame, s."""
        return self.start + np.arange(self.q.shape[0]) / self.rate

    def _index(self) -> pd.Index:
        return pd.Index(self.times, name="time_s")

    @property
    def _rot_cols(self) -> list[int]:
        return [i for i, r in enumerate(self.skeleton.rotational) if r]

    @property
    def angles(self) -> pd.DataFrame:
        """Joint angles in degrees: index ``time_s``, one column per rotational DoF.

        NaN for frames with too few confident keypoints and for DoFs no keypoint constrains.
        """
        cols = self._rot_cols
        v = np.where(self.observable[cols], self.q[:, cols], np.nan)
        df = pd.DataFrame(v, index=self._index(), columns=[self.dof_names[i] for i in cols])
        df.attrs.update({"units": "deg", "rate_hz": self.rate})
        return df

    @property
    def translations(self) -> pd.DataFrame:
        """Pelvis position (mm, skeleton axes) per frame."""
        cols = [i for i, r in enumerate(self.skeleton.rotational) if not r]
        df = pd.DataFrame(
            self.q[:, cols], index=self._index(), columns=[self.dof_names[i] for i in cols]
        )
        df.attrs.update({"units": "mm", "rate_hz": self.rate})
        return df

    @property
    def keypoints(self) -> KeypointSequence:
        """Fitted keypoints (the skeleton's), in the input's frame and names (medpose names), mm."""
        return KeypointSequence(
            self.fitted,
            self.keypoint_names,
            self.rate,
            confidence=None,
            frame=self.frame,
            start=self.start,
        )

    @property
    def residuals(self) -> pd.DataFrame:
        """Distance fitted-observed per frame (rows, ``time_s``) and keypoint (columns), mm."""
        df = pd.DataFrame(self.residual, index=self._index(), columns=list(self.keypoint_names))
        df.attrs.update({"units": "mm"})
        return df

    def keypoint_residuals(self) -> pd.DataFrame:
        """Per keypoint (rows): median and 95th percentile of the residual (mm) and the number of
        frames it was observed in; after a calibration (:attr:`patient` from
        :func:`~medpose.kinematics.calibrate.calibrate`) also the calibration's own median
        residual on its frames before (lengths only) and after it."""
        r = self.residual
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a keypoint never observed
            df = pd.DataFrame(
                {
                    "median_mm": np.nanmedian(r, axis=0),
                    "p95_mm": np.nanpercentile(r, 95, axis=0),
                    "frames": np.isfinite(r).sum(axis=0),
                },
                index=pd.Index(list(self.keypoint_names), name="keypoint"),
            )
        p = self.patient
        if p is not None and p.residual_before_mm:
            df["calibration_before_mm"] = [p.residual_before_mm.get(n, np.nan) for n in df.index]
            df["calibration_after_mm"] = [p.residual_after_mm.get(n, np.nan) for n in df.index]
        df.attrs.update({"units": "mm"})
        return df

    @property
    def at_limit(self) -> pd.DataFrame:
        """True where a DoF sits on a hard limit (the data pushed it there), per frame."""
        cols = self._rot_cols
        return pd.DataFrame(
            self.limit_active[:, cols],
            index=self._index(),
            columns=[self.dof_names[i] for i in cols],
        )

    @property
    def converged(self) -> pd.Series:
        """Per frame: the solver met its tolerance (False also for frames not fitted)."""
        return pd.Series(self.converged_mask, index=self._index(), name="converged")

    def joint_angles(self) -> JointAngles:
        """All DoFs (angles in degrees, pelvis translations in mm) as :class:`JointAngles`."""
        v = np.where(self.observable | ~self.skeleton.rotational, self.q, np.nan)
        return JointAngles(v, self.dof_names, self.rate, start=self.start)

    def to_mot(
        self,
        path: str | os.PathLike,
        model: str | None = "pose2sim",
        osim: str | os.PathLike | None = None,
        y_up: bool = False,
        zero: Mapping[str, float] | None = None,
    ) -> Path:
        """OpenSim motion file: the coordinates of an OpenSim ``model`` (names, signs, degrees,
        pelvis in metres; :func:`medpose.io.opensim.write_opensim_mot`; ``osim``: the model file,
        e.g. a scaled one), or medpose's own DoF names with ``model=None``.

        The pelvis pose is in the keypoints' axes, the frame OpenSim's ground shares with their
        ``.trc``; OpenSim's ground is Y-up, so keypoints with another up axis (a Z-up lab) put
        the body on its side, with a warning.  ``y_up=True`` writes the pelvis in their axes
        turned Y up instead (:func:`medpose.kinematics.fit.y_up_transform`, Pose2Sim's Z-up to
        Y-up permutation for a Z-up lab): the body upright, to open with the keypoints turned
        the same way (``medpose triangulate --y-up``).  With ``model=None`` the pelvis angles
        are medpose's own, in the skeleton's upright axes, and ``y_up`` changes nothing.

        ``zero``: degrees subtracted per coordinate, the model's zero pose as this fit's
        skeleton reads it (:func:`~medpose.kinematics.fit.opensim_zero`), so that the model's
        markers in that pose are written as 0 (for keypoints that are the model's markers)."""
        from ...io.opensim import write_opensim_mot

        if zero is not None and model is None:
            raise InputError("to_mot: zero is in an OpenSim model's coordinates; expected model")

        up = np.round(np.asarray(self.alignment, dtype=float)[1])
        if model is not None and not y_up and up[1] != 1.0:
            axis = ("-" if up.sum() < 0 else "+") + "xyz"[int(np.argmax(np.abs(up)))]
            warnings.warn(
                f"to_mot: the keypoints' up axis is {axis}, OpenSim's is +y: on the OpenSim model "
                "the body is not upright (as the keypoints are not) and the pelvis angles are in "
                "that frame (near gimbal lock when up is x or z); to_mot(..., y_up=True) "
                "(medpose fit --y-up) writes it upright, for keypoints turned Y up "
                "(medpose.kinematics.fit.y_up_transform, medpose triangulate --y-up)",
                stacklevel=2,
            )
        z = np.zeros((1, len(self.dof_names)))  # the zero pose: world = pelvis frame
        has = "pelvis" in self.skeleton.keypoint_names
        kp = (
            np.asarray(forward_kinematics(self.skeleton, z, keypoints=["pelvis"]))[0, 0]
            if has
            else None
        )
        return write_opensim_mot(
            self.joint_angles(),
            path,
            model,
            alignment=self.alignment,
            osim=osim,
            pelvis_keypoint_mm=kp,
            y_up=y_up,
            zero_deg=zero,
        )

    def _table(self) -> pd.DataFrame:
        df = pd.concat([self.angles, self.translations.add_suffix("_mm")], axis=1)
        return df.reset_index()

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Angles (degrees) and pelvis translation (``*_mm``) as Parquet, one row per frame."""
        with atomic_path(path) as tmp:
            self._table().to_parquet(tmp, index=False)
        return Path(path)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Angles (degrees) and pelvis translation (``*_mm``) as CSV, one row per frame."""
        with atomic_path(path) as tmp:
            self._table().to_csv(tmp, index=False)
        return Path(path)

    def plot(self, dofs: Sequence[str] | None = None, ax: Any = None) -> Any:
        """Joint angles (degrees) over time on a matplotlib axis, one line per DoF, with the
        frames where a DoF sits on a hard limit marked (x) and frames not fitted left as gaps.

        ``dofs``: rotational DoF names (default: the :data:`PLOT_DOFS` joint angles that move
        most, by the range between their 2nd and 98th percentiles, in the skeleton's order;
        the pelvis's orientation in the lab is left out unless nothing else moves).  InputError
        for a name that is not a rotational DoF of the fitted skeleton, or one no keypoint
        constrains (its angle is NaN)."""
        import matplotlib.pyplot as plt

        angles = self.angles
        seen = [c for c in angles.columns if bool(angles[c].notna().any())]
        if dofs is None:
            joints = [c for c in seen if not c.startswith("pelvis_")] or seen
            span = angles[joints].quantile(0.98) - angles[joints].quantile(0.02)
            top = set(span.sort_values(ascending=False, kind="stable").index[:PLOT_DOFS])
            names = [c for c in joints if c in top]
            if not names:
                raise InputError("Fit.plot: no DoF has a fitted angle in any frame of this fit")
        else:
            names = [dofs] if isinstance(dofs, str) else list(dofs)
            if not names:
                raise InputError("Fit.plot: dofs is empty; expected at least one DoF name")
            bad = [d for d in names if d not in angles.columns]
            if bad:
                raise InputError(
                    f"Fit.plot: {bad} not rotational DoFs of the fitted skeleton; expected "
                    f"names among {list(angles.columns)}"
                )
            unseen = [d for d in names if d not in seen]
            if unseen:
                raise InputError(
                    f"Fit.plot: no keypoint constrains {unseen} in this fit (their angles are "
                    f"NaN); expected DoFs among {seen}"
                )
        ax = ax or plt.gca()
        lim = self.at_limit
        for i, d in enumerate(names):
            line = ax.plot(angles.index, angles[d], lw=1, color=f"C{i % 10}", label=d)[0]
            hit = lim[d].to_numpy() if d in lim.columns else np.zeros(len(angles), bool)
            if hit.any():
                ax.plot(
                    angles.index[hit], angles[d].to_numpy()[hit], "x", ms=4, color=line.get_color()
                )
        title = f"{len(names)} DoFs; x: at a joint limit"
        if self.residual_ is not None and len(self.poor_frames):  # no GPU work for a plot
            t = self.times
            for k in self.poor_frames:
                ax.axvspan(t[k] - 0.5 / self.rate, t[k] + 0.5 / self.rate, color="0.85", lw=0)
            title += "; grey: fitted poorly"
        ax.set_xlabel("time (s)")
        ax.set_ylabel("angle (deg)")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(title, fontsize=8)
        return ax

    def __repr__(self) -> str:
        from ...report.display import fit_repr

        return fit_repr(self)

    def _repr_html_(self) -> str:
        from ...report.display import fit_html

        return fit_html(self)


def _runs(frames: np.ndarray, most: int = 6) -> str:
    """``"79, 160, 359-370"``: consecutive frame indices joined, at most ``most`` runs."""
    cuts = np.flatnonzero(np.diff(frames) > 1) + 1
    runs = [f"{g[0]}" if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in np.split(frames, cuts)]
    more = f" and {len(runs) - most} more runs" if len(runs) > most else ""
    return ", ".join(runs[:most]) + more


def poor_frames_note(fit: Fit) -> str:
    """A sentence on the frames :attr:`Fit.poor_frames` lists (empty when there is none): which,
    how far off, and the keypoints farthest from the skeleton there."""
    bad = fit.poor_frames
    if not len(bad):
        return ""
    r = fit.frame_rms
    res = np.asarray(fit.residual, dtype=float)[bad]
    seen = np.isfinite(res).any(axis=0)
    far = np.full(res.shape[1], -np.inf)
    far[seen] = np.nanmedian(res[:, seen], axis=0)
    top = [k for k in np.argsort(-far, kind="stable")[:3] if far[k] > POOR_MARGIN_MM]
    worst = ", ".join(f"{fit.keypoint_names[k]} {far[k]:.0f} mm" for k in top)
    return (
        f"{len(bad)} of {len(r)} frames fitted poorly (frames {_runs(bad)}; RMS residual "
        f"{np.nanmin(r[bad]):.0f}-{np.nanmax(r[bad]):.0f} mm, more than {POOR_RATIO:g} times the "
        f"trial's median of {np.nanmedian(r):.1f} mm; farthest there, median: {worst}): no "
        "posture of the skeleton comes near all their keypoints (a keypoint far off, left and "
        "right labels swapped, a frame triangulated badly?), so the angles of the segments "
        "those keypoints sit on are uncertain there; Fit.poor_frames lists the frames, "
        "medpose.temporal.repair_swaps_3d relabels swapped keypoints"
    )
