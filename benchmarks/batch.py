"""Cohort runs on Dask: sessions per second with 1 and 2 workers against a plain loop.

Run: ``python benchmarks/batch.py [--sessions 200] [--peer-sessions N] [--folder DIR]``.
Prints the tables and writes them to ``benchmarks/RESULTS.md`` between the ``batch`` markers.

* ``--sessions`` small synthetic ``deep_squat`` sessions (one 1.5 s repetition at 15 Hz, 3D
  keypoints; made once into ``--folder`` or a temporary folder) go through
  :func:`medpose.protocol.batch.run_batch` on a local Dask cluster of worker processes
  (1 thread each) with 1 and then 2 workers, each into a new SQLite study: sessions per
  second, cluster start included, and the speed-up of 2 workers over 1.
* The peer: a plain loop in one process (``execute_session`` then ``SessionResult.add_to``,
  torch on one thread as in a worker) over the first ``--peer-sessions`` sessions.
* Each batch's study must hold the peer's metric values for the same sessions.
* One protocol on a five-trial session (a static trial and four exercise trials of default
  size: 30 Hz, 3 repetitions): ``execute_session("deep_squat", ...)`` in a fresh process,
  torch on the machine's cores, wall time including the import of medpose.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

PROTOCOL = "deep_squat"
SMALL = {
    "protocol": PROTOCOL,
    "repetitions": 1,
    "static_s": 0.5,
    "rate": 15.0,
    "exercise_options": {"tempo_s": 1.5},
}
FIVE = ("squat", "shoulder_abduction", "shoulder_flexion", "elbow_flexion")


def _make(args: tuple[str, int]) -> None:
    import medpose as mp

    path, seed = args
    if not (Path(path) / "session.yaml").exists():
        mp.synthetic.make_session(path, seed=seed, **SMALL)


def make_sessions(folder: Path, n: int) -> list[Path]:
    paths = [folder / f"s{i:04d}" for i in range(n)]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(_make, [(str(p), 1000 + i) for i, p in enumerate(paths)]))
    return paths


def peer(paths: list[Path], url: str) -> float:
    """A plain sequential loop; sessions per second."""
    import torch

    import medpose as mp
    from medpose.protocol import execute_session

    torch.set_num_threads(1)
    protocol = mp.Protocol.load(PROTOCOL)
    t0 = time.perf_counter()
    with mp.Study(url) as study:
        for p in paths:
            execute_session(protocol, p).add_to(study)
    return len(paths) / (time.perf_counter() - t0)


def metric_values(url: str):
    import medpose as mp

    with mp.Study(url) as study:
        m = study.metrics()
    keys = ["session", "trial", "side", "repetition", "metric"]
    return m.set_index(keys)["value"].sort_index()


FIVE_SCRIPT = """
import time, sys
t0 = time.perf_counter()
import torch
if sys.argv[2] != "default":
    torch.set_num_threads(int(sys.argv[2]))
