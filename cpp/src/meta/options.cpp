// RunOptions: validation, and JSON derived from the field list (METAPROBE_RUN_OPTIONS_FIELDS).
#include <metaprobe/meta/options.hpp>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <metaprobe/error.hpp>

#include "common/json_read.hpp"

namespace metaprobe::meta {
namespace {

using nlohmann::json;

probes::Cell parse_cell(const std::string& text, const std::string& where) {
  const auto slash = text.find('/');
  if (slash == std::string::npos)
    throw InvalidArgument(where + ": '" + text + "' is not a cell, expected \"skill/domain\" (e.g. calculation/math)");
  return {probes::parse_skill(text.substr(0, slash)), probes::parse_domain(text.substr(slash + 1))};
}

// A list of enums or cells (read and written element by element; lists of numbers and strings in one go).
template <class V>
struct is_composite_vector : std::false_type {};
template <class E>
struct is_composite_vector<std::vector<E>>
    : std::bool_constant<!std::is_arithmetic_v<E> && !std::is_same_v<E, std::string>> {};

// One option's JSON: a nested record as an object, an enum by its name, a cell as "skill/domain".
template <class V>
json option_to_json(const V& v) {
  if constexpr (is_record<V>::value) {
    json j = json::object();
    for_each_field(v, [&](const char* key, const auto& field, FieldPresence) { j[key] = option_to_json(field); });
    return j;
  } else if constexpr (std::is_enum_v<V>) {
    return std::string(enum_name(v));
  } else if constexpr (std::is_same_v<V, probes::Cell>) {
    return probes::to_string(v);
  } else if constexpr (is_composite_vector<V>::value) {
    json a = json::array();
    for (const auto& e : v) a.push_back(option_to_json(e));
    return a;
  } else {
    return json(v);
  }
}

[[noreturn]] void bad_kind(const std::string& where, const json& j) {
  throw InvalidArgument(where + ": got " + j.dump() + ", expected a value of the documented type and range (docs/meta.md)");
}

template <class T>
void read_option_record(const json& j, T& r, const std::string& where);

// `j` read into one option at path `where` ("options.prompt.k"): its JSON kind must match and an integer
// must fit (no truncation or wrap-around); an enum or a cell must name one.
template <class V>
void read_option(const json& j, V& out, const std::string& where) {
  if constexpr (is_record<V>::value) {
    read_option_record(j, out, where);
  } else if constexpr (std::is_enum_v<V>) {
    // An enum whose name table is named after this very option keeps the table's own messages
    // ("choice_mode: 'x' is not a choice mode, ..."); one named otherwise is reported under the option's path.
    if (where.substr(where.rfind('.') + 1) == kEnumTable<V>.field) {
      enum_detail::enum_from_json(j, out);
      return;
    }
    if (!j.is_string()) bad_kind(where, j);
    out = parse_enum<V>(j.get_ref<const std::string&>(), where);
  } else if constexpr (std::is_same_v<V, probes::Cell>) {
    if (!j.is_string()) bad_kind(where, j);
    out = parse_cell(j.get_ref<const std::string&>(), where);
  } else if constexpr (is_composite_vector<V>::value) {
    if (!j.is_array()) bad_kind(where, j);
    V values(j.size());
    for (size_t i = 0; i < j.size(); ++i) read_option(j[i], values[i], where + "[" + std::to_string(i) + "]");
    out = std::move(values);
  } else {
    if (!detail::read_json(j, out)) bad_kind(where, j);
  }
}

std::string joined_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s;
}

// Every key of the object `j` must be in T's list; absent keys keep r's values.
template <class T>
void read_option_record(const json& j, T& r, const std::string& where) {
  const std::vector<std::string> keys = record_field_names<T>();
  if (!j.is_object()) {
    throw InvalidArgument(where + ": got JSON " + std::string(j.type_name()) + " " + j.dump() +
                          ", expected an object" +
                          (std::is_same_v<T, RunOptions> ? std::string() : " {" + joined_keys(keys) + "}"));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
      throw InvalidArgument(where + ": unknown key '" + it.key() + "', expected one of " +
                            (std::is_same_v<T, RunOptions> ? std::string("the RunOptions fields (docs/meta.md)")
                                                           : joined_keys(keys)));
    }
  }
  for_each_field(r, [&](const char* key, auto& field, FieldPresence) {
    const auto it = j.find(key);
    if (it != j.end()) read_option(*it, field, where + "." + key);
  });
}

