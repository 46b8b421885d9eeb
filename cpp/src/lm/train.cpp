#include <cmath>
#include <numeric>
#include <optional>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/generate.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/train.hpp>

namespace metaprobe::lm {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Parameters take part in autograd only while a trainer runs, so forward() elsewhere builds no graph.
class TrainingScope {
 public:
  explicit TrainingScope(const TinyTransformer& model) : model_(model) {
    for (const auto& [name, p] : model_.named_parameters()) p.requires_grad_(true);
  }
  ~TrainingScope() {
    for (const auto& [name, p] : model_.named_parameters()) {
      p.mutable_grad() = at::Tensor();
      p.requires_grad_(false);
    }
  }
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  const TinyTransformer& model_;
};

double scheduled_lr(const OptimizerOptions& o, int64_t step, int64_t total) {
  if (step <= o.warmup) return o.lr * static_cast<double>(step) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, total - o.warmup));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + std::cos(kPi * progress)));
}

// AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only.
class AdamW {
 public:
  AdamW(const TinyTransformer& model, const OptimizerOptions& o) : o_(o) {
    for (const auto& [name, p] : model.named_parameters()) {
      params_.push_back(p);
      m_.push_back(at::zeros_like(p));
      v_.push_back(at::zeros_like(p));
    }
  }

  // Clips the global gradient norm and applies one update; returns the norm before clipping.
  double step(double lr) {
    c10::NoGradGuard no_grad;
    double sq = 0.0;
    for (const auto& p : params_) {
      if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    const double norm = std::sqrt(sq);
    if (!std::isfinite(norm)) {
      throw InvalidArgument("loss: the gradient norm is not finite (" + std::to_string(norm) +
                            "); lower optimizer.lr or check the inputs");
    }
    const double clip = (o_.max_grad_norm > 0.0 && norm > o_.max_grad_norm) ? o_.max_grad_norm / (norm + 1e-6) : 1.0;
    ++t_;
    const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor& p = params_[i];
      if (!p.grad().defined()) continue;
      at::Tensor g = clip == 1.0 ? p.grad() : p.grad() * clip;
      m_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
      v_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
      if (o_.weight_decay > 0.0 && p.dim() >= 2) p.mul_(1.0 - lr * o_.weight_decay);
      at::Tensor denom = (v_[i] / bc2).sqrt_().add_(o_.eps);
      p.addcdiv_(m_[i], denom, -lr / bc1);
      p.mutable_grad() = at::Tensor();
    }
    return norm;
  }

 private:
  OptimizerOptions o_;
  std::vector<at::Tensor> params_, m_, v_;
  int64_t t_ = 0;
};

// Cycles through [0, n) in seeded shuffled epochs (own Fisher–Yates: std::shuffle differs between libraries).
class Sampler {
 public:
  Sampler(int64_t n, uint64_t seed) : gen_(seed), order_(n), pos_(n) {}
  int64_t next() {
    if (pos_ == static_cast<int64_t>(order_.size())) {
      std::iota(order_.begin(), order_.end(), 0);
      for (int64_t i = static_cast<int64_t>(order_.size()) - 1; i > 0; --i) {
        const auto j = static_cast<int64_t>(gen_.random64() % static_cast<uint64_t>(i + 1));
        std::swap(order_[i], order_[j]);
      }
      pos_ = 0;
    }
    return order_[pos_++];
  }

 private:
  at::CPUGeneratorImpl gen_;
  std::vector<int64_t> order_;
  int64_t pos_;
};

// Token log-probs of `targets` [B, T] under softmax(logits / temperature).
at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& targets, double temperature) {
  at::Tensor z = temperature == 1.0 ? logits : logits / temperature;
  return at::log_softmax(z, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
}

}  // namespace

void validate(const OptimizerOptions& o) {
  auto fail = [&](const char* field, double value, const char* expected) {
    throw InvalidArgument(std::string("optimizer.") + field + ": got " + std::to_string(value) + ", expected " +
                          expected);
  };
  if (!(o.lr > 0.0) || !std::isfinite(o.lr)) fail("lr", o.lr, "a finite value > 0");
  if (!(o.weight_decay >= 0.0) || !std::isfinite(o.weight_decay)) fail("weight_decay", o.weight_decay, ">= 0");
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0)) fail("beta1", o.beta1, "0 <= beta1 < 1");
  if (!(o.beta2 >= 0.0 && o.beta2 < 1.0)) fail("beta2", o.beta2, "0 <= beta2 < 1");
  if (!(o.eps > 0.0)) fail("eps", o.eps, "> 0");
  if (o.warmup < 0) fail("warmup", static_cast<double>(o.warmup), ">= 0");
  if (!(o.min_lr_ratio >= 0.0 && o.min_lr_ratio <= 1.0)) fail("min_lr_ratio", o.min_lr_ratio, "0 <= ratio <= 1");
  if (!(o.max_grad_norm >= 0.0) || !std::isfinite(o.max_grad_norm)) fail("max_grad_norm", o.max_grad_norm, ">= 0");
}

