#include <metaprobe/error.hpp>
#include <metaprobe/lm/tokenizer.hpp>

namespace metaprobe::lm {

int64_t CharTokenizer::char_to_id(char c) const {
  const auto u = static_cast<unsigned char>(c);
  if (u == '\n') return kNewline;
  if (u >= 32 && u <= 126) return kFirstPrintable + (u - 32);
  return kUnk;
}

std::vector<int64_t> CharTokenizer::encode(std::string_view text, bool add_bos, bool add_eos) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size() + 2);
  if (add_bos) ids.push_back(kBos);
  for (char c : text) ids.push_back(char_to_id(c));
  if (add_eos) ids.push_back(kEos);
  return ids;
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= kVocabSize) {
      throw InvalidArgument("ids: value " + std::to_string(id) + " at index " + std::to_string(i) +
                            " is outside the vocabulary, expected 0 <= id < " + std::to_string(kVocabSize));
    }
    if (id == kNewline) {
      out += '\n';
    } else if (id >= kFirstPrintable) {
      out += static_cast<char>(32 + (id - kFirstPrintable));
    } else if (!skip_special) {
      static const char* names[] = {"<pad>", "<bos>", "<eos>", "<unk>"};
      out += names[id];
    }
  }
  return out;
}

std::string CharTokenizer::decode(const at::Tensor& ids, bool skip_special) const {
  if (!ids.defined() || ids.dim() != 1) {
    throw InvalidArgument("ids: expected a 1-D tensor, got " +
                          (ids.defined() ? std::to_string(ids.dim()) + "-D" : std::string("an undefined tensor")));
  }
  if (at::isFloatingType(ids.scalar_type()) || at::isComplexType(ids.scalar_type())) {
    throw InvalidArgument("ids: expected an integer tensor, got dtype " + std::string(c10::toString(ids.scalar_type())));
  }
  at::Tensor c = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  return decode(std::vector<int64_t>(p, p + c.numel()), skip_special);
}

TokenBatch CharTokenizer::pad(const std::vector<std::vector<int64_t>>& sequences, PaddingSide side) {
  if (sequences.empty()) throw InvalidArgument("sequences: expected at least one sequence, got none");
  const int64_t batch = static_cast<int64_t>(sequences.size());
  int64_t width = 0;
  for (const auto& s : sequences) width = std::max<int64_t>(width, static_cast<int64_t>(s.size()));
  TokenBatch out;
  out.ids = at::full({batch, width}, kPad, at::kLong);
  out.attention_mask = at::zeros({batch, width}, at::kLong);
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.attention_mask.accessor<int64_t, 2>();
  out.lengths.reserve(sequences.size());
  for (int64_t b = 0; b < batch; ++b) {
    const auto& s = sequences[b];
    const int64_t n = static_cast<int64_t>(s.size());
    const int64_t offset = side == PaddingSide::left ? width - n : 0;
    for (int64_t t = 0; t < n; ++t) {
      ids[b][offset + t] = s[t];
      mask[b][offset + t] = 1;
    }
    out.lengths.push_back(n);
  }
  return out;
}

TokenBatch CharTokenizer::encode_batch(const std::vector<std::string>& texts, PaddingSide side, bool add_bos,
                                       bool add_eos) const {
  if (texts.empty()) throw InvalidArgument("texts: expected at least one text, got an empty list");
  std::vector<std::vector<int64_t>> seqs;
  seqs.reserve(texts.size());
  for (const auto& t : texts) seqs.push_back(encode(t, add_bos, add_eos));
  return pad(seqs, side);
}

}  // namespace metaprobe::lm
