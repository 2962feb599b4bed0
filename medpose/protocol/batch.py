"""Cohort runs: one protocol on many sessions, computed on Dask, written by one writer.

:func:`run_batch` checks every session in the client first (its folder, its input files'
hashes, and whether the study already holds an ``ok`` run of the same protocol on the same
inputs: then it is skipped), sends the others to Dask workers, which only compute
(:func:`~medpose.protocol.execute.execute_session`: no file, no database), and records each
result in the study from the client as it completes, one transaction per session. A crash or a
``kill -9`` of the client leaves every session either fully recorded or not at all, and the
next batch computes only the sessions still missing.

A failure is kept to its session: the worker returns it as text (the patient id and absolute
paths removed), the batch reports it, the study records a ``failed`` run where the session could
be read, and the other sessions go on.
"""

from __future__ import annotations

import html
import logging
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import InputError, MedposeError
from ..io._util import display_name
from .definition import Protocol
from .execute import as_protocol
from .inputs import input_hashes_for, trial_map
from .problems import Redactor
from .session_result import SessionResult
from .session_run import load_session, run_session

if TYPE_CHECKING:
    from ..store.study import Study

__all__ = ["run_batch", "BatchReport", "DONE_COLUMNS", "SKIPPED_COLUMNS", "FAILED_COLUMNS"]

_log = logging.getLogger("medpose.batch")

#: Columns of :attr:`BatchReport.done`.
DONE_COLUMNS = ("session", "date", "action", "score", "run_id", "seconds")
#: Columns of :attr:`BatchReport.skipped`.
SKIPPED_COLUMNS = ("session", "date")
#: Columns of :attr:`BatchReport.failed`.
FAILED_COLUMNS = ("session", "stage", "reason")


@dataclass(frozen=True)
class _Failure:
    """A session's run that raised, as redacted text (what a worker sends back)."""

    reason: str


def _reason(exc: BaseException, redact: Redactor | None) -> str:
    text = str(exc) if isinstance(exc, MedposeError) else f"{type(exc).__name__}: {exc}"
    text = text.strip() or type(exc).__name__
    return redact.text(text) if redact is not None else Redactor(Path("."), None).text(text)


