#pragma once
// What the meta-probing run needs from a model and its tokenizer: token ids in, next-token logits out.
// Tokenization stays with the caller for real models (a Python callable, a Hugging Face tokenizer through
// metaprobe.adapters); the character tokenizer of the lm module ships for tests, examples and the demo.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace metaprobe::lm {
class TinyTransformer;
}

namespace metaprobe::meta {

/// A model as a function: ids int64 [B, T] and attention_mask int64 [B, T] (1 = real token) → logits
/// [B, T, V] (any floating dtype, any device). Logits at padded positions are ignored. Implementations must
/// give a row's real-token logits independently of its padding (left or right) and of the other rows.
class LogitSource {
 public:
  virtual ~LogitSource() = default;
  /// Logits of one padded batch.
  virtual at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) = 0;
  /// A short description for reports ("torchscript:model.pt", "python", ...).
  virtual std::string describe() const { return "logit source"; }
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
  /// Throws InvalidArgument when a function is empty or pad_id < 0.
  FunctionTokenizer(EncodeFn encode, DecodeFn decode, int64_t pad_id, int64_t bos_id = -1, int64_t eos_id = -1);
  std::vector<int64_t> encode(const std::string& text) const override { return encode_(text); }
  std::string decode(const std::vector<int64_t>& ids) const override { return decode_(ids); }
  int64_t pad_id() const override { return pad_; }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }

 private:
  EncodeFn encode_;
  DecodeFn decode_;
  int64_t pad_, bos_, eos_;
};

/// Pads sequences into ids/attention_mask int64 [B, T] with `pad_id` on the right (teacher forcing) or on
/// the left (generation). Throws InvalidArgument when `sequences` is empty or a sequence is empty.
std::pair<at::Tensor, at::Tensor> pad_batch(const std::vector<std::vector<int64_t>>& sequences, int64_t pad_id,
                                            bool left);

/// Calls `source` and checks the result: a floating tensor [B, T, V] matching ids [B, T]; throws
/// InvalidArgument naming the stage and the shape otherwise, and when V differs from `expected_vocab` (> 0).
at::Tensor checked_logits(LogitSource& source, const at::Tensor& ids, const at::Tensor& mask,
                          const std::string& stage, int64_t expected_vocab = 0);

}  // namespace metaprobe::meta
