#pragma once
// Options of the meta-probing run (docs/meta.md lists every field with its default and its paper).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/params/tensor_stats.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::meta {

/// How multiple-choice items are answered: by greedy generation like every other item, or by the
/// log-likelihood of each option after the prompt (lm-evaluation-harness style).
enum class ChoiceMode { generate, loglikelihood };

/// How the reference's distributions are held while stages are probed: both models resident (exact), or the
/// reference's top-k log-probabilities plus tail mass cached once (lower bounds on KL/JS; docs/meta.md).
enum class ReferenceMode { exact, topk_cache };

/// Where the run stands, passed to the progress callback after each unit of work.
struct RunProgress {
  std::string phase;   ///< "behaviour", "divergence", "sampled", "parameters", "derived"
  std::string stage;   ///< the stage being probed ("" for derived)
  int64_t done = 0;    ///< units done over the whole run
  int64_t total = 0;   ///< units of the whole run (batches plus one per parameter comparison)
};
using RunProgressCallback = std::function<void(const RunProgress&)>;

struct RunOptions {
  std::string reference = "base";            ///< name of the reference stage
  // behaviour
  bool behaviour = true;
  probes::PromptOptions prompt{"plain", 3, 0};
  ChoiceMode choice_mode = ChoiceMode::generate;
  std::string choice_delimiter = " ";        ///< between the prompt and an option in loglikelihood mode
  bool choice_norm = false;                  ///< loglikelihood mode: acc_norm (per-character) instead of acc
  int64_t max_new_tokens = 48;
  std::vector<std::string> stop{"\n"};       ///< a completion ends before the first stop string
  double z = 1.959963984540054;              ///< Wilson interval quantile
  // divergence
  bool divergence = true;
  std::string solution_separator = " ";      ///< between the rendered prompt and the reference solution
  ReferenceMode reference_mode = ReferenceMode::exact;
  int64_t cache_k = 32;                      ///< top-k of the reference cache
  double temperature = 1.0;
  double js_threshold = 0.05;                ///< τ of the JS sparsity fraction, nats
  int64_t position_bins = 10;                ///< bins of the positional profile over t/T in [0, 1)
  bool sampled_estimator = true;             ///< Huan et al.'s estimator on each stage's own answers
  // parameters
  bool parameters = true;
  params::UpdateOptions update;              ///< sparsity tolerances of the update statistics
  // derived
  std::vector<probes::Cell> target_cells;    ///< empty: every cell of target_domain
  std::string target_domain = "math";
  double collapse_delta = 0.1;               ///< a cell collapses when accuracy falls by more than this ...
                                             ///< ... and the Wilson intervals do not overlap
  std::string razor_metric = "kl_ref_stage"; ///< divergence correlated with accuracy change in the RL's Razor test
  bool razor_include_reference = true;       ///< the reference enters every arm as its (0, 0) point
  // execution
  int64_t batch_size = 16;                   ///< sequences per forward pass; results do not depend on it
  RunProgressCallback progress;              ///< optional; the library never prints

  /// Throws InvalidArgument naming the first bad field.
  void validate() const;
  /// The cells the derived metrics treat as the training target.
  std::vector<probes::Cell> resolved_target_cells() const;
};

/// "generate" / "loglikelihood".
std::string to_string(ChoiceMode mode);
/// "exact" / "topk_cache".
std::string to_string(ReferenceMode mode);
/// Parses a choice mode; throws InvalidArgument naming the value.
ChoiceMode parse_choice_mode(const std::string& name);
/// Parses a reference mode; throws InvalidArgument naming the value.
ReferenceMode parse_reference_mode(const std::string& name);

/// The options as JSON (every field but progress).
nlohmann::json options_to_json(const RunOptions& options);
/// Options from JSON: absent keys keep their defaults; an unknown key or a bad value throws InvalidArgument.
RunOptions options_from_json(const nlohmann::json& j);

/// The razor metric names accepted by RunOptions::razor_metric.
std::vector<std::string> razor_metric_names();

}  // namespace metaprobe::meta
