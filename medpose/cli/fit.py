"""``medpose fit KEYPOINTS --out FILE``: joint angles from 3D keypoints, for OpenSim or a table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from .common import EXIT_OK, check_output, printed_warnings, read_3d_keypoints

__all__ = ["register", "ORDER"]

ORDER = 51

_OUT = (".mot", ".csv", ".parquet")


def register(sub: Any) -> None:
    """Add the ``fit`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "fit",
        help="fit the skeleton to 3D keypoints: joint angles as an OpenSim .mot, CSV or Parquet",
        description="Fit medpose's skeleton to every frame of a 3D keypoint file (.trc, .c3d, "
        ".csv, .parquet) under joint limits. Without --patient the subject is calibrated on the "
        "same keypoints first and the calibration is used where the data warrant it "
        "(--calibrate). Writes each --out by its extension: .mot (the coordinates of an OpenSim "
        "model, default Pose2Sim's, to open on that model), .csv or .parquet (angles in degrees "
        "and pelvis translation in mm, one row per frame). Exit 1 on bad input.",
    )
    p.add_argument("keypoints", metavar="KEYPOINTS", type=Path, help="3D keypoint file")
    p.add_argument(
        "--out",
        "-o",
        dest="outputs",
        metavar="FILE",
        type=Path,
        action="append",
        required=True,
        help="output file, .mot, .csv or .parquet (repeatable)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--patient",
        metavar="FILE",
        type=Path,
        help="a patient skeleton file from 'medpose calibrate' (used as it is)",
    )
    how.add_argument(
        "--calibrate",
        choices=("auto", "always", "never"),
        default="auto",
        help="calibrate on KEYPOINTS first and use it where warranted (auto, default), "
        "always, or fit the lengths only (never: the fastest)",
    )
    p.add_argument(
        "--patient-id",
        metavar="ID",
        help="with --patient: refuse a patient file calibrated for another patient (the id is "
        "never printed)",
    )
    p.add_argument(
        "--model",
        default="pose2sim",
        help="OpenSim model of a .mot's coordinates (default pose2sim; 'medpose': medpose's "
        "own DoF names)",
    )
    p.add_argument("--osim", type=Path, help="the .osim file a .mot is for (e.g. a scaled one)")
    p.add_argument(
        "--zero-from-model",
        action="store_true",
        help="a .mot's coordinates relative to the --osim model's zero pose as the fitted "
        "skeleton reads it, from the model's own markers (needs the opensim package; for "
        "keypoints that are the model's markers)",
    )
    p.add_argument(
        "--markers",
        type=Path,
        metavar="XML",
        help="with --zero-from-model: a marker set file for a model that holds none "
        "(Pose2Sim's Markers_Halpe26.xml for its unscaled model)",
    )
    p.add_argument(
        "--smoothness",
        type=float,
        default=0.0,
        help="temporal smoothness weight, mm per degree (0: off; 1-5 smooths jitter)",
    )
    p.add_argument("--rate", type=float, help="frame rate (Hz) of a CSV or Parquet input")
    p.add_argument("--up", metavar="AXIS", help="the data's up axis (+y, +z...), if not estimated")
    p.add_argument(
        "--y-up",
        action="store_true",
        help="a .mot's pelvis in the data's axes turned Y up, OpenSim's vertical (a Z-up lab's "
        "body upright on the model; its markers: medpose triangulate --y-up)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``medpose fit``."""
    from ..errors import InputError
    from ..kinematics.fit import fit
    from ..kinematics.patient import PatientSkeleton

    for out in args.outputs:
        if out.suffix.lower() not in _OUT:
            raise InputError(f"--out: expected a {', '.join(_OUT)} file, found {out.name!r}")
        check_output(out, "--out")
    model = None if args.model == "medpose" else args.model
    if model is not None:
        from ..io.opensim import opensim_mapping

        opensim_mapping(model)  # an unknown model is refused before the fit, not after
    if args.osim is not None and not args.osim.is_file():
        raise InputError(f"--osim: {args.osim.name}: file not found")
    if args.zero_from_model and (args.osim is None or model is None):
        raise InputError(
            "--zero-from-model: reads the model's markers from --osim; expected --osim FILE "
            "and an OpenSim --model"
        )
    if args.markers is not None and not args.zero_from_model:
        raise InputError("--markers: applies with --zero-from-model; none given")
    if args.markers is not None and not args.markers.is_file():
        raise InputError(f"--markers: {args.markers.name}: file not found")
    if not args.smoothness >= 0:
        raise InputError(f"--smoothness: expected a number >= 0, found {args.smoothness!r}")
    if args.patient_id is not None and args.patient is None:
        raise InputError("--patient-id: applies to a --patient file; none given")
    seq = read_3d_keypoints(args.keypoints, args.rate)
    zeroing = args.zero_from_model and any(o.suffix.lower() == ".mot" for o in args.outputs)
    reference = _reference_markers(args, model or "pose2sim", seq) if zeroing else None
    patient = (
        PatientSkeleton.load(args.patient, patient_id=args.patient_id)
        if args.patient is not None
        else None
    )
    calibrate: bool | Literal["auto"] = (
        "auto" if args.calibrate == "auto" else args.calibrate == "always"
    )
    with printed_warnings():
        f = fit(
            seq,
            patient,
            calibrate=calibrate,
            smoothness=args.smoothness,
            up=args.up,
            progress=False if args.no_progress else None,
        )
    print(repr(f))
    zero = None
    if reference is not None:
        from ..kinematics.fit import opensim_zero

        zero = opensim_zero(f, reference, model or "pose2sim")
        big = sorted(zero.items(), key=lambda kv: -abs(kv[1]))
        shown = ", ".join(f"{k} {v:+.1f}" for k, v in big[:8] if abs(v) >= 0.5) or "none"
        print(f"the model's zero pose reads (degrees, subtracted; largest first): {shown}")
    for out in args.outputs:
        suffix = out.suffix.lower()
        if suffix == ".mot":
            with printed_warnings():
                f.to_mot(out, model=model, osim=args.osim, y_up=args.y_up, zero=zero)
        elif suffix == ".csv":
            f.to_csv(out)
        else:
            f.to_parquet(out)
        print(f"wrote {out}")
    return EXIT_OK


def _reference_markers(args: argparse.Namespace, model: str, seq: Any) -> Any:
    """``--zero-from-model``: the model's markers in its zero pose, read before the fit, and
    refused where they are not keypoints of the sequence (another layout's marker set)."""
    from ..errors import InputError
    from ..io.opensim import osim_reference_markers
    from ..layouts import to_medpose_names

    reference = osim_reference_markers(args.osim, model, args.markers)
    other = sorted(set(to_medpose_names(reference.names)) - set(seq.names))
    if other:
        raise InputError(
            f"--zero-from-model: the model's markers {other[:6]} are not keypoints of "
            f"{args.keypoints.name} (it has {len(seq.names)}: {list(seq.names)[:6]}...); "
            "expected the marker set of the keypoints' own layout (Pose2Sim's "
            "Markers_Halpe26.xml for HALPE_26 keypoints)"
        )
    return reference
