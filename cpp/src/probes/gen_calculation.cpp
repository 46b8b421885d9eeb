// Calculation families: carry out an arithmetic, algebraic or symbolic operation to a result.
#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {

using json = nlohmann::json;
using std::to_string;

int64_t isqrt(int64_t n) {
  int64_t r = 0;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::string civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp + (mp < 10 ? 3 : -9);
  y += m <= 2;
  auto two = [](int64_t v) { return (v < 10 ? "0" : "") + to_string(v); };
  return to_string(y) + "-" + two(m) + "-" + two(d);
}

}  // namespace

void gen_prime_factorisation(SplitMix64& rng, int d, Item& item) {
  static const std::array<int64_t, 25> primes = {2,  3,  5,  7,  11, 13, 17, 19, 23, 29, 31, 37, 41,
                                                 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97};
  // how many primes each difficulty draws from (d1 drew from 4: only 10 distinct items)
  static const std::array<uint64_t, 6> pool = {0, 6, 7, 9, 13, 25};
  int64_t n = 1;
  for (int i = 0; i < d + 1; ++i) n *= primes[rng.below(pool[static_cast<size_t>(d)])];
  // own solver: trial division
  std::vector<int64_t> factors;
  std::string steps;
  int64_t m = n;
  for (int64_t p = 2; p * p <= m; ++p) {
    while (m % p == 0) {
      steps += to_string(m) + " / " + to_string(p) + " = " + to_string(m / p) + "\n";
      factors.push_back(p);
      m /= p;
    }
  }
  if (m > 1) {
    steps += to_string(m) + " is prime\n";
    factors.push_back(m);
  }
  item.prompt = "Write " + to_string(n) + " as a product of primes. List its prime factors in increasing order, "
                "each repeated as often as it divides " + to_string(n) + ", separated by commas.";
  item.answer = join_ints(factors);
  item.answer_type = AnswerType::list;
  item.ordered = true;
  item.reference_solution = steps + "Answer: " + item.answer;
  item.meta = {{"n", n}};
}

void gen_eigenvalues_2x2(SplitMix64& rng, int d, Item& item) {
  static const std::array<int64_t, 6> range = {0, 3, 5, 9, 15, 25};
  const int64_t r = range[static_cast<size_t>(d)];
  int64_t l1 = rng.uniform(-r, r), l2 = rng.uniform(-r, r);
  while (l2 == l1) l2 = rng.uniform(-r, r);
  // a unimodular change of basis P built from d random row operations
  int64_t p = 1, q = 0, s = 0, t = 1;
  for (int i = 0; i < d; ++i) {
    int64_t c = rng.uniform(1, 2) * (rng.chance(1, 2) ? 1 : -1);
    if (rng.chance(1, 2)) {
      p += c * s;
      q += c * t;
    } else {
      s += c * p;
      t += c * q;
    }
    if (rng.chance(1, 4)) {
      std::swap(p, s);
      std::swap(q, t);
    }
  }
  const int64_t det = p * t - q * s;  // +-1
  // A = P diag(l1, l2) P^-1 with P^-1 = det * [[t, -q], [-s, p]]
  const int64_t a = det * (p * l1 * t - q * l2 * s);
  const int64_t b = det * (-p * l1 * q + q * l2 * p);
  const int64_t c = det * (s * l1 * t - t * l2 * s);
  const int64_t e = det * (-s * l1 * q + t * l2 * p);
  // own solver: characteristic polynomial
  const int64_t tr = a + e, dt = a * e - b * c;
  const int64_t disc = tr * tr - 4 * dt;
  const int64_t sq = isqrt(disc);
  const int64_t x1 = (tr - sq) / 2, x2 = (tr + sq) / 2;
  item.prompt = "Find the eigenvalues of the 2x2 matrix with rows [" + to_string(a) + ", " + to_string(b) + "] and [" +
                to_string(c) + ", " + to_string(e) + "]. Give them in increasing order, separated by commas.";
  item.answer = to_string(x1) + ", " + to_string(x2);
  item.answer_type = AnswerType::list;
  item.ordered = false;
  item.reference_solution = "trace = " + to_string(tr) + ", det = " + to_string(dt) + ".\nx^2 - (" + to_string(tr) +
                            ")x + (" + to_string(dt) + ") = 0, discriminant = " + to_string(disc) + " = " +
                            to_string(sq) + "^2.\nx = (" + to_string(tr) + " - " + to_string(sq) + ")/2 = " +
                            to_string(x1) + ", x = (" + to_string(tr) + " + " + to_string(sq) + ")/2 = " +
                            to_string(x2) + ".\nAnswer: " + item.answer;
  item.meta = {{"matrix", {{a, b}, {c, e}}}};
}