void validate(const SftOptions& options) {
  if (options.steps < 0) throw InvalidArgument("steps: got " + std::to_string(options.steps) + ", expected >= 0");
  if (options.batch_size < 1) {
    throw InvalidArgument("batch_size: got " + std::to_string(options.batch_size) + ", expected >= 1");
  }
  validate(options.optimizer);
}

void validate(const GrpoOptions& o) {
  auto positive = [](const char* field, int64_t v) {
    if (v < 1) throw InvalidArgument(std::string(field) + ": got " + std::to_string(v) + ", expected >= 1");
  };
  if (o.steps < 0) throw InvalidArgument("steps: got " + std::to_string(o.steps) + ", expected >= 0");
  positive("prompts_per_step", o.prompts_per_step);
  positive("group_size", o.group_size);
  positive("max_new_tokens", o.max_new_tokens);
  positive("inner_steps", o.inner_steps);
  if (!(o.temperature > 0.0) || !std::isfinite(o.temperature)) {
    throw InvalidArgument("temperature: got " + std::to_string(o.temperature) + ", expected a finite value > 0");
  }
  if (!(o.clip_eps > 0.0 && o.clip_eps < 1.0)) {
    throw InvalidArgument("clip_eps: got " + std::to_string(o.clip_eps) + ", expected 0 < clip_eps < 1");
  }
  if (!(o.kl_coef >= 0.0) || !std::isfinite(o.kl_coef)) {
    throw InvalidArgument("kl_coef: got " + std::to_string(o.kl_coef) + ", expected a finite value >= 0");
  }
  if (!(o.adv_eps > 0.0)) throw InvalidArgument("adv_eps: got " + std::to_string(o.adv_eps) + ", expected > 0");
  validate(o.optimizer);
}

SftResult sft_train(TinyTransformer& model, const std::vector<SftExample>& examples, const SftOptions& options,
                    const SftCallback& on_step) {
  if (examples.empty()) throw InvalidArgument("examples: expected at least one example, got none");
  validate(options);
  const CharTokenizer tok;
  const int64_t max_len = model.config().max_len;
  // Each sequence: ids (BOS prompt completion EOS) and the index where the loss starts.
  std::vector<std::vector<int64_t>> seqs(examples.size());
  std::vector<int64_t> loss_start(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    seqs[i] = tok.encode(examples[i].prompt, true);
    loss_start[i] = options.loss_on == LossOn::all ? 1 : static_cast<int64_t>(seqs[i].size());
    auto c = tok.encode(examples[i].completion, false, true);
    seqs[i].insert(seqs[i].end(), c.begin(), c.end());
    const int64_t inputs = static_cast<int64_t>(seqs[i].size()) - 1;
    if (inputs > max_len) {
      if (!options.truncate) {
        throw InvalidArgument("examples: example " + std::to_string(i) + " needs " + std::to_string(inputs) +
                              " input positions, expected <= config.max_len " + std::to_string(max_len) +
                              " (or set truncate)");
      }
      seqs[i].resize(max_len + 1);
      if (loss_start[i] > max_len) {
        throw InvalidArgument("examples: example " + std::to_string(i) + " has a prompt of " +
                              std::to_string(loss_start[i]) + " tokens with BOS, so truncation to config.max_len " +
                              std::to_string(max_len) + " leaves no completion token to learn");
      }
    }
  }

  SftResult result;
  TrainingScope scope(model);
  AdamW opt(model, options.optimizer);
  Sampler sampler(static_cast<int64_t>(examples.size()), options.seed);
  for (int64_t step = 1; step <= options.steps; ++step) {
    std::vector<std::vector<int64_t>> inputs;
    std::vector<int64_t> picked;
    for (int64_t b = 0; b < options.batch_size; ++b) {
      const int64_t i = sampler.next();
      picked.push_back(i);
      inputs.emplace_back(seqs[i].begin(), seqs[i].end() - 1);
    }
    TokenBatch batch = CharTokenizer::pad(inputs, PaddingSide::right);
    at::Tensor targets = at::full(batch.ids.sizes(), -100, at::kLong);
    auto tacc = targets.accessor<int64_t, 2>();
    int64_t n_tokens = 0;
    for (int64_t b = 0; b < options.batch_size; ++b) {
      const auto& s = seqs[picked[b]];
      for (int64_t t = loss_start[picked[b]] - 1; t + 1 < static_cast<int64_t>(s.size()); ++t) {
        tacc[b][t] = s[t + 1];
        ++n_tokens;
      }
    }
    const double lr = scheduled_lr(options.optimizer, step, options.steps);
    at::Tensor logits = model.forward(batch.ids, batch.attention_mask);
    const int64_t V = logits.size(-1);
    at::Tensor loss = at::nll_loss(at::log_softmax(logits.reshape({-1, V}), -1), targets.reshape({-1}), {},
                                   at::Reduction::Mean, -100);
    loss.backward();
    SftStep info;
    info.step = step;
    info.loss = loss.item<double>();
    info.lr = lr;
    info.tokens = n_tokens;
    info.grad_norm = opt.step(lr);
    result.losses.push_back(info.loss);
    result.steps.push_back(info);
    if (on_step && !on_step(info)) break;
  }
  return result;
}

