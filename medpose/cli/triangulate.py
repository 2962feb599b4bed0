"""``medpose triangulate CALIBRATION VIEW... --out FILE``: 3D keypoints from calibrated cameras."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .common import EXIT_OK, check_output, printed_warnings

__all__ = ["register", "ORDER"]

ORDER = 49


def register(sub: Any) -> None:
    """Add the ``triangulate`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "triangulate",
        help="triangulate 2D keypoints of calibrated cameras into a 3D keypoint file",
        description="Triangulate the 2D keypoints of several calibrated cameras (OpenPose JSON "
        "folders, or CSV/Parquet 2D files) into 3D keypoints in the calibration's world (mm) "
        "and write them (.trc, .csv or .parquet) for 'medpose fit'. Each VIEW is CAMERA=PATH, "
        "or a PATH whose name is a camera's, with or without a trailing _json (cam01_json is "
        "camera cam01). Prints the reprojection errors. Exit 1 on bad input.",
    )
    p.add_argument("calibration", metavar="CALIBRATION", type=Path, help="camera calibration file")
    p.add_argument("views", metavar="VIEW", nargs="+", help="CAMERA=PATH or PATH, one per camera")
    p.add_argument(
        "--out", dest="output", metavar="FILE", type=Path, required=True, help="3D keypoint file"
    )
    p.add_argument("--rate", type=float, help="frame rate (Hz) of the views (OpenPose: 30)")
    p.add_argument(
        "--temporal",
        action="store_true",
        help="choose each point's cameras and left/right labels over the whole sequence "
        "(steadier limbs on a recording) instead of frame by frame",
    )
    p.add_argument(
        "--y-up",
        action="store_true",
        help="turn the output so that up is +Y, as OpenSim and Pose2Sim expect (the "
        "calibration world's up axis, from the body's trunk or --up, permuted onto +Y)",
    )
    p.add_argument("--up", metavar="AXIS", help="with --y-up: the world's up axis (+z...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _camera_of(view: str, names: list[str]) -> tuple[str, Path]:
    """The camera name and path of one VIEW argument."""
    from ..errors import InputError

    name, sep, path = view.partition("=")
    if sep:
        if name not in names:
            raise InputError(
                f"VIEW {view!r}: no camera {name!r} in the calibration; it has {names}"
            )
        return name, Path(path)
    p = Path(view)
    stem = p.name.removesuffix("_json") if p.is_dir() else p.stem
    if stem not in names:
        raise InputError(
            f"VIEW {p.name!r}: no camera of that name in the calibration (it has {names}); "
            "name the camera: CAMERA=PATH"
        )
    return stem, p


def run(args: argparse.Namespace) -> int:
    """Run ``medpose triangulate``."""
    from ..camera.triangulation import triangulate
    from ..errors import InputError
    from ..io.calibration import read_calibration
    from ..io.keypoints import WRITE_SUFFIXES, read_keypoints, write_keypoints

    if args.output.suffix.lower() not in WRITE_SUFFIXES:
        raise InputError(
            f"--out: expected a {', '.join(WRITE_SUFFIXES)} file, found {args.output.name!r}"
        )
    check_output(args.output, "--out")
    if args.up is not None and not args.y_up:
        raise InputError("--up: applies with --y-up; --y-up not given")
    cams = read_calibration(args.calibration)
    names = [c.name for c in cams]
    paths: dict[str, Path] = {}
    for view in args.views:
        name, path = _camera_of(view, names)
        if name in paths:
            raise InputError(f"VIEW {view!r}: camera {name!r} is given twice")
        paths[name] = path
    if len(paths) < 2:
        raise InputError(f"VIEW: {len(paths)} camera given; triangulation needs at least 2")
    kw = {} if args.rate is None else {"rate": args.rate}
    views = {name: read_keypoints(path, **kw) for name, path in paths.items()}
    with printed_warnings():
        result = triangulate(
            cams, views, temporal=args.temporal, progress=False if args.no_progress else None
        )
    seq = result.sequence
    print(repr(result))
    if args.y_up:
        from ..kinematics.fit import y_up_transform

        T = y_up_transform(seq, args.up)
        seq = seq.transformed(T)
        M = np.round(T.rotation.as_matrix())  # a signed permutation
        axes = ", ".join(("-" if r.sum() < 0 else "") + "xyz"[int(np.argmax(np.abs(r)))] for r in M)
        print(f"axes turned Y up: (X, Y, Z) = world ({axes})")
    if args.output.suffix.lower() == ".trc":
        seq = _without_unreliable(seq)
    write_keypoints(seq, args.output)
    print(f"wrote {args.output}")
    return EXIT_OK


def _without_unreliable(seq: Any) -> Any:
    """``seq`` with the points that ``medpose fit`` would leave out for their confidence made
    missing, for a format that holds no confidence (a .trc reads back as confidence 1);
    prints how many."""
    import inspect

    from ..kinematics.fit import fit

    floor = inspect.signature(fit).parameters["min_confidence"].default
    low = np.isfinite(seq.positions).all(axis=2) & (seq.confidence < floor)
    if low.any():
        print(
            f"note: {int(low.sum())} points ({low.mean():.1%}) with 3D confidence below "
            f"{floor:g} written as missing (a .trc holds no confidence; 'medpose fit' leaves "
            "them out); .csv or .parquet keep the confidences the fit weighs the points by"
        )
    pos = np.where(low[..., None], np.nan, seq.positions)
    return seq.with_positions(pos, np.where(low, 0.0, seq.confidence))
