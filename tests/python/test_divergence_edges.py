"""Inputs at the edge of the floating range: a max(logit)/temperature that overflows, a row that is all
"-inf" by the floor rule, a temperature whose reciprocal overflows the compute precision, and the argument
checks of the Python front end. Each is an error that names the argument, the bad value and what was
expected; the valid neighbours of each case still give the float64 answer."""
import math

import numpy as np
import pytest
import torch

import metaprobe
from metaprobe import InvalidArgumentError, divergence, params

BACKENDS = ["fused", "composite"]
LN2 = math.log(2.0)


@pytest.mark.parametrize("backend", BACKENDS)
class TestOverflowRaises:
    def test_max_over_temperature_overflows_float32(self, backend):
        # z = 1e37 at T = 0.01: z/T = 1e39 is not a float; the true KL of one-hot vs uniform is ln 64.
        p = torch.zeros(2, 64)
        p[1, 3] = 1e37
        q = torch.zeros(2, 64)
        with pytest.raises(InvalidArgumentError, match=r"p_logits: row 1 \(position \[1\]\) has max\(logit\) / "
                                                       r"temperature that is not finite"):
            divergence(p, q, temperature=0.01, backend=backend)
        # At T = 1 the same row is fine and exact: p is one-hot, q uniform.
        res = divergence(p, q, backend=backend)
        assert res.kl_pq[1].item() == pytest.approx(math.log(64), rel=1e-6)
        assert res.kl_pq[0].item() == 0.0

    def test_huge_logit_over_small_temperature(self, backend):
        # [[3e38, 0]] vs [[0, 0]] at T = 0.1 gave kl_pq = 0 (true ln 2).
        p = torch.tensor([[3e38, 0.0]])
        q = torch.zeros(1, 2)
        with pytest.raises(InvalidArgumentError, match=r"p_logits: row 0 .* not finite in the compute precision"):
            divergence(p, q, temperature=0.1, backend=backend)
        with pytest.raises(InvalidArgumentError, match=r"q_logits: row 0 .* not finite in the compute precision"):
            divergence(q, p, temperature=0.1, backend=backend)
        assert divergence(p, q, backend=backend).kl_pq.item() == pytest.approx(LN2, rel=1e-6)

    def test_float64_overflow(self, backend):
        p = torch.tensor([[1e300, 0.0]], dtype=torch.float64)
        q = torch.zeros(1, 2, dtype=torch.float64)
        with pytest.raises(InvalidArgumentError, match=r"p_logits: row 0 .* not finite in the compute precision"):
            divergence(p, q, temperature=1e-10, backend=backend)
        res = divergence(p, q, backend=backend)  # p one-hot, q uniform over 2
        assert res.kl_pq.item() == pytest.approx(LN2, rel=1e-12)
        assert res.entropy_p.item() == 0.0
        # M = (3/4, 1/4): JS = ½ KL(P‖M) + ½ KL(Q‖M) = ½ ln(4/3) + ½ (½ ln(2/3) + ½ ln 2).
        js = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
        assert res.js.item() == pytest.approx(js, rel=1e-12)

    def test_rows_at_or_below_the_floor_are_no_finite_logit(self, backend):
        # Finite logits that are all <= -1e30 count as -inf: the row has no probability mass.
        p = torch.randn(3, 10)
        p[2] = torch.linspace(-5e30, -1e30, 10)
        with pytest.raises(InvalidArgumentError, match=r"p_logits: row 2 \(position \[2\]\) holds no finite logit"):
            divergence(p, torch.randn(3, 10), backend=backend)
        # The same through the temperature: -2e28 / 0.01 = -2e30.
        q = torch.randn(2, 10)
        q[0] = -2e28
        with pytest.raises(InvalidArgumentError, match=r"q_logits: row 0 \(position \[0\]\) holds no finite logit"):
            divergence(torch.randn(2, 10), q, temperature=0.01, backend=backend)
        d = torch.full((1, 4), -2e300, dtype=torch.float64)
        with pytest.raises(InvalidArgumentError, match="holds no finite logit"):
            divergence(d, torch.zeros(1, 4, dtype=torch.float64), backend=backend)

    def test_a_row_with_one_entry_above_the_floor_is_one_hot(self, backend):
        p = torch.tensor([[-3e31, 0.0, -1e31]])  # one live entry; the others are <= -1e30 after the shift
        q = torch.zeros(1, 3)
        res = divergence(p, q, backend=backend)
        assert res.entropy_p.item() == 0.0
        assert res.kl_pq.item() == pytest.approx(math.log(3), rel=1e-6)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
    def test_temperature_whose_reciprocal_overflows_float32(self, backend, dtype):
        # temperature = 1e-39 on [[2, 1, 0]] vs [[0, 1, 2]] gave KL = JS = 0 while top1_agree said they differ.
        p = torch.tensor([[2.0, 1.0, 0.0]], dtype=dtype)
        q = torch.tensor([[0.0, 1.0, 2.0]], dtype=dtype)
        with pytest.raises(InvalidArgumentError, match=r"temperature: 1e-39, 1/temperature is inf in float32 \(the "
                                                       r"compute precision of .* logits\), expected 2\.94e-39 <= "
                                                       r"temperature <= 8\.51e\+37"):
            divergence(p, q, temperature=1e-39, backend=backend)
        with pytest.raises(InvalidArgumentError, match=r"1/temperature is subnormal or 0 in float32"):
            divergence(p, q, temperature=1e39, backend=backend)
        # float64 logits take the same temperature: a sharp argmax, KL(p‖q) = (2 - 0)/T in the limit.
        res = divergence(p.double(), q.double(), temperature=1e-39, metrics=["js", "top1_agree"], backend=backend)
        assert res.js.item() == pytest.approx(LN2, rel=1e-12)
        assert res.top1_agree.item() == 0.0

    def test_small_but_valid_temperature_keeps_the_argmax_limit(self, backend):
        p = torch.tensor([[2.0, 1.0, 0.0]])
        q = torch.tensor([[0.0, 1.0, 2.0]])
        res = divergence(p, q, temperature=1e-30, metrics=["js", "top1_agree"], backend=backend)
        assert res.js.item() == pytest.approx(LN2, rel=1e-6)  # disjoint one-hot distributions


