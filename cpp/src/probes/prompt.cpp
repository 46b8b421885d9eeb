#include <metaprobe/probes/prompt.hpp>

#include <map>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/rng.hpp>

namespace metaprobe::probes {
namespace {

// Few-shot examples per prompt at most: more exceed any context window, and a huge k would only spin.
constexpr int kMaxShots = 64;

std::string format_instruction(const Item& item) {
  switch (item.answer_type) {
    case AnswerType::choice:
      return "End your response with a final line of the form `Answer: <letter>`, where <letter> is the letter "
             "of the correct option.";
    case AnswerType::list:
      return "End your response with a final line of the form `Answer: <answer>`, with the items separated by "
             "commas.";
    default:
      return "End your response with a final line of the form `Answer: <answer>`.";
  }
}

std::string shot(const Item& example) {
  return "Question: " + example.prompt + "\nSolution: " + example.reference_solution + "\n\n";
}

void check_options(const PromptOptions& options) {
  if (options.template_name != "plain" && options.template_name != "chat" && options.template_name != "few_shot") {
    throw InvalidArgument("template: unknown prompt template '" + options.template_name +
                          "', expected one of plain, chat, few_shot");
  }
  if (options.template_name == "few_shot" && (options.k < 0 || options.k > kMaxShots)) {
    throw InvalidArgument("k: got " + std::to_string(options.k) + ", expected 0.." + std::to_string(kMaxShots) +
                          " few-shot examples (the cell's pool and generators supply at most " +
                          std::to_string(kMaxShots) + " distinct examples per prompt)");
  }
}

std::string render_checked(const Item& item, const PromptOptions& options, const std::vector<const Item*>& cell_pool) {
  if (options.template_name == "plain") return "Question: " + item.prompt + "\nAnswer:";
  if (options.template_name == "chat") return item.prompt + "\n\n" + format_instruction(item);
  // few_shot: candidates of the same cell that are not this item (by id or by identical prompt).
  std::vector<const Item*> candidates;
  for (const Item* p : cell_pool) {
    if (p->id != item.id && p->prompt != item.prompt && !p->reference_solution.empty()) candidates.push_back(p);
  }
  // The draw depends on the item and the seed only, not on the item's position in the set.
  SplitMix64 rng(fnv1a64(item.id, fnv1a64("few_shot|" + std::to_string(options.seed))));
  rng.shuffle(candidates);
  const size_t k = static_cast<size_t>(options.k);
  std::string out;
  size_t used = 0;
  for (; used < k && used < candidates.size(); ++used) out += shot(*candidates[used]);
  if (used < k) {
    // Top up with fresh items of the cell; their seed space ("few-shot" tag) never meets a suite's.
    const auto fams = families(item.cell());
    const uint64_t seed = fnv1a64("few_shot_fill|" + std::to_string(options.seed));
    // Bounded: a family whose items repeat this prompt cannot make the loop spin.
    for (uint64_t idx = 0; used < k && !fams.empty() && idx < 4 * k + 16; ++idx) {
      const auto& fam = fams[idx % fams.size()];
      Item ex = generate_item(fam.name, item.difficulty, seed, idx);
      if (ex.id == item.id || ex.prompt == item.prompt) continue;
      out += shot(ex);
      ++used;
    }
  }
  out += "Question: " + item.prompt + "\nSolution:";
  return out;
}

}  // namespace

std::vector<std::string> template_names() { return {"plain", "chat", "few_shot"}; }

std::string render(const Item& item, const PromptOptions& options, const std::vector<Item>& pool) {
  check_options(options);
  std::vector<const Item*> cell_pool;
  for (const auto& p : pool) {
    if (p.cell() == item.cell()) cell_pool.push_back(&p);
  }
  return render_checked(item, options, cell_pool);
}

std::vector<std::string> render_all(const std::vector<Item>& items, const PromptOptions& options) {
  check_options(options);
  std::map<Cell, std::vector<const Item*>> by_cell;
  if (options.template_name == "few_shot") {
    for (const auto& it : items) by_cell[it.cell()].push_back(&it);
  }
  std::vector<std::string> out;
  out.reserve(items.size());
  static const std::vector<const Item*> empty;
  for (const auto& it : items) {
    auto found = by_cell.find(it.cell());
    out.push_back(render_checked(it, options, found == by_cell.end() ? empty : found->second));
  }
  return out;
}

}  // namespace metaprobe::probes
