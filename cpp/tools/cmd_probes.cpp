// `metaprobe probes ...`: generate suites, list families, render prompts, score model outputs.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/scoring.hpp>
#include <metaprobe/probes/suite.hpp>

#include "commands.hpp"

namespace metaprobe::cli {
namespace {

using namespace metaprobe::probes;

// CLI11 converts "-1" to 2^64 - 1 and saturates values past 2^64 - 1, so two different seeds would silently give
// one suite: check the text before it is converted.
CLI::Validator seed_text() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::string max = "18446744073709551615";
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        const std::string trimmed = digits ? text.substr(std::min(text.find_first_not_of('0'), text.size() - 1)) : text;
        if (!digits || trimmed.size() > max.size() || (trimmed.size() == max.size() && trimmed > max))
          return "got '" + text + "', expected an integer from 0 to " + max;
        text = trimmed;  // CLI11 would read a leading 0 as octal
        return "";
      },
      "UINT64");
}
using json = nlohmann::json;

std::vector<std::string> split_csv(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

json accuracy_json(const Accuracy& a) {
  return {{"n", a.n}, {"correct", a.correct}, {"acc", a.acc}, {"lo", a.lo}, {"hi", a.hi}};
}

void print_row(const std::string& name, const Accuracy& a) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-28s %6lld %8lld  %s  [%s, %s]\n", name.c_str(), static_cast<long long>(a.n),
                static_cast<long long>(a.correct), fixed3(a.acc).c_str(), fixed3(a.lo).c_str(), fixed3(a.hi).c_str());
  std::cout << buf;
}

// outputs.jsonl: one {"id": ..., "output": ...} per line, aligned to the items by id
std::vector<std::string> read_outputs(const std::string& path, const std::vector<Item>& items, bool allow_missing) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("outputs: cannot open '" + path + "' for reading");
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < items.size(); ++i) index[items[i].id] = i;
  std::vector<std::string> outputs(items.size());
  std::vector<bool> have(items.size(), false);
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::parse_error& e) {
      throw FormatError(where + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw FormatError(where + ": expected a JSON object with fields 'id' and 'output'");
    auto id = j.find("id");
    auto out = j.find("output");
    if (id == j.end() || !id->is_string()) throw FormatError(where + ": field 'id': missing or not a string");
    if (out == j.end() || !out->is_string()) throw FormatError(where + ": field 'output': missing or not a string");
    auto it = index.find(id->get<std::string>());
    if (it == index.end()) throw FormatError(where + ": field 'id': '" + id->get<std::string>() + "' is not an item of the probe file");
    if (have[it->second]) throw FormatError(where + ": field 'id': duplicate output for '" + it->first + "'");
    have[it->second] = true;
    outputs[it->second] = out->get<std::string>();
  }
  size_t missing = 0;
  std::string first;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!have[i]) {
      if (missing++ == 0) first = items[i].id;
    }
  }
  if (missing > 0 && !allow_missing) {
    throw InvalidArgument("outputs: '" + path + "' has no output for " + std::to_string(missing) + " of " +
                          std::to_string(items.size()) + " items (first: '" + first +
                          "'); pass --allow-missing to score them as wrong");
  }
  return outputs;
}

}  // namespace

