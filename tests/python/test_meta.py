"""The meta-probing run from Python: real tiny models (metaprobe.lm.TinyLM with different seeds, and a small
torch transformer behind the Hugging Face adapter), checked against direct metaprobe.divergence calls."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import metaprobe
from metaprobe import MetaOptions, MetaProbe, Report, adapters
from metaprobe.lm import CharTokenizer, TinyLM
from cli_path import metaprobe_cli

SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=1024)


@pytest.fixture(scope="module")
def probes():
    return metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=7)


@pytest.fixture(scope="module")
def models():
    return TinyLM(seed=3, **SMALL), TinyLM(seed=4, **SMALL)


def _opts(**kw) -> MetaOptions:
    base = dict(max_new_tokens=6, batch_size=8)
    base.update(kw)
    return MetaOptions(**base)


def _run(probes, base, other, progress=False, **kw) -> Report:
    mp = MetaProbe(probes, reference="base", options=_opts(**kw))
    mp.add_stage("base", arm="base", step=0, source=base, checkpoint=base.state_dict())
    mp.add_stage("sft-1", arm="sft", step=1, source=other, checkpoint=other.state_dict())
    return mp.run(progress=progress)


class TinyTorchLM(torch.nn.Module):
    """One causal attention layer with learned positions; forward(input_ids, attention_mask, position_ids)
    returns an object with .logits, like a Hugging Face causal LM. Padding-invariant given position_ids."""

    def __init__(self, seed: int, vocab: int = 100, d: int = 32, max_len: int = 1024) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(max_len, d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.head = torch.nn.Linear(d, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None):
        b, t = input_ids.shape
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if position_ids is None:
            position_ids = torch.arange(t).expand(b, t)
        h = self.emb(input_ids) + self.pos(position_ids)
        q, k, v = self.qkv(h).chunk(3, -1)
        att = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        allowed = torch.ones(t, t, dtype=torch.bool).tril()[None] & mask[:, None, :].bool()
        allowed = allowed | torch.eye(t, dtype=torch.bool)[None]
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        return types.SimpleNamespace(logits=self.head(h + att @ v))


def test_per_cell_divergence_equals_direct_divergence_calls(probes, models):
    base, other = models
    rep = _run(probes, base, other, behaviour=False, batch_size=1,  # unpadded rows: the same float32 logits
               divergence_on="gold")
    div = rep.divergence
    prompts = probes.render(template="plain")
    tok = CharTokenizer()
    per_cell: dict[str, list[torch.Tensor]] = {}
    for item, prompt in zip(probes, prompts):
        p = tok.encode(prompt, add_special_tokens=True)
        sol = tok.encode(" " + item.reference_solution, add_special_tokens=False)
        ids = torch.tensor([p + sol])
        s0, n = len(p) - 1, len(sol)
        lp, lq = base(ids)[0, s0:s0 + n], other(ids)[0, s0:s0 + n]
        r = metaprobe.divergence(lp, lq, metrics=["kl_pq", "kl_qp", "js"])
        per_cell.setdefault(f"{item.skill}/{item.domain}", []).append(torch.stack([r.kl_pq, r.kl_qp, r.js], 1))
    assert len(per_cell) == 20
    for cell, vals in per_cell.items():
        skill, domain = cell.split("/")
        row = div[(div.stage == "sft-1") & (div.skill == skill) & (div.domain == domain)].iloc[0]
        ref = torch.cat(vals).double().mean(0)
        assert row.positions == sum(v.shape[0] for v in vals)
        assert row.kl_ref_stage == pytest.approx(float(ref[0]), rel=1e-9)
        assert row.kl_stage_ref == pytest.approx(float(ref[1]), rel=1e-9)
        assert row.js == pytest.approx(float(ref[2]), rel=1e-9)
        assert row.js > 0


def test_copy_of_reference_has_zero_divergence_and_zero_update_norms(probes, models):
    base, _ = models
    copy = TinyLM(seed=3, **SMALL)
    rep = _run(probes, base, copy)
    total = rep.divergence.query("stage == 'sft-1' and skill == 'all'").iloc[0]
    assert total.kl_ref_stage == pytest.approx(0, abs=1e-12)
    assert total.kl_stage_ref == pytest.approx(0, abs=1e-12)
    assert total.js == pytest.approx(0, abs=1e-12)
    assert total.rank_shift == 1.0 and total.top1_agree == 1.0
    p = rep.params.query("stage == 'sft-1' and level == 'total'").iloc[0]
    assert p.delta_fro == 0 and p.rel_update_norm == 0
    d = rep.derived.set_index("stage").loc["sft-1"]
    assert d.drift_l1 == 0 and d.n_collapsed == 0


def test_hf_adapter_batch_size_does_not_change_results(probes):
    tok = CharTokenizer()
    m0, m1 = TinyTorchLM(0), TinyTorchLM(1)
    reports = []
    for bs in (1, 5):
        mp = MetaProbe(probes, options=_opts(batch_size=bs, max_new_tokens=5))
        mp.add_stage("base", source=adapters.hf(m0, tok), checkpoint=m0)
        mp.add_stage("rl-1", arm="rl", step=1, source=adapters.hf(m1, tok), checkpoint=m1)
        reports.append(mp.run(progress=False))
    a, b = reports
    assert list(a.items.output) == list(b.items.output)
    assert (a.items.generated_tokens > 0).any()
    da, db = a.divergence, b.divergence
    for col in ("kl_ref_stage", "kl_stage_ref", "js", "entropy_change", "rank_shift", "sampled_kl"):
        assert da[col].to_numpy() == pytest.approx(db[col].to_numpy(), abs=1e-5, nan_ok=True)
    assert a.params.query("level == 'total' and stage == 'rl-1'").rel_update_norm.iloc[0] > 0


def test_hf_adapter_is_duck_typed_and_pads_positions():
    tok = CharTokenizer()
    src = adapters.hf(TinyTorchLM(0), tok)
    assert src.tokenizer.bos_id == 1 and src.tokenizer.eos_id == 2 and src.tokenizer.pad_id == 0
    assert src.tokenizer.encode("ab") == tok.encode("ab", add_special_tokens=False)
    ids = torch.tensor([[0, 0, 1, 40, 41], [1, 40, 41, 0, 0]])
    mask = (ids != 0).long()
    out = src(ids, mask)
    assert out.shape == (2, 5, 100)
    assert torch.allclose(out[0, 2:], out[1, :3], atol=1e-5)
    with pytest.raises(metaprobe.InvalidArgumentError, match="expected a callable causal LM"):
        adapters.hf(42)
    with pytest.raises(metaprobe.InvalidArgumentError, match="returned int, expected a tensor"):
        adapters.as_logit_source(lambda i, m: 3)(ids, mask)
    # wrapping a model imports no transformers (checked in a fresh process: other test modules import it)
    code = ("import sys, torch, metaprobe; from metaprobe import backends; "
            "src = backends.hf(torch.nn.Linear(2, 2)); print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_topk_cache_stays_within_its_documented_error(probes, models):
    base, other = models
    exact = _run(probes, base, other, max_new_tokens=4)
    cached = _run(probes, base, other, max_new_tokens=4, reference_mode="topk_cache", cache_k=8)
    e = exact.divergence.set_index(["stage", "skill", "domain"])
    c = cached.divergence.set_index(["stage", "skill", "domain"])
    assert (c["mode"] == "topk_cache").all()
    # Two runs see float32 logits equal up to rounding (BLAS kernels may differ by an ulp): tolerance 1e-7.
    tol = 1e-7
    assert (c.js > 0).all() and (e.js - c.js > tol).any()  # the cache does lose something at k = 8
    assert (c.js <= e.js + tol).all()
    assert (e.js - c.js <= c.js_cache_bound + tol).all()
    assert (c.kl_ref_stage <= e.kl_ref_stage + tol).all()
    assert (e.kl_ref_stage - c.kl_ref_stage <= c.kl_ref_stage_cache_bound + tol).all()
    assert (c.kl_stage_ref <= e.kl_stage_ref + tol).all()
    assert c.entropy_change.to_numpy() == pytest.approx(e.entropy_change.to_numpy(), abs=1e-6)
    assert c.sampled_kl.to_numpy() == pytest.approx(e.sampled_kl.to_numpy(), abs=1e-6, nan_ok=True)


def test_report_round_trips_through_json(tmp_path, probes, models):
    base, other = models
    rep = _run(probes, base, other)
    path = tmp_path / "report.json"
    rep.save(path)
    back = Report.load(path)
    assert back == rep
    assert back.summary.equals(rep.summary)
    doc = json.loads(path.read_text())
    assert doc["schema"] == "metaprobe.report" and doc["schema_version"] == 1
    doc["schema_version"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(metaprobe.FormatError, match="schema_version is 2, expected 1"):
        Report.load(path)
    with pytest.raises(metaprobe.IoError, match="cannot read"):
        Report.load(tmp_path / "missing.json")
    del doc["stages"][0]["info"]
    doc["schema_version"] = 1
    with pytest.raises(metaprobe.FormatError, match="missing or has the wrong type"):
        Report.from_json(json.dumps(doc))


def test_tables_and_derived_metrics(probes, models):
    base, other = models
    rep = _run(probes, base, other)
    prof = rep.profile
    assert len(prof) == 40 and set(prof.stage) == {"base", "sft-1"}
    assert ((prof.lo <= prof.acc) & (prof.acc <= prof.hi)).all()
    drift = rep.drift.query("stage == 'sft-1'")
    d = rep.derived.set_index("stage").loc["sft-1"]
    assert d.drift_l1 == pytest.approx(drift.delta.abs().sum())
    assert d.drift_l2 == pytest.approx(math.sqrt((drift.delta ** 2).sum()))
    assert set(rep.summary.columns) >= {"stage", "arm", "step", "acc", "acc_target", "js_off_target", "rel_update_norm"}
    razor = rep.razor
    assert list(razor.arm) == ["sft"] and razor.points.iloc[0] == 2 and math.isnan(razor.pearson.iloc[0])
    pos = rep.positional.query("stage == 'sft-1' and cell == 'all'")
    assert pos.positions.sum() == rep.divergence.query("stage == 'sft-1' and skill == 'all'").positions.iloc[0]


def test_loglikelihood_mode_and_options_errors(probes, models):
    base, other = models
    rep = _run(probes, base, other, choice_mode="loglikelihood", divergence=False, parameters=False)
    items = rep.items
    n_choice = sum(1 for it in probes if it.answer_type == "choice")
    assert (items[items.stage == "base"]["mode"] == "loglikelihood").sum() == n_choice
    assert rep.divergence.empty and rep.params.empty
    with pytest.raises(metaprobe.InvalidArgumentError, match="batch_size is 0, expected >= 1"):
        MetaProbe(probes, options=MetaOptions(batch_size=0))
    with pytest.raises(metaprobe.InvalidArgumentError, match="'fast' is not a reference mode"):
        MetaProbe(probes, options=MetaOptions(reference_mode="fast"))
    mp = MetaProbe(probes)
    with pytest.raises(metaprobe.InvalidArgumentError, match="exactly one of source, loader or torchscript"):
        mp.add_stage("x")
    mp.add_stage("x", source=base)
    with pytest.raises(metaprobe.InvalidArgumentError, match="'x' already exists"):
        mp.add_stage("x", source=base)
    with pytest.raises(metaprobe.InvalidArgumentError, match="reference is 'base', expected one of the stages"):
        mp.run(progress=False)


def test_python_errors_propagate_and_loader_is_lazy(probes, models):
    base, other = models

    def boom(ids, mask):
        raise ValueError("boom from the model")

    mp = MetaProbe(probes, options=_opts())
    mp.add_stage("base", source=base)
    mp.add_stage("bad", source=boom)
    with pytest.raises(ValueError, match="boom from the model"):
        mp.run(progress=False)
    calls = []

    def loader():
        calls.append(1)
        return other

    mp = MetaProbe(probes, options=_opts(max_new_tokens=3))
    mp.add_stage("base", source=base)
    mp.add_stage("lazy", arm="rl", step=2, loader=loader)
    rep = mp.run(progress=False)
    assert calls == [1]
    assert rep.divergence.query("stage == 'lazy' and skill == 'all'").js.iloc[0] > 0


def test_torchscript_stage_matches_the_model(tmp_path, probes, models):
    base, other = models
    ts = tmp_path / "other.pt"
    other.to_torchscript(ts)
    direct = _run(probes, base, other, behaviour=False, parameters=False)
    mp = MetaProbe(probes, options=_opts(behaviour=False, parameters=False))
    mp.add_stage("base", source=base)
    mp.add_stage("sft-1", arm="sft", step=1, torchscript=ts)
    scripted = mp.run(progress=False)
    a, b = direct.divergence, scripted.divergence
    assert a.js.to_numpy() == pytest.approx(b.js.to_numpy(), abs=1e-6)
    # the same architecture with another model's weights
    w = tmp_path / "base.safetensors"
    base.save(w)
    mp = MetaProbe(probes, options=_opts(behaviour=False, parameters=False))
    mp.add_stage("base", source=base)
    mp.add_stage("copy", torchscript=ts, weights=w)
    assert mp.run(progress=False).divergence.js.abs().max() < 1e-6


@pytest.mark.skipif(metaprobe_cli() is None, reason="the metaprobe CLI was not found (neither bundled nor in the build)")
def test_cli_run_writes_the_report(tmp_path, models):
    base, other = models
    base.save(tmp_path / "base.safetensors")
    other.save(tmp_path / "sft.safetensors")
    other.to_torchscript(tmp_path / "arch.pt")
    cfg = {
        "probes": {"n_per_cell": 1, "difficulties": [1], "seed": 7, "skills": ["calculation", "enumeration"]},
        "options": {"max_new_tokens": 4, "reference_mode": "topk_cache", "cache_k": 16},
        "output": "out/report.json",
        "stages": [
            {"name": "base", "arm": "base", "step": 0, "tiny_lm": "base.safetensors"},
            {"name": "sft-1", "arm": "sft", "step": 1, "torchscript": "arch.pt", "weights": "sft.safetensors"},
        ],
    }
    (tmp_path / "out").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    res = subprocess.run([str(metaprobe_cli()), "run", str(tmp_path / "config.json")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    rep = Report.load(tmp_path / "out" / "report.json")
    assert rep.stage_names == ["base", "sft-1"]
    assert rep.params.query("level == 'total'").delta_fro.iloc[0] > 0
    assert rep.divergence.query("skill == 'all'")["mode"].iloc[0] == "topk_cache"
    bad = dict(cfg, stages=[{"name": "base"}])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = subprocess.run([str(metaprobe_cli()), "run", str(tmp_path / "bad.json")], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "no model, expected \"torchscript\"" in res.stderr


def test_import_does_not_load_heavy_modules():
    # torch itself imports tqdm (torch.hub); only what metaprobe adds on top of torch counts.
    code = ("import sys, torch; before = set(sys.modules); import metaprobe; "
            "bad = [m for m in ('pandas', 'matplotlib', 'tqdm', 'scipy') if m in sys.modules and m not in before];"
            " print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
