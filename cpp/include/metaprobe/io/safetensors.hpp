#pragma once
// A strict safetensors reader (pread copies, or zero-copy memory-mapped views) and an atomic writer. The reader applies every
// validation rule of the reference implementation (huggingface/safetensors tensor.rs) in its order, plus
// explicit rejection of duplicate names and of non-string `__metadata__` values. See docs/io.md.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/io/tensor_source.hpp>

namespace metaprobe::io {

/// Why a safetensors file (or a checkpoint index) was rejected. Names follow the reference's SafeTensorError.
enum class SafetensorsErrorKind {
  HeaderTooSmall,                // file shorter than the 8-byte length prefix
  HeaderTooLarge,                // header length above 100,000,000 bytes
  InvalidHeaderLength,           // 8 + n overflows or exceeds the file
  InvalidHeader,                 // header bytes are not UTF-8
  InvalidHeaderDeserialization,  // JSON syntax or schema (unknown dtype, bad shape/offsets, missing field)
  InvalidOffset,                 // offsets not contiguous from 0 (holes, overlaps, end < begin)
  ValidationOverflow,            // numel or numel * bits overflows 64 bits
  MisalignedSlice,               // sub-byte dtype whose data is not a whole number of bytes
  TensorInvalidInfo,             // end - begin differs from numel * dtype size
  MetadataIncompleteBuffer,      // data buffer longer or shorter than the last tensor's end
  DuplicateTensorName,           // a tensor name appears twice in the header (or in two shards)
  InvalidMetadata,               // __metadata__ not an object of string -> string, or a duplicate key in it
  TensorNotFound,                // a checkpoint index names a tensor its shard does not hold
  InvalidIndex,                  // model.safetensors.index.json is malformed
};

METAPROBE_ENUM_NAMES(SafetensorsErrorKind, "kind", "unknown kind '{value}', expected one of {names}",
    {SafetensorsErrorKind::HeaderTooSmall, "HeaderTooSmall"},
    {SafetensorsErrorKind::HeaderTooLarge, "HeaderTooLarge"},
    {SafetensorsErrorKind::InvalidHeaderLength, "InvalidHeaderLength"},
    {SafetensorsErrorKind::InvalidHeader, "InvalidHeader"},
    {SafetensorsErrorKind::InvalidHeaderDeserialization, "InvalidHeaderDeserialization"},
    {SafetensorsErrorKind::InvalidOffset, "InvalidOffset"},
    {SafetensorsErrorKind::ValidationOverflow, "ValidationOverflow"},
    {SafetensorsErrorKind::MisalignedSlice, "MisalignedSlice"},
    {SafetensorsErrorKind::TensorInvalidInfo, "TensorInvalidInfo"},
    {SafetensorsErrorKind::MetadataIncompleteBuffer, "MetadataIncompleteBuffer"},
    {SafetensorsErrorKind::DuplicateTensorName, "DuplicateTensorName"},
    {SafetensorsErrorKind::InvalidMetadata, "InvalidMetadata"},
    {SafetensorsErrorKind::TensorNotFound, "TensorNotFound"},
    {SafetensorsErrorKind::InvalidIndex, "InvalidIndex"})

/// The kind's name, e.g. "InvalidOffset".
inline std::string_view to_string(SafetensorsErrorKind kind) { return enum_name(kind); }

/// A malformed safetensors file or checkpoint index; kind() says which rule it broke.
class SafetensorsError : public FormatError {
 public:
  SafetensorsError(SafetensorsErrorKind kind, const std::string& message);
  SafetensorsErrorKind kind() const noexcept { return kind_; }

