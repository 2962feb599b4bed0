"""A complete synthetic session folder with its known truth.

:func:`make_session` writes a session in the layout that
:func:`medpose.protocol.session.validate_session` checks (``docs/sessions.md``):
a CT-like phantom and its landmarks (LPS), a calibration, a marker-based-like static
trial, exercise trials as 2D OpenPose JSON per camera plus a markerless-like 3D
``.trc``, ``session.yaml``; and, apart, ``truth/`` with the true angles, transforms,
landmarks, segment lengths, injected faults and parameters.  The same seed gives
byte-identical files.

Frames: ``"skeleton"`` is the skeleton's ISB frame (X anterior, Y up, Z right, floor at
Y = 0); ``"camera"`` is the calibration's world (X forward, Y left, Z up, floor at Z = 0);
``"LPS"`` is the phantom's imaging world.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from ..data import JointAngles, KeypointSequence, Landmarks
from ..errors import InputError
from ..geometry import CAMERA, Transform
from ..imaging.volume import write_volume
from ..io._util import atomic_write
from ..io.calibration import write_calibration
from ..io.landmarks import write_landmarks
from ..io.mot import write_mot
from ..io.openpose import write_openpose
from ..io.trc import write_trc
from ..kinematics.fk import forward_kinematics, segment_poses
from ..kinematics.skeleton import Skeleton
from ..layouts import get_layout
from ..protocol.session import write_session_yaml
from ..scoring.derived_angles import with_derived
from .exercises import ExerciseTruth, make_exercise
from .observation import marker_based, markerless
from .phantom import BODY, REGIONS, Phantom, expand_sides, make_phantom, static_pose
from .plan import fiducial_fault, protocol_of, trial_plan
from .rig import make_rig, project_to_cameras

__all__ = ["SessionTruth", "make_session", "read_truth_angles", "ARM_EXERCISES"]

ARM_EXERCISES = (
    "shoulder_abduction",
    "shoulder_flexion",
    "shoulder_extension",
    "shoulder_scaption",
    "shoulder_internal_rotation",
    "shoulder_external_rotation",
    "elbow_flexion",
)


@dataclass(frozen=True, kw_only=True)
class SessionTruth:
    """What :func:`make_session` wrote and the truth behind it.

    Attributes
    ----------
    path : Path
        The session folder.
    skeleton : Skeleton
        The patient's skeleton (its lengths are in ``truth/segment_lengths.json``).
    exercises : dict of str -> ExerciseTruth
        True angles per exercise trial (trial name -> truth).
    keypoints : dict of str -> KeypointSequence
        True 3D keypoints (all skeleton keypoints) per trial, incl. ``static``, frame ``"camera"``.
    cameras : list of Camera
    phantom : Phantom or None
    transforms : dict of str -> Transform
        ``skeleton_to_camera``, and with imaging ``image_to_camera``, ``image_to_skeleton``.
    landmarks_camera : Landmarks
        The imaging landmarks' true positions in the static trial, frame ``"camera"``.
    faults : dict
        Injected observation faults per trial (as in ``truth/faults.json``); with a
        ``fault=`` option, ``faults["fiducial"]``: the moved landmark, its displacement
        vector (LPS, mm) and distance.
    params : dict
        Every parameter (as in ``truth/params.json``).
    """

    path: Path
    skeleton: Any
    exercises: dict[str, ExerciseTruth]
    keypoints: dict[str, KeypointSequence]
    cameras: list
    phantom: Phantom | None
    transforms: dict[str, Transform]
    landmarks_camera: Landmarks
    faults: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def _dump_json(obj: Any, path: Path) -> None:
    with atomic_write(path, newline="\n") as fh:
        fh.write(json.dumps(obj, indent=1, allow_nan=True) + "\n")


def _r(x: Any, nd: int = 9) -> Any:
    """JSON-able rounded floats (nested lists) so that files do not show float noise."""
    return np.round(np.asarray(x, dtype=float), nd).tolist()


def _landmarks_json(lm: Landmarks) -> dict:
    return {
        "frame": lm.frame,
        "units": "mm",
        "points": [{"name": n, "position": _r(p)} for n, p in zip(lm.names, lm.positions)],
    }


def _region(plan: Sequence[Any], registration: Any) -> str:
    """The phantom region: the one holding the registration's landmarks, else by exercise."""
    if registration is not None:
        wanted = set(registration.pairs)
        return max(REGIONS, key=lambda r: len(wanted & set(expand_sides(REGIONS[r]["landmarks"]))))
    return "shoulder_arm" if plan and plan[0].exercise in ARM_EXERCISES else "pelvis_legs"


