"""Read a run folder (written by ``medpose run`` / ``SessionResult.write``) back as an Assessment.

A run folder holds ``manifest.json`` and the tables ``metrics``, ``scores``, ``repetitions``,
``quality``, ``registration`` and ``provenance`` as Parquet (see docs/protocols.md); an
``angles.parquet`` (``session_trial``, ``time_s`` and one column per joint angle, degrees)
gives the report its angle curves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..protocol.assessment import Assessment
from ..protocol.session_result import MANIFEST, read_manifest

__all__ = ["LoadedRun", "load_run", "find_runs"]


@dataclass(frozen=True)
class LoadedRun:
    """A run folder read back: the assessment and what the report's header needs.

    ``patient`` is the pseudonym recorded in the provenance table (never shown in the repr).
    """

    assessment: Assessment
    patient: str | None = dataclasses.field(repr=False)
    date: str | None
    session: str | None
    angles: pd.DataFrame = dataclasses.field(repr=False)


def find_runs(root: str | os.PathLike[str], depth: int = 2) -> list[Path]:
    """Folders under ``root`` (``root`` itself and up to ``depth`` levels down) holding a
    ``manifest.json``, sorted."""
    base = Path(root)
    if not base.is_dir():
        return []
    found = []
    for level in range(depth + 1):
        pattern = "/".join(["*"] * level + [MANIFEST])
        found += [p.parent for p in base.glob(pattern)]
    return sorted(set(found))


def _provenance(df: pd.DataFrame) -> tuple[dict[str, Any], str | None]:
    prov: dict[str, Any] = {"inputs": {}, "trials": {}}
    patient = None
    for field_, name, value in df[["field", "name", "value"]].itertuples(index=False):
        key = (str(field_), str(name) if isinstance(name, str) else "")
        if key == ("patient", "pseudonym"):
            patient = str(value)
        elif key[0] == "input":
            prov["inputs"][key[1]] = value
        elif key[0] == "trial":
            prov["trials"][key[1]] = value
        elif key == ("session", "date"):
            prov["session_date"] = value
        elif key == ("session", "folder"):
            prov["session"] = value
        elif key == ("session", "side_of_interest"):
            prov["side_of_interest"] = value
        elif key[0] == "protocol":
            prov["protocol" if key[1] == "name" else f"protocol_{key[1]}"] = value
        else:
            prov["_".join(k for k in key if k)] = value
    return prov, patient


def _table(folder: Path, name: str) -> pd.DataFrame:
    path = folder / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def load_run(folder: str | os.PathLike[str]) -> LoadedRun:
    """The run in ``folder`` as a :class:`LoadedRun`.

    Raises
    ------
    InputError
        ``folder`` has no ``manifest.json`` (the message lists the run folders beside it), or
        its manifest does not match its files.
    """
    path = Path(folder)
    if not (path / MANIFEST).is_file():
        near = find_runs(path.parent if path.parent != path else path)
        listing = ", ".join(p.name for p in near) or "none"
        raise InputError(
            f"{path.name}: not a run folder (no {MANIFEST}); run folders in "
            f"{path.parent.name or '.'}: {listing}"
        )
    doc = read_manifest(path)
    if doc is None:
        raise InputError(
            f"{path.name}/{MANIFEST}: does not match the files beside it (changed or "
            "missing); expected the intact output of `medpose run` (run it again)"
        )
    prov, patient = _provenance(_table(path, "provenance"))
    metrics = _table(path, "metrics")
    sides = tuple(s for s in ("left", "right") if s in set(metrics.get("side", [])))
    score = doc.get("score")
    reg = _table(path, "registration")
    fields = {f.name for f in dataclasses.fields(Assessment)}
    extra = {
        "trials": tuple(doc.get("trials", {})),
        "quality": _table(path, "quality"),
        "provenance": prov,
        "registration": reg if len(reg) else None,
    }
    a = Assessment(
        protocol=f"{doc['protocol']['name']} {doc['protocol']['version']}",
        protocol_hash=str(doc["protocol"]["hash"]),
        trial=", ".join(doc.get("trials", {})) or "",
        sides=sides,
        metrics=metrics,
        scores=_table(path, "scores"),
        repetitions=_table(path, "repetitions"),
        score=math.nan if score is None else float(score),
        score_reason=str(doc.get("score_reason") or ""),
        composite=None,
        rate=math.nan,
        info={"run_folder": path.name, "gate": doc.get("gate")},
        **{k: v for k, v in extra.items() if k in fields},
    )
    angles = _table(path, "angles")
    return LoadedRun(a, patient, doc.get("date"), doc.get("session"), angles)


def manifest_summary(folder: Path) -> str:
    """``protocol version, session date`` of a run folder, for listings."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return f"{doc['protocol']['name']} {doc['protocol']['version']}, {doc.get('date', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable manifest"
