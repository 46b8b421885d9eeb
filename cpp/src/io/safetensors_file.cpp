// The reader: validation happens once at open, from a header read with pread (nothing is mapped until a
// zero-copy tensor is asked for). Tensors are pread copies by default, or views aliasing a memory map.
#include <algorithm>
#include <cstring>
#include <vector>

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
  f.file_ = FileHandle::open(path);
  const uint64_t size = f.file_->size();
  // Only the length prefix and the header are read: parse_header touches no byte past 8 + n, and fails
  // on rules 1-3 (using `size`) before it would read a header that the file cannot hold.
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(size, 8)));
  f.file_->read_exact(head.data(), head.size(), 0, "the header length");
  if (head.size() == 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | head[i];
    if (n <= kMaxHeaderSize && 8 + n <= size) {
      head.resize(static_cast<size_t>(8 + n));
      f.file_->read_exact(head.data() + 8, n, 8, "the header");
    }
  }
  try {
    f.header_ = std::make_shared<const Header>(parse_header(head.data(), size));
  } catch (const SafetensorsError& e) {
    throw SafetensorsError(e.kind(), path + ": " + (e.what() + to_string(e.kind()).size() + 2));
  }
  if (options.zero_copy) f.mapping_ = Mapping::open(*f.file_);
  auto index = std::make_shared<std::unordered_map<std::string, size_t>>();
  index->reserve(f.header_->tensors.size());
  for (size_t i = 0; i < f.header_->tensors.size(); ++i) index->emplace(f.header_->tensors[i].info.name, i);
  f.index_ = std::move(index);
  return f;
}

SafetensorsFile SafetensorsFile::copying() const {
  SafetensorsFile f = *this;
  f.options_.zero_copy = false;
  f.mapping_.reset();
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

uint64_t SafetensorsFile::file_size() const { return file_->size(); }

uint64_t SafetensorsFile::data_start() const { return 8 + header_->header_size; }

std::pair<uint64_t, uint64_t> SafetensorsFile::data_offsets(const std::string& name) const {
  const auto& e = entry(name);
  return {e.begin, e.end};
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto& e = entry(name);
  const auto& info = e.info;
  const uint64_t file_offset = data_start() + e.begin;
  const auto cpu = at::TensorOptions().device(at::kCPU);
  const std::string what = "tensor '" + name + "'";

  const bool decode = options_.decode_fp8 && (info.dtype == "F8_E4M3" || info.dtype == "F8_E5M2");
  at::ScalarType type;
  try {
    type = decode ? at::kByte : aten_dtype(info.dtype);
  } catch (const Unsupported&) {
    throw Unsupported("tensor '" + name + "' in '" + path_ + "' has dtype " + info.dtype +
                      " (UnsupportedDtype), a sub-byte type torch does not hold; supported: every dtype but F4 "
                      "and F6_*");
  }
  const auto opts = cpu.dtype(type);

  // The raw bytes, as a tensor of the stored dtype: a view of the map when possible, else an owned copy.
  at::Tensor raw;
  if (info.nbytes == 0) {
    raw = at::empty(info.shape, opts);
  } else if (mapping_ == nullptr) {
    raw = at::empty(info.shape, opts);
    file_->read_exact(raw.data_ptr(), info.nbytes, file_offset, what);
  } else {
    // A mapped page past the current end of the file would fault: refuse while we still can.
    const uint64_t now = file_->current_size();
    if (now < file_offset + info.nbytes) {
      throw_shrunk(path_, what, file_offset, file_offset + info.nbytes, file_->size(), now);
    }
    uint8_t* ptr = mapping_->mutable_data() + file_offset;
    if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(type) != 0) {
      // Third-party writers produce unaligned data; ATen kernels assume natural alignment, so copy.
      raw = at::empty(info.shape, opts);
      std::memcpy(raw.data_ptr(), ptr, info.nbytes);
    } else {
      std::shared_ptr<const Mapping> keep = mapping_;
      raw = at::from_blob(
          ptr, info.shape, [keep](void*) mutable { keep.reset(); }, opts);
    }
  }
  if (decode) {
    const auto& table = info.dtype == "F8_E4M3" ? detail::f8_e4m3_table() : detail::f8_e5m2_table();
    at::Tensor out = at::empty(info.shape, cpu.dtype(at::kFloat));
    float* dst = out.data_ptr<float>();
    const auto* src = static_cast<const uint8_t*>(raw.data_ptr());
    for (uint64_t i = 0; i < info.nbytes; ++i) dst[i] = table[src[i]];
    return out;
  }
  if (type == at::kBool && info.nbytes > 0) {
    // A bool byte other than 0/1 is undefined behaviour in ATen kernels; normalise such data in a copy.
    const auto* b = static_cast<const uint8_t*>(raw.data_ptr());
    bool clean = true;
    for (uint64_t i = 0; i < info.nbytes && clean; ++i) clean = b[i] <= 1;
    if (!clean) return raw.view(at::kByte).ne(0);
  }
  return raw;
}

}  // namespace metaprobe::io
