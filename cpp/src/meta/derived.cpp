// Derived metrics: profile drift, collapse, transferability index (Huan et al.), RL's Razor (Shenfeld et al.).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "internal.hpp"

namespace metaprobe::meta::detail {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool contains(const std::vector<probes::Cell>& cells, const probes::Cell& c) {
  return std::find(cells.begin(), cells.end(), c) != cells.end();
}

std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    for (size_t t = i; t <= j; ++t) r[order[t]] = 0.5 * static_cast<double>(i + j) + 1.0;
    i = j + 1;
  }
  return r;
}

// Token-weighted mean of the razor metric over the cells selected by `want_target`.
double divergence_over(const StageDivergence& d, const std::vector<probes::Cell>& target, bool want_target,
                       RazorMetric metric) {
  double sum = 0, weight = 0;
  for (const auto& c : d.cells) {
    if (contains(target, c.cell) != want_target) continue;
    if (metric == RazorMetric::sampled_kl) {
      if (c.sampled_items == 0 || !std::isfinite(c.sampled_kl)) continue;
      sum += c.sampled_kl * static_cast<double>(c.sampled_items);
      weight += static_cast<double>(c.sampled_items);
      continue;
    }
    const double v = metric == RazorMetric::kl_ref_stage   ? c.kl_ref_stage
                     : metric == RazorMetric::kl_stage_ref ? c.kl_stage_ref
                                                           : c.js;
    sum += v * static_cast<double>(c.positions);
    weight += static_cast<double>(c.positions);
  }
  return weight > 0 ? sum / weight : kNaN;
}

// Paired percentile bootstrap of the drift figures: per cell, the items present in both stages with their
// scores (correct_samples / samples); each replicate resamples every cell's items with replacement (the same
// indices for both stages) and recomputes each cell's delta, L1, L2 and the pooled target / off-target changes.
void add_intervals(const Behaviour& reference, const Behaviour& stage, const std::vector<probes::Cell>& target,
                   const RunOptions& options, StageDerived& d) {
  struct Pairs {
    std::vector<double> ref, stage;
    bool target = false;
  };
  std::map<std::string, const ItemResult*> ref_items;
  for (const auto& it : reference.items) ref_items[it.id] = &it;
  std::map<probes::Cell, Pairs> cells;
  auto score = [](const ItemResult& it) {
    return it.samples > 0 ? static_cast<double>(it.correct_samples) / static_cast<double>(it.samples) : 0.0;
  };
  for (const auto& it : stage.items) {
    const auto r = ref_items.find(it.id);
    if (r == ref_items.end()) continue;
    auto& p = cells[it.cell];
    p.target = contains(target, it.cell);
    p.ref.push_back(score(*r->second));
    p.stage.push_back(score(it));
  }
  constexpr int kResamples = 1000;
  const double alpha = std::erfc(options.z / std::sqrt(2.0));
  std::map<probes::Cell, std::vector<double>> deltas;
  std::vector<double> l1(kResamples), l2(kResamples), dt(kResamples, kNaN), dof(kResamples, kNaN);
  uint64_t state = mix64(options.seed ^ 0xD51F7A11ULL);
  for (int b = 0; b < kResamples; ++b) {
    double s1 = 0, s2 = 0, t_sum = 0, o_sum = 0;
    int64_t t_n = 0, o_n = 0;
    for (const auto& [cell, p] : cells) {
      const size_t n = p.ref.size();
      double diff = 0;
      for (size_t j = 0; j < n; ++j) {
        state = mix64(state);
        const size_t k = static_cast<size_t>(state % n);
        diff += p.stage[k] - p.ref[k];
      }
      (p.target ? t_sum : o_sum) += diff;
      (p.target ? t_n : o_n) += static_cast<int64_t>(n);
      diff /= static_cast<double>(n);
      deltas[cell].push_back(diff);
      s1 += std::abs(diff);
      s2 += diff * diff;
    }
    l1[static_cast<size_t>(b)] = s1;
    l2[static_cast<size_t>(b)] = std::sqrt(s2);
    if (t_n > 0) dt[static_cast<size_t>(b)] = t_sum / static_cast<double>(t_n);
    if (o_n > 0) dof[static_cast<size_t>(b)] = o_sum / static_cast<double>(o_n);
  }
  auto interval = [&](std::vector<double> v, double& lo, double& hi) {
    if (v.empty() || std::isnan(v.front())) return;  // no such items: stays NaN
    std::sort(v.begin(), v.end());
    lo = percentile(v, alpha / 2);
    hi = percentile(v, 1 - alpha / 2);
  };
  for (auto& c : d.cells)
    if (deltas.count(c.cell)) interval(deltas[c.cell], c.delta_lo, c.delta_hi);
  if (cells.empty()) return;
  interval(l1, d.drift_l1_lo, d.drift_l1_hi);
  interval(l2, d.drift_l2_lo, d.drift_l2_hi);
  interval(dt, d.delta_target_lo, d.delta_target_hi);
  interval(dof, d.delta_off_target_lo, d.delta_off_target_hi);
}

}  // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n < 3 || y.size() != n) return kNaN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0) || !(syy > 0)) return kNaN;
  return sxy / std::sqrt(sxx * syy);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 3 || y.size() != x.size()) return kNaN;
  return pearson(ranks(x), ranks(y));
}

