// TensorInfo and the in-memory TensorSource.
#include <metaprobe/error.hpp>
#include <metaprobe/io/tensor_source.hpp>

namespace metaprobe::io {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MemorySource::MemorySource(std::vector<std::pair<std::string, at::Tensor>> tensors) : tensors_(std::move(tensors)) {
  infos_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& [name, t] = tensors_[i];
    if (!t.defined()) throw InvalidArgument("tensors: '" + name + "' is an undefined tensor, expected a tensor");
    if (!index_.emplace(name, i).second) {
      throw InvalidArgument("tensors: the name '" + name + "' appears twice, expected unique names");
    }
    TensorInfo info;
    info.name = name;
    try {
      info.dtype = safetensors_dtype(t.scalar_type());
    } catch (const Unsupported& e) {
      throw Unsupported("tensors: '" + name + "': " + e.what());
    }
    info.shape.assign(t.sizes().begin(), t.sizes().end());
    info.nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    infos_.push_back(std::move(info));
  }
}

std::vector<std::string> MemorySource::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& p : tensors_) out.push_back(p.first);
  return out;
}

namespace {
[[noreturn]] void not_found(const std::string& name, size_t count) {
  throw InvalidArgument("name: no tensor '" + name + "' among the " + std::to_string(count) +
                        " tensors of the state dict");
}
}  // namespace

const TensorInfo& MemorySource::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) not_found(name, tensors_.size());
  return infos_[it->second];
}

at::Tensor MemorySource::tensor(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) not_found(name, tensors_.size());
  return tensors_[it->second].second;
}

bool MemorySource::contains(const std::string& name) const { return index_.count(name) != 0; }

}  // namespace metaprobe::io
