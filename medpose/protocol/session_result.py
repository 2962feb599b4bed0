"""The result of a protocol run on a session, its output files and its rows in a study.

:class:`SessionResult` is what :func:`medpose.protocol.execute_session` returns: plain data
and DataFrames (picklable, so a worker process can send it back), with the whole-session
:class:`~medpose.protocol.assessment.Assessment`.  :meth:`SessionResult.write` writes the
tables of :data:`TABLES` as Parquet and CSV with a ``manifest.json`` into a folder that is
replaced as a whole, atomically; :meth:`SessionResult.add_to` records the run in a
:class:`medpose.Study` in one transaction (:func:`store_metrics` and :func:`store_scores` map
the tables onto the study's columns).
"""

from __future__ import annotations

import copyreg
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import InputError
from ..io._util import atomic_dir, display_name
from .assessment import REGISTRATION_COLUMNS, Assessment
from .composite import NO_COMPOSITE

if TYPE_CHECKING:
    from ..store.study import AddedRun, Study

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "TABLES",
    "PROVENANCE_COLUMNS",
    "SessionResult",
    "store_metrics",
    "store_scores",
    "read_manifest",
    "add_outputs_to",
]

#: Name of the manifest in an output folder.
MANIFEST = "manifest.json"
#: ``format`` field of the manifest.
MANIFEST_FORMAT = "medpose-run/1"
#: The tables written, each as ``<name>.parquet`` and ``<name>.csv``.
TABLES = ("metrics", "scores", "repetitions", "quality", "registration", "angles", "provenance")
#: Columns of the provenance table.
PROVENANCE_COLUMNS = ("field", "name", "value")
#: Name of the composite score's row in the study's scores.
COMPOSITE = "composite"


# A SessionResult travels between processes (a batch's workers): the composite's read-only
# mappings (types.MappingProxyType) pickle as the dicts they wrap.
def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """A read-only view of ``mapping`` (how a pickled ``MappingProxyType`` is rebuilt)."""
    return MappingProxyType(mapping)


