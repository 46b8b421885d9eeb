// Streaming comparison over in-memory and safetensors sources, and the JSON/CSV reports.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
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
    CHECK(r.tensors[1].spectral_status.state == SpectralState::ok);
    CHECK(r.tensors[1].update_spectral.k == 4);
    CHECK(r.tensors[1].update_spectral.normalized_rank == 1.0);
    CHECK_THAT(to_string(r.tensors[3].spectral_status), Contains("skipped: 1-D tensor"));
  }
  SECTION("the JSON rows carry the status text and the spectral records only when computed") {
    const auto doc = nlohmann::json::parse(comparison_json(r));
    CHECK(doc["tensors"][1]["spectral_status"] == "ok");
    CHECK(doc["tensors"][1]["reference_spectral"]["svd_method"].is_string());
    CHECK(doc["tensors"][1]["update_spectral"]["subspace_k"] == 4);
    CHECK(doc["tensors"][3]["spectral_status"].get<std::string>().rfind("skipped: 1-D tensor", 0) == 0);
    CHECK_FALSE(doc["tensors"][3].contains("reference_spectral"));
    CHECK_FALSE(doc["tensors"][3].contains("update_spectral"));
  }
  SECTION("too large matrices are reported as skipped with the limit") {
    CompareOptions small = o;
    small.max_spectral_side = 40;
    const CompareResult r2 = compare_checkpoints(rs, ts, small);
    CHECK_THAT(to_string(r2.tensors[0].spectral_status), Contains("above max_spectral_side 40"));
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
    for (const auto& row : rows) ok += row.spectral_status.ok();
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
    REQUIRE_THROWS_WITH(write_text_atomic((dir / "missing" / "x.json").string(), "{}"), Contains("x.json' for writing: No such file or directory"));
  }
  std::filesystem::remove_all(dir);
}

namespace {

// bf16 round-to-nearest-even of a float, by bit manipulation (independent of ATen's BFloat16).
float bf16_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

// Mukherjee et al.'s check_sparsity.py counts, re-implemented on float data: both sides rounded to bf16, the
// difference taken in float and rounded to bf16 (what a bf16 tensor subtraction does), then
// isclose(d, 0, atol) = |d| <= bf16(atol) (bf16 arithmetic of the allowed error), and d == 0.
std::pair<int64_t, int64_t> mukherjee_counts(const at::Tensor& w0, const at::Tensor& w1, double atol) {
  const at::Tensor a = w0.to(at::kFloat).contiguous(), b = w1.to(at::kFloat).contiguous();
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  const float allowed = bf16_round(static_cast<float>(atol));
  int64_t close = 0, zero = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float d = bf16_round(bf16_round(pb[i]) - bf16_round(pa[i]));
    close += std::fabs(d) <= allowed;
    zero += d == 0.0f;
  }
  return {close, zero};
}

}  // namespace

