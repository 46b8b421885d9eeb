#include <metaprobe/probes/jsonl.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <unistd.h>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>

namespace metaprobe::probes {
namespace {

using json = nlohmann::json;

const char* kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_float: return "number";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    default: return "other";
  }
}

[[noreturn]] void fail(std::string_view where, std::string_view field, const std::string& what) {
  throw FormatError(std::string(where) + ": field '" + std::string(field) + "': " + what);
}

const json& require(const json& j, std::string_view where, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) fail(where, field, "missing required field");
  return *it;
}

std::string get_string(const json& v, std::string_view where, const char* field) {
  if (!v.is_string()) fail(where, field, std::string("expected a string, got ") + kind(v));
  return v.get<std::string>();
}

int64_t get_int(const json& v, std::string_view where, const char* field) {
  if (!v.is_number_integer()) fail(where, field, std::string("expected an integer, got ") + kind(v));
  return v.get<int64_t>();
}

const std::set<std::string, std::less<>>& known_keys() {
  static const std::set<std::string, std::less<>> keys = {
      "id", "skill", "domain", "family", "difficulty", "prompt", "answer", "answer_type", "tolerance",
      "ordered", "choices", "gold_index", "reference_solution", "meta", "aliases", "equivalents", "phrasing", "noop"};
  return keys;
}