copyreg.pickle(MappingProxyType, lambda m: (read_only, (dict(m),)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def store_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """An assessment's metrics table in the study's columns (:data:`medpose.store.METRIC_COLUMNS`).

    ``exercise`` is the protocol's trial (``trial`` as well); ``side`` ``""`` becomes missing;
    a joint not already in the metric's key is appended to it (``tre.hip_r``: one value per
    registration target or fiducial).
    """
    m = metrics
    joint = m["joint"].fillna("").astype(str) if "joint" in m else pd.Series("", index=m.index)
    metric = m["metric"].astype(str)
    apart = [j != "" and j not in k for k, j in zip(metric, joint)]
    metric = metric.where(~pd.Series(apart, index=m.index), metric + "." + joint)
    return pd.DataFrame(
        {
            "trial": m["trial"].astype(str),
            "exercise": m["trial"].astype(str),
            "side": m["side"].where(m["side"].fillna("") != "", None),
            "repetition": m["repetition"].astype(float),
            "metric": metric,
            "value": m["value"].astype(float),
            "unit": m["unit"].astype(str),
            "ci_low": m["ci_low"].astype(float),
            "ci_high": m["ci_high"].astype(float),
            "reason": m["reason"].where(m["reason"].fillna("") != "", None),
        }
    )


def store_scores(scores: pd.DataFrame, score: float, mdc95: float = math.nan) -> pd.DataFrame:
    """An assessment's scores in the study's columns (:data:`medpose.store.SCORE_COLUMNS`).

    A row is named ``<trial>.<metric>[.<side>]``; ``score`` is the percent of the norm,
    ``flag`` ``"n/a"`` is stored as missing (by the study); the 0-100 composite is the row
    ``composite`` (no z or flag; ``mdc95``: the composite's, in points of the 0-100 scale).
    """
    s = scores
    side = s["side"].fillna("").astype(str)
    names = s["trial"].astype(str) + "." + s["metric"].astype(str)
    names = names.where(side == "", names + "." + side)
    out = pd.DataFrame(
        {
            "metric": names,
            "score": s["percent"].astype(float),
            "z": s["z"].astype(float),
            "flag": s["flag"].astype(object),
            "mdc95": s["mdc95"].astype(float),
        }
    )
    if math.isfinite(score):
        row = {"metric": COMPOSITE, "score": score, "z": math.nan, "flag": None, "mdc95": mdc95}
        out = pd.concat([out, pd.DataFrame([row])], ignore_index=True)
    return out


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of an output folder when it and every file it lists are intact, else None."""
    path = Path(out_dir) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return None
    files = doc.get("files")
    if not isinstance(files, dict):
        return None
    for name, digest in files.items():
        f = Path(out_dir) / str(name)
        if not f.is_file() or _sha256(f) != digest:
            return None
    return doc


@dataclass(frozen=True, kw_only=True)
class SessionResult:
    """A protocol run on one session: the assessment, its inputs and provenance.

    Attributes
    ----------
    protocol, protocol_version, protocol_hash : str
    session : str
        The session folder's name (what the study records; no absolute path).
    session_path : str
        The session folder as it was given (kept for messages; not written anywhere).
    patient : str
        The pseudonymous patient id (not shown in the repr).
    date : str
        The session's date, ``YYYY-MM-DD``.
    trials : dict
        Protocol trial -> session trial.
    inputs : dict
        Input file (relative to the session folder) -> ``"sha256:<hex>"``
        (:func:`medpose.protocol.input_hashes`).
    medpose_version, started, finished : str
        Times in UTC, ISO 8601.
    assessment : Assessment
        Over every trial: metrics, scores, repetitions, quality, provenance, registration.
    angles : dict of str to DataFrame
        The fitted joint angles (degrees, index time in s) per session trial fitted.
    side_of_interest : str
        The session's ``side_of_interest`` (``left``, ``right`` or ``both``).
    """

    protocol: str
    protocol_version: str
    protocol_hash: str
    session: str
    session_path: str = field(repr=False)
    patient: str = field(repr=False)
    date: str
    trials: dict[str, str]
    inputs: dict[str, str] = field(repr=False)
    medpose_version: str
    started: str
    finished: str
    assessment: Assessment = field(repr=False)
    angles: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    side_of_interest: str = "both"

    # ------------------------------------------------------------------------ outcome
    def trials_without_repetitions(self) -> list[str]:
        """The protocol trials segmented into repetitions in which none was found."""
        a = self.assessment
        q = a.quality
        segmented = q.loc[q["check"] == "repetitions_missing", "trial"] if len(q) else []
        reps = a.repetitions
        if len(reps) and "trial" not in reps.columns:
            return []  # an assessment of one trial, whose repetitions these are
        found = set(reps["trial"]) if len(reps) else set()
        return [t for t in dict.fromkeys(segmented) if t not in found]

    def no_result(self) -> str:
        """Why this run gave no result, or ``""``: no composite score where the protocol
        defines one (its reason), or no repetition found in any trial segmented into them."""
        a = self.assessment
        why = []
        lacking = self.trials_without_repetitions()
        q = a.quality
        segmented = set(q.loc[q["check"] == "repetitions_missing", "trial"]) if len(q) else set()
        if lacking and set(lacking) == segmented:
            why.append(f"no repetition found in trial(s) {', '.join(lacking)}")
        if math.isnan(a.score) and a.score_reason != NO_COMPOSITE:
            why.append(f"no score: {a.score_reason}")
        return "; ".join(why)

    # ------------------------------------------------------------------------ tables
    def provenance(self) -> pd.DataFrame:
        """Tidy provenance (:data:`PROVENANCE_COLUMNS`): medpose version, protocol name,
        version and hash, session folder and date, the pseudonymous patient id, trials,
        every input file's hash, start and finish."""
        rows = [
            ("medpose_version", "", self.medpose_version),
            ("protocol", "name", self.protocol),
            ("protocol", "version", self.protocol_version),
            ("protocol", "hash", self.protocol_hash),
            ("session", "folder", self.session),
            ("session", "date", self.date),
            ("session", "side_of_interest", self.side_of_interest),
            ("patient", "pseudonym", self.patient),
            ("run", "started", self.started),
            ("run", "finished", self.finished),
        ]
        rows += [("trial", k, v) for k, v in self.trials.items()]
        rows += [("input", k, v) for k, v in sorted(self.inputs.items())]
        return pd.DataFrame(rows, columns=list(PROVENANCE_COLUMNS))

    def angles_table(self) -> pd.DataFrame:
        """The fitted joint angles of every fitted trial, one row per frame: ``session_trial``,
        ``time_s``, then one column per angle (degrees)."""
        parts = [
            df.reset_index().rename(columns={df.index.name or "index": "time_s"})
            for df in self.angles.values()
        ]
        if not parts:
            return pd.DataFrame({"session_trial": pd.Series(dtype=object), "time_s": []})
        out = pd.concat(parts, keys=list(self.angles), names=["session_trial", "row"])
        return out.reset_index(level="session_trial").reset_index(drop=True)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The output tables by name (:data:`TABLES`)."""
        a = self.assessment
        reg = a.registration
        if reg is None:
            reg = pd.DataFrame({c: pd.Series(dtype=object) for c in REGISTRATION_COLUMNS})
        return {
            "metrics": a.metrics,
            "scores": a.scores,
            "repetitions": a.repetitions,
            "quality": a.quality,
            "registration": reg,
            "angles": self.angles_table(),
            "provenance": self.provenance(),
        }

    def manifest(self) -> dict[str, Any]:
        """The manifest's content, without the file hashes (no patient id)."""
        a = self.assessment
        return {
            "format": MANIFEST_FORMAT,
            "medpose_version": self.medpose_version,
            "protocol": {
                "name": self.protocol,
                "version": self.protocol_version,
                "hash": self.protocol_hash,
            },
            "session": self.session,
            "date": self.date,
            "trials": dict(self.trials),
            "inputs": dict(sorted(self.inputs.items())),
            "started": self.started,
            "finished": self.finished,
            "score": None if math.isnan(a.score) else a.score,
            "score_reason": a.score_reason,
            "score_mdc95": None if math.isnan(a.score_mdc95) else a.score_mdc95,
            "no_result": self.no_result() or None,
            "gate": None if a.gate is None else str(a.gate),
            "rows": {k: len(v) for k, v in self.tables().items()},
        }

    # ------------------------------------------------------------------------ outputs
    def write(self, out_dir: str | os.PathLike, *, action: str = "computed") -> Path:
        """Write every table as Parquet and CSV and ``manifest.json`` into ``out_dir``.

        The folder is replaced as a whole, atomically (:func:`medpose.io._util.atomic_dir`):
        a failed write leaves the earlier results as they were.

        Parameters
        ----------
        out_dir : path-like
            A new or empty folder, or one holding an earlier run's outputs (a ``manifest.json``).
        action : str
            What the manifest records: ``"computed"`` (first run) or ``"replaced"``.

        Returns
        -------
        Path
            The manifest.

        Raises
        ------
        InputError
            ``out_dir`` holds other files and no manifest: it is not replaced.
        """
        out = Path(out_dir)
        if out.exists() and out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
            raise InputError(
                f"{display_name(out)}: holds files but no {MANIFEST}; expected a new or empty "
                "folder, or the output folder of an earlier run (it is replaced as a whole)"
            )
        with atomic_dir(out) as tmp:
            files: dict[str, str] = {}
            for name, df in self.tables().items():
                flat = df.copy()
                for col in flat.columns:
                    if flat[col].map(lambda v: isinstance(v, (dict, list, tuple))).any():
                        flat[col] = flat[col].map(str)
                flat.to_parquet(tmp / f"{name}.parquet", index=False)
                flat.to_csv(tmp / f"{name}.csv", index=False, lineterminator="\n")
                for ext in ("parquet", "csv"):
                    files[f"{name}.{ext}"] = _sha256(tmp / f"{name}.{ext}")
            doc = {**self.manifest(), "action": action, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        return out / MANIFEST

    def add_to(self, study: Study) -> AddedRun:
        """Record this run in ``study`` (:meth:`medpose.Study.add_run`, one transaction).

        An ``ok`` run of this protocol with the same protocol hash and inputs already recorded
        for the session is left as it is (``action == "skipped"``); another earlier run of the
        session and protocol is replaced.  A run that gave no result (:meth:`no_result`) is
        recorded as ``failed`` with that message, and never replaces an ``ok`` run: that one is
        kept (``action == "kept"``).
        """
        a = self.assessment
        why = self.no_result()
        return study.add_run(
            status="failed" if why else "ok",
            message=why or None,
            keep_ok=bool(why),
            patient=self.patient,
            session=self.session,
            date=self.date,
            protocol=self.protocol,
            protocol_version=self.protocol_version,
            protocol_hash=self.protocol_hash,
            inputs=self.inputs,
            metrics=store_metrics(a.metrics),
            scores=store_scores(a.scores, a.score, a.score_mdc95),
            medpose_version=self.medpose_version,
            started=pd.Timestamp(self.started).to_pydatetime(),
            finished=pd.Timestamp(self.finished).to_pydatetime(),
        )

    def __repr__(self) -> str:
        a = self.assessment
        score = "n/a" if math.isnan(a.score) else f"{a.score:.1f}/100"
        gate = "" if a.gate is None else f", gate {a.gate}"
        return (
            f"SessionResult({self.protocol} {self.protocol_version} on session {self.session!r} "
            f"of {self.date}: trials {list(self.trials)}, {len(a.metrics)} metric values, "
            f"score {score}{gate})"
        )

    def _repr_html_(self) -> str:
        return self.assessment._repr_html_()

    def plot(self, ax: Any = None) -> Any:
        """The assessment's plot (:meth:`Assessment.plot`): percent of normal per metric."""
        return self.assessment.plot(ax=ax)


def add_outputs_to(out_dir: str | os.PathLike, study: Study, patient: str) -> AddedRun:
    """Record the run whose outputs are in ``out_dir`` (an intact manifest) in ``study``,
    from its files, without recomputing.

    Raises
    ------
    InputError
        The folder's manifest is missing or does not match its files.
    """
    doc = read_manifest(out_dir)
    if doc is None:
        raise InputError(
            f"{display_name(out_dir)}: no intact {MANIFEST}; expected an earlier run's outputs"
        )
    metrics = pd.read_parquet(Path(out_dir) / "metrics.parquet")
    scores = pd.read_parquet(Path(out_dir) / "scores.parquet")
    score, mdc = doc.get("score"), doc.get("score_mdc95")
    why = doc.get("no_result")
    return study.add_run(
        status="failed" if why else "ok",
        message=why or None,
        keep_ok=bool(why),
        patient=patient,
        session=doc["session"],
        date=doc["date"],
        protocol=doc["protocol"]["name"],
        protocol_version=doc["protocol"]["version"],
        protocol_hash=doc["protocol"]["hash"],
        inputs=doc["inputs"],
        metrics=store_metrics(metrics),
        scores=store_scores(
            scores,
            math.nan if score is None else float(score),
            math.nan if mdc is None else float(mdc),
        ),
        medpose_version=doc["medpose_version"],
        started=pd.Timestamp(doc["started"]).to_pydatetime(),
        finished=pd.Timestamp(doc["finished"]).to_pydatetime(),
    )
