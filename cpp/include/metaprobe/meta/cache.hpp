#pragma once
// The reference's next-token distributions cached as top-k log-probabilities plus what the divergences need
// exactly (entropy, argmax), so stages can be probed one model at a time. Coarse-graining the vocabulary into
// the k cached tokens plus one tail bucket gives lower bounds on KL and JS (data-processing inequality); the
// gaps are bounded as documented in docs/meta.md, section "Top-k cache".
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace metaprobe::meta {

/// Cached reference rows: N positions.
struct TopKCache {
  at::Tensor indices;   ///< int64 [N, k], descending probability
  at::Tensor logprobs;  ///< float64 [N, k]
  at::Tensor tail;      ///< float64 [N]: 1 − Σ exp(logprobs), clamped at 0
  at::Tensor entropy;   ///< float64 [N]: exact entropy of the full distribution
  at::Tensor argmax;    ///< int64 [N]: first maximal logit
};

/// Caches rows of reference logits [N, V] at temperature `temperature`; k is capped at V. Throws
/// InvalidArgument for k < 1, a non-2-D input or temperature ≤ 0.
TopKCache build_topk_cache(const at::Tensor& logits, int64_t k, double temperature = 1.0);

/// Per-position metrics of a stage against a cached reference (float64 [N] each, on the CPU).
struct CachedDivergence {
  at::Tensor kl_ref_stage, kl_stage_ref, js;    ///< coarse-grained: lower bounds on the exact values
  at::Tensor entropy_ref, entropy_stage;        ///< exact
  at::Tensor rank_shift, top1_agree;            ///< exact
  at::Tensor js_bound;                          ///< exact JS − cached JS ≤ (R_T + S_T)/2 · h(R_T/(R_T + S_T))
  at::Tensor kl_ref_stage_bound;                ///< exact − cached ≤ R_T (log S_T − min_tail log s) − R_T H(r_T)
};

/// Compares stage logits [N, V] with cached reference rows (same N); throws InvalidArgument on a mismatch.
CachedDivergence cached_divergence(const TopKCache& reference, const at::Tensor& stage_logits,
                                   double temperature = 1.0);

/// Rows [begin, end) of a cache.
TopKCache slice(const TopKCache& cache, int64_t begin, int64_t end);

/// The caches concatenated row-wise (empty input: an empty cache).
TopKCache concat(const std::vector<TopKCache>& parts);

/// A cache from top-k log-probabilities computed elsewhere (vLLM's prompt_logprobs, another framework):
/// indices int64 [N, k] in descending probability, logprobs [N, k], entropy [N] or undefined (unknown: NaN,
/// and the entropies and the KL bound against it are NaN). tail = 1 − Σ exp(logprobs) clamped at 0, argmax =
/// indices[:, 0]. Throws InvalidArgument for mismatched shapes, k < 1 or log-probabilities that are not
/// descending, above 0 or sum above 1 + 1e-6.
TopKCache topk_cache_from(const at::Tensor& indices, const at::Tensor& logprobs, const at::Tensor& entropy = {});

/// One cached sequence of a reference: the answer (or solution) tokens of one item's sample.
struct SequenceCache {
  std::string item_id;
  int64_t sample = 0;
  TopKCache rows;
};

/// A reference's top-k cache as a file (docs/meta.md, "Top-k cache files"): safetensors with `indices`,
/// `logprobs`, `entropy` (NaN where unknown) over all rows and `offsets` [S + 1] (rows of sequence s are
/// offsets[s] .. offsets[s+1]); metadata: format "metaprobe.topk_cache", version "1", temperature, and
/// item_ids / samples as JSON lists. Written atomically.
void save_topk_caches(const std::vector<SequenceCache>& caches, double temperature, const std::string& path);
/// Reads a file written by save_topk_caches (any producer); throws IoError / FormatError naming the file.
std::vector<SequenceCache> load_topk_caches(const std::string& path, double* temperature = nullptr);

}  // namespace metaprobe::meta
