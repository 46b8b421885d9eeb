#pragma once
// UTF-8 validation with Rust's str::from_utf8 rules (private to the io module; shared by reader and writer).
#include <cstddef>
#include <cstdint>

namespace metaprobe::io::detail {

// Rust's str::from_utf8 rules: no overlong forms, no surrogates, nothing above U+10FFFF.
// Returns the offset of the first invalid byte, or size when the whole range is valid.
inline size_t utf8_invalid_at(const uint8_t* p, size_t size) {
  size_t i = 0;
  while (i < size) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > size) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return size;
}

}  // namespace metaprobe::io::detail
