"""Run a protocol on a whole session: every trial it needs, every step it names.

:func:`run_session` takes a loaded :class:`~medpose.protocol.definition.Protocol` and a
session (a :class:`~medpose.protocol.session.Session` or its folder) and returns a
:class:`~medpose.protocol.session_result.SessionResult`; it is pure computation (no file is
written, no database touched).  The public entry points taking a protocol's name as well are
in :mod:`medpose.protocol.execute`.

Per trial of the protocol, in this order (each step only when the protocol names it):

1. input: ``triangulate`` (:func:`medpose.triangulate` of the trial's 2D camera keypoints with
   the session's calibration) or ``read_keypoints`` (the trial's 3D keypoint file);
2. ``clean``: ``gaps`` (:func:`medpose.temporal.clean_gaps`: outliers removed, short gaps
   filled), ``swaps`` (:func:`medpose.temporal.repair_swaps_3d`), ``filter`` (zero-lag
   :func:`~medpose.temporal.butterworth` or :func:`~medpose.temporal.savgol` of the
   positions);
3. ``fit`` (:func:`medpose.fit`), then ``repetitions``, ``metrics`` and ``scores`` by
   :func:`~medpose.protocol.runner.run_protocol` on the fit;
4. ``register`` (``navigation_check``): :func:`~medpose.protocol.navigation.check_navigation`
   on the cleaned keypoints of the registration's trial.

A session trial read for several protocol trials (one recording of both arms assessed as
``abduction_left`` and ``abduction_right``) is read, cleaned and fitted once.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..data import KeypointSequence
from ..errors import InputError, MedposeError, ProtocolError
from .assessment import (
    METRIC_COLUMNS,
    QUALITY_COLUMNS,
    SCORE_COLUMNS,
    Assessment,
    explain_missing_ci,
)
from .clean import REPROJECTION_ERROR_LIMIT_PX, clean_sequence, missing_rows, quality_rows
from .inputs import input_hashes_for, trial_map
from .navigation import check_navigation
from .session import Session, Trial
from .session_result import SessionResult

if TYPE_CHECKING:
    from ..kinematics.fit import Fit
    from .definition import Protocol

__all__ = ["run_session", "clean_sequence", "load_session"]

_PCT = 95.0


def load_session(session: Session | str | os.PathLike) -> Session:
    """``session`` as a :class:`Session` (a folder is loaded, its schema and paths checked)."""
    if isinstance(session, Session):
        return session
    if not isinstance(session, (str, os.PathLike)):
        raise InputError(
            f"found {type(session).__name__}; expected a Session or a session folder's path"
        )
    return Session.load(session, check_files=False)


# ------------------------------------------------------------------------------ progress
class _Steps:
    """A tqdm bar over the steps (off when not asked or not a terminal)."""

    def __init__(self, total: int, show: bool | None, label: str) -> None:
        show = sys.stderr.isatty() if show is None else bool(show)
        self.bar: Any = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit="step", leave=False)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
        yield
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------ quality
def _fit_rows(trial: str, result: Fit) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    res = np.asarray(result.residual, dtype=float)
    names = result.keypoint_names
    seen = np.isfinite(res).any(axis=0)
    med = np.full(len(names), math.nan)
    hi = np.full(len(names), math.nan)
    if seen.any():
        med[seen] = np.nanmedian(res[:, seen], axis=0)
        hi[seen] = np.nanpercentile(res[:, seen], _PCT, axis=0)
    rows += quality_rows(trial, "fit_residual_median", names, med, "mm")
    rows += quality_rows(trial, "fit_residual_p95", names, hi, "mm")
    active = np.asarray(result.limit_active, dtype=bool)
    obs = np.asarray(result.observable, dtype=bool)
    dofs = [d for d, o in zip(result.dof_names, obs) if o]
    rows += quality_rows(trial, "frames_at_joint_limit", dofs, active[:, obs].sum(axis=0), "frames")
    rows += quality_rows(
        trial, "frames_not_fitted", ["all"], [int((~result.valid).sum())], "frames"
    )
    rows += quality_rows(
        trial, "frames_fitted_poorly", ["all"], [len(result.poor_frames)], "frames"
    )
    return rows


# ------------------------------------------------------------------------------ trials
@dataclass
class _Prepared:
    sequence: KeypointSequence
    quality: list[dict[str, Any]]
    fit: Fit | None = None


def _read(
    protocol: Protocol, session: Session, trial: Trial, steps: _Steps, label: str
) -> tuple[KeypointSequence, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    tri = protocol.spec.steps.triangulate
    if tri is not None:
        from ..camera.triangulation import triangulate

        with steps.step(f"{label}: triangulate"):
            if not trial.cameras:
                raise ProtocolError(
                    f"trial {trial.name!r}: the protocol triangulates 2D keypoints, but the "
                    "trial has no cameras; expected cameras: in session.yaml"
                )
            res = triangulate(
                session.read_calibration(),
                trial.read_camera_keypoints(),
                **tri.model_dump(),
                progress=False,
            )
            seq = res.sequence
            err = np.asarray(res.reprojection_error, dtype=float)
            seen = np.isfinite(err).any(axis=0)
            med = np.full(seq.n_keypoints, math.nan)
            if seen.any():
                med[seen] = np.nanmedian(err[:, seen], axis=0)
            rows += quality_rows(label, "reprojection_error_median", seq.names, med, "px")
            overall = float(np.nanmedian(med)) if seen.any() else math.nan
            if overall > REPROJECTION_ERROR_LIMIT_PX:
                warnings.warn(
                    f"trial {trial.name!r}: median reprojection error {overall:.1f} px, above "
                    f"{REPROJECTION_ERROR_LIMIT_PX:g} px: the 3D keypoints disagree with the "
                    "cameras' 2D keypoints (check the calibration, and that each camera's "
                    "folder in session.yaml is that camera's)",
                    stacklevel=2,
                )
            rows += quality_rows(label, "swaps_repaired", ["2d+3d"], [len(res.swaps)], "frames")
    else:
        with steps.step(f"{label}: read keypoints"):
            seq = trial.read_keypoints()
    return seq, rows


def _static_calibration(
    static: KeypointSequence, seq: KeypointSequence, label: str, done: dict[tuple[str, ...], Any]
) -> Any:
    """``calibrate: static``: the subject calibrated on the static trial's positions of the
    exercise trial's keypoints, named as the exercise trial names them; once per set of names
    (``done``)."""
    if seq.names in done:
        return done[seq.names]
    from ..kinematics.calibrate import calibrate
    from ..layouts import to_medpose_names

    mine, theirs = to_medpose_names(seq.names), to_medpose_names(static.names)
    missing = [n for n, m in zip(seq.names, mine) if m not in theirs]
    if missing:
        raise InputError(
            f"trial {label!r}: steps.fit.calibrate is 'static', but the static trial lacks "
            f"keypoints {missing} of this trial; expected every keypoint of the exercise trial in "
            "the static trial (or calibrate: movement)"
        )
    cols = [static.names[theirs.index(m)] for m in mine]
    sub = static.select(cols).rename(dict(zip(cols, seq.names)))
    done[seq.names] = calibrate(sub, static=True)
    return done[seq.names]


def _prepare(
    protocol: Protocol,
    session: Session,
    trial: Trial,
    label: str,
    steps: _Steps,
    fit_it: bool,
    static: tuple[KeypointSequence, dict[tuple[str, ...], Any]] | None = None,
) -> _Prepared:
    seq, rows = _read(protocol, session, trial, steps, label)
    if seq.ndim != 3:
        raise InputError(f"trial {trial.name!r}: found 2D keypoints; expected 3D keypoints (mm)")
    rows = missing_rows(label, seq) + rows
    with steps.step(f"{label}: clean"):
        seq, more = clean_sequence(protocol, seq, label)
    rows += more
    out = _Prepared(seq, rows)
    if fit_it:
        from ..kinematics.fit import fit

        settings = protocol.spec.steps.fit
        kwargs = settings.fit_kwargs() if settings is not None else {}
        mode = settings.calibrate if settings is not None else "auto"
        patient = None
        with steps.step(f"{label}: fit"):
            if mode == "movement":
                from ..kinematics.calibrate import calibrate

                patient = calibrate(seq, min_confidence=kwargs.get("min_confidence", 0.3))
            elif static is not None and (
                mode == "static" or (mode == "auto" and set(seq.names) == set(static[0].names))
            ):
                patient = _static_calibration(static[0], seq, label, static[1])
            out.fit = fit(seq, patient, **kwargs, progress=False, calibrate=False)
        rows += _fit_rows(label, out.fit)
        poor = out.fit.poor_frames
        if len(poor):  # their angles are uncertain: every metric reads around them
            from .trial_inputs import sequence_without_frames

            out.fit = out.fit.without_frames(poor)
            out.sequence = sequence_without_frames(out.sequence, poor)
        if patient is not None:  # how far calibration moved each keypoint from its prior
            table = patient.calibration_table()
            kp = table[table["kind"] == "keypoint"]
            rows += quality_rows(label, "calibration_change", kp["name"], kp["change_mm"], "mm")
    return out


# ------------------------------------------------------------------------------ combine
def _symmetry_across_trials(protocol: Protocol, metrics: pd.DataFrame) -> pd.DataFrame:
    """A ``symmetry_index`` whose sides were measured in different trials (one trial per
    side) is computed from the two trials' summaries."""
    from .. import scoring
    from .runner import symmetry_base

    m = metrics.copy()
    summary = m[m["repetition"].isna()]
    for spec in (s for s in protocol.metrics if s.name == "symmetry_index" and s.computable):
        base = symmetry_base(spec, protocol.metrics)
        rows = summary[summary["metric"] == base]
        left = rows[(rows["side"] == "left") & np.isfinite(rows["value"].astype(float))]
        right = rows[(rows["side"] == "right") & np.isfinite(rows["value"].astype(float))]
        target = (m["metric"] == spec.key) & m["value"].isna()
        if left.empty or right.empty or not target.any():
            continue
        if left["trial"].iloc[0] == right["trial"].iloc[0]:
            continue
        res = scoring.symmetry_index(float(left["value"].iloc[0]), float(right["value"].iloc[0]))
        v = float(np.asarray(res.value, dtype=float).reshape(-1)[0])
        idx = m.index[target]
        m = m.drop(idx[1:])
        m.loc[idx[0], ["trial", "side", "value", "unit"]] = [
            f"{left['trial'].iloc[0]}+{right['trial'].iloc[0]}",
            "both",
            v,
            res.unit,
        ]
        m.loc[idx[0], "reason"] = res.reasons[0] if res.reasons else ""
    return m.reset_index(drop=True)


