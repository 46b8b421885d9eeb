#pragma once
// The 5 × 4 skill grid of the meta-probing method (docs/probes.md; Bai et al., arXiv 2512.24063).
#include <array>
#include <string>
#include <string_view>

#include <metaprobe/common/enum_names.hpp>

namespace metaprobe::probes {

/// An atomic core skill a probe item exercises.
enum class Skill { calculation, fact_retrieval, simulation, enumeration, diagnostic };

/// The domain a probe item is set in; `general` is non-reasoning QA.
enum class Domain { math, physics, coding, general };

METAPROBE_ENUM_NAMES(Skill, "skill", "unknown name '{value}', expected one of {names}",
                     {Skill::calculation, "calculation"}, {Skill::fact_retrieval, "fact_retrieval"},
                     {Skill::simulation, "simulation"}, {Skill::enumeration, "enumeration"},
                     {Skill::diagnostic, "diagnostic"})
METAPROBE_ENUM_NAMES(Domain, "domain", "unknown name '{value}', expected one of {names}", {Domain::math, "math"},
                     {Domain::physics, "physics"}, {Domain::coding, "coding"}, {Domain::general, "general"})

/// Every skill, in grid order (the table's order).
inline constexpr std::array<Skill, 5> kAllSkills = enum_values<Skill>();
/// Every domain, in grid order (the table's order).
inline constexpr std::array<Domain, 4> kAllDomains = enum_values<Domain>();

/// The snake_case name of a skill ("fact_retrieval").
inline std::string_view to_string(Skill skill) { return enum_name(skill); }
/// The name of a domain ("general").
inline std::string_view to_string(Domain domain) { return enum_name(domain); }
/// Parses a skill name; throws InvalidArgument naming the value and the valid names.
inline Skill parse_skill(std::string_view name) { return parse_enum<Skill>(name); }
/// Parses a domain name; throws InvalidArgument naming the value and the valid names.
inline Domain parse_domain(std::string_view name) { return parse_enum<Domain>(name); }

/// One cell of the grid.
struct Cell {
  Skill skill = Skill::calculation;
  Domain domain = Domain::math;
  friend bool operator==(const Cell& a, const Cell& b) { return a.skill == b.skill && a.domain == b.domain; }
  friend bool operator<(const Cell& a, const Cell& b) {
    return a.skill != b.skill ? a.skill < b.skill : a.domain < b.domain;
  }
};

/// "skill/domain", e.g. "calculation/math".
std::string to_string(const Cell& cell);

}  // namespace metaprobe::probes
