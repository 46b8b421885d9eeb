// RunOptions: validation and JSON.
#include <metaprobe/meta/options.hpp>

#include <cmath>
#include <algorithm>
#include <set>

#include <metaprobe/error.hpp>

#include "common/json_read.hpp"

namespace metaprobe::meta {
namespace {

std::string cell_name(const probes::Cell& c) { return probes::to_string(c); }

probes::Cell parse_cell(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos)
    throw InvalidArgument("target_cells: '" + text + "' is not a cell, expected \"skill/domain\" (e.g. calculation/math)");
  return {probes::parse_skill(text.substr(0, slash)), probes::parse_domain(text.substr(slash + 1))};
}

}  // namespace

std::vector<std::string> razor_metric_names() { return {"kl_ref_stage", "kl_stage_ref", "js", "sampled_kl"}; }

void RunOptions::validate() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& expected) {
    throw InvalidArgument("RunOptions." + field + " is " + value + ", expected " + expected);
  };
  if (reference.empty()) bad("reference", "empty", "the name of a stage");
  if (max_new_tokens < 1) bad("max_new_tokens", std::to_string(max_new_tokens), ">= 1");
  for (const auto& s : stop)
    if (s.empty()) bad("stop", "a list with an empty string", "non-empty stop strings");
  if (!(std::isfinite(z) && z > 0)) bad("z", std::to_string(z), "a finite value > 0");
  if (cache_k < 1) bad("cache_k", std::to_string(cache_k), ">= 1");
  if (!(std::isfinite(divergence_temperature) && divergence_temperature > 0))
    bad("divergence_temperature", std::to_string(divergence_temperature), "a finite value > 0");
  if (n_samples < 1) bad("n_samples", std::to_string(n_samples), ">= 1");
  if (n_samples > 1 && !do_sample) bad("n_samples", std::to_string(n_samples), "1 unless do_sample is true (greedy samples are identical)");
  if (prompt_format != "template" && prompt_format != "chat_template" && prompt_format != "raw")
    bad("prompt_format", "'" + prompt_format + "'", "one of template, chat_template, raw");
  if (!think_open.empty() && think_close.empty()) bad("think_close", "empty", "a closing tag when think_open is set");
  if (divergence_on != "reference_samples" && divergence_on != "stage_samples" && divergence_on != "gold")
    bad("divergence_on", "'" + divergence_on + "'", "one of reference_samples, stage_samples, gold");
  if (divergence_on == "stage_samples" && reference_mode == ReferenceMode::topk_cache)
    bad("divergence_on", "'stage_samples' with reference_mode topk_cache",
        "reference_samples or gold (the cache is built before the stages answer)");
  if (batch_tokens < 1) bad("batch_tokens", std::to_string(batch_tokens), ">= 1");
  if (score_rows < 1) bad("score_rows", std::to_string(score_rows), ">= 1");
  if (vocab_size < 0) bad("vocab_size", std::to_string(vocab_size), ">= 0 (0: each model's whole vocabulary)");
  try {
    decode_options().validate();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("RunOptions.") + (e.what() + std::string("generation.").size()));
  }
  if (!(js_threshold >= 0 && js_threshold < std::log(2.0)))
    bad("js_threshold", std::to_string(js_threshold), "a value in [0, ln 2) nats");
  if (position_bins < 1 || position_bins > 1000) bad("position_bins", std::to_string(position_bins), "1..1000");
  if (!(collapse_delta >= 0 && collapse_delta <= 1)) bad("collapse_delta", std::to_string(collapse_delta), "in [0, 1]");
  if (batch_size < 1) bad("batch_size", std::to_string(batch_size), ">= 1");
  if (!(update.atol >= 0)) bad("update.atol", std::to_string(update.atol), ">= 0");
  if (!(update.eta >= 0)) bad("update.eta", std::to_string(update.eta), ">= 0");
  const auto names = razor_metric_names();
  if (std::find(names.begin(), names.end(), razor_metric) == names.end())
    bad("razor_metric", "'" + razor_metric + "'", "one of kl_ref_stage, kl_stage_ref, js, sampled_kl");
  probes::parse_domain(target_domain);
  probes::PromptOptions p = prompt;
  const auto templates = probes::template_names();
  if (std::find(templates.begin(), templates.end(), p.template_name) == templates.end())
    bad("prompt.template_name", "'" + p.template_name + "'", "one of plain, chat, few_shot");
}

