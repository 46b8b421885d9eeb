// The meta-probing run on two tiny real transformers (different seeds) and on an exact copy.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/lm/transformer.hpp>
#include <metaprobe/meta/cache.hpp>
#include <metaprobe/meta/run.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/suite.hpp>

#include "../../../cpp/src/meta/internal.hpp"

// Last: glog (through ATen) defines its own CHECK, which Catch must override.
#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::meta;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

std::shared_ptr<lm::TinyTransformer> tiny(uint64_t seed) {
  lm::TransformerConfig c;
  c.d_model = 32;
  c.n_layers = 1;
  c.n_heads = 2;
  c.d_ff = 64;
  c.max_len = 1024;
  c.seed = seed;
  return std::make_shared<lm::TinyTransformer>(c);
}

std::vector<probes::Item> suite(int n_per_cell = 1) {
  probes::SuiteSpec spec;
  spec.n_per_cell = n_per_cell;
  spec.difficulties = {1};
  spec.seed = 7;
  auto items = probes::generate(spec);
  return items;
}

std::shared_ptr<io::TensorSource> state(const lm::TinyTransformer& m) {
  return std::make_shared<io::MemorySource>(m.named_parameters());
}

RunOptions small_options() {
  RunOptions o;
  o.max_new_tokens = 6;
  o.batch_size = 8;
  return o;
}

Stage stage(const std::string& name, const std::string& arm, int64_t step, std::shared_ptr<lm::TinyTransformer> m) {
  Stage s;
  s.name = name;
  s.arm = arm;
  s.step = step;
  s.source = std::make_shared<TinyLMSource>(m);
  s.checkpoint = state(*m);
  return s;
}

Report run_with(const std::vector<probes::Item>& items, RunOptions o, std::shared_ptr<lm::TinyTransformer> base,
                std::shared_ptr<lm::TinyTransformer> other) {
  Run run(items, std::make_shared<CharTokenizerAdapter>(), o);
  run.add_stage(stage("base", "base", 0, base));
  run.add_stage(stage("other", "sft", 1, other));
  return run.run();
}

}  // namespace

TEST_CASE("a stage that copies the reference has zero divergence and zero update norms", "[meta]") {
  auto items = suite();
  auto base = tiny(3);
  auto copy = std::make_shared<lm::TinyTransformer>(base->clone());
  Report r = run_with(items, small_options(), base, copy);
  const auto& s = r.stage("other");
  REQUIRE(s.divergence);
  REQUIRE(s.divergence->total.positions > 0);
  CHECK(s.divergence->total.kl_ref_stage == Approx(0).margin(1e-12));
  CHECK(s.divergence->total.kl_stage_ref == Approx(0).margin(1e-12));
  CHECK(s.divergence->total.js == Approx(0).margin(1e-12));
  CHECK(s.divergence->total.js_sparsity == 0);
  CHECK(s.divergence->total.rank_shift == 1.0);
  CHECK(s.divergence->total.top1_agree == 1.0);
  REQUIRE(s.divergence->total.sampled_items > 0);
  CHECK(s.divergence->total.sampled_kl == Approx(0).margin(1e-12));
  REQUIRE(s.params);
  CHECK(s.params->total.delta_fro == 0);
  CHECK(s.params->total.tensors == static_cast<int64_t>(base->named_parameters().size()));
  REQUIRE(s.derived);
  CHECK(s.derived->drift_l1 == 0);
  CHECK(s.derived->collapsed.empty());
}

