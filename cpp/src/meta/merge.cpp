// Joining the parts of one run (RunPlan::stages, torch.distributed ranks, one job per checkpoint).
#include <metaprobe/meta/report.hpp>

#include <algorithm>
#include <map>

#include <metaprobe/error.hpp>
#include <metaprobe/meta/options.hpp>

#include "internal.hpp"

namespace metaprobe::meta {
namespace {

// The reference stage as the parts must agree on it: everything but its wall time.
std::string reference_identity(const StageReport& s) {
  nlohmann::json j = detail::stage_to_json(s);
  j.erase("seconds");
  j.erase("derived");
  return j.dump();
}

}  // namespace

Report merge_reports(const std::vector<Report>& parts, const std::vector<std::string>& order) {
  if (parts.empty()) throw InvalidArgument("merge_reports: parts is empty, expected at least one report");
  const Report& first = parts.front();
  auto part_name = [](size_t k) { return "part " + std::to_string(k); };
  const StageReport* reference = nullptr;
  std::map<std::string, std::pair<size_t, const StageReport*>> stages;  // name -> (part, stage)
  std::vector<std::string> seen_order;
  for (size_t k = 0; k < parts.size(); ++k) {
    const Report& p = parts[k];
    if (p.reference != first.reference)
      throw InvalidArgument("merge_reports: " + part_name(k) + " has reference '" + p.reference + "', " + part_name(0) +
                            " '" + first.reference + "', expected one run's parts");
    if (p.options != first.options) {
      std::string key = "?";
      for (auto it = p.options.begin(); it != p.options.end(); ++it)
        if (!first.options.contains(it.key()) || first.options.at(it.key()) != it.value()) key = it.key();
      throw InvalidArgument("merge_reports: " + part_name(k) + " was run with other options (" + key + "), expected "
                            "one run's parts");
    }
    if (p.n_items != first.n_items || p.target_cells != first.target_cells)
      throw InvalidArgument("merge_reports: " + part_name(k) + " has " + std::to_string(p.n_items) + " items, " +
                            part_name(0) + " " + std::to_string(first.n_items) + " (or other target cells), expected "
                            "one run's parts");
    bool has_reference = false;
    for (const auto& s : p.stages) {
      if (s.info.is_reference) {
        has_reference = true;
        if (!reference) {
          reference = &s;
        } else if (reference_identity(s) != reference_identity(*reference)) {
          throw InvalidArgument("merge_reports: the reference stage '" + s.info.name + "' of " + part_name(k) +
                                " differs from " + part_name(0) + "'s (its answers or scores), expected every part "
                                "to probe the same reference (same suite, options, model and machine kind)");
        }
      } else {
        const auto [it, fresh] = stages.emplace(s.info.name, std::make_pair(k, &s));
        if (!fresh)
          throw InvalidArgument("merge_reports: stage '" + s.info.name + "' is in " + part_name(it->second.first) +
                                " and " + part_name(k) + ", expected each stage in one part");
      }
      if (std::find(seen_order.begin(), seen_order.end(), s.info.name) == seen_order.end())
        seen_order.push_back(s.info.name);
    }
    if (!has_reference)
      throw InvalidArgument("merge_reports: " + part_name(k) + " has no reference stage, expected every part to hold it");
  }
  std::vector<std::string> names = order.empty() ? seen_order : order;
  if (!order.empty()) {
    for (const auto& n : seen_order)
      if (std::find(order.begin(), order.end(), n) == order.end())
        throw InvalidArgument("merge_reports: order leaves out stage '" + n + "', expected every stage of the parts");
  }
  Report r;
  r.metaprobe_version = first.metaprobe_version;
  r.reference = first.reference;
  r.options = first.options;
  r.target_cells = first.target_cells;
  r.n_items = first.n_items;
  for (const auto& p : parts) {
    r.created = std::max(r.created, p.created);
    r.seconds += p.seconds;
  }
  for (const auto& n : names) {
    if (n == reference->info.name) {
      r.stages.push_back(*reference);
    } else {
      const auto it = stages.find(n);
      if (it == stages.end()) throw InvalidArgument("merge_reports: order names stage '" + n + "', which no part holds");
      r.stages.push_back(*it->second.second);
    }
  }
  const RunOptions opt = options_from_json(first.options);
  if (reference->behaviour) {
    const Behaviour rb = *reference->behaviour;
    for (auto& s : r.stages)
      if (s.behaviour)
        s.derived = detail::derive(rb, *s.behaviour, s.divergence ? &*s.divergence : nullptr, r.target_cells, opt);
    r.razor = detail::razor(r.stages, opt);
  }
  return r;
}

}  // namespace metaprobe::meta
