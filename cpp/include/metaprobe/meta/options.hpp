#pragma once
// Options of the meta-probing run (docs/meta.md lists every field with its default and its paper).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>

#include <metaprobe/meta/logit_source.hpp>
#include <metaprobe/params/tensor_stats.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::meta {

/// How multiple-choice items are answered: by greedy generation like every other item, or by the
/// log-likelihood of each option after the prompt (lm-evaluation-harness style).
enum class ChoiceMode { generate, loglikelihood };
METAPROBE_ENUM_NAMES(ChoiceMode, "choice_mode", "'{value}' is not a choice mode, expected one of {names}",
                     {ChoiceMode::generate, "generate"}, {ChoiceMode::loglikelihood, "loglikelihood"})

/// How the reference's distributions are held while stages are probed: both models resident (exact), or the
/// reference's top-k log-probabilities plus tail mass cached once (lower bounds on KL/JS; docs/meta.md).
enum class ReferenceMode { exact, topk_cache };
METAPROBE_ENUM_NAMES(ReferenceMode, "reference_mode", "'{value}' is not a reference mode, expected one of {names}",
                     {ReferenceMode::exact, "exact"}, {ReferenceMode::topk_cache, "topk_cache"})

// The three run modes below name their option in messages as a path, "RunOptions.prompt_format is 'html',
// expected one of ...", like validate()'s other rules; read from JSON, the path is the key's
// ("options.prompt_format is ...").
inline constexpr const char* kRunModeReject = "{what} is '{value}', expected one of {names}";

/// How prompts are built: the probes' own templates (RunOptions::prompt), the tokenizer's chat template with
/// the question as the user turn, or the bare question text.
enum class PromptFormat { probe_template, chat_template, raw };
METAPROBE_ENUM_NAMES(PromptFormat, "RunOptions.prompt_format", kRunModeReject,
                     {PromptFormat::probe_template, "template"}, {PromptFormat::chat_template, "chat_template"},
                     {PromptFormat::raw, "raw"})

/// The sequences the divergence is measured along: y ~ π_ref (the reference's own answers), each stage's
/// own answers, or the items' gold solutions.
enum class DivergenceOn { reference_samples, stage_samples, gold };
METAPROBE_ENUM_NAMES(DivergenceOn, "RunOptions.divergence_on", kRunModeReject,
                     {DivergenceOn::reference_samples, "reference_samples"},
                     {DivergenceOn::stage_samples, "stage_samples"}, {DivergenceOn::gold, "gold"})

