// Enumeration families: list or count, completely, every case meeting constraints.
#include <algorithm>
#include <array>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {
using json = nlohmann::json;
using std::to_string;

int64_t binom(int64_t n, int64_t k) {
  if (k < 0 || n < k) return 0;
  int64_t r = 1;
  for (int64_t i = 1; i <= k; ++i) r = r * (n - k + i) / i;
  return r;
}
}  // namespace

void gen_lattice_paths(SplitMix64& rng, int d, Item& item) {
  // d1 spans 1..5 (25 grids; it had 4 distinct items at 2..3), blocked points start at d2
  static const std::array<std::array<int64_t, 2>, 6> size = {{{0, 0}, {1, 5}, {3, 4}, {3, 5}, {4, 6}, {5, 7}}};
  const auto di = static_cast<size_t>(d);
  for (;;) {
    const int64_t w = rng.uniform(size[di][0], size[di][1]), h = rng.uniform(size[di][0], size[di][1]);
    std::set<std::pair<int64_t, int64_t>> blocked;
    while (static_cast<int>(blocked.size()) < d - 1) {
      const int64_t x = rng.uniform(0, w), y = rng.uniform(0, h);
      if ((x == 0 && y == 0) || (x == w && y == h)) continue;
      blocked.insert({x, y});
    }
    // own solver: dynamic programming over the grid
    std::vector<std::vector<int64_t>> ways(static_cast<size_t>(h + 1), std::vector<int64_t>(static_cast<size_t>(w + 1), 0));
    std::string rows;
    for (int64_t y = 0; y <= h; ++y) {
      std::vector<int64_t> row;
      for (int64_t x = 0; x <= w; ++x) {
        int64_t v = 0;
        if (blocked.count({x, y}) == 0) {
          if (x == 0 && y == 0) v = 1;
          if (x > 0) v += ways[static_cast<size_t>(y)][static_cast<size_t>(x - 1)];
          if (y > 0) v += ways[static_cast<size_t>(y - 1)][static_cast<size_t>(x)];
        }
        ways[static_cast<size_t>(y)][static_cast<size_t>(x)] = v;
        row.push_back(v);
      }
      rows += "y=" + to_string(y) + ": " + join_ints(row, " ") + "\n";
    }
    const int64_t count = ways[static_cast<size_t>(h)][static_cast<size_t>(w)];
    if (count == 0) continue;
    std::vector<std::string> bl;
    json bj = json::array();
    for (const auto& [x, y] : blocked) {
      bl.push_back("(" + to_string(x) + ", " + to_string(y) + ")");
      bj.push_back({x, y});
    }
    item.prompt = "How many shortest lattice paths go from (0, 0) to (" + to_string(w) + ", " + to_string(h) +
                  "), moving one unit right (+x) or up (+y) at each step" +
                  (bl.empty() ? std::string("?") : ", without passing through the blocked points " + join(bl, ", ") + "?");
    item.answer = to_string(count);
    item.answer_type = AnswerType::integer;
    item.reference_solution = "Paths to each point, row by row (blocked points get 0):\n" + rows + "Answer: " + item.answer;
    item.meta = {{"width", w}, {"height", h}, {"blocked", bj}};
    return;
  }
}

