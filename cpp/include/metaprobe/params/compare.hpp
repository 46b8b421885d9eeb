#pragma once
// Streaming comparison of a reference and a tuned checkpoint, tensor by tensor: what stays resident is the
// two sources' mappings plus O(largest tensor). Unmatched names and shape mismatches are reported, never
// skipped silently; progress goes through a callback.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/params/names.hpp>
#include <metaprobe/params/spectral.hpp>
#include <metaprobe/params/tensor_stats.hpp>

namespace metaprobe::params {

/// Where a long walk over a checkpoint stands; passed to the progress callback after each tensor.
struct Progress {
  size_t done = 0, total = 0;        // tensors
  uint64_t bytes_done = 0, bytes_total = 0;
  std::string name;                  // the tensor just finished
};
using ProgressCallback = std::function<void(const Progress&)>;


struct CompareOptions {
  UpdateOptions update;
  // Mukherjee et al.'s check_sparsity.py / update_rank.py: both sides rounded to bf16 and subtracted in bf16;
  // sparsity_abs = isclose(dW_bf16, 0, atol) and unchanged_fraction = (dW_bf16 == 0) are taken on that
  // difference, and with spectra update_rank = matrix_rank(dW_bf16.float()) (float32 eps). Norms, cosine
  // and sparsity_rel stay exact. Definitions: docs/params.md.
  bool emulate_bf16 = false;
  NonFinitePolicy nonfinite = NonFinitePolicy::nan;
  bool spectra = false;              // spectral statistics of every matched >= 2-D pair (slow)
  SpectralOptions spectral;          // used when spectra
  int64_t subspace_k = 16;           // k of the top-k energy fraction and principal angles
  int64_t max_spectral_side = 16384; // larger matrices (e.g. vocab embeddings) get a row saying so, no spectra
  bool release_pages = true;         // drop a finished tensor's file pages from RSS (mapped sources only)
  ProgressCallback progress;         // called after each tensor (may be empty)
};
// The options of the file forms and of Python's _core.params.CompareOptions (progress is a call-time argument).
#define METAPROBE_COMPARE_OPTIONS_FIELDS(X, LATER)                                                             \
  X("update", update) X("emulate_bf16", emulate_bf16) X("nonfinite", nonfinite) X("spectra", spectra)           \
  X("spectral", spectral) X("subspace_k", subspace_k) X("max_spectral_side", max_spectral_side)                 \
  X("release_pages", release_pages)
METAPROBE_RECORD(CompareOptions, METAPROBE_COMPARE_OPTIONS_FIELDS)

/// Whether a tensor row has spectral statistics; its JSON and Python names ("off", "ok", "skipped") come from
/// one table in compare.cpp.
enum class SpectralState { off, ok, skipped };
METAPROBE_ENUM_NAMES(SpectralState, "spectral_status", "'{value}', expected \"off\", \"ok\" or \"skipped: <reason>\"",
                     {SpectralState::off, "off"}, {SpectralState::ok, "ok"}, {SpectralState::skipped, "skipped"})

/// A row's spectral state and, when skipped, why.
struct SpectralStatus {
  SpectralState state = SpectralState::off;
  std::string reason;                // skipped: why (e.g. "1-D tensor, spectra need a matrix")
  bool ok() const { return state == SpectralState::ok; }
};

/// The status as it is serialised: "off", "ok" or "skipped: <reason>".
std::string to_string(const SpectralStatus& status);

/// The status of its serialised text; throws InvalidArgument naming the text and the valid forms otherwise.
SpectralStatus parse_spectral_status(const std::string& text);

/// One matched tensor pair.
struct TensorComparison {
  std::string name;
  ParsedName parsed;
  std::string reference_dtype, tuned_dtype;
  std::vector<int64_t> shape;
  TensorStats reference, tuned;
  UpdateStats update;
  SpectralStatus spectral_status;        // the three spectral records below are filled when ok
  SpectralStats reference_spectral, tuned_spectral;
  UpdateSpectralStats update_spectral;
};
// The serialised fields: JSON nests the sub-records under these keys, the Python rows flatten them
// (bindings/params.cpp names the prefixes); the spectral ones are written only when spectral_status is ok.
#define METAPROBE_TENSOR_COMPARISON_FIELDS(X, LATER)                                                          \
  X("name", name) X("parsed", parsed) X("shape", shape) X("reference_dtype", reference_dtype)                 \
  X("tuned_dtype", tuned_dtype) X("update", update) X("reference", reference) X("tuned", tuned)              \
  X("spectral_status", spectral_status) X("reference_spectral", reference_spectral)                          \
  X("tuned_spectral", tuned_spectral) X("update_spectral", update_spectral)
METAPROBE_RECORD(TensorComparison, METAPROBE_TENSOR_COMPARISON_FIELDS)

/// Same name, different shapes: not compared, reported.
struct ShapeMismatch {
  std::string name;
  std::vector<int64_t> reference_shape, tuned_shape;
};

/// Update statistics aggregated exactly (from raw sums) over a group of tensors.
struct GroupStats {
  std::string key;                   // layer index as text ("none" for tensors outside blocks) or module kind
  int64_t layer = -1;                // for layer groups
  int64_t tensors = 0;
  int64_t numel = 0;
  int64_t finite_count = 0;
  int64_t nonfinite_count = 0;       // pairs with NaN/Inf on either side; > 0 makes every ratio below NaN
  double delta_fro = 0, ref_fro = 0, tuned_fro = 0;   // over the finite pairs
  double rel_update_norm = NAN, cosine = NAN, max_abs_delta = 0;  // cosine clamped to [-1, 1]
  // element-weighted over the group's finite pairs (Mukherjee et al.'s global sparsity)
  double sparsity_abs = NAN, sparsity_rel = NAN, unchanged_fraction = NAN, sign_flip_fraction = NAN;
  // unweighted means over the group's tensors: of sparsity_abs, and of 1 - unchanged_fraction (the fraction
  // of changed entries, Mukherjee et al.'s layer-wise number from check_sparsity.py)
  double mean_tensor_sparsity_abs = NAN, mean_tensor_nonzero_fraction = NAN;
  // means over the group's tensors with spectra (NaN when none)
  double mean_alpha_reference = NAN, mean_alpha_tuned = NAN;
  double mean_normalized_update_rank = NAN, mean_left_angle_max_deg = NAN;
};
// The serialised fields, in the params JSON, the report's `params` groups, the Python dicts and the report's
// columns alike. LATER: added after the report's first version (a report without them reads the defaults).
#define METAPROBE_GROUP_STATS_FIELDS(X, LATER)                                                                 \
  X("key", key) X("layer", layer) X("tensors", tensors) X("numel", numel) X("delta_fro", delta_fro)            \
  X("ref_fro", ref_fro) X("tuned_fro", tuned_fro) X("rel_update_norm", rel_update_norm) X("cosine", cosine)    \
  X("max_abs_delta", max_abs_delta) X("sparsity_abs", sparsity_abs) X("sparsity_rel", sparsity_rel)            \
  X("unchanged_fraction", unchanged_fraction) X("sign_flip_fraction", sign_flip_fraction)                      \
  LATER("nonfinite_count", nonfinite_count) LATER("mean_tensor_sparsity_abs", mean_tensor_sparsity_abs)        \
  LATER("mean_tensor_nonzero_fraction", mean_tensor_nonzero_fraction)                                         \
  LATER("mean_alpha_reference", mean_alpha_reference) LATER("mean_alpha_tuned", mean_alpha_tuned)              \
  LATER("mean_normalized_update_rank", mean_normalized_update_rank)                                           \
  LATER("mean_left_angle_max_deg", mean_left_angle_max_deg)
METAPROBE_RECORD(GroupStats, METAPROBE_GROUP_STATS_FIELDS)

struct CompareResult {
  std::vector<TensorComparison> tensors;         // reference storage order
  std::vector<GroupStats> layers;                // ascending layer, "none" (-1) last
  std::vector<GroupStats> modules;               // by kind, in first-seen order
  GroupStats total;                              // every matched tensor
  std::vector<std::string> only_in_reference, only_in_tuned;
  std::vector<ShapeMismatch> shape_mismatches;
  uint64_t bytes_read = 0;                       // of both sources
  uint64_t largest_tensor_bytes = 0;
};

/// Compares two sources name by name; throws InvalidArgument for bad options, or for a non-finite pair
/// under NonFinitePolicy::error.
CompareResult compare_checkpoints(const io::TensorSource& reference, const io::TensorSource& tuned,
                                  const CompareOptions& options = {});

/// One tensor of a described checkpoint.
struct TensorDescription {
  std::string name;
  ParsedName parsed;
  std::string dtype;
  std::vector<int64_t> shape;
  TensorStats stats;
  SpectralStatus spectral_status;        // `spectral` is filled when ok
  SpectralStats spectral;
};
// The serialised fields (nested in JSON, flat in Python; `spectral` only when spectral_status is ok).
#define METAPROBE_TENSOR_DESCRIPTION_FIELDS(X, LATER)                                                          \
  X("name", name) X("parsed", parsed) X("shape", shape) X("dtype", dtype) X("stats", stats)                   \
  X("spectral_status", spectral_status) X("spectral", spectral)
METAPROBE_RECORD(TensorDescription, METAPROBE_TENSOR_DESCRIPTION_FIELDS)

struct DescribeOptions {
  bool spectra = false;
  SpectralOptions spectral;
  int64_t max_spectral_side = 16384;
  bool release_pages = true;
  ProgressCallback progress;
};
#define METAPROBE_DESCRIBE_OPTIONS_FIELDS(X, LATER)                                                            \
  X("spectra", spectra) X("spectral", spectral) X("max_spectral_side", max_spectral_side)                        \
  X("release_pages", release_pages)
METAPROBE_RECORD(DescribeOptions, METAPROBE_DESCRIBE_OPTIONS_FIELDS)

/// Per-tensor statistics (and optionally spectra) of every tensor of a source, in storage order.
std::vector<TensorDescription> describe(const io::TensorSource& source, const DescribeOptions& options = {});

/// Aggregates tensor rows by layer and by module kind (what compare_checkpoints fills in).
void aggregate(CompareResult& result);

}  // namespace metaprobe::params
