// The fused CPU kernel. Per row pair, three passes over blocks of kBlock elements: (1) max, argmax block and
// NaN check; (2) exp(z/T − M) stored into a per-thread buffer, its sum, and the rank counts; (3) the metric
// sums, which need no transcendental except one log per element for JS. Only pass 1 reads the row from
// memory; passes 2 and 3 hit cache. Vectorised with Eigen's packet primitives (its pexp/plog are SIMD);
// bfloat16 and float16 inputs are widened in registers as each packet is loaded (see Note [conversion]).
//
// Determinism: every row is processed by one thread with a fixed block/packet order that depends only on V
// (the exp buffer is aligned, the input is read with unaligned loads), so a row's values are bitwise the
// same for any thread count, any schedule and any batch it sits in. Rows are claimed dynamically by torch's
// intra-op workers (detail::parallel_claim); no state passes from one row to the next.
//
// Note [conversion]: the kernel never writes a float copy of a bfloat16/float16 row. A full block is read
// straight from the input, and each packet is widened as it is loaded (bfloat16: zero-extend and shift by 16,
// three instructions; float16: one F16C vcvtph2ps). Only a block whose length is not a multiple of the packet
// width is copied, in its input type, into a small buffer padded with −inf, which adds nothing to any sum,
// count or maximum. The widening is exact, so results equal those of a float32 copy bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <Eigen/Core>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include <metaprobe/error.hpp>

#include "internal.hpp"
#include "common/parallel.hpp"

namespace metaprobe::divergence_detail {
namespace {

using namespace Eigen::internal;

constexpr std::int64_t kBlock = 1024;
// Float SIMD partial sums are flushed into double every kFlush packets, which bounds their rounding error
// to that of 16-term float sums per lane at a cost of a few horizontal adds per 16 packets.
constexpr std::int64_t kFlush = 16;

template <typename T> using Pk = typename packet_traits<T>::type;
template <typename T> constexpr int kLanes = unpacket_traits<Pk<T>>::size;

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T> std::unique_ptr<T[], AlignedFree> aligned_buffer(std::int64_t n) {
  std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
  bytes = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (!p) throw std::bad_alloc();
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p));
}

inline std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

template <typename T> inline T to_compute(T v) { return v; }
inline float to_compute(c10::BFloat16 v) { return static_cast<float>(v); }
inline float to_compute(c10::Half v) { return static_cast<float>(v); }

// One packet of T from kLanes<T> consecutive In values, widened in registers (Note [conversion]).
template <typename T, typename In> inline Pk<T> ld(const In* x) {
  if constexpr (std::is_same_v<In, T>) {
    return ploadu<Pk<T>>(x);
#if defined(__AVX2__)
  } else if constexpr (std::is_same_v<In, c10::BFloat16> && std::is_same_v<T, float> && kLanes<T> == 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
#endif
#if defined(__F16C__) && defined(__AVX__)
  } else if constexpr (std::is_same_v<In, c10::Half> && std::is_same_v<T, float> && kLanes<T> == 8) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
#endif
  } else {
    alignas(64) T tmp[kLanes<T>];
    for (int i = 0; i < kLanes<T>; ++i) tmp[i] = to_compute(x[i]);
    return pload<Pk<T>>(tmp);
  }
}

// A pointer to n elements of the row, readable as packets of T up to round_up(n, lanes): the input itself
// when n is a multiple of the packet width, else a copy in tmp (input type) padded with −inf, which adds
// nothing to any sum, count or maximum.
template <typename T, typename In>
inline const In* load_block(const In* src, std::int64_t n, In* tmp) {
  const std::int64_t np = round_up(n, kLanes<T>);
  if (np == n) return src;
  std::copy(src, src + n, tmp);
  for (std::int64_t i = n; i < np; ++i) tmp[i] = In(-std::numeric_limits<float>::infinity());
  return tmp;
}

template <typename T> struct RowState {
  T max_p = 0, max_q = 0;        // raw maxima
  T min_p = 0, min_q = 0;        // raw minima (of the padded blocks: −inf when a tail is padded)
  T shift_p = 0, shift_q = 0;    // M = max · (1/T), in T arithmetic
  std::int64_t arg_p = -1, arg_q = -1;
  double sum_p = 0, sum_q = 0;
  double partial[sharded::kNumPartials] = {};
};

