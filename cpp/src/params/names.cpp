// Parameter-name parsing. A name is split at its first numbered block ("<container>.N."); the container
// decides the scheme and the rest is the module path inside the block. Kinds are canonicalised so that
// aggregates line up across schemes (GPT-2's attn.c_attn and NeoX's attention.query_key_value are both
// "attn_qkv").
#include <metaprobe/params/names.hpp>

#include <cctype>
#include <string_view>
#include <utility>
#include <vector>

namespace metaprobe::params {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool is_index(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Module path (inside a block, or the whole path outside blocks) -> canonical kind.
std::string canonical_kind(const std::string& module) {
  static const std::vector<std::pair<std::string_view, std::string_view>> suffixes = {
      // Llama / Qwen / Mistral
      {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_o"},
      {"self_attn.qkv_proj", "attn_qkv"},
      {"self_attn.W_pack", "attn_qkv"},
      {"self_attn.q_norm", "norm_q"},
      {"self_attn.k_norm", "norm_k"},
      {"self_attn.rotary_emb", "rotary"},
      {"mlp.gate_proj", "mlp_gate"},
      {"mlp.up_proj", "mlp_up"},
      {"mlp.down_proj", "mlp_down"},
      {"mlp.gate_up_proj", "mlp_gate_up"},
      {"input_layernorm", "norm_attn"},
      {"post_attention_layernorm", "norm_mlp"},
      {"pre_feedforward_layernorm", "norm_mlp"},
      {"post_feedforward_layernorm", "norm_mlp_out"},
      {"embed_tokens", "embedding"},
      {"lm_head", "lm_head"},
      // GPT-2
      {"attn.c_attn", "attn_qkv"},
      {"attn.c_proj", "attn_o"},
      {"mlp.c_fc", "mlp_up"},
      {"mlp.c_proj", "mlp_down"},
      {"ln_1", "norm_attn"},
      {"ln_2", "norm_mlp"},
      {"attn.masked_bias", "attn_buffer"},
      {"attn.bias", "attn_buffer"},
      {"wte", "embedding"},
      {"wpe", "position_embedding"},
      {"ln_f", "norm_final"},
      // GPT-NeoX
      {"attention.query_key_value", "attn_qkv"},
      {"attention.dense", "attn_o"},
      {"attention.rotary_emb", "rotary"},
      {"attention.masked_bias", "attn_buffer"},
      {"attention.bias", "attn_buffer"},
      {"mlp.dense_h_to_4h", "mlp_up"},
      {"mlp.dense_4h_to_h", "mlp_down"},
      {"embed_in", "embedding"},
      {"embed_out", "lm_head"},
      {"final_layer_norm", "norm_final"},
  };
  for (const auto& [suffix, kind] : suffixes) {
    if (module == suffix || ends_with(module, std::string(".") + std::string(suffix))) return std::string(kind);
  }
  if (module == "model.norm" || module == "norm") return "norm_final";
  return module;
}

}  // namespace

ParsedName parse_param_name(const std::string& name) {
  ParsedName p;
  p.name = name;
  p.scheme = "none";
  std::vector<std::string> parts = split(name);
  if (parts.size() > 1) {
    p.param = parts.back();
    parts.pop_back();
  }
  // rotary_emb.inv_freq and attention masks are buffers whose last component is not a weight suffix;
  // keeping them whole gives them their own kind.
  size_t block = parts.size();
  for (size_t i = 1; i < parts.size(); ++i) {
    if (is_index(parts[i])) {
      block = i;
      break;
    }
  }
  auto join = [&](size_t from, size_t to) {
    std::string out;
    for (size_t i = from; i < to; ++i) out += (i > from ? "." : "") + parts[i];
    return out;
  };
  if (block < parts.size() && block + 1 <= parts.size()) {
    const std::string container = join(0, block);
    p.layer = std::stoll(parts[block]);
    p.module = join(block + 1, parts.size());
    if (container == "model.layers" || container == "layers" || ends_with(container, ".model.layers") ||
        container == "model.language_model.layers") {
      p.scheme = "llama";
    } else if (container == "transformer.h" || container == "h") {
      p.scheme = "gpt2";
    } else if (container == "gpt_neox.layers") {
      p.scheme = "gpt_neox";
    } else {
      p.scheme = "generic";
    }
    if (p.module.empty()) {
      // "x.3.weight": the block itself holds the parameter.
      p.module = container;
    }
  } else {
    p.module = join(0, parts.size());
    if (p.module.empty()) p.module = name;
    if (name.rfind("model.", 0) == 0 || name.rfind("lm_head", 0) == 0) p.scheme = "llama";
    if (name.rfind("transformer.", 0) == 0) p.scheme = "gpt2";
    if (name.rfind("gpt_neox.", 0) == 0 || name.rfind("embed_out", 0) == 0) p.scheme = "gpt_neox";
  }
  p.kind = canonical_kind(p.module);
  return p;
}

}  // namespace metaprobe::params
