// One-pass per-tensor and pairwise statistics. The data is split into fixed blocks of kBlock elements.
// float32, bfloat16 and float16 blocks are read once, straight from the tensor, eight values per step widened
// in registers, and one sweep gives min, max, zeros (in float32 lanes) and the power sums about a shift near
// the block mean (in double), turned into the block's central moments (Note [float sweep]). Other dtypes are
// widened into a small cache-resident double buffer; a first SIMD sweep takes the exact mean with the sums,
// min, max and zero count, and a second one, which hits L1, the central moments in double. Nothing makes a
// float copy of the tensor. Blocks are merged with Pebay's pairwise update formulas in a fixed order (blocks
// within a super-block, then super-blocks), so the result does not depend on the number of threads. A float64
// block whose magnitudes would overflow (or underflow) the fourth powers is scaled by a power of two first,
// and the moments carry that exponent, so [1e308, 1e308] has mean 1e308, not inf.
#include <metaprobe/params/tensor_stats.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <metaprobe/error.hpp>

#include "common/parallel.hpp"
#include "common/format.hpp"

namespace metaprobe::params {
namespace {

constexpr int64_t kBlock = 2048;        // elements per block (the double buffer stays in L1)
constexpr int64_t kSuperBlocks = 128;   // blocks per parallel work item
constexpr int kLanes = 8;
// A float64 block with max |x| outside [2^-kScaleAt, 2^kScaleAt] is scaled by a power of two: its fourth
// powers, summed over up to 2^40 elements, then stay finite and normal.
constexpr int kScaleAt = 200;

struct Moments {
  int64_t n = 0;
  int e2 = 0;  // mean, sum_abs are in units of 2^e2, m2 of 2^(2 e2), m3 of 2^(3 e2), m4 of 2^(4 e2)
  double mean = 0, m2 = 0, m3 = 0, m4 = 0;
  double sum_abs = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t zeros = 0, nans = 0, infs = 0;
};

// Expresses m in units of 2^e2 (e2 >= m.e2; exact up to the underflow of terms negligible at that scale).
void rescale(Moments& m, int e2) {
  if (m.e2 == e2) return;
  const int k = m.e2 - e2;
  m.mean = std::ldexp(m.mean, k);
  m.sum_abs = std::ldexp(m.sum_abs, k);
  m.m2 = std::ldexp(m.m2, 2 * k);
  m.m3 = std::ldexp(m.m3, 3 * k);
  m.m4 = std::ldexp(m.m4, 4 * k);
  m.e2 = e2;
}

// Pebay (2008), "Formulas for robust, one-pass parallel computation of covariances and arbitrary-order
// statistical moments", eqs. 2.1-2.3 for combining two sets.
void merge(Moments& a, Moments b) {
  a.nans += b.nans;
  a.infs += b.infs;
  if (b.n == 0) return;
  if (a.n == 0) {
    const int64_t nans = a.nans, infs = a.infs;
    a = b;
    a.nans = nans;
    a.infs = infs;
    return;
  }
  const int e2 = std::max(a.e2, b.e2);
  rescale(a, e2);
  rescale(b, e2);
  const double na = static_cast<double>(a.n), nb = static_cast<double>(b.n), n = na + nb;
  const double d = b.mean - a.mean, d2 = d * d;
  const double m2 = a.m2 + b.m2 + d2 * na * nb / n;
  const double m3 = a.m3 + b.m3 + d2 * d * na * nb * (na - nb) / (n * n) + 3.0 * d * (na * b.m2 - nb * a.m2) / n;
  const double m4 = a.m4 + b.m4 + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n) +
                    6.0 * d2 * (na * na * b.m2 + nb * nb * a.m2) / (n * n) + 4.0 * d * (na * b.m3 - nb * a.m3) / n;
  a.mean = a.mean + d * nb / n;
  a.m2 = m2;
  a.m3 = m3;
  a.m4 = m4;
  a.n += b.n;
  a.sum_abs += b.sum_abs;
  a.min = std::min(a.min, b.min);
  a.max = std::max(a.max, b.max);
  a.zeros += b.zeros;
}

// Element loaders: bf16 is widened by a shift (exact), everything else through its C++ conversion.
template <class S> inline double widen(const S& v) { return static_cast<double>(v); }
template <> inline double widen(const c10::BFloat16& v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return static_cast<double>(f);
}
template <> inline double widen(const c10::Half& v) { return static_cast<double>(static_cast<float>(v)); }

template <class C>
inline bool is_finite(C x) {
  return (x - x) == C(0);
}

// The rare path of a block holding NaN or ±inf: its finite values value(0..len) are written to the front of
// out (which may be the values' own buffer: writes never pass reads) and the others are counted into m;
// returns how many were kept.
template <class Value, class C>
int64_t compact_finite(Value&& value, int64_t len, C* out, Moments& m) {
  int64_t n = 0;
  for (int64_t t = 0; t < len; ++t) {
    const C x = value(t);
    if (is_finite(x)) {
      out[n++] = x;
    } else if (std::isnan(x)) {
      ++m.nans;
    } else {
      ++m.infs;
    }
  }
  return n;
}

using Eigen::internal::padd;
using Eigen::internal::pand;
using Eigen::internal::pabs;
using Eigen::internal::pcmp_eq;
using Eigen::internal::pload;
using Eigen::internal::pmadd;
using Eigen::internal::pmax;
using Eigen::internal::pmin;
using Eigen::internal::pmul;
using Eigen::internal::predux;
using Eigen::internal::predux_max;
using Eigen::internal::predux_min;
using Eigen::internal::pset1;
using Eigen::internal::psub;
using PD = Eigen::internal::packet_traits<double>::type;
constexpr int kPD = Eigen::internal::unpacket_traits<PD>::size;

// Independent packet accumulators per quantity: enough to hide the add latency, few enough to stay in
// the 16 vector registers of AVX2.
constexpr int kChains = 2;
constexpr int64_t kStep = kChains * kPD;

// Sums, |x| sums, min, max and zeros of buf[0..len) (whole groups of kChains packets, the tail in scalar
// code); `finite` is false when the sum is not finite (a NaN or ±inf entry, or, for float64, a sum that
// overflows, which the caller's rare path sorts out).
struct BlockSums {
  double sum = 0, sum_abs = 0, min = 0, max = 0;
  int64_t zeros = 0;
  bool finite = true;
};
// Where a block's values come from: `load` fills kChains packets with the values at [i, i + kStep), `value`
// gives one value of the scalar tail. The sweeps below are written once over a source, so every source sees
// the same lanes, chains and order of operations (a bf16 block read in registers is bitwise the same as the
// same block widened into a buffer first).
struct DoubleSource {
  const double* p;
  void load(int64_t i, PD (&x)[kChains]) const {
    for (int j = 0; j < kChains; ++j) x[j] = pload<PD>(p + i + j * kPD);
  }
  double value(int64_t i) const { return p[i]; }
};

template <class Source>
BlockSums block_sums(const Source& src, int64_t len) {
  const PD zero = pset1<PD>(0.0), one = pset1<PD>(1.0);
  PD s[kChains], a[kChains], mn[kChains], mx[kChains], z[kChains];
  for (int j = 0; j < kChains; ++j) {
    s[j] = a[j] = z[j] = zero;
    mn[j] = pset1<PD>(std::numeric_limits<double>::infinity());
    mx[j] = pset1<PD>(-std::numeric_limits<double>::infinity());
  }
  const int64_t body = len / kStep * kStep;
  for (int64_t i = 0; i < body; i += kStep) {
    PD x[kChains];
    src.load(i, x);
    for (int j = 0; j < kChains; ++j) {
      s[j] = padd(s[j], x[j]);
      a[j] = padd(a[j], pabs(x[j]));
      mn[j] = pmin(mn[j], x[j]);
      mx[j] = pmax(mx[j], x[j]);
      z[j] = padd(z[j], pand(pcmp_eq(x[j], zero), one));
    }
  }
  for (int j = 1; j < kChains; ++j) {
    s[0] = padd(s[0], s[j]);
    a[0] = padd(a[0], a[j]);
    mn[0] = pmin(mn[0], mn[j]);
    mx[0] = pmax(mx[0], mx[j]);
    z[0] = padd(z[0], z[j]);
  }
  BlockSums r;
  r.sum = predux(s[0]);
  r.sum_abs = predux(a[0]);
  r.min = predux_min(mn[0]);
  r.max = predux_max(mx[0]);
  r.zeros = static_cast<int64_t>(predux(z[0]));
  for (int64_t i = body; i < len; ++i) {
    const double x = src.value(i);
    r.sum += x;
    r.sum_abs += std::fabs(x);
    r.min = x < r.min ? x : r.min;
    r.max = x > r.max ? x : r.max;
    r.zeros += x == 0.0;
  }
  // min/max ignore NaN in some packet implementations; the sum does not.
  r.finite = std::isfinite(r.sum);
  return r;
}

// Central moments Σ(x−mean)^k, k = 2, 3, 4, of the block's `len` values into m.
template <class Source>
void block_central(const Source& src, int64_t len, double mean, Moments& m) {
  const PD vm = pset1<PD>(mean), zero = pset1<PD>(0.0);
  PD a2[kChains], a3[kChains], a4[kChains];
  for (int j = 0; j < kChains; ++j) a2[j] = a3[j] = a4[j] = zero;
  const int64_t body = len / kStep * kStep;
  for (int64_t i = 0; i < body; i += kStep) {
    PD x[kChains];
    src.load(i, x);
    for (int j = 0; j < kChains; ++j) {
      const PD d = psub(x[j], vm);
      const PD d2 = pmul(d, d);
      a2[j] = padd(a2[j], d2);
      a3[j] = pmadd(d2, d, a3[j]);
      a4[j] = pmadd(d2, d2, a4[j]);
    }
  }
  for (int j = 1; j < kChains; ++j) {
    a2[0] = padd(a2[0], a2[j]);
    a3[0] = padd(a3[0], a3[j]);
    a4[0] = padd(a4[0], a4[j]);
  }
  m.m2 = predux(a2[0]);
  m.m3 = predux(a3[0]);
  m.m4 = predux(a4[0]);
  for (int64_t i = body; i < len; ++i) {
    const double d = src.value(i) - mean, d2 = d * d;
    m.m2 += d2;
    m.m3 += d2 * d;
    m.m4 += d2 * d2;
  }
}


// Completes a block's moments from its sums; a float64 block of extreme magnitude is rescaled first.
Moments finish_block(double* buf, int64_t n, const BlockSums& b, Moments m) {
  m.min = b.min;
  m.max = b.max;
  m.zeros = b.zeros;
  const double amax = std::max(std::fabs(b.min), std::fabs(b.max));
  double sum = b.sum, sum_abs = b.sum_abs;
  if (amax > 0 && (amax > std::ldexp(1.0, kScaleAt) || amax < std::ldexp(1.0, -kScaleAt))) {
    m.e2 = std::ilogb(amax);
    sum = sum_abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = std::ldexp(buf[i], -m.e2);
      sum += buf[i];
      sum_abs += std::fabs(buf[i]);
    }
  }
  m.mean = sum / static_cast<double>(n);
  m.sum_abs = sum_abs;
  block_central(DoubleSource{buf}, n, m.mean, m);
  return m;
}

