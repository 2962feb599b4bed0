"""Sessions and protocols: the ``session.yaml`` schema, validation and the session model.

Modules: :mod:`~medpose.protocol.schema` (the pydantic schema of ``session.yaml``),
:mod:`~medpose.protocol.document` (reading the YAML safely), :mod:`~medpose.protocol.paths`
(the rule that every file lies inside the session folder), :mod:`~medpose.protocol.problems`
(:class:`Problem` and the redaction of identifiers), :mod:`~medpose.protocol.validate`
(:func:`validate_session`) and :mod:`~medpose.protocol.session` (:class:`Session`).
Protocols: :mod:`~medpose.protocol.definition` (:class:`Protocol`, the catalogue),
:mod:`~medpose.protocol.definition_schema` (the protocol file's schema) and
:mod:`~medpose.protocol.vocabulary` (the names a protocol may use); running one on a trial:
:mod:`~medpose.protocol.runner` (:meth:`Protocol.run`) and
:mod:`~medpose.protocol.assessment` (:class:`Assessment`, its result).
"""

from __future__ import annotations

from .assessment import Assessment
from .definition import Protocol
from .problems import Problem
from .session import Session, Trial, write_session_yaml
from .validate import validate_session

__all__ = [
    "Assessment",
    "Protocol",
    "Session",
    "Trial",
    "Problem",
    "validate_session",
    "write_session_yaml",
]
