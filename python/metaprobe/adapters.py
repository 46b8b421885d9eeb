"""Former name of :mod:`metaprobe.backends` (kept importable): ``adapters.hf`` is ``backends.hf``."""
from __future__ import annotations

from .backends import (CallableTokenizer, HFBackend, HFSource, HFTokenizer, as_logit_source, char_tokenizer,  # noqa: F401
                       hf)

__all__ = ["HFSource", "HFBackend", "HFTokenizer", "CallableTokenizer", "hf", "as_logit_source", "char_tokenizer"]
