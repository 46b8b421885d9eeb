// The report document: JSON with NaN/inf as null, strict parsing, atomic save.
#include <metaprobe/meta/report.hpp>

#include <cmath>
#include <limits>

#include <metaprobe/error.hpp>
#include <metaprobe/params/report.hpp>

#include "internal.hpp"

namespace nlohmann {

template <>
struct adl_serializer<metaprobe::probes::Cell> {
  static void to_json(json& j, const metaprobe::probes::Cell& c) {
    j = {{"skill", metaprobe::probes::to_string(c.skill)}, {"domain", metaprobe::probes::to_string(c.domain)}};
  }
  static void from_json(const json& j, metaprobe::probes::Cell& c) {
    try {
      c.skill = metaprobe::probes::parse_skill(j.at("skill").get<std::string>());
      c.domain = metaprobe::probes::parse_domain(j.at("domain").get<std::string>());
    } catch (const metaprobe::InvalidArgument& e) {
      throw metaprobe::FormatError(std::string("report: bad cell ") + j.dump() + ": " + e.what());
    }
  }
};

template <>
struct adl_serializer<metaprobe::probes::Accuracy> {
  static void to_json(json& j, const metaprobe::probes::Accuracy& a) {
    j = {{"n", a.n}, {"correct", a.correct}, {"acc", a.acc}, {"lo", a.lo}, {"hi", a.hi}};
  }
  static void from_json(const json& j, metaprobe::probes::Accuracy& a) {
    j.at("n").get_to(a.n);
    j.at("correct").get_to(a.correct);
    j.at("acc").get_to(a.acc);
    j.at("lo").get_to(a.lo);
    j.at("hi").get_to(a.hi);
  }
};

template <>
struct adl_serializer<metaprobe::params::GroupStats> {
  static void to_json(json& j, const metaprobe::params::GroupStats& g) {
    j = {{"key", g.key},
         {"layer", g.layer},
         {"tensors", g.tensors},
         {"numel", g.numel},
         {"delta_fro", g.delta_fro},
         {"ref_fro", g.ref_fro},
         {"tuned_fro", g.tuned_fro},
         {"rel_update_norm", g.rel_update_norm},
         {"cosine", g.cosine},
         {"max_abs_delta", g.max_abs_delta},
         {"sparsity_abs", g.sparsity_abs},
         {"sparsity_rel", g.sparsity_rel},
         {"unchanged_fraction", g.unchanged_fraction},
         {"sign_flip_fraction", g.sign_flip_fraction},
         {"nonfinite_count", g.nonfinite_count},
         {"mean_tensor_sparsity_abs", g.mean_tensor_sparsity_abs},
         {"mean_tensor_nonzero_fraction", g.mean_tensor_nonzero_fraction}};
  }
  static void from_json(const json& j, metaprobe::params::GroupStats& g) {
    j.at("key").get_to(g.key);
    j.at("layer").get_to(g.layer);
    j.at("tensors").get_to(g.tensors);
    j.at("numel").get_to(g.numel);
    j.at("delta_fro").get_to(g.delta_fro);
    j.at("ref_fro").get_to(g.ref_fro);
    j.at("tuned_fro").get_to(g.tuned_fro);
    j.at("rel_update_norm").get_to(g.rel_update_norm);
    j.at("cosine").get_to(g.cosine);
    j.at("max_abs_delta").get_to(g.max_abs_delta);
    j.at("sparsity_abs").get_to(g.sparsity_abs);
    j.at("sparsity_rel").get_to(g.sparsity_rel);
    j.at("unchanged_fraction").get_to(g.unchanged_fraction);
    j.at("sign_flip_fraction").get_to(g.sign_flip_fraction);
    // Added in the same schema version: older documents lack them (their summaries were finite-only).
    g.nonfinite_count = j.value("nonfinite_count", int64_t{0});
    g.mean_tensor_sparsity_abs = j.value("mean_tensor_sparsity_abs", std::numeric_limits<double>::quiet_NaN());
    g.mean_tensor_nonzero_fraction = j.value("mean_tensor_nonzero_fraction", std::numeric_limits<double>::quiet_NaN());
  }
};

}  // namespace nlohmann

