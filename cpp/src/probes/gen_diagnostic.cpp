// Diagnostic families: locate an error or inconsistency (a wrong step, unit, line or sentence), or say there
// is none.
//
// Note [no-error items]: a prompt that promises exactly one error lets a model score by elimination, and a
// model that flags an error everywhere looks as good as one that checks. So 2/5 of the items (drawn first,
// draw_no_error) have no error; the gold answer is then "none" (kNoError), and the prompt says "at most one"
// and asks for "none" when everything is right. The diagnostic cells report precision / recall / F1 of
// flagging beside accuracy (probes::Detection).
#include <algorithm>
#include <array>
#include <functional>

#include <nlohmann/json.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {
using json = nlohmann::json;
using std::to_string;
}  // namespace

void gen_arithmetic_wrong_step(SplitMix64& rng, int d, Item& item) {
  const bool clean = draw_no_error(rng);
  const int n = 2 + d;
  const int64_t scale = d >= 3 ? 10 : 1;
  int64_t v = d >= 3 ? rng.uniform(100, 999) : rng.uniform(10, 99);
  const int bad = clean ? 0 : static_cast<int>(rng.uniform(1, n));
  std::string lines = "Start: " + to_string(v), sol;
  for (int k = 1; k <= n; ++k) {
    const int op = static_cast<int>(rng.below(v > -10000 && v < 10000 ? 3 : 2));
    int64_t b = op == 2 ? rng.uniform(2, 9) : rng.uniform(2, 99 * scale);
    const int64_t right = op == 0 ? v + b : op == 1 ? v - b : v * b;
    int64_t shown = right;
    if (k == bad) {
      static const std::array<int64_t, 6> mag = {0, 50, 10, 9, 2, 1};
      int64_t delta = d == 1 ? 10 * rng.uniform(1, 5) : d == 3 ? rng.uniform(1, 9) : rng.uniform(1, mag[static_cast<size_t>(d)]);
      shown = right + (rng.chance(1, 2) ? delta : -delta);
    }
    const std::string step = to_string(v) + " " + (op == 0 ? "+" : op == 1 ? "-" : "*") + " " + to_string(b) + " = ";
    lines += "\nStep " + to_string(k) + ": " + step + to_string(shown);
    if (k < bad || clean) sol += "Step " + to_string(k) + ": " + step + to_string(right) + ", correct.\n";
    if (k == bad) sol += "Step " + to_string(k) + ": " + step + to_string(right) + ", not " + to_string(shown) + ".\n";
    v = shown;
  }
  item.prompt = "In the worked calculation below, at most one step contains an arithmetic error; every later step "
                "continues from the number written before it. Which step is wrong? Give the step number, or none "
                "if every step is correct.\n" + lines;
  item.answer = clean ? std::string(kNoError) : to_string(bad);
  item.answer_type = AnswerType::integer;
  item.reference_solution = sol + "Answer: " + item.answer;
  item.meta = {{"steps", n}, {"error", !clean}};
}

namespace {

// A side of a linear equation: pieces in display order.
struct Piece {
  int kind = 0;  // 0 x-term coef*x, 1 constant, 2 group coef*(x + p)
  int64_t coef = 0, p = 0;
};
using Side = std::vector<Piece>;
struct Equation {
  Side lhs, rhs;
  bool solved = false;  // "x = num/den"
  int64_t num = 0, den = 1;
};

std::string side_text(const Side& s) {
  std::string out;
  for (const auto& pc : s) {
    const int64_t c = pc.coef;
    if (c == 0 && pc.kind != 1) continue;
    if (pc.kind == 1 && c == 0) continue;
    const bool neg = c < 0;
    const int64_t mag = neg ? -c : c;
    std::string body;
    if (pc.kind == 0) body = (mag == 1 ? "" : to_string(mag)) + "x";
    if (pc.kind == 1) body = to_string(mag);
    if (pc.kind == 2) body = to_string(mag) + "(x " + (pc.p < 0 ? "- " : "+ ") + to_string(pc.p < 0 ? -pc.p : pc.p) + ")";
    if (out.empty()) {
      out = (neg ? "-" : "") + body;
    } else {
      out += (neg ? " - " : " + ") + body;
    }
  }
  return out.empty() ? "0" : out;
}

std::string eq_text(const Equation& e) {
  if (e.solved) return "x = " + fmt_fraction(e.num, e.den);
  return side_text(e.lhs) + " = " + side_text(e.rhs);
}

// (x coefficient, constant) of a side
std::pair<int64_t, int64_t> reduce(const Side& s) {
  int64_t a = 0, b = 0;
  for (const auto& pc : s) {
    if (pc.kind == 0) a += pc.coef;
    if (pc.kind == 1) b += pc.coef;
    if (pc.kind == 2) a += pc.coef, b += pc.coef * pc.p;
  }
  return {a, b};
}

// solution as a reduced fraction; den == 0 when there is no unique solution
std::pair<int64_t, int64_t> solve(const Equation& e) {
  if (e.solved) return {e.num, e.den};
  const auto [la, lb] = reduce(e.lhs);
  const auto [ra, rb] = reduce(e.rhs);
  int64_t num = rb - lb, den = la - ra;
  if (den == 0) return {0, 0};
  if (den < 0) num = -num, den = -den;
  const int64_t g = gcd64(num, den);
  return {num / (g ? g : 1), den / (g ? g : 1)};
}

Side expand(const Side& s, bool wrong) {
  Side out;
  for (const auto& pc : s) {
    if (pc.kind != 2) {
      out.push_back(pc);
      continue;
    }
    out.push_back({0, pc.coef, 0});
    out.push_back({1, wrong ? pc.p : pc.coef * pc.p, 0});  // the classic slip: k(x + p) -> kx + p
  }
  return out;
}

Side combine(const Side& s, int64_t slip) {
  const auto [a, b] = reduce(s);
  Side out;
  if (a != 0) out.push_back({0, a, 0});
  out.push_back({1, b + slip, 0});
  return out;
}

enum class StepKind { expand, combine, move_x, move_const, divide };

Equation apply(const Equation& e, StepKind kind, bool wrong, SplitMix64& rng) {
  Equation out = e;
  switch (kind) {
    case StepKind::expand:
      out.lhs = expand(e.lhs, wrong);
      out.rhs = expand(e.rhs, false);
      break;
    case StepKind::combine: {
      const int64_t slip = wrong ? (rng.chance(1, 2) ? 1 : -1) * rng.uniform(1, 3) : 0;
      out.lhs = combine(e.lhs, slip);
      out.rhs = combine(e.rhs, 0);
      break;
    }
    case StepKind::move_x: {
      const auto [la, lb] = reduce(e.lhs);
      const auto [ra, rb] = reduce(e.rhs);
      const int64_t coef = wrong ? la + ra : la - ra;  // slip: the sign of the moved term kept
      out.lhs = {{0, coef, 0}, {1, lb, 0}};
      out.rhs = {{1, rb, 0}};
      break;
    }
    case StepKind::move_const: {
      const auto [la, lb] = reduce(e.lhs);
      const auto [ra, rb] = reduce(e.rhs);
      out.lhs = {{0, la, 0}};
      out.rhs = {{1, wrong ? rb + lb : rb - lb, 0}};
      break;
    }
    case StepKind::divide: {
      const auto [num, den] = solve(e);
      out.solved = true;
      if (den == 0) {
        out.num = 0, out.den = 1;
      } else {
        out.num = wrong ? -num : num;
        out.den = den;
      }
      break;
    }
  }
  return out;
}

}  // namespace

