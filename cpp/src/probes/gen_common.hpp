#pragma once
// Private helpers shared by the generator families (not installed).
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/rng.hpp>
#include <metaprobe/probes/scoring.hpp>
#include <metaprobe/probes/suite.hpp>

namespace metaprobe::probes::detail {

/// A family's generator fills prompt, answer, answer fields, reference_solution and meta.
using GenFn = void (*)(SplitMix64& rng, int difficulty, Item& item);

int64_t gcd64(int64_t a, int64_t b);
/// Exact num/den (den > 0) as a decimal rounded half away from zero to at most max_decimals places,
/// trailing zeros stripped ("2.5", "-0.125", "3"). Integer arithmetic only: identical on every libc.
std::string fmt_rational(int64_t num, int64_t den, int max_decimals);
/// "17/3" or "-4" for a reduced fraction.
std::string fmt_fraction(int64_t num, int64_t den);
/// Cents as dollars with two decimals ("12.05").
std::string fmt_cents(int64_t cents);
/// "HH:MM" of minutes after midnight.
std::string fmt_clock(int64_t minutes);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string join_ints(const std::vector<int64_t>& values, std::string_view sep = ", ");
/// "A", "B", ... for a choice index.
std::string choice_letter(int index);

/// Whether a diagnostic item has no error (gold kNoError): drawn first, with probability 2/5, so that 30-50%
/// of a diagnostic cell's items test that a model can also say "none" (Note [no-error items], gen_diagnostic.cpp).
inline bool draw_no_error(SplitMix64& rng) { return rng.chance(2, 5); }
/// The reference solution's last line for an item without an error.
inline constexpr const char* kNoErrorAnswerLine = "Answer: none";

/// One row of a knowledge table (data/probes/*.json): the subject asked about, its answer, its group.
struct TableEntry {
  std::string key;
  std::string answer;
  std::string group;
  std::vector<std::string> aliases;      ///< further accepted answers (become Item::aliases)
  std::vector<std::string> equivalents;  ///< answers also correct for this key: never its distractors
};
/// A knowledge table embedded at build time; throws InvalidArgument for an unknown name.
const std::vector<TableEntry>& table(std::string_view name);
/// Names of the embedded tables.
std::vector<std::string> table_names();

/// Fills a 4-way multiple-choice item from `table`: a uniformly drawn entry, three distractors with other
/// answers from the same table: at difficulty 1 all from other groups, at 2 from the whole table, above that
/// max(0, difficulty − 2) (capped at 3) from the entry's group;
/// never an answer listed in the entry's `equivalents` (nor one whose own `equivalents` list the gold).
/// `question` holds "{}" where the entry's key goes.
void make_table_choice(SplitMix64& rng, int difficulty, Item& item, std::string_view table_name,
                       std::string_view question, std::string_view solution_lead);

/// Fills a closed-book free-recall item (string answer) from `table`: a uniformly drawn entry; the answer is
/// the entry's name ("newton" of "newton (N)", "len" of "len()"), the other forms and the entry's aliases are
/// aliases. Difficulty: d1 gives the group and the answer's first letter, d2 the group, d3 no cue, d4-d5 add
/// one or two facts of other entries of the group as interference. `question` holds "{}".
void make_table_recall(SplitMix64& rng, int difficulty, Item& item, std::string_view table_name,
                       std::string_view question, std::string_view group_word);

/// Rewrites the family's question fragments of `prompt` into phrasing 1..kPhrasings-1 (0 leaves it); false
/// when the prompt holds none of them (surface.cpp).
bool rephrase(std::string& prompt, std::string_view family, int phrasing);
/// Draws the item's phrasing and NoOp clause (Note [surface variety] in surface.cpp) and applies them.
void apply_surface(Item& item, const SurfaceOptions& surface);

/// The key that orders a family within each round of its cell: a hash of "skill/domain/family" mixed with
/// the suite seed (Note [stable family assignment], suite.cpp), independent of the registration order.
uint64_t family_round_key(const FamilyInfo& family, uint64_t seed);
/// The families of a cell in round order (ascending family_round_key, ties by name).
std::vector<FamilyInfo> round_order(std::vector<FamilyInfo> families, uint64_t seed);
/// Appends one cell's spec.n_per_cell items drawn from `cell_families` (all of one cell) to `items`, skipping
/// prompts already in `seen` (Note [no duplicate prompts]) and adding its own; generate() calls it per cell.
void generate_cell(const std::vector<FamilyInfo>& cell_families, const SuiteSpec& spec,
                   std::set<std::string, std::less<>>& seen, std::vector<SupplyShortfall>* shortfalls,
                   std::vector<Item>& items);

// Generators, one per family (gen_*.cpp).
void gen_prime_factorisation(SplitMix64&, int, Item&);
void gen_eigenvalues_2x2(SplitMix64&, int, Item&);
void gen_kinematics_units(SplitMix64&, int, Item&);
void gen_ohms_law(SplitMix64&, int, Item&);
void gen_python_expression(SplitMix64&, int, Item&);
void gen_string_slice(SplitMix64&, int, Item&);
void gen_shopping_total(SplitMix64&, int, Item&);
void gen_time_difference(SplitMix64&, int, Item&);

void gen_theorem_recall(SplitMix64&, int, Item&);
void gen_formula_recall(SplitMix64&, int, Item&);
void gen_si_units(SplitMix64&, int, Item&);
void gen_physics_laws(SplitMix64&, int, Item&);
void gen_complexity(SplitMix64&, int, Item&);
void gen_python_builtins(SplitMix64&, int, Item&);
void gen_passage_fact(SplitMix64&, int, Item&);
void gen_capitals(SplitMix64&, int, Item&);
void gen_theorem_name(SplitMix64&, int, Item&);
void gen_unit_name(SplitMix64&, int, Item&);
void gen_builtin_name(SplitMix64&, int, Item&);
void gen_capital_name(SplitMix64&, int, Item&);

void gen_recurrence(SplitMix64&, int, Item&);
void gen_grid_walk(SplitMix64&, int, Item&);
void gen_stepped_motion(SplitMix64&, int, Item&);
void gen_bouncing_particle(SplitMix64&, int, Item&);
void gen_program_trace(SplitMix64&, int, Item&);
void gen_list_ops(SplitMix64&, int, Item&);
void gen_object_moves(SplitMix64&, int, Item&);
void gen_line_swaps(SplitMix64&, int, Item&);

void gen_lattice_paths(SplitMix64&, int, Item&);
void gen_stars_and_bars(SplitMix64&, int, Item&);
void gen_spectral_lines(SplitMix64&, int, Item&);
void gen_punnett(SplitMix64&, int, Item&);
void gen_loop_count(SplitMix64&, int, Item&);
void gen_loop_outputs(SplitMix64&, int, Item&);
void gen_predicate_count(SplitMix64&, int, Item&);
void gen_predicate_values(SplitMix64&, int, Item&);
void gen_count_words(SplitMix64&, int, Item&);
void gen_list_words(SplitMix64&, int, Item&);

void gen_arithmetic_wrong_step(SplitMix64&, int, Item&);
void gen_equation_wrong_step(SplitMix64&, int, Item&);
void gen_unit_error(SplitMix64&, int, Item&);
void gen_dimension_check(SplitMix64&, int, Item&);
void gen_buggy_line(SplitMix64&, int, Item&);
void gen_failing_assert(SplitMix64&, int, Item&);
void gen_problem_drift(SplitMix64&, int, Item&);
void gen_receipt_error(SplitMix64&, int, Item&);
void gen_schedule_contradiction(SplitMix64&, int, Item&);

}  // namespace metaprobe::probes::detail
