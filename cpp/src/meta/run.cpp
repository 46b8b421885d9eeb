// The meta-probing run: behaviour, divergence, sampled-token estimator, parameters, derived metrics.
#include <metaprobe/meta/run.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/meta/answer.hpp>
#include <metaprobe/meta/cache.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/version.hpp>

#include "common/format.hpp"
#include "internal.hpp"

namespace metaprobe::meta {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The shared slice of the run's vocabularies (RunOptions::vocab_size): logits cut to the ids [0, n); generation
// is limited to them through DecodeOptions::vocab_limit.
class VocabSlice : public LogitSource {
 public:
  VocabSlice(std::shared_ptr<LogitSource> inner, int64_t n, std::string stage)
      : inner_(std::move(inner)), n_(n), stage_(std::move(stage)) {}
  at::Tensor logits(const at::Tensor& ids, const at::Tensor& attention_mask) override {
    return cut(inner_->logits(ids, attention_mask));
  }
  std::vector<Completion> generate(const std::vector<GenerateRequest>& requests, const DecodeOptions& options,
                                   const Tokenizer& tok) override {
    DecodeOptions o = options;
    o.vocab_limit = n_;
    return inner_->generate(requests, o, tok);
  }
  at::Tensor score(const at::Tensor& ids, const at::Tensor& attention_mask, const at::Tensor& rows,
                   const at::Tensor& cols) override {
    return cut(inner_->score(ids, attention_mask, rows, cols));
  }
  int64_t positions_processed() const override { return inner_->positions_processed(); }
  std::string describe() const override { return inner_->describe() + " (ids < " + std::to_string(n_) + ")"; }

 private:
  at::Tensor cut(const at::Tensor& logits) const {
    if (logits.defined() && logits.dim() >= 1 && logits.size(-1) < n_)
      throw InvalidArgument("stage '" + stage_ + "': the model has " + std::to_string(logits.size(-1)) +
                            " logits per position, expected at least vocab_size = " + std::to_string(n_));
    return logits.defined() && logits.dim() >= 1 ? logits.narrow(-1, 0, n_) : logits;
  }
  std::shared_ptr<LogitSource> inner_;
  int64_t n_;
  std::string stage_;
};

// A stage's logit source, acquired on first use and released after the stage when it came from a loader.
struct Holder {
  const Stage* stage = nullptr;
  std::shared_ptr<LogitSource> src;
  int64_t vocab_size = 0;  // RunOptions::vocab_size
  LogitSource& get() {
    if (!src) {
      src = stage->source ? stage->source : stage->loader();
      if (!src) throw InvalidArgument("stage '" + stage->name + "': the loader returned no logit source");
      if (vocab_size > 0) src = std::make_shared<VocabSlice>(src, vocab_size, stage->name);
    }
    return *src;
  }
  void release() {
    if (!stage->source || vocab_size > 0) src.reset();  // a resident source stays resident inside its slice
  }
};

using detail::mix64;

// The seed of sample s of item i: depends on nothing else (batch, order, stage).
uint64_t request_seed(uint64_t seed, size_t item, int64_t sample) {
  return mix64(mix64(seed) ^ mix64(static_cast<uint64_t>(item) * 0x100000001B3ULL + static_cast<uint64_t>(sample)));
}

// Unbiased pass@k of one item with n samples, c correct (Chen et al. 2021): 1 − C(n−c, k) / C(n, k).
double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - prod;
}

// Accuracy of per-item scores in [0, 1]: their mean with a percentile bootstrap over items (the clustering
// unit when each item has several samples); seeded, so the interval is reproducible.
probes::Accuracy clustered_accuracy(const std::vector<double>& scores, int64_t correct_samples, uint64_t seed, double z) {
  probes::Accuracy a;
  a.n = static_cast<int64_t>(scores.size());
  a.correct = correct_samples;
  if (scores.empty()) {
    a.acc = 0, a.lo = 0, a.hi = 1;
    return a;
  }
  double sum = 0;
  for (double v : scores) sum += v;
  a.acc = sum / static_cast<double>(scores.size());
  constexpr int kResamples = 2000;
  std::vector<double> means(kResamples);
  uint64_t state = mix64(seed ^ 0xB0075712A9ULL);
  for (int b = 0; b < kResamples; ++b) {
    double m = 0;
    for (size_t j = 0; j < scores.size(); ++j) {
      state = mix64(state);
      m += scores[static_cast<size_t>(state % scores.size())];
    }
    means[static_cast<size_t>(b)] = m / static_cast<double>(scores.size());
  }
  std::sort(means.begin(), means.end());
  // Two-sided level of the Wilson quantile z: alpha = 2 (1 − Φ(z)).
  const double alpha = std::erfc(z / std::sqrt(2.0));
  a.lo = detail::percentile(means, alpha / 2), a.hi = detail::percentile(means, 1 - alpha / 2);
  return a;
}

// Per-cell sums of per-position metrics.
struct Acc {
  int64_t items = 0, positions = 0;
  double kl_rs = 0, kl_sr = 0, js = 0, h_ref = 0, h_stage = 0, above = 0, rank = 0, top1 = 0;
  double js_bound = 0, kl_bound = 0;
  std::vector<int64_t> pos_counts, high_counts;
  double sampled_sum = 0;
  int64_t sampled_items = 0, sampled_tokens = 0;
  double huan_sum = 0, rank_stage_sum = 0, rank_ref_sum = 0;
  int64_t huan_items = 0;
  explicit Acc(int64_t bins = 0) : pos_counts(static_cast<size_t>(bins), 0), high_counts(static_cast<size_t>(bins), 0) {}
  void add(const Acc& o) {
    items += o.items, positions += o.positions, kl_rs += o.kl_rs, kl_sr += o.kl_sr, js += o.js, h_ref += o.h_ref;
    h_stage += o.h_stage, above += o.above, rank += o.rank, top1 += o.top1, js_bound += o.js_bound, kl_bound += o.kl_bound;
    for (size_t b = 0; b < pos_counts.size(); ++b) pos_counts[b] += o.pos_counts[b], high_counts[b] += o.high_counts[b];
    sampled_sum += o.sampled_sum, sampled_items += o.sampled_items, sampled_tokens += o.sampled_tokens;
    huan_sum += o.huan_sum, huan_items += o.huan_items, rank_stage_sum += o.rank_stage_sum, rank_ref_sum += o.rank_ref_sum;
  }
  CellDivergence finish(const probes::Cell& cell) const {
    CellDivergence c;
    c.cell = cell;
    c.items = items;
    c.positions = positions;
    const double n = positions > 0 ? static_cast<double>(positions) : kNaN;
    c.kl_ref_stage = kl_rs / n;
    c.kl_stage_ref = kl_sr / n;
    c.js = js / n;
    c.entropy_ref = h_ref / n;
    c.entropy_stage = h_stage / n;
    c.entropy_change = (h_stage - h_ref) / n;
    c.js_sparsity = above / n;
    c.rank_shift = rank / n;
    c.top1_agree = top1 / n;
    c.js_cache_bound = js_bound / n;
    c.kl_ref_stage_cache_bound = kl_bound / n;
    c.position_counts = pos_counts;
    c.high_js_counts = high_counts;
    c.sampled_items = sampled_items;
    c.sampled_tokens = sampled_tokens;
    c.sampled_kl = sampled_items > 0 ? sampled_sum / static_cast<double>(sampled_items) : kNaN;
    c.sampled_kl_huan = huan_items > 0 ? std::abs(huan_sum / static_cast<double>(huan_items)) : kNaN;
    const double tokens = sampled_tokens > 0 ? static_cast<double>(sampled_tokens) : kNaN;
    c.sampled_rank_stage = rank_stage_sum / tokens;
    c.sampled_rank_ref = rank_ref_sum / tokens;
    return c;
  }
};

// Stored partial sums of a stage (run directory): exact doubles, non-finite ones as "nan" / "inf" / "-inf".
nlohmann::json num_json(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(metaprobe::detail::format_double(v)); }

double num_from(const nlohmann::json& j) {
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "nan") return kNaN;
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw FormatError("a stored number is '" + s + "', expected a number, \"nan\", \"inf\" or \"-inf\"");
  }
  return j.get<double>();
}