void gen_kinematics_units(SplitMix64& rng, int d, Item& item) {
  // Everything in exact integers: speeds in cm/s, accelerations in cm/s^2, times in s.
  int64_t v0 = 0, v0_cm = 0, a = 0, a_cm = 0, t = 0, t_s = 0;
  std::string v0_unit = "m/s", a_unit = "m/s^2", t_unit = "s", out_unit = "m";
  std::string lead;
  if (d == 1) {
    v0 = rng.uniform(2, 30), v0_cm = v0 * 100, t = rng.uniform(2, 60), t_s = t;
  } else if (d == 2) {
    const int64_t k = rng.uniform(1, 8);
    v0 = 18 * k, v0_unit = "km/h", v0_cm = 500 * k, t = rng.uniform(1, 10), t_unit = "min", t_s = 60 * t;
  } else if (d == 3) {
    a = rng.uniform(1, 6), a_cm = 100 * a, t = rng.uniform(2, 20), t_s = t;
  } else {
    const int64_t k = rng.uniform(1, 6);
    v0 = 18 * k, v0_unit = "km/h", v0_cm = 500 * k;
    a = 25 * rng.uniform(1, 16), a_unit = "cm/s^2", a_cm = a;
    if (d == 4) {
      t = rng.uniform(5, 60), t_s = t;
    } else {
      t = rng.uniform(1, 3), t_unit = "min", t_s = 60 * t, out_unit = "km";
    }
  }
  // 2 * distance in cm = 2 v0 t + a t^2
  const int64_t two_d_cm = 2 * v0_cm * t_s + a_cm * t_s * t_s;
  const int64_t den = out_unit == "m" ? 200 : 200000;
  item.answer = fmt_rational(two_d_cm, den, 6);
  const std::string dist_m = fmt_rational(two_d_cm, 200, 6);
  const std::string unit_word = out_unit == "m" ? "metres" : "kilometres";
  const std::string tt = to_string(t) + " " + t_unit;
  if (d <= 2) {
    item.prompt = "A car travels at a constant speed of " + to_string(v0) + " " + v0_unit + " for " + tt +
                  ". How far does it travel, in " + unit_word + "?";
  } else if (d == 3) {
    item.prompt = "A cart starts from rest and accelerates uniformly at " + to_string(a) + " m/s^2 for " + tt +
                  ". How far does it travel, in " + unit_word + "?";
  } else {
    item.prompt = "A car moving at " + to_string(v0) + " " + v0_unit + " accelerates uniformly at " + to_string(a) +
                  " " + a_unit + " for " + tt + ". How far does it travel in that time, in " + unit_word + "?";
  }
  const std::string v_ms = fmt_rational(v0_cm, 100, 6), a_ms = fmt_rational(a_cm, 100, 6);
  std::string sol;
  if (v0_unit != "m/s") sol += "v0 = " + to_string(v0) + " km/h = " + v_ms + " m/s. ";
  if (a_unit != "m/s^2") sol += "a = " + to_string(a) + " cm/s^2 = " + a_ms + " m/s^2. ";
  if (t_unit != "s") sol += "t = " + tt + " = " + to_string(t_s) + " s. ";
  if (a_cm == 0) {
    sol += "d = v*t = " + v_ms + " * " + to_string(t_s) + " = " + dist_m + " m.";
  } else if (v0_cm == 0) {
    sol += "d = a*t^2/2 = " + a_ms + " * " + to_string(t_s) + "^2 / 2 = " + dist_m + " m.";
  } else {
    sol += "d = v0*t + a*t^2/2 = " + v_ms + "*" + to_string(t_s) + " + " + a_ms + "*" + to_string(t_s) +
           "^2/2 = " + fmt_rational(v0_cm * t_s, 100, 6) + " + " + fmt_rational(a_cm * t_s * t_s, 200, 6) + " = " +
           dist_m + " m.";
  }
  if (out_unit == "km") sol += " " + dist_m + " m = " + item.answer + " km.";
  item.answer_type = AnswerType::number;
  item.tolerance = 1e-3;
  item.reference_solution = sol + "\nAnswer: " + item.answer;
  item.meta = {{"v0", v0}, {"v0_unit", v0_unit}, {"a", a}, {"a_unit", a_unit}, {"t", t}, {"t_unit", t_unit},
               {"answer_unit", out_unit}};
}

