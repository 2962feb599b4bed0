"""Session runs by protocol name or object: the entry points a batch runner and the CLI use.

* :func:`execute_session` ``(protocol, session_path) -> SessionResult``: pure computation (no
  file written, no database), safe to call in a worker process; the result is picklable.
* :func:`input_hashes` ``(protocol, session_path)``: the hashes of every input file the run
  would read, cheap, for :meth:`medpose.Study.has_run` (skip sessions already done).
* :func:`run_to_folder`: what ``medpose run`` does: unchanged inputs and protocol -> nothing
  recomputed; else compute, write the output folder atomically, record the run in a study.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._version import __version__
from ..errors import InputError
from .composite import NO_COMPOSITE
from .definition import Protocol
from .inputs import input_hashes_for, trial_map
from .session import Session
from .session_result import MANIFEST, SessionResult, add_outputs_to, read_manifest
from .session_run import load_session, run_session

__all__ = ["execute_session", "input_hashes", "run_to_folder", "RunOutcome", "as_protocol"]


def as_protocol(protocol: Protocol | str | os.PathLike) -> Protocol:
    """A :class:`Protocol` as it is, or loaded by catalogue name or file path."""
    return protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)


def execute_session(
    protocol: Protocol | str | os.PathLike,
    session_path: Session | str | os.PathLike,
    *,
    trials: Mapping[str, str] | None = None,
    progress: bool | None = False,
) -> SessionResult:
    """Run ``protocol`` on a session: every step for every trial it needs; no side effects.

    Parameters
    ----------
    protocol : Protocol, catalogue name or path of a protocol file
    session_path : path-like or Session
        The session folder.
    trials : mapping, optional
        Protocol trial -> session trial where the names differ.
    progress : bool, optional
        Progress bar (default off: worker processes have no terminal; None: when standard
        error is a terminal).

    Returns
    -------
    SessionResult
        ``.assessment`` (metrics, scores, repetitions, quality, registration), ``.inputs``,
        provenance; ``.write(out_dir)`` and ``.add_to(study)`` persist it.

    Raises
    ------
    ProtocolError
        Before any work, a session lacking trials the protocol needs (all listed, with the
        session's trials); an invalid session or protocol.
    """
    return run_session(as_protocol(protocol), session_path, trials=trials, progress=progress)


def input_hashes(
    protocol: Protocol | str | os.PathLike,
    session_path: Session | str | os.PathLike,
    *,
    trials: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``"sha256:<hex>"`` of every file a run of ``protocol`` on the session reads, keyed by
    its path relative to the session folder (what :meth:`SessionResult.add_to` records, so
    ``Study.has_run(..., protocol_hash=p.hash, inputs=input_hashes(p, s))`` tells whether a
    run is already recorded).

    Raises
    ------
    ProtocolError
        The session lacks a trial or a file the protocol needs.
    """
    p = as_protocol(protocol)
    ses = load_session(session_path)
    return input_hashes_for(p, ses, trial_map(p, ses, trials))


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_to_folder` did.

    Attributes
    ----------
    action : {"computed", "replaced", "unchanged"}
        ``unchanged``: the output folder already held the results of the same inputs,
        protocol and medpose version: nothing was recomputed.  ``replaced``: earlier results
        in the folder were replaced by new ones (why: ``replaced_because``).
    out_dir : Path
    manifest : dict
        The output folder's manifest.
    study_action : str or None
        What the study did (``added``, ``replaced``, ``skipped``, ``kept``: the run gave no
        result and an earlier ``ok`` run was kept), None without a study.
    result : SessionResult or None
        None when nothing was recomputed.
    replaced_because : str
        Why earlier results were replaced: ``"forced"`` (``force=True`` on current results),
        ``"damaged"`` (a file the folder's manifest lists is missing or changed, or the
        manifest is unreadable) or ``"changed"`` (inputs, protocol or medpose version); ``""``
        otherwise.
    """

    action: Literal["computed", "replaced", "unchanged"]
    out_dir: Path
    manifest: dict[str, Any]
    study_action: str | None = None
    result: SessionResult | None = None
    replaced_because: str = ""

    def __str__(self) -> str:
        what = {
            "computed": "computed",
            "replaced": {
                "forced": "recomputed (--force): earlier results replaced",
                "damaged": "earlier results damaged or incomplete: replaced",
            }.get(self.replaced_because, "inputs or protocol changed: earlier results replaced"),
            "unchanged": "inputs and protocol unchanged: nothing recomputed",
        }[self.action]
        score = self.manifest.get("score")
        gate = self.manifest.get("gate")
        text = f"{self.manifest['protocol']['name']} on {self.manifest['session']}: {what}"
        reason = self.manifest.get("score_reason") or ""
        if score is not None:
            text += f"; score {score:.1f}/100"
        elif reason and reason != NO_COMPOSITE:
            text += f"; no score: {reason}"
        if gate is not None:
            text += f"; gate {gate}"
        if self.study_action == "kept":
            text += (
                "; study: this run gave no result and is not recorded, the earlier ok run of "
                "this session and protocol is kept"
            )
        elif self.study_action is not None:
            status = " (status failed: no result)" if self.manifest.get("no_result") else ""
            text += f"; study: run {self.study_action}{status}"
        return text


def run_to_folder(
    protocol: Protocol | str | os.PathLike,
    session_path: Session | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    study: Any = None,
    trials: Mapping[str, str] | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> RunOutcome:
    """Run a protocol on a session into an output folder (and a study), with caching.

    Parameters
    ----------
    protocol, session_path, trials, progress
        As :func:`execute_session`.
    out_dir : path-like
        The output folder (:meth:`SessionResult.write`).
    study : Study, optional
        Where the run is recorded (:meth:`SessionResult.add_to`).
    force : bool
        Recompute even when the folder's results are current.

    Returns
    -------
    RunOutcome
    """
    p = as_protocol(protocol)
    ses = load_session(session_path)
    inputs = input_hashes_for(p, ses, trial_map(p, ses, trials))
    old = read_manifest(out_dir)
    current = (
        old is not None
        and old["protocol"].get("hash") == p.hash
        and old.get("inputs") == inputs
        and old.get("medpose_version") == __version__
    )
    if current and not force:
        assert old is not None
        added = None
        if study is not None:
            has = study.has_run(
                patient=ses.patient.id,
                session=ses.name,
                protocol=p.name,
                protocol_hash=p.hash,
                inputs=inputs,
            )
            added = "skipped" if has else add_outputs_to(out_dir, study, ses.patient.id).action
        return RunOutcome("unchanged", Path(out_dir), old, added)
    result = run_session(p, ses, trials=trials, progress=progress)
    if input_hashes_for(p, ses, trial_map(p, ses, trials)) != result.inputs:
        raise InputError(
            "an input file changed while the protocol ran; expected files left alone during a run"
        )
    action: Literal["computed", "replaced"] = (
        "replaced" if (Path(out_dir) / MANIFEST).exists() else "computed"
    )
    why = (
        ""
        if action == "computed"
        else "damaged"
        if old is None
        else "forced"
        if current
        else "changed"
    )
    path = result.write(out_dir, action=action)
    manifest = read_manifest(path.parent) or {}
    added = result.add_to(study).action if study is not None else None
    return RunOutcome(action, Path(out_dir), manifest, added, result, why)
