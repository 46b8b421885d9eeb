// Randomized top-k SVD (Halko, Martinsson & Tropp 2011, "Finding structure with randomness", Alg. 4.4
// subspace iteration, Alg. 5.1 direct SVD, eq. 4.3 a-posteriori error estimate).
//
// Cost: the sketch products with the matrix dominate (one pass over it each): 2 for the range finder, 2 per
// subspace iteration (M V, Mᵀ Q), plus one for the finite check and one for the error probes. B = Qᵀ M is the
// transpose of the last Mᵀ Q, and the residual bounds reuse M V (Note [top-k bound]); iteration stops as soon
// as every value's bound meets options.tolerance. A
// float32 (or bf16/f16) matrix is sketched in float32 without a float64 copy; the QR and SVD of the thin
// factors run in float64.
#include "randomized_svd.hpp"

#include <cmath>
#include <string>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>
#include <Eigen/QR>
#include <Eigen/SVD>

#include <metaprobe/error.hpp>

namespace metaprobe::params::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Note [thin factors]: the QR and SVD of the thin [n, l] factors cost O(n l²), nothing next to the products
// with the matrix, but LAPACK's threaded versions of them are made of many short parallel regions; on a
// machine whose cores are shared (other processes, a notebook's kernel), each barrier waits for a descheduled
// worker and a 2048 x 42 QR measured 90-140 ms at 2 threads against 1.2 ms at 1 thread. So they run
// single-threaded in Eigen (this file is compiled without OpenMP), and the products stay in torch's BLAS.
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::Map<const RowMat> view(const at::Tensor& t) {  // t: contiguous float64 matrix
  return Eigen::Map<const RowMat>(t.data_ptr<double>(), t.size(0), t.size(1));
}

at::Tensor to_tensor(const Eigen::MatrixXd& m) {
  at::Tensor t = at::empty({m.rows(), m.cols()}, at::kDouble);
  Eigen::Map<RowMat>(t.data_ptr<double>(), m.rows(), m.cols()) = m;
  return t;
}

// Reduced QR of a tall float64 matrix y [n, l] (n >= l): Q [n, l] with orthonormal columns, R [l, l].
std::pair<Eigen::MatrixXd, Eigen::MatrixXd> thin_qr(const at::Tensor& y) {
  const at::Tensor c = y.to(at::kDouble).contiguous();
  const int64_t n = c.size(0), l = c.size(1);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(view(c));
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(n, l);
  Eigen::MatrixXd r = qr.matrixQR().topRows(l).triangularView<Eigen::Upper>();
  return {std::move(q), std::move(r)};
}

// An orthonormal basis of the columns of y (reduced QR), float64.
at::Tensor orth(const at::Tensor& y) { return to_tensor(thin_qr(y).first); }

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

// Note [top-k bound]: after each iteration the Ritz triplets of the basis Q are (u_i, s_i, v_i) with
// B = Qᵀ M = U_B S V_Bᵀ, u = Q U_B, v = V_B. With r_i = M v_i − s_i u_i and t_i = Mᵀ u_i − s_i v_i, the unit
// vector x = [u_i; v_i]/√2 has residual ||H x − s_i x|| = η_i = √((|r_i|² + |t_i|²)/2) for the symmetric
// H = [[0, M], [Mᵀ, 0]], whose eigenvalues are ±σ_j(M) (and zeros); so M has a singular value within η_i of
// s_i (the residual theorem, no probability involved). Also s_i ≤ σ_i (interlacing: B is a compression of
// M), and σ_i² ≤ s_i² + ε² with ε = ||(I − QQᵀ) M||₂ (MᵀM = BᵀB + EᵀE), which ties the indices together:
// ε, estimated by residual_bound(), is what catches a singular value the basis missed entirely. M V is the
// next iteration's product anyway (range(V_B) = range(MᵀQ)), so the residuals cost only thin products.
// Rounding: the products run in the sketch precision, so η_i has a floor of roughly √n·eps·σ_1. A value
// above f = floor_rel·s_1, floor_rel = 10·√max(rows, cols)·eps, is certified when η_i <= tolerance·s_i; a
// value at or below f is zero at that precision (rank-deficient matrices) and is certified when η_i <= f.
TopKSvd randomized_top_k(const at::Tensor& m, int64_t k, const SpectralOptions& o) {
  const int64_t small = std::min(m.size(0), m.size(1));
  const int64_t l = std::min(small, k + o.oversampling);
  const at::ScalarType dt = m.scalar_type();
  const double eps = dt == at::kFloat ? 1.1920929e-07 : 2.220446049250313e-16;
  const double floor_rel = 10.0 * std::sqrt(static_cast<double>(std::max(m.size(0), m.size(1)))) * eps;
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  // Range finder: Q = orth(M Ω), then subspace iteration (Alg. 4.4), every basis orthonormalised in float64.
  const at::Tensor omega = at::randn({m.size(1), l}, gen, m.options());
  at::Tensor q = orth(at::mm(m, omega).to(at::kDouble));
  at::Tensor y = at::mm(m.t(), q.to(dt)).to(at::kDouble);  // Mᵀ Q = Bᵀ
  TopKSvd out;
  out.method = "randomized";
  for (int64_t it = 0;; ++it) {
    // B = yᵀ with y = Q_y R_y, so B = R_yᵀ Q_yᵀ; with R_yᵀ = U_r S V_rᵀ: U_B = U_r, V_B = Q_y V_r.
    auto [qy, ry] = thin_qr(y);
    Eigen::JacobiSVD<Eigen::MatrixXd> small_svd(ry.transpose(), Eigen::ComputeFullU | Eigen::ComputeFullV);
    const at::Tensor ub = to_tensor(small_svd.matrixU());
    const at::Tensor s = to_tensor(small_svd.singularValues()).reshape({-1});
    const at::Tensor v = to_tensor(qy * small_svd.matrixV());  // orthonormal basis of range(Mᵀ Q)
    const at::Tensor mv = at::mm(m, v.to(dt)).to(at::kDouble);
    const at::Tensor uk = at::mm(q, ub.narrow(1, 0, k));
    const at::Tensor sk = s.narrow(0, 0, k);
    const at::Tensor r = mv.narrow(1, 0, k) - uk * sk;
    const at::Tensor t = at::mm(y, ub.narrow(1, 0, k)) - v.narrow(1, 0, k) * sk;
    const at::Tensor eta = ((r.square().sum(0) + t.square().sum(0)) * 0.5).sqrt();
    const double s1 = s[0].item<double>();
    const double floor_abs = floor_rel * s1;
    const bool met = at::where(sk > floor_abs, eta <= o.tolerance * sk, eta <= floor_abs).all().item<bool>();
    if (met || it >= o.power_iterations) {
      out.U = uk.contiguous();
      out.S = sk.contiguous();
      out.V = v.narrow(1, 0, k).contiguous();
      out.value_bounds = eta.contiguous();
      out.iterations = it;
      out.converged = met;
      break;
    }
    q = orth(mv);
    y = at::mm(m.t(), q.to(dt)).to(at::kDouble);
  }
  out.error_bound = residual_bound(m, q, o.error_probes, gen);
  return out;
}

}  // namespace metaprobe::params::detail