#if defined(__AVX2__) && defined(__FMA__)
// Note [float sweep]: float32, bfloat16 and float16 blocks take one sweep instead of two. Eight values per
// step are read as float32 (bf16: zero-extend and shift by 16; f16: F16C's vcvtph2ps, or the c10 conversion
// without F16C; all exact); min, max and the zero count stay in float32 lanes (exact: they only compare), and
// the widened doubles feed the power sums S_k = Σ(x − c)^k, k = 1..4, about a shift c, the mean of the block's
// first values, and Σ|x|. With c within a few standard deviations of the block mean, converting S_k to central
// moments (shifted_to_central) loses no more than a few ulps, as the two-sweep form did; float32 magnitudes
// (< 2^128) keep every fourth power finite and normal in double, so no rescaling is needed. Every float source
// goes through the same lanes and order of operations, so a bf16 or f16 block equals the same values as
// float32 bit for bit. A block holding NaN or ±inf (its S_1 is not finite) has its finite values compacted
// into a float buffer and swept again.
// Registers: AVX2 has 16 ymm registers. Min, max, zeros and the five sums are eight accumulators; with the
// constants and a step's temporaries that leaves none spare, and an accumulator that does not fit is kept on
// the stack, so every step waits on a store and a reload of it (seen in objdump: first two sums, then after
// giving s1, s2, Σ|x| one accumulator each, still s4's second one, at 2.2 G values/s per core). So every sum
// has one accumulator, and a step adds to it the sum of its two halves (s3 += dl²·dl + dh²·dh as an FMA on a
// product; one add on each loop-carried chain): no spill, 2.9 G values/s per core on bf16 (bench/params.py,
// tensor_stats: 9.4-10.3 GB/s at 2 threads, from 5.4).
constexpr int64_t kShiftSample = 8;  // values whose mean is a block's shift c

