// Streaming comparison over in-memory and safetensors sources, and the JSON/CSV reports.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/params/report.hpp>

// glog (pulled in by ATen) defines CHECK as an aborting assertion; Catch2's must win.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::params;
using Catch::Matchers::Contains;

namespace {

std::vector<std::pair<std::string, at::Tensor>> model(double scale, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<std::pair<std::string, at::Tensor>> t;
  t.emplace_back("model.embed_tokens.weight", at::randn({64, 32}) * scale);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.emplace_back(p + "self_attn.q_proj.weight", at::randn({32, 32}) * scale);
    t.emplace_back(p + "mlp.down_proj.weight", at::randn({32, 48}) * scale);
    t.emplace_back(p + "input_layernorm.weight", at::ones({32}));
  }
  return t;
}

std::filesystem::path temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("metaprobe_params_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("compare_checkpoints walks matched pairs and reports the rest", "[params][compare]") {
  auto ref = model(0.02, 1);
  auto tuned = ref;
  for (auto& [name, t] : tuned) t = t.clone();
  tuned[1].second += 1e-3;                                   // layer 0 q_proj changes everywhere
  tuned.erase(tuned.begin() + 3);                             // layer 0 norm missing in tuned
  tuned.emplace_back("extra.weight", at::zeros({4}));         // only in tuned
  tuned[4].second = at::zeros({48, 32});                      // layer 1 down_proj: shape mismatch
  io::MemorySource rs(ref), ts(tuned);
  std::vector<size_t> seen;
  CompareOptions o;
  o.progress = [&](const Progress& p) { seen.push_back(p.done); };
  const CompareResult r = compare_checkpoints(rs, ts, o);

  SECTION("unmatched names and shape mismatches are listed, not skipped silently") {
    REQUIRE(r.only_in_reference == std::vector<std::string>{"model.layers.0.input_layernorm.weight"});
    REQUIRE(r.only_in_tuned == std::vector<std::string>{"extra.weight"});
    REQUIRE(r.shape_mismatches.size() == 1);
    CHECK(r.shape_mismatches[0].name == "model.layers.1.mlp.down_proj.weight");
    CHECK(r.shape_mismatches[0].reference_shape == std::vector<int64_t>{32, 48});
    CHECK(r.shape_mismatches[0].tuned_shape == std::vector<int64_t>{48, 32});
    CHECK(r.tensors.size() == 5);
  }
  SECTION("rows carry per-tensor and update statistics") {
    const TensorComparison& q = r.tensors[1];
    CHECK(q.name == "model.layers.0.self_attn.q_proj.weight");
    CHECK(q.parsed.layer == 0);
    CHECK(q.parsed.kind == "attn_q");
    CHECK(q.update.max_abs_delta == Approx(1e-3).epsilon(1e-3));
    CHECK(q.update.sparsity_abs == 0.0);
    CHECK(r.tensors[0].update.unchanged_fraction == 1.0);
  }
  SECTION("aggregates are exact sums over the group") {
    REQUIRE(r.layers.size() == 3);
    CHECK(r.layers[0].key == "0");
    CHECK(r.layers[2].key == "none");
    const double expected = std::sqrt(std::pow(r.tensors[1].update.delta_fro, 2));
    CHECK(r.layers[0].delta_fro == Approx(expected));
    // layer 0 holds q_proj (changed) and down_proj (unchanged): the relative norm pools both references.
    const double ref_sq = std::pow(r.tensors[1].update.ref_fro, 2) + std::pow(r.tensors[2].update.ref_fro, 2);
    CHECK(r.layers[0].rel_update_norm == Approx(expected / std::sqrt(ref_sq)));
    bool found = false;
    for (const auto& g : r.modules) {
      if (g.key == "norm_attn") {
        found = true;
        CHECK(g.tensors == 1);
        CHECK(g.sparsity_abs == 1.0);
      }
    }
    CHECK(found);
    CHECK(r.total.tensors == 5);
  }
  SECTION("progress is reported once per reference tensor") {
    CHECK(seen == std::vector<size_t>{1, 2, 3, 4, 5, 6, 7});
  }
  SECTION("the JSON report parses and carries nulls for undefined values") {
    const auto doc = nlohmann::json::parse(comparison_json(r));
    CHECK(doc["tensors"].size() == 5);
    CHECK(doc["summary"]["shape_mismatches"] == 1);
    CHECK(doc["unmatched"]["only_in_tuned"][0] == "extra.weight");
    CHECK(doc["tensors"][4]["reference"]["skewness"].is_null());  // constant layernorm weight
    const std::string csv = comparison_csv(r);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 6);
  }
}

