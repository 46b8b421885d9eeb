#pragma once
// A Hugging Face checkpoint as one TensorSource: a directory with model.safetensors.index.json (sharded),
// a directory with model.safetensors, or one .safetensors file. Names, shapes and dtypes are known
// without reading data; tensors are yielded one at a time from the shards (pread copies or zero-copy maps).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/io/tensor_source.hpp>

namespace metaprobe::io {

class Checkpoint : public TensorSource {
 public:
  /// Opens and validates every shard. Enforced: every shard exists (PathNotFound), every weight_map entry
  /// exists in its shard (TensorNotFound), no tensor in two shards (DuplicateTensorName); total_size is not.
  static Checkpoint open(const std::string& path, LoadOptions options = {});

  /// Index order (weight_map order) for sharded checkpoints, storage order for a single file.
  std::vector<std::string> names() const override;
  const TensorInfo& info(const std::string& name) const override;
  at::Tensor tensor(const std::string& name) const override;
  bool contains(const std::string& name) const override;
  size_t size() const override { return names_.size(); }

  /// Shard paths, in the order they are first referenced.
  const std::vector<std::string>& files() const { return files_; }
  /// Sum of the shard files' sizes (what the memory maps cover).
  uint64_t total_file_bytes() const;
  /// The index's "metadata" object with values rendered as strings (numbers as JSON text) for a sharded
  /// checkpoint; the file's `__metadata__` for a single file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Which shard (index into files()) holds `name`.
  size_t shard_of(const std::string& name) const;
  /// The opened shards, parallel to files().
  const std::vector<SafetensorsFile>& shards() const { return *shards_; }
  /// The same open shards and validated headers, serving tensors as pread copies (LoadOptions::zero_copy
  /// off): what streaming consumers use so that a shard shrinking under them is an IoError, not a SIGBUS.
  Checkpoint copying() const;

 private:
  Checkpoint() = default;

  std::vector<std::string> files_;
  std::shared_ptr<std::vector<SafetensorsFile>> shards_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> shard_index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace metaprobe::io
