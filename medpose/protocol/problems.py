"""Problems found in a session folder, and the redaction of identifiers from them.

A :class:`Problem` names the file (relative to the session folder), the ``session.yaml``
field and what was found against what was expected.  :class:`Redactor` removes what must not
leave the session: the patient id (in the file, the field and the message: a YAML key, a
folder name or a reader's message may carry it) and the session folder's absolute location
(a message names ``trials/static.trc``, never ``/data/SYN-0001/trials/static.trc``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PATIENT_ID_MARK", "Problem", "Redactor", "format_problems"]

#: What replaces the patient id in messages.
PATIENT_ID_MARK = "<patient-id>"

# A list index in a field name.
_INDEX = re.compile(r"(\[\d+\])")
# An absolute path in free text (posix or Windows), up to whitespace or a quote.
_ABSOLUTE = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:[\\/]|/)[^\s'\"<>|,;]*")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a session.

    Attributes
    ----------
    file : str
        The file concerned, relative to the session folder (posix), e.g. ``"session.yaml"``.
    field : str
        The ``session.yaml`` field, e.g. ``"trials[1].rate_hz"`` (empty if none).
    message : str
        What was found and what was expected.
    """

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field + ': ' if self.field else ''}{self.message}"

    def to_dict(self) -> dict[str, str]:
        """``{"file", "field", "message"}`` (for JSON output)."""
        return {"file": self.file, "field": self.field, "message": self.message}


def format_problems(problems: Iterable[Problem]) -> str:
    """One ``  - file: field: message`` line per problem."""
    return "\n".join(f"  - {p}" for p in problems)


class Redactor:
    """Removes the patient id and the session folder's location from problem text.

    Parameters
    ----------
    root : Path
        The session folder: its absolute path (as given and resolved) becomes relative, and
        any other absolute path in a message is cut to its last part.
    patient_id : object, optional
        The patient id as written in ``session.yaml``; replaced by :data:`PATIENT_ID_MARK`
        in any letter case (an id shorter than 4 characters only where it stands as a whole word, so that an id
        ``7`` leaves ``cam07`` alone).  None keeps identifiers.
    cut_absolute : bool
        Cut absolute paths outside the session folder to their last part (default).
    """

    def __init__(self, root: Path, patient_id: object = None, *, cut_absolute: bool = True) -> None:
        self._cut = cut_absolute
        prefixes = {str(root), str(root.absolute())}
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            prefixes.add(str(root.resolve()))
        # longest first, so that a resolved path is not cut by a shorter one it contains; a
        # prefix counts only where a path part ends (the root /a is not the start of /about)
        # a relative root ("visit2") is a path only with a separator after it: alone it is a
        # word of the message (a trial of the same name), left as it is
        self._roots = [
            re.compile(
                r"(?<![\w.~-])"
                + re.escape(p)
                + (r"(?:[\\/]|(?![\w.~-]))" if Path(p).is_absolute() else r"[\\/]")
            )
            for p in sorted({p.rstrip("/\\") for p in prefixes} - {"", "."}, key=len)[::-1]
        ]
        pid = patient_id.strip() if isinstance(patient_id, str) else ""
        if not pid:
            self._pid = None
        elif len(pid) >= 4:
            self._pid = re.compile(re.escape(pid), re.IGNORECASE)
        else:
            self._pid = re.compile(
                rf"(?<![A-Za-z0-9]){re.escape(pid)}(?![A-Za-z0-9])", re.IGNORECASE
            )

    def text(self, text: str) -> str:
        """``text`` without the patient id and with paths made relative or cut to their name."""
        for prefix in self._roots:
            text = prefix.sub(lambda m: "" if m.group(0)[-1:] in "/\\" else ".", text)
        if self._cut:
            text = _ABSOLUTE.sub(lambda m: _last_part(m.group(0)), text)
        return self.patient(text)

    def patient(self, text: str) -> str:
        """``text`` without the patient id (paths left as they are: for a name, such as the
        session folder's, that the location rules would turn into ``.``)."""
        return text if self._pid is None else self._pid.sub(PATIENT_ID_MARK, text)

    def field(self, field: str) -> str:
        """A field name redacted, list indices (``trials[1]``) left as they are."""
        return "".join(
            part if _INDEX.fullmatch(part) else self.text(part) for part in _INDEX.split(field)
        )

    def problem(self, p: Problem) -> Problem:
        """``p`` with its file, field and message redacted."""
        return Problem(self.text(p.file), self.field(p.field), self.text(p.message))

    def problems(self, problems: Iterable[Problem]) -> list[Problem]:
        """Every problem redacted."""
        return [self.problem(p) for p in problems]


def _last_part(path: str) -> str:
    name = re.split(r"[\\/]", path.rstrip("/\\"))[-1]
    return name or "/"
