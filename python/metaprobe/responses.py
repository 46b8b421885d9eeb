"""Answers produced by another engine — vLLM, lm-evaluation-harness, any JSONL — for a stage to score instead of
generating (``MetaProbe.add_stage(..., responses=...)``); and the same JSONL schema for what a run generated
(:meth:`metaprobe.report.Report.export_responses`). The schema, one JSON object per line (``docs/responses.md``):

=================  ===========================================================================================
``item_id``        the probe item's id (string, required)
``sample``         sample index, 0 .. ``n_samples`` − 1 (integer, default 0)
``text``           the answer right after the prompt, not cut at stop strings (string, required)
``token_ids``      its token ids under the run's tokenizer (list of int, optional; absent: ``text`` is tokenised
                   alone, so the prompt/answer boundary stays exact, and the report says ``imported_retokenized``)
``finish_reason``  ``"eos"``, ``"stop"``, ``"length"`` or null (optional)
``logprobs``       per-token log-probabilities under the engine (list of float, one per token id; optional, kept
                   for the record)
``sampling``       the sampling settings used (object, optional; e.g. ``{"temperature": 0.6, "top_p": 0.95}``)
``stage``          the stage the answer belongs to (string, optional; a file may hold several stages)
=================  ===========================================================================================

Every reader is strict: a broken line, a wrong type, an unknown key or a duplicate ``(item_id, sample)`` raises
:class:`metaprobe.FormatError` naming the file and line; unknown or missing items are refused when the stage is
added. Nothing is half-imported: a reader returns all answers or raises.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Union

from ._core import FormatError, InvalidArgumentError, IoError

__all__ = ["Response", "Responses", "from_jsonl", "from_vllm", "from_lm_eval", "to_jsonl"]

PathLike = Union[str, "os.PathLike[str]"]
FINISH_REASONS = ("eos", "stop", "length")
_KEYS = {"item_id", "sample", "text", "token_ids", "finish_reason", "logprobs", "sampling", "stage"}


@dataclass(frozen=True)
class Response:
    """One sample of one item's answer. ``origin`` ("file:line") only serves error messages."""

    item_id: str
    sample: int = 0
    text: str = ""
    token_ids: Optional[tuple[int, ...]] = None
    finish_reason: Optional[str] = None
    logprobs: Optional[tuple[float, ...]] = None
    sampling: Optional[dict] = None
    stage: Optional[str] = None
    origin: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        """The JSONL object of this answer (optional fields only when set)."""
        d: dict[str, Any] = {"item_id": self.item_id, "sample": self.sample, "text": self.text}
        if self.token_ids is not None:
            d["token_ids"] = list(self.token_ids)
        d["finish_reason"] = self.finish_reason
        if self.logprobs is not None:
            d["logprobs"] = list(self.logprobs)
        if self.sampling is not None:
            d["sampling"] = self.sampling
        if self.stage is not None:
            d["stage"] = self.stage
        return d


class Responses(Sequence[Response]):
    """The answers of one stage, in order, with where they came from (``source``: "jsonl:PATH", "vllm",
    "lm_eval:PATH", "report:STAGE")."""

    def __init__(self, responses: Iterable[Response], source: str = "") -> None:
        self._items = list(responses)
        for k, r in enumerate(self._items):
            if not isinstance(r, Response):
                raise InvalidArgumentError(f"Responses[{k}] is a {type(r).__name__}, expected a metaprobe.responses.Response")
        self.source = source
        seen: dict[tuple[str, int], str] = {}
        for k, r in enumerate(self._items):
            key = (r.item_id, r.sample)
            where = r.origin or f"entry {k}"
            if key in seen:
                raise FormatError(f"{where}: item '{r.item_id}' sample {r.sample} appears twice (first at {seen[key]}), "
                                  "expected one answer per sample")
            seen[key] = where

    def __getitem__(self, k):  # type: ignore[override]
        return self._items[k]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Response]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Responses({len(self)} answers, source={self.source!r})"

    @property
    def item_ids(self) -> list[str]:
        """The distinct item ids, in first-seen order."""
        return list(dict.fromkeys(r.item_id for r in self._items))

    def to_jsonl(self, path: PathLike) -> None:
        """Writes the answers in the JSONL schema, whole or not at all."""
        to_jsonl(self._items, path)

    def _rows(self) -> list[tuple]:
        # What the C++ Stage::responses takes: (item_id, sample, text, token ids or None, finish_reason, origin).
        return [(r.item_id, r.sample, r.text, None if r.token_ids is None else list(r.token_ids),
                 r.finish_reason or "", r.origin) for r in self._items]