// One row pair as the passes read it: the two rows of V logits and a tail buffer for each (Note [conversion]).
template <typename In> struct RowPair {
  const In* zp;
  const In* zq;
  std::int64_t V;
  In* tp;
  In* tq;
};

// The per-worker exponential rows that pass 2 writes and pass 3 reads.
template <typename T> struct ExpRows {
  T* ep;
  T* eq;
};

// Thresholds of pass 2's rank counts: z_q[argmax p], z_p[y] and z_q[y] (NaN when unused).
template <typename T> struct RankThresholds {
  T rank, target_p, target_q;
};

// What pass 1 found wrong with a row: a BadRow reason (0 = fine) and which tensor holds it.
struct RowCheck {
  int reason = 0;
  bool in_q = false;
  explicit operator bool() const { return reason != 0; }
};

// Pass 1: max, argmax block and NaN check of both rows; the row's check (NaN, +inf, no finite logit, max/T
// overflows).
template <typename T, typename In>
RowCheck pass_max(const RowPair<In>& row, T inv_t, bool want_arg_p, bool want_arg_q, RowState<T>& st) {
  const In* zp = row.zp;
  const In* zq = row.zq;
  const std::int64_t V = row.V;
  In* tp = row.tp;
  In* tq = row.tq;
  using P = Pk<T>;
  constexpr int L = kLanes<T>;
  const T ninf = -std::numeric_limits<T>::infinity();
  const P vninf = pset1<P>(ninf);
  P nan_p = pzero(vninf), nan_q = pzero(vninf);
  P min_p = pset1<P>(std::numeric_limits<T>::infinity()), min_q = min_p;
  T max_p = ninf, max_q = ninf;
  std::int64_t blk_p = 0, blk_q = 0;
  for (std::int64_t off = 0; off < V; off += kBlock) {
    const std::int64_t n = std::min(kBlock, V - off), np = round_up(n, L);
    const In* xp = load_block<T>(zp + off, n, tp);
    const In* xq = load_block<T>(zq + off, n, tq);
    P mp0 = vninf, mp1 = vninf, mq0 = vninf, mq1 = vninf;
    std::int64_t i = 0;
    for (; i + 2 * L <= np; i += 2 * L) {
      const P a0 = ld<T>(xp + i), a1 = ld<T>(xp + i + L);
      const P b0 = ld<T>(xq + i), b1 = ld<T>(xq + i + L);
      mp0 = pmax(mp0, a0);
      mp1 = pmax(mp1, a1);
      mq0 = pmax(mq0, b0);
      mq1 = pmax(mq1, b1);
      min_p = pmin(min_p, pmin(a0, a1));
      min_q = pmin(min_q, pmin(b0, b1));
      nan_p = por(nan_p, por(pcmp_lt_or_nan(a0, vninf), pcmp_lt_or_nan(a1, vninf)));
      nan_q = por(nan_q, por(pcmp_lt_or_nan(b0, vninf), pcmp_lt_or_nan(b1, vninf)));
    }
    for (; i < np; i += L) {
      const P a0 = ld<T>(xp + i), b0 = ld<T>(xq + i);
      mp0 = pmax(mp0, a0);
      mq0 = pmax(mq0, b0);
      min_p = pmin(min_p, a0);
      min_q = pmin(min_q, b0);
      nan_p = por(nan_p, pcmp_lt_or_nan(a0, vninf));
      nan_q = por(nan_q, pcmp_lt_or_nan(b0, vninf));
    }
    const T bp = predux_max(pmax(mp0, mp1)), bq = predux_max(pmax(mq0, mq1));
    if (bp > max_p) { max_p = bp; blk_p = off; }
    if (bq > max_q) { max_q = bq; blk_q = off; }
  }
  const bool np_ = predux_any(nan_p), nq_ = predux_any(nan_q);
  auto check = [&](bool nan, T mx) -> int { return nan ? static_cast<int>(kBadNaN) : shift_reason(mx, mx * inv_t); };
  if (int r = check(np_, max_p)) return RowCheck{r, false};
  if (int r = check(nq_, max_q)) return RowCheck{r, true};
  st.max_p = max_p;
  st.max_q = max_q;
  st.min_p = predux_min(min_p);
  st.min_q = predux_min(min_q);
  auto first_max = [&](const In* z, std::int64_t off, T mx, In* tmp) {
    const std::int64_t n = std::min(kBlock, V - off);
    const In* x = load_block<T>(z + off, n, tmp);
    for (std::int64_t i = 0; i < n; ++i) if (to_compute(x[i]) == mx) return off + i;
    return off;  // unreachable: the block holds its maximum
  };
  if (want_arg_p) st.arg_p = first_max(zp, blk_p, max_p, tp);
  if (want_arg_q) st.arg_q = first_max(zq, blk_q, max_q, tq);
  return RowCheck{};
}