nlohmann::json accs_to_json(const std::map<probes::Cell, Acc>& m) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [cell, a] : m) {
    nlohmann::json sums = nlohmann::json::array();
    for (double v : {a.kl_rs, a.kl_sr, a.js, a.h_ref, a.h_stage, a.above, a.rank, a.top1, a.js_bound, a.kl_bound,
                     a.sampled_sum, a.huan_sum, a.rank_stage_sum, a.rank_ref_sum})
      sums.push_back(num_json(v));
    out.push_back({{"skill", probes::to_string(cell.skill)}, {"domain", probes::to_string(cell.domain)},
                   {"items", a.items}, {"positions", a.positions}, {"sums", sums}, {"pos_counts", a.pos_counts},
                   {"high_counts", a.high_counts}, {"sampled_items", a.sampled_items},
                   {"sampled_tokens", a.sampled_tokens}, {"huan_items", a.huan_items}});
  }
  return out;
}

std::map<probes::Cell, Acc> accs_from_json(const nlohmann::json& j) {
  std::map<probes::Cell, Acc> m;
  for (const auto& e : j) {
    Acc a;
    const probes::Cell cell{probes::parse_skill(e.at("skill").get<std::string>()),
                            probes::parse_domain(e.at("domain").get<std::string>())};
    a.items = e.at("items").get<int64_t>();
    a.positions = e.at("positions").get<int64_t>();
    const auto& v = e.at("sums");
    double* fields[] = {&a.kl_rs, &a.kl_sr, &a.js, &a.h_ref, &a.h_stage, &a.above, &a.rank, &a.top1, &a.js_bound,
                        &a.kl_bound, &a.sampled_sum, &a.huan_sum, &a.rank_stage_sum, &a.rank_ref_sum};
    if (v.size() != std::size(fields))
      throw FormatError("stored partial sums: " + std::to_string(v.size()) + " values, expected " + std::to_string(std::size(fields)));
    for (size_t k = 0; k < std::size(fields); ++k) *fields[k] = num_from(v[k]);
    e.at("pos_counts").get_to(a.pos_counts);
    e.at("high_counts").get_to(a.high_counts);
    a.sampled_items = e.at("sampled_items").get<int64_t>();
    a.sampled_tokens = e.at("sampled_tokens").get<int64_t>();
    a.huan_items = e.at("huan_items").get<int64_t>();
    m.emplace(cell, std::move(a));
  }
  return m;
}

nlohmann::json rows_to_json(const std::vector<std::vector<double>>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json x = nlohmann::json::array();
    for (double v : r) x.push_back(num_json(v));
    out.push_back(std::move(x));
  }
  return out;
}

std::vector<std::vector<double>> rows_from_json(const nlohmann::json& j) {
  std::vector<std::vector<double>> out;
  for (const auto& r : j) {
    out.emplace_back();
    for (const auto& v : r) out.back().push_back(num_from(v));
  }
  return out;
}

// A stage's file name in the run directory: its index (unique) and its name, reduced to portable characters.
std::string stage_file_stem(size_t index, const std::string& name) {
  std::string safe;
  for (char c : name) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return std::to_string(index) + "-" + safe.substr(0, 80);
}

// A teacher-forced sequence whose `len` tokens after `prompt` are scored: logits at positions
// [prompt − 1, prompt − 1 + len) predict them. `item` indexes the run's items.
struct Scored {
  size_t item = 0;
  std::vector<int64_t> ids;
  int64_t prompt = 0, len = 0;
};

// A piece of a Scored sequence: positions [j0, j1) of its scored tokens (sequences longer than score_rows are
// scored in several pieces so no pass holds more than score_rows × V logits).
struct Piece {
  size_t seq = 0;
  int64_t j0 = 0, j1 = 0;
};

// What the source produced for one piece: rows [j1 − j0, V] of each source, in the pass's order.
using PieceFn = std::function<void(const Piece&, const std::vector<at::Tensor>&)>;

// Multiple-choice items are scored by option log-likelihood in that mode; every other item generates.
bool scored_by_loglikelihood(const probes::Item& it, const RunOptions& opt) {
  return opt.choice_mode == ChoiceMode::loglikelihood && it.answer_type == probes::AnswerType::choice && !it.choices.empty();
}

bool has_model(const Stage& s) { return s.source || s.loader; }

// The generate result of one item: one completion per sample.
struct ItemAnswers {
  std::vector<Completion> samples;
};

class Engine {
 public:
  Engine(const std::vector<probes::Item>& items, const Tokenizer& tok, const RunOptions& opt)
      : items_(items), tok_(tok), opt_(opt) {
    const bool chat = opt_.prompt_format == PromptFormat::chat_template;
    if (chat && !tok_.has_chat_template())
      throw InvalidArgument("RunOptions.prompt_format is 'chat_template', expected a tokenizer with a chat template "
                            "(the run's tokenizer has none)");
    const auto prompts = opt_.prompt_format == PromptFormat::probe_template ? probes::render_all(items_, opt_.prompt)
                                                                            : std::vector<std::string>{};
    eos_ = opt_.eos_ids.empty() ? tok_.eos_ids() : opt_.eos_ids;
    for (size_t i = 0; i < items_.size(); ++i) {
      const auto& it = items_[i];
      std::vector<int64_t> p;
      if (chat) {
        p = tok_.chat_prompt(opt_.system_prompt, it.prompt);
      } else {
        if (tok_.bos_id() >= 0) p.push_back(tok_.bos_id());
        auto enc = tok_.encode(prompts.empty() ? it.prompt : prompts[i]);
        p.insert(p.end(), enc.begin(), enc.end());
      }
      if (p.empty())
        throw InvalidArgument("item '" + it.id + "': the prompt encodes to no tokens, expected at least one");
      prompt_ids_.push_back(std::move(p));
      if (scored_by_loglikelihood(it, opt_)) {
        ll_items_.push_back(i);
      } else {
        gen_row_[it.id] = gen_items_.size();
        gen_items_.push_back(i);
      }
      if (!it.reference_solution.empty()) {
        tf_items_.push_back(i);
        solution_ids_[i] = tok_.encode(continuation(it.reference_solution));
        check_targets(solution_ids_[i], it.id, "reference solution");
      }
    }
    for (size_t i : ll_items_) n_pairs_ += static_cast<int64_t>(items_[i].choices.size());
  }

  // Scored tokens must lie in the run's vocabulary slice (RunOptions::vocab_size): their log-probabilities are
  // read from the cut logits.
  void check_targets(const std::vector<int64_t>& ids, const std::string& item, const char* what) const {
    if (opt_.vocab_size <= 0) return;
    for (int64_t t : ids)
      if (t >= opt_.vocab_size)
        throw InvalidArgument("item '" + item + "': its " + what + " encodes to token id " + std::to_string(t) +
                              ", outside the shared vocabulary slice [0, vocab_size = " + std::to_string(opt_.vocab_size) + ")");
  }

  // Text after the prompt for teacher forcing: inside the assistant turn for chat prompts, else after the separator.
  std::string continuation(const std::string& text) const {
    return opt_.prompt_format == PromptFormat::chat_template ? text : opt_.solution_separator + text;
  }

  const std::vector<size_t>& tf_items() const { return tf_items_; }
  const std::vector<size_t>& gen_items() const { return gen_items_; }
  const std::vector<size_t>& ll_items() const { return ll_items_; }
  int64_t n_pairs() const { return n_pairs_; }
  const std::vector<std::vector<int64_t>>& prompt_ids() const { return prompt_ids_; }

  void tick(const std::string& phase, const std::string& stage, int64_t n = 1) {
    done_ += n;
    if (opt_.progress) opt_.progress({phase, stage, std::min(done_, total_), total_});
  }
  void set_total(int64_t t) { total_ = t; }
  void finish_progress() {
    done_ = total_;
    if (opt_.progress) opt_.progress({"derived", "", total_, total_});
  }

