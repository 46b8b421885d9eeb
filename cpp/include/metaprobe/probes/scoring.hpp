#pragma once
// Scoring of probe items: answer extraction from free-form model output, normalised comparison by answer
// type, multiple choice from per-choice log-likelihoods (lm-evaluation-harness acc / acc_norm), and
// accuracy with Wilson 95% intervals per cell, skill and domain. Definitions: docs/probes.md, "Scoring".
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

/// Every extraction strategy name: the answer markers (the one that comes last in the answer text wins),
/// then the type-specific fallbacks, then "reasoning_unclosed" (a reasoning block that never closes: the
/// output was cut off before answering) and "none".
inline constexpr std::array<std::string_view, 11> kStrategies = {
    "boxed",       "gsm8k",      "the_answer_is", "answer_colon",       "emphasis", "last_number",
    "choice_letter", "choice_text", "last_line",   "reasoning_unclosed", "none"};

/// The gold answer of a diagnostic item without an error, and the answer extracted when a model says there
/// is none ("No error", "All steps are correct", "none"; docs/probes.md, "Diagnostics without an error").
inline constexpr std::string_view kNoError = "none";

/// The answer found in a model output and the strategy that found it.
/// Reasoning blocks (ExtractOptions::reasoning_tags) are removed first; then among the markers "boxed"
/// (\boxed{x}), "gsm8k" (#### x), "the_answer_is" and "answer_colon" (Answer: x) the one whose position is
/// last in the text wins; without a marker the fallback of the answer type: "emphasis" (the last **bold**
/// number of the final paragraph) or "last_number" (integer, number), "choice_text" / "choice_letter"
/// (choice: option text before letters, never a letter inside an option's text), "last_line" (string,
/// list). "reasoning_unclosed" and "none" have answer empty and found false.
struct Extraction {
  std::string answer;
  std::string strategy = "none";
  bool found = false;
};

/// Options of extraction: which reasoning blocks to remove and which strategies may fire.
struct ExtractOptions {
  /// (open, close) tag pairs of reasoning blocks. Text up to the last close tag is reasoning; an open tag
  /// after it (a block never closed) means no answer.
  std::vector<std::pair<std::string, std::string>> reasoning_tags = {
      {"<think>", "</think>"}, {"<thinking>", "</thinking>"}, {"<reasoning>", "</reasoning>"}};
  /// Strategies allowed to fire (names of kStrategies); empty means all. {"gsm8k"} is lm-eval's
  /// strict-match, {"last_number"} its flexible-extract.
  std::vector<std::string> strategies;
};

/// Extracts the answer of an output for an item of the given answer type; `choices` are the options of a
/// choice item (they bound the valid letters and enable "choice_text"). Never throws.
Extraction extract(std::string_view output, AnswerType type, const std::vector<std::string>& choices = {});

/// The same with options; throws InvalidArgument when options name an unknown strategy.
Extraction extract(std::string_view output, AnswerType type, const std::vector<std::string>& choices,
                   const ExtractOptions& options);

/// The default extraction options (one immutable instance).
const ExtractOptions& default_extract_options();

/// Extraction for an item: its choices, and its aliases as further texts of the gold option.
Extraction extract(const Item& item, std::string_view output,
                   const ExtractOptions& options = default_extract_options());

/// True when an extracted answer equals the item's answer after normalisation by answer type.
/// Throws InvalidArgument when the item's own answer cannot be read for its type (e.g. a non-numeric
/// answer of an integer item, a gold_index outside choices, a negative tolerance).
bool answers_match(const Item& item, std::string_view extracted);

/// extract() then answers_match(): whether a model output answers the item correctly.
bool check(const Item& item, std::string_view output);
/// check() with extraction options.
bool check(const Item& item, std::string_view output, const ExtractOptions& options);

/// An accuracy with its Wilson score interval.
struct Accuracy {
  int64_t n = 0;
  int64_t correct = 0;
  double acc = 0, lo = 0, hi = 0;
};

/// Accuracy correct/n with the Wilson score interval at normal quantile z (default: 95%). n = 0 gives
/// acc 0 and the interval [0, 1]; throws InvalidArgument unless 0 ≤ correct ≤ n and z is finite and > 0.
Accuracy wilson(int64_t correct, int64_t n, double z = 1.959963984540054);

/// The score of one item.
struct ItemScore {
  std::string id;
  Cell cell;
  std::string extracted;
  std::string strategy;
  bool correct = false;
};

/// Per-item scores and accuracies aggregated per cell, skill and domain (only groups with items appear).
struct Scores {
  std::vector<ItemScore> items;
  std::map<Cell, Accuracy> by_cell;
  std::map<Skill, Accuracy> by_skill;
  std::map<Domain, Accuracy> by_domain;
  Accuracy overall;
};

/// Scores outputs aligned with items (outputs[i] answers items[i]); a size mismatch is InvalidArgument.
Scores score(const std::vector<Item>& items, const std::vector<std::string>& outputs,
             const ExtractOptions& options = default_extract_options());

/// The same over borrowed items and texts (no copies; used by the Python binding). Null items are
/// InvalidArgument.
Scores score(const std::vector<const Item*>& items, const std::vector<std::string_view>& outputs,
             const ExtractOptions& options = default_extract_options());

/// Error detection of diagnostic items, as error localisation is scored in the literature: a model *flags*
/// an item when it names a location (any answer but kNoError, found); flagged items with the right location
/// are true positives. precision = tp / flagged, recall = tp / errors (items whose gold is a location),
/// f1 their harmonic mean; NaN where a denominator is 0.
struct Detection {
  int64_t n = 0;        ///< items counted
  int64_t errors = 0;   ///< items with an error (gold is a location)
  int64_t flagged = 0;  ///< items where the model named a location
  int64_t true_positives = 0;
  double precision = 0, recall = 0, f1 = 0;
};

/// Adds one diagnostic item's verdict to running counts (call finish_detection once at the end).
void add_detection(Detection& d, const Item& item, std::string_view extracted, bool found, bool correct);
/// Fills precision, recall and f1 from the counts.
void finish_detection(Detection& d);

/// Multiple-choice prediction from per-choice log-likelihoods, as lm-evaluation-harness: pred = argmax ll
/// (acc), pred_norm = argmax ll / len(choice) in Unicode code points (acc_norm); ties go to the first.
struct ChoiceScore {
  int pred = -1;
  int pred_norm = -1;
  bool acc = false;
  bool acc_norm = false;
};

/// Scores one choice item from the log-likelihood of each option (in the order of item.choices).
/// Throws InvalidArgument on a size mismatch, a NaN, an empty option, or a gold_index outside the choices.
ChoiceScore score_choice(const Item& item, const std::vector<double>& loglikelihoods);

/// The number of Unicode code points of UTF-8 text (Python's len of the decoded string; counts the bytes
/// that do not continue a sequence), the length lm-evaluation-harness divides by for acc_norm.
int64_t utf8_length(std::string_view text);

}  // namespace metaprobe::probes
