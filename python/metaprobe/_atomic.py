"""The one way the Python layer writes a file: whole or not at all, with the mode a plain ``open`` would give.

A temporary beside the target is written, flushed and fsynced, given the target's mode (or ``0666 & ~umask``
for a new file, as ``open`` would), renamed over the target, and the directory is fsynced. A failure at any
point removes the temporary and leaves an existing target untouched. A target we may not write (read-only
file, or read-only directory) is an :class:`~metaprobe.IoError` naming the path and the OS reason, never a
silent replacement (also for root, which ``access()`` would let write: the mode bits decide).

Temporaries are named ``.<name>.tmp-<pid>-<random>.<host>``, as the C++ writer (``metaprobe/atomic_file.hpp``)
names them, and each write first removes those of the same target left by dead processes of this host (a
``kill -9`` mid-write leaves one behind).
"""
from __future__ import annotations

import os
import socket
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


def _host_tag() -> str:
    """The short host name as one dot-free file-name component (the C++ writer's rule)."""
    host = socket.gethostname().split(".", 1)[0].replace("/", "_")
    return host or "localhost"


def remove_stale_temporaries(path: PathLike) -> int:
    """Removes ``.<name>.tmp-<pid>-*.<host>`` files beside ``path`` whose process is gone; returns the count."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    prefix, suffix = f".{os.path.basename(target)}.tmp-", f".{_host_tag()}"
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) <= len(prefix) + len(suffix):
            continue
        pid_text, dash, _ = name[len(prefix):].partition("-")
        if not dash or not pid_text.isdigit() or not 0 < int(pid_text) < 2**31:
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except OSError:
            continue  # alive but not ours
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except OSError:
            pass
    return removed


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see the module docstring)."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise _core.IoError(f"cannot write '{target}': it is a directory, expected a file path")
    try:
        st = os.stat(target)
        mode = stat.S_IMODE(st.st_mode)
        if not mode & 0o222 or not os.access(target, os.W_OK):
            raise _core.IoError(f"cannot write '{target}': the file is read-only (mode {mode:o}: Permission denied), "
                                "expected a writable file; it was left untouched")
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        remove_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.tmp-{os.getpid()}-",
                                   suffix=f".{_host_tag()}", dir=directory)
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