void gen_ohms_law(SplitMix64& rng, int d, Item& item) {
  static const std::vector<int64_t> values = {10,  22,  33,   47,   56,   68,   82,   100,  120,  150, 220,
                                              330, 470, 560,  680,  820,  1000, 1200, 1500, 2200, 3300, 4700};
  static const std::array<const char*, 6> topologies = {"", "R1", "R1 + R2", "R1 || R2", "R1 + (R2 || R3)",
                                                        "(R1 || R2) + (R3 || R4)"};
  static const std::array<int, 6> count = {0, 1, 2, 2, 3, 4};
  const int64_t volts = rng.uniform(1, 24);
  std::vector<int64_t> r;
  for (int i = 0; i < count[static_cast<size_t>(d)]; ++i) r.push_back(rng.pick(values));
  auto shown = [&](int64_t ohm) {
    if (d >= 4 && ohm >= 1000) return fmt_rational(ohm, 1000, 3) + " kOhm";
    return to_string(ohm) + " Ohm";
  };
  auto name = [&](size_t i) { return "R" + to_string(i + 1) + " = " + shown(r[i]); };
  // exact total resistance num/den
  struct Q { int64_t n, d; };
  auto par = [](Q x, Q y) { Q z{x.n * y.n, x.n * y.d + y.n * x.d}; int64_t g = gcd64(z.n, z.d); return Q{z.n / g, z.d / g}; };
  auto ser = [](Q x, Q y) { Q z{x.n * y.d + y.n * x.d, x.d * y.d}; int64_t g = gcd64(z.n, z.d); return Q{z.n / g, z.d / g}; };
  Q total{0, 1};
  std::string desc, combine;
  auto R = [&](size_t i) { return Q{r[i], 1}; };
  auto qs = [](Q x) { return fmt_rational(x.n, x.d, 3); };
  if (d == 1) {
    total = R(0), desc = "a single resistor " + name(0);
    combine = "R_total = R1 = " + qs(total) + " Ohm.";
  } else if (d == 2) {
    total = ser(R(0), R(1)), desc = "two resistors in series, " + name(0) + " and " + name(1);
    combine = "R_total = R1 + R2 = " + qs(total) + " Ohm.";
  } else if (d == 3) {
    total = par(R(0), R(1)), desc = "two resistors in parallel, " + name(0) + " and " + name(1);
    combine = "R_total = R1*R2/(R1 + R2) = " + qs(total) + " Ohm.";
  } else if (d == 4) {
    const Q p = par(R(1), R(2));
    total = ser(R(0), p);
    desc = name(0) + " in series with the parallel pair " + name(1) + " and " + name(2);
    combine = "R2 || R3 = " + qs(p) + " Ohm. R_total = R1 + " + qs(p) + " = " + qs(total) + " Ohm.";
  } else {
    const Q p = par(R(0), R(1)), q = par(R(2), R(3));
    total = ser(p, q);
    desc = "two parallel pairs connected in series: " + name(0) + " parallel to " + name(1) + ", then " + name(2) +
           " parallel to " + name(3);
    combine = "R1 || R2 = " + qs(p) + " Ohm, R3 || R4 = " + qs(q) + " Ohm. R_total = " + qs(total) + " Ohm.";
  }
  // I [mA] = 1000 V / R_total
  item.answer = fmt_rational(1000 * volts * total.d, total.n, 3);
  item.prompt = "A " + to_string(volts) + " V battery is connected across " + desc +
                ". What current flows from the battery, in mA? Round to 3 decimal places.";
  item.answer_type = AnswerType::number;
  item.tolerance = 1e-3;
  item.reference_solution = combine + "\nI = V / R_total = " + to_string(volts) + " / " + qs(total) + " A = " +
                            item.answer + " mA.\nAnswer: " + item.answer;
  item.meta = {{"voltage_V", volts}, {"resistors_ohm", r}, {"topology", topologies[static_cast<size_t>(d)]}};
}

