#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/lm/transformer.hpp>
#include "common/format.hpp"

namespace metaprobe::lm {
namespace {

void require_positive(const char* field, int64_t value) {
  if (value < 1) {
    throw InvalidArgument(std::string("config.") + field + ": got " + std::to_string(value) + ", expected >= 1");
  }
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Checks ids/mask and returns them as int64 tensors on the CPU.
std::pair<at::Tensor, at::Tensor> checked_inputs(const at::Tensor& ids, const at::Tensor& mask, int64_t vocab) {
  if (!ids.defined() || ids.dim() != 2) {
    throw InvalidArgument("ids: expected a 2-D tensor [batch, time], got " +
                          (ids.defined() ? std::to_string(ids.dim()) + "-D" : std::string("an undefined tensor")));
  }
  if (at::isFloatingType(ids.scalar_type()) || at::isComplexType(ids.scalar_type()) ||
      ids.scalar_type() == at::kBool) {
    throw InvalidArgument("ids: expected an integer dtype, got " + std::string(c10::toString(ids.scalar_type())));
  }
  at::Tensor ids64 = ids.to(at::kCPU, at::kLong).contiguous();
  if (ids64.numel() > 0) {
    const int64_t lo = ids64.min().item<int64_t>();
    const int64_t hi = ids64.max().item<int64_t>();
    if (lo < 0 || hi >= vocab) {
      throw InvalidArgument("ids: value " + std::to_string(lo < 0 ? lo : hi) +
                            " is outside the vocabulary, expected 0 <= id < " + std::to_string(vocab));
    }
  }
  at::Tensor mask64;
  if (mask.defined()) {
    if (mask.sizes() != ids.sizes()) {
      throw InvalidArgument("attention_mask: shape " + metaprobe::detail::format_shape(mask.sizes()) + " differs from ids shape " +
                            metaprobe::detail::format_shape(ids.sizes()));
    }
    if (at::isComplexType(mask.scalar_type())) {
      throw InvalidArgument("attention_mask: expected 0/1 values, got dtype " +
                            std::string(c10::toString(mask.scalar_type())));
    }
    at::Tensor m = mask.to(at::kCPU);
    if (m.numel() > 0 && !((m == 0) | (m == 1)).all().item<bool>()) {
      throw InvalidArgument("attention_mask: expected only 0/1 values");
    }
    mask64 = m.to(at::kLong).contiguous();
  } else {
    mask64 = at::ones(ids64.sizes(), at::kLong);
  }
  return {ids64, mask64};
}

}  // namespace

void TransformerConfig::validate() const {
  require_positive("vocab_size", vocab_size);
  require_positive("d_model", d_model);
  require_positive("n_layers", n_layers);
  require_positive("n_heads", n_heads);
  require_positive("d_ff", d_ff);
  require_positive("max_len", max_len);
  if (d_model % n_heads != 0 || (d_model / n_heads) % 2 != 0) {
    throw InvalidArgument("config.d_model: got " + std::to_string(d_model) + " with n_heads " +
                          std::to_string(n_heads) + ", expected d_model divisible by n_heads into an even head size");
  }
  if (!(rope_theta > 1.0) || !std::isfinite(rope_theta)) {
    throw InvalidArgument("config.rope_theta: got " + std::to_string(rope_theta) + ", expected a finite value > 1");
  }
  if (!(norm_eps > 0.0) || !std::isfinite(norm_eps)) {
    throw InvalidArgument("config.norm_eps: got " + std::to_string(norm_eps) + ", expected a finite value > 0");
  }
}

std::string TransformerConfig::to_json() const {
  nlohmann::json j = {{"architecture", "TinyTransformer"},
                      {"vocab_size", vocab_size},
                      {"d_model", d_model},
                      {"n_layers", n_layers},
                      {"n_heads", n_heads},
                      {"d_ff", d_ff},
                      {"max_len", max_len},
                      {"rope_theta", rope_theta},
                      {"norm_eps", norm_eps},
                      {"seed", seed}};
  return j.dump();
}

TransformerConfig TransformerConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("config: not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw FormatError("config: expected a JSON object, got " + std::string(j.type_name()));
  if (j.contains("architecture") && j["architecture"] != "TinyTransformer") {
    throw FormatError("config.architecture: got " + j["architecture"].dump() + ", expected \"TinyTransformer\"");
  }
  TransformerConfig c;
  auto get_int = [&](const char* key, int64_t& out, bool required) {
    if (!j.contains(key)) {
      if (required) throw FormatError(std::string("config: missing field '") + key + "'");
      return;
    }
    if (!j[key].is_number_integer()) {
      throw FormatError(std::string("config.") + key + ": expected an integer, got " + j[key].dump());
    }
    out = j[key].get<int64_t>();
  };
  auto get_double = [&](const char* key, double& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_number()) throw FormatError(std::string("config.") + key + ": expected a number, got " + j[key].dump());
    out = j[key].get<double>();
  };
  get_int("vocab_size", c.vocab_size, true);
  get_int("d_model", c.d_model, true);
  get_int("n_layers", c.n_layers, true);
  get_int("n_heads", c.n_heads, true);
  get_int("d_ff", c.d_ff, true);
  get_int("max_len", c.max_len, true);
  get_double("rope_theta", c.rope_theta);
  get_double("norm_eps", c.norm_eps);
  if (j.contains("seed")) {
    if (!j["seed"].is_number_integer() || (j["seed"].is_number_integer() && !j["seed"].is_number_unsigned() &&
                                           j["seed"].get<int64_t>() < 0)) {
      throw FormatError("config.seed: expected a non-negative integer, got " + j["seed"].dump());
    }
    c.seed = j["seed"].get<uint64_t>();
  }
  c.validate();
  return c;
}

bool TransformerConfig::operator==(const TransformerConfig& o) const {
  return vocab_size == o.vocab_size && d_model == o.d_model && n_layers == o.n_layers && n_heads == o.n_heads &&
         d_ff == o.d_ff && max_len == o.max_len && rope_theta == o.rope_theta && norm_eps == o.norm_eps &&
         seed == o.seed;
}

TinyTransformer::TinyTransformer(const TransformerConfig& config) : config_(config) {
  config_.validate();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const double std_in = 0.02;
  const double std_out = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  auto normal = [&](std::initializer_list<int64_t> shape, double std) {
    return at::normal(0.0, std, shape, gen, opts);
  };
  const int64_t d = config_.d_model, f = config_.d_ff;
  params_.emplace_back("model.embed_tokens.weight", normal({config_.vocab_size, d}, std_in));
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    params_.emplace_back(p + "input_layernorm.weight", at::ones({d}, opts));
    params_.emplace_back(p + "self_attn.q_proj.weight", normal({d, d}, std_in));
    params_.emplace_back(p + "self_attn.k_proj.weight", normal({d, d}, std_in));
    params_.emplace_back(p + "self_attn.v_proj.weight", normal({d, d}, std_in));
    params_.emplace_back(p + "self_attn.o_proj.weight", normal({d, d}, std_out));
    params_.emplace_back(p + "post_attention_layernorm.weight", at::ones({d}, opts));
    params_.emplace_back(p + "mlp.gate_proj.weight", normal({f, d}, std_in));
    params_.emplace_back(p + "mlp.up_proj.weight", normal({f, d}, std_in));
    params_.emplace_back(p + "mlp.down_proj.weight", normal({d, f}, std_out));
  }
  params_.emplace_back("model.norm.weight", at::ones({d}, opts));
  params_.emplace_back("lm_head.weight", normal({config_.vocab_size, d}, std_in));
  index_parameters();
}