TEST_CASE("per-cell divergence equals the mean of direct divergence calls over the same tokens", "[meta]") {
  auto items = suite(2);
  auto base = tiny(1), other = tiny(2);
  RunOptions o = small_options();
  o.behaviour = false;
  o.divergence_on = DivergenceOn::gold;
  Report r = run_with(items, o, base, other);
  const auto& d = *r.stage("other").divergence;
  REQUIRE(d.cells.size() == 20);
  CharTokenizerAdapter tok;
  const auto prompts = probes::render_all(items, o.prompt);
  for (const auto& cell : d.cells) {
    std::vector<at::Tensor> kl, klr, js, hp, hq;
    int64_t positions = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].cell() == cell.cell)) continue;
      auto p = tok.encode(prompts[i]);
      p.insert(p.begin(), 1);
      auto sol = tok.encode(" " + items[i].reference_solution);
      auto seq = p;
      seq.insert(seq.end(), sol.begin(), sol.end());
      at::Tensor ids = at::tensor(seq, at::kLong).unsqueeze(0);
      const auto start = static_cast<int64_t>(p.size()) - 1, S = static_cast<int64_t>(sol.size());
      at::Tensor lp = base->forward(ids).squeeze(0).slice(0, start, start + S);
      at::Tensor lq = other->forward(ids).squeeze(0).slice(0, start, start + S);
      DivergenceResult res = divergence(lp, lq);
      kl.push_back(res.kl_pq), klr.push_back(res.kl_qp), js.push_back(res.js);
      hp.push_back(res.entropy_p), hq.push_back(res.entropy_q);
      positions += S;
    }
    INFO(probes::to_string(cell.cell));
    CHECK(cell.positions == positions);
    CHECK(cell.kl_ref_stage == Approx(at::cat(kl).mean().item<double>()).epsilon(1e-6));
    CHECK(cell.kl_stage_ref == Approx(at::cat(klr).mean().item<double>()).epsilon(1e-6));
    CHECK(cell.js == Approx(at::cat(js).mean().item<double>()).epsilon(1e-6));
    CHECK(cell.entropy_change == Approx((at::cat(hq) - at::cat(hp)).mean().item<double>()).margin(1e-6));
    CHECK(cell.js > 0);
    int64_t hist = 0;
    for (auto c : cell.position_counts) hist += c;
    CHECK(hist == positions);
  }
}

TEST_CASE("batch size does not change the results", "[meta]") {
  auto items = suite();
  auto base = tiny(3), other = tiny(4);
  RunOptions a = small_options(), b = small_options();
  a.batch_size = 1;
  b.batch_size = 13;
  Report ra = run_with(items, a, base, other), rb = run_with(items, b, base, other);
  for (const char* name : {"base", "other"}) {
    const auto& ba = *ra.stage(name).behaviour;
    const auto& bb = *rb.stage(name).behaviour;
    REQUIRE(ba.items.size() == bb.items.size());
    for (size_t i = 0; i < ba.items.size(); ++i) CHECK(ba.items[i].output == bb.items[i].output);
  }
  const auto& da = *ra.stage("other").divergence;
  const auto& db = *rb.stage("other").divergence;
  for (size_t c = 0; c < da.cells.size(); ++c) {
    CHECK(da.cells[c].kl_ref_stage == Approx(db.cells[c].kl_ref_stage).margin(1e-5));
    CHECK(da.cells[c].js == Approx(db.cells[c].js).margin(1e-5));
    CHECK(da.cells[c].sampled_items == db.cells[c].sampled_items);
    if (da.cells[c].sampled_items > 0) CHECK(da.cells[c].sampled_kl == Approx(db.cells[c].sampled_kl).margin(1e-5));
    CHECK(da.cells[c].high_js_counts == db.cells[c].high_js_counts);
  }
}

