// Per-tensor and pairwise statistics against two-pass float64 references computed with ATen.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <metaprobe/error.hpp>
#include <metaprobe/params/tensor_stats.hpp>

// glog (pulled in by ATen) defines CHECK as an aborting assertion; Catch2's must win.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::params;
using Catch::Matchers::Contains;

namespace {

struct Ref {
  double mean, std, min, max, mean_abs, l2, skew, kurt, zero;
};

Ref reference(const at::Tensor& t) {
  at::Tensor x = t.to(at::kDouble).flatten();
  x = x.index({at::isfinite(x)});
  const double n = static_cast<double>(x.numel());
  Ref r;
  r.mean = x.mean().item<double>();
  at::Tensor d = x - r.mean;
  const double m2 = (d * d).sum().item<double>() / n;
  const double m3 = (d * d * d).sum().item<double>() / n;
  const double m4 = (d * d * d * d).sum().item<double>() / n;
  r.std = std::sqrt(m2);
  r.min = x.min().item<double>();
  r.max = x.max().item<double>();
  r.mean_abs = x.abs().mean().item<double>();
  r.l2 = std::sqrt((x * x).sum().item<double>());
  r.skew = m3 / std::pow(m2, 1.5);
  r.kurt = m4 / (m2 * m2) - 3;
  r.zero = (x == 0).sum().item<double>() / n;
  return r;
}

void check_against_reference(const at::Tensor& t, double rel) {
  const TensorStats s = tensor_stats(t);
  const Ref r = reference(t);
  CHECK(s.mean == Approx(r.mean).epsilon(rel).margin(1e-12));
  CHECK(s.std == Approx(r.std).epsilon(rel));
  CHECK(s.min == r.min);
  CHECK(s.max == r.max);
  CHECK(s.mean_abs == Approx(r.mean_abs).epsilon(rel));
  CHECK(s.l2_norm == Approx(r.l2).epsilon(rel));
  CHECK(s.linf_norm == std::max(std::fabs(r.min), std::fabs(r.max)));
  CHECK(s.skewness == Approx(r.skew).epsilon(rel).margin(1e-9));
  CHECK(s.excess_kurtosis == Approx(r.kurt).epsilon(rel).margin(1e-9));
  CHECK(s.zero_fraction == Approx(r.zero));
}

}  // namespace

TEST_CASE("tensor_stats matches float64 two-pass moments", "[params][tensor_stats]") {
  at::manual_seed(1);
  SECTION("random float32 with an odd length that leaves a partial block") {
    at::Tensor t = at::randn({1000003}) * 0.02 + 0.001;
    check_against_reference(t, 1e-10);
    CHECK(tensor_stats(t).numel == 1000003);
  }
  SECTION("skewed heavy-tailed data") {
    at::Tensor t = at::exp(at::randn({300001}, at::kDouble));
    check_against_reference(t, 1e-10);
  }
  SECTION("bf16 is read directly and equals the float64 statistics of its values") {
    at::Tensor t = (at::randn({777777}) * 3).to(at::kBFloat16);
    check_against_reference(t, 1e-10);
  }
  SECTION("float16 and integer dtypes") {
    check_against_reference((at::randn({5000}) * 10).to(at::kHalf), 1e-10);
    check_against_reference(at::randint(-100, 100, {12345}, at::kInt), 1e-10);
    check_against_reference(at::randint(0, 255, {4097}, at::kByte), 1e-10);
    check_against_reference(at::randint(-(1LL << 40), 1LL << 40, {4099}, at::kLong), 1e-10);
  }
  SECTION("a large offset does not destroy the higher moments (no raw power sums)") {
    at::Tensor t = at::randn({200000}, at::kDouble) + 1e6;
    check_against_reference(t, 1e-7);
  }
  SECTION("non-contiguous input gives the statistics of its logical elements") {
    at::Tensor base = at::randn({300, 400});
    check_against_reference(base.t(), 1e-10);
  }
}

