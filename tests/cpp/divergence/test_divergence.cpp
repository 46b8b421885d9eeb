// The divergence engine as a specification: float64 references, −inf rules, determinism, errors, sharding.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <catch2/catch.hpp>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/divergence/sharded.hpp>
#include <metaprobe/error.hpp>

using namespace metaprobe;
using Catch::Matchers::Contains;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

struct Ref {
  at::Tensor kl_pq, kl_qp, js, hp, hq, ce;
};

Ref reference(const at::Tensor& p, const at::Tensor& q) {
  const at::Tensor lp = at::log_softmax(p.to(at::kDouble), -1), lq = at::log_softmax(q.to(at::kDouble), -1);
  const at::Tensor P = lp.exp(), Q = lq.exp(), M = 0.5 * (P + Q), lm = M.log();
  return {(P * (lp - lq)).sum(-1), (Q * (lq - lp)).sum(-1),
          0.5 * (P * (lp - lm)).sum(-1) + 0.5 * (Q * (lq - lm)).sum(-1), -(P * lp).sum(-1), -(Q * lq).sum(-1),
          -(P * lq).sum(-1)};
}

bool close(const at::Tensor& a, const at::Tensor& b, double tol) {
  return at::allclose(a, b.to(at::kDouble), tol, tol);
}

std::pair<at::Tensor, at::Tensor> pair(std::vector<int64_t> shape, at::ScalarType dt = at::kFloat) {
  at::manual_seed(42);
  at::Tensor p = at::randn(shape, at::kDouble) * 3;
  at::Tensor q = p + at::randn(shape, at::kDouble);
  return {p.to(dt), q.to(dt)};
}

}  // namespace

TEST_CASE("divergence matches a float64 reference", "[divergence]") {
  for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf}) {
    auto [p, q] = pair({4, 6, 1500}, dt);
    const Ref ref = reference(p, q);
    for (Backend b : {Backend::fused, Backend::composite}) {
      DivergenceOptions o;
      o.backend = b;
      const DivergenceResult r = divergence(p, q, o);
      const double tol = dt == at::kDouble ? 1e-10 : 1e-5;
      CHECK(r.count == 24);
      CHECK(r.kl_pq.scalar_type() == at::kDouble);
      CHECK(r.kl_pq.sizes() == at::IntArrayRef({4, 6}));
      CHECK(close(r.kl_pq, ref.kl_pq, tol));
      CHECK(close(r.kl_qp, ref.kl_qp, tol));
      CHECK(close(r.js, ref.js, tol));
      CHECK(close(r.entropy_p, ref.hp, tol));
      CHECK(close(r.entropy_q, ref.hq, tol));
      CHECK(close(r.cross_entropy_pq, ref.ce, tol));
      CHECK_FALSE(r.logp_target.defined());  // target metrics need targets
    }
  }
}

TEST_CASE("the -inf rules", "[divergence]") {
  SECTION("identical rows give zero divergence") {
    auto [p, q] = pair({3, 32000});
    const DivergenceResult r = divergence(p, p.clone());
    CHECK(r.kl_pq.abs().max().item<double>() <= 1e-6);
    CHECK(r.js.abs().max().item<double>() <= 1e-6);
    CHECK(at::equal(r.rank_shift, at::ones({3}, at::kDouble)));
  }
  SECTION("disjoint supports give infinite KL and JS = ln 2") {
    at::Tensor p = at::full({2, 10}, -kInf), q = at::full({2, 10}, -kInf);
    p.slice(1, 0, 5).normal_();
    q.slice(1, 5, 10).normal_();
    const DivergenceResult r = divergence(p, q);
    CHECK(r.kl_pq[0].item<double>() == kInf);
    CHECK(r.kl_qp[1].item<double>() == kInf);
    CHECK(r.js[0].item<double>() == Approx(std::log(2.0)).epsilon(1e-6));
  }
  SECTION("zero-probability entries contribute nothing (0 log 0 = 0)") {
    auto [p, q] = pair({2, 100});
    p.slice(1, 0, 30).fill_(-kInf);
    q.slice(1, 0, 30).fill_(-kInf);
    const Ref ref = reference(p.slice(1, 30), q.slice(1, 30));
    const DivergenceResult r = divergence(p, q);
    CHECK(close(r.kl_pq, ref.kl_pq, 1e-5));
    CHECK(close(r.js, ref.js, 1e-5));
  }
}

