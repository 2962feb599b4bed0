"""The table of synthetic exercises: which joints move, from where to where, in which posture.

Per exercise (angles in degrees, DoF names of ``resources/skeleton.yaml``):

``main``
    ``(dof template, start, peak)`` moved along the repetition profile; the first entry is the
    one ``range_deg`` sets, the others scale with it.  ``"{s}"`` is the moving side's suffix
    (both sides for a two-sided movement), ``"{o}"`` the other side's (one-sided movements).
``base``
    The posture held throughout (``"{s}"``: both sides; ``"{o}"``: the side that does not move).
``lean``
    ``(dof template, amplitude)`` of a forward lean peaking mid-movement (sit to stand).
``sides``
    ``"both"`` (both sides move at once unless one side is asked for), ``"one"`` (one side
    moves: a leg leads or is raised; default the right, or the impaired side).
``kind``
    ``"angles"`` (the ``main`` entries are the angles), ``"scaption"`` (the first entry is the
    elevation in the scapular plane, converted to flexion and abduction), ``"inline_lunge"`` /
    ``"side_lunge"`` (both feet planted: the legs follow by inverse kinematics,
    :mod:`medpose.synthetic.legs`), ``"planted"`` (the ``main`` entries are the angles each leg
    would take alone; both feet planted flat, the legs meet half-way:
    :func:`medpose.synthetic.legs.planted_legs`), ``"gait"``.
``anchor``
    How the body rests on the floor (:func:`medpose.synthetic.legs.place_root`); ``"foot"``
    plants the foot named by ``plant`` (``"moving"`` or ``"other"`` side).

Peaks are typical adult active ranges (AAOS 1994, Greene & Heckman, *The Clinical Measurement
of Joint Motion*) or the positions the Functional Movement Screen asks for (Cook et al. 2014,
Int J Sports Phys Ther 9(3):396-409 and 9(4):549-563).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXERCISES"]

_ARM = {"anchor": "feet", "compensation": "arm", "kind": "angles", "sides": "both"}
_LEG1 = {"compensation": "trunk", "sides": "one"}
_DOWEL_ON_SHOULDERS = {  # hands on a dowel across the shoulders, behind the neck
    "shoulder_abduction_{s}": 75.0,
    "shoulder_rotation_{s}": -90.0,
    "shoulder_flexion_{s}": -10.0,
    "elbow_flexion_{s}": 110.0,
}
_ROTATION_POSTURE = {"shoulder_abduction_{s}": 20.0, "elbow_flexion_{s}": 90.0}

EXERCISES: dict[str, dict[str, Any]] = {
    "shoulder_abduction": dict(
        main=[("shoulder_abduction_{s}", 5.0, 150.0), ("elbow_flexion_{s}", 5.0, 5.0)],
        base={},
        tempo_s=4.0,
        **_ARM,
    ),
    "shoulder_flexion": dict(
        main=[("shoulder_flexion_{s}", 0.0, 150.0), ("elbow_flexion_{s}", 5.0, 5.0)],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=4.0,
        **_ARM,
    ),
    "shoulder_extension": dict(
        main=[("shoulder_flexion_{s}", 0.0, -50.0), ("elbow_flexion_{s}", 5.0, 5.0)],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=3.5,
        **_ARM,
    ),
    "shoulder_scaption": dict(
        main=[("shoulder_flexion_{s}", 0.0, 150.0)],
        base={"shoulder_abduction_{s}": 5.0, "elbow_flexion_{s}": 5.0},
        tempo_s=4.0,
        **{**_ARM, "kind": "scaption"},
    ),
    "shoulder_internal_rotation": dict(
        main=[("shoulder_rotation_{s}", 0.0, 60.0)],
        base=_ROTATION_POSTURE,
        tempo_s=3.0,
        **_ARM,
    ),
    "shoulder_external_rotation": dict(
        main=[("shoulder_rotation_{s}", 0.0, -75.0)],
        base=_ROTATION_POSTURE,
        tempo_s=3.0,
        **_ARM,
    ),
    "elbow_flexion": dict(
        main=[("elbow_flexion_{s}", 5.0, 130.0)],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=3.0,
        **_ARM,
    ),
    "seated_knee_extension": dict(
        main=[("knee_flexion_{s}", 90.0, 5.0)],
        base={
            "hip_flexion_{s}": 90.0,
            "shoulder_abduction_{s}": 5.0,
            "elbow_flexion_{s}": 60.0,
            "shoulder_flexion_{s}": 20.0,
        },
        tempo_s=4.0,
        anchor="pelvis",
        compensation="trunk",
        kind="angles",
        sides="both",
    ),
    "squat": dict(
        main=[
            ("knee_flexion_{s}", 0.0, 95.0),
            ("hip_flexion_{s}", 0.0, 100.0),
            ("ankle_dorsiflexion_{s}", 0.0, 18.0),
            ("pelvis_tilt", 0.0, 25.0),
            ("shoulder_flexion_{s}", 0.0, 80.0),
            ("lumbar_flexion", 0.0, 10.0),
        ],
        base={"shoulder_abduction_{s}": 5.0},
        tempo_s=4.0,
        anchor="feet",
        compensation="trunk",
        kind="planted",
        sides="both",
    ),
    # FMS deep squat: the dowel held overhead (shoulders flexed ~170 deg, elbows straight)
    # throughout; thighs past horizontal, shanks parallel to the trunk, heels down.
    "deep_squat": dict(
        main=[
            ("knee_flexion_{s}", 0.0, 100.0),
            ("hip_flexion_{s}", 0.0, 100.0),
            ("ankle_dorsiflexion_{s}", 0.0, 20.0),
            ("pelvis_tilt", 0.0, 20.0),
            ("lumbar_flexion", 0.0, 10.0),
            ("shoulder_flexion_{s}", 170.0, 175.0),
        ],
        base={"shoulder_abduction_{s}": 10.0, "elbow_flexion_{s}": 0.0},
        tempo_s=4.0,
        anchor="feet",
        compensation="trunk",
        kind="planted",
        sides="both",
    ),
    "sit_to_stand": dict(
        main=[
            ("knee_flexion_{s}", 90.0, 0.0),
            ("hip_flexion_{s}", 90.0, 0.0),
            ("ankle_dorsiflexion_{s}", 10.0, 0.0),
            ("shoulder_abduction_{s}", 5.0, 5.0),
        ],
        lean=[("pelvis_tilt", 30.0), ("lumbar_flexion", 15.0), ("hip_flexion_{s}", 30.0)],
        base={"elbow_flexion_{s}": 10.0},
        tempo_s=5.0,
        anchor="feet",
        compensation="trunk",
        kind="planted",
        sides="both",
    ),
    # FMS hurdle step: the leading leg lifted over a hurdle at tibial-tuberosity height (foot
    # above the stance knee) and back, stance leg straight, dowel across the shoulders.
    "hurdle_step": dict(
        main=[
            ("hip_flexion_{s}", 0.0, 95.0),
            ("knee_flexion_{s}", 0.0, 110.0),
            ("ankle_dorsiflexion_{s}", 0.0, 15.0),
        ],
        base=_DOWEL_ON_SHOULDERS,
        tempo_s=3.0,
        anchor="foot",
        plant="other",
        kind="angles",
        **_LEG1,
    ),
    # FMS in-line lunge: split stance, the front (moving side) knee bends to ~90 deg, the rear
    # knee comes down behind the front heel; both feet planted.
    "inline_lunge": dict(
        main=[("knee_flexion_{s}", 0.0, 90.0)],
        base={"shoulder_abduction_{s}": 10.0},
        tempo_s=4.0,
        anchor="foot",
        plant="moving",
        kind="inline_lunge",
        **_LEG1,
    ),
    # Side lunge: wide stance, the pelvis shifts over the lunging (moving side) foot whose knee
    # bends to ~80 deg, the trailing leg stays straight; arms reach forwards.
    "side_lunge": dict(
        main=[
            ("knee_flexion_{s}", 0.0, 80.0),
            ("lumbar_flexion", 0.0, 10.0),
            ("shoulder_flexion_{s}", 0.0, 60.0),
            ("shoulder_flexion_{o}", 0.0, 60.0),
        ],
        base={"shoulder_abduction_{s}": 10.0},
        tempo_s=4.0,
        anchor="foot",
        plant="moving",
        kind="side_lunge",
        **_LEG1,
    ),
    # FMS active straight-leg raise: supine, one leg raised with the knee straight.
    "straight_leg_raise": dict(
        main=[("hip_flexion_{s}", 0.0, 75.0), ("knee_flexion_{s}", 0.0, 0.0)],
        base={"pelvis_tilt": -90.0, "shoulder_abduction_{s}": 10.0},
        tempo_s=3.5,
        anchor="supine",
        kind="angles",
        **_LEG1,
    ),
    "gait": dict(
        main=[],
        base={},
        tempo_s=1.1,
        anchor="floor",
        compensation="trunk",
        kind="gait",
        sides="both",
    ),
}
