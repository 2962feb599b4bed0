"""The study database: every assessment run, its metrics and its scores, as DataFrames.

``Study(url)`` opens (or creates) a database through SQLAlchemy: a file path gives SQLite
(``Study("study.sqlite")``), any SQLAlchemy URL gives that server
(``Study("postgresql+psycopg://user@host/db")``).

Tables
------
``schema_version``
    One row: the layout version of the database.  A database written by a newer medpose is
    refused (the error names both versions) and never altered; an older layout is migrated
    when a migration exists, else refused.
``patients``
    The pseudonymous patient id, nothing else.  Ids never appear in log records or error
    messages.
``sessions``
    Patient, date, and the session folder's name *relative* to the study's data root.
``runs``
    One per session and protocol: protocol name, version and hash, the medpose version, the
    input files' hashes (JSON), start and finish times (UTC), status ``ok``/``failed`` and a
    message scrubbed of the patient id and of absolute paths.
``metrics``
    Long form, one row per value (see :data:`METRIC_COLUMNS`).
``scores``
    One row per scored metric or composite (see :data:`SCORE_COLUMNS`).

Writing and concurrency
-----------------------
:meth:`Study.add_run` writes a run in one transaction: an error part-way leaves the database
as it was.  With SQLite the database runs in WAL mode (readers never block the writer) with a
busy timeout; one writer at a time is expected, and a write transaction takes the write lock
at its start (``BEGIN IMMEDIATE``), so a second writer waits rather than failing half-way.
PostgreSQL accepts concurrent writers of different sessions.
"""

from __future__ import annotations

from .rows import METRIC_COLUMNS, SCORE_COLUMNS, scrub_message
from .schema import SCHEMA_VERSION
from .study import AddedRun, Study

__all__ = [
    "Study",
    "AddedRun",
    "METRIC_COLUMNS",
    "SCORE_COLUMNS",
    "SCHEMA_VERSION",
    "scrub_message",
]