void gen_stars_and_bars(SplitMix64& rng, int d, Item& item) {
  // widened where the space was tiny (d1 had 12 distinct items, d2 8)
  static const std::array<std::array<int64_t, 2>, 6> vars = {{{0, 0}, {2, 3}, {3, 4}, {3, 4}, {4, 5}, {3, 4}}};
  static const std::array<std::array<int64_t, 2>, 6> total = {{{0, 0}, {2, 12}, {5, 14}, {8, 15}, {10, 20}, {8, 16}}};
  const auto di = static_cast<size_t>(d);
  for (;;) {
    const int64_t k = rng.uniform(vars[di][0], vars[di][1]), n = rng.uniform(total[di][0], total[di][1]);
    std::vector<int64_t> lower(static_cast<size_t>(k), d == 2 ? 1 : 0);
    int64_t upper = -1;
    if (d == 3 || d == 4) {
      for (auto& l : lower) l = rng.uniform(0, 3);
    } else if (d == 5) {
      const int64_t l = rng.uniform(0, 2);
      for (auto& x : lower) x = l;
      upper = l + rng.uniform(2, 5);
    }
    int64_t reduced = n;
    for (int64_t l : lower) reduced -= l;
    if (reduced < 0) continue;
    // own solver: dynamic programming over the variables
    std::vector<int64_t> ways(static_cast<size_t>(n + 1), 0);
    ways[0] = 1;
    for (int64_t i = 0; i < k; ++i) {
      std::vector<int64_t> next(static_cast<size_t>(n + 1), 0);
      const int64_t lo = lower[static_cast<size_t>(i)], hi = upper < 0 ? n : upper;
      for (int64_t s = 0; s <= n; ++s) {
        for (int64_t x = lo; x <= hi && s + x <= n; ++x) next[static_cast<size_t>(s + x)] += ways[static_cast<size_t>(s)];
      }
      ways = std::move(next);
    }
    const int64_t count = ways[static_cast<size_t>(n)];
    if (count == 0) continue;
    std::vector<std::string> xs;
    for (int64_t i = 1; i <= k; ++i) xs.push_back("x" + to_string(i));
    std::string eq = join(xs, " + ") + " = " + to_string(n);
    std::string cond, sol;
    if (d == 1) {
      cond = "non-negative integers";
    } else if (d == 2) {
      cond = "positive integers";
    } else if (d <= 4) {
      std::vector<std::string> c;
      for (int64_t i = 0; i < k; ++i) c.push_back(xs[static_cast<size_t>(i)] + " >= " + to_string(lower[static_cast<size_t>(i)]));
      cond = "integers with " + join(c, ", ");
    } else {
      cond = "integers with " + to_string(lower[0]) + " <= xi <= " + to_string(upper) + " for every i";
    }
    if (d >= 2) {
      sol = "Substitute yi = xi - (lower bound of xi): the yi are >= 0 and sum to " + to_string(reduced) + ".\n";
    }
    // the closed form, cross-checked against the DP
    int64_t formula = 0;
    if (upper < 0) {
      formula = binom(reduced + k - 1, k - 1);
      sol += "Stars and bars: C(" + to_string(reduced + k - 1) + ", " + to_string(k - 1) + ") = " + to_string(formula) + ".\n";
    } else {
      const int64_t cap = upper - lower[0] + 1;
      std::vector<std::string> terms;
      for (int64_t j = 0; j <= k && reduced - j * cap >= 0; ++j) {
        const int64_t term = binom(k, j) * binom(reduced - j * cap + k - 1, k - 1);
        formula += (j % 2 == 0 ? term : -term);
        terms.push_back((j % 2 == 0 ? "+ " : "- ") + to_string(binom(k, j)) + "*C(" +
                        to_string(reduced - j * cap + k - 1) + ", " + to_string(k - 1) + ")");
      }
      sol += "Each yi <= " + to_string(cap - 1) + "; inclusion-exclusion over the yi that exceed it: " + join(terms, " ") +
             " = " + to_string(formula) + ".\n";
    }
    if (formula != count) throw InvalidArgument("stars_and_bars: internal check failed (formula != count)");
    item.prompt = "How many solutions in " + cond + " does " + eq + " have?";
    item.answer = to_string(count);
    item.answer_type = AnswerType::integer;
    item.reference_solution = sol + "Answer: " + item.answer;
    item.meta = {{"n", n}, {"lower", lower}, {"upper", upper}};
    return;
  }
}

