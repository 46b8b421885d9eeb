#pragma once
// The result of a meta-probing run as value types, and its versioned JSON document (docs/report-schema.md).
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/params/compare.hpp>
#include <metaprobe/probes/scoring.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::meta {

/// Name and version of the report document; the version changes whenever a field changes meaning or goes.
inline constexpr const char* kReportSchema = "metaprobe.report";
inline constexpr int kReportSchemaVersion = 1;

/// One item's answer by one stage.
struct ItemResult {
  std::string id;
  probes::Cell cell;
  std::string mode;                    ///< "generate" or "loglikelihood"
  std::string output;                  ///< the completion (generate) or the chosen option (loglikelihood)
  std::string extracted;               ///< the answer found in the output
  bool correct = false;
  int64_t generated_tokens = 0;        ///< tokens emitted (generate mode)
  std::vector<double> loglikelihoods;  ///< per option (loglikelihood mode)
  // generate mode, from the first sample (the others count in samples/correct_samples only)
  std::string finish_reason;           ///< "eos", "stop" or "length" ("" in loglikelihood mode)
  int64_t think_tokens = 0;            ///< tokens up to the closing think tag (all of them when it never closed)
  bool think_closed = true;            ///< false: a reasoning block was opened and never closed (no answer)
  int64_t samples = 1;                 ///< completions drawn (RunOptions::n_samples)
  int64_t correct_samples = 0;         ///< of which correct; the item's score is correct_samples / samples
  int phrasing = 0;                    ///< the item's phrasing (probes::Item::phrasing)
  bool noop = false;                   ///< whether its prompt carries a NoOp clause (probes::Item::noop)
};

/// The unbiased pass@k estimate (Chen et al. 2021) of a stage, averaged over items.
struct PassAtK {
  int64_t k = 1;
  double value = 0;
};

/// Accuracy of one cell with its Wilson interval; diagnostic cells also error detection (probes::Detection:
/// a model flags an item when it names a location; precision, recall and F1 of the right locations, from
/// the first sample of generate-mode items). NaN elsewhere and where undefined.
struct CellAccuracy {
  probes::Cell cell;
  probes::Accuracy accuracy;
  // added within schema version 1: older reports read NaN
  double precision = std::numeric_limits<double>::quiet_NaN();
  double recall = std::numeric_limits<double>::quiet_NaN();
  double f1 = std::numeric_limits<double>::quiet_NaN();
};

/// A stage's behavioural profile: accuracy per cell of the grid (cells with items only) and overall.
struct Behaviour {
  std::vector<CellAccuracy> cells;
  probes::Accuracy overall;
  std::vector<ItemResult> items;
  std::vector<PassAtK> pass_at_k;      ///< k = 1, 2, 4, … and n_samples (generate-mode items)
  int64_t prompt_tokens = 0;           ///< prompt tokens of every generate request (× samples)
  int64_t generated_tokens = 0;        ///< tokens generated over every sample
  int64_t positions_processed = 0;     ///< token positions the source ran during generation (0: not counted)
};

/// Divergence of a stage from the reference over one cell's solution tokens (token-weighted means). p is the
/// reference, q the stage: kl_ref_stage = KL(ref‖stage), kl_stage_ref = KL(stage‖ref).
struct CellDivergence {
  probes::Cell cell;                   ///< unused in the stage total
  int64_t items = 0, positions = 0;
  double kl_ref_stage = 0, kl_stage_ref = 0, js = 0;
  double entropy_ref = 0, entropy_stage = 0, entropy_change = 0;  ///< change = stage − ref
  double js_sparsity = 0;              ///< fraction of positions with JS > τ
  double rank_shift = 0;               ///< mean rank of the reference's argmax under the stage (1 = same)
  double top1_agree = 0;               ///< fraction of positions whose argmax agree
  std::vector<int64_t> position_counts;  ///< positions per bin of t/T
  std::vector<int64_t> high_js_counts;   ///< positions with JS > τ per bin of t/T
  // topk_cache mode: per-position upper bounds on (exact − cached), averaged; 0 in exact mode.
  double js_cache_bound = 0, kl_ref_stage_cache_bound = 0;
  // Huan et al.'s sampled-token estimator on the stage's own answers: mean over items of the per-token mean
  // of log p_stage(y) − log p_ref(y) (signed; Huan report |mean|). NaN when no answers were generated.
  double sampled_kl = 0;
  int64_t sampled_items = 0, sampled_tokens = 0;
  // The same answers as Huan et al.'s calculate_KL.py measures them: |mean over items of the per-token mean of
  // log(p_stage(y) + 1e-10) − log(p_ref(y) + 1e-10)|, the first answer token dropped when
  // RunOptions::huan_skip_first_token; and the mean 1-based rank of the answer tokens under each model
  // (calculate_logits_and_ranks_token_level.py). NaN without answers; added within schema version 1.
  double sampled_kl_huan = std::numeric_limits<double>::quiet_NaN();
  double sampled_rank_stage = std::numeric_limits<double>::quiet_NaN();
  double sampled_rank_ref = std::numeric_limits<double>::quiet_NaN();
};