void add_probes_commands(CLI::App& app) {
  CLI::App* probes = app.add_subcommand("probes", "skill probes: generate suites, render prompts, score outputs");
  probes->require_subcommand(1);

  // generate
  struct GenOpts {
    int n_per_cell = 50;
    uint64_t seed = 0;
    std::string skills = "all", domains = "all", difficulties = "1,2,3", out, on_short_supply = "raise";
    std::string phrasing = "varied";
    double noop_share = 0.0;
  };
  auto g = std::make_shared<GenOpts>();
  CLI::App* gen = probes->add_subcommand("generate", "generate a probe suite as JSONL");
  gen->add_option("--n-per-cell", g->n_per_cell, "items per (skill, domain) cell")->capture_default_str();
  gen->add_option("--seed", g->seed, "suite seed")->transform(seed_text())->capture_default_str();
  gen->add_option("--skills", g->skills, "comma-separated skills or 'all'")->capture_default_str();
  gen->add_option("--domains", g->domains, "comma-separated domains or 'all'")->capture_default_str();
  gen->add_option("--difficulties", g->difficulties, "comma-separated difficulties in 1..5")->capture_default_str();
  gen->add_option("--on-short-supply", g->on_short_supply,
                  "when a family has fewer distinct prompts than asked: raise (error) or warn (keep repeats)")
      ->check(CLI::IsMember({"raise", "warn"}))
      ->capture_default_str();
  gen->add_option("--phrasing", g->phrasing, "varied (one of three phrasings per item) or canonical")
      ->check(CLI::IsMember({"varied", "canonical"}))
      ->capture_default_str();
  gen->add_option("--noop-share", g->noop_share, "share of items with an irrelevant NoOp sentence (0..1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  gen->add_option("-o,--output", g->out, "output JSONL path")->required();
  gen->callback([g] {
    SuiteSpec spec;
    spec.n_per_cell = g->n_per_cell;
    spec.seed = g->seed;
    if (g->skills != "all") {
      spec.skills.clear();
      for (const auto& s : split_csv(g->skills)) spec.skills.push_back(parse_skill(s));
    }
    if (g->domains != "all") {
      spec.domains.clear();
      for (const auto& s : split_csv(g->domains)) spec.domains.push_back(parse_domain(s));
    }
    spec.difficulties.clear();
    for (const auto& s : split_csv(g->difficulties)) {
      try {
        spec.difficulties.push_back(std::stoi(s));
      } catch (const std::exception&) {
        throw InvalidArgument("difficulties: '" + s + "' is not an integer, expected integers in 1..5");
      }
    }
    spec.on_short_supply = g->on_short_supply == "warn" ? ShortSupply::warn : ShortSupply::raise;
    spec.surface.phrasing = g->phrasing == "canonical" ? Phrasing::canonical : Phrasing::varied;
    spec.surface.noop_share = g->noop_share;
    std::vector<SupplyShortfall> shortfalls;
    const auto items = generate(spec, &shortfalls);
    for (const auto& s : shortfalls)
      std::cerr << "warning: family " << s.family << " at difficulty " << s.difficulty << ": asked for " << s.requested
                << " items, capacity " << s.capacity << "; " << s.repeats << " prompts repeat\n";
    write_jsonl(items, g->out);
    std::cerr << "wrote " << items.size() << " items to " << g->out << " (suite hash " << suite_hash(items) << ")\n";
  });

  // families
  CLI::App* fam = probes->add_subcommand("families", "list the generator families");
  auto capacity = std::make_shared<int64_t>(0);
  fam->add_option("--capacity", *capacity,
                  "also print each family's capacity (distinct prompts) at difficulties 1..5 over this many draws")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  fam->callback([capacity] {
    for (const auto& f : families()) {
      std::cout << f.name << "\t" << to_string(f.skill) << "/" << to_string(f.domain) << "\tv" << f.version << "\t";
      if (*capacity > 0) {
        for (int d = 1; d <= 5; ++d) std::cout << (d > 1 ? "," : "capacity ") << family_capacity(f.name, d, 0, *capacity);
        std::cout << "\t";
      }
      std::cout << f.description << "\n";
    }
  });

  // export-lm-eval: the tasks' hooks are Python (metaprobe.lm_eval_tasks), so the Python CLI serves it.
  CLI::App* lme = probes->add_subcommand("export-lm-eval", "write the suite as lm-evaluation-harness tasks (Python CLI)");
  lme->allow_extras();
  lme->callback([] {
    throw InvalidArgument("probes export-lm-eval is served by the Python CLI: run `metaprobe probes export-lm-eval "
                          "SUITE DIR` from the installed package (or `python -m metaprobe probes export-lm-eval ...`)");
  });

  // render
  struct RenderOpts {
    std::string probes, out, template_name = "chat";
    int k = 3;
    uint64_t seed = 0;
  };
  auto r = std::make_shared<RenderOpts>();
  CLI::App* ren = probes->add_subcommand("render", "render prompts as JSONL lines {\"id\", \"prompt\"}");
  ren->add_option("probes", r->probes, "probe JSONL")->required();
  ren->add_option("--template", r->template_name, "plain, chat or few_shot")->capture_default_str();
  ren->add_option("-k", r->k, "few-shot examples")->capture_default_str();
  ren->add_option("--seed", r->seed, "few-shot example draw")->transform(seed_text())->capture_default_str();
  ren->add_option("-o,--output", r->out, "output JSONL path (default: stdout)");
  ren->callback([r] {
    const auto items = read_jsonl(r->probes);
    PromptOptions opt;
    opt.template_name = r->template_name;
    opt.k = r->k;
    opt.seed = r->seed;
    const auto prompts = render_all(items, opt);
    std::ostringstream text;
    for (size_t i = 0; i < items.size(); ++i) text << json{{"id", items[i].id}, {"prompt", prompts[i]}}.dump() << "\n";
    if (r->out.empty()) {
      std::cout << text.str();
      return;
    }
    metaprobe::write_file_atomic(r->out, text.str());
  });

  // score
  struct ScoreOpts {
    std::string probes, outputs;
    bool as_json = false, allow_missing = false;
  };
  auto s = std::make_shared<ScoreOpts>();
  CLI::App* sc = probes->add_subcommand("score", "score model outputs against a probe file");
  sc->add_option("probes", s->probes, "probe JSONL")->required();
  sc->add_option("outputs", s->outputs, "outputs JSONL, one {\"id\", \"output\"} per line")->required();
  sc->add_flag("--json", s->as_json, "print JSON instead of a table");
  sc->add_flag("--allow-missing", s->allow_missing, "score items without an output as wrong");
  sc->callback([s] {
    const auto items = read_jsonl(s->probes);
    const auto outputs = read_outputs(s->outputs, items, s->allow_missing);
    const Scores scores = score(items, outputs);
    if (s->as_json) {
      json j = {{"overall", accuracy_json(scores.overall)}};
      for (const auto& [cell, a] : scores.by_cell) j["by_cell"][to_string(cell)] = accuracy_json(a);
      for (const auto& [skill, a] : scores.by_skill) j["by_skill"][std::string(to_string(skill))] = accuracy_json(a);
      for (const auto& [domain, a] : scores.by_domain) j["by_domain"][std::string(to_string(domain))] = accuracy_json(a);
      std::cout << j.dump(2) << "\n";
      return;
    }
    char head[160];
    std::snprintf(head, sizeof head, "%-28s %6s %8s  %5s  %s\n", "cell", "n", "correct", "acc", "95% Wilson");
    std::cout << head;
    for (const auto& [cell, a] : scores.by_cell) print_row(to_string(cell), a);
    std::cout << "\n";
    for (const auto& [skill, a] : scores.by_skill) print_row(std::string(to_string(skill)), a);
    std::cout << "\n";
    for (const auto& [domain, a] : scores.by_domain) print_row(std::string(to_string(domain)), a);
    std::cout << "\n";
    print_row("overall", scores.overall);
  });
}

}  // namespace metaprobe::cli
