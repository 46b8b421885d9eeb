// Surface variety of probe prompts (issue 11, requirement 6): phrasings and NoOp distractor clauses.
//
// Note [surface variety]: the paper's claim is that SFT overfits to surface patterns. To separate a skill
// from the wording it was trained on, every family has three phrasings of its question (the canonical one
// first), drawn per item from a stream keyed by the item id alone, so the task content (numbers, passage,
// code, gold answer) is the same whatever the phrasing; and, as an option, a NoOp clause (GSM-Symbolic,
// Mirzadeh et al. 2024): a plausible sentence of the item's domain that changes nothing, put in front of
// the prompt so it never enters a passage, a program or a list the task counts. Both are recorded per item
// (Item::phrasing, Item::noop). A phrasing rewrites fixed question fragments of the family's prompt, so the
// generators stay the single source of the content.
#include <metaprobe/probes/generate.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/rng.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {
namespace {

struct Rule {
  std::string_view phrasing[kPhrasings];  // [0] is the canonical fragment the generator writes
};

const std::map<std::string_view, std::vector<Rule>>& rules() {
  static const std::map<std::string_view, std::vector<Rule>> r = {
      {"math.prime_factorisation", {{"List its prime factors in increasing order, each repeated as often as it divides", "Give its prime factors from smallest to largest, each as many times as it divides", "Name the primes whose product it is, smallest first, each repeated as often as it divides"}}},
      {"math.eigenvalues_2x2", {{"Find the eigenvalues of the 2x2 matrix with rows", "Compute the eigenvalues of the 2x2 matrix whose rows are", "Determine the eigenvalues of the 2x2 matrix with rows"}}},
      {"physics.kinematics_units", {{"How far does it travel", "What distance does it cover", "How much distance does it cover"}}},
      {"physics.ohms_law", {{"What current flows from the battery", "How much current does the battery deliver", "How large is the current drawn from the battery"}}},
      {"coding.python_expression", {{"In Python 3, what is the value of the expression", "In Python 3, what is the result of the expression", "What value does Python 3 give the expression"}}},
      {"coding.string_slice", {{"What is the value of", "What does Python give for", "What string is"}}},
      {"general.shopping_total", {{"A shopping list:", "Here is a shopping list:", "Someone buys the following:"}}},
      {"general.time_difference", {{"How many minutes does the journey take", "How long is the journey, in minutes", "What is the journey's length in minutes"}, {"How many minutes long is the shift", "How long is the shift, in minutes", "What is the shift's length in minutes"}, {"How many days are there from", "Counting days, how far is it from", "What is the number of days from"}}},
      {"math.theorem_recall", {{"Which theorem states the following?", "Which theorem says this:", "Name the theorem with this statement:"}}},
      {"math.formula_recall", {{"Which formula gives", "Which of these formulas is", "Which option is the formula for"}}},
      {"physics.si_units", {{"What is the SI unit of", "In SI units, what is the unit of", "Which is the SI unit of"}}},
      {"physics.laws", {{"Which law or principle states the following?", "Which law or principle says this:", "Name the law or principle with this statement:"}}},
      {"coding.complexity", {{"What is the time complexity of", "What is the running time, in big-O, of", "Which big-O bound gives the time complexity of"}}},
      {"coding.python_builtins", {{"Which Python built-in or method does the following:", "Which Python built-in or method is used for this:", "What is the Python built-in or method that does this:"}}},
      {"general.passage_fact", {{"Read the passage and answer the question.", "Answer the question from the passage.", "Use the passage below to answer the question."}}},
      {"general.capitals", {{"What is the capital of", "Which city is the capital of", "Which is the capital city of"}}},
      {"math.theorem_name", {{"Name the theorem that states the following:", "Which theorem says this?", "What is the name of the theorem stating this:"}}},
      {"physics.unit_name", {{"What is the name of the SI unit of", "What do we call the SI unit of", "Which SI unit measures"}}},
      {"coding.builtin_name", {{"Which Python built-in function or method does the following:", "What is the name of the Python built-in function or method that does this:", "What Python built-in function or method is used for this:"}}},
      {"general.capital_name", {{"What is the capital of", "Which city is the capital of", "Which is the capital city of"}}},
      {"math.recurrence", {{"A sequence starts with", "Consider the sequence that begins with", "A sequence begins with"}}},
      {"math.grid_walk", {{"What is its final position?", "Where does it end up?", "Give its position after the last move."}}},
      {"physics.stepped_motion", {{"A particle on a line starts at", "A particle on a number line begins at", "On a line, a particle starts at"}}},
      {"physics.bouncing_particle", {{"A particle moves inside a box", "A particle travels inside a one-dimensional box", "A particle bounces around inside a box"}}},
      {"coding.program_trace", {{"What does this Python program print?", "What is the output of this Python program?", "Run this Python program: what does it print?"}}},
      {"coding.list_ops", {{"What does this Python program print?", "What is the output of this Python program?", "Run this Python program: what does it print?"}}},
      {"coding.loop_count", {{"What does this Python program print?", "What is the output of this Python program?", "Run this Python program: what does it print?"}}},
      {"coding.loop_outputs", {{"List every value this Python program prints, in order", "Give every value this Python program prints, in order", "Run this Python program and list all it prints, in order"}}},
      {"general.object_moves", {{"Where is the ", "In which room is the ", "Which room holds the "}}},
      {"general.line_swaps", {{"What is the order of the line now, from front to back?", "In what order do they stand now, from front to back?", "List the line's order now, from front to back."}}},
      {"math.lattice_paths", {{"How many shortest lattice paths go from", "How many shortest lattice paths lead from", "What is the number of shortest lattice paths from"}}},
      {"math.stars_and_bars", {{"How many solutions in", "What number of solutions in", "Counting them all, how many solutions in"}}},
      {"physics.spectral_lines", {{"How many distinct photon energies are possible?", "How many different photon energies can be emitted?", "Count the distinct photon energies that can occur."}}},
      {"physics.punnett", {{"In the cross", "For the cross", "Given the cross"}}},
      {"coding.predicate_count", {{"For how many integers x in", "For how many of the integers x in", "For how many integer values x in"}}},
      {"coding.predicate_values", {{"List, in increasing order, every integer x in", "Give, smallest first, every integer x in", "Write out, smallest first, all integers x in"}}},
      {"general.count_words", {{"How many words of the passage", "How many of the words in the passage", "How many of the passage's words"}}},
      {"general.list_words", {{"List, in order of appearance, the words of the passage", "Give, in the order they appear, the words of the passage", "Write out, in order, the words of the passage"}}},
      {"math.arithmetic_wrong_step", {{"Which step is wrong? Give the step number, or none if every step is correct.", "Give the number of the wrong step, or none if all steps are right.", "Find the step with the error and give its number; answer none if there is no error."}}},
      {"math.equation_wrong_step", {{"Which step is wrong? Give the step number, or none if every step is correct.", "Give the number of the wrong step, or none if all steps are right.", "Find the step with the error and give its number; answer none if there is no error."}}},
      {"math.problem_drift", {{"Which is the first line where the solution departs from the question?", "At which line does the solution first stop answering the question asked?", "Find the first line where the solution no longer follows the question."}}},
      {"physics.unit_error", {{"Which step is wrong? Give the step number, or none if every step is right.", "Give the number of the wrong step, or none if all steps are right.", "Find the step with the wrong factor and give its number; answer none if there is none."}}},
      {"physics.dimension_check", {{"Which one? Give its number, or none if all are consistent.", "Give the number of the inconsistent one, or none if all are consistent.", "Find it and give its number; answer none if every equation is consistent."}}},
      {"coding.buggy_line", {{"Here is a Python function and a test.", "Below are a Python function and a test.", "Consider this Python function and test."}}},
      {"coding.failing_assert", {{"Which one? Give its number, or none if they all pass.", "Give the number of the failing assert, or none if they all pass.", "Find the assert that fails and give its number; answer none if all pass."}}},
      {"general.receipt_error", {{"Which line number is it? Answer none if every line is right.", "Give that line's number, or none if every line is right.", "Find that line and give its number; answer none if there is none."}}},
      {"general.schedule_contradiction", {{"Which one? Give its number, or none if they are all consistent.", "Give the number of the contradicting sentence, or none if they all agree.", "Find that sentence and give its number; answer none if there is none."}}},
  };
  return r;
}

// Irrelevant but plausible sentences per domain (GSM-Symbolic's NoOp): no number or name a task reads.
const std::vector<std::string_view>& noop_sentences(Domain d) {
  static const std::vector<std::string_view> math = {
      "This exercise comes from a chapter on problem solving.", "Calculators are allowed for this question.",
      "A similar question appeared on last year's exam.", "The teacher wrote the question on the board in blue chalk."};
  static const std::vector<std::string_view> physics = {
      "The lab is kept at room temperature.", "Two students recorded the measurements in a notebook.",
      "The apparatus was checked by the technician the day before.", "The class does this experiment every spring."};
  static const std::vector<std::string_view> coding = {
      "The code was written for an introductory Python course.", "A colleague reviewed the code last week.",
      "The program runs on an ordinary laptop.", "The file is saved with UTF-8 encoding."};
  static const std::vector<std::string_view> general = {
      "It was a sunny day in spring.", "Everyone involved had had breakfast already.",
      "The radio was playing quietly in the background.", "The building has a small garden at the back."};
  switch (d) {
    case Domain::math: return math;
    case Domain::physics: return physics;
    case Domain::coding: return coding;
    case Domain::general: return general;
  }
  return general;
}

}  // namespace

