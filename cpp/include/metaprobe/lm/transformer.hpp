#pragma once
// TinyTransformer: a small pre-norm causal decoder in the Llama layout (RMSNorm, rotary positions, multi-head
// causal attention with q/k/v/o projections, SwiGLU MLP, untied lm_head), written on ATen so the library stays
// light. Parameter names follow the Llama scheme so the params module groups them by layer and kind.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace metaprobe::io {
class TensorSource;
}

namespace metaprobe::lm {

/// Shape of a TinyTransformer. `seed` fixes the initial weights.
struct TransformerConfig {
  int64_t vocab_size = 100;
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t d_ff = 384;
  int64_t max_len = 512;       // longest sequence forward() accepts (positions 0..max_len-1)
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  uint64_t seed = 0;

  /// Throws InvalidArgument naming the first field out of range (sizes ≥ 1, d_model divisible by n_heads into
  /// an even head size, rope_theta > 1, norm_eps > 0).
  void validate() const;
  /// The config as a JSON object string (the `__metadata__` entry of a saved model).
  std::string to_json() const;
  /// Parses to_json()'s output; throws FormatError on bad JSON or fields, InvalidArgument via validate().
  static TransformerConfig from_json(const std::string& json);
  bool operator==(const TransformerConfig& other) const;
};

/// Per-layer incremental state for generation: keys/values of the tokens seen so far.
struct KvCache {
  std::vector<at::Tensor> keys;    // per layer [B, H, L, Dh]
  std::vector<at::Tensor> values;  // per layer [B, H, L, Dh]
  at::Tensor key_valid;            // bool [B, L]: false on padding
  at::Tensor next_position;        // int64 [B]: rotary position of the next real token
  /// Tokens held (L); 0 when empty.
  int64_t length() const { return key_valid.defined() ? key_valid.size(1) : 0; }
};

/// The model: owns its parameters (float32, CPU). Moving is cheap; copying is explicit through clone().
class TinyTransformer {
 public:
  /// Random initialisation from config.seed (normal(0, 0.02), output projections scaled by 1/sqrt(2·n_layers),
  /// norms at 1). Throws InvalidArgument for a bad config.
  explicit TinyTransformer(const TransformerConfig& config);
  TinyTransformer(TinyTransformer&&) = default;
  TinyTransformer& operator=(TinyTransformer&&) = default;
  TinyTransformer(const TinyTransformer&) = delete;
  TinyTransformer& operator=(const TinyTransformer&) = delete;

  const TransformerConfig& config() const { return config_; }

  /// Logits float32 [B, T, V] for int ids [B, T]; attention_mask [B, T] (0/1, any integer or bool dtype;
  /// undefined = all ones). Positions count real tokens only and padded keys are masked, so a row's real-token
  /// logits do not depend on its padding or on the other rows. Logits at padded positions are finite but
  /// meaningless.
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& attention_mask = {}) const;
  /// Like forward() for `ids` [B, t] appended after the tokens in `cache`, which it extends.
  at::Tensor forward_cached(const at::Tensor& ids, const at::Tensor& attention_mask, KvCache& cache) const;

  /// Parameters in a fixed order with Llama names; the tensors share storage with the model.
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const { return params_; }
  /// The parameter `name`, sharing storage; throws InvalidArgument if absent.
  at::Tensor parameter(const std::string& name) const;
  /// Total number of scalars in the parameters.
  int64_t num_parameters() const;
  /// A deep copy (fresh storage).
  TinyTransformer clone() const;
  /// Copies every parameter from `source` (names and shapes must match exactly; any dtype convertible to
  /// float32). Throws InvalidArgument naming a missing, unexpected or mis-shaped tensor.
  void load_parameters(const io::TensorSource& source);

 private:
  void index_parameters();
  struct Layer {
    at::Tensor attn_norm, q, k, v, o, mlp_norm, gate, up, down;
  };
  at::Tensor forward_impl(const at::Tensor& ids, const at::Tensor& mask, KvCache* cache) const;

  TransformerConfig config_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  at::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  at::Tensor inv_freq_;  // float32 [Dh/2]
};

/// The metadata key under which save() stores the config JSON.
inline constexpr const char* kConfigMetadataKey = "metaprobe.lm.config";

/// Writes the parameters (float32) to `path` as safetensors, atomically, with the config JSON in
/// `__metadata__` under kConfigMetadataKey (and "format": "pt").
void save(const TinyTransformer& model, const std::string& path);
/// Reads a model written by save(); throws PathNotFound/IoError/SafetensorsError from io, FormatError when the
/// config metadata is missing or bad, InvalidArgument when tensors do not fit the config.
TinyTransformer load(const std::string& path);

}  // namespace metaprobe::lm