TEST_CASE("the top-k cache gives lower bounds within the documented error", "[meta][cache]") {
  SECTION("cached_divergence with k = V is exact") {
    at::manual_seed(0);
    at::Tensor p = at::randn({9, 50}, at::kDouble) * 3, q = at::randn({9, 50}, at::kDouble) * 3;
    TopKCache c = build_topk_cache(p, 50);
    CachedDivergence cd = cached_divergence(c, q);
    DivergenceResult ex = divergence(p, q);
    CHECK(at::allclose(cd.kl_ref_stage, ex.kl_pq, 1e-9, 1e-12));
    CHECK(at::allclose(cd.kl_stage_ref, ex.kl_qp, 1e-9, 1e-12));
    CHECK(at::allclose(cd.js, ex.js, 1e-9, 1e-12));
    CHECK(at::allclose(cd.rank_shift, ex.rank_shift));
    CHECK(at::allclose(cd.entropy_ref, ex.entropy_p, 1e-9, 1e-12));
  }
  SECTION("small k: cached ≤ exact ≤ cached + bound, per position") {
    at::manual_seed(1);
    at::Tensor p = at::randn({64, 100}, at::kDouble) * 2, q = p + at::randn({64, 100}, at::kDouble);
    for (int64_t k : {1, 5, 20}) {
      TopKCache c = build_topk_cache(p, k);
      CachedDivergence cd = cached_divergence(c, q);
      DivergenceResult ex = divergence(p, q);
      CHECK((cd.js <= ex.js + 1e-12).all().item<bool>());
      CHECK((ex.js - cd.js <= cd.js_bound + 1e-12).all().item<bool>());
      CHECK((cd.kl_ref_stage <= ex.kl_pq + 1e-12).all().item<bool>());
      CHECK((ex.kl_pq - cd.kl_ref_stage <= cd.kl_ref_stage_bound + 1e-12).all().item<bool>());
      CHECK((cd.kl_stage_ref <= ex.kl_qp + 1e-12).all().item<bool>());
      CHECK(at::allclose(cd.entropy_stage, ex.entropy_q, 1e-9, 1e-12));
      CHECK(at::allclose(cd.top1_agree, ex.top1_agree));
    }
  }
  SECTION("the run in topk_cache mode stays within the bound of the exact run") {
    auto items = suite();
    auto base = tiny(5), other = tiny(6);
    RunOptions ex = small_options(), ca = small_options();
    ca.reference_mode = ReferenceMode::topk_cache;
    ca.cache_k = 8;
    Report re = run_with(items, ex, base, other), rc = run_with(items, ca, base, other);
    const auto& e = re.stage("other").divergence->total;
    const auto& c = rc.stage("other").divergence->total;
    CHECK(rc.stage("other").divergence->mode == "topk_cache");
    // Two runs see float32 logits equal up to rounding (BLAS kernels may differ by an ulp).
    const double tol = 1e-7;
    CHECK(e.js - c.js > tol);
    CHECK(c.js <= e.js + tol);
    CHECK(e.js - c.js <= c.js_cache_bound + tol);
    CHECK(c.kl_ref_stage <= e.kl_ref_stage + tol);
    CHECK(e.kl_ref_stage - c.kl_ref_stage <= c.kl_ref_stage_cache_bound + tol);
    CHECK(c.entropy_change == Approx(e.entropy_change).margin(1e-6));
    CHECK(c.rank_shift == Approx(e.rank_shift).margin(1e-6));
    REQUIRE(e.sampled_items > 0);
    CHECK(c.sampled_kl == Approx(e.sampled_kl).margin(1e-6));
  }
}

TEST_CASE("the report round-trips through JSON", "[meta][report]") {
  auto items = suite();
  Report r = run_with(items, small_options(), tiny(1), tiny(2));
  const std::string text = to_json(r).dump();
  Report back = report_from_json(nlohmann::json::parse(text));
  CHECK(to_json(back).dump() == text);
  const auto path = (std::filesystem::temp_directory_path() / "metaprobe_meta_report.json").string();
  save(r, path);
  CHECK(to_json(load_report(path)).dump() == text);
  std::filesystem::remove(path);
  SECTION("a wrong schema or version is a FormatError naming it") {
    auto j = to_json(r);
    j["schema_version"] = 99;
    REQUIRE_THROWS_AS(report_from_json(j), FormatError);
    REQUIRE_THROWS_WITH(report_from_json(j), Contains("schema_version is 99, expected 1"));
    j = to_json(r);
    j["schema"] = "other";
    REQUIRE_THROWS_WITH(report_from_json(j), Contains("schema is \"other\""));
    j = to_json(r);
    j["stages"][0].erase("info");
    REQUIRE_THROWS_AS(report_from_json(j), FormatError);
  }
  SECTION("a missing or mistyped record field is a FormatError naming the stage, the record and the key") {
    auto j = to_json(r);
    j["stages"][1]["divergence"]["total"].erase("js");
    REQUIRE_THROWS_AS(report_from_json(j), FormatError);
    REQUIRE_THROWS_WITH(report_from_json(j),
                        Contains("report: stages[1]: cell divergence.js is missing or has the wrong type: absent"));
    j = to_json(r);
    j["stages"][1]["derived"]["drift_l1"] = "x";
    REQUIRE_THROWS_WITH(report_from_json(j), Contains("report: stages[1]: stage derived.drift_l1 is missing or has "
                                                      "the wrong type: JSON string, expected a number"));
    j = to_json(r);
    j["stages"][1]["divergence"]["total"].erase("sampled_kl_huan");  // added within version 1: may be absent
    CHECK(std::isnan(report_from_json(j).stages[1].divergence->total.sampled_kl_huan));
  }
}

