// The meta-probing run: behaviour, divergence, sampled-token estimator, parameters, derived metrics.
#include <metaprobe/meta/run.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <set>

#include <ATen/ATen.h>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/meta/cache.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/version.hpp>

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

// A stage's logit source, acquired on first use and released after the stage when it came from a loader.
struct Holder {
  const Stage* stage = nullptr;
  std::shared_ptr<LogitSource> src;
  LogitSource& get() {
    if (!src) {
      src = stage->source ? stage->source : stage->loader();
      if (!src) throw InvalidArgument("stage '" + stage->name + "': the loader returned no logit source");
    }
    return *src;
  }
  void release() {
    if (!stage->source) src.reset();
  }
};

// Rows of [B, T, V] logits at (row, position) pairs → [N, V].
at::Tensor gather_rows(const at::Tensor& logits, const std::vector<int64_t>& flat) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  at::Tensor index = at::tensor(flat, at::TensorOptions().dtype(at::kLong)).to(logits.device());
  return logits.reshape({B * T, V}).index_select(0, index);
}

// Per-cell sums of per-position metrics.
struct Acc {
  int64_t items = 0, positions = 0;
  double kl_rs = 0, kl_sr = 0, js = 0, h_ref = 0, h_stage = 0, above = 0, rank = 0, top1 = 0;
  double js_bound = 0, kl_bound = 0;
  std::vector<int64_t> pos_counts, high_counts;
  double sampled_sum = 0;
  int64_t sampled_items = 0, sampled_tokens = 0;
  explicit Acc(int64_t bins = 0) : pos_counts(static_cast<size_t>(bins), 0), high_counts(static_cast<size_t>(bins), 0) {}
  void add(const Acc& o) {
    items += o.items, positions += o.positions, kl_rs += o.kl_rs, kl_sr += o.kl_sr, js += o.js, h_ref += o.h_ref;
    h_stage += o.h_stage, above += o.above, rank += o.rank, top1 += o.top1, js_bound += o.js_bound, kl_bound += o.kl_bound;
    for (size_t b = 0; b < pos_counts.size(); ++b) pos_counts[b] += o.pos_counts[b], high_counts[b] += o.high_counts[b];
    sampled_sum += o.sampled_sum, sampled_items += o.sampled_items, sampled_tokens += o.sampled_tokens;
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
    return c;
  }
};

class Engine {
 public:
  Engine(const std::vector<probes::Item>& items, const Tokenizer& tok, const RunOptions& opt)
      : items_(items), tok_(tok), opt_(opt) {
    const auto prompts = probes::render_all(items_, opt_.prompt);
    for (size_t i = 0; i < items_.size(); ++i) {
      std::vector<int64_t> p;
      if (tok_.bos_id() >= 0) p.push_back(tok_.bos_id());
      auto enc = tok_.encode(prompts[i]);
      p.insert(p.end(), enc.begin(), enc.end());
      if (p.empty())
        throw InvalidArgument("item '" + items_[i].id + "': the prompt encodes to no tokens, expected at least one");
      prompt_ids_.push_back(std::move(p));
      const auto& it = items_[i];
      const bool ll = opt_.choice_mode == ChoiceMode::loglikelihood && it.answer_type == probes::AnswerType::choice &&
                      !it.choices.empty();
      (ll ? ll_items_ : gen_items_).push_back(i);
      if (!it.reference_solution.empty()) {
        tf_items_.push_back(i);
        solution_ids_[i] = tok_.encode(opt_.solution_separator + it.reference_solution);
      }
    }
    for (size_t i : ll_items_) n_pairs_ += static_cast<int64_t>(items_[i].choices.size());
  }

  const std::vector<size_t>& tf_items() const { return tf_items_; }
  const std::vector<size_t>& gen_items() const { return gen_items_; }
  int64_t chunks(int64_t n) const { return (n + opt_.batch_size - 1) / opt_.batch_size; }
  int64_t behaviour_units() const { return chunks(static_cast<int64_t>(gen_items_.size())) + chunks(n_pairs_); }
  int64_t divergence_units() const { return chunks(static_cast<int64_t>(tf_items_.size())); }

  void tick(const std::string& phase, const std::string& stage, int64_t n = 1) {
    done_ += n;
    if (opt_.progress) opt_.progress({phase, stage, std::min(done_, total_), total_});
  }
  void set_total(int64_t t) { total_ = t; }
  void finish_progress() {
    done_ = total_;
    if (opt_.progress) opt_.progress({"derived", "", total_, total_});
  }