TEST_CASE("compare_checkpoints with spectra", "[params][compare][spectral]") {
  auto ref = model(0.02, 2);
  auto tuned = ref;
  for (auto& [name, t] : tuned) t = t + 1e-3 * at::randn_like(t);
  io::MemorySource rs(ref), ts(tuned);
  CompareOptions o;
  o.spectra = true;
  o.subspace_k = 4;
  const CompareResult r = compare_checkpoints(rs, ts, o);
  SECTION("matrices get spectra and 1-D tensors a row saying why not") {
    CHECK(r.tensors[1].spectral_status == "ok");
    CHECK(r.tensors[1].update_spectral.k == 4);
    CHECK(r.tensors[1].update_spectral.normalized_rank == 1.0);
    CHECK_THAT(r.tensors[3].spectral_status, Contains("skipped: 1-D tensor"));
  }
  SECTION("too large matrices are reported as skipped with the limit") {
    CompareOptions small = o;
    small.max_spectral_side = 40;
    const CompareResult r2 = compare_checkpoints(rs, ts, small);
    CHECK_THAT(r2.tensors[0].spectral_status, Contains("above max_spectral_side 40"));
  }
  SECTION("bad options are rejected") {
    CompareOptions bad;
    bad.subspace_k = 0;
    REQUIRE_THROWS_WITH(compare_checkpoints(rs, ts, bad), Contains("subspace_k: 0"));
    bad.subspace_k = 4;
    bad.update.atol = -1;
    REQUIRE_THROWS_AS(compare_checkpoints(rs, ts, bad), InvalidArgument);
  }
}

TEST_CASE("compare and describe read safetensors files", "[params][compare][io]") {
  const auto dir = temp_dir();
  auto ref = model(0.02, 3);
  auto tuned = ref;
  for (auto& [name, t] : tuned) t = (t + 1e-2 * at::randn_like(t)).to(at::kBFloat16);
  for (auto& [name, t] : ref) t = t.to(at::kBFloat16);
  io::save_safetensors(ref, (dir / "ref.safetensors").string());
  io::save_safetensors(tuned, (dir / "tuned.safetensors").string());
  const auto rf = io::SafetensorsFile::open((dir / "ref.safetensors").string());
  const auto tf = io::SafetensorsFile::open((dir / "tuned.safetensors").string());
  SECTION("file results equal in-memory results (pages released after each tensor)") {
    io::MemorySource rm(ref), tm(tuned);
    const CompareResult a = compare_checkpoints(rf, tf);
    const CompareResult b = compare_checkpoints(rm, tm);
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (const auto& row : a.tensors) {
      const auto it = std::find_if(b.tensors.begin(), b.tensors.end(), [&](const auto& x) { return x.name == row.name; });
      REQUIRE(it != b.tensors.end());
      CHECK(row.update.delta_fro == it->update.delta_fro);
      CHECK(row.reference.mean == it->reference.mean);
      CHECK(row.reference_dtype == "BF16");
    }
    // The mapping is still readable after its pages were dropped.
    CHECK(at::equal(rf.tensor("model.layers.0.self_attn.q_proj.weight"), ref[1].second));
  }
  SECTION("describe lists every tensor with its statistics") {
    DescribeOptions o;
    o.spectra = true;
    const auto rows = describe(rf, o);
    REQUIRE(rows.size() == ref.size());
    size_t ok = 0;
    for (const auto& row : rows) ok += row.spectral_status == "ok";
    CHECK(ok == 5);
    const auto doc = nlohmann::json::parse(description_json(rows));
    CHECK(doc["tensors"].size() == ref.size());
  }
  SECTION("reports are written atomically") {
    const auto path = (dir / "out.json").string();
    write_text_atomic(path, "{}");
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == "{}");
    REQUIRE_THROWS_AS(write_text_atomic((dir / "missing" / "x.json").string(), "{}"), IoError);
    REQUIRE_THROWS_WITH(write_text_atomic((dir / "missing" / "x.json").string(), "{}"), Contains("cannot create"));
  }
  std::filesystem::remove_all(dir);
}