TEST_CASE("targets, masks and reductions", "[divergence]") {
  auto [p, q] = pair({2, 4, 50});
  DivergenceOptions o;
  o.targets = at::randint(0, 50, {2, 4}, at::kLong);
  o.targets.index_put_({0, 1}, -100);
  o.mask = at::ones({2, 4}, at::kBool);
  o.mask.index_put_({1, 3}, false);
  const DivergenceResult none = divergence(p, q, o);
  CHECK(none.count == 6);
  CHECK(std::isnan(none.kl_pq[0][1].item<double>()));
  CHECK(std::isnan(none.logp_target[1][3].item<double>()));
  const at::Tensor lp = at::log_softmax(p.to(at::kDouble), -1);
  CHECK(none.logp_target[0][0].item<double>() ==
        Approx(lp[0][0][o.targets[0][0].item<int64_t>()].item<double>()).epsilon(1e-5));
  o.reduction = Reduction::row;
  const DivergenceResult row = divergence(p, q, o);
  CHECK(row.js.sizes() == at::IntArrayRef({2}));
  CHECK(row.js[1].item<double>() == Approx(none.js[1].slice(0, 0, 3).mean().item<double>()).epsilon(1e-12));
  o.reduction = Reduction::mean;
  o.base = LogBase::two;
  const DivergenceResult mean = divergence(p, q, o);
  CHECK(mean.kl_pq.dim() == 0);
  CHECK(mean.kl_pq.item<double>() ==
        Approx(at::nansum(none.kl_pq).item<double>() / 6 / std::log(2.0)).epsilon(1e-12));
}

TEST_CASE("results do not depend on the thread count or on other rows", "[divergence]") {
  const int old = at::get_num_threads();
  // 100 rows (5 claims of 21 rows) split unevenly over 2 and 3 workers that claim them dynamically; V = 3001
  // takes the padded tail block, V = 3000 reads every block in place; each input type has its own load path.
  for (at::ScalarType dt : {at::kBFloat16, at::kHalf, at::kFloat, at::kDouble}) {
    for (int64_t v : {3000, 3001}) {
      DYNAMIC_SECTION("dtype " << c10::toString(dt) << ", V = " << v) {
        auto [p, q] = pair({100, v}, dt);
        DivergenceOptions o;
        o.targets = at::randint(0, v, {100}, at::kLong);
        at::set_num_threads(1);
        const DivergenceResult one = divergence(p, q, o);
        for (int threads : {2, 3}) {
          at::set_num_threads(threads);
          for (int rep = 0; rep < 3; ++rep) {  // the dynamic schedule differs between calls
            const DivergenceResult many = divergence(p, q, o);
            for (Metric m : kAllMetrics) {
              if (one[m].defined()) CHECK(at::equal(one[m], many[m]));
            }
          }
        }
        at::set_num_threads(old);
        DivergenceOptions o1;
        o1.targets = o.targets.slice(0, 5, 6);
        const DivergenceResult alone = divergence(p.slice(0, 5, 6), q.slice(0, 5, 6), o1);
        for (Metric m : kAllMetrics) {
          if (alone[m].defined()) CHECK(at::equal(alone[m][0], one[m][5]));
        }
      }
    }
  }
  at::set_num_threads(old);
}

TEST_CASE("bad inputs throw InvalidArgument naming the value", "[divergence][errors]") {
  const at::Tensor p = at::randn({2, 3, 8});
  SECTION("shape mismatch") {
    REQUIRE_THROWS_AS(divergence(p, at::randn({2, 3, 9})), InvalidArgument);
    REQUIRE_THROWS_WITH(divergence(p, at::randn({2, 3, 9})), Contains("p_logits shape [2, 3, 8] and q_logits shape [2, 3, 9] differ"));
  }
  SECTION("empty vocabulary") {
    REQUIRE_THROWS_WITH(divergence(at::randn({2, 0}), at::randn({2, 0})), Contains("vocabulary size V = 0"));
  }
  SECTION("NaN names the first bad row") {
    at::Tensor bad = p.clone();
    bad.index_put_({1, 2, 4}, std::nan(""));
    bad.index_put_({1, 0, 0}, std::nan(""));
    REQUIRE_THROWS_AS(divergence(bad, p), InvalidArgument);
    REQUIRE_THROWS_WITH(divergence(bad, p), Contains("p_logits: row 3 (position [1, 0]) holds a NaN logit"));
    DivergenceOptions o;
    o.backend = Backend::composite;
    REQUIRE_THROWS_WITH(divergence(p, bad, o), Contains("q_logits: row 3 (position [1, 0]) holds a NaN logit"));
  }
  SECTION("mask and targets of the wrong shape or dtype, targets out of range") {
    DivergenceOptions o;
    o.mask = at::ones({3, 2}, at::kBool);
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("mask: shape [3, 2], expected the leading dims [2, 3]"));
    o.mask = at::ones({2, 3}, at::kFloat);
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("mask: dtype Float"));
    o.mask = at::Tensor();
    o.targets = at::zeros({2, 3}, at::kFloat);
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("targets: dtype Float, expected an integer dtype"));
    o.targets = at::full({2, 3}, 8, at::kLong);
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("targets: value 8 at row 0 (position [0, 0]) is out of range"));
  }
  SECTION("options") {
    DivergenceOptions o;
    o.temperature = 0;
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("temperature: 0.000000, expected a finite value > 0"));
    o.temperature = 1;
    o.beta = -0.1;
    REQUIRE_THROWS_WITH(divergence(p, p, o), Contains("beta: -0.100000, expected a value in [0, 1]"));
    REQUIRE_THROWS_AS(MetricSet::parse({"kl_pq", "kl"}), InvalidArgument);
    REQUIRE_THROWS_WITH(parse_metric("kl"), Contains("unknown metric name 'kl', expected one of kl_pq, kl_qp"));
    REQUIRE_THROWS_WITH(parse_reduction("sum"), Contains("reduction: unknown value 'sum'"));
  }
}

