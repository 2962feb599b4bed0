"""Errors raised by medpose.

Every error medpose raises on bad input derives from :class:`MedposeError`, so a
script can catch them all at once.  Messages name the file, the field, what was
found and what was expected, and never contain patient identifiers.
"""

from __future__ import annotations

__all__ = [
    "MedposeError",
    "InputError",
    "FrameMismatch",
    "DegenerateConfiguration",
    "ProtocolError",
    "LimitError",
]


class MedposeError(Exception):
    """Base class of every error medpose raises on purpose."""


class InputError(MedposeError, ValueError):
    """A file, array or argument is malformed: names the source, the field, found and expected."""


class FrameMismatch(MedposeError, ValueError):
    """Points or transforms in different coordinate frames were combined."""


class DegenerateConfiguration(MedposeError, ValueError):
    """A geometric problem has no unique solution (too few, collinear or coincident points)."""


class ProtocolError(MedposeError, ValueError):
    """A protocol or session description is invalid or cannot be run."""


class LimitError(MedposeError, ValueError):
    """A joint angle or a joint-limit definition is outside what is allowed."""
