#pragma once
// Spectral statistics of weight matrices: exact or randomized top-k singular values, rank measures,
// WeightWatcher's layer metrics (power-law fit of the ESD) and, for an update W0 -> W1, the rank and
// energy concentration of dW and the principal angles between the top-k singular subspaces.
// Definitions and sources: docs/params.md.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>

#include <ATen/ATen.h>

namespace metaprobe::params {

/// How exact singular values are computed.
enum class SvdMethod {
  Auto,  // Gram eigenvalues when min side <= gram_max_side and the spectrum is resolvable, else SVD
  Gram,  // eigenvalues of the smaller Gram matrix in double (fast; small singular values lose accuracy)
  Svd,   // at::linalg_svdvals in double
};
METAPROBE_ENUM_NAMES(SvdMethod, "method", "'{value}', expected one of {names}", {SvdMethod::Auto, "auto"},
                     {SvdMethod::Gram, "gram"}, {SvdMethod::Svd, "svd"})

struct SpectralOptions {
  int64_t k = 0;                    // 0: every singular value exactly; > 0: only the top k by randomized SVD
  bool flatten = true;              // tensors with > 2 dims are reshaped to [shape0, rest]; false: rejected
  SvdMethod method = SvdMethod::Auto;
  int64_t gram_max_side = 8192;     // Auto uses the Gram matrix only when min(rows, cols) <= this
  double gram_min_ratio = 1e-4;     // Auto falls back to SVD when sigma_min / sigma_max < this
  int64_t oversampling = 10;        // randomized SVD: extra columns of the sketch
  int64_t power_iterations = 6;     // randomized SVD: most subspace iterations (each re-orthonormalised)
  double tolerance = 1e-3;          // randomized SVD: stop once every top-k value's residual bound is at most
                                    // tolerance * value (docs/params.md, "Top-k"); 0: always run them all
  bool exact_fallback = true;       // randomized SVD: bound still above tolerance after power_iterations ->
                                    // the exact SVD (method "svd"); false: return the randomized values
  uint64_t seed = 0;                // randomized SVD: Gaussian sketch seed
  int64_t error_probes = 10;        // randomized SVD: Gaussian probes of the a-posteriori error estimate
  bool sketch_float32 = true;       // randomized SVD of a <= 32-bit input: sketch products in float32 (2x
                                    // faster); QR/SVD of the small factors stay in double
  double rank_eps = 0;              // numerical-rank eps; 0: float64 eps for F64 input, else float32 eps
  // WeightWatcher power-law fit (anchors §1.3)
  double evals_thresh = 1e-5;       // eigenvalues lambda = sigma^2 <= this are left out of the fit
  int64_t min_evals = 10;           // fewer fit eigenvalues than this: the fit is not attempted (status says so)
  int64_t small_n = 20;             // fewer fit eigenvalues than this: WeightWatcher 0.7.7's small-N fit (alpha
                                    // = 1 + (n-1)/sum log(x/xmin), tails of >= 8 values); 0: never
  // WeightWatcher's randomize=True (spectral_stats of a matrix only): the ESD of W with its entries permuted
  bool randomize = false;           // off by default: it costs one SVD per replica
  uint64_t randomize_seed = 0;      // the permutations' seed (WW draws them from numpy's global RNG)
};
// The options' one other statement: the Python class _core.params.SpectralOptions and its keys derive from it.
#define METAPROBE_SPECTRAL_OPTIONS_FIELDS(X, LATER)                                                              \
  X("k", k) X("flatten", flatten) X("method", method) X("gram_max_side", gram_max_side)                          \
  X("gram_min_ratio", gram_min_ratio) X("oversampling", oversampling) X("power_iterations", power_iterations)     \
  X("tolerance", tolerance) X("exact_fallback", exact_fallback) X("seed", seed) X("error_probes", error_probes)   \
  X("sketch_float32", sketch_float32) X("rank_eps", rank_eps) X("evals_thresh", evals_thresh)                     \
  X("min_evals", min_evals) X("small_n", small_n) X("randomize", randomize) X("randomize_seed", randomize_seed)
METAPROBE_RECORD(SpectralOptions, METAPROBE_SPECTRAL_OPTIONS_FIELDS)

/// Singular values in descending order and how they were obtained.
struct Spectrum {
  int64_t rows = 0, cols = 0;       // of the (flattened) matrix
  std::vector<double> values;       // descending; all min(rows, cols) of them, or the top k
  std::string method;               // "gram", "svd" or "randomized"
  bool complete = true;             // false for a top-k spectrum
  double error_bound = 0;           // randomized: estimated ||(I - QQ^T) W||_2, bounds |sigma_i - sigma~_i|
  std::vector<double> value_bounds; // randomized: residual bound of each value (TopKSvd::value_bounds); exact: 0
  int64_t iterations = 0;           // randomized: subspace iterations run (also when it fell back to "svd")
  bool converged = true;            // randomized: each bound met tolerance (docs/params.md, "Top-k")
};

/// Whether the power-law fit was made (WeightWatcher's "success" / "failed").
enum class FitStatus { success, failed };
METAPROBE_ENUM_NAMES(FitStatus, "status", "'{value}' is not a fit status, expected one of {names}",
                     {FitStatus::success, "success"}, {FitStatus::failed, "failed"})

/// Result of the WeightWatcher-style continuous power-law fit (Clauset xmin scan).
struct PowerLawFit {
  FitStatus status = FitStatus::failed;
  std::string reason;               // why it failed (empty on success)
  double alpha = NAN, xmin = NAN, xmax = NAN, D = NAN, sigma = NAN;
  int64_t num_evals = 0;            // eigenvalues that entered the fit (> evals_thresh)
  int64_t num_pl_spikes = 0;        // #{lambda >= xmin}
};
#define METAPROBE_POWER_LAW_FIT_FIELDS(X, LATER)                                                                \
  X("alpha", alpha) X("xmin", xmin) X("xmax", xmax) X("D", D) X("sigma", sigma) X("num_evals", num_evals)       \
  X("num_pl_spikes", num_pl_spikes) X("status", status) X("reason", reason)
METAPROBE_RECORD(PowerLawFit, METAPROBE_POWER_LAW_FIT_FIELDS)

/// Everything spectral about one matrix. Metrics that need the whole spectrum are NaN for a top-k spectrum.
/// WeightWatcher's Marchenko–Pastur fit of an ESD (its mp_fit with rescale): σ by a grid search plus
/// Nelder–Mead over the squared residual between the MP density and a linear-kernel density estimate.
struct MpFit {
  double sigma = NAN;                 // fitted σ of the rescaled ESD (mean eigenvalue 1)
  double bulk_min = NAN, bulk_max = NAN;  // the MP bulk edges, in the ESD's own units
  double softrank = NAN;              // WW's mp_softrank: bulk_max / lambda_max (rescaled)
  int64_t num_spikes = -1;            // eigenvalues above bulk_max + sqrt(Tracy–Widom width)
  std::string status = "not computed";  // "ok", or why the fit was not made
};

/// The MP fit of eigenvalues `evals` (λ = σ², any order) of a rows × cols matrix.
MpFit mp_fit(const std::vector<double>& evals, int64_t rows, int64_t cols);

/// WeightWatcher's randomised-ESD comparison (apply_random_esd + apply_mp_fit(random=True)): the ESD of W with
/// its entries permuted — 5 permutations pooled when min(rows, cols) < 100, else 1 — against W's own.
struct RandomEsd {
  int64_t replicas = 0;               // permutations pooled into the randomised ESD
  double max_rand_eval = NAN;         // its largest eigenvalue
  double rand_distance = NAN;         // Jensen–Shannon distance of the sorted ESDs of W and of one more permutation
  double ww_softrank = NAN;           // λ_max of that permutation / λ_max of W
  double ww_maxdist = NAN;            // λ_max of W − λ_max of that permutation
  MpFit mp;                           // the MP fit of the pooled randomised ESD (WW's rand_mp_softrank, num_traps)
  std::string status = "off";         // "ok", "off" (randomize false), or why it was not made
};

struct SpectralStats {
  int64_t rows = 0, cols = 0;
  std::string method;
  bool complete = true;
  int64_t num_singular_values = 0;
  int64_t num_evals = 0;            // eigenvalues of the ESD, WeightWatcher's num_evals (= num_singular_values;
                                    // fit.num_evals counts only those above evals_thresh that enter the fit)
  double sv_max = NAN, sv_min = NAN;
  double spectral_norm = NAN;       // sigma_max
  double frobenius_norm = NAN;      // ||W||_F (exact, also for a top-k spectrum)
  double stable_rank = NAN;         // ||W||_F^2 / sigma_max^2
  double effective_rank = NAN;      // exp(H(sigma / sum sigma)) (Roy & Vetterli 2007)
  int64_t numerical_rank = -1;      // #{sigma > sigma_max * max(rows, cols) * eps} (numpy matrix_rank)
  double condition_number = NAN;    // sigma_max / sigma_min
  double lambda_max = NAN;          // sigma_max^2
  double log_norm = NAN;            // log10 sum lambda = log10 ||W||_F^2
  double log_spectral_norm = NAN;   // log10 lambda_max
  double alpha = NAN;               // power-law exponent of the ESD tail
  double alpha_weighted = NAN;      // alpha * log10 lambda_max
  double log_alpha_norm = NAN;      // log10 sum lambda^alpha
  double entropy = NAN;             // WW matrix entropy: -sum p ln p / ln(rank + 1e-10), p = lambda / sum lambda
                                    // + 1e-10, rank with float64 eps for every dtype (WW's CPU path); NaN if rank <= 1
  PowerLawFit fit;
  MpFit mp;                         // complete spectra only (WW's mp_fit=True columns mp_softrank, num_spikes)
  RandomEsd random;                 // options.randomize, spectral_stats of a matrix with a complete spectrum
  double error_bound = 0;           // randomized only
};
// The serialised fields, flat: the fit, MP and randomised-ESD parts under their own prefixes.
#define METAPROBE_SPECTRAL_STATS_FIELDS(X, LATER)                                                                  \
  X("rows", rows) X("cols", cols) X("svd_method", method) X("complete", complete)                                 \
  X("num_singular_values", num_singular_values) X("sv_max", sv_max) X("sv_min", sv_min)                           \
  X("spectral_norm", spectral_norm) X("frobenius_norm", frobenius_norm) X("stable_rank", stable_rank)             \
  X("effective_rank", effective_rank) X("numerical_rank", numerical_rank) X("condition_number", condition_number) \
  X("lambda_max", lambda_max) X("log_norm", log_norm) X("log_spectral_norm", log_spectral_norm) X("alpha", alpha) \
  X("alpha_weighted", alpha_weighted) X("log_alpha_norm", log_alpha_norm) X("entropy", entropy)                   \
  X("xmin", fit.xmin) X("xmax", fit.xmax) X("D", fit.D) X("sigma", fit.sigma) X("num_pl_spikes", fit.num_pl_spikes) \
  X("num_evals", num_evals) X("num_fit_evals", fit.num_evals) X("status", fit.status) X("reason", fit.reason)     \
  X("mp_softrank", mp.softrank) X("mp_num_spikes", mp.num_spikes) X("mp_sigma", mp.sigma)                         \
  X("mp_bulk_min", mp.bulk_min) X("mp_bulk_max", mp.bulk_max) X("mp_status", mp.status)                           \
  X("rand_replicas", random.replicas) X("max_rand_eval", random.max_rand_eval)                                    \
  X("rand_distance", random.rand_distance) X("ww_softrank", random.ww_softrank) X("ww_maxdist", random.ww_maxdist) \
  X("rand_mp_softrank", random.mp.softrank) X("rand_num_spikes", random.mp.num_spikes)                            \
  X("rand_status", random.status) X("error_bound", error_bound)
METAPROBE_RECORD(SpectralStats, METAPROBE_SPECTRAL_STATS_FIELDS)

/// Singular values of `w` (2-D, or flattened per options) in double: exact, or top options.k randomized.
Spectrum singular_values(const at::Tensor& w, const SpectralOptions& options = {});

/// The WeightWatcher power-law fit of eigenvalues `evals` (any order): every sorted eigenvalue but the
/// largest is tried as xmin, alpha by MLE, the xmin with the smallest KS distance D wins.
PowerLawFit fit_power_law(const std::vector<double>& evals, const SpectralOptions& options = {});

/// Spectral statistics of one matrix; throws InvalidArgument for < 2 dims, or > 2 dims without flatten,
/// or non-finite entries.
SpectralStats spectral_stats(const at::Tensor& w, const SpectralOptions& options = {});

/// Spectral statistics computed from a given spectrum (`frobenius_sq` = ||W||_F^2, needed when incomplete).
SpectralStats spectral_stats_from(const Spectrum& spectrum, double frobenius_sq, double rank_eps,
                                  const SpectralOptions& options = {});

/// Top-k singular triplets of a matrix in double: U [rows, k], S [k], V [cols, k].
struct TopKSvd {
  at::Tensor U, S, V;
  std::string method;               // "svd" (exact) or "randomized"
  double error_bound = 0;           // randomized: estimated ||(I - QQ^T) W||_2 (sigma_i - S[i] in [0, it])
  at::Tensor value_bounds;          // randomized: [k] residual radii, W has a singular value within
                                    // value_bounds[i] of S[i] (docs/params.md, "Top-k"); exact: zeros
  int64_t iterations = 0;           // randomized: subspace iterations run
  bool converged = true;            // randomized: the bounds met options.tolerance
};

/// Top-k singular triplets by randomized subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4) with a
/// residual bound per value; exact SVD when `exact` is set, when k + oversampling >= min(rows, cols), or when
/// the bounds miss options.tolerance after options.power_iterations (options.exact_fallback).
TopKSvd top_k_svd(const at::Tensor& w, int64_t k, const SpectralOptions& options = {}, bool exact = false);

/// Principal angles (degrees) between the top-k left and right singular subspaces of two matrices.
struct SubspaceAngles {
  int64_t k = 0;
  double left_max_deg = NAN, left_mean_deg = NAN;
  double right_max_deg = NAN, right_mean_deg = NAN;
};

/// Principal angles between the top-k singular subspaces of w0 and w1 (same shape, k <= min side).
SubspaceAngles principal_angles(const at::Tensor& w0, const at::Tensor& w1, int64_t k,
                                const SpectralOptions& options = {});

/// Spectral view of an update dW = w1 - w0.
struct UpdateSpectralStats {
  int64_t k = 0;
  int64_t update_rank = 0;              // numerical rank of dW (numpy tolerance)
  double normalized_rank = NAN;         // update_rank / min(rows, cols) (Mukherjee et al.)
  double topk_energy_fraction = NAN;    // sum_{i<k} sigma_i(dW)^2 / ||dW||_F^2; NaN when dW == 0
  double spectral_drift = NAN;          // ||sigma(W1) - sigma(W0)||_2 / ||sigma(W0)||_2
  SubspaceAngles angles;                // between the top-k subspaces of W0 and W1
};
// The serialised fields, flat (the angles under their own names).
#define METAPROBE_UPDATE_SPECTRAL_STATS_FIELDS(X, LATER)                                                       \
  X("subspace_k", k) X("update_rank", update_rank) X("normalized_rank", normalized_rank)                      \
  X("topk_energy_fraction", topk_energy_fraction) X("spectral_drift", spectral_drift)                         \
  X("left_angle_max_deg", angles.left_max_deg) X("left_angle_mean_deg", angles.left_mean_deg)                 \
  X("right_angle_max_deg", angles.right_max_deg) X("right_angle_mean_deg", angles.right_mean_deg)
METAPROBE_RECORD(UpdateSpectralStats, METAPROBE_UPDATE_SPECTRAL_STATS_FIELDS)

/// Rank and top-k energy of dW, the spectral drift and the top-k principal angles; k is clamped to the
/// smaller side. Throws InvalidArgument for different shapes or < 2 dims.
UpdateSpectralStats update_spectral_stats(const at::Tensor& w0, const at::Tensor& w1, int64_t k = 16,
                                          const SpectralOptions& options = {});

/// The matrix a tensor is analysed as: 2-D as is, higher ranks reshaped to [shape0, rest] when flatten.
at::Tensor as_matrix(const at::Tensor& w, bool flatten, const char* argument);

}  // namespace metaprobe::params
