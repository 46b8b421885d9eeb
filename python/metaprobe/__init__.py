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

from . import scoring  # noqa: E402  (probe scoring; pandas is imported lazily inside)
from . import probes  # noqa: E402  (probe generators, ProbeSet, prompts; pandas imported lazily inside)
from . import io  # noqa: E402  (safetensors checkpoints)
from . import lm  # noqa: E402  (tiny character-level LMs: tokenizer, model, generation, SFT, GRPO)
from . import params  # noqa: E402  (parameter statistics; pandas/tqdm imported lazily inside)
from . import adapters, meta, report, plot  # noqa: E402  (meta-probing run; pandas/matplotlib/tqdm lazy)
from . import stats  # noqa: E402  (paired differences between stages: bootstrap intervals, permutation p)
from . import responses  # noqa: E402  (answers from vLLM, lm-evaluation-harness or JSONL for add_stage)
from .meta import MetaOptions, MetaProbe  # noqa: E402
from .report import Report  # noqa: E402
from . import demo  # noqa: E402  (the end-to-end SFT-vs-RL study of `metaprobe demo`; pandas/tqdm lazy)

from . import distributed  # noqa: E402  (vocabulary-sharded divergence over torch.distributed)
from .divergence import DivergenceResult, divergence  # noqa: E402

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "MetaprobeError",
    "InvalidArgumentError",
    "IoError",
    "FormatError",
    "UnsupportedError",
    "divergence",
    "DivergenceResult",
]
