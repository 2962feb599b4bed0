"""UI-PRMD-style Kinect v2 recordings of any synthetic exercise, with the truth.

:func:`kinect_recording` makes what a Kinect v2 in front of the patient gives for one
repetition of an exercise of :data:`~medpose.synthetic.exercises.EXERCISES`: the 22 joints of
the UI-PRMD data set (:data:`medpose.io.uiprmd.UIPRMD_NAMES`), in millimetres, at 30 Hz, in
the ``"kinect"`` frame of :func:`medpose.io.read_uiprmd` (x to the subject's left, y up, z
from the subject towards the sensor; the subject faces the sensor 2.5 m away, the floor at
y = 0), one repetition with rest before (0.5 s) and after (the exercise's rest, 20 % of its
tempo, plus 0.5 s).  :func:`write_uiprmd` writes such a recording as a UI-PRMD positions and
angles file pair that :func:`medpose.read_keypoints` reads back.

Joints
------
The joints that are medpose keypoints (``spine``, ``neck``, ``shoulder``, ``elbow``,
``wrist``, ``hip``, ``knee``, ``ankle``) are the skeleton's forward kinematics of the true
angles.  The Kinect-only joints are placed where the UI-PRMD recordings put them relative to
those, measured on every 10th correct file of the project's copy (median over files of the
per-file mean distance): ``waist`` (Kinect *SpineBase*) 36 mm behind the hip midpoint (the
``psis`` side of the pelvis); ``kinect_neck``, ``kinect_head`` and ``kinect_head_tip`` 7, 72
and 228 mm from ``neck`` along the neck-to-vertex line; ``collar_l/r`` 16 mm from ``neck``
towards the shoulder; ``toes_l/r`` (Kinect *Foot*) 112 mm from the ankle towards the middle of
the toes (17-18 degrees below the horizontal in the standing skeleton, as in the data set).

Noise model
-----------
Every joint gets, per axis, (1) a constant offset, normal with SD ``bias_mm`` (default 15 mm:
Kinect v2 joints sit centimetres from motion-capture joint centres, Wang et al. 2015,
"Evaluation of pose tracking accuracy in the first and second generations of Microsoft
Kinect", IEEE ICHI, and Otte et al. 2016, PLoS One 11:e0166532; the value itself is our
assumption), (2) a slowly varying error, Gaussian white noise low-passed at ``cutoff_hz``
(1.5 Hz, 2nd-order Butterworth, forward and backward) and scaled to SD ``sigma_mm`` (default
7 mm), and (3) white jitter of SD ``white_mm`` (default 1.5 mm).  Wrists, ankles and toes get
1.5 times (2) and (3): Otte et al. 2016 found the feet and ankles the noisiest Kinect v2
landmarks, and in UI-PRMD the forearm is the limb whose length varies most.  (2) and (3) are
set from UI-PRMD itself, on the same files: within a file a bone's length has a median SD of
5-16 mm (trunk 5-6, thigh 13, forearm 14-16; the slow error of its two ends gives
``sqrt(2) * sigma_mm`` = 10 mm, 12.6 mm on the forearm and shank), and the residual above
6 Hz is 1-5 mm per axis (the Kinect SDK smooths its joints).  No tracking failures (legs folded
through the floor, swapped sides) are simulated.

>>> rec = kinect_recording("shoulder_abduction", side="right", seed=0)   # doctest: +SKIP
>>> rec.sequence.names[:3], rec.sequence.frame                            # doctest: +SKIP
(('waist', 'spine', 'neck'), 'kinect')
>>> rec.truth.params["peak_deg"]                                          # doctest: +SKIP
{'shoulder_abduction_r': 150.0}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt

from ..data import KeypointSequence
from ..errors import InputError
from ..io.uiprmd import KINECT_FRAME, UIPRMD_NAMES, UIPRMD_PARENTS
from ..kinematics.fk import forward_kinematics
from ..kinematics.skeleton import Skeleton
from .exercises import ExerciseTruth, make_exercise

__all__ = ["KinectRecording", "kinect_recording", "write_uiprmd", "SKELETON_TO_KINECT"]

#: Rotation from the skeleton's frame (X anterior, Y up, Z right) to the ``"kinect"`` frame of a
#: subject facing the sensor (x to the subject's left, y up, z towards the sensor).
SKELETON_TO_KINECT = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
_DEPTH_MM = 2500.0  # the subject's distance from the sensor (UI-PRMD waist: 2.2-2.8 m)
_WAIST_BEHIND_MM = 36.0
_HEAD_MM = {"kinect_neck": 7.0, "kinect_head": 72.0, "kinect_head_tip": 228.0}
_COLLAR_MM = 16.0
_FOOT_MM = 112.0
_DISTAL = ("wrist_l", "wrist_r", "ankle_l", "ankle_r", "toes_l", "toes_r")


@dataclass(frozen=True)
class KinectRecording:
    """One synthetic Kinect v2 repetition and its truth.

    Attributes
    ----------
    sequence : KeypointSequence
        What the Kinect gives: :data:`~medpose.io.uiprmd.UIPRMD_NAMES`, mm, frame ``"kinect"``.
    keypoints : KeypointSequence
        The same joints without noise.
    truth : ExerciseTruth
        The true angles (one repetition) and the exercise's parameters.
    noise : dict
        The noise model's parameters and the seed.
    """

    sequence: KeypointSequence
    keypoints: KeypointSequence
    truth: ExerciseTruth
    noise: dict[str, float]


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True))


def _kinect_joints(skeleton: Skeleton, values: np.ndarray) -> np.ndarray:
    """The 22 UI-PRMD joints (T, 22, 3) in the skeleton frame, mm, from the true angles."""
    kp = np.asarray(forward_kinematics(skeleton, values))
    at = {n: kp[:, i] for i, n in enumerate(skeleton.keypoint_names)}
    out = {n: at[n] for n in UIPRMD_NAMES if n in at}
    back = _unit(0.5 * (at["psis_l"] + at["psis_r"]) - 0.5 * (at["asis_l"] + at["asis_r"]))
    out["waist"] = at["pelvis"] + _WAIST_BEHIND_MM * back
    head = _unit(at["head_top"] - at["neck"])
    for name, d in _HEAD_MM.items():
        out[name] = at["neck"] + d * head
    for s in ("l", "r"):
        out[f"collar_{s}"] = at["neck"] + _COLLAR_MM * _unit(at[f"shoulder_{s}"] - at["neck"])
        toes = 0.5 * (at[f"big_toe_{s}"] + at[f"small_toe_{s}"])
        out[f"toes_{s}"] = at[f"ankle_{s}"] + _FOOT_MM * _unit(toes - at[f"ankle_{s}"])
    return np.stack([out[n] for n in UIPRMD_NAMES], axis=1)


def _noise(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    rate: float,
    bias_mm: float,
    sigma_mm: float,
    white_mm: float,
    cutoff_hz: float,
) -> np.ndarray:
    """Offset + slow error + jitter (T, K, 3), mm; the distal joints get 1.5x slow and jitter."""
    t, k, _ = shape
    scale = np.array([1.5 if n in _DISTAL else 1.0 for n in UIPRMD_NAMES])[None, :, None]
    bias = rng.normal(0.0, bias_mm, (1, k, 3))
    pad = round(3.0 * rate / cutoff_hz)  # filter start-up, cut off again
    raw = rng.normal(0.0, 1.0, (t + 2 * pad, k, 3))
    sos = butter(2, cutoff_hz, fs=rate, output="sos")
    slow = sosfiltfilt(sos, raw, axis=0)[pad : pad + t]
    slow *= sigma_mm / np.sqrt(np.mean(slow**2, axis=0, keepdims=True))
    white = rng.normal(0.0, white_mm, shape)
    return np.asarray(bias + scale * (slow + white))


def kinect_recording(
    exercise: str,
    *,
    side: str | None = None,
    seed: int = 0,
    rate: float = 30.0,
    skeleton: Skeleton | None = None,
    bias_mm: float = 15.0,
    sigma_mm: float = 7.0,
    white_mm: float = 1.5,
    cutoff_hz: float = 1.5,
    **exercise_options: Any,
) -> KinectRecording:
    """One repetition of ``exercise`` as a Kinect v2 (UI-PRMD) recording, with its truth.

    Parameters
    ----------
    exercise : str
        One of :data:`~medpose.synthetic.exercises.EXERCISES`.
    side : {"left", "right", "both"}, optional
        The moving side (:func:`~medpose.synthetic.make_exercise`).
    seed : int
        Seeds the exercise (``seed``) and the noise (``seed + 1``).
    rate : float
        Frame rate, Hz (the Kinect v2: 30).
    skeleton : Skeleton, optional
        Default ``Skeleton.default()``.
    bias_mm, sigma_mm, white_mm, cutoff_hz : float
        The noise model (module docstring); all zero gives the true joints.
    **exercise_options
        Passed to :func:`~medpose.synthetic.make_exercise` (``tempo_s``, ``range_deg``,
        ``impairment``, ...); ``repetitions`` is always 1.

    Returns
    -------
    KinectRecording

    Raises
    ------
    InputError
        A negative noise parameter, a cutoff not below half the rate, or ``repetitions``
        passed; :func:`~medpose.synthetic.make_exercise`'s errors.
    """
    if "repetitions" in exercise_options:
        raise InputError("kinect_recording: a UI-PRMD recording holds one repetition")
    if min(bias_mm, sigma_mm, white_mm) < 0 or not 0 < cutoff_hz < rate / 2:
        raise InputError(
            f"kinect_recording: noise must be >= 0 mm and 0 < cutoff_hz < rate / 2; found "
            f"bias_mm={bias_mm}, sigma_mm={sigma_mm}, white_mm={white_mm}, cutoff_hz={cutoff_hz}"
        )
    skeleton = skeleton if skeleton is not None else Skeleton.default()
    truth = make_exercise(
        exercise,
        skeleton=skeleton,
        rate=rate,
        repetitions=1,
        side=side,
        seed=seed,
        **exercise_options,
    )
    values = np.array(truth.angles.values)
    if exercise == "gait":  # centre the walk on the sensor's view
        c = skeleton.dof_names.index("pelvis_tx")
        values[:, c] -= 0.5 * (values[0, c] + values[-1, c])
    joints = _kinect_joints(skeleton, values) @ SKELETON_TO_KINECT.T
    joints[..., 2] -= _DEPTH_MM
    rng = np.random.default_rng(seed + 1)
    noisy = joints + _noise(rng, joints.shape, rate, bias_mm, sigma_mm, white_mm, cutoff_hz)
    params = {
        "bias_mm": float(bias_mm),
        "sigma_mm": float(sigma_mm),
        "white_mm": float(white_mm),
        "cutoff_hz": float(cutoff_hz),
        "seed": int(seed) + 1,
    }
    return KinectRecording(
        sequence=KeypointSequence(noisy, UIPRMD_NAMES, rate, frame=KINECT_FRAME),
        keypoints=KeypointSequence(joints, UIPRMD_NAMES, rate, frame=KINECT_FRAME),
        truth=truth,
        noise=params,
    )


def write_uiprmd(seq: KeypointSequence, folder: str | os.PathLike, stem: str) -> Path:
    """Write a ``"kinect"`` sequence of the 22 UI-PRMD joints as a UI-PRMD file pair.

    ``folder/positions/<stem>_positions.txt`` holds the waist's position and every other
    joint's offset from its parent, ``folder/angles/<stem>_angles.txt`` zero angles (every
    joint frame aligned with the sensor's, so each offset is the global difference), both in
    centimetres with 6 decimals (0.1 micrometre): :func:`medpose.read_keypoints` reads the
    positions back.

    Returns
    -------
    Path
        The positions file.

    Raises
    ------
    InputError
        The sequence's names are not :data:`~medpose.io.uiprmd.UIPRMD_NAMES`, or a value is
        not finite.
    """
    if tuple(seq.names) != UIPRMD_NAMES or seq.ndim != 3:
        raise InputError(
            f"write_uiprmd: expected 3D keypoints named {UIPRMD_NAMES}; found {seq.names}"
        )
    pos = np.asarray(seq.positions, dtype=float) / 10.0
    if not np.isfinite(pos).all():
        raise InputError("write_uiprmd: the UI-PRMD format has no missing values; found NaN")
    parents = np.array(UIPRMD_PARENTS[1:])
    off = pos.copy()
    off[:, 1:] = pos[:, 1:] - pos[:, parents]
    out = Path(folder)
    ppath = out / "positions" / f"{stem}_positions.txt"
    apath = out / "angles" / f"{stem}_angles.txt"
    for path, table in ((ppath, off), (apath, np.zeros_like(off))):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, table.reshape(len(table), -1), fmt="%.6f", delimiter=",")
    return ppath
