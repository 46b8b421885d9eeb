"""Huan et al.'s sampled-token KL (calculate_KL.py: log(p + 1e-10), the first answer token dropped, |mean| over
items) and per-token ranks (calculate_logits_and_ranks_token_level.py) against a float64 re-implementation on the
stages' own sampled answers, beside the exact signed estimator."""
from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

import metaprobe
from metaprobe import MetaOptions, MetaProbe
from metaprobe.lm import TinyLM


def _token_scores(model: TinyLM, prompt: list[int], answer: list[int]) -> tuple[list[float], list[int]]:
    ids = torch.tensor([prompt + answer])
    logits = model(ids, torch.ones_like(ids))[0].double()
    rows = torch.log_softmax(logits[len(prompt) - 1: len(prompt) - 1 + len(answer)], -1)
    tgt = torch.tensor(answer)
    lp = rows.gather(1, tgt[:, None])[:, 0]
    ranks = (rows > lp[:, None]).sum(1) + 1
    return lp.tolist(), ranks.tolist()


@pytest.mark.parametrize("skip_first", [True, False])
def test_huan_kl_and_ranks_match_a_float64_reimplementation(skip_first):
    probes = metaprobe.probes.generate(n_per_cell=3, difficulties=[1], seed=7, skills=["calculation", "enumeration"])
    cfg = dict(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=1024)
    base, tuned = TinyLM(seed=1, **cfg), TinyLM(seed=2, **cfg)
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=12, stop=(), do_sample=True, seed=4, parameters=False,
                                               huan_skip_first_token=skip_first))
    mp.add_stage("base", source=base)
    mp.add_stage("rl-1", arm="rl", step=1, source=tuned)
    rep = mp.run(progress=False)
    prompts = dict(zip([p.id for p in probes], probes.render("plain")))
    cells = {p.id: (p.skill, p.domain) for p in probes}
    tok = base.tokenizer
    exact, huan, rank_s, rank_r, tokens = (defaultdict(list) for _ in range(5))
    for r in rep.responses("rl-1"):
        if not r.token_ids:
            continue
        prompt = tok.encode(prompts[r.item_id])
        lp_s, rk_s = _token_scores(tuned, prompt, list(r.token_ids))
        lp_r, rk_r = _token_scores(base, prompt, list(r.token_ids))
        c = cells[r.item_id]
        exact[c].append(sum(a - b for a, b in zip(lp_s, lp_r)) / len(lp_s))
        j0 = 1 if skip_first else 0
        if len(lp_s) > j0:
            huan[c].append(sum(math.log(math.exp(a) + 1e-10) - math.log(math.exp(b) + 1e-10)
                               for a, b in zip(lp_s[j0:], lp_r[j0:])) / (len(lp_s) - j0))
        rank_s[c] += rk_s
        rank_r[c] += rk_r
    div = rep.divergence
    rows = div[(div.stage == "rl-1") & (div.skill != "all")]
    assert len(rows) == len(exact) > 0
    for _, row in rows.iterrows():
        c = (row.skill, row.domain)
        assert row.sampled_kl == pytest.approx(sum(exact[c]) / len(exact[c]), rel=1e-5, abs=1e-7)
        assert row.sampled_kl_huan == pytest.approx(abs(sum(huan[c]) / len(huan[c])), rel=1e-5, abs=1e-7)
        assert row.sampled_rank_stage == pytest.approx(sum(rank_s[c]) / len(rank_s[c]), rel=1e-9)
        assert row.sampled_rank_ref == pytest.approx(sum(rank_r[c]) / len(rank_r[c]), rel=1e-9)
    total = div[(div.stage == "rl-1") & (div.skill == "all")].iloc[0]
    all_huan = [v for c in huan for v in huan[c]]
    assert total.sampled_kl_huan == pytest.approx(abs(sum(all_huan) / len(all_huan)), rel=1e-5, abs=1e-7)
    assert total.sampled_rank_ref >= 1 and total.sampled_rank_stage >= 1


def test_huan_fields_read_as_nan_from_older_reports():
    probes = metaprobe.probes.generate(n_per_cell=1, difficulties=[1], seed=7, skills=["calculation"])
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False))
    m = TinyLM(d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=512, seed=1)
    mp.add_stage("base", source=m)
    mp.add_stage("copy", arm="sft", step=1, source=m)
    data = mp.run(progress=False).data
    for s in data["stages"]:
        if s["divergence"]:
            for c in s["divergence"]["cells"] + [s["divergence"]["total"]]:
                for k in ("sampled_kl_huan", "sampled_rank_stage", "sampled_rank_ref"):
                    c.pop(k)
    import json

    old = metaprobe.Report.from_json(json.dumps(data))
    assert old.divergence.sampled_kl_huan.isna().all()
