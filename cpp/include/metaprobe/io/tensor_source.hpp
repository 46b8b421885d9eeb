#pragma once
// The one interface every consumer of stored weights codes against: a named, ordered collection of tensors
// whose metadata is known without reading data. Safetensors files, sharded checkpoints and in-memory state
// dicts all implement it, so `params` treats them alike.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace metaprobe::io {

/// Metadata of one stored tensor, known without reading its data.
struct TensorInfo {
  std::string name;
  std::string dtype;            // safetensors name: "F32", "BF16", "F8_E4M3", ...
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;          // bytes of data
  /// Product of the shape (1 for a scalar, shape []).
  int64_t numel() const;
};

/// Anything that yields named tensors one at a time: a safetensors file, a checkpoint, an in-memory state dict.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  /// Names in storage order (index order for checkpoints, insertion order for memory sources).
  virtual std::vector<std::string> names() const = 0;
  /// Metadata of `name`; throws InvalidArgument if absent.
  virtual const TensorInfo& info(const std::string& name) const = 0;
  /// The tensor `name`, zero-copy where possible; throws InvalidArgument if absent.
  virtual at::Tensor tensor(const std::string& name) const = 0;
  /// Whether `name` is present.
  virtual bool contains(const std::string& name) const = 0;
  /// Number of tensors.
  virtual size_t size() const { return names().size(); }
};

/// An in-memory map of tensors (a state_dict) as a TensorSource; keeps insertion order.
/// Tensors are held by reference (no copy); a duplicate name throws InvalidArgument.
class MemorySource : public TensorSource {
 public:
  explicit MemorySource(std::vector<std::pair<std::string, at::Tensor>> tensors);
  std::vector<std::string> names() const override;
  const TensorInfo& info(const std::string& name) const override;
  at::Tensor tensor(const std::string& name) const override;
  bool contains(const std::string& name) const override;
  size_t size() const override { return tensors_.size(); }

 private:
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, size_t> index_;
};

/// The safetensors dtype name of an ATen scalar type ("F32", "BF16", "U16", "F8_E4M3", ...); throws
/// Unsupported for types safetensors cannot store.
std::string safetensors_dtype(at::ScalarType type);

/// Size in bits of one element of a safetensors dtype (4 for F4, 6 for F6_*); throws InvalidArgument for
/// an unknown name.
uint32_t dtype_bits(const std::string& dtype);

/// The ATen scalar type holding a safetensors dtype without conversion (U16/U32/U64 and every F8_* map to
/// torch 2.x's native types); throws Unsupported for F4 and F6_*, which torch does not hold unpacked.
at::ScalarType aten_dtype(const std::string& dtype);

}  // namespace metaprobe::io