namespace metaprobe::meta {

// The generation fields came later than schema version 1: reports without them read with the defaults.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ItemResult, id, cell, mode, output, extracted, correct,
                                                generated_tokens, loglikelihoods, finish_reason, think_tokens,
                                                think_closed, samples, correct_samples, phrasing, noop)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PassAtK, k, value)
// Records whose later fields (added within schema version 1) may be absent: every original field is required,
// the later ones read as their defaults (NaN) when absent. METAPROBE_JSON_FIELDS lists them once for both
// directions.
#define METAPROBE_PUT(field) j[#field] = r.field;
#define METAPROBE_GET(field) j.at(#field).get_to(r.field);
#define METAPROBE_GET_LATER(field) \
  if (j.contains(#field)) j.at(#field).get_to(r.field);
#define METAPROBE_JSON_WITH_LATER(Type, REQUIRED, LATER)                       \
  void to_json(nlohmann::json& j, const Type& r) {                             \
    j = nlohmann::json::object();                                              \
    REQUIRED(METAPROBE_PUT)                                                    \
    LATER(METAPROBE_PUT)                                                       \
  }                                                                            \
  void from_json(const nlohmann::json& j, Type& r) {                           \
    REQUIRED(METAPROBE_GET)                                                    \
    LATER(METAPROBE_GET_LATER)                                                 \
  }

#define CELL_ACCURACY_FIELDS(X) X(cell) X(accuracy)
#define CELL_ACCURACY_LATER(X) X(precision) X(recall) X(f1)  // diagnostic cells' error detection
METAPROBE_JSON_WITH_LATER(CellAccuracy, CELL_ACCURACY_FIELDS, CELL_ACCURACY_LATER)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Behaviour, cells, overall, items, pass_at_k, prompt_tokens,
                                                generated_tokens, positions_processed)
#define CELL_DIVERGENCE_FIELDS(X)                                                                              \
  X(cell) X(items) X(positions) X(kl_ref_stage) X(kl_stage_ref) X(js) X(entropy_ref) X(entropy_stage)        \
  X(entropy_change) X(js_sparsity) X(rank_shift) X(top1_agree) X(position_counts) X(high_js_counts)           \
  X(js_cache_bound) X(kl_ref_stage_cache_bound) X(sampled_kl) X(sampled_items) X(sampled_tokens)
#define CELL_DIVERGENCE_LATER(X) X(sampled_kl_huan) X(sampled_rank_stage) X(sampled_rank_ref)
METAPROBE_JSON_WITH_LATER(CellDivergence, CELL_DIVERGENCE_FIELDS, CELL_DIVERGENCE_LATER)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StageDivergence, mode, cells, total)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TensorUpdate, name, kind, layer, numel, delta_fro, ref_fro, rel_update_norm, cosine,
                                   max_abs_delta, sparsity_abs, sparsity_rel, unchanged_fraction)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StageParams, total, layers, modules, tensors, only_in_reference, only_in_stage,
                                   shape_mismatches)
#define CELL_DRIFT_FIELDS(X) X(cell) X(reference_acc) X(acc) X(delta) X(collapsed)
#define CELL_DRIFT_LATER(X) X(delta_lo) X(delta_hi)
METAPROBE_JSON_WITH_LATER(CellDrift, CELL_DRIFT_FIELDS, CELL_DRIFT_LATER)
#define STAGE_DERIVED_FIELDS(X)                                                                                \
  X(cells) X(drift_l1) X(drift_l2) X(collapsed) X(acc_target) X(acc_off_target) X(delta_target)               \
  X(delta_off_target) X(dr_target) X(dr_other) X(dr_non) X(ti_other) X(ti_non) X(div_off_target) X(div_target)
#define STAGE_DERIVED_LATER(X)                                                                                 \
  X(drift_l1_lo) X(drift_l1_hi) X(drift_l2_lo) X(drift_l2_hi) X(delta_target_lo) X(delta_target_hi)           \
  X(delta_off_target_lo) X(delta_off_target_hi)
