#include <metaprobe/probes/suite.hpp>

#include <algorithm>
#include <map>
#include <set>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/rng.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes {

namespace {
// Redraws of an item whose prompt repeats an earlier one of the suite before its family's capacity is
// counted; when the capacity covers the request, up to kRedrawsPerCapacity × capacity more (a nearly
// exhausted space needs many draws to find its last prompts, as in coupon collecting).
constexpr uint64_t kMaxRedraws = 32;
constexpr uint64_t kRedrawsPerCapacity = 16;
}  // namespace

int64_t family_capacity(std::string_view family, int difficulty, uint64_t seed, int64_t draws) {
  if (draws < 1) throw InvalidArgument("draws: got " + std::to_string(draws) + ", expected >= 1");
  // distinct task contents: the canonical phrasing (phrasings multiply prompts, not tasks)
  SurfaceOptions canonical;
  canonical.phrasing = Phrasing::canonical;
  std::set<std::string, std::less<>> prompts;
  for (int64_t k = 0; k < draws; ++k)
    prompts.insert(generate_item(family, difficulty, seed, static_cast<uint64_t>(k), canonical).prompt);
  return static_cast<int64_t>(prompts.size());
}

namespace detail {

uint64_t family_round_key(const FamilyInfo& family, uint64_t seed) {
  const std::string key = to_string(Cell{family.skill, family.domain}) + "/" + family.name;
  return SplitMix64(fnv1a64(key) ^ seed).next();
}

std::vector<FamilyInfo> round_order(std::vector<FamilyInfo> fams, uint64_t seed) {
  std::stable_sort(fams.begin(), fams.end(), [seed](const FamilyInfo& a, const FamilyInfo& b) {
    const uint64_t ka = family_round_key(a, seed), kb = family_round_key(b, seed);
    return ka != kb ? ka < kb : a.name < b.name;
  });
  return fams;
}

void generate_cell(const std::vector<FamilyInfo>& cell_families, const SuiteSpec& spec,
                   std::set<std::string, std::less<>>& seen, std::vector<SupplyShortfall>* shortfalls,
                   std::vector<Item>& items) {
  if (cell_families.empty()) return;
  SurfaceOptions canonical;
  canonical.phrasing = Phrasing::canonical;
  // Note [stable family assignment]: the cell's items come in rounds; round k gives every family its k-th
  // item (difficulty difficulties[k mod D]), the families of a round in the order of a hash of
  // "skill/domain/family" and the seed, not of their registration index. A family's k-th item depends on
  // (family, version, seed, k, difficulty) only, so adding a family to a cell leaves every other family's
  // items as they were (each keeps a prefix of its list: the new family takes its share of the n slots).
  const auto fams = round_order(cell_families, spec.seed);
  const size_t nf = fams.size(), nd = spec.difficulties.size();
  // items of each (family, difficulty) this cell asks for, for the shortfall message
  std::map<std::pair<size_t, int>, int64_t> requested;
  for (int i = 0; i < spec.n_per_cell; ++i)
    ++requested[{static_cast<size_t>(i) % nf, spec.difficulties[(static_cast<size_t>(i) / nf) % nd]}];
  std::map<std::pair<size_t, int>, size_t> shortfall_at;  // index into *shortfalls
  for (int i = 0; i < spec.n_per_cell; ++i) {
    const size_t k = static_cast<size_t>(i) / nf;  // the round: index within the family
    const size_t f = static_cast<size_t>(i) % nf;  // position within the round
    const auto& fam = fams[f];
    const int difficulty = spec.difficulties[k % nd];
    // Note [no duplicate prompts]: a small parameter space at low difficulty repeats prompts; an item
    // whose prompt an earlier item of the suite already has is drawn again under index k + r·2^40
    // (r = 1, 2, …), which keeps suites nested (an item depends on the earlier ones only).
    Item item = generate_item(fam.name, difficulty, spec.seed, k, canonical);
    uint64_t r = 1;
    for (; r <= kMaxRedraws && seen.count(item.prompt) > 0; ++r)
      item = generate_item(fam.name, difficulty, spec.seed, k + (r << 40), canonical);
    if (seen.count(item.prompt) > 0) {
      const int64_t want = requested[{f, difficulty}];
      const int64_t cap = family_capacity(fam.name, difficulty, spec.seed);
      if (want <= cap) {
        const uint64_t more = kMaxRedraws + kRedrawsPerCapacity * static_cast<uint64_t>(cap);
        for (; r <= more && seen.count(item.prompt) > 0; ++r)
          item = generate_item(fam.name, difficulty, spec.seed, k + (r << 40), canonical);
      }
      if (seen.count(item.prompt) > 0) {
        if (spec.on_short_supply == ShortSupply::raise)
          throw InvalidArgument(
              "n_per_cell: family '" + fam.name + "' at difficulty " + std::to_string(difficulty) + " has " +
              std::to_string(cap) + " distinct prompts (its capacity over " + std::to_string(kCapacityDraws) +
              " draws under seed " + std::to_string(spec.seed) + ") but the suite asks for " + std::to_string(want) +
              " of them; expected at most " + std::to_string(cap) +
              " (ask fewer items per cell, add difficulties, or set on_short_supply to warn to keep the repeats)");
        if (shortfalls) {
          auto [it, fresh] = shortfall_at.try_emplace({f, difficulty}, shortfalls->size());
          if (fresh) shortfalls->push_back({fam.name, difficulty, want, cap, 0});
          ++(*shortfalls)[it->second].repeats;
        }
      }
    }
    seen.insert(item.prompt);
    apply_surface(item, spec.surface);  // repeats are of tasks: phrasings do not make new ones
    items.push_back(std::move(item));
  }
}

}  // namespace detail

