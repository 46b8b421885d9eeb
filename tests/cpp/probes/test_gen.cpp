#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/rng.hpp>
#include <metaprobe/probes/scoring.hpp>
#include <metaprobe/probes/suite.hpp>

using namespace metaprobe::probes;

namespace {

// Answers that must score wrong: off by one, another choice, a wrong or missing list element.
std::vector<std::string> perturbed(const Item& it) {
  std::vector<std::string> out;
  switch (it.answer_type) {
    case AnswerType::integer: {
      const long long v = std::stoll(it.answer);
      out = {std::to_string(v + 1), std::to_string(v - 1)};
      break;
    }
    case AnswerType::number: {
      const double v = std::stod(it.answer);
      const double step = 0.05 * std::max(1.0, std::abs(v));
      out = {std::to_string(v + step), std::to_string(v - step)};
      break;
    }
    case AnswerType::choice:
      for (char c : std::string("ABCD")) {
        if (std::string(1, c) != it.answer) out.emplace_back(1, c);
      }
      break;
    case AnswerType::list: {
      const auto comma = it.answer.find(',');
      const std::string first = it.answer.substr(0, comma);
      const std::string rest = comma == std::string::npos ? "" : it.answer.substr(comma);
      bool numeric = !first.empty() && first.find_first_not_of("-0123456789") == std::string::npos;
      out.push_back((numeric ? std::to_string(std::stoll(first) + 1) : first + "zz") + rest);
      if (comma != std::string::npos) out.push_back(it.answer.substr(0, it.answer.rfind(',')));
      break;
    }
    case AnswerType::string:
      out = {it.answer + "q"};
      break;
  }
  return out;
}

bool is_ascii(const std::string& s) {
  for (unsigned char c : s) {
    if (c > 127) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("the grid has at least two families per cell, forty in all", "[probes][gen]") {
  REQUIRE(families().size() >= 40);
  std::set<std::string> names;
  for (Skill s : kAllSkills) {
    for (Domain d : kAllDomains) {
      const auto fams = families(Cell{s, d});
      REQUIRE(fams.size() >= 2);
      for (const auto& f : fams) names.insert(f.name);
    }
  }
  REQUIRE(names.size() == families().size());
  REQUIRE(family_info("math.lattice_paths").skill == Skill::enumeration);
  REQUIRE(family_info("coding.loop_count").skill == Skill::simulation);  // it runs a program (issue 11)
  REQUIRE(families(Cell{Skill::enumeration, Domain::coding}).front().name == "coding.predicate_count");
  REQUIRE_THROWS_WITH(family_info("math.nope"), Catch::Contains("'math.nope'"));
}

TEST_CASE("SplitMix64 is the reference generator and maps ranges without bias", "[probes][gen]") {
  SplitMix64 r(1234567);
  // first outputs of the reference implementation (Vigna, splitmix64.c) for seed 1234567
  REQUIRE(r.next() == 6457827717110365317ULL);
  REQUIRE(r.next() == 3203168211198807973ULL);
  SplitMix64 u(7);
  std::vector<int> hist(5, 0);
  for (int i = 0; i < 50000; ++i) {
    const int64_t v = u.uniform(-2, 2);
    REQUIRE(v >= -2);
    REQUIRE(v <= 2);
    ++hist[static_cast<size_t>(v + 2)];
  }
  for (int h : hist) REQUIRE(std::abs(h - 10000) < 400);
  REQUIRE(fnv1a64("") == 0xcbf29ce484222325ULL);
  REQUIRE(hex64(fnv1a64("a")) == "af63dc4c8601ec8c");
}

TEST_CASE("items are deterministic in (family, version, seed, index, difficulty)", "[probes][gen]") {
  for (const auto& f : families()) {
    const Item a = generate_item(f.name, 3, 11, 5);
    const Item b = generate_item(f.name, 3, 11, 5);
    REQUIRE(to_jsonl_line(a) == to_jsonl_line(b));
    REQUIRE(a.id == item_id(f.name, f.version, 11, 5, 3));
    REQUIRE(generate_item(f.name, 3, 11, 6).id != a.id);
    REQUIRE(generate_item(f.name, 3, 12, 5).id != a.id);
  }
}

TEST_CASE("the default suite is pinned by its golden hash", "[probes][gen]") {
  const auto items = generate(SuiteSpec{});
  REQUIRE(items.size() == 1000);
  REQUIRE(suite_hash(items) == "5fd093006ff076cf");
  SECTION("every cell is present with n_per_cell items and all its families") {
    std::map<Cell, int> per_cell;
    std::set<std::string> fams, ids;
    for (const auto& it : items) {
      ++per_cell[it.cell()];
      fams.insert(it.family);
      ids.insert(it.id);
    }
    REQUIRE(per_cell.size() == 20);
    for (const auto& kv : per_cell) REQUIRE(kv.second == 50);
    REQUIRE(fams.size() == families().size());
    REQUIRE(ids.size() == items.size());
  }
  SECTION("different seeds give different suites") {
    SuiteSpec other;
    other.seed = 1;
    REQUIRE(suite_hash(generate(other)) != suite_hash(items));
  }
  SECTION("a smaller suite is a per-cell prefix of a larger one") {
    SuiteSpec small;
    small.n_per_cell = 10;
    small.skills = {Skill::diagnostic};
    const auto sub = generate(small);
    REQUIRE(sub.size() == 40);
    size_t k = 0;
    for (const auto& it : items) {
      if (it.skill != Skill::diagnostic) continue;
      if (k < sub.size() && sub[k].cell() == it.cell() && sub[k].id == it.id) ++k;
    }
    REQUIRE(k == sub.size());
  }
}

TEST_CASE("every family: worked solution, answer format and scoring", "[probes][gen]") {
  for (const auto& f : families()) {
    for (int d = 1; d <= 5; ++d) {
      for (uint64_t i = 0; i < 12; ++i) {
        const Item it = generate_item(f.name, d, 99, i);
        INFO(f.name << " d=" << d << " i=" << i << "\n" << it.prompt << "\n" << it.reference_solution);
        REQUIRE(!it.prompt.empty());
        REQUIRE(!it.answer.empty());
        REQUIRE(is_ascii(it.prompt));
        REQUIRE(is_ascii(it.reference_solution));
        const std::string tail = "\nAnswer: " + it.answer;
        REQUIRE(it.reference_solution.size() > tail.size());
        REQUIRE(it.reference_solution.compare(it.reference_solution.size() - tail.size(), tail.size(), tail) == 0);
        if (d <= 2) REQUIRE(it.reference_solution.size() <= 300);
        if (it.answer_type == AnswerType::choice) {
          REQUIRE(it.choices.size() == 4);
          REQUIRE(std::set<std::string>(it.choices.begin(), it.choices.end()).size() == 4);
          REQUIRE(it.answer == std::string(1, static_cast<char>('A' + it.gold_index)));
        }
        SECTION("gold answer and worked solution score correct") {
          REQUIRE(check(it, it.answer));
          REQUIRE(check(it, it.reference_solution));
        }
        SECTION("perturbed answers score wrong") {
          for (const auto& w : perturbed(it)) {
            INFO("perturbed: " << w);
            REQUIRE_FALSE(check(it, "Answer: " + w));
          }
        }
      }
    }
  }
}

TEST_CASE("bad generation requests name the argument", "[probes][gen]") {
  REQUIRE_THROWS_AS(generate_item("math.nope", 1, 0, 0), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(generate_item("math.recurrence", 0, 0, 0),
                      Catch::Contains("difficulty: got 0") && Catch::Contains("1..5"));
  REQUIRE_THROWS_WITH(generate_item("math.recurrence", 6, 0, 0), Catch::Contains("difficulty: got 6"));
  SuiteSpec s;
  s.n_per_cell = -3;
  REQUIRE_THROWS_WITH(generate(s), Catch::Contains("n_per_cell: got -3"));
  s.n_per_cell = 2;
  s.difficulties = {};
  REQUIRE_THROWS_WITH(generate(s), Catch::Contains("difficulties: got an empty list"));
  s.difficulties = {2, 9};
  REQUIRE_THROWS_AS(generate(s), metaprobe::InvalidArgument);
}

TEST_CASE("prompt templates", "[probes][prompt]") {
  SuiteSpec spec;
  spec.n_per_cell = 6;
  spec.skills = {Skill::enumeration};
  const auto items = generate(spec);
  const Item& it = items[0];
  SECTION("plain is a Question/Answer frame for base models") {
    REQUIRE(render(it, {"plain", 0, 0}) == "Question: " + it.prompt + "\nAnswer:");
  }
  SECTION("chat adds the answer-format instruction") {
    const auto p = render(it, {"chat", 0, 0});
    REQUIRE(p.rfind(it.prompt, 0) == 0);
    REQUIRE(p.find("`Answer: <answer>`") != std::string::npos);
  }
  SECTION("few_shot draws k examples of the same cell, never the item itself") {
    const auto all = render_all(items, {"few_shot", 3, 0});
    for (size_t k = 0; k < items.size(); ++k) {
      const auto& p = all[k];
      size_t count = 0;
      for (size_t pos = p.find("Question: "); pos != std::string::npos; pos = p.find("Question: ", pos + 1)) ++count;
      REQUIRE(count == 4);
      size_t own = 0;
      for (size_t pos = p.find(items[k].prompt); pos != std::string::npos; pos = p.find(items[k].prompt, pos + 1)) ++own;
      REQUIRE(own == 1);
      for (const auto& other : items) {
        if (!(other.cell() == items[k].cell()) && p.find(other.prompt) != std::string::npos) FAIL("example from another cell");
      }
    }
  }
  SECTION("few_shot tops up from the generators when the pool is too small") {
    const auto p = render(it, {"few_shot", 2, 0}, {it});
    REQUIRE(p.find("Question: ", 1) != std::string::npos);
    REQUIRE(p.rfind("Question: " + it.prompt + "\nSolution:") == p.size() - it.prompt.size() - 20);
  }
  SECTION("unknown templates and negative k are errors") {
    REQUIRE_THROWS_WITH(render(it, {"xml", 0, 0}), Catch::Contains("'xml'") && Catch::Contains("few_shot"));
    REQUIRE_THROWS_WITH(render(it, {"few_shot", -1, 0}), Catch::Contains("k: got -1"));
  }
}

TEST_CASE("supply: capacity, short supply raises or warns, no prompt repeats in a suite", "[probes][gen]") {
  SECTION("capacity is the number of distinct prompts and bad arguments name themselves") {
    REQUIRE(family_capacity("math.lattice_paths", 1) == 25);  // the 5 x 5 grids of difficulty 1
    REQUIRE(family_capacity("math.theorem_name", 3) == static_cast<int64_t>(50));
    REQUIRE(family_capacity("general.shopping_total", 3, 0, 300) == 300);
    REQUIRE_THROWS_WITH(family_capacity("math.lattice_paths", 1, 0, 0), Catch::Contains("draws: got 0"));
    REQUIRE_THROWS_WITH(family_capacity("math.nope", 1), Catch::Contains("'math.nope'"));
  }
  SuiteSpec s;
  s.skills = {Skill::enumeration};
  s.domains = {Domain::math};
  s.n_per_cell = 240;
  SECTION("raise names family, difficulty, requested and capacity") {
    REQUIRE_THROWS_AS(generate(s), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(generate(s), Catch::Contains("family 'math.stars_and_bars' at difficulty 2 has 20 distinct prompts") &&
                                         Catch::Contains("asks for 40 of them; expected at most 20"));
  }
  SECTION("warn keeps the repeats and reports each family and difficulty once") {
    s.on_short_supply = ShortSupply::warn;
    s.surface.phrasing = Phrasing::canonical;  // repeats are of tasks; compare them in one phrasing
    std::vector<SupplyShortfall> shortfalls;
    const auto items = generate(s, &shortfalls);
    REQUIRE(items.size() == 240);
    REQUIRE(shortfalls.size() == 3);
    int64_t repeats = 0;
    for (const auto& f : shortfalls) {
      REQUIRE(f.requested > f.capacity);
      repeats += f.repeats;
    }
    std::set<std::string> prompts;
    for (const auto& it : items) prompts.insert(it.prompt);
    REQUIRE(static_cast<int64_t>(prompts.size()) == 240 - repeats);
    const auto lattice = std::find_if(shortfalls.begin(), shortfalls.end(),
                                      [](const SupplyShortfall& f) { return f.family == "math.lattice_paths"; });
    REQUIRE(lattice != shortfalls.end());
    REQUIRE(lattice->difficulty == 1);
    REQUIRE(lattice->capacity == 25);
    REQUIRE(lattice->requested == 40);
  }
  SECTION("a suite of every cell and level holds no prompt twice") {
    SuiteSpec all;
    all.n_per_cell = 100;
    all.difficulties = {1, 2, 3, 4, 5};
    std::set<std::string> prompts;
    const auto items = generate(all);
    for (const auto& it : items) prompts.insert(it.prompt);
    REQUIRE(prompts.size() == items.size());
  }
}

TEST_CASE("diagnostics: items without an error, and detection precision / recall / F1", "[probes][gen][scoring]") {
  for (const auto& f : families()) {
    if (f.skill != Skill::diagnostic) continue;
    int none = 0;
    for (int k = 0; k < 200; ++k) {
      const Item it = generate_item(f.name, 1 + k % 5, 3, static_cast<uint64_t>(k));
      none += it.answer == kNoError;
      REQUIRE(it.prompt.find("xactly one") == std::string::npos);
      REQUIRE(check(it, it.reference_solution));
      REQUIRE(check(it, "Answer: none") == (it.answer == kNoError));
    }
    INFO(f.name);
    REQUIRE(none >= 60);   // 30%
    REQUIRE(none <= 100);  // 50%
  }
  SECTION("precision, recall and F1 from flagged locations") {
    Item err;
    err.skill = Skill::diagnostic;
    err.answer = "3";
    err.answer_type = AnswerType::integer;
    Item clean = err;
    clean.answer = std::string(kNoError);
    Detection d;
    add_detection(d, err, "3", true, true);      // tp
    add_detection(d, err, "2", true, false);     // flagged the wrong line: fp and fn
    add_detection(d, err, "none", true, false);  // missed: fn
    add_detection(d, clean, "none", true, true);  // tn
    add_detection(d, clean, "1", true, false);   // fp
    add_detection(d, clean, "", false, false);   // no answer: not flagged
    finish_detection(d);
    REQUIRE(d.n == 6);
    REQUIRE(d.errors == 3);
    REQUIRE(d.flagged == 3);
    REQUIRE(d.true_positives == 1);
    REQUIRE(d.precision == Approx(1.0 / 3));
    REQUIRE(d.recall == Approx(1.0 / 3));
    REQUIRE(d.f1 == Approx(1.0 / 3));
    Detection empty;
    finish_detection(empty);
    REQUIRE(std::isnan(empty.precision));
    REQUIRE(std::isnan(empty.f1));
  }
}

TEST_CASE("surface variety: phrasings keep the task, canonical pins them, NoOp is optional", "[probes][gen]") {
  SurfaceOptions canonical;
  canonical.phrasing = Phrasing::canonical;
  SurfaceOptions noop;
  noop.noop_share = 1.0;
  for (const auto& f : families()) {
    std::set<int> phrasings;
    for (uint64_t k = 0; k < 30; ++k) {
      const Item v = generate_item(f.name, 1 + static_cast<int>(k % 5), 4, k);
      const Item c = generate_item(f.name, 1 + static_cast<int>(k % 5), 4, k, canonical);
      const Item n = generate_item(f.name, 1 + static_cast<int>(k % 5), 4, k, noop);
      phrasings.insert(v.phrasing);
      REQUIRE(c.phrasing == 0);
      REQUIRE(v.id == c.id);
      REQUIRE(v.answer == c.answer);
      REQUIRE(v.meta == c.meta);
      REQUIRE((v.prompt != c.prompt) == (v.phrasing != 0));
      REQUIRE(n.noop);
      REQUIRE(n.prompt.size() > v.prompt.size());
      REQUIRE(n.prompt.compare(n.prompt.size() - v.prompt.size(), v.prompt.size(), v.prompt) == 0);
    }
    INFO(f.name);
    REQUIRE(phrasings.size() == 3);
  }
  SurfaceOptions bad;
  bad.noop_share = 1.5;
  REQUIRE_THROWS_WITH(generate_item("math.recurrence", 1, 0, 0, bad), Catch::Contains("noop_share: got 1.5"));
  SuiteSpec s;
  s.surface = bad;
  REQUIRE_THROWS_WITH(generate(s), Catch::Contains("noop_share: got 1.5"));
}