TEST_CASE("tensor_stats scales float64 magnitudes before squaring", "[params][tensor_stats]") {
  const TensorStats s = tensor_stats(at::full({2}, 1e308, at::kDouble));
  CHECK(s.mean == 1e308);
  CHECK(s.std == 0.0);
  CHECK(s.mean_abs == 1e308);
  CHECK(s.l2_norm == Approx(std::sqrt(2.0) * 1e308).epsilon(1e-15));
  CHECK(std::isinf(s.sum_squares));
  // Against the reference of the tensor scaled into range, for huge and tiny magnitudes and a block mix.
  at::manual_seed(3);
  const at::Tensor base = at::randn({9000}, at::kDouble) + 0.3;
  for (double scale : {1e305, 1e-250}) {
    const TensorStats h = tensor_stats(base * scale);
    const TensorStats r = tensor_stats(base);
    CHECK(h.mean == Approx(r.mean * scale).epsilon(1e-12));
    CHECK(h.std == Approx(r.std * scale).epsilon(1e-12));
    CHECK(h.l2_norm == Approx(r.l2_norm * scale).epsilon(1e-12));
    CHECK(h.skewness == Approx(r.skewness).epsilon(1e-9));
    CHECK(h.excess_kurtosis == Approx(r.excess_kurtosis).epsilon(1e-9));
  }
  at::Tensor mix = base.clone();
  mix.slice(0, 4096, 6144).mul_(1e300);  // one block of huge values among ordinary ones
  const TensorStats m = tensor_stats(mix);
  const at::Tensor ref = mix / 1e300;
  CHECK(m.mean == Approx(ref.mean().item<double>() * 1e300).epsilon(1e-12));
  CHECK(m.std == Approx(ref.std(/*unbiased=*/false).item<double>() * 1e300).epsilon(1e-12));
}

TEST_CASE("tensor_stats edge cases", "[params][tensor_stats]") {
  SECTION("a constant tensor has zero std and undefined skewness and kurtosis (like scipy)") {
    const TensorStats s = tensor_stats(at::full({10000}, 0.5));
    CHECK(s.mean == 0.5);
    CHECK(s.std == 0.0);
    CHECK(std::isnan(s.skewness));
    CHECK(std::isnan(s.excess_kurtosis));
  }
  SECTION("an all-zero tensor") {
    const TensorStats s = tensor_stats(at::zeros({3, 5000}, at::kBFloat16));
    CHECK(s.zero_fraction == 1.0);
    CHECK(s.l2_norm == 0.0);
    CHECK(std::isnan(s.skewness));
  }
  SECTION("NaN and Inf are counted and left out of every statistic") {
    at::Tensor t = at::randn({20000}, at::kDouble);
    at::Tensor clean = t.clone();
    t[5] = std::numeric_limits<double>::quiet_NaN();
    t[9000] = std::numeric_limits<double>::infinity();
    t[19999] = -std::numeric_limits<double>::infinity();
    const TensorStats s = tensor_stats(t);
    CHECK(s.nan_count == 1);
    CHECK(s.inf_count == 2);
    CHECK(s.finite_count == 19997);
    CHECK(std::isfinite(s.mean));
    check_against_reference(t, 1e-10);
  }
  SECTION("an all-NaN tensor has NaN statistics and zero norms") {
    const TensorStats s = tensor_stats(at::full({100}, std::numeric_limits<float>::quiet_NaN()));
    CHECK(s.nan_count == 100);
    CHECK(s.finite_count == 0);
    CHECK(std::isnan(s.mean));
    CHECK(s.l2_norm == 0);
  }
  SECTION("scalars and empty tensors") {
    const TensorStats s = tensor_stats(at::scalar_tensor(3.0));
    CHECK(s.numel == 1);
    CHECK(s.mean == 3.0);
    const TensorStats e = tensor_stats(at::zeros({0, 4}));
    CHECK(e.numel == 0);
    CHECK(std::isnan(e.mean));
  }
  SECTION("bool tensors count as 0/1") {
    const TensorStats s = tensor_stats(at::tensor({1, 0, 1, 1}).to(at::kBool));
    CHECK(s.mean == 0.75);
  }
  SECTION("complex and undefined tensors are rejected with the argument named") {
    REQUIRE_THROWS_AS(tensor_stats(at::zeros({3}, at::kComplexFloat)), InvalidArgument);
    REQUIRE_THROWS_WITH(tensor_stats(at::zeros({3}, at::kComplexFloat)), Contains("tensor: complex dtype"));
    REQUIRE_THROWS_WITH(tensor_stats(at::Tensor()), Contains("tensor: undefined tensor"));
  }
}

