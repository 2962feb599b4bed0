"""Regenerate the demo's figure of the README: page one of the follow-up's deep-squat report.

Run after ``make demo`` (needs pdftoppm):
``.venv/bin/python docs/figures/make_demo_figures.py [DEMO_OUTPUT]`` (default ``demo_output``).
Writes ``demo_report_page1.png`` next to this script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output")
    pdf = out / "reports" / "follow-up" / "deep_squat" / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(HERE / "demo_report_page1")], check=True)  # fmt: skip


if __name__ == "__main__":
    main()
