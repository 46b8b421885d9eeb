// Answer extraction from free-form model output. Each strategy is a hand-written scanner; a strategy
// fires only when its span holds an answer of the item's type (a number for numeric items, a letter or an
// option for choice items, any text otherwise), so "the answer is below" falls through to other markers.
//
// Note [which marker wins]: models restate, correct themselves and hedge ("I think the answer is 10, but …
// Answer: 12"). A fixed ranking of marker kinds (boxed > #### > "answer is" > "Answer:") reads the
// abandoned guess; the marker that comes last in the answer text is the model's final word, whatever its
// kind. Reasoning blocks (<think>…</think>) are cut away first: what a model considers while thinking is not
// its answer, and a block that never closes means the output stopped before any answer.
#include <algorithm>
#include <bitset>

#include <metaprobe/error.hpp>
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
// The fallbacks (no marker) read the last this many bytes of the answer text: the final answer is at its
// end, and a degenerate megabyte-long output stays cheap.
constexpr std::size_t kMaxFallback = 16384;
// Lines gathered for a list written one element per line.
constexpr int kMaxListLines = 64;

enum Strategy : std::size_t {
  kBoxed,
  kGsm8k,
  kAnswerIs,
  kAnswerColon,
  kEmphasis,
  kLastNumber,
  kChoiceLetter,
  kChoiceText,
  kLastLine,
  kUnclosed,
  kNone
};
using Mask = std::bitset<kStrategies.size()>;

}  // namespace

const ExtractOptions& default_extract_options() {
  static const ExtractOptions opts;  // immutable after construction: no mutable global state
  return opts;
}

