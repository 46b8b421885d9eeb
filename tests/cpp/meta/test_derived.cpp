// Derived metrics on constructed reports whose answers are known: RL's Razor correlates the target-cell
// divergence with the off-target accuracy change (Shenfeld et al. 2509.04259).
#include <cmath>

#include <metaprobe/meta/report.hpp>

#include "../../../cpp/src/meta/internal.hpp"

// Last: glog (through ATen) defines its own CHECK, which Catch must override.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::meta;

namespace {

const probes::Cell kTarget{probes::Skill::calculation, probes::Domain::math};
const probes::Cell kOff{probes::Skill::calculation, probes::Domain::general};

CellAccuracy cell_acc(probes::Cell c, int64_t correct, int64_t n) { return {c, probes::wilson(correct, n)}; }

CellDivergence cell_div(probes::Cell c, double kl, int64_t positions) {
  CellDivergence d;
  d.cell = c;
  d.items = 1;
  d.positions = positions;
  d.kl_ref_stage = kl;
  return d;
}

// A stage whose target-cell KL is `kl_target`, off-target KL `kl_off`, and off-target accuracy correct/100.
StageReport make_stage(const std::string& name, int64_t step, double kl_target, double kl_off, int64_t off_correct,
                       const Behaviour& reference, const RunOptions& options) {
  StageReport s;
  s.info.name = name;
  s.info.arm = "sft";
  s.info.step = step;
  Behaviour b;
  b.cells = {cell_acc(kTarget, 50, 100), cell_acc(kOff, off_correct, 100)};
  StageDivergence d;
  d.cells = {cell_div(kTarget, kl_target, 10), cell_div(kOff, kl_off, 10)};
  s.derived = meta::detail::derive(reference, b, &d, {kTarget}, options);
  return s;
}

}  // namespace

TEST_CASE("RL's Razor correlates the target-cell divergence with the off-target accuracy change") {
  RunOptions options;
  options.razor_include_reference = false;
  Behaviour reference;
  reference.cells = {cell_acc(kTarget, 50, 100), cell_acc(kOff, 80, 100)};

  // Forgetting grows linearly with the KL on the new task (target): Δoff = −0.1 · KL_target exactly, while the
  // KL on the old tasks runs the other way, so correlating it would give −1 instead of the Razor's answer.
  std::vector<StageReport> stages;
  StageReport ref;
  ref.info.name = "base";
  ref.info.arm = "base";
  ref.info.is_reference = true;
  stages.push_back(ref);
  stages.push_back(make_stage("s1", 1, 1.0, 3.0, 70, reference, options));
  stages.push_back(make_stage("s2", 2, 2.0, 2.0, 60, reference, options));
  stages.push_back(make_stage("s3", 3, 4.0, 1.0, 40, reference, options));

  SECTION("derive() splits the razor metric over target and off-target cells") {
    REQUIRE(stages[1].derived->div_target == Approx(1.0));
    REQUIRE(stages[1].derived->div_off_target == Approx(3.0));
    REQUIRE(stages[3].derived->delta_off_target == Approx(-0.4));
  }

  SECTION("the points are (div_target, delta_off_target) and the correlation is −1 (more KL, more forgetting)") {
    const auto r = meta::detail::razor(stages, options);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].arm == "sft");
    REQUIRE(r[0].divergence == std::vector<double>{1.0, 2.0, 4.0});
    REQUIRE(r[0].accuracy_change.size() == 3);
    REQUIRE(r[0].accuracy_change[0] == Approx(-0.1));
    REQUIRE(r[0].accuracy_change[2] == Approx(-0.4));
    REQUIRE(r[0].pearson == Approx(-1.0).margin(1e-12));
    REQUIRE(r[0].spearman == Approx(-1.0).margin(1e-12));
  }

  SECTION("the reference enters as (0, 0) when asked") {
    options.razor_include_reference = true;
    const auto r = meta::detail::razor(stages, options);
    REQUIRE(r[0].divergence == std::vector<double>{0.0, 1.0, 2.0, 4.0});
    REQUIRE(r[0].stages.front() == "base");
    REQUIRE(r[0].pearson == Approx(-1.0).margin(1e-12));
  }

  SECTION("a stage without a target-cell divergence is left out") {
    stages[2].derived->div_target = std::nan("");
    const auto r = meta::detail::razor(stages, options);
    REQUIRE(r[0].stages == std::vector<std::string>{"s1", "s3"});
    REQUIRE(std::isnan(r[0].pearson));
  }
}