TEST_CASE("logits at the edge of the range raise instead of giving silent zeros", "[divergence][errors]") {
  for (Backend backend : {Backend::fused, Backend::composite}) {
    DivergenceOptions o;
    o.backend = backend;
    SECTION("max(z)/T overflows float32") {
      at::Tensor p = at::zeros({2, 64});
      p.index_put_({1, 3}, 1e37);
      o.temperature = 0.01;
      REQUIRE_THROWS_AS(divergence(p, at::zeros({2, 64}), o), InvalidArgument);
      REQUIRE_THROWS_WITH(divergence(p, at::zeros({2, 64}), o),
                          Contains("p_logits: row 1 (position [1]) has max(logit) / temperature that is not finite"));
      o.temperature = 1;
      CHECK(divergence(p, at::zeros({2, 64}), o).kl_pq[1].item<double>() == Approx(std::log(64.0)).epsilon(1e-6));
    }
    SECTION("float64: [[1e300, 0]] at T = 1e-10") {
      const at::Tensor p = at::tensor({1e300, 0.0}, at::kDouble).reshape({1, 2});
      o.temperature = 1e-10;
      REQUIRE_THROWS_WITH(divergence(at::zeros({1, 2}, at::kDouble), p, o),
                          Contains("q_logits: row 0 (position [0]) has max(logit) / temperature that is not finite"));
    }
    SECTION("a finite row at or below the floor holds no finite logit") {
      at::Tensor p = at::randn({3, 10});
      p[2] = -2e30;
      REQUIRE_THROWS_WITH(divergence(p, at::randn({3, 10}), o),
                          Contains("p_logits: row 2 (position [2]) holds no finite logit"));
    }
    SECTION("1/T overflows the compute precision") {
      const at::Tensor p = at::tensor({2.0f, 1.0f, 0.0f}).reshape({1, 3});
      o.temperature = 1e-39;
      REQUIRE_THROWS_AS(divergence(p, p.flip(-1), o), InvalidArgument);
      REQUIRE_THROWS_WITH(divergence(p.to(at::kBFloat16), p.flip(-1).to(at::kBFloat16), o),
                          Contains("temperature: 1e-39, 1/temperature is inf in float32 (the compute precision of "
                                   "BFloat16 logits), expected 2.94e-39 <= temperature <= 8.51e+37"));
      const DivergenceResult r = divergence(p.to(at::kDouble), p.flip(-1).to(at::kDouble), o);
      CHECK(r.js.item<double>() == Approx(std::log(2.0)).epsilon(1e-12));
    }
  }
}

TEST_CASE("vocabulary shards combine into the full result", "[divergence][sharded]") {
  auto [p, q] = pair({3, 5, 101});
  DivergenceOptions o;
  o.targets = at::randint(0, 101, {3, 5}, at::kLong);
  const DivergenceResult full = divergence(p, q, o);
  const int64_t cut = 40;
  const at::Tensor ps[2] = {p.slice(-1, 0, cut), p.slice(-1, cut)};
  const at::Tensor qs[2] = {q.slice(-1, 0, cut), q.slice(-1, cut)};
  const int64_t start[2] = {0, cut};
  sharded::LocalMaxima lm[2];
  for (int r = 0; r < 2; ++r) lm[r] = sharded::local_maxima(ps[r], qs[r], start[r], o);
  sharded::Globals g;
  g.max = at::maximum(lm[0].max, lm[1].max);
  g.bad = at::maximum(lm[0].bad, lm[1].bad);
  auto r0 = sharded::rescale(lm[0], g.max), r1 = sharded::rescale(lm[1], g.max);
  g.sumexp = r0.first + r1.first;
  g.argmax = at::minimum(r0.second, r1.second);
  const at::Tensor idx = sharded::value_indices(g.argmax, o, 15);
  g.values = sharded::local_values(ps[0], qs[0], 0, idx) + sharded::local_values(ps[1], qs[1], cut, idx);
  const at::Tensor parts = sharded::local_partials(ps[0], qs[0], 0, g, o) + sharded::local_partials(ps[1], qs[1], cut, g, o);
  const DivergenceResult comb = sharded::combine(g, parts, {3, 5}, 101, o);
  CHECK(comb.count == full.count);
  for (Metric m : kAllMetrics) {
    INFO(to_string(m));
    CHECK(close(comb[m], full[m], 1e-5));
  }
}
