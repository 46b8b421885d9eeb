"""The one way the Python layer writes a file: whole or not at all, with the mode a plain ``open`` would give.

A temporary beside the target is written, flushed and fsynced, given the target's mode (or ``0666 & ~umask``
for a new file, as ``open`` would), renamed over the target, and the directory is fsynced. A failure at any
point removes the temporary and leaves an existing target untouched. A target we may not write (read-only
file, or read-only directory) is an :class:`~metaprobe.IoError` naming the path and the OS reason, never a
silent replacement.
"""
from __future__ import annotations

import os
import stat
import tempfile
from typing import Union

from . import _core

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    """The process umask, read without changing it (Linux /proc; elsewhere the set-and-restore dance)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see the module docstring)."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise _core.IoError(f"cannot write '{target}': it is a directory, expected a file path")
    try:
        st = os.stat(target)
        mode = stat.S_IMODE(st.st_mode)
        if not os.access(target, os.W_OK):
            raise _core.IoError(f"cannot write '{target}': the file is read-only (mode {mode:o})")
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.tmp-", dir=directory)
    except OSError as exc:
        raise _core.IoError(f"cannot write '{target}': {exc.strerror} (creating a temporary in '{directory}')") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, _core.IoError):
            raise _core.IoError(f"cannot write '{target}': {exc.strerror or exc}") from exc
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_text_atomic(path: PathLike, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))
