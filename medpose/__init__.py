"""medpose: medical motion assessment and surgical navigation."""
from __future__ import annotations

from ._version import __version__
from .data import JointAngles, KeypointSequence, Landmarks
from .errors import (DegenerateConfiguration, FrameMismatch, InputError, LimitError, MedposeError,
                     ProtocolError)
from .geometry import Transform

__all__ = [
    "__version__",
    "Transform", "Landmarks", "KeypointSequence", "JointAngles",
    "MedposeError", "InputError", "FrameMismatch", "DegenerateConfiguration", "ProtocolError", "LimitError",
]
