// Simulation families: step through a process and report its state.
#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {
using json = nlohmann::json;
using std::to_string;
}  // namespace

void gen_recurrence(SplitMix64& rng, int d, Item& item) {
  item.answer_type = AnswerType::integer;
  std::string sol;
  if (d <= 3) {
    const int64_t m = d == 1 ? 10 : d == 2 ? rng.uniform(11, 30) : rng.uniform(31, 97);
    const int64_t a = rng.uniform(2, 9), b = rng.uniform(1, m - 1), x0 = rng.uniform(0, m - 1);
    const int64_t n = 2 * d + 1;
    int64_t x = x0;
    for (int64_t k = 1; k <= n; ++k) {
      const int64_t next = (a * x + b) % m;
      sol += "x" + to_string(k) + " = (" + to_string(a) + "*" + to_string(x) + " + " + to_string(b) + ") mod " +
             to_string(m) + " = " + to_string(next) + "\n";
      x = next;
    }
    item.prompt = "A sequence starts with x0 = " + to_string(x0) + " and follows x(k+1) = (" + to_string(a) +
                  "*x(k) + " + to_string(b) + ") mod " + to_string(m) + ". What is x" + to_string(n) + "?";
    item.answer = to_string(x);
    item.meta = {{"order", 1}, {"a", a}, {"b", b}, {"m", m}, {"x0", x0}, {"n", n}};
  } else {
    const int64_t m = rng.uniform(20, 97), p = rng.uniform(1, 5), q = rng.uniform(1, 5);
    const int64_t x0 = rng.uniform(0, m - 1), x1 = rng.uniform(0, m - 1);
    const int64_t n = d == 4 ? 8 : 12;
    int64_t prev = x0, cur = x1;
    for (int64_t k = 2; k <= n; ++k) {
      const int64_t next = (p * cur + q * prev) % m;
      sol += "x" + to_string(k) + " = (" + to_string(p) + "*" + to_string(cur) + " + " + to_string(q) + "*" +
             to_string(prev) + ") mod " + to_string(m) + " = " + to_string(next) + "\n";
      prev = cur;
      cur = next;
    }
    item.prompt = "A sequence starts with x0 = " + to_string(x0) + ", x1 = " + to_string(x1) + " and follows x(k+1) = (" +
                  to_string(p) + "*x(k) + " + to_string(q) + "*x(k-1)) mod " + to_string(m) + ". What is x" +
                  to_string(n) + "?";
    item.answer = to_string(cur);
    item.meta = {{"order", 2}, {"p", p}, {"q", q}, {"m", m}, {"x0", x0}, {"x1", x1}, {"n", n}};
  }
  item.reference_solution = sol + "Answer: " + item.answer;
}

void gen_grid_walk(SplitMix64& rng, int d, Item& item) {
  static const std::array<const char*, 4> dirs = {"up", "down", "left", "right"};
  static const std::array<int64_t, 6> max_step = {0, 1, 2, 3, 5, 5};
  const int n = 3 * d + 1;
  int64_t x = 0, y = 0;
  std::vector<std::string> moves, trail;
  json mv = json::array();
  for (int i = 0; i < n; ++i) {
    const int dir = static_cast<int>(rng.below(4));
    const int64_t k = rng.uniform(1, max_step[static_cast<size_t>(d)]);
    if (dir == 0) y += k;
    if (dir == 1) y -= k;
    if (dir == 2) x -= k;
    if (dir == 3) x += k;
    moves.push_back(std::string(dirs[static_cast<size_t>(dir)]) + " " + to_string(k));
    trail.push_back("(" + to_string(x) + ", " + to_string(y) + ")");
    mv.push_back({dirs[static_cast<size_t>(dir)], k});
  }
  item.prompt = "A token starts at (0, 0) on a grid. 'up' adds to y, 'down' subtracts from y, 'right' adds to x "
                "and 'left' subtracts from x. It moves: " + join(moves, ", ") +
                ". What is its final position? Give x and y separated by a comma.";
  item.answer = to_string(x) + ", " + to_string(y);
  item.answer_type = AnswerType::list;
  item.ordered = true;
  item.reference_solution = "Positions: " + join(trail, ", ") + ".\nAnswer: " + item.answer;
  item.meta = {{"moves", mv}};
}

