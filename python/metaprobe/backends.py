"""Model backends of :class:`metaprobe.MetaProbe`: what the meta engine asks a model for, as requests.

The engine (C++ ``metaprobe::meta::LogitSource``) needs three things from a stage's model:

* ``generate(requests, options)``: per request ``{"prompt": [ids], "seed": int}`` a completion
  ``{"tokens": [...], "logprobs": [...], "finish_reason": "eos" | "stop" | "length"}`` (EOS excluded; the
  log-probability of each chosen token under the model at temperature 1);
* ``score(input_ids, attention_mask, rows, cols)``: logits ``[N, V]`` at the requested positions only
  (teacher forcing, multiple-choice options, the sampled-token estimator), so no pass holds ``[B, T, V]``;
* ``__call__(input_ids, attention_mask) -> logits [B, T, V]``: the plain forward pass underneath.

Backends:

* a :class:`metaprobe.lm.TinyLM` is run natively in C++ with its key/value cache (pass it as ``source=``);
* :func:`hf` wraps a Hugging Face causal LM: generation through the model's own ``generate`` (KV cache, left
  padding with position ids), scoring through the decoder's hidden states and the output layer applied to the
  requested positions only, bf16/fp16 and ``device_map`` models;
* any callable ``(input_ids, attention_mask) -> logits`` stays supported (:func:`as_logit_source`): generation
  then re-runs the whole prefix for every new token (uncached, O(T²)) and is only fit for small models.

Sampling is reproducible per (item, sample index, seed): the engine gives each request its own seed and the
uniform draw of step ``t`` is :func:`uniform01` ``(seed, t)`` in every backend, so a sample does not depend on
the batch it runs in. ``transformers`` is never imported at module level; :func:`hf` duck-types the model.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from ._core import InvalidArgumentError, UnsupportedError

__all__ = ["HFBackend", "HFSource", "HFTokenizer", "CallableTokenizer", "hf", "as_logit_source", "char_tokenizer",
           "uniform01", "pick_token"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def uniform01(seed: int, step: int) -> float:
    """The uniform in [0, 1) that sampling step ``step`` of a request seeded ``seed`` draws (the C++
    ``metaprobe::meta::uniform01``, bit for bit)."""
    x = _splitmix64((int(seed) & _MASK64) ^ _splitmix64((int(step) + 0x632BE59BD9B4E019) & _MASK64))
    return (x >> 11) * (1.0 / 9007199254740992.0)


def pick_token(logits: torch.Tensor, options: Mapping[str, Any], u: float) -> tuple[int, float]:
    """The next token of one row of logits ``[V]`` under the decoding ``options`` (do_sample, temperature,
    top_k, top_p) and the uniform ``u``: argmax (lowest id on ties) when greedy, else inverse-CDF sampling over
    the tokens sorted by descending logit after top-k and top-p. Returns (token, log-prob at temperature 1).
    The C++ ``pick_token`` computes the same in double precision."""
    z = logits.detach().to("cpu", torch.float64)
    limit = int(options.get("vocab_limit", 0) or 0)
    if limit > 0:
        z = z[:limit]  # the run's shared vocabulary slice
    if torch.isnan(z).any() or torch.isposinf(z).any():
        raise InvalidArgumentError("logits: a generation step holds NaN or +inf, expected finite logits")
    m = z.max()
    if math.isinf(float(m)):
        raise InvalidArgumentError("logits: every token is -inf, expected at least one finite logit")
    lse = float(torch.logsumexp(z, 0))
    if not options.get("do_sample", False):
        best = int(torch.argmax(z))
        return best, float(z[best]) - lse
    order = torch.sort(z, descending=True, stable=True).indices
    keep = order.numel()
    top_k = int(options.get("top_k", 0))
    if top_k > 0:
        keep = min(keep, top_k)
    t = float(options.get("temperature", 1.0))
    w = torch.exp(z[order[:keep]] / t - float(z[order[0]]) / t)
    top_p = float(options.get("top_p", 1.0))
    if top_p < 1.0:
        cum = torch.cumsum(w / w.sum(), 0)
        reach = int(torch.searchsorted(cum, torch.tensor([top_p], dtype=torch.float64)).item())
        keep = min(keep, reach + 1)
        w = w[:keep]
    cum = torch.cumsum(w, 0)
    target = u * float(cum[-1])
    k = int(torch.searchsorted(cum, torch.tensor([target], dtype=torch.float64), right=True).item())
    chosen = int(order[min(k, keep - 1)])
    return chosen, float(z[chosen]) - lse


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


def as_logit_source(obj: Any, name: str = "source") -> Any:
    """A logit source from a callable: called as ``obj(input_ids, attention_mask)`` under ``torch.no_grad``,
    its output reduced to the logits tensor (``.logits``, a tuple's first element or the tensor itself).
    Backends (:class:`HFBackend`) and :class:`metaprobe.lm.TinyLM` pass through unchanged."""
    if isinstance(obj, HFBackend):
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


def _id_list(value: Any) -> List[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if v is not None]
    return [int(value)]


class HFTokenizer:
    """A Hugging Face tokenizer as a run tokenizer (duck-typed; ``transformers`` is never imported).

    BOS is prepended when the tokenizer itself adds it to a plain encoding (Llama-style), never otherwise.
    The pad id is ``pad_token_id``, else ``eos_token_id``, else 0 (padded positions are masked anyway).
    ``eos_ids`` lists every end-of-generation id: the tokenizer's EOS, then those of ``generation_config``
    (chat checkpoints end a turn with a second one). ``chat_prompt(system, user)`` renders
    ``apply_chat_template(messages, add_generation_prompt=True, **chat_template_kwargs)`` and encodes that
    text without adding special tokens again (no double BOS).
    """

    def __init__(self, tokenizer: Any, generation_config: Any = None,
                 chat_template_kwargs: Optional[Mapping[str, Any]] = None) -> None:
        for attr in ("decode",):
            if not hasattr(tokenizer, attr):
                raise InvalidArgumentError(f"tokenizer has no .{attr}, expected a Hugging Face style tokenizer")
        if not callable(tokenizer):
            raise InvalidArgumentError("tokenizer is not callable, expected tokenizer(text, ...) -> {'input_ids': ...}")
        self.tokenizer = tokenizer
        eos = getattr(tokenizer, "eos_token_id", None)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.eos_id: Optional[int] = None if eos is None else int(eos)
        ids: List[int] = _id_list(eos) + _id_list(getattr(generation_config, "eos_token_id", None))
        self.eos_ids: List[int] = list(dict.fromkeys(ids))
        self.pad_id: int = int(pad) if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        bos = getattr(tokenizer, "bos_token_id", None)
        self.bos_id: Optional[int] = None
        if bos is not None:
            with_special = self._ids(tokenizer("a", add_special_tokens=True))
            if with_special and with_special[0] == int(bos):
                self.bos_id = int(bos)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None)) and hasattr(tokenizer, "apply_chat_template")

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

    def chat_text(self, system: str, user: str) -> str:
        """The chat-templated prompt text of one user turn (after ``system`` when non-empty)."""
        if not self.has_chat_template:
            raise UnsupportedError("prompt_format='chat_template': the tokenizer has no chat_template, expected one "
                                   "(or prompt_format 'template' / 'raw')")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                      **self.chat_template_kwargs))

    def chat_prompt(self, system: str, user: str) -> List[int]:
        """Ids of :meth:`chat_text` (special tokens as the template writes them, none added)."""
        return self.encode(self.chat_text(system, user))

    def same_vocabulary(self, other: "HFTokenizer", limit: Optional[int] = None) -> bool:
        """Whether both map the same strings to the same ids (``get_vocab()``; length when unavailable); with
        ``limit``, only the ids below it are compared (the run's ``vocab_size`` slice)."""
        a, b = getattr(self.tokenizer, "get_vocab", None), getattr(other.tokenizer, "get_vocab", None)
        if callable(a) and callable(b):
            va, vb = a(), b()
            if limit is not None:
                va = {k: v for k, v in va.items() if v < limit}
                vb = {k: v for k, v in vb.items() if v < limit}
            return va == vb
        if limit is not None:
            return True
        return len(self.tokenizer) == len(other.tokenizer) if hasattr(self.tokenizer, "__len__") else True


def _first_param(model: Any) -> Optional[torch.Tensor]:
    params = getattr(model, "parameters", None)
    return next(iter(params()), None) if callable(params) else None


def _check_device(device: torch.device) -> None:
    if device.type == "meta":
        raise UnsupportedError("device: the model's tensors are on the meta device (no data, e.g. init_empty_weights "
                               "or device_map without offload), expected a model loaded on cpu or an accelerator")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedError(f"device: got {str(device)!r}, but this torch ({torch.__version__}) has no usable CUDA "
                               "device; expected 'cpu' or a CUDA build of torch on a machine with a GPU")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UnsupportedError(f"device: got {str(device)!r}, but MPS is not available; expected 'cpu'")


class HFBackend:
    """A Hugging Face causal LM (``AutoModelForCausalLM`` or anything with its interface) as a backend.

    * ``__call__`` is the full forward pass ``model(input_ids, attention_mask, position_ids).logits``;
      ``position_ids`` come from the attention mask (``cumsum − 1``) when the forward accepts them, so padded
      rows see the positions of unpadded ones.
    * ``generate`` calls the model's own ``generate`` (its KV cache, left padding, greedy search) with a logits
      processor that makes each row's choice: argmax, or a sample drawn with the row's own seeded uniform, so
      sampled output is reproducible and batch-independent; EOS ids are the run's list, stop strings end a row.
      Models without ``generate`` fall back to the uncached loop of the engine.
    * ``score`` runs the decoder (``model.base_model``) once and applies the output layer
      (``get_output_embeddings()``) to the requested positions only; models with a final logit soft-cap or
      without that structure are scored by the full forward, sliced.
    * ``positions_processed`` counts the non-padding token positions the model has run.
    """

    def __init__(self, model: Any, tokenizer: Any = None, generation_config: Any = None,
                 device: Optional[torch.device | str] = None,
                 chat_template_kwargs: Optional[Mapping[str, Any]] = None) -> None:
        if not callable(model):
            raise InvalidArgumentError(f"model is a {type(model).__name__}, expected a callable causal LM")
        self.model = model
        if generation_config is None:
            generation_config = getattr(model, "generation_config", None)
        self.generation_config = generation_config
        self.tokenizer = (HFTokenizer(tokenizer, generation_config, chat_template_kwargs)
                          if tokenizer is not None else None)
        first = _first_param(model)
        if first is not None and first.device.type == "meta":
            _check_device(first.device)
        if device is None:
            device = first.device if isinstance(first, torch.Tensor) else "cpu"
        self.device = torch.device(device)
        _check_device(self.device)
        forward = getattr(model, "forward", model)
        try:
            self._positions = "position_ids" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            self._positions = False
        self.positions_processed = 0
        self.can_generate = callable(getattr(model, "generate", None))

    # -- plain forward -------------------------------------------------------------------------------------
    def _kwargs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        ids = input_ids.to(self.device)
        mask = attention_mask.to(self.device)
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if self._positions:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return kwargs

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.positions_processed += int(attention_mask.sum())
        with torch.no_grad():
            return _logits_of(self.model(**self._kwargs(input_ids, attention_mask)), "model")

    # -- scoring ------------------------------------------------------------------------------------------
    def _head(self):
        base = getattr(self.model, "base_model", None)
        head = getattr(self.model, "get_output_embeddings", None)
        config = getattr(self.model, "config", None)
        if base is None or base is self.model or not callable(head) or head() is None:
            return None
        if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
            return None
        return base, head()

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
              cols: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, V]`` at ``(rows[n], cols[n])`` of the right-padded batch."""
        parts = self._head()
        if parts is None:
            logits = self(input_ids, attention_mask)
            return logits[rows.to(logits.device), cols.to(logits.device)]
        base, head = parts
        self.positions_processed += int(attention_mask.sum())
        with torch.no_grad():
            out = base(**self._kwargs(input_ids, attention_mask))
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            picked = hidden[rows.to(hidden.device), cols.to(hidden.device)]
            head_dev = head.weight.device if hasattr(head, "weight") else picked.device
            return head(picked.to(head_dev))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> List[torch.Tensor]:
        """The model's ``output_hidden_states``: L + 1 tensors ``[B, T, d]`` (embedding output, then each block's
        output; for Llama-style models the last one after the final norm), right-padded input, position ids
        from the mask. For representation metrics (:mod:`metaprobe.representation`)."""
        with torch.no_grad():
            out = self.model(**self._kwargs(input_ids, attention_mask), output_hidden_states=True)
        states = getattr(out, "hidden_states", None)
        if states is None:
            raise UnsupportedError(f"hidden_states: {type(self.model).__name__} returned no hidden_states for "
                                   "output_hidden_states=True, expected a transformers causal LM")
        return list(states)

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> List[Dict[str, Any]]:
        """Completions of ``requests`` (one batch) under ``options`` (the engine's decoding options)."""
        if not self.can_generate:
            raise UnsupportedError("generate: the model has no .generate, expected a transformers causal LM")
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        tok = self.tokenizer
        pad = tok.pad_id if tok is not None else int(getattr(self.generation_config, "pad_token_id", 0) or 0)
        prompts = [list(r["prompt"]) for r in requests]
        seeds = [int(r["seed"]) for r in requests]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p):] = 1
        eos = [int(e) for e in options.get("eos_ids", [])]
        stop = list(options.get("stop", []))
        max_new = int(options["max_new_tokens"])
        picked: List[List[tuple[int, float]]] = [[] for _ in prompts]

        greedy = not options.get("do_sample", False)
        limit = int(options.get("vocab_limit", 0) or 0)

        def processor(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            step = input_ids.shape[1] - width
            if greedy:  # one vectorised argmax (lowest id on ties, as pick_token) for the whole batch
                # In the logits' own dtype and in place: an extra [B, V] copy per step is a measurable share of a
                # small model's step. The argmax is exact in any float dtype; the recorded log-probability
                # (informational: the estimators rescore) is computed in float32.
                z = scores.detach()
                if limit > 0:
                    z = z[:, :limit]  # the run's shared vocabulary slice
                # one pass: the row maxima (first index on ties) also reveal NaN (max propagates it) and +inf
                top, best = torch.max(z, dim=-1)
                if torch.isnan(top).any() or torch.isposinf(top).any():
                    raise InvalidArgumentError("logits: a generation step holds NaN or +inf, expected finite logits")
                lp = (top.float() - torch.logsumexp(z.float(), dim=-1)).tolist()
                scores.fill_(-math.inf)
                scores.scatter_(1, best.unsqueeze(1), 0.0)
                for r, (t, v) in enumerate(zip(best.tolist(), lp)):
                    picked[r].append((t, v))
                return scores
            out = torch.full_like(scores, -math.inf)
            for r in range(scores.shape[0]):
                t, lp = pick_token(scores[r], options, uniform01(seeds[r], step))
                picked[r].append((t, lp))
                out[r, t] = 0.0
            return out

        def stopping(input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if stop and tok is not None:
                for r in range(input_ids.shape[0]):
                    new = input_ids[r, width:].tolist()
                    if new and new[-1] not in eos and _ends_with_stop(tok, new, stop):
                        done[r] = True
            return done

        config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new, pad_token_id=pad,
                                  eos_token_id=eos or None)
        counted = [0]

        def count(module: Any, args: Any, kwargs: Any) -> None:
            x = kwargs.get("input_ids", args[0] if args else None)
            if isinstance(x, torch.Tensor):
                counted[0] += int((x != pad).sum())

        hook = self.model.register_forward_pre_hook(count, with_kwargs=True) \
            if hasattr(self.model, "register_forward_pre_hook") else None
        try:
            with torch.no_grad():
                out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                          generation_config=config,
                                          logits_processor=LogitsProcessorList([processor]),
                                          stopping_criteria=StoppingCriteriaList([stopping]))
        finally:
            if hook is not None:
                hook.remove()
        self.positions_processed += counted[0]
        seqs = out.sequences if hasattr(out, "sequences") else out
        results: List[Dict[str, Any]] = []
        for r in range(len(prompts)):
            new = seqs[r, width:].tolist()
            tokens: List[int] = []
            logprobs: List[float] = []
            reason = "length"
            for j, t in enumerate(new):
                if j >= len(picked[r]) or picked[r][j][0] != t:
                    break  # padding after the row finished
                if t in eos:
                    reason = "eos"
                    break
                tokens.append(t)
                logprobs.append(picked[r][j][1])
                if stop and tok is not None and _ends_with_stop(tok, tokens, stop):
                    reason = "stop"
                    break
                if len(tokens) >= max_new:
                    break
            results.append({"tokens": tokens, "logprobs": logprobs, "finish_reason": reason})
        return results


