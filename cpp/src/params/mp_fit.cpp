// WeightWatcher's Marchenko–Pastur fit of an ESD (weightwatcher 0.7.7, WeightWatcher.mp_fit with rescale and
// RMT_Util.fit_density_with_range / resid_mp), step for step so that mp_softrank matches the package.
#include <metaprobe/params/spectral.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace metaprobe::params {
namespace {

constexpr double kPi = 3.14159265358979323846;

// numpy.nan_to_num: NaN -> 0, +inf -> the largest double, -inf -> the most negative.
double nan_to_num(double v) {
  if (std::isnan(v)) return 0.0;
  if (std::isinf(v)) return v > 0 ? std::numeric_limits<double>::max() : -std::numeric_limits<double>::max();
  return v;
}

// The kernel density of `data` on `grid` with scikit-learn's linear kernel of bandwidth h:
// (1 / (n h)) sum_j max(0, 1 - |x - t_j| / h).
std::vector<double> linear_kde(const std::vector<double>& data, const std::vector<double>& grid, double h) {
  std::vector<double> out(grid.size(), 0.0);
  const double norm = 1.0 / (static_cast<double>(data.size()) * h);
  for (size_t i = 0; i < grid.size(); ++i) {
    double s = 0;
    for (double t : data) {
      const double d = std::abs(grid[i] - t);
      if (d < h) s += 1.0 - d / h;
    }
    out[i] = s * norm;
  }
  return out;
}

// resid_mp(sigma, ..., allresid=False): the sum of squared residuals of the MP (or quarter-circle) density
// against the kernel density where that density exceeds 0.01; 1000 per point when the MP edges are implausible.
struct Residual {
  std::vector<double> x, y;  // the grid points kept (density > 0.01) and the density there
  double q = 1, x_peak = 0, x_max = 0;
  double operator()(double sigma) const {
    double sum = 0;
    if (q == 1.0) {
      for (size_t i = 0; i < x.size(); ++i) {
        const double ymp = nan_to_num((1 / (kPi * sigma * sigma)) * std::sqrt(4 - x[i] * x[i]));
        sum += (ymp - y[i]) * (ymp - y[i]);
      }
      return sum;
    }
    const double inv = 1 / q;
    const double b = std::pow(sigma * (1 + std::sqrt(1 / q)), 2);
    const double a = std::pow(sigma * (1 - std::sqrt(1 / q)), 2);
    if (b < x_peak || b > x_max || a > x_peak) return 1000.0 * 1000.0 * static_cast<double>(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double ymp = nan_to_num((1 / (2 * kPi * sigma * sigma * x[i] * inv)) * std::sqrt((b - x[i]) * (x[i] - a)));
      sum += (ymp - y[i]) * (ymp - y[i]);
    }
    return sum;
  }
};

// scipy.optimize.fmin (Nelder–Mead, default settings) in one dimension, from x0.
double nelder_mead_1d(const Residual& f, double x0) {
  constexpr double rho = 1, chi = 2, psi = 0.5, shrink = 0.5, xatol = 1e-4, fatol = 1e-4;
  constexpr int maxiter = 200, maxfun = 200;
  int fcalls = 0;
  auto call = [&](double x) {
    ++fcalls;
    return f(x);
  };
  double sim[2] = {x0, x0 != 0 ? (1 + 0.05) * x0 : 0.00025};
  double fsim[2] = {call(sim[0]), call(sim[1])};
  auto order = [&]() {
    if (fsim[1] < fsim[0]) std::swap(sim[0], sim[1]), std::swap(fsim[0], fsim[1]);  // argsort: stable on ties
  };
  order();
  int iterations = 1;
  while (fcalls < maxfun && iterations < maxiter) {
    if (std::abs(sim[1] - sim[0]) <= xatol && std::abs(fsim[0] - fsim[1]) <= fatol) break;
    const double xbar = sim[0];  // the centroid of every vertex but the worst
    const double xr = (1 + rho) * xbar - rho * sim[1];
    const double fxr = call(xr);
    bool doshrink = false;
    if (fxr < fsim[0]) {
      const double xe = (1 + rho * chi) * xbar - rho * chi * sim[1];
      const double fxe = call(xe);
      if (fxe < fxr) {
        sim[1] = xe, fsim[1] = fxe;
      } else {
        sim[1] = xr, fsim[1] = fxr;
      }
    } else if (fxr < fsim[1]) {  // scipy's "fxr < fsim[-2]" (a plain reflection) cannot hold in one dimension
      const double xc = (1 + psi * rho) * xbar - psi * rho * sim[1];
      const double fxc = call(xc);
      if (fxc <= fxr) {
        sim[1] = xc, fsim[1] = fxc;
      } else {
        doshrink = true;
      }
    } else {
      const double xcc = (1 - psi) * xbar + psi * sim[1];
      const double fxcc = call(xcc);
      if (fxcc < fsim[1]) {
        sim[1] = xcc, fsim[1] = fxcc;
      } else {
        doshrink = true;
      }
    }
    if (doshrink) {
      sim[1] = sim[0] + shrink * (sim[1] - sim[0]);
      fsim[1] = call(sim[1]);
    }
    ++iterations;
    order();
  }
  return sim[0];
}

}  // namespace

