#pragma once
// Prompt rendering with named templates, so one suite serves base and instruction-tuned models.
#include <cstdint>
#include <string>
#include <vector>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/probes/item.hpp>

namespace metaprobe::probes {

/// Rendering options. Templates: "plain" (Question/Answer for base models), "chat" (adds an answer-format
/// instruction), "few_shot" (k worked examples from the same cell, never the item itself).
struct PromptOptions {
  std::string template_name = "chat";
  int k = 3;          ///< few_shot: number of examples
  uint64_t seed = 0;  ///< few_shot: which examples are drawn
};
// The serialised fields (the run options' "prompt" object: template, k, seed).
#define METAPROBE_PROMPT_OPTIONS_FIELDS(X, LATER) X("template", template_name) X("k", k) X("seed", seed)
METAPROBE_RECORD(PromptOptions, METAPROBE_PROMPT_OPTIONS_FIELDS)

/// The template names, in documentation order.
std::vector<std::string> template_names();

/// Renders one item. few_shot draws examples from `pool` items of the same cell (other ids and prompts);
/// when the pool has fewer than k, it tops up with items generated for the cell under a separate seed.
std::string render(const Item& item, const PromptOptions& options = {}, const std::vector<Item>& pool = {});
/// Renders every item, with the set itself as the few-shot pool.
std::vector<std::string> render_all(const std::vector<Item>& items, const PromptOptions& options = {});

}  // namespace metaprobe::probes
