#pragma once
// Streaming comparison of a reference and a tuned checkpoint, tensor by tensor: what stays resident is the
// two sources' mappings plus O(largest tensor). Unmatched names and shape mismatches are reported, never
// skipped silently; progress goes through a callback.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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

/// One matched tensor pair.
struct TensorComparison {
  std::string name;
  ParsedName parsed;
  std::string reference_dtype, tuned_dtype;
  std::vector<int64_t> shape;
  TensorStats reference, tuned;
  UpdateStats update;
  std::string spectral_status = "off";   // "off", "ok" or "skipped: <reason>"
  SpectralStats reference_spectral, tuned_spectral;
  UpdateSpectralStats update_spectral;
};

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
  std::string spectral_status = "off";
  SpectralStats spectral;
};

struct DescribeOptions {
  bool spectra = false;
  SpectralOptions spectral;
  int64_t max_spectral_side = 16384;
  bool release_pages = true;
  ProgressCallback progress;
};

/// Per-tensor statistics (and optionally spectra) of every tensor of a source, in storage order.
std::vector<TensorDescription> describe(const io::TensorSource& source, const DescribeOptions& options = {});

/// Aggregates tensor rows by layer and by module kind (what compare_checkpoints fills in).
void aggregate(CompareResult& result);

}  // namespace metaprobe::params
