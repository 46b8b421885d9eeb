#pragma once
// Pieces of the run shared between its translation units (not installed).
#include <vector>

#include <metaprobe/meta/options.hpp>
#include <metaprobe/meta/report.hpp>

namespace metaprobe::meta::detail {

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

}  // namespace metaprobe::meta::detail