void TinyTransformer::index_parameters() {
  size_t i = 0;
  embed_ = params_[i++].second;
  layers_.clear();
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    Layer layer;
    layer.attn_norm = params_[i++].second;
    layer.q = params_[i++].second;
    layer.k = params_[i++].second;
    layer.v = params_[i++].second;
    layer.o = params_[i++].second;
    layer.mlp_norm = params_[i++].second;
    layer.gate = params_[i++].second;
    layer.up = params_[i++].second;
    layer.down = params_[i++].second;
    layers_.push_back(layer);
  }
  final_norm_ = params_[i++].second;
  lm_head_ = params_[i++].second;
  const int64_t head_dim = config_.d_model / config_.n_heads;
  // Computed in double like the Python twin so both round to the same float32 frequencies.
  inv_freq_ = at::pow(config_.rope_theta, at::arange(0, head_dim, 2, at::kDouble) / static_cast<double>(head_dim))
                  .reciprocal()
                  .to(at::kFloat);
}

at::Tensor TinyTransformer::parameter(const std::string& name) const {
  for (const auto& [n, t] : params_) {
    if (n == name) return t;
  }
  throw InvalidArgument("name: no parameter '" + name + "' in TinyTransformer (see named_parameters())");
}

int64_t TinyTransformer::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

TinyTransformer TinyTransformer::clone() const {
  TinyTransformer out(config_);
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) out.params_[i].second.copy_(params_[i].second);
  return out;
}

