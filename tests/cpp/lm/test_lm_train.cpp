#include <chrono>
#include <cmath>
#include <numeric>

#include <catch2/catch.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/generate.hpp>
#include <metaprobe/lm/train.hpp>

using namespace metaprobe;
using namespace metaprobe::lm;

namespace {

TransformerConfig tiny(uint64_t seed = 3) {
  TransformerConfig c;
  c.d_model = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.d_ff = 64;
  c.max_len = 32;
  c.seed = seed;
  return c;
}

std::vector<SftExample> arithmetic_examples() {
  std::vector<SftExample> ex;
  for (int a = 0; a < 10; ++a) {
    for (int b = 0; b < 10; ++b) ex.push_back({std::to_string(a) + "+" + std::to_string(b) + "=", std::to_string(a + b)});
  }
  return ex;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

}  // namespace

TEST_CASE("sft_train lowers the loss deterministically") {
  SftOptions opt;
  opt.steps = 60;
  opt.batch_size = 16;
  opt.optimizer.lr = 3e-3;
  opt.optimizer.warmup = 5;
  opt.seed = 1;
  TinyTransformer model(tiny());
  std::vector<SftStep> seen;
  auto result = sft_train(model, arithmetic_examples(), opt, [&](const SftStep& s) {
    seen.push_back(s);
    return true;
  });
  SECTION("the loss falls and the callback sees every step") {
    REQUIRE(result.losses.size() == 60);
    REQUIRE(seen.size() == 60);
    REQUIRE(seen.back().step == 60);
    REQUIRE(result.losses.front() > 4.0);  // ~ln(100) at initialisation
    REQUIRE(mean(result.losses, 50, 60) < 0.6 * mean(result.losses, 0, 5));
    REQUIRE(seen[4].lr == Approx(3e-3));  // end of warm-up
    REQUIRE(seen.back().lr == Approx(3e-4));  // cosine to min_lr_ratio
    REQUIRE(seen[0].tokens > 0);
  }
  SECTION("the same seed gives the same weights; parameters leave training without grad") {
    TinyTransformer again(tiny());
    sft_train(again, arithmetic_examples(), opt);
    for (size_t i = 0; i < model.named_parameters().size(); ++i) {
      REQUIRE(at::equal(model.named_parameters()[i].second, again.named_parameters()[i].second));
      REQUIRE_FALSE(model.named_parameters()[i].second.requires_grad());
    }
  }
  SECTION("the callback can stop training early") {
    TinyTransformer other(tiny());
    auto r = sft_train(other, arithmetic_examples(), opt, [](const SftStep& s) { return s.step < 3; });
    REQUIRE(r.losses.size() == 3);
  }
}

TEST_CASE("sft_train chooses loss tokens") {
  TinyTransformer a(tiny()), b(tiny());
  SftOptions opt;
  opt.steps = 1;
  opt.batch_size = 4;
  auto ex = arithmetic_examples();
  auto ra = sft_train(a, ex, opt);
  opt.loss_on = LossOn::all;
  auto rb = sft_train(b, ex, opt);
  SECTION("'all' counts every token after BOS, 'completion' only the completion and EOS") {
    // Examples "a+b=" + sum + EOS: completion loss covers len(sum)+1 tokens, all covers 4 more.
    REQUIRE(rb.steps[0].tokens - ra.steps[0].tokens == 4 * 4);
    REQUIRE(parse_loss_on("all") == LossOn::all);
    REQUIRE_THROWS_WITH(parse_loss_on("prompt"), Catch::Contains("'prompt'"));
  }
}

TEST_CASE("sft_train rejects bad inputs") {
  TinyTransformer model(tiny());
  SftOptions opt;
  SECTION("empty examples and bad options") {
    REQUIRE_THROWS_AS(sft_train(model, {}, opt), InvalidArgument);
    REQUIRE_THROWS_WITH(sft_train(model, {}, opt), Catch::Contains("examples"));
    opt.batch_size = 0;
    REQUIRE_THROWS_WITH(sft_train(model, arithmetic_examples(), opt), Catch::Contains("batch_size: got 0"));
    opt = {};
    opt.optimizer.lr = -1;
    REQUIRE_THROWS_WITH(sft_train(model, arithmetic_examples(), opt), Catch::Contains("optimizer.lr"));
  }
  SECTION("examples longer than max_len unless truncate") {
    std::vector<SftExample> long_ex{{std::string(20, 'a'), std::string(20, 'b')}};
    REQUIRE_THROWS_WITH(sft_train(model, long_ex, opt), Catch::Contains("example 0 needs 41 input positions"));
    opt.truncate = true;
    opt.steps = 1;
    REQUIRE_NOTHROW(sft_train(model, long_ex, opt));
    std::vector<SftExample> long_prompt{{std::string(40, 'a'), "b"}};
    REQUIRE_THROWS_AS(sft_train(model, long_prompt, opt), InvalidArgument);
    REQUIRE_THROWS_WITH(sft_train(model, long_prompt, opt), Catch::Contains("leaves no completion token"));
  }
}

TEST_CASE("the option validators name the first bad field and accept the defaults") {
  SECTION("defaults are valid") {
    REQUIRE_NOTHROW(validate(OptimizerOptions{}));
    REQUIRE_NOTHROW(validate(SftOptions{}));
    REQUIRE_NOTHROW(validate(GrpoOptions{}));
    REQUIRE_NOTHROW(validate(GenerateOptions{}));
  }
  SECTION("SftOptions: steps, batch_size, then the optimizer's fields") {
    SftOptions o;
    o.steps = -1;
    o.batch_size = 0;
    REQUIRE_THROWS_AS(validate(o), InvalidArgument);
    REQUIRE_THROWS_WITH(validate(o), "steps: got -1, expected >= 0");
    o.steps = 1;
    REQUIRE_THROWS_WITH(validate(o), "batch_size: got 0, expected >= 1");
    o.batch_size = 1;
    o.optimizer.beta2 = 1.0;
    REQUIRE_THROWS_WITH(validate(o), "optimizer.beta2: got 1.000000, expected 0 <= beta2 < 1");
  }
  SECTION("GrpoOptions: the counts, then clip_eps, then the optimizer's fields") {
    GrpoOptions o;
    o.group_size = 0;
    REQUIRE_THROWS_WITH(validate(o), "group_size: got 0, expected >= 1");
    o.group_size = 2;
    o.clip_eps = 1.0;
    REQUIRE_THROWS_WITH(validate(o), "clip_eps: got 1.000000, expected 0 < clip_eps < 1");
    o.clip_eps = 0.2;
    o.optimizer.warmup = -2;
    REQUIRE_THROWS_WITH(validate(o), "optimizer.warmup: got -2.000000, expected >= 0");
  }
  SECTION("GenerateOptions: an empty stop string") {
    GenerateOptions o;
    o.stop = {"\n", ""};
    REQUIRE_THROWS_WITH(validate(o), "stop: string 1 is empty, expected non-empty");
  }
  SECTION("GrpoOptions' own optimizer defaults differ from OptimizerOptions'") {
    REQUIRE(GrpoOptions{}.optimizer.lr == 1e-4);
    REQUIRE(GrpoOptions{}.optimizer.weight_decay == 0.0);
    REQUIRE(OptimizerOptions{}.weight_decay == 0.01);
  }
}

TEST_CASE("grpo_train raises the reward on a verifiable toy task") {
  // Task: "x=D:" -> "D". A short SFT on random digits teaches the format (reward ~ 1/10), then GRPO with reward
  // 1 for the right digit must lift the mean reward well above its start.
  std::vector<std::string> prompts;
  std::vector<SftExample> warmup;
  for (int d = 0; d < 10; ++d) {
    prompts.push_back("x=" + std::to_string(d) + ":");
    for (int k = 0; k < 10; ++k) warmup.push_back({prompts.back(), std::to_string(k)});
  }
  auto reward = [&](const std::string& completion, int64_t i) {
    return completion == std::to_string(i) ? 1.0 : 0.0;
  };
  auto t0 = std::chrono::steady_clock::now();
  TinyTransformer model(tiny(21));
  SftOptions sft;
  sft.steps = 60;
  sft.batch_size = 20;
  sft.optimizer.lr = 1e-2;
  sft_train(model, warmup, sft);
  GrpoOptions opt;
  opt.steps = 40;
  opt.prompts_per_step = 10;
  opt.group_size = 8;
  opt.max_new_tokens = 1;
  opt.optimizer.lr = 1e-2;  // 3e-2 collapses the policy onto non-digits on this task
  opt.inner_steps = 2;
  opt.kl_coef = 0.01;
  opt.seed = 4;
  int64_t calls = 0;
  auto result = grpo_train(model, prompts, reward, opt, [&](const GrpoStep& s) {
    ++calls;
    REQUIRE(s.prompt_indices.size() == 10);
    REQUIRE(s.kl >= 0.0);
    REQUIRE(s.mean_completion_tokens == 1.0);
    return true;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SECTION("mean reward rises from about chance") {
    REQUIRE(calls == 40);
    REQUIRE(result.mean_rewards.size() == 40);
    const double start = mean(result.mean_rewards, 0, 5);
    const double end = mean(result.mean_rewards, 35, 40);
    INFO("start " << start << " end " << end << " seconds " << seconds);
    REQUIRE(start < 0.35);
    REQUIRE(end > start + 0.3);
    REQUIRE(seconds < 20.0);
  }
  SECTION("greedy answers after training are mostly right") {
    GenerateOptions g;
    g.max_new_tokens = 1;
    auto gens = generate(model, CharTokenizer{}, prompts, g);
    int right = 0;
    for (int d = 0; d < 10; ++d) right += gens[d].completion == std::to_string(d);
    REQUIRE(right >= 6);
  }
}

TEST_CASE("grpo_train is deterministic and validates its inputs") {
  std::vector<std::string> prompts{"a:", "b:"};
  auto reward = [](const std::string& c, int64_t) { return c.empty() ? 0.0 : static_cast<double>(c[0] % 2); };
  GrpoOptions opt;
  opt.steps = 3;
  opt.prompts_per_step = 2;
  opt.group_size = 4;
  opt.max_new_tokens = 4;
  opt.inner_steps = 2;
  SECTION("same seed, same rewards and weights") {
    TinyTransformer a(tiny()), b(tiny());
    auto ra = grpo_train(a, prompts, reward, opt);
    auto rb = grpo_train(b, prompts, reward, opt);
    REQUIRE(ra.mean_rewards == rb.mean_rewards);
    REQUIRE(at::equal(a.parameter("lm_head.weight"), b.parameter("lm_head.weight")));
    REQUIRE_FALSE(at::equal(a.parameter("lm_head.weight"), TinyTransformer(tiny()).parameter("lm_head.weight")));
  }
  SECTION("errors name the argument") {
    TinyTransformer m(tiny());
    REQUIRE_THROWS_WITH(grpo_train(m, {}, reward, opt), Catch::Contains("prompts"));
    REQUIRE_THROWS_WITH(grpo_train(m, prompts, RewardFn{}, opt), Catch::Contains("reward_fn"));
    auto nan_reward = [](const std::string&, int64_t) { return std::nan(""); };
    REQUIRE_THROWS_AS(grpo_train(m, prompts, nan_reward, opt), InvalidArgument);
    REQUIRE_THROWS_WITH(grpo_train(m, prompts, nan_reward, opt), Catch::Contains("expected a finite number"));
    GrpoOptions bad = opt;
    bad.temperature = 0.0;
    REQUIRE_THROWS_WITH(grpo_train(m, prompts, reward, bad), Catch::Contains("temperature: got 0"));
    bad = opt;
    bad.group_size = 0;
    REQUIRE_THROWS_WITH(grpo_train(m, prompts, reward, bad), Catch::Contains("group_size: got 0"));
    bad = opt;
    bad.max_new_tokens = 40;
    REQUIRE_THROWS_WITH(grpo_train(m, prompts, reward, bad), Catch::Contains("config.max_len 32"));
  }
}
