#pragma once
// Internal: locale-independent number and shape formatting for messages and text outputs.
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

namespace metaprobe::detail {

// The shortest decimal that reads back as exactly `v` ("0.1", "1e+300", "nan", "inf", "-inf").
// std::to_chars ignores the global locale and, unlike `ostream << double`, needs no locale facets: a message
// formatted this way reads the same in every process (a pip torch wheel's process crashed in num_put).
inline std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

/// A shape as "[2, 3, 4]" ("[]" for a scalar); `separator` goes between dimensions (", " in messages, ","
/// in CSV cells). Takes any sequence of integers with size() and operator[] (at::IntArrayRef, std::vector).
template <typename Sizes>
std::string format_shape(const Sizes& sizes, std::string_view separator = ", ") {
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i != 0) out += separator;
    out += std::to_string(sizes[i]);
  }
  return out + "]";
}

}  // namespace metaprobe::detail