MpFit mp_fit(const std::vector<double>& evals, int64_t rows, int64_t cols) {
  MpFit fit;
  const int64_t n = std::max(rows, cols), m = std::min(rows, cols);
  if (m < 2 || evals.size() < 2) {
    fit.status = "too few eigenvalues (the MP fit needs at least 2)";
    return fit;
  }
  double total = 0;
  for (double e : evals) total += e;
  if (!(total > 0) || !std::isfinite(total)) {
    fit.status = "the eigenvalues sum to " + std::to_string(total) + ", expected a positive finite sum";
    return fit;
  }
  const double q = static_cast<double>(n) / static_cast<double>(m);
  // rescale: the ESD of W * Wscale, Wscale = sqrt(#evals) / ||W||_F, so the mean eigenvalue is 1
  const double wscale = std::sqrt(static_cast<double>(evals.size())) / std::sqrt(total);
  std::vector<double> to_plot(evals.size());
  for (size_t i = 0; i < evals.size(); ++i) to_plot[i] = (wscale * wscale) * evals[i];
  const double lambda_max = *std::max_element(to_plot.begin(), to_plot.end());
  std::vector<double> to_fit = to_plot;
  if (q == 1.0)
    for (auto& v : to_fit) v = std::sqrt(v);
  // the kernel density on numpy.linspace(0, max + 0.5, 1000), kept where it exceeds 0.01
  const double stop = *std::max_element(to_fit.begin(), to_fit.end()) + 0.5;
  std::vector<double> grid(1000);
  const double step = stop / 999.0;
  for (size_t i = 0; i < grid.size(); ++i) grid[i] = static_cast<double>(i) * step;
  grid.back() = stop;
  const std::vector<double> density = linear_kde(to_fit, grid, 0.1);
  Residual r;
  r.q = q;
  for (size_t i = 0; i < grid.size(); ++i)
    if (density[i] > 0.01) r.x.push_back(grid[i]), r.y.push_back(density[i]);
  if (r.x.empty()) {
    fit.status = "the kernel density never exceeds 0.01";
    return fit;
  }
  r.x_peak = r.x[static_cast<size_t>(std::max_element(r.y.begin(), r.y.end()) - r.y.begin())];
  r.x_max = *std::max_element(r.x.begin(), r.x.end());
  // scipy.optimize.brute over numpy.arange(0.05 s, 2 s, 0.01 s), s = calc_sigma(Q, to_plot), then fmin
  const double s = std::sqrt(lambda_max / std::pow(1.0 + 1.0 / std::sqrt(q), 2));
  const double start = 0.05 * s, end = 2.0 * s, inc = 0.01 * s;
  const auto len = static_cast<int64_t>(std::ceil((end - start) / inc));
  const double v1 = start + inc, delta = v1 - start;
  double best_x = start, best_j = std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < len; ++k) {
    const double x = k == 0 ? start : k == 1 ? v1 : start + static_cast<double>(k) * delta;
    const double j = r(x);
    if (j < best_j) best_j = j, best_x = x;
  }
  const double s1 = nelder_mead_1d(r, best_x);
  const double bulk_max = std::pow(s1 * (1 + 1 / std::sqrt(q)), 2);
  const double bulk_min = std::pow(s1 * (1 - 1 / std::sqrt(q)), 2);
  const double tw = 1 / std::sqrt(q) * std::pow(bulk_max, 2.0 / 3.0) * std::pow(static_cast<double>(m), -2.0 / 3.0);
  const double bulk_max_tw = bulk_max + std::sqrt(tw);
  fit.num_spikes = std::count_if(to_plot.begin(), to_plot.end(), [&](double v) { return v > bulk_max_tw; });
  fit.sigma = s1;
  fit.softrank = bulk_max / lambda_max;
  fit.bulk_max = bulk_max / (wscale * wscale);
  fit.bulk_min = bulk_min / (wscale * wscale);
  fit.status = "ok";
  return fit;
}

}  // namespace metaprobe::params
