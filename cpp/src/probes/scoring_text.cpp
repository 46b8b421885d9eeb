// Text normalisation for answer comparison: one pass over the bytes, no std::regex.
#include <algorithm>

#include "scoring_internal.hpp"

namespace metaprobe::probes::detail {
namespace {

bool starts_with(std::string_view s, std::size_t pos, std::string_view lit) {
  return s.size() >= pos + lit.size() && s.compare(pos, lit.size(), lit) == 0;
}

// LaTeX commands whose argument is kept and whose name and braces go (\text{cm} → cm).
bool is_wrapper(std::string_view name) {
  for (std::string_view w : {"text", "textbf", "textit", "textrm", "texttt", "mathrm", "mathbf", "mathit",
                             "mathsf", "mathtt", "mbox", "operatorname", "boxed", "fbox", "emph", "bf", "it",
                             "rm", "displaystyle", "textstyle", "left", "right", "bigl", "bigr", "Bigl", "Bigr"})
    if (name == w) return true;
  return false;
}

bool is_spacing(std::string_view name) { return name == "quad" || name == "qquad"; }

// The content of a LaTeX argument at i ({group} or one character); advances i past it.
bool group_at(std::string_view s, std::size_t& i, std::string_view& content) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  if (i >= s.size()) return false;
  if (s[i] != '{') {
    if (!is_alnum(s[i])) return false;
    content = s.substr(i++, 1);
    return true;
  }
  // LaTeX arguments of a number are short; the bound keeps "\\frac{{{{…" linear.
  const std::size_t j = closing_brace(s, i, 1024);
  if (j == std::string_view::npos) return false;
  content = s.substr(i + 1, j - i - 1);
  i = j + 1;
  return true;
}

bool is_simple(std::string_view t) {
  for (char c : t)
    if (!is_alnum(c) && c != '.') return false;
  return !t.empty();
}

// Whitespace that is not ASCII: NBSP, thin space, narrow NBSP. Returns its byte length, else 0.
std::size_t unicode_space(std::string_view s, std::size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c != 0xC2 && c != 0xE2) return 0;
  if (starts_with(s, i, "\xC2\xA0")) return 2;
  if (starts_with(s, i, "\xE2\x80\x89") || starts_with(s, i, "\xE2\x80\xAF") || starts_with(s, i, "\xE2\x80\x8A"))
    return 3;
  return 0;
}

void strip_latex(std::string_view s, std::string& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      char e = s[i + 1];
      if (!is_alpha(e)) {
        if (e == '%' || e == '$' || e == '&' || e == '#' || e == '_') out.push_back(e);
        else if (e == ',' || e == ';' || e == ':' || e == '!' || e == ' ') out.push_back(' ');
        else if (e == '{' || e == '}' || e == '(' || e == ')' || e == '[' || e == ']') {
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
        i += 2;
        continue;
      }
      std::size_t k = i + 1;
      while (k < s.size() && is_alpha(s[k])) ++k;
      std::string_view name = s.substr(i + 1, k - i - 1);
      if (is_wrapper(name)) {
        i = k;
        continue;
      }
      if (is_spacing(name)) {
        out.push_back(' ');
        i = k;
        continue;
      }
      if (name == "frac" || name == "dfrac" || name == "tfrac") {
        std::size_t j = k;
        std::string_view num, den;
        if (group_at(s, j, num) && group_at(s, j, den)) {
          std::string a, b;
          strip_latex(num, a);
          strip_latex(den, b);
          out += is_simple(a) ? a : "(" + a + ")";
          out.push_back('/');
          out += is_simple(b) ? b : "(" + b + ")";
          i = j;
          continue;
        }
      }
      out.append(s.substr(i, k - i));  // \pi, \sqrt, \times … stay as written
      i = k;
      continue;
    }
    if (c == '$' || c == '{' || c == '}') {
      ++i;
      continue;
    }
    out.push_back(c);
    ++i;
  }
}