void gen_spectral_lines(SplitMix64& rng, int d, Item& item) {
  // d1-2: the level count varies (3 + d ± 1) and gaps come from a small alphabet, so the gold is not
  // C(n, 2) for one fixed n (d1 answered 6 in 81% of items before)
  const int n = d <= 2 ? 3 + d + static_cast<int>(rng.uniform(-1, 1)) : 3 + d;
  std::vector<int64_t> levels = {0};
  for (int i = 1; i < n; ++i) {
    // small gap alphabets make equal photon energies (coincidences) likely
    const int64_t gap = d <= 2 ? rng.uniform(1, 6) * 3 : rng.uniform(1, 4) * 5;
    levels.push_back(levels.back() + gap);
  }
  std::vector<int64_t> diffs;
  std::set<int64_t> distinct;
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      diffs.push_back(levels[static_cast<size_t>(j)] - levels[static_cast<size_t>(i)]);
      distinct.insert(diffs.back());
    }
  }
  item.prompt = "An atom has " + to_string(n) + " energy levels at " + join_ints(levels) +
                " meV. An electron can drop from any level to any lower level, emitting one photon whose energy is "
                "the difference. How many distinct photon energies are possible?";
  item.answer = to_string(distinct.size());
  item.answer_type = AnswerType::integer;
  item.reference_solution = "Differences: " + join_ints(diffs) + ".\nDistinct: " +
                            join_ints(std::vector<int64_t>(distinct.begin(), distinct.end())) + " (" + item.answer +
                            " values).\nAnswer: " + item.answer;
  item.meta = {{"levels_meV", levels}};
}

void gen_punnett(SplitMix64& rng, int d, Item& item) {
  // one more gene per level (d1 = d2 and d3 = d4 before), gene letters drawn from the alphabet
  static const std::array<int, 6> genes = {0, 1, 2, 3, 4, 5};
  const int k = genes[static_cast<size_t>(d)];
  const bool phenotypes = rng.chance(1, 2);
  const int first_letter = static_cast<int>(rng.below(static_cast<uint64_t>(26 - k + 1)));
  std::string p1, p2, sol;
  int64_t total = 1;
  std::vector<std::string> factors;
  for (int g = 0; g < k; ++g) {
    const char up = static_cast<char>('A' + first_letter + g), lo = static_cast<char>('a' + first_letter + g);
    auto genotype = [&](uint64_t r) { return r == 0 ? std::string{up, up} : r == 1 ? std::string{up, lo} : std::string{lo, lo}; };
    const std::string a = genotype(rng.below(3)), b = genotype(rng.below(3));
    p1 += a;
    p2 += b;
    std::set<std::string> kinds;
    for (char x : a) {
      for (char y : b) {
        std::string child{x, y};
        if (child[0] > child[1]) std::swap(child[0], child[1]);  // upper case sorts first
        kinds.insert(phenotypes ? (child[0] == up ? "dominant" : "recessive") : child);
      }
    }
    const int64_t c = static_cast<int64_t>(kinds.size());
    total *= c;
    factors.push_back(to_string(c));
    sol += "Gene " + std::string(1, up) + ": " + a + " x " + b + " gives " +
           join(std::vector<std::string>(kinds.begin(), kinds.end()), ", ") + " (" + to_string(c) + ").\n";
  }
  const std::string what = phenotypes ? "phenotypes" : "genotypes";
  item.prompt = "In the cross " + p1 + " x " + p2 + ", with independently inherited genes and complete dominance of "
                "the upper-case allele, how many distinct " + what + " can the offspring have?";
  item.answer = to_string(total);
  item.answer_type = AnswerType::integer;
  item.reference_solution = sol + (k > 1 ? "Total " + join(factors, " * ") + " = " + item.answer + ".\n" : "") +
                            "Answer: " + item.answer;
  item.meta = {{"parent1", p1}, {"parent2", p2}, {"count", what}};
}

