#pragma once
// Per-tensor and pairwise (reference vs tuned) parameter statistics: one fused pass over the data, any dtype,
// double accumulation, results independent of the thread count. Definitions: docs/params.md.
#include <cstdint>
#include <string>

#include <metaprobe/common/fields.hpp>

#include <ATen/ATen.h>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/error.hpp>

namespace metaprobe::params {

/// Statistics of one tensor. Moments, norms, min/max and zero_fraction are over the finite values only;
/// NaN and ±Inf entries are counted in nan_count / inf_count and otherwise ignored.
struct TensorStats {
  int64_t numel = 0;         // all elements, including non-finite ones
  int64_t finite_count = 0;  // elements the statistics below are over
  int64_t nan_count = 0;
  int64_t inf_count = 0;
  double mean = 0;
  double std = 0;               // population standard deviation (ddof = 0), like numpy's default
  double min = 0;
  double max = 0;
  double mean_abs = 0;          // mean |x|
  double l2_norm = 0;           // sqrt(sum x^2)
  double linf_norm = 0;         // max |x|
  double zero_fraction = 0;     // #{x == 0} / finite_count
  double skewness = 0;          // m3 / m2^1.5 (scipy.stats.skew, bias=True); NaN for a constant tensor
  double excess_kurtosis = 0;   // m4 / m2^2 - 3 (scipy.stats.kurtosis, fisher=True, bias=True); NaN if constant
  double sum_squares = 0;       // sum x^2 over finite values (exact aggregation across tensors)
};
// The serialised fields (JSON, Python dicts, column lists); sum_squares is internal.
#define METAPROBE_TENSOR_STATS_FIELDS(X, LATER)                                                           \
  X("numel", numel) X("finite_count", finite_count) X("nan_count", nan_count) X("inf_count", inf_count)  \
  X("mean", mean) X("std", std) X("min", min) X("max", max) X("mean_abs", mean_abs) X("l2_norm", l2_norm) \
  X("linf_norm", linf_norm) X("zero_fraction", zero_fraction) X("skewness", skewness)                    \
  X("excess_kurtosis", excess_kurtosis)
METAPROBE_RECORD(TensorStats, METAPROBE_TENSOR_STATS_FIELDS)

/// All per-tensor statistics in one pass over a CPU tensor of any floating, integer or bool dtype.
/// Non-contiguous tensors are made contiguous first (a copy); CUDA tensors are copied to the CPU.
TensorStats tensor_stats(const at::Tensor& t);

/// Tolerances of the two update-sparsity rules of the literature.
struct UpdateOptions {
  double atol = 1e-5;  // "unchanged" when |w1 - w0| <= atol (Mukherjee et al. 2025)
  double eta = 1e-3;   // "unchanged" when |w1 - w0| <= eta * max(|w0|, |w1|) (Path Not Taken, Def. 2.1)
};
#define METAPROBE_UPDATE_OPTIONS_FIELDS(X, LATER) X("atol", atol) X("eta", eta)
METAPROBE_RECORD(UpdateOptions, METAPROBE_UPDATE_OPTIONS_FIELDS)

/// What update summaries do when a matched pair holds NaN or ±Inf on either side.
enum class NonFinitePolicy {
  nan,    // the group's ratios and fractions are NaN and nonfinite_count says how many pairs (default)
  error,  // compare_checkpoints throws InvalidArgument naming the first such tensor
};

METAPROBE_ENUM_NAMES(NonFinitePolicy, "nonfinite", "'{value}', expected one of {names}",
                     {NonFinitePolicy::nan, "nan"}, {NonFinitePolicy::error, "error"})

/// "nan" / "error".
inline std::string to_string(NonFinitePolicy policy) { return std::string(enum_name(policy)); }

/// The policy named `name`; throws InvalidArgument naming `what` and the valid names.
inline NonFinitePolicy parse_nonfinite_policy(const std::string& name, const std::string& what = "nonfinite") {
  return parse_enum<NonFinitePolicy>(name, what);
}

/// How a tuned tensor w1 differs from its reference w0 (same shape). Over the pairs where both are finite;
/// the other pairs are counted in nonfinite_count.
struct UpdateStats {
  int64_t numel = 0;
  int64_t finite_count = 0;
  int64_t nonfinite_count = 0;
  double delta_fro = 0;           // ||w1 - w0||_F
  double ref_fro = 0;             // ||w0||_F
  double tuned_fro = 0;           // ||w1||_F
  double rel_update_norm = 0;     // ||w1 - w0||_F / ||w0||_F (NaN when w0 == 0 and w1 != w0, 0 when both 0)
  double cosine = 0;              // <w0, w1> / (||w0|| ||w1||); NaN when either is zero
  double max_abs_delta = 0;       // max |w1 - w0|
  double sparsity_abs = 0;        // fraction with |w1 - w0| <= atol
  double sparsity_rel = 0;        // fraction with |w1 - w0| <= eta * max(|w0|, |w1|)
  double unchanged_fraction = 0;  // fraction with w1 == w0 exactly
  double sign_flip_fraction = 0;  // fraction with w0 * w1 < 0 (a zero on either side is not a flip)
  // Raw sums for exact aggregation over layers and modules.
  double sum_sq_delta = 0, sum_sq_ref = 0, sum_sq_tuned = 0, dot = 0;
  int64_t count_abs = 0, count_rel = 0, count_unchanged = 0, count_sign_flip = 0;
};
// The serialised fields; the raw sums and counts are internal (exact aggregation).
#define METAPROBE_UPDATE_STATS_FIELDS(X, LATER)                                                                \
  X("numel", numel) X("finite_count", finite_count) X("nonfinite_count", nonfinite_count)                     \
  X("delta_fro", delta_fro) X("ref_fro", ref_fro) X("tuned_fro", tuned_fro) X("rel_update_norm", rel_update_norm) \
  X("cosine", cosine) X("max_abs_delta", max_abs_delta) X("sparsity_abs", sparsity_abs)                        \
  X("sparsity_rel", sparsity_rel) X("unchanged_fraction", unchanged_fraction)                                 \
  X("sign_flip_fraction", sign_flip_fraction)
METAPROBE_RECORD(UpdateStats, METAPROBE_UPDATE_STATS_FIELDS)

/// Update statistics of w1 against w0 in one fused pass; throws InvalidArgument when the shapes differ or
/// a tolerance is negative or not finite.
UpdateStats update_stats(const at::Tensor& w0, const at::Tensor& w1, const UpdateOptions& options = {});

}  // namespace metaprobe::params
