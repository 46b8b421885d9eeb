#include <metaprobe/error.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

std::string_view to_string(Skill skill) {
  switch (skill) {
    case Skill::calculation: return "calculation";
    case Skill::fact_retrieval: return "fact_retrieval";
    case Skill::simulation: return "simulation";
    case Skill::enumeration: return "enumeration";
    case Skill::diagnostic: return "diagnostic";
  }
  throw InvalidArgument("skill: invalid enum value " + std::to_string(static_cast<int>(skill)));
}

std::string_view to_string(Domain domain) {
  switch (domain) {
    case Domain::math: return "math";
    case Domain::physics: return "physics";
    case Domain::coding: return "coding";
    case Domain::general: return "general";
  }
  throw InvalidArgument("domain: invalid enum value " + std::to_string(static_cast<int>(domain)));
}

Skill parse_skill(std::string_view name) {
  for (Skill s : kAllSkills) {
    if (to_string(s) == name) return s;
  }
  throw InvalidArgument("skill: unknown name '" + std::string(name) +
                        "', expected one of calculation, fact_retrieval, simulation, enumeration, diagnostic");
}

Domain parse_domain(std::string_view name) {
  for (Domain d : kAllDomains) {
    if (to_string(d) == name) return d;
  }
  throw InvalidArgument("domain: unknown name '" + std::string(name) +
                        "', expected one of math, physics, coding, general");
}

std::string to_string(const Cell& cell) {
  return std::string(to_string(cell.skill)) + "/" + std::string(to_string(cell.domain));
}

}  // namespace metaprobe::probes

#include <metaprobe/probes/item.hpp>

namespace metaprobe::probes {

std::string_view to_string(AnswerType type) {
  switch (type) {
    case AnswerType::integer: return "integer";
    case AnswerType::number: return "number";
    case AnswerType::string: return "string";
    case AnswerType::choice: return "choice";
    case AnswerType::list: return "list";
  }
  throw InvalidArgument("answer_type: invalid enum value " + std::to_string(static_cast<int>(type)));
}

AnswerType parse_answer_type(std::string_view name) {
  for (AnswerType t : {AnswerType::integer, AnswerType::number, AnswerType::string, AnswerType::choice,
                       AnswerType::list}) {
    if (to_string(t) == name) return t;
  }
  throw InvalidArgument("answer_type: unknown name '" + std::string(name) +
                        "', expected one of integer, number, string, choice, list");
}

}  // namespace metaprobe::probes
