// The composite path (ATen ops, any device) and the vocabulary-sharded form. The composite path is the
// sharded algebra applied to a single shard, chunked over rows so its temporaries stay bounded; both end in
// finish_row(), the same finish as the fused kernel.
#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include <metaprobe/divergence/sharded.hpp>
#include <metaprobe/error.hpp>

#include "internal.hpp"

namespace metaprobe {
namespace {

using divergence_detail::Limits;
using divergence_detail::Plan;
using divergence_detail::kBadNaN;
using divergence_detail::kBadNoFinite;
using divergence_detail::kBadOverflow;
using divergence_detail::kBadPosInf;

// One row's totals from the per-row columns of the sharded statistics: max[2], sumexp[2], argmax[2],
// values[3] (rank threshold, target logit of p, of q) and the partials.
divergence_detail::RowTotals row_totals(const double* max, const double* sumexp, const std::int64_t* argmax,
                                        const double* values, const double* partial) {
  divergence_detail::RowTotals t;
  t.shift_p = max[0];
  t.shift_q = max[1];
  t.sum_p = sumexp[0];
  t.sum_q = sumexp[1];
  t.argmax_p = argmax[0];
  t.argmax_q = argmax[1];
  t.zp_target = values[1];
  t.zq_target = values[2];
  std::copy(partial, partial + sharded::kNumPartials, t.partial);
  return t;
}

constexpr std::int64_t kChunkElements = std::int64_t{1} << 22;  // per-chunk temporaries are O(this)

at::ScalarType compute_type(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

template <typename F> double limit(at::ScalarType ct, F f) {
  return ct == at::kDouble ? static_cast<double>(f(double{})) : static_cast<double>(f(float{}));
}
double floor_of(at::ScalarType ct) {
  return limit(ct, [](auto x) { return Limits<decltype(x)>::floor; });
}
double exp_zero_of(at::ScalarType ct) {
  return limit(ct, [](auto x) { return Limits<decltype(x)>::exp_zero; });
}
double tiny_of(at::ScalarType ct) {
  return limit(ct, [](auto x) { return std::numeric_limits<decltype(x)>::min(); });
}

at::Tensor as_rows(const at::Tensor& t, const char* name) {
  if (!t.defined() || t.dim() < 1 || !at::isFloatingType(t.scalar_type())) {
    throw InvalidArgument(std::string(name) + ": expected a floating tensor [..., V]");
  }
  return t.reshape({-1, t.size(-1)});
}

void check_pair(const at::Tensor& p, const at::Tensor& q) {
  if (p.sizes() != q.sizes() || p.scalar_type() != q.scalar_type() || p.device() != q.device()) {
    throw InvalidArgument("p_shard and q_shard: shapes, dtypes or devices differ, expected the same");
  }
}

template <typename Fn> void for_chunks(std::int64_t rows, std::int64_t v, Fn fn) {
  const std::int64_t c = std::max<std::int64_t>(1, kChunkElements / std::max<std::int64_t>(v, 1));
  for (std::int64_t r0 = 0; r0 < rows; r0 += c) fn(r0, std::min(rows, r0 + c));
}

}  // namespace

namespace sharded {

LocalMaxima local_maxima(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                         const DivergenceOptions& options) {
  check_pair(p_shard, q_shard);
  const at::Tensor p = as_rows(p_shard, "p_shard"), q = as_rows(q_shard, "q_shard");
  const std::int64_t n = p.size(0), v = p.size(1);
  const auto ct = compute_type(p);
  const auto f64 = p.options().dtype(at::kDouble);
  LocalMaxima out;
  out.max = at::full({n, 2}, -std::numeric_limits<double>::infinity(), f64);
  out.sumexp = at::zeros({n, 2}, f64);
  out.argmax = at::full({n, 2}, std::numeric_limits<std::int64_t>::max(), p.options().dtype(at::kLong));
  out.bad = at::zeros({n, 2}, f64);
  if (v == 0 || n == 0) return out;
  divergence_detail::check_temperature(options.temperature, p.scalar_type());
  const double inv_t = 1.0 / options.temperature;
  const double zero_at = exp_zero_of(ct);
  for_chunks(n, v, [&](std::int64_t r0, std::int64_t r1) {
    int j = 0;
    for (const at::Tensor* t : {&p, &q}) {
      const at::Tensor z = t->slice(0, r0, r1).to(ct);
      const at::Tensor mx = z.amax(-1);
      // The shift M = max · (1/T) is formed in the compute precision, like the fused kernel's. A shard may hold
      // only −inf (or ≤ floor) logits when others do not, so "no finite logit" is decided after the MAX.
      const at::Tensor shift = mx * at::scalar_tensor(inv_t, z.options());
      const at::Tensor overflow = shift.isnan() | (shift == std::numeric_limits<double>::infinity());
      const at::Tensor bad = at::where(z.isnan().any(-1), at::full({}, static_cast<double>(kBadNaN), f64),
                                       at::where(mx == std::numeric_limits<double>::infinity(),
                                                 at::full({}, static_cast<double>(kBadPosInf), f64),
                                                 at::where(overflow & (mx > -std::numeric_limits<double>::infinity()),
                                                           at::full({}, static_cast<double>(kBadOverflow), f64),
                                                           at::full({}, 0.0, f64))));
      const at::Tensor a = z * inv_t - shift.unsqueeze(-1);
      const at::Tensor e = at::where(a > zero_at, a.exp(), at::zeros({}, a.options()));
      const at::Tensor idx = at::arange(v, z.options().dtype(at::kLong));
      const at::Tensor first = at::where(z == mx.unsqueeze(-1), idx, at::full({}, v, idx.options())).amin(-1);
      // A shard maximum at or below the floor counts as −inf (zero probability), as in the fused kernel.
      out.max.slice(0, r0, r1).select(1, j).copy_(
          at::where(shift <= floor_of(ct), at::full({}, -std::numeric_limits<double>::infinity(), shift.options()),
                    shift));
      out.sumexp.slice(0, r0, r1).select(1, j).copy_(e.sum(-1, false, at::kDouble));
      out.argmax.slice(0, r0, r1).select(1, j).copy_(first + vocab_start);
      out.bad.slice(0, r0, r1).select(1, j).copy_(bad);
      ++j;
    }
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> rescale(const LocalMaxima& local, const at::Tensor& global_max) {
  if (!global_max.defined() || global_max.sizes() != local.max.sizes()) {
    throw InvalidArgument("global_max: expected float64 [N, 2] like the local maxima");
  }
  const at::Tensor gm = global_max.to(at::kDouble);
  const at::Tensor live = local.max > -std::numeric_limits<double>::infinity();
  const at::Tensor sums = at::where(live, local.sumexp * (local.max - gm).exp(), at::zeros({}, gm.options()));
  const at::Tensor cand = at::where(live & (local.max == gm), local.argmax,
                                    at::full({}, std::numeric_limits<std::int64_t>::max(), local.argmax.options()));
  return {sums, cand};
}

at::Tensor value_indices(const at::Tensor& global_argmax, const DivergenceOptions& options, std::int64_t rows) {
  at::Tensor idx = at::full({rows, 3}, -1, global_argmax.options().dtype(at::kLong));
  idx.select(1, 0).copy_(global_argmax.select(1, 0));
  if (options.targets.defined()) {
    if (options.targets.numel() != rows || !at::isIntegralType(options.targets.scalar_type(), false)) {
      throw InvalidArgument("targets: " + std::to_string(options.targets.numel()) +
                            " values, expected one integer per position (" + std::to_string(rows) + ")");
    }
    at::Tensor t = options.targets.reshape({rows}).to(idx.device()).to(at::kLong);
    t = at::where(t == options.ignore_index, at::full({}, -1, t.options()), t);
    idx.select(1, 1).copy_(t);
    idx.select(1, 2).copy_(t);
  }
  return idx;
}

at::Tensor local_values(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                        const at::Tensor& indices) {
  check_pair(p_shard, q_shard);
  const at::Tensor p = as_rows(p_shard, "p_shard"), q = as_rows(q_shard, "q_shard");
  const std::int64_t n = p.size(0), v = p.size(1);
  if (indices.dim() != 2 || indices.size(0) != n || indices.size(1) != 3) {
    throw InvalidArgument("indices: expected int64 [N, 3] with N = " + std::to_string(n));
  }
  at::Tensor out = at::zeros({n, 3}, p.options().dtype(at::kDouble));
  if (v == 0 || n == 0) return out;
  const at::Tensor local = indices.to(p.device()).to(at::kLong) - vocab_start;
  const at::Tensor inside = (local >= 0) & (local < v) & (indices.to(p.device()) >= 0);
  const at::Tensor safe = at::where(inside, local, at::zeros({}, local.options()));
  const at::Tensor* src[3] = {&q, &p, &q};
  for (int j = 0; j < 3; ++j) {
    const at::Tensor g = src[j]->gather(1, safe.select(1, j).unsqueeze(1)).squeeze(1).to(at::kDouble);
    out.select(1, j).copy_(at::where(inside.select(1, j), g, at::zeros({}, g.options())));
  }
  return out;
}

at::Tensor local_partials(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                          const Globals& g, const DivergenceOptions& options) {
  using namespace divergence_detail;
  check_pair(p_shard, q_shard);
  const at::Tensor p = as_rows(p_shard, "p_shard"), q = as_rows(q_shard, "q_shard");
  const std::int64_t n = p.size(0), v = p.size(1);
  Plan plan;
  plan.vocab = std::max<std::int64_t>(v, 1);
  apply_options(options, plan);
  const auto f64 = p.options().dtype(at::kDouble);
  at::Tensor out = at::zeros({n, kNumPartials}, f64);
  if (v == 0 || n == 0) return out;
  const auto ct = compute_type(p);
  const double fl = floor_of(ct), zero_at = exp_zero_of(ct), tiny = tiny_of(ct);
  const double beta = plan.beta, inv_t = plan.inv_temperature;
  const bool kl = plan.need(kNeedKlForward | kNeedKlAll), js = plan.need(kNeedJs);
  const at::Tensor gmax = g.max.to(p.device()), gsum = g.sumexp.to(p.device()), gval = g.values.to(p.device());
  for_chunks(n, v, [&](std::int64_t r0, std::int64_t r1) {
    const at::Tensor zp = p.slice(0, r0, r1).to(ct), zq = q.slice(0, r0, r1).to(ct);
    const at::Tensor mx = gmax.slice(0, r0, r1).to(ct), sm = gsum.slice(0, r0, r1);
    const at::Tensor a = (zp * inv_t - mx.select(1, 0).unsqueeze(1)).clamp_min(fl);
    const at::Tensor b = (zq * inv_t - mx.select(1, 1).unsqueeze(1)).clamp_min(fl);
    const at::Tensor zero = at::zeros({}, a.options());
    const at::Tensor ea = at::where(a > zero_at, a.exp(), zero), eb = at::where(b > zero_at, b.exp(), zero);
    const at::Tensor d = a - b;
    at::Tensor o = out.slice(0, r0, r1);
    auto put = [&](int c, const at::Tensor& x) { o.select(1, c).copy_(x.sum(-1, false, at::kDouble)); };
    if (kl) {
      put(kSumEaD, ea * d);
      put(kSumEbD, eb * d);
      put(kSumEaA, ea * a);
      put(kSumEbB, eb * b);
      const at::Tensor al = a > fl, bl = b > fl;
      put(kInfPQ, al & bl.logical_not());
      put(kInfQP, bl & al.logical_not());
    }
    if (js) {
      const at::Tensor cp = sm.select(1, 0).reciprocal().to(ct).unsqueeze(1);
      const at::Tensor cq = sm.select(1, 1).reciprocal().to(ct).unsqueeze(1);
      const at::Tensor dl = (sm.select(1, 0).log() - sm.select(1, 1).log()).to(ct).unsqueeze(1);
      const at::Tensor x = ea * cp, y = eb * cq;
      const at::Tensor m = x * beta + y * (1.0 - beta);
      const at::Tensor r = (m / at::maximum(x, y).clamp_min(tiny)).clamp(std::min(beta, 1.0 - beta), 1.0);
      const at::Tensor del = d - dl;
      put(kSumJs, m * r.log() + x * beta * (-del).clamp_min(0) + y * (1.0 - beta) * del.clamp_min(0));
    }
    const at::Tensor thr = gval.slice(0, r0, r1).to(ct);
    put(kCntRank, zq > thr.select(1, 0).unsqueeze(1));
    put(kCntTp, zp > thr.select(1, 1).unsqueeze(1));
    put(kCntTq, zq > thr.select(1, 2).unsqueeze(1));
  });
  return out;
}

DivergenceResult combine(const Globals& g, const at::Tensor& partials, const std::vector<std::int64_t>& lead_shape,
                         std::int64_t vocab_size, const DivergenceOptions& options) {
  using namespace divergence_detail;
  Plan plan;
  plan.lead_shape = lead_shape;
  plan.rows = 1;
  for (auto s : lead_shape) plan.rows *= s;
  if (vocab_size < 1) {
    throw InvalidArgument("vocab_size: " + std::to_string(vocab_size) + ", expected V >= 1");
  }
  plan.vocab = vocab_size;
  apply_options(options, plan);
  plan_positions(options, plan);
  const std::int64_t n = plan.rows;
  if (partials.dim() != 2 || partials.size(0) != n || partials.size(1) != kNumPartials) {
    throw InvalidArgument("partials: expected float64 [" + std::to_string(n) + ", " + std::to_string(kNumPartials) + "]");
  }
  const at::Tensor mx = g.max.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor sm = g.sumexp.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor am = g.argmax.to(at::kCPU).to(at::kLong).contiguous();
  const at::Tensor vl = g.values.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor bd = g.bad.to(at::kCPU).to(at::kDouble).contiguous();
  const at::Tensor pt = partials.to(at::kCPU).to(at::kDouble).contiguous();
  const double *pmx = mx.data_ptr<double>(), *psm = sm.data_ptr<double>(), *pvl = vl.data_ptr<double>();
  const double *pbd = bd.data_ptr<double>(), *ppt = pt.data_ptr<double>();
  const std::int64_t* pam = am.data_ptr<std::int64_t>();
  std::vector<double> values(plan.kept.size() * kNumMetrics, 0.0);
  for (std::size_t k = 0; k < plan.kept.size(); ++k) {
    const std::int64_t r = plan.kept[k];
    for (int j = 0; j < 2; ++j) {
      int reason = static_cast<int>(pbd[2 * r + j]);
      if (reason == 0 && pmx[2 * r + j] == -std::numeric_limits<double>::infinity()) reason = kBadNoFinite;
      if (reason != 0) throw_bad_row(plan, BadRowInfo{r, reason, j == 1}, "p_logits", "q_logits");
    }
    finish_row(plan, row_totals(pmx + 2 * r, psm + 2 * r, pam + 2 * r, pvl + 3 * r, ppt + r * kNumPartials),
               values.data() + k * kNumMetrics);
  }
  return assemble(plan, values, options.base, options.reduction, g.max.device());
}

}  // namespace sharded

namespace divergence_detail {

std::optional<BadRowInfo> composite(const at::Tensor& p_in, const at::Tensor& q_in, const Plan& plan,
                                    double* values) {
  const at::Tensor p = p_in.reshape({plan.rows, plan.vocab}), q = q_in.reshape({plan.rows, plan.vocab});
  DivergenceOptions opt;
  opt.temperature = 1.0 / plan.inv_temperature;
  opt.beta = plan.beta;
  opt.metrics = plan.metrics;
  opt.targets = plan.targets;  // only its presence matters to the option checks
  Plan chunk_plan = plan;
  const std::int64_t nk = static_cast<std::int64_t>(plan.kept.size());
  const auto long_cpu = at::TensorOptions().dtype(at::kLong);
  at::Tensor kept = at::from_blob(const_cast<std::int64_t*>(plan.kept.data()), {nk}, long_cpu);
  const std::int64_t* tgt = plan.has_targets ? plan.targets.data_ptr<std::int64_t>() : nullptr;
  const std::int64_t c = std::max<std::int64_t>(1, kChunkElements / plan.vocab);
  for (std::int64_t k0 = 0; k0 < nk; k0 += c) {
    const std::int64_t k1 = std::min(nk, k0 + c);
    const at::Tensor rows = kept.slice(0, k0, k1).to(p.device());
    const at::Tensor zp = p.index_select(0, rows), zq = q.index_select(0, rows);
    const sharded::LocalMaxima lm = sharded::local_maxima(zp, zq, 0, opt);
    sharded::Globals g{lm.max, lm.sumexp, lm.argmax, at::Tensor(), lm.bad};
    at::Tensor idx = at::full({k1 - k0, 3}, -1, long_cpu);
    auto* pi = idx.data_ptr<std::int64_t>();
    const at::Tensor am = lm.argmax.to(at::kCPU).contiguous();
    const auto* pa = am.data_ptr<std::int64_t>();
    for (std::int64_t k = k0; k < k1; ++k) {
      pi[3 * (k - k0)] = pa[2 * (k - k0)];
      if (tgt) pi[3 * (k - k0) + 1] = pi[3 * (k - k0) + 2] = tgt[plan.kept[static_cast<std::size_t>(k)]];
    }
    g.values = sharded::local_values(zp, zq, 0, idx);
    const at::Tensor part = sharded::local_partials(zp, zq, 0, g, opt).to(at::kCPU).contiguous();
    const at::Tensor mx = lm.max.to(at::kCPU).contiguous(), sm = lm.sumexp.to(at::kCPU).contiguous();
    const at::Tensor vl = g.values.to(at::kCPU).contiguous(), bd = lm.bad.to(at::kCPU).contiguous();
    const double *pmx = mx.data_ptr<double>(), *psm = sm.data_ptr<double>(), *pvl = vl.data_ptr<double>();
    const double *pbd = bd.data_ptr<double>(), *ppt = part.data_ptr<double>();
    for (std::int64_t k = k0; k < k1; ++k) {
      const std::int64_t i = k - k0;
      for (int j = 0; j < 2; ++j) {
        int reason = static_cast<int>(pbd[2 * i + j]);
        if (reason == 0 && pmx[2 * i + j] == -std::numeric_limits<double>::infinity()) reason = kBadNoFinite;
        if (reason != 0) return BadRowInfo{plan.kept[static_cast<std::size_t>(k)], reason, j == 1};
      }
      finish_row(chunk_plan, row_totals(pmx + 2 * i, psm + 2 * i, pa + 2 * i, pvl + 3 * i, ppt + i * sharded::kNumPartials),
                 values + k * kNumMetrics);
    }
  }
  return std::nullopt;
}

}  // namespace divergence_detail
}  // namespace metaprobe
