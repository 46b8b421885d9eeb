// Logit sources other than TorchScript, tokenizers, and batch padding.
#include <metaprobe/meta/logit_source.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/transformer.hpp>
#include "common/format.hpp"

namespace metaprobe::meta {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

bool ends_with_stop(const Tokenizer& tok, const std::vector<int64_t>& tokens, const std::vector<std::string>& stop) {
  if (stop.empty() || tokens.empty()) return false;
  size_t longest = 0;
  for (const auto& s : stop) longest = std::max(longest, s.size());
  // A stop string of n bytes spans at most n tokens that decode to text; a few more cover byte-fallback pieces.
  const size_t window = std::min(tokens.size(), longest + 4);
  const std::string tail = tok.decode(std::vector<int64_t>(tokens.end() - static_cast<std::ptrdiff_t>(window), tokens.end()));
  for (const auto& s : stop)
    if (tail.find(s) != std::string::npos) return true;
  return false;
}

bool is_eos(int64_t t, const std::vector<int64_t>& eos) { return std::find(eos.begin(), eos.end(), t) != eos.end(); }

// One decoding step's bookkeeping for request r: appends the token unless it is an EOS; true when r is finished.
bool advance(Completion& c, int64_t token, double logprob, int64_t limit, const DecodeOptions& o, const Tokenizer& tok) {
  if (is_eos(token, o.eos_ids)) {
    c.finish_reason = "eos";
    return true;
  }
  c.tokens.push_back(token);
  c.logprobs.push_back(logprob);
  if (ends_with_stop(tok, c.tokens, o.stop)) {
    c.finish_reason = "stop";
    return true;
  }
  if (static_cast<int64_t>(c.tokens.size()) >= limit) {
    c.finish_reason = "length";
    return true;
  }
  return false;
}

}  // namespace

double uniform01(uint64_t seed, int64_t step) {
  const uint64_t x = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(step) + 0x632BE59BD9B4E019ULL));
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

std::pair<int64_t, double> pick_token(const double* logits, int64_t vocab, const DecodeOptions& o, double u01) {
  if (o.vocab_limit > 0) vocab = std::min(vocab, o.vocab_limit);  // the shared slice of the run's vocabularies
  double m = -std::numeric_limits<double>::infinity();
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    const double v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<double>::infinity())
      throw InvalidArgument("logits: position holds " + std::to_string(v) + " at token " + std::to_string(i) +
                            ", expected finite logits (or -inf for excluded tokens)");
    if (v > m) m = v, best = i;
  }
  if (best < 0) throw InvalidArgument("logits: every token is -inf, expected at least one finite logit");
  double s = 0;
  for (int64_t i = 0; i < vocab; ++i) s += std::exp(logits[i] - m);
  const double lse = m + std::log(s);
  if (!o.do_sample) return {best, logits[best] - lse};
  // Sampling distribution: logits / T, top-k, then top-p (the smallest prefix of the sorted tokens whose mass
  // reaches top_p), renormalised; tokens are visited in descending probability (ties: lower id first).
  std::vector<int64_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  size_t keep = order.size();
  if (o.top_k > 0) keep = std::min(keep, static_cast<size_t>(o.top_k));
  std::vector<double> w(keep);
  const double mt = logits[order[0]] / o.temperature;
  double total = 0;
  for (size_t k = 0; k < keep; ++k) total += (w[k] = std::exp(logits[order[k]] / o.temperature - mt));
  if (o.top_p < 1) {
    double cum = 0;
    size_t k = 0;
    for (; k < keep; ++k) {
      cum += w[k] / total;
      if (cum >= o.top_p) break;
    }
    keep = std::min(keep, k + 1);
    total = 0;
    for (size_t j = 0; j < keep; ++j) total += w[j];
  }
  const double target = u01 * total;
  double cum = 0;
  int64_t chosen = order[keep - 1];
  for (size_t k = 0; k < keep; ++k) {
    cum += w[k];
    if (target < cum) {
      chosen = order[k];
      break;
    }
  }
  return {chosen, logits[chosen] - lse};
}