def _repetition_truth(ex_truth: Mapping[str, ExerciseTruth]) -> dict[str, Any]:
    """Per trial: the repetition windows and each moving DoF's true range per repetition."""
    out: dict[str, Any] = {}
    for tname, truth in ex_truth.items():
        a = truth.angles
        t = np.asarray(a.times)
        rom: dict[str, list[float]] = {}
        table = with_derived(pd.DataFrame(np.asarray(a.values), columns=list(a.names)))
        for d in table.columns:
            x = table[d].to_numpy()
            if d in ("pelvis_tx", "pelvis_ty", "pelvis_tz") or np.ptp(x) < 1.0:
                continue
            rom[d] = [
                round(float(np.ptp(x[(t >= s0) & (t <= s1)])), 9) for s0, s1 in truth.repetitions
            ]
        out[tname] = {
            "exercise": truth.exercise,
            "side": truth.params.get("side"),
            "units": {"windows_s": "s", "rom_deg": "deg"},
            "windows_s": [[round(s0, 9), round(s1, 9)] for s0, s1 in truth.repetitions],
            "peak_deg": truth.params.get("peak_deg", {}),
            "rom_deg": rom,
        }
    return out


def make_session(
    path: str | os.PathLike,
    seed: int = 0,
    *,
    exercises: Sequence[str] = ("shoulder_abduction", "squat"),
    protocol: Any = None,
    variant: str | None = None,
    fault: Mapping[str, Any] | None = None,
    impairment: Mapping[str, Any] | None = None,
    n_cameras: int = 4,
    rate: float = 30.0,
    repetitions: int | None = None,
    height_mm: float | None = None,
    layout: str = "halpe26",
    imaging: bool | None = None,
    phantom_region: str | None = None,
    phantom_spacing: Sequence[float] = (0.8, 0.8, 1.5),
    phantom_max_voxels: int | None = None,
    static_s: float = 2.0,
    markerless_options: Mapping[str, Any] | None = None,
    pixel_sigma: float = 2.0,
    view_swap_rate: float = 0.0,
    exercise_options: Mapping[str, Any] | None = None,
    camera_views: bool | None = None,
) -> SessionTruth:
    """Write a synthetic session folder with known truth.

    Parameters
    ----------
    path : path-like
        Session folder; created, must be empty or absent.
    seed : int
        Everything random derives from it; the same seed gives byte-identical files.
    exercises : sequence of str
        Exercise trials (names of :data:`medpose.synthetic.exercises.EXERCISES`); ignored
        when ``protocol`` is given.
    protocol : str, path or Protocol, optional
        Make exactly the trials this assessment protocol needs
        (:class:`~medpose.protocol.Protocol`; a catalogue name such as ``"deep_squat"``):
        its trial names, its sides (one-sided trials move that side only), its
        ``min_repetitions``, its static trial; imaging only if it registers imaging
        landmarks (``navigation_check``), with a small phantom.  Each catalogue protocol's
        trials map to synthetic exercises through
        :data:`medpose.synthetic.plan.PROTOCOL_EXERCISES`.
    variant : str, optional
        The protocol's variant (``"single"`` for ``sit_to_stand``).
    fault : mapping, optional
        ``{"move_fiducial": (landmark, distance_mm)}`` moves that imaging landmark in the
        written ``imaging/landmarks.mrk.json`` by ``distance_mm`` in a direction drawn from the
        seed (or ``(landmark, (dx, dy, dz))``: by that LPS vector, mm); the truth keeps the
        true position and records the move in ``faults["fiducial"]``.
    impairment : mapping, optional
        ``{"side": "left" | "right", "amount": 0..0.9}``; passed to every exercise.
    n_cameras : int
        Cameras of the rig.
    rate : float
        Sampling rate of every trial, Hz.
    repetitions : int, optional
        Repetitions (strides for gait) per exercise; default 3, or each trial's
        ``min_repetitions`` with a protocol.
    height_mm : float, optional
        Body height; default drawn from the seed in 1550-1900 mm.
    layout : str
        2D keypoint layout of the OpenPose JSON (default ``halpe26``; must be covered by the
        skeleton's keypoints).
    imaging : bool, optional
        Write the phantom volume and its landmarks (default: yes; with a protocol, only if
        it registers imaging landmarks).
    phantom_region : {"pelvis_legs", "shoulder_arm"}, optional
        Default: the region holding a protocol's registration landmarks, else
        ``shoulder_arm`` if the first exercise is an arm exercise, else ``pelvis_legs``.
    phantom_spacing, phantom_max_voxels
        See :func:`~medpose.synthetic.phantom.make_phantom` (default 4 million voxels,
        250 000 with a protocol).
    static_s : float
        Duration of the static trial, s.
    markerless_options : mapping, optional
        Keyword arguments of :func:`~medpose.synthetic.observation.markerless` for the 3D
        ``.trc`` of each exercise trial, and ``bias_frame``: ``"world"`` (default: each
        keypoint's constant offset is a fixed vector in the room) or ``"segment"`` (fixed in the
        keypoint's segment, turning with it as a detector's systematic error does).
    pixel_sigma : float
        2D detector noise, px.
    view_swap_rate : float
        Left/right swaps per second per camera view in the 2D keypoints.
    exercise_options : mapping, optional
        Extra keyword arguments of :func:`~medpose.synthetic.exercises.make_exercise`
        (``submovements``, ``tremor_deg``, ``trunk_lean_deg``, ...).
    camera_views : bool, optional
        Write each exercise trial's 2D keypoints per camera (OpenPose JSON, one file per
        frame).  Default: yes; with a protocol, only if it triangulates (``steps.triangulate``),
        since the 3D ``.trc`` is what its ``read_keypoints`` step reads.

    Returns
    -------
    SessionTruth

    Raises
    ------
    InputError
        Unknown exercise, bad impairment, non-empty target folder, unknown layout, a
        protocol trial with no synthetic exercise, a bad ``fault``.
    ProtocolError
        Unknown or invalid protocol, unknown variant.
    """
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(
            f"make_session: {root.name}: exists and is not an empty folder; expected a new folder"
        )
    proto = protocol_of(protocol, variant) if protocol is not None else None
    plan, static_name = trial_plan(exercises, proto, repetitions)
    registration = proto.spec.registration if proto is not None else None
    if imaging is None:
        imaging = proto is None or registration is not None
    if camera_views is None:
        camera_views = proto is None or "triangulate" in proto.steps
    if phantom_max_voxels is None:
        phantom_max_voxels = 4_000_000 if proto is None else 250_000
    imp = dict(impairment or {})
    if imp and (set(imp) - {"side", "amount"} or imp.get("side") not in ("left", "right")):
        raise InputError(
            f"make_session: impairment must be {{'side': 'left'|'right', 'amount': 0..0.9}}, "
            f"found {dict(impairment or {})}"
        )
    lay = get_layout(layout)

    rng = np.random.default_rng(seed)
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=8 + 3 * len(plan))]
    height = float(height_mm) if height_mm is not None else float(np.round(rng.uniform(1550, 1900)))
    sex = ("female", "male")[int(rng.integers(0, 2))]
    age = int(rng.integers(25, 80))
    mass = float(np.round(22.0 * (height / 1000.0) ** 2 * rng.uniform(0.9, 1.25), 1))
    skeleton = Skeleton.default(height_mm=height)
    names = tuple(skeleton.keypoint_names)
    missing = [n for n in lay.medpose if n not in names]
    if missing:
        raise InputError(
            f"make_session: layout {lay.name} has keypoints {missing} the skeleton lacks"
        )

    # skeleton (ISB, Y up) -> camera world (Z up, Y left), standing near the origin
    offset = np.array([*np.round(rng.uniform(-150, 150, 2), 3), 0.0])
    heading = float(np.round(rng.uniform(-10, 10), 3))
    rot = Rotation.from_euler("z", heading, degrees=True) * Rotation.from_euler(
        "x", 90, degrees=True
    )
    sk2cam = Transform(rot, offset, source=BODY, target=CAMERA)
    cameras = make_rig(n_cameras, seed=seeds[0])

    # ---- static trial (marker-based-like, all keypoints incl. bony landmarks)
    q0, kp0 = static_pose(skeleton)
    n_static = round(static_s * rate)
    true_static = np.broadcast_to(sk2cam.apply(kp0), (n_static, len(names), 3))
    static_obs = marker_based(true_static, 1.0, names=names, seed=seeds[1])
    truth_kp: dict[str, KeypointSequence] = {
        static_name: KeypointSequence(true_static, names, rate, frame=CAMERA)
    }
    faults: dict[str, Any] = {static_name: static_obs.report}

    # ---- exercises
    ex_truth: dict[str, ExerciseTruth] = {}
    obs_seq: dict[str, KeypointSequence] = {}
    views: dict[str, dict[str, KeypointSequence]] = {}
    trial_names = [p.name for p in plan]
    for i, planned in enumerate(plan):
        tname, ex = planned.name, planned.exercise
        truth = make_exercise(
            ex,
            skeleton=skeleton,
            rate=rate,
            repetitions=planned.repetitions,
            side=planned.side,
            impaired_side=imp.get("side"),
            impairment=float(imp.get("amount", 0.0)),
            seed=seeds[8 + 3 * i],
            **dict(exercise_options or {}),
        )
        if ex == "gait":  # centre the walk on the capture volume
            v = np.array(truth.angles.values)
            c = skeleton.dof_names.index("pelvis_tx")
            v[:, c] -= 0.5 * (v[0, c] + v[-1, c])
            truth = ExerciseTruth(
                angles=JointAngles(v, truth.angles.names, rate),
                repetitions=truth.repetitions,
                exercise=ex,
                params=truth.params,
            )
        ex_truth[tname] = truth
        kp = sk2cam.apply(np.asarray(forward_kinematics(skeleton, np.array(truth.angles.values))))
        truth_kp[tname] = KeypointSequence(kp, names, rate, frame=CAMERA)
        sel = truth_kp[tname].select(lay.medpose)
        options = dict(markerless_options or {})
        frame = options.pop("bias_frame", "world")
        if frame not in ("world", "segment"):
            raise InputError(
                f"make_session: markerless_options bias_frame must be 'world' or 'segment', "
                f"found {frame!r}"
            )
        if frame == "segment":
            # the detector's constant offsets fixed in the body's segments
            seg_r, _ = segment_poses(skeleton, np.array(truth.angles.values))
            segs = [int(skeleton.keypoint_segment[skeleton.keypoint_index(n)]) for n in sel.names]
            options["segment_rotations"] = rot.as_matrix() @ np.asarray(seg_r)[:, segs]
        obs = markerless(
            sel.positions, names=sel.names, rate=rate, seed=seeds[9 + 3 * i], **options
        )
        obs_seq[tname] = obs.to_sequence(sel.names, rate, CAMERA)
        vrep = None
        if camera_views:
            views[tname], vrep = project_to_cameras(
                cameras,
                sel,
                pixel_sigma=pixel_sigma,
                swap_rate=view_swap_rate,
                seed=seeds[10 + 3 * i],
                return_report=True,
            )
        faults[tname] = {"markerless_3d": obs.report, "views": vrep}

    # ---- imaging
    phantom = None
    transforms = {"skeleton_to_camera": sk2cam}
    region = phantom_region or _region(plan, registration)
    if imaging:
        phantom = make_phantom(
            skeleton,
            region=region,
            spacing=phantom_spacing,
            max_voxels=phantom_max_voxels,
            seed=seeds[2],
        )
        transforms["image_to_skeleton"] = phantom.image_to_body
        transforms["image_to_camera"] = sk2cam @ phantom.image_to_body
        lm_names = phantom.landmarks.names
    else:
        lm_names = tuple(expand_sides(REGIONS[region]["landmarks"]))
    idx = [names.index(n) for n in lm_names]
    landmarks_camera = Landmarks(lm_names, truth_kp[static_name].positions[0, idx], frame=CAMERA)

    # ---- write the session
    root.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "medpose_session": 1,
        "patient": {
            "id": f"SYN-{seed:04d}",
            "sex": sex,
            "age_years": age,
            "height_mm": height,
            "mass_kg": mass,
        },
        "date": "2026-01-15",
        "side_of_interest": imp.get("side", "both"),
    }
    if fault and phantom is None:
        raise InputError("make_session: fault.move_fiducial needs imaging (imaging=True)")
    moved = fiducial_fault(fault, lm_names, seed)
    if phantom is not None:
        write_volume(phantom.volume, root / "imaging" / "ct.nii.gz")
        written = phantom.landmarks
        if moved is not None:
            pos = np.array(written.positions, dtype=float)
            pos[list(lm_names).index(moved["move_fiducial"])] += moved["vector_lps_mm"]
            written = Landmarks(written.names, pos, frame=written.frame)
            faults["fiducial"] = moved
        write_landmarks(written, root / "imaging" / "landmarks.mrk.json")
        doc["imaging"] = {"volume": "imaging/ct.nii.gz", "landmarks": "imaging/landmarks.mrk.json"}
    write_calibration(cameras, root / "calibration" / "calibration.toml")
    doc["calibration"] = "calibration/calibration.toml"
    write_trc(static_obs.to_sequence(names, rate, CAMERA), root / "trials" / f"{static_name}.trc")
    trials: list[dict[str, Any]] = [
        {"name": static_name, "kind": "static", "keypoints": f"trials/{static_name}.trc"}
    ]
    for tname in trial_names:
        write_trc(obs_seq[tname], root / "trials" / f"{tname}.trc")
        cams = {}
        for cam, seq in views.get(tname, {}).items():
            folder = f"trials/{tname}/{cam}_json"
            write_openpose(seq, root / folder, layout=lay, prefix=cam)
            cams[cam] = folder
        entry: dict[str, Any] = {
            "name": tname,
            "kind": "exercise",
            "exercise": ex_truth[tname].exercise,
            "keypoints": f"trials/{tname}.trc",
            "rate_hz": rate,
        }
        if cams:
            entry["cameras"] = cams
        trials.append(entry)
    doc["trials"] = trials
    doc["notes"] = "synthetic session made by medpose.synthetic.make_session; truth in truth/"
    write_session_yaml(doc, root)

    # ---- truth
    t = root / "truth"
    for tname, truth in ex_truth.items():
        write_mot(truth.angles, t / f"angles_{tname}.mot")
        df = truth.angles.to_dataframe()
        with atomic_write(t / f"angles_{tname}.csv", newline="\n") as fh:
            df.to_csv(fh, float_format="%.8f", lineterminator="\n")
    for tname, seq in truth_kp.items():
        write_trc(seq, t / f"keypoints_{tname}.trc")
    _dump_json({k: v.to_dict() for k, v in transforms.items()}, t / "transforms.json")
    _dump_json(_landmarks_json(landmarks_camera), t / "landmarks_camera.json")
    if phantom is not None:
        _dump_json(_landmarks_json(phantom.landmarks), t / "landmarks_lps.json")
    _dump_json(
        {
            "units": "mm",
            "height_mm": height,
            "lengths": {k: round(float(v), 9) for k, v in skeleton.lengths.items()},
        },
        t / "segment_lengths.json",
    )
    _dump_json(faults, t / "faults.json")
    _dump_json(_repetition_truth(ex_truth), t / "repetitions.json")
    params = {
        "seed": int(seed),
        "protocol": None
        if proto is None
        else {"name": proto.name, "version": proto.version, "variant": proto.variant},
        "exercises": [p.exercise for p in plan],
        "trials": trial_names,
        "static_trial": static_name,
        "impairment": imp or None,
        "n_cameras": int(n_cameras),
        "rate_hz": float(rate),
        "repetitions": {p.name: p.repetitions for p in plan},
        "height_mm": height,
        "layout": lay.name,
        "imaging": bool(imaging),
        "phantom_region": region,
        "phantom": phantom.params if phantom is not None else None,
        "static_s": float(static_s),
        "static_pose": dict(zip(skeleton.dof_names, _r(q0[0]))),
        "markerless_options": dict(markerless_options or {}),
        "pixel_sigma": float(pixel_sigma),
        "view_swap_rate": float(view_swap_rate),
        "camera_views": bool(camera_views),
        "exercise_options": dict(exercise_options or {}),
        "exercise_params": {k: v.params for k, v in ex_truth.items()},
        "repetition_windows_s": {
            k: [[round(a, 9), round(b, 9)] for a, b in v.repetitions] for k, v in ex_truth.items()
        },
        "frames": {
            "skeleton": "ISB: X anterior, Y up, Z right, floor Y=0, mm",
            "camera": "calibration world: X forward, Y left, Z up, floor Z=0, mm",
            "LPS": "imaging world of imaging/ct.nii.gz, mm",
        },
    }
    _dump_json(params, t / "params.json")
    return SessionTruth(
        path=root,
        skeleton=skeleton,
        exercises=ex_truth,
        keypoints=truth_kp,
        cameras=cameras,
        phantom=phantom,
        transforms=transforms,
        landmarks_camera=landmarks_camera,
        faults=faults,
        params=params,
    )