  // Greedy completions of the generate-mode items, in gen_items_ order: tokens (EOS excluded) and text.
  void generate(LogitSource& src, const std::string& stage, int64_t vocab, std::vector<std::vector<int64_t>>& tokens,
                std::vector<std::string>& texts) {
    const size_t n = gen_items_.size();
    tokens.assign(n, {});
    texts.assign(n, {});
    const auto bs = static_cast<size_t>(opt_.batch_size);
    for (size_t c0 = 0; c0 < n; c0 += bs) {
      const size_t c1 = std::min(n, c0 + bs);
      std::vector<size_t> active;
      for (size_t r = c0; r < c1; ++r) active.push_back(r);
      for (int64_t step = 0; step < opt_.max_new_tokens && !active.empty(); ++step) {
        std::vector<std::vector<int64_t>> seqs;
        for (size_t r : active) {
          auto s = prompt_ids_[gen_items_[r]];
          s.insert(s.end(), tokens[r].begin(), tokens[r].end());
          seqs.push_back(std::move(s));
        }
        auto [ids, mask] = pad_batch(seqs, tok_.pad_id(), true);
        at::Tensor logits = checked_logits(src, ids, mask, stage, vocab);
        at::Tensor next = logits.select(1, logits.size(1) - 1).to(at::kFloat).argmax(-1).to(at::kCPU);
        auto nx = next.accessor<int64_t, 1>();
        std::vector<size_t> still;
        for (size_t a = 0; a < active.size(); ++a) {
          const size_t r = active[a];
          const int64_t t = nx[static_cast<int64_t>(a)];
          if (tok_.eos_id() >= 0 && t == tok_.eos_id()) {
            texts[r] = tok_.decode(tokens[r]);
            continue;
          }
          tokens[r].push_back(t);
          std::string text = tok_.decode(tokens[r]);
          size_t cut = std::string::npos;
          for (const auto& s : opt_.stop) cut = std::min(cut, text.find(s));
          if (cut != std::string::npos) {
            texts[r] = text.substr(0, cut);
            continue;
          }
          texts[r] = std::move(text);
          if (static_cast<int64_t>(tokens[r].size()) < opt_.max_new_tokens) still.push_back(r);
        }
        active = std::move(still);
      }
      tick("behaviour", stage);
    }
  }

  // Sum of log-probabilities of each option after the prompt, per loglikelihood-mode item.
  std::vector<std::vector<double>> choice_loglikelihoods(LogitSource& src, const std::string& stage, int64_t vocab) {
    struct Pair {
      size_t item, k;
      std::vector<int64_t> seq;
      int64_t start, len;
    };
    std::vector<Pair> pairs;
    std::vector<std::vector<double>> out;
    for (size_t a = 0; a < ll_items_.size(); ++a) {
      const size_t i = ll_items_[a];
      out.emplace_back(items_[i].choices.size(), 0.0);
      for (size_t k = 0; k < items_[i].choices.size(); ++k) {
        auto cont = tok_.encode(opt_.choice_delimiter + items_[i].choices[k]);
        if (cont.empty())
          throw InvalidArgument("item '" + items_[i].id + "': option " + std::to_string(k) +
                                " encodes to no tokens, expected at least one");
        Pair p{a, k, prompt_ids_[i], static_cast<int64_t>(prompt_ids_[i].size()) - 1, static_cast<int64_t>(cont.size())};
        p.seq.insert(p.seq.end(), cont.begin(), cont.end());
        pairs.push_back(std::move(p));
      }
    }
    const auto bs = static_cast<size_t>(opt_.batch_size);
    for (size_t c0 = 0; c0 < pairs.size(); c0 += bs) {
      const size_t c1 = std::min(pairs.size(), c0 + bs);
      std::vector<std::vector<int64_t>> seqs;
      for (size_t r = c0; r < c1; ++r) seqs.push_back(pairs[r].seq);
      auto [ids, mask] = pad_batch(seqs, tok_.pad_id(), false);
      at::Tensor logits = checked_logits(src, ids, mask, stage, vocab);
      const int64_t T = logits.size(1);
      std::vector<int64_t> flat, targets;
      for (size_t r = c0; r < c1; ++r)
        for (int64_t j = 0; j < pairs[r].len; ++j) {
          flat.push_back(static_cast<int64_t>(r - c0) * T + pairs[r].start + j);
          targets.push_back(pairs[r].seq[static_cast<size_t>(pairs[r].start + j + 1)]);
        }
      at::Tensor rows = at::log_softmax(gather_rows(logits, flat).to(at::kDouble) / opt_.temperature, -1);
      at::Tensor tgt = at::tensor(targets, at::TensorOptions().dtype(at::kLong)).to(rows.device());
      at::Tensor lp = rows.gather(1, tgt.unsqueeze(1)).squeeze(1).cpu();
      auto a = lp.accessor<double, 1>();
      int64_t q = 0;
      for (size_t r = c0; r < c1; ++r)
        for (int64_t j = 0; j < pairs[r].len; ++j) out[pairs[r].item][pairs[r].k] += a[q++];
      tick("behaviour", stage);
    }
    return out;
  }

