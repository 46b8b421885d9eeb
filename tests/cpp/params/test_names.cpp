// Parameter-name parsing for the common schemes and the fallback.
#include <metaprobe/params/names.hpp>

#include <catch2/catch.hpp>

using namespace metaprobe::params;

TEST_CASE("layer and kind from the common naming schemes", "[params][names]") {
  SECTION("Llama / Qwen / Mistral") {
    const ParsedName p = parse_param_name("model.layers.17.self_attn.q_proj.weight");
    CHECK(p.scheme == "llama");
    CHECK(p.layer == 17);
    CHECK(p.module == "self_attn.q_proj");
    CHECK(p.param == "weight");
    CHECK(p.kind == "attn_q");
    CHECK(parse_param_name("model.layers.0.mlp.down_proj.weight").kind == "mlp_down");
    CHECK(parse_param_name("model.layers.3.self_attn.k_proj.bias").kind == "attn_k");
    CHECK(parse_param_name("model.layers.3.input_layernorm.weight").kind == "norm_attn");
    CHECK(parse_param_name("model.layers.3.post_attention_layernorm.weight").kind == "norm_mlp");
    CHECK(parse_param_name("model.embed_tokens.weight").kind == "embedding");
    CHECK(parse_param_name("model.embed_tokens.weight").layer == -1);
    CHECK(parse_param_name("model.norm.weight").kind == "norm_final");
    CHECK(parse_param_name("lm_head.weight").kind == "lm_head");
  }
  SECTION("GPT-2") {
    const ParsedName p = parse_param_name("transformer.h.11.attn.c_attn.weight");
    CHECK(p.scheme == "gpt2");
    CHECK(p.layer == 11);
    CHECK(p.kind == "attn_qkv");
    CHECK(parse_param_name("transformer.h.0.attn.c_proj.bias").kind == "attn_o");
    CHECK(parse_param_name("transformer.h.0.mlp.c_fc.weight").kind == "mlp_up");
    CHECK(parse_param_name("transformer.h.0.mlp.c_proj.weight").kind == "mlp_down");
    CHECK(parse_param_name("transformer.h.5.ln_1.weight").kind == "norm_attn");
    CHECK(parse_param_name("transformer.wte.weight").kind == "embedding");
    CHECK(parse_param_name("transformer.wpe.weight").kind == "position_embedding");
    CHECK(parse_param_name("transformer.ln_f.bias").kind == "norm_final");
  }
  SECTION("GPT-NeoX") {
    const ParsedName p = parse_param_name("gpt_neox.layers.4.attention.query_key_value.weight");
    CHECK(p.scheme == "gpt_neox");
    CHECK(p.layer == 4);
    CHECK(p.kind == "attn_qkv");
    CHECK(parse_param_name("gpt_neox.layers.4.attention.dense.weight").kind == "attn_o");
    CHECK(parse_param_name("gpt_neox.layers.4.mlp.dense_h_to_4h.weight").kind == "mlp_up");
    CHECK(parse_param_name("gpt_neox.layers.4.mlp.dense_4h_to_h.bias").kind == "mlp_down");
    CHECK(parse_param_name("gpt_neox.embed_in.weight").kind == "embedding");
    CHECK(parse_param_name("embed_out.weight").kind == "lm_head");
    CHECK(parse_param_name("gpt_neox.final_layer_norm.weight").kind == "norm_final");
  }
  SECTION("unknown names keep the full path") {
    const ParsedName p = parse_param_name("encoder.block.2.layer.0.SelfAttention.q.weight");
    CHECK(p.scheme == "generic");
    CHECK(p.layer == 2);
    CHECK(p.kind == "layer.0.SelfAttention.q");
    const ParsedName q = parse_param_name("some_buffer");
    CHECK(q.layer == -1);
    CHECK(q.module == "some_buffer");
    CHECK(q.kind == "some_buffer");
    CHECK(q.param.empty());
    const ParsedName r = parse_param_name("classifier.head.weight");
    CHECK(r.kind == "classifier.head");
    CHECK(r.layer == -1);
  }
}
