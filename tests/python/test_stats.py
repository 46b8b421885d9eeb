"""Differences between arms with uncertainty: the bootstrap and permutation test against a float64 loop
re-implementation on a fixed seed, an exact enumeration, and the report's `differences` (JSON, DataFrame, HTML)."""
from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest

import metaprobe
from metaprobe import MetaOptions, MetaProbe, Report, stats
from metaprobe.lm import TinyLM

SMALL = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=1024)


def _reference_paired(a, b, n_boot, n_perm, confidence, seed, chunk=256):
    """Plain-Python float64 re-implementation of stats.paired_difference, drawing the same PCG64 stream."""
    x = [[float(v) for v in row] for row in np.atleast_2d(np.asarray(a, dtype=float))]
    y = [[float(v) for v in row] for row in np.atleast_2d(np.asarray(b, dtype=float))]
    S, n = len(x), len(x[0])
    d = [[x[s][i] - y[s][i] for i in range(n)] for s in range(S)]
    rng = np.random.Generator(np.random.PCG64(seed))
    boot = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        rows = rng.integers(0, S, size=(m, S)).tolist() if S > 1 else [[0]] * m
        cols = rng.integers(0, n, size=(m, n)).tolist()
        for r in range(m):
            boot.append(math.fsum(d[s][i] for s in rows[r] for i in cols[r]) / (S * n))
    boot.sort()

    def quantile(q):  # numpy's default ("linear") rule
        h = (len(boot) - 1) * q
        lo = math.floor(h)
        return boot[lo] + (h - lo) * (boot[min(lo + 1, len(boot) - 1)] - boot[lo])

    dbar = [math.fsum(d[s][i] for s in range(S)) / S for i in range(n)]
    obs = math.fsum(dbar) / n
    hits = 0
    for start in range(0, n_perm, chunk):
        m = min(chunk, n_perm - start)
        flips = rng.integers(0, 2, size=(m, n)).tolist()
        for r in range(m):
            t = math.fsum((2 * f - 1) * v for f, v in zip(flips[r], dbar)) / n
            hits += abs(t) >= abs(obs) - 1e-12 * max(1.0, abs(obs))
    tail = (1 - confidence) / 2
    return obs, quantile(tail), quantile(1 - tail), (1 + hits) / (1 + n_perm)


@pytest.mark.parametrize("shape", [(40,), (3, 25)])
def test_bootstrap_and_permutation_match_a_float64_reimplementation(shape):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2, size=shape).astype(float)
    b = np.clip(a - (rng.random(shape) < 0.3), 0, 1)
    r = stats.paired_difference(a, b, n_boot=700, n_perm=600, seed=123)
    obs, lo, hi, p = _reference_paired(a, b, 700, 600, 0.95, 123)
    assert r["diff"] == pytest.approx(obs, rel=1e-13, abs=1e-15)
    assert r["lo"] == pytest.approx(lo, rel=1e-12, abs=1e-15)
    assert r["hi"] == pytest.approx(hi, rel=1e-12, abs=1e-15)
    assert r["p_value"] == p
    assert r["n_units"] == shape[-1] and r["n_seeds"] == (shape[0] if len(shape) == 2 else 1)
    assert r["lo"] <= r["diff"] <= r["hi"]
    # Same seed, same numbers; another seed, another draw.
    assert stats.paired_difference(a, b, n_boot=700, n_perm=600, seed=123) == r


def test_permutation_p_value_approaches_the_exact_enumeration():
    d = np.array([0.9, 0.4, -0.2, 1.3, 0.8, 0.1, 0.6, -0.5, 0.7, 0.3])
    obs = abs(d.mean())
    exact = np.mean([abs(np.mean(np.array(s) * d)) >= obs - 1e-12
                     for s in itertools.product((-1, 1), repeat=len(d))])
    r = stats.paired_difference(d, np.zeros_like(d), n_boot=10, n_perm=40000, seed=0)
    se = math.sqrt(exact * (1 - exact) / 40000)
    assert abs(r["p_value"] - exact) < 4 * se + 1e-4


def test_seeds_widen_the_interval_when_runs_disagree():
    rng = np.random.default_rng(1)
    base = rng.normal(0.2, 1.0, size=60)
    one = stats.paired_difference(base[None, :], np.zeros((1, 60)), seed=3)
    # Three runs whose mean differences disagree (0.2 ± 0.5): resampling seeds must widen the interval.
    runs = np.stack([base + off for off in (-0.5, 0.0, 0.5)])
    many = stats.paired_difference(runs, np.zeros_like(runs), seed=3)
    assert many["diff"] == pytest.approx(one["diff"])
    assert (many["hi"] - many["lo"]) > 1.3 * (one["hi"] - one["lo"])