from medpose.protocol import execute_session
t1 = time.perf_counter()
r = execute_session("deep_squat", sys.argv[1], trials={"deep_squat": "squat"})
print(t1 - t0, time.perf_counter() - t1, torch.get_num_threads(), len(r.assessment.metrics))
"""


def five_trial(folder: Path, threads: str) -> tuple[float, float, int, int, int]:
    """deep_squat on a five-trial session in a new process: import s, run s, torch threads,
    trials, metric rows."""
    import medpose as mp

    path = folder / "five_trials"
    if not (path / "session.yaml").exists():
        mp.synthetic.make_session(path, seed=5, exercises=FIVE, imaging=False, camera_views=False)
    n_trials = len(mp.Session.load(path).trials)
    out = subprocess.run(
        [sys.executable, "-c", FIVE_SCRIPT, str(path), threads],
        capture_output=True,
        text=True,
        check=True,
    )
    imp, run, n_threads, rows = out.stdout.split()
    return float(imp), float(run), int(n_threads), n_trials, int(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--peer-sessions", type=int, default=None, help="default: all")
    ap.add_argument("--folder", type=Path, default=None, help="keep the sessions here")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    from medpose.protocol.batch import run_batch

    tmp = tempfile.TemporaryDirectory(prefix="medpose-batch-")
    folder = args.folder or Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = make_sessions(folder / "sessions", args.sessions)
    made = time.perf_counter() - t0
    print(f"{len(paths)} sessions ready in {made:.0f} s", flush=True)

    five = [five_trial(folder, t) for t in ("1", "default")]
    five_rows = [[f"{f[2]} torch thread(s)", round(f[0], 1), round(f[1], 2)] for f in five]
    n_trials, n_metrics = five[0][3], five[0][4]
    print(five, flush=True)

    n_peer = args.peer_sessions or len(paths)
    peer_url = str(folder / "peer.sqlite")
    Path(peer_url).unlink(missing_ok=True)
    peer_rate = peer(paths[:n_peer], peer_url)
    print(f"peer: {peer_rate:.3f} sessions/s over {n_peer}", flush=True)
    reference = metric_values(peer_url)

    rows = [
        ["plain loop (one process)", 1, n_peer, 0, round(n_peer / peer_rate, 1), peer_rate, 1.0]
    ]
    rates: dict[int, float] = {}
    for workers in (1, 2):
        url = str(folder / f"dask{workers}.sqlite")
        Path(url).unlink(missing_ok=True)
        report = run_batch(PROTOCOL, paths, url, workers=workers, progress=False)
        assert report.ok and len(report.done) == len(paths), report
        got = metric_values(url)
        same = got.loc[reference.index]
        assert ((same - reference).abs().fillna(0) == 0).all(), "batch and loop disagree"
        rates[workers] = len(paths) / report.seconds
        print(f"dask {workers} worker(s): {rates[workers]:.3f} sessions/s", flush=True)
        rows.append(
            [
                f"Dask LocalCluster, {workers} worker process(es)",
                workers,
                len(paths),
                0,
                round(report.seconds, 1),
                rates[workers],
                rates[workers] / peer_rate,
            ]
        )
    # a re-run skips everything: no cluster is started
    again = run_batch(PROTOCOL, paths, str(folder / "dask2.sqlite"), workers=2, progress=False)
    rows.append(
        [
            "re-run (all recorded: skipped)",
            2,
            len(paths),
            len(again.skipped),
            round(again.seconds, 1),
            len(paths) / again.seconds,
            "",
        ]
    )
    header = ["runner", "workers", "sessions", "skipped", "wall s", "sessions/s", "vs loop"]
    table = markdown_table(rows, header)
    print(table)
    speedup = rates[2] / rates[1]
    text = "\n".join(
        [
            "## Cohort runs on Dask (`benchmarks/batch.py`)",
            "",
            f"`python benchmarks/batch.py --sessions {args.sessions}"
            + (f" --peer-sessions {n_peer}" if n_peer != len(paths) else "")
            + f"`; {machine()}; load average {os.getloadavg()[0]:.1f} at the end. Small synthetic `{PROTOCOL}` sessions (one 1.5 s repetition "
            "at 15 Hz, 3D keypoints), each computed and recorded in a new SQLite study; Dask "
            "times include starting the cluster. Every batch's metric values equal the plain "
            "loop's for the same sessions.",
            "",
            table,
            "",
            f"Speed-up of 2 workers over 1: **{speedup:.2f}x**.",
            "",
            f"One protocol (`{PROTOCOL}`) on a five-trial session ({n_trials} trials: static, "
            f"{', '.join(FIVE)}; 30 Hz, 3 repetitions; {n_metrics} metric values) in a new "
            "process: seconds to import medpose, and to run the protocol "
            "(`execute_session`; target < 10 s on 2 cores):",
            "",
            markdown_table(five_rows, ["torch", "import s", "protocol s"]),
        ]
    )
    if not args.no_write:
        update_results("batch", text)
    tmp.cleanup()


if __name__ == "__main__":
    main()