namespace {

const std::array<const char*, 3> kLoopVars = {"i", "j", "k"};

struct Bound {
  int var = -1;  // -1: constant c; otherwise value of loop variable `var` plus c
  int64_t c = 0;
  int64_t eval(const std::vector<int64_t>& vals) const { return var < 0 ? c : vals[static_cast<size_t>(var)] + c; }
  std::string text() const {
    if (var < 0) return to_string(c);
    std::string s = kLoopVars[static_cast<size_t>(var)];
    if (c > 0) s += " + " + to_string(c);
    if (c < 0) s += " - " + to_string(-c);
    return s;
  }
};

struct Loop {
  Bound start, stop;
  int64_t step = 1;
  std::string header(size_t depth) const {
    std::string r = "range(";
    if (!(start.var < 0 && start.c == 0 && step == 1)) r += start.text() + ", ";
    r += stop.text();
    if (step != 1) r += ", " + to_string(step);
    return std::string(depth * 4, ' ') + "for " + kLoopVars[depth] + " in " + r + "):\n";
  }
};

struct Cond {
  bool on = false;
  int64_t m = 2, r = 0;
  std::string text(size_t depth) const {
    std::string sum;
    for (size_t v = 0; v < depth; ++v) sum += (v ? " + " : "") + std::string(kLoopVars[v]);
    return "(" + sum + ") % " + to_string(m) + " == " + to_string(r);
  }
  bool eval(const std::vector<int64_t>& vals) const {
    int64_t s = 0;
    for (int64_t v : vals) s += v;
    return ((s % m) + m) % m == r;
  }
};

// Visits every innermost iteration; fn(vals) runs where the condition holds.
template <class Fn>
void run_loops(const std::vector<Loop>& loops, const Cond& cond, std::vector<int64_t>& vals, size_t depth, Fn&& fn) {
  if (depth == loops.size()) {
    if (!cond.on || cond.eval(vals)) fn(vals);
    return;
  }
  const Loop& l = loops[depth];
  for (int64_t v = l.start.eval(vals); v < l.stop.eval(vals); v += l.step) {
    vals.push_back(v);
    run_loops(loops, cond, vals, depth + 1, fn);
    vals.pop_back();
  }
}

std::vector<Loop> random_loops(SplitMix64& rng, int d) {
  std::vector<Loop> loops;
  Loop outer;
  outer.start.c = rng.uniform(0, 3);
  outer.stop.c = outer.start.c + rng.uniform(d == 1 ? 5 : 3, d == 1 ? 25 : 6);
  outer.step = d == 1 ? rng.uniform(1, 4) : 1;
  loops.push_back(outer);
  if (d >= 2) {
    Loop inner;
    if (d == 2) {
      inner.start.c = rng.uniform(0, 2);
      inner.stop.c = inner.start.c + rng.uniform(2, 5);
    } else if (rng.chance(1, 2)) {
      inner.start = {0, rng.uniform(0, 1)};  // range(i [+ c], stop)
      inner.stop.c = rng.uniform(3, 8);
    } else {
      inner.stop = {0, rng.uniform(-1, 1)};  // range(i [+- c])
    }
    loops.push_back(inner);
  }
  if (d >= 5) {
    Loop third;
    third.stop = {1, rng.uniform(0, 1)};  // range(j [+ c])
    loops.push_back(third);
  }
  return loops;
}

}  // namespace

void gen_loop_count(SplitMix64& rng, int d, Item& item) {
  for (;;) {
    const auto loops = random_loops(rng, d);
    Cond cond;
    if (d >= 4) {
      cond.on = true;
      cond.m = rng.uniform(2, 4);
      cond.r = rng.uniform(0, cond.m - 1);
    }
    std::vector<int64_t> vals;
    std::map<int64_t, int64_t> per_outer;
    int64_t count = 0;
    run_loops(loops, cond, vals, 0, [&](const std::vector<int64_t>& v) {
      ++count;
      ++per_outer[v[0]];
    });
    if (count == 0) continue;
    std::string code = "count = 0\n";
    for (size_t i = 0; i < loops.size(); ++i) code += loops[i].header(i);
    std::string indent(loops.size() * 4, ' ');
    if (cond.on) {
      code += indent + "if " + cond.text(loops.size()) + ":\n";
      indent += "    ";
    }
    code += indent + "count += 1\nprint(count)\n";
    std::string sol;
    if (d == 1) {
      std::vector<int64_t> values;
      for (int64_t v = loops[0].start.c; v < loops[0].stop.c; v += loops[0].step) values.push_back(v);
      sol = "i takes the values " + join_ints(values) + ": " + to_string(count) + " iterations.\n";
    } else {
      std::vector<std::string> parts;
      for (int64_t v = loops[0].start.c; v < loops[0].stop.c; v += loops[0].step) {
        parts.push_back("i=" + to_string(v) + ": " + to_string(per_outer[v]));
      }
      sol = "Runs per value of i: " + join(parts, ", ") + "; total " + to_string(count) + ".\n";
    }
    item.prompt = "What does this Python program print?\n```\n" + code + "```";
    item.answer = to_string(count);
    item.answer_type = AnswerType::integer;
    item.reference_solution = sol + "Answer: " + item.answer;
    item.meta = {{"code", code}};
    return;
  }
}