// Here rather than in logit_source.cpp so that the run-config parser links without ATen (tests/fuzz).
void DecodeOptions::validate() const {
  auto bad = [](const std::string& field, const std::string& value, const std::string& expected) {
    throw InvalidArgument("generation." + field + " is " + value + ", expected " + expected);
  };
  if (!(std::isfinite(temperature) && temperature > 0)) bad("temperature", std::to_string(temperature), "a finite value > 0");
  if (!(top_p > 0 && top_p <= 1)) bad("top_p", std::to_string(top_p), "a value in (0, 1]");
  if (top_k < 0) bad("top_k", std::to_string(top_k), ">= 0 (0 = whole vocabulary)");
  if (max_new_tokens < 1) bad("max_new_tokens", std::to_string(max_new_tokens), ">= 1");
  for (const auto& s : stop)
    if (s.empty()) bad("stop", "a list with an empty string", "non-empty stop strings");
  for (int64_t e : eos_ids)
    if (e < 0) bad("eos_ids", "a list with " + std::to_string(e), "ids >= 0");
  if (vocab_limit < 0) bad("vocab_limit", std::to_string(vocab_limit), ">= 0 (0: the whole vocabulary)");
}

DecodeOptions RunOptions::decode_options() const {
  DecodeOptions d;
  d.do_sample = do_sample;
  d.temperature = temperature;
  d.top_p = top_p;
  d.top_k = top_k;
  d.max_new_tokens = max_new_tokens;
  d.stop = stop;
  d.eos_ids = eos_ids;
  d.vocab_limit = vocab_size;
  return d;
}

std::vector<probes::Cell> RunOptions::resolved_target_cells() const {
  if (!target_cells.empty()) return target_cells;
  const probes::Domain d = probes::parse_domain(target_domain);
  std::vector<probes::Cell> cells;
  for (auto s : probes::kAllSkills) cells.push_back({s, d});
  return cells;
}

nlohmann::json options_to_json(const RunOptions& o) {
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& c : o.target_cells) cells.push_back(cell_name(c));
  return {
      {"reference", o.reference},
      {"behaviour", o.behaviour},
      {"prompt", {{"template", o.prompt.template_name}, {"k", o.prompt.k}, {"seed", o.prompt.seed}}},
      {"choice_mode", o.choice_mode},
      {"choice_delimiter", o.choice_delimiter},
      {"choice_norm", o.choice_norm},
      {"max_new_tokens", o.max_new_tokens},
      {"stop", o.stop},
      {"z", o.z},
      {"do_sample", o.do_sample},
      {"temperature", o.temperature},
      {"top_p", o.top_p},
      {"top_k", o.top_k},
      {"n_samples", o.n_samples},
      {"seed", o.seed},
      {"eos_ids", o.eos_ids},
      {"prompt_format", o.prompt_format},
      {"system_prompt", o.system_prompt},
      {"think_open", o.think_open},
      {"think_close", o.think_close},
      {"divergence", o.divergence},
      {"divergence_on", o.divergence_on},
      {"solution_separator", o.solution_separator},
      {"reference_mode", o.reference_mode},
      {"cache_k", o.cache_k},
      {"divergence_temperature", o.divergence_temperature},
      {"js_threshold", o.js_threshold},
      {"position_bins", o.position_bins},
      {"sampled_estimator", o.sampled_estimator},
      {"huan_skip_first_token", o.huan_skip_first_token},
      {"parameters", o.parameters},
      {"update_atol", o.update.atol},
      {"update_eta", o.update.eta},
      {"update_emulate_bf16", o.update_emulate_bf16},
      {"update_nonfinite", o.update_nonfinite},
      {"target_cells", cells},
      {"target_domain", o.target_domain},
      {"collapse_delta", o.collapse_delta},
      {"razor_metric", o.razor_metric},
      {"razor_include_reference", o.razor_include_reference},
      {"batch_size", o.batch_size},
      {"vocab_size", o.vocab_size},
      {"batch_tokens", o.batch_tokens},
      {"score_rows", o.score_rows},
  };
}