TEST_CASE("derived metrics follow their definitions", "[meta][derived]") {
  using probes::Cell;
  using probes::Domain;
  using probes::Skill;
  auto beh = [](std::vector<std::pair<Cell, std::pair<int, int>>> cells) {
    Behaviour b;
    for (auto& [c, cn] : cells) b.cells.push_back({c, probes::wilson(cn.first, cn.second)});
    return b;
  };
  const Cell t{Skill::calculation, Domain::math}, o{Skill::calculation, Domain::physics},
      n{Skill::calculation, Domain::general};
  Behaviour ref = beh({{t, {20, 40}}, {o, {30, 40}}, {n, {20, 40}}});
  Behaviour st = beh({{t, {30, 40}}, {o, {10, 40}}, {n, {22, 40}}});
  RunOptions opt;
  StageDerived d = meta::detail::derive(ref, st, nullptr, {t}, opt);
  CHECK(d.drift_l1 == Approx(0.25 + 0.5 + 0.05));
  CHECK(d.drift_l2 == Approx(std::sqrt(0.25 * 0.25 + 0.5 * 0.5 + 0.05 * 0.05)));
  REQUIRE(d.collapsed.size() == 1);
  CHECK(d.collapsed[0] == "calculation/physics");
  CHECK(d.dr_target == Approx(0.5));
  CHECK(d.dr_other == Approx(-2.0 / 3.0));
  CHECK(d.dr_non == Approx(0.1));
  CHECK(d.ti_other == Approx(100 * (-2.0 / 3.0) / 0.5));
  CHECK(d.ti_non == Approx(20.0));
  CHECK(d.delta_off_target == Approx(32.0 / 80 - 50.0 / 80));
  CHECK(std::isnan(d.div_off_target));
  CHECK(meta::detail::pearson({1, 2, 3}, {2, 4, 6}) == Approx(1));
  CHECK(meta::detail::spearman({1, 2, 3, 4}, {1, 4, 9, 100}) == Approx(1));
  CHECK(std::isnan(meta::detail::pearson({1, 2}, {1, 2})));
  CHECK(std::isnan(meta::detail::pearson({1, 1, 1}, {1, 2, 3})));
}

TEST_CASE("multiple-choice items scored by log-likelihood", "[meta]") {
  auto items = suite(2);
  RunOptions o = small_options();
  o.choice_mode = ChoiceMode::loglikelihood;
  o.divergence = false;
  Report r = run_with(items, o, tiny(1), tiny(2));
  int ll = 0;
  for (const auto& it : r.stage("base").behaviour->items)
    if (it.mode == "loglikelihood") {
      ++ll;
      CHECK(!it.loglikelihoods.empty());
      for (double v : it.loglikelihoods) CHECK(v < 0);
    }
  int choice_items = 0;
  for (const auto& it : items) choice_items += it.answer_type == probes::AnswerType::choice ? 1 : 0;
  CHECK(ll == choice_items);
}

