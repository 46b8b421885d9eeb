// Spectra and WeightWatcher metrics against ATen float64 SVD references.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <metaprobe/error.hpp>
#include <metaprobe/params/spectral.hpp>

#include <nlohmann/json.hpp>

// glog (pulled in by ATen) defines CHECK as an aborting assertion; Catch2's must win.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::params;
using Catch::Matchers::Contains;

namespace {

std::vector<double> svd_ref(const at::Tensor& w) {
  at::Tensor s = at::linalg_svdvals(w.to(at::kDouble));
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

at::Tensor decaying(int64_t m, int64_t n, double rate, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor u = std::get<0>(at::linalg_qr(at::randn({m, std::min(m, n)}, at::kDouble), "reduced"));
  at::Tensor v = std::get<0>(at::linalg_qr(at::randn({n, std::min(m, n)}, at::kDouble), "reduced"));
  at::Tensor s = at::exp(-rate * at::arange(std::min(m, n), at::kDouble));
  return at::mm(u * s, v.t());
}

}  // namespace

TEST_CASE("exact singular values", "[params][spectral]") {
  at::manual_seed(3);
  SECTION("Gram and SVD paths agree with the float64 SVD on a random matrix") {
    at::Tensor w = at::randn({300, 120});
    const auto ref = svd_ref(w);
    for (SvdMethod m : {SvdMethod::Auto, SvdMethod::Gram, SvdMethod::Svd}) {
      SpectralOptions o;
      o.method = m;
      const Spectrum sp = singular_values(w, o);
      REQUIRE(sp.values.size() == ref.size());
      for (size_t i = 0; i < ref.size(); ++i) CHECK(sp.values[i] == Approx(ref[i]).epsilon(1e-9));
    }
    CHECK(singular_values(w).method == "gram");
    CHECK(singular_values(w.t()).method == "gram");
  }
  SECTION("Auto falls back to SVD when the Gram matrix cannot resolve small singular values") {
    at::Tensor w = at::mm(at::randn({200, 5}, at::kDouble), at::randn({5, 80}, at::kDouble));
    const Spectrum sp = singular_values(w);
    CHECK(sp.method == "svd");
    const SpectralStats s = spectral_stats(w);
    CHECK(s.numerical_rank == 5);
    CHECK((std::isinf(s.condition_number) || s.condition_number > 1e10));
  }
  SECTION("higher ranks are flattened to [shape0, rest], or rejected") {
    at::Tensor w = at::randn({8, 3, 3, 3});
    const Spectrum sp = singular_values(w);
    CHECK(sp.rows == 8);
    CHECK(sp.cols == 27);
    SpectralOptions o;
    o.flatten = false;
    REQUIRE_THROWS_WITH(singular_values(w, o), Contains("w: shape [8, 3, 3, 3] has more than 2 dims"));
    REQUIRE_THROWS_AS(spectral_stats(at::randn({5})), InvalidArgument);
    REQUIRE_THROWS_WITH(spectral_stats(at::randn({5})), Contains("w: shape [5] has 1 dims"));
  }
  SECTION("non-finite entries are rejected") {
    at::Tensor w = at::randn({20, 20});
    w[3][4] = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(spectral_stats(w), Contains("w: contains NaN or Inf"));
  }
}

TEST_CASE("randomized top-k singular values", "[params][spectral]") {
  at::Tensor w = decaying(600, 400, 0.05, 4);
  const auto ref = svd_ref(w);
  SpectralOptions o;
  o.k = 20;
  SECTION("top-k values match the exact ones within the error bound") {
    const Spectrum sp = singular_values(w, o);
    CHECK(sp.method == "randomized");
    CHECK_FALSE(sp.complete);
    REQUIRE(sp.values.size() == 20);
    double worst = 0;
    for (size_t i = 0; i < 20; ++i) {
      worst = std::max(worst, std::fabs(sp.values[i] - ref[i]) / ref[i]);
      CHECK(std::fabs(sp.values[i] - ref[i]) <= sp.error_bound);
    }
    CHECK(worst < 1e-4);
    CHECK(sp.error_bound >= ref[30]);  // the residual norm is at least sigma_{k+p+1}
  }
  SECTION("the same seed gives the same values") {
    CHECK(singular_values(w, o).values == singular_values(w, o).values);
  }
  SECTION("top-k stats keep exact Frobenius but leave whole-spectrum metrics undefined") {
    const SpectralStats s = spectral_stats(w, o);
    CHECK(s.frobenius_norm == Approx(w.norm().item<double>()).epsilon(1e-12));
    CHECK(s.stable_rank == Approx(std::pow(w.norm().item<double>() / ref[0], 2)).epsilon(1e-6));
    CHECK(std::isnan(s.effective_rank));
    CHECK(s.numerical_rank == -1);
  }
  SECTION("bad options are rejected with the value named") {
    SpectralOptions bad;
    bad.k = -2;
    REQUIRE_THROWS_WITH(singular_values(w, bad), Contains("k: -2"));
    bad.k = 0;
    bad.min_evals = 1;
    REQUIRE_THROWS_WITH(spectral_stats(w, bad), Contains("min_evals: 1"));
    REQUIRE_THROWS_WITH(top_k_svd(w, 401), Contains("k: 401, expected 1 <= k <= min(rows, cols) = 400"));
  }
}

namespace {

// u diag(s) vᵀ with Haar-random orthonormal u [m, r], v [n, r] (r = s.numel()), float64.
at::Tensor with_spectrum(int64_t m, int64_t n, const at::Tensor& s, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t r = s.numel();
  at::Tensor u = std::get<0>(at::linalg_qr(at::randn({m, r}, at::kDouble), "reduced"));
  at::Tensor v = std::get<0>(at::linalg_qr(at::randn({n, r}, at::kDouble), "reduced"));
  return at::mm(u * s, v.t());
}

}  // namespace

TEST_CASE("top-k values carry residual bounds, uncertified ones fall back to the exact SVD", "[params][spectral]") {
  const int64_t n = 512, k = 16;
  const at::Tensor idx = at::arange(n, at::kDouble);
  // Each spectrum, the float32 matrix the call sees, and the float64 reference of that very matrix.
  auto check = [&](const at::Tensor& w64, double tol, const char* expect_method) {
    const at::Tensor w = w64.to(at::kFloat);
    const auto ref = svd_ref(w);
    SpectralOptions o;
    o.tolerance = tol;
    const TopKSvd t = top_k_svd(w, k, o);
    CHECK(t.method == expect_method);
    REQUIRE(t.S.numel() == k);
    REQUIRE(t.value_bounds.numel() == k);
    // 10·√n·eps(float32)·σ_1: the precision to which the float32 sketch certifies values (zeros included)
    const double floor = 10 * std::sqrt(static_cast<double>(n)) * 1.1920929e-07 * ref[0];
    for (int64_t i = 0; i < k; ++i) {
      const double got = t.S[i].item<double>(), b = t.value_bounds[i].item<double>();
      CAPTURE(i, got, ref[i], b);
      CHECK(std::fabs(got - ref[i]) <= std::max(tol * ref[i], floor));
      // the residual theorem: a singular value within the bound (here the i-th, the spectra have no misses)
      CHECK(std::fabs(got - ref[i]) <= b + 1e-6 * ref[0]);
      // values above the float floor meet the relative tolerance itself; zero ones are certified to the floor
      if (t.method == std::string("randomized")) CHECK(b <= (got > floor ? tol * got : floor) * 1.0000001);
    }
    return t;
  };
  SECTION("decaying spectrum: a few iterations meet the tolerance") {
    const TopKSvd t = check(with_spectrum(n, n, at::pow(0.5, idx / 8), 1), 1e-3, "randomized");
    CHECK(t.converged);
    CHECK(t.iterations <= 4);
    check(with_spectrum(n, n, at::pow(0.5, idx / 8), 1), 1e-5, "randomized");
  }
  SECTION("flat spectrum: every basis is exact") {
    check(with_spectrum(n, n, at::ones({n}, at::kDouble), 2), 1e-3, "randomized");
  }
  SECTION("clustered top values above a decaying tail") {
    at::Tensor s = at::cat({1.0 + 1e-7 * at::arange(24, at::kDouble), 0.4 * at::pow(0.5, at::arange(n - 24, at::kDouble) / 6)});
    check(with_spectrum(n, n, std::get<0>(at::sort(s, 0, true)), 3), 1e-3, "randomized");
  }
  SECTION("rank-deficient: values past the rank are zero within the sketch precision") {
    at::Tensor s = at::cat({at::pow(0.9, at::arange(10, at::kDouble)), at::zeros({n - 10}, at::kDouble)});
    check(with_spectrum(n, 300, s.narrow(0, 0, 300), 4), 1e-3, "randomized");
  }
  SECTION("a Gaussian matrix's top values cannot be certified: exact fallback, or uncertified on request") {
    at::manual_seed(5);
    const at::Tensor w = at::randn({n, n}) / std::sqrt(static_cast<double>(n));
    const TopKSvd t = check(w.to(at::kDouble), 1e-3, "svd");
    CHECK_FALSE(t.converged);
    SpectralOptions o;
    o.exact_fallback = false;
    const TopKSvd r = top_k_svd(w, k, o);
    CHECK(r.method == "randomized");
    CHECK_FALSE(r.converged);
    CHECK(r.iterations == o.power_iterations);
    const auto ref = svd_ref(w);
    for (int64_t i = 0; i < k; ++i) {
      CHECK(std::fabs(r.S[i].item<double>() - ref[i]) <= r.value_bounds[i].item<double>() + 1e-6 * ref[0]);
      CHECK(r.S[i].item<double>() <= ref[i] * (1 + 1e-6));  // interlacing: Ritz values from below
    }
  }
  SECTION("singular_values reports the same certificates") {
    SpectralOptions o;
    o.k = k;
    const Spectrum sp = singular_values(with_spectrum(n, n, at::pow(0.5, idx / 8), 1).to(at::kFloat), o);
    CHECK(sp.method == "randomized");
    REQUIRE(sp.value_bounds.size() == static_cast<size_t>(k));
    CHECK(sp.converged);
    SpectralOptions bad;
    bad.tolerance = -1;
    REQUIRE_THROWS_WITH(top_k_svd(at::randn({50, 40}), 3, bad), Contains("tolerance: -1"));
  }
}

TEST_CASE("spectral metrics follow their definitions", "[params][spectral]") {
  at::manual_seed(5);
  at::Tensor w = at::randn({256, 64}, at::kDouble) / 16.0;
  const SpectralStats s = spectral_stats(w);
  const auto sv = svd_ref(w);
  double fro2 = 0, sum = 0;
  for (double v : sv) {
    fro2 += v * v;
    sum += v;
  }
  SECTION("norms and ranks") {
    CHECK(s.spectral_norm == Approx(sv[0]).epsilon(1e-10));
    CHECK(s.stable_rank == Approx(fro2 / (sv[0] * sv[0])).epsilon(1e-10));
    double h = 0;
    for (double v : sv) h -= (v / sum) * std::log(v / sum);
    CHECK(s.effective_rank == Approx(std::exp(h)).epsilon(1e-10));
    CHECK(s.numerical_rank == 64);
    CHECK(s.condition_number == Approx(sv[0] / sv.back()).epsilon(1e-8));
    CHECK(s.log_norm == Approx(std::log10(fro2)).epsilon(1e-10));
    CHECK(s.log_spectral_norm == Approx(std::log10(sv[0] * sv[0])).epsilon(1e-10));
  }
  SECTION("WeightWatcher metrics use lambda = sigma^2") {
    REQUIRE(s.fit.status == FitStatus::success);
    CHECK(s.alpha_weighted == Approx(s.alpha * std::log10(sv[0] * sv[0])));
    double acc = 0;
    for (double v : sv) acc += std::pow(v * v, s.alpha);
    CHECK(s.log_alpha_norm == Approx(std::log10(acc)).epsilon(1e-10));
    int64_t spikes = 0;
    // xmin is one of the eigenvalues: compare with a relative tolerance, as sigma^2 from the SVD and the
    // eigenvalue the fit chose may differ in the last bits.
    for (double v : sv) spikes += v * v >= s.fit.xmin * (1 - 1e-12);
    CHECK(s.fit.num_pl_spikes == spikes);
    CHECK(s.entropy > 0);
    CHECK(s.entropy <= 1.0);
  }
}

TEST_CASE("power-law fit", "[params][spectral][powerlaw]") {
  SECTION("recovers the exponent of Pareto samples") {
    at::manual_seed(6);
    // Inverse-CDF samples of a Pareto with alpha = 2.5 and xmin = 1.
    at::Tensor u = at::rand({4000}, at::kDouble);
    at::Tensor x = at::pow(1.0 - u, -1.0 / 1.5);
    std::vector<double> ev(x.data_ptr<double>(), x.data_ptr<double>() + x.numel());
    const PowerLawFit f = fit_power_law(ev);
    REQUIRE(f.status == FitStatus::success);
    CHECK(f.alpha == Approx(2.5).margin(0.15));
    CHECK(f.D < 0.05);
    CHECK(f.sigma == Approx((f.alpha - 1) / std::sqrt(static_cast<double>(f.num_pl_spikes))).epsilon(1e-9));
  }
  SECTION("too few eigenvalues is a failed fit with the reason, not a skip") {
    const PowerLawFit f = fit_power_law({1.0, 2.0, 3.0});
    CHECK(f.status == FitStatus::failed);
    CHECK_THAT(f.reason, Contains("only 3 eigenvalues above evals_thresh"));
    CHECK(std::isnan(f.alpha));
  }
  SECTION("eigenvalues at or below evals_thresh are left out") {
    std::vector<double> ev(20, 1e-9);
    const PowerLawFit f = fit_power_law(ev);
    CHECK(f.num_evals == 0);
    CHECK(f.status == FitStatus::failed);
  }
  SECTION("all-equal eigenvalues cannot be fitted") {
    const PowerLawFit f = fit_power_law(std::vector<double>(50, 2.0));
    CHECK(f.status == FitStatus::failed);
  }
  SECTION("a zero matrix gets a row with the reason") {
    const SpectralStats s = spectral_stats(at::zeros({30, 20}));
    CHECK(s.fit.status == FitStatus::failed);
    CHECK(s.spectral_norm == 0);
    CHECK(std::isnan(s.stable_rank));
  }
}

TEST_CASE("update spectra and principal angles", "[params][spectral][update]") {
  at::manual_seed(7);
  at::Tensor w0 = decaying(300, 200, 0.03, 8);
  SECTION("a rank-3 update has normalized rank 3/200 and all its energy in the top 3") {
    at::Tensor d = at::mm(at::randn({300, 3}, at::kDouble), at::randn({3, 200}, at::kDouble)) * 1e-3;
    const UpdateSpectralStats u = update_spectral_stats(w0, w0 + d, 3);
    CHECK(u.update_rank == 3);
    CHECK(u.normalized_rank == Approx(3.0 / 200.0));
    CHECK(u.topk_energy_fraction == Approx(1.0).epsilon(1e-9));
    CHECK(u.spectral_drift > 0);
  }
  SECTION("identical matrices have zero angles; an orthogonal rotation of the top subspace has 90 degrees") {
    const SubspaceAngles same = principal_angles(w0, w0, 5);
    CHECK(same.left_max_deg == Approx(0).margin(1e-5));
    CHECK(same.right_mean_deg == Approx(0).margin(1e-5));
    // Swap the singular values of the first 5 and the next 5 directions.
    auto [u, s, vh] = at::linalg_svd(w0, false);
    at::Tensor s2 = s.clone();
    s2.narrow(0, 0, 5).copy_(s.narrow(0, 5, 5));
    s2.narrow(0, 5, 5).copy_(s.narrow(0, 0, 5));
    at::Tensor w1 = at::mm(u * s2, vh);
    const SubspaceAngles rot = principal_angles(w0, w1, 5);
    CHECK(rot.left_max_deg == Approx(90).margin(1e-4));
    CHECK(rot.left_mean_deg == Approx(90).margin(1e-4));
    const UpdateSpectralStats u0 = update_spectral_stats(w0, w0, 4);
    CHECK(u0.update_rank == 0);
    CHECK(std::isnan(u0.topk_energy_fraction));
    CHECK(u0.spectral_drift == 0);
  }
  SECTION("shape mismatches are rejected") {
    REQUIRE_THROWS_WITH(principal_angles(w0, w0.t(), 3), Contains("w1: shape [200, 300] differs"));
    REQUIRE_THROWS_WITH(update_spectral_stats(w0, w0, 0), Contains("k: 0, expected >= 1"));
  }
}

TEST_CASE("WeightWatcher parity: entropy rank, num_evals and the small-N fit", "[params][spectral][ww]") {
  SECTION("entropy takes the rank with float64 eps even for float32 input (WW's CPU path)") {
    at::manual_seed(8);
    at::Tensor u = std::get<0>(at::linalg_qr(at::randn({64, 32}, at::kDouble)));
    at::Tensor v = std::get<0>(at::linalg_qr(at::randn({32, 32}, at::kDouble)));
    at::Tensor s = at::logspace(0, -9, 32, 10.0, at::kDouble);
    at::Tensor w = at::matmul(u * s, v.t()).to(at::kFloat);
    SpectralOptions o;
    o.method = SvdMethod::Svd;
    const SpectralStats st = spectral_stats(w, o);
    const auto sv = svd_ref(w.to(at::kDouble));
    double lam_sum = 0;
    for (double x : sv) lam_sum += x * x;
    auto entropy_with = [&](double eps) {
      int64_t r = 0;
      for (double x : sv) r += x > sv[0] * 64 * eps;
      double h = 0;
      for (double x : sv) {
        const double p = x * x / lam_sum + 1e-10;
        h -= p * std::log(p);
      }
      return std::make_pair(r, h / std::log(static_cast<double>(r) + 1e-10));
    };
    const auto [r64, h64] = entropy_with(std::numeric_limits<double>::epsilon());
    const auto [r32, h32] = entropy_with(std::numeric_limits<float>::epsilon());
    REQUIRE(r64 > r32);                            // the two rules differ on this matrix
    CHECK(st.numerical_rank == r32);               // numerical_rank keeps the dtype's eps
    CHECK(st.entropy == Approx(h64).epsilon(1e-10));
    CHECK(std::abs(st.entropy - h32) > 0.02);
    CHECK(st.num_evals == 32);
  }

  SECTION("below 20 eigenvalues the fit is WW 0.7.7's small-N estimator") {
    std::vector<double> ev;
    for (int i = 1; i <= 15; ++i) ev.push_back(std::pow(static_cast<double>(i), 1.7) * 0.01);
    const PowerLawFit f = fit_power_law(ev);
    REQUIRE(f.status == FitStatus::success);
    // Reference: candidates are tails of >= 8 values; alpha = 1 + (n - 1)/sum log(x/xmin); first minimal D.
    std::vector<double> x = ev;
    std::sort(x.begin(), x.end());
    const int n = static_cast<int>(x.size());
    double best_d = 2, best_alpha = 0, best_xmin = 0;
    for (int i = 0; i + 1 < n; ++i) {
      const int m = n - i;
      if (m < 8) continue;
      double s = 0;
      for (int j = i; j < n; ++j) s += std::log(x[j] / x[i]);
      const double a = 1.0 + (m - 1.0) / s;
      double d = 0;
      for (int j = i; j < n; ++j) d = std::max(d, std::fabs(1.0 - std::pow(x[j] / x[i], 1.0 - a) - (j - i) / double(m)));
      if (d < best_d) best_d = d, best_alpha = a, best_xmin = x[i];
    }
    CHECK(f.alpha == Approx(best_alpha).epsilon(1e-12));
    CHECK(f.D == Approx(best_d).epsilon(1e-12));
    CHECK(f.xmin == best_xmin);
    SpectralOptions standard;
    standard.small_n = 0;
    const PowerLawFit g = fit_power_law(ev, standard);
    CHECK(g.alpha != Approx(f.alpha).epsilon(1e-6));  // the standard MLE is another estimator
    SpectralOptions bad;
    bad.small_n = -1;
    REQUIRE_THROWS_WITH(spectral_stats(at::randn({4, 4}), bad), Contains("small_n: -1, expected >= 0"));
  }
}

TEST_CASE("the fit status and the SVD method are named by their enums' tables", "[spectral]") {
  using metaprobe::enum_name;
  using metaprobe::parse_enum;
  CHECK(enum_name(FitStatus::success) == "success");
  CHECK(nlohmann::json(FitStatus::failed) == "failed");
  CHECK(parse_enum<SvdMethod>("gram") == SvdMethod::Gram);
  REQUIRE_THROWS_WITH(parse_enum<SvdMethod>("qr"), "method: 'qr', expected one of auto, gram, svd");
  REQUIRE_THROWS_WITH(nlohmann::json("done").get<FitStatus>(),
                      Catch::Matchers::Contains("'done' is not a fit status, expected one of success, failed"));
}
