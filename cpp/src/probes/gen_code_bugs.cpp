// Diagnostic coding families built on small function templates, each with planted bugs whose behaviour
// is computed here by direct simulation of the buggy code.
#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {

using json = nlohmann::json;
using std::to_string;

struct Input {
  int kind = 0;  // 0 one int, 1 two ints, 2 list of ints, 3 string
  std::vector<int64_t> v;
  std::string s;
};

using Fn = std::string (*)(const Input&);

struct Bug {
  size_t line;       // 0-based line of the template that the bug replaces
  const char* text;  // the buggy line
  Fn fn;             // what the buggy function returns (Python repr)
};

struct Template {
  const char* name;
  std::vector<const char*> lines;
  size_t loop_line;  // the loop header; bookkeeping lines go right after it
  Fn correct;
  std::vector<Bug> bugs;
  Input (*gen)(SplitMix64&);
  int tier;
};

std::string b2s(bool b) { return b ? "True" : "False"; }
int64_t pymod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

std::string call_text(const Template& t, const Input& in) {
  std::string args;
  if (in.kind == 0) args = to_string(in.v[0]);
  if (in.kind == 1) args = to_string(in.v[0]) + ", " + to_string(in.v[1]);
  if (in.kind == 2) args = "[" + join_ints(in.v) + "]";
  if (in.kind == 3) args = "\"" + in.s + "\"";
  return std::string(t.name) + "(" + args + ")";
}

Input one_int(int64_t v) { return {0, {v}, {}}; }

std::string fib_like(int64_t a, int64_t b, int64_t n, bool return_b) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = a + b;
    a = b;
    b = t;
  }
  return to_string(return_b ? b : a);
}

