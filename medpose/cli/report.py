"""``medpose report SESSION_OR_RUN --out DIR``: the clinical report (HTML and PDF) of a run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .common import EXIT_OK, check_output

__all__ = ["register", "ORDER", "DEFAULT_DB"]

ORDER = 40
#: The study database looked for beside a run folder when ``--db`` is not given.
DEFAULT_DB = "study.sqlite"


def _trial_pair(text: str) -> tuple[str, str]:
    name, sep, trial = text.partition("=")
    if not sep or not name or not trial:
        raise argparse.ArgumentTypeError(
            f"found {text!r}; expected PROTOCOL_TRIAL=SESSION_TRIAL, e.g. deep_squat=squat"
        )
    return name, trial


def register(sub: Any) -> None:
    """Add the ``report`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "report",
        help="write the clinical report (HTML and PDF) of a run or a session",
        description="Write a self-contained HTML report and a PDF of RUN (a folder written by "
        "`medpose run`) or of SESSION (a session folder, assessed with --protocol). With a "
        f"study database (--db, default: {DEFAULT_DB} beside the run folder when present) "
        "holding earlier sessions of the same patient and protocol, the report shows the "
        "progress over sessions against the minimal detectable change. The patient appears "
        "by pseudonym only, unless --show-identifiers.",
    )
    p.add_argument(
        "source", metavar="SESSION_OR_RUN", type=Path, help="run folder or session folder"
    )
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="folder of the report")
    p.add_argument("--db", metavar="URL", help="study database: SQLite file or SQLAlchemy URL")
    p.add_argument(
        "--protocol", metavar="PROTOCOL", help="protocol to run on a SESSION (name or .yaml)"
    )
    p.add_argument(
        "--trial",
        metavar="PROTOCOL_TRIAL=SESSION_TRIAL",
        type=_trial_pair,
        action="append",
        default=[],
        help="with a SESSION: assess a session trial named otherwise as the protocol's trial",
    )
    p.add_argument("--no-pdf", action="store_true", help="write the HTML report only")
    p.add_argument(
        "--show-identifiers",
        action="store_true",
        help="also show age, sex, height, mass, the session folder and input file names "
        "(hidden by default: the report shows the pseudonymous id only)",
    )
    p.set_defaults(func=run)


def _from_session(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Assess the session folder ``args.source`` with ``args.protocol`` (nothing written)."""
    from ..protocol.execute import execute_session
    from ..protocol.session_run import load_session

    if not args.protocol:
        raise InputError(
            f"{args.source.name}: a session folder; give --protocol NAME to assess it "
            "(or give a run folder written by `medpose run`)"
        )
    session = load_session(args.source)
    result = execute_session(args.protocol, session, trials=dict(args.trial) or None)
    p = session.patient
    ids = {
        "age_years": p.age_years,
        "sex": p.sex,
        "height_mm": p.height_mm,
        "mass_kg": p.mass_kg,
        "session_folder": str(session.root),
    }
    meta = {"patient": result.patient, "date": result.date, "ids": ids}
    return result.assessment, {**meta, "angles": getattr(result, "angles", None) or None}


def _from_cwd(path: Path) -> str:
    """``path`` as it is reached from the current folder."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path.absolute())


def _list_known(args: argparse.Namespace, study: Any) -> str:
    """Run folders near the one asked for, and the runs the study records."""
    from ..report.rundir import find_runs, manifest_summary

    parent = args.source.parent
    # paths that work from the current folder (a run may lie a level or two further down)
    runs = [f"{_from_cwd(p)} ({manifest_summary(p)})" for p in find_runs(parent)]
    text = f"run folders in {_from_cwd(parent)}: {', '.join(runs) or 'none'}"
    if study is not None:
        df = study.runs()
        rec = [
            f"{r.session} ({r.protocol}, {str(r.date)[:10]})" for r in df.itertuples(index=False)
        ]
        text += f"; runs in the study database: {', '.join(rec) or 'none'}"
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``medpose report``."""
    from ..report.render import write_report
    from ..report.rundir import load_run
    from ..store.study import Study

    check_output(args.out, "--out", folder=True)
    src: Path = args.source
    url = args.db
    if url is None and (src.parent / DEFAULT_DB).is_file():
        url = src.parent / DEFAULT_DB
    study = Study(url) if url is not None else None
    try:
        if (src / "session.yaml").is_file():
            a, meta = _from_session(args)
            angles = meta["angles"]
        elif (src / "manifest.json").is_file():
            loaded = load_run(src)
            a, angles = loaded.assessment, loaded.angles
            meta = {"patient": loaded.patient, "date": loaded.date, "ids": {}}
            meta["ids"]["session_folder"] = loaded.session
        else:
            raise InputError(
                f"{src.name}: no such run (no manifest.json) or session (no session.yaml); "
                + _list_known(args, study)
            )
        files = write_report(
            a,
            args.out,
            pdf=not args.no_pdf,
            study=study,
            angles=angles,
            patient=meta["patient"],
            date=meta["date"],
            identifiers=meta["ids"],
            show_identifiers=args.show_identifiers,
        )
    finally:
        if study is not None:
            study.close()
    print(f"report: {files.html}")
    if files.pdf is not None:
        print(f"PDF ({files.pdf_engine}): {files.pdf}")
    for w in files.warnings:
        print(f"warning: {w}")
    return EXIT_OK