TEST_CASE("bf16 emulation reproduces Mukherjee et al.'s sparsity and update rank", "[params][compare][bf16]") {
  at::manual_seed(11);
  const int64_t n = 256;
  const at::Tensor w0 = at::randn({n, n});
  // 1e-5-scale updates on O(1) fp32 weights, and a true rank-4 update.
  const at::Tensor small = w0 + 1e-5 * at::randn({n, n});
  const at::Tensor rank4 = w0 + 1e-3 * at::matmul(at::randn({n, 4}), at::randn({4, n}));
  io::MemorySource rs({{"model.layers.0.mlp.up_proj.weight", w0}, {"model.layers.0.mlp.down_proj.weight", w0}});
  io::MemorySource ts({{"model.layers.0.mlp.up_proj.weight", small}, {"model.layers.0.mlp.down_proj.weight", rank4}});
  CompareOptions exact;
  exact.spectra = true;
  CompareOptions emulated = exact;
  emulated.emulate_bf16 = true;
  const CompareResult e = compare_checkpoints(rs, ts, exact);
  const CompareResult b = compare_checkpoints(rs, ts, emulated);

  SECTION("sparsity_abs and unchanged_fraction are their counts on the bf16 difference") {
    const auto [close, zero] = mukherjee_counts(w0, small, 1e-5);
    const double nn = static_cast<double>(n * n);
    REQUIRE(b.tensors[0].update.count_abs == close);
    REQUIRE(b.tensors[0].update.count_unchanged == zero);
    REQUIRE(b.tensors[0].update.sparsity_abs == Approx(close / nn).epsilon(1e-15));
    // On fp32 weights bf16 rounding erases most 1e-5 updates: the two modes disagree widely.
    WARN("fp32, 1e-5 updates: sparsity_abs exact " << e.tensors[0].update.sparsity_abs << ", bf16 "
                                                   << b.tensors[0].update.sparsity_abs);
    REQUIRE(e.tensors[0].update.sparsity_abs < 0.75);
    REQUIRE(b.tensors[0].update.sparsity_abs > 0.95);
    // Norms and the relative rule are not affected by the emulation.
    REQUIRE(b.tensors[0].update.delta_fro == e.tensors[0].update.delta_fro);
    REQUIRE(b.tensors[0].update.count_rel == e.tensors[0].update.count_rel);
    // The total is element-weighted over both tensors.
    const auto [close2, zero2] = mukherjee_counts(w0, rank4, 1e-5);
    REQUIRE(b.total.sparsity_abs == Approx((close + close2) / (2 * nn)).epsilon(1e-15));
  }

  SECTION("a true rank-4 update is rank 4 exactly but nearly full rank under the bf16 rule") {
    REQUIRE(e.tensors[1].update_spectral.update_rank == 4);
    const at::Tensor d = (rank4.to(at::kBFloat16) - w0.to(at::kBFloat16)).to(at::kFloat);
    const int64_t torch_rank = at::linalg_matrix_rank(d, std::optional<double>{}, std::optional<double>{}, false).item<int64_t>();  // update_rank.py's call
    WARN("rank-4 update, n = " << n << ": exact rank " << e.tensors[1].update_spectral.update_rank << ", bf16 rank "
                               << b.tensors[1].update_spectral.update_rank << ", torch matrix_rank " << torch_rank);
    REQUIRE(torch_rank > n - 16);
    REQUIRE(std::abs(b.tensors[1].update_spectral.update_rank - torch_rank) <= 1);
    REQUIRE(b.tensors[1].update_spectral.normalized_rank ==
            Approx(static_cast<double>(b.tensors[1].update_spectral.update_rank) / n));
  }

  SECTION("both checkpoints in bf16: emulation and exact mode agree on the counts") {
    io::MemorySource rb({{"w", w0.to(at::kBFloat16)}});
    io::MemorySource tb({{"w", small.to(at::kBFloat16)}});
    const CompareResult x = compare_checkpoints(rb, tb, CompareOptions{});
    CompareOptions o;
    o.emulate_bf16 = true;
    const CompareResult y = compare_checkpoints(rb, tb, o);
    REQUIRE(x.tensors[0].update.count_unchanged == y.tensors[0].update.count_unchanged);
    REQUIRE(std::abs(x.tensors[0].update.count_abs - y.tensors[0].update.count_abs) <=
            n * n / 1000);  // only |dW| within a bf16 ulp of atol may differ
  }
}

