#include <cstdio>
#include <filesystem>

#include <catch2/catch.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/transformer.hpp>

using namespace metaprobe;
using namespace metaprobe::lm;

namespace {

TransformerConfig small_config(uint64_t seed = 7) {
  TransformerConfig c;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.d_ff = 64;
  c.max_len = 64;
  c.seed = seed;
  return c;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("metaprobe_lm_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("TinyTransformer has Llama parameter names and shapes") {
  TinyTransformer model(small_config());
  const auto& params = model.named_parameters();
  SECTION("names follow the Llama scheme in a fixed order") {
    REQUIRE(params.size() == 2 + 2 * 9 + 1);
    REQUIRE(params.front().first == "model.embed_tokens.weight");
    REQUIRE(params[1].first == "model.layers.0.input_layernorm.weight");
    REQUIRE(params[2].first == "model.layers.0.self_attn.q_proj.weight");
    REQUIRE(params[8].first == "model.layers.0.mlp.up_proj.weight");
    REQUIRE(params[9].first == "model.layers.0.mlp.down_proj.weight");
    REQUIRE(params[params.size() - 2].first == "model.norm.weight");
    REQUIRE(params.back().first == "lm_head.weight");
  }
  SECTION("shapes and count") {
    REQUIRE(model.parameter("model.layers.1.mlp.gate_proj.weight").sizes() == at::IntArrayRef({64, 32}));
    REQUIRE(model.parameter("model.layers.1.mlp.down_proj.weight").sizes() == at::IntArrayRef({32, 64}));
    const int64_t expected = 100 * 32 * 2 + 32 + 2 * (4 * 32 * 32 + 3 * 64 * 32 + 2 * 32);
    REQUIRE(model.num_parameters() == expected);
    REQUIRE_THROWS_AS(model.parameter("nope"), InvalidArgument);
    REQUIRE_THROWS_WITH(model.parameter("nope"), Catch::Contains("'nope'"));
  }
  SECTION("initialisation is fixed by the seed") {
    TinyTransformer same(small_config());
    TinyTransformer other(small_config(8));
    REQUIRE(at::equal(model.parameter("lm_head.weight"), same.parameter("lm_head.weight")));
    REQUIRE_FALSE(at::equal(model.parameter("lm_head.weight"), other.parameter("lm_head.weight")));
  }
  SECTION("clone is deep") {
    TinyTransformer copy = model.clone();
    copy.parameter("model.norm.weight").fill_(3.0);
    REQUIRE(model.parameter("model.norm.weight").eq(1.0).all().item<bool>());
  }
}

TEST_CASE("TinyTransformer forward is causal and padding-invariant") {
  TinyTransformer model(small_config());
  CharTokenizer tok;
  std::vector<std::string> texts{"x=7; y=12. Answer: 19", "ab", "The quick brown fox"};
  auto single = [&](const std::string& t) {
    auto ids = tok.encode(t, true);
    at::Tensor x = at::tensor(ids, at::kLong).unsqueeze(0);
    return model.forward(x).squeeze(0);
  };
  SECTION("logits are float32 [B, T, V]") {
    at::Tensor logits = model.forward(at::ones({2, 5}, at::kLong));
    REQUIRE(logits.sizes() == at::IntArrayRef({2, 5, 100}));
    REQUIRE(logits.scalar_type() == at::kFloat);
    REQUIRE(at::isfinite(logits).all().item<bool>());
  }
  SECTION("right- and left-padded batches match unpadded single sequences within 1e-5") {
    for (PaddingSide side : {PaddingSide::right, PaddingSide::left}) {
      TokenBatch b = tok.encode_batch(texts, side);
      at::Tensor logits = model.forward(b.ids, b.attention_mask);
      REQUIRE(at::isfinite(logits).all().item<bool>());
      const int64_t width = b.ids.size(1);
      for (size_t i = 0; i < texts.size(); ++i) {
        const int64_t n = b.lengths[i];
        const int64_t offset = side == PaddingSide::left ? width - n : 0;
        at::Tensor mine = logits[i].narrow(0, offset, n);
        REQUIRE(max_abs_diff(mine, single(texts[i])) < 1e-5);
      }
    }
  }
  SECTION("a later token does not change earlier logits") {
    at::Tensor a = single("abcdef");
    at::Tensor b = single("abcdeZ");
    REQUIRE(max_abs_diff(a.narrow(0, 0, 6), b.narrow(0, 0, 6)) == 0.0);
    REQUIRE(max_abs_diff(a[6], b[6]) > 1e-4);
  }
  SECTION("incremental forward with a cache equals the full forward") {
    TokenBatch b = tok.encode_batch(texts, PaddingSide::left);
    at::Tensor full = model.forward(b.ids, b.attention_mask);
    KvCache cache;
    const int64_t split = 7;
    at::Tensor first = model.forward_cached(b.ids.narrow(1, 0, split), b.attention_mask.narrow(1, 0, split), cache);
    REQUIRE(cache.length() == split);
    std::vector<at::Tensor> parts{first};
    for (int64_t t = split; t < b.ids.size(1); ++t) {
      parts.push_back(model.forward_cached(b.ids.narrow(1, t, 1), b.attention_mask.narrow(1, t, 1), cache));
    }
    at::Tensor inc = at::cat(parts, 1);
    at::Tensor real = b.attention_mask.to(at::kBool).unsqueeze(-1).expand_as(full);
    REQUIRE(max_abs_diff(inc.masked_select(real), full.masked_select(real)) < 1e-5);
  }
}

TEST_CASE("TinyTransformer rejects bad inputs and configs") {
  TinyTransformer model(small_config());
  SECTION("ids rank, dtype and range") {
    REQUIRE_THROWS_WITH(model.forward(at::ones({5}, at::kLong)), Catch::Contains("expected a 2-D tensor"));
    REQUIRE_THROWS_WITH(model.forward(at::ones({1, 5}, at::kFloat)), Catch::Contains("expected an integer dtype"));
    REQUIRE_THROWS_AS(model.forward(at::full({1, 3}, 100, at::kLong)), InvalidArgument);
    REQUIRE_THROWS_WITH(model.forward(at::full({1, 3}, 100, at::kLong)), Catch::Contains("value 100"));
  }
  SECTION("attention mask shape and values") {
    REQUIRE_THROWS_WITH(model.forward(at::ones({1, 3}, at::kLong), at::ones({1, 4}, at::kLong)),
                        Catch::Contains("attention_mask: shape [1, 4] differs from ids shape [1, 3]"));
    REQUIRE_THROWS_WITH(model.forward(at::ones({1, 3}, at::kLong), at::full({1, 3}, 2, at::kLong)),
                        Catch::Contains("0/1"));
  }
  SECTION("sequences longer than max_len") {
    REQUIRE_NOTHROW(model.forward(at::ones({1, 64}, at::kLong)));
    REQUIRE_THROWS_AS(model.forward(at::ones({1, 65}, at::kLong)), InvalidArgument);
    REQUIRE_THROWS_WITH(model.forward(at::ones({1, 65}, at::kLong)), Catch::Contains("position 64"));
  }
  SECTION("config fields") {
    TransformerConfig c = small_config();
    c.n_heads = 3;
    REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("config.d_model: got 32 with n_heads 3"));
    c = small_config();
    c.n_layers = 0;
    REQUIRE_THROWS_AS(TinyTransformer(c), InvalidArgument);
    REQUIRE_THROWS_WITH(TinyTransformer(c), Catch::Contains("config.n_layers: got 0"));
    c = small_config();
    c.norm_eps = 0.0;
    REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("config.norm_eps"));
  }
}

