"""A reference's top-k cache from a file (save_topk_cache, the format vLLM's prompt_logprobs fill): a run whose
reference has no model, only its answers and the cache file computed from the same model, gives the divergences
of the run that builds the cache itself; entropies are NaN when the file has none; bad files and bad setups are
refused naming what is wrong."""
from __future__ import annotations

import math

import pytest
import torch

import metaprobe
from metaprobe import FormatError, InvalidArgumentError, MetaOptions, MetaProbe
from metaprobe.lm import TinyLM
from metaprobe.meta import load_topk_cache, save_topk_cache

CFG = dict(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=1024)
OPTS = dict(max_new_tokens=12, stop=(), do_sample=True, seed=2, parameters=False, reference_mode="topk_cache",
            cache_k=8, sampled_estimator=False)


@pytest.fixture(scope="module")
def setup():
    probes = metaprobe.probes.generate(n_per_cell=2, difficulties=[1], seed=7, skills=["calculation", "enumeration"])
    base, tuned = TinyLM(seed=1, **CFG), TinyLM(seed=2, **CFG)
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=base)
    mp.add_stage("rl-1", arm="rl", step=1, source=tuned)
    return probes, base, tuned, mp.run(progress=False)


def _cache_entries(probes, model, report, k, with_entropy=True):
    """What a foreign engine computes: the reference's top-k log-probabilities at each of its answer tokens."""
    prompts = dict(zip([p.id for p in probes], probes.render("plain")))
    out = []
    for r in report.responses("base"):
        if r.sample != 0 or not r.token_ids:
            continue
        prompt = model.tokenizer.encode(prompts[r.item_id])
        ids = torch.tensor([prompt + list(r.token_ids)])
        rows = torch.log_softmax(model(ids, torch.ones_like(ids))[0].double(), -1)[len(prompt) - 1: -1]
        values, indices = rows.topk(k, -1)
        e = {"item_id": r.item_id, "indices": indices, "logprobs": values}
        if with_entropy:
            e["entropy"] = -(rows.exp() * rows).sum(-1)
        out.append(e)
    return out


def _ref_without_model(probes, report, cache_path, tuned, **over):
    mp = MetaProbe(probes, options=MetaOptions(**{**OPTS, **over}), tokenizer="char")
    mp.add_stage("base", responses=report.responses("base"), reference_cache=cache_path)
    mp.add_stage("rl-1", arm="rl", step=1, source=tuned)
    return mp


def test_a_cache_file_gives_the_divergences_of_the_built_cache(setup, tmp_path):
    probes, base, tuned, built = setup
    path = tmp_path / "ref.cache.safetensors"
    save_topk_cache(path, _cache_entries(probes, base, built, OPTS["cache_k"]))
    entries, temperature = load_topk_cache(path)
    assert temperature == 1.0 and len(entries) == len(probes)
    rep = _ref_without_model(probes, built, path, tuned).run(progress=False)
    assert rep.stage("base")["info"]["source"] == "responses"
    a, b = rep.divergence, built.divergence
    assert len(a) == len(b) and (a.positions == b.positions).all()
    for col in ("kl_ref_stage", "kl_stage_ref", "js", "entropy_ref", "entropy_stage", "rank_shift", "top1_agree",
                "js_cache_bound", "kl_ref_stage_cache_bound"):
        assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(), rel=1e-5, abs=1e-7), col
    assert list(rep.items.correct) == list(built.items.correct)


def test_without_entropies_the_entropy_metrics_are_nan(setup, tmp_path):
    probes, base, tuned, built = setup
    path = tmp_path / "ref.cache.safetensors"
    save_topk_cache(path, _cache_entries(probes, base, built, OPTS["cache_k"], with_entropy=False))
    rep = _ref_without_model(probes, built, path, tuned).run(progress=False)
    a, b = rep.divergence, built.divergence
    assert a.entropy_ref.isna().all() and a.kl_ref_stage_cache_bound.isna().all()
    for col in ("kl_ref_stage", "kl_stage_ref", "js", "entropy_stage", "top1_agree"):
        assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(), rel=1e-5, abs=1e-7), col


def test_bad_cache_files_and_setups_are_refused(setup, tmp_path):
    probes, base, tuned, built = setup
    entries = _cache_entries(probes, base, built, OPTS["cache_k"])
    path = tmp_path / "c.safetensors"
    save_topk_cache(path, entries[1:])
    with pytest.raises(InvalidArgumentError, match=f"no rows for item '{entries[0]['item_id']}' sample 0"):
        _ref_without_model(probes, built, path, tuned).run(progress=False)
    short = [dict(e) for e in entries]
    for key in ("indices", "logprobs", "entropy"):
        short[0][key] = short[0][key][:-1]
    save_topk_cache(path, short)
    with pytest.raises(InvalidArgumentError, match="cached rows for .* scored tokens, expected one row per token"):
        _ref_without_model(probes, built, path, tuned).run(progress=False)
    save_topk_cache(path, entries, temperature=0.5)
    with pytest.raises(InvalidArgumentError, match="cached at temperature 0.5, expected the run's divergence_temperature 1"):
        _ref_without_model(probes, built, path, tuned).run(progress=False)
    save_topk_cache(path, entries)
    with pytest.raises(InvalidArgumentError, match="expected reference_mode 'topk_cache'"):
        _ref_without_model(probes, built, path, tuned, reference_mode="exact").run(progress=False)
    with pytest.raises(InvalidArgumentError, match="divergence_on is 'stage_samples' with reference_mode topk_cache"):
        _ref_without_model(probes, built, path, tuned, divergence_on="stage_samples").run(progress=False)
    with pytest.raises(InvalidArgumentError, match="sampled-token estimator scores the stages' answers"):
        _ref_without_model(probes, built, path, tuned, sampled_estimator=True).run(progress=False)
    bad = [dict(entries[0], logprobs=entries[0]["logprobs"].flip(-1))]
    with pytest.raises(InvalidArgumentError, match="descending order"):
        save_topk_cache(tmp_path / "d.safetensors", bad)
    metaprobe.io.save({"indices": torch.zeros(1, 1, dtype=torch.long)}, tmp_path / "e.safetensors")
    with pytest.raises(FormatError, match="metadata has no 'format'"):
        load_topk_cache(tmp_path / "e.safetensors")
    mp = MetaProbe(probes, options=MetaOptions(**OPTS))
    mp.add_stage("base", source=base)
    mp.add_stage("rl-1", arm="rl", step=1, source=tuned, reference_cache=path)
    with pytest.raises(InvalidArgumentError, match="stage 'rl-1' has a reference_cache, expected it on the reference"):
        mp.run(progress=False)