void gen_stepped_motion(SplitMix64& rng, int d, Item& item) {
  const int64_t x0 = rng.uniform(-10, 10), v0 = rng.uniform(-5, 5);
  int64_t a1 = rng.uniform(-3, 3);
  if (a1 == 0) a1 = 2;
  const int64_t n = d == 5 ? 10 : d + 2;
  int64_t a2 = a1, change = n + 1;  // acceleration a2 from tick `change` on
  if (d >= 4) {
    change = rng.uniform(2, n - 1);
    while (a2 == a1) a2 = rng.uniform(-3, 3);
  }
  int64_t x = x0, v = v0;
  std::string sol;
  for (int64_t t = 1; t <= n; ++t) {
    v += t < change ? a1 : a2;
    x += v;
    sol += "tick " + to_string(t) + ": v = " + to_string(v) + ", x = " + to_string(x) + "\n";
  }
  std::string accel = "The acceleration is " + to_string(a1) + " on every tick.";
  if (d >= 4) {
    accel = "The acceleration is " + to_string(a1) + " on ticks 1 to " + to_string(change - 1) + " and " +
            to_string(a2) + " from tick " + to_string(change) + " on.";
  }
  item.prompt = "A particle on a line starts at position " + to_string(x0) + " with velocity " + to_string(v0) +
                ". On every tick, first its velocity increases by the acceleration, then its position increases by "
                "the new velocity. " + accel + " What is its position after " + to_string(n) + " ticks?";
  item.answer = to_string(x);
  item.answer_type = AnswerType::integer;
  item.reference_solution = sol + "Answer: " + item.answer;
  item.meta = {{"x0", x0}, {"v0", v0}, {"a1", a1}, {"a2", a2}, {"change_tick", change}, {"ticks", n}};
}

void gen_bouncing_particle(SplitMix64& rng, int d, Item& item) {
  static const std::array<std::array<int64_t, 2>, 6> box = {{{0, 0}, {10, 10}, {12, 20}, {15, 30}, {20, 40}, {25, 60}}};
  static const std::array<std::array<int64_t, 2>, 6> speed = {{{0, 0}, {1, 2}, {1, 3}, {2, 4}, {2, 6}, {3, 8}}};
  static const std::array<std::array<int64_t, 2>, 6> ticks = {{{0, 0}, {4, 8}, {8, 12}, {12, 20}, {20, 30}, {30, 60}}};
  const auto di = static_cast<size_t>(d);
  const int64_t len = rng.uniform(box[di][0], box[di][1]);
  int64_t v = rng.uniform(speed[di][0], speed[di][1]) * (rng.chance(1, 2) ? 1 : -1);
  const int64_t x0 = rng.uniform(0, len), t_end = rng.uniform(ticks[di][0], ticks[di][1]), v0 = v;
  int64_t x = x0;
  std::vector<std::string> trail;
  for (int64_t t = 0; t < t_end; ++t) {
    x += v;
    bool bounce = false;
    if (x > len) x = 2 * len - x, v = -v, bounce = true;
    if (x < 0) x = -x, v = -v, bounce = true;
    trail.push_back(to_string(x) + (bounce ? "(bounce)" : ""));
  }
  item.prompt = "A particle moves inside a box that spans positions 0 to " + to_string(len) +
                ". It starts at position " + to_string(x0) + " with velocity " + to_string(v0) +
                " per tick (positive means towards " + to_string(len) +
                "). Each tick it moves by its velocity; if that would take it past a wall, it travels the remaining "
                "distance back from the wall and its velocity reverses. Where is it after " + to_string(t_end) +
                " ticks?";
  item.answer = to_string(x);
  item.answer_type = AnswerType::integer;
  item.reference_solution = "Positions: " + join(trail, ", ") + ".\nAnswer: " + item.answer;
  item.meta = {{"length", len}, {"x0", x0}, {"v0", v0}, {"ticks", t_end}};
}

