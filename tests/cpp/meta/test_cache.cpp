// The tighter top-k cache bounds: valid per position, and much closer to the true gap than the crude forms.
#include <cmath>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/meta/cache.hpp>

// Last: glog (through ATen) defines its own CHECK, which Catch must override.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::meta;

TEST_CASE("top-k cache bounds: the λ-skewed JS bound and the entropy-corrected KL bound", "[meta][cache]") {
  at::manual_seed(7);
  // A Zipf-like reference over V = 2000 tokens and a perturbed stage, as in the example (k = 32).
  const int64_t V = 2000, N = 48, k = 32;
  at::Tensor ranks = at::arange(1, V + 1, at::kDouble);
  at::Tensor p = (-1.1 * ranks.log()).unsqueeze(0).repeat({N, 1}) + 0.3 * at::randn({N, V}, at::kDouble);
  at::Tensor q = p + 0.5 * at::randn({N, V}, at::kDouble);
  const TopKCache c = build_topk_cache(p, k);
  const CachedDivergence cd = cached_divergence(c, q);
  const DivergenceResult ex = divergence(p, q);
  const at::Tensor js_gap = ex.js - cd.js, kl_gap = ex.kl_pq - cd.kl_ref_stage;

  SECTION("both bounds hold at every position") {
    CHECK((js_gap >= -1e-12).all().item<bool>());
    CHECK((js_gap <= cd.js_bound + 1e-12).all().item<bool>());
    CHECK((kl_gap >= -1e-12).all().item<bool>());
    CHECK((kl_gap <= cd.kl_ref_stage_bound + 1e-12).all().item<bool>());
  }

  SECTION("the bounds are the documented closed forms") {
    const at::Tensor r = c.tail, s = (at::log_softmax(q, -1).scatter(1, c.indices, -INFINITY)).logsumexp(1).exp();
    const at::Tensor lam = r / (r + s);
    const at::Tensor h = -(lam * lam.log() + (1 - lam) * (1 - lam).log());
    CHECK(at::allclose(cd.js_bound, 0.5 * (r + s) * h, 1e-10, 1e-14));
    // Tighter than the crude ln 2 · (R_T + S_T)/2 and the crude KL form without the tail entropy.
    CHECK((cd.js_bound <= std::log(2.0) * 0.5 * (r + s) + 1e-15).all().item<bool>());
  }

  SECTION("tighter than the crude forms, much so for KL") {
    // The crude forms: ln 2 · (R_T + S_T)/2 and R_T (log S_T − min_tail log s).
    const at::Tensor ls = at::log_softmax(q, -1);
    const at::Tensor r = c.tail, s = ls.scatter(1, c.indices, -INFINITY).logsumexp(1).exp();
    const at::Tensor crude_js = std::log(2.0) * 0.5 * (r + s);
    const at::Tensor crude_kl = r * (s.log() - ls.scatter(1, c.indices, INFINITY).amin(1));
    CHECK((cd.js_bound <= crude_js + 1e-15).all().item<bool>());
    CHECK((cd.kl_ref_stage_bound <= crude_kl + 1e-15).all().item<bool>());
    const double gj = js_gap.mean().item<double>(), gk = kl_gap.mean().item<double>();
    WARN("V=2000 k=32: JS gap " << gj << " bound " << cd.js_bound.mean().item<double>() << " (crude "
                                << crude_js.mean().item<double>() << "); KL gap " << gk << " bound "
                                << cd.kl_ref_stage_bound.mean().item<double>() << " (crude "
                                << crude_kl.mean().item<double>() << ")");
    CHECK(cd.kl_ref_stage_bound.mean().item<double>() < 0.5 * crude_kl.mean().item<double>());
  }
}
