#pragma once
// The meta-probing run (arXiv 2512.24063; docs/meta.md): behaviour, divergence from the reference,
// parameter updates and derived metrics for every stage of one or more post-training arms.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/meta/logit_source.hpp>
#include <metaprobe/meta/options.hpp>
#include <metaprobe/meta/report.hpp>
#include <metaprobe/probes/item.hpp>

namespace metaprobe::meta {

/// One checkpoint of an arm. Give `source` (kept resident) or `loader` (called when the stage is probed and
/// released after, so one model at a time fits on a device in topk_cache mode). The checkpoint, when given, is
/// compared with the reference's by the params module.
///
/// `responses`, when given, are the stage's answers produced by another engine: one per sample (0 ..
/// n_samples − 1) of every generate-mode item. The stage then scores them instead of generating, and its model
/// (if any) measures divergence and the sampled-token estimator along them exactly as along its own answers. A
/// stage with responses and no model gets behaviour (and parameters) only.
struct Stage {
  std::string name;
  std::string arm = "base";
  int64_t step = 0;
  std::shared_ptr<LogitSource> source;
  std::function<std::shared_ptr<LogitSource>()> loader;
  std::string checkpoint_path;                         ///< safetensors file or checkpoint directory
  std::shared_ptr<const io::TensorSource> checkpoint;  ///< or an in-memory state dict
  std::optional<std::vector<Response>> responses;      ///< answers from another engine instead of generating
  /// The reference only, reference_mode topk_cache: a top-k cache file (save_topk_caches; e.g. from vLLM's
  /// prompt_logprobs) along the sequences the divergence is measured on, used instead of building the cache
  /// from the reference's model (which then need not be given unless the sampled-token estimator is on).
  std::string reference_cache;
};

/// How one process takes part in a run (docs/meta.md, "Resumable runs" and "Spread over processes").
///
/// `path`: where the run keeps what each finished stage measured, so that a run killed midway loses only the
/// stage it was in. The directory holds run.json (what the run was started on), stages/<i>-<name>.json per
/// finished stage (and .final.json once the reference has scored its answers), and report.json at the end;
/// every file is written whole or not at all.
///
/// `stages`: one part of a run split over processes or jobs: only these stages (and the reference, which
/// every part probes) are probed and reported; merge_reports joins the parts into the whole run's report.
struct RunPlan {
  std::string path;                 ///< "": keep everything in memory
  bool resume = false;              ///< continue the run in `path`, skipping finished stages; false: no run there
  std::vector<std::string> stages;  ///< empty: every stage
};

/// A run over a set of probe items and stages that share one tokenizer.
class Run {
 public:
  /// Throws InvalidArgument for no items, duplicate item ids, a null tokenizer or bad options.
  Run(std::vector<probes::Item> items, std::shared_ptr<const Tokenizer> tokenizer, RunOptions options = {});

  /// Adds a stage; throws InvalidArgument for an empty or duplicate name, when neither source, loader nor
  /// responses are given, and for responses that name an unknown item or a sample out of range, repeat one,
  /// miss one, or carry a negative token id.
  void add_stage(Stage stage);
  const std::vector<Stage>& stages() const { return stages_; }
  const std::vector<probes::Item>& items() const { return items_; }
  const RunOptions& options() const { return options_; }

  /// Runs every step; throws InvalidArgument when the reference stage is missing, a planned stage is unknown,
  /// and whatever a logit source or checkpoint throws. With a directory, each stage's results are stored as
  /// soon as it finishes; resuming skips the stored stages and gives the report an uninterrupted run gives
  /// (timings aside), and refuses a directory started on another suite, other options or changed stages
  /// (InvalidArgument naming the change).
  Report run(const RunPlan& plan = {});

 private:
  void check_responses(const std::string& stage, const std::vector<Response>& responses) const;

  std::vector<probes::Item> items_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  RunOptions options_;
  std::vector<Stage> stages_;
};

}  // namespace metaprobe::meta
