"""``medpose run PROTOCOL SESSION --out DIR [--db URL]`` on a synthetic session.

Results land in the study database: SQLite beside the outputs by default, and a real
PostgreSQL server (pgserver, as in tests/test_store.py) in one test.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

import medpose as mp
from medpose.cli import main
from medpose.protocol import write_session_yaml
from medpose.protocol.session_result import PROVENANCE_COLUMNS, TABLES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
    import pgserver

SECRET = "QZX-PATIENT-80417"  # a distinctive pseudonymous id: never in logs, output or errors
COLUMNS = {
    "metrics": [
        "trial", "metric", "joint", "side", "repetition", "value", "unit", "ci_low", "ci_high",
        "reason",
    ],
    "scores": [
        "trial", "metric", "joint", "side", "value", "unit", "percent", "z", "flag", "norm",
        "source", "mdc95", "mdc95_percent", "mdc95_source", "reason",
    ],
    "quality": ["trial", "check", "name", "value", "unit"],
    "registration": ["trial", "item", "name", "value", "unit", "limit", "outlier", "passed"],
    "provenance": list(PROVENANCE_COLUMNS),
    "angles": ["session_trial", "time_s"],  # then one column per fitted angle
}  # fmt: skip


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic session for deep_squat, of a patient with a distinctive id."""
    path = tmp_path_factory.mktemp("sessions") / "visit1"
    mp.synthetic.make_session(path, seed=4, protocol="deep_squat")
    doc = yaml.safe_load((path / "session.yaml").read_text())
    doc["patient"]["id"] = SECRET
    write_session_yaml(doc, path)
    return path