void gen_loop_outputs(SplitMix64& rng, int d, Item& item) {
  for (;;) {
    std::vector<Loop> loops = random_loops(rng, d);
    if (d == 1) loops[0].stop.c = loops[0].start.c + rng.uniform(3, 12);
    Cond cond;
    if (d >= 4) {
      cond.on = true;
      cond.m = rng.uniform(2, 3);
      cond.r = rng.uniform(0, cond.m - 1);
    }
    // printed expression: a linear combination of the loop variables plus a constant
    std::vector<int64_t> coef;
    for (size_t i = 0; i < loops.size(); ++i) coef.push_back(rng.uniform(1, 3));
    const int64_t add = rng.uniform(-3, 3);
    std::string expr;
    for (size_t i = 0; i < loops.size(); ++i) {
      if (i) expr += " + ";
      expr += (coef[i] == 1 ? "" : to_string(coef[i]) + " * ") + kLoopVars[i];
    }
    if (add > 0) expr += " + " + to_string(add);
    if (add < 0) expr += " - " + to_string(-add);
    std::vector<int64_t> outs;
    std::vector<std::string> trace;
    std::vector<int64_t> vals;
    run_loops(loops, cond, vals, 0, [&](const std::vector<int64_t>& v) {
      int64_t o = add;
      std::string at;
      for (size_t i = 0; i < v.size(); ++i) {
        o += coef[i] * v[i];
        at += (i ? "," : "") + std::string(kLoopVars[i]) + "=" + to_string(v[i]);
      }
      outs.push_back(o);
      trace.push_back(at + ": " + to_string(o));
    });
    if (outs.empty() || outs.size() > 16) continue;
    std::string code;
    for (size_t i = 0; i < loops.size(); ++i) code += loops[i].header(i);
    std::string indent(loops.size() * 4, ' ');
    if (cond.on) {
      code += indent + "if " + cond.text(loops.size()) + ":\n";
      indent += "    ";
    }
    code += indent + "print(" + expr + ")\n";
    item.prompt = "List every value this Python program prints, in order, separated by commas.\n```\n" + code + "```";
    item.answer = join_ints(outs);
    item.answer_type = AnswerType::list;
    item.ordered = true;
    item.reference_solution = join(trace, "; ") + ".\nAnswer: " + item.answer;
    item.meta = {{"code", code}};
    return;
  }
}