namespace {

struct Expr {
  int op = 0;  // 0 literal, else index into kOps; '~' unary handled by `invert`
  int64_t value = 0;
  bool invert = false;  // literal only: printed as ~literal
  int left = -1, right = -1;
};

const std::array<const char*, 10> kOps = {"", "+", "-", "*", "//", "%", "&", "|", "^", "<<"};
// op 10 is ">>" (kept out of the table above to keep indices readable)
const char* op_text(int op) { return op == 10 ? ">>" : kOps[static_cast<size_t>(op)]; }

struct ExprGen {
  SplitMix64& rng;
  int d;
  std::vector<Expr> nodes;
  std::vector<int> ops;

  int leaf(bool positive) {
    Expr e;
    e.value = (d == 1 || positive) ? rng.uniform(1, 50) : rng.uniform(-50, 50);
    if (e.value == 0) e.value = 7;
    if (d >= 5 && rng.chance(1, 4)) e.invert = true;
    nodes.push_back(e);
    return static_cast<int>(nodes.size()) - 1;
  }
  int build(int n_ops) {
    if (n_ops == 0) return leaf(false);
    Expr e;
    e.op = rng.pick(ops);
    if (e.op == 9 || e.op == 10) {
      e.left = build(n_ops - 1);
      Expr sh;
      sh.value = rng.uniform(1, 4);
      nodes.push_back(sh);
      e.right = static_cast<int>(nodes.size()) - 1;
    } else {
      const int left_ops = static_cast<int>(rng.uniform(0, n_ops - 1));
      e.left = build(left_ops);
      e.right = build(n_ops - 1 - left_ops);
    }
    nodes.push_back(e);
    return static_cast<int>(nodes.size()) - 1;
  }
};

struct EvalResult {
  bool ok = true;
  std::string steps;
};

int64_t eval(const std::vector<Expr>& nodes, int i, EvalResult& res) {
  const Expr& e = nodes[static_cast<size_t>(i)];
  if (e.op == 0) {
    if (!e.invert) return e.value;
    res.steps += "~" + to_string(e.value) + " = " + to_string(-e.value - 1) + "\n";
    return -e.value - 1;
  }
  const int64_t a = eval(nodes, e.left, res);
  const int64_t b = eval(nodes, e.right, res);
  int64_t v = 0;
  switch (e.op) {
    case 1: v = a + b; break;
    case 2: v = a - b; break;
    case 3: v = a * b; break;
    case 4:
    case 5:
      if (b == 0) {
        res.ok = false;
        return 0;
      }
      v = e.op == 4 ? floordiv(a, b) : a - b * floordiv(a, b);
      break;
    case 6: v = a & b; break;
    case 7: v = a | b; break;
    case 8: v = a ^ b; break;
    case 9: v = a * (int64_t{1} << b); break;
    case 10: v = floordiv(a, int64_t{1} << b); break;
  }
  if (v > 1000000000 || v < -1000000000) res.ok = false;
  res.steps += to_string(a) + " " + op_text(e.op) + " " + to_string(b) + " = " + to_string(v) + "\n";
  return v;
}

std::string print(const std::vector<Expr>& nodes, int i, bool top) {
  const Expr& e = nodes[static_cast<size_t>(i)];
  if (e.op == 0) return (e.invert ? "~" : "") + to_string(e.value);
  std::string s = print(nodes, e.left, false) + " " + op_text(e.op) + " " + print(nodes, e.right, false);
  return top ? s : "(" + s + ")";
}

}  // namespace