// Note [fast rows]: a row pair read at temperature 1 whose every shifted logit z − M lies above exp_zero
// (pass 1's minimum says so: z ↦ z − M is monotonic in T arithmetic, so the minimum decides for every
// element) takes the kFast variants of passes 2 and 3. They skip what cannot change a bit there: the multiply
// by 1/T = 1 (exact), the exp_zero mask and the floor clamp (no element reaches them) and the counts of
// p > 0 = q and q > 0 = p (both 0). A padded tail block holds −inf, so such a row never qualifies.
template <typename T> bool fast_row(const RowState<T>& st, T inv_t) {
  return inv_t == T(1) && st.min_p - st.shift_p > Limits<T>::exp_zero && st.min_q - st.shift_q > Limits<T>::exp_zero;
}

// Pass 2: exponentials into ep/eq, their sums, and the rank counts (#{z > threshold}).
template <bool kFast, bool kRank, bool kTarget, typename T, typename In>
void pass_exp(const RowPair<In>& row, T inv_t, const ExpRows<T>& e, const RankThresholds<T>& thr, RowState<T>& st) {
  const In* zp = row.zp;
  const In* zq = row.zq;
  const std::int64_t V = row.V;
  In* tp = row.tp;
  In* tq = row.tq;
  T* ep = e.ep;
  T* eq = e.eq;
  using P = Pk<T>;
  constexpr int L = kLanes<T>;
  const P vinv = pset1<P>(inv_t), vmp = pset1<P>(st.shift_p), vmq = pset1<P>(st.shift_q);
  const P vzero_at = pset1<P>(Limits<T>::exp_zero), one = pset1<P>(T(1));
  const P vr = pset1<P>(thr.rank), vtp = pset1<P>(thr.target_p), vtq = pset1<P>(thr.target_q);
  double sp = 0, sq = 0, c0 = 0, c1 = 0, c2 = 0;
  for (std::int64_t off = 0; off < V; off += kBlock) {
    const std::int64_t n = std::min(kBlock, V - off), np = round_up(n, L);
    const In* xp = load_block<T>(zp + off, n, tp);
    const In* xq = load_block<T>(zq + off, n, tq);
    for (std::int64_t i0 = 0; i0 < np; i0 += kFlush * L) {
    P ap = pzero(one), aq = pzero(one), k0 = pzero(one), k1 = pzero(one), k2 = pzero(one);
    for (std::int64_t i = i0, i1 = std::min(np, i0 + kFlush * L); i < i1; i += L) {
      const P rp = ld<T>(xp + i), rq = ld<T>(xq + i);
      P a, b, ea, eb;
      if constexpr (kFast) {
        a = psub(rp, vmp);
        b = psub(rq, vmq);
        ea = pexp(a);
        eb = pexp(b);
      } else {
        a = psub(pmul(rp, vinv), vmp);
        b = psub(pmul(rq, vinv), vmq);
        ea = pand(pexp(a), pcmp_lt(vzero_at, a));
        eb = pand(pexp(b), pcmp_lt(vzero_at, b));
      }
      pstore(ep + off + i, ea);
      pstore(eq + off + i, eb);
      ap = padd(ap, ea);
      aq = padd(aq, eb);
      if constexpr (kRank) k0 = padd(k0, pand(pcmp_lt(vr, rq), one));
      if constexpr (kTarget) {
        k1 = padd(k1, pand(pcmp_lt(vtp, rp), one));
        k2 = padd(k2, pand(pcmp_lt(vtq, rq), one));
      }
    }
    sp += static_cast<double>(predux(ap));
    sq += static_cast<double>(predux(aq));
    if constexpr (kRank) c0 += static_cast<double>(predux(k0));
    if constexpr (kTarget) {
      c1 += static_cast<double>(predux(k1));
      c2 += static_cast<double>(predux(k2));
    }
    }
  }
  st.sum_p = sp;
  st.sum_q = sq;
  st.partial[kCntRank] = c0;
  st.partial[kCntTp] = c1;
  st.partial[kCntTq] = c2;
}