namespace {

const std::vector<std::string>& word_bank() {
  static const std::vector<std::string> words = {
      "apple",  "river",   "stone",  "garden", "window", "silver", "travel", "bright", "candle", "forest",
      "music",  "planet",  "ocean",  "letter", "market", "winter", "summer", "basket", "pepper", "rabbit",
      "tiger",  "lemon",   "cloud",  "bridge", "castle", "dragon", "mirror", "pencil", "rocket", "saddle",
      "table",  "tunnel",  "valley", "wallet", "yellow", "zebra",  "anchor", "butter", "copper", "desert",
      "engine", "feather", "ginger", "harbor", "island", "jacket", "kettle", "ladder", "meadow", "needle",
      "orange", "puzzle",  "quiet",  "ribbon", "sunset", "thread", "umbrella", "velvet", "walnut", "cat",
      "dog",    "sun",     "map",    "cup",    "hat",    "pen",    "box",    "key",    "owl",    "ant",
      "egg",    "ice",     "jam",    "kite",   "lamp",   "moon",   "nest",   "pear",   "rose",   "ship",
      "tree",   "vase",    "wolf",   "yarn",   "bell",   "coin",   "door",   "fish",   "goat",   "hill",
      "road",   "sand",    "star",   "seed",   "snow",   "leaf",   "bread",  "chair",  "grass",  "horse"};
  return words;
}

struct Property {
  int kind = 0;  // 0 starts with, 1 longer than, 2 contains, 3 ends with
  char letter = 'a';
  int64_t length = 4;
  bool test(const std::string& w) const {
    switch (kind) {
      case 0: return w.front() == letter;
      case 1: return static_cast<int64_t>(w.size()) > length;
      case 2: return w.find(letter) != std::string::npos;
      default: return w.back() == letter;
    }
  }
  std::string text() const {
    const std::string l = std::string("'") + letter + "'";
    switch (kind) {
      case 0: return "start with the letter " + l;
      case 1: return "have more than " + to_string(length) + " letters";
      case 2: return "contain the letter " + l;
      default: return "end with the letter " + l;
    }
  }
  json to_json() const {
    static const std::array<const char*, 4> names = {"starts_with", "longer_than", "contains", "ends_with"};
    json j = {{"kind", names[static_cast<size_t>(kind)]}};
    if (kind == 1) {
      j["length"] = length;
    } else {
      j["letter"] = std::string(1, letter);
    }
    return j;
  }
};

Property random_property(SplitMix64& rng, int kind, const std::vector<std::string>& words) {
  Property p;
  p.kind = kind;
  const std::string& w = rng.pick(words);
  if (kind == 0) p.letter = w.front();
  if (kind == 2) p.letter = w[static_cast<size_t>(rng.below(w.size()))];
  if (kind == 3) p.letter = w.back();
  if (kind == 1) p.length = rng.uniform(3, 6);
  return p;
}

struct Passage {
  std::vector<std::string> words;
  std::vector<Property> props;
  std::string text;
  std::string property_text;
};

Passage make_passage(SplitMix64& rng, int d, size_t n_words, bool distinct) {
  Passage p;
  if (distinct) {
    std::vector<std::string> bank = word_bank();
    rng.shuffle(bank);
    p.words.assign(bank.begin(), bank.begin() + static_cast<long>(n_words));
  } else {
    for (size_t i = 0; i < n_words; ++i) p.words.push_back(rng.pick(word_bank()));
  }
  // sentences of 4 to 8 words; the first word capitalised, a full stop at the end
  size_t i = 0;
  while (i < p.words.size()) {
    const size_t len = std::min<size_t>(p.words.size() - i, static_cast<size_t>(rng.uniform(4, 8)));
    for (size_t k = 0; k < len; ++k) {
      std::string w = p.words[i + k];
      if (k == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
      if (!p.text.empty()) p.text += ' ';
      p.text += w;
    }
    p.text += '.';
    i += len;
  }
  std::vector<int> kinds = {0, 1, 2, 3};
  if (d == 1) {
    p.props.push_back(random_property(rng, 0, p.words));
  } else if (d == 2) {
    p.props.push_back(random_property(rng, 1, p.words));
  } else if (d == 3) {
    p.props.push_back(random_property(rng, rng.chance(1, 2) ? 2 : 3, p.words));
  } else {
    rng.shuffle(kinds);
    p.props.push_back(random_property(rng, kinds[0], p.words));
    p.props.push_back(random_property(rng, kinds[1], p.words));
  }
  p.property_text = p.props[0].text();
  if (p.props.size() > 1) p.property_text += " and " + p.props[1].text();
  return p;
}

bool matches(const Passage& p, const std::string& w) {
  for (const auto& prop : p.props) {
    if (!prop.test(w)) return false;
  }
  return true;
}

json props_json(const Passage& p) {
  json j = json::array();
  for (const auto& prop : p.props) j.push_back(prop.to_json());
  return j;
}

}  // namespace

void gen_count_words(SplitMix64& rng, int d, Item& item) {
  // The count is drawn first (1..3 at d1, 1..4 above) and passages are drawn until one has it (at most 64
  // tries), so no count dominates (d1 answered 1 in 48% of items before).
  const int64_t target = rng.uniform(1, d == 1 ? 3 : 4);
  for (int tries = 0;; ++tries) {
    const Passage p = make_passage(rng, d, static_cast<size_t>(10 + 5 * d), false);
    std::vector<std::string> hits;
    for (const auto& w : p.words) {
      if (matches(p, w)) hits.push_back(w);
    }
    if (hits.empty()) continue;
    if (static_cast<int64_t>(hits.size()) != target && tries < 64) continue;
    item.prompt = "Passage: " + p.text + "\nHow many words of the passage " + p.property_text +
                  "? Count every occurrence; ignore case and punctuation.";
    item.answer = to_string(hits.size());
    item.answer_type = AnswerType::integer;
    item.reference_solution = "Matching words: " + join(hits, ", ") + ".\nCount: " + item.answer + ".\nAnswer: " + item.answer;
    item.meta = {{"properties", props_json(p)}};
    return;
  }
}

void gen_list_words(SplitMix64& rng, int d, Item& item) {
  for (;;) {
    const Passage p = make_passage(rng, d, static_cast<size_t>(8 + 4 * d), true);
    std::vector<std::string> hits;
    for (const auto& w : p.words) {
      if (matches(p, w)) hits.push_back(w);
    }
    if (hits.empty()) continue;
    item.prompt = "Passage: " + p.text + "\nList, in order of appearance, the words of the passage that " +
                  p.property_text + ". Ignore case and punctuation; give the words in lower case, separated by commas.";
    item.answer = join(hits, ", ");
    item.answer_type = AnswerType::list;
    item.ordered = true;
    item.reference_solution = "Checking each word in order: " + join(hits, ", ") + " match.\nAnswer: " + item.answer;
    item.meta = {{"properties", props_json(p)}};
    return;
  }
}

}  // namespace metaprobe::probes::detail

