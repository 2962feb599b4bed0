"""Helpers shared by the readers and writers: atomic writes and file names for messages.

How medpose writes a file
-------------------------
Every writer goes through :func:`atomic_path` (or :func:`atomic_write`, :func:`atomic_dir` for a
folder of files).  The new content is written to a temporary file *beside* the destination
(``.<name>.<random>.tmp`` in the same folder, hence on the same file system), flushed to disk
with ``fsync`` and renamed onto the destination with ``os.replace``, an atomic operation on
POSIX file systems; the folder is then synced too, so the rename itself survives a power cut.
Consequences:

- A reader sees the old file or the new one, never a half-written one.  A failure (a full
  disk, a write error, an exception, Ctrl-C) leaves the old file untouched and removes the
  temporary file.  A process killed outright (SIGKILL, power cut) may leave a temporary file
  behind; the next write to the same destination removes it.
- Replacing a file keeps its permission bits (a 0644 file stays 0644); a new file gets the
  mode a plain ``open()`` would give it (0666 less the umask).
- A destination that is a symbolic link is *followed*: the file the link points to is replaced
  (its temporary file is written in the target's folder), and the link stays a link, as a
  plain ``open(path, "w")`` would do.  A link loop raises :class:`~medpose.errors.InputError`.
- A folder written with :func:`atomic_dir` is built under a temporary name beside it and then
  swapped in as a whole: the earlier content disappears (no stale files of a longer
  sequence), and an interrupted write leaves the earlier folder as it was.

References: POSIX ``rename(2)`` (atomic replacement of the destination name); Linux
``renameat2(2)`` with ``RENAME_EXCHANGE`` (atomic swap of two folders); ``fsync(2)`` notes on
syncing the containing directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import InputError

try:  # POSIX only; elsewhere leftover temporary files are simply not collected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "atomic_write",
    "atomic_path",
    "atomic_dir",
    "require_file",
    "require_text_path",
    "display_name",
]

#: Longest destination-name part kept in a temporary name (file names are at most 255 bytes).
_MAX_STEM = 200
_TOKEN = "[a-z0-9_]{8}"  # also matches the names tempfile.mkstemp made in earlier versions


def display_name(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The name used for a file in messages, without the folders above it.

    Parent folders are often named after the patient, so messages never show them.

    Parameters
    ----------
    path : path-like
        The file or folder.
    root : path-like, optional
        A folder the user already knows (a session folder, a dataset root).  When ``path``
        lies inside ``root`` the name is the path relative to ``root`` (``trials/squat.trc``).

    Returns
    -------
    str
        ``path`` relative to ``root`` when it lies inside it, else the last part of ``path``
        (``squat.trc``).
    """
    p = Path(path)
    if root is not None:
        r = Path(root)
        rel: Path | None = None
        with contextlib.suppress(ValueError):
            rel = p.relative_to(r)
        if rel is None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                rel = p.resolve().relative_to(r.resolve())
        if rel is not None and rel.parts and ".." not in rel.parts:
            return rel.as_posix()
    return p.name or str(p)


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path; raise InputError naming it when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{display_name(p)}: {what} not found")
    return p


def _undecodable_part(p: Path) -> str | None:
    """The first part of ``p`` that is not valid UTF-8 text, as its bytes would print; None
    when every part is text."""
    for part in p.parts:
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            try:  # a byte the file system gave that is not UTF-8 (Python's surrogateescape)
                return part.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:  # another lone surrogate
                return part.encode("utf-8", "backslashreplace").decode("ascii")
    return None


def require_text_path(path: str | os.PathLike, what: str = "path") -> Path:
    """Return ``path`` as a Path; raise InputError when its name is not valid UTF-8 text.

    A file or folder name with a byte that is not UTF-8 (``sess_\\xff``) reaches Python as a
    string with a lone surrogate; the C and C++ libraries medpose passes paths to (SimpleITK,
    ezc3d, SQLite) cannot encode it: SimpleITK aborts the whole process.  Readers and writers
    call this before any such library sees the path.  The message names ``what`` and the
    offending part of the path, its bad bytes written as ``\\xff``.
    """
    p = Path(path)
    bad = _undecodable_part(p)
    if bad is not None:
        raise InputError(
            f"{what} '{bad}': the name is not valid UTF-8 text; expected a file or folder name "
            "in UTF-8 (rename it)"
        )
    return p