// log(1 − w/2) for w ∈ [0, 1] as w·Q(w), Q a degree-9 least-squares fit on Chebyshev nodes: exact 0 at
// w = 0 and within 2e-8 (below float rounding) elsewhere; a third of the cost of a general log.
template <typename P> inline P log1m_half(const P& w) {
  P q = pset1<P>(-1.735369326e-03f);
  q = pmadd(q, w, pset1<P>(4.991734477e-03f));
  q = pmadd(q, w, pset1<P>(-8.006765355e-03f));
  q = pmadd(q, w, pset1<P>(4.961037983e-03f));
  q = pmadd(q, w, pset1<P>(-5.528364619e-03f));
  q = pmadd(q, w, pset1<P>(-5.412867310e-03f));
  q = pmadd(q, w, pset1<P>(-1.576061568e-02f));
  q = pmadd(q, w, pset1<P>(-4.165562386e-02f));
  q = pmadd(q, w, pset1<P>(-1.250003462e-01f));
  q = pmadd(q, w, pset1<P>(-4.999999982e-01f));
  return pmul(q, w);
}

enum JsMode { kNoJs = 0, kJsGeneral = 1, kJsHalf = 2 };

// Pass 3: the metric sums (see Partial in internal.hpp). kJsHalf (float, β = 1/2) uses
// JS_v = ½[(hi + lo) log(1 − w/2) + lo |δ|], hi/lo = max/min(x, y), w = (hi − lo)/hi, since m/hi = 1 − w/2.
// kKL: kNoKl, kKlForward (Σ ea(a − b) and the p>0, q=0 count only: KL(p‖q), or JS at β = 0) or kKlAll.
enum KlMode { kNoKl = 0, kKlForward = 1, kKlAll = 2 };

