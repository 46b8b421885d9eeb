// Logit sources other than TorchScript, tokenizers, and batch padding.
#include <metaprobe/meta/logit_source.hpp>

#include <sstream>

#include <ATen/ATen.h>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/transformer.hpp>

namespace metaprobe::meta {
namespace {

std::string shape_string(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

}  // namespace

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
  if (!out.defined())
    throw InvalidArgument("stage '" + stage + "': the logit source returned an undefined tensor, expected logits [B, T, V]");
  if (out.dim() != 3 || out.size(0) != ids.size(0) || out.size(1) != ids.size(1))
    throw InvalidArgument("stage '" + stage + "': the logit source returned shape " + shape_string(out) +
                          " for ids " + shape_string(ids) + ", expected [" + std::to_string(ids.size(0)) + ", " +
                          std::to_string(ids.size(1)) + ", V]");
  if (!at::isFloatingType(out.scalar_type()))
    throw InvalidArgument("stage '" + stage + "': the logit source returned dtype " +
                          std::string(c10::toString(out.scalar_type())) + ", expected a floating dtype");
  if (expected_vocab > 0 && out.size(2) != expected_vocab)
    throw InvalidArgument("stage '" + stage + "': logits have vocabulary size " + std::to_string(out.size(2)) +
                          ", expected " + std::to_string(expected_vocab) + " (the reference's)");
  return out;
}

}  // namespace metaprobe::meta