// Eight float32 values at [i, i + 8) and one value of the scalar tail, as float.
struct F32Source {
  const float* p;
  __m256 load8(int64_t i) const { return _mm256_loadu_ps(p + i); }
  float value(int64_t i) const { return p[i]; }
};

inline float bf16_value(uint16_t u) {
  const uint32_t bits = static_cast<uint32_t>(u) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

struct Bf16Source {
  const uint16_t* p;
  __m256 load8(int64_t i) const {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  float value(int64_t i) const { return bf16_value(p[i]); }
};

struct F16Source {
  const c10::Half* p;
  __m256 load8(int64_t i) const {
#if defined(__F16C__)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
#else
    alignas(32) float t[8];
    for (int j = 0; j < 8; ++j) t[j] = static_cast<float>(p[i + j]);
    return _mm256_load_ps(t);
#endif
  }
  float value(int64_t i) const { return static_cast<float>(p[i]); }
};

// Raw results of one float sweep: power sums about c, Σ|x|, min, max, zeros.
struct FloatSums {
  double c = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, sum_abs = 0;
  double min = 0, max = 0;
  int64_t zeros = 0;
};

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// One sweep over len values of src (Note [float sweep]).
template <class Source>
FloatSums float_sweep(const Source& src, int64_t len) {
  FloatSums r;
  const int64_t ns = std::min(len, kShiftSample);
  double c = 0;
  for (int64_t i = 0; i < ns; ++i) c += static_cast<double>(src.value(i));
  c /= static_cast<double>(ns);
  r.c = c;
  const __m256d vc = _mm256_set1_pd(c), sign = _mm256_set1_pd(-0.0);
  // One accumulator per sum, fed the sum of a step's two halves (Note [float sweep], "registers").
  __m256d s1 = _mm256_setzero_pd(), s2 = s1, s3 = s1, s4 = s1, sa = s1;
  __m256 mn = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256i zc = _mm256_setzero_si256();
  const int64_t body = len / 8 * 8;
  for (int64_t i = 0; i < body; i += 8) {
    const __m256 f = src.load8(i);
    mn = _mm256_min_ps(mn, f);
    mx = _mm256_max_ps(mx, f);
    zc = _mm256_sub_epi32(zc, _mm256_castps_si256(_mm256_cmp_ps(f, _mm256_setzero_ps(), _CMP_EQ_OQ)));
    const __m256d xl = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
    const __m256d xh = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    const __m256d dl = _mm256_sub_pd(xl, vc), dh = _mm256_sub_pd(xh, vc);
    const __m256d dl2 = _mm256_mul_pd(dl, dl), dh2 = _mm256_mul_pd(dh, dh);
    s1 = _mm256_add_pd(s1, _mm256_add_pd(dl, dh));
    s2 = _mm256_add_pd(s2, _mm256_add_pd(dl2, dh2));
    s3 = _mm256_add_pd(s3, _mm256_fmadd_pd(dl2, dl, _mm256_mul_pd(dh2, dh)));
    s4 = _mm256_add_pd(s4, _mm256_fmadd_pd(dl2, dl2, _mm256_mul_pd(dh2, dh2)));
    sa = _mm256_add_pd(sa, _mm256_add_pd(_mm256_andnot_pd(sign, xl), _mm256_andnot_pd(sign, xh)));
  }
  r.s1 = hsum(s1);
  r.s2 = hsum(s2);
  r.s3 = hsum(s3);
  r.s4 = hsum(s4);
  r.sum_abs = hsum(sa);
  alignas(32) float lo[8], hi[8];
  alignas(32) int32_t zs[8];
  _mm256_store_ps(lo, mn);
  _mm256_store_ps(hi, mx);
  _mm256_store_si256(reinterpret_cast<__m256i*>(zs), zc);
  float fmin = lo[0], fmax = hi[0];
  for (int j = 0; j < 8; ++j) {
    fmin = lo[j] < fmin ? lo[j] : fmin;
    fmax = hi[j] > fmax ? hi[j] : fmax;
    r.zeros += zs[j];
  }
  for (int64_t i = body; i < len; ++i) {
    const float v = src.value(i);
    const double x = static_cast<double>(v), d = x - c, d2 = d * d;
    r.s1 += d;
    r.s2 += d2;
    r.s3 += d2 * d;
    r.s4 += d2 * d2;
    r.sum_abs += std::fabs(x);
    fmin = v < fmin ? v : fmin;
    fmax = v > fmax ? v : fmax;
    r.zeros += v == 0.0f;
  }
  r.min = fmin;
  r.max = fmax;
  return r;
}

// The moments of n values from their power sums about c (the binomial expansion about the mean c + δ).
Moments shifted_to_central(const FloatSums& f, int64_t n) {
  Moments m;
  m.n = n;
  const double nn = static_cast<double>(n), delta = f.s1 / nn, d2 = delta * delta;
  m.mean = f.c + delta;
  m.m2 = std::max(0.0, f.s2 - nn * d2);
  m.m3 = f.s3 - 3.0 * delta * f.s2 + 2.0 * nn * d2 * delta;
  m.m4 = std::max(0.0, f.s4 - 4.0 * delta * f.s3 + 6.0 * d2 * f.s2 - 3.0 * nn * d2 * d2);
  m.sum_abs = f.sum_abs;
  m.min = f.min;
  m.max = f.max;
  m.zeros = f.zeros;
  return m;
}

// The moments of a float-like block (Note [float sweep]); fbuf has room for kBlock floats.
template <class Source>
Moments float_block_moments(const Source& src, int64_t len, float* fbuf) {
  const FloatSums f = float_sweep(src, len);
  if (std::isfinite(f.s1)) return shifted_to_central(f, len);
  Moments counts;
  const int64_t n = compact_finite([&](int64_t t) { return src.value(t); }, len, fbuf, counts);
  if (n == 0) return counts;
  Moments m = shifted_to_central(float_sweep(F32Source{fbuf}, n), n);
  m.nans = counts.nans;
  m.infs = counts.infs;
  return m;
}
#endif

// The moments of one block of `len` values (buf has room for kBlock doubles, fbuf for kBlock floats),
// widened from p.
template <class S>
Moments block_moments(const S* p, int64_t len, double* buf, float* fbuf) {
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same_v<S, float>) return float_block_moments(F32Source{p}, len, fbuf);
  if constexpr (std::is_same_v<S, c10::BFloat16>) {
    return float_block_moments(Bf16Source{reinterpret_cast<const uint16_t*>(p)}, len, fbuf);
  }
  if constexpr (std::is_same_v<S, c10::Half>) return float_block_moments(F16Source{p}, len, fbuf);
#endif
  for (int64_t i = 0; i < len; ++i) buf[i] = widen(p[i]);
  Moments m;
  BlockSums b = block_sums(DoubleSource{buf}, len);
  int64_t n = len;
  if (!b.finite) {
    n = compact_finite([&](int64_t t) { return buf[t]; }, len, buf, m);
    b = block_sums(DoubleSource{buf}, n);
  }
  m.n = n;
  if (n == 0) return m;
  return finish_block(buf, n, b, m);
}

template <class S>
Moments moments_of(const S* data, int64_t numel) {
  const int64_t nblocks = (numel + kBlock - 1) / kBlock;
  const int64_t nsuper = (nblocks + kSuperBlocks - 1) / kSuperBlocks;
  std::vector<Moments> partial(static_cast<size_t>(std::max<int64_t>(nsuper, 1)));
  // Super-blocks are claimed dynamically (a worker whose core is busy elsewhere takes fewer); each one's
  // partial lands in its own slot and the slots merge in index order, so the split never shows.
  struct Buf {
    alignas(64) double v[kBlock];
    alignas(64) float f[kBlock];
  };
  metaprobe::detail::parallel_claim(nsuper, 1, [] { return std::make_unique<Buf>(); },
                                    [&](std::unique_ptr<Buf>& b_, int64_t begin, int64_t end) {
    double* buf = b_->v;
    float* fbuf = b_->f;
    for (int64_t s = begin; s < end; ++s) {
      Moments acc;
      const int64_t b_end = std::min(nblocks, (s + 1) * kSuperBlocks);
      for (int64_t b = s * kSuperBlocks; b < b_end; ++b) {
        const int64_t off = b * kBlock, len = std::min(kBlock, numel - off);
        merge(acc, block_moments(data + off, len, buf, fbuf));
      }
      partial[static_cast<size_t>(s)] = acc;
    }
  });
  Moments total;
  for (const auto& m : partial) merge(total, m);
  return total;
}

at::Tensor cpu_contiguous(const at::Tensor& t, const char* argument) {
  if (!t.defined()) throw InvalidArgument(std::string(argument) + ": undefined tensor, expected a tensor");
  if (t.is_complex()) {
    throw InvalidArgument(std::string(argument) + ": complex dtype " + std::string(c10::toString(t.scalar_type())) +
                          ", expected a real floating, integer or bool tensor");
  }
  at::Tensor c = t.device().is_cpu() ? t : t.cpu();
  return c.contiguous();
}

// Dispatches on the dtypes ATen has a C++ type for; quantized and complex types are rejected.
template <class F>
void dispatch(const at::Tensor& t, const char* argument, F&& f) {
  switch (t.scalar_type()) {
    case at::kFloat: f(t.data_ptr<float>()); break;
    case at::kDouble: f(t.data_ptr<double>()); break;
    case at::kHalf: f(t.data_ptr<at::Half>()); break;
    case at::kBFloat16: f(t.data_ptr<at::BFloat16>()); break;
    case at::kLong: f(t.data_ptr<int64_t>()); break;
    case at::kInt: f(t.data_ptr<int32_t>()); break;
    case at::kShort: f(t.data_ptr<int16_t>()); break;
    case at::kChar: f(t.data_ptr<int8_t>()); break;
    case at::kByte: f(t.data_ptr<uint8_t>()); break;
    case at::kBool: f(t.data_ptr<bool>()); break;
    default:
      throw InvalidArgument(std::string(argument) + ": unsupported dtype " +
                            std::string(c10::toString(t.scalar_type())) +
                            ", expected a floating, integer or bool tensor");
  }
}

TensorStats finish(const Moments& m, int64_t numel) {
  TensorStats s;
  s.numel = numel;
  s.finite_count = m.n;
  s.nan_count = m.nans;
  s.inf_count = m.infs;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (m.n == 0) {
    s.mean = s.std = s.min = s.max = s.mean_abs = s.zero_fraction = s.skewness = s.excess_kurtosis = nan;
    s.l2_norm = s.linf_norm = s.sum_squares = 0;
    return s;
  }
  const double n = static_cast<double>(m.n);
  // m is in units of 2^e2 (e2 = 0 unless a float64 tensor holds extreme magnitudes).
  s.mean = std::ldexp(m.mean, m.e2);
  const double var = m.m2 / n;
  s.std = std::ldexp(std::sqrt(var), m.e2);
  s.min = m.min;
  s.max = m.max;
  s.mean_abs = std::ldexp(m.sum_abs / n, m.e2);
  const double ss = m.m2 + n * m.mean * m.mean;
  s.sum_squares = std::ldexp(ss, 2 * m.e2);  // may be +inf: the true value overflows a double
  s.l2_norm = std::ldexp(std::sqrt(ss), m.e2);
  s.linf_norm = std::max(std::fabs(m.min), std::fabs(m.max));
  s.zero_fraction = static_cast<double>(m.zeros) / n;
  // scipy.stats.skew/kurtosis treat a variance lost in rounding as zero and return NaN; same threshold.
  const double resolution = 1e-15 * m.mean;
  if (var <= resolution * resolution) {
    s.skewness = s.excess_kurtosis = nan;
  } else {
    s.skewness = (m.m3 / n) / std::pow(var, 1.5);
    s.excess_kurtosis = (m.m4 / n) / (var * var) - 3.0;
  }
  return s;
}

struct PairSums {
  int64_t n = 0, bad = 0;
  double ssd = 0, s00 = 0, s11 = 0, s01 = 0, maxabs = 0;
  int64_t cabs = 0, crel = 0, ceq = 0, cflip = 0;
  void add(const PairSums& o) {
    n += o.n;
    bad += o.bad;
    ssd += o.ssd;
    s00 += o.s00;
    s11 += o.s11;
    s01 += o.s01;
    maxabs = std::max(maxabs, o.maxabs);
    cabs += o.cabs;
    crel += o.crel;
    ceq += o.ceq;
    cflip += o.cflip;
  }
};

template <class S0, class S1>
PairSums pair_sums(const S0* a, const S1* b, int64_t numel, double atol, double eta) {
  const int64_t nblocks = (numel + kBlock - 1) / kBlock;
  const int64_t nsuper = (nblocks + kSuperBlocks - 1) / kSuperBlocks;
  std::vector<PairSums> partial(static_cast<size_t>(std::max<int64_t>(nsuper, 1)));
  metaprobe::detail::parallel_claim(nsuper, 1, [] { return 0; }, [&](int, int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      PairSums acc;
      const int64_t off0 = s * kSuperBlocks * kBlock;
      const int64_t off1 = std::min(numel, (s + 1) * kSuperBlocks * kBlock);
      for (int64_t off = off0; off < off1; off += kBlock) {
        const int64_t len = std::min(kBlock, off1 - off);
        double ssd[kLanes] = {}, s00[kLanes] = {}, s11[kLanes] = {}, s01[kLanes] = {}, mx[kLanes] = {};
        int64_t cabs[kLanes] = {}, crel[kLanes] = {}, ceq[kLanes] = {}, cflip[kLanes] = {}, bad[kLanes] = {};
        auto body = [&](int j, int64_t i) {
          const double x = widen(a[i]);
          const double y = widen(b[i]);
          const double d = y - x;
          // Non-finite pairs are masked to zero contributions and counted.
          const bool ok = is_finite(x) && is_finite(y);
          const double xm = ok ? x : 0.0, ym = ok ? y : 0.0, dm = ok ? d : 0.0;
          const double ad = std::fabs(dm);
          ssd[j] += dm * dm;
          s00[j] += xm * xm;
          s11[j] += ym * ym;
          s01[j] += xm * ym;
          mx[j] = ad > mx[j] ? ad : mx[j];
          const double big = std::max(std::fabs(xm), std::fabs(ym));
          cabs[j] += ok & (ad <= atol);
          crel[j] += ok & (ad <= eta * big);
          ceq[j] += ok & (dm == 0.0);
          cflip[j] += (xm * ym < 0.0);
          bad[j] += !ok;
        };
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes) {
          for (int j = 0; j < kLanes; ++j) body(j, off + i + j);
        }
        for (; i < len; ++i) body(0, off + i);
        PairSums blk;
        for (int j = 0; j < kLanes; ++j) {
          blk.ssd += ssd[j];
          blk.s00 += s00[j];
          blk.s11 += s11[j];
          blk.s01 += s01[j];
          blk.maxabs = std::max(blk.maxabs, mx[j]);
          blk.cabs += cabs[j];
          blk.crel += crel[j];
          blk.ceq += ceq[j];
          blk.cflip += cflip[j];
          blk.bad += bad[j];
        }
        blk.n = len - blk.bad;
        acc.add(blk);
      }
      partial[static_cast<size_t>(s)] = acc;
    }
  });
  PairSums total;
  for (const auto& p : partial) total.add(p);
  return total;
}

}  // namespace