  // Batches of indices into `lengths` (longest first, ties by index): at most batch_size rows and batch_tokens
  // padded tokens (rows × longest) each, and at most score_rows scored positions when `scored` is given.
  std::vector<std::vector<size_t>> plan(const std::vector<int64_t>& lengths, const std::vector<int64_t>* scored) const {
    std::vector<size_t> order(lengths.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    std::vector<std::vector<size_t>> out;
    int64_t width = 0, rows_scored = 0;
    for (size_t k : order) {
      const int64_t sc = scored ? (*scored)[k] : 0;
      if (!out.empty()) {
        auto& cur = out.back();
        const auto n = static_cast<int64_t>(cur.size());
        if (n < opt_.batch_size && (n + 1) * width <= opt_.batch_tokens && (!scored || rows_scored + sc <= opt_.score_rows)) {
          cur.push_back(k);
          rows_scored += sc;
          continue;
        }
      }
      out.push_back({k});
      width = lengths[k];
      rows_scored = sc;
    }
    return out;
  }

  // Generates every request through `src` in planned batches; returns the completions in request order.
  std::vector<Completion> run_requests(LogitSource& src, const std::string& stage, int64_t vocab,
                                       const std::vector<GenerateRequest>& reqs, const std::string& phase) {
    std::vector<int64_t> lengths;
    for (const auto& r : reqs) {
      lengths.push_back(static_cast<int64_t>(r.prompt.size()) + opt_.max_new_tokens);
      for (int64_t id : r.prompt)
        if (id < 0 || id >= vocab)
          throw InvalidArgument("stage '" + stage + "': a prompt holds token id " + std::to_string(id) +
                                ", outside the model's vocabulary [0, " + std::to_string(vocab) +
                                ") (is the run's tokenizer the model's?)");
    }
    DecodeOptions d = opt_.decode_options();
    d.eos_ids = eos_;
    std::vector<Completion> out(reqs.size());
    for (const auto& batch : plan(lengths, nullptr)) {
      std::vector<GenerateRequest> b;
      for (size_t k : batch) b.push_back(reqs[k]);
      std::vector<Completion> got;
      try {
        got = src.generate(b, d, tok_);
      } catch (const InvalidArgument& e) {
        throw InvalidArgument("stage '" + stage + "': generation: " + e.what());
      }
      if (got.size() != b.size())
        throw InvalidArgument("stage '" + stage + "': generation returned " + std::to_string(got.size()) +
                              " completions for " + std::to_string(b.size()) + " requests, expected one each");
      for (size_t a = 0; a < batch.size(); ++a) {
        auto& c = got[a];
        for (size_t j = 0; j < c.tokens.size(); ++j)
          if (c.tokens[j] < 0 || c.tokens[j] >= vocab)
            throw InvalidArgument("stage '" + stage + "': generation returned token id " + std::to_string(c.tokens[j]) +
                                  ", expected an id in [0, " + std::to_string(vocab) + ")");
        for (double lp : c.logprobs)
          if (std::isnan(lp))
            throw InvalidArgument("stage '" + stage + "': generation: a chosen token has log-probability NaN "
                                  "(the model produced NaN logits), expected finite logits");
        out[batch[a]] = std::move(c);
      }
      tick(phase, stage, static_cast<int64_t>(batch.size()));
    }
    return out;
  }

  // Teacher-forced scoring of `seqs` through every source of `srcs` (the same batches for each): fn sees each
  // piece with the logits rows of every source. Progress ticks once per sequence.
  void score_pass(const std::vector<LogitSource*>& srcs, const std::vector<std::string>& names, int64_t vocab,
                  const std::vector<Scored>& seqs, const std::string& phase, const std::string& stage,
                  const PieceFn& fn) {
    std::vector<Piece> pieces;
    std::vector<int64_t> lengths, scored;
    const int64_t chunk = opt_.score_rows;
    for (size_t s = 0; s < seqs.size(); ++s)
      for (int64_t j0 = 0; j0 < seqs[s].len; j0 += chunk) {
        pieces.push_back({s, j0, std::min(seqs[s].len, j0 + chunk)});
        lengths.push_back(seqs[s].prompt + pieces.back().j1);  // the forward needs the prefix up to j1 only
        scored.push_back(pieces.back().j1 - j0);
      }
    std::vector<int64_t> remaining(seqs.size(), 0);
    for (const auto& p : pieces) remaining[p.seq] += 1;
    for (const auto& batch : plan(lengths, &scored)) {
      std::vector<std::vector<int64_t>> rows_ids;
      std::vector<int64_t> rows, cols;
      for (size_t b = 0; b < batch.size(); ++b) {
        const Piece& p = pieces[batch[b]];
        const Scored& q = seqs[p.seq];
        rows_ids.emplace_back(q.ids.begin(), q.ids.begin() + q.prompt + p.j1);
        for (int64_t j = p.j0; j < p.j1; ++j) {
          rows.push_back(static_cast<int64_t>(b));
          cols.push_back(q.prompt - 1 + j);
        }
      }
      auto [ids, mask] = pad_batch(rows_ids, tok_.pad_id(), false);
      at::Tensor r = at::tensor(rows, at::TensorOptions().dtype(at::kLong));
      at::Tensor c = at::tensor(cols, at::TensorOptions().dtype(at::kLong));
      std::vector<at::Tensor> out;
      for (size_t k = 0; k < srcs.size(); ++k)
        out.push_back(checked_scores(*srcs[k], ids, mask, r, c, names[k], vocab, phase));
      int64_t offset = 0, done_seqs = 0;
      for (size_t b = 0; b < batch.size(); ++b) {
        const Piece& p = pieces[batch[b]];
        std::vector<at::Tensor> part;
        for (auto& t : out) part.push_back(t.narrow(0, offset, p.j1 - p.j0));
        offset += p.j1 - p.j0;
        fn(p, part);
        if (--remaining[p.seq] == 0) ++done_seqs;
      }
      if (done_seqs) tick(phase, stage, done_seqs);
    }
  }

  // log p(target) of every scored token of `seqs` under `src` (divergence temperature), per sequence.
  // log p(target) of every scored token of `seqs` under `src` (divergence temperature), per sequence; with
  // `ranks`, also each target's 1-based rank in the row (1 + the number of strictly larger logits: Huan et
  // al.'s per-token rank, vLLM's Logprob.rank).
  std::vector<std::vector<double>> token_logprobs(LogitSource& src, const std::string& name, int64_t vocab,
                                                  const std::vector<Scored>& seqs, const std::string& phase,
                                                  const std::string& stage,
                                                  std::vector<std::vector<double>>* ranks = nullptr) {
    std::vector<std::vector<double>> out(seqs.size());
    for (size_t s = 0; s < seqs.size(); ++s) out[s].assign(static_cast<size_t>(seqs[s].len), 0.0);
    if (ranks) *ranks = out;
    score_pass({&src}, {name}, vocab, seqs, phase, stage, [&](const Piece& p, const std::vector<at::Tensor>& rows) {
      const Scored& q = seqs[p.seq];
      std::vector<int64_t> targets(q.ids.begin() + q.prompt + p.j0, q.ids.begin() + q.prompt + p.j1);
      at::Tensor lrows = at::log_softmax(rows[0].to(at::kDouble) / opt_.divergence_temperature, -1);
      at::Tensor tgt = at::tensor(targets, at::TensorOptions().dtype(at::kLong)).to(lrows.device()).unsqueeze(1);
      at::Tensor chosen = lrows.gather(1, tgt);
      at::Tensor lp = chosen.squeeze(1).cpu();
      auto a = lp.accessor<double, 1>();
      for (int64_t j = p.j0; j < p.j1; ++j) out[p.seq][static_cast<size_t>(j)] = a[j - p.j0];
      if (ranks) {
        at::Tensor rk = ((lrows > chosen).sum(1) + 1).to(at::kDouble).cpu();
        auto b = rk.accessor<double, 1>();
        for (int64_t j = p.j0; j < p.j1; ++j) (*ranks)[p.seq][static_cast<size_t>(j)] = b[j - p.j0];
      }
    });
    return out;
  }

  // Sum of log-probabilities of each option after the prompt, per loglikelihood-mode item.
  std::vector<std::vector<double>> choice_loglikelihoods(LogitSource& src, const std::string& stage, int64_t vocab) {
    std::vector<Scored> seqs;
    std::vector<std::pair<size_t, size_t>> where;
    std::vector<std::vector<double>> out;
    for (size_t a = 0; a < ll_items_.size(); ++a) {
      const size_t i = ll_items_[a];
      out.emplace_back(items_[i].choices.size(), 0.0);
      for (size_t k = 0; k < items_[i].choices.size(); ++k) {
        auto cont = tok_.encode(opt_.choice_delimiter + items_[i].choices[k]);
        if (cont.empty())
          throw InvalidArgument("item '" + items_[i].id + "': option " + std::to_string(k) +
                                " encodes to no tokens, expected at least one");
        check_targets(cont, items_[i].id, "option");
        Scored q{i, prompt_ids_[i], static_cast<int64_t>(prompt_ids_[i].size()), static_cast<int64_t>(cont.size())};
        q.ids.insert(q.ids.end(), cont.begin(), cont.end());
        seqs.push_back(std::move(q));
        where.emplace_back(a, k);
      }
    }
    const auto lps = token_logprobs(src, stage, vocab, seqs, "behaviour", stage);
    for (size_t s = 0; s < seqs.size(); ++s)
      for (double v : lps[s]) out[where[s].first][where[s].second] += v;
    return out;
  }

  // Reads the answer of a completion (meta/answer.hpp) and counts the tokens of its reasoning block.
  struct Read {
    std::string output, answer;
    int64_t think_tokens = 0;
    bool closed = true;
  };
  Read read(const Completion& c) const {
    AnswerText a = read_answer(tok_.decode(c.tokens), opt_.stop, opt_.think_open, opt_.think_close);
    Read r{std::move(a.output), std::move(a.answer), 0, a.closed};
    if (!a.closed) {
      r.think_tokens = static_cast<int64_t>(c.tokens.size());
    } else if (a.think_end > 0) {
      r.think_tokens = static_cast<int64_t>(tok_.encode(r.output.substr(0, a.think_end)).size());
    }
    return r;
  }

  // Every sample of every generate-mode item, in gen_items_ order.
  std::vector<ItemAnswers> generate_all(LogitSource& src, const std::string& stage, int64_t vocab, int64_t& positions) {
    std::vector<GenerateRequest> reqs;
    for (size_t i : gen_items_)
      for (int64_t s = 0; s < opt_.n_samples; ++s) reqs.push_back({prompt_ids_[i], request_seed(opt_.seed, i, s)});
    const int64_t before = src.positions_processed();
    auto done = run_requests(src, stage, vocab, reqs, "behaviour");
    positions = src.positions_processed() - before;
    std::vector<ItemAnswers> out(gen_items_.size());
    size_t q = 0;
    for (auto& a : out)
      for (int64_t s = 0; s < opt_.n_samples; ++s) a.samples.push_back(std::move(done[q++]));
    return out;
  }

  // Imported answers (validated by Run::add_stage) in gen_items_ order. Text-only answers are tokenised alone,
  // so the prompt/answer boundary stays where the prompt ends; a trailing end-of-generation id is dropped
  // (completions exclude it). Sets `retokenized` when any answer had text only.
  std::vector<ItemAnswers> imported_answers(const std::vector<Response>& responses, const std::string& stage,
                                            int64_t vocab, bool& retokenized) {
    std::vector<ItemAnswers> out(gen_items_.size());
    for (auto& a : out) a.samples.resize(static_cast<size_t>(opt_.n_samples));
    retokenized = false;
    for (const auto& r : responses) {
      Completion c;
      if (r.tokens) {
        c.tokens = *r.tokens;
      } else {
        c.tokens = tok_.encode(r.text);
        retokenized = true;
      }
      c.finish_reason = r.finish_reason;
      if (!c.tokens.empty() && std::find(eos_.begin(), eos_.end(), c.tokens.back()) != eos_.end()) {
        c.tokens.pop_back();
        if (c.finish_reason.empty()) c.finish_reason = "eos";
      }
      for (int64_t t : c.tokens)
        if (vocab > 0 && t >= vocab)
          throw InvalidArgument("stage '" + stage + "': response of item '" + r.item_id + "' sample " +
                                std::to_string(r.sample) + " has token id " + std::to_string(t) +
                                ", expected ids below the vocabulary size " + std::to_string(vocab));
      out[gen_row_.at(r.item_id)].samples[static_cast<size_t>(r.sample)] = std::move(c);
    }
    return out;
  }

  // Every sample's raw answer, as the report keeps it (and export_responses writes it).
  std::vector<Response> responses_of(const std::vector<ItemAnswers>& answers) const {
    std::vector<Response> out;
    for (size_t r = 0; r < answers.size() && r < gen_items_.size(); ++r)
      for (size_t s = 0; s < answers[r].samples.size(); ++s) {
        const auto& c = answers[r].samples[s];
        out.push_back({items_[gen_items_[r]].id, static_cast<int64_t>(s), tok_.decode(c.tokens), c.tokens, c.finish_reason, ""});
      }
    return out;
  }

  // `src` generates the answers unless `imported` gives them (then `src` may be null when no item is scored
  // by log-likelihood).
  Behaviour behaviour(LogitSource* src, const std::string& stage, int64_t vocab, const std::vector<Response>* imported,
                      std::vector<ItemAnswers>& answers, bool& retokenized) {
    Behaviour b;
    int64_t positions = 0;
    retokenized = false;
    if (imported) {
      answers = imported_answers(*imported, stage, vocab, retokenized);
      tick("behaviour", stage, static_cast<int64_t>(gen_items_.size()) * opt_.n_samples);
    } else {
      answers = generate_all(*src, stage, vocab, positions);
    }
    b.positions_processed = positions;
    std::vector<ItemResult> results(items_.size());
    std::vector<bool> present(items_.size(), false);
    std::vector<double> score(items_.size(), 0.0);
    const int64_t n = opt_.n_samples;
    std::vector<int64_t> ks;
    for (int64_t k = 1; k < n; k *= 2) ks.push_back(k);
    ks.push_back(n);
    std::vector<double> pass(ks.size(), 0.0);
    std::map<probes::Cell, probes::Detection> detection;  // diagnostic cells, first samples
    if (!gen_items_.empty()) {
      std::vector<Read> reads;
      std::vector<const probes::Item*> its;
      for (size_t r = 0; r < gen_items_.size(); ++r)
        for (const auto& c : answers[r].samples) {
          reads.push_back(read(c));
          its.push_back(&items_[gen_items_[r]]);
          b.prompt_tokens += static_cast<int64_t>(prompt_ids_[gen_items_[r]].size());
          b.generated_tokens += static_cast<int64_t>(c.tokens.size());
        }
      std::vector<std::string_view> outs;
      for (const auto& rd : reads) outs.emplace_back(rd.answer);
      const probes::Scores sc = probes::score(its, outs);
      for (size_t r = 0; r < gen_items_.size(); ++r) {
        const size_t i = gen_items_[r];
        auto& res = results[i];
        const size_t first = r * static_cast<size_t>(n);
        res.mode = "generate";
        res.output = reads[first].output;
        res.extracted = reads[first].closed ? sc.items[first].extracted : "";
        res.correct = reads[first].closed && sc.items[first].correct;
        if (items_[i].skill == probes::Skill::diagnostic) {
          const std::string& st = sc.items[first].strategy;
          const bool found = reads[first].closed && st != "none" && st != "reasoning_unclosed";
          probes::add_detection(detection[items_[i].cell()], items_[i], res.extracted, found, res.correct);
        }
        res.generated_tokens = static_cast<int64_t>(answers[r].samples[0].tokens.size());
        res.finish_reason = answers[r].samples[0].finish_reason;
        res.think_tokens = reads[first].think_tokens;
        res.think_closed = reads[first].closed;
        res.samples = n;
        for (int64_t s = 0; s < n; ++s)
          res.correct_samples += reads[first + static_cast<size_t>(s)].closed && sc.items[first + static_cast<size_t>(s)].correct;
        score[i] = static_cast<double>(res.correct_samples) / static_cast<double>(n);
        for (size_t k = 0; k < ks.size(); ++k) pass[k] += pass_at_k(n, res.correct_samples, ks[k]);
        present[i] = true;
      }
      for (size_t k = 0; k < ks.size(); ++k)
        b.pass_at_k.push_back({ks[k], pass[k] / static_cast<double>(gen_items_.size())});
    }
    if (!ll_items_.empty() && opt_.behaviour) {
      if (!src) throw InvalidArgument("stage '" + stage + "': no model to score the multiple-choice options by log-likelihood");
      auto lls = choice_loglikelihoods(*src, stage, vocab);
      for (size_t a = 0; a < ll_items_.size(); ++a) {
        const size_t i = ll_items_[a];
        const auto cs = probes::score_choice(items_[i], lls[a]);
        const int pred = opt_.choice_norm ? cs.pred_norm : cs.pred;
        auto& res = results[i];
        res.mode = "loglikelihood";
        res.loglikelihoods = lls[a];
        res.output = pred >= 0 ? items_[i].choices[static_cast<size_t>(pred)] : "";
        res.extracted = pred >= 0 ? std::string(1, static_cast<char>('A' + pred)) : "";
        res.correct = opt_.choice_norm ? cs.acc_norm : cs.acc;
        res.correct_samples = res.correct ? 1 : 0;
        score[i] = res.correct ? 1.0 : 0.0;
        present[i] = true;
      }
    }
    // Per cell: Wilson over items with one sample each; with n_samples > 1 the mean of per-item scores and a
    // bootstrap over items (samples of one item are not independent draws).
    std::map<probes::Cell, std::pair<std::vector<double>, int64_t>> cells;
    std::vector<double> all;
    int64_t all_correct = 0;
    for (size_t i = 0; i < items_.size(); ++i) {
      if (!present[i]) continue;
      results[i].id = items_[i].id;
      results[i].cell = items_[i].cell();
      results[i].phrasing = items_[i].phrasing;
      results[i].noop = items_[i].noop;
      auto& c = cells[items_[i].cell()];
      c.first.push_back(score[i]);
      c.second += results[i].correct_samples;
      all.push_back(score[i]);
      all_correct += results[i].correct_samples;
      b.items.push_back(std::move(results[i]));
    }
    auto accuracy = [&](const std::vector<double>& sc, int64_t correct) {
      if (n == 1) return probes::wilson(correct, static_cast<int64_t>(sc.size()), opt_.z);
      return clustered_accuracy(sc, correct, opt_.seed, opt_.z);
    };
    for (const auto& [cell, cn] : cells) {
      CellAccuracy ca{cell, accuracy(cn.first, cn.second)};
      if (auto it = detection.find(cell); it != detection.end()) {
        probes::finish_detection(it->second);
        ca.precision = it->second.precision;
        ca.recall = it->second.recall;
        ca.f1 = it->second.f1;
      }
      b.cells.push_back(ca);
    }
    b.overall = accuracy(all, all_correct);
    return b;
  }

  // The sequences the divergence is measured along: the gold solutions, or the first sample of the given answers.
  std::vector<Scored> gold_sequences() const {
    std::vector<Scored> out;
    for (size_t i : tf_items_) {
      Scored q{i, prompt_ids_[i], static_cast<int64_t>(prompt_ids_[i].size()),
               static_cast<int64_t>(solution_ids_.at(i).size())};
      q.ids.insert(q.ids.end(), solution_ids_.at(i).begin(), solution_ids_.at(i).end());
      if (q.len > 0) out.push_back(std::move(q));
    }
    return out;
  }
  std::vector<Scored> answer_sequences(const std::vector<ItemAnswers>& answers) const {
    std::vector<Scored> out;
    for (size_t r = 0; r < answers.size() && r < gen_items_.size(); ++r) {
      const auto& t = answers[r].samples.at(0).tokens;
      if (t.empty()) continue;
      const size_t i = gen_items_[r];
      Scored q{i, prompt_ids_[i], static_cast<int64_t>(prompt_ids_[i].size()), static_cast<int64_t>(t.size())};
      q.ids.insert(q.ids.end(), t.begin(), t.end());
      out.push_back(std::move(q));
    }
    return out;
  }

  // The reference's top-k cache along `seqs`, one entry per sequence (its pieces joined in order).
  std::vector<TopKCache> build_cache(LogitSource& ref, const std::string& stage, int64_t vocab,
                                     const std::vector<Scored>& seqs) {
    std::vector<std::vector<TopKCache>> pieces(seqs.size());
    score_pass({&ref}, {stage}, vocab, seqs, "divergence", stage, [&](const Piece& p, const std::vector<at::Tensor>& rows) {
      pieces[p.seq].push_back(build_topk_cache(rows[0], opt_.cache_k, opt_.divergence_temperature));
    });
    std::vector<TopKCache> cache;
    for (auto& ps : pieces) cache.push_back(concat(ps));
    return cache;
  }

  // The reference's cache along `seqs` from a file (Stage::reference_cache): sample 0 of each sequence's item.
  std::vector<TopKCache> imported_cache(const std::string& path, const std::vector<Scored>& seqs) const {
    double temperature = 0;
    const auto entries = load_topk_caches(path, &temperature);
    if (temperature != opt_.divergence_temperature)
      throw InvalidArgument("reference_cache '" + path + "': cached at temperature " + metaprobe::detail::format_double(temperature) +
                            ", expected the run's divergence_temperature " + metaprobe::detail::format_double(opt_.divergence_temperature));
    std::map<std::pair<std::string, int64_t>, const SequenceCache*> by_key;
    for (const auto& e : entries) by_key[{e.item_id, e.sample}] = &e;
    std::vector<TopKCache> cache;
    for (const auto& q : seqs) {
      const std::string& id = items_[q.item].id;
      const auto it = by_key.find({id, 0});
      if (it == by_key.end())
        throw InvalidArgument("reference_cache '" + path + "': no rows for item '" + id + "' sample 0, expected one "
                              "cached sequence per item the divergence is measured along");
      if (it->second->rows.indices.size(0) != q.len)
        throw InvalidArgument("reference_cache '" + path + "': item '" + id + "' has " +
                              std::to_string(it->second->rows.indices.size(0)) + " cached rows for " +
                              std::to_string(q.len) + " scored tokens, expected one row per token");
      cache.push_back(it->second->rows);
    }
    return cache;
  }

  // Full-vocabulary divergence along `seqs`; `ref` (exact) or `cache` (topk_cache, one entry per sequence).
  std::map<probes::Cell, Acc> divergence(LogitSource& stage_src, const std::string& stage, int64_t vocab,
                                         LogitSource* ref, const std::vector<TopKCache>* cache,
                                         const std::vector<Scored>& seqs) {
    std::map<probes::Cell, Acc> acc;
    const double tau = opt_.js_threshold;
    const int64_t bins = opt_.position_bins;
    std::vector<LogitSource*> srcs{&stage_src};
    std::vector<std::string> names{stage};
    if (ref) srcs.push_back(ref), names.push_back(opt_.reference);
    score_pass(srcs, names, vocab, seqs, "divergence", stage, [&](const Piece& p, const std::vector<at::Tensor>& rows) {
      at::Tensor q = rows[0];
      at::Tensor kl_rs, kl_sr, js, h_ref, h_stage, rank, top1, jsb, klb;
      if (ref) {
        at::Tensor pr = rows[1];
        if (q.device() != pr.device()) q = q.to(pr.device());  // reference and stage on different devices
        if (q.scalar_type() != pr.scalar_type()) q = q.to(at::kFloat), pr = pr.to(at::kFloat);
        DivergenceOptions o;
        o.temperature = opt_.divergence_temperature;
        o.metrics = MetricSet{}
                        .with(Metric::kl_pq)
                        .with(Metric::kl_qp)
                        .with(Metric::js)
                        .with(Metric::entropy_p)
                        .with(Metric::entropy_q)
                        .with(Metric::rank_shift)
                        .with(Metric::top1_agree);
        DivergenceResult d = metaprobe::divergence(pr, q, o);
        kl_rs = d.kl_pq.cpu(), kl_sr = d.kl_qp.cpu(), js = d.js.cpu(), h_ref = d.entropy_p.cpu();
        h_stage = d.entropy_q.cpu(), rank = d.rank_shift.cpu(), top1 = d.top1_agree.cpu();
      } else {
        CachedDivergence d = cached_divergence(slice((*cache).at(p.seq), p.j0, p.j1), q, opt_.divergence_temperature);
        kl_rs = d.kl_ref_stage, kl_sr = d.kl_stage_ref, js = d.js, h_ref = d.entropy_ref, h_stage = d.entropy_stage;
        rank = d.rank_shift, top1 = d.top1_agree, jsb = d.js_bound.contiguous(), klb = d.kl_ref_stage_bound.contiguous();
      }
      auto a_klrs = kl_rs.accessor<double, 1>(), a_klsr = kl_sr.accessor<double, 1>(), a_js = js.accessor<double, 1>();
      auto a_hr = h_ref.accessor<double, 1>(), a_hs = h_stage.accessor<double, 1>();
      auto a_rank = rank.accessor<double, 1>(), a_top1 = top1.accessor<double, 1>();
      const Scored& sq = seqs[p.seq];
      auto it = acc.find(items_[sq.item].cell());
      if (it == acc.end()) it = acc.emplace(items_[sq.item].cell(), Acc(bins)).first;
      Acc& a = it->second;
      if (p.j0 == 0) a.items += 1;
      const int64_t S = sq.len;
      for (int64_t j = p.j0; j < p.j1; ++j) {
        const int64_t row = j - p.j0;
        a.positions += 1;
        a.kl_rs += a_klrs[row], a.kl_sr += a_klsr[row], a.js += a_js[row], a.h_ref += a_hr[row];
        a.h_stage += a_hs[row], a.rank += a_rank[row], a.top1 += a_top1[row];
        if (jsb.defined()) a.js_bound += jsb.data_ptr<double>()[row], a.kl_bound += klb.data_ptr<double>()[row];
        const double u = (static_cast<double>(j) + 0.5) / static_cast<double>(S);
        const auto bin = std::min<int64_t>(bins - 1, static_cast<int64_t>(u * static_cast<double>(bins)));
        a.pos_counts[static_cast<size_t>(bin)] += 1;
        if (a_js[row] > tau) {
          a.above += 1;
          a.high_counts[static_cast<size_t>(bin)] += 1;
        }
      }
    });
    return acc;
  }

  // The sampled-token estimators on the stage's own answers: the exact per-token mean of log p_stage − log
  // p_ref, Huan et al.'s calculate_KL.py form (log(p + 1e-10), the first answer token dropped when
  // huan_skip_first_token, |mean over items| at the end, in finish) and both models' mean token ranks.
  void add_sampled(std::map<probes::Cell, Acc>& acc, const std::vector<Scored>& seqs,
                   const std::vector<std::vector<double>>& stage_lp, const std::vector<std::vector<double>>& ref_lp,
                   const std::vector<std::vector<double>>& stage_rank, const std::vector<std::vector<double>>& ref_rank) {
    for (size_t r = 0; r < seqs.size(); ++r) {
      if (stage_lp[r].empty()) continue;
      const auto cell = items_[seqs[r].item].cell();
      auto it = acc.find(cell);
      if (it == acc.end()) it = acc.emplace(cell, Acc(opt_.position_bins)).first;
      Acc& a = it->second;
      const size_t n = stage_lp[r].size();
      double s = 0;
      for (size_t j = 0; j < n; ++j) s += stage_lp[r][j] - ref_lp[r][j];
      a.sampled_sum += s / static_cast<double>(n);
      a.sampled_items += 1;
      a.sampled_tokens += static_cast<int64_t>(n);
      const size_t j0 = opt_.huan_skip_first_token ? 1 : 0;
      if (n > j0) {
        double h = 0;
        for (size_t j = j0; j < n; ++j) h += std::log(std::exp(stage_lp[r][j]) + 1e-10) - std::log(std::exp(ref_lp[r][j]) + 1e-10);
        a.huan_sum += h / static_cast<double>(n - j0);
        a.huan_items += 1;
      }
      for (size_t j = 0; j < n; ++j) a.rank_stage_sum += stage_rank[r][j], a.rank_ref_sum += ref_rank[r][j];
    }
  }

  StageDivergence finish(const std::map<probes::Cell, Acc>& acc) const {
    StageDivergence d;
    d.mode = to_string(opt_.reference_mode);
    Acc total(opt_.position_bins);
    for (const auto& [cell, a] : acc) {
      d.cells.push_back(a.finish(cell));
      total.add(a);
    }
    d.total = total.finish({});
    return d;
  }

 private:
  const std::vector<probes::Item>& items_;
  const Tokenizer& tok_;
  const RunOptions& opt_;
  std::vector<std::vector<int64_t>> prompt_ids_;
  std::map<size_t, std::vector<int64_t>> solution_ids_;
  std::vector<size_t> gen_items_, ll_items_, tf_items_;
  std::map<std::string, size_t> gen_row_;  // item id -> its index in gen_items_ (generate-mode items only)
  std::vector<int64_t> eos_;
  int64_t n_pairs_ = 0;
  int64_t done_ = 0, total_ = 0;
};

std::shared_ptr<const io::TensorSource> open_checkpoint(const Stage& s) {
  if (s.checkpoint) return s.checkpoint;
  if (!s.checkpoint_path.empty()) return std::make_shared<io::Checkpoint>(io::Checkpoint::open(s.checkpoint_path));
  return nullptr;
}

StageParams to_stage_params(const params::CompareResult& r) {
  StageParams p;
  p.total = r.total;
  p.layers = r.layers;
  p.modules = r.modules;
  for (const auto& t : r.tensors) {
    TensorUpdate u;
    u.name = t.name;
    u.kind = t.parsed.kind;
    u.layer = t.parsed.layer;
    u.numel = t.update.numel;
    u.delta_fro = t.update.delta_fro;
    u.ref_fro = t.update.ref_fro;
    u.rel_update_norm = t.update.rel_update_norm;
    u.cosine = t.update.cosine;
    u.max_abs_delta = t.update.max_abs_delta;
    u.sparsity_abs = t.update.sparsity_abs;
    u.sparsity_rel = t.update.sparsity_rel;
    u.unchanged_fraction = t.update.unchanged_fraction;
    p.tensors.push_back(std::move(u));
  }
  p.only_in_reference = r.only_in_reference;
  p.only_in_stage = r.only_in_tuned;
  for (const auto& m : r.shape_mismatches) p.shape_mismatches.push_back(m.name);
  return p;
}

}  // namespace

