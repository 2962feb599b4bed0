"""The constrained skeleton fit: joint angles that respect anatomy, for every frame at once.

:func:`fit` finds, for every frame, the DoF values ``q`` of a
:class:`~medpose.kinematics.skeleton.Skeleton` whose keypoints best match the observed ones,

.. math::

    \\min_{lo \\le q \\le hi} \\sum_k c_k \\lVert FK_k(q) - x_k \\rVert^2
        + \\sum_d (w_s\\, b_d(q_d))^2 + \\sum_d (\\lambda (q_d - \\bar q_d))^2

(confidence-weighted keypoint residuals in mm; an optional soft prior ``b_d`` = depth inside a
band near the limits, :class:`~medpose.kinematics.limits.JointLimits`; an optional temporal
smoothness towards the mean ``\\bar q`` of the neighbouring frames).

Solver: projected Levenberg-Marquardt (Levenberg 1944; Marquardt 1963, SIAM J Appl Math
11:431-441), batched over frames in torch.  Box constraints are kept by projection: every
step is clipped into ``[lo, hi]`` and DoFs at a bound whose gradient points outwards are
frozen for that step (the active set of Bertsekas 1982, SIAM J Control Optim 20:221-246), so a
returned angle can never leave its hard limits.  The Jacobian is analytic: a revolute DoF
with world axis ``w`` at joint centre ``o`` moves a downstream keypoint ``x`` by
``w x (x - o)`` per radian (e.g. Siciliano et al. 2009, *Robotics*, eq. 3.30); the axis of
each rotation of an intrinsic Euler sequence is the parent's axis rotated by the preceding
elementary rotations.  J^T J is summed over keypoint groups (the subtrees below the root),
since a keypoint moves only with its own subtree's, the root's and the translation DoFs.
The smoothness term couples neighbouring frames; it is solved by
block-Jacobi iterations (each LM step holds the neighbours at their current values), which
keeps every frame's system independent and the whole fit batched.

Warm start: every frame starts from a rigid (Kabsch 1976) fit of the zero-pose trunk and
pelvis keypoints; every ``warm_stride``-th frame is solved first, and the others then start
from the nearest solved neighbour.  Frames are processed in chunks, so memory grows linearly
with the recording's length.

The modules, each readable alone: :mod:`.orientation` (axes, mirror check, Euler angles),
:mod:`.problem` (:func:`prepare`, :class:`FitProblem`, the posture prior), :mod:`.context`
(batched forward kinematics and Jacobian), :mod:`.solver` (normal equations, damping, limits),
:mod:`.starts` (rigid starts, interpolation, Euler branches, repairs), :mod:`.gaps` (frames
with keypoints missing, held near the poses across the gap), :mod:`.continuity`
(each joint's readings on one branch over time), :mod:`.device` (the
problem's constants on the fit's device), :mod:`.run` (the chunked driver), :mod:`.result` (:class:`Fit`),
:mod:`.core` (the fit on a given skeleton), :mod:`.api` (:func:`fit`, calibrating when asked)
and :mod:`.opensim_zero` (an OpenSim model's zero pose as a fit reads it, for ``Fit.to_mot``).
"""

from __future__ import annotations

from .api import fit
from .opensim_zero import opensim_zero
from .orientation import (
    MirrorWarning,
    alignment_rotation,
    check_handedness,
    euler_from_matrix,
    y_up_transform,
)
from .problem import DEFAULT_PRIOR, NOISE_FLOOR_MM, FitProblem, prepare, prior_sd
from .result import Fit

__all__ = [
    "Fit",
    "fit",
    "FitProblem",
    "prepare",
    "alignment_rotation",
    "y_up_transform",
    "check_handedness",
    "MirrorWarning",
    "euler_from_matrix",
    "DEFAULT_PRIOR",
    "prior_sd",
    "NOISE_FLOOR_MM",
    "opensim_zero",
]
