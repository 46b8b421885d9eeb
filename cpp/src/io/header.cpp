// The safetensors header parser and validator. It needs no ATen runtime (the fuzzer links it alone) and
// applies the reference's rules in the reference's order (safetensors' SafeTensors::read_metadata + Metadata::validate; docs/io.md), then our two additions.
#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/io/safetensors.hpp>

#include "dtypes.hpp"
#include "utf8.hpp"

namespace metaprobe::io {

SafetensorsError::SafetensorsError(SafetensorsErrorKind kind, const std::string& message)
    : FormatError(std::string(to_string(kind)) + ": " + message), kind_(kind) {}

PathNotFound::PathNotFound(const std::string& path, const std::string& message)
    : IoError(message), path_(path) {}

namespace {

using Kind = SafetensorsErrorKind;
using json = nlohmann::json;

[[noreturn]] void fail(Kind kind, const std::string& message) { throw SafetensorsError(kind, message); }

std::string show_name(const std::string& s) {
  // Names come from untrusted bytes: keep messages printable and bounded.
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 200) out += "...";
  return out + "'";
}

// serde_json's recursion limit; nlohmann has none, and a 100 MB header of '[' must not exhaust anything.
constexpr int kMaxDepth = 128;

struct DepthExceeded {};

struct DuplicateKey {
  bool found = false;
  size_t level = 0;        // 1: top-level (tensor name or __metadata__), 2: inside an entry
  std::string key;
  std::string parent;      // the top-level key of the enclosing entry
};

// Only JSON integers without a sign: serde_json reads "-0" as a float, which a usize rejects.
bool get_u64(const json& v, uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return true;
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

struct RawEntry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

RawEntry parse_entry(const std::string& name, const json& value) {
  const auto bad = [&](const std::string& what) {
    fail(Kind::InvalidHeaderDeserialization, "tensor " + show_name(name) + ": " + what);
  };
  if (!value.is_object()) bad("entry is a JSON " + std::string(value.type_name()) + ", expected an object");
  RawEntry e;
  e.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end()) bad("missing field 'dtype'");
  if (!dtype->is_string()) bad("'dtype' is a JSON " + std::string(dtype->type_name()) + ", expected a string");
  e.dtype = dtype->get<std::string>();
  if (detail::dtype_rank(e.dtype) < 0) bad("unknown dtype " + show_name(e.dtype));
  const auto shape = value.find("shape");
  if (shape == value.end()) bad("missing field 'shape'");
  if (!shape->is_array()) bad("'shape' is a JSON " + std::string(shape->type_name()) + ", expected an array");
  for (const auto& d : *shape) {
    uint64_t v = 0;
    if (!get_u64(d, v)) bad("shape entry " + d.dump() + " is not a non-negative 64-bit integer");
    e.shape.push_back(v);
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end()) bad("missing field 'data_offsets'");
  if (!offsets->is_array() || offsets->size() != 2) {
    bad("'data_offsets' is " + offsets->dump().substr(0, 100) + ", expected [begin, end]");
  }
  if (!get_u64((*offsets)[0], e.begin) || !get_u64((*offsets)[1], e.end)) {
    bad("'data_offsets' " + offsets->dump() + " are not non-negative 64-bit integers");
  }
  // Unknown fields are ignored, as the reference's serde derive does.
  return e;
}

}  // namespace

