#pragma once
// Pieces of the run shared between its translation units (not installed).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/meta/options.hpp>
#include <metaprobe/meta/report.hpp>
#include <metaprobe/meta/run.hpp>

namespace metaprobe::meta::detail {

/// SplitMix64's finaliser: the run's one counter-based random stream (samples, bootstraps), so every interval
/// and sample is reproducible from the run's seed on any platform.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// The p-quantile of sorted values with linear interpolation between order statistics (numpy's default).
inline double percentile(const std::vector<double>& sorted, double p) {
  const double pos = p * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

/// Drift, collapse, transferability and target/off-target summaries of `stage` against `reference`.
StageDerived derive(const Behaviour& reference, const Behaviour& stage, const StageDivergence* divergence,
                    const std::vector<probes::Cell>& target, const RunOptions& options);

/// The RL's Razor correlation of every arm (stages in step order) between `div_target` and `delta_off_target`,
/// from already derived stages.
std::vector<ArmRazor> razor(const std::vector<StageReport>& stages, const RunOptions& options);

/// Pearson correlation; NaN with fewer than 3 points or zero variance.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman rank correlation (average ranks on ties); NaN like pearson.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// One stage of the report document and back (report.cpp): the resumable run stores each finished stage so.
nlohmann::json stage_to_json(const StageReport& stage);
StageReport stage_from_json(const nlohmann::json& j);

/// What a resumed run must match (run_directory.cpp): the suite's hash, the options, and per stage its name,
/// arm, step, checkpoint (file sizes and times, or the bytes of a state dict) and imported responses.
nlohmann::json run_manifest(const std::vector<probes::Item>& items, const RunOptions& options,
                            const std::vector<Stage>& stages);
/// Throws InvalidArgument naming the first thing that differs between `saved` and `now`.
void check_manifest(const nlohmann::json& saved, const nlohmann::json& now, const std::string& dir);
/// Whole-file JSON: IoError / FormatError naming the file (after `what: ` when given); writes are atomic.
nlohmann::json read_json_file(const std::string& path, const std::string& what = "");
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace metaprobe::meta::detail
