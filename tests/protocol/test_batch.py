"""Cohort runs on Dask (``run_batch``, ``medpose batch``): one writer, skips, failures, resume.

Sessions are small synthetic ``deep_squat`` sessions (one short repetition at 15 Hz, 3D
keypoints only). The local Dask cluster runs its 2 workers as threads of the test process
(``processes=False``), so that nothing outlives a test; the kill test kills a whole batch
process with SIGKILL, the way a crash or an operator would.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import torch
import yaml
from matplotlib.figure import Figure

import medpose as mp
from medpose.cli import main
from medpose.protocol import write_session_yaml
from medpose.protocol.batch import BatchReport, run_batch

PROTOCOL = "deep_squat"
SMALL = {
    "protocol": PROTOCOL,
    "repetitions": 1,
    "static_s": 0.5,
    "rate": 15.0,
    "exercise_options": {"tempo_s": 1.5},
}
SECRET = "PSEUDO-5521"  # a patient id (and session folder name) never to be shown
TRC = "trials/deep_squat.trc"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three sessions of three patients; the third's folder and patient id are SECRET."""
    root = tmp_path_factory.mktemp("cohort")
    paths = [root / "visit_a", root / "visit_b", root / SECRET]
    for seed, path in enumerate(paths, start=1):
        mp.synthetic.make_session(path, seed=seed, **SMALL)
    doc = yaml.safe_load((paths[2] / "session.yaml").read_text())
    doc["patient"]["id"] = SECRET
    write_session_yaml(doc, paths[2])
    return paths


def _copy(paths: list[Path], dest: Path) -> list[Path]:
    return [Path(shutil.copytree(p, dest / p.name)) for p in paths]


def _batch(sessions: list[Path], url: str, **kw) -> BatchReport:
    kw.setdefault("workers", 2)
    return run_batch(PROTOCOL, sessions, url, processes=False, progress=False, **kw)


def _tables(url: str) -> dict[str, pd.DataFrame]:
    """The study's runs, metrics and scores without run ids and times, in a fixed order."""
    with mp.Study(url) as study:
        runs = study.runs().drop(columns=["run_id", "started", "finished"])
        runs["inputs"] = runs["inputs"].map(lambda d: sorted(d.items()))
        out = {"runs": runs, "metrics": study.metrics(), "scores": study.scores()}
    for name, df in out.items():
        df = df.drop(columns=[c for c in ("run_id",) if c in df])
        keys = [c for c in df.columns if df[c].map(lambda v: not isinstance(v, list)).all()]
        out[name] = df.sort_values(keys, na_position="last").reset_index(drop=True)
    return out


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for name in a:
        left, right = (x[name].astype(object) for x in (a, b))
        left, right = left.where(left.notna(), None), right.where(right.notna(), None)
        pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)