std::vector<Completion> LogitSource::generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& o,
                                              const Tokenizer& tok) {
  const size_t n = requests.size();
  std::vector<Completion> out(n);
  std::vector<size_t> active(n);
  std::iota(active.begin(), active.end(), 0);
  c10::NoGradGuard no_grad;
  for (int64_t step = 0; step < o.max_new_tokens && !active.empty(); ++step) {
    std::vector<std::vector<int64_t>> seqs;
    for (size_t r : active) {
      auto s = requests[r].prompt;
      s.insert(s.end(), out[r].tokens.begin(), out[r].tokens.end());
      seqs.push_back(std::move(s));
    }
    auto [ids, mask] = pad_batch(seqs, tok.pad_id(), true);
    positions_ += mask.sum().item<int64_t>();
    at::Tensor logits = this->logits(ids, mask);
    if (!logits.defined() || logits.dim() != 3 || logits.size(0) != ids.size(0))
      throw InvalidArgument("generate: the logit source returned " +
                            (logits.defined() ? "shape " + metaprobe::detail::format_shape(logits.sizes()) : std::string("an undefined tensor")) +
                            " for ids " + metaprobe::detail::format_shape(ids.sizes()) + ", expected [B, T, V]");
    at::Tensor last = logits.select(1, logits.size(1) - 1).to(at::kCPU, at::kDouble).contiguous();
    const int64_t V = last.size(1);
    const double* rows = last.data_ptr<double>();
    std::vector<size_t> still;
    for (size_t a = 0; a < active.size(); ++a) {
      const size_t r = active[a];
      auto [t, lp] = pick_token(rows + static_cast<int64_t>(a) * V, V, o, uniform01(requests[r].seed, step));
      if (!advance(out[r], t, lp, o.max_new_tokens, o, tok)) still.push_back(r);
    }
    active = std::move(still);
  }
  return out;
}

at::Tensor LogitSource::score(const at::Tensor& ids, const at::Tensor& attention_mask, const at::Tensor& rows,
                              const at::Tensor& cols) {
  positions_ += attention_mask.sum().item<int64_t>();
  at::Tensor logits = this->logits(ids, attention_mask);
  if (!logits.defined() || logits.dim() != 3 || logits.size(0) != ids.size(0) || logits.size(1) != ids.size(1))
    throw InvalidArgument("score: the logit source returned " +
                          (logits.defined() ? "shape " + metaprobe::detail::format_shape(logits.sizes()) : std::string("an undefined tensor")) +
                          " for ids " + metaprobe::detail::format_shape(ids.sizes()) + ", expected [B, T, V]");
  if (logits.is_meta())
    throw Unsupported("score: the logit source returned a tensor on the meta device (no data), expected a real device");
  return logits.index({rows.to(logits.device()), cols.to(logits.device())});
}

std::vector<int64_t> Tokenizer::chat_prompt(const std::string&, const std::string&) const {
  throw Unsupported("chat_prompt: this tokenizer has no chat template, expected prompt_format \"template\" or \"raw\", "
                    "or a tokenizer with a chat_template");
}

std::vector<int64_t> FunctionTokenizer::chat_prompt(const std::string& system, const std::string& user) const {
  if (!chat_) return Tokenizer::chat_prompt(system, user);
  return chat_(system, user);
}

CallbackSource::CallbackSource(FunctionSource::Fn logits, GenerateFn generate, ScoreFn score, CountFn positions,
                               std::string description)
    : logits_(std::move(logits)), generate_(std::move(generate)), score_(std::move(score)), count_(std::move(positions)),
      description_(std::move(description)) {
  if (!logits_) throw InvalidArgument("CallbackSource: logits is empty, expected a callable ids, mask -> logits");
}

at::Tensor CallbackSource::logits(const at::Tensor& ids, const at::Tensor& attention_mask) {
  return logits_(ids, attention_mask);
}

std::vector<Completion> CallbackSource::generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& options,
                                                 const Tokenizer& tokenizer) {
  if (!generate_) return LogitSource::generate(requests, options, tokenizer);
  auto out = generate_(requests, options);
  if (out.size() != requests.size())
    throw InvalidArgument("generate: the backend returned " + std::to_string(out.size()) + " completions for " +
                          std::to_string(requests.size()) + " requests, expected one per request");
  return out;
}

at::Tensor CallbackSource::score(const at::Tensor& ids, const at::Tensor& attention_mask, const at::Tensor& rows,
                                 const at::Tensor& cols) {
  if (!score_) return LogitSource::score(ids, attention_mask, rows, cols);
  return score_(ids, attention_mask, rows, cols);
}