METAPROBE_JSON_WITH_LATER(StageDerived, STAGE_DERIVED_FIELDS, STAGE_DERIVED_LATER)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArmRazor, arm, metric, stages, steps, divergence, accuracy_change, pearson, spearman)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArmDifference, a, b, metric, unit, mean_a, mean_b, diff, lo, hi, p_value,
                                   confidence, n_units, n_seeds, n_boot, n_perm, seed)
void to_json(nlohmann::json& j, const RepresentationDrift& r) {
  j = {{"stage", r.stage}, {"layer", r.layer}, {"items", r.items}, {"cka", r.cka}, {"cosine", r.cosine},
       {"pca_shift", r.pca_shift}, {"pc2_reference", r.pc2_reference}, {"pc2_stage", r.pc2_stage}};
  j["cell"] = r.cell ? nlohmann::json(*r.cell) : nlohmann::json(nullptr);
}

void from_json(const nlohmann::json& j, RepresentationDrift& r) {
  j.at("stage").get_to(r.stage);
  j.at("layer").get_to(r.layer);
  j.at("items").get_to(r.items);
  for (auto [key, field] : {std::pair{"cka", &r.cka}, {"cosine", &r.cosine}, {"pca_shift", &r.pca_shift},
                            {"pc2_reference", &r.pc2_reference}, {"pc2_stage", &r.pc2_stage}})
    *field = j.at(key).is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at(key).get<double>();
  if (j.at("cell").is_null()) {
    r.cell.reset();
  } else {
    r.cell = j.at("cell").get<probes::Cell>();
  }
}

#define STAGE_INFO_FIELDS(X) X(name) X(arm) X(source) X(checkpoint) X(step) X(is_reference)
#define STAGE_INFO_LATER(X) X(responses)  // older reports read as "generated"
METAPROBE_JSON_WITH_LATER(StageInfo, STAGE_INFO_FIELDS, STAGE_INFO_LATER)

void to_json(nlohmann::json& j, const Response& r) {
  j = {{"item_id", r.item_id}, {"sample", r.sample}, {"text", r.text}, {"finish_reason", r.finish_reason}};
  if (r.tokens) j["tokens"] = *r.tokens;
}

void from_json(const nlohmann::json& j, Response& r) {
  j.at("item_id").get_to(r.item_id);
  j.at("sample").get_to(r.sample);
  j.at("text").get_to(r.text);
  j.at("finish_reason").get_to(r.finish_reason);
  if (j.contains("tokens")) {
    r.tokens.emplace();
    j.at("tokens").get_to(*r.tokens);
  } else {
    r.tokens.reset();
  }
}

namespace {

template <class T>
void put_optional(nlohmann::json& j, const char* key, const std::optional<T>& v) {
  j[key] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

template <class T>
void get_optional(const nlohmann::json& j, const char* key, std::optional<T>& v) {
  if (!j.contains(key)) throw FormatError(std::string("report: a stage has no '") + key + "' field (null when absent)");
  if (j.at(key).is_null()) {
    v.reset();
  } else {
    v = j.at(key).get<T>();
  }
}

// null stands for NaN in numeric fields: give the parser NaN back wherever a number is expected. Only
// numeric fields of the schema may be null, so every remaining null is one of them.
void nulls_to_nan(nlohmann::json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "responses") continue;       // text and token ids: no numeric field to restore
      if (k == "representation") continue;  // its from_json reads null as NaN and a null cell as "every prompt"
      if (k == "behaviour" || k == "divergence" || k == "params" || k == "derived") {
        if (!it->is_null()) nulls_to_nan(*it);
        continue;
      }
      if (it->is_null())
        *it = std::numeric_limits<double>::quiet_NaN();
      else
        nulls_to_nan(*it);
    }
  } else if (j.is_array()) {
    for (auto& e : j) {
      if (e.is_null())
        e = std::numeric_limits<double>::quiet_NaN();
      else
        nulls_to_nan(e);
    }
  }
}

}  // namespace

