#pragma once
// What the meta-probing run needs from a model and its tokenizer, as requests (the shape lm-evaluation-harness
// uses): generate(requests) for answers, score(sequences, positions) for teacher forcing, options and the
// sampled-token estimator, and logits(ids, mask) underneath for sources that only offer a forward pass.
// Tokenization stays with the caller for real models (metaprobe.backends.hf); the character tokenizer of the lm
// module ships for tests, examples and the demo.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <metaprobe/common/fields.hpp>

namespace metaprobe::lm {
class TinyTransformer;
}

namespace metaprobe::meta {

class Tokenizer;

/// Decoding settings of one generate() call (RunOptions::generation documents each field).
struct DecodeOptions {
  bool do_sample = false;            ///< false: greedy (argmax, lowest id on ties)
  double temperature = 1.0;          ///< sampling only; > 0
  double top_p = 1.0;                ///< nucleus mass in (0, 1]; 1 = off
  int64_t top_k = 0;                 ///< 0 = full vocabulary
  int64_t max_new_tokens = 512;
  std::vector<std::string> stop;     ///< a completion ends once its text contains one of these
  std::vector<int64_t> eos_ids;      ///< any of these ends a completion (excluded from its tokens)
  int64_t vocab_limit = 0;           ///< > 0: only ids below it are generated (RunOptions::vocab_size)
  /// Throws InvalidArgument naming the first bad field.
  void validate() const;
};
// The keys of the options dict a Python backend's generate(requests, options) receives (bindings/meta.cpp;
// docs/meta.md, "Backends").
#define METAPROBE_DECODE_OPTIONS_FIELDS(X, LATER)                                                            \
  X("do_sample", do_sample) X("temperature", temperature) X("top_p", top_p) X("top_k", top_k)                 \
  X("max_new_tokens", max_new_tokens) X("stop", stop) X("eos_ids", eos_ids) X("vocab_limit", vocab_limit)
METAPROBE_RECORD(DecodeOptions, METAPROBE_DECODE_OPTIONS_FIELDS)

/// One completion to produce: the prompt ids (BOS included when the tokenizer uses one) and the seed of its
/// own random stream, so a sample depends on (item, sample index, run seed) only, never on the batch.
struct GenerateRequest {
  std::vector<int64_t> prompt;
  uint64_t seed = 0;
};

/// One produced completion: tokens (EOS excluded; stop strings included, the engine cuts the text), the
/// model's log-probability (temperature 1, whole vocabulary) of each, and why it ended.
struct Completion {
  std::vector<int64_t> tokens;
  std::vector<double> logprobs;
  std::string finish_reason;         ///< "eos", "stop" or "length"
};

/// The uniform in [0, 1) that sampling step `step` of the request seeded `seed` draws: a counter-based
/// SplitMix64 stream, so any backend (C++ or metaprobe.backends) reproduces it exactly.
double uniform01(uint64_t seed, int64_t step);

/// Picks the next token from one row of logits (double [V]) under `options`, drawing from `u01` (a uniform
/// in [0, 1), used only when sampling); returns the token and its log-probability under the model (T = 1).
std::pair<int64_t, double> pick_token(const double* logits, int64_t vocab, const DecodeOptions& options, double u01);

/// A model as a function: ids int64 [B, T] and attention_mask int64 [B, T] (1 = real token) → logits
/// [B, T, V] (any floating dtype, any device). Logits at padded positions are ignored. Implementations must
/// give a row's real-token logits independently of its padding (left or right) and of the other rows.
class LogitSource {
 public:
  virtual ~LogitSource() = default;
  /// Logits of one padded batch.
  virtual at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) = 0;
  /// Completions of `requests` (one batch; the engine sorts and sizes it). The default decodes through
  /// logits(), re-running the whole prefix per new token (uncached, O(T²)); cached backends override it.
  virtual std::vector<Completion> generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& options,
                                           const Tokenizer& tokenizer);
  /// Logits [N, V] at (rows[n], cols[n]) of the right-padded batch ids/mask only (rows/cols int64 [N]); the
  /// default slices logits(), backends that can apply the output layer to selected positions override it.
  virtual at::Tensor score(const at::Tensor& ids, const at::Tensor& attention_mask, const at::Tensor& rows,
                           const at::Tensor& cols);
  /// Token positions this source has run through the model since it was made (prompt and generated tokens
  /// for cached generation; every position of every padded batch otherwise). 0 when the source does not count.
  virtual int64_t positions_processed() const { return positions_; }
  /// A short description for reports ("torchscript:model.pt", "python", ...).
  virtual std::string describe() const { return "logit source"; }

 protected:
  int64_t positions_ = 0;
};

