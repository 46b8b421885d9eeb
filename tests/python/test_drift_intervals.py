"""The drift and collapse figures' paired bootstrap intervals, reproduced exactly by a Python port of the run's
documented stream (SplitMix64 finaliser seeded from the run's seed; items resampled within each cell, the same
draws for the reference and the stage; numpy-style percentiles at the level of z)."""
from __future__ import annotations

import math

import pytest

import metaprobe
from metaprobe import MetaOptions, MetaProbe
from metaprobe.lm import TinyLM

from metaprobe.backends import _splitmix64 as mix64  # the Python twin of the C++ stream (uniform01 uses it)


def percentile(sorted_values: list[float], p: float) -> float:
    pos = p * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def _bootstrap(ref: dict, stage: dict, cells: dict, target: set, seed: int, z: float):
    """Per cell delta samples, L1, L2 and the pooled target / off-target changes over 1000 replicates."""
    state = mix64(seed ^ 0xD51F7A11)  # derived.cpp seeds the drift bootstrap so
    order = sorted(cells, key=lambda c: (SKILLS.index(c[0]), DOMAINS.index(c[1])))
    out = {"cells": {c: [] for c in order}, "l1": [], "l2": [], "t": [], "o": []}
    for _ in range(1000):
        s1 = s2 = t_sum = o_sum = 0.0
        t_n = o_n = 0
        for c in order:
            ids = cells[c]
            diff = 0.0
            for _ in ids:
                state = mix64(state)
                k = ids[state % len(ids)]
                diff += stage[k] - ref[k]
            if c in target:
                t_sum, t_n = t_sum + diff, t_n + len(ids)
            else:
                o_sum, o_n = o_sum + diff, o_n + len(ids)
            diff /= len(ids)
            out["cells"][c].append(diff)
            s1 += abs(diff)
            s2 += diff * diff
        out["l1"].append(s1)
        out["l2"].append(math.sqrt(s2))
        out["t"].append(t_sum / t_n if t_n else math.nan)
        out["o"].append(o_sum / o_n if o_n else math.nan)
    alpha = math.erfc(z / math.sqrt(2))

    def iv(v):
        v = sorted(v)
        return percentile(v, alpha / 2), percentile(v, 1 - alpha / 2)

    return {k: (iv(v) if k != "cells" else {c: iv(x) for c, x in v.items()}) for k, v in out.items()}


SKILLS = ["calculation", "fact_retrieval", "simulation", "enumeration", "diagnostic"]
DOMAINS = ["math", "physics", "coding", "general"]


def test_intervals_match_a_python_port_of_the_bootstrap():
    probes = metaprobe.probes.generate(n_per_cell=6, difficulties=[1], seed=2, skills=["calculation", "fact_retrieval"],
                                       domains=["math", "general"])
    cfg = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=1024)
    opts = MetaOptions(max_new_tokens=8, stop=(), do_sample=True, n_samples=3, temperature=1.5, seed=11,
                       parameters=False, divergence=False, target_cells=("calculation/math",))
    mp = MetaProbe(probes, options=opts)
    mp.add_stage("base", source=TinyLM(seed=1, **cfg))
    mp.add_stage("rl-1", arm="rl", step=1, source=TinyLM(seed=2, **cfg))
    rep = mp.run(progress=False)
    items = rep.items
    score = {(r.stage, r.id): r.score for r in items.itertuples()}
    ref = {i: score[("base", i)] for i in items[items.stage == "base"].id}
    stage = {i: score[("rl-1", i)] for i in items[items.stage == "rl-1"].id}
    cells: dict = {}
    for r in items[items.stage == "rl-1"].itertuples():
        cells.setdefault((r.skill, r.domain), []).append(r.id)
    want = _bootstrap(ref, stage, cells, {("calculation", "math")}, 11, 1.959963984540054)
    drift = rep.drift[rep.drift.stage == "rl-1"]
    for r in drift.itertuples():
        lo, hi = want["cells"][(r.skill, r.domain)]
        assert (r.delta_lo, r.delta_hi) == pytest.approx((lo, hi), abs=1e-12)
        assert r.delta_lo <= r.delta + 1e-12 and r.delta <= r.delta_hi + 1e-12
    d = rep.derived.set_index("stage").loc["rl-1"]
    assert (d.drift_l1_lo, d.drift_l1_hi) == pytest.approx(want["l1"], abs=1e-12)
    assert (d.drift_l2_lo, d.drift_l2_hi) == pytest.approx(want["l2"], abs=1e-12)
    assert (d.delta_target_lo, d.delta_target_hi) == pytest.approx(want["t"], abs=1e-12)
    assert (d.delta_off_target_lo, d.delta_off_target_hi) == pytest.approx(want["o"], abs=1e-12)
    base = rep.derived.set_index("stage").loc["base"]
    assert base.drift_l1_lo == base.drift_l1_hi == 0 and base.delta_off_target_lo == 0  # the reference vs itself