Run::Run(std::vector<probes::Item> items, std::shared_ptr<const Tokenizer> tokenizer, RunOptions options)
    : items_(std::move(items)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (items_.empty()) throw InvalidArgument("Run: items is empty, expected at least one probe item");
  if (!tokenizer_) throw InvalidArgument("Run: tokenizer is null, expected a Tokenizer");
  std::set<std::string> ids;
  for (const auto& it : items_)
    if (!ids.insert(it.id).second) throw InvalidArgument("Run: item id '" + it.id + "' appears twice, expected unique ids");
  options_.validate();
}

// Exactly one response per sample of every generate-mode item, before any work starts.
void Run::check_responses(const std::string& stage, const std::vector<Response>& responses) const {
  const std::string where = "add_stage: stage '" + stage + "' responses: ";
  std::map<std::string, const probes::Item*> by_id;
  for (const auto& it : items_) by_id[it.id] = &it;
  std::set<std::pair<std::string, int64_t>> seen;
  for (size_t k = 0; k < responses.size(); ++k) {
    const Response& r = responses[k];
    const std::string at = where + (r.origin.empty() ? "entry " + std::to_string(k) : r.origin) + " (item '" + r.item_id +
                           "', sample " + std::to_string(r.sample) + "): ";
    const auto found = by_id.find(r.item_id);
    if (found == by_id.end()) throw InvalidArgument(at + "no probe item has this id");
    if (scored_by_loglikelihood(*found->second, options_))
      throw InvalidArgument(at + "the item is scored by option log-likelihood (choice_mode 'loglikelihood'), expected "
                            "responses for generate-mode items only");
    if (r.sample < 0 || r.sample >= options_.n_samples)
      throw InvalidArgument(at + "sample is out of range, expected 0 <= sample < n_samples = " + std::to_string(options_.n_samples));
    if (!seen.insert({r.item_id, r.sample}).second) throw InvalidArgument(at + "appears twice, expected one response per sample");
    if (r.tokens)
      for (int64_t t : *r.tokens)
        if (t < 0) throw InvalidArgument(at + "token id " + std::to_string(t) + " is negative, expected ids >= 0");
    if (!r.finish_reason.empty() && r.finish_reason != "eos" && r.finish_reason != "stop" && r.finish_reason != "length")
      throw InvalidArgument(at + "finish_reason is '" + r.finish_reason + "', expected \"eos\", \"stop\", \"length\" or \"\"");
  }
  for (const auto& it : items_) {
    if (scored_by_loglikelihood(it, options_)) continue;
    for (int64_t s = 0; s < options_.n_samples; ++s)
      if (!seen.count({it.id, s}))
        throw InvalidArgument(where + "item '" + it.id + "' sample " + std::to_string(s) + " is missing, expected one " +
                              "response per sample (n_samples = " + std::to_string(options_.n_samples) + ") of every generate-mode item");
  }
}