// Rejects bytes that are not UTF-8 with their position, so that the message itself stays valid UTF-8 (a raw
// 0xFF in an exception message cannot become a Python str). A UTF-16 byte-order mark is named as such.
void check_utf8(std::string_view line, const std::string& where, bool first_line) {
  if (first_line && line.size() >= 2 && ((line[0] == '\xFF' && line[1] == '\xFE') || (line[0] == '\xFE' && line[1] == '\xFF')))
    throw FormatError(where + ": the file starts with a UTF-16 byte-order mark (bytes " +
                      std::string(line[0] == '\xFF' ? "FF FE" : "FE FF") + "), expected UTF-8 JSON lines");
  for (std::size_t i = 0; i < line.size();) {
    const auto c = static_cast<unsigned char>(line[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= line.size() && !(len == 2 && c < 0xC2);
    for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(line[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      static const char* hex = "0123456789ABCDEF";
      std::string b = "0x";
      b += hex[c >> 4];
      b += hex[c & 15];
      throw FormatError(where + ": invalid UTF-8 byte " + b + " at column " + std::to_string(i + 1) +
                        ", expected UTF-8 text");
    }
    i += len;
  }
}

}  // namespace

json to_json(const Item& item) {
  json j = item.extra.is_object() ? item.extra : json::object();
  j["id"] = item.id;
  j["skill"] = std::string(to_string(item.skill));
  j["domain"] = std::string(to_string(item.domain));
  j["family"] = item.family;
  j["difficulty"] = item.difficulty;
  j["prompt"] = item.prompt;
  j["answer"] = item.answer;
  j["answer_type"] = std::string(to_string(item.answer_type));
  if (item.answer_type == AnswerType::number) j["tolerance"] = item.tolerance;
  if (item.answer_type == AnswerType::list) j["ordered"] = item.ordered;
  if (item.answer_type == AnswerType::choice || !item.choices.empty()) {
    j["choices"] = item.choices;
    j["gold_index"] = item.gold_index;
  }
  j["reference_solution"] = item.reference_solution;
  if (!item.aliases.empty()) j["aliases"] = item.aliases;
  if (!item.equivalents.empty()) j["equivalents"] = item.equivalents;
  if (item.phrasing != 0) j["phrasing"] = item.phrasing;  // canonical items keep their earlier bytes
  if (item.noop) j["noop"] = true;
  j["meta"] = item.meta;
  return j;
}

Item item_from_json(const json& j, std::string_view where) {
  if (!j.is_object()) {
    throw FormatError(std::string(where) + ": expected a JSON object per line, got " + kind(j));
  }
  Item item;
  item.id = get_string(require(j, where, "id"), where, "id");
  if (item.id.empty()) fail(where, "id", "expected a non-empty string");
  const std::string skill = get_string(require(j, where, "skill"), where, "skill");
  const std::string domain = get_string(require(j, where, "domain"), where, "domain");
  const std::string answer_type = get_string(require(j, where, "answer_type"), where, "answer_type");
  try {
    item.skill = parse_skill(skill);
  } catch (const InvalidArgument& e) {
    fail(where, "skill", e.what());
  }
  try {
    item.domain = parse_domain(domain);
  } catch (const InvalidArgument& e) {
    fail(where, "domain", e.what());
  }
  try {
    item.answer_type = parse_answer_type(answer_type);
  } catch (const InvalidArgument& e) {
    fail(where, "answer_type", e.what());
  }
  item.prompt = get_string(require(j, where, "prompt"), where, "prompt");
  item.answer = get_string(require(j, where, "answer"), where, "answer");
  if (auto it = j.find("family"); it != j.end()) item.family = get_string(*it, where, "family");
  if (auto it = j.find("difficulty"); it != j.end()) {
    const int64_t d = get_int(*it, where, "difficulty");
    if (d < 1 || d > 5) fail(where, "difficulty", "got " + std::to_string(d) + ", expected an integer in 1..5");
    item.difficulty = static_cast<int>(d);
  }
  if (auto it = j.find("reference_solution"); it != j.end()) {
    item.reference_solution = get_string(*it, where, "reference_solution");
  }
  if (auto it = j.find("meta"); it != j.end()) {
    if (!it->is_object()) fail(where, "meta", std::string("expected an object, got ") + kind(*it));
    item.meta = *it;
  }
  if (auto it = j.find("tolerance"); it != j.end()) {
    if (!it->is_number()) fail(where, "tolerance", std::string("expected a number, got ") + kind(*it));
    item.tolerance = it->get<double>();
    if (!(item.tolerance >= 0)) fail(where, "tolerance", "got a negative value, expected >= 0");
  }
  if (auto it = j.find("ordered"); it != j.end()) {
    if (!it->is_boolean()) fail(where, "ordered", std::string("expected a boolean, got ") + kind(*it));
    item.ordered = it->get<bool>();
  }
  if (auto it = j.find("choices"); it != j.end()) {
    if (!it->is_array()) fail(where, "choices", std::string("expected an array of strings, got ") + kind(*it));
    for (const auto& c : *it) {
      if (!c.is_string()) fail(where, "choices", std::string("expected an array of strings, found a ") + kind(c));
      item.choices.push_back(c.get<std::string>());
    }
  }
  if (auto it = j.find("phrasing"); it != j.end()) {
    const int64_t p = get_int(*it, where, "phrasing");
    if (p < 0 || p >= kPhrasings)
      fail(where, "phrasing", "got " + std::to_string(p) + ", expected an integer in 0.." + std::to_string(kPhrasings - 1));
    item.phrasing = static_cast<int>(p);
  }
  if (auto it = j.find("noop"); it != j.end()) {
    if (!it->is_boolean()) fail(where, "noop", std::string("expected a boolean, got ") + kind(*it));
    item.noop = it->get<bool>();
  }
  if (auto it = j.find("gold_index"); it != j.end()) {
    item.gold_index = static_cast<int>(get_int(*it, where, "gold_index"));
  }
  for (const char* field : {"aliases", "equivalents"}) {
    auto it = j.find(field);
    if (it == j.end()) continue;
    if (!it->is_array()) fail(where, field, std::string("expected an array of strings, got ") + kind(*it));
    auto& dst = std::string_view(field) == "aliases" ? item.aliases : item.equivalents;
    for (const auto& c : *it) {
      if (!c.is_string()) fail(where, field, std::string("expected an array of strings, found a ") + kind(c));
      dst.push_back(c.get<std::string>());
    }
  }
  if (item.answer_type == AnswerType::choice) {
    if (item.choices.size() < 2) fail(where, "choices", "a choice item needs at least 2 choices");
    if (j.find("gold_index") == j.end()) fail(where, "gold_index", "missing required field for a choice item");
    if (item.gold_index < 0 || item.gold_index >= static_cast<int>(item.choices.size())) {
      fail(where, "gold_index", "got " + std::to_string(item.gold_index) + ", expected 0.." +
                                    std::to_string(item.choices.size() - 1));
    }
    const std::string letter(1, static_cast<char>('A' + item.gold_index));
    if (item.answer != letter && item.answer != item.choices[static_cast<size_t>(item.gold_index)]) {
      fail(where, "answer", "got '" + item.answer + "', expected the gold letter '" + letter +
                                "' or the gold choice text");
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (known_keys().count(it.key()) == 0) item.extra[it.key()] = it.value();
  }
  return item;
}

std::string to_jsonl_line(const Item& item) { return to_json(item).dump(); }

std::vector<Item> parse_jsonl(std::string_view text, std::string_view source) {
  std::vector<Item> items;
  std::map<std::string, size_t> seen;  // id -> line
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = std::string(source) + ":" + std::to_string(line_no);
    check_utf8(line, where, line_no == 1);
    json j;
    // Note [duplicate keys]: nlohmann::json keeps the last of two equal keys, so {"answer": "3", …,
    // "answer": "4"} would silently mean 4. The callback sees every key and rejects the second.
    std::vector<std::set<std::string>> open_keys;
    auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) open_keys.emplace_back();
      else if (event == json::parse_event_t::object_end && !open_keys.empty()) open_keys.pop_back();
      else if (event == json::parse_event_t::key && !open_keys.empty()) {
        const std::string key = parsed.get<std::string>();
        if (!open_keys.back().insert(key).second)
          throw FormatError(where + ": duplicate key '" + key + "' in one JSON object, expected each key once");
      }
      return true;
    };
    try {
      j = json::parse(line, on_event);
    } catch (const json::parse_error& e) {
      throw FormatError(where + ": invalid JSON: " + e.what());
    }
    Item item = item_from_json(j, where);
    auto [it, inserted] = seen.emplace(item.id, line_no);
    if (!inserted) {
      throw FormatError(where + ": field 'id': duplicate id '" + item.id + "', first seen on line " +
                        std::to_string(it->second));
    }
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<Item> read_jsonl(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError("path: '" + path + "' is a directory, expected a JSONL file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("path: cannot open '" + path + "' for reading");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw IoError("path: error while reading '" + path + "'");
  return parse_jsonl(buf.str(), path);
}

void write_jsonl(const std::vector<Item>& items, const std::string& path) {
  std::string text;
  for (const auto& item : items) {
    text += to_jsonl_line(item);
    text += '\n';
  }
  write_file_atomic(path, text);
}

}  // namespace metaprobe::probes