template <bool kFast, int kKL, int kJS, typename T, typename In>
void pass_metrics(const RowPair<In>& row, T inv_t, T beta, const ExpRows<T>& e, RowState<T>& st) {
  if constexpr (kKL == kNoKl && kJS == kNoJs) return;  // no metric of the plan reads these sums
  const In* zp = row.zp;
  const In* zq = row.zq;
  const std::int64_t V = row.V;
  In* tp = row.tp;
  In* tq = row.tq;
  const T* ep = e.ep;
  const T* eq = e.eq;
  using P = Pk<T>;
  constexpr int L = kLanes<T>;
  const P vinv = pset1<P>(inv_t), vmp = pset1<P>(st.shift_p), vmq = pset1<P>(st.shift_q);
  const P vf = pset1<P>(Limits<T>::floor), one = pset1<P>(T(1)), zero = pzero(one);
  const P vcp = pset1<P>(static_cast<T>(1.0 / st.sum_p)), vcq = pset1<P>(static_cast<T>(1.0 / st.sum_q));
  const P vb = pset1<P>(beta), vb1 = pset1<P>(T(1) - beta);
  const P vdl = pset1<P>(static_cast<T>(std::log(st.sum_p) - std::log(st.sum_q)));
  const P vtiny = pset1<P>(std::numeric_limits<T>::min());
  const P vrlo = pset1<P>(std::min(beta, T(1) - beta));
  double acc[7] = {0, 0, 0, 0, 0, 0, 0};
  for (std::int64_t off = 0; off < V; off += kBlock) {
    const std::int64_t n = std::min(kBlock, V - off), np = round_up(n, L);
    const In* xp = load_block<T>(zp + off, n, tp);
    const In* xq = load_block<T>(zq + off, n, tq);
    for (std::int64_t i0 = 0; i0 < np; i0 += kFlush * L) {
    P s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, i1 = zero, i2 = zero;
    for (std::int64_t i = i0, iend = std::min(np, i0 + kFlush * L); i < iend; i += L) {
      P a, b;
      if constexpr (kFast) {
        a = psub(ld<T>(xp + i), vmp);
        b = psub(ld<T>(xq + i), vmq);
      } else {
        a = pmax(psub(pmul(ld<T>(xp + i), vinv), vmp), vf);
        b = pmax(psub(pmul(ld<T>(xq + i), vinv), vmq), vf);
      }
      const P ea = pload<P>(ep + off + i), eb = pload<P>(eq + off + i);
      const P d = psub(a, b);
      if constexpr (kKL != kNoKl) {
        s1 = pmadd(ea, d, s1);
        if constexpr (kKL == kKlAll) {
          s2 = pmadd(eb, d, s2);
          s3 = pmadd(ea, a, s3);
          s4 = pmadd(eb, b, s4);
        }
        if constexpr (!kFast) {
          const P a_live = pcmp_lt(vf, a), b_live = pcmp_lt(vf, b);
          i1 = padd(i1, pand(pandnot(a_live, b_live), one));
          if constexpr (kKL == kKlAll) i2 = padd(i2, pand(pandnot(b_live, a_live), one));
        }
      }
      if constexpr (kJS == kJsHalf) {
        const P x = pmul(ea, vcp), y = pmul(eb, vcq);
        const P hi = pmax(x, y), lo = pmin(x, y);
        const P w = pdiv(psub(hi, lo), pmax(hi, vtiny));
        const P del = psub(d, vdl);
        s5 = padd(s5, pmadd(padd(hi, lo), log1m_half(w), pmul(lo, pabs(del))));
      }
      if constexpr (kJS == kJsGeneral) {
        const P x = pmul(ea, vcp), y = pmul(eb, vcq);
        const P m = pmadd(vb, x, pmul(vb1, y));
        const P r = pmin(pmax(pdiv(m, pmax(pmax(x, y), vtiny)), vrlo), one);
        const P del = psub(d, vdl);
        const P t = pmadd(m, plog(r),
                          pmadd(pmul(vb, x), pmax(pnegate(del), zero), pmul(pmul(vb1, y), pmax(del, zero))));
        s5 = padd(s5, t);
      }
    }
    if constexpr (kKL != kNoKl) {
      acc[0] += static_cast<double>(predux(s1));
      acc[5] += static_cast<double>(predux(i1));
    }
    if constexpr (kKL == kKlAll) {
      acc[1] += static_cast<double>(predux(s2));
      acc[2] += static_cast<double>(predux(s3));
      acc[3] += static_cast<double>(predux(s4));
      acc[6] += static_cast<double>(predux(i2));
    }
    if constexpr (kJS == kJsHalf) acc[4] += 0.5 * static_cast<double>(predux(s5));
    if constexpr (kJS == kJsGeneral) acc[4] += static_cast<double>(predux(s5));
    }
  }
  st.partial[kSumEaD] = acc[0];
  st.partial[kSumEbD] = acc[1];
  st.partial[kSumEaA] = acc[2];
  st.partial[kSumEbB] = acc[3];
  st.partial[kSumJs] = acc[4];
  st.partial[kInfPQ] = acc[5];
  st.partial[kInfQP] = acc[6];
}

// A row's totals for finish_row from the kernel's state and the target logits.
template <typename T> RowTotals totals(const RowState<T>& st, T zpy, T zqy) {
  RowTotals t;
  t.shift_p = static_cast<double>(st.shift_p);
  t.shift_q = static_cast<double>(st.shift_q);
  t.sum_p = st.sum_p;
  t.sum_q = st.sum_q;
  t.argmax_p = st.arg_p;
  t.argmax_q = st.arg_q;
  t.zp_target = static_cast<double>(zpy);
  t.zq_target = static_cast<double>(zqy);
  std::copy(st.partial, st.partial + sharded::kNumPartials, t.partial);
  return t;
}