FunctionSource::FunctionSource(Fn fn, std::string description) : fn_(std::move(fn)), description_(std::move(description)) {
  if (!fn_) throw InvalidArgument("FunctionSource: fn is empty, expected a callable ids, mask -> logits");
}

at::Tensor FunctionSource::logits(const at::Tensor& ids, const at::Tensor& attention_mask) {
  return fn_(ids, attention_mask);
}

TinyLMSource::TinyLMSource(std::shared_ptr<const lm::TinyTransformer> model, std::string description)
    : model_(std::move(model)), description_(std::move(description)) {
  if (!model_) throw InvalidArgument("TinyLMSource: model is null, expected a TinyTransformer");
}

at::Tensor TinyLMSource::logits(const at::Tensor& ids, const at::Tensor& attention_mask) {
  return model_->forward(ids, attention_mask);
}

std::vector<Completion> TinyLMSource::generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& o,
                                               const Tokenizer& tok) {
  const size_t n = requests.size();
  std::vector<Completion> out(n);
  if (n == 0) return out;
  const int64_t max_len = model_->config().max_len;
  std::vector<std::vector<int64_t>> prompts;
  std::vector<int64_t> limit(n);
  for (size_t r = 0; r < n; ++r) {
    const auto len = static_cast<int64_t>(requests[r].prompt.size());
    if (len >= max_len)
      throw InvalidArgument("generate: request " + std::to_string(r) + " has a prompt of " + std::to_string(len) +
                            " tokens, expected fewer than the model's max_len " + std::to_string(max_len));
    limit[r] = std::min(o.max_new_tokens, max_len - len);
    prompts.push_back(requests[r].prompt);
  }
  c10::NoGradGuard no_grad;
  auto [ids, mask] = pad_batch(prompts, tok.pad_id(), true);
  const auto b = static_cast<int64_t>(n);
  lm::KvCache cache;
  positions_ += mask.sum().item<int64_t>();
  at::Tensor last = model_->forward_cached(ids, mask, cache).select(1, ids.size(1) - 1);
  std::vector<bool> done(n, false);
  size_t remaining = n;
  const int64_t V = model_->config().vocab_size;
  for (int64_t step = 0; remaining > 0; ++step) {
    at::Tensor last_d = last.to(at::kDouble).contiguous();
    const double* rows = last_d.data_ptr<double>();
    at::Tensor next_ids = at::full({b, 1}, tok.pad_id(), at::kLong);
    at::Tensor next_mask = at::zeros({b, 1}, at::kLong);
    auto ia = next_ids.accessor<int64_t, 2>();
    auto ma = next_mask.accessor<int64_t, 2>();
    for (size_t r = 0; r < n; ++r) {
      if (done[r]) continue;
      auto [t, lp] = pick_token(rows + static_cast<int64_t>(r) * V, V, o, uniform01(requests[r].seed, step));
      if (advance(out[r], t, lp, limit[r], o, tok)) {
        done[r] = true;
        --remaining;
      } else {
        ia[static_cast<int64_t>(r)][0] = t;
        ma[static_cast<int64_t>(r)][0] = 1;
      }
    }
    if (remaining == 0) break;
    positions_ += static_cast<int64_t>(remaining);
    last = model_->forward_cached(next_ids, next_mask, cache).select(1, 0);
  }
  return out;
}

std::vector<int64_t> CharTokenizerAdapter::encode(const std::string& text) const {
  return lm::CharTokenizer{}.encode(text, false, false);
}

std::string CharTokenizerAdapter::decode(const std::vector<int64_t>& ids) const {
  return lm::CharTokenizer{}.decode(ids, true);
}

FunctionTokenizer::FunctionTokenizer(EncodeFn encode, DecodeFn decode, int64_t pad_id, int64_t bos_id, int64_t eos_id)
    : encode_(std::move(encode)), decode_(std::move(decode)), pad_(pad_id), bos_(bos_id), eos_(eos_id) {
  if (!encode_) throw InvalidArgument("FunctionTokenizer: encode is empty, expected a callable text -> ids");
  if (!decode_) throw InvalidArgument("FunctionTokenizer: decode is empty, expected a callable ids -> text");
  if (pad_ < 0) throw InvalidArgument("FunctionTokenizer: pad_id is " + std::to_string(pad_) + ", expected >= 0");
}

