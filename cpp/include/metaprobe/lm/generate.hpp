#pragma once
// Batched sampling from a TinyTransformer with left padding and a key/value cache. Every row draws from its own
// generator seeded from (seed, row index), so a row's sample does not depend on the batch it is in.
#include <cstdint>
#include <string>
#include <vector>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/transformer.hpp>

namespace metaprobe::lm {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;         // 0 = greedy (argmax, lowest id on ties)
  int64_t top_k = 0;                // 0 = full vocabulary
  std::vector<std::string> stop;    // generation of a row ends when its completion ends with one of these
  bool stop_at_eos = true;          // EOS ends a row
  uint64_t seed = 0;
  int64_t batch_size = 64;          // rows per forward pass (results do not depend on it)
};
#define METAPROBE_GENERATE_OPTIONS_FIELDS(X, LATER)                                                             \
  X("max_new_tokens", max_new_tokens) X("temperature", temperature) X("top_k", top_k) X("stop", stop)          \
  X("stop_at_eos", stop_at_eos) X("seed", seed) X("batch_size", batch_size)
METAPROBE_RECORD(GenerateOptions, METAPROBE_GENERATE_OPTIONS_FIELDS)

/// Throws InvalidArgument naming the first bad field (max_new_tokens < 1, temperature < 0, top_k < 0,
/// batch_size < 1, an empty stop string); generate() calls it.
void validate(const GenerateOptions& options);

/// One completion. token_ids are what the model emitted (including a final stop/EOS token); logprobs[i] is
/// log π(token_ids[i]) under the sampling distribution (softmax of logits/temperature after top-k; raw logits
/// when greedy).
struct Generation {
  std::string completion;           // decoded text, stop string excluded, specials skipped
  std::vector<int64_t> token_ids;
  std::vector<double> logprobs;
  std::string finish_reason;        // "stop", "eos" or "length"
  int64_t prompt_tokens = 0;        // BOS + prompt characters
};

/// Completes each prompt (BOS is prepended). Throws InvalidArgument for bad options (max_new_tokens < 1,
/// temperature < 0, top_k < 0, batch_size < 1, an empty stop string) or when a prompt plus max_new_tokens
/// exceeds the model's max_len.
std::vector<Generation> generate(const TinyTransformer& model, const CharTokenizer& tokenizer,
                                 const std::vector<std::string>& prompts, const GenerateOptions& options = {});

/// The per-row seed generate() uses for row `row` (SplitMix64 of seed and row).
uint64_t row_seed(uint64_t seed, uint64_t row);

}  // namespace metaprobe::lm
