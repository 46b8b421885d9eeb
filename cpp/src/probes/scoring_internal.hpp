#pragma once
// Internal helpers of the scoring translation units (scoring_*.cpp): hand-written scanners for numbers and
// text normalisation. Not installed, not part of the public API.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace metaprobe::probes::detail {

using u128 = unsigned __int128;

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
inline bool is_alpha(char c) { return is_upper(c) || is_lower(c); }
inline bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
// A byte of a multi-byte UTF-8 sequence: treated as part of a word, so that "é" glues to its letters.
inline bool is_utf8_byte(char c) { return static_cast<unsigned char>(c) >= 0x80; }
inline bool is_word(char c) { return is_alnum(c) || c == '_' || is_utf8_byte(c); }

/// A number read from text, as an exact reduced rational (neg, p/q) when it fits 128 bits, else only as
/// `approx`. `begin`/`end` delimit its bytes in the scanned text.
struct Number {
  bool neg = false;
  u128 p = 0, q = 1;
  bool exact = true;
  long double approx = 0;  // |value|
  bool percent = false;
  std::size_t begin = 0, end = 0;
  long double value() const { return neg ? -approx : approx; }
};

/// Parses a number that starts exactly at `pos` (sign, $, digits with thousands separators, decimals,
/// exponent or ×10^k, integer fraction a/b, \frac{a}{b}, trailing % / \% / "percent").
bool parse_number_at(std::string_view s, std::size_t pos, Number& out);
/// The first number that starts at or after `from` at a token boundary.
bool find_first_number(std::string_view s, Number& out, std::size_t from = 0);
/// The last number of the text.
bool find_last_number(std::string_view s, Number& out);
/// Parses text that is one number and nothing else (surrounding spaces, $ … $ and a final period allowed).
bool parse_whole_number(std::string_view s, Number& out);
/// Exact equality of two numbers (rational when both are exact, else of their long double values).
bool numbers_equal(const Number& a, const Number& b);
/// The number divided by 100, for percentages.
Number divide_by_100(const Number& n);

/// Case, whitespace, LaTeX wrappers ($, \(, \text{}, \frac → a/b …), quotes, markdown emphasis and a
/// trailing period removed, so that texts compare equal when they say the same thing.
std::string normalize_text(std::string_view s);

/// LaTeX wrappers ($, braces, \text{}, \mathrm{} …) removed, case kept: "\text{B}" → "B".
std::string strip_wrappers(std::string_view s);

/// The position of the '}' that closes the '{' at s[open] (escaped braces do not count), reading at most
/// `limit` bytes; npos when it does not close within them.
std::size_t closing_brace(std::string_view s, std::size_t open, std::size_t limit);

/// Whether an answer span says there is no error ("none", "No error.", "All steps are correct"; not when it
/// goes on with "but" / "except"): the kNoError answer of a diagnostic item (Note [no-error answers]).
bool says_no_error(std::string_view span);

/// `s` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s);

/// The elements of a list answer: outer brackets dropped, split at ',', ';' and the word "and".
std::vector<std::string> split_list(std::string_view normalized);

}  // namespace metaprobe::probes::detail
