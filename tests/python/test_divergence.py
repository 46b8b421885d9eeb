"""metaprobe.divergence against float64 torch and scipy references, adversarial inputs, errors, and the
hypothesis properties of docs/divergence.md."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

import metaprobe
from metaprobe import InvalidArgumentError, divergence

ALL = ["kl_pq", "kl_qp", "js", "entropy_p", "entropy_q", "cross_entropy_pq", "top1_agree", "rank_shift",
       "logp_target", "logq_target", "target_rank_p", "target_rank_q"]
LN2 = math.log(2.0)


def reference(p, q, targets=None, temperature=1.0, beta=0.5):
    """Float64 torch composite of every metric, per position."""
    p64 = p.double() / temperature
    q64 = q.double() / temperature
    lp, lq = torch.log_softmax(p64, -1), torch.log_softmax(q64, -1)
    P, Q = lp.exp(), lq.exp()

    def xlogy_diff(w, a, b):  # Σ w (a − b) with 0·anything = 0
        return torch.where(w > 0, w * (a - b), torch.zeros_like(w)).sum(-1)

    out = {
        "kl_pq": xlogy_diff(P, lp, lq),
        "kl_qp": xlogy_diff(Q, lq, lp),
        "entropy_p": -torch.where(P > 0, P * lp, torch.zeros_like(P)).sum(-1),
        "entropy_q": -torch.where(Q > 0, Q * lq, torch.zeros_like(Q)).sum(-1),
        "cross_entropy_pq": -torch.where(P > 0, P * lq, torch.zeros_like(P)).sum(-1),
    }
    if beta == 0:
        out["js"] = out["kl_pq"]
    elif beta == 1:
        out["js"] = out["kl_qp"]
    else:
        M = beta * P + (1 - beta) * Q
        lm = M.log()
        out["js"] = beta * xlogy_diff(P, lp, lm) + (1 - beta) * xlogy_diff(Q, lq, lm)
    ap = p.double().argmax(-1, keepdim=True)
    out["top1_agree"] = (ap == q.double().argmax(-1, keepdim=True)).double().squeeze(-1)
    out["rank_shift"] = 1.0 + (q.double() > q.double().gather(-1, ap)).sum(-1).double()
    if targets is not None:
        t = targets.long().unsqueeze(-1)
        out["logp_target"] = lp.gather(-1, t).squeeze(-1)
        out["logq_target"] = lq.gather(-1, t).squeeze(-1)
        out["target_rank_p"] = 1.0 + (p.double() > p.double().gather(-1, t)).sum(-1).double()
        out["target_rank_q"] = 1.0 + (q.double() > q.double().gather(-1, t)).sum(-1).double()
    return out


def assert_close(res, ref, rtol=1e-5, atol=1e-5):
    for k, v in ref.items():
        got = res[k]
        assert got.dtype == torch.float64, k
        torch.testing.assert_close(got, v.to(torch.float64), rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def pair(shape, scale=3.0, noise=1.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    q = p + torch.randn(*shape, generator=g, dtype=torch.float64) * noise
    return p.to(dtype), q.to(dtype)


@pytest.mark.parametrize("backend", ["fused", "composite"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_float64_reference(backend, dtype):
    p, q = pair((3, 7, 1000), dtype=dtype)
    t = torch.randint(0, 1000, (3, 7), generator=torch.Generator().manual_seed(1))
    res = divergence(p, q, targets=t, backend=backend)
    assert set(res.metrics) == set(ALL)
    assert res.count == 21
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert_close(res, reference(p, q, t), rtol=tol, atol=tol)


@pytest.mark.parametrize("temperature,beta", [(0.7, 0.5), (2.0, 0.3), (1.0, 0.0), (1.0, 1.0), (1.0, 0.9)])
def test_temperature_and_beta(temperature, beta):
    p, q = pair((40, 3001), seed=3)
    ref = reference(p, q, temperature=temperature, beta=beta)
    for backend in ("fused", "composite"):
        res = divergence(p, q, temperature=temperature, beta=beta, backend=backend)
        assert_close(res, ref)


def test_scipy_rel_entr_and_jensenshannon():
    p, q = pair((6, 257), dtype=torch.float64, seed=5)
    P = torch.softmax(p, -1).numpy()
    Q = torch.softmax(q, -1).numpy()
    res = divergence(p, q, metrics=["kl_pq", "kl_qp", "js"])
    bits = divergence(p, q, metrics=["kl_pq", "js"], base=2)
    for i in range(6):
        assert res.kl_pq[i].item() == pytest.approx(rel_entr(P[i], Q[i]).sum(), rel=1e-9)
        assert res.kl_qp[i].item() == pytest.approx(rel_entr(Q[i], P[i]).sum(), rel=1e-9)
        # scipy returns the JS *distance*; its square is the divergence.
        assert res.js[i].item() == pytest.approx(jensenshannon(P[i], Q[i]) ** 2, rel=1e-8)
        assert bits.js[i].item() == pytest.approx(jensenshannon(P[i], Q[i], base=2) ** 2, rel=1e-8)
        assert bits.kl_pq[i].item() == pytest.approx(rel_entr(P[i], Q[i]).sum() / LN2, rel=1e-9)


@pytest.mark.parametrize("backend", ["fused", "composite"])
class TestAdversarial:
    def test_huge_logits(self, backend):
        p, q = pair((5, 2000), scale=1e4, noise=1e3, seed=7)
        assert_close(divergence(p, q, backend=backend), reference(p, q), rtol=1e-5, atol=1e-4)

    def test_rows_with_minus_inf(self, backend):
        p, q = pair((8, 513), seed=8)
        p[0, :100] = -math.inf
        q[1, 200:] = -math.inf
        p[2, 5] = -math.inf
        q[2, 5] = -math.inf
        res = divergence(p, q, backend=backend)
        ref = reference(p, q)
        assert res.kl_pq[1].item() == math.inf  # p > 0 where q = 0
        assert res.cross_entropy_pq[1].item() == math.inf
        assert math.isfinite(res.kl_qp[1].item())
        assert res.kl_qp[0].item() == math.inf
        assert_close(res, ref)

    def test_identical_rows_are_zero(self, backend):
        p, _ = pair((6, 32000), seed=9)
        res = divergence(p, p.clone(), backend=backend)
        for k in ("kl_pq", "kl_qp", "js"):
            assert res[k].abs().max().item() <= 1e-6, k
        assert torch.equal(res.top1_agree, torch.ones(6, dtype=torch.float64))
        assert torch.equal(res.rank_shift, torch.ones(6, dtype=torch.float64))
        torch.testing.assert_close(res.entropy_p, res.cross_entropy_pq)

    def test_disjoint_supports(self, backend):
        V = 100
        p = torch.full((3, V), -math.inf)
        q = torch.full((3, V), -math.inf)
        p[:, :50] = torch.randn(3, 50)
        q[:, 50:] = torch.randn(3, 50)
        res = divergence(p, q, backend=backend)
        assert torch.isinf(res.kl_pq).all() and torch.isinf(res.kl_qp).all()
        torch.testing.assert_close(res.js, torch.full((3,), LN2, dtype=torch.float64), rtol=1e-6, atol=1e-6)
        bits = divergence(p, q, metrics=["js"], base="2", backend=backend)
        torch.testing.assert_close(bits.js, torch.ones(3, dtype=torch.float64), rtol=1e-6, atol=1e-6)

    def test_one_hot_rows(self, backend):
        V = 64
        p = torch.full((4, V), -math.inf)
        p[torch.arange(4), torch.tensor([0, 5, 63, 7])] = 0.0
        q = torch.randn(4, V)
        res = divergence(p, q, backend=backend)
        assert torch.equal(res.entropy_p, torch.zeros(4, dtype=torch.float64))
        assert_close(res, reference(p, q))
        same = divergence(p, p.clone(), backend=backend)
        assert torch.equal(same.kl_pq, torch.zeros(4, dtype=torch.float64))
        assert torch.equal(same.js, torch.zeros(4, dtype=torch.float64))

    def test_vocab_of_one(self, backend):
        p = torch.randn(5, 1)
        q = torch.randn(5, 1)
        res = divergence(p, q, targets=torch.zeros(5, dtype=torch.long), backend=backend)
        for k in ("kl_pq", "kl_qp", "js", "entropy_p", "entropy_q", "cross_entropy_pq", "logp_target"):
            assert torch.equal(res[k], torch.zeros(5, dtype=torch.float64)), k
        assert torch.equal(res.rank_shift, torch.ones(5, dtype=torch.float64))

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
    def test_half_precision_inputs(self, backend, dtype):
        p, q = pair((4, 9, 1531), seed=10, dtype=dtype)
        t = torch.randint(0, 1531, (4, 9))
        assert_close(divergence(p, q, targets=t, backend=backend), reference(p.float(), q.float(), t))

    def test_non_contiguous_inputs(self, backend):
        p, q = pair((6, 5, 700), seed=11)
        pt, qt = p.transpose(0, 1), q.transpose(0, 1)  # strided leading dims
        assert not pt.is_contiguous()
        assert_close(divergence(pt, qt, backend=backend), reference(pt, qt))
        ps, qs = p[..., ::2], q[..., ::2]  # strided vocabulary
        assert_close(divergence(ps, qs, backend=backend), reference(ps, qs))

    def test_empty_leading_dims(self, backend):
        p = torch.randn(0, 50)
        res = divergence(p, p, backend=backend)
        assert res.count == 0 and res.kl_pq.shape == (0,)
        res = divergence(torch.randn(2, 0, 50), torch.randn(2, 0, 50), reduction="row", backend=backend)
        assert res.js.shape == (2,) and torch.isnan(res.js).all()
        assert math.isnan(divergence(p, p, reduction="mean", backend=backend).kl_pq.item())


def test_mask_targets_ignore_index_and_reductions():
    p, q = pair((3, 5, 300), seed=12)
    t = torch.randint(0, 300, (3, 5))
    t[0, 1] = -100
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2:] = False
    mask[2] = False
    res = divergence(p, q, mask=mask, targets=t)
    keep = mask & (t != -100)
    assert res.count == int(keep.sum())
    ref = reference(p, q, t.clamp_min(0))
    for k in ALL:
        assert torch.isnan(res[k][~keep]).all(), k
        torch.testing.assert_close(res[k][keep], ref[k][keep], rtol=1e-5, atol=1e-5)
    row = divergence(p, q, mask=mask.to(torch.uint8), targets=t, reduction="row")
    for b in range(2):
        torch.testing.assert_close(row.kl_pq[b], ref["kl_pq"][b][keep[b]].mean(), rtol=1e-5, atol=1e-6)
    assert math.isnan(row.kl_pq[2].item())
    mean = divergence(p, q, mask=mask, targets=t, reduction="mean")
    torch.testing.assert_close(mean.js, ref["js"][keep].mean(), rtol=1e-5, atol=1e-6)
    df = mean.to_pandas()
    assert list(df.columns) == ALL and len(df) == 1
    assert len(row.to_pandas()) == 3
    d = mean.to_dict()
    assert d["count"] == res.count and set(d) == set(ALL) | {"count"}
    with pytest.raises(ValueError, match="reduction 'none'"):
        res.to_pandas()
    # Custom ignore_index: only the matching target is dropped.
    t2 = t.clone()
    t2[0, 1] = 7
    assert divergence(p, q, targets=t2, ignore_index=7).count == 15 - int((t2 == 7).sum())


def test_numpy_inputs_and_selected_metrics():
    p, q = pair((4, 100), seed=13)
    res = divergence(p.numpy(), q.numpy(), metrics=["js", "rank_shift"])
    assert res.metrics == ("js", "rank_shift")
    with pytest.raises(AttributeError, match="not computed"):
        res.kl_pq
    assert_close(res, {k: v for k, v in reference(p, q).items() if k in ("js", "rank_shift")})
    assert "DivergenceResult(count=4" in repr(res)


def test_fused_and_composite_agree_on_random_batches():
    p, q = pair((2, 33, 4099), seed=14)
    t = torch.randint(0, 4099, (2, 33))
    a = divergence(p, q, targets=t, backend="fused")
    b = divergence(p, q, targets=t, backend="composite")
    for k in ALL:
        torch.testing.assert_close(a[k], b[k], rtol=2e-6, atol=2e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA path is compared on a GPU machine")
def test_cuda_matches_cpu():
    p, q = pair((4, 16, 32000), seed=15)
    t = torch.randint(0, 32000, (4, 16))
    cpu = divergence(p, q, targets=t)
    gpu = divergence(p.cuda(), q.cuda(), targets=t.cuda())
    for k in ALL:
        assert gpu[k].device.type == "cuda"
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=2e-6, atol=2e-6)


class TestErrors:
    def test_shape_mismatch(self):
        with pytest.raises(InvalidArgumentError, match=r"p_logits shape \[2, 5\] and q_logits shape \[2, 6\] differ"):
            divergence(torch.randn(2, 5), torch.randn(2, 6))

    def test_empty_vocabulary(self):
        with pytest.raises(InvalidArgumentError, match=r"vocabulary size V = 0 \(shape \[3, 0\]\)"):
            divergence(torch.randn(3, 0), torch.randn(3, 0))

    @pytest.mark.parametrize("backend", ["fused", "composite"])
    def test_nan_names_first_bad_row(self, backend):
        p, q = torch.randn(4, 3, 10), torch.randn(4, 3, 10)
        p[2, 1, 4] = math.nan
        p[3, 0, 0] = math.nan
        with pytest.raises(InvalidArgumentError, match=r"p_logits: row 7 \(position \[2, 1\]\) holds a NaN logit"):
            divergence(p, q, backend=backend)
        q[0, 2, 9] = math.nan
        with pytest.raises(InvalidArgumentError, match=r"q_logits: row 2 \(position \[0, 2\]\) holds a NaN logit"):
            divergence(p, q, backend=backend)
        mask = torch.zeros(4, 3, dtype=torch.bool)
        mask[1] = True  # NaN rows masked out are not inspected
        assert divergence(p, q, mask=mask, backend=backend).count == 3

    def test_nan_row_is_deterministic_across_threads(self):
        p, q = torch.randn(64, 100), torch.randn(64, 100)
        p[40, 3] = math.nan
        p[9, 3] = math.nan
        old = torch.get_num_threads()
        try:
            for n in (1, 2):
                torch.set_num_threads(n)
                with pytest.raises(InvalidArgumentError, match=r"row 9 "):
                    divergence(p, q)
        finally:
            torch.set_num_threads(old)

    def test_plus_inf_and_all_minus_inf(self):
        p, q = torch.randn(2, 10), torch.randn(2, 10)
        p[1, 1] = math.inf
        with pytest.raises(InvalidArgumentError, match=r"row 1 .* holds a \+inf logit"):
            divergence(p, q)
        p[1, 1] = 0
        q[0] = -math.inf
        with pytest.raises(InvalidArgumentError, match=r"q_logits: row 0 .* no finite logit"):
            divergence(p, q)

    def test_mask_and_targets_shape_and_dtype(self):
        p = torch.randn(2, 3, 10)
        with pytest.raises(InvalidArgumentError, match=r"mask: shape \[2\], expected the leading dims \[2, 3\]"):
            divergence(p, p, mask=torch.ones(2, dtype=torch.bool))
        with pytest.raises(InvalidArgumentError, match=r"mask: dtype Float, expected bool"):
            divergence(p, p, mask=torch.ones(2, 3))
        with pytest.raises(InvalidArgumentError, match=r"mask: value 2 at row 4 \(position \[1, 1\]\), expected 0 or 1"):
            m = torch.ones(2, 3, dtype=torch.long)
            m[1, 1] = 2
            divergence(p, p, mask=m)
        with pytest.raises(InvalidArgumentError, match=r"targets: shape \[3, 2\], expected the leading dims \[2, 3\]"):
            divergence(p, p, targets=torch.zeros(3, 2, dtype=torch.long))
        with pytest.raises(InvalidArgumentError, match=r"targets: dtype Float, expected an integer dtype"):
            divergence(p, p, targets=torch.zeros(2, 3))

    def test_target_out_of_range(self):
        p = torch.randn(2, 3, 10)
        t = torch.zeros(2, 3, dtype=torch.long)
        t[1, 0] = 10
        with pytest.raises(InvalidArgumentError,
                           match=r"targets: value 10 at row 3 \(position \[1, 0\]\) is out of range, expected 0 <= target < V = 10"):
            divergence(p, p, targets=t)
        t[1, 0] = -5
        with pytest.raises(InvalidArgumentError, match=r"targets: value -5 "):
            divergence(p, p, targets=t)

    def test_options(self):
        p = torch.randn(2, 10)
        with pytest.raises(InvalidArgumentError, match=r"temperature: 0\.000000, expected a finite value > 0"):
            divergence(p, p, temperature=0.0)
        with pytest.raises(InvalidArgumentError, match=r"temperature: -1\.0"):
            divergence(p, p, temperature=-1.0)
        with pytest.raises(InvalidArgumentError, match=r"unknown metric name 'kl', expected one of kl_pq"):
            divergence(p, p, metrics=["kl"])
        with pytest.raises(InvalidArgumentError, match=r"beta: 1\.500000, expected a value in \[0, 1\]"):
            divergence(p, p, beta=1.5)
        with pytest.raises(InvalidArgumentError, match=r"reduction: unknown value 'sum'"):
            divergence(p, p, reduction="sum")
        with pytest.raises(InvalidArgumentError, match=r"base: unknown value '10'"):
            divergence(p, p, base=10)
        with pytest.raises(InvalidArgumentError, match=r"'logp_target' needs targets"):
            divergence(p, p, metrics=["logp_target"])
        with pytest.raises(InvalidArgumentError, match=r"metrics: empty set"):
            divergence(p, p, metrics=[])

    def test_dtypes_and_devices(self):
        with pytest.raises(InvalidArgumentError, match=r"p_logits: dtype Long, expected a floating dtype"):
            divergence(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
        with pytest.raises(InvalidArgumentError, match=r"dtype Float and q_logits dtype Double differ"):
            divergence(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64))
        with pytest.raises(TypeError, match="expected a torch.Tensor or numpy.ndarray"):
            divergence([1.0, 2.0], [1.0, 2.0])


# ---------------------------------------------------------------------------------------------- properties
logit_rows = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.integers(min_value=1, max_value=300).flatmap(
        lambda v: st.tuples(st.just(n), st.just(v), st.integers(0, 2**31 - 1), st.sampled_from([0.1, 1.0, 10.0, 100.0]))))


def _rows(spec, dtype=torch.float32):
    n, v, seed, scale = spec
    return pair((n, v), scale=scale, noise=scale, seed=seed, dtype=dtype)


@settings(max_examples=60, deadline=None)
@given(logit_rows)
def test_property_bounds_and_symmetry(spec):
    p, q = _rows(spec)
    res = divergence(p, q, metrics=["kl_pq", "kl_qp", "js"])
    assert (res.kl_pq >= 0).all() and (res.kl_qp >= 0).all()
    assert (res.js >= 0).all() and (res.js <= LN2 + 1e-12).all()
    swapped = divergence(q, p, metrics=["kl_pq", "js"])
    torch.testing.assert_close(swapped.js, res.js, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(swapped.kl_pq, res.kl_qp, rtol=1e-6, atol=1e-7)
    same = divergence(p, p, metrics=["kl_pq", "js"])
    assert same.kl_pq.abs().max() <= 1e-6 and same.js.abs().max() <= 1e-6


@settings(max_examples=40, deadline=None)
@given(logit_rows)
def test_property_bits_are_nats_over_ln2(spec):
    p, q = _rows(spec)
    nats = divergence(p, q)
    bits = divergence(p, q, base=2)
    for k in ("kl_pq", "kl_qp", "js", "entropy_p", "entropy_q", "cross_entropy_pq"):
        torch.testing.assert_close(bits[k], nats[k] / LN2, rtol=1e-14, atol=0)
    assert torch.equal(bits.rank_shift, nats.rank_shift)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.integers(0, 2**31 - 1))
def test_property_masked_positions_do_not_change_others(spec, seed):
    p, q = _rows(spec)
    mask = torch.rand(p.shape[0], generator=torch.Generator().manual_seed(seed)) < 0.5
    full = divergence(p, q)
    masked = divergence(p, q, mask=mask)
    for k in full.metrics:
        assert torch.equal(masked[k][mask], full[k][mask])
        assert torch.isnan(masked[k][~mask]).all()


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.integers(1, 5))
def test_property_batch_invariance_bitwise(spec, extra):
    p, q = _rows(spec)
    n, v = p.shape
    more_p, more_q = pair((extra, v), seed=spec[2] + 1)
    alone = divergence(p, q)
    batched = divergence(torch.cat([more_p, p, more_p]), torch.cat([more_q, q, more_q]))
    for k in alone.metrics:
        assert torch.equal(batched[k][extra:extra + n], alone[k]), k


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([torch.float32, torch.bfloat16, torch.float16, torch.float64]),
       st.sampled_from([2049, 2048]))
def test_property_thread_count_invariance_bitwise(seed, dtype, vocab):
    # Rows are claimed dynamically by 1, 2 or 3 of torch's workers; every split must give the same bits.
    p, q = pair((67, vocab), seed=seed, dtype=dtype)
    t = torch.randint(0, vocab, (67,), generator=torch.Generator().manual_seed(seed))
    old = torch.get_num_threads()
    runs = {}
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            runs[n] = (divergence(p, q, targets=t, reduction="none"), divergence(p, q, targets=t, reduction="mean"))
    finally:
        torch.set_num_threads(old)
    one, one_mean = runs[1]
    for n in (2, 3):
        many, many_mean = runs[n]
        for k in one.metrics:
            assert torch.equal(one[k], many[k]), (n, k)
            assert torch.equal(one_mean[k], many_mean[k]), (n, k)


def test_package_exports():
    assert metaprobe.divergence is divergence
    assert metaprobe.DivergenceResult.__name__ == "DivergenceResult"
    from metaprobe.divergence import METRICS  # the submodule stays importable

    assert list(METRICS) == ALL


@pytest.mark.parametrize("metrics,beta", [(["kl_pq", "js", "top1_agree"], 0.5), (["kl_pq"], 0.5), (["js"], 0.0),
                                           (["kl_pq", "js"], 0.3), (["entropy_p", "js"], 1.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_metric_subsets_match_reference_and_full_run(metrics, beta, dtype):
    # The fused kernel sums only what the requested metrics need (forward KL alone for KL(p‖q) / JS at β = 0);
    # the values must equal the all-metrics run bit for bit and the float64 reference, +inf rows included.
    p, q = pair((9, 1001), dtype=dtype)
    q[3, 7] = -math.inf  # KL(p‖q) = +inf on row 3
    full = divergence(p, q, beta=beta)
    sub = divergence(p, q, metrics=metrics, beta=beta)
    ref = reference(p, q, beta=beta)
    for k in metrics:
        assert torch.equal(sub[k], full[k]), k
        torch.testing.assert_close(sub[k], ref[k].double(), rtol=1e-5, atol=1e-5, msg=lambda m: f"{k}: {m}")
    if "kl_pq" in metrics:
        assert math.isinf(sub["kl_pq"][3].item())
