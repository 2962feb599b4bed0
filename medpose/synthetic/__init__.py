"""Synthetic patients with known truth: exercises, observation models, camera rigs,
imaging phantoms and complete session folders (see ``docs/synthetic.md``).

>>> import medpose.synthetic as syn
>>> truth = syn.make_session("/tmp/syn-session", seed=0)      # doctest: +SKIP
>>> squat = syn.make_session("/tmp/syn-squat", seed=0, protocol="deep_squat")  # doctest: +SKIP
"""

from __future__ import annotations

from .exercises import EXERCISES, ExerciseTruth, make_exercise, minimum_jerk, repetition_profile
from .fiducials import head_fiducials
from .kinect import KinectRecording, kinect_recording, write_uiprmd
from .observation import Observed, marker_based, markerless
from .phantom import Phantom, make_phantom, static_pose
from .plan import PROTOCOL_EXERCISES
from .rig import make_rig, project_to_cameras
from .session import SessionTruth, make_session

__all__ = [
    "EXERCISES",
    "ExerciseTruth",
    "make_exercise",
    "minimum_jerk",
    "repetition_profile",
    "Observed",
    "markerless",
    "marker_based",
    "Phantom",
    "make_phantom",
    "static_pose",
    "make_rig",
    "project_to_cameras",
    "SessionTruth",
    "make_session",
    "PROTOCOL_EXERCISES",
    "head_fiducials",
    "KinectRecording",
    "kinect_recording",
    "write_uiprmd",
]
