"""Safe parsing of JSON, TOML and YAML documents read by medpose.

Every structured-text reader (OpenPose JSON, Parquet metadata, Slicer ``.mrk.json``,
calibration TOML and OpenCV YAML) parses through these functions, so that a hostile document
gives an :class:`~medpose.errors.InputError` naming the file instead of a ``RecursionError``,
an ``OverflowError`` or an exponential expansion:

* nesting deeper than :data:`MAX_DEPTH` is refused (checked before PyYAML's scanner, which is
  quadratic in the depth of ``[[[[...``);
* integers of :data:`MAX_INT` or more (a 400-digit number overflows a float) are refused, and in
  JSON so are ``Infinity`` and numbers that overflow (``1e999``); ``NaN`` reads as a float NaN;
* YAML aliases (``*name``) are refused altogether: no "billion laughs".  Loading is
  ``yaml.SafeLoader``-based (no Python tags).

Files are read (size limit, strict UTF-8) with :func:`medpose.io._text.read_text` first.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import yaml

from ..errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "SafeYAMLLoader",
    "StrictYAMLLoader",
    "load_json",
    "load_toml",
    "load_yaml",
]

#: Deepest nesting of lists and mappings accepted in JSON, TOML and YAML.
MAX_DEPTH = 64
#: Largest integer accepted in JSON, TOML or YAML (magnitude).
MAX_INT = 2**63


def _check_tree(doc: Any, src: str, kind: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers beyond MAX_INT, without recursion."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, dict):
            children: Any = obj.values()
        elif isinstance(obj, list):
            children = obj
        else:
            if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= MAX_INT:
                raise InputError(
                    f"{src}: {kind} integer of {len(str(abs(obj)))} digits; expected a number "
                    f"below 2**63"
                )
            continue
        if depth >= MAX_DEPTH:
            raise InputError(f"{src}: {kind} nested deeper than {MAX_DEPTH} levels")
        stack.extend((c, depth + 1) for c in children)


def load_json(text: str, src: str) -> Any:
    """Parse JSON text safely.

    ``NaN`` reads as a float NaN (a missing value); ``Infinity``, numbers that overflow a
    float, integers of 2**63 or more and nesting deeper than :data:`MAX_DEPTH` are refused.

    Raises
    ------
    InputError
        Naming ``src`` (and the line and column for syntax errors).
    """

    def parse_int(s: str) -> int:
        digits = len(s.lstrip("-"))
        if digits > 19 or abs(int(s)) >= MAX_INT:
            raise InputError(
                f"{src}: JSON integer of {digits} digits; expected a number below 2**63"
            )
        return int(s)

    def parse_float(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise InputError(f"{src}: JSON number {s[:40]!r} overflows; expected a finite number")
        return v

    def parse_constant(s: str) -> float:
        if s == "NaN":
            return math.nan
        raise InputError(f"{src}: JSON value {s}; expected a finite number")

    try:
        doc = json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )
    except json.JSONDecodeError as e:
        truncated = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated")
        cut = "; the file may be truncated" if truncated else ""
        raise InputError(
            f"{src}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg}){cut}"
        ) from None
    except RecursionError:
        raise InputError(f"{src}: JSON nested deeper than {MAX_DEPTH} levels") from None
    _check_tree(doc, src, "JSON")
    return doc


def load_toml(text: str, src: str) -> dict[str, Any]:
    """Parse TOML text, refusing nesting deeper than :data:`MAX_DEPTH` and huge integers.

    Raises
    ------
    InputError
        Naming ``src`` and, for syntax errors, the line and column.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{src}: not valid TOML ({e})") from None
    except RecursionError:
        raise InputError(f"{src}: TOML nested deeper than {MAX_DEPTH} levels") from None
    _check_tree(doc, src, "TOML")
    return doc


class SafeYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and nesting deeper than :data:`MAX_DEPTH`.

    Refusing aliases (``*name``) altogether rules out the "billion laughs" expansion: no file
    medpose reads needs them (OpenCV FileStorage never writes them).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found alias *{event.anchor}; YAML aliases are not accepted",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class StrictYAMLLoader(SafeYAMLLoader):
    """:class:`SafeYAMLLoader` for medpose's own documents (session.yaml, protocols): a key
    written twice in one mapping is refused (plain YAML keeps the last), and dates stay the
    text written (the schema checks them)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r}", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)
        return _STR if tag == _TIMESTAMP else tag


def load_yaml(
    text: str, src: str, loader: type[SafeYAMLLoader] = SafeYAMLLoader, kind: str = "YAML"
) -> Any:
    """Parse YAML text with ``loader`` (a :class:`SafeYAMLLoader`), refusing huge integers.

    Raises
    ------
    InputError
        Naming ``src`` and the line of the problem.  An :class:`InputError` raised by a
        constructor of ``loader`` is prefixed with ``src``.
    """
    # PyYAML's scanner is quadratic in the depth of flow collections ([[[[...), so bound that
    # depth first, cheaply (brackets inside quoted text count too: harmless for real files).
    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    step = np.zeros(256, dtype=np.int64)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    depth = np.cumsum(step[raw]) if raw.size else np.zeros(1, dtype=np.int64)
    if depth.max() > MAX_DEPTH:
        pos = int(np.argmax(depth > MAX_DEPTH))
        line = text.encode("utf-8", "surrogatepass").count(b"\n", 0, pos) + 1
        raise InputError(f"{src}: line {line}: {kind} nested deeper than {MAX_DEPTH} levels")
    try:
        doc = yaml.load(text, Loader=loader)  # loader derives from yaml.SafeLoader
    except InputError as e:
        raise InputError(f"{src}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{src}: not valid {kind}{at}: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise InputError(f"{src}: {kind} nested deeper than {MAX_DEPTH} levels") from None
    _check_tree(doc, src, kind)
    return doc