std::string count_vowels_impl(const std::string& s, bool lower, const std::string& vowels) {
  int64_t c = 0;
  for (char ch : s) {
    if (lower && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (vowels.find(ch) != std::string::npos) ++c;
  }
  return to_string(c);
}

std::string palindrome_impl(const std::string& s, int64_t j_offset, int64_t stop_offset, bool mismatch_value) {
  int64_t i = 0, j = static_cast<int64_t>(s.size()) - j_offset;
  while (i < j - stop_offset) {
    if (s[static_cast<size_t>(i)] != s[static_cast<size_t>(j)]) return b2s(mismatch_value);
    ++i;
    --j;
  }
  return b2s(true);
}

const std::vector<Template>& templates() {
  static const std::vector<Template> all = {
      {"sum_to",
       {"def sum_to(n):", "    total = 0", "    for i in range(1, n + 1):", "        total += i", "    return total"},
       2,
       [](const Input& in) { int64_t t = 0; for (int64_t i = 1; i <= in.v[0]; ++i) t += i; return to_string(t); },
       {{2, "    for i in range(1, n):", [](const Input& in) { int64_t t = 0; for (int64_t i = 1; i < in.v[0]; ++i) t += i; return to_string(t); }},
        {3, "        total += n", [](const Input& in) { int64_t t = 0; for (int64_t i = 1; i <= in.v[0]; ++i) t += in.v[0]; return to_string(t); }},
        {1, "    total = 1", [](const Input& in) { int64_t t = 1; for (int64_t i = 1; i <= in.v[0]; ++i) t += i; return to_string(t); }}},
       [](SplitMix64& r) { return one_int(r.uniform(0, 12)); },
       1},
      {"factorial",
       {"def factorial(n):", "    result = 1", "    for i in range(2, n + 1):", "        result *= i", "    return result"},
       2,
       [](const Input& in) { int64_t t = 1; for (int64_t i = 2; i <= in.v[0]; ++i) t *= i; return to_string(t); },
       {{2, "    for i in range(2, n):", [](const Input& in) { int64_t t = 1; for (int64_t i = 2; i < in.v[0]; ++i) t *= i; return to_string(t); }},
        {3, "        result += i", [](const Input& in) { int64_t t = 1; for (int64_t i = 2; i <= in.v[0]; ++i) t += i; return to_string(t); }}},
       [](SplitMix64& r) { return one_int(r.uniform(0, 10)); },
       1},
      {"power",
       {"def power(b, e):", "    result = 1", "    for _ in range(e):", "        result *= b", "    return result"},
       2,
       [](const Input& in) { int64_t t = 1; for (int64_t i = 0; i < in.v[1]; ++i) t *= in.v[0]; return to_string(t); },
       {{2, "    for _ in range(e - 1):", [](const Input& in) { int64_t t = 1; for (int64_t i = 0; i < in.v[1] - 1; ++i) t *= in.v[0]; return to_string(t); }},
        {3, "        result *= e", [](const Input& in) { int64_t t = 1; for (int64_t i = 0; i < in.v[1]; ++i) t *= in.v[1]; return to_string(t); }},
        {1, "    result = b", [](const Input& in) { int64_t t = in.v[0]; for (int64_t i = 0; i < in.v[1]; ++i) t *= in.v[0]; return to_string(t); }}},
       [](SplitMix64& r) { return Input{1, {r.uniform(-3, 5), r.uniform(0, 5)}, {}}; },
       1},
      {"fib",
       {"def fib(n):", "    a, b = 0, 1", "    for _ in range(n):", "        a, b = b, a + b", "    return a"},
       2,
       [](const Input& in) { return fib_like(0, 1, in.v[0], false); },
       {{1, "    a, b = 1, 1", [](const Input& in) { return fib_like(1, 1, in.v[0], false); }},
        {2, "    for _ in range(n - 1):", [](const Input& in) { return fib_like(0, 1, in.v[0] - 1, false); }},
        {4, "    return b", [](const Input& in) { return fib_like(0, 1, in.v[0], true); }}},
       [](SplitMix64& r) { return one_int(r.uniform(0, 15)); },
       1},
      {"count_even",
       {"def count_even(xs):", "    count = 0", "    for x in xs:", "        if x % 2 == 0:", "            count += 1",
        "    return count"},
       2,
       [](const Input& in) { int64_t c = 0; for (int64_t x : in.v) c += pymod(x, 2) == 0; return to_string(c); },
       {{3, "        if x % 2 == 1:", [](const Input& in) { int64_t c = 0; for (int64_t x : in.v) c += pymod(x, 2) == 1; return to_string(c); }},
        {4, "            count += x", [](const Input& in) { int64_t c = 0; for (int64_t x : in.v) c += pymod(x, 2) == 0 ? x : 0; return to_string(c); }},
        {1, "    count = 1", [](const Input& in) { int64_t c = 1; for (int64_t x : in.v) c += pymod(x, 2) == 0; return to_string(c); }}},
       [](SplitMix64& r) {
         Input in{2, {}, {}};
         const int64_t n = r.uniform(0, 6);
         for (int64_t i = 0; i < n; ++i) in.v.push_back(r.uniform(-9, 20));
         return in;
       },
       2},
      {"max_of",
       {"def max_of(xs):", "    best = xs[0]", "    for x in xs:", "        if x > best:", "            best = x",
        "    return best"},
       2,
       [](const Input& in) { return to_string(*std::max_element(in.v.begin(), in.v.end())); },
       {{1, "    best = 0", [](const Input& in) { int64_t b = 0; for (int64_t x : in.v) b = std::max(b, x); return to_string(b); }},
        {3, "        if x < best:", [](const Input& in) { return to_string(*std::min_element(in.v.begin(), in.v.end())); }}},
       [](SplitMix64& r) {
         Input in{2, {}, {}};
         const int64_t n = r.uniform(1, 6);
         const bool negative = r.chance(1, 3);
         for (int64_t i = 0; i < n; ++i) in.v.push_back(negative ? r.uniform(-20, -1) : r.uniform(-20, 20));
         return in;
       },
       2},
      {"digit_sum",
       {"def digit_sum(n):", "    total = 0", "    while n > 0:", "        total += n % 10", "        n //= 10",
        "    return total"},
       2,
       [](const Input& in) { int64_t t = 0; for (int64_t n = in.v[0]; n > 0; n /= 10) t += n % 10; return to_string(t); },
       {{2, "    while n > 9:", [](const Input& in) { int64_t t = 0; for (int64_t n = in.v[0]; n > 9; n /= 10) t += n % 10; return to_string(t); }},
        {4, "        n //= 100", [](const Input& in) { int64_t t = 0; for (int64_t n = in.v[0]; n > 0; n /= 100) t += n % 10; return to_string(t); }}},
       [](SplitMix64& r) {
         const int64_t digits = r.uniform(1, 5);
         int64_t hi = 1;
         for (int64_t i = 0; i < digits; ++i) hi *= 10;
         return one_int(r.uniform(hi / 10 == 1 ? 0 : hi / 10, hi - 1));
       },
       2},
      {"count_vowels",
       {"def count_vowels(s):", "    count = 0", "    for ch in s.lower():", "        if ch in \"aeiou\":",
        "            count += 1", "    return count"},
       2,
       [](const Input& in) { return count_vowels_impl(in.s, true, "aeiou"); },
       {{2, "    for ch in s:", [](const Input& in) { return count_vowels_impl(in.s, false, "aeiou"); }},
        {3, "        if ch in \"aeio\":", [](const Input& in) { return count_vowels_impl(in.s, true, "aeio"); }}},
       [](SplitMix64& r) {
         static const std::string letters = "aeiouAEIOUbcdgklmnrstBDKT";
         Input in{3, {}, {}};
         const int64_t n = r.uniform(2, 8);
         for (int64_t i = 0; i < n; ++i) in.s += letters[static_cast<size_t>(r.below(letters.size()))];
         return in;
       },
       2},
      {"is_palindrome",
       {"def is_palindrome(s):", "    i = 0", "    j = len(s) - 1", "    while i < j:", "        if s[i] != s[j]:",
        "            return False", "        i += 1", "        j -= 1", "    return True"},
       3,
       [](const Input& in) { return palindrome_impl(in.s, 1, 0, false); },
       {{3, "    while i < j - 1:", [](const Input& in) { return palindrome_impl(in.s, 1, 1, false); }},
        {5, "            return True", [](const Input& in) { return palindrome_impl(in.s, 1, 0, true); }},
        {2, "    j = len(s) - 2", [](const Input& in) { return palindrome_impl(in.s, 2, 0, false); }}},
       [](SplitMix64& r) {
         Input in{3, {}, {}};
         const int64_t n = r.uniform(0, 6);
         for (int64_t i = 0; i < n; ++i) in.s += static_cast<char>('a' + r.below(3));
         if (r.chance(1, 2)) {
           for (size_t i = 0; i < in.s.size() / 2; ++i) in.s[in.s.size() - 1 - i] = in.s[i];
         }
         return in;
       },
       3},
  };
  return all;
}

// Note [unique buggy line]: in a small template a second single-line edit from the template's own mutation
// set can also make the shown test pass (power with `result *= e` fails power(0, 2) == 0, and so does the
// edit `result = b` on another line: 0 · 2² = 0). Such an item has two right answers. `combined` runs a
// template with any set of its mutations applied at once (bit k: bugs[k]), so the generator can check that
// no other mutation repairs the shown test; tests/python/test_probes_gen_solvers.py checks the same by
// executing the Python code.
std::string combined(const Template& t, const Input& in, unsigned m) {
  const std::string_view name = t.name;
  auto on = [m](unsigned k) { return (m >> k & 1u) != 0; };
  if (name == "sum_to") {
    int64_t n = in.v[0], tot = on(2) ? 1 : 0;
    for (int64_t i = 1; i <= (on(0) ? n - 1 : n); ++i) tot += on(1) ? n : i;
    return to_string(tot);
  }
  if (name == "factorial") {
    int64_t n = in.v[0], r = 1;
    for (int64_t i = 2; i <= (on(0) ? n - 1 : n); ++i) r = on(1) ? r + i : r * i;
    return to_string(r);
  }
  if (name == "power") {
    int64_t b = in.v[0], e = in.v[1], r = on(2) ? b : 1;
    for (int64_t i = 0; i < (on(0) ? e - 1 : e); ++i) r *= on(1) ? e : b;
    return to_string(r);
  }
  if (name == "fib") {
    int64_t a = on(0) ? 1 : 0, b = 1;
    for (int64_t i = 0; i < (on(1) ? in.v[0] - 1 : in.v[0]); ++i) {
      const int64_t c = a + b;
      a = b;
      b = c;
    }
    return to_string(on(2) ? b : a);
  }
  if (name == "count_even") {
    int64_t c = on(2) ? 1 : 0;
    for (int64_t x : in.v)
      if (on(0) ? pymod(x, 2) == 1 : pymod(x, 2) == 0) c += on(1) ? x : 1;
    return to_string(c);
  }
  if (name == "max_of") {
    int64_t best = on(0) ? 0 : in.v[0];
    for (int64_t x : in.v)
      if (on(1) ? x < best : x > best) best = x;
    return to_string(best);
  }
  if (name == "digit_sum") {
    int64_t tot = 0;
    for (int64_t n = in.v[0]; on(0) ? n > 9 : n > 0; n /= on(1) ? 100 : 10) tot += n % 10;
    return to_string(tot);
  }
  if (name == "count_vowels") return count_vowels_impl(in.s, !on(0), on(1) ? "aeio" : "aeiou");
  if (name == "is_palindrome") return palindrome_impl(in.s, on(2) ? 2 : 1, on(0) ? 1 : 0, on(1));
  throw InvalidArgument("buggy_line: template '" + std::string(name) + "' has no combined semantics");
}

// Whether some other single mutation of the template, applied on top of bug `k`, makes `in` return `want`.
bool second_repair(const Template& t, size_t k, const Input& in, const std::string& want) {
  for (size_t o = 0; o < t.bugs.size(); ++o)
    if (o != k && combined(t, in, (1u << k) | (1u << o)) == want) return true;
  return false;
}

const Template& pick_template(SplitMix64& rng, int d) {
  std::vector<size_t> ok;
  for (size_t i = 0; i < templates().size(); ++i) {
    const int tier = templates()[i].tier;
    const bool allowed = d <= 2 ? tier == 1 : d == 3 ? tier <= 2 : d == 4 ? tier == 2 : tier >= 2;
    if (allowed) ok.push_back(i);
  }
  return templates()[rng.pick(ok)];
}

struct Code {
  std::vector<std::string> lines;
  std::vector<int> origin;  // template line index, -1 for inserted bookkeeping
  std::string text() const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }
  size_t line_of(size_t template_line) const {
    for (size_t i = 0; i < origin.size(); ++i) {
      if (origin[i] == static_cast<int>(template_line)) return i + 1;
    }
    return 0;
  }
};