/// A LogitSource calling a function (how the Python bindings wrap a callable).
class FunctionSource : public LogitSource {
 public:
  using Fn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;
  /// Throws InvalidArgument when `fn` is empty.
  explicit FunctionSource(Fn fn, std::string description = "function");
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) override;
  std::string describe() const override { return description_; }

 private:
  Fn fn_;
  std::string description_;
};

/// A TinyTransformer of the lm module as a LogitSource (shares the model; no copy).
class TinyLMSource : public LogitSource {
 public:
  /// Throws InvalidArgument when `model` is null.
  explicit TinyLMSource(std::shared_ptr<const lm::TinyTransformer> model, std::string description = "tiny_lm");
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) override;
  /// KV-cached batched decoding through lm::KvCache: each token runs through the model once.
  std::vector<Completion> generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& options,
                                   const Tokenizer& tokenizer) override;
  std::string describe() const override { return description_; }
  const lm::TinyTransformer& model() const { return *model_; }

 private:
  std::shared_ptr<const lm::TinyTransformer> model_;
  std::string description_;
};

/// A TorchScript module whose forward(ids, attention_mask) returns logits [B, T, V] (or a tuple/list whose
/// first element is). Defined in torchscript.cpp, the only translation unit that includes <torch/script.h>.
class TorchScriptSource : public LogitSource {
 public:
  /// Loads `path` with torch::jit::load on CPU in eval mode; throws IoError when it cannot be read and
  /// FormatError when it is not a TorchScript archive.
  explicit TorchScriptSource(const std::string& path);
  ~TorchScriptSource() override;
  TorchScriptSource(TorchScriptSource&&) noexcept;
  TorchScriptSource& operator=(TorchScriptSource&&) noexcept;
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) override;
  std::string describe() const override { return "torchscript:" + path_; }
  /// Copies every parameter (and each buffer the file holds) from a safetensors file by name; throws
  /// InvalidArgument naming a missing parameter or a mis-shaped tensor.
  void load_safetensors(const std::string& path);
  /// Names of the module's parameters and buffers, in its order.
  std::vector<std::string> state_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

/// Tokenizer the run uses to turn prompts, solutions and choices into ids and completions back into text.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Ids of `text` without special tokens.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  /// Text of `ids`, special tokens skipped.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  /// Id written into padded positions (their logits are ignored).
  virtual int64_t pad_id() const = 0;
  /// Id prepended to every sequence, or −1 for none.
  virtual int64_t bos_id() const { return -1; }
  /// Id that ends a generation, or −1 for none.
  virtual int64_t eos_id() const { return -1; }
  /// Every id that ends a generation (chat checkpoints end a turn with a second one); default {eos_id()}.
  virtual std::vector<int64_t> eos_ids() const {
    return eos_id() >= 0 ? std::vector<int64_t>{eos_id()} : std::vector<int64_t>{};
  }
  /// Whether chat_prompt() is available (a tokenizer with a chat template).
  virtual bool has_chat_template() const { return false; }
  /// Ids of the chat-templated prompt of one user turn (after an optional system turn), generation prompt
  /// added, special tokens as the template writes them; throws Unsupported when there is no template.
  virtual std::vector<int64_t> chat_prompt(const std::string& system, const std::string& user) const;
};

/// The lm module's character tokenizer (PAD 0, BOS 1, EOS 2).
class CharTokenizerAdapter : public Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t pad_id() const override { return 0; }
  int64_t bos_id() const override { return 1; }
  int64_t eos_id() const override { return 2; }
};

