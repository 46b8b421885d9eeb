"""Tiny character-level language models: tokenizer, transformer, generation, SFT and GRPO.

The models of the demo and of the tests. Everything runs in C++ (libtorch) with the GIL released;
this module gives it a pythonic face:

* :class:`CharTokenizer` — the fixed 100-id character vocabulary, also callable the Hugging Face way
  (``tok(texts, padding=True, return_tensors="pt")``).
* :class:`TinyLM` — a small Llama-layout causal decoder. ``lm(input_ids, attention_mask)`` returns logits
  ``[B, T, V]`` (a metaprobe logit source); ``.generate``, ``.sft`` and ``.grpo`` sample and train it;
  ``.save``/``TinyLM.load`` use safetensors with the config in ``__metadata__``.
* :class:`TinyTransformerTorch` — the same network as a ``torch.nn.Module`` (same parameter names, same
  logits within 1e-5) that ``torch.jit.script`` accepts: ``TinyLM.to_torchscript(path)`` writes a file the
  meta module's TorchScript logit source loads.
* :class:`HFCausalLM` — a facade with the Hugging Face call convention
  (``model(input_ids=..., attention_mask=...).logits``), from ``TinyLM.as_hf()``.

See ``docs/lm.md`` for the objectives and the determinism guarantees.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from . import _core

_lm = _core.lm

TransformerConfig = _lm.TransformerConfig
Generation = _lm.Generation
OptimizerOptions = _lm.OptimizerOptions
SftOptions = _lm.SftOptions
GrpoOptions = _lm.GrpoOptions
GenerateOptions = _lm.GenerateOptions
CONFIG_METADATA_KEY: str = _lm.CONFIG_METADATA_KEY

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "CharTokenizer",
    "TransformerConfig",
    "Generation",
    "OptimizerOptions",
    "SftOptions",
    "GrpoOptions",
    "GenerateOptions",
    "TinyLM",
    "TrainingHistory",
    "TinyTransformerTorch",
    "HFCausalLM",
    "CausalLMOutput",
    "CONFIG_METADATA_KEY",
]


class BatchEncoding(dict):
    """A dict of ``input_ids`` / ``attention_mask`` that also allows attribute access (as in transformers)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class CharTokenizer:
    """The fixed character vocabulary: PAD=0, BOS=1, EOS=2, UNK=3, ``'\\n'``=4, ASCII 32..126 = 5..99.

    Deterministic and stateless apart from ``padding_side`` ("right" for teacher forcing, "left" for
    generation), which follows the Hugging Face convention.
    """

    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    unk_token_id: int = 3
    pad_token: str = "<pad>"
    bos_token: str = "<bos>"
    eos_token: str = "<eos>"
    unk_token: str = "<unk>"

    def __init__(self, padding_side: str = "right") -> None:
        self._core = _lm.CharTokenizer()
        self.padding_side = padding_side

    @property
    def padding_side(self) -> str:
        return self._padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        sides = _core.lm.PADDING_SIDES
        if side not in sides:
            raise _core.InvalidArgumentError(f"padding_side: unknown value {side!r}, expected "
                                             f"{', '.join(map(repr, sides[:-1]))} or {sides[-1]!r}")
        self._padding_side = side

    @property
    def vocab_size(self) -> int:
        """Number of ids (100)."""
        return int(self._core.vocab_size)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True, add_eos: bool = False) -> List[int]:
        """Ids of ``text``, one per byte, preceded by BOS when ``add_special_tokens``."""
        return list(self._core.encode(text, add_special_tokens, add_eos))

    def decode(self, ids: Union[Sequence[int], torch.Tensor], skip_special_tokens: bool = True) -> str:
        """Text of a 1-D id sequence (list or tensor); special ids dropped or rendered as ``<eos>`` etc."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() > 1:
                raise _core.InvalidArgumentError(
                    f"ids: expected a 0-D or 1-D tensor, got shape {tuple(ids.shape)}")
            ids = ids.reshape(-1).tolist()
        elif isinstance(ids, int):
            ids = [ids]
        return self._core.decode([int(i) for i in ids], skip_special_tokens)

    def batch_decode(self, sequences: Union[Sequence[Sequence[int]], torch.Tensor],
                     skip_special_tokens: bool = True) -> List[str]:
        """decode() of every row."""
        return [self.decode(s, skip_special_tokens) for s in sequences]

    def __call__(self, text: Union[str, Sequence[str]], padding: Union[bool, str] = True,
                 return_tensors: Optional[str] = None, add_special_tokens: bool = True,
                 truncation: bool = False, max_length: Optional[int] = None, **unused: Any) -> BatchEncoding:
        """Hugging Face call convention: ``{"input_ids", "attention_mask"}``.

        With ``return_tensors="pt"`` both are int64 tensors ``[B, T]`` padded on ``padding_side``; otherwise
        lists (a single string gives flat lists). ``truncation`` keeps the first ``max_length`` ids.
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if return_tensors not in (None, "pt"):
            raise _core.UnsupportedError(f"return_tensors: got {return_tensors!r}, expected None or 'pt'")
        if truncation and (max_length is None or max_length < 1):
            raise _core.InvalidArgumentError(f"max_length: got {max_length!r}, expected an int >= 1 with truncation")
        seqs = [self.encode(t, add_special_tokens) for t in texts]
        if truncation:
            seqs = [s[:max_length] for s in seqs]
        if return_tensors is None and not padding:
            masks = [[1] * len(s) for s in seqs]
            if single:
                return BatchEncoding(input_ids=seqs[0], attention_mask=masks[0])
            return BatchEncoding(input_ids=seqs, attention_mask=masks)
        if not padding and len({len(s) for s in seqs}) > 1:
            raise _core.InvalidArgumentError(
                "padding: sequences of different lengths need padding=True to form a tensor")
        width = max((len(s) for s in seqs), default=0)
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            n = len(s)
            if n == 0:
                continue
            if self.padding_side == "left":
                ids[i, width - n:] = torch.tensor(s, dtype=torch.long)
                mask[i, width - n:] = 1
            else:
                ids[i, :n] = torch.tensor(s, dtype=torch.long)
                mask[i, :n] = 1
        if return_tensors == "pt":
            return BatchEncoding(input_ids=ids, attention_mask=mask)
        out_ids, out_mask = ids.tolist(), mask.tolist()
        if single:
            return BatchEncoding(input_ids=out_ids[0], attention_mask=out_mask[0])
        return BatchEncoding(input_ids=out_ids, attention_mask=out_mask)


