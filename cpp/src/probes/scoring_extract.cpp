// Answer extraction from free-form model output. Each strategy is a hand-written scanner; a strategy
// fires only when its span holds an answer of the item's type (a number for numeric items, a letter or an
// option for choice items, any text otherwise), so "the answer is below" falls through to later strategies.
#include <algorithm>

#include <metaprobe/probes/scoring.hpp>

#include "scoring_internal.hpp"

namespace metaprobe::probes {

using namespace detail;

namespace {

constexpr std::size_t npos = std::string_view::npos;
// Answers are short: spans and \boxed groups are read this far at most, which keeps degenerate outputs
// (a marker repeated thousands of times on one line) linear in practice.
constexpr std::size_t kMaxSpan = 1024;
constexpr std::size_t kMaxBoxed = 2048;
// Occurrences of one marker tried before giving up on it (bounds the work on degenerate outputs).
constexpr int kMaxTries = 64;

bool starts_with(std::string_view s, std::size_t pos, std::string_view lit) {
  return s.size() >= pos + lit.size() && s.compare(pos, lit.size(), lit) == 0;
}

// Case-insensitive match of a lowercase literal at pos.
bool matches_ci(std::string_view s, std::size_t pos, std::string_view lower_lit) {
  if (s.size() < pos + lower_lit.size()) return false;
  for (std::size_t k = 0; k < lower_lit.size(); ++k)
    if (to_lower(s[pos + k]) != lower_lit[k]) return false;
  return true;
}

// The last case-insensitive occurrence of a lowercase literal that starts before `before`.
std::size_t rfind_ci(std::string_view s, std::string_view lower_lit, std::size_t before) {
  if (s.size() < lower_lit.size()) return npos;
  std::size_t i = std::min(before, s.size() - lower_lit.size() + 1);
  while (i-- > 0)
    if (to_lower(s[i]) == lower_lit[0] && matches_ci(s, i, lower_lit)) return i;
  return npos;
}

// The answer span after a marker: blanks, ':' and markdown '*' skipped, then up to the end of the line,
// or with `sentence` of the sentence (a '.' followed by a space or the end; a decimal point is not one).
// "Answer:" and "####" are line formats ("Mr. Smith" survives); "the answer is" sits inside prose.
std::string_view span_after(std::string_view s, std::size_t i, bool next_line_if_empty, bool sentence) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ':' || s[i] == '*')) ++i;
  if (next_line_if_empty) {
    std::size_t j = i;
    while (j < s.size() && is_space(s[j])) ++j;
    if (j > i && j < s.size() && s.substr(i, j - i).find('\n') != npos) i = j;
  }
  std::size_t e = i;
  const std::size_t stop = std::min(s.size(), i + kMaxSpan);
  while (e < stop && s[e] != '\n') {
    if (sentence && s[e] == '.' && (e + 1 == s.size() || is_space(s[e + 1]))) break;
    ++e;
  }
  return trim(s.substr(i, e - i));
}

int letter_count(const std::vector<std::string>& choices) {
  // Without options (a hand-written item that only names its letter), letters A–J are valid.
  return choices.empty() ? 10 : static_cast<int>(std::min<std::size_t>(choices.size(), 26));
}

bool valid_letter(char c, int n_letters) { return is_upper(c) && c - 'A' < n_letters; }

// A choice letter written as a whole answer: "B", "(B)", "(b)", "B.", "B)", "b", "Option B" …
// Returns the uppercase letter or 0.
char leading_letter(std::string_view t, int n_letters) {
  t = trim(t);
  while (!t.empty() && (t.front() == '*' || t.front() == '`')) t.remove_prefix(1);
  for (std::string_view w : {"option ", "choice ", "letter "})
    if (matches_ci(t, 0, w)) t = trim(t.substr(w.size()));
  if (t.size() >= 3 && (t[0] == '(' || t[0] == '[') && is_alpha(t[1]) && (t[2] == ')' || t[2] == ']')) {
    char c = static_cast<char>(t[1] & ~0x20);
    return valid_letter(c, n_letters) ? c : 0;
  }
  if (t.empty() || !is_alpha(t[0])) return 0;
  std::string_view rest = t.substr(1);
  if (is_upper(t[0])) {
    if (!rest.empty() && (is_word(rest[0]) || rest[0] == '\'' || rest[0] == '-')) return 0;
    return valid_letter(t[0], n_letters) ? t[0] : 0;
  }
  // A lowercase letter only when it stands alone ("b", "b.", "b)"), since "a" is also an article.
  while (!rest.empty() && (rest.front() == '.' || rest.front() == ')' || rest.front() == ':' || rest.front() == '*'))
    rest.remove_prefix(1);
  char c = static_cast<char>(t[0] & ~0x20);
  return trim(rest).empty() && valid_letter(c, n_letters) ? c : 0;
}

