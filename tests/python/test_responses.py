"""Answers from another engine (metaprobe.responses): the JSONL round trip (export then import gives the same
report), text-only answers re-tokenised, vLLM's output shape, lm-eval sample files, and the bad-input errors
naming the file, line and id."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

import metaprobe
from metaprobe import FormatError, InvalidArgumentError, IoError, MetaOptions, MetaProbe, backends, responses
from metaprobe.lm import TinyLM

hf_tiny = pytest.importorskip("hf_tiny")
pytest.importorskip("transformers")

OPTS = dict(max_new_tokens=12, stop=(), parameters=False, batch_size=4, do_sample=True, temperature=1.0,
            n_samples=2, seed=5, prompt_format="chat_template")


def _comparable(report: metaprobe.Report) -> dict:
    """The report without what legitimately differs between a generating and an importing run."""
    d = json.loads(report.to_json())
    d.pop("created"), d.pop("seconds")
    for s in d["stages"]:
        s.pop("seconds")
        s["info"].pop("responses")
        if s["behaviour"]:
            s["behaviour"].pop("positions_processed")
    return d


@pytest.fixture(scope="module")
def hf_setup():
    tok = hf_tiny.bpe_tokenizer()
    base = hf_tiny.tiny_model_for("qwen2", tok, seed=1)
    tuned = hf_tiny.tiny_model_for("qwen2", tok, seed=2)
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation", "enumeration"])
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=backends.hf(base, tok))
    mp.add_stage("sft-1", arm="sft", step=1, source=backends.hf(tuned, tok))
    return tok, base, tuned, probes, mp.run(progress=False)


def test_export_then_import_gives_the_same_report(hf_setup, tmp_path):
    tok, base, tuned, probes, generated = hf_setup
    assert generated.stage("sft-1")["info"]["responses"] == "generated"
    path = tmp_path / "answers.jsonl"
    generated.export_responses(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * 2 * len(probes)  # two stages, two samples per item
    assert {json.loads(x)["stage"] for x in lines} == {"base", "sft-1"}
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=backends.hf(base, tok), responses=responses.from_jsonl(path, stage="base"))
    mp.add_stage("sft-1", arm="sft", step=1, source=backends.hf(tuned, tok),
                 responses=responses.from_jsonl(path, stage="sft-1"))
    imported = mp.run(progress=False)
    assert imported.stage("sft-1")["info"]["responses"] == "imported"
    assert imported.stage("sft-1")["behaviour"]["positions_processed"] == 0
    assert _comparable(imported) == _comparable(generated)
    # and the import of the import exports the same file
    again = tmp_path / "again.jsonl"
    imported.export_responses(again)
    assert again.read_text() == path.read_text()


def test_text_only_answers_are_retokenised_and_scored_alike(hf_setup, tmp_path):
    tok, base, tuned, probes, generated = hf_setup
    rows = [{k: v for k, v in r.to_dict().items() if k not in ("token_ids", "stage")}
            for r in generated.responses("sft-1")]
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=backends.hf(base, tok))
    mp.add_stage("sft-1", arm="sft", step=1, source=backends.hf(tuned, tok), responses=rows)
    rep = mp.run(progress=False)
    info = rep.stage("sft-1")["info"]
    assert info["responses"] == "imported_retokenized"
    a, b = rep.items, generated.items
    assert list(a.output) == list(b.output) and list(a.correct) == list(b.correct)


@dataclass
class CompletionOutput:  # vLLM's documented fields (vllm.outputs.CompletionOutput); vllm itself is not installed
    index: int
    text: str
    token_ids: list
    cumulative_logprob: Optional[float]
    logprobs: Optional[list]
    finish_reason: Optional[str]
    stop_reason: Any = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput's fields that from_vllm reads
    request_id: str
    prompt: str
    prompt_token_ids: list
    outputs: list = field(default_factory=list)
    finished: bool = True


def _vllm_like(report: metaprobe.Report, stage: str, eos: int) -> list:
    """What vLLM returns for the same answers: EOS kept at the end of token_ids, finish_reason 'stop'."""
    by_item: dict[str, RequestOutput] = {}
    for r in report.responses(stage):
        ids = list(r.token_ids) + ([eos] if r.finish_reason == "eos" else [])
        lps = [{t: {"logprob": -1.0, "rank": 1}} for t in ids]
        c = CompletionOutput(r.sample, r.text, ids, -float(len(ids)), lps,
                             "length" if r.finish_reason == "length" else "stop")
        by_item.setdefault(r.item_id, RequestOutput(r.item_id, "", [])).outputs.append(c)
    return list(by_item.values())


def test_from_vllm_objects_and_their_json_give_the_same_report(hf_setup, tmp_path):
    tok, base, tuned, probes, generated = hf_setup
    eos = backends.hf(base, tok).tokenizer.eos_ids[0]  # the run's end-of-generation id
    outs = _vllm_like(generated, "sft-1", eos)
    got = responses.from_vllm(outs)
    assert len(got) == 2 * len(probes) and got.source == "vllm"
    assert all(len(r.logprobs) == len(r.token_ids) for r in got)
    saved = tmp_path / "vllm.json"
    saved.write_text(json.dumps([{"request_id": o.request_id, "outputs": [c.__dict__ for c in o.outputs]}
                                 for o in outs]))
    assert list(responses.from_vllm(saved)) == list(got)
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=backends.hf(base, tok))
    mp.add_stage("sft-1", arm="sft", step=1, source=backends.hf(tuned, tok), responses=got)
    rep = mp.run(progress=False)
    assert _comparable(rep)["stages"][1] == _comparable(generated)["stages"][1]


def test_from_vllm_maps_stop_reasons_and_checks_lengths():
    c = CompletionOutput(0, "x", [1, 2], None, None, "stop", stop_reason="\n")
    assert responses.from_vllm([RequestOutput("a", "", [], [c])])[0].finish_reason == "stop"
    c = CompletionOutput(0, "x", [1, 2], None, None, "stop", stop_reason=None)
    assert responses.from_vllm([RequestOutput("a", "", [], [c])])[0].finish_reason == "eos"
    c = CompletionOutput(0, "x", [1, 2], None, [{1: {"logprob": -0.5}}], "length")
    with pytest.raises(FormatError, match="logprobs has 1 entries for 2 token ids"):
        responses.from_vllm([RequestOutput("a", "", [], [c])])
    with pytest.raises(InvalidArgumentError, match="1 item_ids for 2 request outputs"):
        responses.from_vllm([RequestOutput("a", "", []), RequestOutput("b", "", [])], item_ids=["x"])
    with pytest.raises(InvalidArgumentError, match="expected a list of vLLM RequestOutput"):
        responses.from_vllm({"request_id": "a"})


def test_from_lm_eval_reads_generate_until_samples(tmp_path):
    lines = [{"doc_id": 0, "doc": {"id": "i0", "question": "q"}, "target": "4",
              "arguments": {"gen_args_0": {"arg_0": "q", "arg_1": {"until": ["\n"], "do_sample": False}}},
              "resps": [["four", "4"]], "filtered_resps": ["4"], "filter": "none", "metrics": ["exact_match"]}]
    (tmp_path / "samples_t_2026.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    got = responses.from_lm_eval(tmp_path)
    assert [(r.item_id, r.sample, r.text) for r in got] == [("i0", 0, "four"), ("i0", 1, "4")]
    assert got[0].sampling == {"until": ["\n"], "do_sample": False}
    bad = tmp_path / "bad" / "samples_mc_2026.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"doc": {"id": "i1"}, "resps": [[[-1.0, False]], [[-2.0, False]]]}) + "\n")
    with pytest.raises(FormatError, match=r"samples_mc_2026.jsonl:1: resps holds 2 requests, expected one generate_until"):
        responses.from_lm_eval(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IoError, match=r"no samples_\*\.jsonl under"):
        responses.from_lm_eval(tmp_path / "empty")


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=3, skills=["calculation"])
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False))
    mp.add_stage("base", source=TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=256, seed=1))
    return probes, mp.run(progress=False)


def _write(tmp_path, rows, name="r.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def test_jsonl_errors_name_file_and_line(tmp_path):
    ok = {"item_id": "a", "text": "x"}
    p = _write(tmp_path, [ok, "{not json"])
    with pytest.raises(FormatError, match=r"r.jsonl:2: not a JSON object"):
        responses.from_jsonl(p)
    p = _write(tmp_path, [ok, {"item_id": "a", "text": "y"}])
    with pytest.raises(FormatError, match=r"r.jsonl:2: item 'a' sample 0 appears twice \(first at .*r.jsonl:1\)"):
        responses.from_jsonl(p)
    p = _write(tmp_path, [{"item_id": "a", "text": "x", "tokens": [1]}])
    with pytest.raises(FormatError, match=r"r.jsonl:1: unknown key 'tokens'"):
        responses.from_jsonl(p)
    p = _write(tmp_path, [{"item_id": "a", "text": "x", "sample": -1}])
    with pytest.raises(FormatError, match=r"r.jsonl:1: sample is -1, expected an integer >= 0"):
        responses.from_jsonl(p)
    p = _write(tmp_path, [{"item_id": "a", "text": "x", "token_ids": [1, 2], "logprobs": [0.1]}])
    with pytest.raises(FormatError, match="logprobs has 1 values for 2 token ids"):
        responses.from_jsonl(p)
    p = _write(tmp_path, [{"item_id": "a", "text": "x", "finish_reason": "done"}])
    with pytest.raises(FormatError, match="finish_reason is 'done'"):
        responses.from_jsonl(p)
    p = _write(tmp_path, ['{"item_id": "a", "item_id": "b", "text": ""}'])
    with pytest.raises(FormatError, match="duplicate key 'item_id'"):
        responses.from_jsonl(p)
    (tmp_path / "u.jsonl").write_bytes(b'{"item_id": "a", "text": "\xff"}\n')
    with pytest.raises(FormatError, match=r"u.jsonl:1: not UTF-8"):
        responses.from_jsonl(tmp_path / "u.jsonl")
    with pytest.raises(IoError, match="is a directory"):
        responses.from_jsonl(tmp_path)
    p = _write(tmp_path, [{"item_id": "a", "text": "", "stage": "s1"}, {"item_id": "a", "text": "", "stage": "s2"}])
    with pytest.raises(InvalidArgumentError, match=r"holds the stages \['s1', 's2'\], expected stage=\.\.\."):
        responses.from_jsonl(p)
    with pytest.raises(InvalidArgumentError, match="no line of .* has stage 's3'"):
        responses.from_jsonl(p, stage="s3")


def test_add_stage_refuses_unknown_missing_and_out_of_range_items(small, tmp_path):
    probes, rep = small
    rows = [r.to_dict() for r in rep.responses("base")]
    for r in rows:
        r.pop("stage")

    def mp():
        m = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False))
        m.add_stage("base", source=TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=256, seed=1))
        return m

    bad = [dict(rows[0], item_id="nope")] + rows[1:]
    p = _write(tmp_path, bad)
    m = mp()
    with pytest.raises(InvalidArgumentError, match=r"stage 'x' responses: .*r.jsonl:1 \(item 'nope', sample 0\): no probe item"):
        m.add_stage("x", responses=p)
    assert m.stages == ["base"]  # nothing half-added
    p = _write(tmp_path, rows[1:])
    with pytest.raises(InvalidArgumentError, match=f"item '{rows[0]['item_id']}' sample 0 is missing"):
        mp().add_stage("x", responses=p)
    p = _write(tmp_path, rows + [dict(rows[0], sample=1)])
    with pytest.raises(InvalidArgumentError, match=r"sample is out of range, expected 0 <= sample < n_samples = 1"):
        mp().add_stage("x", responses=p)
    with pytest.raises(InvalidArgumentError, match="expected metaprobe.responses.Responses"):
        mp().add_stage("x", responses=5)
    with pytest.raises(InvalidArgumentError, match=r"needs exactly one of source, loader or torchscript \(or responses alone\)"):
        mp().add_stage("x")


def test_a_responses_only_stage_gets_behaviour_and_no_divergence(small):
    probes, rep = small
    m = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False))
    m.add_stage("base", source=TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=256, seed=1))
    m.add_stage("copy", arm="sft", step=1, responses=rep.responses("base"))
    out = m.run(progress=False)
    s = out.stage("copy")
    assert s["info"]["source"] == "responses" and s["divergence"] is None
    assert list(out.items[out.items.stage == "copy"].output) == list(rep.items.output)
    assert (out.drift[out.drift.stage == "copy"].delta == 0).all()
    # a reference without a model cannot give divergences
    m = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False), tokenizer="char")
    m.add_stage("base", responses=rep.responses("base"))
    with pytest.raises(InvalidArgumentError, match="the reference stage 'base' has no model"):
        m.run(progress=False)
    m = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False, divergence=False),
                  tokenizer="char")
    m.add_stage("base", responses=rep.responses("base"))
    assert list(m.run(progress=False).items.output) == list(rep.items.output)


def test_the_docs_example_runs(hf_setup, tmp_path, monkeypatch):
    import re
    from pathlib import Path

    tok, base, tuned, probes, _ = hf_setup
    block = re.findall(r"```python\n(.*?)```", (Path(__file__).resolve().parents[2] / "docs" / "responses.md").read_text(),
                       flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    # answers.jsonl as another engine would have written it: two stages' answers under the example's options
    options = MetaOptions(prompt_format="chat_template", do_sample=True, n_samples=4, max_new_tokens=64, seed=9)
    mp = MetaProbe(probes, reference="grpo-900", options=options)
    mp.add_stage("grpo-900", source=backends.hf(tuned, tok))
    mp.add_stage("sft-900", source=backends.hf(base, tok))
    mp.run(progress=False).export_responses("answers.jsonl")
    ns = {"probes": probes, "base": base, "rl": tuned, "tok": tok, "__name__": "__docs__"}
    exec(compile(block, "docs/responses.md python block", "exec"), ns)
    report = ns["report"]
    assert report.stage("sft-900")["divergence"] is None and report.stage("grpo-900")["divergence"] is not None
    assert (tmp_path / "all_answers.jsonl").exists()
