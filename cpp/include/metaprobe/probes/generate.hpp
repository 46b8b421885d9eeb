#pragma once
// Probe generators: the families of each cell of the skill grid (docs/probes.md lists them all).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

/// A generator family: one genuine task of one skill in one domain.
struct FamilyInfo {
  std::string name;         ///< e.g. "math.prime_factorisation"
  Skill skill = Skill::calculation;
  Domain domain = Domain::math;
  int version = 1;          ///< bumped whenever the family's output for a key changes
  std::string description;  ///< what it tests and what difficulty scales
};

/// Every family, ordered by cell (skill-major) then by name within the cell's fixed order.
const std::vector<FamilyInfo>& families();
/// The families of one cell, in the order a suite alternates them.
std::vector<FamilyInfo> families(const Cell& cell);
/// The family with this name; throws InvalidArgument naming the value.
const FamilyInfo& family_info(std::string_view name);

/// Phrasings of every family's question (0 is the canonical one).
inline constexpr int kPhrasings = 3;

/// Which phrasing items get.
enum class Phrasing {
  varied,     ///< drawn per item from the kPhrasings, seeded by the item id (the default)
  canonical,  ///< always phrasing 0, so a study can hold the surface form fixed
};
METAPROBE_ENUM_NAMES(Phrasing, "phrasing", "got '{value}', expected {names_or}", {Phrasing::varied, "varied"},
                     {Phrasing::canonical, "canonical"})

/// The surface form of generated prompts: phrasing and NoOp distractor clauses (GSM-Symbolic). Neither changes
/// the task content or the gold answer, which depend on (family, version, seed, index, difficulty) only.
struct SurfaceOptions {
  Phrasing phrasing = Phrasing::varied;
  /// Share of items that get an irrelevant but plausible sentence of their domain in front of the prompt.
  double noop_share = 0.0;
};
#define METAPROBE_SURFACE_OPTIONS_FIELDS(X, LATER) X("phrasing", phrasing) X("noop_share", noop_share)
METAPROBE_RECORD(SurfaceOptions, METAPROBE_SURFACE_OPTIONS_FIELDS)

/// The stable item id: FNV-1a 64 (hex) of "family|version|seed|index|difficulty".
std::string item_id(std::string_view family, int version, uint64_t seed, uint64_t index, int difficulty);

/// Generates one item: the same (family, version, seed, index, difficulty) and surface options give a
/// byte-identical item. Throws InvalidArgument for an unknown family, a difficulty outside 1..5 or a
/// noop_share outside [0, 1].
Item generate_item(std::string_view family, int difficulty, uint64_t seed, uint64_t index,
                   const SurfaceOptions& surface = {});

}  // namespace metaprobe::probes
