"""medpose's joint angles on an OpenSim model: coordinate names, signs, units and origins.

A model mapping is packaged data (``medpose/resources/opensim_models/<model>.yaml``): for each of
the model's coordinates, the medpose DoF it comes from, a sign and a constant offset (degrees),
coordinates held at fixed values, and where the model's pelvis origin lies relative to the
mid-point of the hip joint centres (medpose's pelvis origin).  :func:`to_opensim` turns
:class:`~medpose.data.JointAngles` (e.g. ``Fit.joint_angles()``) into the model's coordinates;
:func:`write_opensim_mot` writes them as a ``.mot`` file that OpenSim and Pose2Sim load on that
model (``Fit.to_mot(path, model="pose2sim")``).

Models: ``"pose2sim"`` (Pose2Sim's ``Model_Pose2Sim_simple.osim``; its
``Model_Pose2Sim_muscles_flex.osim`` splits the lumbar spine into five joints and is not covered).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..data import JointAngles, KeypointSequence
from ..errors import InputError
from ..packaged import resource_yaml
from ._util import display_name
from .mot import write_mot

__all__ = [
    "OPENSIM_MODELS",
    "opensim_mapping",
    "osim_coordinates",
    "osim_hip_centre",
    "osim_marker",
    "osim_reference_markers",
    "reference_coordinates",
    "to_opensim",
    "write_opensim_mot",
    "y_up_rotation",
]

OPENSIM_MODELS = ("pose2sim",)
_PELVIS = ("pelvis_tilt", "pelvis_list", "pelvis_rotation")
_TRANS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")


def opensim_mapping(model: str = "pose2sim") -> dict[str, Any]:
    """The packaged mapping of medpose's DoFs onto an OpenSim model (see the module docstring).

    Raises
    ------
    InputError
        ``model`` is not one of :data:`OPENSIM_MODELS`.
    """
    if model not in OPENSIM_MODELS:
        raise InputError(f"OpenSim model {model!r}: unknown; expected one of {OPENSIM_MODELS}")
    data: dict[str, Any] = resource_yaml(f"opensim_models/{model}.yaml")
    return data


def _parse_osim(path: str | os.PathLike) -> ET.Element:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{display_name(p)}: no such OpenSim model file (.osim)")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise InputError(f"{display_name(p)}: not an OpenSim model (XML error: {e})") from None
    if root.find("Model") is None and root.tag != "Model":
        raise InputError(f"{display_name(p)}: no <Model> element; expected an OpenSim .osim file")
    return root


def osim_coordinates(path: str | os.PathLike) -> list[str]:
    """The names of every ``<Coordinate>`` of an OpenSim model file, in file order."""
    root = _parse_osim(path)
    return [str(c.get("name")) for c in root.iter("Coordinate") if c.get("name")]


def osim_hip_centre(path: str | os.PathLike) -> np.ndarray:
    """Mid-point of the hip joint centres in the model's pelvis frame, metres: the mean of the
    translations of the parent frames of the joints named ``hip_r`` and ``hip_l``."""
    root = _parse_osim(path)
    found = []
    for joint in root.iter():
        if joint.get("name") not in ("hip_r", "hip_l"):
            continue
        parent = (joint.findtext("socket_parent_frame") or "").strip()
        for frame in joint.iter("PhysicalOffsetFrame"):
            if frame.get("name") == parent:
                found.append([float(v) for v in (frame.findtext("translation") or "").split()])
    if len(found) != 2 or any(len(f) != 3 for f in found):
        raise InputError(
            f"{display_name(Path(path))}: hip joints: found {len(found)} parent frames with a "
            "translation; expected joints 'hip_r' and 'hip_l' with a PhysicalOffsetFrame each"
        )
    return np.mean(np.asarray(found), axis=0)


def osim_marker(path: str | os.PathLike, name: str) -> tuple[str, np.ndarray] | None:
    """Body and location (metres, in the body's frame) of the marker ``name`` of a model file
    (its ``<MarkerSet>``, e.g. a model scaled by Pose2Sim), or None if it has no such marker."""
    root = _parse_osim(path)
    for mk in root.iter("Marker"):
        if mk.get("name") == name:
            body = (mk.findtext("socket_parent_frame") or "").strip().rsplit("/", 1)[-1]
            loc = [float(v) for v in (mk.findtext("location") or "").split()]
            if len(loc) == 3:
                return body, np.asarray(loc)
    return None


def _pelvis_point(m: dict[str, Any], osim: str | os.PathLike | None) -> tuple[bool, np.ndarray]:
    """(is a keypoint, position in the model's pelvis frame, m): the model's marker for medpose's
    ``pelvis`` keypoint (from ``osim`` when it has it), else the hip joint centres' mid-point."""
    ref = m.get("pelvis_keypoint")
    if ref is None:
        return False, np.asarray(m["hip_centre_m"], float) if osim is None else osim_hip_centre(
            osim
        )
    if osim is None:
        return True, np.asarray(ref["location_m"], float)
    found = osim_marker(osim, ref["marker"])
    if found is not None and found[0] == "pelvis":
        return True, found[1]
    return False, osim_hip_centre(osim)


def reference_coordinates(model: str = "pose2sim") -> dict[str, float]:
    """The model's coordinates (degrees) in medpose's zero pose: each coordinate's offset (0 for
    most; ``pro_sup`` 90) and the fixed ones' values (``mtp_angle``)."""
    m = opensim_mapping(model)
    out = {c: float(spec.get("offset_deg", 0.0)) for c, spec in m["coordinates"].items()}
    out.update({c: float(v) for c, v in m.get("fixed", {}).items()})
    return out


def osim_reference_markers(
    osim: str | os.PathLike,
    model: str = "pose2sim",
    markers: str | os.PathLike | None = None,
) -> KeypointSequence:
    """The markers of an OpenSim model file in its pose at medpose's zero pose
    (:func:`reference_coordinates`: every coordinate 0 except ``pro_sup`` 90; the pelvis at the
    ground's origin), as a one-frame :class:`~medpose.data.KeypointSequence` in the model's
    ground (mm, Y up), its markers' names.  :func:`~medpose.kinematics.fit.opensim_zero` fits
    them to write a fit's coordinates relative to that pose.  Needs the ``opensim`` package (PyPI
    ``opensim``, in medpose's ``bench`` extra).  ``markers``: a marker set file to add to the
    model (``<MarkerSet>``, e.g. Pose2Sim's ``Markers_Halpe26.xml`` for its unscaled model, which
    holds none; a model Pose2Sim scaled holds its own).

    Raises
    ------
    InputError
        The package is missing, or the file is not a model OpenSim loads, or has no markers.
    """
    path = Path(osim)
    _parse_osim(path)  # a clear error for a missing or malformed file, package or not
    try:
        import opensim
    except ImportError as e:
        raise InputError(
            f"{display_name(path)}: the model's markers need the opensim package, which is not "
            f"importable ({e}); install it (pip install opensim, or medpose's bench extra) or "
            "pass the model's markers in its reference pose as a KeypointSequence"
        ) from None
    if markers is not None and not Path(markers).is_file():
        raise InputError(f"{display_name(Path(markers))}: no such marker set file")
    level = opensim.Logger.getLevelString()
    opensim.Logger.setLevelString("error")  # not the missing geometry files, on every load
    try:
        mdl = opensim.Model(str(path))
        if markers is not None:
            mdl.updateMarkerSet(opensim.MarkerSet(str(markers)))
            mdl.finalizeConnections()
        state = mdl.initSystem()
    except Exception as e:
        raise InputError(f"{display_name(path)}: OpenSim could not load the model ({e})") from None
    finally:
        opensim.Logger.setLevelString(level)
    ref = reference_coordinates(model)
    cs = mdl.getCoordinateSet()
    for i in range(cs.getSize()):
        c = cs.get(i)
        value = ref.get(c.getName(), 0.0)
        c.setValue(state, np.radians(value) if c.getMotionType() == 1 else 0.0, False)
    mdl.realizePosition(state)
    ms = mdl.getMarkerSet()
    if ms.getSize() == 0:
        raise InputError(
            f"{display_name(path)}: the model has no markers (<MarkerSet>); expected its "
            "keypoints' markers (markers=: a marker set file)"
        )
    names = tuple(ms.get(i).getName() for i in range(ms.getSize()))
    x = np.array([[ms.get(i).getLocationInGround(state).get(j) for j in range(3)]
                  for i in range(len(names))])  # fmt: skip
    return KeypointSequence(x[None] * 1000.0, names, 1.0, frame="world")


def to_opensim(
    angles: JointAngles,
    model: str = "pose2sim",
    *,
    alignment: np.ndarray | None = None,
    osim: str | os.PathLike | None = None,
    pelvis_keypoint_mm: np.ndarray | None = None,
    y_up: bool = False,
    zero_deg: Mapping[str, float] | None = None,
) -> JointAngles:
    """medpose's DoFs as the coordinates of an OpenSim model.

    Parameters
    ----------
    angles : JointAngles
        medpose DoFs (degrees; ``pelvis_tx/ty/tz`` in millimetres in the skeleton's axes), e.g.
        ``Fit.joint_angles()``.  A DoF that is NaN in every frame (not observed) is taken at its
        neutral value 0; frames that are NaN stay NaN.
    model : str
        A packaged mapping (:data:`OPENSIM_MODELS`).
    alignment : array (3, 3), optional
        Rotation from the data's axes to the skeleton's (``Fit.alignment``): the pelvis pose is
        written in the data's axes, the frame OpenSim's ground shares with the marker file.
    osim : path, optional
        The model file (e.g. one scaled by Pose2Sim): the pelvis reference point is read from it.
    pelvis_keypoint_mm : array (3,), optional
        Where the skeleton fitted has its ``pelvis`` keypoint in its pelvis frame, mm (default 0:
        medpose's default skeleton, where it is the mid-point of the hip joint centres).  The
        pelvis is placed so that this point lands on the model's marker for that keypoint
        (``Hip`` on Pose2Sim's models), the point both were fitted to; a model file without that
        marker falls back to the mid-point of its hip joint centres.
    y_up : bool
        Write the pelvis pose in the data's axes turned so that up (``alignment``'s) is +Y,
        OpenSim's vertical, as :func:`medpose.kinematics.fit.y_up_transform` turns keypoints (the body upright on the
        model when the data are Z-up; open it with the keypoints turned the same way).
    zero_deg : mapping, optional
        Coordinate name -> degrees subtracted from it (rotational coordinates only): the
        model's zero as the fitted skeleton reads it (``Fit.to_mot(..., zero=...)``).

    Returns
    -------
    JointAngles
        The model's coordinates in its order (degrees; pelvis translations in millimetres,
        which :func:`~medpose.io.mot.write_mot` writes in metres).
    """
    m = opensim_mapping(model)
    idx = {n: i for i, n in enumerate(angles.names)}
    need = [c["dof"] for c in m["coordinates"].values()] + list(_TRANS)
    missing = [d for d in need if d not in idx]
    if missing:
        raise InputError(
            f"to_opensim: joint angles lack {missing[:6]}; expected medpose's default skeleton "
            f"DoFs for the OpenSim model {model!r}"
        )
    zero_deg = dict(zero_deg or {})
    bad = sorted(k for k, z in zero_deg.items() if k not in m["coordinates"] or not _finite(z))
    if bad:
        raise InputError(
            f"to_opensim: zero_deg: {bad[:6]} are not finite degrees of the rotational "
            f"coordinates of the OpenSim model {model!r} ({sorted(m['coordinates'])[:4]}...)"
        )
    v = np.asarray(angles.values, dtype=float).copy()
    v[:, np.all(np.isnan(v), axis=0)] = 0.0
    col = {d: v[:, idx[d]] for d in need}
    is_kp, ref_m = _pelvis_point(m, osim)
    kp = np.zeros(3) if pelvis_keypoint_mm is None or not is_kp else pelvis_keypoint_mm
    shift = np.asarray(kp, dtype=float) - ref_m * 1000.0  # model origin = point - R @ (ref - kp)
    A = np.eye(3) if alignment is None else np.asarray(alignment, dtype=float)
    if y_up:  # data' = Y @ data, so x_skeleton = A @ Y.T @ data'
        up = np.round(A[1])
        A = A @ y_up_rotation(int(np.argmax(np.abs(up))), float(up.sum())).T

    # pelvis pose in the skeleton's axes (medpose: ZXY intrinsic, tilt about -Z), then in the data's
    ok = np.all(np.isfinite(np.column_stack([col[d] for d in (*_PELVIS, *_TRANS)])), axis=1)
    eul = np.column_stack([-col["pelvis_tilt"], col["pelvis_list"], col["pelvis_rotation"]])
    out_eul = np.full_like(eul, np.nan)
    origin = np.full((len(v), 3), np.nan)
    if ok.any():
        R = A.T @ Rotation.from_euler("ZXY", eul[ok], degrees=True).as_matrix()
        t = np.column_stack([col[d] for d in _TRANS])[ok] @ A  # A.T @ t per row
        out_eul[ok] = Rotation.from_matrix(R).as_euler("ZXY", degrees=True)
        origin[ok] = t + R @ shift
    names: list[str] = []
    cols: list[np.ndarray] = []
    for coord, spec in m["coordinates"].items():
        names.append(coord)
        if coord in _PELVIS:
            cols.append(out_eul[:, _PELVIS.index(coord)])
        else:
            cols.append(spec["sign"] * col[spec["dof"]] + float(spec.get("offset_deg", 0.0)))
        cols[-1] = cols[-1] - float(zero_deg.get(coord, 0.0))
    for coord, value in m.get("fixed", {}).items():
        names.append(coord)
        cols.append(np.where(ok, float(value), np.nan))
    names.extend(_TRANS)
    cols.extend(origin.T)
    return JointAngles(np.column_stack(cols), tuple(names), angles.rate, start=angles.start)


def _finite(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def y_up_rotation(axis: int, sign: float) -> np.ndarray:
    """The rotation matrix (3, 3) that turns a frame whose up is ``sign`` x axis ``axis``
    (0-2) so that up is +Y, OpenSim's vertical: the axes permuted cyclically, up onto +Y (for a
    Z-up frame ``(x, y, z) -> (y, z, x)``, Pose2Sim's own Z-up to Y-up conversion; Y-up: the
    identity); a downward axis is turned over, a proper rotation, never a mirror image."""
    R = np.zeros((3, 3))
    R[1, axis] = sign
    R[2, (axis + 1) % 3] = 1.0
    R[0] = np.cross(R[1], R[2])
    return R


def write_opensim_mot(
    angles: JointAngles,
    path: str | os.PathLike,
    model: str | None = "pose2sim",
    *,
    alignment: np.ndarray | None = None,
    osim: str | os.PathLike | None = None,
    pelvis_keypoint_mm: np.ndarray | None = None,
    y_up: bool = False,
    zero_deg: Mapping[str, float] | None = None,
) -> Path:
    """Write :func:`to_opensim` of ``angles`` as an OpenSim ``.mot`` file (atomically): degrees,
    pelvis translations in metres, the model's coordinate names.  ``model=None``: medpose's own
    DoF names, as they are (:func:`~medpose.io.mot.write_mot`)."""
    if model is None:
        return write_mot(angles, path)
    o = to_opensim(
        angles,
        model,
        alignment=alignment,
        osim=osim,
        pelvis_keypoint_mm=pelvis_keypoint_mm,
        y_up=y_up,
        zero_deg=zero_deg,
    )
    return write_mot(o, path)