# ---------------------------------------------------------------------------- internals
def _destination(path: str | os.PathLike) -> Path:
    """The path really written: ``path``, or the file a symbolic link at ``path`` points to."""
    p = Path(path)
    if not p.is_symlink():
        return p
    try:
        return p.resolve(strict=True)
    except FileNotFoundError:  # dangling link: create the file it names, as open() would
        return Path(os.path.realpath(p))
    except (RuntimeError, OSError) as exc:  # a loop (RuntimeError before Python 3.13)
        raise InputError(
            f"{display_name(p)}: symbolic link that cannot be followed ({exc.__class__.__name__}: "
            "a link loop?); expected a link to a file or a missing file"
        ) from None


def _stem(dest: Path) -> str:
    stem = dest.name
    if len(stem.encode()) > _MAX_STEM:
        stem = stem.encode()[:_MAX_STEM].decode(errors="ignore")
    return stem


def _temp_name(dest: Path, kind: str, suffix: str = "") -> Path:
    return dest.parent / f".{_stem(dest)}.{secrets.token_hex(4)}.{kind}{suffix}"


def _lock(fd: int) -> None:
    """Hold an exclusive lock on ``fd`` while writing: the mark of a live writer."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _orphan(path: Path) -> bool:
    """True when ``path`` is a temporary file or folder whose writer has died.

    A writer holds ``flock`` on its temporary file until it ends; the kernel releases the lock
    when the process dies (even by SIGKILL), so a temporary whose lock can be taken is orphaned.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return True


def _collect_leftovers(dest: Path, kinds: tuple[str, ...]) -> list[Path]:
    """Temporary files/folders for ``dest`` left by killed writers.

    Their names are ``.<name>.<token>.<kind>[<suffix>]``; only those whose writer is dead
    (see :func:`_orphan`) are returned.
    """
    pattern = re.compile(rf"\.{re.escape(_stem(dest))}\.{_TOKEN}\.({'|'.join(kinds)})(\.\w+)*")
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return []
    return [dest.parent / n for n in names if pattern.fullmatch(n) and _orphan(dest.parent / n)]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so that a rename in it is durable; file systems that cannot are skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms that cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _create_exclusive(dest: Path, suffix: str) -> tuple[Path, int]:
    """Create a new, locked temporary file beside ``dest``; mode 0666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = _temp_name(dest, "tmp", suffix)
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            _lock(fd)
            # a concurrent collector may have removed it between open and flock
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return tmp, fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.close(fd)


def _copy_owner_mode(src_stat: os.stat_result | None, default_mode: int, tmp: Path) -> None:
    mode = stat.S_IMODE(src_stat.st_mode) if src_stat is not None else default_mode
    os.chmod(tmp, mode)
    if src_stat is not None and hasattr(os, "chown"):
        with contextlib.suppress(OSError):  # keep the group where we may (we own the file)
            if os.stat(tmp).st_gid != src_stat.st_gid:
                os.chown(tmp, -1, src_stat.st_gid)


def _name_unnamed(exc: BaseException, path: str | os.PathLike) -> None:
    """Give an OSError that names no file (a full disk: ``write`` reports ENOSPC alone) the
    name of the destination being written (:func:`display_name`: no folders above it), so that
    its message says which output failed."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        exc.filename = display_name(path)