// The last standalone choice letter: "(B)", "[B]", "B)", "B." / "B:" before a space or the end, "**B**",
// or a letter that ends the output. Never a letter inside a word. Returns its position or npos.
std::size_t last_letter(std::string_view s, int n_letters, char& letter) {
  std::string_view body = trim(s);
  for (std::size_t i = body.size(); i-- > 0;) {
    char c = body[i];
    if (!valid_letter(c, n_letters)) continue;
    char prev = i > 0 ? body[i - 1] : ' ';
    if (is_word(prev) || prev == '\'' || prev == '-') continue;
    char next = i + 1 < body.size() ? body[i + 1] : '\0';
    bool ok = false;
    if ((prev == '(' && next == ')') || (prev == '[' && next == ']')) ok = true;
    else if (next == ')' || (prev == '*' && next == '*')) ok = true;
    else if (next == '.' || next == ':') ok = i + 2 >= body.size() || is_space(body[i + 2]);
    else if (next == '\0') ok = true;
    else if (!is_word(next) && next != '\'' && next != '-') {
      // "B" followed only by punctuation or emphasis to the end of the output.
      std::size_t j = i + 1;
      while (j < body.size() && (body[j] == '.' || body[j] == '*' || body[j] == '!' || is_space(body[j]))) ++j;
      ok = j == body.size();
    }
    if (ok) {
      letter = c;
      return i;
    }
  }
  return npos;
}

// The option whose normalised text occurs last (whole words) in the normalised text; -1 if none.
int last_option(const std::string& norm_text, const std::vector<std::string>& choices, std::size_t& at_end) {
  int best = -1;
  std::size_t best_end = 0, best_len = 0;
  for (std::size_t k = 0; k < choices.size(); ++k) {
    std::string opt = normalize_text(choices[k]);
    if (opt.empty()) continue;
    std::size_t pos = norm_text.size() + 1;
    while (pos > 0) {
      std::size_t p = norm_text.rfind(opt, pos - 1);
      if (p == std::string::npos) break;
      std::size_t e = p + opt.size();
      bool left = p == 0 || !is_word(norm_text[p - 1]) || !is_word(opt.front());
      bool right = e == norm_text.size() || !is_word(norm_text[e]) || !is_word(opt.back());
      if (left && right) {
        if (best < 0 || e > best_end || (e == best_end && opt.size() > best_len)) {
          best = static_cast<int>(k);
          best_end = e;
          best_len = opt.size();
        }
        break;
      }
      if (p == 0) break;
      pos = p;
    }
  }
  at_end = best_end;
  return best;
}

// A choice answer inside a marker's span: the exact text of an option, a leading letter, an option's text
// at the start of the span, or a standalone letter within it. Sets the answer ("B" or the option text).
bool choice_from_span(std::string_view span, const std::vector<std::string>& choices, std::string& answer) {
  int n_letters = letter_count(choices);
  std::string norm = normalize_text(span);
  for (const auto& c : choices)
    if (!c.empty() && normalize_text(c) == norm) {
      answer = c;
      return true;
    }
  if (char c = leading_letter(span, n_letters)) {
    answer.assign(1, c);
    return true;
  }
  std::size_t end = 0;
  int k = last_option(norm, choices, end);
  char letter = 0;
  std::size_t lp = last_letter(span, n_letters, letter);
  if (lp != npos) {
    answer.assign(1, letter);
    return true;
  }
  if (k >= 0) {
    answer = choices[static_cast<std::size_t>(k)];
    return true;
  }
  return false;
}

// Whether a span holds an answer of the type; sets the answer text.
bool accept(std::string_view span, AnswerType type, const std::vector<std::string>& choices, std::string& answer) {
  span = trim(span);
  switch (type) {
    case AnswerType::integer:
    case AnswerType::number: {
      Number n;
      if (!find_first_number(span, n)) return false;
      answer.assign(span.substr(n.begin, n.end - n.begin));
      return true;
    }
    case AnswerType::choice:
      return choice_from_span(span, choices, answer);
    case AnswerType::string:
    case AnswerType::list:
      while (!span.empty() && (span.back() == '.' || span.back() == '*')) span = trim(span.substr(0, span.size() - 1));
      while (!span.empty() && span.front() == '*') span = trim(span.substr(1));
      if (span.empty()) return false;
      answer.assign(span);
      return true;
  }
  return false;
}

// \boxed{…} (balanced braces; escaped braces do not count), \fbox{…}, or "\boxed x". Returns the content
// of the occurrence that starts before `before`, latest first, and moves `before` to it.
bool boxed_before(std::string_view s, std::size_t& before, std::string_view& content) {
  while (before > 0) {
    std::size_t p = npos;
    std::size_t len = 0;
    for (std::size_t q = before; q-- > 0;) {
      if (s[q] != '\\') continue;
      if (starts_with(s, q, "\\boxed")) len = 6;
      else if (starts_with(s, q, "\\fbox")) len = 5;
      else continue;
      p = q;
      break;
    }
    if (p == npos) return false;
    before = p;
    std::size_t i = p + len;
    if (i < s.size() && s[i] == '{') {
      int depth = 0;
      for (std::size_t j = i, stop = std::min(s.size(), i + kMaxBoxed); j < stop; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          ++j;
          continue;
        }
        if (s[j] == '{') ++depth;
        if (s[j] == '}' && --depth == 0) {
          content = s.substr(i + 1, j - i - 1);
          return true;
        }
      }
    } else if (i < s.size() && s[i] == ' ') {
      std::size_t b = i + 1, e = b;
      while (e < s.size() && !is_space(s[e]) && s[e] != '$') ++e;
      if (e > b) {
        content = s.substr(b, e - b);
        return true;
      }
    }
  }
  return false;
}

