#pragma once
// The 5 × 4 skill grid of the meta-probing method (docs/probes.md; Bai et al., arXiv 2512.24063).
#include <array>
#include <string>
#include <string_view>

namespace metaprobe::probes {

/// An atomic core skill a probe item exercises.
enum class Skill { calculation, fact_retrieval, simulation, enumeration, diagnostic };

/// The domain a probe item is set in; `general` is non-reasoning QA.
enum class Domain { math, physics, coding, general };

inline constexpr std::array<Skill, 5> kAllSkills = {Skill::calculation, Skill::fact_retrieval, Skill::simulation,
                                                    Skill::enumeration, Skill::diagnostic};
inline constexpr std::array<Domain, 4> kAllDomains = {Domain::math, Domain::physics, Domain::coding,
                                                      Domain::general};

/// The snake_case name of a skill ("fact_retrieval").
std::string_view to_string(Skill skill);
/// The name of a domain ("general").
std::string_view to_string(Domain domain);
/// Parses a skill name; throws InvalidArgument naming the value and the valid names.
Skill parse_skill(std::string_view name);
/// Parses a domain name; throws InvalidArgument naming the value and the valid names.
Domain parse_domain(std::string_view name);

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
