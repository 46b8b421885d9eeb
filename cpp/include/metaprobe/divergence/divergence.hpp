#pragma once
// Per-position divergence metrics between two next-token distributions given as logits [..., V]
// (docs/divergence.md, "Metrics").
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>

namespace metaprobe {

/// One metric the divergence engine can compute; the value is its bit in a MetricSet.
enum class Metric : std::uint32_t {
  kl_pq = 1u << 0,             ///< KL(p‖q)
  kl_qp = 1u << 1,             ///< KL(q‖p)
  js = 1u << 2,                ///< generalised Jensen–Shannon with weight beta
  entropy_p = 1u << 3,         ///< H(p)
  entropy_q = 1u << 4,         ///< H(q)
  cross_entropy_pq = 1u << 5,  ///< H(p, q) = −Σ p log q
  top1_agree = 1u << 6,        ///< 1 when argmax p == argmax q (lowest index on ties)
  rank_shift = 1u << 7,        ///< rank of p's argmax token under q (1 = same)
  logp_target = 1u << 8,       ///< log p(y) (needs targets)
  logq_target = 1u << 9,       ///< log q(y) (needs targets)
  target_rank_p = 1u << 10,    ///< rank of y under p (1 = argmax; needs targets)
  target_rank_q = 1u << 11,    ///< rank of y under q (needs targets)
};

inline constexpr std::size_t kNumMetrics = 12;
METAPROBE_ENUM_NAMES(Metric, "metrics", "unknown metric name '{value}', expected one of {names}",
                     {Metric::kl_pq, "kl_pq"}, {Metric::kl_qp, "kl_qp"}, {Metric::js, "js"},
                     {Metric::entropy_p, "entropy_p"}, {Metric::entropy_q, "entropy_q"},
                     {Metric::cross_entropy_pq, "cross_entropy_pq"}, {Metric::top1_agree, "top1_agree"},
                     {Metric::rank_shift, "rank_shift"}, {Metric::logp_target, "logp_target"},
                     {Metric::logq_target, "logq_target"}, {Metric::target_rank_p, "target_rank_p"},
                     {Metric::target_rank_q, "target_rank_q"})
/// Every metric, in the canonical order used by names and result fields (the order of the name table).
inline constexpr std::array<Metric, kNumMetrics> kAllMetrics = enum_values<Metric>();
static_assert(
    [] {
      for (std::size_t i = 0; i < kNumMetrics; ++i)
        if (static_cast<std::uint32_t>(kAllMetrics[i]) != (1u << i)) return false;
      return true;
    }(),
    "the metric name table lists the metrics in bit order (a metric's column is its bit index)");

/// The snake_case name of a metric ("kl_pq").
inline std::string_view to_string(Metric metric) { return enum_name(metric); }
/// Parses a metric name; throws InvalidArgument naming the value and the valid names.
inline Metric parse_metric(std::string_view name) { return parse_enum<Metric>(name); }

/// A set of metrics (a bitmask over Metric).
struct MetricSet {
  std::uint32_t bits = 0;
  /// Every metric; target metrics are skipped when no targets are given.
  static constexpr MetricSet all() { return MetricSet{(1u << kNumMetrics) - 1u}; }
  /// The set of the named metrics; throws InvalidArgument on an unknown name.
  static MetricSet parse(const std::vector<std::string>& names);
  constexpr bool has(Metric m) const { return (bits & static_cast<std::uint32_t>(m)) != 0; }
  constexpr MetricSet with(Metric m) const { return MetricSet{bits | static_cast<std::uint32_t>(m)}; }
  constexpr bool empty() const { return bits == 0; }
  friend constexpr bool operator==(MetricSet a, MetricSet b) { return a.bits == b.bits; }
  friend constexpr bool operator!=(MetricSet a, MetricSet b) { return a.bits != b.bits; }
};

/// How per-position values are reduced.
enum class Reduction {
  none,  ///< one value per position: shape = the leading dims
  row,   ///< mean over the kept positions of the last leading dim ([B, T, V] → [B])
  mean,  ///< mean over every kept position → scalar
};
METAPROBE_ENUM_NAMES(Reduction, "reduction", "unknown value '{value}', expected one of {names}",
                     {Reduction::none, "none"}, {Reduction::row, "row"}, {Reduction::mean, "mean"})
/// Parses "none" | "row" | "mean".
inline Reduction parse_reduction(std::string_view name) { return parse_enum<Reduction>(name); }
/// The name of a reduction.
inline std::string_view to_string(Reduction reduction) { return enum_name(reduction); }

/// Logarithm base of the information metrics (KL, JS, entropies, cross-entropy, log-probabilities).
enum class LogBase { e, two };
METAPROBE_ENUM_NAMES(LogBase, "base", "unknown value '{value}', expected one of {names}", {LogBase::e, "e"},
                     {LogBase::two, "2"}, {LogBase::e, "nats"}, {LogBase::two, "bits"})
/// Parses "e" or "nats", "2" or "bits".
inline LogBase parse_log_base(std::string_view name) { return parse_enum<LogBase>(name); }

/// Which implementation computes the metrics.
enum class Backend {
  automatic,  ///< fused kernel for CPU tensors, composite ATen path elsewhere
  fused,      ///< the fused CPU kernel (CPU tensors only)
  composite,  ///< ATen ops chunked over rows (any device); the reference path of CUDA tensors
};
METAPROBE_ENUM_NAMES(Backend, "backend", "unknown value '{value}', expected one of {names}",
                     {Backend::automatic, "auto"}, {Backend::fused, "fused"}, {Backend::composite, "composite"})
/// Parses "auto" | "fused" | "composite".
inline Backend parse_backend(std::string_view name) { return parse_enum<Backend>(name); }

/// Options of divergence(). Defaults compute every metric in nats per position.
struct DivergenceOptions {
  double temperature = 1.0;            ///< divides both logits; must be > 0
  MetricSet metrics = MetricSet::all();
  LogBase base = LogBase::e;
  double beta = 0.5;                   ///< JS weight: M = βP + (1−β)Q; 0 → KL(p‖q), 1 → KL(q‖p)
  Reduction reduction = Reduction::none;
  at::Tensor mask;                     ///< optional, leading dims, bool or 0/1 integer; false = skip
  at::Tensor targets;                  ///< optional, leading dims, integer token ids
  std::int64_t ignore_index = -100;    ///< positions whose target equals this are skipped entirely
  Backend backend = Backend::automatic;
};
#define METAPROBE_DIVERGENCE_OPTIONS_FIELDS(X, LATER)                                                        \
  X("temperature", temperature) X("metrics", metrics) X("reduction", reduction) X("base", base) X("beta", beta) \
  X("mask", mask) X("targets", targets) X("ignore_index", ignore_index) X("backend", backend)
METAPROBE_RECORD(DivergenceOptions, METAPROBE_DIVERGENCE_OPTIONS_FIELDS)

/// One float64 tensor per metric (undefined when not computed), plus the number of positions used.
/// Under Reduction::none a skipped (masked or ignored) position holds NaN.
struct DivergenceResult {
  at::Tensor kl_pq, kl_qp, js, entropy_p, entropy_q, cross_entropy_pq, top1_agree, rank_shift;
  at::Tensor logp_target, logq_target, target_rank_p, target_rank_q;
  std::int64_t count = 0;  ///< positions used (mask true and target not ignored)

  /// The field of a metric.
  at::Tensor& operator[](Metric m);
  const at::Tensor& operator[](Metric m) const;
};

/// Computes the requested metrics between softmax(p_logits / T) and softmax(q_logits / T) over the last
/// dim. Throws InvalidArgument on bad shapes, dtypes, options, NaN logits (naming the first bad row).
DivergenceResult divergence(const at::Tensor& p_logits, const at::Tensor& q_logits,
                            const DivergenceOptions& options = {});

}  // namespace metaprobe