const StageReport& Report::stage(const std::string& name) const {
  for (const auto& s : stages)
    if (s.info.name == name) return s;
  throw InvalidArgument("Report::stage: no stage named '" + name + "'");
}

namespace detail {

nlohmann::json stage_to_json(const StageReport& s) {
  nlohmann::json js = {{"info", s.info}, {"seconds", s.seconds}};
  put_optional(js, "behaviour", s.behaviour);
  put_optional(js, "divergence", s.divergence);
  put_optional(js, "params", s.params);
  put_optional(js, "derived", s.derived);
  js["responses"] = s.responses;
  return js;
}

// `j` with its nulls already turned back into NaN (nulls_to_nan).
StageReport stage_from_nan_json(const nlohmann::json& js) {
  StageReport s;
  js.at("info").get_to(s.info);
  js.at("seconds").get_to(s.seconds);
  get_optional(js, "behaviour", s.behaviour);
  get_optional(js, "divergence", s.divergence);
  get_optional(js, "params", s.params);
  get_optional(js, "derived", s.derived);
  if (js.contains("responses")) js.at("responses").get_to(s.responses);  // absent in older reports
  return s;
}

StageReport stage_from_json(const nlohmann::json& input) {
  nlohmann::json j = input;
  nulls_to_nan(j);
  try {
    return stage_from_nan_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("report: a stage field is missing or has the wrong type: ") + e.what());
  }
}

}  // namespace detail

nlohmann::json to_json(const Report& r) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : r.stages) stages.push_back(detail::stage_to_json(s));
  return {{"schema", r.schema},
          {"schema_version", r.schema_version},
          {"metaprobe_version", r.metaprobe_version},
          {"created", r.created},
          {"reference", r.reference},
          {"options", r.options},
          {"target_cells", r.target_cells},
          {"n_items", r.n_items},
          {"stages", stages},
          {"razor", r.razor},
          {"differences", r.differences},
          {"representation", r.representation},
          {"seconds", r.seconds}};
}

Report report_from_json(const nlohmann::json& input) {
  if (!input.is_object()) throw FormatError("report: the document is JSON " + std::string(input.type_name()) + ", expected an object");
  if (!input.contains("schema") || input.at("schema") != kReportSchema)
    throw FormatError("report: schema is " + (input.contains("schema") ? input.at("schema").dump() : std::string("missing")) +
                      ", expected \"" + kReportSchema + "\"");
  if (!input.contains("schema_version") || !input.at("schema_version").is_number_integer() ||
      input.at("schema_version").get<int>() != kReportSchemaVersion)
    throw FormatError("report: schema_version is " +
                      (input.contains("schema_version") ? input.at("schema_version").dump() : std::string("missing")) +
                      ", expected " + std::to_string(kReportSchemaVersion));
  nlohmann::json j = input;
  nlohmann::json options = j.value("options", nlohmann::json::object());
  j.erase("options");
  nulls_to_nan(j);
  Report r;
  try {
    j.at("schema").get_to(r.schema);
    j.at("schema_version").get_to(r.schema_version);
    j.at("metaprobe_version").get_to(r.metaprobe_version);
    j.at("created").get_to(r.created);
    j.at("reference").get_to(r.reference);
    r.options = options;
    j.at("target_cells").get_to(r.target_cells);
    j.at("n_items").get_to(r.n_items);
    for (const auto& js : j.at("stages")) r.stages.push_back(detail::stage_from_nan_json(js));
    j.at("razor").get_to(r.razor);
    if (j.contains("differences")) j.at("differences").get_to(r.differences);
    if (j.contains("representation")) j.at("representation").get_to(r.representation);
    j.at("seconds").get_to(r.seconds);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("report: a field is missing or has the wrong type: ") + e.what());
  }
  return r;
}

void save(const Report& report, const std::string& path, int indent) {
  params::write_text_atomic(path, to_json(report).dump(indent) + "\n");
}

Report load_report(const std::string& path) { return report_from_json(detail::read_json_file(path, "load_report")); }

}  // namespace metaprobe::meta
