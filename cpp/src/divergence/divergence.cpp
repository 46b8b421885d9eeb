// Front end of the divergence engine: option parsing and validation, the per-row finish shared by every
// path, and the assembly of reductions (in a fixed row order, so results do not depend on threads).
#include <cmath>
#include <cstdio>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>

#include "internal.hpp"
#include "common/format.hpp"

namespace metaprobe {

namespace {
constexpr std::uint32_t kTargetBits = static_cast<std::uint32_t>(Metric::logp_target) |
                                      static_cast<std::uint32_t>(Metric::logq_target) |
                                      static_cast<std::uint32_t>(Metric::target_rank_p) |
                                      static_cast<std::uint32_t>(Metric::target_rank_q);

bool is_info_metric(Metric m) {
  return m == Metric::kl_pq || m == Metric::kl_qp || m == Metric::js || m == Metric::entropy_p ||
         m == Metric::entropy_q || m == Metric::cross_entropy_pq || m == Metric::logp_target ||
         m == Metric::logq_target;
}
}  // namespace

MetricSet MetricSet::parse(const std::vector<std::string>& names) {
  MetricSet s;
  for (const auto& n : names) s = s.with(parse_metric(n));
  return s;
}

at::Tensor& DivergenceResult::operator[](Metric m) {
  switch (m) {
    case Metric::kl_pq: return kl_pq;
    case Metric::kl_qp: return kl_qp;
    case Metric::js: return js;
    case Metric::entropy_p: return entropy_p;
    case Metric::entropy_q: return entropy_q;
    case Metric::cross_entropy_pq: return cross_entropy_pq;
    case Metric::top1_agree: return top1_agree;
    case Metric::rank_shift: return rank_shift;
    case Metric::logp_target: return logp_target;
    case Metric::logq_target: return logq_target;
    case Metric::target_rank_p: return target_rank_p;
    case Metric::target_rank_q: return target_rank_q;
  }
  throw InvalidArgument("metric: invalid enum value " + std::to_string(static_cast<std::uint32_t>(m)));
}

const at::Tensor& DivergenceResult::operator[](Metric m) const {
  return const_cast<DivergenceResult&>(*this)[m];
}

namespace divergence_detail {

bool Plan::need_kl_group() const {
  return metrics.has(Metric::kl_pq) || metrics.has(Metric::kl_qp) || metrics.has(Metric::entropy_p) ||
         metrics.has(Metric::entropy_q) || metrics.has(Metric::cross_entropy_pq) ||
         (metrics.has(Metric::js) && (beta == 0.0 || beta == 1.0));
}
bool Plan::need_js_sum() const { return metrics.has(Metric::js) && beta > 0.0 && beta < 1.0; }
bool Plan::need_argmax_p() const { return metrics.has(Metric::top1_agree) || metrics.has(Metric::rank_shift); }
bool Plan::need_argmax_q() const { return metrics.has(Metric::top1_agree); }

std::string describe_row(const Plan& plan, std::int64_t row) {
  std::vector<std::int64_t> idx(plan.lead_shape.size());
  std::int64_t r = row;
  for (std::size_t d = plan.lead_shape.size(); d-- > 0;) {
    idx[d] = r % plan.lead_shape[d];
    r /= plan.lead_shape[d];
  }
  return "row " + std::to_string(row) + " (position " + metaprobe::detail::format_shape(idx) + ")";
}

void throw_bad_row(const Plan& plan, std::int64_t row, int reason, bool in_q, const char* p_name,
                   const char* q_name) {
  const char* name = in_q ? q_name : p_name;
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

void finish_row(const Plan& plan, double max_p, double max_q, double sum_p, double sum_q, std::int64_t argmax_p,
                std::int64_t argmax_q, double zp_target, double zq_target, const double* s, double* out) {
  const double inf = std::numeric_limits<double>::infinity();
  const double lp = std::log(sum_p), lq = std::log(sum_q);
  const auto& m = plan.metrics;
  double kl_pq = 0, kl_qp = 0, hp = 0;
  if (plan.need_kl_group()) {
    kl_pq = s[kInfPQ] > 0 ? inf : std::max(0.0, s[kSumEaD] / sum_p + (lq - lp));
    kl_qp = s[kInfQP] > 0 ? inf : std::max(0.0, -s[kSumEbD] / sum_q + (lp - lq));
    hp = std::max(0.0, lp - s[kSumEaA] / sum_p);
    if (m.has(Metric::kl_pq)) out[col(Metric::kl_pq)] = kl_pq;
    if (m.has(Metric::kl_qp)) out[col(Metric::kl_qp)] = kl_qp;
    if (m.has(Metric::entropy_p)) out[col(Metric::entropy_p)] = hp;
    if (m.has(Metric::entropy_q)) out[col(Metric::entropy_q)] = std::max(0.0, lq - s[kSumEbB] / sum_q);
    if (m.has(Metric::cross_entropy_pq)) out[col(Metric::cross_entropy_pq)] = hp + kl_pq;
  }
  if (m.has(Metric::js)) {
    if (plan.beta == 0.0) {
      out[col(Metric::js)] = kl_pq;
    } else if (plan.beta == 1.0) {
      out[col(Metric::js)] = kl_qp;
    } else {
      // Upper bound: the binary entropy of beta, reached by disjoint supports.
      const double b = plan.beta;
      const double hb = -b * std::log(b) - (1 - b) * std::log1p(-b);
      out[col(Metric::js)] = std::min(hb, std::max(0.0, -s[kSumJs]));
    }
  }
  if (m.has(Metric::top1_agree)) out[col(Metric::top1_agree)] = argmax_p == argmax_q ? 1.0 : 0.0;
  if (m.has(Metric::rank_shift)) out[col(Metric::rank_shift)] = 1.0 + s[kCntRank];
  const double t = plan.inv_temperature;
  if (m.has(Metric::logp_target)) out[col(Metric::logp_target)] = zp_target * t - max_p - lp;
  if (m.has(Metric::logq_target)) out[col(Metric::logq_target)] = zq_target * t - max_q - lq;
  if (m.has(Metric::target_rank_p)) out[col(Metric::target_rank_p)] = 1.0 + s[kCntTp];
  if (m.has(Metric::target_rank_q)) out[col(Metric::target_rank_q)] = 1.0 + s[kCntTq];
}

DivergenceResult assemble(const Plan& plan, const std::vector<double>& values, LogBase base, Reduction reduction,
                          const at::Device& device) {
  DivergenceResult r;
  r.count = static_cast<std::int64_t>(plan.kept.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto nk = plan.kept.size();
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  for (Metric metric : kAllMetrics) {
    if (!plan.metrics.has(metric)) continue;
    const int c = col(metric);
    const double scale = (base == LogBase::two && is_info_metric(metric)) ? 1.0 / std::log(2.0) : 1.0;
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
    r[metric] = device.is_cpu() ? out : out.to(device);
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
  int reason = 0;
  bool in_q = false;
  const std::int64_t bad = backend == Backend::fused ? fused_cpu(p_logits, q_logits, plan, values.data(), &reason, &in_q)
                                                     : composite(p_logits, q_logits, plan, values.data(), &reason, &in_q);
  if (bad >= 0) throw_bad_row(plan, bad, reason, in_q, pn, qn);
  return assemble(plan, values, options.base, options.reduction, p_logits.device());
}

}  // namespace metaprobe
