// `metaprobe run config.json`: a meta-probing run over TorchScript / safetensors stages, writing report.json.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/transformer.hpp>
#include <metaprobe/meta/run.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/suite.hpp>

#include "commands.hpp"

namespace metaprobe::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string resolve(const fs::path& base, const std::string& p) {
  fs::path path(p);
  return (path.is_absolute() ? path : base / path).lexically_normal().string();
}

// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean" suggestions.
size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// Throws InvalidArgument naming the first key of `obj` outside `known`, with the closest known key.
void check_keys(const json& obj, const std::vector<std::string>& known, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string best;
    size_t best_d = SIZE_MAX;
    for (const auto& k : known) {
      const size_t d = distance(it.key(), k);
      // close matches only: at most 2 edits, or a third of the longer name
      if (d <= std::max<size_t>(2, std::max(it.key().size(), k.size()) / 3) && d < best_d) best_d = d, best = k;
    }
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw InvalidArgument(where + ": unknown key \"" + it.key() + "\"" +
                          (best.empty() ? "" : " (did you mean \"" + best + "\"?)") + ", expected one of " + list);
  }
}

// Typed getters: a value of the wrong JSON type names the key and the type expected.
std::string get_string(const json& obj, const char* key, const std::string& where) {
  const auto& v = obj.at(key);
  if (!v.is_string())
    throw InvalidArgument(where + "." + key + ": got " + v.dump() + " (" + v.type_name() + "), expected a string");
  return v.get<std::string>();
}

int64_t get_int(const json& v, const std::string& name) {
  if (!v.is_number_integer())
    throw InvalidArgument(name + ": got " + v.dump() + " (" + (v.is_number_float() ? "a fractional number" : v.type_name()) +
                          "), expected an integer");
  return v.get<int64_t>();
}

