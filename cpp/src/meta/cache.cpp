// The top-k reference cache and the coarse-grained divergences against it (docs/meta.md, "Top-k cache").
#include <metaprobe/meta/cache.hpp>

#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include <metaprobe/error.hpp>

namespace metaprobe::meta {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// a · (la − lb) with the convention 0 · anything = 0 (a = exp(la)).
at::Tensor plogratio(const at::Tensor& a, const at::Tensor& la, const at::Tensor& lb) {
  return at::where(a > 0, a * (la - lb), at::zeros_like(a));
}

at::Tensor entropy_of(const at::Tensor& logp) {
  at::Tensor p = logp.exp();
  return -at::where(p > 0, p * logp, at::zeros_like(p)).sum(-1);
}

}  // namespace

TopKCache build_topk_cache(const at::Tensor& logits, int64_t k, double temperature) {
  if (!logits.defined() || logits.dim() != 2)
    throw InvalidArgument("build_topk_cache: logits must be a 2-D tensor [N, V]");
  if (k < 1) throw InvalidArgument("build_topk_cache: k is " + std::to_string(k) + ", expected >= 1");
  if (!(temperature > 0)) throw InvalidArgument("build_topk_cache: temperature is " + std::to_string(temperature) + ", expected > 0");
  const int64_t kk = std::min<int64_t>(k, logits.size(1));
  at::Tensor z = logits.to(at::kDouble) / temperature;
  at::Tensor lp = at::log_softmax(z, -1);
  auto [values, indices] = lp.topk(kk, -1, true, true);
  TopKCache c;
  c.indices = indices.cpu();
  c.logprobs = values.cpu();
  if (kk == logits.size(1)) {
    c.tail = at::zeros({logits.size(0)}, at::kDouble);
  } else {
    c.tail = lp.scatter(1, indices, -kInf).logsumexp(1).exp().cpu();
  }
  c.entropy = entropy_of(lp).cpu();
  c.argmax = z.argmax(-1).cpu();
  return c;
}

TopKCache slice(const TopKCache& c, int64_t begin, int64_t end) {
  return {c.indices.slice(0, begin, end), c.logprobs.slice(0, begin, end), c.tail.slice(0, begin, end),
          c.entropy.slice(0, begin, end), c.argmax.slice(0, begin, end)};
}

CachedDivergence cached_divergence(const TopKCache& ref, const at::Tensor& stage_logits, double temperature) {
  if (!stage_logits.defined() || stage_logits.dim() != 2)
    throw InvalidArgument("cached_divergence: stage_logits must be a 2-D tensor [N, V]");
  if (ref.indices.size(0) != stage_logits.size(0))
    throw InvalidArgument("cached_divergence: the cache has " + std::to_string(ref.indices.size(0)) +
                          " rows and stage_logits " + std::to_string(stage_logits.size(0)) + ", expected the same");
  if (!(temperature > 0)) throw InvalidArgument("cached_divergence: temperature is " + std::to_string(temperature) + ", expected > 0");
  const auto dev = stage_logits.device();
  const int64_t V = stage_logits.size(1);
  const int64_t k = ref.indices.size(1);
  at::Tensor zs = stage_logits.to(at::kDouble) / temperature;
  at::Tensor ls = at::log_softmax(zs, -1);
  at::Tensor idx = ref.indices.to(dev);
  at::Tensor lr_k = ref.logprobs.to(dev);
  at::Tensor r_k = lr_k.exp();
  at::Tensor r_t = ref.tail.to(dev);
  at::Tensor lr_t = r_t.log();
  at::Tensor ls_k = ls.gather(1, idx);
  at::Tensor s_k = ls_k.exp();
  at::Tensor ls_t, min_tail;
  if (k < V) {
    ls_t = ls.scatter(1, idx, -kInf).logsumexp(1);
    min_tail = ls.scatter(1, idx, kInf).amin(1);
  } else {
    ls_t = at::full({zs.size(0)}, -kInf, zs.options());
    min_tail = at::full({zs.size(0)}, kInf, zs.options());
  }
  at::Tensor s_t = ls_t.exp();

  CachedDivergence out;
  out.kl_ref_stage = (plogratio(r_k, lr_k, ls_k).sum(1) + plogratio(r_t, lr_t, ls_t)).cpu();
  out.kl_stage_ref = (plogratio(s_k, ls_k, lr_k).sum(1) + plogratio(s_t, ls_t, lr_t)).cpu();
  at::Tensor m_k = 0.5 * (r_k + s_k), m_t = 0.5 * (r_t + s_t);
  at::Tensor lm_k = m_k.log(), lm_t = m_t.log();
  out.js = (0.5 * (plogratio(r_k, lr_k, lm_k).sum(1) + plogratio(r_t, lr_t, lm_t)) +
            0.5 * (plogratio(s_k, ls_k, lm_k).sum(1) + plogratio(s_t, ls_t, lm_t)))
               .cpu();
  out.entropy_ref = ref.entropy.to(at::kDouble).cpu();
  out.entropy_stage = entropy_of(ls).cpu();
  at::Tensor a = ref.argmax.to(dev).unsqueeze(1);
  at::Tensor thr = zs.gather(1, a);
  out.rank_shift = (1.0 + (zs > thr).sum(1).to(at::kDouble)).cpu();
  out.top1_agree = (zs.argmax(-1) == a.squeeze(1)).to(at::kDouble).cpu();
  // Note [Top-k cache bounds]. With the tail conditionals r' = r/R_T, s' = s/S_T on the uncached tokens, the
  // chain rule gives exact − cached JS = (R_T + S_T)/2 · JS_λ(r', s'), the λ-skewed JS with λ = R_T/(R_T + S_T),
  // which is at most the binary entropy h(λ): the bound (R_T + S_T)/2 · h(λ) = ½[R_T ln((R_T+S_T)/R_T) +
  // S_T ln((R_T+S_T)/S_T)] (≤ the cruder ln 2 · (R_T + S_T)/2). For KL(ref‖stage) the gap is
  // R_T · KL(r'‖s') = −R_T·H(r') − R_T·Σ r' log s' ≤ R_T (log S_T − min_tail log s) − R_T·H(r'), where
  // R_T·H(r') = H(r) − H(coarse-grained r) is known from the cached exact entropy.
  at::Tensor tot = r_t + s_t, ltot = tot.log();
  out.js_bound = (-0.5 * (plogratio(r_t, lr_t, ltot) + plogratio(s_t, ls_t, ltot))).clamp_min(0).cpu();
  at::Tensor h_coarse = -(at::where(r_k > 0, r_k * lr_k, at::zeros_like(r_k)).sum(1) +
                          at::where(r_t > 0, r_t * lr_t, at::zeros_like(r_t)));
  at::Tensor tail_entropy = (ref.entropy.to(dev).to(at::kDouble) - h_coarse).clamp_min(0);  // R_T · H(r')
  at::Tensor gap = (r_t * (ls_t - min_tail) - tail_entropy).clamp_min(0);
  out.kl_ref_stage_bound = at::where(r_t > 0, gap, at::zeros_like(gap)).cpu();
  return out;
}

}  // namespace metaprobe::meta

