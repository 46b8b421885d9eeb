// `metaprobe run config.json`: a meta-probing run over TorchScript / safetensors stages, writing report.json.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/transformer.hpp>
#include <metaprobe/meta/run.hpp>
#include <metaprobe/probes/jsonl.hpp>
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

std::vector<probes::Item> load_probes(const json& spec, const fs::path& base) {
  if (spec.is_string()) return probes::read_jsonl(resolve(base, spec.get<std::string>()));
  if (!spec.is_object())
    throw InvalidArgument("config.probes: got " + spec.dump() + ", expected a JSONL path or a suite spec object");
  probes::SuiteSpec s;
  if (spec.contains("n_per_cell")) s.n_per_cell = spec.at("n_per_cell").get<int>();
  if (spec.contains("difficulties")) s.difficulties = spec.at("difficulties").get<std::vector<int>>();
  if (spec.contains("seed")) s.seed = spec.at("seed").get<uint64_t>();
  if (spec.contains("skills")) {
    s.skills.clear();
    for (const auto& k : spec.at("skills")) s.skills.push_back(probes::parse_skill(k.get<std::string>()));
  }
  if (spec.contains("domains")) {
    s.domains.clear();
    for (const auto& d : spec.at("domains")) s.domains.push_back(probes::parse_domain(d.get<std::string>()));
  }
  return probes::generate(s);
}

meta::Stage load_stage(const json& j, const fs::path& base, size_t index) {
  const std::string where = "config.stages[" + std::to_string(index) + "]";
  if (!j.is_object() || !j.contains("name"))
    throw InvalidArgument(where + ": got " + j.dump() + ", expected an object with a name");
  meta::Stage s;
  s.name = j.at("name").get<std::string>();
  s.arm = j.value("arm", std::string("base"));
  s.step = j.value("step", int64_t{0});
  std::string weights;
  if (j.contains("torchscript")) {
    const std::string ts = resolve(base, j.at("torchscript").get<std::string>());
    weights = j.contains("weights") ? resolve(base, j.at("weights").get<std::string>()) : "";
    s.loader = [ts, weights]() {
      auto src = std::make_shared<meta::TorchScriptSource>(ts);
      if (!weights.empty()) src->load_safetensors(weights);
      return std::static_pointer_cast<meta::LogitSource>(src);
    };
  } else if (j.contains("tiny_lm")) {
    weights = resolve(base, j.at("tiny_lm").get<std::string>());
    s.loader = [weights]() {
      return std::static_pointer_cast<meta::LogitSource>(std::make_shared<meta::TinyLMSource>(
          std::make_shared<lm::TinyTransformer>(lm::load(weights)), "tiny_lm:" + weights));
    };
  } else {
    throw InvalidArgument(where + " ('" + s.name + "'): no model, expected \"torchscript\" (optionally with "
                          "\"weights\") or \"tiny_lm\"");
  }
  if (j.contains("checkpoint")) {
    if (!j.at("checkpoint").is_null()) s.checkpoint_path = resolve(base, j.at("checkpoint").get<std::string>());
  } else {
    s.checkpoint_path = weights;
  }
  return s;
}

int run_command(const std::string& config_path, const std::string& output_override, bool quiet) {
  std::ifstream f(config_path);
  if (!f) throw IoError("run: cannot open config '" + config_path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  json cfg;
  try {
    cfg = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw FormatError("run: config '" + config_path + "' is not JSON: " + e.what());
  }
  if (!cfg.is_object()) throw FormatError("run: config '" + config_path + "' is not a JSON object");
  const fs::path base = fs::absolute(config_path).parent_path();
  for (const char* key : {"probes", "stages"})
    if (!cfg.contains(key)) throw InvalidArgument(std::string("run: config has no \"") + key + "\"");
  if (cfg.value("tokenizer", std::string("char")) != "char")
    throw Unsupported("run: config.tokenizer is " + cfg.at("tokenizer").dump() +
                      ", the CLI only has \"char\" (use the Python API for other tokenizers)");
  meta::RunOptions options = meta::options_from_json(cfg.value("options", json::object()));
  const bool show = !quiet && isatty(STDERR_FILENO);
  if (show) {
    options.progress = [](const meta::RunProgress& p) {
      std::cerr << "\r[meta] " << p.done << "/" << p.total << " " << p.phase << " " << p.stage << "\033[K" << std::flush;
    };
  }
  meta::Run run(load_probes(cfg.at("probes"), base), std::make_shared<meta::CharTokenizerAdapter>(), options);
  size_t index = 0;
  for (const auto& s : cfg.at("stages")) run.add_stage(load_stage(s, base, index++));
  meta::Report report = run.run();
  if (show) std::cerr << "\n";
  const std::string out = !output_override.empty() ? output_override
                          : cfg.contains("output") ? resolve(base, cfg.at("output").get<std::string>())
                                                   : (base / "report.json").string();
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
  auto config = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("config", *config, "JSON config: probes, stages, options, output")->required();
  cmd->add_option("-o,--output", *output, "report path (overrides config.output)");
  cmd->add_flag("-q,--quiet", *quiet, "no progress line and no summary");
  cmd->callback([config, output, quiet]() {
    const int rc = run_command(*config, *output, *quiet);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace metaprobe::cli