std::vector<std::string> get_strings(const json& obj, const char* key, const std::string& where) {
  const auto& v = obj.at(key);
  if (!v.is_array()) throw InvalidArgument(where + "." + key + ": got " + v.dump() + ", expected an array of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw InvalidArgument(where + "." + key + "[" + std::to_string(i) + "]: got " + v[i].dump() + ", expected a string");
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// JSON text → value, rejecting a key that appears twice in one object (the last would silently win).
json parse_strict(const std::string& text, const std::string& path) {
  std::vector<std::set<std::string>> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) seen.emplace_back();
    if (ev == json::parse_event_t::object_end && !seen.empty()) seen.pop_back();
    if (ev == json::parse_event_t::key && !seen.empty() && !seen.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json cfg;
  try {
    cfg = json::parse(text, cb);
  } catch (const json::parse_error& e) {
    throw FormatError("run: config '" + path + "' is not JSON: " + e.what());
  }
  if (!duplicate.empty())
    throw InvalidArgument("run: config '" + path + "': key \"" + duplicate + "\" appears twice in one object, expected "
                          "each key once");
  return cfg;
}

std::vector<probes::Item> load_probes(const json& spec, const fs::path& base) {
  if (spec.is_string()) return probes::read_jsonl(resolve(base, spec.get<std::string>()));
  if (!spec.is_object())
    throw InvalidArgument("config.probes: got " + spec.dump() + ", expected a JSONL path or a suite spec object");
  check_keys(spec, {"n_per_cell", "difficulties", "seed", "skills", "domains"}, "config.probes");
  probes::SuiteSpec s;
  if (spec.contains("n_per_cell")) s.n_per_cell = static_cast<int>(get_int(spec.at("n_per_cell"), "config.probes.n_per_cell"));
  if (spec.contains("difficulties")) {
    const auto& d = spec.at("difficulties");
    if (!d.is_array()) throw InvalidArgument("config.probes.difficulties: got " + d.dump() + ", expected an array of integers");
    s.difficulties.clear();
    for (size_t i = 0; i < d.size(); ++i)
      s.difficulties.push_back(static_cast<int>(get_int(d[i], "config.probes.difficulties[" + std::to_string(i) + "]")));
  }
  if (spec.contains("seed")) {
    const int64_t seed = get_int(spec.at("seed"), "config.probes.seed");
    if (seed < 0) throw InvalidArgument("config.probes.seed: got " + std::to_string(seed) + ", expected an integer >= 0");
    s.seed = static_cast<uint64_t>(seed);
  }
  if (spec.contains("skills")) {
    s.skills.clear();
    for (const auto& k : get_strings(spec, "skills", "config.probes")) s.skills.push_back(probes::parse_skill(k));
  }
  if (spec.contains("domains")) {
    s.domains.clear();
    for (const auto& d : get_strings(spec, "domains", "config.probes")) s.domains.push_back(probes::parse_domain(d));
  }
  return probes::generate(s);
}

void require_file(const std::string& path, const std::string& where) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(where + ": '" + path + "' does not exist, expected a readable file");
}

// One stage; `max_len` is set to the model's context length for tiny_lm stages (0 otherwise).
meta::Stage load_stage(const json& j, const fs::path& base, size_t index, int64_t& max_len) {
  const std::string where = "config.stages[" + std::to_string(index) + "]";
  if (!j.is_object() || !j.contains("name"))
    throw InvalidArgument(where + ": got " + j.dump() + ", expected an object with a name");
  check_keys(j, {"name", "arm", "step", "torchscript", "weights", "tiny_lm", "checkpoint"}, where);
  meta::Stage s;
  s.name = get_string(j, "name", where);
  if (j.contains("arm")) s.arm = get_string(j, "arm", where);
  if (j.contains("step")) s.step = get_int(j.at("step"), where + ".step");
  std::string weights;
  max_len = 0;
  if (j.contains("torchscript")) {
    const std::string ts = resolve(base, get_string(j, "torchscript", where));
    require_file(ts, where + ".torchscript");
    weights = j.contains("weights") ? resolve(base, get_string(j, "weights", where)) : "";
    if (!weights.empty()) require_file(weights, where + ".weights");
    s.loader = [ts, weights]() {
      auto src = std::make_shared<meta::TorchScriptSource>(ts);
      if (!weights.empty()) src->load_safetensors(weights);
      return std::static_pointer_cast<meta::LogitSource>(src);
    };
  } else if (j.contains("tiny_lm")) {
    weights = resolve(base, get_string(j, "tiny_lm", where));
    require_file(weights, where + ".tiny_lm");
    max_len = lm::load(weights).config().max_len;
    s.loader = [weights]() {
      return std::static_pointer_cast<meta::LogitSource>(std::make_shared<meta::TinyLMSource>(
          std::make_shared<lm::TinyTransformer>(lm::load(weights)), "tiny_lm:" + weights));
    };
  } else {
    throw InvalidArgument(where + " ('" + s.name + "'): no model, expected \"torchscript\" (optionally with "
                          "\"weights\") or \"tiny_lm\"");
  }
  if (j.contains("checkpoint")) {
    if (!j.at("checkpoint").is_null()) {
      s.checkpoint_path = resolve(base, get_string(j, "checkpoint", where));
      require_file(s.checkpoint_path, where + ".checkpoint");
    }
  } else {
    s.checkpoint_path = weights;
  }
  return s;
}

// The longest prompt (with BOS) and the longest prompt + gold solution, in character-tokenizer tokens.
std::pair<size_t, size_t> longest_sequences(const std::vector<probes::Item>& items, const meta::RunOptions& o) {
  meta::CharTokenizerAdapter tok;
  const auto prompts = o.prompt_format == meta::PromptFormat::probe_template ? probes::render_all(items, o.prompt)
                                                                             : std::vector<std::string>{};
  size_t p = 0, ps = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const size_t len = 1 + tok.encode(prompts.empty() ? items[i].prompt : prompts[i]).size();
    p = std::max(p, len);
    ps = std::max(ps, len + tok.encode(o.solution_separator + items[i].reference_solution).size());
  }
  return {p, ps};
}

// What `metaprobe run` was given on its command line.
struct RunArgs {
  std::string config, output, out_dir;
  bool quiet = false, resume = false;
};