void TinyTransformer::load_parameters(const io::TensorSource& source) {
  for (const auto& [name, param] : params_) {
    if (!source.contains(name)) {
      throw InvalidArgument("source: missing tensor '" + name + "' expected by a TinyTransformer with config " +
                            config_.to_json());
    }
  }
  if (source.size() != params_.size()) {
    for (const auto& name : source.names()) {
      bool known = false;
      for (const auto& p : params_) known = known || p.first == name;
      if (!known) throw InvalidArgument("source: unexpected tensor '" + name + "' for a TinyTransformer");
    }
  }
  c10::NoGradGuard no_grad;
  for (auto& [name, param] : params_) {
    at::Tensor t = source.tensor(name);
    if (t.sizes() != param.sizes()) {
      throw InvalidArgument("source: tensor '" + name + "' has shape " + metaprobe::detail::format_shape(t.sizes()) + ", expected " +
                            metaprobe::detail::format_shape(param.sizes()));
    }
    if (!at::isFloatingType(t.scalar_type())) {
      throw InvalidArgument("source: tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                            ", expected a floating-point dtype");
    }
    param.copy_(t);
  }
}

at::Tensor TinyTransformer::forward(const at::Tensor& ids, const at::Tensor& attention_mask) const {
  return forward_impl(ids, attention_mask, nullptr);
}

at::Tensor TinyTransformer::forward_cached(const at::Tensor& ids, const at::Tensor& attention_mask,
                                           KvCache& cache) const {
  return forward_impl(ids, attention_mask, &cache);
}

at::Tensor TinyTransformer::forward_impl(const at::Tensor& ids_in, const at::Tensor& mask_in, KvCache* cache) const {
  auto [ids, mask] = checked_inputs(ids_in, mask_in, config_.vocab_size);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t H = config_.n_heads, D = config_.d_model, Dh = D / H;
  const int64_t prev = cache ? cache->length() : 0;
  if (cache && prev > 0 && cache->key_valid.size(0) != B) {
    throw InvalidArgument("ids: batch size " + std::to_string(B) + " differs from the cache's batch size " +
                          std::to_string(cache->key_valid.size(0)));
  }
  at::Tensor base = (cache && prev > 0) ? cache->next_position : at::zeros({B}, at::kLong);
  at::Tensor pos = (base.unsqueeze(1) + mask.cumsum(1) - 1).clamp_min(0);
  if (pos.numel() > 0) {
    const int64_t max_pos = pos.max().item<int64_t>();
    if (max_pos >= config_.max_len) {
      throw InvalidArgument("ids: a row reaches position " + std::to_string(max_pos) +
                            ", expected positions below config.max_len " + std::to_string(config_.max_len));
    }
  }

  at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, Dh/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);        // [B, 1, T, Dh]
  at::Tensor cos = emb.cos(), sin = emb.sin();

  at::Tensor valid_new = mask.to(at::kBool);
  at::Tensor valid = (cache && prev > 0) ? at::cat({cache->key_valid, valid_new}, 1) : valid_new;  // [B, L]
  const int64_t L = prev + T;
  at::Tensor key_idx = at::arange(L, at::kLong).unsqueeze(0);          // [1, L]
  at::Tensor query_idx = (at::arange(T, at::kLong) + prev).unsqueeze(1);  // [T, 1]
  at::Tensor causal = key_idx <= query_idx;                             // [T, L]
  at::Tensor self = key_idx == query_idx;
  // A padded query may always see itself, so no softmax row is empty; real queries never see padding.
  at::Tensor allowed = causal.unsqueeze(0) & (valid.unsqueeze(1) | self.unsqueeze(0));  // [B, T, L]
  at::Tensor bias = at::zeros({B, 1, T, L}, at::kFloat)
                        .masked_fill(allowed.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));

  at::Tensor x = at::embedding(embed_, ids);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    at::Tensor h = rms_norm(x, layer.attn_norm, config_.norm_eps);
    at::Tensor q = at::linear(h, layer.q).view({B, T, H, Dh}).transpose(1, 2);
    at::Tensor k = at::linear(h, layer.k).view({B, T, H, Dh}).transpose(1, 2);
    at::Tensor v = at::linear(h, layer.v).view({B, T, H, Dh}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (cache) {
      if (prev > 0) {
        k = at::cat({cache->keys[l], k}, 2);
        v = at::cat({cache->values[l], v}, 2);
      }
      if (cache->keys.size() <= l) {
        cache->keys.push_back(k);
        cache->values.push_back(v);
      } else {
        cache->keys[l] = k;
        cache->values[l] = v;
      }
    }
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale + bias;
    at::Tensor attn = at::softmax(scores, -1);
    at::Tensor out = at::matmul(attn, v).transpose(1, 2).reshape({B, T, D});
    x = x + at::linear(out, layer.o);
    at::Tensor m = rms_norm(x, layer.mlp_norm, config_.norm_eps);
    x = x + at::linear(at::silu(at::linear(m, layer.gate)) * at::linear(m, layer.up), layer.down);
  }
  x = rms_norm(x, final_norm_, config_.norm_eps);
  at::Tensor logits = at::linear(x, lm_head_);
  if (cache) {
    cache->key_valid = valid;
    cache->next_position = base + mask.sum(1);
  }
  return logits;
}

void save(const TinyTransformer& model, const std::string& path) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.reserve(model.named_parameters().size());
  for (const auto& [name, t] : model.named_parameters()) {
    tensors.emplace_back(name, t.detach().to(at::kFloat).contiguous());
  }
  io::save_safetensors(tensors, path, {{"format", "pt"}, {kConfigMetadataKey, model.config().to_json()}});
}

TinyTransformer load(const std::string& path) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const auto& meta = file.metadata();
  auto it = meta.find(kConfigMetadataKey);
  if (it == meta.end()) {
    throw FormatError("path: '" + path + "' has no '" + kConfigMetadataKey +
                      "' entry in __metadata__, expected a file written by metaprobe::lm::save");
  }
  TinyTransformer model(TransformerConfig::from_json(it->second));
  model.load_parameters(file);
  return model;
}

}  // namespace metaprobe::lm
