#pragma once
// A probe item: one task of one skill in one domain, in the JSONL schema of docs/probes.md.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

/// How an item's answer is compared with a model's.
enum class AnswerType { integer, number, string, choice, list };
METAPROBE_ENUM_NAMES(AnswerType, "answer_type", "unknown name '{value}', expected one of {names}",
                     {AnswerType::integer, "integer"}, {AnswerType::number, "number"},
                     {AnswerType::string, "string"}, {AnswerType::choice, "choice"}, {AnswerType::list, "list"})

/// The JSON name of an answer type ("integer", "number", "string", "choice", "list").
inline std::string_view to_string(AnswerType type) { return enum_name(type); }
/// Parses an answer-type name; throws InvalidArgument naming the value.
inline AnswerType parse_answer_type(std::string_view name) { return parse_enum<AnswerType>(name); }

/// One probe item. Field names match the JSONL keys.
struct Item {
  std::string id;                    ///< stable: hash of family, generator version, seed, index
  Skill skill = Skill::calculation;
  Domain domain = Domain::math;
  std::string family;                ///< generator family, e.g. "math.prime_factorisation"
  int difficulty = 1;                ///< 1 (easiest) … 5
  std::string prompt;                ///< the question, without any answer-format instruction
  std::string answer;                ///< canonical answer string
  AnswerType answer_type = AnswerType::string;
  /// number items: a response x matches answer a when |x − a| ≤ tolerance · max(1, |a|).
  double tolerance = 0.0;
  bool ordered = true;               ///< list items: order matters
  std::vector<std::string> choices;  ///< choice items: the options, in display order
  int gold_index = -1;               ///< choice items: index of the correct option, else −1
  std::string reference_solution;    ///< short worked solution that ends in the answer
  /// Further accepted answers (same answer type as `answer`; for choice items further texts of the gold
  /// option), e.g. "N s" beside "kg m/s".
  std::vector<std::string> aliases;
  /// Answers equivalent to the gold one that generators never offer as distractors (JSONL only records them).
  std::vector<std::string> equivalents;
  /// Which of the family's phrasings the prompt uses (0 = canonical; docs/probes.md, "Surface variety").
  int phrasing = 0;
  /// Whether an irrelevant NoOp sentence was put in front of the prompt (SurfaceOptions::noop_share).
  bool noop = false;
  nlohmann::json meta = nlohmann::json::object();   ///< the generator's parameters
  nlohmann::json extra = nlohmann::json::object();  ///< unknown JSONL fields, kept on read/write

  Cell cell() const { return {skill, domain}; }
};
/// Item's fields in schema order (the JSONL keys; the columns of ProbeSet.to_pandas). jsonl.cpp reads and writes
/// the JSONL form itself (it omits defaults and merges `extra`); this list drives the bindings' field access.
#define METAPROBE_ITEM_FIELDS(X, LATER)                                                                         \
  X("id", id) X("skill", skill) X("domain", domain) X("family", family) X("difficulty", difficulty)              \
  X("prompt", prompt) X("answer", answer) X("answer_type", answer_type) X("tolerance", tolerance)                \
  X("ordered", ordered) X("choices", choices) X("gold_index", gold_index)                                         \
  X("reference_solution", reference_solution) X("aliases", aliases) X("equivalents", equivalents)                \
  X("phrasing", phrasing) X("noop", noop) X("meta", meta) X("extra", extra)
METAPROBE_RECORD(Item, METAPROBE_ITEM_FIELDS)

}  // namespace metaprobe::probes