void gen_python_expression(SplitMix64& rng, int d, Item& item) {
  std::vector<int> ops = {1, 2, 4, 5};
  if (d >= 2) ops.push_back(3);
  if (d >= 3) ops.insert(ops.end(), {6, 7, 8});
  if (d >= 4) ops.insert(ops.end(), {9, 10});
  for (;;) {
    ExprGen g{rng, d, {}, ops};
    const int root = g.build(d + 1);
    EvalResult res;
    const int64_t value = eval(g.nodes, root, res);
    if (!res.ok) continue;  // a zero divisor or a huge intermediate: draw again
    const std::string expr = print(g.nodes, root, true);
    item.prompt = "In Python 3, what is the value of the expression `" + expr + "`?";
    item.answer = to_string(value);
    item.answer_type = AnswerType::integer;
    item.reference_solution = res.steps + "Answer: " + item.answer;
    item.meta = {{"expression", expr}};
    return;
  }
}

namespace {

struct Slice {
  bool has_start = false, has_stop = false;
  int64_t start = 0, stop = 0, step = 1;
};

// CPython's PySlice_AdjustIndices followed by iteration
std::vector<int64_t> slice_indices(int64_t len, const Slice& s) {
  const int64_t step = s.step;
  int64_t start, stop;
  auto adjust = [&](bool has, int64_t v, int64_t dflt) {
    if (!has) return dflt;
    if (v < 0) {
      v += len;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= len) {
      v = step < 0 ? len - 1 : len;
    }
    return v;
  };
  start = adjust(s.has_start, s.start, step < 0 ? len - 1 : 0);
  stop = adjust(s.has_stop, s.stop, step < 0 ? -1 : len);
  std::vector<int64_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(i);
  return out;
}

std::string slice_text(const Slice& s) {
  std::string out = "s[";
  if (s.has_start) out += to_string(s.start);
  out += ":";
  if (s.has_stop) out += to_string(s.stop);
  if (s.step != 1) out += ":" + to_string(s.step);
  return out + "]";
}

Slice random_slice(SplitMix64& rng, int d, int64_t len) {
  Slice s;
  if (d == 1) {
    s.has_start = rng.chance(3, 4), s.has_stop = true;
    s.start = rng.uniform(0, len - 2), s.stop = rng.uniform(s.start + 1, len);
    if (!s.has_start) s.start = 0;
  } else if (d == 2) {
    s.has_start = true, s.start = -rng.uniform(1, len - 1);
    s.has_stop = rng.chance(1, 2), s.stop = rng.chance(1, 2) ? -rng.uniform(1, 3) : rng.uniform(1, len);
  } else if (d == 3) {
    s.has_start = rng.chance(2, 3), s.start = rng.uniform(0, len / 2);
    s.has_stop = rng.chance(1, 2), s.stop = rng.uniform(-3, len);
    s.step = rng.uniform(2, 3);
  } else {
    s.has_start = rng.chance(1, 2), s.start = rng.uniform(-3, len - 1);
    s.has_stop = rng.chance(1, 2), s.stop = rng.uniform(-len, 2);
    s.step = -rng.uniform(1, 3);
  }
  return s;
}

}  // namespace

