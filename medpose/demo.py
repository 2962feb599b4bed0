"""The demo: a synthetic patient seen twice, through the whole pipeline to two clinical reports.

``medpose demo`` (and ``make demo``) call :func:`run_demo`.  The patient (pseudonymous, with a
known truth) has a weak left side that improves between a baseline and a follow-up session:
impairment 0.4 at the baseline (the left side reaches 60 % of the range, moving 1.4 times as
slowly; in the deep squat, both feet planted, the two legs meet half-way), 0.15 at the
follow-up.  Each session holds a CT-like phantom with its landmarks, a
four-camera calibration, a static trial and two exercise trials (deep squat, shoulder abduction
of both arms) as 2D keypoints per camera.  On each session:

1. ``navigation_check``: the CT's landmarks registered to the static trial, FRE, predicted TRE
   at the hip centres, the quality gate;
2. ``deep_squat`` and ``shoulder_abduction``: the cameras' 2D keypoints triangulated, cleaned,
   the skeleton fitted (joint angles), repetitions, metrics with confidence intervals, scores
   against published norms (the catalogue's protocols with their input step set to triangulate:
   ``OUT/protocols/``);
3. every run recorded in the study database ``OUT/study.sqlite`` (made anew by each run);
4. a report (HTML and PDF) per session and protocol in ``OUT/reports/<session>/<protocol>/``;
   the follow-up's reports show the progress since the baseline against the minimal
   detectable change (MDC95).

The two sessions are computed in parallel (one worker process each where there are two CPU
cores).  The fitted joint angles are compared with the generator's true angles.  The printed
summary is also written to ``OUT/summary.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .demo_visit import PROTOCOLS, Visit, VisitResult, demo_protocol, run_visit
from .io._util import atomic_write
from .protocol.session_result import SessionResult
from .report.progress import progress_part
from .store.study import Study

__all__ = ["run_demo", "VISITS"]

Say = Callable[[str], Any]

#: The demo patient's sessions: folder name, date, impairment of the left side.
VISITS = (Visit("baseline", "2026-01-15", 0.4), Visit("follow-up", "2026-03-01", 0.15))


class _Inline(Executor):
    """Runs each submitted call at once, in this process (one CPU core, or ``jobs=1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller by f.result()
            f.set_exception(exc)
        return f


def _report(result: SessionResult, folder: Path, study_url: str, pdf: bool) -> dict[str, Any]:
    """Write one run's report (a worker's job: the study is opened by its path)."""
    study = Study(study_url)
    try:
        files = result.assessment.to_report(
            folder, pdf=pdf, study=study, patient=result.patient, angles=result.angles or None
        )
    finally:
        study.close()
    return {
        "html": str(files.html),
        "pdf": str(files.pdf) if files.pdf is not None else None,
        "warnings": list(files.warnings),
    }


class _Bar:
    """A tqdm bar over the demo's steps (shown when standard error is a terminal, or asked)."""

    def __init__(self, total: int, show: bool | None) -> None:
        from tqdm.auto import tqdm

        disable = None if show is None else not show
        self.bar = tqdm(total=total, desc="medpose demo", unit="step", disable=disable)

    def step(self, text: str, n: int = 1) -> None:
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _score(result: SessionResult) -> float:
    return float(result.assessment.score)


def _fmt(v: float) -> str:
    return f"{v:.0f}/100" if math.isfinite(v) else "n/a"


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    names = [v.name for v in VISITS]
    lines = [
        f"patient {summary['patient']} (synthetic): left side impairment "
        + " -> ".join(f"{v.impairment:g}" for v in VISITS)
        + f", sessions {' and '.join(f'{v.name} {v.date}' for v in VISITS)}"
    ]
    for name in names:
        reg = summary["registration"][name]
        lines.append(
            f"  registration CT -> cameras, {name}: FRE {reg['fre_mm']:.2f} mm over "
            f"{reg['fiducials']} fiducials, predicted TRE at the hips <= {reg['tre_max_mm']:.2f} mm, "
            f"gate {'PASS' if reg['gate_passed'] else 'FAIL'}"
        )
    for protocol, by in summary["scores"].items():
        lines.append(f"  {protocol} score: " + " -> ".join(_fmt(by[n]) for n in names))
    changes = summary["changes_exceeding_mdc95"]
    lines.append(
        f"  changes larger than MDC95 (real changes), baseline -> follow-up: {len(changes)}"
    )
    lines += [
        f"    {c['protocol']}: {c['measure']}: {c['values']} ({c['change']})" for c in changes
    ]
    err = summary["angle_rms_error_deg"][names[-1]]
    lines.append(
        "  fitted joint angles against the truth (follow-up, RMS): "
        + ", ".join(f"{k} {v:.1f} deg" for rows in err.values() for k, v in rows.items())
    )
    made = [r for by in summary["reports"].values() for r in by.values()]
    pdf = ", .pdf" if any(r.get("pdf") for r in made) else ""  # --no-pdf: none made
    lines.append(f"  reports: {summary['reports_folder']}/<session>/<protocol>/report.html{pdf}")
    for protocol in summary["reports"][names[-1]]:
        lines.append(f"    {summary['reports'][names[-1]][protocol]['html']}")
    lines.append(f"  study database: {summary['study']}; sessions: {summary['sessions_folder']}")
    return lines


def _changes(results: dict[str, SessionResult], study: Study) -> list[dict[str, str]]:
    """The follow-up's measures whose change since the baseline exceeds MDC95."""
    out = []
    for protocol, result in results.items():
        part = progress_part(result.assessment, study, result.patient)
        for label, values, change, _mdc, verdict in part.rows if part is not None else []:
            if verdict.startswith("larger"):
                out.append(
                    {"protocol": protocol, "measure": label, "values": values, "change": change}
                )
    return out


def run_demo(
    out: str | os.PathLike,
    seed: int = 0,
    say: Say = print,
    *,
    jobs: int | None = None,
    progress: bool | None = None,
    pdf: bool = True,
) -> dict[str, Any]:
    """Run the demo into ``out``; return the summary (also written to ``out/summary.json``).

    Parameters
    ----------
    out : path-like
        The output folder: ``sessions/``, ``protocols/``, ``reports/``, ``study.sqlite``,
        ``summary.json``.
    seed : int
        The baseline session's seed (the follow-up's is ``seed + 1``); the same seed gives the
        same sessions.
    say : callable
        Where the summary's lines go.
    jobs : int, optional
        Worker processes (default: 2 where there are at least two CPU cores, else none).
    progress : bool, optional
        Progress bar (default: when standard error is a terminal).
    pdf : bool
        Also write the PDF reports.

    Returns
    -------
    dict
        ``valid`` (False with ``problems`` when a session does not validate), ``patient``,
        ``scores`` (protocol -> session -> composite), ``registration``,
        ``changes_exceeding_mdc95``, ``angle_rms_error_deg``, ``reports``, ``study``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pseudonym = f"DEMO-{seed:04d}"
    protocols = {name: demo_protocol(name, out / "protocols") for name in PROTOCOLS}
    if jobs is None:
        jobs = 2 if (os.cpu_count() or 1) >= 2 else 1
    pool: Executor = ProcessPoolExecutor(jobs) if jobs > 1 else _Inline()
    threads = 1 if jobs > 1 else None
    bar = _Bar(len(VISITS) * (1 + len(PROTOCOLS)), progress)
    study_path = out / "study.sqlite"
    try:
        bar.step("building and assessing the sessions", 0)
        futures = [
            pool.submit(run_visit, out / "sessions", v, seed + k, pseudonym, protocols, threads)
            for k, v in enumerate(VISITS)
        ]
        visits: list[VisitResult] = []
        for f in futures:
            visits.append(f.result())
            bar.step(f"session {visits[-1].visit.name} assessed")
        problems = [f"{v.visit.name}: {p}" for v in visits for p in v.problems]
        if problems:
            return {"valid": False, "problems": problems}
        for stale in (
            study_path,
            *(study_path.with_name(study_path.name + x) for x in ("-wal", "-shm")),
        ):
            stale.unlink(missing_ok=True)  # made anew: a baseline report shows no later session
        study = Study(study_path)
        reports: dict[str, dict[str, Any]] = {}
        try:
            for v in visits:  # in date order: a report shows the sessions up to its own
                for result in v.results.values():
                    result.add_to(study)
                jobs_ = {
                    name: pool.submit(
                        _report, result, out / "reports" / v.visit.name / name, str(study_path), pdf
                    )
                    for name, result in v.results.items()
                }
                reports[v.visit.name] = {}
                for name, job in jobs_.items():
                    reports[v.visit.name][name] = job.result()
                    bar.step(f"report {v.visit.name}/{name}")
            changes = _changes(visits[-1].results, study)
        finally:
            study.close()
    finally:
        bar.close()
        pool.shutdown()
    summary: dict[str, Any] = {
        "valid": True,
        "seed": seed,
        "patient": pseudonym,
        "sessions_folder": str(out / "sessions"),
        "sessions": {v.visit.name: str(v.session) for v in visits},
        "study": str(study_path),
        "reports_folder": str(out / "reports"),
        "reports": reports,
        "protocols": {n: p.source for n, p in protocols.items()},
        "scores": {
            name: {v.visit.name: _score(v.results[name]) for v in visits}
            for name in PROTOCOLS
            if name != "navigation_check"
        },
        "registration": {v.visit.name: v.checks["registration"] for v in visits},
        "angle_rms_error_deg": {v.visit.name: v.checks["angle_rms_error_deg"] for v in visits},
        "changes_exceeding_mdc95": changes,
    }
    with atomic_write(out / "summary.json") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True, allow_nan=True)
    for line in _summary_lines(summary):
        say(line)
    say(f"summary written to {out / 'summary.json'}")
    sys.stdout.flush()
    return summary