TEST_CASE("tensor_stats does not depend on the thread count", "[params][tensor_stats]") {
  at::Tensor t = at::randn({3000000}) * 0.1 + 0.3;
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const TensorStats a = tensor_stats(t);
  at::set_num_threads(2);
  const TensorStats b = tensor_stats(t);
  at::set_num_threads(before);
  CHECK(a.mean == b.mean);
  CHECK(a.std == b.std);
  CHECK(a.skewness == b.skewness);
  CHECK(a.excess_kurtosis == b.excess_kurtosis);
  const UpdateStats ua = [&] {
    at::set_num_threads(1);
    return update_stats(t, t * 1.001);
  }();
  at::set_num_threads(2);
  const UpdateStats ub = update_stats(t, t * 1.001);
  at::set_num_threads(before);
  CHECK(ua.delta_fro == ub.delta_fro);
  CHECK(ua.cosine == ub.cosine);
}

TEST_CASE("update_stats matches float64 references", "[params][update_stats]") {
  at::manual_seed(2);
  at::Tensor w0 = at::randn({513, 257}, at::kDouble) * 0.02;
  at::Tensor mask = at::rand({513, 257}, at::kDouble) < 0.3;
  at::Tensor w1 = w0 + mask.to(at::kDouble) * at::randn({513, 257}, at::kDouble) * 1e-3;
  SECTION("norms, cosine and both sparsity rules") {
    const UpdateStats u = update_stats(w0, w1);
    at::Tensor d = w1 - w0;
    CHECK(u.delta_fro == Approx(d.norm().item<double>()).epsilon(1e-12));
    CHECK(u.rel_update_norm == Approx((d.norm() / w0.norm()).item<double>()).epsilon(1e-12));
    CHECK(u.cosine == Approx(((w0 * w1).sum() / (w0.norm() * w1.norm())).item<double>()).epsilon(1e-12));
    CHECK(u.max_abs_delta == d.abs().max().item<double>());
    CHECK(u.sparsity_abs == Approx((d.abs() <= 1e-5).to(at::kDouble).mean().item<double>()));
    at::Tensor big = at::maximum(w0.abs(), w1.abs());
    CHECK(u.sparsity_rel == Approx((d.abs() <= 1e-3 * big).to(at::kDouble).mean().item<double>()));
    CHECK(u.unchanged_fraction == Approx((d == 0).to(at::kDouble).mean().item<double>()));
    CHECK(u.sign_flip_fraction == Approx(((w0 * w1) < 0).to(at::kDouble).mean().item<double>()));
    CHECK(u.unchanged_fraction > 0.6);
  }
  SECTION("tolerances are options") {
    UpdateOptions o;
    o.atol = 1.0;
    o.eta = 0.0;
    const UpdateStats u = update_stats(w0, w1, o);
    CHECK(u.sparsity_abs == 1.0);
    CHECK(u.sparsity_rel == Approx(u.unchanged_fraction));
  }
  SECTION("sign flips count opposite signs only") {
    at::Tensor a = at::tensor({1.0, -1.0, 0.0, 2.0});
    at::Tensor b = at::tensor({-1.0, -2.0, 1.0, 2.0});
    const UpdateStats u = update_stats(a, b);
    CHECK(u.sign_flip_fraction == 0.25);
    CHECK(u.unchanged_fraction == 0.25);
  }
  SECTION("bf16 against f32 (dtypes may differ)") {
    at::Tensor a = w0.to(at::kBFloat16);
    at::Tensor b = w1.to(at::kFloat);
    const UpdateStats u = update_stats(a, b);
    CHECK(u.delta_fro == Approx((b.to(at::kDouble) - a.to(at::kDouble)).norm().item<double>()).epsilon(1e-12));
  }
  SECTION("non-finite pairs are counted and excluded") {
    at::Tensor a = at::tensor({1.0, 2.0, std::numeric_limits<double>::quiet_NaN(), 4.0});
    at::Tensor b = at::tensor({1.0, 3.0, 3.0, std::numeric_limits<double>::infinity()});
    const UpdateStats u = update_stats(a, b);
    CHECK(u.nonfinite_count == 2);
    CHECK(u.finite_count == 2);
    CHECK(u.delta_fro == 1.0);
    CHECK(u.max_abs_delta == 1.0);
  }
  SECTION("zero reference: relative norm is 0 when unchanged and NaN otherwise") {
    CHECK(update_stats(at::zeros({4}), at::zeros({4})).rel_update_norm == 0.0);
    CHECK(std::isnan(update_stats(at::zeros({4}), at::ones({4})).rel_update_norm));
    CHECK(std::isnan(update_stats(at::zeros({4}), at::ones({4})).cosine));
  }
  SECTION("bad shapes and tolerances are rejected with the value named") {
    REQUIRE_THROWS_AS(update_stats(at::zeros({2, 3}), at::zeros({3, 2})), InvalidArgument);
    REQUIRE_THROWS_WITH(update_stats(at::zeros({2, 3}), at::zeros({3, 2})),
                        Contains("w1: shape [3, 2] differs from w0's shape [2, 3]"));
    UpdateOptions o;
    o.atol = -1;
    REQUIRE_THROWS_WITH(update_stats(at::zeros({2}), at::zeros({2}), o), Contains("atol: -1"));
    o.atol = 0;
    o.eta = std::nan("");
    REQUIRE_THROWS_WITH(update_stats(at::zeros({2}), at::zeros({2}), o), Contains("eta: nan"));
  }
}

