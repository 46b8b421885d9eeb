// The safetensors writer: the reference's byte layout, written atomically.
#include <algorithm>
#include <set>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/io/safetensors.hpp>

#include <cerrno>

#include <sys/stat.h>

#include "dtypes.hpp"
#include "mapping.hpp"
#include "utf8.hpp"

namespace metaprobe::io {
namespace {

bool valid_utf8(const std::string& s) {
  return detail::utf8_invalid_at(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == s.size();
}

// serde_json's escaping, so our headers are byte-identical to the reference writer's.
void append_json_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

struct Prepared {
  std::string header;                 // padded JSON
  std::vector<size_t> order;          // indices into the input, in storage order
  std::vector<uint64_t> nbytes;       // per input tensor
};

Prepared prepare(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata) {
  Prepared p;
  std::vector<int> rank(tensors.size());
  std::vector<std::string> dtype(tensors.size());
  std::set<std::string> seen;
  p.nbytes.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (name == "__metadata__") {
      throw InvalidArgument("tensors: the name '__metadata__' is reserved by the format, expected another name");
    }
    if (!valid_utf8(name)) throw InvalidArgument("tensors: a tensor name is not valid UTF-8, expected UTF-8");
    if (!seen.insert(name).second) {
      throw InvalidArgument("tensors: the name '" + name + "' appears twice, expected unique names");
    }
    if (!t.defined()) throw InvalidArgument("tensors: '" + name + "' is an undefined tensor, expected a tensor");
    try {
      dtype[i] = safetensors_dtype(t.scalar_type());
    } catch (const Unsupported& e) {
      throw Unsupported("tensors: '" + name + "': " + e.what());
    }
    rank[i] = detail::dtype_rank(dtype[i]);
    p.nbytes[i] = static_cast<uint64_t>(t.numel()) * t.element_size();
    p.order.push_back(i);
  }
  for (const auto& [k, v] : metadata) {
    if (!valid_utf8(k) || !valid_utf8(v)) {
      throw InvalidArgument("metadata: key '" + k + "' or its value is not valid UTF-8, expected UTF-8 strings");
    }
  }
  // The reference sorts by descending dtype (its enum order stands for alignment), then by name bytes.
  std::sort(p.order.begin(), p.order.end(), [&](size_t a, size_t b) {
    if (rank[a] != rank[b]) return rank[a] > rank[b];
    return tensors[a].first < tensors[b].first;
  });
  std::string& h = p.header;
  h += '{';
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) h += ',';
      first = false;
      append_json_string(h, k);
      h += ':';
      append_json_string(h, v);
    }
    h += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (size_t i : p.order) {
    if (!first) h += ',';
    first = false;
    append_json_string(h, tensors[i].first);
    h += ":{\"dtype\":\"" + dtype[i] + "\",\"shape\":[";
    const auto sizes = tensors[i].second.sizes();
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (d) h += ',';
      h += std::to_string(sizes[d]);
    }
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + p.nbytes[i]) + "]}";
    offset += p.nbytes[i];
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > kMaxHeaderSize) {
    throw SafetensorsError(SafetensorsErrorKind::HeaderTooLarge,
                           "the header to write is " + std::to_string(h.size()) +
                               " bytes, above the reader's limit of " + std::to_string(kMaxHeaderSize));
  }
  return p;
}

std::string length_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out;
}

// Contiguous CPU bytes of a tensor (copies only when it is elsewhere or strided).
at::Tensor host_contiguous(const at::Tensor& t) {
  at::Tensor c = t.detach();
  if (!c.device().is_cpu()) c = c.cpu();
  if (c.is_conj()) c = c.resolve_conj();
  if (c.is_neg()) c = c.resolve_neg();
  return c.contiguous();
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata);
  uint64_t total = 8 + p.header.size();
  for (uint64_t b : p.nbytes) total += b;
  std::vector<uint8_t> out;
  out.reserve(total);
  const std::string prefix = length_prefix(p.header.size());
  out.insert(out.end(), prefix.begin(), prefix.end());
  out.insert(out.end(), p.header.begin(), p.header.end());
  for (size_t i : p.order) {
    const at::Tensor c = host_contiguous(tensors[i].second);
    const auto* b = static_cast<const uint8_t*>(c.data_ptr());
    out.insert(out.end(), b, b + p.nbytes[i]);
  }
  return out;
}

void save_safetensors(const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& path,
                      const std::map<std::string, std::string>& metadata, const SaveOptions& options) {
  if (path.empty()) throw InvalidArgument("path: empty, expected a file path");
  const Prepared p = prepare(tensors, metadata);  // all argument errors surface before any file is touched
  {
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw_os_error("cannot open for writing: the directory of", path, errno);
  }
  AtomicFile out(path);  // removed on any failure below; an existing target stays untouched
  const std::string prefix = length_prefix(p.header.size());
  out.write(prefix.data(), prefix.size());
  out.write(p.header.data(), p.header.size());
  for (size_t i : p.order) {
    const at::Tensor c = host_contiguous(tensors[i].second);
    out.write(c.data_ptr(), p.nbytes[i]);
    if (options.after_tensor) options.after_tensor(tensors[i].first);
  }
  out.commit();
}

}  // namespace metaprobe::io