def _fill_mdc95(protocol: Protocol, scores: pd.DataFrame) -> pd.DataFrame:
    """A score without an MDC95 gets the one of the measure's published measurement error
    (:func:`medpose.scoring.norms.reliability_for`: ``1.96 sqrt(2) SEM``), where there is one."""
    from .. import scoring
    from ..scoring.norms import reliability_for

    out = scores.copy()
    specs = {m.key: m for m in protocol.metrics}
    for i in out.index[out["mdc95"].astype(float).isna()]:
        spec = specs.get(str(out.at[i, "metric"]))
        if spec is None:
            continue
        try:
            sem = float(reliability_for(spec.name, spec.joint)["sem"])
        except MedposeError:
            continue
        if math.isfinite(sem):
            out.at[i, "mdc95"] = float(np.asarray(scoring.mdc95(sem).value))
    return out


def _composite(protocol: Protocol, scores: pd.DataFrame) -> tuple[Any, float, str]:
    from .composite import composite_of

    return composite_of(protocol, scores)  # the worse side or trial, with its SEM


def _high_reprojection(quality: pd.DataFrame) -> str:
    """Why the triangulated keypoints are not trusted (a trial's median reprojection error,
    median over keypoints, above :data:`REPROJECTION_ERROR_LIMIT_PX`), or ``""``."""
    q = quality[quality["check"] == "reprojection_error_median"]
    why = []
    for trial, g in q.groupby("trial", sort=False):
        med = float(np.nanmedian(g["value"].astype(float))) if g["value"].notna().any() else 0.0
        if med > REPROJECTION_ERROR_LIMIT_PX:
            why.append(f"trial {trial!r} median reprojection error {med:.1f} px")
    if not why:
        return ""
    return (
        f"{', '.join(why)}, above {REPROJECTION_ERROR_LIMIT_PX:g} px: its 3D keypoints are not "
        "trusted (check the calibration and each camera's keypoint folder)"
    )


