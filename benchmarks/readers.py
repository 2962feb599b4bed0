"""Reading large OpenSim files: peak memory and time of medpose's .trc and .mot readers.

Run: ``python benchmarks/readers.py [--frames 1000000] [--compare-with DIR] [--no-opensim]
[--no-write]``.  Prints a table and writes it to ``benchmarks/RESULTS.md`` between the
``readers`` markers.

Files (written once into a temporary folder, removed afterwards):

* a ``.trc`` of ``--frames`` frames of the 26 HALPE_26 markers (Pose2Sim's layout), written by
  ``medpose.io.trc.write_trc`` in mm with 6 decimals; random positions, 2 % of the markers
  missing (written ``nan``, as ``write_trc`` writes a missing coordinate);
* a ``.mot`` of as many rows and 63 columns (time and 62 coordinates, as OpenSim's full-body
  models have), values printed with 8 decimals as OpenSim prints them, 1 % ``NaN``.

Each reader runs in a fresh Python process, which reports its peak resident memory
(``VmHWM``), its resident memory after the imports (before the read) and the read's
wall-clock time.  Rows: medpose ``read_trc`` / ``read_mot`` from this checkout; the same from
another checkout with ``--compare-with DIR`` (a ``git worktree`` of an older commit, say);
OpenSim's own readers (``opensim.TimeSeriesTableVec3`` for the .trc, ``opensim.TimeSeriesTable``
for the .mot: the tables OpenSim's inverse kinematics reads), when ``opensim`` imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

from medpose.data import KeypointSequence
from medpose.io.trc import write_trc
from medpose.layouts import get_layout

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]

#: Run in a fresh process: ``reader path``; prints one JSON line.
CHILD = r"""
import json, resource, sys, time
reader, path = sys.argv[1], sys.argv[2]
if reader == "medpose":
    import medpose
    from medpose.io.mot import read_mot
    from medpose.io.trc import read_trc
    read = read_trc if path.endswith(".trc") else read_mot
    where = medpose.__file__
else:
    import opensim
    read = opensim.TimeSeriesTableVec3 if path.endswith(".trc") else opensim.TimeSeriesTable
    where = opensim.__version__
with open("/proc/self/statm") as fh:
    base = int(fh.read().split()[1]) * resource.getpagesize()
t0 = time.perf_counter()
out = read(path)
seconds = time.perf_counter() - t0
if reader == "medpose":
    shape = list(out.positions.shape if path.endswith(".trc") else out.values.shape)
else:
    shape = [out.getNumRows(), out.getNumColumns()]
with open("/proc/self/status") as fh:  # VmHWM: this process's own peak (ru_maxrss keeps
    # the parent's across fork and exec)
    peak = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmHWM:"))
print(json.dumps(dict(peak=peak, base=base, seconds=seconds, shape=shape, where=where)))
"""


def write_files(folder: Path, frames: int) -> tuple[Path, Path]:
    names = get_layout("HALPE_26").native
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 500, (frames, len(names), 3))
    missing = rng.random((frames, len(names))) < 0.02
    pos[missing] = np.nan
    trc = write_trc(KeypointSequence(pos, names, 60.0, copy=False), folder / "halpe26.trc")
    del pos
    ncol = 63
    mot = folder / "ik.mot"
    head = ["ik", "version=1", f"nRows={frames}", f"nColumns={ncol}", "inDegrees=yes", "endheader"]
    head.append("\t".join(["time"] + [f"coordinate_{j}" for j in range(1, ncol)]))
    with open(mot, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(head) + "\n")
        for r0 in range(0, frames, 100_000):
            n = min(100_000, frames - r0)
            v = rng.normal(0, 40, (n, ncol - 1))
            v[rng.random(v.shape) < 0.01] = np.nan
            df = pd.DataFrame(v)
            df.insert(0, "time", (r0 + np.arange(n)) / 100.0)
            df.to_csv(fh, sep="\t", header=False, index=False, float_format="%.8f", na_rep="NaN")
    return trc, mot


def run_child(reader: str, path: Path, pythonpath: Path | None) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, reader, str(path)],
        env=env,
        capture_output=True,
        text=True,
        cwd=pythonpath or ROOT,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{reader} on {path.name} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _commit(folder: Path) -> str:
    res = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (res.stdout.strip() or folder.name) + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--compare-with", type=Path, help="another medpose checkout to run too")
    ap.add_argument("--no-opensim", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)

    readers: list[tuple[str, str, Path | None]] = [("medpose", f"medpose {_commit(ROOT)}", ROOT)]
    if args.compare_with is not None:
        other = args.compare_with.resolve()
        readers.append(("medpose", f"medpose {_commit(other)}", other))
    if not args.no_opensim:
        try:
            import opensim

            readers.append(("opensim", f"OpenSim {opensim.__version__}", None))
        except ImportError:
            print("opensim does not import: its rows are left out", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory(prefix="medpose-readers-") as tmp:
        files = write_files(Path(tmp), args.frames)
        for path in files:
            size = path.stat().st_size
            for reader, label, pythonpath in readers:
                r = run_child(reader, path, pythonpath)
                api = {
                    ("medpose", ".trc"): "read_trc",
                    ("medpose", ".mot"): "read_mot",
                    ("opensim", ".trc"): "TimeSeriesTableVec3",
                    ("opensim", ".mot"): "TimeSeriesTable",
                }[(reader, path.suffix)]
                rows.append(
                    [
                        path.suffix,
                        f"{size / 1e9:.3f}",
                        f"{label} {api}",
                        " x ".join(map(str, r["shape"])),
                        f"{r['peak'] / 1e9:.2f}",
                        f"{r['peak'] / size:.2f}",
                        f"{(r['peak'] - r['base']) / 1e9:.2f}",
                        f"{r['seconds']:.1f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "file",
        "size (GB)",
        "reader",
        "result",
        "peak RSS (GB)",
        "peak / file size",
        "peak above imports (GB)",
        "read time (s, rough)",
    ]
    table = markdown_table(rows, header)
    print(table)
    if not args.no_write:
        cmd = "python benchmarks/readers.py" + (
            f" --frames {args.frames}" if args.frames != 1_000_000 else ""
        )
        if args.compare_with is not None:
            cmd += " --compare-with <worktree of the older commit>"
        text = (
            "## Reading large OpenSim files (`benchmarks/readers.py`)\n\n"
            f"Command: `{cmd}`. Machine: {machine()}; a shared machine (2 cores, other jobs "
            "running): the read times are rough, the memory peaks are not.\n\n"
            f"{args.frames:,} frames; each reader in a fresh process; peak RSS is the process's "
            "maximum resident memory (imports included: medpose with pandas and pyarrow takes "
            "about 0.34 GB before reading); 'peak above imports' subtracts the resident memory "
            "measured just before the read. The .trc holds the 26 HALPE_26 markers in mm "
            "(write_trc, 6 decimals, 2 % of the markers missing, written nan); the .mot 63 columns with 8 "
            "decimals (1 % NaN). medpose returns float64 arrays: the .trc's positions are "
            f"{args.frames * 26 * 3 * 8 / 1e9:.2f} GB (and the confidence "
            f"{args.frames * 26 * 8 / 1e9:.2f} GB), the .mot's angles "
            f"{args.frames * 62 * 8 / 1e9:.2f} GB; OpenSim holds its table in C++."
            + (
                f" The row 'medpose {readers[1][1].split()[-1]}' is the checkout given by "
                "--compare-with."
                if args.compare_with is not None
                else ""
            )
            + "\n\n"
            + table
        )
        update_results("readers", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