TEST_CASE("TransformerConfig round-trips through JSON") {
  TransformerConfig c = small_config(123456789012345ULL);
  SECTION("to_json and from_json") {
    REQUIRE(TransformerConfig::from_json(c.to_json()) == c);
  }
  SECTION("bad documents are FormatErrors") {
    REQUIRE_THROWS_AS(TransformerConfig::from_json("{"), FormatError);
    REQUIRE_THROWS_WITH(TransformerConfig::from_json("[1]"), Catch::Contains("expected a JSON object"));
    REQUIRE_THROWS_WITH(TransformerConfig::from_json(R"({"vocab_size":100})"), Catch::Contains("missing field 'd_model'"));
    REQUIRE_THROWS_WITH(TransformerConfig::from_json(
                            R"({"vocab_size":100,"d_model":"x","n_layers":1,"n_heads":1,"d_ff":1,"max_len":1})"),
                        Catch::Contains("config.d_model: expected an integer"));
  }
}

TEST_CASE("save and load keep the weights and the config") {
  TinyTransformer model(small_config());
  const std::string path = temp_path("model.safetensors");
  save(model, path);
  SECTION("the file is plain safetensors with the config in __metadata__") {
    auto file = io::SafetensorsFile::open(path);
    REQUIRE(file.size() == model.named_parameters().size());
    REQUIRE(file.metadata().at("format") == "pt");
    REQUIRE(TransformerConfig::from_json(file.metadata().at(kConfigMetadataKey)) == model.config());
    REQUIRE(at::equal(file.tensor("model.layers.1.self_attn.v_proj.weight"),
                      model.parameter("model.layers.1.self_attn.v_proj.weight")));
  }
  SECTION("load gives identical logits") {
    TinyTransformer back = load(path);
    REQUIRE(back.config() == model.config());
    at::Tensor ids = at::randint(5, 100, {2, 9}, at::kLong);
    REQUIRE(at::equal(back.forward(ids), model.forward(ids)));
  }
  SECTION("a file without the config is a FormatError") {
    const std::string bare = temp_path("bare.safetensors");
    io::save_safetensors({{"lm_head.weight", at::zeros({2, 2})}}, bare);
    REQUIRE_THROWS_AS(load(bare), FormatError);
    REQUIRE_THROWS_WITH(load(bare), Catch::Contains(kConfigMetadataKey));
    std::remove(bare.c_str());
  }
  SECTION("tensors that do not fit the config are rejected by name") {
    std::vector<std::pair<std::string, at::Tensor>> tensors(model.named_parameters().begin(),
                                                            model.named_parameters().end());
    tensors.back().second = at::zeros({3, 3});
    TinyTransformer target(small_config());
    REQUIRE_THROWS_WITH(target.load_parameters(io::MemorySource(tensors)),
                        Catch::Contains("'lm_head.weight' has shape [3, 3], expected [100, 32]"));
    tensors.pop_back();
    REQUIRE_THROWS_WITH(target.load_parameters(io::MemorySource(tensors)), Catch::Contains("missing tensor 'lm_head.weight'"));
    tensors.emplace_back("lm_head.weight", at::zeros({100, 32}));
    tensors.emplace_back("extra.weight", at::zeros({1}));
    REQUIRE_THROWS_WITH(target.load_parameters(io::MemorySource(tensors)), Catch::Contains("unexpected tensor 'extra.weight'"));
  }
  SECTION("a missing file is reported by io") {
    REQUIRE_THROWS_AS(load(temp_path("absent.safetensors")), IoError);
  }
  std::remove(path.c_str());
}