Header parse_header(const uint8_t* data, uint64_t size) {
  // Rule 1: the length prefix.
  if (size < 8) {
    fail(Kind::HeaderTooSmall,
         "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length prefix");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  // Rule 2: the header cap (the usize conversion cannot fail on 64-bit targets).
  if (n > kMaxHeaderSize || n > std::numeric_limits<size_t>::max()) {
    fail(Kind::HeaderTooLarge, "header length " + std::to_string(n) + " (file bytes 0..8) exceeds the limit of " +
                                   std::to_string(kMaxHeaderSize) + " bytes");
  }
  // Rule 3: the header must fit in the file (8 + n cannot overflow after rule 2).
  if (8 + n > size) {
    fail(Kind::InvalidHeaderLength, "header length " + std::to_string(n) + " needs file bytes 8.." +
                                        std::to_string(8 + n) + " but the file has " + std::to_string(size) +
                                        " bytes");
  }
  const uint8_t* text = data + 8;
  // Rule 4: UTF-8.
  const size_t bad_at = detail::utf8_invalid_at(text, static_cast<size_t>(n));
  if (bad_at != n) {
    fail(Kind::InvalidHeader, "header byte at file offset " + std::to_string(8 + bad_at) + " (0x" +
                                  [&] {
                                    static const char* hex = "0123456789abcdef";
                                    return std::string{hex[text[bad_at] >> 4], hex[text[bad_at] & 15]};
                                  }() +
                                  ") is not valid UTF-8");
  }
  // Rule 5: JSON into the schema. nlohmann stops at a NUL byte as if the input ended; serde_json rejects it
  // as a trailing character, and raw NUL is never valid JSON text, so reject it first.
  if (const void* nul = std::memchr(text, 0, static_cast<size_t>(n))) {
    const auto at = static_cast<const uint8_t*>(nul) - data;
    fail(Kind::InvalidHeaderDeserialization, "header holds a NUL byte at file offset " + std::to_string(at));
  }
  std::vector<std::set<std::string>> keys;
  DuplicateKey dup;
  std::string current_top;
  json root;
  try {
    root = json::parse(
        text, text + n,
        [&](int depth, json::parse_event_t event, json& parsed) {
          if (depth > kMaxDepth) throw DepthExceeded{};
          switch (event) {
            case json::parse_event_t::object_start: keys.emplace_back(); break;
            case json::parse_event_t::object_end: keys.pop_back(); break;
            case json::parse_event_t::key: {
              auto key = parsed.get<std::string>();
              if (keys.size() == 1) current_top = key;
              if (!keys.back().insert(key).second && !dup.found) {
                dup.found = true;
                dup.level = keys.size();
                dup.key = std::move(key);
                dup.parent = current_top;
              }
              break;
            }
            default: break;
          }
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    fail(Kind::InvalidHeaderDeserialization, std::string("header (file bytes 8..") + std::to_string(8 + n) +
                                                 ") is not valid JSON: " + e.what());
  } catch (const DepthExceeded&) {
    fail(Kind::InvalidHeaderDeserialization,
         "header JSON nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  if (!root.is_object()) {
    fail(Kind::InvalidHeaderDeserialization,
         "header is a JSON " + std::string(root.type_name()) + ", expected an object");
  }
  // Our addition: duplicates are rejected outright (the JSON map would silently keep the last one).
  if (dup.found) {
    if (dup.level == 1 && dup.key == "__metadata__") {
      fail(Kind::InvalidMetadata, "header holds '__metadata__' twice");
    } else if (dup.level == 1) {
      fail(Kind::DuplicateTensorName, "tensor name " + show_name(dup.key) + " appears twice in the header");
    } else if (dup.parent == "__metadata__") {
      fail(Kind::InvalidMetadata, "__metadata__ holds the key " + show_name(dup.key) + " twice");
    } else {
      fail(Kind::InvalidHeaderDeserialization,
           "tensor " + show_name(dup.parent) + ": duplicate field " + show_name(dup.key));
    }
  }
  Header header;
  header.header_size = n;
  std::vector<RawEntry> raw;
  raw.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) {
        fail(Kind::InvalidMetadata,
             "__metadata__ is a JSON " + std::string(it->type_name()) + ", expected an object of strings");
      }
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          fail(Kind::InvalidMetadata, "__metadata__ value of " + show_name(m.key()) + " is a JSON " +
                                          std::string(m->type_name()) + ", expected a string");
        }
        header.metadata.emplace(m.key(), m->get<std::string>());
      }
      continue;
    }
    raw.push_back(parse_entry(it.key(), *it));
  }
  root = json();  // free the DOM before validation of large headers

  // Rule 6 onwards: in offset order (names break ties so the reported tensor is deterministic).
  std::sort(raw.begin(), raw.end(), [](const RawEntry& a, const RawEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t start = 0;
  header.tensors.reserve(raw.size());
  for (auto& e : raw) {
    const std::string where = "tensor " + show_name(e.name) + " with data_offsets [" + std::to_string(e.begin) + ", " +
                              std::to_string(e.end) + "]";
    if (e.begin != start || e.end < e.begin) {
      fail(Kind::InvalidOffset, where + ": expected begin = " + std::to_string(start) +
                                    " (where the previous tensor ends) and end >= begin");
    }
    start = e.end;
    uint64_t numel = 1;
    for (uint64_t d : e.shape) {
      if (!checked_mul(numel, d, numel)) fail(Kind::ValidationOverflow, where + ": element count overflows 64 bits");
    }
    const uint32_t bits = detail::kDtypes[detail::dtype_rank(e.dtype)].bits;
    uint64_t nbits = 0;
    if (!checked_mul(numel, bits, nbits)) {
      fail(Kind::ValidationOverflow, where + ": " + std::to_string(numel) + " elements of " + e.dtype +
                                         " overflow 64 bits of size");
    }
    if (nbits % 8 != 0) {
      fail(Kind::MisalignedSlice, where + ": " + std::to_string(numel) + " elements of " + e.dtype + " are " +
                                      std::to_string(nbits) + " bits, not a whole number of bytes");
    }
    if (e.end - e.begin != nbits / 8) {
      fail(Kind::TensorInvalidInfo, where + ": holds " + std::to_string(e.end - e.begin) + " bytes but " +
                                        std::to_string(numel) + " elements of " + e.dtype + " need " +
                                        std::to_string(nbits / 8));
    }
    // ATen shapes are int64: a dimension above that (only possible in a zero-size tensor) cannot be served.
    Header::Entry out;
    for (uint64_t d : e.shape) {
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(Kind::ValidationOverflow, where + ": dimension " + std::to_string(d) + " exceeds int64");
      }
      out.info.shape.push_back(static_cast<int64_t>(d));
    }
    out.info.name = std::move(e.name);
    out.info.dtype = std::move(e.dtype);
    out.info.nbytes = nbits / 8;
    out.begin = e.begin;
    out.end = e.end;
    header.tensors.push_back(std::move(out));
  }
  // Rule 10: the data buffer must be consumed exactly.
  const uint64_t buffer = size - 8 - n;
  if (start != buffer) {
    fail(Kind::MetadataIncompleteBuffer, "the data buffer (file bytes " + std::to_string(8 + n) + ".." +
                                             std::to_string(size) + ") is " + std::to_string(buffer) +
                                             " bytes but the tensors cover " + std::to_string(start));
  }
  return header;
}

}  // namespace metaprobe::io