StageDerived derive(const Behaviour& reference, const Behaviour& stage, const StageDivergence* divergence,
                    const std::vector<probes::Cell>& target, const RunOptions& options) {
  StageDerived d;
  std::map<probes::Cell, probes::Accuracy> ref;
  for (const auto& c : reference.cells) ref[c.cell] = c.accuracy;
  int64_t tn = 0, tc = 0, on = 0, oc = 0, rtn = 0, rtc = 0, ron = 0, roc = 0;
  double sum_t = 0, sum_o = 0, sum_n = 0;
  int64_t n_t = 0, n_o = 0, n_n = 0;
  double l1 = 0, l2 = 0;
  for (const auto& c : stage.cells) {
    auto it = ref.find(c.cell);
    if (it == ref.end()) continue;
    const auto& r = it->second;
    CellDrift cd;
    cd.cell = c.cell;
    cd.reference_acc = r.acc;
    cd.acc = c.accuracy.acc;
    cd.delta = cd.acc - cd.reference_acc;
    cd.collapsed = cd.delta < -options.collapse_delta && c.accuracy.hi < r.lo;
    if (cd.collapsed) d.collapsed.push_back(probes::to_string(c.cell));
    l1 += std::abs(cd.delta);
    l2 += cd.delta * cd.delta;
    d.cells.push_back(cd);
    const bool is_target = contains(target, c.cell);
    if (is_target) {
      tn += c.accuracy.n, tc += c.accuracy.correct, rtn += r.n, rtc += r.correct;
    } else {
      on += c.accuracy.n, oc += c.accuracy.correct, ron += r.n, roc += r.correct;
    }
    if (r.acc > 0) {
      const double rel = (c.accuracy.acc - r.acc) / r.acc;
      if (is_target) {
        sum_t += rel, ++n_t;
      } else if (c.cell.domain == probes::Domain::general) {
        sum_n += rel, ++n_n;
      } else {
        sum_o += rel, ++n_o;
      }
    }
  }
  d.drift_l1 = l1;
  d.drift_l2 = std::sqrt(l2);
  auto frac = [](int64_t c, int64_t n) { return n > 0 ? static_cast<double>(c) / static_cast<double>(n) : kNaN; };
  d.acc_target = frac(tc, tn);
  d.acc_off_target = frac(oc, on);
  d.delta_target = d.acc_target - frac(rtc, rtn);
  d.delta_off_target = d.acc_off_target - frac(roc, ron);
  d.dr_target = n_t ? sum_t / static_cast<double>(n_t) : kNaN;
  d.dr_other = n_o ? sum_o / static_cast<double>(n_o) : kNaN;
  d.dr_non = n_n ? sum_n / static_cast<double>(n_n) : kNaN;
  const bool ok = std::isfinite(d.dr_target) && d.dr_target != 0;
  d.ti_other = ok ? 100.0 * d.dr_other / d.dr_target : kNaN;
  d.ti_non = ok ? 100.0 * d.dr_non / d.dr_target : kNaN;
  if (divergence) {
    d.div_off_target = divergence_over(*divergence, target, false, options.razor_metric);
    d.div_target = divergence_over(*divergence, target, true, options.razor_metric);
  } else {
    d.div_off_target = d.div_target = kNaN;
  }
  add_intervals(reference, stage, target, options, d);
  return d;
}

std::vector<ArmRazor> razor(const std::vector<StageReport>& stages, const RunOptions& options) {
  std::vector<std::string> arms;
  for (const auto& s : stages)
    if (!s.info.is_reference && std::find(arms.begin(), arms.end(), s.info.arm) == arms.end()) arms.push_back(s.info.arm);
  const StageReport* reference = nullptr;
  for (const auto& s : stages)
    if (s.info.is_reference) reference = &s;
  std::vector<ArmRazor> out;
  for (const auto& arm : arms) {
    ArmRazor r;
    r.arm = arm;
    r.metric = enum_name(options.razor_metric);
    std::vector<const StageReport*> members;
    for (const auto& s : stages)
      if (!s.info.is_reference && s.info.arm == arm && s.derived) members.push_back(&s);
    std::stable_sort(members.begin(), members.end(),
                     [](const StageReport* a, const StageReport* b) { return a->info.step < b->info.step; });
    if (options.razor_include_reference && reference) {
      r.stages.push_back(reference->info.name);
      r.steps.push_back(reference->info.step);
      r.divergence.push_back(0.0);
      r.accuracy_change.push_back(0.0);
    }
    for (const auto* s : members) {
      // Shenfeld et al.: forgetting (off-target accuracy change) against the forward KL on the NEW task's
      // distribution, i.e. the divergence over the target cells.
      if (!std::isfinite(s->derived->div_target) || !std::isfinite(s->derived->delta_off_target)) continue;
      r.stages.push_back(s->info.name);
      r.steps.push_back(s->info.step);
      r.divergence.push_back(s->derived->div_target);
      r.accuracy_change.push_back(s->derived->delta_off_target);
    }
    r.pearson = pearson(r.divergence, r.accuracy_change);
    r.spearman = spearman(r.divergence, r.accuracy_change);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace metaprobe::meta::detail