void gen_equation_wrong_step(SplitMix64& rng, int d, Item& item) {
  std::vector<StepKind> kinds;
  if (d == 1) kinds = {StepKind::move_const, StepKind::divide};
  if (d == 2) kinds = {StepKind::move_x, StepKind::move_const, StepKind::divide};
  if (d == 3) kinds = {StepKind::expand, StepKind::move_x, StepKind::move_const, StepKind::divide};
  if (d >= 4) kinds = {StepKind::expand, StepKind::combine, StepKind::move_x, StepKind::move_const, StepKind::divide};
  const bool clean = draw_no_error(rng);
  for (;;) {
    const int64_t x = rng.uniform(-9, 9);
    int64_t a = rng.uniform(2, 9), c = d == 1 ? 0 : rng.uniform(1, 9);
    if (a == c) continue;
    Equation e;
    int64_t p = 0, r = 0;
    if (d >= 3) {
      p = rng.uniform(-6, 6);
      if (p == 0) p = 4;
    }
    const int64_t b = rng.uniform(-12, 12);
    if (d <= 2) {
      e.lhs = {{0, a, 0}, {1, b, 0}};
    } else {
      e.lhs = {{2, a, p}, {1, b, 0}};
    }
    if (d == 5) {
      r = rng.uniform(-5, 5);
      if (r == 0) r = -2;
    }
    // choose the right-hand constant so that x is the solution
    const int64_t lhs_val = a * (x + p) + b;
    const int64_t e_const = lhs_val - c * (x + r);
    if (d == 1) {
      e.rhs = {{1, e_const, 0}};
    } else if (d == 5) {
      e.rhs = {{2, c, r}, {1, e_const, 0}};
    } else {
      e.rhs = {{0, c, 0}, {1, e_const, 0}};
    }
    const int bad = clean ? 0 : static_cast<int>(rng.uniform(1, static_cast<int64_t>(kinds.size())));
    const auto truth = solve(e);
    std::vector<Equation> steps;
    Equation cur = e;
    bool ok = true;
    for (size_t k = 0; k < kinds.size(); ++k) {
      Equation next = apply(cur, kinds[k], static_cast<int>(k) + 1 == bad, rng);
      // difficulty 3 merges expansion and collection into one step
      if (d == 3 && kinds[k] == StepKind::expand) next = apply(next, StepKind::combine, false, rng);
      steps.push_back(next);
      cur = next;
    }
    // the planted slip must change the solution, and each equation must keep x
    const auto before = solve(bad <= 1 ? e : steps[static_cast<size_t>(bad - 2)]);
    const auto after = solve(steps[static_cast<size_t>(bad < 1 ? 0 : bad - 1)]);
    if (truth.second == 0) ok = false;
    if (!clean && (before.second == 0 || after.second == 0 || before == after)) ok = false;
    for (size_t k = 0; k + 1 < steps.size() && ok; ++k) ok = solve(steps[k]).second != 0;
    if (!ok) continue;
    std::string lines = "Equation: " + eq_text(e);
    for (size_t k = 0; k < steps.size(); ++k) lines += "\nStep " + to_string(k + 1) + ": " + eq_text(steps[k]);
    item.prompt = "A student solves a linear equation. At most one step is wrong; every later step follows "
                  "from the line before it. Which step is wrong? Give the step number, or none if every step is "
                  "correct.\n" + lines;
    item.answer = clean ? std::string(kNoError) : to_string(bad);
    item.answer_type = AnswerType::integer;
    item.reference_solution =
        clean ? "The equation has x = " + fmt_fraction(truth.first, truth.second) + ", and every step keeps it.\n" +
                    kNoErrorAnswerLine
              : "The equation has x = " + fmt_fraction(truth.first, truth.second) + ". Step " + to_string(bad) + " (" +
                    eq_text(steps[static_cast<size_t>(bad - 1)]) + ") has x = " + fmt_fraction(after.first, after.second) +
                    " instead of " + fmt_fraction(before.first, before.second) + ".\nAnswer: " + item.answer;
    item.meta = {{"solution", fmt_fraction(truth.first, truth.second)}, {"steps", static_cast<int64_t>(steps.size())},
                 {"error", !clean}};
    return;
  }
}