std::pair<at::Tensor, at::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& sequences, int64_t pad_id,
                                            bool left) {
  if (sequences.empty()) throw InvalidArgument("pad_batch: sequences is empty, expected at least one sequence");
  size_t width = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    if (sequences[i].empty())
      throw InvalidArgument("pad_batch: sequences[" + std::to_string(i) + "] is empty, expected at least one id");
    width = std::max(width, sequences[i].size());
  }
  const auto b = static_cast<int64_t>(sequences.size());
  at::Tensor ids = at::full({b, static_cast<int64_t>(width)}, pad_id, at::kLong);
  at::Tensor mask = at::zeros({b, static_cast<int64_t>(width)}, at::kLong);
  auto pi = ids.accessor<int64_t, 2>();
  auto pm = mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < b; ++r) {
    const auto& s = sequences[static_cast<size_t>(r)];
    const size_t off = left ? width - s.size() : 0;
    for (size_t j = 0; j < s.size(); ++j) {
      pi[r][static_cast<int64_t>(off + j)] = s[j];
      pm[r][static_cast<int64_t>(off + j)] = 1;
    }
  }
  return {ids, mask};
}

at::Tensor checked_logits(LogitSource& source, const at::Tensor& ids, const at::Tensor& mask, const std::string& stage,
                          int64_t expected_vocab) {
  at::Tensor out = source.logits(ids, mask);
  if (out.defined() && out.is_meta())
    throw Unsupported("stage '" + stage + "': the logit source returned a tensor on the meta device (no data; a model "
                      "loaded with device_map='meta' or init_empty_weights), expected logits on a real device");
  if (!out.defined())
    throw InvalidArgument("stage '" + stage + "': the logit source returned an undefined tensor, expected logits [B, T, V]");
  if (out.dim() != 3 || out.size(0) != ids.size(0) || out.size(1) != ids.size(1))
    throw InvalidArgument("stage '" + stage + "': the logit source returned shape " + metaprobe::detail::format_shape(out.sizes()) +
                          " for ids " + metaprobe::detail::format_shape(ids.sizes()) + ", expected [" + std::to_string(ids.size(0)) + ", " +
                          std::to_string(ids.size(1)) + ", V]");
  if (!at::isFloatingType(out.scalar_type()))
    throw InvalidArgument("stage '" + stage + "': the logit source returned dtype " +
                          std::string(c10::toString(out.scalar_type())) + ", expected a floating dtype");
  if (expected_vocab > 0 && out.size(2) != expected_vocab)
    throw InvalidArgument("stage '" + stage + "': logits have vocabulary size " + std::to_string(out.size(2)) +
                          ", expected " + std::to_string(expected_vocab) + " (the reference's)");
  return out;
}

at::Tensor checked_scores(LogitSource& source, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rows,
                          const at::Tensor& cols, const std::string& stage, int64_t expected_vocab,
                          const std::string& what) {
  at::Tensor out = source.score(ids, mask, rows, cols);
  if (!out.defined())
    throw InvalidArgument("stage '" + stage + "': " + what + ": the source's score() returned an undefined tensor, "
                          "expected logits [N, V]");
  if (out.is_meta())
    throw Unsupported("stage '" + stage + "': " + what + ": the source returned a tensor on the meta device (no data), "
                      "expected logits on a real device");
  if (out.dim() != 2 || out.size(0) != rows.size(0))
    throw InvalidArgument("stage '" + stage + "': " + what + ": score() returned shape " + metaprobe::detail::format_shape(out.sizes()) + " for " +
                          std::to_string(rows.size(0)) + " positions, expected [" + std::to_string(rows.size(0)) + ", V]");
  if (!at::isFloatingType(out.scalar_type()))
    throw InvalidArgument("stage '" + stage + "': " + what + ": score() returned dtype " +
                          std::string(c10::toString(out.scalar_type())) + ", expected a floating dtype");
  if (expected_vocab > 0 && out.size(1) != expected_vocab)
    throw InvalidArgument("stage '" + stage + "': logits have vocabulary size " + std::to_string(out.size(1)) +
                          ", expected " + std::to_string(expected_vocab) + " (the reference's)");
  if (at::isnan(out).any().item<bool>() || at::isposinf(out).any().item<bool>())
    throw InvalidArgument("stage '" + stage + "': " + what + ": the model returned NaN or +inf logits, expected finite "
                          "logits (-inf only for excluded tokens)");
  return out;
}

}  // namespace metaprobe::meta
