"""Grading against human verdicts and against lm-evaluation-harness's own gsm8k pipelines.

``data/graded_outputs.jsonl`` holds realistic model outputs for items of every family (instruct prose with
markdown, ``\\boxed{}``, ``<think>`` blocks closed and cut off, terse replies, GSM8K ``####``, and wrong answers
in each style, including the right answer mentioned before a wrong final one), each with a human verdict.
"""
from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from metaprobe import probes
from metaprobe import scoring

CORPUS = Path(__file__).with_name("data") / "graded_outputs.jsonl"


def _rows() -> list[dict]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_corpus_covers_every_family_and_style():
    rows = _rows()
    assert len(rows) >= 200
    families = {r["item"]["family"] for r in rows}
    assert len(families) == len(probes.families())
    styles = collections.Counter(r["style"] for r in rows)
    for s in ("instruct_markdown", "boxed", "think_closed", "think_cutoff", "terse", "right_then_wrong",
              "wrong_then_right", "gsm8k"):
        assert styles[s] >= 10, s
    verdicts = collections.Counter(r["human"] for r in rows)
    assert verdicts[True] >= 100 and verdicts[False] >= 100


def test_grading_agrees_with_human_verdicts():
    rows = _rows()
    items = [probes.Item.from_dict(r["item"]) for r in rows]
    got = scoring.score(items, [r["output"] for r in rows]).items["correct"].tolist()
    wrong = [(r["case"], r["style"], r["human"], r["output"][-120:]) for r, g in zip(rows, got) if g != r["human"]]
    agreement = 1 - len(wrong) / len(rows)
    assert agreement >= 0.98, f"agreement {agreement:.3f}; disagreements: {wrong[:15]}"
    # cut-off reasoning is never credited, whatever its last number says
    for r, g in zip(rows, got):
        if r["style"] == "think_cutoff":
            assert not g, r["case"]


# ---------------------------------------------------------------------------------------------------------
# lm-evaluation-harness differential: its own RegexFilter pipelines and exact_match, built as the gsm8k task
# config builds them (lm_eval/tasks/gsm8k/gsm8k.yaml), run offline.

lm_filter = pytest.importorskip("lm_eval.filters.extraction")
lm_selection = pytest.importorskip("lm_eval.filters.selection")
lm_metrics = pytest.importorskip("lm_eval.api.metrics")

GSM8K_IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]
PIPELINES = {
    "strict-match": (dict(regex_pattern=r"#### (\-?[0-9\.\,]+)"), ["gsm8k"]),
    "flexible-extract": (dict(regex_pattern=r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1), ["last_number"]),
}


def _lm_eval_verdicts(pipeline: str, outputs: list[str], golds: list[str]) -> list[bool]:
    kwargs, _ = PIPELINES[pipeline]
    regex = lm_filter.RegexFilter(**kwargs)
    first = lm_selection.TakeFirstFilter()
    resps = [[o] for o in outputs]
    filtered = list(first.apply(regex.apply(resps, [{}] * len(resps)), [{}] * len(resps)))
    out = []
    for pred, gold in zip(filtered, golds):
        r = lm_metrics.exact_match_hf_evaluate(predictions=[pred], references=[gold], regexes_to_ignore=GSM8K_IGNORE,
                                               ignore_case=True, ignore_punctuation=False)
        out.append(bool(r["exact_match"] == 1.0))
    return out


def _gsm8k_corpus() -> list[tuple[str, str]]:
    """(output, gold) pairs in the shapes gsm8k answers take: the reference format, few-shot continuations,
    instruct prose, currency and separators, negatives, wrong finals, and no answer at all."""
    rows = []
    golds = ["72", "5", "1234", "18", "-3", "0", "240", "1000000", "42", "7"]
    for k, g in enumerate(golds):
        v = int(g)
        w = str(v + 3)
        gv = f"{v:,}"
        rows += [
            (f"Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### {g}", g),
            (f"She earns 12 per hour, so 12 * 6 = {g}.\n#### {g}", g),
            (f"First 3 * 4 = 12, then 12 + 6 = 18.\n#### {w}", g),
            (f"The total is ${gv}.\n#### {gv}", g),
            (f"So the answer is {g}.", g),
            (f"Step one gives 10 and step two gives {g}", g),
            (f"We have 5 apples and buy 2 more, so {w} in all.", g),
            (f"#### {g}\n\nQuestion: next one", g),
            (f"He pays ${gv} in total.", g),
            (f"The answer is {w}", g),
            ("I cannot determine this from the information.", g),
        ]
        if k % 3 == 0:
            rows.append((f"Total = {g}\n#### {g}.", g))
    return rows


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_gsm8k_strategies_agree_with_lm_eval_pipelines(pipeline):
    corpus = _gsm8k_corpus()
    assert len(corpus) >= 100
    outputs = [o for o, _ in corpus]
    golds = [g for _, g in corpus]
    theirs = _lm_eval_verdicts(pipeline, outputs, golds)
    _, strategies = PIPELINES[pipeline]
    items = [probes.Item.from_dict({"id": f"g{k}", "skill": "calculation", "domain": "general", "prompt": "q",
                                    "answer": g, "answer_type": "integer"}) for k, g in enumerate(golds)]
    # lm-eval reads the raw text: no reasoning blocks are cut away
    ours = scoring.score(items, outputs, reasoning_tags=[], strategies=strategies).items["correct"].tolist()
    differ = [(o, g, t) for o, g, t, m in zip(outputs, golds, theirs, ours) if t != m]
    assert not differ, differ


def test_known_differences_from_lm_eval_are_deliberate():
    # lm-eval compares strings after its regexes; metaprobe compares numbers. Each case states both verdicts.
    cases = [
        # (output, gold, pipeline, lm-eval verdict, metaprobe verdict)
        ("#### 72.00", "72", "strict-match", False, True),    # 72.00 is 72
        ("#### 72\n#### 5", "72", "strict-match", True, False),  # metaprobe takes the last marker
        ("It has 2 legs, like H2O has 2 H", "2", "flexible-extract", True, True),
        ("The ratio is 3/4", "4", "flexible-extract", True, False),  # 3/4 is one number, 0.75
    ]
    for output, gold, pipeline, lm_verdict, mp_verdict in cases:
        assert _lm_eval_verdicts(pipeline, [output], [gold]) == [lm_verdict], output
        item = probes.Item.from_dict({"id": "d", "skill": "calculation", "domain": "general", "prompt": "q",
                                      "answer": gold, "answer_type": "integer"})
        assert scoring.check(item, output, reasoning_tags=[], strategies=PIPELINES[pipeline][1]) is mp_verdict, output


def test_extraction_options_errors_name_the_value():
    with pytest.raises(probes.InvalidArgumentError if hasattr(probes, "InvalidArgumentError") else ValueError,
                       match=r"unknown strategy 'regex'.*expected one of"):
        scoring.extract("5", "integer", strategies=["regex"])
    with pytest.raises(ValueError, match=r"reasoning_tags: got '<think>'.*\(open, close\) pairs"):
        scoring.extract("5", "integer", reasoning_tags=["<think>"])
    with pytest.raises(ValueError, match=r"strategies: got the string 'gsm8k'"):
        scoring.extract("5", "integer", strategies="gsm8k")
    assert scoring.extract("<think>so 5", "integer") == ("", "reasoning_unclosed")
    assert scoring.extract("<think>so 5", "integer", reasoning_tags=[]) == ("5", "last_number")
    assert re.fullmatch(r"\d+", scoring.extract("The answer is $1,234.", "integer")[0])