namespace {

struct Unit {
  const char* name;
  int64_t num, den;  // size in the dimension's base unit
};

const std::vector<std::vector<Unit>>& unit_dimensions() {
  static const std::vector<std::vector<Unit>> dims = {
      {{"mm", 1, 1000}, {"cm", 1, 100}, {"m", 1, 1}, {"km", 1000, 1}},
      {{"mg", 1, 1000}, {"g", 1, 1}, {"kg", 1000, 1}, {"t", 1000000, 1}},
      {{"s", 1, 1}, {"min", 60, 1}, {"h", 3600, 1}},
      {{"J", 1, 1}, {"kJ", 1000, 1}, {"Wh", 3600, 1}, {"kWh", 3600000, 1}},
      {{"m/s", 1, 1}, {"km/h", 5, 18}, {"cm/s", 1, 100}, {"m/min", 1, 60}},
      {{"Pa", 1, 1}, {"hPa", 100, 1}, {"kPa", 1000, 1}, {"bar", 100000, 1}},
      {{"mL", 1, 1}, {"L", 1000, 1}, {"m^3", 1000000, 1}}};
  return dims;
}

// decimal places needed to write num/den exactly, or -1 if it does not terminate
int decimals_needed(int64_t num, int64_t den) {
  const int64_t g = gcd64(num, den);
  den /= g ? g : 1;
  int twos = 0, fives = 0;
  while (den % 2 == 0) den /= 2, ++twos;
  while (den % 5 == 0) den /= 5, ++fives;
  return den == 1 ? std::max(twos, fives) : -1;
}

}  // namespace

void gen_unit_error(SplitMix64& rng, int d, Item& item) {
  const auto& dims = unit_dimensions();
  const bool clean = draw_no_error(rng);
  for (;;) {
    const auto& units = dims[static_cast<size_t>(rng.below(dims.size()))];
    const int n = 1 + d;
    std::vector<size_t> path = {static_cast<size_t>(rng.below(units.size()))};
    for (int k = 0; k < n; ++k) {
      size_t next = static_cast<size_t>(rng.below(units.size() - 1));
      if (next >= path.back()) ++next;
      path.push_back(next);
    }
    const int bad = clean ? 0 : static_cast<int>(rng.uniform(1, n));
    static const std::array<int64_t, 2> big = {100, 1000};
    const int64_t w = d <= 2 ? big[static_cast<size_t>(rng.below(2))] : 10;
    const bool up = rng.chance(1, 2);
    // value as an exact fraction num/den in the current unit
    int64_t num = rng.uniform(2, 99), den = 1;
    bool ok = true;
    std::vector<std::pair<int64_t, int64_t>> values = {{num, den}};
    for (int k = 1; k <= n && ok; ++k) {
      const Unit& from = units[path[static_cast<size_t>(k - 1)]];
      const Unit& to = units[path[static_cast<size_t>(k)]];
      __int128 nn = static_cast<__int128>(num) * from.num * to.den;
      __int128 dd = static_cast<__int128>(den) * from.den * to.num;
      if (k == bad) (up ? nn : dd) *= w;
      if (nn > INT64_MAX / 4 || dd > INT64_MAX / 4) ok = false;
      num = static_cast<int64_t>(nn), den = static_cast<int64_t>(dd);
      const int64_t gg = gcd64(num, den);
      num /= gg, den /= gg;
      values.push_back({num, den});
    }
    if (!ok) continue;
    // scale the start value so every number terminates within 8 decimals and stays readable
    int64_t mult = 1;
    for (const auto& [vn, vd] : values) {
      int64_t rest = vd;
      while (rest % 2 == 0) rest /= 2;
      while (rest % 5 == 0) rest /= 5;
      mult = mult / gcd64(mult, rest) * rest;
    }
    if (mult > 1000) continue;
    bool fine = true;
    for (auto& [vn, vd] : values) {
      vn *= mult;
      const int64_t gg = gcd64(vn, vd);
      vn /= gg, vd /= gg;
      fine = fine && decimals_needed(vn, vd) >= 0 && decimals_needed(vn, vd) <= 8 && vn / vd < 1000000000000LL;
    }
    if (!fine) continue;
    std::string lines, sol;
    for (int k = 1; k <= n; ++k) {
      const Unit& from = units[path[static_cast<size_t>(k - 1)]];
      const Unit& to = units[path[static_cast<size_t>(k)]];
      const auto& [an, ad] = values[static_cast<size_t>(k - 1)];
      const auto& [bn, bd] = values[static_cast<size_t>(k)];
      const std::string a = fmt_rational(an, ad, 8), b = fmt_rational(bn, bd, 8);
      lines += "\nStep " + to_string(k) + ": " + a + " " + from.name + " = " + b + " " + to.name;
      const std::string factor = "x" + fmt_fraction(from.num * to.den, from.den * to.num);
      if (k < bad || clean) sol += "Step " + to_string(k) + ": " + factor + " (" + from.name + " -> " + to.name + ") is right.\n";
      if (k == bad) {
        const std::string right = up ? fmt_rational(bn, bd * w, 8) : fmt_rational(bn * w, bd, 8);
        sol += "Step " + to_string(k) + ": " + factor + " (" + from.name + " -> " + to.name + ") gives " + right +
               ", not " + b + ".\n";
      }
    }
    item.prompt = "A student converts a quantity through several units. At most one step uses a wrong conversion "
                  "factor; every other step is right given the line before it. Which step is wrong? Give the step "
                  "number, or none if every step is right." + lines;
    item.answer = clean ? std::string(kNoError) : to_string(bad);
    item.answer_type = AnswerType::integer;
    item.reference_solution = sol + "Answer: " + item.answer;
    std::vector<std::string> names;
    for (size_t u : path) names.push_back(units[u].name);
    item.meta = {{"units", names}, {"error_factor", clean ? 1 : up ? w : -w}, {"error", !clean}};
    return;
  }
}