def test_sharded_shards_below_the_floor_and_overflow():
    """The shard API: a shard whose logits are all <= the floor contributes nothing; an overflowing shard is
    flagged on that shard (the combine raises on every rank)."""
    from metaprobe import _core

    V = 8
    p = torch.randn(2, V)
    q = torch.randn(2, V)
    p[0, :4] = -2e30  # shard 0 of row 0 is "all -inf" for p; shard 1 is not
    ref = divergence(p, q)
    lo_p, hi_p = p[:, :4], p[:, 4:]
    lo_q, hi_q = q[:, :4], q[:, 4:]
    opts = _core.DivergenceOptions()
    l0 = _core.shard_local_maxima(lo_p, lo_q, 0, opts)
    l1 = _core.shard_local_maxima(hi_p, hi_q, 4, opts)
    assert l0.max[0, 0].item() == -math.inf and l0.bad.abs().sum().item() == 0
    gmax = torch.maximum(l0.max, l1.max)
    g0, c0 = _core.shard_rescale(l0, gmax)
    g1, c1 = _core.shard_rescale(l1, gmax)
    gsum, cand = g0 + g1, torch.minimum(c0, c1)
    idx = _core.shard_value_indices(cand, opts, 2)
    vals = _core.shard_local_values(lo_p, lo_q, 0, idx) + _core.shard_local_values(hi_p, hi_q, 4, idx)
    globals_ = _core.ShardGlobals(max=gmax, sumexp=gsum, argmax=cand, values=vals, bad=torch.maximum(l0.bad, l1.bad))
    parts = (_core.shard_local_partials(lo_p, lo_q, 0, globals_, opts) +
             _core.shard_local_partials(hi_p, hi_q, 4, globals_, opts))
    out = _core.shard_combine(globals_, parts, [2], V, opts)
    for k in ("kl_pq", "kl_qp", "js", "entropy_p"):
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-6)
    big = hi_p.clone()
    big[1, 0] = 1e37
    bad = _core.shard_local_maxima(big, hi_q, 4, _core.DivergenceOptions(temperature=0.01)).bad
    assert bad[1, 0].item() == 4.0 and bad[0, 0].item() == 0.0
    with pytest.raises(InvalidArgumentError, match="1/temperature is inf in float32"):
        _core.shard_local_maxima(hi_p, hi_q, 4, _core.DivergenceOptions(temperature=1e-39))


