"""Reading ``session.yaml`` into a plain document, safely and exactly as written.

* Safe and bounded: read with :func:`medpose.io._text.read_text` (strict UTF-8, at most
  :data:`MAX_BYTES`) and parsed with a :class:`medpose.io._text.SafeYAMLLoader` (no Python
  objects, no aliases, so no "billion laughs"; nesting at most ``MAX_DEPTH`` levels).
* Text stays text: YAML 1.1 reads ``id: 00123456`` as the octal number 42798 and
  ``name: 2026-11-25`` as a date.  Every mapping key, and the fields that hold text (the
  patient id, trial names, exercise names, camera names, notes and every path), keep the
  characters written in the file; a date-like value anywhere is kept as text for the schema to
  check (so ``date: 2026-02-31`` is a problem naming the field, not a crash of the YAML
  constructor).  A key written twice is refused.

Every failure is returned as a :class:`~medpose.protocol.problems.Problem` naming the file and,
where known, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..io._text import StrictYAMLLoader, load_yaml, read_text
from .paths import path_text_problem, resolve_inside
from .problems import Problem

__all__ = ["MAX_BYTES", "parse_session_text", "read_session_document"]

#: Largest ``session.yaml`` read, bytes.
MAX_BYTES = 1 << 20

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


class _SessionLoader(StrictYAMLLoader):
    """The bounded safe loader, keeping text fields as written and refusing repeated keys."""

    def construct_document(self, node: Any) -> Any:
        _keep_text_fields(node)
        return super().construct_document(node)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as e:
            # a value with an explicit tag that its constructor refuses (!!int abc)
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{node.tag.rsplit(':', 1)[-1]} value that cannot be read ({e})",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        for key, _ in node.value:
            _as_text(key)  # every key of session.yaml is text: `00123456:` is not 42798
        return super().construct_mapping(node, deep=deep)


def _value(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _as_text(node: yaml.Node | None) -> None:
    """Make a scalar node construct as the text written (not null: a missing value stays None)."""
    if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
        node.tag = _STR


def _keep_text_fields(root: yaml.Node) -> None:
    """Retag the scalars of the text fields of a session document as strings."""
    if not isinstance(root, yaml.MappingNode):
        return
    patient = _value(root, "patient")
    if isinstance(patient, yaml.MappingNode):
        _as_text(_value(patient, "id"))
    imaging = _value(root, "imaging")
    if isinstance(imaging, yaml.MappingNode):
        for key in ("volume", "landmarks"):
            _as_text(_value(imaging, key))
    for key in ("calibration", "notes"):
        _as_text(_value(root, key))
    trials = _value(root, "trials")
    if not isinstance(trials, yaml.SequenceNode):
        return
    for trial in trials.value:
        if not isinstance(trial, yaml.MappingNode):
            continue
        for key in ("name", "exercise", "keypoints"):
            _as_text(_value(trial, key))
        cameras = _value(trial, "cameras")
        if isinstance(cameras, yaml.MappingNode):
            for k, v in cameras.value:
                _as_text(k)
                _as_text(v)


def parse_session_text(text: str, file: str) -> tuple[dict | None, list[Problem]]:
    """Parse the text of a ``session.yaml`` (see the module docstring).

    Parameters
    ----------
    text : str
        The file's content.
    file : str
        Its name for messages (relative to the session folder).

    Returns
    -------
    (dict or None, list of Problem)
        The document, or None and the one problem that stopped the reading.
    """
    try:
        doc = load_yaml(text, file, loader=_SessionLoader)
    except InputError as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, [Problem(file, "", first_line.removeprefix(f"{file}: "))]
    if not isinstance(doc, dict):
        return None, [
            Problem(
                file,
                "",
                "expected a mapping of fields (medpose_session, patient, ...), "
                f"found {type(doc).__name__}",
            )
        ]
    return doc, []


def read_session_document(root: Path, file: Path) -> tuple[dict | None, list[Problem]]:
    """Read and parse ``file`` (the session's YAML) inside the session folder ``root``.

    Returns
    -------
    (dict or None, list of Problem)
        The document, or None and the problem that stopped the reading: a missing folder or
        file, a link leading outside the folder, a file too large, not UTF-8 or not YAML.
    """
    name = file.name or "session.yaml"
    try:
        root_exists = root.is_dir()
    except (OSError, ValueError):
        root_exists = False
    if not root_exists:
        shown = root.name or str(root)
        what = "does not exist" if not _exists(root) else "is not a folder"
        return None, [Problem(name, "", f"the session folder {shown!r} {what}")]
    if path_text_problem(name) is None:
        p, why = resolve_inside(root, name)
        if p is None:
            return None, [Problem(name, "", f"{why}")]
    try:
        if not file.is_file():
            what = "not found in the session folder" if not _exists(file) else "is not a file"
            return None, [Problem(name, "", f"{what}; expected session.yaml")]
        text = read_text(file, "session file", MAX_BYTES)
    except InputError as e:
        return None, [Problem(name, "", str(e).removeprefix(f"{name}: "))]
    except OSError as e:
        return None, [Problem(name, "", f"cannot be read ({e.strerror or type(e).__name__})")]
    return parse_session_text(text, name)


def _exists(p: Path) -> bool:
    try:
        return p.exists() or p.is_symlink()
    except (OSError, ValueError):
        return False
