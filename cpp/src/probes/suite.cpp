#include <metaprobe/probes/suite.hpp>

#include <set>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/rng.hpp>

namespace metaprobe::probes {

namespace {
// Redraws of an item whose prompt repeats an earlier one of its cell; past them a family's parameter
// space at that difficulty is exhausted and the repeat stays (docs/probes.md, "Suites").
constexpr uint64_t kMaxRedraws = 32;
}  // namespace

std::vector<Item> generate(const SuiteSpec& spec) {
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
  items.reserve(static_cast<size_t>(spec.n_per_cell) * skills.size() * domains.size());
  for (Skill s : kAllSkills) {
    bool want_s = false;
    for (Skill x : skills) want_s = want_s || x == s;
    if (!want_s) continue;
    for (Domain d : kAllDomains) {
      bool want_d = false;
      for (Domain x : domains) want_d = want_d || x == d;
      if (!want_d) continue;
      const auto fams = families(Cell{s, d});
      const size_t nf = fams.size(), nd = spec.difficulties.size();
      // Note [no duplicate prompts]: a small parameter space at low difficulty repeats prompts; an item
      // whose prompt an earlier item of the cell already has is drawn again under index k + r·2^40
      // (r = 1..kMaxRedraws), which keeps suites nested (an item depends on the earlier ones only).
      std::set<std::string, std::less<>> seen;
      for (int i = 0; i < spec.n_per_cell; ++i) {
        const size_t k = static_cast<size_t>(i) / nf;  // index within the family
        const auto& fam = fams[static_cast<size_t>(i) % nf];
        const int difficulty = spec.difficulties[k % nd];
        Item item = generate_item(fam.name, difficulty, spec.seed, k);
        for (uint64_t r = 1; r <= kMaxRedraws && seen.count(item.prompt) > 0; ++r)
          item = generate_item(fam.name, difficulty, spec.seed, k + (r << 40));
        seen.insert(item.prompt);
        items.push_back(std::move(item));
      }
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
