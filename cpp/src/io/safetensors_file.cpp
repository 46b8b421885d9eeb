// The memory-mapped reader: validation happens once at open; tensors alias the mapping.
#include <cstring>

#include <metaprobe/io/safetensors.hpp>

#include "dtypes.hpp"
#include "mapping.hpp"

namespace metaprobe::io {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; a big-endian host would need byte swapping on read and write");

SafetensorsFile SafetensorsFile::open(const std::string& path, LoadOptions options) {
  SafetensorsFile f;
  f.path_ = path;
  f.options_ = options;
  f.mapping_ = Mapping::open(path);
  try {
    f.header_ = std::make_shared<const Header>(parse_header(f.mapping_->data(), f.mapping_->size()));
  } catch (const SafetensorsError& e) {
    throw SafetensorsError(e.kind(), path + ": " + (e.what() + to_string(e.kind()).size() + 2));
  }
  auto index = std::make_shared<std::unordered_map<std::string, size_t>>();
  index->reserve(f.header_->tensors.size());
  for (size_t i = 0; i < f.header_->tensors.size(); ++i) index->emplace(f.header_->tensors[i].info.name, i);
  f.index_ = std::move(index);
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_->tensors.size());
  for (const auto& e : header_->tensors) out.push_back(e.info.name);
  return out;
}

const Header::Entry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = index_->find(name);
  if (it == index_->end()) {
    throw InvalidArgument("name: no tensor '" + name + "' in '" + path_ + "' (TensorNotFound), which holds " +
                          std::to_string(header_->tensors.size()) + " tensors");
  }
  return header_->tensors[it->second];
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const { return entry(name).info; }

bool SafetensorsFile::contains(const std::string& name) const { return index_->count(name) != 0; }

const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return header_->metadata; }

uint64_t SafetensorsFile::file_size() const { return mapping_->size(); }

uint64_t SafetensorsFile::data_start() const { return 8 + header_->header_size; }

std::pair<uint64_t, uint64_t> SafetensorsFile::data_offsets(const std::string& name) const {
  const auto& e = entry(name);
  return {e.begin, e.end};
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto& e = entry(name);
  const auto& info = e.info;
  const uint64_t file_offset = data_start() + e.begin;
  uint8_t* ptr = mapping_->mutable_data() + file_offset;
  const auto cpu = at::TensorOptions().device(at::kCPU);

  if (info.dtype == "F8_E4M3" || info.dtype == "F8_E5M2") {
    if (!options_.decode_fp8) {
      throw Unsupported("tensor '" + name + "' in '" + path_ + "' has dtype " + info.dtype +
                        " (UnsupportedDtype), which libtorch 1.13 cannot hold; open with decode_fp8 = true to "
                        "decode it to float32");
    }
    const auto& table = info.dtype == "F8_E4M3" ? detail::f8_e4m3_table() : detail::f8_e5m2_table();
    at::Tensor out = at::empty(info.shape, cpu.dtype(at::kFloat));
    float* dst = out.data_ptr<float>();
    for (uint64_t i = 0; i < info.nbytes; ++i) dst[i] = table[ptr[i]];
    return out;
  }
  at::ScalarType type;
  try {
    type = aten_dtype(info.dtype);
  } catch (const Unsupported&) {
    throw Unsupported("tensor '" + name + "' in '" + path_ + "' has dtype " + info.dtype +
                      " (UnsupportedDtype), which this build cannot serve; supported: F64, F32, F16, BF16, I64, "
                      "I32, I16, I8, U8, BOOL, C64, and F8_E4M3/F8_E5M2 with decode_fp8");
  }
  const auto opts = cpu.dtype(type);
  if (info.nbytes == 0) return at::empty(info.shape, opts);

  if (type == at::kBool) {
    // A bool byte other than 0/1 is undefined behaviour in ATen kernels; normalise such data in a copy.
    bool clean = true;
    for (uint64_t i = 0; i < info.nbytes && clean; ++i) clean = ptr[i] <= 1;
    if (!clean) {
      at::Tensor bytes = at::empty(info.shape, cpu.dtype(at::kByte));
      std::memcpy(bytes.data_ptr(), ptr, info.nbytes);
      return bytes.ne(0);
    }
  }
  const size_t align = c10::elementSize(type);
  if (reinterpret_cast<uintptr_t>(ptr) % align != 0) {
    // Third-party writers produce unaligned data; ATen kernels assume natural alignment, so copy.
    at::Tensor out = at::empty(info.shape, opts);
    std::memcpy(out.data_ptr(), ptr, info.nbytes);
    return out;
  }
  std::shared_ptr<const Mapping> keep = mapping_;
  return at::from_blob(
      ptr, info.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

}  // namespace metaprobe::io
