#pragma once
// Suites: n items per cell of a chosen part of the grid, families of a cell alternating.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

/// What generate() does when a family has fewer distinct prompts at a difficulty than a suite asks of it.
enum class ShortSupply {
  raise,  ///< throw InvalidArgument naming family, difficulty, requested and capacity
  warn,   ///< keep the repeated prompts and report a SupplyShortfall
};
METAPROBE_ENUM_NAMES(ShortSupply, "on_short_supply", "got '{value}', expected {names_or}",
                     {ShortSupply::raise, "raise"}, {ShortSupply::warn, "warn"})

/// What to generate. Empty skills or domains mean "all".
struct SuiteSpec {
  std::vector<Skill> skills{kAllSkills.begin(), kAllSkills.end()};
  std::vector<Domain> domains{kAllDomains.begin(), kAllDomains.end()};
  int n_per_cell = 50;
  std::vector<int> difficulties{1, 2, 3};
  uint64_t seed = 0;
  ShortSupply on_short_supply = ShortSupply::raise;
  SurfaceOptions surface;  ///< phrasings (varied by default) and NoOp clauses (none by default)
};
// Python's _core.SuiteSpec (metaprobe.probes.generate builds one) derives from this list.
#define METAPROBE_SUITE_SPEC_FIELDS(X, LATER)                                                                  \
  X("skills", skills) X("domains", domains) X("n_per_cell", n_per_cell) X("difficulties", difficulties)          \
  X("seed", seed) X("on_short_supply", on_short_supply) X("surface", surface)
METAPROBE_RECORD(SuiteSpec, METAPROBE_SUITE_SPEC_FIELDS)

/// A family asked for more distinct prompts at a difficulty than it has (ShortSupply::warn).
struct SupplyShortfall {
  std::string family;
  int difficulty = 1;
  int64_t requested = 0;  ///< items of the family at that difficulty in the suite
  int64_t capacity = 0;   ///< family_capacity(family, difficulty, seed)
  int64_t repeats = 0;    ///< items whose prompt repeats an earlier one of the suite
};
#define METAPROBE_SUPPLY_SHORTFALL_FIELDS(X, LATER)                                                            \
  X("family", family) X("difficulty", difficulty) X("requested", requested) X("capacity", capacity)             \
  X("repeats", repeats)
METAPROBE_RECORD(SupplyShortfall, METAPROBE_SUPPLY_SHORTFALL_FIELDS)

/// How many draws family_capacity() makes.
inline constexpr int64_t kCapacityDraws = 4096;

/// A family's capacity at a difficulty: the number of distinct prompts among the items of indices
/// 0..draws-1 under `seed`. Exact for a space that small draws exhaust (every table and small-grid family at
/// low difficulty); otherwise a lower bound, reported as `draws` or just below it. Throws InvalidArgument for
/// an unknown family, a difficulty outside 1..5 or draws < 1.
int64_t family_capacity(std::string_view family, int difficulty, uint64_t seed = 0, int64_t draws = kCapacityDraws);

/// Generates a suite: cells in skill-major order; item i of a cell uses family i mod F and, within that
/// family, difficulty difficulties[(i / F) mod D]. No prompt repeats within the suite: a repeat is drawn again
/// (docs/probes.md, "Suites"); where a family's capacity at a difficulty is smaller than the suite asks,
/// throws InvalidArgument (ShortSupply::raise) or keeps the repeats and appends a SupplyShortfall to
/// `shortfalls` when given (ShortSupply::warn). Throws InvalidArgument on a bad spec.
std::vector<Item> generate(const SuiteSpec& spec, std::vector<SupplyShortfall>* shortfalls = nullptr);

/// FNV-1a 64 (hex) of the suite's JSONL text: the golden fingerprint of a suite.
std::string suite_hash(const std::vector<Item>& items);

}  // namespace metaprobe::probes
