#pragma once
// Training for TinyTransformer: supervised fine-tuning (next-token cross-entropy) and GRPO (group-relative
// policy gradient with a clipped ratio and an optional KL penalty to a frozen reference). Both use AdamW, are
// deterministic on CPU for a seed and a thread count, keep no global state, and report progress through a
// callback (return false from it to stop early). See docs/lm.md for the objectives.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>
#include <metaprobe/lm/transformer.hpp>

namespace metaprobe::lm {

/// AdamW hyper-parameters and the learning-rate schedule shared by both trainers: linear warm-up over `warmup`
/// steps, then cosine decay from lr to lr * min_lr_ratio at the last step.
struct OptimizerOptions {
  double lr = 1e-3;
  double weight_decay = 0.01;   // decoupled; applied to matrices only (not to norm weights)
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  int64_t warmup = 0;
  double min_lr_ratio = 0.1;
  double max_grad_norm = 1.0;   // global L2 clip; 0 disables
};
#define METAPROBE_OPTIMIZER_OPTIONS_FIELDS(X, LATER)                                                            \
  X("lr", lr) X("weight_decay", weight_decay) X("beta1", beta1) X("beta2", beta2) X("eps", eps)                \
  X("warmup", warmup) X("min_lr_ratio", min_lr_ratio) X("max_grad_norm", max_grad_norm)
METAPROBE_RECORD(OptimizerOptions, METAPROBE_OPTIMIZER_OPTIONS_FIELDS)

/// Throws InvalidArgument naming the first bad field ("optimizer.lr: got -1.000000, expected a finite value > 0").
void validate(const OptimizerOptions& options);

/// Which tokens carry the SFT loss.
enum class LossOn { completion, all };
METAPROBE_ENUM_NAMES(LossOn, "loss_on", "unknown value '{value}', expected {names_or}",
                     {LossOn::completion, "completion"}, {LossOn::all, "all"})
/// "completion" / "all".
inline std::string_view to_string(LossOn loss_on) { return enum_name(loss_on); }
/// Parses "completion" / "all"; throws InvalidArgument otherwise.
inline LossOn parse_loss_on(std::string_view name) { return parse_enum<LossOn>(name); }

/// One training example: the model reads BOS + prompt + completion + EOS.
struct SftExample {
  std::string prompt;
  std::string completion;
};

struct SftOptions {
  int64_t steps = 100;
  int64_t batch_size = 16;
  OptimizerOptions optimizer{};
  uint64_t seed = 0;                 // order of the examples (reshuffled every epoch)
  LossOn loss_on = LossOn::completion;  // completion: the completion and EOS; all: every token after BOS
  bool truncate = false;             // cut sequences to max_len instead of throwing
};
#define METAPROBE_SFT_OPTIONS_FIELDS(X, LATER)                                                                  \
  X("steps", steps) X("batch_size", batch_size) X("optimizer", optimizer) X("seed", seed)                      \
  X("loss_on", loss_on) X("truncate", truncate)
METAPROBE_RECORD(SftOptions, METAPROBE_SFT_OPTIONS_FIELDS)

/// Throws InvalidArgument naming the first bad field (steps, batch_size, then the optimizer's); sft_train calls it.
void validate(const SftOptions& options);

struct SftStep {
  int64_t step = 0;          // 1-based
  double loss = 0.0;         // mean cross-entropy (nats/token) over the batch's loss tokens
  double lr = 0.0;
  double grad_norm = 0.0;    // before clipping
  int64_t tokens = 0;        // loss tokens in the batch
};
#define METAPROBE_SFT_STEP_FIELDS(X, LATER) \
  X("step", step) X("loss", loss) X("lr", lr) X("grad_norm", grad_norm) X("tokens", tokens)
METAPROBE_RECORD(SftStep, METAPROBE_SFT_STEP_FIELDS)

struct SftResult {
  std::vector<double> losses;   // one per step run
  std::vector<SftStep> steps;
};

/// Called after every optimizer step with the model already updated (safe to save it); false stops training.
using SftCallback = std::function<bool(const SftStep&)>;

/// Trains `model` in place. Throws InvalidArgument for empty examples, bad options, or (unless truncate) an
/// example longer than max_len.
SftResult sft_train(TinyTransformer& model, const std::vector<SftExample>& examples, const SftOptions& options = {},
                    const SftCallback& on_step = {});

/// Reward of one completion of prompts[prompt_index].
using RewardFn = std::function<double(const std::string& completion, int64_t prompt_index)>;

struct GrpoOptions {
  int64_t steps = 50;
  int64_t prompts_per_step = 4;
  int64_t group_size = 8;
  OptimizerOptions optimizer{1e-4, 0.0};
  double temperature = 1.0;          // sampling and log-prob temperature (> 0)
  int64_t top_k = 0;
  int64_t max_new_tokens = 32;
  std::vector<std::string> stop;
  double clip_eps = 0.2;
  double kl_coef = 0.0;              // > 0: penalise the k3 KL estimate to the frozen initial model
  int64_t inner_steps = 1;           // optimizer steps per sampled batch (the ratio moves from 1 after the first)
  double adv_eps = 1e-6;             // advantage = (r - mean) / (std + adv_eps), std over the group (population)
  uint64_t seed = 0;
};
#define METAPROBE_GRPO_OPTIONS_FIELDS(X, LATER)                                                                 \
  X("steps", steps) X("prompts_per_step", prompts_per_step) X("group_size", group_size)                        \
  X("optimizer", optimizer) X("temperature", temperature) X("top_k", top_k) X("max_new_tokens", max_new_tokens) \
  X("stop", stop) X("clip_eps", clip_eps) X("kl_coef", kl_coef) X("inner_steps", inner_steps)                  \
  X("adv_eps", adv_eps) X("seed", seed)
METAPROBE_RECORD(GrpoOptions, METAPROBE_GRPO_OPTIONS_FIELDS)

/// Throws InvalidArgument naming the first bad field (steps, the counts, temperature, clip_eps, kl_coef, adv_eps,
/// then the optimizer's); grpo_train calls it.
void validate(const GrpoOptions& options);

struct GrpoStep {
  int64_t step = 0;               // 1-based
  double mean_reward = 0.0;       // over the step's prompts_per_step * group_size samples
  double reward_std = 0.0;
  double loss = 0.0;              // last inner step's loss
  double kl = 0.0;                // mean k3 KL estimate to the reference (0 when kl_coef = 0)
  double clip_fraction = 0.0;     // tokens whose ratio was clipped, last inner step
  double mean_completion_tokens = 0.0;
  double zero_advantage_groups = 0.0;  // fraction of groups whose rewards were all equal (no signal)
  double lr = 0.0;
  std::vector<int64_t> prompt_indices;
};
#define METAPROBE_GRPO_STEP_FIELDS(X, LATER)                                                                    \
  X("step", step) X("mean_reward", mean_reward) X("reward_std", reward_std) X("loss", loss) X("kl", kl)        \
  X("clip_fraction", clip_fraction) X("mean_completion_tokens", mean_completion_tokens)                        \
  X("zero_advantage_groups", zero_advantage_groups) X("lr", lr) X("prompt_indices", prompt_indices)
METAPROBE_RECORD(GrpoStep, METAPROBE_GRPO_STEP_FIELDS)

struct GrpoResult {
  std::vector<double> mean_rewards;  // one per step run
  std::vector<GrpoStep> steps;
};

/// Called after every step with the model already updated (safe to save a checkpoint); false stops training.
using GrpoCallback = std::function<bool(const GrpoStep&)>;

/// Trains `model` in place with GRPO on `prompts` (BOS is prepended; completions are sampled from the current
/// policy). Throws InvalidArgument for empty prompts, a missing reward function, bad options or a non-finite
/// reward.
GrpoResult grpo_train(TinyTransformer& model, const std::vector<std::string>& prompts, const RewardFn& reward_fn,
                      const GrpoOptions& options = {}, const GrpoCallback& on_step = {});

}  // namespace metaprobe::lm
