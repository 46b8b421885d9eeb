// The report document: JSON with NaN/inf as null, strict parsing, atomic save.
#include <metaprobe/meta/report.hpp>

#include <cmath>
#include <limits>

#include <metaprobe/error.hpp>
#include <metaprobe/params/report.hpp>

#include "common/record_json.hpp"
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

}  // namespace nlohmann

namespace metaprobe::params {

// The group statistics of a stage's `params`, from their one field list (params/compare.hpp).
void to_json(nlohmann::json& j, const GroupStats& g) { j = ::metaprobe::detail::record_to_json(g); }
void from_json(const nlohmann::json& j, GroupStats& g) { ::metaprobe::detail::record_from_json(j, g, "group statistics"); }

}  // namespace metaprobe::params

namespace metaprobe::meta {

// The generation fields came later than schema version 1: reports without them read with the defaults.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ItemResult, id, cell, mode, output, extracted, correct,
                                                generated_tokens, loglikelihoods, finish_reason, think_tokens,
                                                think_closed, samples, correct_samples, phrasing, noop)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PassAtK, k, value)
// nlohmann's hooks for a record with one field list (common/fields.hpp): every field both ways, the LATER
// ones (added within schema version 1) optional on reading; a missing or mistyped field is a FormatError
// naming `what` and the key.
#define METAPROBE_RECORD_JSON(Type, what)                                                     \
  void to_json(nlohmann::json& j, const Type& r) { j = ::metaprobe::detail::record_to_json(r); } \
  void from_json(const nlohmann::json& j, Type& r) { ::metaprobe::detail::record_from_json(j, r, what); }

#define CELL_ACCURACY_FIELDS(X, LATER) \
  X("cell", cell) X("accuracy", accuracy) LATER("precision", precision) LATER("recall", recall) LATER("f1", f1)
METAPROBE_RECORD(CellAccuracy, CELL_ACCURACY_FIELDS)
METAPROBE_RECORD_JSON(CellAccuracy, "cell accuracy")
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Behaviour, cells, overall, items, pass_at_k, prompt_tokens,
                                                generated_tokens, positions_processed)
#define CELL_DIVERGENCE_FIELDS(X, LATER)                                                                      \
  X("cell", cell) X("items", items) X("positions", positions) X("kl_ref_stage", kl_ref_stage)                   \
  X("kl_stage_ref", kl_stage_ref) X("js", js) X("entropy_ref", entropy_ref) X("entropy_stage", entropy_stage)   \
  X("entropy_change", entropy_change) X("js_sparsity", js_sparsity) X("rank_shift", rank_shift)                 \
  X("top1_agree", top1_agree) X("position_counts", position_counts) X("high_js_counts", high_js_counts)         \
  X("js_cache_bound", js_cache_bound) X("kl_ref_stage_cache_bound", kl_ref_stage_cache_bound)                   \
  X("sampled_kl", sampled_kl) X("sampled_items", sampled_items) X("sampled_tokens", sampled_tokens)             \
  LATER("sampled_kl_huan", sampled_kl_huan) LATER("sampled_rank_stage", sampled_rank_stage)                     \
  LATER("sampled_rank_ref", sampled_rank_ref)
METAPROBE_RECORD(CellDivergence, CELL_DIVERGENCE_FIELDS)
METAPROBE_RECORD_JSON(CellDivergence, "cell divergence")
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StageDivergence, mode, cells, total)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TensorUpdate, name, kind, layer, numel, delta_fro, ref_fro, rel_update_norm, cosine,
                                   max_abs_delta, sparsity_abs, sparsity_rel, unchanged_fraction)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(StageParams, total, layers, modules, tensors, only_in_reference, only_in_stage,
                                   shape_mismatches)
#define CELL_DRIFT_FIELDS(X, LATER)                                                                   \
  X("cell", cell) X("reference_acc", reference_acc) X("acc", acc) X("delta", delta) X("collapsed", collapsed) \
  LATER("delta_lo", delta_lo) LATER("delta_hi", delta_hi)
METAPROBE_RECORD(CellDrift, CELL_DRIFT_FIELDS)
METAPROBE_RECORD_JSON(CellDrift, "cell drift")
#define STAGE_DERIVED_FIELDS(X, LATER)                                                                        \
  X("cells", cells) X("drift_l1", drift_l1) X("drift_l2", drift_l2) X("collapsed", collapsed)                 \
  X("acc_target", acc_target) X("acc_off_target", acc_off_target) X("delta_target", delta_target)             \
  X("delta_off_target", delta_off_target) X("dr_target", dr_target) X("dr_other", dr_other) X("dr_non", dr_non) \
  X("ti_other", ti_other) X("ti_non", ti_non) X("div_off_target", div_off_target) X("div_target", div_target) \
  LATER("drift_l1_lo", drift_l1_lo) LATER("drift_l1_hi", drift_l1_hi) LATER("drift_l2_lo", drift_l2_lo)       \
  LATER("drift_l2_hi", drift_l2_hi) LATER("delta_target_lo", delta_target_lo)                                 \
  LATER("delta_target_hi", delta_target_hi) LATER("delta_off_target_lo", delta_off_target_lo)                 \
  LATER("delta_off_target_hi", delta_off_target_hi)
METAPROBE_RECORD(StageDerived, STAGE_DERIVED_FIELDS)
METAPROBE_RECORD_JSON(StageDerived, "stage derived")
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

#define STAGE_INFO_FIELDS(X, LATER)                                                                      \
  X("name", name) X("arm", arm) X("source", source) X("checkpoint", checkpoint) X("step", step)                \
  X("is_reference", is_reference) LATER("responses", responses)  // older reports read as "generated"
METAPROBE_RECORD(StageInfo, STAGE_INFO_FIELDS)
METAPROBE_RECORD_JSON(StageInfo, "stage info")

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

// A FormatError from inside a stage, its message placed at `where` ("report: stages[2]: cell divergence.js ...").
[[noreturn]] void rethrow_at(const std::string& where, const FormatError& e) {
  std::string inner = e.what();
  const std::string prefix = "report: ";
  if (inner.compare(0, prefix.size(), prefix) == 0) inner.erase(0, prefix.size());
  throw FormatError(prefix + where + ": " + inner);
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
  } catch (const FormatError& e) {
    rethrow_at("a stage", e);
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
    const nlohmann::json& stages = j.at("stages");
    for (size_t i = 0; i < stages.size(); ++i) {
      try {
        r.stages.push_back(detail::stage_from_nan_json(stages.at(i)));
      } catch (const FormatError& e) {
        rethrow_at("stages[" + std::to_string(i) + "]", e);
      }
    }
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

std::map<std::string, std::vector<std::string>> report_record_fields() {
  return {{"group_stats", record_field_names<params::GroupStats>()},
          {"cell_accuracy", record_field_names<CellAccuracy>()},
          {"cell_divergence", record_field_names<CellDivergence>()},
          {"cell_drift", record_field_names<CellDrift>()},
          {"stage_derived", record_field_names<StageDerived>()},
          {"stage_info", record_field_names<StageInfo>()}};
}

}  // namespace metaprobe::meta
