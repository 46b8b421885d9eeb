#pragma once
// Layer index and module kind of a parameter name, for the Llama/Qwen/Mistral, GPT-2 and GPT-NeoX
// naming schemes, with a fallback that keeps the full name.
#include <cstdint>
#include <string>

#include <metaprobe/common/fields.hpp>

namespace metaprobe::params {

struct ParsedName {
  std::string name;     // the full name
  std::string scheme;   // "llama", "gpt2", "gpt_neox", "generic" (some `<x>.N.` block) or "none"
  int64_t layer = -1;   // block index, -1 when the tensor is not in a numbered block
  std::string module;   // the path inside the block (or the full path) without the parameter suffix
  std::string param;    // last component: "weight", "bias", ... ("" when the name has a single component)
  std::string kind;     // canonical kind ("attn_q", "mlp_down", "norm_attn", "embedding", ...) or `module`
};
// The serialised fields (JSON and Python; `name` is the row's own key there).
#define METAPROBE_PARSED_NAME_FIELDS(X, LATER) X("layer", layer) X("kind", kind) X("module", module) \
  X("param", param) X("scheme", scheme)
METAPROBE_RECORD(ParsedName, METAPROBE_PARSED_NAME_FIELDS)

/// Parses one parameter name; never throws (unknown names fall back to kind = module = name sans param).
ParsedName parse_param_name(const std::string& name);

}  // namespace metaprobe::params