TensorStats tensor_stats(const at::Tensor& t) {
  const at::Tensor c = cpu_contiguous(t, "tensor");
  Moments m;
  dispatch(c, "tensor", [&](const auto* p) { m = moments_of(p, c.numel()); });
  return finish(m, c.numel());
}

UpdateStats update_stats(const at::Tensor& w0, const at::Tensor& w1, const UpdateOptions& options) {
  if (!(options.atol >= 0) || !std::isfinite(options.atol)) {
    throw InvalidArgument("atol: " + std::to_string(options.atol) + ", expected a finite value >= 0");
  }
  if (!(options.eta >= 0) || !std::isfinite(options.eta)) {
    throw InvalidArgument("eta: " + std::to_string(options.eta) + ", expected a finite value >= 0");
  }
  const at::Tensor a = cpu_contiguous(w0, "w0");
  const at::Tensor b = cpu_contiguous(w1, "w1");
  if (a.sizes() != b.sizes()) {
    throw InvalidArgument("w1: shape " + metaprobe::detail::format_shape(b.sizes()) + " differs from w0's shape " + metaprobe::detail::format_shape(a.sizes()) +
                          ", expected the same shape");
  }
  PairSums p;
  dispatch(a, "w0", [&](const auto* pa) {
    dispatch(b, "w1", [&](const auto* pb) { p = pair_sums(pa, pb, a.numel(), options.atol, options.eta); });
  });
  UpdateStats u;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  u.numel = a.numel();
  u.finite_count = p.n;
  u.nonfinite_count = p.bad;
  u.sum_sq_delta = p.ssd;
  u.sum_sq_ref = p.s00;
  u.sum_sq_tuned = p.s11;
  u.dot = p.s01;
  u.count_abs = p.cabs;
  u.count_rel = p.crel;
  u.count_unchanged = p.ceq;
  u.count_sign_flip = p.cflip;
  u.delta_fro = std::sqrt(p.ssd);
  u.ref_fro = std::sqrt(p.s00);
  u.tuned_fro = std::sqrt(p.s11);
  u.rel_update_norm = u.ref_fro > 0 ? u.delta_fro / u.ref_fro : (u.delta_fro == 0 ? 0.0 : nan);
  u.cosine = (u.ref_fro > 0 && u.tuned_fro > 0) ? p.s01 / (u.ref_fro * u.tuned_fro) : nan;
  u.max_abs_delta = p.n > 0 ? p.maxabs : nan;
  const double n = static_cast<double>(p.n);
  u.sparsity_abs = p.n > 0 ? p.cabs / n : nan;
  u.sparsity_rel = p.n > 0 ? p.crel / n : nan;
  u.unchanged_fraction = p.n > 0 ? p.ceq / n : nan;
  u.sign_flip_fraction = p.n > 0 ? p.cflip / n : nan;
  return u;
}

}  // namespace metaprobe::params
