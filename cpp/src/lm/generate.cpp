#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/generate.hpp>

namespace metaprobe::lm {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Picks the next token of one row from its logits; returns (token, log-prob under the sampling distribution).
std::pair<int64_t, double> pick(const double* logits, int64_t vocab, const GenerateOptions& o,
                                at::CPUGeneratorImpl& gen, std::vector<double>& z) {
  z.assign(logits, logits + vocab);
  if (o.temperature == 0.0) {
    const int64_t best = std::max_element(z.begin(), z.end()) - z.begin();
    double m = z[best], s = 0.0;
    for (double v : z) s += std::exp(v - m);
    return {best, -std::log(s)};
  }
  for (double& v : z) v /= o.temperature;
  if (o.top_k > 0 && o.top_k < vocab) {
    std::vector<double> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(), std::greater<double>());
    const double threshold = sorted[o.top_k - 1];
    for (double& v : z) {
      if (v < threshold) v = -std::numeric_limits<double>::infinity();
    }
  }
  const double m = *std::max_element(z.begin(), z.end());
  double s = 0.0;
  for (double v : z) s += std::exp(v - m);
  const double lse = m + std::log(s);
  const double u = static_cast<double>(gen.random64() >> 11) * (1.0 / 9007199254740992.0);
  double cum = 0.0;
  int64_t chosen = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (z[i] == -std::numeric_limits<double>::infinity()) continue;
    cum += std::exp(z[i] - lse);
    chosen = i;
    if (u < cum) break;
  }
  return {chosen, z[chosen] - lse};
}

}  // namespace

void validate(const GenerateOptions& o) {
  if (o.max_new_tokens < 1) {
    throw InvalidArgument("max_new_tokens: got " + std::to_string(o.max_new_tokens) + ", expected >= 1");
  }
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature)) {
    throw InvalidArgument("temperature: got " + std::to_string(o.temperature) + ", expected a finite value >= 0");
  }
  if (o.top_k < 0) throw InvalidArgument("top_k: got " + std::to_string(o.top_k) + ", expected >= 0 (0 = all)");
  if (o.batch_size < 1) throw InvalidArgument("batch_size: got " + std::to_string(o.batch_size) + ", expected >= 1");
  for (size_t i = 0; i < o.stop.size(); ++i) {
    if (o.stop[i].empty()) throw InvalidArgument("stop: string " + std::to_string(i) + " is empty, expected non-empty");
  }
}

uint64_t row_seed(uint64_t seed, uint64_t row) {
  return splitmix64(splitmix64(seed) ^ splitmix64(row + 0x632BE59BD9B4E019ULL));
}

std::vector<Generation> generate(const TinyTransformer& model, const CharTokenizer& tokenizer,
                                 const std::vector<std::string>& prompts, const GenerateOptions& options) {
  validate(options);
  const int64_t n = static_cast<int64_t>(prompts.size());
  const int64_t vocab = model.config().vocab_size;
  std::vector<std::vector<int64_t>> encoded(n);
  for (int64_t i = 0; i < n; ++i) {
    encoded[i] = tokenizer.encode(prompts[i], /*add_bos=*/true);
    const int64_t need = static_cast<int64_t>(encoded[i].size()) + options.max_new_tokens;
    if (need > model.config().max_len) {
      throw InvalidArgument("prompts: prompt " + std::to_string(i) + " has " + std::to_string(encoded[i].size()) +
                            " tokens (with BOS); with max_new_tokens " + std::to_string(options.max_new_tokens) +
                            " it needs " + std::to_string(need) + " positions, expected <= config.max_len " +
                            std::to_string(model.config().max_len));
    }
  }
  std::vector<Generation> out(n);
  c10::NoGradGuard no_grad;
  std::vector<double> scratch;
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const int64_t b = std::min(options.batch_size, n - start);
    std::vector<std::vector<int64_t>> chunk(encoded.begin() + start, encoded.begin() + start + b);
    TokenBatch batch = CharTokenizer::pad(chunk, PaddingSide::left);
    std::vector<std::unique_ptr<at::CPUGeneratorImpl>> gens;
    gens.reserve(b);
    for (int64_t r = 0; r < b; ++r) {
      gens.push_back(std::make_unique<at::CPUGeneratorImpl>(row_seed(options.seed, static_cast<uint64_t>(start + r))));
      out[start + r].prompt_tokens = batch.lengths[r];
    }
    std::vector<bool> done(b, false);
    int64_t remaining = b;
    KvCache cache;
    at::Tensor logits = model.forward_cached(batch.ids, batch.attention_mask, cache);
    at::Tensor last = logits.select(1, logits.size(1) - 1);
    for (int64_t step = 0; step < options.max_new_tokens && remaining > 0; ++step) {
      at::Tensor last_d = last.to(at::kDouble).contiguous();
      const double* rows = last_d.data_ptr<double>();
      at::Tensor next_ids = at::full({b, 1}, CharTokenizer::kPad, at::kLong);
      at::Tensor next_mask = at::zeros({b, 1}, at::kLong);
      auto ids_acc = next_ids.accessor<int64_t, 2>();
      auto mask_acc = next_mask.accessor<int64_t, 2>();
      for (int64_t r = 0; r < b; ++r) {
        if (done[r]) continue;
        Generation& g = out[start + r];
        auto [tok, lp] = pick(rows + r * vocab, vocab, options, *gens[r], scratch);
        g.token_ids.push_back(tok);
        g.logprobs.push_back(lp);
        bool finished = false;
        if (tok == CharTokenizer::kEos && options.stop_at_eos) {
          g.finish_reason = "eos";
          finished = true;
        } else {
          g.completion += tokenizer.decode(std::vector<int64_t>{tok});
          for (const auto& s : options.stop) {
            if (g.completion.size() >= s.size() &&
                g.completion.compare(g.completion.size() - s.size(), s.size(), s) == 0) {
              g.completion.resize(g.completion.size() - s.size());
              g.finish_reason = "stop";
              finished = true;
              break;
            }
          }
        }
        if (!finished && static_cast<int64_t>(g.token_ids.size()) == options.max_new_tokens) {
          g.finish_reason = "length";
          finished = true;
        }
        if (finished) {
          done[r] = true;
          --remaining;
        } else {
          ids_acc[r][0] = tok;
          mask_acc[r][0] = 1;
        }
      }
      if (remaining == 0) break;
      last = model.forward_cached(next_ids, next_mask, cache).select(1, 0);
    }
  }
  return out;
}

}  // namespace metaprobe::lm
