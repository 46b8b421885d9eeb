#include "gen_common.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>

#include "probe_tables.hpp"

namespace metaprobe::probes {

std::string hex64(uint64_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = digits[value & 0xF];
    value >>= 4;
  }
  return out;
}

namespace detail {

int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

std::string fmt_rational(int64_t num, int64_t den, int max_decimals) {
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const bool negative = num < 0;
  __int128 mag = num < 0 ? -static_cast<__int128>(num) : static_cast<__int128>(num);
  __int128 scale = 1;
  for (int i = 0; i < max_decimals; ++i) scale *= 10;
  // round half away from zero
  __int128 scaled = (mag * scale * 2 + den) / (static_cast<__int128>(den) * 2);
  __int128 ip = scaled / scale;
  __int128 fp = scaled % scale;
  std::string int_part;
  if (ip == 0) int_part = "0";
  while (ip > 0) {
    int_part.insert(int_part.begin(), static_cast<char>('0' + static_cast<int>(ip % 10)));
    ip /= 10;
  }
  std::string frac;
  for (int i = 0; i < max_decimals; ++i) {
    frac.insert(frac.begin(), static_cast<char>('0' + static_cast<int>(fp % 10)));
    fp /= 10;
  }
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  std::string out = (negative && (int_part != "0" || !frac.empty())) ? "-" : "";
  out += int_part;
  if (!frac.empty()) out += "." + frac;
  return out;
}

std::string fmt_fraction(int64_t num, int64_t den) {
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const int64_t g = gcd64(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (den == 1) return std::to_string(num);
  return std::to_string(num) + "/" + std::to_string(den);
}

std::string fmt_cents(int64_t cents) {
  const bool negative = cents < 0;
  if (negative) cents = -cents;
  std::string frac = std::to_string(cents % 100);
  if (frac.size() < 2) frac = "0" + frac;
  return (negative ? "-" : "") + std::to_string(cents / 100) + "." + frac;
}

std::string fmt_clock(int64_t minutes) {
  const int64_t h = minutes / 60, m = minutes % 60;
  std::string out;
  out += static_cast<char>('0' + h / 10);
  out += static_cast<char>('0' + h % 10);
  out += ':';
  out += static_cast<char>('0' + m / 10);
  out += static_cast<char>('0' + m % 10);
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string join_ints(const std::vector<int64_t>& values, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += sep;
    out += std::to_string(values[i]);
  }
  return out;
}

std::string choice_letter(int index) { return std::string(1, static_cast<char>('A' + index)); }

namespace {

struct Tables {
  std::map<std::string, std::vector<TableEntry>, std::less<>> by_name;
};

const Tables& tables() {
  // Parsed once from the text embedded at build time; immutable afterwards.
  static const Tables parsed = [] {
    Tables t;
    for (const auto& [name, text] : embedded_tables()) {
      const auto doc = nlohmann::json::parse(text);
      std::vector<TableEntry> rows;
      for (const auto& e : doc.at("entries")) {
        TableEntry row{e.at("key").get<std::string>(), e.at("answer").get<std::string>(),
                       e.at("group").get<std::string>(), {}, {}};
        if (auto a = e.find("aliases"); a != e.end()) row.aliases = a->get<std::vector<std::string>>();
        if (auto q = e.find("equivalents"); q != e.end()) row.equivalents = q->get<std::vector<std::string>>();
        rows.push_back(std::move(row));
      }
      t.by_name.emplace(std::string(name), std::move(rows));
    }
    return t;
  }();
  return parsed;
}

}  // namespace

const std::vector<TableEntry>& table(std::string_view name) {
  const auto& t = tables().by_name;
  auto it = t.find(name);
  if (it == t.end()) {
    throw InvalidArgument("table: unknown knowledge table '" + std::string(name) + "', expected one of " +
                          join(table_names(), ", "));
  }
  return it->second;
}

std::vector<std::string> table_names() {
  std::vector<std::string> names;
  for (const auto& kv : tables().by_name) names.push_back(kv.first);
  return names;
}

void make_table_choice(SplitMix64& rng, int difficulty, Item& item, std::string_view table_name,
                       std::string_view question, std::string_view solution_lead) {
  const auto& rows = table(table_name);
  const size_t gold = static_cast<size_t>(rng.below(rows.size()));
  const TableEntry& g = rows[gold];
  std::vector<size_t> same, other;
  auto listed = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == gold || rows[i].answer == g.answer) continue;
    if (listed(g.equivalents, rows[i].answer) || listed(rows[i].equivalents, g.answer)) continue;
    (rows[i].group == g.group ? same : other).push_back(i);
  }
  rng.shuffle(same);
  rng.shuffle(other);
  const size_t n_same = static_cast<size_t>(std::clamp(difficulty - 2, 0, 3));
  std::vector<size_t> picked;
  auto take = [&](const std::vector<size_t>& from, size_t limit) {
    for (size_t i : from) {
      if (picked.size() >= limit) break;
      bool dup = false;
      for (size_t p : picked) dup = dup || rows[p].answer == rows[i].answer;
      if (!dup) picked.push_back(i);
    }
  };
  if (n_same > 0) {
    take(same, n_same);
    take(other, 3);
  } else if (difficulty == 1) {
    // difficulty 1: far distractors only, from other groups (the easiest discrimination)
    take(other, 3);
  } else {
    // difficulty 2: distractors from the whole table, same group or not
    std::vector<size_t> all = same;
    all.insert(all.end(), other.begin(), other.end());
    rng.shuffle(all);
    take(all, 3);
  }
  take(same, 3);  // a small table group can leave slots; fill from the group
  if (picked.size() < 3) {
    throw InvalidArgument("table: knowledge table '" + std::string(table_name) +
                          "' has fewer than 4 distinct answers, expected at least 4");
  }
  int64_t same_used = 0;
  for (size_t p : picked) same_used += rows[p].group == g.group ? 1 : 0;
  const int gold_pos = static_cast<int>(rng.below(4));
  std::vector<std::string> choices;
  std::vector<std::string> distractor_keys;
  size_t next = 0;
  for (int i = 0; i < 4; ++i) {
    if (i == gold_pos) {
      choices.push_back(g.answer);
    } else {
      choices.push_back(rows[picked[next]].answer);
      distractor_keys.push_back(rows[picked[next]].key);
      ++next;
    }
  }
  std::string q(question);
  const auto pos = q.find("{}");
  q.replace(pos, 2, g.key);
  std::string prompt = q;
  for (int i = 0; i < 4; ++i) prompt += "\n" + choice_letter(i) + ". " + choices[static_cast<size_t>(i)];
  item.prompt = std::move(prompt);
  item.answer_type = AnswerType::choice;
  item.answer = choice_letter(gold_pos);
  item.choices = choices;
  item.gold_index = gold_pos;
  item.aliases = g.aliases;
  item.equivalents = g.equivalents;
  item.reference_solution = std::string(solution_lead) + g.answer + ", option " + item.answer + ".\nAnswer: " +
                            item.answer;
  item.meta = {{"table", std::string(table_name)}, {"key", g.key}, {"group", g.group},
               {"same_group_distractors", same_used}};
}

}  // namespace detail
}  // namespace metaprobe::probes