bool try_boxed(std::string_view s, AnswerType type, const std::vector<std::string>& choices, std::string& ans) {
  std::size_t before = s.size();
  std::string_view content;
  for (int tries = 0; tries < kMaxTries && boxed_before(s, before, content); ++tries)
    if (accept(content, type, choices, ans)) return true;
  return false;
}

// GSM8K's "#### x", first occurrence (lm-evaluation-harness strict-match takes the first match).
bool try_gsm8k(std::string_view s, AnswerType type, const std::vector<std::string>& choices, std::string& ans) {
  int tries = 0;
  for (std::size_t p = s.find("####"); p != npos && tries++ < kMaxTries; p = s.find("####", p + 4)) {
    std::size_t i = p + 4;
    while (i < s.size() && s[i] == '#') ++i;
    if (accept(span_after(s, i, false, false), type, choices, ans)) return true;
  }
  return false;
}

// "… answer is x" (the answer is, the final answer is, my answer is:), latest first.
bool try_answer_is(std::string_view s, AnswerType type, const std::vector<std::string>& choices, std::string& ans) {
  int tries = 0;
  for (std::size_t p = rfind_ci(s, "answer is", s.size()); p != npos && tries < kMaxTries;
       p = rfind_ci(s, "answer is", p)) {
    if (p > 0 && is_alpha(s[p - 1])) continue;
    std::size_t i = p + 9;
    // Not "answer isn't 5" nor "answer is not" … only a bare "answer is".
    if (i < s.size() && (is_alpha(s[i]) || s[i] == '\'' || starts_with(s, i, "\xE2\x80\x99"))) continue;
    if (matches_ci(s, i, " not ") || matches_ci(s, i, " unclear") || matches_ci(s, i, " unknown")) continue;
    ++tries;
    if (accept(span_after(s, i, false, true), type, choices, ans)) return true;
  }
  return false;
}

// "Answer: x" (also "**Final Answer:** x", "answer :"), latest first; the next line when the rest of the
// line is empty.
bool try_answer_colon(std::string_view s, AnswerType type, const std::vector<std::string>& choices,
                      std::string& ans) {
  int tries = 0;
  for (std::size_t p = rfind_ci(s, "answer", s.size()); p != npos && tries < kMaxTries;
       p = rfind_ci(s, "answer", p)) {
    if (p > 0 && is_alpha(s[p - 1])) continue;
    std::size_t i = p + 6;
    while (i < s.size() && (s[i] == ' ' || s[i] == '*')) ++i;
    if (i >= s.size() || s[i] != ':') continue;
    ++tries;
    if (accept(span_after(s, i + 1, true, false), type, choices, ans)) return true;
  }
  return false;
}

bool try_last_line(std::string_view s, AnswerType type, const std::vector<std::string>& choices, std::string& ans) {
  std::string_view t = trim(s);
  std::size_t nl = t.rfind('\n');
  return accept(nl == npos ? t : t.substr(nl + 1), type, choices, ans);
}

}  // namespace

Extraction extract(std::string_view output, AnswerType type, const std::vector<std::string>& choices) {
  Extraction ex;
  auto fire = [&](const char* name) {
    ex.strategy = name;
    ex.found = true;
    return ex;
  };
  if (try_boxed(output, type, choices, ex.answer)) return fire("boxed");
  if (try_gsm8k(output, type, choices, ex.answer)) return fire("gsm8k");
  if (try_answer_is(output, type, choices, ex.answer)) return fire("the_answer_is");
  if (try_answer_colon(output, type, choices, ex.answer)) return fire("answer_colon");
  switch (type) {
    case AnswerType::integer:
    case AnswerType::number: {
      Number n;
      if (find_last_number(output, n)) {
        ex.answer.assign(output.substr(n.begin, n.end - n.begin));
        return fire("last_number");
      }
      break;
    }
    case AnswerType::choice: {
      char letter = 0;
      if (last_letter(output, letter_count(choices), letter) != npos) {
        ex.answer.assign(1, letter);
        return fire("choice_letter");
      }
      std::size_t end = 0;
      int k = last_option(normalize_text(output), choices, end);
      if (k >= 0) {
        ex.answer = choices[static_cast<std::size_t>(k)];
        return fire("choice_text");
      }
      break;
    }
    case AnswerType::string:
    case AnswerType::list:
      if (try_last_line(output, type, choices, ex.answer)) return fire("last_line");
      break;
  }
  ex.answer.clear();
  ex.strategy = "none";
  ex.found = false;
  return ex;
}

}  // namespace metaprobe::probes
