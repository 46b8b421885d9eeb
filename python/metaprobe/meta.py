"""The meta-probing run (arXiv 2512.24063): behaviour, divergence, parameter updates and derived metrics of
every stage of one or more post-training arms against a reference stage.

>>> mp = MetaProbe(probes, reference="base", options=MetaOptions(max_new_tokens=32))
>>> mp.add_stage("base", arm="base", step=0, source=backends.hf(base, tokenizer), checkpoint=base)
>>> mp.add_stage("sft-100", arm="sft", step=100, source=backends.hf(model, tokenizer), checkpoint=model)
>>> report = mp.run()          # metaprobe.report.Report: DataFrames, plots, JSON, HTML

The engine is the C++ ``metaprobe::meta::Run``; a stage's model is a backend (``metaprobe.backends``): a
``TinyLM`` runs natively with its KV cache, ``backends.hf`` generates with the model's own ``generate`` and
scores only the requested positions, a bare callable is run uncached. Definitions of every metric:
``docs/meta.md``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import field, make_dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from . import _core
from ._core import InvalidArgumentError, IoError
from .backends import HFBackend, HFTokenizer, as_logit_source

__all__ = ["MetaOptions", "MetaProbe", "default_options", "read_answer", "save_topk_cache", "load_topk_cache"]

PathLike = Union[str, "os.PathLike[str]"]


def _option_fields() -> list[tuple[str, str, Any]]:
    """(name, path, default) of every option but ``reference``, from the C++ field list
    (``_core.meta.OPTION_FIELDS``, paths like ``prompt.template``) and the C++ defaults: the name joins a
    nested path with "_" (``prompt_template``); a list default becomes a tuple (immutable)."""
    defaults = _core.meta.default_options()
    fields = []
    for path in _core.meta.OPTION_FIELDS:
        if path == "reference":
            continue  # MetaProbe's own argument
        value: Any = defaults
        for part in path.split("."):
            value = value[part]
        fields.append((path.replace(".", "_"), path, tuple(value) if isinstance(value, list) else value))
    return fields


_OPTION_FIELDS = _option_fields()


def _plain(value: Any) -> Any:
    """A list element as JSON takes it: numpy and other integral numbers as int."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


class _MetaOptionsMethods:
    def to_dict(self, reference: str) -> dict:
        """The options as the C++ run reads them (keys of ``meta::options_to_json``, ``prompt`` nested), for the
        reference stage ``reference``; InvalidArgumentError for a non-finite number. A string given for a list
        option (``stop``, ``target_cells``) is that one entry."""
        d: dict[str, Any] = {"reference": reference}
        for name, path, default in _OPTION_FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidArgumentError(f"MetaOptions.{name} is {value}, expected a finite number")
            if isinstance(default, tuple):
                value = [value] if isinstance(value, str) else [_plain(e) for e in value]
            *parents, leaf = path.split(".")
            node = d
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return d

    def to_json(self, reference: str) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(reference))

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> "MetaOptions":
        """The options of a run from its options dict (a report's ``options``, :meth:`to_dict`'s form); absent
        keys keep the defaults, keys that are not options (``reference``, or one a later version added) are
        ignored."""
        kwargs: dict[str, Any] = {}
        for name, path, default in _OPTION_FIELDS:
            value: Any = options
            for part in path.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    break
                value = value[part]
            else:
                kwargs[name] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
        return cls(**kwargs)


def _annotation(default: Any) -> Any:
    return Union[str, Sequence[Any]] if isinstance(default, tuple) else type(default)


#: Options of the run. Its fields, their names and defaults come from the C++ ``RunOptions`` field list
#: (``_core.meta.OPTION_FIELDS``, ``_core.meta.default_options()``); ``docs/meta.md`` documents each.
MetaOptions = make_dataclass(
    "MetaOptions", [(name, _annotation(default), field(default=default)) for name, _, default in _OPTION_FIELDS],
    bases=(_MetaOptionsMethods,), namespace={"__module__": __name__})
MetaOptions.__doc__ = ("Options of the run: one field per C++ RunOptions option (a nested one joined with '_', e.g. "
                       "prompt_template), with its C++ default; every field is documented in docs/meta.md.")


def read_answer(text: str, options: Optional[MetaOptions] = None) -> "_core.meta.AnswerText":
    """Reads the answer out of a completion exactly as the run does: cut at the first stop string, and after the
    closing think tag when a reasoning block is present (``.answer``; ``.closed`` is False when the block never
    closed, and then nothing is scored). Uses ``options``' ``stop``, ``think_open`` and ``think_close``."""
    o = options if options is not None else MetaOptions()
    stop = [o.stop] if isinstance(o.stop, str) else list(o.stop)
    return _core.meta.read_answer(text, stop, o.think_open, o.think_close)


