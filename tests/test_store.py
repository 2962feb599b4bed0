"""The study database (`mp.Study`), on SQLite and on a real PostgreSQL server.

The PostgreSQL server is pgserver's (a pip-installed PostgreSQL, part of the dev extra),
started once for this file in a temporary folder; every test gets a fresh database on it.
The tests that touch the database run on both backends with the same body.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import medpose as mp
from medpose.errors import InputError
from medpose.store import METRIC_COLUMNS, SCHEMA_VERSION, SCORE_COLUMNS, Study, scrub_message
from medpose.store.schema import MIGRATIONS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
    import pgserver

SECRET = "PSEUDO-7731"  # a patient id that must never show up in messages or logs
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pg_server() -> Iterator[pgserver.PostgresServer]:
    """One PostgreSQL server for the whole file, in a temporary folder deleted after.

    The folder is not under pytest's temporary folders: pytest resets their parent's mode to
    0700 whenever a test session starts, which would lock out the server (run as the system
    user ``pgserver`` when the tests run as root) while it starts.
    """
    folder = Path(tempfile.mkdtemp(prefix="medpose-pg-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            server = pgserver.get_server(folder, cleanup_mode="delete")
        yield server
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _psycopg(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "study.sqlite")
        return
    server = request.getfixturevalue("pg_server")
    name = "t" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(_psycopg(server.get_uri()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield _psycopg(server.get_uri(database=name))
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture
def study(url: str) -> Iterator[Study]:
    with Study(url) as s:
        yield s


def metrics_frame(offset: float = 0.0) -> pd.DataFrame:
    """Two sided ROM values per repetition, a per-trial tempo, one missing SPARC with its reason."""
    return pd.DataFrame(
        {
            "trial": ["squat1"] * 6,
            "exercise": ["squat"] * 6,
            "side": ["left", "left", "right", "right", None, "left"],
            "repetition": [0, 1, 0, 1, None, 0],
            "metric": ["rom", "rom", "rom", "rom", "tempo", "sparc"],
            "value": np.array([80.0, 84.0, 70.0, 72.0, 12.5, np.nan]) + offset,
            "unit": ["deg", "deg", "deg", "deg", "1/min", "1"],
            "ci_low": [np.nan, np.nan, np.nan, np.nan, 11.0, np.nan],
            "ci_high": [np.nan, np.nan, np.nan, np.nan, 14.0, np.nan],
            "reason": [None, None, None, None, None, "fewer than 2 velocity peaks"],
        }
    )


def scores_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "metric": ["rom", "knee_composite"],
            "score": [0.8, 0.65],
            "z": [-1.2, -2.1],
            "flag": ["within", "below"],
            "mdc95": [6.0, np.nan],
        }
    )


def add(study: Study, **kw: object) -> mp.store.AddedRun:
    args: dict[str, object] = {
        "patient": SECRET,
        "session": "2026-03-01_visit1",
        "date": "2026-03-01",
        "protocol": "knee",
        "protocol_version": "1.0",
        "protocol_hash": "sha256:aa",
        "inputs": {"trials/squat1.trc": "sha256:01"},
        "metrics": metrics_frame(),
        "scores": scores_frame(),
        "started": T0,
        "finished": T0 + timedelta(seconds=42),
    }
    args.update(kw)
    return study.add_run(**args)  # type: ignore[arg-type]


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.connect() as conn:
        out = {
            t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() or 0)
            for t in ("patients", "sessions", "runs", "metrics", "scores")
        }
    engine.dispose()
    return out


# ---------------------------------------------------------------------------- both backends
def test_round_trip_of_metrics_scores_and_run(study: Study) -> None:
    done = add(study)
    assert done.action == "added"
    got = study.metrics()
    want = metrics_frame()
    assert list(got.columns) == [
        "run_id",
        "patient",
        "session",
        "date",
        "protocol",
        *METRIC_COLUMNS,
    ]
    got = got.sort_values(["metric", "side", "repetition"], na_position="first").reset_index()
    want = want.sort_values(["metric", "side", "repetition"], na_position="first").reset_index()
    np.testing.assert_array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    np.testing.assert_array_equal(got["ci_low"].to_numpy(), want["ci_low"].to_numpy())
    assert got["repetition"].tolist() == pd.array(want["repetition"], dtype="Int64").tolist()
    assert got["side"].fillna("").tolist() == want["side"].fillna("").tolist()
    assert got["reason"].fillna("").tolist() == want["reason"].fillna("").tolist()
    assert got["unit"].tolist() == want["unit"].tolist()
    assert set(got["run_id"]) == {done.run_id}
    assert set(got["patient"]) == {SECRET} and set(got["session"]) == {"2026-03-01_visit1"}
    assert (got["date"] == pd.Timestamp("2026-03-01")).all()

    scores = study.scores(protocol="knee")
    assert list(scores.columns[5:]) == list(SCORE_COLUMNS)
    pd.testing.assert_frame_equal(
        scores[list(SCORE_COLUMNS)], scores_frame().sort_values("metric", ignore_index=True)
    )

    runs = study.runs()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["inputs"] == {"trials/squat1.trc": "sha256:01"}
    assert run["status"] == "ok" and run["medpose_version"] == mp.__version__
    assert run["started"] == pd.Timestamp(T0) and run["finished"] - run["started"] == pd.Timedelta(
        seconds=42
    )
    assert study.has_run(patient=SECRET, session="2026-03-01_visit1", protocol="knee")


def test_progress_is_one_patients_sessions_in_date_order(study: Study) -> None:
    # added out of date order; another patient's sessions must not appear
    for i, day in enumerate(["2026-05-01", "2026-01-15", "2026-03-01"]):
        add(study, session=f"visit_{day}", date=day, metrics=metrics_frame(offset=10.0 * i))
    add(study, patient="PSEUDO-0002", session="other", date="2026-02-01")
    prog = study.progress(SECRET, "knee")
    assert "patient" not in prog.columns
    dates = prog["date"].tolist()
    assert dates == sorted(dates)
    assert prog["session"].unique().tolist() == [
        "visit_2026-01-15",
        "visit_2026-03-01",
        "visit_2026-05-01",
    ]
    # each session's values are the ones added for it (offset 10 per order of adding)
    first_rom = prog[
        (prog["metric"] == "rom") & (prog["side"] == "left") & (prog["repetition"] == 0)
    ]
    assert first_rom["value"].tolist() == [80.0 + 10.0, 80.0 + 20.0, 80.0 + 0.0]


def test_cohort_has_one_row_per_session_and_a_column_per_metric(study: Study) -> None:
    composite = pd.DataFrame({"metric": ["composite"], "score": [72.5], "mdc95": [6.1]})
    add(study, session="a", date="2026-01-01", metrics=metrics_frame(offset=0.0),
        scores=pd.concat([scores_frame(), composite], ignore_index=True))  # fmt: skip
    add(study, patient="PSEUDO-0002", session="b", date="2026-01-02", metrics=metrics_frame(5.0))
    add(study, patient="PSEUDO-0003", session="c", date="2026-01-03", status="failed",
        metrics=None, scores=None, message="fit did not converge")  # fmt: skip
    table = study.cohort("knee")
    assert table["session"].tolist() == ["a", "b", "c"]
    assert table["status"].tolist() == ["ok", "ok", "failed"]
    assert list(table.columns[:7]) == [
        "patient", "session", "date", "run_id", "status", "score", "score_mdc95"
    ]  # fmt: skip
    # the composite where the run has one (session b's scores have none)
    assert table["score"].iloc[0] == 72.5 and table["score_mdc95"].iloc[0] == 6.1
    assert table[["score", "score_mdc95"]].iloc[1:].isna().all(axis=None)
    # the mean over repetitions, and the per-trial value as is
    m = metrics_frame()
    left = m[(m["metric"] == "rom") & (m["side"] == "left")]["value"].mean()
    right = m[(m["metric"] == "rom") & (m["side"] == "right")]["value"].mean()
    assert table["squat.rom.left_deg"].tolist()[:2] == [left, left + 5.0]
    assert table["squat.rom.right_deg"].tolist()[:2] == [right, right + 5.0]
    assert table["squat.tempo_1_per_min"].tolist()[:2] == [12.5, 17.5]
    assert np.isnan(table["squat.sparc.left"]).all()  # missing everywhere
    assert table.iloc[2, 5:].isna().all()  # the failed run has no metrics
    median = study.cohort("knee", aggregate="median")
    assert median["squat.rom.left_deg"].iloc[0] == np.median(left_values := [80.0, 84.0])
    assert left == np.mean(left_values)


def test_re_adding_the_same_run_is_skipped(study: Study, url: str) -> None:
    first = add(study)
    before = counts(url)
    again = add(study, metrics=metrics_frame(offset=99.0))  # same inputs: nothing is written
    assert again.action == "skipped" and again.run_id == first.run_id
    assert counts(url) == before
    assert study.metrics()["value"].max() == 84.0
    assert study.has_run(
        patient=SECRET,
        session="2026-03-01_visit1",
        protocol="knee",
        protocol_hash="sha256:aa",
        inputs={"trials/squat1.trc": "sha256:01"},
    )
    assert not study.has_run(
        patient=SECRET,
        session="2026-03-01_visit1",
        protocol="knee",
        inputs={"trials/squat1.trc": "sha256:02"},
    )
    assert not study.has_run(patient=SECRET, session="2026-03-01_visit1", protocol="hip")


def test_changed_inputs_replace_the_earlier_results(study: Study, url: str) -> None:
    first = add(study)
    second = add(study, inputs={"trials/squat1.trc": "sha256:02"}, metrics=metrics_frame(1.0))
    assert second.action == "replaced" and second.run_id != first.run_id
    assert counts(url) == {"patients": 1, "sessions": 1, "runs": 1, "metrics": 6, "scores": 2}
    values = study.metrics()["value"].dropna().sort_values().tolist()
    assert values == sorted((metrics_frame(1.0)["value"].dropna()).tolist())
    # a changed protocol hash replaces too, and so does a re-run of a failed run
    assert add(study, protocol_hash="sha256:bb").action == "replaced"
    add(study, session="s2", date="2026-03-02", status="failed", metrics=None, scores=None)
    assert add(study, session="s2", date="2026-03-02").action == "replaced"
    assert study.runs()["status"].tolist() == ["ok", "ok"]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("replacing", [False, True])
def test_a_failure_mid_way_leaves_the_database_unchanged(
    study: Study, url: str, replacing: bool
) -> None:
    if replacing:
        add(study)
    before_counts = counts(url)
    before = study.metrics()

    def fail_on_scores(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO SCORES"):
            raise Boom("disk full while writing scores")

    sa.event.listen(study.engine, "before_cursor_execute", fail_on_scores)
    try:
        with pytest.raises(Boom):
            add(study, inputs={"trials/squat1.trc": "sha256:new"}, metrics=metrics_frame(7.0))
    finally:
        sa.event.remove(study.engine, "before_cursor_execute", fail_on_scores)
    assert counts(url) == before_counts  # the metrics written before the failure are gone
    pd.testing.assert_frame_equal(study.metrics(), before)
    # and the database still works
    assert add(study, inputs={"trials/squat1.trc": "sha256:new"}).action in ("added", "replaced")


def test_a_newer_schema_is_refused_and_left_alone(url: str) -> None:
    Study(url).close()
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InputError, match=rf"schema version {SCHEMA_VERSION + 1} is newer") as exc:
        Study(url)
    assert f"schema {SCHEMA_VERSION}" in str(exc.value) and mp.__version__ in str(exc.value)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalar() == 2
    engine.dispose()


def test_an_older_schema_without_migration_is_refused(url: str) -> None:
    Study(url).close()
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_version SET version = 0")
    with pytest.raises(InputError, match=rf"schema version 0 is older .*schema {SCHEMA_VERSION}"):
        Study(url)
    engine.dispose()


def test_an_older_schema_is_migrated_in_one_transaction(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Study(url) as study:
        add(study)
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {SCHEMA_VERSION - 1}")

    def broken(conn: sa.Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN note TEXT")
        raise Boom("migration failed half-way")

    def upgrade(conn: sa.Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN note TEXT")

    monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION - 1, broken)
    with pytest.raises(Boom):
        Study(url)
    with engine.connect() as conn:  # nothing of the failed migration remains
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalar() == 0
        assert "note" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    monkeypatch.setitem(MIGRATIONS, SCHEMA_VERSION - 1, upgrade)
    with Study(url) as study:
        assert len(study.runs()) == 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalar() == 1
        assert "note" in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    engine.dispose()


def test_patient_ids_never_reach_messages_or_logs(
    study: Study, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    add(study)
    errors = []
    bad_calls = [
        lambda: add(study, metrics=metrics_frame().drop(columns="unit")),
        lambda: add(study, date="2026-03-02"),  # the session was recorded on another date
        lambda: add(study, scores=scores_frame().assign(flag="high")),
        lambda: add(study, session=f"/data/{SECRET}/visit1"),
        lambda: study.progress("PSEUDO-9999", "knee"),
        lambda: study.metrics(patient="PSEUDO-9999"),
        lambda: add(study, patient=12345),
        lambda: add(study, metrics=metrics_frame().assign(metric=f"{SECRET}_rom")),
    ]
    for call in bad_calls:
        with pytest.raises(InputError) as exc:
            call()
        errors.append(str(exc.value))
    assert all(SECRET not in e and "PSEUDO-9999" not in e and "12345" not in e for e in errors)
    # a failure message is stored scrubbed of the id and of absolute paths
    add(
        study,
        session="v2",
        date="2026-03-08",
        status="failed",
        metrics=None,
        scores=None,
        message=f"/srv/{SECRET}/v2/trials/squat1.trc: {SECRET.lower()} has no static trial",
    )
    failed = study.runs().query("status == 'failed'")["message"].iloc[0]
    assert failed == "squat1.trc: <patient> has no static trial"
    assert SECRET not in repr(study) and SECRET not in study._repr_html_()
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


def test_repr_counts_patients_sessions_and_runs_per_protocol(study: Study) -> None:
    add(study)
    add(study, session="v2", date="2026-03-08")
    add(study, patient="PSEUDO-0002", session="v1", protocol="hip")
    add(study, patient="PSEUDO-0002", session="v2", date="2026-03-09", protocol="hip",
        status="failed", metrics=None, scores=None)  # fmt: skip
    text = repr(study)
    assert "2 patients, 4 sessions, 4 runs" in text
    summary = study.summary().set_index("protocol")
    assert summary.loc["knee"].tolist() == [1, 2, 2, 0]
    assert summary.loc["hip"].tolist() == [1, 2, 2, 1]
    page = study._repr_html_()
    assert "<table" in page and "2 patients, 4 sessions, 4 runs" in page


# ---------------------------------------------------------------------------- SQLite only
def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    with Study(tmp_path / "s.sqlite") as study, study.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_a_second_sqlite_writer_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Study(path) as first, Study(path) as second:
        holding = threading.Event()
        release = threading.Event()

        def hold_the_write_lock() -> None:
            with first.engine.connect() as conn:
                conn.execution_options(medpose_write=True)
                with conn.begin():
                    holding.set()
                    release.wait(10)

        worker = threading.Thread(target=hold_the_write_lock)
        worker.start()
        assert holding.wait(10)
        with Study(path) as reader:  # opening and reading need no write lock
            assert reader.runs().empty
        threading.Timer(0.3, release.set).start()
        assert add(second).action == "added"  # waited, then wrote: no "database is locked"
        worker.join()
    assert counts(str(path))["runs"] == 1


def test_paths_and_memory_urls(tmp_path: Path) -> None:
    assert mp.Study is Study
    with Study(":memory:") as study:
        add(study)
        assert len(study.runs()) == 1
    with Study(f"sqlite:///{tmp_path / 'u.sqlite'}") as study:
        assert repr(study).startswith("Study(u.sqlite, schema 1): 0 patients")


def test_scrub_message_removes_ids_and_folders_but_not_units() -> None:
    text = r"C:\Users\x\P9\a.trc and /home/p9/b.c3d: P9 speed 3 deg/s for p9"
    assert scrub_message(text, "P9") == "a.trc and b.c3d: <patient> speed 3 deg/s for <patient>"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"metrics": metrics_frame().drop(columns="unit")},
            r"lacks column\(s\) \['unit'\]; expected columns \['trial'",
        ),
        (
            {"metrics": metrics_frame().assign(extra=1)},
            r"unexpected column\(s\) \['extra'\]; expected",
        ),
        ({"scores": scores_frame().drop(columns="z")}, r"scores lacks column\(s\) \['z'\]"),
        (
            {"metrics": metrics_frame().assign(value="fast")},
            r"column 'value' row 0: found 'fast'; expected a number",
        ),
        (
            {"metrics": metrics_frame().assign(reason=None)},
            r"row 5 \('sparc'\): value is missing and 'reason' is empty",
        ),
        (
            {"metrics": pd.concat([metrics_frame(), metrics_frame().iloc[:1]])},
            r"row 6 repeats trial",
        ),
        (
            {"metrics": metrics_frame().assign(repetition=0.5)},
            r"'repetition' row 0: found 0.5; expected a whole number",
        ),
        ({"metrics": metrics_frame().assign(trial=None)}, r"column 'trial' row 0 is missing"),
        (
            {"metrics": metrics_frame().assign(ci_low=np.inf)},
            r"column 'ci_low' row 0: found inf; expected a finite number, or NaN",
        ),
        (
            {"metrics": metrics_frame().assign(exercise=3)},
            r"column 'exercise' row 0: found a value of type int(64)?; expected text",
        ),
        ({"metrics": [1, 2]}, r"metrics must be a pandas DataFrame, found list"),
        (
            {"scores": scores_frame().assign(flag="high")},
            r"'flag' row 0: found 'high'; expected one of",
        ),
        ({"scores": pd.concat([scores_frame(), scores_frame()])}, r"scores name 'rom' twice"),
        ({"session": "/abs/visit"}, r"session: found an absolute path"),
        ({"session": "../visit"}, r"session: found '\.\.'"),
        ({"date": "1 March"}, r"date: found '1 March'; expected a datetime.date or 'YYYY-MM-DD'"),
        ({"started": datetime(2026, 3, 1)}, r"started: expected a timezone-aware datetime"),
        ({"status": "done"}, r"status: found 'done'; expected 'ok' or 'failed'"),
        ({"inputs": {"a.trc": 1}}, r"inputs: expected a dict of input file name -> hash"),
        ({"inputs": {"/abs/a.trc": "x"}}, r"inputs: found an absolute path as a key"),
        ({"protocol": ""}, r"protocol: expected a non-empty string"),
    ],
)
def test_bad_arguments_are_refused_and_named(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    with Study(tmp_path / "s.sqlite") as study:
        with pytest.raises(InputError, match=expected):
            add(study, **change)
        assert study.runs().empty


def test_bad_queries_are_refused_and_named(tmp_path: Path) -> None:
    with Study(tmp_path / "s.sqlite") as study:
        add(study)
        with pytest.raises(InputError, match=r"protocol: found 'hip'; this study holds \['knee'\]"):
            study.metrics(protocol="hip")
        with pytest.raises(InputError, match=r"aggregate: found 'max'"):
            study.cohort("knee", aggregate="max")  # type: ignore[arg-type]
        with pytest.raises(InputError, match="patient: not recorded in this study"):
            study.progress("nobody", "knee")


def test_bad_databases_are_refused_and_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^s\.sqlite: its folder does not exist"):
        Study(tmp_path / "missing" / "s.sqlite")
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match=r"^data: is a folder; expected a database file"):
        Study(tmp_path / "data")
    (tmp_path / "notes.sqlite").write_text("not a database\n" * 100)
    with pytest.raises(InputError, match=r"^notes\.sqlite: cannot be opened .*not a database"):
        Study(tmp_path / "notes.sqlite")
    other = sa.create_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE patients (name TEXT)")
    other.dispose()
    with pytest.raises(InputError, match=r"holds tables \['patients'\] but no schema_version"):
        Study(tmp_path / "other.sqlite")
    with pytest.raises(InputError, match="malformed database URL"):
        Study("postgresql+psycopg://host:notaport/db")
    with pytest.raises(InputError, match=r"the database driver 'pymysql' is not installed"):
        Study("mysql+pymysql://localhost/db")
    with pytest.raises(InputError, match=r"^postgresql database 'db': cannot be opened"):
        Study("postgresql+psycopg://user@127.0.0.1:1/db")  # nothing listens on port 1
    assert str(tmp_path) not in repr(Study(tmp_path / "fine.sqlite"))


def test_unknown_flags_are_stored_as_missing(tmp_path: Path) -> None:
    with Study(tmp_path / "s.sqlite") as study:
        add(study, scores=scores_frame().assign(flag=["n/a", ""], score=np.nan))
        assert study.scores()["flag"].isna().all()


def test_the_docs_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "store.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/store.md", "exec"), {})
    with Study("study.sqlite") as study:
        table = study.cohort("knee")
        assert table["squat.rom.left_deg"].tolist() == [82.0]
        assert table["squat.tempo_1_per_min"].tolist() == [12.5]


def test_keep_ok_never_replaces_an_ok_run(study: Study) -> None:
    first = add(study)
    kept = add(
        study, inputs={"trials/squat1.trc": "sha256:other"}, status="failed",
        message="no score", metrics=None, scores=None, keep_ok=True,
    )  # fmt: skip
    assert kept.action == "kept" and kept.run_id == first.run_id
    assert list(study.runs()["status"]) == ["ok"]
    # without an ok run the failed one is recorded, and a later ok run replaces it
    other = dict(patient="PSEUDO-0009", session="x", date="2026-01-09")
    assert (
        add(study, **other, status="failed", metrics=None, scores=None, keep_ok=True).action
        == "added"
    )
    assert add(study, **other).action == "replaced"