bool rephrase(std::string& prompt, std::string_view family, int phrasing) {
  auto it = rules().find(family);
  if (it == rules().end()) return false;
  bool any = false;
  for (const Rule& r : it->second) {
    const std::size_t p = prompt.find(r.phrasing[0]);
    if (p == std::string::npos) continue;
    any = true;
    if (phrasing > 0) prompt.replace(p, r.phrasing[0].size(), r.phrasing[phrasing]);
  }
  return any;
}

void apply_surface(Item& item, const SurfaceOptions& surface) {
  if (!(surface.noop_share >= 0 && surface.noop_share <= 1))
    throw InvalidArgument("noop_share: got " + std::to_string(surface.noop_share) + ", expected a share in [0, 1]");
  // Streams of their own, keyed by the id: the content drawn by the generator does not move.
  SplitMix64 rng(fnv1a64(item.id, 0x5eed5eed5eed5eedULL));
  const int drawn = static_cast<int>(rng.below(kPhrasings));
  const bool noop_draw = static_cast<double>(rng.next() >> 11) * 0x1.0p-53 < surface.noop_share;
  item.phrasing = surface.phrasing == Phrasing::canonical ? 0 : drawn;
  if (item.phrasing > 0 && !rephrase(item.prompt, item.family, item.phrasing)) item.phrasing = 0;
  if (noop_draw) {
    const auto& pool = noop_sentences(item.domain);
    item.prompt = std::string(pool[static_cast<size_t>(rng.below(pool.size()))]) + " " + item.prompt;
    item.noop = true;
  }
}

}  // namespace metaprobe::probes::detail