def compute_session(
    protocol: Protocol, folder: str, trials: Mapping[str, str] | None
) -> tuple[SessionResult | _Failure, tuple[str, ...]]:
    """The task a worker runs: :func:`run_session` on one folder, a failure returned as text,
    with the warnings the run gave (redacted text, logged by the batch under the session).

    Exceptions are not raised into Dask, nor warnings printed by the worker, so that neither a
    worker's output nor a traceback sent back shows the patient id or the session's absolute
    path.
    """
    redact = Redactor(Path("."), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ses = load_session(folder)
            redact = Redactor(ses.root, ses.patient.id)
            result: SessionResult | _Failure = run_session(
                protocol, ses, trials=trials, progress=False
            )
        except Exception as exc:  # every failure is reported, the batch goes on
            result = _Failure(_reason(exc, redact))
    notes = tuple(dict.fromkeys(redact.text(str(w.message)) for w in caught))
    return result, notes


@dataclass(frozen=True)
class _Planned:
    folder: Path
    label: str
    patient: str
    date: str
    inputs: dict[str, str]
    redact: Redactor


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


@dataclass(frozen=True)
class BatchReport:
    """What :func:`run_batch` did: sessions computed and recorded, skipped, failed.

    Sessions are named by their folder's name with the patient id replaced by ``<patient>``.

    Attributes
    ----------
    protocol : str
        The protocol's name.
    done : DataFrame
        :data:`DONE_COLUMNS`: ``action`` is the study's (``added``, ``replaced``), ``score``
        the 0-100 composite (NaN where the protocol has none), ``seconds`` the compute time.
    skipped : DataFrame
        :data:`SKIPPED_COLUMNS`: sessions whose run of this protocol on the same inputs was
        already recorded; nothing was computed.
    failed : DataFrame
        :data:`FAILED_COLUMNS`: ``stage`` is ``read`` (the session folder or an input file
        could not be read), ``compute`` (a step of the protocol failed) or ``store``.
    seconds : float
        Wall time of the batch.
    workers : int
        Dask workers used (0 when nothing needed computing).
    """

    protocol: str
    done: pd.DataFrame
    skipped: pd.DataFrame
    failed: pd.DataFrame
    seconds: float
    workers: int = 0
    scheduler: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when no session failed."""
        return self.failed.empty

    def __len__(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def _head(self) -> str:
        rate = ""
        if len(self.done) and self.seconds > 0:
            rate = f", {len(self.done) / self.seconds:.2f} sessions/s"
        return (
            f"batch {self.protocol}: {len(self)} sessions: {len(self.done)} done, "
            f"{len(self.skipped)} skipped (already recorded), {len(self.failed)} failed "
            f"({self.seconds:.1f} s, {self.workers} workers{rate})"
        )

    def __repr__(self) -> str:
        lines = [self._head()]
        if len(self.failed):
            lines.append("failed:")
            lines += [f"  {r.session} [{r.stage}]: {r.reason}" for r in self.failed.itertuples()]
        if len(self.done):
            lines.append("done:")
            for r in self.done.head(20).itertuples():
                score = "" if math.isnan(r.score) else f", score {r.score:.1f}"
                lines.append(f"  {r.session} ({r.date}): {r.action}{score}, {r.seconds:.1f} s")
            if len(self.done) > 20:
                lines.append(f"  ... {len(self.done) - 20} more")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """The scores (0-100) of the sessions computed, as a histogram on a matplotlib axis;
        the title counts the sessions skipped and failed."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.gca()
        scores = self.done["score"].to_numpy(float) if len(self.done) else []
        scores = [s for s in scores if math.isfinite(s)]
        ax.hist(scores, bins=[10.0 * k for k in range(11)], color="#8da0cb", edgecolor="white")
        ax.set_xlim(0, 100)
        ax.set_xlabel(f"{self.protocol} score (0-100)")
        ax.set_ylabel("sessions")
        ax.set_title(
            f"{len(scores)} scored, {len(self.skipped)} skipped, {len(self.failed)} failed",
            fontsize="medium",
        )
        return ax

    def _repr_html_(self) -> str:
        from ..report.display import img_tag, small_figure

        parts = [f"<p><b>{html.escape(self._head())}</b></p>"]
        if len(self.done):
            fig, ax = small_figure()
            self.plot(ax=ax)
            ax.title.set_fontsize(7)
            ax.xaxis.label.set_fontsize(7)
            parts.append(img_tag(fig, alt="scores"))
        for name in ("failed", "done", "skipped"):
            df = getattr(self, name)
            if len(df):
                parts.append(f"<h4>{name} ({len(df)})</h4>")
                parts.append(df.to_html(index=False, max_rows=50, na_rep=""))
        return "\n".join(parts)


def _open_study(study: Study | str | os.PathLike[str]) -> tuple[Study, bool]:
    from ..store.study import Study

    if isinstance(study, Study):
        return study, False
    return Study(study), True


def _client(scheduler: Any, workers: int | None, processes: bool) -> tuple[Any, list[Any], int]:
    """A Dask client on the cluster at ``scheduler`` (an address or a Client) or a local one;
    what to close at the end; the number of workers."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, [], len(scheduler.scheduler_info()["workers"])
    if scheduler is not None:
        client = Client(scheduler)
        return client, [client], len(client.scheduler_info()["workers"])
    n = workers if workers is not None else max(1, min(os.cpu_count() or 1, 8))
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",  # a free port: several batches may run on one machine
        silence_logs=logging.CRITICAL,  # workers closing with the cluster: no noise
    )
    client = Client(cluster)
    _log.info("local Dask cluster of %d workers, dashboard %s", n, client.dashboard_link)
    return client, [client, cluster], n


def run_batch(
    protocol: Protocol | str | os.PathLike[str],
    sessions: Iterable[str | os.PathLike[str]],
    study: Study | str | os.PathLike[str],
    *,
    scheduler: Any = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    trials: Mapping[str, str] | None = None,
    processes: bool = True,
) -> BatchReport:
    """Run ``protocol`` on many session folders on Dask, recording each run in ``study``.

    Parameters
    ----------
    protocol : Protocol, catalogue name or protocol file
    sessions : iterable of path-like
        Session folders. Their names must differ (the study keys a session by its folder's
        name and patient).
    study : Study, or a database URL or SQLite file
        Where the runs are recorded (:class:`medpose.Study`); the client is its only writer.
    scheduler : str or distributed.Client, optional
        The address of an existing Dask scheduler (``"tcp://10.0.0.5:8786"``) or a Client;
        default: a local cluster, shut down at the end.
    workers : int, optional
        Workers of the local cluster, one thread each (default: the CPUs, at most 8).
    out : path-like, optional
        Also write each computed session's tables into ``out/<session folder name>``
        (:meth:`SessionResult.write`).
    progress : bool
        A progress bar over the sessions on standard error.
    trials : mapping, optional
        Protocol trial -> session trial, for sessions whose trials are named otherwise.
    processes : bool
        Local cluster of worker processes (default) or of threads in this process.

    Returns
    -------
    BatchReport

    Raises
    ------
    InputError
        Two sessions with the same folder name, or a study that cannot be opened.
    """
    started = time.perf_counter()
    proto = as_protocol(protocol)
    folders = [Path(s) for s in sessions]
    twice = [n for n, k in Counter(f.absolute().name for f in folders).items() if k > 1]
    if twice:
        raise InputError(
            f"sessions: {len(twice)} folder name(s) given more than once; expected one folder "
            "per session, each with its own name"
        )
    db, own = _open_study(study)
    done: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    todo: list[_Planned] = []
    n_workers = 0
    try:
        for folder in folders:
            plan = _plan(proto, folder, trials, failed)
            if plan is None:
                continue
            has = db.has_run(
                patient=plan.patient,
                session=plan.folder.absolute().name,
                protocol=proto.name,
                protocol_hash=proto.hash,
                inputs=plan.inputs,
            )
            if has:
                skipped.append({"session": plan.label, "date": plan.date})
            else:
                todo.append(plan)
        if skipped:
            _log.info("%d session(s) already recorded: skipped", len(skipped))
        if todo:
            n_workers = _compute_all(
                proto, todo, db, trials, scheduler, workers, processes, out, progress, done, failed
            )
    finally:
        if own:
            db.close()
    return BatchReport(
        protocol=proto.name,
        done=_frame(done, DONE_COLUMNS),
        skipped=_frame(skipped, SKIPPED_COLUMNS),
        failed=_frame(failed, FAILED_COLUMNS),
        seconds=time.perf_counter() - started,
        workers=n_workers,
        scheduler=None if scheduler is None else str(scheduler),
    )


def _plan(
    proto: Protocol,
    folder: Path,
    trials: Mapping[str, str] | None,
    failed: list[dict[str, Any]],
) -> _Planned | None:
    """Read a session folder and hash its inputs in the client; a failure is listed."""
    redact: Redactor | None = None
    label = display_name(os.path.abspath(folder))  # "visit2" also for "." or "visit2/"
    try:
        ses = load_session(folder)
        redact = Redactor(ses.root, ses.patient.id)
        label = redact.patient(label)  # a folder named after the patient: its id hidden
        inputs = input_hashes_for(proto, ses, trial_map(proto, ses, trials))
    except Exception as exc:  # reported, the batch goes on
        reason = _reason(exc, redact)
        failed.append({"session": label, "stage": "read", "reason": reason})
        _log.warning("%s: not run: %s", label, reason)
        return None
    return _Planned(folder, label, str(ses.patient.id), ses.date.isoformat(), inputs, redact)


def _compute_all(
    proto: Protocol,
    todo: list[_Planned],
    db: Study,
    trials: Mapping[str, str] | None,
    scheduler: Any,
    workers: int | None,
    processes: bool,
    out: str | os.PathLike[str] | None,
    progress: bool,
    done: list[dict[str, Any]],
    failed: list[dict[str, Any]],
) -> int:
    """Submit every planned session, record each result as it completes; the worker count."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    client, owned, n_workers = _client(scheduler, workers, processes)
    bar = tqdm(total=len(todo), desc=proto.name, unit="session", disable=not progress)
    try:
        [remote] = client.scatter([proto], broadcast=True)
        futures = {
            client.submit(
                compute_session, remote, str(p.folder), dict(trials or {}) or None, pure=False
            ): p
            for p in todo
        }
        for fut in as_completed(futures):
            plan = futures.pop(fut)
            notes: tuple[str, ...] = ()
            try:
                result, notes = fut.result()
            except Exception as exc:  # a worker lost, a result not sent back
                result = _Failure(_reason(exc, plan.redact))
            for note in notes:
                _log.warning("%s: %s", plan.label, note)
            _record(proto, plan, result, db, out, done, failed)
            fut.release()
            bar.update(1)
    finally:
        bar.close()
        for thing in owned:
            thing.close()
    return n_workers


def _record(
    proto: Protocol,
    plan: _Planned,
    result: SessionResult | _Failure,
    db: Study,
    out: str | os.PathLike[str] | None,
    done: list[dict[str, Any]],
    failed: list[dict[str, Any]],
) -> None:
    """Write one session's result (one transaction), or its failure."""
    if isinstance(result, _Failure):
        failed.append({"session": plan.label, "stage": "compute", "reason": result.reason})
        _log.warning("%s: failed: %s", plan.label, result.reason)
        try:
            db.add_run(
                patient=plan.patient,
                session=plan.folder.absolute().name,
                date=plan.date,
                protocol=proto.name,
                protocol_version=proto.version,
                protocol_hash=proto.hash,
                inputs=plan.inputs,
                status="failed",
                message=result.reason,
            )
        except Exception as exc:
            _log.warning("%s: failure not recorded: %s", plan.label, _reason(exc, plan.redact))
        return
    try:
        if out is not None:
            result.write(Path(out) / plan.folder.absolute().name)
        added = result.add_to(db)
    except Exception as exc:  # reported, the batch goes on
        reason = _reason(exc, plan.redact)
        failed.append({"session": plan.label, "stage": "store", "reason": reason})
        _log.warning("%s: not recorded: %s", plan.label, reason)
        return
    seconds = (pd.Timestamp(result.finished) - pd.Timestamp(result.started)).total_seconds()
    score = result.assessment.score
    done.append(
        {
            "session": plan.label,
            "date": plan.date,
            "action": added.action,
            "score": float(score),
            "run_id": added.run_id,
            "seconds": seconds,
        }
    )
    _log.info("%s: run %d %s", plan.label, added.run_id, added.action)
