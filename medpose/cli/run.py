"""``medpose run PROTOCOL SESSION --out DIR [--db URL]``: run a protocol on a whole session."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError, MedposeError
from .common import EXIT_OK, check_output, printed_warnings

__all__ = ["register", "ORDER", "DEFAULT_DB"]

ORDER = 30
#: The study database's file name when ``--db`` is not given: beside the output folder.
DEFAULT_DB = "study.sqlite"


def _trial_pair(text: str) -> tuple[str, str]:
    name, sep, trial = text.partition("=")
    if not sep or not name or not trial:
        raise argparse.ArgumentTypeError(
            f"found {text!r}; expected PROTOCOL_TRIAL=SESSION_TRIAL, e.g. deep_squat=squat"
        )
    return name, trial


def register(sub: Any) -> None:
    """Add the ``run`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "run",
        help="run a protocol on a session: results as Parquet and CSV, and in the study",
        description="Run every step of PROTOCOL (a catalogue name or a .yaml file) on every "
        "trial of SESSION it needs: triangulation or 3D keypoints, clean-up, the fit, "
        "repetitions, metrics, scores; registration for navigation_check. Writes the tables "
        "(metrics, scores, repetitions, quality, registration, provenance) as Parquet and CSV "
        "with manifest.json into DIR, replacing DIR as a whole, and records the run in the "
        f"study database (default: {DEFAULT_DB} beside DIR). Unchanged inputs and protocol: "
        "nothing is recomputed.",
    )
    p.add_argument("protocol", metavar="PROTOCOL", help="protocol name or .yaml file")
    p.add_argument("session", metavar="SESSION", type=Path, help="session folder")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="output folder")
    db = p.add_mutually_exclusive_group()
    db.add_argument(
        "--db",
        metavar="URL",
        help=f"study database: a SQLite file or any SQLAlchemy URL (default: DIR/../{DEFAULT_DB})",
    )
    db.add_argument("--no-db", action="store_true", help="do not record the run in a database")
    p.add_argument(
        "--trial",
        metavar="PROTOCOL_TRIAL=SESSION_TRIAL",
        type=_trial_pair,
        action="append",
        default=[],
        help="assess a session trial named otherwise as the protocol's trial (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="recompute even if the results are current")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the outcome as a JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose run``."""
    from ..protocol.execute import as_protocol, run_to_folder
    from ..protocol.problems import Redactor
    from ..protocol.session_run import load_session
    from ..store.study import Study

    check_output(args.out, "--out", folder=True)
    protocol = as_protocol(args.protocol)
    session = load_session(args.session)
    redact = Redactor(session.root, session.patient.id)
    out = Path(args.out)
    study = None
    try:
        if not args.no_db:
            url = args.db if args.db is not None else out.absolute().parent / DEFAULT_DB
            if args.db is None:
                out.absolute().parent.mkdir(parents=True, exist_ok=True)
            study = Study(url)
        with printed_warnings(redact=redact.text):
            outcome = run_to_folder(
                protocol,
                session,
                out,
                study=study,
                trials=dict(args.trial),
                progress=False if args.no_progress else None,
                force=args.force,
            )
    except MedposeError as e:
        raise type(e)(redact.text(str(e))) from None
    except (UnicodeEncodeError, UnicodeDecodeError) as e:  # a name inside the session
        bad = ascii(e.object[e.start : e.end]) if isinstance(e.object, str) else "a byte"
        raise InputError(
            f"a file or folder name holds {bad}, not valid UTF-8 text; expected UTF-8 file "
            "and folder names (rename it)"
        ) from None
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"{type(e).__name__}: {redact.text(str(e))}") from None
    finally:
        if study is not None:
            study.close()
    if args.json:
        doc = {
            "action": outcome.action,
            "study": outcome.study_action,
            "out": str(outcome.out_dir),
            "score": outcome.manifest.get("score"),
            "gate": outcome.manifest.get("gate"),
            "files": sorted(outcome.manifest.get("files", {})),
        }
        print(json.dumps(doc, indent=1))
    else:
        print(redact.patient(str(outcome)))  # the session folder may be named after the patient
        print(f"results in {outcome.out_dir}", file=sys.stdout)
    return EXIT_OK
