"""Sessions (and, later, assessment protocols and their runner)."""

from __future__ import annotations

from .session import Problem, Session, Trial, validate_session, write_session_yaml

__all__ = ["Session", "Trial", "Problem", "validate_session", "write_session_yaml"]
