"""The probe suite as lm-evaluation-harness tasks, scored by metaprobe's own extraction and checking.

``export(probes, "tasks/")`` (or ``metaprobe probes export-lm-eval SUITE.jsonl tasks/``) writes one task per
cell, ``metaprobe_<skill>_<domain>``, and the group ``metaprobe`` over them::

    tasks/
      metaprobe.yaml                     the group (acc averaged over items)
      metaprobe_<skill>_<domain>.yaml    generate_until; process_results = utils.process_results
      metaprobe_<skill>_<domain>_mc.yaml multiple_choice (only with choice_mode="loglikelihood")
      utils.py                           loads data/, reads and checks answers with metaprobe
      data/<task>.jsonl                  id, prompt (rendered), answer, item (the probe item as JSON text)

Run them with any lm-eval model, then bring the answers back with :func:`metaprobe.responses.from_lm_eval`::

    lm_eval --model hf --model_args pretrained=PATH --include_path tasks --tasks metaprobe \\
        --log_samples --output_path out
    lm_eval --model vllm --model_args pretrained=PATH,tensor_parallel_size=8 --include_path tasks \\
        --tasks metaprobe --log_samples --output_path out       # the same tasks under vLLM

A generate_until sample's ``acc`` is the fraction of its repeats that metaprobe's run would score correct: the
answer is read with :func:`metaprobe.meta.read_answer` (stop strings, think blocks) and checked with
:func:`metaprobe.scoring.check`. ``utils.py`` imports metaprobe, so install it where lm-eval runs.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Union

from ._atomic import write_bytes_atomic
from ._core import InvalidArgumentError, IoError

__all__ = ["export", "GROUP"]

GROUP = "metaprobe"
PathLike = Union[str, "os.PathLike[str]"]

_UTILS = '''"""lm-evaluation-harness hooks of a metaprobe suite, written by metaprobe.lm_eval_tasks.export (re-export
rather than edit: the reading options below are the run's)."""
import json
import os

READ = {read}


def load(task=None, **_):
    """custom_dataset: the task's items from data/<task>.jsonl beside this file, as the test split."""
    import datasets

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", task + ".jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {{"test": datasets.Dataset.from_list(rows)}}


def process_results(doc, results):
    """acc: the fraction of the repeats that metaprobe scores correct (its reading, extraction and checking)."""
    from metaprobe import scoring
    from metaprobe._core import meta

    item = json.loads(doc["item"])
    correct = 0
    for text in results:
        answer = meta.read_answer(text, READ["stop"], READ["think_open"], READ["think_close"])
        correct += bool(answer.closed and scoring.check(item, answer.answer))
    return {{"acc": correct / len(results)}}
'''


def _yaml(value: Any) -> str:
    # JSON scalars and flow collections are valid YAML; strings are always quoted.
    return json.dumps(value, ensure_ascii=False)


def _task_yaml(name: str, fields: list[tuple[str, Any]]) -> str:
    lines = [f"task: {name}", f"tag: [{GROUP}_cells]", "custom_dataset: !function utils.load",
             "dataset_kwargs:", f"  task: {_yaml(name)}", "test_split: test"]
    for key, value in fields:
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines.extend(f"  {k}: {_yaml(v)}" for k, v in value.items())
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{key}:")
            for entry in value:
                first = True
                for k, v in entry.items():
                    lines.append(f"  {'- ' if first else '  '}{k}: {_yaml(v)}")
                    first = False
        elif isinstance(value, str) and value.startswith("!function "):
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}: {_yaml(value)}")
    lines += ["metadata:", "  version: 1.0"]
    return "\n".join(lines) + "\n"


def export(probes: Any, directory: PathLike, options: Optional["MetaOptions"] = None) -> list[str]:
    """Writes the suite as lm-eval tasks (module docstring) and returns the task names, group last.

    Args:
        probes: a ProbeSet, a sequence of Items or JSONL dicts, or a JSONL path.
        directory: created if missing; files already there are replaced (each written whole or not at all).
        options: the :class:`metaprobe.MetaOptions` whose prompts and reading the tasks reproduce:
            ``prompt_format`` ("template": the rendered ``prompt_template``; "chat_template" or "raw": the bare
            question, run lm-eval with ``--apply_chat_template`` for the former), ``stop`` (lm-eval's ``until``),
            ``max_new_tokens``, ``do_sample``/``temperature``/``top_p``, ``n_samples`` (``repeats``),
            ``think_open``/``think_close`` and ``choice_mode`` ("loglikelihood": choice items become
            multiple_choice tasks, with ``choice_delimiter`` as the target delimiter).
    """
    from .meta import MetaOptions, _probe_items
    from .probes import ProbeSet

    o = options if options is not None else MetaOptions()
    if not isinstance(o, MetaOptions):
        raise InvalidArgumentError(f"export: options is a {type(o).__name__}, expected a MetaOptions")
    probe_set = ProbeSet(_probe_items(probes))
    if o.prompt_format == "template":
        prompts = probe_set.render(o.prompt_template, o.prompt_k, o.prompt_seed)
    elif o.prompt_format in ("chat_template", "raw"):
        prompts = [it.prompt for it in probe_set]
    else:
        raise InvalidArgumentError(f"export: prompt_format is {o.prompt_format!r}, expected 'template', "
                                   "'chat_template' or 'raw'")
    out = os.fspath(directory)
    try:
        os.makedirs(os.path.join(out, "data"), exist_ok=True)
    except OSError as e:
        raise IoError(f"export: cannot create '{out}/data': {e.strerror or e}") from None
    stop = [o.stop] if isinstance(o.stop, str) else list(o.stop)
    loglikelihood = o.choice_mode == "loglikelihood"

    tasks: dict[str, list[dict]] = {}
    for item, prompt in zip(probe_set, prompts):
        cell = f"{GROUP}_{item.skill}_{item.domain}"
        if loglikelihood and item.answer_type == "choice" and len(item.choices) > 0:
            tasks.setdefault(cell + "_mc", []).append(
                {"id": item.id, "prompt": prompt, "choices": list(item.choices), "gold_index": item.gold_index})
        else:
            tasks.setdefault(cell, []).append(
                {"id": item.id, "prompt": prompt, "answer": item.answer, "item": item.to_json()})

    generation = {"until": stop, "max_gen_toks": o.max_new_tokens, "do_sample": o.do_sample}
    if o.do_sample:
        generation.update(temperature=o.temperature, top_p=o.top_p)
    else:
        generation["temperature"] = 0.0
    names = sorted(tasks)
    for name in names:
        rows = tasks[name]
        write_bytes_atomic(os.path.join(out, "data", name + ".jsonl"),
                           "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
        if name.endswith("_mc"):
            fields = [("output_type", "multiple_choice"), ("doc_to_text", "prompt"), ("doc_to_choice", "choices"),
                      ("doc_to_target", "gold_index"), ("target_delimiter", o.choice_delimiter),
                      ("metric_list", [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                                       {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}])]
        else:
            fields = [("output_type", "generate_until"), ("doc_to_text", "prompt"), ("doc_to_target", "answer"),
                      ("target_delimiter", ""), ("generation_kwargs", generation), ("repeats", o.n_samples),
                      ("process_results", "!function utils.process_results"),
                      ("metric_list", [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}])]
        write_bytes_atomic(os.path.join(out, name + ".yaml"), _task_yaml(name, fields).encode("utf-8"))
    group = [f"group: {GROUP}", "task:"] + [f"  - {n}" for n in names] + [
        "aggregate_metric_list:", "  - metric: acc", "    aggregation: mean", "    weight_by_size: true",
        "metadata:", "  version: 1.0"]
    write_bytes_atomic(os.path.join(out, GROUP + ".yaml"), ("\n".join(group) + "\n").encode("utf-8"))
    read = {"stop": stop, "think_open": o.think_open, "think_close": o.think_close}
    write_bytes_atomic(os.path.join(out, "utils.py"), _UTILS.format(read=repr(read)).encode("utf-8"))
    return names + [GROUP]
