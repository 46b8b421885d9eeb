"""One progress-bar factory for the package: tqdm, imported only when a bar is wanted.

In a notebook ``tqdm.auto`` draws a widget, but without ipywidgets it prints a ``TqdmWarning`` into the
user's output; then the plain text bar is used instead (same API, no warning).
"""
from __future__ import annotations

from typing import Any


def progress_bar(**kwargs: Any) -> Any:
    """A ``tqdm`` bar (``total=``, ``desc=``, ``unit=``, ``leave=`` … as tqdm takes them)."""
    try:
        import ipywidgets  # noqa: F401

        from tqdm.auto import tqdm
    except ImportError:
        from tqdm import tqdm
    return tqdm(**kwargs)