def save_topk_cache(path: PathLike, entries: Iterable[Mapping[str, Any]], temperature: float = 1.0) -> None:
    """Writes a reference's top-k cache file for ``add_stage(..., reference_cache=path)`` (docs/meta.md, "Top-k
    cache files"), whole or not at all.

    Args:
        entries: one per cached sequence: ``item_id``, ``sample`` (default 0), ``indices`` (int [n, k], the top-k
            token ids of each of the sequence's n scored tokens, most probable first), ``logprobs`` ([n, k], their
            log-probabilities at ``temperature``) and optionally ``entropy`` ([n], the full distribution's, in
            nats; absent: unknown, and the entropies against this cache are NaN).
        temperature: the softmax temperature the log-probabilities are at (the run's ``divergence_temperature``).
    """
    rows = []
    for k, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise InvalidArgumentError(f"save_topk_cache: entries[{k}] is a {type(e).__name__}, expected a dict")
        for key in ("item_id", "indices", "logprobs"):
            if key not in e:
                raise InvalidArgumentError(f"save_topk_cache: entries[{k}] has no '{key}'")
        tensors = []
        for key in ("indices", "logprobs", "entropy"):
            v = e.get(key)
            if v is None and key == "entropy":
                tensors.append(None)
                continue
            t = torch.as_tensor(v)
            if t.device.type == "meta":
                raise InvalidArgumentError(f"save_topk_cache: entries[{k}].{key} is on the meta device (no data)")
            tensors.append(t.detach().cpu())
        rows.append((str(e["item_id"]), int(e.get("sample", 0)), *tensors))
    _core.meta.save_topk_caches(os.fspath(path), rows, float(temperature))


def load_topk_cache(path: PathLike) -> tuple[list[dict], float]:
    """Reads a top-k cache file: (one dict per sequence with item_id, sample, indices, logprobs, tail, entropy,
    argmax; the temperature)."""
    entries, temperature = _core.meta.load_topk_caches(os.fspath(path))
    keys = ("item_id", "sample", "indices", "logprobs", "tail", "entropy", "argmax")
    return [dict(zip(keys, e)) for e in entries], temperature


def default_options() -> dict:
    """The C++ defaults of every option, as a dict."""
    return _core.meta.default_options()


def _probe_items(probes: Any) -> list:
    """The run's items as ``_core.Item`` objects (they cross into C++ as they are, never as text)."""
    if isinstance(probes, (str, os.PathLike)):
        from .probes import ProbeSet

        path = os.fspath(probes)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise IoError(f"probes: cannot read '{path}' ({e.strerror or e}), expected a readable JSONL file") from None
        items = list(ProbeSet.from_jsonl_text(text, path))
    elif not isinstance(probes, Iterable) or isinstance(probes, (bytes, Mapping)):
        raise InvalidArgumentError(
            f"probes is a {type(probes).__name__}, expected a ProbeSet, a sequence of Items or dicts, or a JSONL path")
    else:
        items = []
        for k, item in enumerate(probes):
            if isinstance(item, _core.Item):
                items.append(item)
            elif isinstance(item, Mapping):
                items.append(_core.Item.from_dict(dict(item)))
            else:
                raise InvalidArgumentError(f"probes[{k}] is a {type(item).__name__}, expected a metaprobe Item or a dict")
    if not items:
        raise InvalidArgumentError("probes is empty, expected at least one probe item")
    return items