void Run::add_stage(Stage stage) {
  if (stage.name.empty()) throw InvalidArgument("add_stage: name is empty, expected a stage name");
  for (const auto& s : stages_)
    if (s.name == stage.name) throw InvalidArgument("add_stage: a stage named '" + stage.name + "' already exists");
  if (!has_model(stage) && !stage.responses)
    throw InvalidArgument("add_stage: stage '" + stage.name + "' has neither a source, a loader nor responses, expected one");
  if (stage.responses) check_responses(stage.name, *stage.responses);
  stages_.push_back(std::move(stage));
}

Report Run::run(const RunPlan& plan) {
  namespace fs = std::filesystem;
  const auto t_run = Clock::now();
  const RunOptions& opt = options_;
  const Stage* ref_stage = nullptr;
  for (const auto& s : stages_)
    if (s.name == opt.reference) ref_stage = &s;
  if (!ref_stage) {
    std::string names;
    for (const auto& s : stages_) names += (names.empty() ? "'" : ", '") + s.name + "'";
    throw InvalidArgument("Run: reference is '" + opt.reference + "', expected one of the stages (" +
                          (names.empty() ? "none added" : names) + ")");
  }
  const size_t ref_index = static_cast<size_t>(ref_stage - stages_.data());
  // A part of a run split over processes: the planned stages and the reference.
  std::vector<char> selected(stages_.size(), plan.stages.empty() ? 1 : 0);
  for (const auto& name : plan.stages) {
    const auto it = std::find_if(stages_.begin(), stages_.end(), [&](const Stage& s) { return s.name == name; });
    if (it == stages_.end()) {
      std::string names;
      for (const auto& s : stages_) names += (names.empty() ? "'" : ", '") + s.name + "'";
      throw InvalidArgument("Run: the plan names stage '" + name + "', expected one of the stages (" + names + ")");
    }
    selected[static_cast<size_t>(it - stages_.begin())] = 1;
  }
  selected[ref_index] = 1;
  Engine eng(items_, *tokenizer_, opt);
  const auto n_stages = static_cast<int64_t>(stages_.size());
  const bool gold = opt.divergence_on == DivergenceOn::gold;
  const bool divergence = opt.divergence && (gold ? !eng.tf_items().empty() : !eng.gen_items().empty());
  const bool sampled = opt.divergence && opt.sampled_estimator && !eng.gen_items().empty();
  // Stages given by responses alone, and a cache file for the reference: checked before any work.
  const bool cache_file = !ref_stage->reference_cache.empty();
  for (const auto& s : stages_)
    if (&s != ref_stage && !s.reference_cache.empty())
      throw InvalidArgument("Run: stage '" + s.name + "' has a reference_cache, expected it on the reference stage '" +
                            ref_stage->name + "' only");
  if (cache_file && opt.reference_mode != ReferenceMode::topk_cache)
    throw InvalidArgument("Run: the reference stage has a reference_cache, expected reference_mode 'topk_cache'");
  if (((divergence && !cache_file) || sampled) && !has_model(*ref_stage))
    throw InvalidArgument("Run: the reference stage '" + ref_stage->name + "' has no model, expected a source or "
                          "loader: " + std::string(sampled ? "the sampled-token estimator scores the stages' answers "
                                                             "under it (or set sampled_estimator to false)"
                                                           : "the divergences need its distributions (give a "
                                                             "reference_cache, or set divergence to false)"));
  for (const auto& s : stages_)
    if (!has_model(s) && opt.behaviour && !eng.ll_items().empty())
      throw InvalidArgument("Run: stage '" + s.name + "' has responses but no model, and " +
                            std::to_string(eng.ll_items().size()) + " items are scored by option log-likelihood "
                            "(choice_mode 'loglikelihood'), expected a model or choice_mode 'generate'");
  // The run directory: created, or checked against the run it holds, before any work.
  const bool stored = !plan.path.empty();
  const std::string dir = plan.path;
  if (stored) {
    std::error_code ec;
    fs::create_directories(fs::path(dir) / "stages", ec);
    if (ec) throw IoError("run directory: cannot create '" + dir + "/stages': " + ec.message());
    const auto manifest = detail::run_manifest(items_, opt, stages_);
    const std::string mpath = dir + "/run.json";
    if (fs::exists(mpath, ec)) {
      if (!plan.resume)
        throw InvalidArgument("run directory: '" + dir + "' already holds a run (run.json), expected resume to "
                              "continue it, or a directory without one");
      detail::check_manifest(detail::read_json_file(mpath), manifest, dir);
    } else {
      detail::write_json_file(mpath, manifest);
    }
  }
  auto stage_path = [&](size_t si, const char* suffix) {
    return dir + "/stages/" + stage_file_stem(si, stages_[si].name) + suffix + ".json";
  };
  const bool generate = opt.behaviour || (divergence && !gold) || sampled;
  const auto ref_ckpt = opt.parameters ? open_checkpoint(*ref_stage) : nullptr;
  const auto n_gen = static_cast<int64_t>(eng.gen_items().size());
  const int64_t n_div = gold ? static_cast<int64_t>(eng.tf_items().size()) : n_gen;
  // Progress counts sequences: generated answers, scored options and scored sequences (an upper bound for
  // answer-based passes, whose empty answers are skipped; the remainder is ticked at the end).
  int64_t total = 0;
  if (generate) total += n_stages * n_gen * opt.n_samples;
  if (opt.behaviour) total += n_stages * eng.n_pairs();
  if (divergence) total += (opt.reference_mode == ReferenceMode::topk_cache ? n_div : 0) + (n_stages - 1) * n_div;
  if (sampled) total += 2 * (n_stages - 1) * n_gen;
  if (ref_ckpt) {
    for (const auto& s : stages_)
      if (&s != ref_stage && (s.checkpoint || !s.checkpoint_path.empty())) ++total;
  }
  eng.set_total(total);

  Report rep;
  rep.metaprobe_version = kVersion;
  rep.created = utc_now();
  rep.reference = opt.reference;
  rep.options = options_to_json(opt);
  rep.target_cells = opt.resolved_target_cells();
  rep.n_items = static_cast<int64_t>(items_.size());
  rep.stages.resize(stages_.size());
  std::vector<std::vector<ItemAnswers>> answers(stages_.size());
  std::vector<std::vector<Scored>> own(stages_.size());  // each stage's first sample per item, for the estimator
  std::vector<std::vector<std::vector<double>>> stage_lp(stages_.size()), stage_rank(stages_.size());
  std::vector<std::map<probes::Cell, Acc>> div_acc(stages_.size());
  std::vector<Scored> div_seqs;  // gold or reference samples (stage samples: per stage)
  int64_t vocab = 0;

  // A one-token forward pass: the first fixes V, every later one checks its source against it (a vocabulary
  // that differs from the reference's is an error before any work).
  auto vocab_probe = [&](LogitSource& src, const std::string& name) {
    std::vector<std::vector<int64_t>> one{{tokenizer_->bos_id() >= 0 ? tokenizer_->bos_id() : tokenizer_->pad_id()}};
    auto [ids, mask] = pad_batch(one, tokenizer_->pad_id(), false);
    const int64_t v = checked_logits(src, ids, mask, name, vocab).size(2);
    if (vocab == 0) vocab = v;
  };
  // `src` is null for a stage with responses and no model.
  auto behave = [&](LogitSource* src, const Stage& st, StageReport& sr, size_t si) {
    if (!generate) return;
    bool retokenized = false;
    Behaviour b = eng.behaviour(src, st.name, vocab, st.responses ? &*st.responses : nullptr, answers[si], retokenized);
    if (st.responses) sr.info.responses = retokenized ? "imported_retokenized" : "imported";
    if (opt.behaviour) sr.behaviour = std::move(b);
    own[si] = eng.answer_sequences(answers[si]);
    sr.responses = eng.responses_of(answers[si]);
  };
  // A stage stored by an earlier run of this directory: its report, answers and partial sums come back.
  std::vector<char> loaded(stages_.size(), 0), finalized(stages_.size(), 0);
  auto not_a_stage = [](const std::string& path, const std::string& why) {
    return FormatError("run directory: '" + path + "' is not a stored stage (" + why + "); delete it to probe the "
                       "stage again");
  };
  auto load_stage = [&](size_t si) {
    if (!stored || !plan.resume || !fs::exists(stage_path(si, ""))) return false;
    std::string path = stage_path(si, "");  // the file being read, for the message
    try {
      const auto j = detail::read_json_file(path);
      rep.stages[si] = detail::stage_from_json(j.at("report"));
      bool retokenized = false;
      answers[si] = eng.imported_answers(rep.stages[si].responses, stages_[si].name, 0, retokenized);
      own[si] = eng.answer_sequences(answers[si]);
      div_acc[si] = accs_from_json(j.at("divergence_partials"));
      stage_lp[si] = rows_from_json(j.at("stage_logprobs"));
      stage_rank[si] = rows_from_json(j.at("stage_ranks"));
      if (fs::exists(stage_path(si, ".final"))) {
        path = stage_path(si, ".final");
        const auto f = detail::read_json_file(path);
        div_acc[si] = accs_from_json(f.at("divergence_partials"));
        rep.stages[si].seconds = f.at("seconds").get<double>();
        finalized[si] = 1;
      }
    } catch (const nlohmann::json::exception& e) {  // a missing or mistyped field
      throw not_a_stage(path, e.what());
    } catch (const FormatError& e) {  // not JSON, or a bad report section
      throw not_a_stage(path, e.what());
    }
    loaded[si] = 1;
    return true;
  };
  auto save_stage = [&](size_t si) {
    if (!stored) return;
    detail::write_json_file(stage_path(si, ""), {{"report", detail::stage_to_json(rep.stages[si])},
                                                 {"divergence_partials", accs_to_json(div_acc[si])},
                                                 {"stage_logprobs", rows_to_json(stage_lp[si])},
                                                 {"stage_ranks", rows_to_json(stage_rank[si])}});
  };

  // 1. The reference: behaviour, and the top-k cache when asked.
  Holder ref{ref_stage, nullptr, opt.vocab_size};
  std::vector<TopKCache> cache;
  bool pending = false;  // a stage other than the reference still to probe (false only when resuming)
  for (size_t si = 0; si < stages_.size(); ++si)
    if (si != ref_index && selected[si] && !(stored && plan.resume && fs::exists(stage_path(si, "")))) pending = true;
  auto build_cache = [&]() {
    if (cache_file) {
      cache = eng.imported_cache(ref_stage->reference_cache, div_seqs);
      return;
    }
    LogitSource& src = ref.get();
    if (vocab == 0) vocab_probe(src, ref_stage->name);  // resumed: the reference was not probed yet
    cache = eng.build_cache(src, ref_stage->name, vocab, div_seqs);
    ref.release();
  };
  const bool topk = divergence && opt.reference_mode == ReferenceMode::topk_cache;
  {
    const auto t0 = Clock::now();
    auto& sr = rep.stages[ref_index];
    if (load_stage(ref_index)) {
      if (divergence && opt.divergence_on != DivergenceOn::stage_samples)
        div_seqs = gold ? eng.gold_sequences() : own[ref_index];
      if (pending && topk) build_cache();
      else if (pending && has_model(*ref_stage) && (divergence || sampled)) vocab_probe(ref.get(), ref_stage->name);
    } else {
      sr.info = {ref_stage->name, ref_stage->arm, "responses", ref_stage->checkpoint_path, ref_stage->step, true};
      if (!has_model(*ref_stage)) {
        behave(nullptr, *ref_stage, sr, ref_index);  // divergences off, or along a reference_cache (checked above)
        if (divergence && opt.divergence_on != DivergenceOn::stage_samples)
          div_seqs = gold ? eng.gold_sequences() : own[ref_index];
        if (topk) build_cache();
      } else {
        LogitSource& src = ref.get();
        sr.info.source = src.describe();
        vocab_probe(src, ref_stage->name);
        behave(&src, *ref_stage, sr, ref_index);
        if (divergence && opt.divergence_on != DivergenceOn::stage_samples)
          div_seqs = gold ? eng.gold_sequences() : own[ref_index];
        if (topk) build_cache();
      }
      sr.seconds = seconds_since(t0);
      save_stage(ref_index);
    }
  }

  // 2. Every other stage.
  for (size_t si = 0; si < stages_.size(); ++si) {
    if (si == ref_index || !selected[si] || load_stage(si)) continue;
    const Stage& st = stages_[si];
    const auto t0 = Clock::now();
    auto& sr = rep.stages[si];
    sr.info = {st.name, st.arm, "responses", st.checkpoint_path, st.step, false};
    Holder h{&st, nullptr, opt.vocab_size};
    if (!has_model(st)) {
      behave(nullptr, st, sr, si);
    } else {
      LogitSource& src = h.get();
      sr.info.source = src.describe();
      vocab_probe(src, st.name);  // fixes V when the reference has no model (responses only)
      behave(&src, st, sr, si);
      if (divergence) {
        const auto& seqs = opt.divergence_on == DivergenceOn::stage_samples ? own[si] : div_seqs;
        if (opt.reference_mode == ReferenceMode::exact) {
          div_acc[si] = eng.divergence(src, st.name, vocab, &ref.get(), nullptr, seqs);
        } else {
          div_acc[si] = eng.divergence(src, st.name, vocab, nullptr, &cache, seqs);
        }
      }
      if (sampled) stage_lp[si] = eng.token_logprobs(src, st.name, vocab, own[si], "sampled", st.name, &stage_rank[si]);
      h.release();
    }
    if (ref_ckpt) {
      if (auto ck = open_checkpoint(st)) {
        params::CompareOptions co;
        co.update = opt.update;
        co.emulate_bf16 = opt.update_emulate_bf16;
        co.nonfinite = opt.update_nonfinite;
        sr.params = to_stage_params(params::compare_checkpoints(*ref_ckpt, *ck, co));
        eng.tick("parameters", st.name);
      }
    }
    sr.seconds = seconds_since(t0);
    save_stage(si);
  }

  // 3. The reference scores each stage's own answers (Huan et al.'s sampled-token estimator).
  if (sampled) {
    for (size_t si = 0; si < stages_.size(); ++si) {
      if (si == ref_index || !selected[si] || !has_model(stages_[si]) || finalized[si]) continue;
      const auto t0 = Clock::now();
      if (vocab == 0) vocab_probe(ref.get(), ref_stage->name);  // resumed with no model probed yet
      std::vector<std::vector<double>> ref_rank;
      auto ref_lp = eng.token_logprobs(ref.get(), ref_stage->name, vocab, own[si], "sampled", stages_[si].name, &ref_rank);
      eng.add_sampled(div_acc[si], own[si], stage_lp[si], ref_lp, stage_rank[si], ref_rank);
      rep.stages[si].seconds += seconds_since(t0);
      if (stored)
        detail::write_json_file(stage_path(si, ".final"), {{"divergence_partials", accs_to_json(div_acc[si])},
                                                           {"seconds", rep.stages[si].seconds}});
    }
  }
  ref.release();
  if (divergence || sampled)
    for (size_t si = 0; si < stages_.size(); ++si)
      if (si != ref_index && selected[si] && has_model(stages_[si])) rep.stages[si].divergence = eng.finish(div_acc[si]);

  if (!plan.stages.empty()) {  // a part: only its stages
    std::vector<StageReport> kept;
    for (size_t si = 0; si < stages_.size(); ++si)
      if (selected[si]) kept.push_back(std::move(rep.stages[si]));
    rep.stages = std::move(kept);
  }

  // 4. Derived metrics.
  if (opt.behaviour) {
    const StageReport* reference = nullptr;
    for (const auto& sr : rep.stages)
      if (sr.info.is_reference) reference = &sr;
    const auto& rb = *reference->behaviour;
    for (auto& sr : rep.stages)
      sr.derived = detail::derive(rb, *sr.behaviour, sr.divergence ? &*sr.divergence : nullptr, rep.target_cells, opt);
    rep.razor = detail::razor(rep.stages, opt);
  }
  eng.finish_progress();
  rep.seconds = seconds_since(t_run);
  if (stored) save(rep, dir + "/report.json");
  return rep;
}

}  // namespace metaprobe::meta