/// The divergence the RL's Razor test correlates with forgetting: forward KL(π_ref ‖ π_stage), reverse KL,
/// JS, or Huan et al.'s sampled-token estimator on the stages' own answers.
enum class RazorMetric { kl_ref_stage, kl_stage_ref, js, sampled_kl };
METAPROBE_ENUM_NAMES(RazorMetric, "RunOptions.razor_metric", kRunModeReject,
                     {RazorMetric::kl_ref_stage, "kl_ref_stage"}, {RazorMetric::kl_stage_ref, "kl_stage_ref"},
                     {RazorMetric::js, "js"}, {RazorMetric::sampled_kl, "sampled_kl"})

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
  int64_t max_new_tokens = 512;              ///< long enough not to cut ordinary chat answers
  std::vector<std::string> stop{"\n"};       ///< a completion ends before the first stop string
  double z = 1.959963984540054;              ///< Wilson interval quantile
  // decoding (independent of the divergence options)
  bool do_sample = false;                    ///< false: greedy
  double temperature = 1.0;                  ///< sampling temperature (do_sample only)
  double top_p = 1.0;                        ///< nucleus mass in (0, 1]
  int64_t top_k = 0;                         ///< 0: whole vocabulary
  int64_t n_samples = 1;                     ///< completions per item (per-item mean correctness, pass@k)
  uint64_t seed = 0;                         ///< sample s of item i draws from the stream seeded (seed, i, s)
  std::vector<int64_t> eos_ids;              ///< end-of-generation ids; empty: the tokenizer's (all of them)
  // prompts and answers
  PromptFormat prompt_format = PromptFormat::probe_template;  ///< "template", "chat_template" or "raw"
  std::string system_prompt;                 ///< chat_template: an optional system turn
  std::string think_open = "<think>";        ///< reasoning block tags: the answer is read after think_close;
  std::string think_close = "</think>";      ///< empty think_open: no reasoning blocks
  // divergence
  bool divergence = true;
  std::string solution_separator = " ";      ///< between the rendered prompt and the reference solution
  ReferenceMode reference_mode = ReferenceMode::exact;
  int64_t cache_k = 32;                      ///< top-k of the reference cache
  double divergence_temperature = 1.0;       ///< softmax temperature of every divergence and log-likelihood
  DivergenceOn divergence_on = DivergenceOn::reference_samples;  ///< sequences the divergence is measured along
  double js_threshold = 0.05;                ///< τ of the JS sparsity fraction, nats
  int64_t position_bins = 10;                ///< bins of the positional profile over t/T in [0, 1)
  bool sampled_estimator = true;             ///< Huan et al.'s estimator on each stage's own answers
  bool huan_skip_first_token = true;         ///< sampled_kl_huan drops the first answer token, as their script does
  // parameters
  bool parameters = true;
  params::UpdateOptions update;              ///< sparsity tolerances of the update statistics
  bool update_emulate_bf16 = false;          ///< Mukherjee et al.'s bf16 subtraction for sparsity_abs and rank
  params::NonFinitePolicy update_nonfinite = params::NonFinitePolicy::nan;  ///< NaN/Inf weight pairs
  // derived
  std::vector<probes::Cell> target_cells;    ///< empty: every cell of target_domain
  probes::Domain target_domain = probes::Domain::math;
  double collapse_delta = 0.1;               ///< a cell collapses when accuracy falls by more than this ...
                                             ///< ... and the Wilson intervals do not overlap
  RazorMetric razor_metric = RazorMetric::kl_ref_stage;  ///< divergence correlated with accuracy change (Razor)
  bool razor_include_reference = true;       ///< the reference enters every arm as its (0, 0) point
  // execution
  int64_t batch_size = 16;                   ///< sequences per forward pass; results do not depend on it
  int64_t batch_tokens = 16384;              ///< padded tokens per forward pass (rows × longest), at least one row
  /// > 0: every model's logits are cut to the ids [0, vocab_size) and only those are generated — the shared
  /// slice of stages whose vocabularies differ only in a padded or added tail (e.g. a base and its chat model).
  int64_t vocab_size = 0;
  int64_t score_rows = 512;                  ///< positions scored per pass: bounds the logits held to O(score_rows × V)
  RunProgressCallback progress;              ///< optional; the library never prints

  /// Throws InvalidArgument naming the first bad field.
  void validate() const;
  /// The decoding options of generate() requests (eos_ids as given; the run adds the tokenizer's).
  DecodeOptions decode_options() const;
  /// The cells the derived metrics treat as the training target.
  std::vector<probes::Cell> resolved_target_cells() const;
};
// Note [one declaration per option]: this list is the options' only other statement. options_to_json and
// options_from_json (every key, its JSON kind, the error path "options.prompt.k: ..."), default_options and
// Python's MetaOptions (its field names: a nested key joined with "_", e.g. prompt_template; its defaults:
// RunOptions{}) are derived from it; `progress` is not an option of the file form. Adding an option: a member
// with its default above, one entry here, a line in docs/meta.md (and a rule in validate() if it has one).
#define METAPROBE_RUN_OPTIONS_FIELDS(X, LATER)                                                                 \
  X("reference", reference) X("behaviour", behaviour) X("prompt", prompt) X("choice_mode", choice_mode)         \
  X("choice_delimiter", choice_delimiter) X("choice_norm", choice_norm) X("max_new_tokens", max_new_tokens)     \
  X("stop", stop) X("z", z) X("do_sample", do_sample) X("temperature", temperature) X("top_p", top_p)           \
  X("top_k", top_k) X("n_samples", n_samples) X("seed", seed) X("eos_ids", eos_ids)                           \
  X("prompt_format", prompt_format) X("system_prompt", system_prompt) X("think_open", think_open)               \
  X("think_close", think_close) X("divergence", divergence) X("divergence_on", divergence_on)                   \
  X("divergence_temperature", divergence_temperature) X("solution_separator", solution_separator)               \
  X("reference_mode", reference_mode) X("cache_k", cache_k) X("js_threshold", js_threshold)                     \
  X("position_bins", position_bins) X("sampled_estimator", sampled_estimator)                                   \
  X("huan_skip_first_token", huan_skip_first_token) X("parameters", parameters) X("update_atol", update.atol)   \
  X("update_eta", update.eta) X("update_emulate_bf16", update_emulate_bf16)                                     \
  X("update_nonfinite", update_nonfinite) X("target_cells", target_cells) X("target_domain", target_domain)     \
  X("collapse_delta", collapse_delta) X("razor_metric", razor_metric)                                           \
  X("razor_include_reference", razor_include_reference) X("batch_size", batch_size)                             \
  X("batch_tokens", batch_tokens) X("score_rows", score_rows) X("vocab_size", vocab_size)
METAPROBE_RECORD(RunOptions, METAPROBE_RUN_OPTIONS_FIELDS)

/// "generate" / "loglikelihood".
inline std::string to_string(ChoiceMode mode) { return std::string(enum_name(mode)); }
/// "exact" / "topk_cache".
inline std::string to_string(ReferenceMode mode) { return std::string(enum_name(mode)); }
/// Parses a choice mode; throws InvalidArgument naming the value.
inline ChoiceMode parse_choice_mode(const std::string& name) { return parse_enum<ChoiceMode>(name); }
/// Parses a reference mode; throws InvalidArgument naming the value.
inline ReferenceMode parse_reference_mode(const std::string& name) { return parse_enum<ReferenceMode>(name); }

/// The options as JSON, one key per entry of METAPROBE_RUN_OPTIONS_FIELDS ("prompt" an object).
nlohmann::json options_to_json(const RunOptions& options);
/// Options from JSON: absent keys keep their defaults; an unknown key (also inside "prompt") or a value of the
/// wrong kind throws InvalidArgument naming its path ("options.prompt.k: got ..."); then validate().
RunOptions options_from_json(const nlohmann::json& j);
/// The option paths in list order, a nested record's as "prompt.template" (what Python derives MetaOptions from).
std::vector<std::string> option_paths();

}  // namespace metaprobe::meta
