#pragma once
// Private pieces shared by the fused kernel, the composite (ATen) path and the sharded form. Both paths
// reduce a row to the same partial sums and finish it with finish_row(), so their formulas cannot drift.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/divergence/sharded.hpp>

namespace metaprobe::divergence_detail {

/// Column of a metric in a per-row value array (the order of kAllMetrics).
inline int col(Metric m) {
  int i = 0;
  auto bits = static_cast<std::uint32_t>(m);
  while ((bits >>= 1) != 0) ++i;
  return i;
}

// Shifted logits at or below kFloor count as −inf (zero probability); the clamp keeps every product finite.
template <typename T> struct Limits;
template <> struct Limits<float> {
  static constexpr float floor = -1e30f;
  // exp below this is set to 0: e^-72 / V stays a normal float for V up to 10^6, so no product of the
  // metric pass is denormal (slow), and Eigen's pexp floor (~3e-39 for any input below -88.7) is removed.
  static constexpr float exp_zero = -72.0f;
};
template <> struct Limits<double> {
  static constexpr double floor = -1e300;
  static constexpr double exp_zero = -708.0;
};

/// Partial sums of one row over (a slice of) the vocabulary, with a = max(z/T − M_p, floor), b likewise,
/// ea = exp(a) (0 below exp_zero), x = ea / S_p, y = eb / S_q.
enum Partial : int {
  kSumEaD = 0,   // Σ ea (a − b)
  kSumEbD = 1,   // Σ eb (a − b)
  kSumEaA = 2,   // Σ ea a
  kSumEbB = 3,   // Σ eb b
  kSumJs = 4,    // Σ m log(m/max(x,y)) + β x relu(−δ) + (1−β) y relu(δ), δ = (a − b) − (L_p − L_q)
  kInfPQ = 5,    // #{a > floor, b == floor}
  kInfQP = 6,    // #{b > floor, a == floor}
  kCntRank = 7,  // #{z_q > z_q[argmax p]}
  kCntTp = 8,    // #{z_p > z_p[y]}
  kCntTq = 9,    // #{z_q > z_q[y]}
};

/// What the kernel passes compute for a metric: bits of Plan::needs, the union over the requested metrics'
/// MetricInfo::needs (Note [metric table]).
enum Need : std::uint32_t {
  kNeedKlForward = 1u << 0,   // Σ ea(a − b) and #{p > 0, q = 0}
  kNeedKlAll = 1u << 1,       // also Σ eb(a − b), Σ ea a, Σ eb b and #{q > 0, p = 0}
  kNeedJs = 1u << 2,          // the β-weighted JS sum (0 < β < 1)
  kNeedArgmaxP = 1u << 3,     // the first argmax of p
  kNeedArgmaxQ = 1u << 4,     // the first argmax of q
  kNeedRank = 1u << 5,        // #{z_q > z_q[argmax p]}
  kNeedTargetRank = 1u << 6,  // #{z_p > z_p[y]} and #{z_q > z_q[y]}
};

/// What the engine computes, resolved once from the options and the shapes.
struct Plan {
  std::vector<std::int64_t> lead_shape;
  std::int64_t rows = 0;
  std::int64_t vocab = 0;
  MetricSet metrics;        // effective: target metrics removed when there are no targets
  std::uint32_t needs = 0;  // Need bits of the effective metrics at this beta
  bool has_targets = false;
  double inv_temperature = 1.0;
  double beta = 0.5;
  std::vector<std::int64_t> kept;  // flattened row indices that are used, ascending
  at::Tensor targets;              // int64 contiguous CPU [rows], or undefined
  bool need(std::uint32_t bits) const { return (needs & bits) != 0; }
};

/// A row's totals over the whole vocabulary, from any path: what finish_row turns into metric values.
struct RowTotals {
  double shift_p = 0, shift_q = 0;  // M = max(z) · (1/T) of p and q
  double sum_p = 0, sum_q = 0;      // S = Σ exp(z/T − M)
  std::int64_t argmax_p = -1, argmax_q = -1;
  double zp_target = 0, zq_target = 0;  // the raw logits of the target token (target metrics only)
  double partial[sharded::kNumPartials] = {};  // the summed Partial columns
};

// Note [metric table]: every divergence metric is one row of kMetricTable (divergence.cpp): its name, whether
// it is an information quantity (converted by `base`), whether it needs targets, the Need bits its finish
// step reads (a function of beta, for JS), the result field it fills and the finish step itself, which turns a
// row's totals into the value in nats. The option checks, the plan's needs, the per-row finish
// and the result assembly all loop over the table; the kernels compute only the partials that Plan::needs
// names. Adding a metric whose value comes from existing partials is one enum value and result field in
// divergence.hpp and one row here; a metric that needs a new partial also adds a Partial column and its sum
// in the fused kernel (kernel_cpu.cpp) and the composite path (composite.cpp).
struct MetricInfo {
  Metric metric;  // its name comes from the enum's name table (divergence.hpp)
  bool information;    // in nats; scaled by 1/ln 2 for base 2
  bool needs_targets;  // only with targets
  std::uint32_t (*needs)(double beta);
  at::Tensor DivergenceResult::*field;
  double (*finish)(const Plan& plan, const RowTotals& row, double log_sum_p, double log_sum_q);
};

/// The metric table, in the order of kAllMetrics (column i is kMetricTable[i]).
extern const std::array<MetricInfo, kNumMetrics> kMetricTable;

/// The table row of a metric.
inline const MetricInfo& info(Metric m) { return kMetricTable[static_cast<std::size_t>(col(m))]; }

/// Validates the options against the shapes and builds the plan (mask/targets checked here).
Plan make_plan(const at::Tensor& p, const at::Tensor& q, const DivergenceOptions& options, const char* p_name,
               const char* q_name);

/// Checks temperature, beta and metrics and sets the option fields of the plan (vocab must be set).
void apply_options(const DivergenceOptions& options, Plan& plan);

/// Checks mask and targets against plan.lead_shape/vocab and fills plan.kept and plan.targets.
void plan_positions(const DivergenceOptions& options, Plan& plan);

/// Turns a row's totals into its metric values (nats), written to out[col(metric)] for each planned metric.
void finish_row(const Plan& plan, const RowTotals& row, double* out);

/// The first bad row a kernel found: its flattened index, its BadRow reason and which tensor holds it.
struct BadRowInfo {
  std::int64_t row = -1;
  int reason = 0;
  bool in_q = false;
};

/// Fused CPU kernel: fills values[k * kNumMetrics + col] for each kept row k. Returns the first bad kept row,
/// if any.
std::optional<BadRowInfo> fused_cpu(const at::Tensor& p, const at::Tensor& q, const Plan& plan, double* values);

/// Composite ATen path (any device), chunked over rows; same contract as fused_cpu.
std::optional<BadRowInfo> composite(const at::Tensor& p, const at::Tensor& q, const Plan& plan, double* values);

/// Builds the result from per-kept-row values (nats) and applies base conversion and the reduction.
DivergenceResult assemble(const Plan& plan, const std::vector<double>& values, LogBase base, Reduction reduction,
                          const at::Device& device);

/// "row 5 (position [1, 2])" for a flattened row index.
std::string describe_row(const Plan& plan, std::int64_t row);

/// Reason codes of a bad row, shared by every path.
enum BadRow : int {
  kBadNaN = 1,       // a NaN logit
  kBadPosInf = 2,    // a +inf logit
  kBadNoFinite = 3,  // every logit/T is −inf or at most the floor (−1e30 in float, −1e300 in double)
  kBadOverflow = 4,  // max(logit)·(1/T) is not finite in the compute precision (finite logits)
};

/// The reason code (0 = fine) of a row whose largest logit is `max` and whose shift is M = max·(1/T),
/// both in the compute precision T; the NaN check is the caller's.
template <typename T> inline int shift_reason(T max, T shift) {
  if (max == std::numeric_limits<T>::infinity()) return kBadPosInf;
  if (max == -std::numeric_limits<T>::infinity()) return kBadNoFinite;
  if (!(shift == shift) || shift == std::numeric_limits<T>::infinity()) return kBadOverflow;
  if (shift <= Limits<T>::floor) return kBadNoFinite;
  return 0;
}

/// Throws InvalidArgument when 1/temperature is not a finite, normal number in the compute precision of
/// `dtype` (float32 for float32/bfloat16/float16, float64 for float64): every shifted logit would then be
/// ±inf, NaN or 0.
void check_temperature(double temperature, at::ScalarType dtype);

/// Throws the InvalidArgument of a bad row found by a kernel.
[[noreturn]] void throw_bad_row(const Plan& plan, const BadRowInfo& bad, const char* p_name, const char* q_name);

}  // namespace metaprobe::divergence_detail
