// The family registry: name, cell, version and generator of every family.
#include <metaprobe/probes/generate.hpp>

#include <metaprobe/error.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes {
namespace {

using detail::GenFn;

struct Family {
  FamilyInfo info;
  GenFn fn;
};

const std::vector<Family>& registry() {
  using S = Skill;
  using D = Domain;
  static const std::vector<Family> all = {
      // calculation
      {{"math.prime_factorisation", S::calculation, D::math, 2,
        "prime factors of n with repetition; difficulty adds factors and larger primes"}, detail::gen_prime_factorisation},
      {{"math.eigenvalues_2x2", S::calculation, D::math, 1,
        "integer eigenvalues of a 2x2 integer matrix; difficulty widens eigenvalues and the change of basis"}, detail::gen_eigenvalues_2x2},
      {{"physics.kinematics_units", S::calculation, D::physics, 1,
        "distance under constant acceleration with unit conversions; difficulty adds acceleration and conversions"}, detail::gen_kinematics_units},
      {{"physics.ohms_law", S::calculation, D::physics, 1,
        "battery current through a resistor network (mA); difficulty adds resistors, parallel branches and kOhm"}, detail::gen_ohms_law},
      {{"coding.python_expression", S::calculation, D::coding, 1,
        "value of an integer expression with Python's //, %, bit operators; difficulty adds operators and negatives"}, detail::gen_python_expression},
      {{"coding.string_slice", S::calculation, D::coding, 1,
        "value of a Python string slice; difficulty adds negative indices, steps and concatenation"}, detail::gen_string_slice},
      {{"general.shopping_total", S::calculation, D::general, 1,
        "total of a shopping list; difficulty adds items, a multi-buy deal and a coupon"}, detail::gen_shopping_total},
      {{"general.time_difference", S::calculation, D::general, 1,
        "minutes between clock times or days between dates; difficulty crosses midnight, years and leap days"}, detail::gen_time_difference},
      // fact_retrieval
      // table choice families: version 3 (2 where v1 before) draws difficulty-1 distractors from other groups only
      {{"math.theorem_recall", S::fact_retrieval, D::math, 3,
        "name the theorem from its statement (table math_theorems); difficulty draws distractors from the same area"}, detail::gen_theorem_recall},
      {{"math.formula_recall", S::fact_retrieval, D::math, 2,
        "pick the formula of a named quantity (table math_formulas); difficulty draws distractors from the same area"}, detail::gen_formula_recall},
      {{"physics.si_units", S::fact_retrieval, D::physics, 3,
        "SI unit of a quantity (table physics_units); difficulty draws distractors from the same field"}, detail::gen_si_units},
      {{"physics.laws", S::fact_retrieval, D::physics, 3,
        "name the law or principle from its statement (table physics_laws); difficulty: same-field distractors"}, detail::gen_physics_laws},
      {{"coding.complexity", S::fact_retrieval, D::coding, 3,
        "time complexity of an operation or algorithm (table coding_complexity); difficulty: same-kind distractors"}, detail::gen_complexity},
      {{"coding.python_builtins", S::fact_retrieval, D::coding, 2,
        "which Python built-in or method does a described job (table coding_python); difficulty: same-kind distractors"}, detail::gen_python_builtins},
      {{"general.passage_fact", S::fact_retrieval, D::general, 1,
        "a fact stated in a generated passage among distractor facts; difficulty adds people, facts and revisions"}, detail::gen_passage_fact},
      {{"general.capitals", S::fact_retrieval, D::general, 2,
        "capital of a country (table general_capitals); difficulty draws distractors from the same continent"}, detail::gen_capitals},
      // closed-book free recall (string answers with aliases), one per domain, beside the choice families
      {{"math.theorem_name", S::fact_retrieval, D::math, 1,
        "name the theorem from its statement, free answer (table math_theorems); difficulty removes cues and adds interfering facts"}, detail::gen_theorem_name},
      {{"physics.unit_name", S::fact_retrieval, D::physics, 1,
        "name the SI unit of a quantity, free answer (table physics_units); difficulty removes cues and adds interfering facts"}, detail::gen_unit_name},
      {{"coding.builtin_name", S::fact_retrieval, D::coding, 1,
        "name the Python built-in that does a described job, free answer (table coding_python); difficulty removes cues and adds interfering facts"}, detail::gen_builtin_name},
      {{"general.capital_name", S::fact_retrieval, D::general, 1,
        "capital of a country, free answer (table general_capitals); difficulty removes cues and adds interfering facts"}, detail::gen_capital_name},
      // simulation
      {{"math.recurrence", S::simulation, D::math, 1,
        "iterate a modular recurrence; difficulty adds steps, a larger modulus and second order"}, detail::gen_recurrence},
      {{"math.grid_walk", S::simulation, D::math, 1,
        "final position after a sequence of grid moves; difficulty adds moves and longer strides"}, detail::gen_grid_walk},
      {{"physics.stepped_motion", S::simulation, D::physics, 1,
        "position after ticks of discrete constant-acceleration motion; difficulty adds ticks and a thrust change"}, detail::gen_stepped_motion},
      {{"physics.bouncing_particle", S::simulation, D::physics, 1,
        "position of a particle bouncing elastically in a 1-D box; difficulty adds ticks, speed and box size"}, detail::gen_bouncing_particle},
      {{"coding.program_trace", S::simulation, D::coding, 1,
        "what a short Python program with a loop prints; difficulty adds statements, branches and a nested loop"}, detail::gen_program_trace},
      {{"coding.list_ops", S::simulation, D::coding, 1,
        "final contents of a Python list after append/pop/insert/extend/reverse; difficulty adds operations and kinds"}, detail::gen_list_ops},
      // loop_count / loop_outputs run a program: simulation (they were enumeration before version 2)
      {{"coding.loop_count", S::simulation, D::coding, 2,
        "how many times a loop body runs; difficulty adds nesting, dependent ranges and a condition"}, detail::gen_loop_count},
      {{"coding.loop_outputs", S::simulation, D::coding, 2,
        "every value nested loops print, in order; difficulty widens ranges and adds a condition"}, detail::gen_loop_outputs},
      {{"general.object_moves", S::simulation, D::general, 1,
        "where an object ends up after people move things between rooms; difficulty adds objects and actions"}, detail::gen_object_moves},
      {{"general.line_swaps", S::simulation, D::general, 1,
        "order of a queue of people after swaps and moves; difficulty adds people and actions"}, detail::gen_line_swaps},
      // enumeration
      {{"math.lattice_paths", S::enumeration, D::math, 2,
        "monotone lattice paths avoiding blocked points; difficulty enlarges the grid and blocks more points"}, detail::gen_lattice_paths},
      {{"math.stars_and_bars", S::enumeration, D::math, 2,
        "integer solutions of x1+...+xk=n with bounds; difficulty adds variables, lower and upper bounds"}, detail::gen_stars_and_bars},
      {{"physics.spectral_lines", S::enumeration, D::physics, 2,
        "distinct photon energies between given energy levels; difficulty adds levels and coincident gaps"}, detail::gen_spectral_lines},
      {{"physics.punnett", S::enumeration, D::physics, 2,
        "distinct offspring genotypes or phenotypes of a cross; difficulty adds genes"}, detail::gen_punnett},
      {{"coding.predicate_count", S::enumeration, D::coding, 1,
        "how many x in range(a, b) satisfy a Python condition; difficulty adds atoms, or/not and a wider range"}, detail::gen_predicate_count},
      {{"coding.predicate_values", S::enumeration, D::coding, 1,
        "every x in range(a, b) satisfying a Python condition, in order; difficulty adds atoms, or/not and a wider range"}, detail::gen_predicate_values},
      {{"general.count_words", S::enumeration, D::general, 2,
        "count the words of a passage with a property; difficulty lengthens the passage and combines properties"}, detail::gen_count_words},
      {{"general.list_words", S::enumeration, D::general, 1,
        "list the words of a passage with a property, in order; difficulty lengthens it and combines properties"}, detail::gen_list_words},
      // diagnostic
      // diagnostic: 2/5 of the items have no error (gold "none"; Note [no-error items] in gen_diagnostic.cpp)
      {{"math.arithmetic_wrong_step", S::diagnostic, D::math, 2,
        "first wrong step of a worked calculation with at most one slip, or none; difficulty adds steps and shrinks the slip"}, detail::gen_arithmetic_wrong_step},
      {{"math.equation_wrong_step", S::diagnostic, D::math, 2,
        "wrong step of a linear-equation solution, or none; difficulty adds brackets and steps"}, detail::gen_equation_wrong_step},
      {{"math.problem_drift", S::diagnostic, D::math, 1,
        "first line where a worked solution departs from the question asked (a changed given, or a neighbouring question), or none; difficulty shrinks the change and folds it into computations"}, detail::gen_problem_drift},
      {{"physics.unit_error", S::diagnostic, D::physics, 2,
        "step of a unit-conversion chain with a wrong factor, or none; difficulty adds steps and subtler factors"}, detail::gen_unit_error},
      {{"physics.dimension_check", S::diagnostic, D::physics, 2,
        "the dimensionally inconsistent equation of a list, or none; difficulty adds equations"}, detail::gen_dimension_check},
      {{"coding.buggy_line", S::diagnostic, D::coding, 3,
        "the buggy line of a short function given a test it fails, or none when it passes; difficulty adds lines and subtler bugs"}, detail::gen_buggy_line},
      {{"coding.failing_assert", S::diagnostic, D::coding, 2,
        "which assert of a test list fails for a function with an edge-case bug, or none; difficulty adds asserts"}, detail::gen_failing_assert},
      {{"general.receipt_error", S::diagnostic, D::general, 2,
        "the wrong line of a receipt, or none; difficulty adds lines and shrinks the error"}, detail::gen_receipt_error},
      {{"general.schedule_contradiction", S::diagnostic, D::general, 2,
        "the sentence of a schedule that contradicts the others, or none; difficulty adds events"}, detail::gen_schedule_contradiction},
  };
  return all;
}

const Family& find_family(std::string_view name) {
  for (const auto& f : registry()) {
    if (f.info.name == name) return f;
  }
  throw InvalidArgument("family: unknown generator family '" + std::string(name) +
                        "', expected a name listed by metaprobe::probes::families()");
}

}  // namespace

