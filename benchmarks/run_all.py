"""Run every benchmark in turn; each prints its tables and updates its section of RESULTS.md.

    python benchmarks/run_all.py            # full sizes
    python benchmarks/run_all.py --quick    # small sizes (registration/temporal), a smoke run

Peers (scikit-surgerycore, OpenSim, Pose2Sim) come from the ``bench`` extra: ``pip install -e '.[bench]'``
(``make bench`` does this).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["registration.py", "temporal.py", "fit.py"]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    failed = []
    for script in SCRIPTS:
        args = [sys.executable, str(HERE / script)]
        if quick and script != "fit.py":
            args.append("--quick")
        print(f"\n=== {script} ===", flush=True)
        if subprocess.run(args).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