void gen_string_slice(SplitMix64& rng, int d, Item& item) {
  const int64_t len = 6 + d;
  std::vector<char> alphabet;
  for (char c = 'a'; c <= 'z'; ++c) alphabet.push_back(c);
  rng.shuffle(alphabet);
  const std::string s(alphabet.begin(), alphabet.begin() + len);
  for (;;) {
    std::vector<Slice> parts = {random_slice(rng, d == 5 ? 3 : d, len)};
    if (d == 5) parts.push_back(random_slice(rng, 4, len));
    std::string expr, value, sol;
    bool empty_part = false;
    for (const auto& p : parts) {
      const auto idx = slice_indices(len, p);
      empty_part = empty_part || idx.empty();
      std::string piece;
      std::vector<int64_t> ids(idx.begin(), idx.end());
      for (int64_t i : idx) piece += s[static_cast<size_t>(i)];
      if (!expr.empty()) expr += " + ";
      expr += slice_text(p);
      value += piece;
      sol += slice_text(p) + " takes indices " + (ids.empty() ? std::string("none") : join_ints(ids)) + " -> '" +
             piece + "'.\n";
    }
    if (empty_part) continue;
    item.prompt = "In Python 3, s = \"" + s + "\". What is the value of `" + expr +
                  "`? Give the resulting string without quotes.";
    item.answer = value;
    item.answer_type = AnswerType::string;
    item.reference_solution = "s has indices 0.." + to_string(len - 1) + ".\n" + sol + "Answer: " + value;
    item.meta = {{"s", s}, {"expression", expr}};
    return;
  }
}

void gen_shopping_total(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> goods = {
      "apples",        "loaves of bread", "cartons of milk", "boxes of cereal", "bags of rice",
      "jars of honey", "bottles of juice", "packs of pasta", "bars of soap",    "notebooks",
      "pens",          "rolls of tape",   "bags of coffee",  "tins of tomatoes", "blocks of cheese",
      "boxes of eggs", "bunches of bananas", "bags of flour", "bottles of water", "candles"};
  const int n = std::min(d + 1, 5);
  std::vector<std::string> names = goods;
  rng.shuffle(names);
  names.resize(static_cast<size_t>(n));
  std::vector<int64_t> qty, price;
  for (int i = 0; i < n; ++i) {
    qty.push_back(rng.uniform(1, 2 + d));
    price.push_back(5 * rng.uniform(10, 300));
  }
  int deal = -1;
  if (d >= 5) {
    deal = static_cast<int>(rng.below(static_cast<uint64_t>(n)));
    qty[static_cast<size_t>(deal)] = rng.uniform(3, 7);
  }
  std::string lines, sol;
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    if (i) lines += "; ";
    lines += to_string(qty[k]) + " " + names[k] + " at $" + fmt_cents(price[k]) + " each";
    int64_t paid = qty[k];
    if (i == deal) {
      paid = qty[k] - qty[k] / 3;
      sol += to_string(qty[k]) + " " + names[k] + " on 3-for-2: pay for " + to_string(paid) + ", ";
    }
    const int64_t line = paid * price[k];
    sol += to_string(paid) + " x $" + fmt_cents(price[k]) + " = $" + fmt_cents(line) + "\n";
    total += line;
  }
  std::string extra;
  int64_t coupon = 0;
  if (d >= 5) extra += " The " + names[static_cast<size_t>(deal)] + " are on a 3-for-2 offer: every third one is free.";
  if (d >= 4) {
    coupon = 100 * rng.uniform(1, 5);
    while (coupon >= total) coupon -= 100;
    if (coupon > 0) {
      extra += " A coupon takes $" + fmt_cents(coupon) + " off the total.";
      sol += "Before the coupon: $" + fmt_cents(total) + "; minus $" + fmt_cents(coupon) + "\n";
      total -= coupon;
    }
  }
  item.prompt = "A shopping list: " + lines + "." + extra + " What is the total cost in dollars?";
  item.answer = fmt_cents(total);
  item.answer_type = AnswerType::number;
  item.tolerance = 1e-6;
  item.reference_solution = sol + "Total: $" + item.answer + "\nAnswer: " + item.answer;
  json its = json::array();
  for (int i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    its.push_back({{"name", names[k]}, {"quantity", qty[k]}, {"unit_cents", price[k]}});
  }
  item.meta = {{"items", its}, {"deal_item", deal}, {"coupon_cents", coupon}};
}

