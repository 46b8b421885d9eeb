// The request-level model interface: native KV-cached generation against the uncached default, the decoding
// rule (greedy, top-k, top-p, inverse-CDF sampling), EOS lists, stop strings, NaN logits and chunked scoring.
#include <cmath>
#include <map>
#include <numeric>

#include <ATen/ATen.h>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/transformer.hpp>
#include <metaprobe/meta/logit_source.hpp>
#include <metaprobe/meta/run.hpp>
#include <metaprobe/probes/suite.hpp>

// Last: glog (through ATen) defines its own CHECK, which Catch must override.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::meta;
using Catch::Matchers::Contains;

namespace {

std::shared_ptr<lm::TinyTransformer> tiny(uint64_t seed, int64_t max_len = 256) {
  lm::TransformerConfig c;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_ff = 64;
  c.max_len = max_len;
  c.seed = seed;
  return std::make_shared<lm::TinyTransformer>(c);
}

std::vector<GenerateRequest> requests() {
  CharTokenizerAdapter tok;
  std::vector<GenerateRequest> out;
  const char* prompts[] = {"Question: 2+2?\nAnswer:", "x", "a much longer prompt of several words", "ab", "Q: 7*6="};
  uint64_t seed = 11;
  for (const char* p : prompts) {
    auto ids = tok.encode(p);
    ids.insert(ids.begin(), tok.bos_id());
    out.push_back({ids, seed++});
  }
  return out;
}

// A source that only offers full logits (the uncached default generate), counting its positions.
std::shared_ptr<FunctionSource> uncached(std::shared_ptr<lm::TinyTransformer> m) {
  return std::make_shared<FunctionSource>([m](const at::Tensor& ids, const at::Tensor& mask) { return m->forward(ids, mask); });
}

// Always puts all mass on the next token of `script` (by the row's generated length), then on `last`.
std::shared_ptr<FunctionSource> scripted(std::vector<int64_t> script, int64_t prompt_len, int64_t vocab = 100) {
  return std::make_shared<FunctionSource>([=](const at::Tensor& ids, const at::Tensor& mask) {
    const int64_t B = ids.size(0), T = ids.size(1);
    at::Tensor out = at::zeros({B, T, vocab});
    auto m = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t real = 0;
      for (int64_t t = 0; t < T; ++t) real += m[b][t];
      const int64_t g = real - prompt_len;
      const int64_t next = script[static_cast<size_t>(std::min<int64_t>(std::max<int64_t>(g, 0), static_cast<int64_t>(script.size()) - 1))];
      out[b][T - 1][next] = 50.0;
    }
    return out;
  });
}

}  // namespace

TEST_CASE("native KV-cached generation equals the uncached default token for token", "[meta][backends]") {
  auto model = tiny(5);
  CharTokenizerAdapter tok;
  auto reqs = requests();
  for (bool sample : {false, true}) {
    DecodeOptions o;
    o.max_new_tokens = 24;
    o.do_sample = sample;
    o.temperature = 0.9;
    o.top_p = 0.95;
    o.eos_ids = {2};
    INFO("do_sample " << sample);
    TinyLMSource cached(model);
    auto src = uncached(model);
    auto a = cached.generate(reqs, o, tok);
    auto b = src->generate(reqs, o, tok);
    REQUIRE(a.size() == reqs.size());
    int64_t prompt = 0, generated = 0;
    for (size_t r = 0; r < reqs.size(); ++r) {
      CHECK(a[r].tokens == b[r].tokens);
      CHECK(a[r].finish_reason == b[r].finish_reason);
      REQUIRE(a[r].logprobs.size() == b[r].logprobs.size());
      for (size_t j = 0; j < a[r].logprobs.size(); ++j) CHECK(a[r].logprobs[j] == Approx(b[r].logprobs[j]).margin(1e-5));
      prompt += static_cast<int64_t>(reqs[r].prompt.size());
      generated += static_cast<int64_t>(a[r].tokens.size()) + (a[r].finish_reason == "eos" ? 1 : 0);
    }
    // Each real token runs once with the cache (the last chosen token is never fed back).
    CHECK(cached.positions_processed() <= static_cast<int64_t>(1.05 * static_cast<double>(prompt + generated)));
    CHECK(src->positions_processed() > 3 * cached.positions_processed());
    // One request alone gives the same completion as in the batch (its own seeded stream).
    for (size_t r = 0; r < reqs.size(); ++r) CHECK(cached.generate({reqs[r]}, o, tok)[0].tokens == a[r].tokens);
  }
}

