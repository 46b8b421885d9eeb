// Streaming walks over TensorSources. One tensor (or pair) is resident at a time besides the mappings;
// with release_pages the finished tensor's file pages are unmapped from this process (MADV_DONTNEED on a
// private, unmodified file mapping drops them from RSS; the page cache keeps them), so RSS does not grow
// with the checkpoint size.
#include <metaprobe/params/compare.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/io/safetensors.hpp>

namespace metaprobe::params {

std::string to_string(const SpectralStatus& status) {
  const std::string name(enum_name(status.state));
  return status.state == SpectralState::skipped ? name + ": " + status.reason : name;
}

SpectralStatus parse_spectral_status(const std::string& text) {
  const std::string head = text.substr(0, text.find(':'));
  for (SpectralState state : enum_values<SpectralState>()) {
    if (enum_name(state) != head) continue;
    const bool has_reason = head.size() < text.size();
    if (state == SpectralState::skipped && has_reason && text.compare(head.size(), 2, ": ") == 0 &&
        text.size() > head.size() + 2)
      return {state, text.substr(head.size() + 2)};
    if (state != SpectralState::skipped && !has_reason) return {state, ""};
  }
  throw InvalidArgument("spectral_status: '" + text + "', expected \"off\", \"ok\" or \"skipped: <reason>\"");
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Rounding can carry <w0, w1> / (|w0| |w1|) just past ±1.
double clamp_cosine(double c) { return std::isnan(c) ? c : std::clamp(c, -1.0, 1.0); }

// Mukherjee et al.'s counts on the bf16 difference (check_sparsity.py loads both models in bf16): dW is
// bf16(w1) - bf16(w0) computed in bf16 (so rounded to bf16), `close` = torch.isclose(dW, 0, atol) (whose
// default rtol multiplies zero), both restricted to the finite pairs that the exact counts cover.
void apply_bf16_counts(const at::Tensor& w0, const at::Tensor& w1, double atol, UpdateStats& u) {
  if (!at::isFloatingType(w0.scalar_type()) || !at::isFloatingType(w1.scalar_type())) return;
  const at::Tensor a = w0.to(at::kBFloat16), b = w1.to(at::kBFloat16);
  const at::Tensor d = at::sub(b, a);
  const at::Tensor finite = at::logical_and(at::isfinite(w0), at::isfinite(w1));
  u.count_abs = at::logical_and(at::isclose(d, at::zeros_like(d), 1e-5, atol), finite).sum().item<int64_t>();
  u.count_unchanged = at::logical_and(at::eq(d, 0), finite).sum().item<int64_t>();
  const double n = static_cast<double>(u.finite_count);
  u.sparsity_abs = u.finite_count > 0 ? static_cast<double>(u.count_abs) / n : kNaN;
  u.unchanged_fraction = u.finite_count > 0 ? static_cast<double>(u.count_unchanged) / n : kNaN;
}

// update_rank.py: torch.linalg.matrix_rank(dW_bf16.float()) with the default tolerance
// sigma_max * max(rows, cols) * eps(float32); singular values here in double.
void apply_bf16_rank(const at::Tensor& w0, const at::Tensor& w1, const SpectralOptions& o, UpdateSpectralStats& u) {
  const at::Tensor d = at::sub(w1.to(at::kBFloat16), w0.to(at::kBFloat16)).to(at::kFloat);
  SpectralOptions exact = o;
  exact.k = 0;
  exact.method = SvdMethod::Svd;
  const Spectrum sp = singular_values(d, exact);
  if (sp.values.empty()) return;
  const double tol = sp.values.front() * static_cast<double>(std::max(sp.rows, sp.cols)) *
                     static_cast<double>(std::numeric_limits<float>::epsilon());
  u.update_rank = 0;
  for (double v : sp.values) u.update_rank += v > tol;
  u.normalized_rank = static_cast<double>(u.update_rank) / static_cast<double>(std::min(sp.rows, sp.cols));
}

bool is_mapped_source(const io::TensorSource& s) {
  return dynamic_cast<const io::SafetensorsFile*>(&s) != nullptr ||
         dynamic_cast<const io::Checkpoint*>(&s) != nullptr;
}

// Drops the whole pages inside a tensor's bytes from this process's page tables. Only called for tensors
// of memory-mapped sources that this walk has finished with.
void release(const at::Tensor& t) {
  if (!t.defined() || t.numel() == 0 || !t.device().is_cpu()) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t end = begin + static_cast<uintptr_t>(t.numel()) * t.element_size();
  const uintptr_t first = (begin + page - 1) & ~(page - 1);
  const uintptr_t last = end & ~(page - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void check_spectral_side(const SpectralOptions& o, int64_t max_side) {
  if (max_side < 1) throw InvalidArgument("max_spectral_side: " + std::to_string(max_side) + ", expected >= 1");
  if (o.k < 0) throw InvalidArgument("k: " + std::to_string(o.k) + ", expected >= 0");
}

// Why a tensor gets no spectra ("" when it does).
std::string spectral_skip_reason(const at::Tensor& t, bool flatten, int64_t max_side, const TensorStats& st) {
  if (t.dim() < 2) return std::to_string(t.dim()) + "-D tensor, spectra need a matrix";
  if (t.dim() > 2 && !flatten) return std::to_string(t.dim()) + "-D tensor and flatten is off";
  if (!at::isFloatingType(t.scalar_type())) return "integer or bool dtype";
  if (st.nan_count + st.inf_count > 0) return "contains NaN or Inf";
  const int64_t rows = t.size(0), cols = t.numel() / std::max<int64_t>(rows, 1);
  if (std::min(rows, cols) < 2) return "a side has fewer than 2 entries";
  if (std::max(rows, cols) > max_side) {
    return "side " + std::to_string(std::max(rows, cols)) + " above max_spectral_side " +
           std::to_string(max_side);
  }
  return "";
}

struct Accum {
  GroupStats g;
  double sum_sq_delta = 0, sum_sq_ref = 0, sum_sq_tuned = 0, dot = 0;
  int64_t cabs = 0, crel = 0, ceq = 0, cflip = 0;
  double alpha_ref = 0, alpha_tuned = 0, nrank = 0, angle = 0;
  int64_t n_alpha_ref = 0, n_alpha_tuned = 0, n_spec = 0;
  double tensor_sparsity = 0, tensor_nonzero = 0;
  int64_t n_tensor_fractions = 0;

  void add(const TensorComparison& t) {
    const UpdateStats& u = t.update;
    g.tensors += 1;
    g.numel += u.numel;
    g.finite_count += u.finite_count;
    g.nonfinite_count += u.nonfinite_count;
    if (u.finite_count > 0) {
      const double n = static_cast<double>(u.finite_count);
      tensor_sparsity += static_cast<double>(u.count_abs) / n;
      tensor_nonzero += 1.0 - static_cast<double>(u.count_unchanged) / n;
      ++n_tensor_fractions;
    }
    sum_sq_delta += u.sum_sq_delta;
    sum_sq_ref += u.sum_sq_ref;
    sum_sq_tuned += u.sum_sq_tuned;
    dot += u.dot;
    cabs += u.count_abs;
    crel += u.count_rel;
    ceq += u.count_unchanged;
    cflip += u.count_sign_flip;
    if (u.finite_count > 0) g.max_abs_delta = std::max(g.max_abs_delta, u.max_abs_delta);
    if (t.spectral_status.ok()) {
      if (std::isfinite(t.reference_spectral.alpha)) {
        alpha_ref += t.reference_spectral.alpha;
        ++n_alpha_ref;
      }
      if (std::isfinite(t.tuned_spectral.alpha)) {
        alpha_tuned += t.tuned_spectral.alpha;
        ++n_alpha_tuned;
      }
      nrank += t.update_spectral.normalized_rank;
      angle += t.update_spectral.angles.left_max_deg;
      ++n_spec;
    }
  }

  GroupStats finish() const {
    GroupStats out = g;
    out.delta_fro = std::sqrt(sum_sq_delta);
    out.ref_fro = std::sqrt(sum_sq_ref);
    out.tuned_fro = std::sqrt(sum_sq_tuned);
    out.rel_update_norm = out.ref_fro > 0 ? out.delta_fro / out.ref_fro : (out.delta_fro == 0 ? 0.0 : kNaN);
    out.cosine = (out.ref_fro > 0 && out.tuned_fro > 0) ? clamp_cosine(dot / (out.ref_fro * out.tuned_fro)) : kNaN;
    if (out.finite_count > 0) {
      const double n = static_cast<double>(out.finite_count);
      out.sparsity_abs = cabs / n;
      out.sparsity_rel = crel / n;
      out.unchanged_fraction = ceq / n;
      out.sign_flip_fraction = cflip / n;
    }
    if (n_tensor_fractions > 0) {
      out.mean_tensor_sparsity_abs = tensor_sparsity / static_cast<double>(n_tensor_fractions);
      out.mean_tensor_nonzero_fraction = tensor_nonzero / static_cast<double>(n_tensor_fractions);
    }
    // A summary over a group with non-finite pairs would describe only part of it: NaN, with the count beside.
    if (out.nonfinite_count > 0) {
      out.rel_update_norm = out.cosine = out.max_abs_delta = kNaN;
      out.sparsity_abs = out.sparsity_rel = out.unchanged_fraction = out.sign_flip_fraction = kNaN;
      out.mean_tensor_sparsity_abs = out.mean_tensor_nonzero_fraction = kNaN;
    }
    if (n_alpha_ref) out.mean_alpha_reference = alpha_ref / n_alpha_ref;
    if (n_alpha_tuned) out.mean_alpha_tuned = alpha_tuned / n_alpha_tuned;
    if (n_spec) {
      out.mean_normalized_update_rank = nrank / n_spec;
      out.mean_left_angle_max_deg = angle / n_spec;
    }
    return out;
  }
};

}  // namespace

void aggregate(CompareResult& result) {
  std::map<int64_t, Accum> layers;
  std::vector<std::string> kind_order;
  std::map<std::string, Accum> kinds;
  Accum total;
  for (const auto& t : result.tensors) {
    layers[t.parsed.layer].add(t);
    if (!kinds.count(t.parsed.kind)) kind_order.push_back(t.parsed.kind);
    kinds[t.parsed.kind].add(t);
    total.add(t);
  }
  result.layers.clear();
  result.modules.clear();
  for (auto& [layer, acc] : layers) {
    if (layer < 0) continue;
    GroupStats g = acc.finish();
    g.layer = layer;
    g.key = std::to_string(layer);
    result.layers.push_back(g);
  }
  if (layers.count(-1)) {
    GroupStats g = layers[-1].finish();
    g.layer = -1;
    g.key = "none";
    result.layers.push_back(g);
  }
  for (const auto& k : kind_order) {
    GroupStats g = kinds[k].finish();
    g.key = k;
    result.modules.push_back(g);
  }
  result.total = total.finish();
  result.total.key = "total";
}

CompareResult compare_checkpoints(const io::TensorSource& reference, const io::TensorSource& tuned,
                                  const CompareOptions& options) {
  check_spectral_side(options.spectral, options.max_spectral_side);
  if (options.subspace_k < 1) {
    throw InvalidArgument("subspace_k: " + std::to_string(options.subspace_k) + ", expected >= 1");
  }
  // Validate tolerances before touching data.
  update_stats(at::zeros({1}), at::zeros({1}), options.update);
  CompareResult result;
  const std::vector<std::string> ref_names = reference.names();
  const std::vector<std::string> tuned_names = tuned.names();
  std::unordered_set<std::string> ref_set(ref_names.begin(), ref_names.end());
  const bool release_ref = options.release_pages && is_mapped_source(reference);
  const bool release_tuned = options.release_pages && is_mapped_source(tuned);

  Progress progress;
  progress.total = ref_names.size();
  for (const auto& name : ref_names) {
    progress.bytes_total += reference.info(name).nbytes;
    if (tuned.contains(name)) progress.bytes_total += tuned.info(name).nbytes;
  }
  for (const auto& name : ref_names) {
    const io::TensorInfo& ri = reference.info(name);
    if (!tuned.contains(name)) {
      result.only_in_reference.push_back(name);
    } else {
      const io::TensorInfo& ti = tuned.info(name);
      if (ri.shape != ti.shape) {
        result.shape_mismatches.push_back({name, ri.shape, ti.shape});
      } else {
        at::Tensor w0 = reference.tensor(name);
        at::Tensor w1 = tuned.tensor(name);
        TensorComparison row;
        row.name = name;
        row.parsed = parse_param_name(name);
        row.reference_dtype = ri.dtype;
        row.tuned_dtype = ti.dtype;
        row.shape = ri.shape;
        row.reference = tensor_stats(w0);
        row.tuned = tensor_stats(w1);
        row.update = update_stats(w0, w1, options.update);
        row.update.cosine = clamp_cosine(row.update.cosine);
        if (row.update.nonfinite_count > 0 && options.nonfinite == NonFinitePolicy::error) {
          throw InvalidArgument("tuned: tensor '" + name + "' has " + std::to_string(row.update.nonfinite_count) +
                                " of " + std::to_string(row.update.numel) +
                                " pairs with NaN or Inf, expected finite weights (nonfinite = nan reports NaN "
                                "summaries instead)");
        }
        if (options.emulate_bf16) apply_bf16_counts(w0, w1, options.update.atol, row.update);
        if (options.spectra) {
          std::string why = spectral_skip_reason(w0, options.spectral.flatten, options.max_spectral_side, row.reference);
          if (why.empty()) why = spectral_skip_reason(w1, options.spectral.flatten, options.max_spectral_side, row.tuned);
          if (why.empty()) {
            row.reference_spectral = spectral_stats(w0, options.spectral);
            row.tuned_spectral = spectral_stats(w1, options.spectral);
            row.update_spectral = update_spectral_stats(w0, w1, options.subspace_k, options.spectral);
            if (options.emulate_bf16) apply_bf16_rank(w0, w1, options.spectral, row.update_spectral);
            row.spectral_status = {SpectralState::ok, ""};
          } else {
            row.spectral_status = {SpectralState::skipped, why};
          }
        }
        result.bytes_read += ri.nbytes + ti.nbytes;
        result.largest_tensor_bytes = std::max<uint64_t>(result.largest_tensor_bytes, std::max(ri.nbytes, ti.nbytes));
        result.tensors.push_back(std::move(row));
        if (release_ref) release(w0);
        if (release_tuned) release(w1);
      }
      progress.bytes_done += ti.nbytes;
    }
    progress.bytes_done += ri.nbytes;
    progress.done += 1;
    progress.name = name;
    if (options.progress) options.progress(progress);
  }
  for (const auto& name : tuned_names) {
    if (!ref_set.count(name)) result.only_in_tuned.push_back(name);
  }
  aggregate(result);
  return result;
}

std::vector<TensorDescription> describe(const io::TensorSource& source, const DescribeOptions& options) {
  check_spectral_side(options.spectral, options.max_spectral_side);
  const std::vector<std::string> names = source.names();
  const bool rel = options.release_pages && is_mapped_source(source);
  Progress progress;
  progress.total = names.size();
  for (const auto& n : names) progress.bytes_total += source.info(n).nbytes;
  std::vector<TensorDescription> rows;
  rows.reserve(names.size());
  for (const auto& name : names) {
    const io::TensorInfo& info = source.info(name);
    at::Tensor t = source.tensor(name);
    TensorDescription row;
    row.name = name;
    row.parsed = parse_param_name(name);
    row.dtype = info.dtype;
    row.shape = info.shape;
    row.stats = tensor_stats(t);
    if (options.spectra) {
      const std::string why = spectral_skip_reason(t, options.spectral.flatten, options.max_spectral_side, row.stats);
      if (why.empty()) {
        row.spectral = spectral_stats(t, options.spectral);
        row.spectral_status = {SpectralState::ok, ""};
      } else {
        row.spectral_status = {SpectralState::skipped, why};
      }
    }
    rows.push_back(std::move(row));
    if (rel) release(t);
    progress.done += 1;
    progress.bytes_done += info.nbytes;
    progress.name = name;
    if (options.progress) options.progress(progress);
  }
  return rows;
}

}  // namespace metaprobe::params