TEST_CASE("bad input is rejected with a message naming it", "[meta][errors]") {
  auto items = suite();
  auto tok = std::make_shared<CharTokenizerAdapter>();
  SECTION("no reference stage") {
    Run run(items, tok, small_options());
    run.add_stage(stage("x", "sft", 1, tiny(1)));
    REQUIRE_THROWS_AS(run.run(), InvalidArgument);
    REQUIRE_THROWS_WITH(run.run(), Contains("reference is 'base', expected one of the stages ('x')"));
  }
  SECTION("duplicate stage, stage without a source") {
    Run run(items, tok, small_options());
    run.add_stage(stage("base", "base", 0, tiny(1)));
    REQUIRE_THROWS_WITH(run.add_stage(stage("base", "base", 0, tiny(1))), Contains("'base' already exists"));
    Stage empty;
    empty.name = "e";
    REQUIRE_THROWS_WITH(run.add_stage(empty), Contains("neither a source, a loader nor responses"));
  }
  SECTION("bad options") {
    RunOptions o;
    o.batch_size = 0;
    REQUIRE_THROWS_WITH(Run(items, tok, o), Contains("batch_size is 0, expected >= 1"));
    REQUIRE_THROWS_WITH(options_from_json({{"bogus", 1}}), Contains("unknown key 'bogus'"));
    REQUIRE_THROWS_WITH(options_from_json({{"reference_mode", "fast"}}), Contains("'fast' is not a reference mode"));
    REQUIRE_THROWS_WITH(options_from_json({{"razor_metric", "x"}}), Contains("razor_metric is 'x'"));
    // The run modes are enums: a name outside the table is rejected under the key's path, with the valid names.
    REQUIRE_THROWS_WITH(options_from_json({{"prompt_format", "html"}}),
                        Equals("options.prompt_format is 'html', expected one of template, chat_template, raw"));
    REQUIRE_THROWS_WITH(options_from_json({{"divergence_on", "y"}}),
                        Equals("options.divergence_on is 'y', expected one of reference_samples, stage_samples, gold"));
    REQUIRE_THROWS_WITH(options_from_json({{"target_domain", "chemistry"}}),
                        Contains("options.target_domain: unknown name 'chemistry', expected one of math,"));
    REQUIRE_THROWS_WITH(options_from_json({{"razor_metric", 3}}), Contains("options.razor_metric: got 3"));
    REQUIRE(options_from_json({{"prompt_format", "template"}}).prompt_format == PromptFormat::probe_template);
    REQUIRE(options_to_json(RunOptions{})["prompt_format"] == "template");
    REQUIRE(options_to_json(RunOptions{})["target_domain"] == "math");
    // Numbers of the wrong kind or out of range are rejected, not truncated or wrapped (fuzzer finding).
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"seed": -20.5})")),
                        Contains("options.seed: got -20.5, expected a value of the documented type and range"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"seed": -1})")), Contains("options.seed: got -1"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"max_new_tokens": 2.5})")),
                        Contains("options.max_new_tokens: got 2.5"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"prompt": {"k": 1e30}})")),
                        Contains("options.prompt.k: got 1e+30"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"prompt": {"k": 4294967296}})")),
                        Contains("options.prompt.k: got 4294967296"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"eos_ids": [1, 2.5]})")),
                        Contains("options.eos_ids: got [1,2.5]"));
    REQUIRE_THROWS_WITH(options_from_json(nlohmann::json::parse(R"({"do_sample": 1})")), Contains("options.do_sample: got 1"));
    REQUIRE(options_from_json(nlohmann::json::parse(R"({"seed": 18446744073709551615})")).seed == UINT64_MAX);
    REQUIRE(options_from_json(nlohmann::json::parse(R"({"temperature": 2})")).temperature == 2.0);
    REQUIRE_THROWS_AS(Run({}, tok, {}), InvalidArgument);
  }
  SECTION("a stage whose vocabulary differs from the reference's") {
    lm::TransformerConfig c;
    c.d_model = 16, c.n_layers = 1, c.n_heads = 2, c.d_ff = 32, c.max_len = 1024, c.vocab_size = 120;
    auto wide = std::make_shared<lm::TinyTransformer>(c);
    Run run(items, tok, small_options());
    run.add_stage(stage("base", "base", 0, tiny(1)));
    run.add_stage(stage("wide", "sft", 1, wide));
    REQUIRE_THROWS_WITH(run.run(), Contains("vocabulary size 120, expected 100"));
  }
  SECTION("a logit source returning the wrong shape") {
    Run run(items, tok, small_options());
    run.add_stage(stage("base", "base", 0, tiny(1)));
    Stage s;
    s.name = "bad";
    s.source = std::make_shared<FunctionSource>([](const at::Tensor& ids, const at::Tensor&) {
      return at::zeros({ids.size(0), 100});
    });
    run.add_stage(s);
    REQUIRE_THROWS_WITH(run.run(), Contains("stage 'bad'") && Contains("the logit source returned shape"));
  }
  SECTION("a loader is called when the stage is probed") {
    RunOptions o = small_options();
    o.divergence_on = DivergenceOn::gold;  // this reference's greedy answers end at once (EOS): no positions to compare along
    Run run(items, tok, o);
    run.add_stage(stage("base", "base", 0, tiny(1)));
    int calls = 0;
    Stage s;
    s.name = "lazy";
    s.loader = [&calls]() {
      ++calls;
      return std::make_shared<TinyLMSource>(tiny(2));
    };
    run.add_stage(s);
    Report r = run.run();
    CHECK(calls == 1);  // loaded for its own stage only, then released
    CHECK(r.stage("lazy").divergence->total.js > 0);
  }
  SECTION("TorchScript: a missing file is an IoError, a non-archive a FormatError") {
    REQUIRE_THROWS_AS(TorchScriptSource("/nonexistent/model.pt"), IoError);
    const auto path = (std::filesystem::temp_directory_path() / "metaprobe_not_ts.pt").string();
    std::ofstream(path) << "not a zip";
    REQUIRE_THROWS_AS(TorchScriptSource(path), FormatError);
    REQUIRE_THROWS_WITH(TorchScriptSource(path), Contains("is not a TorchScript archive"));
    std::filesystem::remove(path);
  }
}

