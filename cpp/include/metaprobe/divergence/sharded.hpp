#pragma once
// Vocabulary-sharded divergence (the Megatron VocabParallelCrossEntropy pattern, Megatron-LM core/tensor_parallel/cross_entropy.py): each rank
// holds logits [..., V_r] for the vocabulary slice [vocab_start, vocab_start + V_r). Per-shard statistics of
// size O(rows) combine (max, sum, min) into exactly the full-vocabulary result without gathering logits.
// Order: local_maxima → all-reduce MAX(max) → rescale → all-reduce SUM(sums), MIN(argmax) →
// local_values → all-reduce SUM → local_partials → all-reduce SUM → combine. metaprobe.distributed runs it
// over a torch.distributed group; every tensor below has one row per flattened leading position.
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/divergence/divergence.hpp>

namespace metaprobe::sharded {

/// Phase-1 statistics of one shard, one row per position.
struct LocalMaxima {
  at::Tensor max;     ///< float64 [N, 2]: max of logits/T of p and q in this shard (−inf for an empty shard)
  at::Tensor sumexp;  ///< float64 [N, 2]: Σ exp(z/T − local max) of p and q over this shard
  at::Tensor argmax;  ///< int64 [N, 2]: global index of the first maximum of p and q in this shard
  at::Tensor bad;     ///< float64 [N, 2] (p, q): 0 ok, 1 a NaN logit, 2 a +inf logit in this shard (combine with MAX)
};
#define METAPROBE_SHARD_MAXIMA_FIELDS(X, LATER) X("max", max) X("sumexp", sumexp) X("argmax", argmax) X("bad", bad)
METAPROBE_RECORD(LocalMaxima, METAPROBE_SHARD_MAXIMA_FIELDS)

/// Phase 1 on one shard: local maxima, sums of exponentials and argmax candidates.
LocalMaxima local_maxima(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                         const DivergenceOptions& options);

/// Given the global maxima [N, 2], the local sums rescaled to them (combine with SUM, float64 [N, 2]) and
/// the argmax candidates (combine with MIN, int64 [N, 2]; INT64_MAX where this shard holds no global max).
std::pair<at::Tensor, at::Tensor> rescale(const LocalMaxima& local, const at::Tensor& global_max);

/// The raw logits this shard holds at global indices [N, 3] = (q at p's argmax, p at target, q at target);
/// 0 where the index is off-shard or −1 (combine with SUM). float64 [N, 3].
at::Tensor local_values(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                        const at::Tensor& indices);

/// Global per-position statistics every rank holds after the reductions above.
struct Globals {
  at::Tensor max;     ///< float64 [N, 2]
  at::Tensor sumexp;  ///< float64 [N, 2]
  at::Tensor argmax;  ///< int64 [N, 2]
  at::Tensor values;  ///< float64 [N, 3], from local_values
  at::Tensor bad;     ///< float64 [N, 2]
};
#define METAPROBE_SHARD_GLOBALS_FIELDS(X, LATER) \
  X("max", max) X("sumexp", sumexp) X("argmax", argmax) X("values", values) X("bad", bad)
METAPROBE_RECORD(Globals, METAPROBE_SHARD_GLOBALS_FIELDS)

/// Number of columns of local_partials.
inline constexpr std::int64_t kNumPartials = 10;

/// Phase 2 on one shard: the partial sums of every metric given the global statistics (combine with SUM),
/// float64 [N, kNumPartials].
at::Tensor local_partials(const at::Tensor& p_shard, const at::Tensor& q_shard, std::int64_t vocab_start,
                          const Globals& globals, const DivergenceOptions& options);

/// Turns the global statistics and the summed partials into the result, applying mask, targets,
/// reduction and base of `options`; `lead_shape` is the shape of the leading dims, `vocab_size` the full V.
DivergenceResult combine(const Globals& globals, const at::Tensor& partials, const std::vector<std::int64_t>& lead_shape,
                         std::int64_t vocab_size, const DivergenceOptions& options);

/// The index tensor local_values needs: int64 [N, 3] = (p's global argmax, target, target), −1 when absent.
at::Tensor value_indices(const at::Tensor& global_argmax, const DivergenceOptions& options, std::int64_t rows);

}  // namespace metaprobe::sharded
