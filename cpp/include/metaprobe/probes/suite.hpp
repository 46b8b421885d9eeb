#pragma once
// Suites: n items per cell of a chosen part of the grid, families of a cell alternating.
#include <cstdint>
#include <string>
#include <vector>

#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

/// What to generate. Empty skills or domains mean "all".
struct SuiteSpec {
  std::vector<Skill> skills{kAllSkills.begin(), kAllSkills.end()};
  std::vector<Domain> domains{kAllDomains.begin(), kAllDomains.end()};
  int n_per_cell = 50;
  std::vector<int> difficulties{1, 2, 3};
  uint64_t seed = 0;
};

/// Generates a suite: cells in skill-major order; item i of a cell uses family i mod F and, within that
/// family, difficulty difficulties[(i / F) mod D]. Throws InvalidArgument on a bad spec.
std::vector<Item> generate(const SuiteSpec& spec);

/// FNV-1a 64 (hex) of the suite's JSONL text: the golden fingerprint of a suite.
std::string suite_hash(const std::vector<Item>& items);

}  // namespace metaprobe::probes