def test_bad_inputs_name_the_argument():
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"b: 'shape \(3,\)', expected the shape of a, \(4,\)"):
        stats.paired_difference([1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(metaprobe.InvalidArgumentError, match="non-finite"):
        stats.paired_difference([1, float("nan")], [0, 0])
    with pytest.raises(metaprobe.InvalidArgumentError, match="n_boot: 0, expected >= 1"):
        stats.paired_difference([1, 2], [0, 0], n_boot=0)
    with pytest.raises(metaprobe.InvalidArgumentError, match="confidence: 1.5"):
        stats.paired_difference([1, 2], [0, 0], confidence=1.5)


@pytest.fixture(scope="module")
def report():
    probes = metaprobe.probes.generate(n_per_cell=2, difficulties=[1], seed=3)
    base = TinyLM(seed=3, **SMALL)
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=3, batch_size=32))
    mp.add_stage("base", source=base, checkpoint=base.state_dict())
    for arm, seed in (("sft", 5), ("rl", 8)):
        m = TinyLM(seed=seed, **SMALL)
        mp.add_stage(f"{arm}-1", arm=arm, step=10, source=m, checkpoint=m.state_dict())
    return mp.run(progress=False)


def _with_correct(report: Report, pattern) -> Report:
    """A copy whose per-item correctness is pattern(stage, item index, is_target)."""
    data = copy.deepcopy(report.data)
    target = set(report.target_cells)
    for s in data["stages"]:
        for k, it in enumerate(s["behaviour"]["items"]):
            it["correct"] = bool(pattern(s["info"]["name"], k, f"{it['cell']['skill']}/{it['cell']['domain']}" in target))
    return Report(data)


def test_report_differences_are_the_paired_item_differences(tmp_path, report):
    # base: every item right; sft forgets every off-target item; rl forgets every 4th.
    rep = _with_correct(report, lambda st, k, tgt: st == "base" or tgt or (st == "rl-1" and k % 4 != 0))
    df = rep.add_differences(n_boot=300, n_perm=300, seed=0)
    assert set(zip(df.a, df.b)) == {("sft-1", "base"), ("rl-1", "base"), ("sft-1", "rl-1")}
    row = df[(df.a == "sft-1") & (df.b == "rl-1") & (df.metric == "off_target_change")].iloc[0]
    items = rep.items
    off = items[(items.stage == "rl-1") & ~(items.skill + "/" + items.domain).isin(rep.target_cells)]
    assert row.n_units == len(off)
    assert row["diff"] == pytest.approx(-off.correct.mean())        # (0 − 1) − (rl − 1) per item
    assert row.hi < 0 and row.p_value < 0.01
    tgt = df[(df.a == "sft-1") & (df.b == "rl-1") & (df.metric == "accuracy_target")].iloc[0]
    assert tgt["diff"] == 0 and tgt.lo == 0 and tgt.hi == 0 and tgt.p_value == 1.0
    kl = df[(df.a == "sft-1") & (df.b == "base") & (df.metric == "kl_ref_stage")].iloc[0]
    assert kl.unit == "cell" and kl["diff"] > 0
    # JSON round trip through the C++ validator, and the HTML section.
    rep.save(tmp_path / "r.json")
    back = Report.load(tmp_path / "r.json")
    pd.testing.assert_frame_equal(back.differences, rep.differences)
    rep.to_html(tmp_path / "r.html", plots=False)
    assert "Differences between stages" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert report.differences.empty


def test_several_runs_resample_seeds(report):
    r1 = _with_correct(report, lambda st, k, tgt: st != "sft-1" or k % 2 == 0)
    r2 = _with_correct(report, lambda st, k, tgt: st != "sft-1" or k % 3 == 0)
    recs = stats.arm_differences([r1, r2], [("sft-1", "rl-1")], metrics=["accuracy"], n_boot=200, n_perm=200)
    assert len(recs) == 1 and recs[0]["n_seeds"] == 2
    n = len(r1.stage("sft-1")["behaviour"]["items"])
    expected = (sum(k % 2 == 0 for k in range(n)) + sum(k % 3 == 0 for k in range(n))) / (2 * n) - 1
    assert recs[0]["diff"] == pytest.approx(expected)
    with pytest.raises(metaprobe.InvalidArgumentError, match="metrics: 'x', expected one of"):
        stats.arm_differences(r1, metrics=["x"])