int run_command(const RunArgs& args) {
  const std::string& config_path = args.config;
  const std::string& output_override = args.output;
  const bool quiet = args.quiet;
  if (args.resume && args.out_dir.empty())
    throw InvalidArgument("run: --resume needs --out DIR, the run directory to continue");
  std::ifstream f(config_path);
  if (!f) throw IoError("run: cannot open config '" + config_path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  json cfg = parse_strict(ss.str(), config_path);
  if (!cfg.is_object()) throw FormatError("run: config '" + config_path + "' is not a JSON object");
  const fs::path base = fs::absolute(config_path).parent_path();
  // Validate the whole config before any work starts.
  check_keys(cfg, {"probes", "stages", "options", "output", "tokenizer"}, "config");
  for (const char* key : {"probes", "stages"})
    if (!cfg.contains(key)) throw InvalidArgument(std::string("run: config has no \"") + key + "\"");
  if (cfg.contains("tokenizer")) {
    const std::string tok = get_string(cfg, "tokenizer", "config");
    if (tok != "char")
      throw Unsupported("run: config.tokenizer is \"" + tok +
                        "\", the CLI only has \"char\" (use the Python API for other tokenizers)");
  }
  if (cfg.contains("options") && !cfg.at("options").is_object())
    throw InvalidArgument("config.options: got " + cfg.at("options").dump() + ", expected an object");
  meta::RunOptions options = meta::options_from_json(cfg.value("options", json::object()));
  const std::string out = !output_override.empty()  ? output_override
                          : cfg.contains("output")  ? resolve(base, get_string(cfg, "output", "config"))
                          : !args.out_dir.empty()   ? (fs::path(args.out_dir) / "report.json").string()
                                                    : (base / "report.json").string();
  if (!args.out_dir.empty()) {  // the run directory is created by the run; its parent must exist
    std::error_code ec;
    fs::create_directories(args.out_dir, ec);
    if (ec) throw IoError("run: --out '" + args.out_dir + "': cannot create the run directory: " + ec.message());
  }
  {
    fs::path dir = fs::path(out).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw IoError("config.output: the directory '" + dir.string() + "' of '" + out + "' does not exist, expected an "
                    "existing directory");
    if (::access(dir.c_str(), W_OK) != 0)
      throw IoError("config.output: the directory '" + dir.string() + "' is not writable, expected a writable directory");
  }
  const auto& stages_json = cfg.at("stages");
  if (!stages_json.is_array() || stages_json.empty())
    throw InvalidArgument("config.stages: got " + stages_json.dump() + ", expected a non-empty array of stage objects");
  auto items = load_probes(cfg.at("probes"), base);
  std::vector<meta::Stage> stages;
  const auto [prompt_len, tf_len] = longest_sequences(items, options);
  for (size_t index = 0; index < stages_json.size(); ++index) {
    int64_t max_len = 0;
    stages.push_back(load_stage(stages_json[index], base, index, max_len));
    if (max_len > 0 && (static_cast<int64_t>(prompt_len) >= max_len ||
                        (options.divergence_on == meta::DivergenceOn::gold && static_cast<int64_t>(tf_len) > max_len)))
      throw InvalidArgument("config.stages[" + std::to_string(index) + "] ('" + stages.back().name + "'): the longest " +
                            (static_cast<int64_t>(prompt_len) >= max_len ? "prompt has " + std::to_string(prompt_len)
                                                                         : "prompt + solution has " + std::to_string(tf_len)) +
                            " tokens, expected fewer than the model's max_len " + std::to_string(max_len));
  }
  const bool show = !quiet && isatty(STDERR_FILENO);
  if (show) {
    options.progress = [](const meta::RunProgress& p) {
      std::cerr << "\r[meta] " << p.done << "/" << p.total << " " << p.phase << " " << p.stage << "\033[K" << std::flush;
    };
  }
  meta::Run run(std::move(items), std::make_shared<meta::CharTokenizerAdapter>(), options);
  for (auto& s : stages) run.add_stage(std::move(s));
  meta::Report report = run.run(meta::RunPlan{args.out_dir, args.resume});
  if (show) std::cerr << "\n";
  meta::save(report, out);
  if (!quiet) {
    std::cout << "stage\tarm\tstep\tacc\tjs\tkl_ref_stage\n";
    for (const auto& s : report.stages) {
      std::cout << s.info.name << "\t" << s.info.arm << "\t" << s.info.step << "\t"
                << (s.behaviour ? std::to_string(s.behaviour->overall.acc) : "-") << "\t"
                << (s.divergence ? std::to_string(s.divergence->total.js) : "-") << "\t"
                << (s.divergence ? std::to_string(s.divergence->total.kl_ref_stage) : "-") << "\n";
    }
    std::cout << "wrote " << out << " (HTML: python -c \"import metaprobe; metaprobe.Report.load('" << out
              << "').to_html('report.html')\")\n";
  }
  return 0;
}

}  // namespace

void add_run_commands(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Meta-probe the stages of a config.json and write the report (docs/meta.md)");
  auto args = std::make_shared<RunArgs>();
  cmd->add_option("config", args->config, "JSON config: probes, stages, options, output")->required();
  cmd->add_option("-o,--output", args->output, "report path (overrides config.output)");
  cmd->add_option("--out", args->out_dir,
                  "run directory: each stage stored as it finishes, report.json at the end (default report path)");
  cmd->add_flag("--resume", args->resume, "continue the run in --out, skipping its finished stages");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress line and no summary");
  cmd->callback([args]() {
    int rc = 0;
    try {
      rc = run_command(*args);
    } catch (const nlohmann::json::exception& e) {  // a type the validation above did not foresee: one line, rc 1
      throw InvalidArgument(std::string("run: config '") + args->config + "': a value has the wrong JSON type: " + e.what());
    }
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace metaprobe::cli
