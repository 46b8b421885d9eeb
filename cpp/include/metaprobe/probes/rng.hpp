#pragma once
// Deterministic randomness for the probe generators: SplitMix64 with our own range mapping, so the same
// seed gives the same items with every compiler and standard library (std:: distributions do not).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace metaprobe::probes {

/// FNV-1a 64-bit hash of a byte string (the item-id hash).
constexpr uint64_t fnv1a64(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ULL) {
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Lower-case, zero-padded 16-digit hex of a 64-bit value.
std::string hex64(uint64_t value);

/// SplitMix64 (Steele, Lea & Flood 2014): a 64-bit state, full period, passes BigCrush.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed = 0) : state_(seed) {}

  /// The next 64 raw bits.
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// Uniform integer in [0, n) by rejection (unbiased); n must be > 0.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }

  /// Uniform integer in [lo, hi] (inclusive); requires lo <= hi.
  int64_t uniform(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

  /// True with probability num / den.
  bool chance(uint64_t num, uint64_t den) { return below(den) < num; }

  /// A uniformly chosen element of a non-empty vector.
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

  /// Fisher–Yates shuffle with this generator.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  uint64_t state_;
};

}  // namespace metaprobe::probes