/// A tokenizer made of functions (how the Python bindings wrap a tokenizer).
class FunctionTokenizer : public Tokenizer {
 public:
  using EncodeFn = std::function<std::vector<int64_t>(const std::string&)>;
  using DecodeFn = std::function<std::string(const std::vector<int64_t>&)>;
  using ChatFn = std::function<std::vector<int64_t>(const std::string&, const std::string&)>;
  /// Throws InvalidArgument when a function is empty or pad_id < 0.
  FunctionTokenizer(EncodeFn encode, DecodeFn decode, int64_t pad_id, int64_t bos_id = -1, int64_t eos_id = -1);
  std::vector<int64_t> encode(const std::string& text) const override { return encode_(text); }
  std::string decode(const std::vector<int64_t>& ids) const override { return decode_(ids); }
  int64_t pad_id() const override { return pad_; }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  std::vector<int64_t> eos_ids() const override { return extra_eos_.empty() ? Tokenizer::eos_ids() : extra_eos_; }
  bool has_chat_template() const override { return static_cast<bool>(chat_); }
  std::vector<int64_t> chat_prompt(const std::string& system, const std::string& user) const override;
  /// Sets every end-of-generation id (the first is not required to be eos_id()).
  void set_eos_ids(std::vector<int64_t> ids) { extra_eos_ = std::move(ids); }
  /// Sets the chat-template function (system, user) -> ids.
  void set_chat(ChatFn chat) { chat_ = std::move(chat); }

 private:
  EncodeFn encode_;
  DecodeFn decode_;
  ChatFn chat_;
  int64_t pad_, bos_, eos_;
  std::vector<int64_t> extra_eos_;
};

/// Pads sequences into ids/attention_mask int64 [B, T] with `pad_id` on the right (teacher forcing) or on
/// the left (generation). Throws InvalidArgument when `sequences` is empty or a sequence is empty.
std::pair<at::Tensor, at::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& sequences, int64_t pad_id,
                                            bool left);

/// Calls `source` and checks the result: a floating tensor [B, T, V] matching ids [B, T]; throws
/// InvalidArgument naming the stage and the shape otherwise, and when V differs from `expected_vocab` (> 0);
/// Unsupported for tensors on the meta device.
at::Tensor checked_logits(LogitSource& source, const at::Tensor& ids, const at::Tensor& mask,
                          const std::string& stage, int64_t expected_vocab = 0);

/// Calls source.score() and checks the result: floating [N, V] for N positions on a real device; throws like
/// checked_logits. Non-finite rows throw InvalidArgument naming the stage and `what` (the pass).
at::Tensor checked_scores(LogitSource& source, const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rows,
                          const at::Tensor& cols, const std::string& stage, int64_t expected_vocab,
                          const std::string& what);

/// A Python-style source: logits(), plus optional generate and score functions (how the bindings wrap a
/// metaprobe.backends object); a missing function falls back to LogitSource's uncached default.
class CallbackSource : public LogitSource {
 public:
  using GenerateFn = std::function<std::vector<Completion>(const std::vector<GenerateRequest>&, const DecodeOptions&)>;
  using ScoreFn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&)>;
  using CountFn = std::function<int64_t()>;
  /// Throws InvalidArgument when `logits` is empty.
  CallbackSource(FunctionSource::Fn logits, GenerateFn generate, ScoreFn score, CountFn positions,
                 std::string description);
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) override;
  std::vector<Completion> generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& options,
                                   const Tokenizer& tokenizer) override;
  at::Tensor score(const at::Tensor& ids, const at::Tensor& attention_mask, const at::Tensor& rows,
                   const at::Tensor& cols) override;
  int64_t positions_processed() const override { return count_ ? count_() : positions_; }
  std::string describe() const override { return description_; }

 private:
  FunctionSource::Fn logits_;
  GenerateFn generate_;
  ScoreFn score_;
  CountFn count_;
  std::string description_;
};

}  // namespace metaprobe::meta
