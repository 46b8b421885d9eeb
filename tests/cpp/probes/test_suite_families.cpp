#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/suite.hpp>

#include "../../../cpp/src/probes/gen_common.hpp"

using namespace metaprobe::probes;

namespace {

// One cell's items drawn from exactly `fams` (the registry's families of the cell, or a subset of them).
std::vector<Item> cell_items(const std::vector<FamilyInfo>& fams, int n_per_cell, uint64_t seed) {
  SuiteSpec spec;
  spec.n_per_cell = n_per_cell;
  spec.seed = seed;
  std::set<std::string, std::less<>> seen;
  std::vector<Item> items;
  metaprobe::probes::detail::generate_cell(fams, spec, seen, nullptr, items);
  return items;
}

// The JSONL lines of each family's items, in suite order.
std::map<std::string, std::vector<std::string>> by_family(const std::vector<Item>& items) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& it : items) out[it.family].push_back(to_jsonl_line(it));
  return out;
}

// The first cell (grid order) with at least three families.
std::vector<FamilyInfo> a_cell_with_three_families() {
  for (Skill s : kAllSkills)
    for (Domain d : kAllDomains)
      if (families(Cell{s, d}).size() >= 3) return families(Cell{s, d});
  return {};
}

}  // namespace

TEST_CASE("family assignment is stable under adding a family", "[probes][suite]") {
  const auto all = a_cell_with_three_families();
  REQUIRE(all.size() >= 3);
  for (uint64_t seed : {0ull, 7ull}) {
    for (std::size_t dropped = 0; dropped < all.size(); ++dropped) {
      std::vector<FamilyInfo> fewer = all;
      fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(dropped));
      const std::string added = all[dropped].name;
      INFO("seed " << seed << ", family added: " << added);
      // `fewer` is the cell before the family is registered, `all` after.
      const auto before = by_family(cell_items(fewer, 50, seed));
      const auto after = by_family(cell_items(all, 50, seed));
      REQUIRE(after.count(added) == 1);
      // every other family keeps its items: a prefix of what it had, same ids and bytes
      for (const auto& [name, lines] : after) {
        if (name == added) continue;
        INFO("family " << name);
        const auto& old = before.at(name);
        REQUIRE(lines.size() <= old.size());
        REQUIRE(std::equal(lines.begin(), lines.end(), old.begin()));
      }
      // the new family only takes its share of the slots
      std::size_t others = 0;
      for (const auto& [name, lines] : after) others += name == added ? 0 : lines.size();
      REQUIRE(others + after.at(added).size() == 50);
      for (const auto& [name, lines] : after) REQUIRE(lines.size() >= 50 / all.size());
    }
  }
}

TEST_CASE("a cell's items do not depend on the registration order of its families", "[probes][suite]") {
  const auto fams = a_cell_with_three_families();
  REQUIRE(fams.size() >= 3);
  std::vector<FamilyInfo> reversed(fams.rbegin(), fams.rend());
  std::vector<FamilyInfo> rotated = fams;
  std::rotate(rotated.begin(), rotated.begin() + 1, rotated.end());
  const auto items = cell_items(fams, 30, 3);
  REQUIRE(suite_hash(cell_items(reversed, 30, 3)) == suite_hash(items));
  REQUIRE(suite_hash(cell_items(rotated, 30, 3)) == suite_hash(items));
  SECTION("rounds give every family one item before any gets a second") {
    std::map<std::string, int> seen;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const int round = ++seen[items[i].family];
      REQUIRE(static_cast<std::size_t>(round) == i / fams.size() + 1);
    }
  }
  SECTION("the order within a round follows the hash of skill/domain/family and the seed") {
    const auto order = metaprobe::probes::detail::round_order(fams, 3);
    for (std::size_t i = 0; i < fams.size(); ++i) REQUIRE(items[i].family == order[i].name);
    REQUIRE(metaprobe::probes::detail::family_round_key(fams[0], 3) != metaprobe::probes::detail::family_round_key(fams[0], 4));
  }
}
