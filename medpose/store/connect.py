"""Database URLs and SQLite connection settings for :class:`medpose.store.Study`.

SQLite runs in WAL mode (readers do not block the writer, the writer does not block readers)
with a busy timeout of :data:`BUSY_TIMEOUT_S`; foreign keys are enforced.  The driver's own
transaction handling is switched off so that SQLite's ``BEGIN`` is issued by medpose: a write
transaction starts with ``BEGIN IMMEDIATE``, taking the write lock before it reads, so a second
writer waits for the first (up to the timeout) instead of failing part-way.  Reference: SQLite
documentation, "Write-Ahead Logging" and "BEGIN TRANSACTION"; SQLAlchemy documentation,
"Serializable isolation / Savepoints / Transactional DDL" for the pysqlite driver.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import InputError
from ..io._util import display_name, require_text_path

__all__ = ["BUSY_TIMEOUT_S", "database_url", "sqlite_setup"]

#: Seconds a SQLite connection waits for another writer's lock before failing.
BUSY_TIMEOUT_S = 30.0


def database_url(url: str | os.PathLike[str]) -> tuple[sa.URL, str]:
    """The SQLAlchemy URL and the name shown in messages (file name or backend and database)."""
    text = os.fspath(url)
    if "://" in text:
        try:
            parsed = sa.make_url(text)
        except (sa.exc.ArgumentError, ValueError):
            raise InputError(
                "Study: found a malformed database URL; expected a SQLAlchemy URL"
            ) from None
        shown = f"{parsed.get_backend_name()} database {parsed.database or ''!r}"
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            shown = display_name(parsed.database)
        return parsed, shown
    if text == ":memory:":
        return sa.make_url("sqlite://"), ":memory:"
    path = Path(text).expanduser()
    if not path.parent.is_dir():
        raise InputError(
            f"{display_name(path)}: its folder does not exist; expected an existing folder"
        )
    if path.exists() and not path.is_file():
        raise InputError(f"{display_name(path)}: is a folder; expected a database file")
    require_text_path(path, "database file")
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{display_name(path)}: a new database, but its folder is not writable; expected a "
            "folder where medpose may create the database file"
        )
    return sa.URL.create("sqlite", database=str(path.resolve())), display_name(path)


def sqlite_setup(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys; transactions begun by SQLite itself (IMMEDIATE to write)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's own BEGIN handling off
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("medpose_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