RunOptions options_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw InvalidArgument("options: got JSON " + std::string(j.type_name()) + ", expected an object");
  RunOptions o;
  const std::set<std::string> known = {"reference", "behaviour", "prompt", "choice_mode", "choice_delimiter",
                                       "choice_norm", "max_new_tokens", "stop", "z", "divergence",
                                       "solution_separator", "reference_mode", "cache_k", "temperature",
                                       "js_threshold", "position_bins", "sampled_estimator", "huan_skip_first_token", "parameters",
                                       "update_atol", "update_eta", "update_emulate_bf16", "update_nonfinite", "target_cells", "target_domain",
                                       "collapse_delta", "razor_metric", "razor_include_reference", "batch_size",
                                       "do_sample", "top_p", "top_k", "n_samples", "seed", "eos_ids",
                                       "prompt_format", "system_prompt", "think_open", "think_close",
                                       "divergence_temperature", "divergence_on", "batch_tokens", "score_rows",
                                       "vocab_size"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key()))
      throw InvalidArgument("options: unknown key '" + it.key() + "', expected one of the RunOptions fields (docs/meta.md)");
  // One message for every field of the wrong kind or out of its type's range (a negative or fractional seed).
  auto read = [](const nlohmann::json& obj, const std::string& where, const char* key, auto& field) {
    if (!obj.contains(key)) return;
    if (!detail::read_json(obj.at(key), field))
      throw InvalidArgument(where + key + ": got " + obj.at(key).dump() +
                            ", expected a value of the documented type and range (docs/meta.md)");
  };
  auto get = [&](const char* key, auto& field) { read(j, "options.", key, field); };
  try {
    get("reference", o.reference);
    get("behaviour", o.behaviour);
    if (j.contains("prompt")) {
      const auto& p = j.at("prompt");
      if (!p.is_object()) throw InvalidArgument("options.prompt: got " + p.dump() + ", expected an object {template, k, seed}");
      read(p, "options.prompt.", "template", o.prompt.template_name);
      read(p, "options.prompt.", "k", o.prompt.k);
      read(p, "options.prompt.", "seed", o.prompt.seed);
    }
    if (j.contains("choice_mode")) o.choice_mode = j.at("choice_mode").get<ChoiceMode>();
    get("choice_delimiter", o.choice_delimiter);
    get("choice_norm", o.choice_norm);
    get("max_new_tokens", o.max_new_tokens);
    get("stop", o.stop);
    get("z", o.z);
    get("divergence", o.divergence);
    get("solution_separator", o.solution_separator);
    if (j.contains("reference_mode")) o.reference_mode = j.at("reference_mode").get<ReferenceMode>();
    get("cache_k", o.cache_k);
    get("temperature", o.temperature);
    get("do_sample", o.do_sample);
    get("top_p", o.top_p);
    get("top_k", o.top_k);
    get("n_samples", o.n_samples);
    get("seed", o.seed);
    get("eos_ids", o.eos_ids);
    get("prompt_format", o.prompt_format);
    get("system_prompt", o.system_prompt);
    get("think_open", o.think_open);
    get("think_close", o.think_close);
    get("divergence_temperature", o.divergence_temperature);
    get("divergence_on", o.divergence_on);
    get("batch_tokens", o.batch_tokens);
    get("score_rows", o.score_rows);
    get("js_threshold", o.js_threshold);
    get("position_bins", o.position_bins);
    get("sampled_estimator", o.sampled_estimator);
    get("huan_skip_first_token", o.huan_skip_first_token);
    get("parameters", o.parameters);
    get("update_atol", o.update.atol);
    get("update_eta", o.update.eta);
    get("update_emulate_bf16", o.update_emulate_bf16);
    if (j.contains("update_nonfinite")) {
      std::string name;
      read(j, "options.", "update_nonfinite", name);
      o.update_nonfinite = params::parse_nonfinite_policy(name, "options.update_nonfinite");
    }
    if (j.contains("target_cells")) {
      o.target_cells.clear();
      for (const auto& c : j.at("target_cells")) o.target_cells.push_back(parse_cell(c.get<std::string>()));
    }
    get("target_domain", o.target_domain);
    get("collapse_delta", o.collapse_delta);
    get("razor_metric", o.razor_metric);
    get("razor_include_reference", o.razor_include_reference);
    get("batch_size", o.batch_size);
    get("vocab_size", o.vocab_size);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string("options: a value has the wrong JSON type: ") + e.what());
  }
  o.validate();
  return o;
}

}  // namespace metaprobe::meta