namespace {

struct Operand {
  int kind = 0;  // 0 constant, 1 variable, 2 loop index i, 3 inner index j
  int64_t c = 0;
  int var = 0;
};

struct Stmt {
  int kind = 0;  // 0 augmented assignment, 1 if, 2 inner for j in range(2)
  int target = 0;
  char op = '+';
  Operand rhs;
  int cond = 0;  // 0: i % 2 == 0, 1: vars[0] > vars[1], 2: i > c
  int64_t cond_c = 0;
  std::vector<Stmt> body;
};

const std::array<const char*, 3> kVars = {"a", "b", "c"};

struct Program {
  int n_vars = 2;
  std::vector<int64_t> init;
  int64_t loops = 2;
  std::vector<Stmt> body;
  int printed = 0;
};

std::string operand_text(const Operand& o) {
  if (o.kind == 0) return to_string(o.c);
  if (o.kind == 1) return kVars[static_cast<size_t>(o.var)];
  return o.kind == 2 ? "i" : "j";
}

void print_stmts(const std::vector<Stmt>& body, const std::string& indent, std::string& out) {
  for (const auto& s : body) {
    if (s.kind == 0) {
      out += indent + kVars[static_cast<size_t>(s.target)] + " " + s.op + "= " + operand_text(s.rhs) + "\n";
    } else if (s.kind == 1) {
      std::string cond = s.cond == 0 ? "i % 2 == 0" : s.cond == 1 ? "a > b" : "i > " + to_string(s.cond_c);
      out += indent + "if " + cond + ":\n";
      print_stmts(s.body, indent + "    ", out);
    } else {
      out += indent + "for j in range(2):\n";
      print_stmts(s.body, indent + "    ", out);
    }
  }
}

bool run_stmts(const std::vector<Stmt>& body, std::vector<int64_t>& vars, int64_t i, int64_t j) {
  for (const auto& s : body) {
    if (s.kind == 0) {
      const int64_t r = s.rhs.kind == 0 ? s.rhs.c : s.rhs.kind == 1 ? vars[static_cast<size_t>(s.rhs.var)]
                                                    : s.rhs.kind == 2 ? i : j;
      int64_t& t = vars[static_cast<size_t>(s.target)];
      t = s.op == '+' ? t + r : s.op == '-' ? t - r : t * r;
      if (t > 1000000 || t < -1000000) return false;
    } else if (s.kind == 1) {
      const bool c = s.cond == 0 ? i % 2 == 0 : s.cond == 1 ? vars[0] > vars[1] : i > s.cond_c;
      if (c && !run_stmts(s.body, vars, i, j)) return false;
    } else {
      for (int64_t jj = 0; jj < 2; ++jj) {
        if (!run_stmts(s.body, vars, i, jj)) return false;
      }
    }
  }
  return true;
}

Stmt random_assign(SplitMix64& rng, int n_vars, bool allow_mul, bool in_j) {
  Stmt s;
  s.target = static_cast<int>(rng.below(static_cast<uint64_t>(n_vars)));
  const uint64_t r = rng.below(allow_mul ? 5 : 4);
  s.op = r == 4 ? '*' : r == 3 ? '-' : '+';
  if (s.op == '*') {
    s.rhs.c = rng.uniform(2, 3);
    return s;
  }
  const uint64_t k = rng.below(in_j ? 4 : 3);
  s.rhs.kind = static_cast<int>(k);
  if (k == 0) s.rhs.c = rng.uniform(1, 9);
  if (k == 1) s.rhs.var = static_cast<int>(rng.below(static_cast<uint64_t>(n_vars)));
  return s;
}

}  // namespace

void gen_program_trace(SplitMix64& rng, int d, Item& item) {
  for (;;) {
    Program p;
    p.n_vars = d >= 3 ? 3 : 2;
    for (int v = 0; v < p.n_vars; ++v) p.init.push_back(rng.uniform(0, 9));
    p.loops = std::min<int64_t>(2 + d, 6);
    const int n_stmts = 1 + (d + 1) / 2;
    for (int k = 0; k < n_stmts; ++k) p.body.push_back(random_assign(rng, p.n_vars, d >= 2, false));
    if (d >= 3) {
      Stmt s;
      s.kind = 1;
      s.cond = static_cast<int>(rng.below(3));
      s.cond_c = rng.uniform(0, p.loops - 2);
      s.body.push_back(random_assign(rng, p.n_vars, false, false));
      p.body.insert(p.body.begin() + static_cast<long>(rng.below(p.body.size() + 1)), s);
    }
    if (d >= 5) {
      Stmt s;
      s.kind = 2;
      s.body.push_back(random_assign(rng, p.n_vars, false, true));
      p.body.insert(p.body.begin() + static_cast<long>(rng.below(p.body.size() + 1)), s);
    }
    p.printed = static_cast<int>(rng.below(static_cast<uint64_t>(p.n_vars)));
    std::string code;
    for (int v = 0; v < p.n_vars; ++v) code += std::string(kVars[static_cast<size_t>(v)]) + " = " + to_string(p.init[static_cast<size_t>(v)]) + "\n";
    code += "for i in range(" + to_string(p.loops) + "):\n";
    print_stmts(p.body, "    ", code);
    code += "print(" + std::string(kVars[static_cast<size_t>(p.printed)]) + ")\n";
    std::vector<int64_t> vars = p.init;
    std::string sol;
    bool ok = true;
    for (int64_t i = 0; i < p.loops && ok; ++i) {
      ok = run_stmts(p.body, vars, i, 0);
      std::vector<std::string> st;
      for (int v = 0; v < p.n_vars; ++v) st.push_back(std::string(kVars[static_cast<size_t>(v)]) + "=" + to_string(vars[static_cast<size_t>(v)]));
      sol += "after i=" + to_string(i) + ": " + join(st, ", ") + "\n";
    }
    if (!ok) continue;  // values ran away: draw another program
    item.prompt = "What does this Python program print?\n```\n" + code + "```";
    item.answer = to_string(vars[static_cast<size_t>(p.printed)]);
    item.answer_type = AnswerType::integer;
    item.reference_solution = sol + "Answer: " + item.answer;
    item.meta = {{"code", code}};
    return;
  }
}