namespace {

struct Dim {
  std::array<int, 4> e{};  // exponents of M, L, T, I
  Dim& operator+=(const Dim& o) {
    for (size_t i = 0; i < 4; ++i) e[i] += o.e[i];
    return *this;
  }
  Dim scaled(int k) const {
    Dim r = *this;
    for (auto& x : r.e) x *= k;
    return r;
  }
  bool operator==(const Dim& o) const { return e == o.e; }
  std::string text() const {
    static const std::array<const char*, 4> base = {"M", "L", "T", "I"};
    std::string out;
    for (size_t i = 0; i < 4; ++i) {
      if (e[i] == 0) continue;
      if (!out.empty()) out += " ";
      out += base[i];
      if (e[i] != 1) out += "^" + to_string(e[i]);
    }
    return out.empty() ? "1" : out;
  }
};

struct Symbol {
  const char* name;
  const char* meaning;
  Dim dim;
};

const std::vector<Symbol>& symbols() {
  static const std::vector<Symbol> s = {
      {"m", "mass", {{1, 0, 0, 0}}},          {"v", "velocity", {{0, 1, -1, 0}}},
      {"u", "initial velocity", {{0, 1, -1, 0}}}, {"a", "acceleration", {{0, 1, -2, 0}}},
      {"t", "time", {{0, 0, 1, 0}}},          {"x", "displacement", {{0, 1, 0, 0}}},
      {"F", "force", {{1, 1, -2, 0}}},        {"E", "energy", {{1, 2, -2, 0}}},
      {"P", "power", {{1, 2, -3, 0}}},        {"p", "momentum", {{1, 1, -1, 0}}},
      {"g", "gravitational acceleration", {{0, 1, -2, 0}}}, {"h", "height", {{0, 1, 0, 0}}},
      {"r", "radius", {{0, 1, 0, 0}}},        {"w", "angular velocity", {{0, 0, -1, 0}}},
      {"f", "frequency", {{0, 0, -1, 0}}},    {"L", "wavelength", {{0, 1, 0, 0}}},
      {"D", "density", {{1, -3, 0, 0}}},      {"V", "volume", {{0, 3, 0, 0}}},
      {"k", "spring constant", {{1, 0, -2, 0}}}, {"I", "current", {{0, 0, 0, 1}}},
      {"q", "charge", {{0, 0, 1, 1}}},        {"U", "voltage", {{1, 2, -3, -1}}},
      {"R", "resistance", {{1, 2, -3, -2}}},  {"T", "period", {{0, 0, 1, 0}}}};
  return s;
}

const Symbol& sym(const std::string& name) {
  for (const auto& s : symbols()) {
    if (name == s.name) return s;
  }
  return symbols()[0];
}

struct Term {
  std::string pre;                               // dimensionless prefix, e.g. "2 * pi * "
  std::vector<std::pair<std::string, int>> f;    // factors with exponents (negative: divided)
  std::string post;                              // dimensionless suffix, e.g. " / 2"
};

struct Formula {
  std::string lhs;
  std::vector<Term> terms;
};

const std::vector<Formula>& formulas() {
  static const std::vector<Formula> f = {
      {"F", {{"", {{"m", 1}, {"a", 1}}, ""}}},
      {"p", {{"", {{"m", 1}, {"v", 1}}, ""}}},
      {"E", {{"", {{"m", 1}, {"g", 1}, {"h", 1}}, ""}}},
      {"E", {{"", {{"m", 1}, {"v", 2}}, " / 2"}}},
      {"x", {{"", {{"v", 1}, {"t", 1}}, ""}}},
      {"v", {{"", {{"u", 1}}, ""}, {"", {{"a", 1}, {"t", 1}}, ""}}},
      {"P", {{"", {{"F", 1}, {"v", 1}}, ""}}},
      {"P", {{"", {{"E", 1}, {"t", -1}}, ""}}},
      {"a", {{"", {{"v", 2}, {"r", -1}}, ""}}},
      {"T", {{"2 * pi * ", {{"r", 1}, {"v", -1}}, ""}}},
      {"v", {{"", {{"L", 1}, {"f", 1}}, ""}}},
      {"F", {{"", {{"k", 1}, {"x", 1}}, ""}}},
      {"E", {{"", {{"k", 1}, {"x", 2}}, " / 2"}}},
      {"m", {{"", {{"D", 1}, {"V", 1}}, ""}}},
      {"U", {{"", {{"I", 1}, {"R", 1}}, ""}}},
      {"P", {{"", {{"U", 1}, {"I", 1}}, ""}}},
      {"q", {{"", {{"I", 1}, {"t", 1}}, ""}}},
      {"F", {{"", {{"m", 1}, {"v", 2}, {"r", -1}}, ""}}},
      {"x", {{"", {{"u", 1}, {"t", 1}}, ""}, {"", {{"a", 1}, {"t", 2}}, " / 2"}}},
      {"w", {{"", {{"v", 1}, {"r", -1}}, ""}}},
      {"F", {{"", {{"p", 1}, {"t", -1}}, ""}}},
      {"E", {{"", {{"F", 1}, {"x", 1}}, ""}}},
      {"E", {{"", {{"P", 1}, {"t", 1}}, ""}}},
      {"P", {{"", {{"I", 2}, {"R", 1}}, ""}}},
      {"a", {{"", {{"w", 2}, {"r", 1}}, ""}}},
      {"f", {{"", {{"T", -1}}, ""}}}};
  return f;
}

Dim term_dim(const Term& t) {
  Dim d;
  for (const auto& [s, k] : t.f) d += sym(s).dim.scaled(k);
  return d;
}

bool consistent(const Formula& f) {
  const Dim l = sym(f.lhs).dim;
  for (const auto& t : f.terms) {
    if (!(term_dim(t) == l)) return false;
  }
  return true;
}

std::string formula_text(const Formula& f) {
  std::string out = f.lhs + " = ";
  for (size_t i = 0; i < f.terms.size(); ++i) {
    const Term& t = f.terms[i];
    if (i) out += " + ";
    out += t.pre;
    bool first = true;
    for (const auto& [s, k] : t.f) {
      if (k <= 0) continue;
      out += (first ? "" : " * ") + s + (k == 1 ? "" : "^" + to_string(k));
      first = false;
    }
    if (first) out += "1";
    for (const auto& [s, k] : t.f) {
      if (k >= 0) continue;
      out += " / " + s + (k == -1 ? "" : "^" + to_string(-k));
    }
    out += t.post;
  }
  return out;
}

}  // namespace