struct StageDivergence {
  std::string mode;                    ///< "exact" or "topk_cache"
  std::vector<CellDivergence> cells;
  CellDivergence total;                ///< over every cell
};

/// One tensor's update statistics (a flat subset of params::TensorComparison).
struct TensorUpdate {
  std::string name, kind;
  int64_t layer = -1, numel = 0;
  double delta_fro = 0, ref_fro = 0, rel_update_norm = 0, cosine = 0, max_abs_delta = 0;
  double sparsity_abs = 0, sparsity_rel = 0, unchanged_fraction = 0;
};

/// Update statistics of a stage against the reference's checkpoint (the params module).
struct StageParams {
  params::GroupStats total;
  std::vector<params::GroupStats> layers, modules;
  std::vector<TensorUpdate> tensors;
  std::vector<std::string> only_in_reference, only_in_stage, shape_mismatches;
};

/// The change of one cell's accuracy from the reference.
struct CellDrift {
  probes::Cell cell;
  double reference_acc = 0, acc = 0, delta = 0;  ///< delta = acc − reference_acc
  bool collapsed = false;              ///< delta < −δ and the Wilson intervals do not overlap
  /// Percentile bootstrap interval of delta over the cell's items, paired (the same items resampled for both
  /// stages), at the level of RunOptions::z; NaN in reports written before it existed.
  double delta_lo = std::numeric_limits<double>::quiet_NaN(), delta_hi = std::numeric_limits<double>::quiet_NaN();
};

/// Derived metrics of a stage against the reference.
struct StageDerived {
  std::vector<CellDrift> cells;
  double drift_l1 = 0, drift_l2 = 0;
  std::vector<std::string> collapsed;  ///< "skill/domain" of the collapsed cells
  double acc_target = 0, acc_off_target = 0;        ///< pooled over items
  double delta_target = 0, delta_off_target = 0;    ///< pooled accuracy change from the reference
  // Transferability index (Huan et al.): ΔR_g = mean over cells g with reference accuracy > 0 of the relative
  // change; TI = 100 · ΔR_g / ΔR_target (NaN when ΔR_target is 0 or a group is empty).
  double dr_target = 0, dr_other = 0, dr_non = 0, ti_other = 0, ti_non = 0;
  double div_off_target = 0, div_target = 0;        ///< razor metric, token-weighted over the cells
  // Paired percentile bootstrap intervals (items resampled within each cell, the same draws for every figure)
  // of drift_l1, drift_l2, delta_target and delta_off_target; NaN in older reports.
  double drift_l1_lo = std::numeric_limits<double>::quiet_NaN(), drift_l1_hi = std::numeric_limits<double>::quiet_NaN();
  double drift_l2_lo = std::numeric_limits<double>::quiet_NaN(), drift_l2_hi = std::numeric_limits<double>::quiet_NaN();
  double delta_target_lo = std::numeric_limits<double>::quiet_NaN(), delta_target_hi = std::numeric_limits<double>::quiet_NaN();
  double delta_off_target_lo = std::numeric_limits<double>::quiet_NaN(),
         delta_off_target_hi = std::numeric_limits<double>::quiet_NaN();
};

/// The RL's Razor test of one arm (Shenfeld et al.): correlation across its stages of the divergence on the
/// target (new-task) cells, `div_target`, and the off-target accuracy change (forgetting), `delta_off_target`.
struct ArmRazor {
  std::string arm, metric;
  std::vector<std::string> stages;
  std::vector<int64_t> steps;
  std::vector<double> divergence, accuracy_change;
  double pearson = 0, spearman = 0;    ///< NaN with fewer than 3 points or no variance
};

/// A paired difference a − b between two stages on one metric, over units (items, or cells for divergence)
/// and seeds, with its percentile bootstrap interval and sign-flip permutation p-value. Computed by
/// `metaprobe.stats` (docs/meta.md, "Differences between arms"); the run itself leaves the list empty.
struct ArmDifference {
  std::string a, b, metric, unit;
  double mean_a = 0, mean_b = 0, diff = 0, lo = 0, hi = 0, p_value = 0, confidence = 0.95;
  int64_t n_units = 0, n_seeds = 1, n_boot = 0, n_perm = 0;
  uint64_t seed = 0;
};