void gen_time_difference(SplitMix64& rng, int d, Item& item) {
  item.answer_type = AnswerType::integer;
  if (d <= 2) {
    int64_t t1, t2, minutes;
    if (d == 1) {
      t1 = rng.uniform(6 * 60, 12 * 60 - 1);
      minutes = rng.uniform(20, 600);
      t2 = t1 + minutes;
      item.prompt = "A train leaves at " + fmt_clock(t1) + " and arrives at " + fmt_clock(t2) +
                    " the same day. How many minutes does the journey take?";
      item.reference_solution = fmt_clock(t2) + " is " + to_string(t2) + " min after midnight, " + fmt_clock(t1) +
                                " is " + to_string(t1) + ". " + to_string(t2) + " - " + to_string(t1) + " = " +
                                to_string(minutes) + ".";
    } else {
      t1 = rng.uniform(18 * 60, 24 * 60 - 1);
      minutes = rng.uniform(60, 600);
      while (t1 + minutes <= 24 * 60) minutes += 60;
      t2 = (t1 + minutes) % (24 * 60);
      item.prompt = "A night shift starts at " + fmt_clock(t1) + " and ends at " + fmt_clock(t2) +
                    " the next morning. How many minutes long is the shift?";
      item.reference_solution = "From " + fmt_clock(t1) + " to midnight: " + to_string(24 * 60 - t1) +
                                " min; from midnight to " + fmt_clock(t2) + ": " + to_string(t2) + " min. Total " +
                                to_string(minutes) + ".";
    }
    item.answer = to_string(minutes);
    item.reference_solution += "\nAnswer: " + item.answer;
    item.meta = {{"start", fmt_clock(t1)}, {"end", fmt_clock(t2)}, {"next_day", d == 2}};
    return;
  }
  const int64_t lo = days_from_civil(1950, 1, 1), hi = days_from_civil(2049, 12, 31);
  int64_t a, b;
  if (d == 3) {
    const int64_t year = rng.uniform(1950, 2049);
    const int64_t y0 = days_from_civil(year, 1, 1), y1 = days_from_civil(year, 12, 31);
    a = rng.uniform(y0, y1 - 1), b = rng.uniform(a + 1, y1);
  } else {
    const int64_t span = d == 4 ? 3 * 366 : 40 * 366;
    a = rng.uniform(lo, hi - span);
    b = a + rng.uniform(d == 4 ? 366 : 5 * 366, span);
  }
  item.prompt = "How many days are there from " + civil_from_days(a) + " to " + civil_from_days(b) +
                "? (The second date minus the first, in days.)";
  item.answer = to_string(b - a);
  item.reference_solution = "Days since 1970-01-01: " + civil_from_days(a) + " is day " + to_string(a) + ", " +
                            civil_from_days(b) + " is day " + to_string(b) + ". " + to_string(b) + " - " +
                            to_string(a) + " = " + item.answer + ".\nAnswer: " + item.answer;
  item.meta = {{"start", civil_from_days(a)}, {"end", civil_from_days(b)}};
}

}  // namespace metaprobe::probes::detail
