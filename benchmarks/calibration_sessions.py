"""Does calibrating on the movement help on markerless-like keypoints?  The catalogue protocols
on synthetic sessions whose detector bias is fixed in the segments.

For each protocol (default: the eight below) and seed, ``mp.synthetic.make_session(...,
protocol=NAME, markerless_options={"bias_frame": "segment"})`` writes a session whose exercise
trials carry :func:`medpose.synthetic.observation.markerless` keypoints: 8 mm jitter, a constant
per-keypoint offset of about 20 mm (30 mm at hips and knees) fixed in each keypoint's segment,
gaps, left/right swaps and outliers.  The protocol runs twice, its ``steps.fit.calibrate``
``none`` (lengths from the data) and ``movement`` (each trial calibrated on itself,
:func:`medpose.calibrate`).  Per trial and side of the protocol's main range of motion:

- ``e95``: the fit's error on that joint over the repetitions' frames, the 95th percentile of
  ``|fitted - true - median(fitted - true)|`` (degrees; a constant offset removed, as a range
  does not see one);
- ``miss``: the largest difference between the range the protocol reports per repetition and
  the true one (degrees; ``nan`` where the repetitions found differ in number).

Run: ``.venv/bin/python benchmarks/calibration_sessions.py [--seeds 0 5] [--protocols ...]
[--smoothness S] [--no-write]`` (``--smoothness``: the fit's temporal term instead of the
protocol's own, 2 unless it says otherwise); writes section ``calibration-sessions`` of
benchmarks/RESULTS.md.  About 5 minutes per seed on
two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import medpose as mp
from medpose.protocol import execute_session
from medpose.scoring.derived_angles import with_derived
from medpose.synthetic.session import read_truth_angles

PROTOCOLS = (
    "deep_squat",
    "shoulder_abduction",
    "shoulder_flexion",
    "elbow_flexion",
    "knee_extension",
    "sit_to_stand",
    "shoulder_scaption",
    "inline_lunge",
)
ROOT = Path(__file__).resolve().parents[1]
_SUFFIX = {"left": "_l", "right": "_r"}


def _with_calibrate(text: str, how: str, smoothness: float | None = None) -> str:
    """The protocol's YAML with ``steps.fit.calibrate: how`` (and ``smoothness`` where given)."""
    spec = yaml.safe_load(text)
    if "fit" not in spec["steps"]:
        raise SystemExit("protocol without a steps.fit block")
    fit = dict(spec["steps"]["fit"] or {}, calibrate=how)
    if smoothness is not None:
        fit["smoothness"] = smoothness
    spec["steps"]["fit"] = fit
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


def _fit_error(result, session: Path, trial: str, dof: str) -> float:
    truth, inside = read_truth_angles(session, trial)
    fitted, truth = with_derived(result.angles[trial]), with_derived(truth)
    diff = (fitted[dof].to_numpy() - truth[dof].to_numpy())[inside]
    return float(np.nanpercentile(np.abs(diff - np.nanmedian(diff)), 95))


def run_case(name: str, seed: int, work: Path, smoothness: float | None = None) -> list[list]:
    session = work / f"{name}_{seed}"
    mp.synthetic.make_session(
        session,
        protocol=name,
        seed=seed,
        n_cameras=2,
        markerless_options={"bias_frame": "segment"},
    )
    truth = json.loads((session / "truth" / "repetitions.json").read_text())
    text = (ROOT / "protocols" / f"{name}.yaml").read_text()
    found: dict[tuple, dict[str, tuple[float, float]]] = {}
    for how in ("none", "movement"):
        path = work / f"{name}_{seed}_{how}.yaml"
        path.write_text(_with_calibrate(text, how, smoothness))
        protocol = mp.Protocol.load(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = execute_session(protocol, session)
        m = result.assessment.metrics
        for trial in protocol.trials:
            spec = next(
                (x for x in protocol.metrics if x.name == "rom" and x.trial in (None, trial.name)),
                None,
            )
            if spec is None or trial.name not in truth:
                continue
            sides = ("left", "right") if trial.side in ("both", None) else (trial.side,)
            for side in sides:
                dof = f"{spec.joint}{_SUFFIX[side]}"
                want = np.asarray(truth[trial.name]["rom_deg"][dof], dtype=float)
                rows = m[
                    (m["trial"] == trial.name) & (m["metric"] == spec.key) & (m["side"] == side)
                ]
                got = rows[rows["repetition"].notna()].sort_values("repetition")["value"]
                got = got.to_numpy(float)
                miss = float(np.abs(got - want).max()) if got.size == want.size else float("nan")
                err = _fit_error(result, session, trial.name, dof)
                found.setdefault((trial.name, dof), {})[how] = (err, miss)
    return [
        [name, seed, trial, dof, *(round(x, 1) for x in (*v["none"], *v["movement"]))]
        for (trial, dof), v in found.items()
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    ap.add_argument(
        "--smoothness",
        type=float,
        default=None,
        help="the fit's smoothness instead of the protocol's (default: the protocol's own)",
    )
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)
    from _common import machine, markdown_table, update_results

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in args.protocols:
                for row in run_case(name, seed, Path(tmp), args.smoothness):
                    rows.append(row)
                    print(
                        " ".join(str(round(v, 1)) if isinstance(v, float) else str(v) for v in row)
                    )
    header = [
        "protocol",
        "seed",
        "trial",
        "joint",
        "e95 lengths (deg)",
        "miss lengths (deg)",
        "e95 calibrated (deg)",
        "miss calibrated (deg)",
    ]
    table = markdown_table(rows, header)
    e = np.array([[r[4], r[6]] for r in rows])
    miss = np.array([[r[5], r[7]] for r in rows])
    summary = (
        f"Calibrated e95 lower in {int((e[:, 1] < e[:, 0]).sum())} of {len(rows)} trial sides; "
        f"median e95 {np.median(e[:, 0]):.1f} (lengths only) against {np.median(e[:, 1]):.1f} "
        f"(calibrated); worst {e[:, 0].max():.1f} against {e[:, 1].max():.1f} degrees.  "
        f"Range miss lower calibrated in {int((miss[:, 1] < miss[:, 0]).sum())} of {len(rows)}; "
        f"median {np.nanmedian(miss[:, 0]):.1f} against {np.nanmedian(miss[:, 1]):.1f}, worst "
        f"{np.nanmax(miss[:, 0]):.1f} against {np.nanmax(miss[:, 1]):.1f} degrees."
    )
    print(table)
    print(summary)
    if args.no_write:
        return
    options = f"--seeds {' '.join(map(str, args.seeds))}"
    if args.protocols != list(PROTOCOLS):
        options += f" --protocols {' '.join(args.protocols)}"
    if args.smoothness is not None:
        options += f" --smoothness {args.smoothness:g}"
    text = (
        f"Machine: {machine()}.  Command: `.venv/bin/python benchmarks/calibration_sessions.py "
        f"{options}`.\n\n{table}\n\n{summary}\n"
    )
    update_results("calibration-sessions", text)


if __name__ == "__main__":
    main()
