// Hand-written number scanner for answer checking (std::regex is far too slow for the scoring hot path).
#include <cmath>
#include <limits>

#include <algorithm>

#include "scoring_internal.hpp"

namespace metaprobe::probes::detail {
namespace {

constexpr u128 kMax = ~static_cast<u128>(0);

bool mul_ok(u128 a, u128 b, u128& r) {
  if (a != 0 && b > kMax / a) return false;
  r = a * b;
  return true;
}

u128 gcd(u128 a, u128 b) {
  while (b != 0) {
    u128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

void reduce(Number& n) {
  if (!n.exact) return;
  if (n.p == 0) {
    n.q = 1;
    n.neg = false;
    return;
  }
  u128 g = gcd(n.p, n.q);
  n.p /= g;
  n.q /= g;
}

bool starts_with(std::string_view s, std::size_t pos, std::string_view lit) {
  return s.size() >= pos + lit.size() && s.compare(pos, lit.size(), lit) == 0;
}

// U+2212 MINUS SIGN, which LaTeX renderers and some tokenizers produce.
constexpr std::string_view kMinus = "\xE2\x88\x92";

std::size_t skip_blanks(std::string_view s, std::size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return i;
}

// "\frac", "\dfrac", "\tfrac" at pos: the length of the command, else 0.
std::size_t frac_command(std::string_view s, std::size_t pos) {
  for (std::string_view c : {std::string_view("\\frac"), std::string_view("\\dfrac"), std::string_view("\\tfrac")}) {
    if (starts_with(s, pos, c) && (pos + c.size() >= s.size() || !is_alpha(s[pos + c.size()]))) return c.size();
  }
  return 0;
}

// A LaTeX argument at i: a balanced {group} or a single character. Sets [b, e) of its content.
bool latex_group(std::string_view s, std::size_t& i, std::size_t& b, std::size_t& e) {
  i = skip_blanks(s, i);
  if (i >= s.size()) return false;
  if (s[i] != '{') {
    if (!is_alnum(s[i])) return false;
    b = i;
    e = ++i;
    return true;
  }
  // LaTeX arguments of a number are short; the bound keeps "\\frac{{{{…" linear.
  const std::size_t j = closing_brace(s, i, 1024);
  if (j == std::string_view::npos) return false;
  b = i + 1;
  e = j;
  i = j + 1;
  return true;
}

// Number a divided by number b (both exact or approximated).
bool divide(const Number& a, const Number& b, Number& out) {
  if (b.approx == 0) return false;
  out.neg = a.neg != b.neg;
  out.approx = a.approx / b.approx;
  out.exact = a.exact && b.exact && mul_ok(a.p, b.q, out.p) && mul_ok(a.q, b.p, out.q);
  if (!out.exact) {
    out.p = 0;
    out.q = 1;
  }
  reduce(out);
  return true;
}

// A % sign, "\%" or the word "percent" after a number (blanks allowed before it).
std::size_t percent_suffix(std::string_view s, std::size_t i) {
  std::size_t j = skip_blanks(s, i);
  if (j < s.size() && s[j] == '%') return j + 1;
  if (starts_with(s, j, "\\%")) return j + 2;
  if (j > i && s.size() >= j + 7) {
    bool word = true;
    for (std::size_t k = 0; k < 7; ++k) word = word && to_lower(s[j + k]) == "percent"[k];
    if (word && (j + 7 == s.size() || !is_alpha(s[j + 7]))) return j + 7;
  }
  return i;
}

// ×10^k, \times 10^{k}, x10^k, *10^k, ·10^k, \cdot 10^{k} (also ** for ^). Returns the end, sets k.
std::size_t times_ten_power(std::string_view s, std::size_t i, int& k) {
  std::size_t j = skip_blanks(s, i);
  if (starts_with(s, j, "\xC3\x97")) j += 2;              // ×
  else if (starts_with(s, j, "\xC2\xB7")) j += 2;         // ·
  else if (starts_with(s, j, "\\times")) j += 6;
  else if (starts_with(s, j, "\\cdot")) j += 5;
  else if (j < s.size() && (s[j] == 'x' || s[j] == '*')) j += 1;
  else return i;
  j = skip_blanks(s, j);
  if (!starts_with(s, j, "10")) return i;
  j = skip_blanks(s, j + 2);
  if (starts_with(s, j, "^")) j += 1;
  else if (starts_with(s, j, "**")) j += 2;
  else return i;
  j = skip_blanks(s, j);
  bool brace = j < s.size() && s[j] == '{';
  if (brace) j = skip_blanks(s, j + 1);
  bool neg = false;
  if (j < s.size() && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
  else if (starts_with(s, j, kMinus)) neg = true, j += kMinus.size();
  if (j >= s.size() || !is_digit(s[j])) return i;
  long e = 0;
  while (j < s.size() && is_digit(s[j])) {
    if (e < 100000) e = e * 10 + (s[j] - '0');
    ++j;
  }
  if (brace) {
    j = skip_blanks(s, j);
    if (j >= s.size() || s[j] != '}') return i;
    ++j;
  }
  k = static_cast<int>(neg ? -e : e);
  return j;
}

// Scales n by 10^k.
void scale_pow10(Number& n, int k) {
  n.approx *= std::pow(10.0L, static_cast<long double>(k));
  if (!n.exact) return;
  int a = k < 0 ? -k : k;
  u128 f = 1;
  bool ok = a <= 38;
  for (int t = 0; ok && t < a; ++t) f *= 10;
  ok = ok && (k >= 0 ? mul_ok(n.p, f, n.p) : mul_ok(n.q, f, n.q));
  if (!ok) {
    n.exact = false;
    n.p = 0;
    n.q = 1;
  }
}

}  // namespace

bool parse_number_at(std::string_view s, std::size_t pos, Number& out) {
  Number n;
  n.begin = pos;
  std::size_t i = pos;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    n.neg = s[i] == '-';
    ++i;
  } else if (starts_with(s, i, kMinus)) {
    n.neg = true;
    i += kMinus.size();
  }
  if (i < s.size() && s[i] == '$') ++i;
  if (std::size_t fc = frac_command(s, i)) {
    std::size_t j = i + fc, b1, e1, b2, e2;
    if (!latex_group(s, j, b1, e1) || !latex_group(s, j, b2, e2)) return false;
    Number a, b;
    if (!parse_whole_number(s.substr(b1, e1 - b1), a) || !parse_whole_number(s.substr(b2, e2 - b2), b)) return false;
    if (a.percent || b.percent) return false;
    Number r;
    if (!divide(a, b, r)) return false;
    r.neg = r.neg != n.neg && r.approx != 0;
    std::size_t end = percent_suffix(s, j);
    r.percent = end > j;
    r.begin = pos;
    r.end = end;
    out = r;
    return true;
  }
  // Mantissa: digits, optional thousands groups, optional decimals.
  std::size_t int_begin = i;
  long double m = 0;
  while (i < s.size() && is_digit(s[i])) {
    int d = s[i] - '0';
    m = m * 10 + d;
    if (n.exact && !(mul_ok(n.p, 10, n.p) && n.p <= kMax - d)) n.exact = false;
    n.p += d;
    ++i;
  }
  std::size_t int_digits = i - int_begin;
  bool grouped = false;
  if (int_digits >= 1 && int_digits <= 3) {
    for (;;) {
      std::size_t sep = s.size() > i && s[i] == ',' ? 1 : (starts_with(s, i, "{,}") ? 3 : 0);
      std::size_t g = i + sep;
      if (sep == 0 || s.size() < g + 3 || !is_digit(s[g]) || !is_digit(s[g + 1]) || !is_digit(s[g + 2]) ||
          (s.size() > g + 3 && is_digit(s[g + 3])))
        break;
      for (std::size_t t = g; t < g + 3; ++t) {
        int d = s[t] - '0';
        m = m * 10 + d;
        if (n.exact && !(mul_ok(n.p, 10, n.p) && n.p <= kMax - d)) n.exact = false;
        n.p += d;
      }
      i = g + 3;
      grouped = true;
    }
  }
  int decimals = 0;
  if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) {
      int d = s[i] - '0';
      m = m * 10 + d;
      if (n.exact && !(mul_ok(n.p, 10, n.p) && n.p <= kMax - d && mul_ok(n.q, 10, n.q))) n.exact = false;
      n.p += d;
      ++decimals;
      ++i;
    }
  }
  if (int_digits == 0 && decimals == 0) return false;
  n.approx = m * std::pow(10.0L, static_cast<long double>(-decimals));
  if (!n.exact) {
    n.p = 0;
    n.q = 1;
  }
  // Exponent: e/E notation, or a written ×10^k.
  bool has_exp = false;
  if (i + 1 < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    std::size_t j = i + 1;
    bool neg = false;
    if (j < s.size() && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
    if (j < s.size() && is_digit(s[j])) {
      long e = 0;
      while (j < s.size() && is_digit(s[j])) {
        if (e < 100000) e = e * 10 + (s[j] - '0');
        ++j;
      }
      scale_pow10(n, static_cast<int>(neg ? -e : e));
      i = j;
      has_exp = true;
    }
  }
  if (!has_exp) {
    int k = 0;
    std::size_t j = times_ten_power(s, i, k);
    if (j > i) {
      scale_pow10(n, k);
      i = j;
      has_exp = true;
    }
  }
  // Integer fraction a/b (not a date a/b/c, not a/b.c).
  if (!has_exp && !grouped && decimals == 0 && i + 1 < s.size() && s[i] == '/' && is_digit(s[i + 1])) {
    std::size_t j = i + 1;
    Number den;
    long double dm = 0;
    while (j < s.size() && is_digit(s[j])) {
      int d = s[j] - '0';
      dm = dm * 10 + d;
      if (den.exact && !(mul_ok(den.p, 10, den.p) && den.p <= kMax - d)) den.exact = false;
      den.p += d;
      ++j;
    }
    den.approx = dm;
    bool date = j + 1 < s.size() && (s[j] == '/' || s[j] == '.') && is_digit(s[j + 1]);
    Number r;
    if (!date && divide(n, den, r)) {
      n = r;
      n.begin = pos;
      i = j;
    }
  }
  reduce(n);
  if (n.approx == 0) n.neg = false;
  std::size_t end = percent_suffix(s, i);
  n.percent = end > i;
  n.end = end;
  out = n;
  return true;
}

namespace {

// Whether a number may start at i: a digit, '.', sign, '$' or \frac that does not continue a word or
// another number ("x2", "H2O", "3-2" give no number at the 2).
bool may_start(std::string_view s, std::size_t i) {
  char c = s[i];
  char prev = i > 0 ? s[i - 1] : ' ';
  bool glued = is_alnum(prev) || prev == '_';  // ASCII only: "≈5" and "é5" still give 5
  // Not the denominator of a/b nor the rest of a date 12/25/2023.
  bool after_slash = prev == '/' && i >= 2 && is_digit(s[i - 2]);
  if (is_digit(c)) return !glued && prev != '.' && !after_slash;
  if (c == '.') return i + 1 < s.size() && is_digit(s[i + 1]) && !glued && prev != '.';
  if (c == '-' || c == '+' || c == '$' || starts_with(s, i, kMinus)) return !is_alnum(prev) && prev != '.';
  if (c == '\\') return frac_command(s, i) > 0;
  return false;
}

}  // namespace

bool find_first_number(std::string_view s, Number& out, std::size_t from) {
  for (std::size_t i = from; i < s.size(); ++i) {
    if (may_start(s, i) && parse_number_at(s, i, out)) return true;
    // Skip the rest of a word or digit run so that its inner digits never start a number.
    if (is_alnum(s[i]) || s[i] == '_')
      while (i + 1 < s.size() && (is_alnum(s[i + 1]) || s[i + 1] == '_')) ++i;
  }
  return false;
}

bool find_last_number(std::string_view s, Number& out) {
  bool found = false;
  Number n;
  std::size_t i = 0;
  while (find_first_number(s, n, i)) {
    out = n;
    found = true;
    i = n.end > n.begin ? n.end : n.begin + 1;
  }
  return found;
}

bool parse_whole_number(std::string_view s, Number& out) {
  s = trim(s);
  // One pair of math delimiters around the number: $…$ or \(…\).
  if (s.size() >= 2 && s.front() == '$' && s.back() == '$') s = trim(s.substr(1, s.size() - 2));
  if (s.size() >= 4 && starts_with(s, 0, "\\(") && s.substr(s.size() - 2) == "\\)") s = trim(s.substr(2, s.size() - 4));
  if (!s.empty() && s.back() == '.') s = trim(s.substr(0, s.size() - 1));
  if (s.empty() || !parse_number_at(s, 0, out)) return false;
  return trim(s.substr(out.end)).empty();
}

bool numbers_equal(const Number& a, const Number& b) {
  if (a.exact && b.exact) return a.neg == b.neg && a.p == b.p && a.q == b.q;
  return a.value() == b.value();
}

Number divide_by_100(const Number& n) {
  Number r = n;
  r.percent = false;
  r.approx = n.approx / 100;
  if (r.exact && !mul_ok(r.q, 100, r.q)) {
    r.exact = false;
    r.p = 0;
    r.q = 1;
  }
  reduce(r);
  return r;
}

std::string_view trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace metaprobe::probes::detail