# --- checks shared by the readers -----------------------------------------------------------------------------

def _fail(where: str, msg: str) -> None:
    raise FormatError(f"{where}: {msg}")


def _int(v: Any, where: str, name: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum or v > 2**63 - 1:
        _fail(where, f"{name} is {v!r}, expected an integer >= {minimum}")
    return int(v)


def _str(v: Any, where: str, name: str) -> str:
    if not isinstance(v, str):
        _fail(where, f"{name} is {type(v).__name__} {v!r}, expected a string")
    return v


def _ids(v: Any, where: str, name: str) -> tuple[int, ...]:
    if not isinstance(v, list):
        _fail(where, f"{name} is {type(v).__name__}, expected a list of token ids")
    for t in v:
        if isinstance(t, bool) or not isinstance(t, int) or t < 0 or t > 2**63 - 1:
            _fail(where, f"{name} holds {t!r}, expected integer token ids >= 0")
    return tuple(int(t) for t in v)


def _floats(v: Any, where: str, name: str) -> tuple[float, ...]:
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
        _fail(where, f"{name} is {v!r:.80}, expected a list of numbers")
    return tuple(float(x) for x in v)


def _finish(v: Any, where: str) -> Optional[str]:
    if v is None or v == "":
        return None
    if v not in FINISH_REASONS:
        _fail(where, f"finish_reason is {v!r}, expected one of {', '.join(FINISH_REASONS)} or null")
    return str(v)


def _response(obj: Any, where: str) -> Response:
    if not isinstance(obj, dict):
        _fail(where, f"the line is JSON {type(obj).__name__}, expected an object")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        _fail(where, f"unknown key '{unknown[0]}', expected keys among {', '.join(sorted(_KEYS))}")
    for key in ("item_id", "text"):
        if key not in obj:
            _fail(where, f"'{key}' is missing")
    token_ids = None if obj.get("token_ids") is None else _ids(obj["token_ids"], where, "token_ids")
    logprobs = None if obj.get("logprobs") is None else _floats(obj["logprobs"], where, "logprobs")
    if logprobs is not None and token_ids is not None and len(logprobs) != len(token_ids):
        _fail(where, f"logprobs has {len(logprobs)} values for {len(token_ids)} token ids, expected one per token")
    sampling = obj.get("sampling")
    if sampling is not None and not isinstance(sampling, dict):
        _fail(where, f"sampling is {type(sampling).__name__}, expected an object")
    stage = obj.get("stage")
    return Response(item_id=_str(obj["item_id"], where, "item_id"), sample=_int(obj.get("sample", 0), where, "sample"),
                    text=_str(obj["text"], where, "text"), token_ids=token_ids,
                    finish_reason=_finish(obj.get("finish_reason"), where), logprobs=logprobs, sampling=sampling,
                    stage=None if stage is None else _str(stage, where, "stage"), origin=where)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    d: dict = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key '{k}'")
        d[k] = v
    return d


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _json_lines(path: str) -> Iterator[tuple[str, Any]]:
    """(where, parsed object) of every non-blank line; FormatError naming file:line on bad UTF-8 or JSON."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise IoError(f"'{path}' is a directory, expected a JSONL file") from None
    except OSError as e:
        raise IoError(f"cannot read '{path}': {e.strerror or e}") from None
    for n, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path}:{n}"
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{where}: not UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
        except ValueError as e:
            raise FormatError(f"{where}: not a JSON object ({e})") from None
        yield where, obj


# --- readers ----------------------------------------------------------------------------------------------------

def from_jsonl(path: PathLike, stage: Optional[str] = None) -> Responses:
    """Reads answers in metaprobe's JSONL schema (module docstring).

    Args:
        path: the JSONL file.
        stage: keep only lines whose ``stage`` is this; required when the file holds several stages.
    """
    p = os.fspath(path)
    out = [_response(obj, where) for where, obj in _json_lines(p)]
    stages = sorted({r.stage for r in out if r.stage is not None})
    if stage is not None:
        if stage not in stages:
            raise InvalidArgumentError(f"from_jsonl: no line of '{p}' has stage '{stage}', expected one of "
                                       f"{stages or '(no stage field)'}")
        out = [r for r in out if r.stage == stage]
    elif len(stages) > 1:
        raise InvalidArgumentError(f"from_jsonl: '{p}' holds the stages {stages}, expected stage=... to pick one")
    return Responses(out, source=f"jsonl:{p}")


def to_jsonl(responses: Iterable[Response], path: PathLike) -> None:
    """Writes answers in the JSONL schema, whole or not at all (temporary file beside ``path``, then rename)."""
    from ._atomic import write_bytes_atomic

    lines = []
    for r in responses:
        if not isinstance(r, Response):
            raise InvalidArgumentError(f"to_jsonl: got a {type(r).__name__}, expected metaprobe.responses.Response")
        lines.append(json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False))
    write_bytes_atomic(os.fspath(path), ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    # vLLM objects and their saved JSON: attribute or key.
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _vllm_finish(c: Any, where: str) -> Optional[str]:
    # vLLM: "length", or "stop" with stop_reason None (an EOS token), an int (a stop token id) or a str (a stop
    # string, cut from the text).
    reason = _get(c, "finish_reason")
    if reason is None:
        return None
    if reason == "length":
        return "length"
    if reason == "stop":
        return "stop" if isinstance(_get(c, "stop_reason"), str) else "eos"
    if reason == "abort":
        _fail(where, "finish_reason is 'abort' (the request was aborted), expected a finished completion")
    _fail(where, f"finish_reason is {reason!r}, expected vLLM's 'stop' or 'length'")
    return None


def _vllm_logprobs(c: Any, ids: Optional[tuple[int, ...]], where: str) -> Optional[tuple[float, ...]]:
    # CompletionOutput.logprobs: one {token_id: Logprob(logprob=...)} per generated token (None unless asked).
    lps = _get(c, "logprobs")
    if lps is None or ids is None:
        return None
    if len(lps) != len(ids):
        _fail(where, f"logprobs has {len(lps)} entries for {len(ids)} token ids, expected one per token")
    out = []
    for t, entry in zip(ids, lps):
        got = entry.get(t, entry.get(str(t))) if isinstance(entry, Mapping) else None
        if got is None:
            _fail(where, f"logprobs has no entry for the sampled token {t}")
        value = _get(got, "logprob", got)
        out.append(float(value))
    return tuple(out)


def from_vllm(outputs: Any, item_ids: Optional[Sequence[str]] = None) -> Responses:
    """Answers from vLLM's ``LLM.generate``: a list of ``RequestOutput`` (or the same saved as JSON: dicts with
    ``request_id`` and ``outputs``, each ``{index, text, token_ids, cumulative_logprob, logprobs, finish_reason,
    stop_reason}``, or a path to such a JSON file).

    Args:
        outputs: the request outputs; request k's completion ``index`` s becomes sample s.
        item_ids: the probe item id of each request, in order; default: each request's ``request_id``.

    A completion's ``token_ids`` are kept (vLLM's trailing EOS id is dropped by the run); ``finish_reason`` "stop"
    becomes "stop" when a stop string ended it, else "eos".
    """
    source = "vllm"
    if isinstance(outputs, (str, os.PathLike)):
        p = os.fspath(outputs)
        try:
            with open(p, encoding="utf-8") as f:
                outputs = json.load(f)
        except OSError as e:
            raise IoError(f"from_vllm: cannot read '{p}': {e.strerror or e}") from None
        except (UnicodeDecodeError, ValueError) as e:
            raise FormatError(f"from_vllm: '{p}' is not JSON ({e})") from None
        source = f"vllm:{p}"
    if isinstance(outputs, (Mapping, str, bytes)) or not isinstance(outputs, Iterable):
        raise InvalidArgumentError(f"from_vllm: outputs is a {type(outputs).__name__}, expected a list of vLLM "
                                   "RequestOutput (or their JSON)")
    outputs = list(outputs)
    if item_ids is not None:
        item_ids = list(item_ids)
        if len(item_ids) != len(outputs):
            raise InvalidArgumentError(f"from_vllm: {len(item_ids)} item_ids for {len(outputs)} request outputs, "
                                       "expected one per request")
    out = []
    for k, req in enumerate(outputs):
        where = f"{source} request {k}"
        completions = _get(req, "outputs")
        if completions is None:
            _fail(where, f"a {type(req).__name__} without 'outputs', expected a vLLM RequestOutput")
        item = item_ids[k] if item_ids is not None else _get(req, "request_id")
        item = _str(item, where, "item id (request_id)")
        for c in completions:
            sample = _int(_get(c, "index", 0), where, "index")
            text = _get(c, "text")
            text = _str(text, where, "text")
            ids_raw = _get(c, "token_ids")
            ids = None if ids_raw is None else _ids(list(ids_raw), where, "token_ids")
            out.append(Response(item_id=item, sample=sample, text=text, token_ids=ids,
                                finish_reason=_vllm_finish(c, where), logprobs=_vllm_logprobs(c, ids, where),
                                origin=f"{where} completion {sample}"))
    return Responses(out, source=source)


def _lm_eval_files(path: Any) -> list[str]:
    if isinstance(path, (list, tuple)):
        return [os.fspath(p) for p in path]
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "samples_*.jsonl"), recursive=True))
        if not files:
            raise IoError(f"from_lm_eval: no samples_*.jsonl under '{path}', expected lm_eval --log_samples output")
        return files
    return [path]


def _gen_kwargs(arguments: Any) -> Optional[dict]:
    # lm-eval logs a request's args as [prompt, gen_kwargs], or as {"gen_args_0": {"arg_0": ..., "arg_1": ...}}.
    first = arguments[0] if isinstance(arguments, list) and arguments else arguments
    if isinstance(first, Mapping) and "gen_args_0" in first:
        first = first["gen_args_0"]
    if isinstance(first, Mapping):
        kw = first.get("arg_1")
    elif isinstance(first, list) and len(first) > 1:
        kw = first[1]
    else:
        kw = None
    return dict(kw) if isinstance(kw, Mapping) else None


def from_lm_eval(samples_path: Union[PathLike, Sequence[PathLike]], id_field: str = "id") -> Responses:
    """Answers from lm-evaluation-harness ``--log_samples`` files of ``generate_until`` tasks (e.g. the tasks of
    ``metaprobe probes export-lm-eval``).

    Args:
        samples_path: a ``samples_<task>_<date>.jsonl`` file, a list of them, or a directory: every such file
            beneath it (one per task; an item in two files is a duplicate).
        id_field: the key of the probe item id in each line's ``doc``.

    The raw ``resps`` are kept (metaprobe applies its own extraction, not the task's filters); with ``repeats``
    > 1, repeat s becomes sample s. A ``loglikelihood`` (multiple-choice) sample is an error: score those with
    ``choice_mode="loglikelihood"`` on a model.
    """
    files = _lm_eval_files(samples_path)
    root = files[0] if len(files) == 1 else os.fspath(samples_path) if not isinstance(samples_path, (list, tuple)) \
        else f"{len(files)} files"
    out = []
    for path in files:
        for where, obj in _json_lines(path):
            if not isinstance(obj, dict):
                _fail(where, f"the line is JSON {type(obj).__name__}, expected an lm-eval sample object")
            for key in ("doc", "resps"):
                if key not in obj:
                    _fail(where, f"'{key}' is missing, expected an lm-eval --log_samples line")
            doc = obj["doc"]
            if not isinstance(doc, dict) or id_field not in doc:
                _fail(where, f"doc has no '{id_field}' field, expected the probe item id there (id_field=...)")
            item = _str(doc[id_field], where, f"doc.{id_field}")
            resps = obj["resps"]
            if not isinstance(resps, list) or len(resps) != 1 or not isinstance(resps[0], list):
                _fail(where, f"resps holds {len(resps) if isinstance(resps, list) else resps!r} requests, expected one "
                             "generate_until request (multiple_choice samples are scored by log-likelihood)")
            sampling = _gen_kwargs(obj.get("arguments"))
            for s, text in enumerate(resps[0]):
                if not isinstance(text, str):
                    _fail(where, f"resps[0][{s}] is {type(text).__name__}, expected generated text "
                                 "(a loglikelihood sample?)")
                out.append(Response(item_id=item, sample=s, text=text, sampling=sampling, origin=where))
    return Responses(out, source=f"lm_eval:{root}")


def as_responses(value: Any, name: str) -> Responses:
    """A :class:`Responses` from what ``add_stage(responses=...)`` accepts: Responses, a sequence of Response or
    of JSONL-schema dicts, or a JSONL path."""
    if isinstance(value, Responses):
        return value
    if isinstance(value, (str, os.PathLike)):
        return from_jsonl(value)
    if isinstance(value, Iterable) and not isinstance(value, (Mapping, bytes)):
        rows = []
        for k, r in enumerate(value):
            if isinstance(r, Response):
                rows.append(r)
            elif isinstance(r, Mapping):
                rows.append(_response(dict(r), f"{name}[{k}]"))
            else:
                raise InvalidArgumentError(f"{name}[{k}] is a {type(r).__name__}, expected a Response or a dict")
        return Responses(rows, source="python")
    raise InvalidArgumentError(f"{name} is a {type(value).__name__}, expected metaprobe.responses.Responses, a list of "
                               "Response or dicts, or a JSONL path")