TEST_CASE("group summaries: unweighted tensor means, non-finite pairs and clamped cosines", "[params][compare]") {
  SECTION("the layer-wise mean is unweighted, the total element-weighted") {
    const at::Tensor a = at::zeros({100}), b = at::zeros({10});
    at::Tensor a1 = a.clone(), b1 = b.clone();
    a1.index_put_({at::indexing::Slice(0, 10)}, 1.0);  // 10 % of a changed
    b1.index_put_({at::indexing::Slice(0, 5)}, 1.0);   // 50 % of b changed
    io::MemorySource rs({{"model.layers.0.a.weight", a}, {"model.layers.0.b.weight", b}});
    io::MemorySource ts({{"model.layers.0.a.weight", a1}, {"model.layers.0.b.weight", b1}});
    const CompareResult r = compare_checkpoints(rs, ts);
    REQUIRE(r.layers.size() == 1);
    REQUIRE(r.layers[0].mean_tensor_nonzero_fraction == Approx((0.1 + 0.5) / 2));
    REQUIRE(r.layers[0].mean_tensor_sparsity_abs == Approx((0.9 + 0.5) / 2));
    REQUIRE(r.layers[0].sparsity_abs == Approx(95.0 / 110.0));
    REQUIRE(r.total.nonfinite_count == 0);
  }

  SECTION("one NaN and one Inf weight make the summaries NaN, with the count beside them") {
    at::manual_seed(3);
    const at::Tensor w = at::randn({8, 8});
    at::Tensor bad = w.clone();
    bad.index_put_({0, 0}, std::nan(""));
    bad.index_put_({1, 1}, std::numeric_limits<float>::infinity());
    io::MemorySource rs({{"model.layers.0.q.weight", w}, {"model.layers.1.q.weight", w}});
    io::MemorySource ts({{"model.layers.0.q.weight", bad}, {"model.layers.1.q.weight", w.clone()}});
    const CompareResult r = compare_checkpoints(rs, ts);
    REQUIRE(r.total.nonfinite_count == 2);
    REQUIRE(std::isnan(r.total.rel_update_norm));
    REQUIRE(std::isnan(r.total.cosine));
    REQUIRE(std::isnan(r.total.unchanged_fraction));
    REQUIRE(std::isnan(r.total.sparsity_abs));
    REQUIRE(std::isnan(r.layers[0].rel_update_norm));
    REQUIRE(r.layers[1].rel_update_norm == 0.0);      // the clean layer keeps its numbers
    REQUIRE(r.layers[1].unchanged_fraction == 1.0);
    REQUIRE(r.tensors[0].update.nonfinite_count == 2);
    const auto j = nlohmann::json::parse(comparison_json(r));
    REQUIRE(j.at("summary").at("nonfinite_count") == 2);
    REQUIRE(j.at("summary").at("cosine").is_null());

    CompareOptions o;
    o.nonfinite = NonFinitePolicy::error;
    REQUIRE_THROWS_AS(compare_checkpoints(rs, ts, o), InvalidArgument);
    REQUIRE_THROWS_WITH(compare_checkpoints(rs, ts, o),
                        Contains("model.layers.0.q.weight") && Contains("2 of 64 pairs with NaN or Inf"));
  }

  SECTION("cosine never leaves [-1, 1]") {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      at::manual_seed(seed);
      const at::Tensor w = at::randn({37, 53}) * 1e3;
      io::MemorySource rs({{"w", w}}), ts({{"w", w.clone()}});
      const CompareResult r = compare_checkpoints(rs, ts);
      REQUIRE(r.total.cosine <= 1.0);
      REQUIRE(r.tensors[0].update.cosine <= 1.0);
      REQUIRE(r.total.cosine == Approx(1.0));
    }
  }
}

TEST_CASE("spectral statuses read back from their text, unknown ones are errors", "[params][compare]") {
  for (const SpectralStatus& s : {SpectralStatus{SpectralState::off, ""}, SpectralStatus{SpectralState::ok, ""},
                                  SpectralStatus{SpectralState::skipped, "1-D tensor, spectra need a matrix"}}) {
    const SpectralStatus back = parse_spectral_status(to_string(s));
    CHECK(back.state == s.state);
    CHECK(back.reason == s.reason);
  }
  CHECK(to_string(SpectralStatus{SpectralState::skipped, "contains NaN or Inf"}) == "skipped: contains NaN or Inf");
  for (const char* bad : {"done", "ok: why", "skipped", "skipped:", "skipped: ", "OK", ""}) {
    REQUIRE_THROWS_AS(parse_spectral_status(bad), InvalidArgument);
    REQUIRE_THROWS_WITH(parse_spectral_status(bad), Contains(std::string("spectral_status: '") + bad +
                                                              "', expected \"off\", \"ok\" or \"skipped: <reason>\""));
  }
}