void gen_dimension_check(SplitMix64& rng, int d, Item& item) {
  const size_t n = static_cast<size_t>(2 + d);
  std::vector<size_t> idx(formulas().size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  const bool clean = draw_no_error(rng);
  for (;;) {
    rng.shuffle(idx);
    std::vector<Formula> chosen;
    for (size_t i = 0; i < n; ++i) chosen.push_back(formulas()[idx[i]]);
    const size_t bad = clean ? n : static_cast<size_t>(rng.below(n));
    if (clean) {
      bool all_ok = true;
      for (const auto& fm : chosen) all_ok = all_ok && consistent(fm);
      if (!all_ok) continue;
    } else {
      Formula& f = chosen[bad];
      Term& t = f.terms[static_cast<size_t>(rng.below(f.terms.size()))];
      auto& factor = t.f[static_cast<size_t>(rng.below(t.f.size()))];
      const uint64_t mutation = rng.below(3);
      if (mutation == 0) {
        factor.second += factor.second > 0 ? (factor.second > 1 ? -1 : 1) : -1;  // wrong power
      } else if (mutation == 1) {
        factor.second = -factor.second;  // multiplied instead of divided, or the reverse
      } else {
        factor.first = symbols()[static_cast<size_t>(rng.below(symbols().size()))].name;  // wrong quantity
    }
      if (consistent(f)) continue;
      bool others_ok = true;
      for (size_t i = 0; i < n; ++i) others_ok = others_ok && (i == bad || consistent(chosen[i]));
      if (!others_ok) continue;
    }
    std::vector<std::string> used;
    for (const auto& fm : chosen) {
      used.push_back(fm.lhs);
      for (const auto& tm : fm.terms) {
        for (const auto& [s, k] : tm.f) used.push_back(s);
      }
    }
    std::string legend;
    for (const auto& s : symbols()) {
      if (std::find(used.begin(), used.end(), s.name) == used.end()) continue;
      legend += (legend.empty() ? "" : ", ") + std::string(s.name) + " " + s.meaning;
    }
    std::string lines, sol;
    for (size_t i = 0; i < n; ++i) {
      const Formula& fm = chosen[i];
      lines += "\n(" + to_string(i + 1) + ") " + formula_text(fm);
      std::vector<std::string> rhs;
      for (const auto& tm : fm.terms) rhs.push_back(term_dim(tm).text());
      sol += "(" + to_string(i + 1) + ") " + sym(fm.lhs).dim.text() + " vs " + join(rhs, " + ") +
             (i == bad ? ": inconsistent" : ": ok") + "\n";
    }
    item.prompt = "Symbols: " + legend + "; pi and plain numbers are dimensionless. At most one of these equations "
                  "is dimensionally inconsistent. Which one? Give its number, or none if all are consistent." + lines;
    item.answer = clean ? std::string(kNoError) : to_string(bad + 1);
    item.answer_type = AnswerType::integer;
    item.reference_solution = "Dimensions (M mass, L length, T time, I current), left vs right:\n" + sol +
                              "Answer: " + item.answer;
    item.meta = {{"equations", static_cast<int64_t>(n)}, {"error", !clean}};
    return;
  }
}

void gen_receipt_error(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> goods = {"notebook", "pen", "stapler", "folder", "mug", "towel",
                                                 "battery", "lamp", "candle", "scarf", "plant pot", "sketchbook",
                                                 "glue stick", "ruler", "tea tin", "socks"};
  const bool clean = draw_no_error(rng);
  const int n = 2 + d;
  std::vector<std::string> names = goods;
  rng.shuffle(names);
  const int bad = clean ? 0 : static_cast<int>(rng.uniform(1, n + 1));
  static const std::array<int64_t, 6> err = {0, 300, 100, 10, 10, 1};
  int64_t delta = d == 1 ? 100 * rng.uniform(1, 5) : d == 4 ? (rng.chance(1, 2) ? 10 : 1) : err[static_cast<size_t>(d)];
  if (rng.chance(1, 2)) delta = -delta;
  std::string lines, sol;
  int64_t printed_sum = 0;
  for (int k = 1; k <= n; ++k) {
    const int64_t q = rng.uniform(1, 6), p = 5 * rng.uniform(20, 400);
    int64_t amount = q * p;
    if (k == bad) {
      if (amount + delta <= 0) delta = -delta;
      amount += delta;
      sol = "Line " + to_string(k) + ": " + to_string(q) + " x $" + fmt_cents(p) + " = $" + fmt_cents(q * p) +
            ", not $" + fmt_cents(amount) + ".\n";
    }
    printed_sum += amount;
    lines += "\n" + to_string(k) + ". " + to_string(q) + " x " + names[static_cast<size_t>(k - 1)] + " @ $" +
             fmt_cents(p) + " = $" + fmt_cents(amount);
  }
  int64_t total = printed_sum;
  if (clean) sol = "Every line amount is quantity x unit price and the total $" + fmt_cents(total) + " is their sum.\n";
  if (bad == n + 1) {
    total += delta;
    sol = "The line amounts are right and sum to $" + fmt_cents(printed_sum) + ", but the total says $" +
          fmt_cents(total) + ".\n";
  }
  lines += "\n" + to_string(n + 1) + ". Total = $" + fmt_cents(total);
  item.prompt = "Each line of this receipt should have amount = quantity x unit price, and the total should be the "
                "sum of the line amounts as printed. At most one line breaks its rule. Which line number is it? "
                "Answer none if every line is right." + lines;
  item.answer = clean ? std::string(kNoError) : to_string(bad);
  item.answer_type = AnswerType::integer;
  item.reference_solution = sol + "Answer: " + item.answer;
  item.meta = {{"lines", n + 1}, {"error", !clean}};
}

void gen_schedule_contradiction(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> events = {
      "the team meeting", "the dentist appointment", "lunch with Sam", "the yoga class", "the client call",
      "the school pickup", "the grocery run", "the piano lesson", "the code review", "the flight check-in"};
  const bool clean = draw_no_error(rng);
  const size_t n = static_cast<size_t>(2 + d);
  std::vector<std::string> ev = events;
  rng.shuffle(ev);
  ev.resize(n);
  std::vector<int64_t> slots;
  for (int64_t s = 7 * 4; s <= 20 * 4; ++s) slots.push_back(15 * s);
  rng.shuffle(slots);
  std::vector<int64_t> time(slots.begin(), slots.begin() + static_cast<long>(n));
  auto cap = [](std::string s) {
    s[0] = static_cast<char>(s[0] - 'a' + 'A');
    return s;
  };
  struct Sentence {
    std::string text;
    bool bad = false;
  };
  std::vector<Sentence> sentences;
  for (size_t i = 0; i < n; ++i) sentences.push_back({cap(ev[i]) + " is at " + fmt_clock(time[i]) + ".", false});
  // a cycle of relations: every event sits in two of them, so only the altered one is the odd one out
  const size_t bad = clean ? n : static_cast<size_t>(rng.below(n));
  std::string sol = clean ? "Every relation agrees with the stated times.\n" : "";
  for (size_t k = 0; k < n; ++k) {
    const size_t from = k, to = (k + 1) % n;
    int64_t diff = time[to] - time[from];
    if (k == bad) {
      const int64_t wrong = d <= 2 && rng.chance(1, 2) ? -diff : diff + (rng.chance(1, 2) ? 1 : -1) * 15 * rng.uniform(1, 4);
      sol = cap(ev[to]) + " is at " + fmt_clock(time[to]) + " and " + ev[from] + " at " + fmt_clock(time[from]) +
            ", so the sentence saying " + (wrong == 0 ? std::string("they are at the same time") :
            to_string(wrong < 0 ? -wrong : wrong) + " minutes " + (wrong < 0 ? "before" : "after")) +
            " contradicts the others (it is " + (diff < 0 ? to_string(-diff) + " minutes before" : to_string(diff) + " minutes after") + ").\n";
      diff = wrong;
    }
    std::string text = diff == 0 ? cap(ev[to]) + " is at the same time as " + ev[from] + "."
                                 : cap(ev[to]) + " is " + to_string(diff < 0 ? -diff : diff) + " minutes " +
                                       (diff < 0 ? "before " : "after ") + ev[from] + ".";
    sentences.push_back({text, k == bad});
  }
  rng.shuffle(sentences);
  std::string lines;
  size_t answer = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    lines += "\n(" + to_string(i + 1) + ") " + sentences[i].text;
    if (sentences[i].bad) answer = i + 1;
  }
  item.prompt = "At most one of these sentences about today's schedule contradicts the others. Which one? Give its "
                "number, or none if they are all consistent." + lines;
  item.answer = clean ? std::string(kNoError) : to_string(answer);
  item.answer_type = AnswerType::integer;
  item.reference_solution = clean ? sol + kNoErrorAnswerLine
                                  : sol + "That is sentence (" + item.answer + ").\nAnswer: " + item.answer;
  item.meta = {{"events", static_cast<int64_t>(n)}, {"error", !clean}};
}

}  // namespace metaprobe::probes::detail