std::vector<Item> generate(const SuiteSpec& spec, std::vector<SupplyShortfall>* shortfalls) {
  if (spec.n_per_cell < 0) {
    throw InvalidArgument("n_per_cell: got " + std::to_string(spec.n_per_cell) + ", expected >= 0");
  }
  if (spec.difficulties.empty()) {
    throw InvalidArgument("difficulties: got an empty list, expected one or more integers in 1..5");
  }
  for (int d : spec.difficulties) {
    if (d < 1 || d > 5) {
      throw InvalidArgument("difficulties: got " + std::to_string(d) + ", expected integers in 1..5");
    }
  }
  std::vector<Skill> skills = spec.skills;
  std::vector<Domain> domains = spec.domains;
  if (skills.empty()) skills.assign(kAllSkills.begin(), kAllSkills.end());
  if (domains.empty()) domains.assign(kAllDomains.begin(), kAllDomains.end());
  // Cells always come in grid order, whatever order the spec lists them in; duplicates collapse.
  std::vector<Item> items;
  std::set<std::string, std::less<>> seen;  // every (canonical) prompt of the suite so far
  if (!(spec.surface.noop_share >= 0 && spec.surface.noop_share <= 1))
    throw InvalidArgument("noop_share: got " + std::to_string(spec.surface.noop_share) + ", expected a share in [0, 1]");
  items.reserve(static_cast<size_t>(spec.n_per_cell) * skills.size() * domains.size());
  for (Skill s : kAllSkills) {
    bool want_s = false;
    for (Skill x : skills) want_s = want_s || x == s;
    if (!want_s) continue;
    for (Domain d : kAllDomains) {
      bool want_d = false;
      for (Domain x : domains) want_d = want_d || x == d;
      if (!want_d) continue;
      detail::generate_cell(families(Cell{s, d}), spec, seen, shortfalls, items);
    }
  }
  return items;
}

std::string suite_hash(const std::vector<Item>& items) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& item : items) {
    h = fnv1a64(to_jsonl_line(item), h);
    h = fnv1a64("\n", h);
  }
  return hex64(h);
}

}  // namespace metaprobe::probes