namespace metaprobe::probes::detail {

namespace {

// The forms of a table answer a free answer may take: "newton (N)" -> {"newton", "N", "newton (N)"},
// "len()" -> {"len", "len()"}; the first is the canonical name.
std::vector<std::string> answer_forms(const std::string& answer) {
  std::vector<std::string> out;
  const auto open = answer.rfind(" (");
  if (!answer.empty() && answer.back() == ')' && open != std::string::npos && open > 0) {
    out.push_back(answer.substr(0, open));
    out.push_back(answer.substr(open + 2, answer.size() - open - 3));
  } else if (answer.size() > 2 && answer.compare(answer.size() - 2, 2, "()") == 0) {
    out.push_back(answer.substr(0, answer.size() - 2));
  }
  out.push_back(answer);
  return out;
}

}  // namespace

void make_table_recall(SplitMix64& rng, int difficulty, Item& item, std::string_view table_name,
                       std::string_view question, std::string_view group_word) {
  const auto& rows = table(table_name);
  const size_t gold = static_cast<size_t>(rng.below(rows.size()));
  const TableEntry& g = rows[gold];
  std::vector<std::string> forms = answer_forms(g.answer);
  for (const auto& a : g.aliases)
    for (auto& f : answer_forms(a))
      if (std::find(forms.begin(), forms.end(), f) == forms.end()) forms.push_back(std::move(f));
  std::string q(question);
  q.replace(q.find("{}"), 2, g.key);
  std::string cue;
  if (difficulty <= 2) cue = " (" + std::string(group_word) + ": " + g.group;
  if (difficulty == 1) cue += "; the answer starts with '" + forms[0].substr(0, 1) + "'";
  if (difficulty <= 2) cue += ")";
  std::string lures;
  std::vector<std::string> lure_keys;
  if (difficulty >= 4) {
    // interference: facts of other entries of the same group, with other answers
    std::vector<size_t> same;
    for (size_t i = 0; i < rows.size(); ++i)
      if (i != gold && rows[i].group == g.group && rows[i].answer != g.answer) same.push_back(i);
    rng.shuffle(same);
    for (size_t k = 0; k < same.size() && k < static_cast<size_t>(difficulty - 3); ++k) {
      lures += "For " + rows[same[k]].key + ", the answer would be " + answer_forms(rows[same[k]].answer)[0] + ". ";
      lure_keys.push_back(rows[same[k]].key);
    }
  }
  item.prompt = lures + q + cue + " Answer from memory with the name only.";
  item.answer = forms[0];
  item.answer_type = AnswerType::string;
  item.aliases.assign(forms.begin() + 1, forms.end());
  item.equivalents = g.equivalents;
  item.reference_solution = "It is " + g.answer + ".\nAnswer: " + item.answer;
  item.meta = {{"table", std::string(table_name)}, {"key", g.key}, {"group", g.group}, {"lures", lure_keys}};
}

}  // namespace metaprobe::probes::detail