bool strip_pair(std::string_view& t, std::string_view open, std::string_view close) {
  if (t.size() >= open.size() + close.size() && t.substr(0, open.size()) == open &&
      t.substr(t.size() - close.size()) == close) {
    t = trim(t.substr(open.size(), t.size() - open.size() - close.size()));
    return true;
  }
  return false;
}

}  // namespace

std::size_t closing_brace(std::string_view s, std::size_t open, std::size_t limit) {
  int depth = 0;
  for (std::size_t j = open, stop = std::min(s.size(), open + limit); j < stop; ++j) {
    if (s[j] == '\\' && j + 1 < s.size()) {
      ++j;
      continue;
    }
    if (s[j] == '{') ++depth;
    if (s[j] == '}' && --depth == 0) return j;
  }
  return std::string_view::npos;
}

std::string strip_wrappers(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  strip_latex(s, out);
  return out;
}

std::string normalize_text(std::string_view s) {
  std::string raw;
  raw.reserve(s.size());
  strip_latex(s, raw);
  // Lowercase ASCII, whitespace runs (ASCII, NBSP, thin spaces, ~) to one space.
  std::string out;
  out.reserve(raw.size());
  bool pending_space = false;
  for (std::size_t i = 0; i < raw.size();) {
    std::size_t u = unicode_space(raw, i);
    if (u > 0 || is_space(raw[i]) || raw[i] == '~') {
      pending_space = true;
      i += u > 0 ? u : 1;
      continue;
    }
    if (pending_space && !out.empty()) out.push_back(' ');
    pending_space = false;
    // Latin-1 capitals À–Þ (U+00C0–U+00DE, not ×) fold too: "ZÜRICH" = "zürich".
    unsigned char next = i + 1 < raw.size() ? static_cast<unsigned char>(raw[i + 1]) : 0;
    if (static_cast<unsigned char>(raw[i]) == 0xC3 && next >= 0x80 && next <= 0x9E && next != 0x97) {
      out.push_back(raw[i]);
      out.push_back(static_cast<char>(next + 0x20));
      i += 2;
      continue;
    }
    out.push_back(to_lower(raw[i]));
    ++i;
  }
  // Wrappers that say nothing about the answer: quotes, markdown emphasis and code, a final period.
  std::string_view t = out;
  for (bool changed = true; changed && !t.empty();) {
    changed = false;
    if (t.back() == '.' || t.back() == ',' || t.back() == ';' || t.back() == '*') {
      t = trim(t.substr(0, t.size() - 1));
      changed = true;
      continue;
    }
    if (t.front() == '*') {
      t = trim(t.substr(1));
      changed = true;
      continue;
    }
    for (auto [o, c] : {std::pair<std::string_view, std::string_view>{"`", "`"},
                        {"\"", "\""}, {"'", "'"}, {"\xE2\x80\x9C", "\xE2\x80\x9D"}, {"\xE2\x80\x98", "\xE2\x80\x99"}})
      if (strip_pair(t, o, c)) {
        changed = true;
        break;
      }
  }
  return std::string(t);
}

std::vector<std::string> split_list(std::string_view normalized) {
  std::string_view t = trim(normalized);
  for (bool changed = true; changed;) {
    changed = strip_pair(t, "[", "]") || strip_pair(t, "(", ")") || strip_pair(t, "{", "}");
  }
  std::vector<std::string> items;
  auto push = [&](std::string_view piece) {
    piece = trim(piece);
    if (piece.size() >= 4 && piece.substr(0, 4) == "and ") piece = trim(piece.substr(4));
    if (piece == "and") piece = {};
    if (!piece.empty()) items.push_back(normalize_text(piece));
  };
  std::size_t start = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == ',' || t[i] == ';') {
      push(t.substr(start, i - start));
      start = i + 1;
    } else if (t[i] == ' ' && t.compare(i, 5, " and ") == 0) {
      push(t.substr(start, i - start));
      start = i + 5;
      i += 4;
    }
  }
  push(t.substr(start));
  return items;
}

}  // namespace metaprobe::probes::detail