@dataclass
class TrainingHistory:
    """Per-step records of a training run (``sft``: loss, lr, grad_norm, tokens; ``grpo``: mean_reward, ...)."""

    kind: str
    steps: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def losses(self) -> List[float]:
        """Loss per step (SFT: mean cross-entropy in nats/token; GRPO: the surrogate loss)."""
        return [float(s["loss"]) for s in self.steps]

    @property
    def mean_rewards(self) -> List[float]:
        """GRPO: mean reward of each step's samples."""
        return [float(s["mean_reward"]) for s in self.steps]

    def to_frame(self) -> "Any":
        """The records as a pandas DataFrame, one row per step."""
        import pandas as pd

        return pd.DataFrame(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def _make_config(config: Union[TransformerConfig, Dict[str, Any], None], overrides: Dict[str, Any]) -> TransformerConfig:
    if config is None:
        return TransformerConfig(**overrides)
    if isinstance(config, dict):
        return TransformerConfig(**{**config, **overrides})
    if overrides:
        raise _core.InvalidArgumentError(
            f"config: pass either a TransformerConfig or keyword fields, got both (extra: {sorted(overrides)})")
    return config


def _options_with(cls: type, options: Any, fields: Dict[str, Any], method: str) -> Any:
    """A copy of ``options`` (a ``cls`` object; ``None`` = ``cls()``, the C++ defaults) with ``fields`` set on it.

    A key that is not a field of ``cls`` but of its ``optimizer`` (an :class:`OptimizerOptions`) sets that;
    ``stop=None`` is no stop strings. A bad value raises the bound class's InvalidArgumentError naming the
    field; an unknown key a TypeError, as an unexpected keyword argument does.
    """
    if options is None:
        out = cls()
    elif isinstance(options, cls):
        out = copy.copy(options)
    else:
        raise TypeError(f"{method}: options is a {type(options).__name__}, expected {cls.__name__} or None")
    own = out.to_dict()
    nested = own["optimizer"] if isinstance(own.get("optimizer"), dict) else {}
    for key, value in fields.items():
        if key == "stop" and value is None:
            value = []
        if key in own:
            setattr(out, key, value)
        elif key in nested:
            setattr(out.optimizer, key, value)
        else:
            raise TypeError(f"{method}() got an unexpected keyword argument '{key}', expected a field of "
                            f"{cls.__name__}: {', '.join(list(own) + list(nested))}")
    return out


def _progress_callback(kind: str, steps: int, progress: bool, on_step: Optional[Callable[[Dict[str, Any]], Any]]):
    bar = None
    if progress:
        from ._progress import progress_bar

        bar = progress_bar(total=steps, desc=kind, leave=False)

    def callback(record: Dict[str, Any]) -> bool:
        if bar is not None:
            bar.update(1)
            key = "loss" if kind == "sft" else "mean_reward"
            bar.set_postfix({key: f"{record[key]:.4f}"})
        if on_step is not None:
            keep = on_step(record)
            return keep is None or bool(keep)
        return True

    return callback, bar


class TinyLM:
    """A TinyTransformer (C++): ``TinyLM(config)``, ``TinyLM(d_model=64, ...)`` or ``TinyLM("model.safetensors")``.

    Calling it maps ``input_ids [B, T]`` (+ ``attention_mask [B, T]``) to float32 logits ``[B, T, V]``; the
    real-token logits do not depend on padding side or batch composition.
    """

    def __init__(self, config: Union[TransformerConfig, Dict[str, Any], PathLike, None] = None, **fields: Any) -> None:
        if isinstance(config, (str, os.PathLike)):
            if fields:
                raise _core.InvalidArgumentError("config: a path takes no extra fields")
            self._model = _lm.TinyTransformer.load(os.fspath(config))
        elif isinstance(config, _lm.TinyTransformer):
            self._model = config
        else:
            self._model = _lm.TinyTransformer(_make_config(config, fields))

    # -- model -----------------------------------------------------------------------------------------
    @property
    def config(self) -> TransformerConfig:
        """The model's TransformerConfig (a copy)."""
        return self._model.config

    @property
    def tokenizer(self) -> CharTokenizer:
        """A fresh CharTokenizer (the vocabulary is fixed)."""
        return CharTokenizer()

    def num_parameters(self) -> int:
        return int(self._model.num_parameters())

    def __call__(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits float32 ``[B, T, V]`` for integer ``input_ids [B, T]``; ``attention_mask`` is 0/1 ``[B, T]``."""
        if attention_mask is None:
            return self._model.forward(input_ids)
        return self._model.forward(input_ids, attention_mask)

    forward = __call__

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Parameters by Llama name; the tensors share memory with the model (writes change it)."""
        return dict(self._model.named_parameters())

    def load_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> None:
        """Copies every parameter from ``state_dict`` (exact names and shapes)."""
        self._model.load_parameters(list(state_dict.items()))

    def clone(self) -> "TinyLM":
        """A deep copy."""
        return TinyLM(self._model.clone())

    def save(self, path: PathLike) -> None:
        """Writes safetensors (float32) atomically with the config JSON in ``__metadata__``."""
        self._model.save(os.fspath(path))

    @classmethod
    def load(cls, path: PathLike) -> "TinyLM":
        """Reads a file written by :meth:`save`."""
        return cls(_lm.TinyTransformer.load(os.fspath(path)))

    def save_pretrained(self, directory: PathLike) -> None:
        """Writes a Hugging Face checkpoint directory (``config.json`` of a ``LlamaForCausalLM``,
        ``model.safetensors``, ``generation_config.json`` and the character tokenizer as a
        ``PreTrainedTokenizerFast``): ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` gives
        this model's logits within 1e-5. Needs the ``[hf]`` extra (``tokenizers``); see
        :mod:`metaprobe.hf_format`."""
        from . import hf_format

        hf_format.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: PathLike) -> "TinyLM":
        """Reads a directory written by :meth:`save_pretrained` (or a Llama checkpoint of the same layout)."""
        from . import hf_format
        from . import io as mp_io

        fields = hf_format.load_config(directory)
        model = cls(_make_config(None, fields))
        weights = mp_io.load(os.path.join(os.fspath(directory), "model.safetensors"))
        model.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()})
        return model

    def __repr__(self) -> str:
        c = self.config
        return (f"TinyLM(d_model={c.d_model}, n_layers={c.n_layers}, n_heads={c.n_heads}, d_ff={c.d_ff}, "
                f"params={self.num_parameters()})")

    # -- generation --------------------------------------------------------------------------------------
    def generate(self, prompts: Union[str, Sequence[str]], options: Optional[GenerateOptions] = None,
                 **fields: Any) -> List[Generation]:
        """Completes each prompt (BOS prepended); temperature 0 is greedy.

        ``options`` (a :class:`GenerateOptions`; default: the C++ defaults) with any of its fields given as
        keywords on top, as ``transformers``' ``generate(generation_config=..., **kwargs)``:
        ``model.generate(prompts, max_new_tokens=40, temperature=0)``. Returns one :class:`Generation` per
        prompt: ``completion`` (stop string excluded), ``token_ids``, ``logprobs`` (per token, under the sampling
        distribution) and ``finish_reason``. Row ``i`` draws from its own generator seeded by ``(seed, i)``, so
        results do not depend on ``batch_size``.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        return _lm.generate(self._model, list(prompts), _options_with(GenerateOptions, options, fields, "generate"))

    # -- training ----------------------------------------------------------------------------------------
    def sft(self, examples: Iterable[Tuple[str, str]], options: Optional[SftOptions] = None, *,
            on_step: Optional[Callable[[Dict[str, Any]], Any]] = None, progress: bool = False,
            **fields: Any) -> TrainingHistory:
        """Supervised fine-tuning in place on ``(prompt, completion)`` pairs with AdamW.

        ``options`` (an :class:`SftOptions`; default: the C++ defaults) with any of its fields, or of its
        ``optimizer`` (``lr``, ``warmup``, ...), given as keywords on top: ``model.sft(pairs, steps=200, lr=1e-3)``.
        The model reads BOS + prompt + completion + EOS; the loss is the mean next-token cross-entropy over the
        completion and EOS (``loss_on="completion"``) or over every token after BOS (``"all"``). ``on_step``
        gets each step's record after the update (return False to stop); ``progress`` shows a tqdm bar.
        """
        pairs = [(str(p), str(c)) for p, c in examples]
        o = _options_with(SftOptions, options, fields, "sft")
        callback, bar = _progress_callback("sft", o.steps, progress, on_step)
        try:
            records = _lm.sft_train(self._model, pairs, o, callback)
        finally:
            if bar is not None:
                bar.close()
        return TrainingHistory("sft", list(records))

    def grpo(self, prompts: Sequence[str], reward_fn: Callable[[str, int], float],
             options: Optional[GrpoOptions] = None, *, on_step: Optional[Callable[[Dict[str, Any]], Any]] = None,
             progress: bool = False, **fields: Any) -> TrainingHistory:
        """GRPO in place: per step, ``group_size`` samples for each of ``prompts_per_step`` prompts, rewards
        ``reward_fn(completion, prompt_index)``, group-relative advantages and a clipped policy-gradient update.

        ``options`` (a :class:`GrpoOptions`; default: the C++ defaults) with any of its fields, or of its
        ``optimizer``, given as keywords on top. ``kl_coef > 0`` adds the k3 KL estimate to the frozen initial
        model. ``on_step`` gets each step's record (mean_reward, loss, kl, ...) after the update, e.g. to save
        checkpoints; return False to stop.
        """
        o = _options_with(GrpoOptions, options, fields, "grpo")
        callback, bar = _progress_callback("grpo", o.steps, progress, on_step)
        try:
            records = _lm.grpo_train(self._model, list(prompts), reward_fn, o, callback)
        finally:
            if bar is not None:
                bar.close()
        return TrainingHistory("grpo", list(records))

    # -- other faces ---------------------------------------------------------------------------------------
    def hidden_states(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """The hidden states of :meth:`TinyTransformerTorch.hidden_states` (L + 1 tensors ``[B, T, d_model]``).
        Each call copies the weights into a torch module; for many batches take ``to_torch()`` once."""
        return self.to_torch().hidden_states(input_ids, attention_mask)

    def to_torch(self) -> "TinyTransformerTorch":
        """The same network as a torch.nn.Module with copied weights."""
        module = TinyTransformerTorch(self.config)
        with torch.no_grad():
            module.load_state_dict({k: v.clone() for k, v in self.state_dict().items()})
        return module.eval()

    def to_torchscript(self, path: PathLike) -> None:
        """Writes ``torch.jit.script(self.to_torch())`` to ``path`` (for the meta module's TorchScript source)."""
        import io as _io

        from ._atomic import write_bytes_atomic

        scripted = torch.jit.script(self.to_torch())
        buffer = _io.BytesIO()
        torch.jit.save(scripted, buffer)
        write_bytes_atomic(path, buffer.getvalue())

    def as_hf(self) -> "HFCausalLM":
        """A facade with the Hugging Face call convention, sharing this model."""
        return HFCausalLM(self)


@dataclass
class CausalLMOutput:
    """What a Hugging Face causal LM returns, reduced to the logits."""

    logits: torch.Tensor


class HFCausalLM:
    """``model(input_ids=..., attention_mask=...).logits`` over a :class:`TinyLM` (no transformers needed)."""

    def __init__(self, lm: TinyLM) -> None:
        self.lm = lm
        c = lm.config
        from types import SimpleNamespace

        self.config = SimpleNamespace(vocab_size=c.vocab_size, hidden_size=c.d_model,
                                      num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
                                      intermediate_size=c.d_ff, max_position_embeddings=c.max_len,
                                      model_type="metaprobe_tiny")
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def __call__(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                 **unused: Any) -> CausalLMOutput:
        if input_ids is None:
            raise _core.InvalidArgumentError("input_ids: required, got None")
        return CausalLMOutput(logits=self.lm(input_ids, attention_mask))

    forward = __call__

    def eval(self) -> "HFCausalLM":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "HFCausalLM":
        return self

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return self.lm.state_dict()

    def named_parameters(self) -> Iterable[Tuple[str, torch.Tensor]]:
        return iter(self.lm.state_dict().items())

    def parameters(self) -> Iterable[torch.Tensor]:
        return iter(self.lm.state_dict().values())


# ---------------------------------------------------------------------------------------------------------
# The same network in torch.nn, scriptable. Each operation mirrors cpp/src/lm/transformer.cpp.

class _RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class _Attention(torch.nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = d // heads
        self.q_proj = torch.nn.Linear(d, d, bias=False)
        self.k_proj = torch.nn.Linear(d, d, bias=False)
        self.v_proj = torch.nn.Linear(d, d, bias=False)
        self.o_proj = torch.nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + bias
        out = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).reshape(b, t, d)
        return self.o_proj(out)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


class _MLP(torch.nn.Module):
    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.gate_proj = torch.nn.Linear(d, f, bias=False)
        self.up_proj = torch.nn.Linear(d, f, bias=False)
        self.down_proj = torch.nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class _Block(torch.nn.Module):
    def __init__(self, d: int, heads: int, f: int, eps: float) -> None:
        super().__init__()
        self.input_layernorm = _RMSNorm(d, eps)
        self.self_attn = _Attention(d, heads)
        self.post_attention_layernorm = _RMSNorm(d, eps)
        self.mlp = _MLP(d, f)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Decoder(torch.nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(c.vocab_size, c.d_model)
        self.layers = torch.nn.ModuleList([_Block(c.d_model, c.n_heads, c.d_ff, c.norm_eps)
                                           for _ in range(c.n_layers)])
        self.norm = _RMSNorm(c.d_model, c.norm_eps)


class TinyTransformerTorch(torch.nn.Module):
    """The TinyTransformer network in torch.nn (parameter names identical to the C++ model's), scriptable.

    ``forward(input_ids [B, T], attention_mask [B, T] | None) -> logits [B, T, V]`` equals the C++ model's
    logits within 1e-5 once the same weights are loaded (``TinyLM.to_torch()`` or :meth:`from_file`).
    """

    def __init__(self, config: Union[TransformerConfig, Dict[str, Any]]) -> None:
        super().__init__()
        c = _make_config(config, {}) if isinstance(config, dict) else config
        c.validate()
        self.model = _Decoder(c)
        self.lm_head = torch.nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.max_len = int(c.max_len)
        head_dim = c.d_model // c.n_heads
        inv = 1.0 / (float(c.rope_theta) ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        self.register_buffer("inv_freq", inv.to(torch.float32), persistent=False)

    @classmethod
    def from_file(cls, path: PathLike) -> "TinyTransformerTorch":
        """Loads a safetensors file written by ``TinyLM.save``."""
        return TinyLM.load(path).to_torch()

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._run(input_ids, attention_mask)[0]

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Hugging Face's ``output_hidden_states`` convention: L + 1 tensors ``[B, T, d_model]`` — the embedding
        output, then the output of each block, the last one after the final norm (what the head reads)."""
        with torch.no_grad():
            return self._run(input_ids, attention_mask)[1]

    def _run(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        ids = input_ids.to(torch.long)
        if attention_mask is None:
            mask = torch.ones_like(ids)
        else:
            mask = attention_mask.to(torch.long)
        b, t = ids.shape
        pos = (torch.cumsum(mask, 1) - 1).clamp_min(0)
        if t > 0 and int(pos.max()) >= self.max_len:
            raise ValueError("input_ids: positions reach max_len")
        freqs = pos.to(torch.float32).unsqueeze(-1) * self.inv_freq
        emb = torch.cat([freqs, freqs], -1).unsqueeze(1)
        cos = emb.cos()
        sin = emb.sin()
        key = torch.arange(t, device=ids.device).unsqueeze(0)
        query = torch.arange(t, device=ids.device).unsqueeze(1)
        causal = key <= query
        self_mask = key == query
        allowed = causal.unsqueeze(0) & ((mask != 0).unsqueeze(1) | self_mask.unsqueeze(0))
        bias = torch.zeros(b, 1, t, t, dtype=torch.float32, device=ids.device).masked_fill(
            allowed.logical_not().unsqueeze(1), float("-inf"))
        x = self.model.embed_tokens(ids)
        states: List[torch.Tensor] = [x]
        for layer in self.model.layers:
            x = layer(x, cos, sin, bias)
            states.append(x)
        x = self.model.norm(x)
        states[-1] = x
        return self.lm_head(x), states