// The path of the option stored at `member` (a leaf of r's list, "prompt.template"); "" when none is.
template <class T>
std::string option_path_of(const T& r, const void* member) {
  std::string path;
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) {
    using V = std::decay_t<decltype(v)>;
    if (!path.empty()) return;
    if constexpr (is_record<V>::value) {
      const std::string sub = option_path_of(v, member);
      if (!sub.empty()) path = std::string(key) + "." + sub;
    } else if (static_cast<const void*>(&v) == member) {
      path = key;
    }
  });
  return path;
}

}  // namespace

void RunOptions::validate() const {
  // Each rule names its option by the path the field list gives the member (RunOptions.update_atol, ...).
  auto bad = [this](const auto& member, const std::string& value, const std::string& expected) {
    throw InvalidArgument("RunOptions." + option_path_of(*this, &member) + " is " + value + ", expected " + expected);
  };
  if (reference.empty()) bad(reference, "empty", "the name of a stage");
  if (max_new_tokens < 1) bad(max_new_tokens, std::to_string(max_new_tokens), ">= 1");
  for (const auto& s : stop)
    if (s.empty()) bad(stop, "a list with an empty string", "non-empty stop strings");
  if (!(std::isfinite(z) && z > 0)) bad(z, std::to_string(z), "a finite value > 0");
  if (cache_k < 1) bad(cache_k, std::to_string(cache_k), ">= 1");
  if (!(std::isfinite(divergence_temperature) && divergence_temperature > 0))
    bad(divergence_temperature, std::to_string(divergence_temperature), "a finite value > 0");
  if (n_samples < 1) bad(n_samples, std::to_string(n_samples), ">= 1");
  if (n_samples > 1 && !do_sample) bad(n_samples, std::to_string(n_samples), "1 unless do_sample is true (greedy samples are identical)");
  if (!think_open.empty() && think_close.empty()) bad(think_close, "empty", "a closing tag when think_open is set");
  if (divergence_on == DivergenceOn::stage_samples && reference_mode == ReferenceMode::topk_cache)
    bad(divergence_on, "'stage_samples' with reference_mode topk_cache",
        "reference_samples or gold (the cache is built before the stages answer)");
  if (batch_tokens < 1) bad(batch_tokens, std::to_string(batch_tokens), ">= 1");
  if (score_rows < 1) bad(score_rows, std::to_string(score_rows), ">= 1");
  if (vocab_size < 0) bad(vocab_size, std::to_string(vocab_size), ">= 0 (0: each model's whole vocabulary)");
  try {
    decode_options().validate();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("RunOptions.") + (e.what() + std::string("generation.").size()));
  }
  if (!(js_threshold >= 0 && js_threshold < std::log(2.0)))
    bad(js_threshold, std::to_string(js_threshold), "a value in [0, ln 2) nats");
  if (position_bins < 1 || position_bins > 1000) bad(position_bins, std::to_string(position_bins), "1..1000");
  if (!(collapse_delta >= 0 && collapse_delta <= 1)) bad(collapse_delta, std::to_string(collapse_delta), "in [0, 1]");
  if (batch_size < 1) bad(batch_size, std::to_string(batch_size), ">= 1");
  if (!(update.atol >= 0)) bad(update.atol, std::to_string(update.atol), ">= 0");
  if (!(update.eta >= 0)) bad(update.eta, std::to_string(update.eta), ">= 0");
  const auto templates = probes::template_names();
  if (std::find(templates.begin(), templates.end(), prompt.template_name) == templates.end())
    bad(prompt.template_name, "'" + prompt.template_name + "'", "one of plain, chat, few_shot");
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
  std::vector<probes::Cell> cells;
  for (auto s : probes::kAllSkills) cells.push_back({s, target_domain});
  return cells;
}

nlohmann::json options_to_json(const RunOptions& o) { return option_to_json(o); }

RunOptions options_from_json(const nlohmann::json& j) {
  RunOptions o;
  read_option_record(j, o, "options");
  o.validate();
  return o;
}

std::vector<std::string> option_paths() { return record_field_paths<RunOptions>(); }

}  // namespace metaprobe::meta