# ---------------------------------------------------------------------------- public
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The block writes the new content to the yielded path (which exists, empty); on success it
    is synced to disk, given the mode of the file it replaces (else 0666 less the umask),
    renamed onto ``path`` and the folder is synced.  On any exception (including
    ``KeyboardInterrupt``) the temporary file is removed, ``path`` is untouched and the
    exception propagates.  See the module docstring for symbolic links and leftovers.

    Parameters
    ----------
    path : path-like
        The destination file; its folder is created if absent.
    suffix : str, optional
        Ending of the temporary file's name, for libraries that choose the format from the
        name or append an extension (``".c3d"``, ``".nii.gz"``).

    Raises
    ------
    InputError
        ``path`` is an existing folder, or a symbolic link that cannot be followed.
    OSError
        Whatever the file system reports (a full disk, no permission); one that names no file
        (``write`` reports a full disk alone) is given the destination's name as ``filename``.
    """
    if suffix and not re.fullmatch(r"(\.\w+)+", suffix):
        raise InputError(f"atomic_path: suffix must look like '.ext', found {suffix!r}")
    require_text_path(path, "output file")
    dest = _destination(path)
    if dest.is_dir():
        raise InputError(f"{display_name(path)}: is a folder; expected a file to write")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _collect_leftovers(dest, ("tmp",)):
        with contextlib.suppress(OSError):
            leftover.unlink()
    tmp, fd = _create_exclusive(dest, suffix)
    try:
        default_mode = stat.S_IMODE(os.fstat(fd).st_mode)  # what the umask left of 0666
        yield tmp
        try:
            old: os.stat_result | None = os.stat(dest)
        except FileNotFoundError:
            old = None
        _copy_owner_mode(old, default_mode, tmp)
        _fsync_path(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _name_unnamed(exc, path)
        raise
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "w",
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` when the block succeeds.

    Same guarantees as :func:`atomic_path`.  ``mode`` is ``"w"`` (text, ``encoding``) or
    ``"wb"`` (bytes).
    """
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as fh:
        yield fh


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the platform or the file system cannot, so that the caller falls
    back to two renames.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _fsync_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for f in files:
            _fsync_path(Path(root) / f)
        for d in dirs:
            _fsync_dir(Path(root) / d)
    _fsync_dir(folder)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new, empty temporary folder beside ``path``; on success it replaces ``path``.

    The block writes the whole new content into the yielded folder.  On success every file in
    it is synced, the folder gets the mode of the folder it replaces (else 0777 less the
    umask), and it is swapped with the earlier folder in one step (Linux ``renameat2``
    exchange; elsewhere two renames); the earlier folder and everything in it is then removed.
    On any exception the temporary folder is removed and ``path`` is untouched.  Temporary
    folders left by a killed writer are removed on the next write to ``path`` (and an earlier
    folder set aside by a writer killed between its two renames is put back first).

    Parameters
    ----------
    path : path-like
        The destination folder; its parent is created if absent.  A symbolic link is
        followed (the folder it points to is replaced).

    Raises
    ------
    InputError
        ``path`` exists and is not a folder, or is a symbolic link that cannot be followed.
    OSError
        Whatever the file system reports, unchanged.
    """
    require_text_path(path, "output folder")
    dest = _destination(path)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{display_name(path)}: exists and is not a folder; expected a folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _collect_leftovers(dest, ("tmpdir", "old")):
        if leftover.suffix == ".old" and not dest.exists():
            with contextlib.suppress(OSError):  # killed between its two renames: put it back
                os.rename(leftover, dest)
                continue
        shutil.rmtree(leftover, ignore_errors=True)
    while True:
        tmp = _temp_name(dest, "tmpdir")
        try:
            os.mkdir(tmp, 0o777)
            break
        except FileExistsError:
            continue
    fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    aside: Path | None = None
    try:
        _lock(fd)
        default_mode = stat.S_IMODE(os.fstat(fd).st_mode)
        yield tmp
        try:
            old: os.stat_result | None = os.stat(dest)
        except FileNotFoundError:
            old = None
        _copy_owner_mode(old, default_mode, tmp)
        _fsync_tree(tmp)
        if old is None:
            os.rename(tmp, dest)  # fails rather than merges if a folder appeared meanwhile
        elif not _exchange(tmp, dest):
            aside = tmp.with_suffix(".old")
            os.rename(dest, aside)
            os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException as exc:
        if aside is not None and aside.exists() and not dest.exists():
            with contextlib.suppress(OSError):
                os.rename(aside, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        _name_unnamed(exc, path)
        raise
    finally:
        os.close(fd)
    # tmp now holds the earlier folder (after an exchange), or aside does
    shutil.rmtree(aside if aside is not None else tmp, ignore_errors=True)
