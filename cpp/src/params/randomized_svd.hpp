#pragma once
// Internal: the randomized top-k SVD shared by singular_values, spectral_stats, top_k_svd and the subspace
// measures (cpp/src/params/randomized_svd.cpp; docs/params.md, "Top-k").
#include <cstdint>

#include <ATen/ATen.h>

#include <metaprobe/params/spectral.hpp>

namespace metaprobe::params::detail {

/// The matrix the randomized SVD of `w` works on: float32 when w is at most 32-bit and
/// options.sketch_float32, else float64; contiguous, on the CPU, checked finite in one pass (NaN/±inf raise
/// InvalidArgument naming `argument`). No float64 copy of a float32 matrix is made.
at::Tensor sketch_matrix(const at::Tensor& w, const SpectralOptions& options, const char* argument);

/// Top-k singular triplets (float64) of the matrix m (float32 or float64; see sketch_matrix) by randomized
/// subspace iteration with options.oversampling extra columns, at most options.power_iterations iterations
/// (fewer once every residual bound meets options.tolerance; converged says whether it did), the per-value
/// residual bounds and the a-posteriori estimate of ||(I − QQᵀ) m||₂ in error_bound. Needs
/// k + oversampling < min(rows, cols). Never falls back to the exact SVD itself (the caller does).
TopKSvd randomized_top_k(const at::Tensor& m, int64_t k, const SpectralOptions& options);

}  // namespace metaprobe::params::detail