GrpoResult grpo_train(TinyTransformer& model, const std::vector<std::string>& prompts, const RewardFn& reward_fn,
                      const GrpoOptions& o, const GrpoCallback& on_step) {
  if (prompts.empty()) throw InvalidArgument("prompts: expected at least one prompt, got none");
  if (!reward_fn) throw InvalidArgument("reward_fn: expected a callable, got an empty function");
  validate(o);
  GenerateOptions gen;
  gen.max_new_tokens = o.max_new_tokens;
  gen.temperature = o.temperature;
  gen.top_k = o.top_k;
  gen.stop = o.stop;
  gen.batch_size = 256;
  {
    // Prompt lengths are checked before any training so a bad prompt cannot fail a long run midway.
    for (size_t i = 0; i < prompts.size(); ++i) {
      const int64_t need = static_cast<int64_t>(prompts[i].size()) + 1 + o.max_new_tokens;
      if (need > model.config().max_len) {
        throw InvalidArgument("prompts: prompt " + std::to_string(i) + " with BOS and max_new_tokens " +
                              std::to_string(o.max_new_tokens) + " needs " + std::to_string(need) +
                              " positions, expected <= config.max_len " + std::to_string(model.config().max_len));
      }
    }
  }

  const CharTokenizer tok;
  std::optional<TinyTransformer> reference;
  if (o.kl_coef > 0.0) reference.emplace(model.clone());
  GrpoResult result;
  TrainingScope scope(model);
  AdamW opt(model, o.optimizer);
  Sampler sampler(static_cast<int64_t>(prompts.size()), o.seed);
  const int64_t G = o.group_size, P = o.prompts_per_step, N = G * P;

  for (int64_t step = 1; step <= o.steps; ++step) {
    GrpoStep info;
    info.step = step;
    std::vector<std::string> batch_prompts;
    for (int64_t p = 0; p < P; ++p) {
      const int64_t idx = sampler.next();
      info.prompt_indices.push_back(idx);
      for (int64_t g = 0; g < G; ++g) batch_prompts.push_back(prompts[idx]);
    }
    gen.seed = row_seed(o.seed ^ 0x5DEECE66DULL, static_cast<uint64_t>(step));
    std::vector<Generation> samples = generate(model, tok, batch_prompts, gen);

    std::vector<double> rewards(N), advantages(N);
    double reward_sum = 0.0;
    int64_t flat_groups = 0;
    for (int64_t p = 0; p < P; ++p) {
      double mean = 0.0;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t i = p * G + g;
        const double r = reward_fn(samples[i].completion, info.prompt_indices[p]);
        if (!std::isfinite(r)) {
          throw InvalidArgument("reward_fn: returned " + std::to_string(r) + " for prompt " +
                                std::to_string(info.prompt_indices[p]) + ", expected a finite number");
        }
        rewards[i] = r;
        mean += r;
      }
      mean /= static_cast<double>(G);
      double var = 0.0;
      for (int64_t g = 0; g < G; ++g) var += (rewards[p * G + g] - mean) * (rewards[p * G + g] - mean);
      const double sd = std::sqrt(var / static_cast<double>(G));
      if (sd == 0.0) ++flat_groups;
      for (int64_t g = 0; g < G; ++g) advantages[p * G + g] = (rewards[p * G + g] - mean) / (sd + o.adv_eps);
      reward_sum += mean * static_cast<double>(G);
    }
    info.mean_reward = reward_sum / static_cast<double>(N);
    double rv = 0.0;
    for (double r : rewards) rv += (r - info.mean_reward) * (r - info.mean_reward);
    info.reward_std = std::sqrt(rv / static_cast<double>(N));
    info.zero_advantage_groups = static_cast<double>(flat_groups) / static_cast<double>(P);
    info.lr = scheduled_lr(o.optimizer, step, o.steps);

    // Teacher-forced batch: BOS prompt completion, predicting the completion tokens.
    std::vector<std::vector<int64_t>> inputs(N);
    at::Tensor targets = at::zeros({N, 1}, at::kLong);
    int64_t width = 0;
    double total_tokens = 0.0;
    for (int64_t i = 0; i < N; ++i) {
      auto seq = tok.encode(batch_prompts[i], true);
      seq.insert(seq.end(), samples[i].token_ids.begin(), samples[i].token_ids.end());
      inputs[i].assign(seq.begin(), seq.end() - 1);
      width = std::max<int64_t>(width, static_cast<int64_t>(inputs[i].size()));
      total_tokens += static_cast<double>(samples[i].token_ids.size());
    }
    info.mean_completion_tokens = total_tokens / static_cast<double>(N);
    TokenBatch batch = CharTokenizer::pad(inputs, PaddingSide::right);
    targets = at::zeros({N, width}, at::kLong);
    at::Tensor weight = at::zeros({N, width}, at::kFloat);
    at::Tensor adv = at::zeros({N, 1}, at::kFloat);
    {
      auto tacc = targets.accessor<int64_t, 2>();
      auto wacc = weight.accessor<float, 2>();
      auto aacc = adv.accessor<float, 2>();
      for (int64_t i = 0; i < N; ++i) {
        const auto& ids = samples[i].token_ids;
        const int64_t start = samples[i].prompt_tokens - 1;  // logits at start predict the first completion token
        const auto n = static_cast<int64_t>(ids.size());
        for (int64_t k = 0; k < n; ++k) {
          tacc[i][start + k] = ids[k];
          // Per-sequence mean over its tokens, then mean over the N samples (the GRPO normalisation).
          wacc[i][start + k] = static_cast<float>(1.0 / (static_cast<double>(n) * static_cast<double>(N)));
        }
        aacc[i][0] = static_cast<float>(advantages[i]);
      }
    }
    at::Tensor ref_logp;
    if (reference) {
      c10::NoGradGuard no_grad;
      ref_logp = token_logprobs(reference->forward(batch.ids, batch.attention_mask), targets, o.temperature);
    }
    const bool has_signal = flat_groups < P || reference.has_value();
    at::Tensor old_logp;
    for (int64_t inner = 0; inner < o.inner_steps && has_signal; ++inner) {
      at::Tensor logp = token_logprobs(model.forward(batch.ids, batch.attention_mask), targets, o.temperature);
      if (inner == 0) old_logp = logp.detach();
      at::Tensor ratio = at::exp(logp - old_logp);
      at::Tensor clipped = at::clamp(ratio, 1.0 - o.clip_eps, 1.0 + o.clip_eps);
      at::Tensor objective = at::min(ratio * adv, clipped * adv);
      if (reference) {
        at::Tensor d = ref_logp - logp;
        at::Tensor kl = at::exp(d) - d - 1.0;
        objective = objective - o.kl_coef * kl;
        info.kl = (kl.detach() * weight).sum().item<double>();
      }
      at::Tensor loss = -(objective * weight).sum();
      loss.backward();
      {
        c10::NoGradGuard no_grad;
        at::Tensor outside = ((ratio - 1.0).abs() > o.clip_eps).to(at::kFloat) * (weight > 0).to(at::kFloat);
        info.clip_fraction = outside.sum().item<double>() / std::max(1.0, total_tokens);
      }
      info.loss = loss.item<double>();
      opt.step(info.lr);
    }
    result.mean_rewards.push_back(info.mean_reward);
    result.steps.push_back(info);
    if (on_step && !on_step(info)) break;
  }
  return result;
}

}  // namespace metaprobe::lm