def _truth(session: Path) -> tuple[pd.DataFrame, list[list[float]]]:
    truth = pd.read_csv(session / "truth" / "angles_deep_squat.csv", index_col=0)
    reps = json.loads((session / "truth" / "repetitions.json").read_text())
    return truth, reps["deep_squat"]["windows_s"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["run", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def first(session: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``medpose run deep_squat SESSION --out results/visit1``, once: output, messages, logs."""
    out = tmp_path_factory.mktemp("results") / "visit1"
    stdout, stderr, logs = io.StringIO(), io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logs)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["run", "deep_squat", str(session), "--out", str(out), "--no-progress"])
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return SimpleNamespace(
        code=code, out=out, stdout=stdout.getvalue(), stderr=stderr.getvalue(), logs=logs.getvalue()
    )


def test_run_writes_tables_and_lands_in_the_default_study(session, first):
    out, stdout, stderr = first.out, first.stdout, first.stderr
    assert first.code == 0, stderr
    assert "deep_squat on visit1: computed" in stdout and "study: run added" in stdout
    for name in TABLES:
        for ext in ("parquet", "csv"):
            assert (out / f"{name}.{ext}").is_file()
    for name, cols in COLUMNS.items():
        n = len(cols) if name != "angles" else 2
        assert list(pd.read_csv(out / f"{name}.csv").columns)[:n] == cols
        assert list(pd.read_parquet(out / f"{name}.parquet").columns)[:n] == cols
    reps = pd.read_parquet(out / "repetitions.parquet")
    assert {"trial", "repetition", "start_frame", "end_frame", "side"} <= set(reps.columns)
    # the knee ROM per repetition is the truth's within the fit's error: angles within e of
    # the truth give a range within 2 e (e: 95th percentile over the repetitions, written in
    # the angles table)
    m = pd.read_parquet(out / "metrics.parquet")
    angles = pd.read_parquet(out / "angles.parquet")
    assert set(angles["session_trial"]) == {"deep_squat"}
    truth, windows = _truth(session)
    t = truth.index.to_numpy()
    inside = np.any([(t >= a) & (t <= b) for a, b in windows], axis=0)
    for side, col in (("left", "knee_flexion_l"), ("right", "knee_flexion_r")):
        err = np.nanpercentile(np.abs(angles[col].to_numpy() - truth[col].to_numpy())[inside], 95)
        assert err < 15
        true_rom = [float(np.ptp(truth[col][(t >= a) & (t <= b)])) for a, b in windows]
        rows = m[(m["metric"] == "rom_knee_flexion") & (m["side"] == side)]
        got = rows[rows["repetition"].notna()].sort_values("repetition")["value"].to_numpy()
        assert got.size == len(windows)
        assert np.all(np.abs(got - true_rom) <= 2 * err + 1.0), (side, got, true_rom, err)
    # the study beside the output folder
    study = mp.Study(out.parent / "study.sqlite")
    runs = study.runs()
    assert list(runs["protocol"]) == ["deep_squat"] and list(runs["session"]) == ["visit1"]
    sm = study.metrics(protocol="deep_squat")
    assert len(sm) == len(m)
    assert set(sm["exercise"]) == {"deep_squat"}
    sc = study.scores(protocol="deep_squat")
    assert "deep_squat.rom_knee_flexion.left" in set(sc["metric"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert sc.loc[sc["metric"] == "composite", "score"].iloc[0] == pytest.approx(manifest["score"])
    study.close()
    # the pseudonymous id is in the provenance table only
    prov = pd.read_csv(out / "provenance.csv")
    assert prov.loc[prov["field"] == "patient", "value"].iloc[0] == SECRET
    for f in out.iterdir():
        if f.suffix in (".csv", ".json") and f.name != "provenance.csv":
            assert SECRET not in f.read_text(), f.name
    assert "run 1 added" in first.logs  # the study logs the run ...
    assert SECRET not in stdout + stderr + first.logs  # ... never the patient


def test_unchanged_inputs_recompute_nothing_and_changed_ones_replace(
    session, first, tmp_path, capsys
):
    copy = tmp_path / "visit1"
    shutil.copytree(session, copy)
    out = tmp_path / "out" / "visit1"
    shutil.copytree(first.out, out)  # the first run's outputs, same inputs
    db = str(tmp_path / "study.sqlite")
    code, stdout, _ = _run(capsys, "deep_squat", str(copy), "--out", str(out), "--db", db, "--json")
    doc = json.loads(stdout)  # nothing recomputed; the new study gets the run from the files
    assert code == 0 and doc["action"] == "unchanged" and doc["study"] == "added"
    with mp.Study(db) as study, mp.Study(first.out.parent / "study.sqlite") as earlier:
        cols = ["trial", "side", "repetition", "metric", "value", "ci_low", "ci_high", "reason"]
        pd.testing.assert_frame_equal(study.metrics()[cols], earlier.metrics()[cols])
        cols = ["metric", "score", "z", "flag", "mdc95"]
        pd.testing.assert_frame_equal(study.scores()[cols], earlier.scores()[cols])
    before = json.loads((out / "manifest.json").read_text())
    code, stdout, _ = _run(capsys, "deep_squat", str(copy), "--out", str(out), "--db", db, "--json")
    doc = json.loads(stdout)
    assert code == 0 and doc["action"] == "unchanged" and doc["study"] == "skipped"
    assert json.loads((out / "manifest.json").read_text()) == before  # not rewritten
    # change one input file's content: one coordinate of the 3D keypoints, 1 mm
    trc = copy / "trials" / "deep_squat.trc"
    lines = trc.read_text().splitlines()
    cells = lines[6].split("\t")
    cells[2] = f"{float(cells[2]) + 1.0:.6f}"
    lines[6] = "\t".join(cells)
    trc.write_text("\n".join(lines) + "\n")
    code, stdout, _ = _run(capsys, "deep_squat", str(copy), "--out", str(out), "--db", db, "--json")
    doc = json.loads(stdout)
    assert code == 0 and doc["action"] == "replaced" and doc["study"] == "replaced"
    second = json.loads((out / "manifest.json").read_text())
    assert second["action"] == "replaced"
    assert second["inputs"]["trials/deep_squat.trc"] != before["inputs"]["trials/deep_squat.trc"]
    with mp.Study(db) as study:
        runs = study.runs()
        assert len(runs) == 1
        assert runs["inputs"].iloc[0] == second["inputs"]


def test_a_replacement_says_why_and_a_folder_named_for_the_patient_is_not_printed(
    session, first, tmp_path, capsys
):
    copy = tmp_path / f"{SECRET}_visit"  # a session folder named after the patient
    shutil.copytree(session, copy)
    out = tmp_path / "out"
    shutil.copytree(first.out, out)  # current results of the same inputs ...
    with (out / "metrics.csv").open("a") as f:
        f.write("1,2,3\n")  # ... one of them damaged
    code, stdout, stderr = _run(capsys, "deep_squat", str(copy), "--out", str(out), "--no-db")
    assert code == 0, stderr
    assert "deep_squat on <patient-id>_visit: earlier results damaged or incomplete" in stdout
    code, stdout, stderr = _run(
        capsys, "deep_squat", str(copy), "--out", str(out), "--no-db", "--force"
    )
    assert code == 0 and "recomputed (--force): earlier results replaced" in stdout
    assert "changed" not in stdout and SECRET not in stdout + stderr


def test_a_missing_trial_is_an_error_naming_the_trials(session, tmp_path, capsys):
    code, stdout, stderr = _run(
        capsys, "shoulder_abduction", str(session), "--out", str(tmp_path / "o"), "--no-db"
    )
    assert code == 1
    assert "abduction_left, abduction_right" in stderr
    assert "the session has: static, deep_squat" in stderr
    assert SECRET not in stdout + stderr and not (tmp_path / "o").exists()


def test_errors_do_not_show_the_patient_id(session, tmp_path, capsys):
    copy = tmp_path / SECRET  # even a session folder named after the patient
    shutil.copytree(session, copy)
    (copy / "trials" / "deep_squat.trc").write_text("PathFileType\t4\n")
    code, stdout, stderr = _run(capsys, "deep_squat", str(copy), "--out", str(tmp_path / "o"))
    assert code == 1 and stderr.startswith("error:")
    assert SECRET not in stdout + stderr


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh database on a pgserver PostgreSQL server in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="medpose-pg-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder, cleanup_mode="delete")
        uri = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        name = "t" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(uri, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        yield server.get_uri(database=name).replace("postgresql://", "postgresql+psycopg://", 1)
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_run_lands_in_postgresql(session, first, tmp_path, capsys, pg_url):
    out = tmp_path / "visit1"
    shutil.copytree(first.out, out)
    code, stdout, stderr = _run(
        capsys, "deep_squat", str(session), "--out", str(out), "--db", pg_url
    )
    assert code == 0, stderr  # the results are current: they land from the output files
    assert "nothing recomputed" in stdout and "study: run added" in stdout
    assert "study: run added" in stdout
    with mp.Study(pg_url) as study:
        m = study.metrics(protocol="deep_squat")
        assert len(m) == len(pd.read_parquet(out / "metrics.parquet"))
        assert study.has_run(
            patient=SECRET,
            session="visit1",
            protocol="deep_squat",
            protocol_hash=mp.Protocol.load("deep_squat").hash,
            inputs=mp.protocol.input_hashes("deep_squat", session),
        )
    assert pg_url.split("@")[-1] not in stderr


def test_a_run_without_repetitions_says_so_and_keeps_the_good_run(session, first, capsys):
    """The static trial assessed as the squat: no repetition, no score; the CLI says why,
    and the study keeps the earlier ok run of the session instead of replacing it."""
    db = first.out.parent / "study.sqlite"
    before = mp.Study(db).runs()
    assert list(before["status"]) == ["ok"]
    out = first.out.parent / "from_static"
    code, stdout, stderr = _run(
        capsys, "deep_squat", str(session), "--out", str(out), "--trial", "deep_squat=static"
    )
    assert code == 0, stderr
    assert "no repetition found" in stderr
    assert "no score: missing" in stdout and "of the weight" in stdout
    assert "earlier ok run of this session and protocol is kept" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["score"] is None and "no repetition found" in manifest["no_result"]
    with mp.Study(db) as study:
        pd.testing.assert_frame_equal(study.runs(), before)
    # alone in a study, it is recorded as failed, with the reason
    code, stdout, stderr = _run(
        capsys, "deep_squat", str(session), "--out", str(out), "--db",
        str(first.out.parent / "other.sqlite"), "--trial", "deep_squat=static", "--force",
    )  # fmt: skip
    assert code == 0, stderr
    with mp.Study(first.out.parent / "other.sqlite") as study:
        runs = study.runs()
    assert list(runs["status"]) == ["failed"]
    assert "no score" in runs["message"].iloc[0] and SECRET not in runs["message"].iloc[0]