namespace metaprobe::probes::detail {

// Note [problem-statement drift]: a worked solution can be flawless arithmetic for a question that is not
// the one asked: a given silently restated with another value, or a last line that answers a neighbouring
// question (what was spent instead of the change). The answer is the first line where the solution departs
// from the question, or "none". Difficulty: a large change of a given restated on its own line (d1), a small
// one (d2), the changed value used directly inside a computation line (d3-d4), and at d5 also drift of the
// final question; the number of computation steps grows with the template.
namespace {

// One draw of a drift item; false when a drifted value makes a quantity negative (drawn again).
bool try_problem_drift(SplitMix64& rng, int d, bool clean, Item& item) {
  struct Given {
    std::string text;  // restatement with {} for the value
    int64_t value;
  };
  const int kind = static_cast<int>(rng.below(3));
  std::vector<Given> g;
  std::string question;
  // values (possibly drifted) -> (computation lines, final value); `alt` answers the neighbouring question
  std::function<std::pair<std::vector<std::string>, std::string>(const std::vector<int64_t>&, bool)> solve;
  static const std::vector<std::string> names = {"Mia", "Omar", "Lena", "Ravi", "Sofia", "Jonas", "Aiko", "Diego"};
  const std::string who = names[static_cast<size_t>(rng.below(names.size()))];
  if (kind == 0) {
    const int64_t q = rng.uniform(3, 12), p = rng.uniform(2, 9), extra = rng.uniform(1, 6), pe = rng.uniform(2, 15);
    const int64_t note = 10 * ((q * p + extra * pe) / 10 + 1 + static_cast<int64_t>(rng.below(5)));
    g = {{who + " buys {} pens", q}, {"each pen costs ${}", p}, {who + " also buys {} notebooks", extra},
         {"each notebook costs ${}", pe}, {"the note is ${}", note}};
    question = who + " buys " + to_string(q) + " pens at $" + to_string(p) + " each and " + to_string(extra) +
               " notebooks at $" + to_string(pe) + " each, and pays with a $" + to_string(note) +
               " note. How much change does " + who + " get?";
    solve = [](const std::vector<int64_t>& v, bool alt) {
      const int64_t a = v[0] * v[1], b = v[2] * v[3], t = a + b;
      std::vector<std::string> l = {to_string(v[0]) + " x $" + to_string(v[1]) + " = $" + to_string(a),
                                    to_string(v[2]) + " x $" + to_string(v[3]) + " = $" + to_string(b),
                                    "$" + to_string(a) + " + $" + to_string(b) + " = $" + to_string(t)};
      if (alt) return std::pair{l, "So the purchase costs $" + to_string(t) + "."};
      l.push_back("$" + to_string(v[4]) + " - $" + to_string(t) + " = $" + to_string(v[4] - t));
      return std::pair{l, "So the change is $" + to_string(v[4] - t) + "."};
    };
  } else if (kind == 1) {
    const int64_t v1 = 10 * rng.uniform(4, 12), t1 = rng.uniform(1, 4), v2 = 10 * rng.uniform(4, 12), t2 = rng.uniform(1, 4);
    g = {{"the first part is at {} km/h", v1}, {"the first part lasts {} hours", t1},
         {"the second part is at {} km/h", v2}, {"the second part lasts {} hours", t2}};
    question = "A train travels at " + to_string(v1) + " km/h for " + to_string(t1) + " hours, then at " +
               to_string(v2) + " km/h for " + to_string(t2) + " hours. How far does it travel in total?";
    solve = [](const std::vector<int64_t>& v, bool alt) {
      const int64_t a = v[0] * v[1], b = v[2] * v[3];
      std::vector<std::string> l = {to_string(v[0]) + " x " + to_string(v[1]) + " = " + to_string(a) + " km",
                                    to_string(v[2]) + " x " + to_string(v[3]) + " = " + to_string(b) + " km"};
      if (alt) return std::pair{l, "So the second part is " + to_string(b) + " km."};
      l.push_back(to_string(a) + " + " + to_string(b) + " = " + to_string(a + b) + " km");
      return std::pair{l, "So the train travels " + to_string(a + b) + " km."};
    };
  } else {
    const int64_t boxes = rng.uniform(3, 9), per = rng.uniform(6, 24), rotten = rng.uniform(2, 15), eaten = rng.uniform(1, 9);
    g = {{"there are {} boxes", boxes}, {"each box holds {} apples", per}, {"{} apples are rotten", rotten},
         {"{} good apples are eaten", eaten}};
    question = "A shop has " + to_string(boxes) + " boxes of " + to_string(per) + " apples. " + to_string(rotten) +
               " apples are rotten and are thrown away, and then " + to_string(eaten) +
               " good apples are eaten. How many good apples are left?";
    solve = [](const std::vector<int64_t>& v, bool alt) {
      const int64_t all = v[0] * v[1], good = all - v[2];
      std::vector<std::string> l = {to_string(v[0]) + " x " + to_string(v[1]) + " = " + to_string(all) + " apples",
                                    to_string(all) + " - " + to_string(v[2]) + " = " + to_string(good) + " good apples"};
      if (alt) return std::pair{l, "So " + to_string(good) + " good apples are left."};
      l.push_back(to_string(good) + " - " + to_string(v[3]) + " = " + to_string(good - v[3]));
      return std::pair{l, "So " + to_string(good - v[3]) + " good apples are left."};
    };
  }
  std::vector<int64_t> values;
  for (const auto& x : g) values.push_back(x.value);
  // The drift: a given (its index) or the final question (kind 1 at d5, one in three).
  const bool final_drift = !clean && d >= 5 && rng.chance(1, 3);
  int changed = -1;
  std::vector<int64_t> used = values;
  const bool merged = d >= 3;  // restatements folded into the computation lines
  if (!clean && !final_drift) {
    if (merged) {
      // the line that first reads each given; draw the line first, so no line dominates the answers
      static const std::array<std::vector<int>, 3> first_line = {{{1, 1, 2, 2, 4}, {1, 1, 2, 2}, {1, 1, 2, 3}}};
      const auto& fl = first_line[static_cast<size_t>(kind)];
      std::vector<int> distinct(fl.begin(), fl.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      const int line = distinct[static_cast<size_t>(rng.below(distinct.size()))];
      std::vector<int> readers;
      for (size_t i = 0; i < fl.size(); ++i)
        if (fl[i] == line) readers.push_back(static_cast<int>(i));
      changed = readers[static_cast<size_t>(rng.below(readers.size()))];
    } else {
      changed = static_cast<int>(rng.below(g.size()));
    }
    const int64_t v = values[static_cast<size_t>(changed)];
    int64_t delta = d == 1 ? std::max<int64_t>(v, 5) : rng.uniform(1, 3);  // d1: doubled (or +5); then small
    if (d != 1 && rng.chance(1, 2) && v - delta > 0) delta = -delta;
    used[static_cast<size_t>(changed)] = v + delta;
  }
  auto fill = [](std::string t, int64_t v) { return t.replace(t.find("{}"), 2, to_string(v)); };
  auto [calc, last] = solve(used, final_drift);
  for (const auto& c : calc)
    if (c.find("= -") != std::string::npos || c.find("$-") != std::string::npos) return false;
  if (last.find(" -") != std::string::npos || last.find("$-") != std::string::npos) return false;
  std::vector<std::string> lines;
  int answer = 0;
  if (!merged) {
    for (size_t i = 0; i < g.size(); ++i) {
      std::string t = fill(g[i].text, used[i]);
      t[0] = static_cast<char>(t[0] >= 'a' && t[0] <= 'z' ? t[0] - 'a' + 'A' : t[0]);
      lines.push_back(t + ".");
      if (static_cast<int>(i) == changed) answer = static_cast<int>(lines.size());
    }
    for (const auto& c : calc) lines.push_back(c + ".");
  } else {
    // the first computation line that reads the changed given is where the solution departs
    const auto [orig_calc, orig_last] = solve(values, final_drift);
    for (size_t i = 0; i < calc.size(); ++i) {
      lines.push_back(calc[i] + ".");
      if (answer == 0 && changed >= 0 && calc[i] != orig_calc[i]) answer = static_cast<int>(lines.size());
    }
    (void)orig_last;
  }
  lines.push_back(last);
  if (final_drift) answer = static_cast<int>(lines.size());
  std::string text, sol;
  for (size_t i = 0; i < lines.size(); ++i) text += "\nLine " + to_string(i + 1) + ": " + lines[i];
  item.prompt = "Question: " + question +
                "\nA student's worked solution follows. Its arithmetic is right, but a solution can drift from the "
                "question: a given restated or used with another value, or a final line that answers a different "
                "question. Which is the first line where the solution departs from the question? Give the line "
                "number, or none if it answers the question as asked." + text;
  if (clean) {
    sol = "Every given matches the question and the last line answers it.\n" + std::string(kNoErrorAnswerLine);
  } else if (final_drift) {
    sol = "The givens match, but line " + to_string(answer) + " answers a different question.\nAnswer: " + to_string(answer);
  } else {
    sol = "Line " + to_string(answer) + " uses " + fill(g[static_cast<size_t>(changed)].text, used[static_cast<size_t>(changed)]) +
          " instead of " + to_string(values[static_cast<size_t>(changed)]) + ".\nAnswer: " + to_string(answer);
  }
  item.answer = clean ? std::string(kNoError) : to_string(answer);
  item.answer_type = AnswerType::integer;
  item.reference_solution = sol;
  item.meta = {{"template", kind}, {"lines", static_cast<int64_t>(lines.size())}, {"error", !clean},
               {"drift", clean ? "none" : final_drift ? "question" : "given"}, {"changed_given", changed}};
  return true;
}

}  // namespace

void gen_problem_drift(SplitMix64& rng, int d, Item& item) {
  const bool clean = draw_no_error(rng);
  while (!try_problem_drift(rng, d, clean, item)) {
  }
}

}  // namespace metaprobe::probes::detail