def test_shard_records_are_typed():
    """The shard statistics cross as bound records with one property per field, like the options."""
    from metaprobe import _core

    local = _core.shard_local_maxima(torch.zeros(3, 4), torch.zeros(3, 4), 0, _core.DivergenceOptions())
    assert isinstance(local, _core.ShardMaxima)
    assert sorted(local.to_dict()) == ["argmax", "bad", "max", "sumexp"]
    assert local.max.shape == (3, 2) and local.argmax.dtype == torch.int64
    with pytest.raises(TypeError, match="ShardGlobals: unknown field 'maxima'"):
        _core.ShardGlobals(maxima=local.max)
    with pytest.raises(InvalidArgumentError, match="values: got a list, expected a torch.Tensor or None"):
        _core.ShardGlobals(values=[1.0])


class TestPythonArguments:
    def test_ignore_index_outside_int64(self):
        p = torch.randn(2, 5)
        with pytest.raises(InvalidArgumentError, match=r"ignore_index: got 1180591620717411303424, expected an integer "
                                                       r"token id in -2\*\*63\.\.2\*\*63-1"):
            divergence(p, p, targets=torch.zeros(2, dtype=torch.long), ignore_index=2**70)
        with pytest.raises(InvalidArgumentError, match=r"ignore_index: got 1\.5 \(float\), expected an integer token id"):
            divergence(p, p, ignore_index=1.5)
        assert divergence(p, p, targets=torch.zeros(2, dtype=torch.long), ignore_index=np.int64(0)).count == 0

    def test_a_single_metric_name_is_one_metric(self):
        p, q = torch.randn(3, 7), torch.randn(3, 7)
        one = divergence(p, q, metrics="js")
        assert one.metrics == ("js",)
        torch.testing.assert_close(one.js, divergence(p, q, metrics=["js"]).js, rtol=0, atol=0)
        with pytest.raises(InvalidArgumentError, match="unknown metric name 'jsd'"):
            divergence(p, q, metrics="jsd")

    def test_tensor_stats_of_a_numpy_array(self):
        with pytest.raises(InvalidArgumentError, match=r"t: a numpy\.ndarray, expected a torch\.Tensor \(wrap it "
                                                       r"with torch\.from_numpy\)"):
            params.tensor_stats(np.ones(3))
        with pytest.raises(InvalidArgumentError, match=r"t: a builtins\.list, expected a torch\.Tensor$"):
            params.tensor_stats([1.0, 2.0])

    def test_tensor_stats_scales_before_squaring(self):
        s = params.tensor_stats(torch.tensor([1e308, 1e308], dtype=torch.float64))
        assert s["mean"] == 1e308 and s["std"] == 0.0 and s["mean_abs"] == 1e308
        assert s["l2_norm"] == pytest.approx(math.sqrt(2) * 1e308, rel=1e-15)
        assert s["linf_norm"] == 1e308
        x = np.array([1e308, -5e307, 3e307, 8e307] * 1500)
        s = params.tensor_stats(torch.from_numpy(x))
        scaled = x / 1e300  # numpy's own sum of x overflows
        assert s["mean"] == pytest.approx(scaled.mean() * 1e300, rel=1e-12)
        assert s["std"] == pytest.approx(scaled.std() * 1e300, rel=1e-12)
        assert s["skewness"] == pytest.approx(((scaled - scaled.mean()) ** 3).mean() / scaled.std() ** 3, rel=1e-9)
        tiny = np.array([1e-200, 3e-200, 2e-200, 7e-200] * 700)
        s = params.tensor_stats(torch.from_numpy(tiny))
        assert s["std"] == pytest.approx((tiny * 1e200).std() * 1e-200, rel=1e-12)
        assert s["excess_kurtosis"] == pytest.approx(
            ((tiny * 1e200 - (tiny * 1e200).mean()) ** 4).mean() / (tiny * 1e200).var() ** 2 - 3, rel=1e-9)
