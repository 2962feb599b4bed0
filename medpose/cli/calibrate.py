"""``medpose calibrate KEYPOINTS OUT``: one subject's skeleton from a static trial or a movement."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EXIT_OK, check_output, printed_warnings, read_3d_keypoints

__all__ = ["register", "ORDER"]

ORDER = 50


def register(sub: Any) -> None:
    """Add the ``calibrate`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "calibrate",
        help="calibrate a subject's skeleton on 3D keypoints; write the patient skeleton file",
        description="Estimate one subject's skeleton (segment lengths, each keypoint's place in "
        "its segment, joint centres; hinge axes with --axes) from 3D keypoints (.trc, .c3d, "
        ".csv, .parquet), a static trial (--static) or a movement, and write it as a patient "
        "skeleton file (.yaml or .json) that 'medpose fit --patient' reuses for every trial "
        "of the session. Prints what the data determined. Exit 1 on bad input.",
    )
    p.add_argument("keypoints", metavar="KEYPOINTS", type=Path, help="3D keypoint file")
    p.add_argument("output", metavar="OUT", type=Path, help="patient skeleton file (.yaml, .json)")
    p.add_argument(
        "--static",
        action="store_true",
        help="KEYPOINTS is a static trial (checked: one that moves is calibrated as a movement)",
    )
    p.add_argument(
        "--keypoint-model",
        metavar="NAME",
        help="keypoint priors: a packaged model (e.g. pose2sim_halpe26 for markers from "
        "Pose2Sim's OpenSim model) or a model file (default: the layout's detector model)",
    )
    p.add_argument(
        "--axes",
        metavar="SEGMENT",
        nargs="+",
        default=(),
        help="segments whose hinge axes are estimated too (e.g. forearm shank)",
    )
    p.add_argument("--rate", type=float, help="frame rate (Hz) of a CSV or Parquet input")
    p.add_argument("--up", metavar="AXIS", help="the data's up axis (+y, +z...), if not estimated")
    p.add_argument(
        "--patient-id",
        help="stored in OUT (never printed), so that it is refused for another patient",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose calibrate``."""
    from ..errors import InputError
    from ..kinematics.calibrate import calibrate

    if args.output.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InputError(f"OUT: expected a .yaml, .yml or .json file, found {args.output.name!r}")
    check_output(args.output, "OUT")
    seq = read_3d_keypoints(args.keypoints, args.rate)
    with printed_warnings():
        patient = calibrate(
            seq,
            static=args.static,
            keypoint_model=args.keypoint_model,
            axes=tuple(args.axes),
            patient_id=args.patient_id,
            up=args.up,
        )
    patient.save(args.output)
    print(patient)
    print(patient.calibration_table().round(1).to_string(index=False))
    print(f"wrote {args.output}")
    return EXIT_OK