@pytest.fixture(scope="module")
def reference(cohort: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted batch of the three sessions into a SQLite study."""
    url = str(tmp_path_factory.mktemp("reference") / "study.sqlite")
    report = _batch(cohort, url)
    assert report.ok and len(report.done) == 3, report
    return _tables(url)


# ---------------------------------------------------------------------------- tests
def test_batch_records_all_isolates_a_broken_session_skips_and_reruns_changed_inputs(
    cohort, reference, tmp_path, caplog
):
    sessions = _copy(cohort, tmp_path / "data")
    broken = tmp_path / "data" / "visit_broken"
    shutil.copytree(cohort[0], broken)
    doc = yaml.safe_load((broken / "session.yaml").read_text())
    doc["patient"]["id"] = "SYN-9999"
    write_session_yaml(doc, broken)
    (broken / TRC).write_text("not a TRC file\n")
    url = str(tmp_path / "study.sqlite")

    with caplog.at_level(logging.DEBUG):
        first = _batch([*sessions, broken], url)
    assert sorted(first.done["session"]) == ["<patient-id>", "visit_a", "visit_b"]
    assert set(first.done["action"]) == {"added"}
    assert first.done["score"].between(0, 100).all()
    assert list(first.failed["session"]) == ["visit_broken"]
    assert first.failed["stage"].iloc[0] == "compute"
    assert "deep_squat.trc" in first.failed["reason"].iloc[0]
    assert not first.ok
    # the three good sessions are recorded exactly as a batch without the broken one
    runs = mp.Study(url).runs()
    assert sorted(runs["status"]) == ["failed", "ok", "ok", "ok"]
    tables = _tables(url)
    good = {k: v[v["session"] != "visit_broken"].reset_index(drop=True) for k, v in tables.items()}
    _assert_same(good, reference)
    # the patient id is in no report, log record or message
    text = repr(first) + first._repr_html_() + caplog.text
    assert SECRET not in text and "SYN-9999" not in text
    assert str(tmp_path) not in text
    # the plot counts the three scores, the failed session in its title
    ax = Figure().add_subplot()
    assert first.plot(ax=ax) is ax
    assert sum(p.get_height() for p in ax.patches) == 3
    assert ax.get_title() == "3 scored, 0 skipped, 1 failed"

    # again: nothing computed but the failed session
    again = _batch([*sessions, broken], url)
    assert sorted(again.skipped["session"]) == ["<patient-id>", "visit_a", "visit_b"]
    assert again.done.empty and list(again.failed["session"]) == ["visit_broken"]

    # a changed input file: that session alone is computed, and its run replaced
    shutil.copyfile(sessions[0] / TRC, sessions[1] / TRC)
    shutil.rmtree(broken)
    third = _batch(sessions, url, workers=1)
    assert list(third.done["session"]) == ["visit_b"] and third.ok
    assert list(third.done["action"]) == ["replaced"] and len(third.skipped) == 2
    after = _tables(url)["metrics"]
    assert not after[after["session"] == "visit_b"].equals(
        reference["metrics"][reference["metrics"]["session"] == "visit_b"]
    )


def test_batch_killed_midway_resumes_to_the_same_database(cohort, reference, tmp_path):
    sessions = _copy(cohort, tmp_path / "data")
    db = tmp_path / "study.sqlite"
    # the killed process fits with this process's torch threads, as the reference did: the
    # metrics are compared exactly, and float sums split over another number of threads can
    # differ in the last bit
    script = textwrap.dedent(
        f"""
        import torch
        torch.set_num_threads({torch.get_num_threads()})
        from medpose.protocol.batch import run_batch
        run_batch({PROTOCOL!r}, {[str(s) for s in sessions]!r}, {str(db)!r},
                  workers=1, processes=False, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    try:
        committed = 0
        deadline = time.monotonic() + 120
        while committed == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if db.exists():
                with sqlite3.connect(db, timeout=10) as conn:
                    try:
                        committed = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        committed = 0
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the batch ended before it was killed"
    with mp.Study(db) as study:
        recorded = len(study.runs())
    assert 1 <= recorded < 3

    resumed = _batch(sessions, str(db))
    assert len(resumed.skipped) == recorded and len(resumed.done) == 3 - recorded
    _assert_same(_tables(str(db)), reference)


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh database on a pgserver PostgreSQL (pip-installed), deleted after."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="medpose-pg-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            server = pgserver.get_server(folder, cleanup_mode="delete")
        uri = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        name = "b" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(uri, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        yield server.get_uri(database=name).replace("postgresql://", "postgresql+psycopg://", 1)
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")
def test_batch_on_postgresql_gives_the_sqlite_rows_and_skips_on_rerun(cohort, reference, pg_url):
    report = _batch(cohort, pg_url)
    assert report.ok and len(report.done) == 3
    _assert_same(_tables(pg_url), reference)
    rerun = _batch(cohort, pg_url)
    assert len(rerun.skipped) == 3 and rerun.workers == 0  # no cluster started


def test_two_sessions_of_one_folder_name_are_refused_before_any_work(cohort, tmp_path):
    other = Path(shutil.copytree(cohort[0], tmp_path / "elsewhere" / cohort[0].name))
    with pytest.raises(mp.InputError, match="folder name"):
        _batch([cohort[0], other], str(tmp_path / "study.sqlite"))
    assert not (tmp_path / "study.sqlite").exists()


# ---------------------------------------------------------------------------- CLI
def test_cli_batch_exit_codes_and_failed_list(cohort, tmp_path, capsys):
    sessions = _copy(cohort[:1], tmp_path / "data")
    missing = tmp_path / "data" / "no_such_session"
    url = str(tmp_path / "study.sqlite")
    args = ["--db", url, "--no-progress", "--workers", "1", "--threads"]
    code = main(["batch", PROTOCOL, *map(str, sessions), str(missing), *args])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 failed" in out and "no_such_session" in out and str(tmp_path) not in out
    code = main(["batch", PROTOCOL, *map(str, sessions), *args])
    out = capsys.readouterr().out
    assert code == 0 and "1 skipped" in out


def test_sessions_given_relative_are_listed_by_their_folder_names(cohort, tmp_path, monkeypatch):
    """``medpose batch P visit_a ./visit_b/`` from the sessions' parent: each listed by its
    folder name (the location redaction used to turn a relative folder into '.'), a folder
    named after its patient by the id's mark."""
    copies = _copy(cohort[1:], tmp_path / "data")
    names = [p.name for p in copies]
    shown = ["<patient-id>" if p.name == mp.Session.load(p).patient.id else p.name for p in copies]
    monkeypatch.chdir(tmp_path / "data")
    given = [names[0], f"./{names[1]}/"]
    report = _batch([Path(g) for g in given], str(tmp_path / "study.sqlite"), workers=1)
    assert sorted(report.done["session"]) == sorted(shown), report.done
    assert "<patient-id>" in shown and len(set(shown)) == 2