// Calls f(std::integral_constant<int, I>{}) for the I in [0, N) equal to v: a runtime choice of a kernel
// variant that is resolved at compile time inside it.
template <int I, int N> struct Dispatch {
  template <typename F> static void run(int v, const F& f) {
    if (v == I) {
      f(std::integral_constant<int, I>{});
    } else {
      Dispatch<I + 1, N>::run(v, f);
    }
  }
};
template <int N> struct Dispatch<N, N> {
  template <typename F> static void run(int, const F&) {}
};
template <int N, typename F> void dispatch_variant(int v, const F& f) { Dispatch<0, N>::run(v, f); }

// Which pass variants a plan needs (from Plan::needs, Note [metric table]).
struct Variant {
  int kl_mode = kNoKl;
  int js_mode = kNoJs;
  bool rank = false, target = false, arg_p = false, arg_q = false;
};

Variant choose_variant(const Plan& plan, bool float_compute) {
  Variant v;
  // The forward KL sums alone serve KL(p‖q) and JS at β = 0; any other KL-group metric needs all four.
  v.kl_mode = plan.need(kNeedKlAll) ? kKlAll : plan.need(kNeedKlForward) ? kKlForward : kNoKl;
  v.js_mode = !plan.need(kNeedJs) ? kNoJs : (float_compute && plan.beta == 0.5) ? kJsHalf : kJsGeneral;
  v.rank = plan.need(kNeedRank);
  v.target = plan.need(kNeedTargetRank);
  v.arg_p = plan.need(kNeedArgmaxP);
  v.arg_q = plan.need(kNeedArgmaxQ);
  return v;
}