 private:
  SafetensorsErrorKind kind_;
};

/// A file or directory that does not exist (Python: metaprobe.io.NotFoundError, a FileNotFoundError).
class PathNotFound : public IoError {
 public:
  PathNotFound(const std::string& path, const std::string& message);
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// The reference's cap on the JSON header, in bytes.
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

struct LoadOptions {
  /// Decode F8_E4M3 / F8_E5M2 to float32 instead of returning torch's float8_e4m3fn / float8_e5m2.
  bool decode_fp8 = false;
  /// Serve tensors as zero-copy views of a private memory map instead of reading them (pread) into owned
  /// memory. A view faults (SIGBUS) when touched after the file shrank; tensor() itself re-checks the size.
  bool zero_copy = false;
};

/// The validated layout of a safetensors header: tensors in storage (offset) order.
struct Header {
  struct Entry {
    TensorInfo info;
    uint64_t begin = 0;  // offsets relative to the data buffer
    uint64_t end = 0;
  };
  std::vector<Entry> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t header_size = 0;  // n, the JSON length
};

/// Validates a whole file image (length prefix, header, layout) by the reference's rules in order and
/// returns its header; throws SafetensorsError. Used by the reader and the fuzzer; touches no tensor data.
Header parse_header(const uint8_t* data, uint64_t size);

class FileHandle;
class Mapping;

/// An open, validated safetensors file. By default tensor() reads each tensor with pread into owned memory,
/// so a file truncated or rewritten in place after open gives an IoError naming it, never a crash. With
/// LoadOptions::zero_copy tensors alias a private copy-on-write memory map (writing into one changes only
/// this process's copy, never the file) that lives while any of them does.
class SafetensorsFile : public TensorSource {
 public:
  /// Opens and validates `path` (the header is read, not mapped); throws PathNotFound, IoError or
  /// SafetensorsError.
  static SafetensorsFile open(const std::string& path, LoadOptions options = {});

  std::vector<std::string> names() const override;
  const TensorInfo& info(const std::string& name) const override;
  /// Every dtype torch holds (all but F4 and F6_*, which are Unsupported) in its torch dtype; F8_E4M3 and
  /// F8_E5M2 as float32 when options.decode_fp8. Zero-copy mode copies misaligned data and non-0/1 BOOL bytes.
  /// Throws IoError naming the file when it now ends before the tensor's bytes.
  at::Tensor tensor(const std::string& name) const override;
  bool contains(const std::string& name) const override;
  size_t size() const override { return header_->tensors.size(); }

  /// The `__metadata__` map (empty when absent).
  const std::map<std::string, std::string>& metadata() const;
  /// Size of the file in bytes when it was opened.
  uint64_t file_size() const;
  /// The path it was opened from.
  const std::string& path() const { return path_; }
  /// Byte offsets of `name`'s data relative to the data buffer (begin, end).
  std::pair<uint64_t, uint64_t> data_offsets(const std::string& name) const;
  /// Offset of the data buffer from the start of the file (8 + header length).
  uint64_t data_start() const;
  /// The options it was opened with.
  const LoadOptions& options() const { return options_; }
  /// The same open file and validated header, serving tensors as pread copies (zero_copy off).
  SafetensorsFile copying() const;

 private:
  SafetensorsFile() = default;
  const Header::Entry& entry(const std::string& name) const;

  std::string path_;
  LoadOptions options_;
  std::shared_ptr<const FileHandle> file_;
  std::shared_ptr<const Mapping> mapping_;  // only with zero_copy
  std::shared_ptr<const Header> header_;
  std::shared_ptr<const std::unordered_map<std::string, size_t>> index_;
};

/// Hooks for tests of the writer's atomicity; leave default in normal use.
struct SaveOptions {
  /// Called after each tensor's bytes are written to the temporary file; throwing aborts the save.
  std::function<void(const std::string& name)> after_tensor;
};

/// Writes `tensors` to `path` as the reference writer does (header padded with spaces to a multiple of 8,
/// tensors ordered by descending dtype alignment then name), atomically: a temporary beside the target is
/// fsynced and renamed over it; on failure the temporary is removed and an existing target is untouched.
void save_safetensors(const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& path,
                      const std::map<std::string, std::string>& metadata = {}, const SaveOptions& options = {});

/// The exact bytes save_safetensors would write (for tests and in-memory use).
std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

/// Decodes one FP8 byte: E4M3 (the "fn" variant: no infinities, 0x7F/0xFF are NaN) or E5M2 (IEEE-like).
float decode_f8_e4m3(uint8_t byte);
float decode_f8_e5m2(uint8_t byte);

}  // namespace metaprobe::io