def _combine(
    protocol: Protocol,
    parts: list[Assessment],
    quality: pd.DataFrame,
    provenance: dict[str, Any],
    registration: pd.DataFrame | None,
    gate: Any,
) -> Assessment:
    names = tuple(a.trial for a in parts) or tuple(t.name for t in protocol.trials)
    metrics = (
        pd.concat([a.metrics for a in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(METRIC_COLUMNS))
    )
    metrics = explain_missing_ci(_symmetry_across_trials(protocol, metrics))
    scores = (
        pd.concat([a.scores.assign(trial=a.trial) for a in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=[*SCORE_COLUMNS, "trial"])
    )
    scores = _fill_mdc95(protocol, scores[["trial", *SCORE_COLUMNS]])
    reps = [a.repetitions.assign(trial=a.trial) for a in parts]
    repetitions = pd.concat(reps, ignore_index=True) if reps else pd.DataFrame(columns=["trial"])
    repetitions = repetitions[["trial", *[c for c in repetitions.columns if c != "trial"]]]
    result, value, why = _composite(protocol, scores)
    distrusted = _high_reprojection(quality)
    if distrusted and math.isfinite(value):  # criteria read on keypoints the cameras disown
        value, why = math.nan, f"not given: {distrusted}"
    sides = tuple(dict.fromkeys(s for a in parts for s in a.sides))
    return Assessment(
        protocol=f"{protocol.name} {protocol.version}",
        protocol_hash=protocol.hash,
        trial=", ".join(names),
        sides=sides,
        metrics=metrics,
        scores=scores,
        repetitions=repetitions,
        score=value,
        score_reason=why,
        composite=result,
        rate=parts[0].rate if parts else math.nan,
        info={a.trial: a.info for a in parts},
        trials=names,
        quality=quality,
        provenance=provenance,
        registration=registration,
        gate=gate,
    )


# ------------------------------------------------------------------------------ entry
def run_session(
    protocol: Protocol,
    session: Session | str | os.PathLike,
    *,
    trials: Mapping[str, str] | None = None,
    progress: bool | None = None,
) -> SessionResult:
    """Run ``protocol`` on every trial of ``session`` it needs (see the module docstring).

    Parameters
    ----------
    protocol : Protocol
    session : Session or path-like
        The session, or its folder (loaded with :meth:`Session.load`, schema and paths
        checked; the files are read by the steps that need them).
    trials : mapping of str to str, optional
        Protocol trial name -> session trial name, for sessions whose trials are named
        otherwise (``{"deep_squat": "squat"}``); default: the same name.
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).

    Returns
    -------
    SessionResult

    Raises
    ------
    ProtocolError
        Before any work: the session lacks trials the protocol needs (all of them are listed,
        with the trials the session has), or is invalid.
    InputError, MedposeError
        A file that cannot be read, data a step cannot use; messages never show the patient id.
    """
    from .problems import Redactor
    from .runner import run_protocol

    started = _dt.datetime.now(_dt.timezone.utc)
    ses = load_session(session)
    redact = Redactor(ses.root, ses.patient.id)
    try:
        mapping = trial_map(protocol, ses, trials)
        inputs = input_hashes_for(protocol, ses, mapping)
        reg = protocol.spec.registration
        fit_it = protocol.spec.steps.fit is not None
        fitted = {mapping[t.name] for t in protocol.trials if fit_it and t.kind == "exercise"}
        total = 2 * len(set(mapping.values())) + len(fitted) + int(reg is not None)
        bar = _Steps(total, progress, protocol.name)
        prepared: dict[str, _Prepared] = {}
        parts: list[Assessment] = []
        quality: list[dict[str, Any]] = []
        age = ses.patient.age_years
        sex = ses.patient.sex if ses.patient.sex in ("female", "male") else None
        static: tuple[KeypointSequence, dict[tuple[str, ...], Any]] | None = None
        fit_settings = protocol.spec.steps.fit
        has_static = any(t.kind == "static" for t in protocol.trials)
        if fit_settings is not None and has_static and fit_settings.calibrate in ("static", "auto"):
            spec0 = next(t for t in protocol.trials if t.kind == "static")
            got0 = _prepare(protocol, ses, ses.trial(mapping[spec0.name]), spec0.name, bar, False)
            prepared[mapping[spec0.name]] = got0
            quality += got0.quality
            static = (got0.sequence, {})
        try:
            for spec in protocol.trials:
                name = mapping[spec.name]
                want_fit = fit_it and spec.kind == "exercise"
                got = prepared.get(name)
                if got is None or (want_fit and got.fit is None):
                    got = _prepare(
                        protocol, ses, ses.trial(name), spec.name, bar, want_fit, static=static
                    )
                    prepared[name] = got
                    quality += got.quality
                if want_fit and got.fit is not None:
                    parts.append(
                        run_protocol(
                            protocol,
                            got.fit,
                            trial=spec.name,
                            age=age,
                            sex=sex,
                            keypoints=got.sequence,
                        )
                    )
                    quality += parts[-1].quality.to_dict("records")
                    reps_step = protocol.spec.steps.repetitions
                    if reps_step is not None and parts[-1].repetitions.empty:
                        warnings.warn(
                            f"trial {spec.name!r} (session trial {name!r}): no repetition "
                            f"found in {reps_step.signal} (at least {reps_step.min_range:g} "
                            "deg of range asked); every per-repetition metric is NaN",
                            stacklevel=2,
                        )
            registration, gate = None, None
            if reg is not None:
                with bar.step("register"):
                    registration, gate, reg_metrics = check_navigation(
                        protocol, ses, prepared[mapping[reg.trial]].sequence
                    )
                parts.append(reg_metrics)
        finally:
            bar.close()
        provenance = {
            "medpose_version": __version__,
            "protocol": protocol.name,
            "protocol_version": protocol.version,
            "protocol_hash": protocol.hash,
            "variant": protocol.variant,
            "session": ses.name,
            "session_date": ses.date.isoformat(),
            "side_of_interest": ses.side_of_interest,
            "trials": dict(mapping),
            "inputs": dict(inputs),
        }
        table = pd.DataFrame(quality, columns=list(QUALITY_COLUMNS))
        assessment = _combine(protocol, parts, table, provenance, registration, gate)
    except MedposeError as e:  # the message without the patient id or the folder's location
        text = redact.text(str(e))
        try:
            clean = type(e)(text)
        except TypeError:
            clean = MedposeError(text)
        raise clean from None
    return SessionResult(
        protocol=protocol.name,
        protocol_version=protocol.version,
        protocol_hash=protocol.hash,
        session=ses.name,
        session_path=str(ses.root),
        patient=ses.patient.id,
        date=ses.date.isoformat(),
        trials=dict(mapping),
        inputs=dict(inputs),
        medpose_version=__version__,
        started=started.isoformat(timespec="milliseconds"),
        finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        assessment=assessment,
        angles={k: v.fit.angles for k, v in prepared.items() if v.fit is not None},
        side_of_interest=ses.side_of_interest,
    )


def session_folder_name(path: str | os.PathLike) -> str:
    """The last part of a session folder's path (what the study database records)."""
    p = Path(path)
    return (p.parent if p.name == "session.yaml" else p).resolve().name
