// The TorchScript logit source: the only translation unit of the library that includes <torch/script.h>.
#include <torch/script.h>

#include <filesystem>
#include <tuple>
#include <unordered_map>

#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/meta/logit_source.hpp>

namespace metaprobe::meta {

struct TorchScriptSource::Impl {
  torch::jit::script::Module module;
};

TorchScriptSource::TorchScriptSource(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw IoError("TorchScriptSource: path '" + path + "' is not a readable file, expected a TorchScript archive");
  try {
    impl_->module = torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    throw FormatError("TorchScriptSource: '" + path + "' is not a TorchScript archive torch::jit::load can read: " +
                      std::string(e.what_without_backtrace()));
  }
  impl_->module.eval();
}

TorchScriptSource::~TorchScriptSource() = default;
TorchScriptSource::TorchScriptSource(TorchScriptSource&&) noexcept = default;
TorchScriptSource& TorchScriptSource::operator=(TorchScriptSource&&) noexcept = default;

at::Tensor TorchScriptSource::logits(const at::Tensor& ids, const at::Tensor& attention_mask) {
  torch::NoGradGuard no_grad;
  c10::IValue out;
  try {
    out = impl_->module.forward({ids, attention_mask});
  } catch (const c10::Error& e) {
    throw InvalidArgument("TorchScriptSource '" + path_ + "': forward(ids, attention_mask) failed: " +
                          std::string(e.what_without_backtrace()));
  }
  if (out.isTensor()) return out.toTensor();
  if (out.isTuple() && !out.toTupleRef().elements().empty() && out.toTupleRef().elements()[0].isTensor())
    return out.toTupleRef().elements()[0].toTensor();
  if (out.isList() && out.toListRef().size() > 0 && out.toListRef()[0].isTensor()) return out.toListRef()[0].toTensor();
  throw InvalidArgument("TorchScriptSource '" + path_ + "': forward returned " + out.tagKind() +
                        ", expected a tensor [B, T, V] or a tuple whose first element is one");
}

std::vector<std::string> TorchScriptSource::state_names() const {
  std::vector<std::string> names;
  for (const auto& p : impl_->module.named_parameters(true)) names.push_back(p.name);
  for (const auto& b : impl_->module.named_buffers(true)) names.push_back(b.name);
  return names;
}

void TorchScriptSource::load_safetensors(const std::string& path) {
  io::Checkpoint ckpt = io::Checkpoint::open(path);
  torch::NoGradGuard no_grad;
  // Parameters must all be present; buffers (rotary tables, masks) are replaced only when the file has them.
  std::vector<std::tuple<std::string, at::Tensor, bool>> targets;
  for (const auto& p : impl_->module.named_parameters(true)) targets.emplace_back(p.name, p.value, true);
  for (const auto& b : impl_->module.named_buffers(true)) targets.emplace_back(b.name, b.value, false);
  for (auto& [name, target, required] : targets) {
    if (!required && !ckpt.contains(name)) continue;
    if (!ckpt.contains(name))
      throw InvalidArgument("TorchScriptSource::load_safetensors: tensor '" + name + "' of the module is missing from '" +
                            path + "'");
    at::Tensor src = ckpt.tensor(name);
    if (src.sizes() != target.sizes())
      throw InvalidArgument("TorchScriptSource::load_safetensors: tensor '" + name + "' has shape " +
                            c10::str(src.sizes()) + " in '" + path + "', expected " + c10::str(target.sizes()));
    target.copy_(src);
  }
}

}  // namespace metaprobe::meta
