// Answer checking by type, Wilson intervals, aggregation, and multiple choice from log-likelihoods.
#include <cmath>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/scoring.hpp>

#include "common/format.hpp"
#include "scoring_internal.hpp"

namespace metaprobe::probes {

using namespace detail;

namespace {

std::string shown(std::string_view s) {
  constexpr std::size_t kMaxShown = 80;
  std::string out = "'";
  out.append(s.substr(0, kMaxShown));
  if (s.size() > kMaxShown) out += "…";
  out += "'";
  return out;
}

std::string item_name(const Item& item) { return "item " + shown(item.id); }

// The gold number of an integer/number item; throws when the answer is not one number.
Number gold_number(const Item& item) {
  Number g;
  if (!parse_whole_number(item.answer, g))
    throw InvalidArgument(item_name(item) + ": answer " + shown(item.answer) + " of answer_type " +
                          std::string(to_string(item.answer_type)) + " is not a number, expected e.g. '42', "
                          "'-0.75', '3/4', '1.5e-3'");
  if (item.answer_type == AnswerType::integer && !g.percent) {
    bool integral = g.exact ? g.q == 1 : std::floor(g.approx) == g.approx;
    if (!integral)
      throw InvalidArgument(item_name(item) + ": answer " + shown(item.answer) +
                            " of answer_type integer is not an integer");
  }
  return g;
}

void check_tolerance(const Item& item) {
  if (!(item.tolerance >= 0) || !std::isfinite(item.tolerance)) {
    throw InvalidArgument(item_name(item) + ": tolerance " + metaprobe::detail::format_double(item.tolerance) +
                          " is invalid, expected a finite value >= 0");
  }
}

// x matches a within the item's rule: exact for integers, |x − a| ≤ tol·max(1, |a|) for numbers.
bool close(const Number& x, const Number& a, AnswerType type, double tol) {
  if (numbers_equal(x, a)) return true;
  if (type == AnswerType::integer || tol == 0) return false;
  double xv = static_cast<double>(x.value()), av = static_cast<double>(a.value());
  return std::fabs(xv - av) <= tol * std::max(1.0, std::fabs(av));
}

// A percentage p% stands for both p and p/100 (on either side), so "50%" matches 50 and 0.5.
bool numbers_match(const Number& x, const Number& a, AnswerType type, double tol) {
  if (close(x, a, type, tol)) return true;
  if (x.percent && close(divide_by_100(x), a, type, tol)) return true;
  if (a.percent && close(x, divide_by_100(a), type, tol)) return true;
  return false;
}

bool texts_match(const std::string& x, const std::string& a, double tol) {
  if (x == a) return true;
  Number nx, na;
  return parse_whole_number(x, nx) && parse_whole_number(a, na) && numbers_match(nx, na, AnswerType::number, tol);
}

bool match_list(const Item& item, std::string_view extracted) {
  std::vector<std::string> gold = split_list(normalize_text(item.answer));
  std::vector<std::string> got = split_list(normalize_text(extracted));
  if (gold.size() != got.size()) return false;
  if (item.ordered) {
    for (std::size_t k = 0; k < gold.size(); ++k)
      if (!texts_match(got[k], gold[k], item.tolerance)) return false;
    return true;
  }
  // As multisets: each gold element consumes one equal response element.
  std::vector<bool> used(got.size(), false);
  for (const auto& g : gold) {
    bool found = false;
    for (std::size_t k = 0; k < got.size() && !found; ++k)
      if (!used[k] && texts_match(got[k], g, item.tolerance)) used[k] = found = true;
    if (!found) return false;
  }
  return true;
}

// Letter of a choice answer written as a letter, else 0 (same reading as extraction's).
char answer_letter(std::string_view t, int n_letters) {
  t = trim(t);
  std::string_view body = t;
  while (!body.empty() && (body.front() == '*' || body.front() == '(' || body.front() == '[')) body.remove_prefix(1);
  while (!body.empty() && (body.back() == '*' || body.back() == ')' || body.back() == ']' || body.back() == '.' ||
                           body.back() == ':'))
    body.remove_suffix(1);
  if (body.size() != 1) {
    // "B. Paris", "(B) Paris", "Option B": a leading letter followed by a separator.
    for (std::string_view w : {"option ", "choice ", "letter "})
      if (t.size() > w.size() && normalize_text(t.substr(0, w.size() - 1)) == w.substr(0, w.size() - 1))
        return answer_letter(t.substr(w.size()), n_letters);
    if (t.size() >= 3 && t[0] == '(' && is_alpha(t[1]) && t[2] == ')') body = t.substr(1, 1);
    else if (t.size() >= 2 && is_upper(t[0]) && (t[1] == '.' || t[1] == ')' || t[1] == ':') &&
             (t.size() == 2 || is_space(t[2])))
      body = t.substr(0, 1);
    else
      return 0;
  }
  char c = static_cast<char>(body[0] & ~0x20);
  if (!is_alpha(body[0]) || c - 'A' >= n_letters) return 0;
  return c;
}

bool match_choice(const Item& item, std::string_view extracted) {
  int n = static_cast<int>(item.choices.size());
  int n_letters = n == 0 ? 10 : std::min(n, 26);
  if (item.gold_index >= n || item.gold_index < -1 || (item.gold_index == -1 && trim(item.answer).empty())) {
    throw InvalidArgument(item_name(item) + ": gold_index " + std::to_string(item.gold_index) + " with " +
                          std::to_string(n) + " choices and answer " + shown(item.answer) +
                          ", expected 0 <= gold_index < len(choices), or -1 with a non-empty answer");
  }
  char gold_letter = 0;
  std::vector<std::string> gold_texts;
  if (item.gold_index >= 0) {
    gold_letter = static_cast<char>('A' + item.gold_index);
    gold_texts.push_back(normalize_text(item.choices[static_cast<std::size_t>(item.gold_index)]));
  } else {
    gold_letter = answer_letter(item.answer, n_letters);
  }
  if (!gold_letter || item.gold_index >= 0) {
    std::string a = normalize_text(item.answer);
    if (!a.empty() && answer_letter(item.answer, n_letters) == 0) gold_texts.push_back(a);
  }
  if (char c = answer_letter(extracted, n_letters)) return c == gold_letter;
  std::string got = normalize_text(extracted);
  if (got.empty()) return false;
  for (const auto& g : gold_texts)
    if (texts_match(got, g, 0)) return true;
  return false;
}

}  // namespace

bool answers_match(const Item& item, std::string_view extracted) {
  switch (item.answer_type) {
    case AnswerType::integer:
    case AnswerType::number: {
      check_tolerance(item);
      Number gold = gold_number(item);
      Number got;
      if (!find_first_number(extracted, got)) return false;
      return numbers_match(got, gold, item.answer_type, item.tolerance);
    }
    case AnswerType::string: {
      check_tolerance(item);
      std::string got = normalize_text(extracted);
      return !got.empty() && texts_match(got, normalize_text(item.answer), item.tolerance);
    }
    case AnswerType::list:
      check_tolerance(item);
      return match_list(item, extracted);
    case AnswerType::choice:
      return match_choice(item, extracted);
  }
  throw InvalidArgument(item_name(item) + ": invalid answer_type " +
                        std::to_string(static_cast<int>(item.answer_type)));
}

bool check(const Item& item, std::string_view output) {
  Extraction ex = extract(output, item.answer_type, item.choices);
  if (!ex.found) {
    answers_match(item, "");  // still validates the item, so a broken item never scores silently
    return false;
  }
  return answers_match(item, ex.answer);
}

Accuracy wilson(int64_t correct, int64_t n, double z) {
  if (n < 0 || correct < 0 || correct > n)
    throw InvalidArgument("wilson: correct = " + std::to_string(correct) + " and n = " + std::to_string(n) +
                          " are invalid, expected 0 <= correct <= n");
  if (!(z > 0) || !std::isfinite(z)) {
    throw InvalidArgument("wilson: z = " + metaprobe::detail::format_double(z) + " is invalid, expected a finite value > 0");
  }
  Accuracy a;
  a.n = n;
  a.correct = correct;
  if (n == 0) {
    a.acc = 0;
    a.lo = 0;
    a.hi = 1;
    return a;
  }
  double nn = static_cast<double>(n);
  double p = static_cast<double>(correct) / nn;
  double z2 = z * z;
  double denom = 1 + z2 / nn;
  double center = (p + z2 / (2 * nn)) / denom;
  double half = z / denom * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  a.acc = p;
  a.lo = correct == 0 ? 0.0 : std::max(0.0, center - half);
  a.hi = correct == n ? 1.0 : std::min(1.0, center + half);
  return a;
}

Scores score(const std::vector<const Item*>& items, const std::vector<std::string_view>& outputs) {
  if (items.size() != outputs.size())
    throw InvalidArgument("score: outputs has " + std::to_string(outputs.size()) + " entries for " +
                          std::to_string(items.size()) + " items, expected one output per item");
  Scores s;
  s.items.reserve(items.size());
  std::map<Cell, std::pair<int64_t, int64_t>> cells;  // (correct, n)
  std::map<Skill, std::pair<int64_t, int64_t>> skills;
  std::map<Domain, std::pair<int64_t, int64_t>> domains;
  int64_t total_correct = 0;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const Item* item = items[k];
    if (item == nullptr) throw InvalidArgument("score: items[" + std::to_string(k) + "] is null, expected an Item");
    Extraction ex = extract(outputs[k], item->answer_type, item->choices);
    bool ok = answers_match(*item, ex.found ? std::string_view(ex.answer) : std::string_view());
    ItemScore is;
    is.id = item->id;
    is.cell = item->cell();
    is.extracted = std::move(ex.answer);
    is.strategy = std::move(ex.strategy);
    is.correct = ok && ex.found;
    int c = is.correct ? 1 : 0;
    for (auto* cn : {&cells[is.cell], &skills[item->skill], &domains[item->domain]}) {
      cn->first += c;
      cn->second += 1;
    }
    total_correct += c;
    s.items.push_back(std::move(is));
  }
  for (const auto& [cell, cn] : cells) s.by_cell[cell] = wilson(cn.first, cn.second);
  for (const auto& [skill, cn] : skills) s.by_skill[skill] = wilson(cn.first, cn.second);
  for (const auto& [domain, cn] : domains) s.by_domain[domain] = wilson(cn.first, cn.second);
  s.overall = wilson(total_correct, static_cast<int64_t>(items.size()));
  return s;
}

