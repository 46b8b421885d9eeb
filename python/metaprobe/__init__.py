"""metaprobe: see how post-training (SFT vs RL) changes a language model.

The package is a thin notebook layer over the C++ core ``metaprobe._core``. Importing it loads torch and the
extension only; pandas, matplotlib and tqdm are imported by the functions that need them.
"""
from __future__ import annotations

import torch as _torch  # noqa: F401  (loads libtorch before the extension that links it)

from . import _core
from ._core import (
    FormatError,
    InvalidArgumentError,
    IoError,
    MetaprobeError,
    UnsupportedError,
)

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "MetaprobeError",
    "InvalidArgumentError",
    "IoError",
    "FormatError",
    "UnsupportedError",
]
