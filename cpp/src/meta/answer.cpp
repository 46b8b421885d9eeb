// Reading the answer out of a completion (docs/meta.md, "Answers").
#include <metaprobe/meta/answer.hpp>

#include <algorithm>

namespace metaprobe::meta {

AnswerText read_answer(const std::string& text, const std::vector<std::string>& stop, const std::string& think_open,
                       const std::string& think_close) {
  AnswerText r;
  r.output = text;
  auto first_stop = [&](size_t from) {
    size_t cut = std::string::npos;
    for (const auto& s : stop) cut = std::min(cut, r.output.find(s, from));
    return cut;
  };
  const size_t cut = first_stop(0);
  if (!think_open.empty()) {
    const size_t open = r.output.find(think_open);
    const size_t close = r.output.find(think_close, open == std::string::npos ? 0 : open + think_open.size());
    if (close != std::string::npos) {
      const size_t end = close + think_close.size();
      const size_t stop_after = first_stop(end);
      r.answer = r.output.substr(end, stop_after == std::string::npos ? std::string::npos : stop_after - end);
      r.think_end = end;
      if (stop_after != std::string::npos) r.output.resize(stop_after);
      return r;
    }
    if (open != std::string::npos && (cut == std::string::npos || cut > open)) {
      r.closed = false;  // an unclosed reasoning block (cut off by max_new_tokens): no answer
      r.think_end = r.output.size();
      return r;
    }
  }
  if (cut != std::string::npos) r.output.resize(cut);
  r.answer = r.output;
  return r;
}

}  // namespace metaprobe::meta
