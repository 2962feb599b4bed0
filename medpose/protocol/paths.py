"""The path rules of a session folder: every file named lies inside the folder.

A path in ``session.yaml`` is relative to the session folder and may not leave it: absolute
paths (``/x``, ``C:\\x``) and ``..`` that climbs out are refused by their text; symbolic links
are resolved, so a link pointing outside is refused too, and so is a link inside a folder that
a reader lists (an OpenPose JSON folder, a DICOM series folder).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = [
    "SESSION_FILE",
    "describe_path",
    "folder_entry_problems",
    "path_text_problem",
    "resolve_inside",
    "session_location",
]

SESSION_FILE = "session.yaml"

# Folder entries listed in one message before "and N more".
_SHOWN_ENTRIES = 5
# Entries of one folder checked at most (a camera folder holds one file per video frame).
_MAX_ENTRIES = 1_000_000


def describe_path(rel: str) -> str:
    """``rel`` quoted for a message; an absolute path is cut to its last part (no parent folders)."""
    if _is_absolute(rel):
        name = PureWindowsPath(rel).name or PurePosixPath(rel).name
        return f"an absolute path (ending in {name!r})" if name else "an absolute path"
    return repr(rel)


def _is_absolute(rel: str) -> bool:
    return bool(
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or PureWindowsPath(rel).drive
    )


def path_text_problem(rel: object) -> str | None:
    """What is wrong with the text of a session path (None: a relative path that stays inside).

    Parameters
    ----------
    rel : object
        The value written in ``session.yaml``.
    """
    if not isinstance(rel, str) or not rel.strip():
        return f"expected a path relative to the session folder (text), found {type(rel).__name__}"
    if "\x00" in rel:
        return "expected a path, found text with a NUL character"
    if _is_absolute(rel):
        return "absolute paths are not allowed; give a path relative to the session folder"
    depth = 0
    for part in PurePosixPath(rel.replace("\\", "/")).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return "path leaves the session folder ('..'); files must lie inside it"
    return None


def _resolve(p: Path) -> tuple[Path | None, str | None]:
    """``p.resolve()``, or the reason it cannot be resolved (a link loop, a name too long)."""
    try:
        return p.resolve(), None
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        return None, "is a symbolic link loop; expected a file or folder"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None, "is a symbolic link loop; expected a file or folder"
        return None, f"cannot be resolved ({e.strerror or type(e).__name__})"
    except ValueError:
        return None, "is not a usable path"


def resolve_inside(root: Path, rel: object) -> tuple[Path | None, str | None]:
    """``root / rel`` if it stays inside ``root`` once links are resolved, else the reason.

    Parameters
    ----------
    root : Path
        The session folder.
    rel : object
        The path written in ``session.yaml``.

    Returns
    -------
    (Path or None, str or None)
        ``(root / rel, None)`` when allowed, ``(None, reason)`` otherwise.
    """
    why = path_text_problem(rel)
    if why:
        return None, why
    assert isinstance(rel, str)
    real_root, why = _resolve(root)
    if real_root is None:
        return None, f"the session folder {why}"
    target, why = _resolve(root / rel)
    if target is None:
        return None, why
    if target != real_root and real_root not in target.parents:
        return None, (
            "resolves (through a symbolic link) to a place outside the session folder; refused"
        )
    return root / rel, None


def folder_entry_problems(folder: Path, root: Path) -> list[str]:
    """Entries of ``folder`` that a reader listing it must not open.

    Refused: symbolic links that resolve outside ``root`` (or loop), and anything that is
    neither a regular file nor a folder (a FIFO would block the reader, a device would feed it
    without end).  The check is not recursive: the readers do not recurse either.

    Returns
    -------
    list of str
        One message per kind of refused entry, naming up to five of them.
    """
    real_root, _ = _resolve(root)
    outside: list[str] = []
    loops: list[str] = []
    special: list[str] = []
    try:
        with os.scandir(folder) as it:
            for n, entry in enumerate(it):
                if n >= _MAX_ENTRIES:
                    return [f"holds more than {_MAX_ENTRIES} entries; refused"]
                if entry.is_symlink():
                    target, _ = _resolve(Path(entry.path))
                    if target is None:
                        loops.append(entry.name)
                        continue
                    if real_root is None or (
                        target != real_root and real_root not in target.parents
                    ):
                        outside.append(entry.name)
                        continue
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError:
                    continue  # a dangling link: the reader reports the missing file
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    special.append(entry.name)
    except OSError as e:
        return [f"cannot be listed ({e.strerror or type(e).__name__})"]
    out = []
    for names, what in (
        (outside, "symbolic link(s) to a place outside the session folder; refused"),
        (loops, "symbolic link loop(s)"),
        (special, "entries that are neither files nor folders (FIFO, socket, device); refused"),
    ):
        if names:
            names.sort()
            shown = names[:_SHOWN_ENTRIES]
            more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
            out.append(f"{len(names)} {what}: {shown}{more}")
    return out


def session_location(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(session folder, session.yaml)`` from the folder or the YAML file's path."""
    p = Path(path)
    try:
        is_file = p.is_file()
    except (OSError, ValueError):
        is_file = False
    if is_file or (p.suffix.lower() in (".yaml", ".yml") and not p.is_dir()):
        return p.parent, p
    return p, p / SESSION_FILE
