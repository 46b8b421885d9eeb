"""Differential test against the real `weightwatcher` package: `WeightWatcher(model).analyze()` on a small
trained torch MLP and a tiny transformers Llama, layer by layer, against `params.spectral_stats` of the same
weight, within 1e-6 relative (measured: < 1e-13), with WW's Marchenko–Pastur fit (`analyze(mp_fit=True)`:
`mp_softrank`, `num_spikes`) against params' `mp_softrank` / `mp_num_spikes`."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from metaprobe import params

ww = pytest.importorskip("weightwatcher")

# Every layer metric of WW's default analyze() that params reports under the same meaning.
NORM_METRICS = ["log_norm", "log_spectral_norm", "stable_rank", "entropy", "num_evals", "sv_max", "sv_min"]
FIT_METRICS = ["alpha", "alpha_weighted", "xmin", "D", "num_pl_spikes", "sigma", "log_alpha_norm", "xmax"]
SMALL_N = 20  # WW_powerlaw.SMALL_N_CUTOFF: below it WW switches to its bias-corrected small-N fit


def _trained_mlp() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(48, 160), torch.nn.ReLU(), torch.nn.Linear(160, 96), torch.nn.ReLU(),
                            torch.nn.Linear(96, 10))
    x = torch.randn(512, 48, generator=g)
    y = (x[:, :10] @ torch.randn(10, 10, generator=g)).argmax(1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return m.eval()


def _ww_frame(model: torch.nn.Module):
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return ww.WeightWatcher(model=model).analyze(mp_fit=True)


def _compare(model: torch.nn.Module, min_layers: int) -> tuple[int, int]:
    df = _ww_frame(model)
    checked = small = spikes = 0
    for row in df.itertuples():
        w = model.get_submodule(row.longname).weight.detach()
        ours = params.spectral_stats(w, method="svd", min_evals=8)
        for key in NORM_METRICS:
            assert ours[key] == pytest.approx(getattr(row, key), rel=1e-6), (row.longname, key)
        assert ours["num_evals"] == row.M  # the ESD's eigenvalues: min(N, M)
        for key in FIT_METRICS:  # below SMALL_N eigenvalues both use WW's small-N estimator
            assert ours[key] == pytest.approx(getattr(row, key), rel=1e-6), (row.longname, key)
        assert ours["mp_status"] == "ok"
        assert ours["mp_softrank"] == pytest.approx(row.mp_softrank, rel=1e-6), row.longname
        assert ours["mp_num_spikes"] == row.num_spikes, row.longname
        spikes += row.num_spikes > 0
        small += row.num_evals < SMALL_N
        checked += 1
    assert checked >= min_layers
    _compare.spikes = spikes  # the trained MLP has layers with spikes outside the MP bulk
    return checked, small


def test_trained_mlp_matches_weightwatcher_layer_by_layer():
    assert _compare(_trained_mlp(), 3) == (3, 1)  # the 96x10 head has 10 eigenvalues: WW's small-N fit
    assert _compare.spikes >= 2


def test_tiny_llama_matches_weightwatcher_layer_by_layer():
    hf_tiny = pytest.importorskip("hf_tiny")
    model = hf_tiny.tiny_model("llama", vocab_size=300, seed=1)
    checked, small = _compare(model, 5)
    assert small > 0 and checked > small


def test_entropy_uses_float64_eps_rank_for_float32_weights():
    # An ill-conditioned float32 matrix: singular values 1 … 1e-9 lie between the float32 and float64 rank
    # tolerances, so a float32-eps rank (what numerical_rank reports) would change WW's entropy.
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(32, 32, dtype=torch.float64))
    s = torch.logspace(0, -9, 32, dtype=torch.float64)
    w = (u[:, :32] * s) @ v.T
    ours = params.spectral_stats(w.float(), method="svd")
    m = torch.nn.Sequential(torch.nn.Linear(32, 64, bias=False))
    with torch.no_grad():
        m[0].weight.copy_(w.float())
    row = next(_ww_frame(m).itertuples())
    assert ours["entropy"] == pytest.approx(row.entropy, rel=1e-6)
    assert ours["numerical_rank"] < row.matrix_rank  # the float32-eps rank is smaller
    assert math.isfinite(ours["entropy"])


def test_mp_fit_edge_cases():
    # a random Gaussian matrix: the ESD is the MP law, no spikes, softrank near 1
    g = torch.Generator().manual_seed(3)
    s = params.spectral_stats(torch.randn(400, 100, generator=g, dtype=torch.float64), method="svd")
    assert s["mp_status"] == "ok" and s["mp_num_spikes"] == 0 and 0.8 < s["mp_softrank"] < 1.2
    # a planted rank-one spike leaves the bulk: one spike, small softrank
    u, v = torch.randn(400, 1, generator=g, dtype=torch.float64), torch.randn(1, 100, generator=g, dtype=torch.float64)
    s = params.spectral_stats(torch.randn(400, 100, generator=g, dtype=torch.float64) + 3 * u @ v, method="svd")
    assert s["mp_num_spikes"] >= 1 and s["mp_softrank"] < 0.5
    # too small for a fit, and a zero matrix: a status, never an exception
    assert params.spectral_stats(torch.ones(5, 1, dtype=torch.float64))["mp_status"].startswith("too few")
    assert params.spectral_stats(torch.zeros(8, 8, dtype=torch.float64))["mp_status"] != "ok"
    assert math.isnan(params.spectral_stats(torch.zeros(8, 8, dtype=torch.float64))["mp_softrank"])


def test_randomized_esd_matches_weightwatchers_definitions_on_the_same_permutations():
    """params permutes W with torch's CPU generator (seeded); replaying those permutations in torch and handing
    the eigenvalues to WW's own jensen_shannon_distance and mp_fit gives params' randomised-ESD numbers."""
    from weightwatcher import RMT_Util

    model = _trained_mlp()
    watcher = ww.WeightWatcher(model=model)
    for layer, seed in ((model[0], 3), (model[2], 5)):  # 48 and 96 eigenvalues: 5 pooled permutations each
        w = layer.weight.detach().double()
        ours = params.spectral_stats(w, method="svd", randomize=True, randomize_seed=seed)
        assert ours["rand_status"] == "ok" and ours["rand_replicas"] == 5
        gen = torch.Generator().manual_seed(seed)

        def permuted():
            perm = torch.randperm(w.numel(), generator=gen)
            return torch.sort(torch.linalg.svdvals(w.flatten()[perm].reshape(w.shape)) ** 2).values.numpy()

        import numpy as np

        pooled = np.sort(np.concatenate([permuted() for _ in range(5)]))
        once = permuted()
        evals = np.sort((torch.linalg.svdvals(w) ** 2).numpy())
        n, m = max(w.shape), min(w.shape)
        assert ours["max_rand_eval"] == pytest.approx(pooled.max(), rel=1e-12)
        assert ours["rand_distance"] == pytest.approx(RMT_Util.jensen_shannon_distance(evals, once), rel=1e-9)
        assert ours["ww_softrank"] == pytest.approx(once.max() / evals.max(), rel=1e-12)
        assert ours["ww_maxdist"] == pytest.approx(evals.max() - once.max(), rel=1e-9)
        spikes, _, softrank, *_ = watcher.mp_fit(pooled, n, m, 1.0, "l", 0, 0, False, False, "", "b", 0.5, True,
                                                 evals, randomize=True)
        assert ours["rand_mp_softrank"] == pytest.approx(softrank, rel=1e-6)
        assert ours["rand_num_spikes"] == spikes
    assert params.spectral_stats(torch.randn(6, 4), k=2, randomize=True)["rand_status"].startswith("needs the complete")
    assert params.spectral_stats(torch.randn(6, 4))["rand_status"] == "off"
