// Randomized top-k SVD (Halko, Martinsson & Tropp 2011, "Finding structure with randomness", Alg. 4.4
// subspace iteration, Alg. 5.1 direct SVD, eq. 4.3 a-posteriori error estimate).
//
// Cost: the sketch products with the matrix dominate (one pass over it each); with q power iterations the
// range finder needs 2q + 1 of them, and B = Qᵀ M comes for free as the transpose of the last Mᵀ Q, so the
// whole call reads the matrix 2q + 2 times plus once for the finite check and once for the error probes. A
// float32 (or bf16/f16) matrix is sketched in float32 without a float64 copy; the QR and SVD of the thin
// factors run in float64.
#include "randomized_svd.hpp"

#include <cmath>
#include <string>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>

#include <metaprobe/error.hpp>

namespace metaprobe::params::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;

// An orthonormal basis of the columns of y (reduced QR), in y's dtype.
at::Tensor orth(const at::Tensor& y) { return std::get<0>(at::linalg_qr(y, "reduced")); }

// A posteriori estimate of ||(I - QQ^T) M||_2 (Halko et al. 2011, eq. 4.3: holds with probability
// >= 1 - 10^-r for r Gaussian probes).
double residual_bound(const at::Tensor& m, const at::Tensor& q, int64_t probes, at::Generator& gen) {
  at::Tensor w = at::randn({m.size(1), probes}, gen, m.options());
  at::Tensor y = at::mm(m, w).to(at::kDouble);
  const at::Tensor qd = q.to(at::kDouble);
  at::Tensor r = y - at::mm(qd, at::mm(qd.t(), y));
  const double worst = at::linalg_vector_norm(r, 2, {0}, false, c10::nullopt).max().item<double>();
  return 10.0 * std::sqrt(2.0 / kPi) * worst;
}

}  // namespace

at::Tensor sketch_matrix(const at::Tensor& w, const SpectralOptions& o, const char* argument) {
  at::Tensor m = as_matrix(w, o.flatten, argument);
  if (!m.device().is_cpu()) m = m.cpu();
  const bool low = w.scalar_type() != at::kDouble;
  m = m.to(low && o.sketch_float32 ? at::kFloat : at::kDouble).contiguous();
  if (m.numel() > 0) {
    // NaN propagates through min and max and ±inf shows in them: one read, no mask tensor.
    auto [lo, hi] = at::aminmax(m);
    const double a = lo.item<double>(), b = hi.item<double>();
    if (!std::isfinite(a) || !std::isfinite(b)) {
      throw InvalidArgument(std::string(argument) + ": contains NaN or Inf, expected finite values for spectra");
    }
  }
  return m;
}

TopKSvd randomized_top_k(const at::Tensor& m, int64_t k, const SpectralOptions& o) {
  const int64_t small = std::min(m.size(0), m.size(1));
  const int64_t l = std::min(small, k + o.oversampling);
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  // Range finder with subspace iteration; each basis is re-orthonormalised in float64 (Alg. 4.4), and
  // y = Mᵀ Q of the last basis is kept: it is Bᵀ for the final B = Qᵀ M.
  const at::Tensor omega = at::randn({m.size(1), l}, gen, m.options());
  at::Tensor q = orth(at::mm(m, omega).to(at::kDouble));
  at::Tensor y = at::mm(m.t(), q.to(m.scalar_type()));
  for (int64_t i = 0; i < o.power_iterations; ++i) {
    const at::Tensor z = orth(y.to(at::kDouble)).to(m.scalar_type());
    q = orth(at::mm(m, z).to(at::kDouble));
    y = at::mm(m.t(), q.to(m.scalar_type()));
  }
  // B = Qᵀ M = yᵀ [l, cols]; its SVD B = U_B S Vᵀ gives M ≈ (Q U_B) S Vᵀ.
  auto [ub, s, vh] = at::linalg_svd(y.to(at::kDouble).t(), false);
  TopKSvd out;
  out.U = at::mm(q, ub.narrow(1, 0, k)).contiguous();
  out.S = s.narrow(0, 0, k).contiguous();
  out.V = vh.narrow(0, 0, k).t().contiguous();
  out.method = "randomized";
  out.error_bound = residual_bound(m, q, o.error_probes, gen);
  return out;
}

}  // namespace metaprobe::params::detail
