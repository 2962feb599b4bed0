"""The study database's tables and layout version, as SQLAlchemy Core objects.

The layout is described for users in ``docs/store.md``; :mod:`medpose.store.study` reads and
writes it.  Times are stored as UTC without a zone, NaN as NULL, input hashes as JSON text.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "metadata",
    "schema_version",
    "patients",
    "sessions",
    "runs",
    "metrics",
    "scores",
    "TABLE_NAMES",
]

#: Layout version of the database this medpose writes.
SCHEMA_VERSION = 1
#: Migrations from an older layout: version -> function upgrading a connection to version + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)
patients = sa.Table(
    "patients",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pseudonym", sa.String(200), nullable=False, unique=True),
)
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("patient_id", sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("folder", sa.String(500), nullable=False),
    sa.UniqueConstraint("patient_id", "folder"),
)
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("protocol", sa.String(200), nullable=False),
    sa.Column("protocol_version", sa.String(100), nullable=False),
    sa.Column("protocol_hash", sa.String(128), nullable=False),
    sa.Column("medpose_version", sa.String(50), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("started", sa.DateTime, nullable=False),
    sa.Column("finished", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(10), sa.CheckConstraint("status IN ('ok', 'failed')")),
    sa.Column("message", sa.Text),
    sa.UniqueConstraint("session_id", "protocol"),
    sqlite_autoincrement=True,  # a replaced run's id is never reused
)
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("trial", sa.String(200), nullable=False),
    sa.Column("exercise", sa.String(200), nullable=False),
    sa.Column("side", sa.String(50)),
    sa.Column("repetition", sa.Integer),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("unit", sa.String(50), nullable=False),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("reason", sa.Text),
)
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("z", sa.Float),
    sa.Column("flag", sa.String(10)),
    sa.Column("mdc95", sa.Float),
)
TABLE_NAMES = [t.name for t in metadata.sorted_tables]
