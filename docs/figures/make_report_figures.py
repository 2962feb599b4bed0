"""Regenerate the report figures of docs/reports.md.

A synthetic patient squats at a baseline (left knee impaired, amount 0.4) and a follow-up
(0.15) session; both are run through ``deep_squat`` into a study database, and the
follow-up's report is written.  Writes, next to this script:

* ``report_page1.png``: page one of the PDF (pdftoppm, 80 dpi);
* ``report_html.png``: the HTML report in headless Chromium (first screen);
* ``report_tre_map.png``: :func:`medpose.report.figures.tre_map` of a synthetic registration.

Run: ``.venv/bin/python docs/figures/make_report_figures.py [KEEP_DIR]`` (needs chromium and
pdftoppm); with ``KEEP_DIR`` the report's HTML and PDF are copied there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import medpose as mp
import medpose.synthetic as syn
from medpose.data import Landmarks
from medpose.protocol import execute_session
from medpose.report import figures

HERE = Path(__file__).resolve().parent
SESSIONS = (("baseline", "2026-01-15", 0.4), ("follow-up", "2026-03-01", 0.15))


def _session(root: Path, name: str, date: str, amount: float) -> Path:
    path = root / name
    syn.make_session(path, seed=11, exercises=("squat",), imaging=False,
                     impairment={"side": "left", "amount": amount})  # fmt: skip
    yaml = path / "session.yaml"
    text = yaml.read_text(encoding="utf-8")
    start = text.index("\ndate: ") + 1
    end = text.index("\n", start)
    yaml.write_text(text[:start] + f"date: {date}" + text[end:], encoding="utf-8")
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        study = mp.Study(tmp / "study.sqlite")
        result = None
        for name, date, amount in SESSIONS:
            path = _session(tmp, name, date, amount)
            result = execute_session("deep_squat", path, trials={"deep_squat": "squat"})
            result.add_to(study)
        assert result is not None
        files = result.assessment.to_report(
            tmp / "report", study=study, patient=result.patient, angles=result.angles
        )
        study.close()
        print(files)
        if len(sys.argv) > 1:  # a folder to keep the report in, to look at every page
            shutil.copytree(files.html.parent, sys.argv[1], dirs_exist_ok=True)
        subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "1", "-singlefile",
                        str(files.pdf), str(HERE / "report_page1")], check=True)  # fmt: skip
        chromium = shutil.which("chromium")
        if chromium:
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
                 "--window-size=1000,1300", f"--screenshot={HERE / 'report_html.png'}",
                 files.html.as_uri()],
                check=True, capture_output=True,
            )  # fmt: skip
    rng = np.random.default_rng(2)
    pts = rng.uniform(-70, 70, (6, 3)) * [1.0, 1.0, 0.4]
    names = tuple(f"F{i + 1}" for i in range(6))
    fixed = pts + [4.0, -2.0, 9.0] + rng.normal(0, 0.6, pts.shape)
    reg = mp.register(Landmarks(names, fixed, frame="camera"), Landmarks(names, pts, frame="LPS"))
    _, _, axes = np.linalg.svd(pts - pts.mean(axis=0))  # the map's plane, as tre_map takes it
    entry = pts.mean(axis=0) - 20.0 * axes[0] - 60.0 * axes[1] + 30.0 * axes[2]
    targets = Landmarks(("entry", "target"), np.array([entry, [60, -50, -10]]), frame="LPS")
    fig = figures.tre_map(reg, targets, fle=0.8)
    fig.savefig(HERE / "report_tre_map.png", dpi=100)


if __name__ == "__main__":
    main()