void gen_list_ops(SplitMix64& rng, int d, Item& item) {
  std::vector<int64_t> s;
  const int64_t init = rng.uniform(1, 3);
  for (int64_t k = 0; k < init; ++k) s.push_back(rng.uniform(1, 9));
  auto show = [](const std::vector<int64_t>& v) { return "[" + join_ints(v) + "]"; };
  std::string code = "s = " + show(s) + "\n", sol;
  const int n = 2 + 2 * d;
  for (int k = 0; k < n; ++k) {
    std::vector<int> kinds = {0, 1};  // append, pop
    if (d >= 3) kinds.insert(kinds.end(), {2, 3});  // insert(0, x), pop(0)
    if (d >= 4) kinds.insert(kinds.end(), {4, 5});  // extend, remove
    if (d >= 5) kinds.insert(kinds.end(), {6, 7});  // reverse, insert(i, x)
    int kind = rng.pick(kinds);
    if (s.empty() && (kind == 1 || kind == 3 || kind == 5)) kind = 0;
    const int64_t x = rng.uniform(1, 9);
    std::string line;
    switch (kind) {
      case 0: s.push_back(x); line = "s.append(" + to_string(x) + ")"; break;
      case 1: s.pop_back(); line = "s.pop()"; break;
      case 2: s.insert(s.begin(), x); line = "s.insert(0, " + to_string(x) + ")"; break;
      case 3: s.erase(s.begin()); line = "s.pop(0)"; break;
      case 4: {
        const int64_t y = rng.uniform(1, 9);
        s.push_back(x);
        s.push_back(y);
        line = "s.extend([" + to_string(x) + ", " + to_string(y) + "])";
        break;
      }
      case 5: {
        const int64_t v = s[static_cast<size_t>(rng.below(s.size()))];
        s.erase(std::find(s.begin(), s.end(), v));
        line = "s.remove(" + to_string(v) + ")";
        break;
      }
      case 6: std::reverse(s.begin(), s.end()); line = "s.reverse()"; break;
      default: {
        const int64_t at = rng.uniform(0, static_cast<int64_t>(s.size()));
        s.insert(s.begin() + at, x);
        line = "s.insert(" + to_string(at) + ", " + to_string(x) + ")";
      }
    }
    code += line + "\n";
    sol += line + " -> " + show(s) + "\n";
  }
  if (s.empty()) {
    const int64_t x = rng.uniform(1, 9);
    s.push_back(x);
    code += "s.append(" + to_string(x) + ")\n";
    sol += "s.append(" + to_string(x) + ") -> " + show(s) + "\n";
  }
  code += "print(s)\n";
  item.prompt = "What does this Python program print? Give the list's elements in order, separated by commas.\n```\n" +
                code + "```";
  item.answer = join_ints(s);
  item.answer_type = AnswerType::list;
  item.ordered = true;
  item.reference_solution = sol + "Answer: " + item.answer;
  item.meta = {{"code", code}};
}

