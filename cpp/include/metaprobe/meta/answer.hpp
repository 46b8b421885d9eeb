#pragma once
// How the run reads the answer out of a completion's text: stop strings and reasoning ("think") blocks.
// One definition, used by the run and by the lm-evaluation-harness tasks metaprobe exports, so a completion
// scores the same wherever it was generated.
#include <string>
#include <vector>

namespace metaprobe::meta {

/// What reading a completion gives.
struct AnswerText {
  std::string output;     ///< the completion cut at the first stop string (one after the reasoning block, if any)
  std::string answer;     ///< the text scored: after the closing think tag, else `output`; "" when unclosed
  bool closed = true;     ///< false: a reasoning block was opened and never closed (no answer)
  size_t think_end = 0;   ///< bytes of `output` up to the end of the closing tag (all of it when unclosed; 0: none)
};

/// Reads `text`: a stop string inside an open reasoning block does not end it; the answer is what follows the
/// first `think_close` after `think_open` (or after the start, for templates that open the block in the
/// prompt). An empty `think_open` disables reasoning blocks.
AnswerText read_answer(const std::string& text, const std::vector<std::string>& stop, const std::string& think_open,
                       const std::string& think_close);

}  // namespace metaprobe::meta
