// Answer checking by type, Wilson intervals, aggregation, and multiple choice from log-likelihoods.
#include <algorithm>
#include <cmath>
#include <limits>

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

// Leading articles and prepositions that do not change a short answer ("in the kitchen", "a teacher").
std::string_view drop_function_words(std::string_view t) {
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view w : {"the ", "a ", "an ", "in ", "at ", "on ", "into ", "to ", "inside ", "by ", "of "}) {
      if (t.size() > w.size() && t.compare(0, w.size(), w) == 0) {
        t = trim(t.substr(w.size()));
        changed = true;
      }
    }
  }
  return t;
}

// Normalised text with ASCII punctuation dropped and spaces collapsed ("washington, d.c." → "washington dc").
std::string loose(std::string_view t) {
  std::string out;
  for (char c : t) {
    if (is_alnum(c) || is_utf8_byte(c)) out.push_back(c);
    else if (is_space(c) || c == '-' || c == '_' || c == '/') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool has_negation(std::string_view t) {
  std::string l = " " + loose(t) + " ";
  for (std::string_view w : {" not ", " no ", " never ", " nt ", " isnt ", " wasnt ", " neither ", " nor "})
    if (l.find(w) != std::string::npos) return true;
  return false;
}

// A string answer: equal after normalisation, after leading function words, or without punctuation; or a
// short sentence that ends in the answer and negates nothing ("The book is in the kitchen.").
bool string_matches(const std::string& got, const std::string& gold, double tol) {
  if (got.empty() || gold.empty()) return false;
  if (texts_match(got, gold, tol)) return true;
  std::string_view x = drop_function_words(got), g = drop_function_words(gold);
  if (x == g) return true;
  std::string lx = loose(x), lg = loose(g);
  if (lg.empty()) return false;
  if (lx == lg) return true;
  constexpr std::size_t kMaxSentenceWords = 14;
  std::size_t words = static_cast<std::size_t>(std::count(lx.begin(), lx.end(), ' ')) + 1;
  if (words > kMaxSentenceWords || lx.size() <= lg.size() || has_negation(got)) return false;
  return lx.compare(lx.size() - lg.size(), lg.size(), lg) == 0 && lx[lx.size() - lg.size() - 1] == ' ';
}

// One element of a list answer without a name ("x = 3", "λ₁ = -2", "the values are 7").
std::string element_value(const std::string& e) {
  std::string_view t = e;
  if (std::size_t p = t.rfind('='); p != std::string_view::npos) t = trim(t.substr(p + 1));
  if (std::size_t p = t.rfind(':'); p != std::string_view::npos && p + 1 < t.size() && t[p + 1] == ' ')
    t = trim(t.substr(p + 2));
  if (t.find(' ') != std::string_view::npos) {
    for (std::string_view w : {" are ", " is ", " be "}) {
      for (std::size_t p = t.size(); p-- > 0;)
        if (t[p] == ' ' && t.compare(p, w.size(), w) == 0) {
          t = trim(t.substr(p + w.size()));
          break;
        }
    }
  }
  t = drop_function_words(t);
  return std::string(t);
}

bool has_digit(const std::string& t) {
  return std::any_of(t.begin(), t.end(), [](char c) { return is_digit(c); });
}

bool all_numbers(const std::vector<std::string>& v) {
  for (const auto& x : v) {
    Number n;
    if (!parse_whole_number(x, n)) return false;
  }
  return !v.empty();
}

bool all_integers(const std::vector<std::string>& v) {
  for (const auto& x : v) {
    Number n;
    if (!parse_whole_number(x, n) || !n.exact || n.q != 1) return false;
  }
  return !v.empty();
}

// A factorisation in product notation as its factors, each repeated by its power: "2^2 × 3" → 2, 2, 3.
// False when an element is not an integer power.
bool expand_factors(const std::vector<std::string>& got, std::vector<std::string>& out) {
  constexpr long kMaxPower = 64;
  out.clear();
  for (const auto& e : got) {
    std::string t;
    // product signs as separators: ×, ·, *, \times, \cdot, " x "
    for (std::size_t i = 0; i < e.size();) {
      if (e.compare(i, 2, "\xC3\x97") == 0 || e.compare(i, 2, "\xC2\xB7") == 0) {
        t += ' ';
        i += 2;
      } else if (e.compare(i, 6, "\\times") == 0) {
        t += ' ';
        i += 6;
      } else if (e.compare(i, 5, "\\cdot") == 0) {
        t += ' ';
        i += 5;
      } else if (e[i] == '*' || (e[i] == 'x' && i > 0 && e[i - 1] == ' ')) {
        t += ' ';
        i += 1;
      } else {
        t += e[i++];
      }
    }
    std::size_t i = 0;
    while (i < t.size()) {
      while (i < t.size() && t[i] == ' ') ++i;
      if (i >= t.size()) break;
      std::size_t j = i;
      while (j < t.size() && t[j] != ' ') ++j;
      std::string tok = t.substr(i, j - i);
      // "2^2" possibly with the exponent after blanks: "2 ^ 2", "2^{2}"
      std::size_t k = j;
      while (k < t.size() && t[k] == ' ') ++k;
      if (tok.find('^') == std::string::npos && k < t.size() && t[k] == '^') {
        std::size_t m = k + 1;
        while (m < t.size() && t[m] == ' ') ++m;
        std::size_t n = m;
        while (n < t.size() && t[n] != ' ') ++n;
        tok += "^" + t.substr(m, n - m);
        j = n;
      }
      i = j;
      std::string base = tok, power = "1";
      if (std::size_t c = tok.find('^'); c != std::string::npos) {
        base = tok.substr(0, c);
        power = tok.substr(c + 1);
      }
      Number b, p;
      if (!parse_whole_number(base, b) || !b.exact || b.q != 1 || !parse_whole_number(power, p) || !p.exact ||
          p.q != 1 || p.neg || p.p > static_cast<u128>(kMaxPower) || p.p == 0)
        return false;
      for (u128 r = 0; r < p.p; ++r) out.push_back(base);
    }
  }
  return !out.empty();
}

bool lists_equal(const std::vector<std::string>& got, const std::vector<std::string>& gold, bool ordered, double tol) {
  if (gold.size() != got.size()) return false;
  if (ordered) {
    for (std::size_t k = 0; k < gold.size(); ++k)
      if (!texts_match(got[k], gold[k], tol) && !string_matches(got[k], gold[k], tol)) return false;
    return true;
  }
  // As multisets: each gold element consumes one equal response element.
  std::vector<bool> used(got.size(), false);
  for (const auto& g : gold) {
    bool found = false;
    for (std::size_t k = 0; k < got.size() && !found; ++k)
      if (!used[k] && (texts_match(got[k], g, tol) || string_matches(got[k], g, tol))) used[k] = found = true;
    if (!found) return false;
  }
  return true;
}

// Response elements one per line ("2\n2\n3") are elements too.
std::vector<std::string> response_elements(std::string_view extracted) {
  std::string joined(extracted);
  for (char& c : joined)
    if (c == '\n') c = ',';
  std::vector<std::string> got = split_list(normalize_text(joined));
  for (auto& e : got) e = element_value(e);
  return got;
}

bool match_list_against(const Item& item, const std::string& gold_text, const std::vector<std::string>& got) {
  std::vector<std::string> gold = split_list(normalize_text(gold_text));
  if (lists_equal(got, gold, item.ordered, item.tolerance)) return true;
  // A prose lead-in before numbers ("The matrix is triangular, so λ₁ = -1 and λ₂ = 2") is no element.
  if (got.size() > gold.size() && all_numbers(gold)) {
    std::size_t lead = 0;
    while (lead < got.size() && !has_digit(got[lead])) ++lead;
    if (lead > 0 && got.size() - lead == gold.size()) {
      std::vector<std::string> rest(got.begin() + static_cast<std::ptrdiff_t>(lead), got.end());
      return match_list_against(item, gold_text, rest);
    }
  }
  std::vector<std::string> factors;
  if (all_integers(gold) && expand_factors(got, factors) && factors.size() != got.size())
    return lists_equal(factors, gold, item.ordered, item.tolerance);
  return false;
}

bool match_list(const Item& item, std::string_view extracted) {
  std::vector<std::string> got = response_elements(extracted);
  if (match_list_against(item, item.answer, got)) return true;
  for (const auto& a : item.aliases)
    if (match_list_against(item, a, got)) return true;
  return false;
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
  for (const auto& alias : item.aliases) gold_texts.push_back(normalize_text(alias));
  if (char c = answer_letter(extracted, n_letters)) return c == gold_letter;
  std::string got = normalize_text(extracted);
  if (got.empty()) return false;
  for (const auto& g : gold_texts)
    if (texts_match(got, g, 0) || loose(got) == loose(g)) return true;
  return false;
}

// A number answer, or the restatement in other units that follows it ("750 m (0.75 km)").
bool number_matches(const Item& item, const Number& gold, std::string_view extracted) {
  Number got;
  if (!find_first_number(extracted, got)) return false;
  if (numbers_match(got, gold, item.answer_type, item.tolerance)) return true;
  std::size_t open = extracted.find('(', got.end);
  Number alt;
  return open != std::string_view::npos && find_first_number(extracted, alt, open + 1) &&
         numbers_match(alt, gold, item.answer_type, item.tolerance);
}

}  // namespace

bool answers_match(const Item& item, std::string_view extracted) {
  switch (item.answer_type) {
    case AnswerType::integer:
    case AnswerType::number: {
      check_tolerance(item);
      // A diagnostic item without an error (Note [no-error answers] in scoring_extract.cpp).
      if (item.skill == Skill::diagnostic && item.answer == kNoError)
        return extracted == kNoError || says_no_error(extracted);
      if (item.skill == Skill::diagnostic && (extracted == kNoError || says_no_error(extracted))) return false;
      Number gold = gold_number(item);
      if (number_matches(item, gold, extracted)) return true;
      for (const auto& a : item.aliases) {
        Number g;
        if (parse_whole_number(a, g) && number_matches(item, g, extracted)) return true;
      }
      return false;
    }
    case AnswerType::string: {
      check_tolerance(item);
      std::string got = normalize_text(extracted);
      if (string_matches(got, normalize_text(item.answer), item.tolerance)) return true;
      for (const auto& a : item.aliases)
        if (string_matches(got, normalize_text(a), item.tolerance)) return true;
      return false;
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

void add_detection(Detection& d, const Item& item, std::string_view extracted, bool found, bool correct) {
  ++d.n;
  const bool error = item.answer != kNoError;
  const bool flagged = found && !extracted.empty() && extracted != kNoError;
  d.errors += error;
  d.flagged += flagged;
  d.true_positives += error && flagged && correct;
}

void finish_detection(Detection& d) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  d.precision = d.flagged > 0 ? static_cast<double>(d.true_positives) / static_cast<double>(d.flagged) : nan;
  d.recall = d.errors > 0 ? static_cast<double>(d.true_positives) / static_cast<double>(d.errors) : nan;
  // 2PR/(P+R) = 2tp/(flagged + errors): defined (0) also when nothing was flagged but errors exist.
  d.f1 = d.flagged + d.errors > 0 ? 2.0 * static_cast<double>(d.true_positives) / static_cast<double>(d.flagged + d.errors) : nan;
}

bool check(const Item& item, std::string_view output) { return check(item, output, default_extract_options()); }

bool check(const Item& item, std::string_view output, const ExtractOptions& options) {
  Extraction ex = extract(item, output, options);
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

Scores score(const std::vector<const Item*>& items, const std::vector<std::string_view>& outputs,
             const ExtractOptions& options) {
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
    Extraction ex = extract(*item, outputs[k], options);
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

Scores score(const std::vector<Item>& items, const std::vector<std::string>& outputs, const ExtractOptions& options) {
  if (items.size() != outputs.size())
    throw InvalidArgument("score: outputs has " + std::to_string(outputs.size()) + " entries for " +
                          std::to_string(items.size()) + " items, expected one output per item");
  std::vector<const Item*> ptrs;
  std::vector<std::string_view> views;
  ptrs.reserve(items.size());
  views.reserve(outputs.size());
  for (const auto& it : items) ptrs.push_back(&it);
  for (const auto& o : outputs) views.emplace_back(o);
  return score(ptrs, views, options);
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