void gen_object_moves(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> people = {"Ann", "Ben", "Cleo", "Dev", "Eve"};
  static const std::vector<std::string> objects = {"key", "book", "ball", "cup", "hat", "lamp", "coin", "map"};
  static const std::vector<std::string> rooms_all = {"kitchen", "garden", "hall",    "attic",
                                                     "cellar",  "study",  "bedroom", "garage"};
  std::vector<std::string> obj = objects, rooms = rooms_all;
  rng.shuffle(obj);
  rng.shuffle(rooms);
  obj.resize(static_cast<size_t>(2 + d / 2));
  rooms.resize(static_cast<size_t>(3 + d / 2));
  std::vector<size_t> where;
  std::vector<std::string> sentences;
  for (const auto& o : obj) {
    where.push_back(static_cast<size_t>(rng.below(rooms.size())));
    sentences.push_back("The " + o + " is in the " + rooms[where.back()] + ".");
  }
  const size_t target = static_cast<size_t>(rng.below(obj.size()));
  std::vector<std::string> path = {rooms[where[target]]};
  const int n_actions = 2 + 2 * d;
  int noise = d >= 3 ? d - 2 : 0;
  bool target_moved = false;
  for (int k = 0; k < n_actions; ++k) {
    const std::string& who = rng.pick(people);
    if (noise > 0 && rng.chance(1, 3)) {
      sentences.push_back(who + " walks into the " + rng.pick(rooms) + ".");
      --noise;
      continue;
    }
    size_t o = static_cast<size_t>(rng.below(obj.size()));
    if (k == n_actions - 1 && !target_moved) o = target;
    size_t to = static_cast<size_t>(rng.below(rooms.size() - 1));
    if (to >= where[o]) ++to;
    if (d >= 4 && rng.chance(1, 2)) {
      sentences.push_back(who + " moves the " + obj[o] + " to the " + rooms[to] + ".");
    } else {
      sentences.push_back(who + " carries the " + obj[o] + " from the " + rooms[where[o]] + " to the " + rooms[to] + ".");
    }
    where[o] = to;
    if (o == target) {
      target_moved = true;
      path.push_back(rooms[to]);
    }
  }
  item.prompt = join(sentences, " ") + "\nWhere is the " + obj[target] + " now?";
  item.answer = rooms[where[target]];
  item.answer_type = AnswerType::string;
  item.reference_solution = obj[target] + ": " + join(path, " -> ") + ".\nAnswer: " + item.answer;
  item.meta = {{"object", obj[target]}, {"objects", obj}, {"rooms", rooms}};
}

void gen_line_swaps(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> names = {"Ann", "Ben", "Cleo", "Dev", "Eve", "Finn", "Gia", "Hugo", "Ida", "Jay"};
  std::vector<std::string> pool = names;
  rng.shuffle(pool);
  const size_t n = static_cast<size_t>(3 + d);
  std::vector<std::string> line(pool.begin(), pool.begin() + static_cast<long>(n));
  std::vector<std::string> outside(pool.begin() + static_cast<long>(n), pool.end());
  std::string intro;
  for (size_t i = 0; i < n; ++i) intro += (i == 0 ? "" : i + 1 == n ? " and " : ", ") + line[i];
  intro += " stand in a line, in that order from front to back.";
  std::vector<std::string> actions;
  std::string sol;
  const int n_actions = 1 + 2 * d;
  for (int k = 0; k < n_actions; ++k) {
    std::vector<int> kinds = {0, 1, 2};
    if (d >= 4) kinds.insert(kinds.end(), {3, 4});
    int kind = rng.pick(kinds);
    if (kind == 3 && line.size() <= 3) kind = 0;
    if (kind == 4 && outside.empty()) kind = 0;
    if (kind == 0) {
      size_t a = static_cast<size_t>(rng.below(line.size()));
      size_t b = static_cast<size_t>(rng.below(line.size() - 1));
      if (b >= a) ++b;
      actions.push_back(line[a] + " and " + line[b] + " swap places.");
      std::swap(line[a], line[b]);
    } else if (kind == 1) {
      actions.push_back("The person at the front moves to the back.");
      std::rotate(line.begin(), line.begin() + 1, line.end());
    } else if (kind == 2) {
      const size_t a = 1 + static_cast<size_t>(rng.below(line.size() - 1));
      actions.push_back(line[a] + " moves to the front.");
      std::rotate(line.begin(), line.begin() + static_cast<long>(a), line.begin() + static_cast<long>(a) + 1);
    } else if (kind == 3) {
      const size_t a = static_cast<size_t>(rng.below(line.size()));
      actions.push_back(line[a] + " leaves the line.");
      outside.push_back(line[a]);
      line.erase(line.begin() + static_cast<long>(a));
    } else {
      const size_t a = static_cast<size_t>(rng.below(outside.size()));
      actions.push_back(outside[a] + " joins at the back.");
      line.push_back(outside[a]);
      outside.erase(outside.begin() + static_cast<long>(a));
    }
    sol += join(line, ", ") + "\n";
  }
  item.prompt = intro + " Then: " + join(actions, " ") +
                "\nWhat is the order of the line now, from front to back? Give the names separated by commas.";
  item.answer = join(line, ", ");
  item.answer_type = AnswerType::list;
  item.ordered = true;
  item.reference_solution = sol + "Answer: " + item.answer;
  item.meta = {{"people", static_cast<int64_t>(n)}, {"actions", n_actions}};
}

}  // namespace metaprobe::probes::detail