namespace metaprobe::meta {

TopKCache concat(const std::vector<TopKCache>& parts) {
  if (parts.empty())
    return {at::empty({0, 1}, at::kLong), at::empty({0, 1}, at::kDouble), at::empty({0}, at::kDouble),
            at::empty({0}, at::kDouble), at::empty({0}, at::kLong)};
  if (parts.size() == 1) return parts[0];
  std::vector<at::Tensor> i, l, t, e, a;
  for (const auto& p : parts) i.push_back(p.indices), l.push_back(p.logprobs), t.push_back(p.tail), e.push_back(p.entropy), a.push_back(p.argmax);
  return {at::cat(i), at::cat(l), at::cat(t), at::cat(e), at::cat(a)};
}

TopKCache topk_cache_from(const at::Tensor& indices, const at::Tensor& logprobs, const at::Tensor& entropy) {
  if (!indices.defined() || !logprobs.defined() || indices.dim() != 2 || logprobs.sizes() != indices.sizes())
    throw InvalidArgument("topk_cache_from: indices and logprobs must be 2-D tensors [N, k] of one shape");
  if (indices.size(1) < 1) throw InvalidArgument("topk_cache_from: k is 0, expected at least one cached token per row");
  if (entropy.defined() && (entropy.dim() != 1 || entropy.size(0) != indices.size(0)))
    throw InvalidArgument("topk_cache_from: entropy must be [N] with N = " + std::to_string(indices.size(0)));
  TopKCache c;
  c.indices = indices.to(at::kLong).cpu().contiguous();
  c.logprobs = logprobs.to(at::kDouble).cpu().contiguous();
  const int64_t n = c.indices.size(0);
  if (n > 0) {
    if ((c.indices < 0).any().item<bool>()) throw InvalidArgument("topk_cache_from: a token index is negative");
    if (!at::isfinite(c.logprobs).all().item<bool>() || (c.logprobs > 1e-12).any().item<bool>())
      throw InvalidArgument("topk_cache_from: logprobs must be finite and <= 0");
    if (c.logprobs.size(1) > 1 &&
        (c.logprobs.slice(1, 1) > c.logprobs.slice(1, 0, -1) + 1e-12).any().item<bool>())
      throw InvalidArgument("topk_cache_from: logprobs must be in descending order along each row (top-k first)");
  }
  at::Tensor mass = c.logprobs.exp().sum(1);
  if (n > 0 && (mass > 1 + 1e-6).any().item<bool>())
    throw InvalidArgument("topk_cache_from: a row's cached probabilities sum to " +
                          std::to_string(mass.max().item<double>()) + ", expected at most 1");
  c.tail = (1 - mass).clamp_min(0);
  c.entropy = entropy.defined() ? entropy.to(at::kDouble).cpu().contiguous()
                                : at::full({n}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
  c.argmax = n > 0 ? c.indices.select(1, 0).contiguous() : at::empty({0}, at::kLong);
  return c;
}

}  // namespace metaprobe::meta
