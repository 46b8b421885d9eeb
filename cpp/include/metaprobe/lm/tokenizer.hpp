#pragma once
// A fixed character-level tokenizer for the small models of the demo, the tests and the examples: no fitting,
// the same ids on every machine. PAD=0, BOS=1, EOS=2, UNK=3, '\n'=4, printable ASCII 32..126 = 5..99.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

#include <metaprobe/common/enum_names.hpp>

namespace metaprobe::lm {

/// Which side of a batch receives the padding: right for teacher forcing, left for generation.
enum class PaddingSide { right, left };
METAPROBE_ENUM_NAMES(PaddingSide, "padding_side", "unknown value '{value}', expected {names_or}",
                     {PaddingSide::right, "right"}, {PaddingSide::left, "left"})

/// "right" / "left".
inline std::string_view to_string(PaddingSide side) { return enum_name(side); }
/// Parses "right" / "left"; throws InvalidArgument otherwise.
inline PaddingSide parse_padding_side(std::string_view name) { return parse_enum<PaddingSide>(name); }

/// A padded batch: ids and attention_mask are int64 [B, T]; mask is 1 on real tokens and 0 on padding.
struct TokenBatch {
  at::Tensor ids;
  at::Tensor attention_mask;
  std::vector<int64_t> lengths;  // real tokens per row
};

/// The fixed character vocabulary. Stateless and cheap to copy.
class CharTokenizer {
 public:
  static constexpr int64_t kPad = 0;
  static constexpr int64_t kBos = 1;
  static constexpr int64_t kEos = 2;
  static constexpr int64_t kUnk = 3;
  static constexpr int64_t kNewline = 4;
  static constexpr int64_t kFirstPrintable = 5;  // id of ' ' (ASCII 32)
  static constexpr int64_t kVocabSize = 100;

  /// Number of ids (100).
  int64_t vocab_size() const { return kVocabSize; }
  /// Id of one character: '\n' and ASCII 32..126 map to themselves, any other byte to UNK.
  int64_t char_to_id(char c) const;
  /// One id per byte of `text`, optionally preceded by BOS and followed by EOS.
  std::vector<int64_t> encode(std::string_view text, bool add_bos = false, bool add_eos = false) const;
  /// Text of `ids`; special ids are dropped when skip_special, else rendered as <pad>, <bos>, <eos>, <unk>.
  /// Throws InvalidArgument for an id outside [0, 100).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;
  /// decode() of a 1-D integer tensor.
  std::string decode(const at::Tensor& ids, bool skip_special = true) const;
  /// Encodes and pads `texts` into int64 [B, max length] tensors with PAD on `side`.
  TokenBatch encode_batch(const std::vector<std::string>& texts, PaddingSide side, bool add_bos = true,
                          bool add_eos = false) const;
  /// Pads already-encoded sequences; throws InvalidArgument when `sequences` is empty.
  static TokenBatch pad(const std::vector<std::vector<int64_t>>& sequences, PaddingSide side);
};

}  // namespace metaprobe::lm