Scores score(const std::vector<Item>& items, const std::vector<std::string>& outputs) {
  if (items.size() != outputs.size())
    throw InvalidArgument("score: outputs has " + std::to_string(outputs.size()) + " entries for " +
                          std::to_string(items.size()) + " items, expected one output per item");
  std::vector<const Item*> ptrs;
  std::vector<std::string_view> views;
  ptrs.reserve(items.size());
  views.reserve(outputs.size());
  for (const auto& it : items) ptrs.push_back(&it);
  for (const auto& o : outputs) views.emplace_back(o);
  return score(ptrs, views);
}

int64_t utf8_length(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

ChoiceScore score_choice(const Item& item, const std::vector<double>& loglikelihoods) {
  std::size_t n = item.choices.size();
  if (n == 0)
    throw InvalidArgument("score_choice: " + item_name(item) + " has no choices, expected a multiple-choice item");
  if (loglikelihoods.size() != n)
    throw InvalidArgument("score_choice: loglikelihoods has " + std::to_string(loglikelihoods.size()) +
                          " entries for " + item_name(item) + " with " + std::to_string(n) +
                          " choices, expected one per choice");
  if (item.gold_index < 0 || static_cast<std::size_t>(item.gold_index) >= n)
    throw InvalidArgument("score_choice: " + item_name(item) + " has gold_index " + std::to_string(item.gold_index) +
                          ", expected 0 <= gold_index < " + std::to_string(n));
  ChoiceScore cs;
  double best = 0, best_norm = 0;
  for (std::size_t k = 0; k < n; ++k) {
    double ll = loglikelihoods[k];
    if (std::isnan(ll) || ll == INFINITY)
      throw InvalidArgument("score_choice: loglikelihoods[" + std::to_string(k) + "] of " + item_name(item) +
                            " is " + (std::isnan(ll) ? "nan" : "inf") + ", expected a finite log-likelihood or -inf");
    int64_t len = utf8_length(item.choices[k]);
    if (len == 0)
      throw InvalidArgument("score_choice: choices[" + std::to_string(k) + "] of " + item_name(item) +
                            " is empty, expected a non-empty option (acc_norm divides by its length)");
    double norm = ll / static_cast<double>(len);
    // np.argmax: the first maximum wins.
    if (cs.pred < 0 || ll > best) best = ll, cs.pred = static_cast<int>(k);
    if (cs.pred_norm < 0 || norm > best_norm) best_norm = norm, cs.pred_norm = static_cast<int>(k);
  }
  cs.acc = cs.pred == item.gold_index;
  cs.acc_norm = cs.pred_norm == item.gold_index;
  return cs;
}

}  // namespace metaprobe::probes
