// One-pass per-tensor and pairwise statistics. The data is split into fixed blocks of kBlock elements;
// each block is converted once into a small cache-resident buffer, its exact mean taken, and its central
// moments summed in double in a second sweep over the buffer (so memory is read once). Blocks are merged
// with Pebay's pairwise update formulas in a fixed order (blocks within a super-block, then super-blocks),
// so the result does not depend on the number of threads.
#include <metaprobe/params/tensor_stats.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>


#include <metaprobe/error.hpp>

#include "common/parallel.hpp"

namespace metaprobe::params {
namespace {

constexpr int64_t kBlock = 4096;        // elements per block (buffer stays in L1/L2)
constexpr int64_t kSuperBlocks = 64;    // blocks per parallel work item
constexpr int kLanes = 8;

struct Moments {
  int64_t n = 0;
  double mean = 0, m2 = 0, m3 = 0, m4 = 0;
  double sum_abs = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  int64_t zeros = 0, nans = 0, infs = 0;
};

// Pebay (2008), "Formulas for robust, one-pass parallel computation of covariances and arbitrary-order
// statistical moments", eqs. 2.1-2.3 for combining two sets.
void merge(Moments& a, const Moments& b) {
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
template <class S> struct Widen {
  using type = float;
  static float load(const S& v) { return static_cast<float>(v); }
};
template <> struct Widen<c10::BFloat16> {
  using type = float;
  static float load(const c10::BFloat16& v) {
    uint32_t bits = static_cast<uint32_t>(v.x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};
template <> struct Widen<double> {
  using type = double;
  static double load(double v) { return v; }
};
template <> struct Widen<int64_t> {
  using type = double;
  static double load(int64_t v) { return static_cast<double>(v); }
};
template <> struct Widen<int32_t> {
  using type = double;
  static double load(int32_t v) { return static_cast<double>(v); }
};
template <> struct Widen<bool> {
  using type = float;
  static float load(bool v) { return v ? 1.0f : 0.0f; }
};

template <class C>
inline bool is_finite(C x) {
  return (x - x) == C(0);
}

// Central moments of buf[0..len) (finite values only) into m.
template <class C>
void block_central(const C* buf, int64_t len, double sum, Moments& m) {
  m.n = len;
  if (len == 0) return;
  const double mean = sum / static_cast<double>(len);
  double a2[kLanes] = {}, a3[kLanes] = {}, a4[kLanes] = {}, ab[kLanes] = {};
  double mn[kLanes], mx[kLanes];
  int64_t z[kLanes] = {};
  for (int j = 0; j < kLanes; ++j) {
    mn[j] = std::numeric_limits<double>::infinity();
    mx[j] = -std::numeric_limits<double>::infinity();
  }
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double x = static_cast<double>(buf[i + j]);
      const double d = x - mean, d2 = d * d;
      a2[j] += d2;
      a3[j] += d2 * d;
      a4[j] += d2 * d2;
      ab[j] += std::fabs(x);
      mn[j] = x < mn[j] ? x : mn[j];
      mx[j] = x > mx[j] ? x : mx[j];
      z[j] += (x == 0.0);
    }
  }
  for (; i < len; ++i) {
    const double x = static_cast<double>(buf[i]);
    const double d = x - mean, d2 = d * d;
    a2[0] += d2;
    a3[0] += d2 * d;
    a4[0] += d2 * d2;
    ab[0] += std::fabs(x);
    mn[0] = x < mn[0] ? x : mn[0];
    mx[0] = x > mx[0] ? x : mx[0];
    z[0] += (x == 0.0);
  }
  m.mean = mean;
  for (int j = 0; j < kLanes; ++j) {
    m.m2 += a2[j];
    m.m3 += a3[j];
    m.m4 += a4[j];
    m.sum_abs += ab[j];
    m.min = std::min(m.min, mn[j]);
    m.max = std::max(m.max, mx[j]);
    m.zeros += z[j];
  }
}

template <class S>
Moments moments_of(const S* data, int64_t numel) {
  using C = typename Widen<S>::type;
  const int64_t nblocks = (numel + kBlock - 1) / kBlock;
  const int64_t nsuper = (nblocks + kSuperBlocks - 1) / kSuperBlocks;
  std::vector<Moments> partial(static_cast<size_t>(std::max<int64_t>(nsuper, 1)));
  metaprobe::detail::parallel_for(nsuper, 1, [&](int64_t begin, int64_t end) {
    std::vector<C> buf(kBlock);
    for (int64_t s = begin; s < end; ++s) {
      Moments acc;
      const int64_t b_end = std::min(nblocks, (s + 1) * kSuperBlocks);
      for (int64_t b = s * kSuperBlocks; b < b_end; ++b) {
        const int64_t off = b * kBlock, len = std::min(kBlock, numel - off);
        const S* p = data + off;
        double sums[kLanes] = {};
        int64_t bad[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= len; i += kLanes) {
          for (int j = 0; j < kLanes; ++j) {
            const C x = Widen<S>::load(p[i + j]);
            buf[i + j] = x;
            sums[j] += static_cast<double>(x);
            bad[j] += !is_finite(x);
          }
        }
        for (; i < len; ++i) {
          const C x = Widen<S>::load(p[i]);
          buf[i] = x;
          sums[0] += static_cast<double>(x);
          bad[0] += !is_finite(x);
        }
        double sum = 0;
        int64_t nbad = 0;
        for (int j = 0; j < kLanes; ++j) {
          sum += sums[j];
          nbad += bad[j];
        }
        Moments m;
        int64_t n = len;
        if (nbad > 0) {
          // Rare path: compact the finite values to the front of the buffer and count the others.
          n = 0;
          sum = 0;
          for (int64_t t = 0; t < len; ++t) {
            const C x = buf[t];
            if (is_finite(x)) {
              buf[n++] = x;
              sum += static_cast<double>(x);
            } else if (std::isnan(x)) {
              ++m.nans;
            } else {
              ++m.infs;
            }
          }
        }
        block_central(buf.data(), n, sum, m);
        merge(acc, m);
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
  s.mean = m.mean;
  const double var = m.m2 / n;
  s.std = std::sqrt(var);
  s.min = m.min;
  s.max = m.max;
  s.mean_abs = m.sum_abs / n;
  s.sum_squares = m.m2 + n * m.mean * m.mean;
  s.l2_norm = std::sqrt(s.sum_squares);
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
  metaprobe::detail::parallel_for(nsuper, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      PairSums acc;
      const int64_t off0 = s * kSuperBlocks * kBlock;
      const int64_t off1 = std::min(numel, (s + 1) * kSuperBlocks * kBlock);
      for (int64_t off = off0; off < off1; off += kBlock) {
        const int64_t len = std::min(kBlock, off1 - off);
        double ssd[kLanes] = {}, s00[kLanes] = {}, s11[kLanes] = {}, s01[kLanes] = {}, mx[kLanes] = {};
        int64_t cabs[kLanes] = {}, crel[kLanes] = {}, ceq[kLanes] = {}, cflip[kLanes] = {}, bad[kLanes] = {};
        auto body = [&](int j, int64_t i) {
          const double x = static_cast<double>(Widen<S0>::load(a[i]));
          const double y = static_cast<double>(Widen<S1>::load(b[i]));
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

std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
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
    throw InvalidArgument("w1: shape " + shape_text(b.sizes()) + " differs from w0's shape " + shape_text(a.sizes()) +
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