def _ends_with_stop(tok: Any, tokens: Sequence[int], stop: Sequence[str]) -> bool:
    """Whether the last tokens decode to text containing a stop string (the C++ engine's window rule)."""
    window = min(len(tokens), max(len(s) for s in stop) + 4)
    tail = tok.decode(list(tokens[len(tokens) - window:]))
    return any(s in tail for s in stop)


HFSource = HFBackend  # the name metaprobe.adapters used


def hf(model: Any, tokenizer: Any = None, generation_config: Any = None, device: Optional[torch.device | str] = None,
       chat_template_kwargs: Optional[Mapping[str, Any]] = None) -> HFBackend:
    """Wraps a Hugging Face causal LM and its tokenizer for :meth:`MetaProbe.add_stage`.

    Args:
        model: a ``transformers`` ``AutoModelForCausalLM`` (any dtype, ``device_map`` models included), or a
            stand-in called as ``model(input_ids=..., attention_mask=...)`` returning ``.logits``.
        tokenizer: the stage's own tokenizer; the run uses it for prompts, answers and EOS ids. Stages whose
            vocabularies differ are an error.
        generation_config: where the extra end-of-turn ids come from (default: the model's).
        device: where inputs go (default: the model's first parameter's device); a device this torch cannot
            use is an UnsupportedError.
        chat_template_kwargs: extra arguments of ``apply_chat_template`` (``prompt_format="chat_template"``).
    """
    return HFBackend(model, tokenizer, generation_config, device, chat_template_kwargs)


def char_tokenizer() -> CallableTokenizer:
    """The lm module's character tokenizer as a run tokenizer (PAD 0, BOS 1, EOS 2), in Python."""
    from .lm import CharTokenizer

    tok = CharTokenizer()
    return CallableTokenizer(lambda t: tok.encode(t, add_special_tokens=False), tok.decode, 0, 1, 2)
