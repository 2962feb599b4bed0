"""UI-PRMD benchmark: do the protocols' composites tell correct from incorrect repetitions?

Run: ``python benchmarks/uiprmd.py [--data DIR] [--subjects s01,s02] [--no-write]``.  Prints the
tables and writes them to ``benchmarks/RESULTS.md`` between the ``uiprmd`` markers; exits with 1
when a composite misses its AUC target (0.90 deep squat, 0.96 shoulder abduction) on all files.

The data: UI-PRMD (Vakanski et al. 2018, *Data* 3(1):2), Kinect v2, ten healthy subjects, deep
squat (m01) and standing shoulder abduction (m07), ten correct and ten deliberately incorrect
repetitions each, one repetition per file (``../shared/data/ui-prmd/kinect``).  Every file is
read with ``mp.read_keypoints`` and assessed with ``mp.Protocol.load(NAME).run(seq)`` (the
protocol's clean step, its fit, the criteria on the cleaned keypoints: what a session run does);
nothing is trained or tuned on the data.  The separation is the ROC AUC (Mann-Whitney U / (n1 n2)) of
``Assessment.score`` between correct and incorrect files, and per metric of its summary value
(both sides: the lower percent for scored metrics, the mean of the sides otherwise), written
as P(correct > incorrect): below 0.5 when correct repetitions have lower values.

Baseline, computed in the same run: the range (98th - 2nd percentile) of each of the 66 raw
Kinect angle columns (the data set's angles files), its AUC taken in the better direction
(max(AUC, 1 - AUC), a direction chosen on the data itself, so optimistic), best column.
"""

from __future__ import annotations

import argparse
import gzip
import math
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, update_results

import medpose as mp

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ui-prmd" / "kinect"
MOVEMENTS = {"m01": "deep_squat", "m07": "shoulder_abduction"}
TARGET = {"deep_squat": 0.90, "shoulder_abduction": 0.96}
_NAME = re.compile(r"^(m\d\d)_(s\d\d)_e(\d\d)_positions(_inc)?\.txt(\.gz)?$")