TEST_CASE("bfloat16 blocks widened in registers equal the float32 path bit for bit", "[params][tensor_stats]") {
  // 2048-element blocks plus a tail of 5 (not a whole 8-element step); zeros, negatives, a wide range, and
  // one block with a NaN and an inf that takes the buffered rare path.
  at::manual_seed(21);
  at::Tensor t = (at::randn({3 * 2048 + 5}) * at::exp(at::randn({3 * 2048 + 5}) * 4)).to(at::kBFloat16);
  t.narrow(0, 100, 50).zero_();
  for (bool rare : {false, true}) {
    DYNAMIC_SECTION((rare ? "with" : "without") << " non-finite values") {
      if (rare) {
        t[2048 + 7] = std::numeric_limits<float>::quiet_NaN();
        t[2048 + 9] = std::numeric_limits<float>::infinity();
      }
      const TensorStats a = tensor_stats(t), b = tensor_stats(t.to(at::kFloat));
      CHECK(a.finite_count == b.finite_count);
      CHECK(a.nan_count == b.nan_count);
      CHECK(a.inf_count == b.inf_count);
      for (auto [x, y] : {std::pair{a.mean, b.mean}, {a.std, b.std}, {a.min, b.min}, {a.max, b.max},
                          {a.mean_abs, b.mean_abs}, {a.l2_norm, b.l2_norm}, {a.zero_fraction, b.zero_fraction},
                          {a.skewness, b.skewness}, {a.excess_kurtosis, b.excess_kurtosis},
                          {a.sum_squares, b.sum_squares}}) {
        CHECK(std::memcmp(&x, &y, sizeof x) == 0);
      }
      const at::Tensor f = t.to(at::kDouble);
      const at::Tensor fin = f.masked_select(at::isfinite(f));
      CHECK(a.mean == Approx(fin.mean().item<double>()).epsilon(1e-12));
      CHECK(a.std == Approx(fin.std(0, /*unbiased=*/false).item<double>()).epsilon(1e-12));
    }
  }
}

TEST_CASE("float blocks: one sweep of power sums about a shift keeps float64 precision", "[params][tensor_stats]") {
  at::manual_seed(22);
  SECTION("bf16 values far from zero (layer-norm scales near 1) keep the higher moments") {
    check_against_reference((1.0 + 0.01 * at::randn({100003})).to(at::kBFloat16), 1e-10);
  }
  SECTION("float32 values with an offset of 1e4 times their spread") {
    check_against_reference(at::randn({50000}) * 1e-2 + 100.0, 1e-9);
  }
  SECTION("a block whose first values, the shift's sample, are outliers") {
    at::Tensor t = at::randn({3 * 2048});
    t.narrow(0, 0, 8).fill_(1e4);
    t.narrow(0, 2048, 8).fill_(-3e3);
    check_against_reference(t, 1e-10);
  }
  SECTION("float16 blocks equal the same values as float32 bit for bit") {
    at::Tensor h = (at::randn({2 * 2048 + 11}) * 30).to(at::kHalf);
    h.narrow(0, 40, 9).zero_();
    const TensorStats a = tensor_stats(h), b = tensor_stats(h.to(at::kFloat));
    for (auto [x, y] : {std::pair{a.mean, b.mean}, {a.std, b.std}, {a.min, b.min}, {a.max, b.max},
                        {a.mean_abs, b.mean_abs}, {a.zero_fraction, b.zero_fraction}, {a.skewness, b.skewness},
                        {a.excess_kurtosis, b.excess_kurtosis}}) {
      CHECK(std::memcmp(&x, &y, sizeof x) == 0);
    }
  }
}
