"""The one way the Python layer writes a file: the C++ writer (``metaprobe/atomic_file.hpp``), so Python and C++
files get the same guarantees.

Whole or not at all, with the mode a plain ``open`` would give: a temporary beside the target is written,
fsynced, given the target's mode (or ``0666 & ~umask`` for a new file), renamed over the target, and the
directory is fsynced. A failure at any point removes the temporary and leaves an existing target untouched. A
target we may not write (read-only file, or a directory) is an :class:`~metaprobe.IoError` naming the path
and the OS reason, never a silent replacement (also for root: the mode bits decide).

Temporaries are named ``.<name>.tmp-<pid>-<n>.<host>``; each write first removes those of the same target left
by dead processes of this host (a ``kill -9`` mid-write leaves one behind). See docs/io.md, "Writing files".
"""
from __future__ import annotations

import os
from typing import Union

from . import _core

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["write_bytes_atomic", "write_text_atomic", "remove_stale_temporaries"]


def remove_stale_temporaries(path: PathLike) -> int:
    """Removes ``.<name>.tmp-<pid>-*.<host>`` files beside ``path`` whose process is gone; returns the count."""
    return _core.io.remove_stale_temporaries(os.fspath(path))


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Writes ``data`` (bytes-like) to ``path`` atomically (see the module docstring); the GIL is released."""
    _core.io.write_file_atomic(os.fspath(path), bytes(data))


def write_text_atomic(path: PathLike, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))