namespace metaprobe::probes::detail {

// Note [predicate enumeration]: the coding cell's enumeration is a search over an input domain, not a program
// trace: which x in range(a, b) make a Python condition True. The answer follows from checking every case
// (counting or listing them), which is what enumeration asks; loop_count / loop_outputs, which only run a
// program, are simulation items. Difficulty: one atom over 10-20 values (d1), two joined by `and` (d2), `or`
// over a wider range (d3), three atoms with `not` (d4), four atoms over up to 90 values (d5).
namespace {

struct Atom {
  int kind = 0;  // 0 x % m == r, 1 x % m != r, 2 x > c, 3 x <= c, 4 x % 10 == r, 5 (x // k) % 2 == 1
  int64_t m = 2, r = 0;
  std::string text() const {
    switch (kind) {
      case 0: return "x % " + std::to_string(m) + " == " + std::to_string(r);
      case 1: return "x % " + std::to_string(m) + " != " + std::to_string(r);
      case 2: return "x > " + std::to_string(r);
      case 3: return "x <= " + std::to_string(r);
      case 4: return "x % 10 == " + std::to_string(r);
      default: return "(x // " + std::to_string(m) + ") % 2 == 1";
    }
  }
  bool eval(int64_t x) const {  // x >= 0: Python's % and // agree with C++'s here
    switch (kind) {
      case 0: return x % m == r;
      case 1: return x % m != r;
      case 2: return x > r;
      case 3: return x <= r;
      case 4: return x % 10 == r;
      default: return (x / m) % 2 == 1;
    }
  }
};

struct Predicate {
  int64_t lo = 0, hi = 10;  // range(lo, hi)
  std::vector<Atom> atoms;
  std::vector<std::string> ops;  // between atoms: "and" / "or"
  bool negate_first = false;
  std::string text() const {
    std::string out;
    for (size_t i = 0; i < atoms.size(); ++i) {
      if (i) out += " " + ops[i - 1] + " ";
      out += i == 0 && negate_first ? "not (" + atoms[i].text() + ")" : atoms[i].text();
    }
    return out;
  }
  // Python precedence: not > and > or. Evaluated as or-of-and-groups.
  bool eval(int64_t x) const {
    bool any = false, group = true;
    for (size_t i = 0; i < atoms.size(); ++i) {
      bool v = atoms[i].eval(x);
      if (i == 0 && negate_first) v = !v;
      if (i > 0 && ops[i - 1] == "or") {
        any = any || group;
        group = true;
      }
      group = group && v;
    }
    return any || group;
  }
  std::vector<int64_t> matches() const {
    std::vector<int64_t> out;
    for (int64_t x = lo; x < hi; ++x)
      if (eval(x)) out.push_back(x);
    return out;
  }
};

Atom random_atom(SplitMix64& rng, int64_t lo, int64_t hi) {
  Atom a;
  a.kind = static_cast<int>(rng.below(6));
  a.m = rng.uniform(2, 7);
  if (a.kind <= 1) a.r = rng.uniform(0, a.m - 1);
  if (a.kind == 2 || a.kind == 3) a.r = rng.uniform(lo + 1, hi - 2);
  if (a.kind == 4) a.r = rng.uniform(0, 9);
  if (a.kind == 5) a.m = rng.uniform(2, 5);
  return a;
}

Predicate random_predicate(SplitMix64& rng, int d, size_t max_matches) {
  static const std::array<std::array<int64_t, 2>, 6> width = {{{0, 0}, {10, 20}, {12, 30}, {20, 45}, {25, 60}, {40, 90}}};
  for (;;) {
    Predicate p;
    const auto di = static_cast<size_t>(d);
    p.lo = rng.uniform(0, 30);
    p.hi = p.lo + rng.uniform(width[di][0], width[di][1]);
    const size_t n_atoms = d == 1 ? 1 : d <= 3 ? 2 : d == 4 ? 3 : 4;
    for (size_t i = 0; i < n_atoms; ++i) p.atoms.push_back(random_atom(rng, p.lo, p.hi));
    for (size_t i = 1; i < n_atoms; ++i) p.ops.push_back(d == 2 ? "and" : d == 3 ? "or" : rng.chance(1, 2) ? "and" : "or");
    p.negate_first = d >= 4 && rng.chance(1, 2);
    const auto m = p.matches();
    // every atom must matter somewhere in the range, and the answer must be neither empty nor everything
    if (m.empty() || m.size() > max_matches || static_cast<int64_t>(m.size()) == p.hi - p.lo) continue;
    return p;
  }
}

json predicate_meta(const Predicate& p) {
  return {{"condition", p.text()}, {"start", p.lo}, {"stop", p.hi}};
}

}  // namespace

void gen_predicate_count(SplitMix64& rng, int d, Item& item) {
  const Predicate p = random_predicate(rng, d, 1000);
  const auto m = p.matches();
  item.prompt = "For how many integers x in range(" + std::to_string(p.lo) + ", " + std::to_string(p.hi) +
                ") is the Python condition `" + p.text() + "` True?";
  item.answer = std::to_string(m.size());
  item.answer_type = AnswerType::integer;
  item.reference_solution = "Checking every x from " + std::to_string(p.lo) + " to " + std::to_string(p.hi - 1) +
                            ", it holds for " + (m.size() <= 12 ? join_ints(m) : std::to_string(m.size()) + " values") +
                            ".\nAnswer: " + item.answer;
  item.meta = predicate_meta(p);
}

void gen_predicate_values(SplitMix64& rng, int d, Item& item) {
  const Predicate p = random_predicate(rng, d, 16);
  const auto m = p.matches();
  item.prompt = "List, in increasing order, every integer x in range(" + std::to_string(p.lo) + ", " +
                std::to_string(p.hi) + ") for which the Python condition `" + p.text() + "` is True.";
  item.answer = join_ints(m);
  item.answer_type = AnswerType::list;
  item.ordered = true;
  item.reference_solution = "Checking every x from " + std::to_string(p.lo) + " to " + std::to_string(p.hi - 1) +
                            ": " + join_ints(m) + ".\nAnswer: " + item.answer;
  item.meta = predicate_meta(p);
}

}  // namespace metaprobe::probes::detail