namespace {

const ExtractOptions& default_options() { return default_extract_options(); }

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

// The last occurrence of a literal: a backward scan for its first byte, compared only there
// (std::string_view::rfind compares at every position, which dominated scoring).
std::size_t rfind_lit(std::string_view s, std::string_view lit) {
  if (lit.empty() || s.size() < lit.size()) return npos;
  for (std::size_t i = s.size() - lit.size() + 1; i-- > 0;)
    if (s[i] == lit[0] && s.compare(i, lit.size(), lit) == 0) return i;
  return npos;
}

// The last case-insensitive occurrence of a lowercase literal that starts before `before`.
std::size_t rfind_ci(std::string_view s, std::string_view lower_lit, std::size_t before) {
  if (s.size() < lower_lit.size()) return npos;
  std::size_t i = std::min(before, s.size() - lower_lit.size() + 1);
  while (i-- > 0)
    if (to_lower(s[i]) == lower_lit[0] && matches_ci(s, i, lower_lit)) return i;
  return npos;
}

// ---------------------------------------------------------------------------------------------------------
// Spans after a marker.

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

// A line without a list bullet ("- ", "* ", "• ", "1. ", "2) ").
std::string_view unbullet(std::string_view line) {
  line = trim(line);
  if (line.size() >= 2 && (line[0] == '-' || line[0] == '*') && line[1] == ' ') return trim(line.substr(2));
  if (starts_with(line, 0, "\xE2\x80\xA2")) return trim(line.substr(3));
  std::size_t k = 0;
  while (k < line.size() && k < 3 && is_digit(line[k])) ++k;
  if (k > 0 && k + 1 < line.size() && (line[k] == '.' || line[k] == ')') && line[k + 1] == ' ')
    return trim(line.substr(k + 2));
  return line;
}

// The lines of a block from `i` (a list written one element per line) joined with ", ": consecutive
// non-empty lines, bullets removed, up to a blank line. Empty when the block has a single line.
std::string line_block(std::string_view s, std::size_t i) {
  std::string out;
  int lines = 0;
  while (i < s.size() && lines < kMaxListLines) {
    std::size_t e = s.find('\n', i);
    if (e == npos) e = s.size();
    std::string_view line = unbullet(s.substr(i, e - i));
    if (line.empty()) break;
    if (line.size() > 80) return {};  // prose, not one element per line
    if (!out.empty()) out += ", ";
    out.append(line);
    ++lines;
    i = e + 1;
  }
  return lines >= 2 ? out : std::string();
}

// ---------------------------------------------------------------------------------------------------------
// Numbers.

// Number words a model writes instead of digits ("only **one**"): zero … twenty and the tens.
bool number_word_at(std::string_view s, std::size_t i, std::size_t& end, int& value) {
  static constexpr std::string_view kWords[] = {"zero",    "one",     "two",       "three",    "four",
                                                "five",    "six",     "seven",     "eight",    "nine",
                                                "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                                "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                                                "twenty"};
  static constexpr std::string_view kTens[] = {"thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (i > 0 && is_word(s[i - 1])) return false;
  auto whole = [&](std::string_view w) {
    return matches_ci(s, i, w) && (i + w.size() == s.size() || !is_word(s[i + w.size()]));
  };
  // Longest first, so "seventeen" is not read as "seven".
  for (int k = 20; k >= 0; --k)
    if (whole(kWords[k])) {
      end = i + kWords[k].size();
      value = k;
      return true;
    }
  for (int k = 0; k < 7; ++k)
    if (whole(kTens[k])) {
      end = i + kTens[k].size();
      value = 30 + 10 * k;
      return true;
    }
  return false;
}

// The number text as the answer: '$' and thousands separators dropped ("$1,234" → "1234").
std::string number_text(std::string_view s, const Number& n) {
  std::string out;
  std::string_view t = s.substr(n.begin, n.end - n.begin);
  for (std::size_t k = 0; k < t.size(); ++k) {
    if (t[k] == '$') continue;
    if (starts_with(t, k, "{,}")) {
      k += 2;
      continue;
    }
    if (t[k] == ',' && k + 1 < t.size() && is_digit(t[k + 1]) && k > 0 && is_digit(t[k - 1])) continue;
    out.push_back(t[k]);
  }
  return out;
}

bool has_operator(std::string_view t) {
  for (std::size_t k = 0; k < t.size(); ++k) {
    char c = t[k];
    if (c == '+' || c == '*' || c == '/' || c == '^' || c == 'x' || c == '-') {
      // an operator between numbers ("3 x 4", "10 - 2"), not a hyphen inside a word
      if (c == 'x' && (k == 0 || is_alpha(t[k - 1]) || (k + 1 < t.size() && is_alpha(t[k + 1])))) continue;
      return true;
    }
    if (starts_with(t, k, "\xC3\x97") || starts_with(t, k, "\xC3\xB7") || starts_with(t, k, "\\times") ||
        starts_with(t, k, "\\cdot") || starts_with(t, k, "\xC2\xB7"))
      return true;
  }
  return false;
}

bool has_digit(std::string_view t) {
  return std::any_of(t.begin(), t.end(), [](char c) { return is_digit(c); });
}

// Words allowed between "the answer is" and its number ("the answer is therefore 42").
bool filler_only(std::string_view t) {
  static constexpr std::string_view kFillers[] = {
      "therefore", "thus", "then", "so", "simply", "approximately", "about", "roughly", "exactly", "just",
      "equal", "to", "a", "total", "of", "around", "hence", "clearly", "indeed", "now", "final", "correct",
      "option", "choice", "number", "line", "step", "value", "result", "count", "sum", "only", "still"};
  std::size_t i = 0;
  while (i < t.size()) {
    if (!is_alpha(t[i])) {
      ++i;
      continue;
    }
    std::size_t e = i;
    while (e < t.size() && is_alpha(t[e])) ++e;
    const std::size_t n = e - i;
    // "the answer is x = 5": a one-letter variable (the '=' is handled apart)
    bool ok = n == 1 && (to_lower(t[i]) == 'x' || to_lower(t[i]) == 'n');
    for (auto f : kFillers) ok = ok || (f.size() == n && matches_ci(t, i, f));
    if (!ok) return false;
    i = e;
  }
  return true;
}

// The position of the last '=' of a span outside parentheses, else npos.
std::size_t top_level_equals(std::string_view t) {
  int depth = 0;
  std::size_t at = npos;
  for (std::size_t k = 0; k < t.size(); ++k) {
    if (t[k] == '(' || t[k] == '[') ++depth;
    else if ((t[k] == ')' || t[k] == ']') && depth > 0) --depth;
    else if (t[k] == '=' && depth == 0) at = k;
  }
  return at;
}

// Where a parenthesised restatement "(0.75 km)" right after a number ends, else npos: units between the
// number and '(' are letters only, and the parenthesis holds one number and letters.
std::size_t restatement_end(std::string_view t, std::size_t after_number) {
  std::size_t k = after_number;
  while (k < t.size() && (is_alpha(t[k]) || t[k] == ' ' || t[k] == '*' || t[k] == '/' || t[k] == '^')) ++k;
  if (k >= t.size() || t[k] != '(') return npos;
  Number inner;
  if (!find_first_number(t.substr(0, std::min(t.size(), k + 64)), inner, k + 1)) return npos;
  std::size_t j = inner.end;
  while (j < t.size() && (is_alpha(t[j]) || t[j] == ' ' || t[j] == '/' || t[j] == '^')) ++j;
  if (j >= t.size() || t[j] != ')') return npos;
  for (std::size_t q = k + 1; q < inner.begin; ++q)
    if (!(t[q] == ' ' || t[q] == '~' || t[q] == '$' || starts_with(t, q, "\xE2\x89\x88"))) {
      if (static_cast<unsigned char>(t[q]) >= 0x80) continue;  // ≈
      return npos;
    }
  return j + 1;
}

// The number a span answers with: after the last top-level '=' when what precedes it is a formula or has no
// number ("x = 5", "3 × 4 = 12"); else the first number, which with `strict` may follow only filler words.
// A parenthesised restatement in other units is kept with it; a number word counts when no digit does.
bool number_in_span(std::string_view span, bool strict, std::string& answer) {
  Number n;
  std::size_t eq = top_level_equals(span);
  bool found = false;
  if (eq != npos) {
    std::string_view before = span.substr(0, eq);
    if ((!has_digit(before) || has_operator(before)) && find_first_number(span, n, eq + 1)) {
      std::string_view between = span.substr(eq + 1, n.begin - eq - 1);
      found = trim(between).empty() || filler_only(between);
    }
  }
  if (!found && find_first_number(span, n)) {
    found = !strict || filler_only(span.substr(0, n.begin)) ||
            (eq != npos && eq < n.begin && filler_only(span.substr(eq + 1, n.begin - eq - 1)));
    if (!found) return false;
  }
  if (found) {
    answer = number_text(span, n);
    if (std::size_t r = restatement_end(span, n.end); r != npos) {
      answer.append(span.substr(n.end, r - n.end));
    }
    return true;
  }
  // Number words: the first word of the span that is one (strict: after fillers only).
  for (std::size_t i = 0; i < span.size(); ++i) {
    std::size_t end = 0;
    int v = 0;
    if (is_alpha(span[i]) && number_word_at(span, i, end, v)) {
      if (strict && !filler_only(span.substr(0, i))) return false;
      answer = std::to_string(v);
      return true;
    }
    if (has_digit(span.substr(i, 1))) return false;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Choices.

int letter_count(const std::vector<std::string>& choices) {
  // Without options (a hand-written item that only names its letter), letters A–J are valid.
  return choices.empty() ? 10 : static_cast<int>(std::min<std::size_t>(choices.size(), 26));
}

bool valid_letter(char c, int n_letters) { return is_upper(c) && c - 'A' < n_letters; }

// A choice letter written as a whole answer: "B", "(B)", "(b)", "B.", "B)", "b", "Option B" …
// Returns the uppercase letter or 0; `strong` when the letter stands alone or is followed by a separator
// (not "A bicycle …", where the letter may be an article).
char leading_letter(std::string_view t, int n_letters, bool& strong) {
  strong = false;
  t = trim(t);
  while (!t.empty() && (t.front() == '*' || t.front() == '`' || t.front() == '$')) t.remove_prefix(1);
  bool named = false;
  for (std::string_view w : {"option ", "choice ", "letter "})
    if (matches_ci(t, 0, w)) {
      t = trim(t.substr(w.size()));
      named = true;
    }
  if (t.size() >= 3 && (t[0] == '(' || t[0] == '[') && is_alpha(t[1]) && (t[2] == ')' || t[2] == ']')) {
    char c = static_cast<char>(t[1] & ~0x20);
    strong = true;
    return valid_letter(c, n_letters) ? c : 0;
  }
  if (t.empty() || !is_alpha(t[0])) return 0;
  std::string_view rest = t.substr(1);
  if (is_upper(t[0])) {
    if (!rest.empty() && (is_word(rest[0]) || rest[0] == '\'' || rest[0] == '-')) return 0;
    std::string_view r = rest;
    while (!r.empty() && (r.front() == '*' || r.front() == '`' || r.front() == '$')) r.remove_prefix(1);
    strong = named || r.empty() || r.front() == '.' || r.front() == ')' || r.front() == ':' || r.front() == ',' ||
             r.front() == ']' || trim(r).empty() || starts_with(r, 0, " -") || starts_with(r, 0, " \xE2\x80\x94") ||
             starts_with(r, 0, " (");
    return valid_letter(t[0], n_letters) ? t[0] : 0;
  }
  // A lowercase letter only when it stands alone ("b", "b.", "b)"), since "a" is also an article.
  while (!rest.empty() && (rest.front() == '.' || rest.front() == ')' || rest.front() == ':' || rest.front() == '*'))
    rest.remove_prefix(1);
  char c = static_cast<char>(t[0] & ~0x20);
  strong = true;
  return trim(rest).empty() && valid_letter(c, n_letters) ? c : 0;
}

using Spans = std::vector<std::pair<std::size_t, std::size_t>>;

bool masked(const Spans& spans, std::size_t i) {
  for (const auto& [b, e] : spans)
    if (i >= b && i < e) return true;
  return false;
}

// The last standalone choice letter: "(B)", "[B]", "B)", "B." / "B:" before a space or the end, "**B**",
// or a letter that ends the output. Never a letter inside a word or inside an option's own text (`mask`).
// Returns its position or npos.
std::size_t last_letter(std::string_view s, int n_letters, const Spans& mask, char& letter) {
  std::size_t lead = 0;
  while (lead < s.size() && is_space(s[lead])) ++lead;
  std::string_view body = trim(s);
  for (std::size_t i = body.size(); i-- > 0;) {
    char c = body[i];
    if (!valid_letter(c, n_letters) || masked(mask, i + lead)) continue;
    char prev = i > 0 ? body[i - 1] : ' ';
    if (is_word(prev) || prev == '\'' || prev == '-' || prev == '.' || prev == '\\') continue;
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
      return i + lead;
    }
  }
  return npos;
}

// Note [option text in other spacing]: models rewrite an option's text ("O(V + E)" for "O(V+E)", "−b/a"
// with a Unicode minus, "the ampere (A)"). Texts are compared in a compact form (ASCII lowercase; spaces,
// markdown, '$', braces and \text-like wrappers dropped; Unicode minus and dashes as '-'), mapped back to
// byte positions of the original so that whole-word boundaries are checked there.
struct Compact {
  std::string text;
  std::vector<std::size_t> from, to;  // original byte range of each compact character
};

void compact(std::string_view s, Compact& c) {
  c.text.clear();
  c.from.clear();
  c.to.clear();
  for (std::size_t i = 0; i < s.size();) {
    char ch = s[i];
    std::size_t len = 1;
    char out = 0;
    if (is_space(ch) || ch == '*' || ch == '`' || ch == '$' || ch == '{' || ch == '}' || ch == '~') {
    } else if (ch == '\\') {
      std::size_t k = i + 1;
      while (k < s.size() && is_alpha(s[k])) ++k;
      std::string_view name = s.substr(i + 1, k - i - 1);
      len = std::max<std::size_t>(k - i, 1);
      if (name.empty()) {
        len = std::min<std::size_t>(2, s.size() - i);  // "\," "\ " "\(" …
        if (len == 2 && (s[i + 1] == '(' || s[i + 1] == ')')) out = 0;
      } else if (name == "cdot" || name == "times") out = 'x';
      else if (name == "log" || name == "ln" || name == "sin" || name == "cos") {
        for (char x : name) {
          c.text.push_back(x);
          c.from.push_back(i);
          c.to.push_back(k);
        }
      } else if (name == "pi") {
        c.text += "pi";
        c.from.insert(c.from.end(), {i, i});
        c.to.insert(c.to.end(), {k, k});
      } else if (name == "lambda") {
        c.text += "lambda";
        c.from.insert(c.from.end(), 6, i);
        c.to.insert(c.to.end(), 6, k);
      }
    } else if (starts_with(s, i, "\xE2\x88\x92") || starts_with(s, i, "\xE2\x80\x93") ||
               starts_with(s, i, "\xE2\x80\x94")) {
      len = 3;
      out = '-';
    } else if (starts_with(s, i, "\xC2\xA0") || starts_with(s, i, "\xC2\xB7")) {
      len = 2;
      if (s[i + 1] == '\xB7') out = 'x';
    } else if (starts_with(s, i, "\xC3\x97")) {
      len = 2;
      out = 'x';
    } else if (starts_with(s, i, "\xE2\x80\x89") || starts_with(s, i, "\xE2\x80\xAF")) {
      len = 3;
    } else {
      out = to_lower(ch);
    }
    if (out) {
      c.text.push_back(out);
      c.from.push_back(i);
      c.to.push_back(i + len);
    }
    i += len;
  }
}

// Compact forms of the texts a choice may be given by: each option, the option without a trailing
// parenthesis ("joule" for "joule (J)"), and the extra texts (aliases of the gold option).
struct OptionText {
  std::string compact;
  int option;           // index into choices; -1 for an extra text
  const std::string* text;
};

std::vector<OptionText> option_texts(const std::vector<std::string>& choices, const std::vector<std::string>* extra) {
  std::vector<OptionText> out;
  Compact c;
  auto add = [&](std::string_view t, int k, const std::string* text) {
    compact(t, c);
    if (!c.text.empty()) out.push_back({c.text, k, text});
  };
  for (std::size_t k = 0; k < choices.size(); ++k) {
    add(choices[k], static_cast<int>(k), &choices[k]);
    std::string_view t = trim(choices[k]);
    if (!t.empty() && t.back() == ')') {
      std::size_t p = t.rfind(" (");
      if (p != npos && p >= 3) add(t.substr(0, p), static_cast<int>(k), &choices[k]);
    }
  }
  if (extra)
    for (const auto& e : *extra) add(e, -1, &e);
  return out;
}

struct OptionMatch {
  const OptionText* opt = nullptr;
  std::size_t begin = 0, end = 0;  // bytes of the original text
};

// Every whole-word occurrence of every option text in s (original byte spans).
std::vector<OptionMatch> find_options(std::string_view s, const std::vector<OptionText>& opts) {
  std::vector<OptionMatch> found;
  if (opts.empty()) return found;
  Compact c;
  compact(s, c);
  for (const auto& o : opts) {
    for (std::size_t p = c.text.find(o.compact); p != std::string::npos; p = c.text.find(o.compact, p + 1)) {
      std::size_t b = c.from[p], e = c.to[p + o.compact.size() - 1];
      bool left = b == 0 || !is_word(s[b - 1]) || !is_word(s[b]);
      // a plural counts: "steradians" for "steradian"
      if (e + 1 <= s.size() && e < s.size() && s[e] == 's' && is_alpha(s[e - 1]) && (e + 1 == s.size() || !is_word(s[e + 1])))
        ++e;
      bool right = e >= s.size() || !is_word(s[e]) || !is_word(s[e - 1]);
      if (left && right) found.push_back({&o, b, e});
    }
  }
  return found;
}

Spans spans_of(const std::vector<OptionMatch>& m) {
  Spans s;
  for (const auto& x : m) s.emplace_back(x.begin, x.end);
  return s;
}

std::string option_answer(const OptionMatch& m) { return *m.opt->text; }

// A choice answer inside a marker's span: the exact text of an option or alias, a letter that stands alone
// ("B", "(B)", "B. Paris"), an option's text anywhere in the span (the earliest), a lone leading letter
// ("B is right"), or a standalone letter outside the options' own texts. Sets the answer ("B" or a text).
// ---------------------------------------------------------------------------------------------------------
// "No error" answers of diagnostic items.
//
// Note [no-error answers]: a diagnostic item may have no error at all (gold kNoError). Models say so in
// many words: "none", "No error", "There is no mistake", "All steps are correct", "Correct". A marker span
// that *starts* with such a phrase answers kNoError, unless it goes on with "but" / "except" (a hedge that
// names a step after all); otherwise the span's number is the answer. Without a marker, a final paragraph
// whose last such phrase comes after its last digit answers kNoError (only unambiguous phrases there:
// "Step 3 is correct." names a step).

bool word_end(std::string_view s, std::size_t i) { return i >= s.size() || !is_alpha(s[i]); }

}  // namespace

bool detail::says_no_error(std::string_view span) {
  std::size_t i = 0;
  while (i < span.size() && (span[i] == '*' || span[i] == ' ' || span[i] == '"' || span[i] == '`' || span[i] == '(' ||
                             span[i] == '$' || span[i] == '\\' || span[i] == '{')) {
    if (span[i] == '\\') {  // \text{none}
      std::size_t j = i + 1;
      while (j < span.size() && is_alpha(span[j])) ++j;
      i = j;
      continue;
    }
    ++i;
  }
  static constexpr std::string_view kLeads[] = {
      "none", "no error", "no errors", "no mistake", "no mistakes", "no wrong", "no incorrect", "no step",
      "no line", "no sentence", "no equation", "no assert", "no contradiction", "no inconsistency", "nothing",
      "there is no", "there are no", "there's no", "there were no", "all steps are correct", "all correct",
      "all are correct", "all of them are correct", "every step is correct", "everything is correct",
      "all lines are correct", "all the steps are correct", "the solution is correct", "it is correct",
      "correct", "n/a", "not applicable"};
  for (std::string_view lead : kLeads) {
    if (!matches_ci(span, i, lead) || !word_end(span, i + lead.size())) continue;
    for (std::string_view hedge : {" but ", " except ", " however"})
      for (std::size_t k = i; k + hedge.size() <= span.size(); ++k)
        if (matches_ci(span, k, hedge)) return false;
    return true;
  }
  return false;
}

namespace {

std::size_t final_paragraph(std::string_view s);

bool ends_saying_no_error(std::string_view s) {
  {  // a last line that is a no-error answer without any number ("none", "No error.", "Correct")
    std::string_view t = trim(s);
    const std::size_t nl = t.rfind('\n');
    std::string_view last = nl == npos ? t : t.substr(nl + 1);
    bool digit = false;
    for (char c : last) digit = digit || is_digit(c);
    if (!digit && says_no_error(last)) return true;
  }
  static constexpr std::string_view kPhrases[] = {
      "no error", "no mistake", "nothing is wrong", "nothing wrong", "all steps are correct",
      "all the steps are correct", "every step is correct", "everything is correct", "no step is wrong",
      "no step is incorrect", "no contradiction", "all lines are correct", "none of the", "there is no wrong",
      "no line is wrong", "no inconsistency", "all of the steps are correct", "all the equations are",
      "all equations are", "every equation is", "all asserts pass", "every assert passes", "all tests pass"};
  const std::size_t from = final_paragraph(s);
  std::size_t best = npos;
  for (std::string_view ph : kPhrases) {
    std::size_t p = rfind_ci(s, ph, s.size());
    if (p != npos && p >= from && (p == 0 || !is_alpha(s[p - 1])) && (best == npos || p > best)) best = p;
  }
  if (best == npos) return false;
  for (std::size_t k = best; k < s.size(); ++k)
    if (is_digit(s[k])) return false;
  for (std::size_t k = from; k < best; ++k)  // "Step 3 is wrong; no error elsewhere" names a step
    if (is_digit(s[k])) return false;
  return true;
}

struct Ctx;
bool choice_from_span(std::string_view span, const Ctx& cx, std::string& answer);

// ---------------------------------------------------------------------------------------------------------
// Strategies.

struct Ctx {
  Ctx(AnswerType t, const std::vector<std::string>& c) : type(t), choices(c) {}
  AnswerType type;
  const std::vector<std::string>& choices;
  const std::vector<std::string>* aliases = nullptr;
  bool none_ok = false;  // a diagnostic item: "none" / "no error" is an answer (kNoError)
  // The compact option texts, built on first use (most choice answers are a bare letter).
  mutable bool built = false;
  mutable std::vector<OptionText> opts;
  const std::vector<OptionText>& options() const {
    if (!built) {
      opts = option_texts(choices, aliases);
      built = true;
    }
    return opts;
  }
};

bool choice_from_span(std::string_view span, const Ctx& cx, std::string& answer) {
  const std::vector<std::string>& choices = cx.choices;
  int n_letters = letter_count(choices);
  // Fast path: the span is a bare letter ("B", "(B)", "**B.**") and no option is that one letter.
  {
    std::string_view t = trim(span);
    while (!t.empty() && (t.front() == '*' || t.front() == '(' || t.front() == '[')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == '*' || t.back() == ')' || t.back() == ']' || t.back() == '.')) t.remove_suffix(1);
    if (t.size() == 1 && valid_letter(t[0], n_letters)) {
      bool clash = false;
      for (const auto& c : choices) clash = clash || (trim(c).size() == 1 && (trim(c)[0] & ~0x20) == t[0]);
      if (!clash) {
        answer.assign(1, t[0]);
        return true;
      }
    }
  }
  std::string norm = normalize_text(span);
  auto exact = [&](const std::string& text) {
    if (normalize_text(text) != norm) return false;
    answer = text;
    return true;
  };
  for (const auto& c : choices)
    if (exact(c)) return true;
  if (cx.aliases)
    for (const auto& a : *cx.aliases)
      if (exact(a)) return true;
  std::string plain = strip_wrappers(span);  // \text{B}, \mathrm{B}, $B$
  bool strong = false;
  char lead = leading_letter(plain, n_letters, strong);
  if (lead && strong) {
    answer.assign(1, lead);
    return true;
  }
  std::vector<OptionMatch> m = find_options(span, cx.options());
  if (!m.empty()) {
    const OptionMatch* best = &m[0];
    for (const auto& x : m)
      if (x.begin < best->begin || (x.begin == best->begin && x.end > best->end)) best = &x;
    answer = option_answer(*best);
    return true;
  }
  if (lead) {
    answer.assign(1, lead);
    return true;
  }
  char letter = 0;
  if (last_letter(span, n_letters, spans_of(m), letter) != npos) {
    answer.assign(1, letter);
    return true;
  }
  return false;
}

// Whether a span holds an answer of the type; sets the answer text. `strict`: prose markers, whose number
// must come right after the marker ("the answer is therefore 42", not "the answer is derived from 5 …").
bool accept(std::string_view span, const Ctx& cx, bool strict, std::string& answer) {
  span = trim(span);
  switch (cx.type) {
    case AnswerType::integer:
    case AnswerType::number:
      if (cx.none_ok && says_no_error(span)) {
        answer = kNoError;
        return true;
      }
      return number_in_span(span, strict, answer);
    case AnswerType::choice:
      return choice_from_span(span, cx, answer);
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

// \boxed{…} (balanced braces; escaped braces do not count), \fbox{…}, or "\boxed x". Finds the occurrence
// that starts before `before`, latest first, and moves `before` to it; `content` is set when it is complete
// (an unbalanced, cut-off one returns true with `complete` false, so every occurrence counts as a try).
bool boxed_before(std::string_view s, std::size_t& before, std::string_view& content, bool& complete) {
  complete = false;
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
    if (std::size_t j = closing_brace(s, i, kMaxBoxed); j != npos) {
      content = s.substr(i + 1, j - i - 1);
      complete = true;
    }
  } else if (i < s.size() && s[i] == ' ') {
    std::size_t b = i + 1, e = b;
    while (e < s.size() && !is_space(s[e]) && s[e] != '$') ++e;
    if (e > b) {
      content = s.substr(b, e - b);
      complete = true;
    }
  }
  return true;
}

std::size_t try_boxed(std::string_view s, const Ctx& cx, std::string& ans) {
  std::size_t before = s.size();
  std::string_view content;
  bool complete = false;
  for (int tries = 0; tries < kMaxTries && boxed_before(s, before, content, complete); ++tries)
    if (complete && accept(content, cx, false, ans)) return before;
  return npos;
}

// A marker's span; for a list whose line after the marker is empty, the block of lines that follows.
bool accept_line_marker(std::string_view s, std::size_t i, const Ctx& cx, std::string& ans) {
  std::string_view span = span_after(s, i, true, false);
  if (cx.type == AnswerType::list) {
    std::size_t j = i;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t' || s[j] == ':' || s[j] == '*')) ++j;
    if (j >= s.size() || s[j] == '\n' || s[j] == '\r') {
      std::string block = line_block(s, j + 1);
      if (!block.empty()) {
        ans = std::move(block);
        return true;
      }
    }
  }
  return accept(span, cx, false, ans);
}

// GSM8K's "#### x", latest first.
std::size_t try_gsm8k(std::string_view s, const Ctx& cx, std::string& ans) {
  int tries = 0;
  for (std::size_t p = rfind_lit(s, "####"); p != npos && tries++ < kMaxTries;
       p = p == 0 ? npos : rfind_lit(s.substr(0, p + 3), "####")) {
    while (p > 0 && s[p - 1] == '#') --p;
    std::size_t i = p;
    while (i < s.size() && s[i] == '#') ++i;
    if (accept(span_after(s, i, false, false), cx, false, ans)) return p;
  }
  return npos;
}

// "… answer is x" (the answer is, the final answer is, my answer is:), latest first.
std::size_t try_answer_is(std::string_view s, const Ctx& cx, std::string& ans) {
  int tries = 0;
  for (std::size_t p = rfind_ci(s, "answer is", s.size()); p != npos && tries < kMaxTries;
       p = rfind_ci(s, "answer is", p)) {
    if (p > 0 && is_alpha(s[p - 1])) continue;
    std::size_t i = p + 9;
    // Not "answer isn't 5" nor "answer is not" … only a bare "answer is".
    if (i < s.size() && (is_alpha(s[i]) || s[i] == '\'' || starts_with(s, i, "\xE2\x80\x99"))) continue;
    if (matches_ci(s, i, " not ") || matches_ci(s, i, " unclear") || matches_ci(s, i, " unknown")) continue;
    ++tries;
    if (accept(span_after(s, i, false, true), cx, true, ans)) return p;
  }
  return npos;
}

// "Answer: x" (also "**Final Answer:** x", "answer :"), latest first; the next line when the rest of the
// line is empty.
std::size_t try_answer_colon(std::string_view s, const Ctx& cx, std::string& ans) {
  int tries = 0;
  for (std::size_t p = rfind_ci(s, "answer", s.size()); p != npos && tries < kMaxTries;
       p = rfind_ci(s, "answer", p)) {
    if (p > 0 && is_alpha(s[p - 1])) continue;
    std::size_t i = p + 6;
    while (i < s.size() && (s[i] == ' ' || s[i] == '*')) ++i;
    if (i >= s.size() || s[i] != ':') continue;
    ++tries;
    if (accept_line_marker(s, i + 1, cx, ans)) return p;
  }
  return npos;
}

// The final paragraph: the text after the last blank line.
std::size_t final_paragraph(std::string_view s) {
  std::string_view t = s;
  while (!t.empty() && is_space(t.back())) t.remove_suffix(1);
  for (std::size_t i = t.size(); i-- > 1;) {
    if (t[i] != '\n') continue;
    std::size_t j = i;
    while (j-- > 0 && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) {
    }
    if (j != npos && t[j] == '\n') return i + 1;
  }
  return 0;
}

// The last **bold** span of the final paragraph that answers (headings such as "**Step 2:**" skipped).
// Numeric items give way to the last number when a later "= x" of the paragraph computes on.
bool try_emphasis(std::string_view s, const Ctx& cx, std::string& ans) {
  std::size_t from = final_paragraph(s);
  std::size_t best_b = npos, best_e = 0;
  for (std::size_t p = s.find("**", from); p != npos;) {
    std::size_t q = s.find("**", p + 2);
    if (q == npos) break;
    std::string_view in = trim(s.substr(p + 2, q - p - 2));
    bool heading = in.empty() || in.back() == ':' || (q + 2 < s.size() && s[q + 2] == ':') ||
                   matches_ci(in, 0, "step") || matches_ci(in, 0, "part ") || matches_ci(in, 0, "case ") ||
                   in.find('\n') != npos;
    std::string tmp;
    if (!heading && accept(in, cx, false, tmp)) {
      best_b = p + 2;
      best_e = q;
      ans = std::move(tmp);
    }
    p = s.find("**", q + 2);
  }
  if (best_b == npos) return false;
  if (cx.type == AnswerType::integer || cx.type == AnswerType::number) {
    std::string_view after = s.substr(best_e + 2);
    std::size_t eq = after.find('=');
    Number n;
    if (eq != npos && find_first_number(after, n, eq + 1) && after.substr(eq + 1, n.begin - eq - 1).find('\n') == npos &&
        trim(after.substr(eq + 1, n.begin - eq - 1)).size() <= 2)
      return false;
  }
  return true;
}

// The last number; one inside a parenthesised restatement right after another number ("5,400 metres
// (5.4 km)") gives way to that number.
bool try_last_number(std::string_view s, std::string& ans) {
  Number n, prev, cur;
  bool have_prev = false, found = false;
  std::size_t i = 0;
  while (find_first_number(s, cur, i)) {
    if (found) {
      prev = n;
      have_prev = true;
    }
    n = cur;
    found = true;
    i = cur.end > cur.begin ? cur.end : cur.begin + 1;
  }
  if (!found) return false;
  if (have_prev && restatement_end(s, prev.end) != npos) {
    Number inner;
    if (find_first_number(s, inner, prev.end) && inner.begin == n.begin) {
      ans = number_text(s, prev);
      return true;
    }
  }
  ans = number_text(s, n);
  return true;
}

bool try_last_line(std::string_view s, const Ctx& cx, std::string& ans) {
  std::string_view t = trim(s);
  if (cx.type == AnswerType::list) {
    // A final paragraph of short lines is one element per line; a lead-in line ending in ':' is not one.
    std::size_t para = final_paragraph(t);
    std::size_t nl = t.find('\n', para);
    if (nl != npos && trim(t.substr(para, nl - para)).back() == ':') para = nl + 1;
    std::string block = line_block(t, para);
    if (!block.empty()) {
      std::size_t lines = static_cast<std::size_t>(std::count(t.begin() + static_cast<std::ptrdiff_t>(para), t.end(), '\n')) + 1;
      std::size_t parts = static_cast<std::size_t>(std::count(block.begin(), block.end(), ',')) + 1;
      if (parts >= lines) {
        ans = std::move(block);
        return true;
      }
    }
  }
  std::size_t nl = t.rfind('\n');
  return accept(nl == npos ? t : t.substr(nl + 1), cx, false, ans);
}

// Where the answer text starts: after the last close tag of any reasoning block. False when a reasoning
// block opens after it (a block never closed: the output stopped while reasoning).
bool answer_region(std::string_view out, const ExtractOptions& o, std::string_view& region) {
  region = out;
  std::size_t start = 0;
  for (const auto& [open, close] : o.reasoning_tags) {
    if (close.empty() || out.find(close[0]) == npos) continue;
    std::size_t c = rfind_lit(out, close);
    if (c != npos) start = std::max(start, c + close.size());
  }
  region = out.substr(start);
  for (const auto& [open, close] : o.reasoning_tags)
    if (!open.empty() && region.find(open[0]) != npos && region.find(open) != npos) return false;
  return true;
}

Mask mask_of(const ExtractOptions& o) {
  Mask m;
  if (o.strategies.empty()) return m.set();
  for (const auto& name : o.strategies) {
    auto it = std::find(kStrategies.begin(), kStrategies.end(), name);
    if (it == kStrategies.end()) {
      std::string known;
      for (auto k : kStrategies) known += (known.empty() ? "" : ", ") + std::string(k);
      throw InvalidArgument("ExtractOptions.strategies: unknown strategy '" + name + "', expected one of " + known);
    }
    m.set(static_cast<std::size_t>(it - kStrategies.begin()));
  }
  return m;
}


Extraction run(std::string_view output, Ctx& cx, const ExtractOptions& options, const Mask& allowed,
               const std::vector<std::string>* aliases = nullptr) {
  Extraction ex;
  auto fire = [&](Strategy s) {
    ex.strategy = std::string(kStrategies[s]);
    ex.found = true;
    return ex;
  };
  std::string_view s;
  if (!answer_region(output, options, s)) {
    ex.strategy = std::string(kStrategies[kUnclosed]);
    return ex;
  }
  cx.aliases = aliases;
  // The markers: the one that comes last wins (Note [which marker wins]).
  std::size_t best = npos;
  Strategy best_s = kNone;
  std::string cand;
  auto consider = [&](Strategy st, std::size_t (*fn)(std::string_view, const Ctx&, std::string&)) {
    if (!allowed[st]) return;
    std::string a;
    std::size_t p = fn(s, cx, a);
    if (p != npos && (best == npos || p > best)) {
      best = p;
      best_s = st;
      cand = std::move(a);
    }
  };
  consider(kBoxed, try_boxed);
  consider(kGsm8k, try_gsm8k);
  consider(kAnswerIs, try_answer_is);
  consider(kAnswerColon, try_answer_colon);
  if (best != npos) {
    ex.answer = std::move(cand);
    return fire(best_s);
  }
  if (s.size() > kMaxFallback) {
    std::size_t cut = s.size() - kMaxFallback;
    while (cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) ++cut;  // a whole code point
    s = s.substr(cut);
  }
  if (allowed[kEmphasis] && try_emphasis(s, cx, ex.answer)) return fire(kEmphasis);
  switch (cx.type) {
    case AnswerType::integer:
    case AnswerType::number:
      if (cx.none_ok && allowed[kLastLine] && ends_saying_no_error(s)) {
        ex.answer = kNoError;
        return fire(kLastLine);
      }
      if (allowed[kLastNumber] && try_last_number(s, ex.answer)) return fire(kLastNumber);
      break;
    case AnswerType::choice: {
      std::vector<OptionMatch> m = find_options(s, cx.options());
      const OptionMatch* last = nullptr;
      for (const auto& x : m)
        if (!last || x.end > last->end || (x.end == last->end && x.begin < last->begin)) last = &x;
      char letter = 0;
      std::size_t lp = allowed[kChoiceLetter] ? last_letter(s, letter_count(cx.choices), spans_of(m), letter) : npos;
      // Option text before any letter; a letter only when it comes after the text or names the same option.
      bool same = last && lp != npos && last->opt->option == letter - 'A';
      if (allowed[kChoiceText] && last && (lp == npos || (lp < last->begin && !same))) {
        ex.answer = option_answer(*last);
        return fire(kChoiceText);
      }
      if (lp != npos) {
        ex.answer.assign(1, letter);
        return fire(kChoiceLetter);
      }
      break;
    }
    case AnswerType::string:
    case AnswerType::list:
      if (allowed[kLastLine] && try_last_line(s, cx, ex.answer)) return fire(kLastLine);
      break;
  }
  ex.answer.clear();
  ex.strategy = "none";
  ex.found = false;
  return ex;
}

}  // namespace

Extraction extract(std::string_view output, AnswerType type, const std::vector<std::string>& choices,
                   const ExtractOptions& options) {
  Ctx cx(type, choices);
  return run(output, cx, options, mask_of(options));
}

Extraction extract(std::string_view output, AnswerType type, const std::vector<std::string>& choices) {
  Ctx cx(type, choices);
  static const Mask all = Mask().set();
  return run(output, cx, default_options(), all);
}

Extraction extract(const Item& item, std::string_view output, const ExtractOptions& options) {
  Ctx cx(item.answer_type, item.choices);
  cx.none_ok = item.skill == Skill::diagnostic;
  const Mask allowed = &options == &default_options() ? Mask().set() : mask_of(options);
  return run(output, cx, options, allowed, item.aliases.empty() ? nullptr : &item.aliases);
}

}  // namespace metaprobe::probes
