#pragma once
// The safetensors dtype table (private to the io module; no ATen runtime so the fuzzer can link it).
// Order is the reference's `enum Dtype` declaration order, which its writer uses as "alignment" when sorting.
#include <array>
#include <cstdint>
#include <string_view>

namespace metaprobe::io::detail {

struct DtypeRow {
  std::string_view name;
  uint32_t bits;
};

inline constexpr std::array<DtypeRow, 22> kDtypes{{
    {"BOOL", 8},         {"F4", 4},           {"F6_E2M3", 6},      {"F6_E3M2", 6},  {"U8", 8},   {"I8", 8},
    {"F8_E5M2", 8},      {"F8_E4M3", 8},      {"F8_E8M0", 8},      {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8},  {"I16", 16},         {"U16", 16},         {"F16", 16},     {"BF16", 16},
    {"I32", 32},         {"U32", 32},         {"F32", 32},         {"C64", 64},     {"F64", 64},
    {"I64", 64},         {"U64", 64},
}};

/// Position of `name` in the reference's enum, or -1 when unknown.
inline int dtype_rank(std::string_view name) {
  for (size_t i = 0; i < kDtypes.size(); ++i) {
    if (kDtypes[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

/// Exact float32 values of every FP8 byte (dtype.cpp).
const std::array<float, 256>& f8_e4m3_table();
const std::array<float, 256>& f8_e5m2_table();

}  // namespace metaprobe::io::detail