// The template with one line replaced and d-dependent harmless bookkeeping lines inserted.
Code build_code(const Template& t, const Bug* bug, int d) {
  Code c;
  const int pairs = d <= 1 ? 0 : d <= 3 ? 1 : 2;
  static const std::array<const char*, 2> counters = {"steps", "checked"};
  const std::string& header = t.lines[t.loop_line];
  const size_t indent = header.find_first_not_of(' ') + 4;
  for (size_t i = 0; i < t.lines.size(); ++i) {
    c.lines.push_back(bug && bug->line == i ? bug->text : t.lines[i]);
    c.origin.push_back(static_cast<int>(i));
    if (i == 0) {
      for (int p = 0; p < pairs; ++p) {
        c.lines.push_back(std::string("    ") + counters[static_cast<size_t>(p)] + " = 0");
        c.origin.push_back(-1);
      }
    }
    if (i == t.loop_line) {
      for (int p = 0; p < pairs; ++p) {
        c.lines.push_back(std::string(indent, ' ') + counters[static_cast<size_t>(p)] + " += 1");
        c.origin.push_back(-1);
      }
    }
  }
  return c;
}

}  // namespace

void gen_buggy_line(SplitMix64& rng, int d, Item& item) {
  // A failing test that no other mutation of the template repairs (Note [unique buggy line]); a bug for
  // which 64 inputs give none is drawn again.
  const bool clean = draw_no_error(rng);
  if (clean) {
    // No bug: the template's correct function and a test it passes.
    const Template& t = pick_template(rng, d);
    const Input in = t.gen(rng);
    const std::string call = call_text(t, in), want = t.correct(in);
    const Code code = build_code(t, nullptr, d);
    item.prompt = "Here is a Python function and a test. If a line of the function is buggy (the test `assert " + call +
                  " == " + want + "` fails because of it), give that line's number (the def line is line 1); if the "
                  "test passes, answer none.\n```\n" + code.text() + "```";
    item.answer = std::string(kNoError);
    item.answer_type = AnswerType::integer;
    item.reference_solution = call + " returns " + want + ", so the test passes.\n" + kNoErrorAnswerLine;
    json mutations = json::array();
    for (const auto& b : t.bugs) mutations.push_back({{"line", code.line_of(b.line)}, {"text", b.text}});
    item.meta = {{"template", t.name}, {"code", code.text()}, {"fix", ""}, {"test", "assert " + call + " == " + want},
                 {"mutations", mutations}, {"error", false}};
    return;
  }
  const Template* tp = nullptr;
  size_t bug_index = 0;
  Input failing;
  std::string got, want;
  for (bool found = false; !found;) {
    tp = &pick_template(rng, d);
    bug_index = static_cast<size_t>(rng.below(tp->bugs.size()));
    for (int tries = 0; tries < 64 && !found; ++tries) {
      failing = tp->gen(rng);
      got = tp->bugs[bug_index].fn(failing), want = tp->correct(failing);
      found = got != want && !second_repair(*tp, bug_index, failing, want);
    }
  }
  const Template& t = *tp;
  const Bug& bug = t.bugs[bug_index];
  const Code code = build_code(t, &bug, d);
  const size_t line = code.line_of(bug.line);
  const std::string call = call_text(t, failing);
  const std::string fix = t.lines[bug.line];
  item.prompt = "Here is a Python function and a test. If a line of the function is buggy (the test `assert " + call +
                " == " + want + "` fails because of it), give that line's number (the def line is line 1); if the "
                "test passes, answer none.\n```\n" + code.text() + "```";
  item.answer = to_string(line);
  item.answer_type = AnswerType::integer;
  item.reference_solution = call + " returns " + got + ", expected " + want + ". Line " + item.answer +
                            " is wrong: it should be `" + fix.substr(fix.find_first_not_of(' ')) + "`.\nAnswer: " +
                            item.answer;
  json mutations = json::array();  // the template's other mutations, by displayed line
  for (size_t o = 0; o < t.bugs.size(); ++o)
    if (o != bug_index) mutations.push_back({{"line", code.line_of(t.bugs[o].line)}, {"text", t.bugs[o].text}});
  item.meta = {{"template", t.name}, {"code", code.text()}, {"fix", fix}, {"test", "assert " + call + " == " + want},
               {"mutations", mutations}, {"error", true}};
}

