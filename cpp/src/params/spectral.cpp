// Exact and randomized spectra, the WeightWatcher metrics and update-subspace measures. Everything is
// computed in double: a bf16 or f32 weight is converted once per matrix.
#include <metaprobe/params/spectral.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>


#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <metaprobe/error.hpp>

#include "randomized_svd.hpp"
#include "common/format.hpp"

namespace metaprobe::params {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = 3.14159265358979323846;

void check_options(const SpectralOptions& o) {
  if (o.k < 0) throw InvalidArgument("k: " + std::to_string(o.k) + ", expected >= 0 (0 = all singular values)");
  if (o.oversampling < 0) {
    throw InvalidArgument("oversampling: " + std::to_string(o.oversampling) + ", expected >= 0");
  }
  if (o.power_iterations < 0) {
    throw InvalidArgument("power_iterations: " + std::to_string(o.power_iterations) + ", expected >= 0");
  }
  if (!(o.tolerance >= 0)) {
    throw InvalidArgument("tolerance: " + std::to_string(o.tolerance) + ", expected >= 0 (relative residual bound)");
  }
  if (o.error_probes < 1) {
    throw InvalidArgument("error_probes: " + std::to_string(o.error_probes) + ", expected >= 1");
  }
  if (!(o.rank_eps >= 0)) throw InvalidArgument("rank_eps: " + std::to_string(o.rank_eps) + ", expected >= 0");
  if (!(o.evals_thresh >= 0)) {
    throw InvalidArgument("evals_thresh: " + std::to_string(o.evals_thresh) + ", expected >= 0");
  }
  if (o.min_evals < 2) throw InvalidArgument("min_evals: " + std::to_string(o.min_evals) + ", expected >= 2");
  if (o.small_n < 0) throw InvalidArgument("small_n: " + std::to_string(o.small_n) + ", expected >= 0");
}

at::Tensor to_double_matrix(const at::Tensor& w, bool flatten, const char* argument) {
  at::Tensor m = as_matrix(w, flatten, argument);
  if (!m.device().is_cpu()) m = m.cpu();
  m = m.to(at::kDouble).contiguous();
  if (!at::isfinite(m).all().item<bool>()) {
    throw InvalidArgument(std::string(argument) + ": contains NaN or Inf, expected finite values for spectra");
  }
  return m;
}

double default_eps(const at::Tensor& w, double rank_eps) {
  if (rank_eps > 0) return rank_eps;
  return w.scalar_type() == at::kDouble ? std::numeric_limits<double>::epsilon()
                                        : static_cast<double>(std::numeric_limits<float>::epsilon());
}

std::vector<double> to_vector_desc(const at::Tensor& s) {
  at::Tensor c = s.to(at::kDouble).contiguous();
  std::vector<double> v(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  std::sort(v.begin(), v.end(), std::greater<double>());
  return v;
}

// The elements of a 1-D tensor as doubles, in their order.
std::vector<double> to_vector(const at::Tensor& s) {
  at::Tensor c = s.to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<double> exact_values(const at::Tensor& m, const SpectralOptions& o, std::string& method) {
  const int64_t rows = m.size(0), cols = m.size(1), small = std::min(rows, cols);
  if (small == 0) {
    method = "svd";
    return {};
  }
  const bool try_gram = o.method == SvdMethod::Gram || (o.method == SvdMethod::Auto && small <= o.gram_max_side);
  if (try_gram) {
    const at::Tensor g = cols <= rows ? at::mm(m.t(), m) : at::mm(m, m.t());
    std::vector<double> lam = to_vector_desc(at::linalg_eigvalsh(g));
    std::vector<double> sv(lam.size());
    for (size_t i = 0; i < lam.size(); ++i) sv[i] = std::sqrt(std::max(lam[i], 0.0));
    // Eigenvalues of the Gram matrix carry an absolute error ~ eps * sigma_max^2, so singular values
    // far below sigma_max are not resolved; Auto then recomputes them by SVD.
    const bool resolved = sv.front() == 0 || sv.back() >= o.gram_min_ratio * sv.front();
    if (o.method == SvdMethod::Gram || resolved) {
      method = "gram";
      return sv;
    }
  }
  method = "svd";
  return to_vector_desc(at::linalg_svdvals(m));
}

TopKSvd top_k_double(const at::Tensor& m, int64_t k, const SpectralOptions& o, bool exact,
                     bool low_precision_input = false) {
  const int64_t small = std::min(m.size(0), m.size(1));
  TopKSvd out;
  const int64_t l = std::min(small, k + o.oversampling);
  auto exact_svd = [&] {
    const at::Tensor md = m.to(at::kDouble);
    auto [u, s, vh] = at::linalg_svd(md, false);
    out.U = u.narrow(1, 0, k).contiguous();
    out.S = s.narrow(0, 0, k).contiguous();
    out.V = vh.narrow(0, 0, k).t().contiguous();
    out.value_bounds = at::zeros({k}, at::kDouble);
    out.method = "svd";
    out.error_bound = 0;
  };
  if (exact || l >= small) {
    exact_svd();
    return out;
  }
  // The sketch products dominate the cost; for an input that was at most float32 they lose nothing
  // essential in float32 (the bounds measure the result either way). randomized_svd.cpp.
  const bool f32 = o.sketch_float32 && (low_precision_input || m.scalar_type() == at::kFloat);
  out = detail::randomized_top_k(f32 ? m.to(at::kFloat) : m.to(at::kDouble), k, o);
  if (!out.converged && o.exact_fallback) {
    // The bound cannot certify the requested accuracy (a flat or clustered top spectrum, or values below the
    // sketch precision): pay for the exact values rather than return uncertified ones.
    const int64_t iterations = out.iterations;
    exact_svd();
    out.iterations = iterations;
    out.converged = false;
  }
  return out;
}

// True when a top-k request on an r x c matrix takes the randomized path (not the exact SVD).
bool takes_randomized(int64_t rows, int64_t cols, int64_t k, const SpectralOptions& o) {
  const int64_t small = std::min(rows, cols);
  return k > 0 && k < small && std::min(small, k + o.oversampling) < small;
}

std::vector<double> principal_cosines(const at::Tensor& a, const at::Tensor& b) {
  return to_vector_desc(at::linalg_svdvals(at::mm(a.t(), b)));
}

void angles_from(const std::vector<double>& cosines, double& max_deg, double& mean_deg) {
  if (cosines.empty()) return;
  double sum = 0, mx = 0;
  for (double c : cosines) {
    const double deg = std::acos(std::min(1.0, std::max(0.0, c))) * 180.0 / kPi;
    sum += deg;
    mx = std::max(mx, deg);
  }
  max_deg = mx;
  mean_deg = sum / static_cast<double>(cosines.size());
}

}  // namespace

at::Tensor as_matrix(const at::Tensor& w, bool flatten, const char* argument) {
  if (!w.defined()) throw InvalidArgument(std::string(argument) + ": undefined tensor, expected a matrix");
  if (w.dim() < 2) {
    throw InvalidArgument(std::string(argument) + ": shape " + metaprobe::detail::format_shape(w.sizes()) + " has " +
                          std::to_string(w.dim()) + " dims, expected a matrix (>= 2 dims)");
  }
  if (w.dim() == 2) return w;
  if (!flatten) {
    throw InvalidArgument(std::string(argument) + ": shape " + metaprobe::detail::format_shape(w.sizes()) +
                          " has more than 2 dims, expected a matrix (or set flatten)");
  }
  return w.reshape({w.size(0), -1});
}

// The singular values of `m` (the float64 matrix of a tensor of dtype `source`): top-k by randomized SVD when
// options.k asks for fewer than all, else all of them exactly.
static Spectrum spectrum_of(const at::Tensor& m, at::ScalarType source, const SpectralOptions& options) {
  Spectrum sp;
  sp.rows = m.size(0);
  sp.cols = m.size(1);
  const int64_t small = std::min(sp.rows, sp.cols);
  if (options.k > 0 && options.k < small) {
    TopKSvd t = top_k_double(m, options.k, options, false, source != at::kDouble);
    sp.values = to_vector_desc(t.S);
    sp.method = t.method;
    sp.complete = false;
    sp.error_bound = t.error_bound;
    sp.value_bounds = to_vector(t.value_bounds);  // aligned with values (S is descending)
    sp.iterations = t.iterations;
    sp.converged = t.converged;
    return sp;
  }
  sp.values = exact_values(m, options, sp.method);
  return sp;
}

Spectrum singular_values(const at::Tensor& w, const SpectralOptions& options) {
  check_options(options);
  const at::Tensor shape = as_matrix(w, options.flatten, "w");
  if (takes_randomized(shape.size(0), shape.size(1), options.k, options)) {
    // No float64 copy of a float32 matrix on the randomized path (randomized_svd.cpp).
    return spectrum_of(detail::sketch_matrix(w, options, "w"), w.scalar_type(), options);
  }
  return spectrum_of(to_double_matrix(w, options.flatten, "w"), w.scalar_type(), options);
}

PowerLawFit fit_power_law(const std::vector<double>& evals, const SpectralOptions& options) {
  PowerLawFit fit;
  std::vector<double> x;
  x.reserve(evals.size());
  for (double v : evals) {
    if (!std::isfinite(v)) {
      throw InvalidArgument("evals: contains " + std::to_string(v) + ", expected finite eigenvalues");
    }
    if (v > options.evals_thresh) x.push_back(v);
  }
  std::sort(x.begin(), x.end());
  const int64_t n = static_cast<int64_t>(x.size());
  fit.num_evals = n;
  if (n < options.min_evals) {
    fit.reason = "only " + std::to_string(n) + " eigenvalues above evals_thresh " +
                 std::to_string(options.evals_thresh) + ", need min_evals = " + std::to_string(options.min_evals);
    return fit;
  }
  fit.xmax = x.back();
  std::vector<double> logx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) logx[i] = std::log(x[i]);
  // Suffix sums of log x make each candidate's MLE O(1); the KS scan is O(n) per candidate.
  std::vector<double> suffix(static_cast<size_t>(n + 1), 0.0);
  for (int64_t i = n - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + logx[i];
  double best_d = std::numeric_limits<double>::infinity();
  int64_t best = -1;
  double best_alpha = kNaN;
  // WeightWatcher 0.7.7 (WW_powerlaw.WWFit.fit_powerlaw_smallN, below SMALL_N_CUTOFF = 20 values): the
  // bias-corrected alpha = 1 + (n - 1)/sum log(x/xmin), only tails of at least 8 values with
  // sum log(x/xmin) > 1e-12 are candidates; WWFit then still picks the first minimal D (its J objective is
  // overwritten). Candidates it skips keep D = 1.
  const bool small = n < options.small_n;
  for (int64_t i = 0; i + 1 < n; ++i) {
    const double cnt = static_cast<double>(n - i);
    const double denom = suffix[i] - cnt * logx[i];
    const bool candidate = !small || (n - i >= 8 && denom > 1e-12);
    const double alpha = !candidate ? 0.0 : small ? 1.0 + (cnt - 1.0) / denom : 1.0 + cnt / denom;
    // WeightWatcher keeps D = 1 when alpha <= 1; a zero denominator (all tail values equal) is the same case.
    double d = 1.0;
    if (candidate && denom > 0 && std::isfinite(alpha) && alpha > 1) {
      d = 0;
      for (int64_t j = i; j < n; ++j) {
        const double theory = 1.0 - std::exp((1.0 - alpha) * (logx[j] - logx[i]));
        const double empirical = static_cast<double>(j - i) / cnt;
        d = std::max(d, std::fabs(theory - empirical));
      }
    }
    if (d < best_d) {  // first minimum wins, like np.argmin
      best_d = d;
      best = i;
      best_alpha = alpha;
    }
  }
  if (best < 0 || !(best_alpha > 1) || !std::isfinite(best_alpha)) {
    fit.reason = "no xmin candidate gave a finite alpha > 1";
    return fit;
  }
  fit.status = FitStatus::success;
  fit.alpha = best_alpha;
  fit.xmin = x[best];
  fit.D = best_d;
  fit.sigma = (best_alpha - 1.0) / std::sqrt(static_cast<double>(n - best));
  int64_t spikes = 0;
  for (double v : evals) spikes += v >= fit.xmin;
  fit.num_pl_spikes = spikes;
  return fit;
}

SpectralStats spectral_stats_from(const Spectrum& sp, double frobenius_sq, double rank_eps,
                                  const SpectralOptions& options) {
  SpectralStats s;
  s.rows = sp.rows;
  s.cols = sp.cols;
  s.method = sp.method;
  s.complete = sp.complete;
  s.error_bound = sp.error_bound;
  s.num_singular_values = static_cast<int64_t>(sp.values.size());
  s.num_evals = s.num_singular_values;
  s.frobenius_norm = std::sqrt(frobenius_sq);
  s.log_norm = std::log10(frobenius_sq);
  if (sp.values.empty()) {
    s.fit.reason = "empty matrix";
    return s;
  }
  const auto& sv = sp.values;
  s.sv_max = sv.front();
  s.sv_min = sv.back();
  s.spectral_norm = sv.front();
  s.lambda_max = sv.front() * sv.front();
  s.log_spectral_norm = std::log10(s.lambda_max);
  s.stable_rank = s.lambda_max > 0 ? frobenius_sq / s.lambda_max : kNaN;
  std::vector<double> lam(sv.size());
  for (size_t i = 0; i < sv.size(); ++i) lam[i] = sv[i] * sv[i];
  s.fit = fit_power_law(lam, options);
  if (!sp.complete) s.fit.reason = s.fit.reason.empty() ? "fit on the top-k eigenvalues only" : s.fit.reason;
  if (s.fit.status == FitStatus::success) {
    s.alpha = s.fit.alpha;
    s.alpha_weighted = s.alpha * s.log_spectral_norm;
  }
  if (!sp.complete) return s;
  // Whole-spectrum metrics.
  s.mp = mp_fit(lam, sp.rows, sp.cols);
  const double tol = sv.front() * static_cast<double>(std::max(sp.rows, sp.cols)) * rank_eps;
  s.numerical_rank = 0;
  for (double v : sv) s.numerical_rank += v > tol;
  s.condition_number = s.sv_min > 0 ? s.sv_max / s.sv_min : std::numeric_limits<double>::infinity();
  const double sum_sv = std::accumulate(sv.begin(), sv.end(), 0.0);
  if (sum_sv > 0) {
    double h = 0;
    for (double v : sv) {
      const double p = v / sum_sv;
      if (p > 0) h -= p * std::log(p);
    }
    s.effective_rank = std::exp(h);
  }
  if (s.fit.status == FitStatus::success) {
    double acc = 0;
    for (double l : lam) acc += std::pow(l, s.alpha);
    s.log_alpha_norm = std::log10(acc);
  }
  // WeightWatcher's matrix_entropy (RMT_Util.py): its matrix_rank takes eps from the singular values' numpy
  // dtype, float64 on its CPU path whatever the weight's dtype, so the rank here uses float64 eps too (not
  // rank_eps), and adds EPSILON = 1e-10 to the rank inside the log.
  const double sum_lam = std::accumulate(lam.begin(), lam.end(), 0.0);
  const double tol64 = sv.front() * static_cast<double>(std::max(sp.rows, sp.cols)) *
                       std::numeric_limits<double>::epsilon();
  int64_t rank64 = 0;
  for (double v : sv) rank64 += v > tol64;
  if (sum_lam > 0 && rank64 > 1) {
    double h = 0;
    for (double l : lam) {
      const double p = l / sum_lam + 1e-10;
      h -= p * std::log(p);
    }
    s.entropy = h / std::log(static_cast<double>(rank64) + 1e-10);
  }
  return s;
}

namespace {

// scipy.stats.entropy(p, q): sum p log(p / q) of p and q normalised to sum 1 (0 where p is 0).
double relative_entropy(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  double h = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double a = p[i] / sp, b = q[i] / sq;
    if (a > 0) h += a * std::log(a / b);
  }
  return h;
}

// The sorted eigenvalues of `m` with its entries permuted by `perm_gen`.
std::vector<double> permuted_evals(const at::Tensor& m, at::Generator& gen) {
  const at::Tensor perm = at::randperm(m.numel(), gen, at::TensorOptions().dtype(at::kLong));
  const at::Tensor sv = at::linalg_svdvals(m.reshape({-1}).index_select(0, perm).reshape(m.sizes()));
  std::vector<double> ev(static_cast<size_t>(sv.numel()));
  auto a = sv.accessor<double, 1>();
  for (int64_t i = 0; i < sv.numel(); ++i) ev[static_cast<size_t>(i)] = a[i] * a[i];
  std::sort(ev.begin(), ev.end());
  return ev;
}

RandomEsd random_esd(const at::Tensor& m, const std::vector<double>& evals_desc, uint64_t seed) {
  RandomEsd r;
  const int64_t rows = m.size(0), cols = m.size(1), small = std::min(rows, cols);
  if (small < 2) {
    r.status = "too few eigenvalues";
    return r;
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  r.replicas = small < 100 ? 5 : 1;
  std::vector<double> pooled;
  for (int64_t k = 0; k < r.replicas; ++k) {
    const auto ev = permuted_evals(m, gen);
    pooled.insert(pooled.end(), ev.begin(), ev.end());
  }
  std::sort(pooled.begin(), pooled.end());
  r.max_rand_eval = pooled.back();
  r.mp = mp_fit(pooled, rows, cols);
  const std::vector<double> once = permuted_evals(m, gen);
  std::vector<double> evals(evals_desc.rbegin(), evals_desc.rend());  // ascending, as WW's
  std::vector<double> mid(evals.size());
  for (size_t i = 0; i < evals.size(); ++i) mid[i] = (evals[i] + once[i]) / 2;
  r.rand_distance = std::sqrt((relative_entropy(evals, mid) + relative_entropy(once, mid)) / 2);
  r.ww_softrank = once.back() / evals.back();
  r.ww_maxdist = evals.back() - once.back();
  r.status = "ok";
  return r;
}

}  // namespace

SpectralStats spectral_stats(const at::Tensor& w, const SpectralOptions& options) {
  check_options(options);
  const at::Tensor m = to_double_matrix(w, options.flatten, "w");
  const Spectrum sp = spectrum_of(m, w.scalar_type(), options);
  const double fro_sq = m.numel() ? at::sum(m * m).item<double>() : 0.0;
  SpectralStats s = spectral_stats_from(sp, fro_sq, default_eps(w, options.rank_eps), options);
  if (options.randomize) {
    if (!sp.complete || sp.values.empty()) {
      s.random.status = "needs the complete spectrum (k = 0)";
    } else {
      std::vector<double> lam;
      for (double v : sp.values) lam.push_back(v * v);
      s.random = random_esd(m, lam, options.randomize_seed);
    }
  }
  return s;
}

TopKSvd top_k_svd(const at::Tensor& w, int64_t k, const SpectralOptions& options, bool exact) {
  check_options(options);
  const at::Tensor shape = as_matrix(w, options.flatten, "w");
  const int64_t small = std::min(shape.size(0), shape.size(1));
  if (k < 1 || k > small) {
    throw InvalidArgument("k: " + std::to_string(k) + ", expected 1 <= k <= min(rows, cols) = " +
                          std::to_string(small));
  }
  const at::Tensor m = !exact && takes_randomized(shape.size(0), shape.size(1), k, options)
                           ? detail::sketch_matrix(w, options, "w")
                           : to_double_matrix(w, options.flatten, "w");
  return top_k_double(m, k, options, exact, w.scalar_type() != at::kDouble);
}

namespace {

SubspaceAngles angles_double(const at::Tensor& a, const at::Tensor& b, int64_t k, const SpectralOptions& o) {
  SubspaceAngles out;
  out.k = k;
  // Exact SVD for small matrices or a large k, where the randomized sketch saves little.
  const int64_t small = std::min(a.size(0), a.size(1));
  const bool exact = small <= 1024 || 4 * k >= small;
  SpectralOptions ro = o;
  // The angles need the vectors, whose error is the bound over the gap: run every iteration, and keep the
  // randomized result (the exact branch above already covers the cases where the SVD is affordable).
  ro.power_iterations = std::max<int64_t>(o.power_iterations, 6);
  ro.tolerance = 0;
  ro.exact_fallback = false;
  TopKSvd ta = top_k_double(a, k, ro, exact);
  TopKSvd tb = top_k_double(b, k, ro, exact);
  angles_from(principal_cosines(ta.U, tb.U), out.left_max_deg, out.left_mean_deg);
  angles_from(principal_cosines(ta.V, tb.V), out.right_max_deg, out.right_mean_deg);
  return out;
}

}  // namespace

SubspaceAngles principal_angles(const at::Tensor& w0, const at::Tensor& w1, int64_t k,
                                const SpectralOptions& options) {
  check_options(options);
  const at::Tensor a = to_double_matrix(w0, options.flatten, "w0");
  const at::Tensor b = to_double_matrix(w1, options.flatten, "w1");
  if (a.sizes() != b.sizes()) {
    throw InvalidArgument("w1: shape " + metaprobe::detail::format_shape(w1.sizes()) + " differs from w0's shape " +
                          metaprobe::detail::format_shape(w0.sizes()) + ", expected the same shape");
  }
  const int64_t small = std::min(a.size(0), a.size(1));
  if (k < 1 || k > small) {
    throw InvalidArgument("k: " + std::to_string(k) + ", expected 1 <= k <= min(rows, cols) = " +
                          std::to_string(small));
  }
  return angles_double(a, b, k, options);
}

UpdateSpectralStats update_spectral_stats(const at::Tensor& w0, const at::Tensor& w1, int64_t k,
                                          const SpectralOptions& options) {
  check_options(options);
  if (k < 1) throw InvalidArgument("k: " + std::to_string(k) + ", expected >= 1");
  const at::Tensor a = to_double_matrix(w0, options.flatten, "w0");
  const at::Tensor b = to_double_matrix(w1, options.flatten, "w1");
  if (a.sizes() != b.sizes()) {
    throw InvalidArgument("w1: shape " + metaprobe::detail::format_shape(w1.sizes()) + " differs from w0's shape " +
                          metaprobe::detail::format_shape(w0.sizes()) + ", expected the same shape");
  }
  UpdateSpectralStats u;
  const int64_t small = std::min(a.size(0), a.size(1));
  if (small == 0) return u;
  k = std::min(k, small);
  u.k = k;
  SpectralOptions exact = options;
  exact.k = 0;
  std::string method;
  const std::vector<double> sd = exact_values(b - a, exact, method);
  const double eps = default_eps(w0, options.rank_eps);
  const double tol = sd.front() * static_cast<double>(std::max(a.size(0), a.size(1))) * eps;
  double total = 0, top = 0;
  for (size_t i = 0; i < sd.size(); ++i) {
    u.update_rank += sd[i] > tol;
    total += sd[i] * sd[i];
    if (static_cast<int64_t>(i) < k) top += sd[i] * sd[i];
  }
  u.normalized_rank = static_cast<double>(u.update_rank) / static_cast<double>(small);
  u.topk_energy_fraction = total > 0 ? top / total : kNaN;
  const std::vector<double> s0 = exact_values(a, exact, method);
  const std::vector<double> s1 = exact_values(b, exact, method);
  double num = 0, den = 0;
  for (size_t i = 0; i < s0.size(); ++i) {
    num += (s1[i] - s0[i]) * (s1[i] - s0[i]);
    den += s0[i] * s0[i];
  }
  u.spectral_drift = den > 0 ? std::sqrt(num / den) : kNaN;
  u.angles = angles_double(a, b, k, options);
  return u;
}

}  // namespace metaprobe::params