def _state_items(checkpoint: Any, name: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(checkpoint, Mapping):
        items = list(checkpoint.items())
    elif hasattr(checkpoint, "state_dict") and callable(checkpoint.state_dict):
        items = list(checkpoint.state_dict().items())
    else:
        raise InvalidArgumentError(
            f"stage '{name}': checkpoint is a {type(checkpoint).__name__}, expected a path, a state dict or a module")
    out = []
    for key, t in items:
        if not isinstance(t, torch.Tensor):
            raise InvalidArgumentError(f"stage '{name}': checkpoint entry '{key}' is a {type(t).__name__}, expected a tensor")
        out.append((str(key), t.detach().cpu()))
    return out


def _is_run_tokenizer(tok: Any) -> bool:
    return all(hasattr(tok, a) for a in ("encode", "decode", "pad_id", "bos_id", "eos_id"))


class MetaProbe:
    """A meta-probing run over probe items and stages that share one tokenizer.

    Args:
        probes: a :class:`metaprobe.probes.ProbeSet`, a sequence of Items or JSONL dicts, or a JSONL path.
        reference: the name of the reference stage (usually the base model).
        options: :class:`MetaOptions` (defaults when omitted).
        tokenizer: ``"char"`` (the built-in character tokenizer), a run tokenizer (``encode``/``decode``/
            ``pad_id``/``bos_id``/``eos_id``), a Hugging Face tokenizer, or ``None``: the tokenizer of the stages
            made with :func:`metaprobe.backends.hf` (all must share one vocabulary), ``"char"`` when every stage
            is a :class:`metaprobe.lm.TinyLM`; anything else is an error, never a silent fallback.
    """

    def __init__(self, probes: Any, reference: str = "base", options: Optional[MetaOptions] = None,
                 tokenizer: Any = None) -> None:
        self._items = _probe_items(probes)
        self.reference = reference
        self.options = options if options is not None else MetaOptions()
        if not isinstance(self.options, MetaOptions):
            raise InvalidArgumentError(f"options is a {type(self.options).__name__}, expected a MetaOptions")
        _core.meta.check_options(self.options.to_dict(reference))
        self.tokenizer = tokenizer
        self._stages: list[dict[str, Any]] = []

    @property
    def stages(self) -> list[str]:
        """Names of the stages added so far, in order."""
        return [s["name"] for s in self._stages]

    def add_stage(self, name: str, arm: str = "base", step: int = 0, source: Any = None, *,
                  loader: Optional[Callable[[], Any]] = None, checkpoint: Any = None,
                  torchscript: Optional[PathLike] = None, weights: Optional[PathLike] = None,
                  tokenizer: Any = None, responses: Any = None,
                  reference_cache: Optional[PathLike] = None) -> "MetaProbe":
        """Adds a stage.

        Args:
            name: unique stage name; arm: "base", "sft", "rl" or any string; step: training step.
            source: a backend: ``backends.hf(model, tokenizer)``, a ``metaprobe.lm.TinyLM`` (native, KV-cached),
                or any callable ``(input_ids, attention_mask) -> logits`` (uncached generation: slow).
            loader: instead of ``source``, a function returning one, called when the stage is probed and dropped
                after (one model resident at a time with ``reference_mode="topk_cache"``).
            tokenizer: the stage's tokenizer when ``source``/``loader`` does not carry one (a loader's backend is
                only built at run time, so a loader stage of a Hugging Face model names its tokenizer here).
            checkpoint: a safetensors file or checkpoint directory, a state dict, or a module (its
                ``state_dict()``); compared with the reference's by :mod:`metaprobe.params`.
            torchscript / weights: instead of ``source``, a TorchScript file whose ``forward(ids, mask)`` returns
                logits, optionally with its parameters replaced from a safetensors file.
            responses: the stage's answers from another engine (:mod:`metaprobe.responses`: ``from_jsonl``,
                ``from_vllm``, ``from_lm_eval``, or a JSONL path): scored instead of generating, one per sample of
                every generate-mode item. With a model beside them, divergence and the sampled-token estimator run
                along them as along generated answers; without one the stage gets behaviour (and parameters) only.
            reference_cache: the reference stage only, with ``reference_mode="topk_cache"``: a top-k cache file
                (:func:`save_topk_cache`, e.g. from vLLM's ``prompt_logprobs``) along the reference's answers (or
                the gold solutions), used instead of building the cache from its model; with it and
                ``sampled_estimator=False`` the reference needs no model at all.
        """
        if any(s["name"] == name for s in self._stages):
            raise InvalidArgumentError(f"add_stage: a stage named '{name}' already exists")
        given = [x is not None for x in (source, loader, torchscript)]
        if sum(given) > 1 or (sum(given) == 0 and responses is None):
            raise InvalidArgumentError(
                f"add_stage: stage '{name}' needs exactly one of source, loader or torchscript (or responses alone), "
                f"got {sum(given)}")
        from .lm import TinyLM

        spec: dict[str, Any] = {"name": str(name), "arm": str(arm), "step": int(step)}
        if tokenizer is not None:
            spec["_tokenizer"] = tokenizer if isinstance(tokenizer, (str, HFTokenizer)) or _is_run_tokenizer(tokenizer) \
                else HFTokenizer(tokenizer)
        if source is not None:
            if isinstance(source, TinyLM):
                spec["source"] = source._model  # native C++ model: KV-cached generation
                spec.setdefault("_tokenizer", "char")  # a TinyLM's vocabulary is the character tokenizer's
            else:
                spec["source"] = as_logit_source(source, f"stage '{name}' source")
            spec["description"] = type(source).__name__
            if isinstance(source, HFBackend) and source.tokenizer is not None and "_tokenizer" not in spec:
                spec["_tokenizer"] = source.tokenizer
        if loader is not None:
            if not callable(loader):
                raise InvalidArgumentError(f"add_stage: stage '{name}' loader is not callable")

            def load(loader=loader) -> Any:
                got = loader()
                return got._model if isinstance(got, TinyLM) else as_logit_source(got, f"stage '{name}' loaded source")

            spec["loader"] = load
            spec["_loader"] = True
        if torchscript is not None:
            spec["torchscript"] = os.fspath(torchscript)
            if weights is not None:
                spec["weights"] = os.fspath(weights)
        if reference_cache is not None:
            if not isinstance(reference_cache, (str, os.PathLike)):
                raise InvalidArgumentError(f"add_stage: stage '{name}' reference_cache is a "
                                           f"{type(reference_cache).__name__}, expected a path to a top-k cache file")
            spec["reference_cache"] = os.fspath(reference_cache)
        if responses is not None:
            from .responses import as_responses

            spec["responses"] = as_responses(responses, f"stage '{name}' responses")._rows()
            self._check_responses(str(name), spec["responses"])
        if checkpoint is not None:
            if isinstance(checkpoint, (str, os.PathLike)):
                spec["checkpoint"] = os.fspath(checkpoint)
            else:
                spec["state_dict"] = _state_items(checkpoint, name)
        self._stages.append(spec)
        return self

    def _check_responses(self, name: str, rows: list[tuple]) -> None:
        # The C++ Run checks the same when the run starts; checking here too fails add_stage itself, with nothing
        # added. One C++ rule: a throwaway Run with this stage alone.
        _core.meta.check_stage_responses(self._items, self.options.to_dict(self.reference), name, rows)

    def _tokenizer(self) -> Any:
        tok = self.tokenizer
        if tok is None:
            given = [(s["name"], s["_tokenizer"]) for s in self._stages if "_tokenizer" in s]
            hf_toks = [(n, t) for n, t in given if isinstance(t, HFTokenizer)]
            limit = self.options.vocab_size or None
            for n, t in hf_toks[1:]:
                if not hf_toks[0][1].same_vocabulary(t, limit):
                    raise InvalidArgumentError(
                        f"stage '{n}': its tokenizer's vocabulary differs from stage '{hf_toks[0][0]}''s"
                        + (f" below id {limit}" if limit else "") + ", expected one vocabulary for the whole run "
                        "(divergences compare token distributions; MetaOptions.vocab_size=N compares only ids < N)")
            if hf_toks:
                tok = hf_toks[0][1]
            elif given:
                tok = given[0][1]
            else:
                first = self._stages[0]["name"] if self._stages else "(none)"
                raise InvalidArgumentError(
                    f"tokenizer: none given and no stage carries one (stage '{first}'), expected MetaProbe(tokenizer=...), "
                    "add_stage(..., tokenizer=...) or backends.hf(model, tokenizer); only TinyLM stages imply the "
                    "character tokenizer")
        if isinstance(tok, str) or _is_run_tokenizer(tok):
            return tok
        return HFTokenizer(tok)  # a Hugging Face style tokenizer (e.g. metaprobe.lm.CharTokenizer)

    def run(self, progress: bool = True, out_dir: Optional[PathLike] = None, resume: bool = False,
            stages: Optional[Sequence[str]] = None) -> "Report":
        """Runs every step and returns the :class:`metaprobe.report.Report`.

        Args:
            progress: show a tqdm bar.
            out_dir: the run directory: each stage's results (answers, scores, divergence partial sums,
                parameter statistics) are written there, whole, as soon as the stage finishes, and
                ``report.json`` at the end. A killed run loses only the stage it was in.
            resume: continue the run in ``out_dir``: stored stages are not probed again and the report equals an
                uninterrupted run's (timings aside). A directory started on another suite, other options or
                changed stages is refused naming the change; without ``resume`` a directory holding a run is
                refused.
            stages: one part of a run split over processes or jobs: probe only these stages (and the reference,
                which every part probes); :meth:`Report.merge` joins the parts, and
                :func:`metaprobe.distributed.meta_run` does both over ``torch.distributed``.
        """
        from .report import Report

        if resume and out_dir is None:
            raise InvalidArgumentError("run: resume=True needs out_dir, the directory of the run to continue")

        bar = None
        callback = None
        if progress:
            from ._progress import progress_bar

            bar = progress_bar(total=0, desc="meta-probe", unit="batch", leave=False)

            def callback(phase: str, stage: str, done: int, total: int) -> None:
                if bar.total != total:
                    bar.total = total
                bar.set_postfix_str(f"{phase} {stage}".strip(), refresh=False)
                bar.update(done - bar.n)

        specs = [{k: v for k, v in s.items() if not k.startswith("_")} for s in self._stages]
        only = [] if stages is None else [stages] if isinstance(stages, str) else [str(s) for s in stages]
        try:
            doc = _core.meta.run(self._items, specs, self._tokenizer(), self.options.to_dict(self.reference),
                                 callback, "" if out_dir is None else os.fspath(out_dir), bool(resume), only)
        finally:
            if bar is not None:
                bar.close()
        return Report(doc)
