"""Representation drift (metaprobe.representation): linear CKA against the HSIC form in numpy float64, Huan et
al.'s PCA shift against scikit-learn's PCA, mask-aware features from TinyLM and from the Hugging Face backend
on the same exported weights, and the report's representation section (JSON round trip, DataFrame, plot)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metaprobe
from metaprobe import MetaOptions, MetaProbe, backends, representation as rep
from metaprobe.lm import TinyLM

hf_tiny = pytest.importorskip("hf_tiny")
sklearn_decomposition = pytest.importorskip("sklearn.decomposition")


def _cka_hsic(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize("seed", range(4))
def test_linear_cka_matches_the_hsic_form(seed):
    g = np.random.default_rng(seed)
    x = g.normal(size=(20, 8))
    y = x @ g.normal(size=(8, 5)) + 0.5 * g.normal(size=(20, 5))
    assert rep.linear_cka(torch.tensor(x), torch.tensor(y)) == pytest.approx(_cka_hsic(x, y), rel=1e-12)
    q, _ = np.linalg.qr(g.normal(size=(8, 8)))
    # invariant to rotation, isotropic scale and translation; 1 for the same features
    assert rep.linear_cka(torch.tensor(x), torch.tensor(3.0 * x @ q + 7.0)) == pytest.approx(1.0, abs=1e-12)
    big = x * 1e150  # adversarial scale: no overflow to inf/nan in float64
    assert rep.linear_cka(torch.tensor(big), torch.tensor(y)) == pytest.approx(_cka_hsic(x, y), rel=1e-10)
    assert math.isnan(rep.linear_cka(torch.ones(5, 3), torch.tensor(y[:5])))


@pytest.mark.parametrize("seed", range(4))
def test_pca_shift_matches_scikit_learn(seed):
    g = np.random.default_rng(seed)
    x = g.normal(size=(30, 6)) * np.array([5, 3, 1, 1, 1, 1])
    y = x + g.normal(size=(30, 6)) * 0.3 + 0.7
    pca = sklearn_decomposition.PCA(n_components=2).fit(x)
    c1, c2 = pca.components_
    shift, pc2_r, pc2_s = rep.pca_shift(torch.tensor(x), torch.tensor(y))
    assert shift == pytest.approx((y @ c1).mean() - (x @ c1).mean(), rel=1e-10)
    assert pc2_r == pytest.approx((x @ c2).mean(), rel=1e-9, abs=1e-12)
    assert pc2_s == pytest.approx((y @ c2).mean(), rel=1e-10)
    assert rep.pca_distance([shift, 2 * shift], [pc2_r, pc2_r], [pc2_s, pc2_s]) == pytest.approx(
        math.hypot(1.5 * shift, pc2_s - pc2_r))
    assert all(math.isnan(v) for v in rep.pca_shift(torch.tensor(x[:2]), torch.tensor(y[:2])))


def test_features_are_mask_aware_and_agree_between_backends(tmp_path):
    m = TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=512, seed=3)
    prompts = [[1, 5, 9, 12], [1, 7], [1, 3, 3, 3, 3, 3]]
    feats = rep.features(m, prompts, pad_id=0, batch_size=2)
    assert len(feats) == 3 and feats[0].shape == (3, 32) and feats[0].dtype == torch.float64
    alone = rep.features(m, [prompts[1]], batch_size=1)  # no padding: the same feature
    for a, b in zip(feats, alone):
        assert torch.allclose(a[1], b[0], atol=1e-6)
    # the last hidden state is what the head reads
    ids = torch.tensor([prompts[0]])
    states = m.hidden_states(ids, torch.ones_like(ids))
    torch_model = m.to_torch()
    assert torch.allclose(torch_model.lm_head(states[-1]), m(ids, torch.ones_like(ids)), atol=1e-5)
    m.save_pretrained(tmp_path / "hf")
    hf_model, hf_tok = hf_tiny.load(tmp_path / "hf")
    hf_feats = rep.features(backends.hf(hf_model, hf_tok), prompts, pad_id=0, batch_size=2)
    for a, b in zip(feats, hf_feats):
        assert torch.allclose(a, b, atol=1e-4)


def test_drift_in_the_report(tmp_path):
    probes = metaprobe.probes.generate(n_per_cell=3, difficulties=[1], seed=7, skills=["calculation", "enumeration"],
                                       domains=["math", "coding"])
    base = TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=1024, seed=1)
    other = TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=1024, seed=2)
    mp = MetaProbe(probes, options=MetaOptions(max_new_tokens=4, stop=(), parameters=False, divergence=False))
    mp.add_stage("base", source=base)
    mp.add_stage("copy", arm="sft", step=1, source=base)
    mp.add_stage("other", arm="rl", step=1, source=other)
    report = mp.run(progress=False)
    table = report.add_representation(probes, base, {"copy": base, "other": other}, base.tokenizer, progress=False)
    assert set(table.stage) == {"copy", "other"} and sorted(set(table.layer)) == [0, 1, 2]
    assert len(table) == 2 * 3 * (4 + 1)  # stages × layers × (cells + all)
    same = table[table.stage == "copy"]
    assert np.allclose(same.cka, 1) and np.allclose(same.cosine, 1) and np.allclose(same.pca_shift, 0, atol=1e-9)
    moved = table[(table.stage == "other") & (table.skill == "all") & (table.layer > 0)]
    assert (moved.cka < 0.999).all()
    assert set(table.arm) == {"sft", "rl"}
    path = tmp_path / "r.json"
    report.save(path)
    back = metaprobe.Report.load(path)
    assert back.representation.drop(columns=[]).equals(report.representation)
    from metaprobe import plot

    fig = plot.representation_drift(report, metric="cka")
    assert len(fig.axes) >= 3
    with pytest.raises(metaprobe.InvalidArgumentError, match="stage 'nope' is not in this report"):
        report.add_representation(probes, base, {"nope": base}, base.tokenizer, progress=False)
    with pytest.raises(metaprobe.UnsupportedError, match="has no hidden_states"):
        rep.features(lambda i, m: i, [[1, 2]])