def read_truth_angles(path: str | os.PathLike, trial: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One trial's true joint angles from a session :func:`make_session` wrote, and which of
    their frames lie inside a repetition.

    Returns
    -------
    angles : pandas.DataFrame
        ``truth/angles_<trial>.csv``: time (s) index, one column per DoF (degrees; pelvis
        translations in mm).
    inside : numpy.ndarray of bool
        Per frame, whether its time lies in one of the trial's ``repetition_windows_s``
        (``truth/params.json``).

    Raises
    ------
    InputError
        No such file, or no repetition windows for ``trial`` (naming the trials there are).
    """
    truth = Path(path) / "truth"
    csv = truth / f"angles_{trial}.csv"
    if not csv.is_file():
        raise InputError(f"{csv}: file not found (is {trial!r} a trial of this session?)")
    params = json.loads((truth / "params.json").read_text(encoding="utf-8"))
    windows = params.get("repetition_windows_s", {})
    if trial not in windows:
        raise InputError(
            f"{truth / 'params.json'}: repetition_windows_s has no trial {trial!r}; "
            f"found {sorted(windows)}"
        )
    angles = pd.read_csv(csv, index_col=0)
    t = angles.index.to_numpy(dtype=float)
    inside = np.zeros(t.size, bool)
    for a, b in windows[trial]:
        inside |= (t >= a) & (t <= b)
    return angles, inside