const std::vector<FamilyInfo>& families() {
  static const std::vector<FamilyInfo> infos = [] {
    std::vector<FamilyInfo> out;
    for (const auto& f : registry()) out.push_back(f.info);
    return out;
  }();
  return infos;
}

std::vector<FamilyInfo> families(const Cell& cell) {
  std::vector<FamilyInfo> out;
  for (const auto& f : registry()) {
    if (f.info.skill == cell.skill && f.info.domain == cell.domain) out.push_back(f.info);
  }
  return out;
}

const FamilyInfo& family_info(std::string_view name) { return find_family(name).info; }

std::string item_id(std::string_view family, int version, uint64_t seed, uint64_t index, int difficulty) {
  std::string key(family);
  key += '|';
  key += std::to_string(version);
  key += '|';
  key += std::to_string(seed);
  key += '|';
  key += std::to_string(index);
  key += '|';
  key += std::to_string(difficulty);
  return hex64(fnv1a64(key));
}

Item generate_item(std::string_view family, int difficulty, uint64_t seed, uint64_t index,
                   const SurfaceOptions& surface) {
  const Family& f = find_family(family);
  if (difficulty < 1 || difficulty > 5) {
    throw InvalidArgument("difficulty: got " + std::to_string(difficulty) + ", expected an integer in 1..5");
  }
  Item item;
  item.id = item_id(f.info.name, f.info.version, seed, index, difficulty);
  item.skill = f.info.skill;
  item.domain = f.info.domain;
  item.family = f.info.name;
  item.difficulty = difficulty;
  // The stream is keyed by the id's hash input, mixed once more so neighbouring keys decorrelate.
  SplitMix64 rng(fnv1a64(item.id, 0x9e3779b97f4a7c15ULL));
  f.fn(rng, difficulty, item);
  detail::apply_surface(item, surface);
  return item;
}

}  // namespace metaprobe::probes
