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
:mod:`~medpose.protocol.assessment` (:class:`Assessment`, its result); running one on a whole
session: :mod:`~medpose.protocol.execute` (:func:`execute_session`, :func:`input_hashes`,
:func:`run_to_folder`), :mod:`~medpose.protocol.session_run` (the steps),
:mod:`~medpose.protocol.inputs` (trials and input hashes),
:mod:`~medpose.protocol.navigation` (registration) and
:mod:`~medpose.protocol.session_result` (:class:`SessionResult`, output files, study rows).
"""

from __future__ import annotations

from .assessment import Assessment
from .definition import Protocol
from .execute import RunOutcome, execute_session, input_hashes, run_to_folder
from .problems import Problem
from .session import Session, Trial, write_session_yaml
from .session_result import SessionResult
from .validate import validate_session

__all__ = [
    "Assessment",
    "Protocol",
    "Session",
    "Trial",
    "Problem",
    "validate_session",
    "write_session_yaml",
    "execute_session",
    "input_hashes",
    "run_to_folder",
    "RunOutcome",
    "SessionResult",
]