TEST_CASE("cached logits equal full-forward logits within 1e-5", "[meta][backends]") {
  auto model = tiny(9);
  CharTokenizerAdapter tok;
  auto reqs = requests();
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& r : reqs) prompts.push_back(r.prompt);
  auto [ids, mask] = pad_batch(prompts, 0, true);
  lm::KvCache cache;
  at::Tensor step = model->forward_cached(ids, mask, cache);
  at::Tensor full = model->forward(ids, mask);
  at::Tensor next = at::randint(5, 90, {ids.size(0), 1}, at::kLong);
  at::Tensor one = model->forward_cached(next, at::ones({ids.size(0), 1}, at::kLong), cache).select(1, 0);
  at::Tensor full2 = model->forward(at::cat({ids, next}, 1), at::cat({mask, at::ones({ids.size(0), 1}, at::kLong)}, 1));
  CHECK((one - full2.select(1, ids.size(1))).abs().max().item<double>() < 1e-5);
  at::Tensor m = mask.to(at::kBool);
  CHECK((step.index({m}) - full.index({m})).abs().max().item<double>() < 1e-5);
}

TEST_CASE("pick_token: greedy, top-k, top-p and the inverse CDF follow their definitions", "[meta][backends]") {
  std::vector<double> z{1.0, 3.0, 3.0, 0.5, -2.0};
  DecodeOptions greedy;
  auto [t, lp] = pick_token(z.data(), 5, greedy, 0.99);
  CHECK(t == 1);  // lowest id on ties
  double lse = 0;
  for (double v : z) lse += std::exp(v);
  CHECK(lp == Approx(3.0 - std::log(lse)).epsilon(1e-12));
  DecodeOptions s;
  s.do_sample = true;
  s.temperature = 0.7;
  // The frequencies over a fine grid of uniforms equal the tempered probabilities (within the grid step).
  const int N = 20000;
  std::map<int64_t, int> counts;
  for (int k = 0; k < N; ++k) counts[pick_token(z.data(), 5, s, (k + 0.5) / N).first] += 1;
  double norm = 0;
  for (double v : z) norm += std::exp(v / 0.7);
  for (int64_t i = 0; i < 5; ++i) CHECK(counts[i] / double(N) == Approx(std::exp(z[i] / 0.7) / norm).margin(2.0 / N));
  s.top_k = 2;
  for (int k = 0; k < 100; ++k) {
    const auto pick = pick_token(z.data(), 5, s, k / 100.0).first;
    CHECK((pick == 1 || pick == 2));
  }
  s.top_k = 0;
  s.top_p = 0.5;  // token 1 alone holds < 0.5 of the tempered mass, tokens 1 and 2 more
  for (int k = 0; k < 100; ++k) {
    const auto pick = pick_token(z.data(), 5, s, k / 100.0).first;
    CHECK((pick == 1 || pick == 2));
  }
  std::vector<double> bad{0.0, std::nan("")};
  REQUIRE_THROWS_WITH(pick_token(bad.data(), 2, greedy, 0.5), Contains("expected finite logits"));
  CHECK(uniform01(3, 0) != uniform01(3, 1));
  CHECK(uniform01(3, 7) == uniform01(3, 7));
  CHECK(uniform01(3, 7) >= 0.0);
  CHECK(uniform01(3, 7) < 1.0);
}

