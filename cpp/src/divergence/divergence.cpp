// Front end of the divergence engine: option parsing and validation, the per-row finish shared by every
// path, and the assembly of reductions (in a fixed row order, so results do not depend on threads).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>

#include "internal.hpp"
#include "common/format.hpp"

namespace metaprobe {

namespace divergence_detail {
namespace {
using Row = RowTotals;
constexpr double kInf = std::numeric_limits<double>::infinity();

// The finish steps (Note [metric table]): a row's totals to the metric's value in nats; lp = log S_p, lq = log S_q.
double finish_kl_pq(const Plan&, const Row& r, double lp, double lq) {
  return r.partial[kInfPQ] > 0 ? kInf : std::max(0.0, r.partial[kSumEaD] / r.sum_p + (lq - lp));
}
double finish_kl_qp(const Plan&, const Row& r, double lp, double lq) {
  return r.partial[kInfQP] > 0 ? kInf : std::max(0.0, -r.partial[kSumEbD] / r.sum_q + (lp - lq));
}
double finish_entropy_p(const Plan&, const Row& r, double lp, double) {
  return std::max(0.0, lp - r.partial[kSumEaA] / r.sum_p);
}
double finish_entropy_q(const Plan&, const Row& r, double, double lq) {
  return std::max(0.0, lq - r.partial[kSumEbB] / r.sum_q);
}
double finish_cross_entropy(const Plan& plan, const Row& r, double lp, double lq) {
  return finish_entropy_p(plan, r, lp, lq) + finish_kl_pq(plan, r, lp, lq);
}
double finish_js(const Plan& plan, const Row& r, double lp, double lq) {
  if (plan.beta == 0.0) return finish_kl_pq(plan, r, lp, lq);
  if (plan.beta == 1.0) return finish_kl_qp(plan, r, lp, lq);
  // Upper bound: the binary entropy of beta, reached by disjoint supports.
  const double b = plan.beta;
  const double hb = -b * std::log(b) - (1 - b) * std::log1p(-b);
  return std::min(hb, std::max(0.0, -r.partial[kSumJs]));
}
double finish_top1(const Plan&, const Row& r, double, double) { return r.argmax_p == r.argmax_q ? 1.0 : 0.0; }
double finish_rank_shift(const Plan&, const Row& r, double, double) { return 1.0 + r.partial[kCntRank]; }
double finish_logp_target(const Plan& plan, const Row& r, double lp, double) {
  return r.zp_target * plan.inv_temperature - r.shift_p - lp;
}
double finish_logq_target(const Plan& plan, const Row& r, double, double lq) {
  return r.zq_target * plan.inv_temperature - r.shift_q - lq;
}
double finish_target_rank_p(const Plan&, const Row& r, double, double) { return 1.0 + r.partial[kCntTp]; }
double finish_target_rank_q(const Plan&, const Row& r, double, double) { return 1.0 + r.partial[kCntTq]; }

template <std::uint32_t kBits> std::uint32_t needs_always(double) { return kBits; }
std::uint32_t needs_js(double beta) {
  return beta == 0.0 ? kNeedKlForward : beta == 1.0 ? kNeedKlAll : kNeedJs;
}
}  // namespace

constexpr std::array<MetricInfo, kNumMetrics> kMetricTable = {{
    // metric, information, needs targets, needs, result field, finish
    {Metric::kl_pq, true, false, needs_always<kNeedKlForward>, &DivergenceResult::kl_pq, finish_kl_pq},
    {Metric::kl_qp, true, false, needs_always<kNeedKlAll>, &DivergenceResult::kl_qp, finish_kl_qp},
    {Metric::js, true, false, needs_js, &DivergenceResult::js, finish_js},
    {Metric::entropy_p, true, false, needs_always<kNeedKlAll>, &DivergenceResult::entropy_p,
     finish_entropy_p},
    {Metric::entropy_q, true, false, needs_always<kNeedKlAll>, &DivergenceResult::entropy_q,
     finish_entropy_q},
    {Metric::cross_entropy_pq, true, false, needs_always<kNeedKlAll>,
     &DivergenceResult::cross_entropy_pq, finish_cross_entropy},
    {Metric::top1_agree, false, false, needs_always<kNeedArgmaxP | kNeedArgmaxQ>,
     &DivergenceResult::top1_agree, finish_top1},
    {Metric::rank_shift, false, false, needs_always<kNeedArgmaxP | kNeedRank>,
     &DivergenceResult::rank_shift, finish_rank_shift},
    {Metric::logp_target, true, true, needs_always<0>, &DivergenceResult::logp_target,
     finish_logp_target},
    {Metric::logq_target, true, true, needs_always<0>, &DivergenceResult::logq_target,
     finish_logq_target},
    {Metric::target_rank_p, false, true, needs_always<kNeedTargetRank>,
     &DivergenceResult::target_rank_p, finish_target_rank_p},
    {Metric::target_rank_q, false, true, needs_always<kNeedTargetRank>,
     &DivergenceResult::target_rank_q, finish_target_rank_q},
}};

namespace {
constexpr bool table_in_canonical_order() {
  for (std::size_t i = 0; i < kNumMetrics; ++i) {
    if (kMetricTable[i].metric != kAllMetrics[i]) return false;
  }
  return true;
}
static_assert(table_in_canonical_order(), "kMetricTable rows must follow kAllMetrics (col(metric) indexes both)");
}  // namespace

}  // namespace divergence_detail

namespace {
// The metrics that need targets, from the table.
std::uint32_t target_bits() {
  std::uint32_t bits = 0;
  for (const auto& m : divergence_detail::kMetricTable) {
    if (m.needs_targets) bits |= static_cast<std::uint32_t>(m.metric);
  }
  return bits;
}
}  // namespace

MetricSet MetricSet::parse(const std::vector<std::string>& names) {
  MetricSet s;
  for (const auto& n : names) s = s.with(parse_metric(n));
  return s;
}

at::Tensor& DivergenceResult::operator[](Metric m) {
  if (m == Metric{} || (static_cast<std::uint32_t>(m) & ~MetricSet::all().bits) ||
      (static_cast<std::uint32_t>(m) & (static_cast<std::uint32_t>(m) - 1))) {
    throw InvalidArgument("metric: invalid enum value " + std::to_string(static_cast<std::uint32_t>(m)));
  }
  return this->*divergence_detail::info(m).field;
}

const at::Tensor& DivergenceResult::operator[](Metric m) const {
  return const_cast<DivergenceResult&>(*this)[m];
}

namespace divergence_detail {

std::string describe_row(const Plan& plan, std::int64_t row) {
  std::vector<std::int64_t> idx(plan.lead_shape.size());
  std::int64_t r = row;
  for (std::size_t d = plan.lead_shape.size(); d-- > 0;) {
    idx[d] = r % plan.lead_shape[d];
    r /= plan.lead_shape[d];
  }
  return "row " + std::to_string(row) + " (position " + metaprobe::detail::format_shape(idx) + ")";
}

void throw_bad_row(const Plan& plan, const BadRowInfo& bad, const char* p_name, const char* q_name) {
  const std::int64_t row = bad.row;
  const int reason = bad.reason;
  const char* name = bad.in_q ? q_name : p_name;
  const char* what = reason == kBadNaN      ? "holds a NaN logit"
                     : reason == kBadPosInf ? "holds a +inf logit"
                     : reason == kBadOverflow
                         ? "has max(logit) / temperature that is not finite in the compute precision (it overflows; "
                           "use a larger temperature or float64 logits)"
                         : "holds no finite logit (every logit / temperature is -inf or <= -1e30 in float, "
                           "-1e300 in float64, which count as -inf)";
  throw InvalidArgument(std::string(name) + ": " + describe_row(plan, row) + " " + what +
                        ", expected finite logits or -inf");
}

void check_temperature(double temperature, at::ScalarType dtype) {
  const bool f64 = dtype == at::kDouble;
  const double inv = 1.0 / temperature;
  const double inv_c = f64 ? inv : static_cast<double>(static_cast<float>(inv));
  const double lo = f64 ? std::numeric_limits<double>::min() : static_cast<double>(std::numeric_limits<float>::min());
  if (std::isfinite(inv_c) && inv_c >= lo) return;
  const double hi = f64 ? std::numeric_limits<double>::max() : static_cast<double>(std::numeric_limits<float>::max());
  char buf[160];
  std::snprintf(buf, sizeof buf, "temperature: %.6g, 1/temperature is %s in %s (the compute precision of %s "
                "logits), expected %.3g <= temperature <= %.3g", temperature, std::isfinite(inv_c) ? "subnormal or 0" : "inf",
                f64 ? "float64" : "float32", c10::toString(dtype), 1.0 / hi, 1.0 / lo);
  throw InvalidArgument(buf);
}

Plan make_plan(const at::Tensor& p, const at::Tensor& q, const DivergenceOptions& o, const char* p_name,
               const char* q_name) {
  if (!p.defined() || !q.defined()) {
    throw InvalidArgument(std::string(p.defined() ? q_name : p_name) + ": undefined tensor, expected logits [..., V]");
  }
  if (p.dim() < 1) throw InvalidArgument(std::string(p_name) + ": a 0-d tensor, expected logits [..., V]");
  if (p.sizes() != q.sizes()) {
    throw InvalidArgument(std::string(p_name) + " shape " + metaprobe::detail::format_shape(p.sizes()) + " and " + q_name + " shape " +
                          metaprobe::detail::format_shape(q.sizes()) + " differ, expected the same shape [..., V]");
  }
  for (const auto* t : {&p, &q}) {
    if (!at::isFloatingType(t->scalar_type())) {
      throw InvalidArgument(std::string(t == &p ? p_name : q_name) + ": dtype " +
                            std::string(c10::toString(t->scalar_type())) +
                            ", expected a floating dtype (float32, float64, float16, bfloat16)");
    }
  }
  if (p.scalar_type() != q.scalar_type()) {
    throw InvalidArgument(std::string(p_name) + " dtype " + c10::toString(p.scalar_type()) + " and " + q_name +
                          " dtype " + c10::toString(q.scalar_type()) +
                          " differ, expected the same dtype (convert one with .to())");
  }
  if (p.device() != q.device()) {
    throw InvalidArgument(std::string(p_name) + " device " + p.device().str() + " and " + q_name + " device " +
                          q.device().str() + " differ, expected the same device");
  }
  Plan plan;
  plan.vocab = p.size(-1);
  if (plan.vocab == 0) {
    throw InvalidArgument(std::string(p_name) + ": vocabulary size V = 0 (shape " + metaprobe::detail::format_shape(p.sizes()) +
                          "), expected V >= 1");
  }
  plan.lead_shape.assign(p.sizes().begin(), p.sizes().end() - 1);
  plan.rows = 1;
  for (auto s : plan.lead_shape) plan.rows *= s;
  apply_options(o, plan);
  plan_positions(o, plan);
  return plan;
}

void apply_options(const DivergenceOptions& o, Plan& plan) {
  if (!(o.temperature > 0.0) || !std::isfinite(o.temperature)) {
    throw InvalidArgument("temperature: " + std::to_string(o.temperature) + ", expected a finite value > 0");
  }
  if (!(o.beta >= 0.0 && o.beta <= 1.0)) {
    throw InvalidArgument("beta: " + std::to_string(o.beta) + ", expected a value in [0, 1]");
  }
  plan.inv_temperature = 1.0 / o.temperature;
  plan.beta = o.beta;
  if (o.metrics.bits & ~MetricSet::all().bits) {
    throw InvalidArgument("metrics: unknown metric bits " + std::to_string(o.metrics.bits));
  }
  if (o.metrics.empty()) {
    throw InvalidArgument("metrics: empty set, expected at least one of " + enum_name_list<Metric>());
  }
  plan.has_targets = o.targets.defined();
  plan.metrics = o.metrics;
  const std::uint32_t kTargetBits = target_bits();
  if (!plan.has_targets && (o.metrics.bits & kTargetBits)) {
    if (o.metrics == MetricSet::all()) {
      plan.metrics.bits &= ~kTargetBits;
    } else {
      for (Metric m : kAllMetrics) {
        if ((static_cast<std::uint32_t>(m) & kTargetBits) && o.metrics.has(m)) {
          throw InvalidArgument("metrics: '" + std::string(to_string(m)) +
                                "' needs targets, but targets were not given");
        }
      }
    }
  }
  plan.needs = 0;
  for (const auto& m : kMetricTable) {
    if (plan.metrics.has(m.metric)) plan.needs |= m.needs(plan.beta);
  }
}

void plan_positions(const DivergenceOptions& o, Plan& plan) {
  const auto lead = at::IntArrayRef(plan.lead_shape);
  at::Tensor keep;  // CPU bool [rows]
  if (o.mask.defined()) {
    if (o.mask.sizes() != lead) {
      throw InvalidArgument("mask: shape " + metaprobe::detail::format_shape(o.mask.sizes()) + ", expected the leading dims " +
                            metaprobe::detail::format_shape(lead) + " of the logits");
    }
    const auto mt = o.mask.scalar_type();
    if (mt != at::kBool && !at::isIntegralType(mt, /*includeBool=*/false)) {
      throw InvalidArgument("mask: dtype " + std::string(c10::toString(mt)) + ", expected bool or an integer dtype of 0/1");
    }
    at::Tensor m = o.mask.to(at::kCPU).reshape({plan.rows});
    if (mt != at::kBool) {
      at::Tensor m64 = m.to(at::kLong).contiguous();
      const auto* d = m64.data_ptr<std::int64_t>();
      for (std::int64_t i = 0; i < plan.rows; ++i) {
        if (d[i] != 0 && d[i] != 1) {
          throw InvalidArgument("mask: value " + std::to_string(d[i]) + " at " + describe_row(plan, i) +
                                ", expected 0 or 1 (or a bool mask)");
        }
      }
      m = m64.to(at::kBool);
    }
    keep = m.contiguous();
  }
  if (plan.has_targets) {
    if (o.targets.sizes() != lead) {
      throw InvalidArgument("targets: shape " + metaprobe::detail::format_shape(o.targets.sizes()) + ", expected the leading dims " +
                            metaprobe::detail::format_shape(lead) + " of the logits");
    }
    const auto tt = o.targets.scalar_type();
    if (!at::isIntegralType(tt, /*includeBool=*/false)) {
      throw InvalidArgument("targets: dtype " + std::string(c10::toString(tt)) + ", expected an integer dtype");
    }
    plan.targets = o.targets.to(at::kCPU).to(at::kLong).reshape({plan.rows}).contiguous();
  }
  const bool* kd = keep.defined() ? keep.data_ptr<bool>() : nullptr;
  const std::int64_t* td = plan.has_targets ? plan.targets.data_ptr<std::int64_t>() : nullptr;
  plan.kept.reserve(static_cast<std::size_t>(plan.rows));
  for (std::int64_t i = 0; i < plan.rows; ++i) {
    if (kd && !kd[i]) continue;
    if (td) {
      if (td[i] == o.ignore_index) continue;
      if (td[i] < 0 || td[i] >= plan.vocab) {
        throw InvalidArgument("targets: value " + std::to_string(td[i]) + " at " + describe_row(plan, i) +
                              " is out of range, expected 0 <= target < V = " + std::to_string(plan.vocab) +
                              " or ignore_index = " + std::to_string(o.ignore_index));
      }
    }
    plan.kept.push_back(i);
  }
}

void finish_row(const Plan& plan, const RowTotals& row, double* out) {
  const double lp = std::log(row.sum_p), lq = std::log(row.sum_q);
  for (std::size_t c = 0; c < kNumMetrics; ++c) {
    const MetricInfo& m = kMetricTable[c];
    if (plan.metrics.has(m.metric)) out[c] = m.finish(plan, row, lp, lq);
  }
}

DivergenceResult assemble(const Plan& plan, const std::vector<double>& values, LogBase base, Reduction reduction,
                          const at::Device& device) {
  DivergenceResult r;
  r.count = static_cast<std::int64_t>(plan.kept.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto nk = plan.kept.size();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  for (std::size_t c = 0; c < kNumMetrics; ++c) {
    const MetricInfo& metric = kMetricTable[c];
    if (!plan.metrics.has(metric.metric)) continue;
    const double scale = (base == LogBase::two && metric.information) ? 1.0 / std::log(2.0) : 1.0;
    at::Tensor out;
    if (reduction == Reduction::none) {
      out = at::full(plan.lead_shape, nan, f64);
      double* d = out.data_ptr<double>();
      for (std::size_t k = 0; k < nk; ++k) d[plan.kept[k]] = values[k * kNumMetrics + c] * scale;
    } else if (reduction == Reduction::mean) {
      double acc = 0;
      for (std::size_t k = 0; k < nk; ++k) acc += values[k * kNumMetrics + c] * scale;
      out = at::full({}, nk ? acc / static_cast<double>(nk) : nan, f64);
    } else {
      std::vector<std::int64_t> shape(plan.lead_shape.begin(),
                                      plan.lead_shape.empty() ? plan.lead_shape.end() : plan.lead_shape.end() - 1);
      const std::int64_t seq = plan.lead_shape.empty() ? 1 : plan.lead_shape.back();
      std::int64_t groups = 1;
      for (auto s : shape) groups *= s;
      std::vector<double> acc(static_cast<std::size_t>(groups), 0.0);
      std::vector<std::int64_t> cnt(static_cast<std::size_t>(groups), 0);
      for (std::size_t k = 0; k < nk; ++k) {
        const auto g = static_cast<std::size_t>(plan.kept[k] / seq);
        acc[g] += values[k * kNumMetrics + c] * scale;
        ++cnt[g];
      }
      out = at::empty(shape, f64);
      double* d = out.data_ptr<double>();
      for (std::int64_t g = 0; g < groups; ++g) d[g] = cnt[g] ? acc[g] / static_cast<double>(cnt[g]) : nan;
    }
    r.*metric.field = device.is_cpu() ? out : out.to(device);
  }
  return r;
}

}  // namespace divergence_detail

DivergenceResult divergence(const at::Tensor& p_logits, const at::Tensor& q_logits, const DivergenceOptions& options) {
  using namespace divergence_detail;
  const char* pn = "p_logits";
  const char* qn = "q_logits";
  Plan plan = make_plan(p_logits, q_logits, options, pn, qn);
  check_temperature(options.temperature, p_logits.scalar_type());
  Backend backend = options.backend;
  if (backend == Backend::automatic) backend = p_logits.device().is_cpu() ? Backend::fused : Backend::composite;
  if (backend == Backend::fused && !p_logits.device().is_cpu()) {
    throw InvalidArgument("backend: 'fused' needs CPU tensors, got device " + p_logits.device().str() +
                          ", expected 'auto' or 'composite'");
  }
  std::vector<double> values(plan.kept.size() * kNumMetrics, 0.0);
  const std::optional<BadRowInfo> bad = backend == Backend::fused ? fused_cpu(p_logits, q_logits, plan, values.data())
                                                                  : composite(p_logits, q_logits, plan, values.data());
  if (bad) throw_bad_row(plan, *bad, pn, qn);
  return assemble(plan, values, options.base, options.reduction, p_logits.device());
}

}  // namespace metaprobe