TEST_CASE("a stage given another engine's responses scores them as if it had generated them", "[meta]") {
  const auto items = suite();
  RunOptions o = small_options();
  o.n_samples = 2;
  o.do_sample = true;
  o.seed = 3;
  auto base = tiny(1), other = tiny(2);
  auto tok = std::make_shared<CharTokenizerAdapter>();
  const Report generated = run_with(items, o, base, other);
  const StageReport& gen = generated.stage("other");
  REQUIRE(gen.info.responses == "generated");
  REQUIRE(gen.responses.size() == items.size() * 2);
  REQUIRE(gen.responses[1].sample == 1);
  REQUIRE(gen.responses[0].tokens.has_value());

  SECTION("with token ids, beside the stage's model: the same report sections") {
    Run run(items, tok, o);
    run.add_stage(stage("base", "base", 0, base));
    Stage s = stage("other", "sft", 1, other);
    s.responses = gen.responses;
    run.add_stage(std::move(s));
    const Report r = run.run();
    const StageReport& imp = r.stage("other");
    REQUIRE(imp.info.responses == "imported");
    REQUIRE(imp.behaviour->positions_processed == 0);  // nothing was generated
    nlohmann::json a = to_json(r)["stages"][1], b = to_json(generated)["stages"][1];
    for (auto* j : {&a, &b}) {
      (*j)["behaviour"].erase("positions_processed");
      j->erase("seconds");
      (*j)["info"].erase("responses");
    }
    // behaviour, divergence (with the sampled estimator), parameters, derived, responses; dump() writes NaN as null
    for (auto it = a.begin(); it != a.end(); ++it) CHECK(it->dump() == b[it.key()].dump());
  }
  SECTION("text only and no model: behaviour only, retokenised") {
    std::vector<Response> text_only = gen.responses;
    for (auto& x : text_only) x.tokens.reset();
    Run run(items, tok, o);
    run.add_stage(stage("base", "base", 0, base));
    Stage s;
    s.name = "other";
    s.arm = "sft";
    s.responses = text_only;
    run.add_stage(std::move(s));
    const Report r = run.run();
    const StageReport& imp = r.stage("other");
    REQUIRE(imp.info.responses == "imported_retokenized");
    REQUIRE(imp.info.source == "responses");
    REQUIRE_FALSE(imp.divergence.has_value());
    REQUIRE(imp.behaviour->items.size() == gen.behaviour->items.size());
    for (size_t k = 0; k < imp.behaviour->items.size(); ++k) {
      REQUIRE(imp.behaviour->items[k].output == gen.behaviour->items[k].output);
      REQUIRE(imp.behaviour->items[k].correct_samples == gen.behaviour->items[k].correct_samples);
    }
  }
  SECTION("bad responses are refused at add_stage, naming the entry") {
    Run run(items, tok, o);
    auto with = [&](std::vector<Response> rs) {
      Stage s;
      s.name = "x";
      s.responses = std::move(rs);
      run.add_stage(std::move(s));
    };
    auto rs = gen.responses;
    rs[0].item_id = "nope";
    REQUIRE_THROWS_WITH(with(rs), Contains("entry 0 (item 'nope', sample 0): no probe item has this id"));
    rs = gen.responses;
    rs[1].sample = 0;
    REQUIRE_THROWS_WITH(with(rs), Contains("entry 1 (item '" + items[0].id + "', sample 0): appears twice"));
    rs = gen.responses;
    rs[1].sample = 2;
    REQUIRE_THROWS_WITH(with(rs), Contains("sample is out of range, expected 0 <= sample < n_samples = 2"));
    rs = gen.responses;
    rs.pop_back();
    REQUIRE_THROWS_WITH(with(rs), Contains("item '" + items.back().id + "' sample 1 is missing"));
    rs = gen.responses;
    rs[0].tokens = std::vector<int64_t>{-4};
    REQUIRE_THROWS_WITH(with(rs), Contains("token id -4 is negative"));
    rs = gen.responses;
    rs[0].finish_reason = "done";
    REQUIRE_THROWS_WITH(with(rs), Contains("finish_reason is 'done'"));
    REQUIRE_THROWS_AS(with({}), InvalidArgument);
  }
  SECTION("a reference with responses and no model cannot give divergences") {
    Run run(items, tok, o);
    Stage s;
    s.name = "base";
    s.responses = generated.stage("base").responses;
    run.add_stage(std::move(s));
    run.add_stage(stage("other", "sft", 1, other));
    REQUIRE_THROWS_WITH(run.run(), Contains("the reference stage 'base' has no model"));
  }
  SECTION("an imported token id beyond the vocabulary") {
    auto rs = gen.responses;
    rs[0].tokens = std::vector<int64_t>{100000};
    Run run(items, tok, o);
    run.add_stage(stage("base", "base", 0, base));
    Stage s = stage("other", "sft", 1, other);
    s.responses = rs;
    run.add_stage(std::move(s));
    REQUIRE_THROWS_WITH(run.run(), Contains("has token id 100000, expected ids below the vocabulary size"));
  }
}