/// Representation drift of one stage from the reference at one layer, over one cell's probe prompts (or all
/// of them: `cell` absent), measured by metaprobe.representation (docs/meta.md, "Representation drift"): the
/// features are each prompt's hidden states averaged over its real tokens.
struct RepresentationDrift {
  std::string stage;
  int64_t layer = 0;                   ///< 0: the embedding output; l: after block l (the last one normed)
  std::optional<probes::Cell> cell;    ///< absent: every prompt
  int64_t items = 0;
  double cka = 0;                      ///< linear CKA of the reference's and the stage's features
  double cosine = 0;                   ///< mean over prompts of cos(reference feature, stage feature)
  double pca_shift = 0;                ///< Huan et al.: mean projection on the reference's PC1, stage − reference
  double pc2_reference = 0, pc2_stage = 0;  ///< mean projections on the reference's PC2
};

struct StageInfo {
  std::string name, arm, source, checkpoint;
  int64_t step = 0;
  bool is_reference = false;
  /// Where the stage's answers came from: "generated" (by its model), "imported" (Stage::responses with token
  /// ids) or "imported_retokenized" (some imported answers had text only and were tokenised alone).
  std::string responses = "generated";
};

/// One sample of one generate-mode item's raw answer: what a stage generated (StageReport::responses) or what
/// another engine produced (Stage::responses; docs/responses.md). The text starts right after the prompt and is
/// not cut at stop strings or think tags; the end-of-generation token is not part of it.
struct Response {
  std::string item_id;
  int64_t sample = 0;
  std::string text;
  std::optional<std::vector<int64_t>> tokens;  ///< absent (import only): `text` is tokenised alone
  std::string finish_reason;                   ///< "eos", "stop", "length", or "" when the engine did not say
  std::string origin;                          ///< for messages only ("answers.jsonl:12"); not saved
};

/// Everything the run measured about one stage; absent parts were not requested or not possible.
struct StageReport {
  StageInfo info;
  std::optional<Behaviour> behaviour;
  std::optional<StageDivergence> divergence;
  std::optional<StageParams> params;
  std::optional<StageDerived> derived;
  std::vector<Response> responses;     ///< every sample of every generate-mode item (tokens always present)
  double seconds = 0;                  ///< wall time spent on this stage
};

struct Report {
  std::string schema = kReportSchema;
  int schema_version = kReportSchemaVersion;
  std::string metaprobe_version;
  std::string created;                 ///< UTC, ISO 8601
  std::string reference;
  nlohmann::json options = nlohmann::json::object();
  std::vector<probes::Cell> target_cells;
  int64_t n_items = 0;
  std::vector<StageReport> stages;
  std::vector<ArmRazor> razor;
  std::vector<ArmDifference> differences;  ///< optional in the document (absent = empty)
  std::vector<RepresentationDrift> representation;  ///< optional (absent = empty): Report.add_representation
  double seconds = 0;

  /// The stage named `name`; throws InvalidArgument if absent.
  const StageReport& stage(const std::string& name) const;
};

/// The report as JSON (NaN and ±inf become null).
nlohmann::json to_json(const Report& report);
/// Parses a report document; throws FormatError naming the field on a wrong schema, version or field.
Report report_from_json(const nlohmann::json& j);
/// Writes the report's JSON to `path` atomically (temporary beside it, then rename); throws IoError.
void save(const Report& report, const std::string& path, int indent = 1);
/// Reads a report written by save(); throws IoError or FormatError.
Report load_report(const std::string& path);

/// The keys of the report's records declared with one field list, in document order, by record name
/// ("group_stats", "cell_accuracy", "cell_divergence", "cell_drift", "stage_derived", "stage_info"): what
/// Python's report columns derive from.
std::map<std::string, std::vector<std::string>> report_record_fields();

/// Joins the parts of one run (RunPlan::stages, torch.distributed ranks, one job per checkpoint) into the
/// whole run's report: the parts must share the reference, options, items and target cells and hold the same
/// reference stage; every other stage must be in one part only. Stages come in `order` (names; empty: first
/// appearance); derived metrics and RL's Razor are recomputed; `differences` are left empty (metaprobe.stats
/// computes them). Throws InvalidArgument naming the part that does not fit.
Report merge_reports(const std::vector<Report>& parts, const std::vector<std::string>& order = {});

}  // namespace metaprobe::meta