  Behaviour behaviour(LogitSource& src, const std::string& stage, int64_t vocab,
                      std::vector<std::vector<int64_t>>& gen_tokens) {
    Behaviour b;
    std::vector<std::string> texts;
    generate(src, stage, vocab, gen_tokens, texts);
    std::vector<ItemResult> results(items_.size());
    std::vector<bool> present(items_.size(), false);
    if (!gen_items_.empty()) {
      std::vector<const probes::Item*> its;
      std::vector<std::string_view> outs;
      for (size_t r = 0; r < gen_items_.size(); ++r) {
        its.push_back(&items_[gen_items_[r]]);
        outs.emplace_back(texts[r]);
      }
      const probes::Scores sc = probes::score(its, outs);
      for (size_t r = 0; r < gen_items_.size(); ++r) {
        const size_t i = gen_items_[r];
        auto& res = results[i];
        res.mode = "generate";
        res.output = texts[r];
        res.extracted = sc.items[r].extracted;
        res.correct = sc.items[r].correct;
        res.generated_tokens = static_cast<int64_t>(gen_tokens[r].size());
        present[i] = true;
      }
    }
    if (!ll_items_.empty()) {
      auto lls = choice_loglikelihoods(src, stage, vocab);
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
        present[i] = true;
      }
    }
    std::map<probes::Cell, std::pair<int64_t, int64_t>> counts;
    int64_t total = 0, correct = 0;
    for (size_t i = 0; i < items_.size(); ++i) {
      if (!present[i]) continue;
      results[i].id = items_[i].id;
      results[i].cell = items_[i].cell();
      auto& c = counts[items_[i].cell()];
      c.first += results[i].correct ? 1 : 0;
      c.second += 1;
      correct += results[i].correct ? 1 : 0;
      ++total;
      b.items.push_back(std::move(results[i]));
    }
    for (const auto& [cell, cn] : counts) b.cells.push_back({cell, probes::wilson(cn.first, cn.second, opt_.z)});
    b.overall = probes::wilson(correct, total, opt_.z);
    return b;
  }

  // Teacher-forced logits of the solution tokens of the items tf_items_[c0, c1): rows [N, V].
  at::Tensor solution_rows(LogitSource& src, const std::string& stage, int64_t vocab, size_t c0, size_t c1) {
    std::vector<std::vector<int64_t>> seqs;
    for (size_t r = c0; r < c1; ++r) {
      const size_t i = tf_items_[r];
      auto s = prompt_ids_[i];
      s.insert(s.end(), solution_ids_.at(i).begin(), solution_ids_.at(i).end());
      seqs.push_back(std::move(s));
    }
    auto [ids, mask] = pad_batch(seqs, tok_.pad_id(), false);
    at::Tensor logits = checked_logits(src, ids, mask, stage, vocab);
    const int64_t T = logits.size(1);
    std::vector<int64_t> flat;
    for (size_t r = c0; r < c1; ++r) {
      const size_t i = tf_items_[r];
      const auto start = static_cast<int64_t>(prompt_ids_[i].size()) - 1;
      for (size_t j = 0; j < solution_ids_.at(i).size(); ++j)
        flat.push_back(static_cast<int64_t>(r - c0) * T + start + static_cast<int64_t>(j));
    }
    return gather_rows(logits, flat);
  }

  std::vector<TopKCache> build_cache(LogitSource& ref, const std::string& stage, int64_t vocab) {
    std::vector<TopKCache> cache;
    const auto bs = static_cast<size_t>(opt_.batch_size);
    for (size_t c0 = 0; c0 < tf_items_.size(); c0 += bs) {
      const size_t c1 = std::min(tf_items_.size(), c0 + bs);
      cache.push_back(build_topk_cache(solution_rows(ref, stage, vocab, c0, c1), opt_.cache_k, opt_.temperature));
      tick("divergence", stage);
    }
    return cache;
  }

  // Teacher-forced divergence over the solution tokens; `ref` (exact) or `cache` (topk_cache).
  std::map<probes::Cell, Acc> divergence(LogitSource& stage_src, const std::string& stage, int64_t vocab,
                                         LogitSource* ref, const std::vector<TopKCache>* cache) {
    std::map<probes::Cell, Acc> acc;
    const auto bs = static_cast<size_t>(opt_.batch_size);
    const double tau = opt_.js_threshold;
    const int64_t bins = opt_.position_bins;
    size_t chunk = 0;
    for (size_t c0 = 0; c0 < tf_items_.size(); c0 += bs, ++chunk) {
      const size_t c1 = std::min(tf_items_.size(), c0 + bs);
      at::Tensor q = solution_rows(stage_src, stage, vocab, c0, c1);
      at::Tensor kl_rs, kl_sr, js, h_ref, h_stage, rank, top1, jsb, klb;
      if (ref) {
        at::Tensor p = solution_rows(*ref, opt_.reference, vocab, c0, c1);
        DivergenceOptions o;
        o.temperature = opt_.temperature;
        o.metrics = MetricSet{}
                        .with(Metric::kl_pq)
                        .with(Metric::kl_qp)
                        .with(Metric::js)
                        .with(Metric::entropy_p)
                        .with(Metric::entropy_q)
                        .with(Metric::rank_shift)
                        .with(Metric::top1_agree);
        DivergenceResult d = metaprobe::divergence(p, q, o);
        kl_rs = d.kl_pq.cpu(), kl_sr = d.kl_qp.cpu(), js = d.js.cpu(), h_ref = d.entropy_p.cpu();
        h_stage = d.entropy_q.cpu(), rank = d.rank_shift.cpu(), top1 = d.top1_agree.cpu();
      } else {
        CachedDivergence d = cached_divergence((*cache)[chunk], q, opt_.temperature);
        kl_rs = d.kl_ref_stage, kl_sr = d.kl_stage_ref, js = d.js, h_ref = d.entropy_ref, h_stage = d.entropy_stage;
        rank = d.rank_shift, top1 = d.top1_agree, jsb = d.js_bound.contiguous(), klb = d.kl_ref_stage_bound.contiguous();
      }
      auto a_klrs = kl_rs.accessor<double, 1>(), a_klsr = kl_sr.accessor<double, 1>(), a_js = js.accessor<double, 1>();
      auto a_hr = h_ref.accessor<double, 1>(), a_hs = h_stage.accessor<double, 1>();
      auto a_rank = rank.accessor<double, 1>(), a_top1 = top1.accessor<double, 1>();
      int64_t row = 0;
      for (size_t r = c0; r < c1; ++r) {
        const size_t i = tf_items_[r];
        auto it = acc.find(items_[i].cell());
        if (it == acc.end()) it = acc.emplace(items_[i].cell(), Acc(bins)).first;
        Acc& a = it->second;
        a.items += 1;
        const auto S = static_cast<int64_t>(solution_ids_.at(i).size());
        for (int64_t j = 0; j < S; ++j, ++row) {
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
      }
      tick("divergence", stage);
    }
    return acc;
  }

  // log p(y_t) of each generated token under `src`, for the generate-mode rows with tokens.
  std::vector<std::vector<double>> token_logprobs(LogitSource& src, const std::string& name, int64_t vocab,
                                                  const std::vector<std::vector<int64_t>>& gen_tokens,
                                                  const std::string& progress_stage) {
    std::vector<std::vector<double>> out(gen_tokens.size());
    std::vector<size_t> rows;
    for (size_t r = 0; r < gen_tokens.size(); ++r)
      if (!gen_tokens[r].empty()) rows.push_back(r);
    const auto bs = static_cast<size_t>(opt_.batch_size);
    int64_t ticks = 0;
    for (size_t c0 = 0; c0 < rows.size(); c0 += bs) {
      const size_t c1 = std::min(rows.size(), c0 + bs);
      std::vector<std::vector<int64_t>> seqs;
      for (size_t k = c0; k < c1; ++k) {
        auto s = prompt_ids_[gen_items_[rows[k]]];
        s.insert(s.end(), gen_tokens[rows[k]].begin(), gen_tokens[rows[k]].end());
        seqs.push_back(std::move(s));
      }
      auto [ids, mask] = pad_batch(seqs, tok_.pad_id(), false);
      at::Tensor logits = checked_logits(src, ids, mask, name, vocab);
      const int64_t T = logits.size(1);
      std::vector<int64_t> flat, targets;
      for (size_t k = c0; k < c1; ++k) {
        const auto start = static_cast<int64_t>(prompt_ids_[gen_items_[rows[k]]].size()) - 1;
        const auto& g = gen_tokens[rows[k]];
        for (size_t j = 0; j < g.size(); ++j) {
          flat.push_back(static_cast<int64_t>(k - c0) * T + start + static_cast<int64_t>(j));
          targets.push_back(g[j]);
        }
      }
      at::Tensor lrows = at::log_softmax(gather_rows(logits, flat).to(at::kDouble) / opt_.temperature, -1);
      at::Tensor tgt = at::tensor(targets, at::TensorOptions().dtype(at::kLong)).to(lrows.device());
      at::Tensor lp = lrows.gather(1, tgt.unsqueeze(1)).squeeze(1).cpu();
      auto a = lp.accessor<double, 1>();
      int64_t q = 0;
      for (size_t k = c0; k < c1; ++k)
        for (size_t j = 0; j < gen_tokens[rows[k]].size(); ++j) out[rows[k]].push_back(a[q++]);
      tick("sampled", progress_stage);
      ++ticks;
    }
    const int64_t planned = chunks(static_cast<int64_t>(gen_items_.size()));
    if (planned > ticks) tick("sampled", progress_stage, planned - ticks);
    return out;
  }

  void add_sampled(std::map<probes::Cell, Acc>& acc, const std::vector<std::vector<double>>& stage_lp,
                   const std::vector<std::vector<double>>& ref_lp) {
    for (size_t r = 0; r < stage_lp.size(); ++r) {
      if (stage_lp[r].empty()) continue;
      const auto cell = items_[gen_items_[r]].cell();
      auto it = acc.find(cell);
      if (it == acc.end()) it = acc.emplace(cell, Acc(opt_.position_bins)).first;
      double s = 0;
      for (size_t j = 0; j < stage_lp[r].size(); ++j) s += stage_lp[r][j] - ref_lp[r][j];
      it->second.sampled_sum += s / static_cast<double>(stage_lp[r].size());
      it->second.sampled_items += 1;
      it->second.sampled_tokens += static_cast<int64_t>(stage_lp[r].size());
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

void Run::add_stage(Stage stage) {
  if (stage.name.empty()) throw InvalidArgument("add_stage: name is empty, expected a stage name");
  for (const auto& s : stages_)
    if (s.name == stage.name) throw InvalidArgument("add_stage: a stage named '" + stage.name + "' already exists");
  if (!stage.source && !stage.loader)
    throw InvalidArgument("add_stage: stage '" + stage.name + "' has neither a source nor a loader, expected one");
  stages_.push_back(std::move(stage));
}

Report Run::run() {
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
  Engine eng(items_, *tokenizer_, opt);
  const auto n_stages = static_cast<int64_t>(stages_.size());
  const bool divergence = opt.divergence && !eng.tf_items().empty();
  const bool sampled = divergence && opt.sampled_estimator && opt.behaviour && !eng.gen_items().empty();
  const auto ref_ckpt = opt.parameters ? open_checkpoint(*ref_stage) : nullptr;
  int64_t total = 0;
  if (opt.behaviour) total += n_stages * eng.behaviour_units();
  if (divergence) total += (opt.reference_mode == ReferenceMode::topk_cache ? 1 : 0) * eng.divergence_units() +
                           (n_stages - 1) * eng.divergence_units();
  if (sampled) total += 2 * (n_stages - 1) * eng.chunks(static_cast<int64_t>(eng.gen_items().size()));
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
  const size_t ref_index = static_cast<size_t>(ref_stage - stages_.data());
  std::vector<std::vector<std::vector<int64_t>>> gen_tokens(stages_.size());
  std::vector<std::vector<std::vector<double>>> stage_lp(stages_.size());
  std::vector<std::map<probes::Cell, Acc>> div_acc(stages_.size());
  int64_t vocab = 0;

  auto vocab_probe = [&](LogitSource& src, const std::string& name) {
    if (vocab > 0) return;
    // The first forward pass fixes V; a one-token probe keeps it cheap.
    std::vector<std::vector<int64_t>> one{{tokenizer_->bos_id() >= 0 ? tokenizer_->bos_id() : tokenizer_->pad_id()}};
    auto [ids, mask] = pad_batch(one, tokenizer_->pad_id(), false);
    vocab = checked_logits(src, ids, mask, name).size(2);
  };

  // 1. The reference: behaviour, and the top-k cache when asked.
  Holder ref{ref_stage, nullptr};
  std::vector<TopKCache> cache;
  {
    const auto t0 = Clock::now();
    auto& sr = rep.stages[ref_index];
    sr.info = {ref_stage->name, ref_stage->arm, "", ref_stage->checkpoint_path, ref_stage->step, true};
    LogitSource& src = ref.get();
    sr.info.source = src.describe();
    vocab_probe(src, ref_stage->name);
    if (opt.behaviour) sr.behaviour = eng.behaviour(src, ref_stage->name, vocab, gen_tokens[ref_index]);
    if (divergence && opt.reference_mode == ReferenceMode::topk_cache) {
      cache = eng.build_cache(src, ref_stage->name, vocab);
      ref.release();
    }
    sr.seconds = seconds_since(t0);
  }

  // 2. Every other stage.
  for (size_t si = 0; si < stages_.size(); ++si) {
    if (si == ref_index) continue;
    const Stage& st = stages_[si];
    const auto t0 = Clock::now();
    auto& sr = rep.stages[si];
    sr.info = {st.name, st.arm, "", st.checkpoint_path, st.step, false};
    Holder h{&st, nullptr};
    LogitSource& src = h.get();
    sr.info.source = src.describe();
    if (opt.behaviour) sr.behaviour = eng.behaviour(src, st.name, vocab, gen_tokens[si]);
    if (divergence) {
      if (opt.reference_mode == ReferenceMode::exact) {
        div_acc[si] = eng.divergence(src, st.name, vocab, &ref.get(), nullptr);
      } else {
        div_acc[si] = eng.divergence(src, st.name, vocab, nullptr, &cache);
      }
    }
    if (sampled) stage_lp[si] = eng.token_logprobs(src, st.name, vocab, gen_tokens[si], st.name);
    h.release();
    if (ref_ckpt) {
      if (auto ck = open_checkpoint(st)) {
        params::CompareOptions co;
        co.update = opt.update;
        sr.params = to_stage_params(params::compare_checkpoints(*ref_ckpt, *ck, co));
        eng.tick("parameters", st.name);
      }
    }
    sr.seconds = seconds_since(t0);
  }

  // 3. The reference scores each stage's own answers (Huan et al.'s sampled-token estimator).
  if (sampled) {
    LogitSource& src = ref.get();
    for (size_t si = 0; si < stages_.size(); ++si) {
      if (si == ref_index) continue;
      const auto t0 = Clock::now();
      auto ref_lp = eng.token_logprobs(src, ref_stage->name, vocab, gen_tokens[si], stages_[si].name);
      eng.add_sampled(div_acc[si], stage_lp[si], ref_lp);
      rep.stages[si].seconds += seconds_since(t0);
    }
  }
  ref.release();
  if (divergence)
    for (size_t si = 0; si < stages_.size(); ++si)
      if (si != ref_index) rep.stages[si].divergence = eng.finish(div_acc[si]);

  // 4. Derived metrics.
  if (opt.behaviour) {
    const auto& rb = *rep.stages[ref_index].behaviour;
    for (auto& sr : rep.stages)
      sr.derived = detail::derive(rb, *sr.behaviour, sr.divergence ? &*sr.divergence : nullptr, rep.target_cells, opt);
    rep.razor = detail::razor(rep.stages, opt);
  }
  eng.finish_progress();
  rep.seconds = seconds_since(t_run);
  return rep;
}

}  // namespace metaprobe::meta