TEST_CASE("a run directory: stages stored as they finish, a resumed run gives the same report", "[meta][resume]") {
  namespace fs = std::filesystem;
  const auto items = suite();
  RunOptions o = small_options();
  o.n_samples = 2;
  o.do_sample = true;
  o.divergence_on = DivergenceOn::stage_samples;
  auto tok = std::make_shared<CharTokenizerAdapter>();
  auto make = [&](RunOptions opt) {
    Run run(items, tok, opt);
    run.add_stage(stage("base", "base", 0, tiny(1)));
    run.add_stage(stage("sft/1", "sft", 1, tiny(2)));  // a '/' in the name: the file name is sanitised
    run.add_stage(stage("rl-1", "rl", 1, tiny(3)));
    return run;
  };
  auto comparable = [](const Report& r) {
    nlohmann::json j = to_json(r);
    j.erase("created");
    j.erase("seconds");
    for (auto& s : j["stages"]) s.erase("seconds");
    return j.dump();
  };
  const std::string plain = comparable(make(o).run());
  const fs::path dir = fs::temp_directory_path() / ("metaprobe_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const Report first = make(o).run(RunPlan{dir.string(), false});
  REQUIRE(comparable(first) == plain);
  REQUIRE(fs::exists(dir / "run.json"));
  REQUIRE(fs::exists(dir / "report.json"));
  REQUIRE(fs::exists(dir / "stages" / "1-sft_1.json"));
  REQUIRE(fs::exists(dir / "stages" / "1-sft_1.final.json"));
  SECTION("the last stage lost: only it is probed again") {
    fs::remove(dir / "stages" / "2-rl-1.json");
    fs::remove(dir / "stages" / "2-rl-1.final.json");
    REQUIRE(comparable(make(o).run(RunPlan{dir.string(), true})) == plain);
  }
  SECTION("killed before the reference scored the answers: the estimator part is redone") {
    fs::remove(dir / "stages" / "1-sft_1.final.json");
    fs::remove(dir / "stages" / "2-rl-1.final.json");
    REQUIRE(comparable(make(o).run(RunPlan{dir.string(), true})) == plain);
  }
  SECTION("refusals") {
    REQUIRE_THROWS_WITH(make(o).run(RunPlan{dir.string(), false}), Contains("already holds a run (run.json)"));
    RunOptions other = o;
    other.seed = 9;
    REQUIRE_THROWS_WITH(make(other).run(RunPlan{dir.string(), true}),
                        Contains("was started with options.seed = 0, now 9"));
    {
      std::ofstream(dir / "stages" / "0-base.json") << "{\"report\": 3}";
    }
    REQUIRE_THROWS_WITH(make(o).run(RunPlan{dir.string(), true}), Contains("0-base.json' is not a stored stage"));
  }
  fs::remove_all(dir);
}
