// `metaprobe divergence P.safetensors Q.safetensors`: divergence metrics between two logit tensors stored in
// safetensors files (e.g. dumped from two models on the same tokens), printed as JSON.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>

#include "commands.hpp"

namespace metaprobe::cli {
namespace {

struct DivergenceArgs {
  std::string p_path, q_path;
  std::string tensor = "logits";
  std::string mask_tensor, targets_tensor;
  std::vector<std::string> metrics;
  std::string reduction = "mean";
  std::string base = "e";
  double temperature = 1.0;
  double beta = 0.5;
  int64_t ignore_index = -100;
  int indent = 2;
};

// The named tensor of a file; a file holding exactly one tensor needs no name. `option` is the command-line
// option that named it (--tensor, --mask, --targets), which the error names.
at::Tensor read_tensor(const io::SafetensorsFile& file, const std::string& path, const std::string& name,
                       bool default_name, const char* option) {
  if (file.contains(name)) return file.tensor(name);
  const auto names = file.names();
  if (default_name && names.size() == 1) return file.tensor(names.front());
  std::string listed;
  for (const auto& n : names) listed += (listed.empty() ? "" : ", ") + n;
  throw InvalidArgument(std::string(option) + ": '" + name + "' is not in " + path + " (tensors: " + listed + ")");
}

// A result field as JSON: a number for a scalar, nested lists otherwise; NaN/inf become strings.
nlohmann::json to_json(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  auto number = [](double v) -> nlohmann::json {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return v;
  };
  if (d.dim() == 0) return number(d.item<double>());
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < d.size(0); ++i) out.push_back(to_json(d[i]));
  return out;
}

void run(const DivergenceArgs& a) {
  const auto p_file = io::SafetensorsFile::open(a.p_path);
  const auto q_file = io::SafetensorsFile::open(a.q_path);
  const bool default_name = a.tensor == "logits";
  DivergenceOptions options;
  options.temperature = a.temperature;
  options.beta = a.beta;
  options.reduction = parse_reduction(a.reduction);
  options.base = parse_log_base(a.base);
  options.ignore_index = a.ignore_index;
  if (!a.metrics.empty()) options.metrics = MetricSet::parse(a.metrics);
  if (!a.mask_tensor.empty()) options.mask = read_tensor(p_file, a.p_path, a.mask_tensor, false, "--mask");
  if (!a.targets_tensor.empty()) options.targets = read_tensor(p_file, a.p_path, a.targets_tensor, false, "--targets");
  const DivergenceResult r = divergence(read_tensor(p_file, a.p_path, a.tensor, default_name, "--tensor"),
                                        read_tensor(q_file, a.q_path, a.tensor, default_name, "--tensor"), options);
  nlohmann::json doc = {{"p", a.p_path}, {"q", a.q_path}, {"reduction", a.reduction}, {"count", r.count}};
  nlohmann::json metrics = nlohmann::json::object();
  for (Metric m : kAllMetrics) {
    if (r[m].defined()) metrics[std::string(to_string(m))] = to_json(r[m]);
  }
  doc["metrics"] = std::move(metrics);
  std::cout << doc.dump(a.indent) << "\n";
}

}  // namespace

void add_divergence_commands(CLI::App& app) {
  auto args = std::make_shared<DivergenceArgs>();
  auto* cmd = app.add_subcommand("divergence", "KL/JS and related metrics between two stored logit tensors [..., V]");
  cmd->add_option("p", args->p_path, "safetensors file with the reference logits")->required();
  cmd->add_option("q", args->q_path, "safetensors file with the compared logits")->required();
  cmd->add_option("--tensor", args->tensor, "Tensor name in both files (default 'logits', or the only tensor)");
  cmd->add_option("--mask", args->mask_tensor, "Name of a mask tensor over the leading dims, read from P's file");
  cmd->add_option("--targets", args->targets_tensor, "Name of a target-token tensor, read from P's file");
  cmd->add_option("--metrics", args->metrics, "Metric names (default: all)")->delimiter(',');
  cmd->add_option("--reduction", args->reduction, "none | row | mean")->capture_default_str();
  cmd->add_option("--base", args->base, "e (nats) or 2 (bits)")->capture_default_str();
  cmd->add_option("--temperature", args->temperature, "Divides both logits")->capture_default_str();
  cmd->add_option("--beta", args->beta, "Generalised JS weight")->capture_default_str();
  cmd->add_option("--ignore-index", args->ignore_index, "Target value that drops a position")->capture_default_str();
  cmd->add_option("--indent", args->indent, "JSON indentation (-1: one line)")->capture_default_str();
  cmd->callback([args] { run(*args); });
}

}  // namespace metaprobe::cli
