"""metaprobe.params against float64 numpy/scipy/torch references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import metaprobe
from metaprobe import params


def _finite(t: torch.Tensor) -> np.ndarray:
    x = t.double().flatten().numpy()
    return x[np.isfinite(x)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(100_003) * 0.02 + 0.001,
        lambda: torch.exp(torch.randn(50_001, dtype=torch.float64)),
        lambda: (torch.randn(300, 257) * 3).to(torch.bfloat16),
        lambda: torch.randn(64, 64).t(),  # non-contiguous
        lambda: torch.randint(-50, 50, (9999,), dtype=torch.int32),
    ],
    ids=["f32", "f64-skewed", "bf16", "transposed", "int32"],
)
def test_tensor_stats_match_scipy(make):
    torch.manual_seed(0)
    t = make()
    s = params.tensor_stats(t)
    x = _finite(t)
    assert s["numel"] == t.numel()
    assert s["mean"] == pytest.approx(x.mean(), rel=1e-10, abs=1e-13)
    assert s["std"] == pytest.approx(x.std(), rel=1e-10)
    assert s["min"] == x.min() and s["max"] == x.max()
    assert s["mean_abs"] == pytest.approx(np.abs(x).mean(), rel=1e-10)
    assert s["l2_norm"] == pytest.approx(np.linalg.norm(x), rel=1e-10)
    assert s["linf_norm"] == np.abs(x).max()
    assert s["zero_fraction"] == pytest.approx((x == 0).mean())
    assert s["skewness"] == pytest.approx(scipy.stats.skew(x), rel=1e-8, abs=1e-10)
    assert s["excess_kurtosis"] == pytest.approx(scipy.stats.kurtosis(x), rel=1e-8, abs=1e-10)


def test_tensor_stats_nan_inf_constant_zero():
    t = torch.randn(10_000, dtype=torch.float64)
    t[3] = float("nan")
    t[7] = float("inf")
    s = params.tensor_stats(t)
    assert (s["nan_count"], s["inf_count"], s["finite_count"]) == (1, 1, 9998)
    x = _finite(t)
    assert s["skewness"] == pytest.approx(scipy.stats.skew(x), rel=1e-8)
    c = params.tensor_stats(torch.full((1000,), 0.25))
    assert c["std"] == 0 and math.isnan(c["skewness"]) and math.isnan(c["excess_kurtosis"])
    with pytest.warns(RuntimeWarning):
        assert math.isnan(scipy.stats.skew(np.full(1000, 0.25)))  # the same convention as scipy
    z = params.tensor_stats(torch.zeros(5, 5, dtype=torch.bfloat16))
    assert z["zero_fraction"] == 1.0 and z["l2_norm"] == 0.0


def test_tensor_stats_rejects_complex():
    with pytest.raises(metaprobe.InvalidArgumentError, match="tensor: complex dtype"):
        params.tensor_stats(torch.zeros(3, dtype=torch.complex64))


def test_update_stats_match_numpy():
    torch.manual_seed(1)
    w0 = torch.randn(257, 129, dtype=torch.float64) * 0.02
    mask = torch.rand_like(w0) < 0.25
    w1 = w0 + mask * torch.randn_like(w0) * 1e-3
    u = params.update_stats(w0, w1)
    a, b = w0.numpy(), w1.numpy()
    d = b - a
    assert u["delta_fro"] == pytest.approx(np.linalg.norm(d), rel=1e-12)
    assert u["rel_update_norm"] == pytest.approx(np.linalg.norm(d) / np.linalg.norm(a), rel=1e-12)
    assert u["cosine"] == pytest.approx((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-12)
    assert u["max_abs_delta"] == np.abs(d).max()
    assert u["sparsity_abs"] == pytest.approx((np.abs(d) <= 1e-5).mean())
    assert u["sparsity_rel"] == pytest.approx((np.abs(d) <= 1e-3 * np.maximum(np.abs(a), np.abs(b))).mean())
    assert u["sign_flip_fraction"] == pytest.approx((a * b < 0).mean())
    loose = params.update_stats(w0, w1, atol=1.0, eta=0.5)
    assert loose["sparsity_abs"] == 1.0
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"w1: shape \[129, 257\] differs"):
        params.update_stats(w0, w1.t())
    with pytest.raises(metaprobe.InvalidArgumentError, match="atol: -1"):
        params.update_stats(w0, w1, atol=-1)


def test_update_stats_bf16_path_matches_float64():
    torch.manual_seed(2)
    w0 = (torch.randn(1000) * 0.02).to(torch.bfloat16)
    w1 = (w0.float() + torch.randn(1000) * 1e-4).to(torch.bfloat16)
    u = params.update_stats(w0, w1)
    d = w1.double() - w0.double()
    assert u["delta_fro"] == pytest.approx(d.norm().item(), rel=1e-12)
    assert u["unchanged_fraction"] == pytest.approx((d == 0).double().mean().item())


def _low_rank(m, n, r, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(200, 80), (80, 200), (150, 150)])
@pytest.mark.parametrize("method", ["auto", "gram", "svd"])
def test_singular_values_match_torch_svdvals(shape, method):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    values, used, _ = params.singular_values(w, method=method)
    ref = torch.linalg.svdvals(w.double())
    assert torch.allclose(values, ref, rtol=1e-9, atol=0)
    assert used == ("svd" if method == "svd" else "gram")


def test_spectral_stats_definitions_and_numpy_rank():
    w = torch.randn(256, 96, generator=torch.Generator().manual_seed(4), dtype=torch.float64) / 10
    s = params.spectral_stats(w)
    sv = torch.linalg.svdvals(w).numpy()
    lam = sv**2
    assert s["spectral_norm"] == pytest.approx(sv[0], rel=1e-10)
    assert s["frobenius_norm"] == pytest.approx(np.linalg.norm(w.numpy()), rel=1e-12)
    assert s["stable_rank"] == pytest.approx(lam.sum() / lam[0], rel=1e-10)
    p = sv / sv.sum()
    assert s["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert s["numerical_rank"] == np.linalg.matrix_rank(w.numpy())
    assert s["condition_number"] == pytest.approx(sv[0] / sv[-1], rel=1e-8)
    assert s["log_norm"] == pytest.approx(np.log10(lam.sum()), rel=1e-10)
    assert s["log_spectral_norm"] == pytest.approx(np.log10(lam[0]), rel=1e-10)
    assert s["status"] == "success"
    assert s["alpha_weighted"] == pytest.approx(s["alpha"] * np.log10(lam[0]), rel=1e-12)
    assert s["log_alpha_norm"] == pytest.approx(np.log10((lam ** s["alpha"]).sum()), rel=1e-10)
    pe = lam / lam.sum() + 1e-10
    assert s["entropy"] == pytest.approx(-(pe * np.log(pe)).sum() / np.log(s["numerical_rank"]), rel=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numerical_rank_of_low_rank_matches_numpy(dtype):
    w = _low_rank(120, 90, 7, 5).to(dtype)
    s = params.spectral_stats(w)
    assert s["numerical_rank"] == np.linalg.matrix_rank(w.numpy()) == 7
    assert s["svd_method"] == "svd"  # the Gram matrix cannot resolve the zero singular values


def test_constant_and_zero_matrices_get_rows_with_reasons():
    z = params.spectral_stats(torch.zeros(40, 30))
    assert z["status"] == "failed" and "eigenvalues above evals_thresh" in z["reason"]
    assert z["spectral_norm"] == 0 and math.isnan(z["stable_rank"])
    c = params.spectral_stats(torch.ones(40, 30))
    assert c["numerical_rank"] == 1 and c["stable_rank"] == pytest.approx(1.0)
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"w: shape \[5\] has 1 dims"):
        params.spectral_stats(torch.ones(5))
    w = torch.randn(10, 10)
    w[0, 0] = float("nan")
    with pytest.raises(metaprobe.InvalidArgumentError, match="w: contains NaN or Inf"):
        params.spectral_stats(w)
    with pytest.raises(metaprobe.InvalidArgumentError, match="method: 'qr'"):
        params.spectral_stats(torch.ones(4, 4), method="qr")


def test_randomized_top_k_matches_exact():
    g = torch.Generator().manual_seed(6)
    u, _ = torch.linalg.qr(torch.randn(500, 300, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    s = torch.exp(-0.1 * torch.arange(300, dtype=torch.float64))
    w = (u * s) @ v.T
    # tolerance 1e-6 (residual bound per value) puts the float64 values' error near 1e-12
    values, method, bound = params.singular_values(w, k=16, tolerance=1e-6)
    ref = torch.linalg.svdvals(w)[:16]
    assert method == "randomized"
    assert ((values - ref).abs() / ref).max().item() < 1e-8
    assert ((values - ref).abs() <= bound).all()
    st = params.spectral_stats(w, k=16)
    assert not st["complete"] and math.isnan(st["effective_rank"])
    assert st["spectral_norm"] == pytest.approx(ref[0].item(), rel=1e-10)
    # same seed, same answer; other seed, still within the bound
    assert torch.equal(params.singular_values(w, k=16, tolerance=1e-6)[0], values)
    other, _, _ = params.singular_values(w, k=16, seed=7)
    assert ((other - ref).abs() <= bound + 1e-12).all()
    # a float32 input is sketched in float32; still accurate far beyond bf16/f32 weight precision
    v32, _, b32 = params.singular_values(w.float(), k=16)
    ref32 = torch.linalg.svdvals(w.float().double())[:16]
    assert ((v32 - ref32).abs() / ref32).max().item() < 1e-5
    assert ((v32 - ref32).abs() <= b32 + 1e-6).all()


def _ww_fit_reference(evals: np.ndarray, thresh: float = 1e-5):
    """Independent numpy implementation of WeightWatcher's WWFit (continuous PL, Clauset xmin scan)."""
    x = np.sort(evals[evals > thresh])
    n = len(x)
    logx = np.log(x)
    alphas = np.full(n - 1, np.nan)
    ds = np.ones(n - 1)
    for i in range(n - 1):
        m = n - i
        alpha = 1 + m / (logx[i:].sum() - m * logx[i])
        alphas[i] = alpha
        if alpha > 1:
            theory = 1 - (x[i:] / x[i]) ** (1 - alpha)
            ds[i] = np.max(np.abs(theory - np.arange(m) / m))
    best = int(np.argmin(ds))
    return alphas[best], x[best], ds[best], (alphas[best] - 1) / np.sqrt(n - best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_law_fit_matches_numpy_reference(seed):
    w = torch.randn(300, 120, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = w @ torch.diag(torch.linspace(0.1, 3, 120, dtype=torch.float64) ** 2)
    lam = torch.linalg.svdvals(w).numpy() ** 2
    alpha, xmin, d, sigma = _ww_fit_reference(lam)
    s = params.spectral_stats(w)
    assert s["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert s["xmin"] == pytest.approx(xmin, rel=1e-9)
    assert s["D"] == pytest.approx(d, rel=1e-9)
    assert s["sigma"] == pytest.approx(sigma, rel=1e-9)
    assert s["num_pl_spikes"] == int((lam >= xmin).sum())
    f = params.fit_power_law(lam)
    assert f["alpha"] == pytest.approx(alpha, rel=1e-9)


def test_pareto_exponent_is_recovered():
    rng = np.random.default_rng(0)
    x = (1 - rng.random(5000)) ** (-1 / 1.5)  # alpha = 2.5
    f = params.fit_power_law(x)
    assert f["status"] == "success" and abs(f["alpha"] - 2.5) < 0.15
    few = params.fit_power_law([1.0, 2.0])
    assert few["status"] == "failed" and "need min_evals = 10" in few["reason"]


def test_update_spectral_stats_and_angles():
    g = torch.Generator().manual_seed(8)
    w0 = torch.randn(120, 80, generator=g, dtype=torch.float64)
    d = _low_rank(120, 80, 2, 9) * 1e-3
    u = params.update_spectral_stats(w0, w0 + d, k=2)
    assert u["update_rank"] == 2
    assert u["normalized_rank"] == pytest.approx(2 / 80)
    assert u["topk_energy_fraction"] == pytest.approx(1.0)
    same = params.update_spectral_stats(w0, w0, k=5)
    assert same["left_angle_max_deg"] == pytest.approx(0, abs=1e-4)
    # scipy's subspace_angles on the exact top-5 left singular vectors as the reference
    w1 = w0 + torch.randn(120, 80, generator=g, dtype=torch.float64) * 0.5
    ref = np.degrees(
        scipy.linalg.subspace_angles(
            torch.linalg.svd(w0)[0][:, :5].numpy(), torch.linalg.svd(w1)[0][:, :5].numpy()
        )
    )
    got = params.update_spectral_stats(w0, w1, k=5)
    assert got["left_angle_max_deg"] == pytest.approx(ref.max(), rel=1e-6)
    assert got["left_angle_mean_deg"] == pytest.approx(ref.mean(), rel=1e-6)


def test_parse_name():
    p = params.parse_name("model.layers.12.mlp.gate_proj.weight")
    assert (p["layer"], p["kind"], p["scheme"]) == (12, "mlp_gate", "llama")
    assert params.parse_name("transformer.h.3.attn.c_attn.bias")["kind"] == "attn_qkv"
    assert params.parse_name("gpt_neox.layers.1.attention.dense.weight")["kind"] == "attn_o"
    assert params.parse_name("weird.thing")["kind"] == "weird"


def _toy(seed: int, scale: float = 0.02) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {"model.embed_tokens.weight": torch.randn(50, 16, generator=g) * scale}
    for i in range(3):
        sd[f"model.layers.{i}.self_attn.q_proj.weight"] = torch.randn(16, 16, generator=g) * scale
        sd[f"model.layers.{i}.mlp.up_proj.weight"] = torch.randn(32, 16, generator=g) * scale
        sd[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(16)
    return sd


def test_compare_state_dicts_and_files(tmp_path):
    ref = _toy(0)
    tuned = {k: v.clone() for k, v in ref.items()}
    tuned["model.layers.1.self_attn.q_proj.weight"] += 1e-3
    del tuned["model.layers.2.input_layernorm.weight"]
    tuned["lm_head.weight"] = torch.zeros(50, 16)
    tuned["model.layers.0.mlp.up_proj.weight"] = torch.zeros(16, 32)
    calls = []
    c = params.compare_checkpoints(ref, tuned, progress=lambda *a: calls.append(a))
    assert len(c.tensors) == len(ref) - 2
    assert c.unmatched == {
        "only_in_reference": ["model.layers.2.input_layernorm.weight"],
        "only_in_tuned": ["lm_head.weight"],
    }
    assert list(c.shape_mismatches["name"]) == ["model.layers.0.mlp.up_proj.weight"]
    assert c.summary["shape_mismatches"] == 1 and c.summary["matched"] == len(ref) - 2
    row = c.tensors.loc["model.layers.1.self_attn.q_proj.weight"]
    assert row["layer"] == 1 and row["kind"] == "attn_q"
    assert row["max_abs_delta"] == pytest.approx(1e-3, rel=1e-3)
    assert c.layers.loc[0, "sparsity_abs"] == 1.0
    assert c.modules.loc["attn_q", "tensors"] == 3
    assert len(calls) == len(ref) and calls[-1][0] == calls[-1][1]
    # files (via the io writer) give the same rows as the state dicts; nn.Module is accepted too
    metaprobe.io.save(ref, tmp_path / "ref.safetensors")
    metaprobe.io.save(tuned, tmp_path / "tuned.safetensors")
    f = params.compare_checkpoints(tmp_path / "ref.safetensors", str(tmp_path / "tuned.safetensors"), progress=False)
    assert np.allclose(f.tensors.loc[c.tensors.index, "delta_fro"], c.tensors["delta_fro"], rtol=0, atol=0)
    m = torch.nn.Linear(16, 8)
    mc = params.compare_checkpoints(m, m, progress=False)
    assert (mc.tensors["unchanged_fraction"] == 1.0).all()
    out = tmp_path / "report.json"
    f.to_json(out)
    import json

    doc = json.loads(out.read_text())
    assert doc["summary"]["matched"] == len(f.tensors)
    # the file forms are written in C++ from the held result; without a path they are returned as text
    assert json.loads(f.to_json()) == doc
    csv = f.to_csv()
    assert csv.splitlines()[0].split(",")[:7] == ["name", "layer", "kind", "shape", "reference_dtype", "tuned_dtype",
                                                  "numel"]
    assert len(csv.splitlines()) == len(f.tensors) + 1
    f.to_csv(tmp_path / "stats.csv")
    assert (tmp_path / "stats.csv").read_text() == csv
    with pytest.raises(metaprobe.InvalidArgumentError, match=r"Comparison\.to_csv: this Comparison was not made by "
                                                             "compare_checkpoints"):
        params.Comparison(f.tensors, f.layers, f.modules, f.summary, f.unmatched, f.shape_mismatches).to_csv()


def test_compare_with_spectra_reports_skips():
    ref = _toy(1)
    tuned = {k: v + 1e-3 * torch.randn_like(v) for k, v in ref.items()}
    c = params.compare_checkpoints(ref, tuned, spectra=True, subspace_k=4, progress=False)
    q = c.tensors.loc["model.layers.0.self_attn.q_proj.weight"]
    assert q["spectral_status"] == "ok" and q["normalized_rank"] == 1.0
    assert q["ref_alpha"] == pytest.approx(params.spectral_stats(ref["model.layers.0.self_attn.q_proj.weight"])["alpha"])
    assert c.tensors.loc["model.layers.0.input_layernorm.weight", "spectral_status"].startswith("skipped: 1-D")


def test_compare_errors():
    with pytest.raises(TypeError, match="reference: expected a checkpoint path"):
        params.compare_checkpoints(42, {}, progress=False)
    with pytest.raises(metaprobe.InvalidArgumentError, match="atol: -1"):
        params.compare_checkpoints({"a": torch.ones(2)}, {"a": torch.ones(2)}, atol=-1, progress=False)
    with pytest.raises(metaprobe.InvalidArgumentError, match="spectral option 'bogus'"):
        params.compare_checkpoints({"a": torch.ones(2)}, {"a": torch.ones(2)}, bogus=1, progress=False)
    with pytest.raises(OSError):
        params.compare_checkpoints("/nonexistent/ckpt", {}, progress=False)


def test_describe(tmp_path):
    sd = _toy(2)
    sd["model.layers.0.self_attn.q_proj.weight"][0, 0] = float("nan")
    metaprobe.io.save(sd, tmp_path / "m.safetensors")
    df = params.describe(tmp_path / "m.safetensors", spectra=True, progress=False)
    assert list(df.index) == list(metaprobe.io.open_checkpoint(tmp_path / "m.safetensors").keys())
    assert df.loc["model.layers.0.self_attn.q_proj.weight", "nan_count"] == 1
    assert df.loc["model.layers.0.self_attn.q_proj.weight", "spectral_status"] == "skipped: contains NaN or Inf"
    assert df.loc["model.layers.1.self_attn.q_proj.weight", "spectral_status"] == "ok"
    x = sd["model.embed_tokens.weight"].double().numpy().ravel()
    assert df.loc["model.embed_tokens.weight", "excess_kurtosis"] == pytest.approx(scipy.stats.kurtosis(x), rel=1e-8)


def test_import_is_lazy():
    import subprocess
    import sys

    # torch itself may import tqdm; what matters is what metaprobe adds on top of torch.
    code = (
        "import sys, torch; heavy = ('pandas', 'tqdm', 'scipy', 'matplotlib');"
        "before = {m for m in heavy if m in sys.modules}; import metaprobe.params;"
        "print(sorted({m for m in heavy if m in sys.modules} - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("spectrum", ["decaying", "flat", "clustered", "rank_deficient", "gaussian"])
def test_top_k_singular_values_bounds_against_float64(spectrum):
    # The randomized values meet tolerance against float64 svdvals, and each lies within its residual bound
    # of the exact one; a spectrum the bound cannot certify (Gaussian) is computed exactly instead.
    n, k, tol = 400, 12, 1e-3
    g = torch.Generator().manual_seed(11)
    idx = torch.arange(n, dtype=torch.float64)
    s = {"decaying": 0.5 ** (idx / 8), "flat": torch.ones(n, dtype=torch.float64),
         "clustered": torch.cat([1 + 1e-7 * torch.arange(20, dtype=torch.float64), 0.3 * 0.5 ** (idx[20:] / 6)]),
         "rank_deficient": torch.cat([0.8 ** idx[:8], torch.zeros(n - 8, dtype=torch.float64)])}.get(spectrum)
    if s is None:
        w = torch.randn(n, n, generator=g, dtype=torch.float64) / n**0.5
    else:
        u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        w = (u * s.sort(descending=True).values) @ v.T
    w32 = w.float()
    exact = torch.linalg.svdvals(w32.double())[:k]
    r = params.top_k_singular_values(w32, k, tolerance=tol)
    floor = 10 * n**0.5 * 1.1920929e-07 * exact[0].item()
    err = (r["values"] - exact).abs()
    assert (err <= torch.clamp(tol * exact, min=floor)).all(), (err / exact).max()
    assert (err <= r["value_bounds"] + 1e-6 * exact[0]).all()
    assert r["method"] == ("svd" if spectrum == "gaussian" else "randomized")
    assert r["converged"] == (spectrum != "gaussian")
    if spectrum == "gaussian":
        kept = params.top_k_singular_values(w32, k, tolerance=tol, exact_fallback=False)
        assert kept["method"] == "randomized" and not kept["converged"] and kept["iterations"] == 6
