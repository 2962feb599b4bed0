"""The :class:`Study` class: open a study database, add runs, read them back as DataFrames."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime, timezone
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .._version import __version__
from ..errors import InputError
from . import schema as tables
from .connect import database_url, sqlite_setup
from .rows import (
    KEY,
    METRIC_COLUMNS,
    SCORE_COLUMNS,
    check_name,
    column_name,
    hiding,
    inputs_json,
    metric_rows,
    score_rows,
    scrub_message,
    session_day,
    session_folder,
    utc_naive,
)
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Study", "AddedRun"]

_log = logging.getLogger("medpose.store")


@dataclass(frozen=True)
class AddedRun:
    """What :meth:`Study.add_run` did.

    Attributes
    ----------
    run_id : int
        The run's id in the ``runs`` table (the earlier run's id when skipped).
    action : {'added', 'replaced', 'skipped', 'kept'}
        ``skipped``: an ``ok`` run with the same protocol hash and input hashes was already
        recorded for this session and protocol, and nothing was written.  ``kept``: asked with
        ``keep_ok=True``, an ``ok`` run of this session and protocol was recorded; it was kept
        and nothing was written (``run_id`` is its id).  ``replaced``: an
        earlier run of this session and protocol (other inputs or protocol hash, or failed)
        was removed with its metrics and scores, in the same transaction.
    """

    run_id: int
    action: Literal["added", "replaced", "skipped", "kept"]


def _insert(conn: Connection, table: sa.Table, **values: Any) -> int:
    """Insert one row into ``table`` and return its new ``id``."""
    return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())


class Study:
    """The study database: runs, metrics and scores of every assessment, as DataFrames.

    Parameters
    ----------
    url : str or path-like
        A SQLite file (created when missing; its folder must exist), ``":memory:"``, or any
        SQLAlchemy URL (``"postgresql+psycopg://user@host/db"``).

    Raises
    ------
    InputError
        The URL is malformed, the database's layout is newer than this medpose writes, older
        with no migration, or not a medpose study (its tables exist without
        ``schema_version``); the database is then left unchanged.

    Examples
    --------
    >>> study = mp.Study("study.sqlite")                         # doctest: +SKIP
    >>> study.add_run(patient="P017", session="2026-03-01", date="2026-03-01",
    ...               protocol="knee", protocol_version="1.0", protocol_hash="ab12...",
    ...               inputs={"trials/squat.trc": "sha256:..."},
    ...               metrics=assessment.metrics, scores=assessment.scores)  # doctest: +SKIP
    >>> study.progress("P017", "knee")                           # doctest: +SKIP
    """

    def __init__(self, url: str | os.PathLike[str]) -> None:
        parsed, self.name = database_url(url)
        try:
            self.engine: Engine = sa.create_engine(parsed)
        except ModuleNotFoundError as exc:
            raise InputError(
                f"{self.name}: the database driver {exc.name!r} is not installed; expected an "
                "installed driver (PostgreSQL: pip install 'psycopg[binary]')"
            ) from None
        if self.engine.dialect.name == "sqlite":
            sqlite_setup(self.engine)
        try:
            self._open()
        except sa.exc.DatabaseError as exc:
            self.engine.dispose()
            raise InputError(
                f"{self.name}: cannot be opened ({type(exc.orig).__name__}: a server out of "
                "reach, refused credentials or a file that is not a database); expected a "
                "medpose study database or a new one"
            ) from None
        except BaseException:
            self.engine.dispose()
            raise

    # ------------------------------------------------------------------------ set-up
    def _open(self) -> None:
        """Check the layout version; create the tables in a new database, migrate an old one.

        A database at the current version is only read (no write lock is taken); creating
        and migrating happen in one write transaction, after checking again under its lock.
        """
        with self.engine.connect() as conn:
            if self._version(conn) == SCHEMA_VERSION:
                return
        with self._write() as conn:
            found = self._version(conn)
            if found is None:
                tables.metadata.create_all(conn)
                conn.execute(tables.schema_version.insert().values(version=SCHEMA_VERSION))
                return
            for v in range(found, SCHEMA_VERSION):
                MIGRATIONS[v](conn)
                conn.execute(tables.schema_version.update().values(version=v + 1))
                _log.info("%s: schema migrated from version %d to %d", self.name, v, v + 1)

    def _version(self, conn: Connection) -> int | None:
        """The database's layout version (None: an empty database); InputError if unusable."""
        present = set(sa.inspect(conn).get_table_names())
        if "schema_version" not in present:
            ours = sorted(present & set(tables.TABLE_NAMES))
            if ours:
                raise InputError(
                    f"{self.name}: holds tables {ours} but no schema_version; expected a "
                    "medpose study database or one without these tables"
                )
            return None
        versions = conn.execute(sa.select(tables.schema_version.c.version)).scalars().all()
        if len(versions) != 1:
            raise InputError(
                f"{self.name}: schema_version holds {len(versions)} rows; expected one"
            )
        found = int(versions[0])
        if found > SCHEMA_VERSION:
            raise InputError(
                f"{self.name}: schema version {found} is newer than this medpose "
                f"{__version__} supports (schema {SCHEMA_VERSION}); upgrade medpose. "
                "The database was not changed"
            )
        if any(v not in MIGRATIONS for v in range(found, SCHEMA_VERSION)):
            raise InputError(
                f"{self.name}: schema version {found} is older than this medpose "
                f"{__version__} can migrate (schema {SCHEMA_VERSION}, migrations from "
                f"{sorted(MIGRATIONS) or 'none'}). The database was not changed"
            )
        return found

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: one commit at the end, rolled back on any error."""
        with self.engine.connect() as conn:
            conn.execution_options(medpose_write=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ writing
    def add_run(
        self,
        *,
        patient: str,
        session: str | os.PathLike[str],
        date: Date | datetime | str,
        protocol: str,
        protocol_version: str,
        protocol_hash: str,
        inputs: Mapping[str, str],
        metrics: pd.DataFrame | None = None,
        scores: pd.DataFrame | None = None,
        status: Literal["ok", "failed"] = "ok",
        message: str | None = None,
        started: datetime | None = None,
        finished: datetime | None = None,
        medpose_version: str | None = None,
        keep_ok: bool = False,
    ) -> AddedRun:
        """Record one run of a protocol on a session, with its metrics and scores, atomically.

        Parameters
        ----------
        patient : str
            Pseudonymous patient id (never a name); never shown in messages or logs.
        session : str
            The session folder's name relative to the study's data root (not an absolute path).
        date : datetime.date or str
            The session's date (``'YYYY-MM-DD'``); a session keeps the date it was first given.
        protocol, protocol_version, protocol_hash : str
            The protocol's name, version and content hash.
        inputs : dict of str to str
            Input file name (relative to the session folder) -> content hash.
        metrics : DataFrame, optional
            Long form, one row per value, with the columns of :data:`METRIC_COLUMNS`:
            ``trial``, ``exercise``, ``side`` (None when not sided), ``metric``, ``value``
            (NaN when missing), ``unit``, and optionally ``repetition`` (missing for a
            per-trial value), ``ci_low``, ``ci_high``, ``reason`` (required where ``value``
            is NaN).  One row per (trial, exercise, side, repetition, metric).
        scores : DataFrame, optional
            One row per scored metric or composite, with the columns of :data:`SCORE_COLUMNS`:
            ``metric``, ``score``, ``z``, ``flag`` (``'within'``, ``'below'``, ``'above'``;
            None or ``'n/a'`` where unknown) and optionally ``mdc95``.
        status : {'ok', 'failed'}
            Whether the run succeeded.  A failed run usually has no metrics.
        message : str, optional
            What went wrong (or any note); stored scrubbed by :func:`scrub_message`.
        started, finished : datetime, optional
            Timezone-aware start and finish times; default now (stored in UTC).
        medpose_version : str, optional
            Default: this medpose's version.
        keep_ok : bool
            Never replace an ``ok`` run of this session and protocol: where one is recorded,
            it is kept and nothing is written (action ``'kept'``).  Session runs that gave no
            result (no repetition, no score) are recorded so, as ``failed``.

        Returns
        -------
        AddedRun
            The run id and ``'added'``, ``'replaced'`` or ``'skipped'``: an ``ok`` run with
            the same protocol hash and input hashes already recorded for this session and
            protocol is not written again; any other earlier run of this session and protocol
            is replaced, with its metrics and scores, in the same transaction.

        Raises
        ------
        InputError
            A malformed argument or DataFrame (a missing column is named with the list of
            expected ones), or a date other than the one the session was recorded with.
        """
        pseudonym = check_name(patient, "patient")
        with hiding(pseudonym):  # a trial or file named after the patient: not shown either
            folder = session_folder(session)
            day = session_day(date)
            protocol = check_name(protocol, "protocol")
            protocol_version = check_name(protocol_version, "protocol_version")
            protocol_hash = check_name(protocol_hash, "protocol_hash")
            inputs_text = inputs_json(inputs)
            if status not in ("ok", "failed"):
                raise InputError(f"status: found {status!r}; expected 'ok' or 'failed'")
            now = datetime.now(timezone.utc)
            end = utc_naive(finished, "finished", now)
            start = utc_naive(started, "started", finished or now)
            metric_list = metric_rows(metrics)
            score_list = score_rows(scores)
            note = None if message is None else scrub_message(str(message), pseudonym)
            run = {
                "protocol": protocol,
                "protocol_version": protocol_version,
                "protocol_hash": protocol_hash,
                "medpose_version": medpose_version or __version__,
                "inputs": inputs_text,
                "started": start,
                "finished": end,
                "status": status,
                "message": note,
            }
            for attempt in range(2):  # a concurrent writer may create the same patient first
                try:
                    with self._write() as conn:
                        result = self._add(
                            conn, pseudonym, folder, day, run, metric_list, score_list, keep_ok
                        )
                    break
                except sa.exc.IntegrityError:
                    if attempt:
                        raise
            _log.info(
                "run %d %s (protocol %s, %d metric values, %d scores)",
                result.run_id,
                result.action,
                protocol,
                len(metric_list),
                len(score_list),
            )
            return result

    @staticmethod
    def _add(
        conn: Connection,
        pseudonym: str,
        folder: str,
        day: Date,
        run: dict[str, Any],
        metric_rows: list[dict[str, Any]],
        score_rows: list[dict[str, Any]],
        keep_ok: bool = False,
    ) -> AddedRun:
        pid = conn.execute(
            sa.select(tables.patients.c.id).where(tables.patients.c.pseudonym == pseudonym)
        ).scalar()
        if pid is None:
            pid = _insert(conn, tables.patients, pseudonym=pseudonym)
        found = conn.execute(
            sa.select(tables.sessions.c.id, tables.sessions.c.date).where(
                tables.sessions.c.patient_id == pid, tables.sessions.c.folder == folder
            )
        ).first()
        if found is None:
            sid = _insert(conn, tables.sessions, patient_id=pid, date=day, folder=folder)
        elif found.date != day:
            raise InputError(
                f"date: this session is recorded on {found.date.isoformat()}; add_run gave "
                f"{day.isoformat()}; expected the same date"
            )
        else:
            sid = found.id
        old = conn.execute(
            sa.select(tables.runs).where(
                tables.runs.c.session_id == sid, tables.runs.c.protocol == run["protocol"]
            )
        ).first()
        action: Literal["added", "replaced"] = "added"
        if old is not None:
            if (
                old.status == "ok"
                and old.protocol_hash == run["protocol_hash"]
                and old.inputs == run["inputs"]
            ):
                return AddedRun(int(old.id), "skipped")
            if keep_ok and old.status == "ok":
                return AddedRun(int(old.id), "kept")
            conn.execute(tables.metrics.delete().where(tables.metrics.c.run_id == old.id))
            conn.execute(tables.scores.delete().where(tables.scores.c.run_id == old.id))
            conn.execute(tables.runs.delete().where(tables.runs.c.id == old.id))
            action = "replaced"
        run_id = _insert(conn, tables.runs, session_id=sid, **run)
        if metric_rows:
            conn.execute(tables.metrics.insert(), [{"run_id": run_id, **r} for r in metric_rows])
        if score_rows:
            conn.execute(tables.scores.insert(), [{"run_id": run_id, **r} for r in score_rows])
        return AddedRun(run_id, action)

    # ------------------------------------------------------------------------ reading
    def has_run(
        self,
        *,
        patient: str,
        session: str | os.PathLike[str],
        protocol: str,
        protocol_hash: str | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> bool:
        """True when an ``ok`` run of ``protocol`` is recorded for this patient's session.

        With ``protocol_hash`` and/or ``inputs``, the recorded run must also have that hash
        and those input hashes (the condition under which :meth:`add_run` skips a run).
        """
        stmt = (
            sa.select(tables.runs.c.protocol_hash, tables.runs.c.inputs)
            .join(tables.sessions, tables.runs.c.session_id == tables.sessions.c.id)
            .join(tables.patients, tables.sessions.c.patient_id == tables.patients.c.id)
            .where(
                tables.patients.c.pseudonym == check_name(patient, "patient"),
                tables.sessions.c.folder == session_folder(session),
                tables.runs.c.protocol == check_name(protocol, "protocol"),
                tables.runs.c.status == "ok",
            )
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return False
        if protocol_hash is not None and row.protocol_hash != protocol_hash:
            return False
        return inputs is None or row.inputs == inputs_json(inputs)

    def _read(self, stmt: sa.Select[Any]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            df = pd.DataFrame(
                conn.execute(stmt).mappings().all(), columns=list(stmt.selected_columns.keys())
            )
        if "date" in df:
            df["date"] = pd.to_datetime(df["date"])
        if "run_id" in df:
            df["run_id"] = df["run_id"].astype("int64")
        return df

    def _filtered(
        self, stmt: sa.Select[Any], protocol: str | None, patient: str | None
    ) -> sa.Select[Any]:
        """``stmt`` restricted to a protocol and a patient, both checked to be recorded."""
        if protocol is not None:
            known = sorted(self._read(sa.select(tables.runs.c.protocol).distinct())["protocol"])
            if protocol not in known:
                raise InputError(f"protocol: found {protocol!r}; this study holds {known}")
            stmt = stmt.where(tables.runs.c.protocol == protocol)
        if patient is not None:
            pseudonym = check_name(patient, "patient")
            if self._read(
                sa.select(tables.patients.c.id).where(tables.patients.c.pseudonym == pseudonym)
            ).empty:
                raise InputError("patient: not recorded in this study (the id is not shown)")
            stmt = stmt.where(tables.patients.c.pseudonym == pseudonym)
        return stmt

    @staticmethod
    def _joined(table: sa.Table, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        return (
            sa.select(
                tables.runs.c.id.label("run_id"),
                tables.patients.c.pseudonym.label("patient"),
                tables.sessions.c.folder.label("session"),
                tables.sessions.c.date,
                tables.runs.c.protocol,
                *columns,
            )
            .select_from(table)
            .join(tables.runs, table.c.run_id == tables.runs.c.id)
            .join(tables.sessions, tables.runs.c.session_id == tables.sessions.c.id)
            .join(tables.patients, tables.sessions.c.patient_id == tables.patients.c.id)
        )

    def runs(self) -> pd.DataFrame:
        """Every run: ``run_id, patient, session, date, protocol, protocol_version,
        protocol_hash, medpose_version, inputs`` (dict), ``started, finished`` (UTC),
        ``status, message``; ordered by date, patient, session and protocol."""
        stmt = (
            sa.select(
                tables.runs.c.id.label("run_id"),
                tables.patients.c.pseudonym.label("patient"),
                tables.sessions.c.folder.label("session"),
                tables.sessions.c.date,
                *[tables.runs.c[c] for c in ("protocol", "protocol_version", "protocol_hash")],
                *[tables.runs.c[c] for c in ("medpose_version", "inputs", "started", "finished")],
                tables.runs.c.status,
                tables.runs.c.message,
            )
            .join(tables.sessions, tables.runs.c.session_id == tables.sessions.c.id)
            .join(tables.patients, tables.sessions.c.patient_id == tables.patients.c.id)
        )
        df = self._read(stmt)
        df["inputs"] = df["inputs"].map(json.loads)
        for col in ("started", "finished"):
            df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
        return df.sort_values(["date", "patient", "session", "protocol"], ignore_index=True)

    def metrics(self, protocol: str | None = None, patient: str | None = None) -> pd.DataFrame:
        """Metric values in long form: ``run_id, patient, session, date, protocol`` and the
        columns of :data:`METRIC_COLUMNS`, ordered by date, patient, session, protocol, trial,
        exercise, side, repetition and metric.

        Raises
        ------
        InputError
            ``protocol`` or ``patient`` is not recorded in this study.
        """
        cols = [tables.metrics.c[c] for c in METRIC_COLUMNS]
        df = self._read(self._filtered(self._joined(tables.metrics, *cols), protocol, patient))
        df["repetition"] = df["repetition"].astype("Int64")
        for col in ("value", "ci_low", "ci_high"):
            df[col] = df[col].astype(float)
        order = ["date", "patient", "session", "protocol", *KEY]
        return df.sort_values(order, na_position="first", kind="stable", ignore_index=True)

    def scores(self, protocol: str | None = None, patient: str | None = None) -> pd.DataFrame:
        """Scores: ``run_id, patient, session, date, protocol`` and the columns of
        :data:`SCORE_COLUMNS`, ordered by date, patient, session, protocol and metric."""
        cols = [tables.scores.c[c] for c in SCORE_COLUMNS]
        df = self._read(self._filtered(self._joined(tables.scores, *cols), protocol, patient))
        for col in ("score", "z", "mdc95"):
            df[col] = df[col].astype(float)
        order = ["date", "patient", "session", "protocol", "metric"]
        return df.sort_values(order, kind="stable", ignore_index=True)

    def progress(self, patient: str, protocol: str) -> pd.DataFrame:
        """One patient's metric values under one protocol across sessions, ordered by date.

        Returns
        -------
        DataFrame
            Tidy: ``date, session, run_id, trial, exercise, side, repetition, metric, value,
            unit, ci_low, ci_high, reason``, one row per value, oldest session first.
        """
        df = self.metrics(protocol=protocol, patient=patient)
        first = ["date", "session", "run_id"]
        return df[first + [c for c in df.columns if c not in (*first, "patient", "protocol")]]

    def cohort(self, protocol: str, aggregate: Literal["mean", "median"] = "mean") -> pd.DataFrame:
        """One row per session run with ``protocol``, one column per metric.

        A column is named ``<exercise>.<metric>[.<side>][_<unit>]`` (``squat.rom.left_deg``;
        ``/`` in a unit becomes ``_per_``, dimensionless units are left out).  Its value is the
        ``aggregate`` over that session's per-trial values of the metric where it has any
        (rows without a repetition), else over its per-repetition values; NaN are ignored.

        Returns
        -------
        DataFrame
            ``patient, session, date, run_id, status``, the 0-100 composite ``score`` and its
            ``score_mdc95`` (points), and the metric columns (sorted), ordered by date,
            patient and session.
        """
        if aggregate not in ("mean", "median"):
            raise InputError(f"aggregate: found {aggregate!r}; expected 'mean' or 'median'")
        m = self.metrics(protocol=protocol)
        runs = self.runs()
        runs = runs[runs["protocol"] == protocol][
            ["patient", "session", "date", "run_id", "status"]
        ]
        key = ["exercise", "metric", "side", "unit"]
        per_trial = m["repetition"].isna()
        has_trial = per_trial.groupby([m[k] for k in key], dropna=False).transform("any")
        kept = m[per_trial | ~has_trial.astype(bool)]
        table = (
            kept.groupby(["run_id", *key], dropna=False)["value"].agg(aggregate).unstack(key)
            if not kept.empty
            else pd.DataFrame(index=pd.Index([], name="run_id"))
        )
        names = [column_name(*k) for k in table.columns]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise InputError(f"cohort: metric columns {clash} arise from different metrics")
        table.columns = pd.Index(names)
        table = table[sorted(names)]
        sc = self.scores(protocol=protocol)
        comp = sc[sc["metric"] == "composite"].set_index("run_id")[["score", "mdc95"]]
        runs = runs.join(comp.rename(columns={"mdc95": "score_mdc95"}), on="run_id")
        out = runs.merge(table, left_on="run_id", right_index=True, how="left")
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------------ display
    def summary(self) -> pd.DataFrame:
        """Counts per protocol: ``protocol, patients, sessions, runs, failed``."""
        stmt = (
            sa.select(
                tables.runs.c.protocol,
                sa.func.count(sa.distinct(tables.sessions.c.patient_id)).label("patients"),
                sa.func.count(sa.distinct(tables.runs.c.session_id)).label("sessions"),
                sa.func.count(tables.runs.c.id).label("runs"),
                sa.func.sum(sa.case((tables.runs.c.status == "failed", 1), else_=0)).label(
                    "failed"
                ),
            )
            .join(tables.sessions, tables.runs.c.session_id == tables.sessions.c.id)
            .group_by(tables.runs.c.protocol)
            .order_by(tables.runs.c.protocol)
        )
        df = self._read(stmt)
        return df.astype({c: int for c in ("patients", "sessions", "runs", "failed")})

    def _totals(self) -> tuple[int, int, int]:
        with self.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
                for t in (tables.patients, tables.sessions, tables.runs)
            )

    def __repr__(self) -> str:
        patients, sessions, runs = self._totals()
        head = (
            f"Study({self.name}, schema {SCHEMA_VERSION}): {patients} patients, "
            f"{sessions} sessions, {runs} runs"
        )
        table = self.summary()
        return head if table.empty else head + "\n" + table.to_string(index=False)

    def _repr_html_(self) -> str:
        from ..report.display import study_html

        patients, sessions, runs = self._totals()
        head = (
            f"<b>Study</b> {html.escape(self.name)} (schema {SCHEMA_VERSION}): "
            f"{patients} patients, {sessions} sessions, {runs} runs"
        )
        return study_html(head, self.summary(), self.runs()[["date", "protocol"]])
