"""Adapters that turn models and tokenizers into what :class:`metaprobe.MetaProbe` runs.

A *logit source* is any callable ``source(input_ids, attention_mask) -> logits``: ``input_ids`` and
``attention_mask`` are int64 CPU tensors ``[B, T]`` (mask 1 on real tokens), ``logits`` a floating tensor
``[B, T, V]`` on any device. A *tokenizer* for the run has ``encode(text) -> list[int]`` (no special tokens),
``decode(ids) -> str`` (special tokens skipped) and the ids ``pad_id``, ``bos_id``, ``eos_id`` (``None`` when
absent).

:func:`hf` wraps a Hugging Face causal LM and its tokenizer, duck-typed: metaprobe never imports
``transformers``. Anything exposing ``model(input_ids=..., attention_mask=...).logits``, ``tokenizer(text,
add_special_tokens=False)["input_ids"]`` and ``tokenizer.decode(ids, skip_special_tokens=True)`` works.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch

from ._core import InvalidArgumentError

__all__ = ["HFSource", "HFTokenizer", "CallableTokenizer", "hf", "as_logit_source", "char_tokenizer"]


def _logits_of(out: Any, where: str) -> torch.Tensor:
    """The logits tensor of a model output: a tensor, an object with ``.logits``, or a tuple/list's first."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise InvalidArgumentError(
        f"{where} returned {type(out).__name__}, expected a tensor [B, T, V], an object with .logits or a tuple "
        "whose first element is the logits"
    )


def as_logit_source(obj: Any, name: str = "source") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A logit source from a callable: called as ``obj(input_ids, attention_mask)`` under ``torch.no_grad``,
    its output reduced to the logits tensor (``.logits``, a tuple's first element or the tensor itself)."""
    if isinstance(obj, HFSource):
        return obj
    if not callable(obj):
        raise InvalidArgumentError(f"{name} is a {type(obj).__name__}, expected a callable (input_ids, attention_mask) -> logits")

    def source(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _logits_of(obj(input_ids, attention_mask), name)

    source.__wrapped__ = obj  # type: ignore[attr-defined]
    return source


@dataclass
class CallableTokenizer:
    """A run tokenizer from two functions and the special ids."""

    encode_fn: Callable[[str], Sequence[int]]
    decode_fn: Callable[[Sequence[int]], str]
    pad_id: int
    bos_id: Optional[int] = None
    eos_id: Optional[int] = None

    def encode(self, text: str) -> List[int]:
        return [int(i) for i in self.encode_fn(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.decode_fn(list(ids)))


class HFTokenizer:
    """A Hugging Face tokenizer as a run tokenizer (duck-typed; ``transformers`` is never imported).

    BOS is prepended when the tokenizer itself adds it to a plain encoding (Llama-style), never otherwise.
    The pad id is ``pad_token_id``, else ``eos_token_id``, else 0 (padded positions are masked anyway).
    """

    def __init__(self, tokenizer: Any) -> None:
        for attr in ("decode",):
            if not hasattr(tokenizer, attr):
                raise InvalidArgumentError(f"tokenizer has no .{attr}, expected a Hugging Face style tokenizer")
        if not callable(tokenizer):
            raise InvalidArgumentError("tokenizer is not callable, expected tokenizer(text, ...) -> {'input_ids': ...}")
        self.tokenizer = tokenizer
        eos = getattr(tokenizer, "eos_token_id", None)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.eos_id: Optional[int] = None if eos is None else int(eos)
        self.pad_id: int = int(pad) if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        bos = getattr(tokenizer, "bos_token_id", None)
        self.bos_id: Optional[int] = None
        if bos is not None:
            with_special = self._ids(tokenizer("a", add_special_tokens=True))
            if with_special and with_special[0] == int(bos):
                self.bos_id = int(bos)

    @staticmethod
    def _ids(encoding: Any) -> List[int]:
        ids = encoding["input_ids"] if not hasattr(encoding, "input_ids") else encoding.input_ids
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        if ids and isinstance(ids[0], (list, tuple)):
            ids = ids[0]
        return [int(i) for i in ids]

    def encode(self, text: str) -> List[int]:
        return self._ids(self.tokenizer(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


class HFSource:
    """A Hugging Face causal LM as a logit source: ``model(input_ids=..., attention_mask=...).logits``.

    Inputs are moved to ``device`` (default: the device of the model's first parameter). When the model's
    forward accepts ``position_ids`` they are derived from the attention mask (``cumsum - 1``), so left-padded
    rows see the same positions as unpadded ones (Hugging Face's ``generate`` does the same).
    """

    def __init__(self, model: Any, tokenizer: Any = None, device: Optional[torch.device | str] = None) -> None:
        if not callable(model):
            raise InvalidArgumentError(f"model is a {type(model).__name__}, expected a callable causal LM")
        self.model = model
        self.tokenizer = HFTokenizer(tokenizer) if tokenizer is not None else None
        if device is None:
            params = getattr(model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            device = first.device if isinstance(first, torch.Tensor) else "cpu"
        self.device = torch.device(device)
        forward = getattr(model, "forward", model)
        try:
            self._positions = "position_ids" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            self._positions = False

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(self.device)
        mask = attention_mask.to(self.device)
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if self._positions:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            return _logits_of(self.model(**kwargs), "model")


def hf(model: Any, tokenizer: Any = None, device: Optional[torch.device | str] = None) -> HFSource:
    """Wraps a Hugging Face causal LM (and optionally its tokenizer) for :meth:`MetaProbe.add_stage`.

    Args:
        model: anything called as ``model(input_ids=[B, T], attention_mask=[B, T])`` returning ``.logits``
            ``[B, T, V]`` (a ``transformers`` ``AutoModelForCausalLM``, or a stand-in with that interface).
        tokenizer: its tokenizer (``tokenizer(text, add_special_tokens=False)``, ``tokenizer.decode``); the run
            takes it from the first stage that has one unless ``MetaProbe(tokenizer=...)`` is given.
        device: where inputs go (default: the model's first parameter's device).
    """
    return HFSource(model, tokenizer, device)


def char_tokenizer() -> CallableTokenizer:
    """The lm module's character tokenizer as a run tokenizer (PAD 0, BOS 1, EOS 2), in Python."""
    from .lm import CharTokenizer

    tok = CharTokenizer()
    return CallableTokenizer(lambda t: tok.encode(t, add_special_tokens=False), tok.decode, 0, 1, 2)
