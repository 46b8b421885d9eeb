// Mapping between safetensors dtype names and ATen scalar types, and exact FP8 decoding.
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/io/tensor_source.hpp>

#include "dtypes.hpp"

// Float8_e8m0fnu arrived in torch 2.7; the project supports torch >= 2.3.
#if __has_include(<c10/util/Float8_e8m0fnu.h>)
#define METAPROBE_HAS_E8M0 1
#else
#define METAPROBE_HAS_E8M0 0
#endif

namespace metaprobe::io {

std::string safetensors_dtype(at::ScalarType type) {
  switch (type) {
    case at::kBool: return "BOOL";
    case at::kByte: return "U8";
    case at::kChar: return "I8";
    case at::kShort: return "I16";
    case at::kUInt16: return "U16";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kInt: return "I32";
    case at::kUInt32: return "U32";
    case at::kFloat: return "F32";
    case at::kComplexFloat: return "C64";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kUInt64: return "U64";
    case at::kFloat8_e4m3fn: return "F8_E4M3";
    case at::kFloat8_e5m2: return "F8_E5M2";
    case at::kFloat8_e4m3fnuz: return "F8_E4M3FNUZ";
    case at::kFloat8_e5m2fnuz: return "F8_E5M2FNUZ";
#if METAPROBE_HAS_E8M0
    case at::kFloat8_e8m0fnu: return "F8_E8M0";
#endif
    default: break;
  }
  throw Unsupported(std::string("dtype: torch.") + c10::toString(type) +
                    " has no safetensors equivalent; expected bool, uint8/16/32/64, int8/16/32/64, float16, "
                    "bfloat16, float32, float64, complex64 or a float8 type (e4m3fn, e5m2, e4m3fnuz, e5m2fnuz" +
                    (METAPROBE_HAS_E8M0 ? ", e8m0fnu)" : ")"));
}

uint32_t dtype_bits(const std::string& dtype) {
  const int rank = detail::dtype_rank(dtype);
  if (rank < 0) {
    throw InvalidArgument("dtype: unknown safetensors dtype '" + dtype + "', expected one of BOOL, F4, F6_E2M3, "
                          "F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, I16, U16, F16, "
                          "BF16, I32, U32, F32, C64, F64, I64, U64");
  }
  return detail::kDtypes[rank].bits;
}

at::ScalarType aten_dtype(const std::string& dtype) {
  if (dtype == "BOOL") return at::kBool;
  if (dtype == "U8") return at::kByte;
  if (dtype == "I8") return at::kChar;
  if (dtype == "I16") return at::kShort;
  if (dtype == "U16") return at::kUInt16;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "I32") return at::kInt;
  if (dtype == "U32") return at::kUInt32;
  if (dtype == "F32") return at::kFloat;
  if (dtype == "C64") return at::kComplexFloat;
  if (dtype == "F64") return at::kDouble;
  if (dtype == "I64") return at::kLong;
  if (dtype == "U64") return at::kUInt64;
  if (dtype == "F8_E4M3") return at::kFloat8_e4m3fn;
  if (dtype == "F8_E5M2") return at::kFloat8_e5m2;
  if (dtype == "F8_E4M3FNUZ") return at::kFloat8_e4m3fnuz;
  if (dtype == "F8_E5M2FNUZ") return at::kFloat8_e5m2fnuz;
#if METAPROBE_HAS_E8M0
  if (dtype == "F8_E8M0") return at::kFloat8_e8m0fnu;
#endif
  dtype_bits(dtype);  // unknown names are an InvalidArgument, known-but-unserved ones Unsupported
  throw Unsupported("dtype: safetensors dtype " + dtype +
                    " (UnsupportedDtype) has no libtorch scalar type in this build (F4 and F6_* are sub-byte "
                    "types that torch does not hold unpacked)");
}

namespace {

// Tables built from the bit layouts, so each value is exact (ldexp of small integers).
std::array<float, 256> build_e4m3() {
  std::array<float, 256> t{};
  for (int b = 0; b < 256; ++b) {
    const int sign = b >> 7, exp = (b >> 3) & 0xF, man = b & 0x7;
    float v;
    if (exp == 0xF && man == 0x7) {
      v = std::numeric_limits<float>::quiet_NaN();  // the "fn" variant: no infinities, S.1111.111 is NaN
    } else if (exp == 0) {
      v = std::ldexp(static_cast<float>(man), -9);  // subnormal: man/8 * 2^-6
    } else {
      v = std::ldexp(static_cast<float>(8 + man), exp - 7 - 3);
    }
    t[b] = sign ? -v : v;
  }
  return t;
}

std::array<float, 256> build_e5m2() {
  std::array<float, 256> t{};
  for (int b = 0; b < 256; ++b) {
    const int sign = b >> 7, exp = (b >> 2) & 0x1F, man = b & 0x3;
    float v;
    if (exp == 0x1F) {
      v = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
    } else if (exp == 0) {
      v = std::ldexp(static_cast<float>(man), -16);  // subnormal: man/4 * 2^-14
    } else {
      v = std::ldexp(static_cast<float>(4 + man), exp - 15 - 2);
    }
    t[b] = sign ? -v : v;
  }
  return t;
}

}  // namespace

namespace detail {
const std::array<float, 256>& f8_e4m3_table() {
  static const std::array<float, 256> table = build_e4m3();
  return table;
}

const std::array<float, 256>& f8_e5m2_table() {
  static const std::array<float, 256> table = build_e5m2();
  return table;
}
}  // namespace detail

float decode_f8_e4m3(uint8_t byte) { return detail::f8_e4m3_table()[byte]; }
float decode_f8_e5m2(uint8_t byte) { return detail::f8_e5m2_table()[byte]; }

}  // namespace metaprobe::io