template <typename In, typename T>
std::optional<BadRowInfo> run(const at::Tensor& p_in, const at::Tensor& q_in, const Plan& plan, double* values) {
  // Rows must be unit-stride along V; leading dims may be strided (views, slices, transposes).
  const at::Tensor p = p_in.stride(-1) == 1 ? p_in : p_in.contiguous();
  const at::Tensor q = q_in.stride(-1) == 1 ? q_in : q_in.contiguous();
  const std::int64_t V = plan.vocab;
  const std::int64_t nd = static_cast<std::int64_t>(plan.lead_shape.size());
  std::vector<std::int64_t> ps(p.strides().begin(), p.strides().end() - 1);
  std::vector<std::int64_t> qs(q.strides().begin(), q.strides().end() - 1);
  const bool dense = p.is_contiguous() && q.is_contiguous();
  auto offsets = [&](std::int64_t row, std::int64_t* op, std::int64_t* oq) {
    if (dense) { *op = *oq = row * V; return; }
    std::int64_t a = 0, b = 0;
    for (std::int64_t d = nd - 1; d >= 0; --d) {
      const std::int64_t i = row % plan.lead_shape[d];
      row /= plan.lead_shape[d];
      a += i * ps[d];
      b += i * qs[d];
    }
    *op = a;
    *oq = b;
  };
  const In* pb = p.data_ptr<In>();
  const In* qb = q.data_ptr<In>();
  const std::int64_t nk = static_cast<std::int64_t>(plan.kept.size());
  std::vector<signed char> reasons(static_cast<std::size_t>(nk), 0);
  const Variant var = choose_variant(plan, std::is_same_v<T, float>);
  const T inv_t = static_cast<T>(plan.inv_temperature);
  const T beta = static_cast<T>(plan.beta);
  const std::int64_t* tgt = plan.has_targets ? plan.targets.data_ptr<std::int64_t>() : nullptr;
  // Rows are claimed in chunks of at least ~64k elements per input, so tiny calls run inline and the claims'
  // atomic increments cost nothing next to the rows.
  const std::int64_t grain = std::max<std::int64_t>(1, (std::int64_t{1} << 16) / V);
  const T nan = std::numeric_limits<T>::quiet_NaN();

  // Per worker: the two exp rows (2 · V compute elements) and two tail buffers, allocated once per call.
  struct Buffers {
    std::unique_ptr<T[], AlignedFree> ep, eq;
    std::unique_ptr<In[], AlignedFree> tp, tq;
  };
  auto setup = [&] {
    const std::int64_t vb = round_up(V, kBlock);
    return Buffers{aligned_buffer<T>(vb), aligned_buffer<T>(vb), aligned_buffer<In>(kBlock), aligned_buffer<In>(kBlock)};
  };
  metaprobe::detail::parallel_claim(nk, grain, setup, [&](Buffers& buf, std::int64_t begin, std::int64_t end) {
    const ExpRows<T> exps{buf.ep.get(), buf.eq.get()};
    for (std::int64_t k = begin; k < end; ++k) {
      const std::int64_t row = plan.kept[static_cast<std::size_t>(k)];
      std::int64_t op = 0, oq = 0;
      offsets(row, &op, &oq);
      const In* zp = pb + op;
      const In* zq = qb + oq;
      const RowPair<In> pair{zp, zq, V, buf.tp.get(), buf.tq.get()};
      RowState<T> st;
      if (const RowCheck bad = pass_max<T>(pair, inv_t, var.arg_p, var.arg_q, st)) {
        reasons[static_cast<std::size_t>(k)] = static_cast<signed char>(bad.in_q ? -bad.reason : bad.reason);
        continue;
      }
      st.shift_p = st.max_p * inv_t;
      st.shift_q = st.max_q * inv_t;
      const std::int64_t y = tgt ? tgt[row] : -1;
      const T thr_rank = st.arg_p >= 0 ? to_compute(zq[st.arg_p]) : nan;
      const T zpy = y >= 0 ? to_compute(zp[y]) : nan;
      const T zqy = y >= 0 ? to_compute(zq[y]) : nan;
      const RankThresholds<T> thr{thr_rank, zpy, zqy};
      // Each pass runs as the compile-time variant of the plan (only the sums it needs); float rows that
      // qualify take the fast variants (Note [fast rows]).
      const int fast = std::is_same_v<T, float> && fast_row(st, inv_t) ? 1 : 0;
      dispatch_variant<2>(fast, [&](auto fast_c) {
        constexpr bool kFast = decltype(fast_c)::value != 0 && std::is_same_v<T, float>;
        dispatch_variant<2>(var.rank, [&](auto rank) {
          dispatch_variant<2>(var.target, [&](auto target) {
            pass_exp<kFast, decltype(rank)::value != 0, decltype(target)::value != 0>(pair, inv_t, exps, thr, st);
          });
        });
        dispatch_variant<3>(var.kl_mode, [&](auto kl) {
          dispatch_variant<3>(var.js_mode, [&](auto js) {
            pass_metrics<kFast, decltype(kl)::value, decltype(js)::value>(pair, inv_t, beta, exps, st);
          });
        });
      });
      finish_row(plan, totals(st, zpy, zqy), values + k * static_cast<std::int64_t>(kNumMetrics));
    }
  });
  for (std::int64_t k = 0; k < nk; ++k) {
    const int r = reasons[static_cast<std::size_t>(k)];
    if (r != 0) return BadRowInfo{plan.kept[static_cast<std::size_t>(k)], r < 0 ? -r : r, r < 0};
  }
  return std::nullopt;
}

}  // namespace

std::optional<BadRowInfo> fused_cpu(const at::Tensor& p, const at::Tensor& q, const Plan& plan, double* values) {
  switch (p.scalar_type()) {
    case at::kFloat: return run<float, float>(p, q, plan, values);
    case at::kDouble: return run<double, double>(p, q, plan, values);
    case at::kBFloat16: return run<c10::BFloat16, float>(p, q, plan, values);
    case at::kHalf: return run<c10::Half, float>(p, q, plan, values);
    default:
      throw Unsupported("p_logits: dtype " + std::string(c10::toString(p.scalar_type())) +
                        " is not served by the fused kernel, expected float32, float64, float16 or bfloat16");
  }
}

}  // namespace metaprobe::divergence_detail