def auc(correct: np.ndarray, incorrect: np.ndarray) -> float:
    """P(a correct value > an incorrect one), ties count half (Mann-Whitney U / (n1 n2))."""
    a = np.asarray(correct, float)
    b = np.asarray(incorrect, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(mannwhitneyu(a, b).statistic) / (a.size * b.size)


def files(data: Path, movement: str, subjects: set[str] | None) -> list[tuple[Path, str, bool]]:
    """(positions file, subject, correct) for one movement."""
    out = []
    for kind in ("correct", "incorrect"):
        for p in sorted((data / kind / "positions").glob(f"{movement}_*")):
            m = _NAME.match(p.name)
            if m and (subjects is None or m.group(2) in subjects):
                out.append((p, m.group(2), m.group(4) is None))
    return out


def raw_angle_rom(positions: Path) -> np.ndarray:
    """Range (98th - 2nd percentile) of each raw Kinect angle column of the matching angles file."""
    name = positions.name.replace("_positions", "_angles")
    path = positions.parent.parent / "angles" / name
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        a = np.loadtxt(fh, delimiter=",", ndmin=2)
    lo, hi = np.percentile(a, [2.0, 98.0], axis=0)
    return np.asarray(hi - lo)


def assess(protocol: mp.Protocol, path: Path) -> dict[str, float]:
    """Composite and per-metric summary values (and percents) of one repetition file.

    A protocol with one trial per arm is run with ``side="auto"`` (the files do not say which
    arm moved: the runner takes the side whose repetition signal has the larger range)."""
    seq = mp.read_keypoints(path)
    side = "auto" if len(protocol.trials) > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = protocol.run(seq, side=side)
    out: dict[str, float] = {"score": float(a.score)}
    summ = a.metrics[a.metrics["repetition"].isna()]
    for key, g in summ.groupby("metric", sort=False):
        out[f"value:{key}"] = (
            float(np.nanmean(g["value"])) if g["value"].notna().any() else math.nan
        )
    for key, g in a.scores.groupby("metric", sort=False):
        out[f"percent:{key}"] = float(g["percent"].min())
    return out


def run_movement(
    data: Path, movement: str, subjects: set[str] | None
) -> tuple[pd.DataFrame, np.ndarray]:
    protocol = mp.Protocol.load(MOVEMENTS[movement])
    rows, roms = [], []
    for path, subject, correct in files(data, movement, subjects):
        rows.append(
            {"file": path.name, "subject": subject, "correct": correct, **assess(protocol, path)}
        )
        roms.append(raw_angle_rom(path))
    return pd.DataFrame(rows), np.array(roms)


def summarise(name: str, df: pd.DataFrame, roms: np.ndarray) -> tuple[str, float]:
    ok = df["correct"].to_numpy(bool)
    comp = auc(df["score"][ok], df["score"][~ok])
    raw = [auc(roms[ok, j], roms[~ok, j]) for j in range(roms.shape[1])]
    best = int(np.nanargmax([max(v, 1 - v) for v in raw]))
    base = max(raw[best], 1 - raw[best])
    per_subject = df.groupby("subject").apply(
        lambda g: g.loc[g["correct"], "score"].mean() > g.loc[~g["correct"], "score"].mean(),
        include_groups=False,
    )
    rows = [
        ["composite (Assessment.score)", comp, "0-100"],
        [f"baseline: best raw Kinect angle ROM (column {best})", base, "deg, better direction"],
    ]
    for col in df.columns:
        if col.startswith("percent:"):
            rows.append([f"{col[8:]} (percent)", auc(df[col][ok], df[col][~ok]), "%"])
    for col in df.columns:
        if col.startswith("value:") and df[col].notna().any():
            rows.append([f"{col[6:]} (value)", auc(df[col][ok], df[col][~ok]), ""])
    med = df.groupby("correct")["score"].median()
    text = (
        f"### {name}: {int(ok.sum())} correct, {int((~ok).sum())} incorrect repetitions, "
        f"{df['subject'].nunique()} subjects\n\n"
        f"Composite AUC **{comp:.3f}** (target {TARGET[name]:.2f}: "
        f"{'met' if comp >= TARGET[name] else 'NOT met'}); median score "
        f"{med.get(True, math.nan):.1f} correct, {med.get(False, math.nan):.1f} incorrect; "
        f"mean score of correct above incorrect in {int(per_subject.sum())} of "
        f"{len(per_subject)} subjects.\n\n"
        + markdown_table(rows, ["measure", "AUC P(correct > incorrect)", "unit"])
    )
    return text, comp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--subjects", default=None, help="comma-separated subset, e.g. s01,s02")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    subjects = set(args.subjects.split(",")) if args.subjects else None
    parts: list[str] = []
    met: list[bool] = []
    t0 = time.perf_counter()
    for movement, name in MOVEMENTS.items():
        df, roms = run_movement(args.data.resolve(), movement, subjects)
        text, comp = summarise(name, df, roms)
        met.append(subjects is not None or comp >= TARGET[name])
        print(text, "\n", flush=True)
        parts.append(text)
    took = time.perf_counter() - t0
    header = (
        "## UI-PRMD: correct against incorrect repetitions (`benchmarks/uiprmd.py`)\n\n"
        "Kinect v2 recordings of UI-PRMD (Vakanski et al. 2018), one repetition per file, each "
        "read with `mp.read_keypoints` and assessed with `mp.Protocol.load(NAME).run(seq)`; no "
        "training or tuning on the data.  The composites score the clinical criteria of "
        "[docs/protocols.md](../docs/protocols.md) against their published pass limits.  AUC: "
        "P(correct > incorrect), 0.5 = chance; for metrics where lower is better it is below 0.5.  "
        "Baseline: the best single range of motion among the 66 raw Kinect angle columns, "
        "direction chosen on the data.  "
        f"{machine()}; {took:.0f} s for both movements.\n\n"
    )
    if not args.no_write:
        update_results("uiprmd", header + "\n\n".join(parts))
    return 0 if all(ok for ok in met) else 1


if __name__ == "__main__":
    raise SystemExit(main())