TEST_CASE("generation ends at any id of the EOS list and at stop strings", "[meta][backends]") {
  CharTokenizerAdapter tok;
  const auto prompt = std::vector<int64_t>{1, tok.encode("q")[0]};
  const int64_t a = tok.encode("a")[0], b = tok.encode("b")[0], x = tok.encode("X")[0];
  auto src = scripted({a, b, x, a, a, a}, 2);
  DecodeOptions o;
  o.max_new_tokens = 6;
  o.eos_ids = {2};
  auto c = src->generate({{prompt, 0}}, o, tok)[0];
  CHECK(c.tokens.size() == 6);
  CHECK(c.finish_reason == "length");
  o.eos_ids = {2, x};  // a chat checkpoint's second end-of-turn id
  c = src->generate({{prompt, 0}}, o, tok)[0];
  CHECK(c.tokens == std::vector<int64_t>{a, b});
  CHECK(c.finish_reason == "eos");
  o.eos_ids = {2};
  o.stop = {"bX"};
  c = src->generate({{prompt, 0}}, o, tok)[0];
  CHECK(c.tokens == std::vector<int64_t>{a, b, x});
  CHECK(c.finish_reason == "stop");
}

TEST_CASE("the run names the stage of NaN logits and never scores more than score_rows positions per pass",
          "[meta][backends][errors]") {
  probes::SuiteSpec spec;
  spec.n_per_cell = 1;
  spec.difficulties = {1};
  spec.seed = 7;
  auto items = probes::generate(spec);
  auto tok = std::make_shared<CharTokenizerAdapter>();
  RunOptions o;
  o.max_new_tokens = 5;
  o.parameters = false;
  SECTION("NaN logits during generation") {
    Run run(items, tok, o);
    Stage base;
    base.name = "base";
    base.source = std::make_shared<TinyLMSource>(tiny(1, 1024));
    run.add_stage(base);
    Stage bad;
    bad.name = "nan-stage";
    bad.source = std::make_shared<FunctionSource>([](const at::Tensor& ids, const at::Tensor&) {
      return at::full({ids.size(0), ids.size(1), 100}, std::nan(""));
    });
    run.add_stage(bad);
    REQUIRE_THROWS_AS(run.run(), InvalidArgument);
    REQUIRE_THROWS_WITH(run.run(), Contains("stage 'nan-stage': generation") && Contains("expected finite logits"));
  }
  SECTION("score_rows bounds every scoring pass") {
    o.score_rows = 7;
    o.divergence_on = DivergenceOn::gold;
    int64_t largest = 0;
    struct Recording : TinyLMSource {
      int64_t* largest;
      Recording(std::shared_ptr<lm::TinyTransformer> m, int64_t* l) : TinyLMSource(std::move(m)), largest(l) {}
      at::Tensor score(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rows, const at::Tensor& cols) override {
        *largest = std::max(*largest, rows.size(0));
        return TinyLMSource::score(ids, mask, rows, cols);
      }
    };
    Run run(items, tok, o);
    Stage base;
    base.name = "base";
    base.source = std::make_shared<Recording>(tiny(1, 1024), &largest);
    run.add_stage(base);
    Stage other;
    other.name = "other";
    other.source = std::make_shared<Recording>(tiny(2, 1024), &largest);
    run.add_stage(other);
    Report chunked = run.run();
    CHECK(largest == 7);
    o.score_rows = 100000;
    Run whole(items, tok, o);
    base.source = std::make_shared<TinyLMSource>(tiny(1, 1024));
    other.source = std::make_shared<TinyLMSource>(tiny(2, 1024));
    whole.add_stage(base);
    whole.add_stage(other);
    Report one = whole.run();
    const auto& a = chunked.stage("other").divergence->total;
    const auto& b = one.stage("other").divergence->total;
    CHECK(a.positions == b.positions);
    CHECK(a.kl_ref_stage == Approx(b.kl_ref_stage).margin(1e-6));
    CHECK(a.js == Approx(b.js).margin(1e-6));
    CHECK(a.sampled_kl == Approx(b.sampled_kl).margin(1e-6));
  }
}