void gen_failing_assert(SplitMix64& rng, int d, Item& item) {
  const size_t n = static_cast<size_t>(2 + d);
  const bool clean = draw_no_error(rng);
  for (;;) {
    const Template& t = pick_template(rng, d);
    const Bug& bug = t.bugs[static_cast<size_t>(rng.below(t.bugs.size()))];
    std::vector<Input> pass, fail;
    std::vector<std::string> seen;
    const size_t need_pass = clean ? n : n - 1;
    for (int tries = 0; tries < 300 && (pass.size() < need_pass || fail.empty()); ++tries) {
      if (tries >= 40 && pass.empty()) break;  // this bug shows on (almost) every input
      Input in = t.gen(rng);
      const std::string call = call_text(t, in);
      if (std::find(seen.begin(), seen.end(), call) != seen.end()) continue;
      seen.push_back(call);
      if (bug.fn(in) == t.correct(in)) {
        if (pass.size() < need_pass) pass.push_back(in);
      } else if (fail.empty()) {
        fail.push_back(in);
      }
    }
    // a bug that shows on (almost) every input (or never): pick another; a clean item's asserts all pass
    if (pass.size() < need_pass || fail.empty()) continue;
    const size_t bad = clean ? n : static_cast<size_t>(rng.below(n));
    std::vector<Input> order = pass;
    if (!clean) order.insert(order.begin() + static_cast<long>(bad), fail[0]);
    const Code code = build_code(t, &bug, d);
    std::string asserts, sol;
    json aj = json::array();
    for (size_t i = 0; i < n; ++i) {
      const std::string call = call_text(t, order[i]);
      const std::string want = t.correct(order[i]), got = bug.fn(order[i]);
      asserts += "\n(" + to_string(i + 1) + ") assert " + call + " == " + want;
      aj.push_back("assert " + call + " == " + want);
      sol += "(" + to_string(i + 1) + ") " + call + " returns " + got + (got == want ? ": passes" : ", expected " + want + ": fails") + ".\n";
    }
    item.prompt = "Here is a Python function and a list of tests. At most one assert fails. Which one? Give its "
                  "number, or none if they all pass.\n```\n" + code.text() + "```" + asserts;
    item.answer = clean ? std::string(kNoError) : to_string(bad + 1);
    item.answer_type = AnswerType::integer;
    item.reference_solution = sol + "Answer: " + item.answer;
    item.meta = {{"template", t.name}, {"code", code.text()}, {"asserts", aj}, {"error", !clean}};
    return;
  }
}

}  // namespace metaprobe::probes::detail
