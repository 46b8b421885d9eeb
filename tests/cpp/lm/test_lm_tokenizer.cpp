#include <catch2/catch.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/lm/tokenizer.hpp>

using namespace metaprobe;
using namespace metaprobe::lm;

TEST_CASE("CharTokenizer has a fixed vocabulary") {
  CharTokenizer tok;
  SECTION("special ids and size") {
    REQUIRE(tok.vocab_size() == 100);
    REQUIRE(CharTokenizer::kPad == 0);
    REQUIRE(CharTokenizer::kBos == 1);
    REQUIRE(CharTokenizer::kEos == 2);
    REQUIRE(CharTokenizer::kUnk == 3);
  }
  SECTION("newline and printable ASCII map in order, other bytes to UNK") {
    REQUIRE(tok.char_to_id('\n') == 4);
    REQUIRE(tok.char_to_id(' ') == 5);
    REQUIRE(tok.char_to_id('~') == 99);
    REQUIRE(tok.char_to_id('A') == 5 + ('A' - 32));
    REQUIRE(tok.char_to_id('\t') == CharTokenizer::kUnk);
    REQUIRE(tok.char_to_id(static_cast<char>(0xC3)) == CharTokenizer::kUnk);
  }
  SECTION("every printable character round-trips") {
    std::string all = "\n";
    for (int c = 32; c <= 126; ++c) all += static_cast<char>(c);
    auto ids = tok.encode(all);
    REQUIRE(ids.size() == 96);
    for (size_t i = 0; i < ids.size(); ++i) REQUIRE(ids[i] == static_cast<int64_t>(i) + 4);
    REQUIRE(tok.decode(ids) == all);
  }
}

TEST_CASE("CharTokenizer encodes and decodes") {
  CharTokenizer tok;
  SECTION("BOS and EOS are added on request") {
    auto ids = tok.encode("ab", true, true);
    REQUIRE(ids == std::vector<int64_t>{1, tok.char_to_id('a'), tok.char_to_id('b'), 2});
  }
  SECTION("decode skips or renders special ids") {
    std::vector<int64_t> ids{1, tok.char_to_id('h'), 3, tok.char_to_id('i'), 2, 0};
    REQUIRE(tok.decode(ids) == "hi");
    REQUIRE(tok.decode(ids, false) == "<bos>h<unk>i<eos><pad>");
  }
  SECTION("decode of a tensor equals decode of its values") {
    at::Tensor t = at::tensor({1, 45, 46, 2}, at::kInt);
    REQUIRE(tok.decode(t) == tok.decode(std::vector<int64_t>{1, 45, 46, 2}));
  }
  SECTION("out-of-range ids are rejected with their value and index") {
    REQUIRE_THROWS_AS(tok.decode(std::vector<int64_t>{5, 100}), InvalidArgument);
    REQUIRE_THROWS_WITH(tok.decode(std::vector<int64_t>{5, 100}), Catch::Contains("value 100 at index 1"));
    REQUIRE_THROWS_WITH(tok.decode(std::vector<int64_t>{-1}), Catch::Contains("0 <= id < 100"));
  }
  SECTION("decode of a bad tensor is rejected") {
    REQUIRE_THROWS_AS(tok.decode(at::zeros({2, 2}, at::kLong)), InvalidArgument);
    REQUIRE_THROWS_WITH(tok.decode(at::zeros({2, 2}, at::kLong)), Catch::Contains("expected a 1-D tensor, got 2-D"));
    REQUIRE_THROWS_WITH(tok.decode(at::zeros({2}, at::kFloat)), Catch::Contains("expected an integer tensor"));
  }
}

TEST_CASE("CharTokenizer pads batches") {
  CharTokenizer tok;
  SECTION("right padding for teacher forcing") {
    TokenBatch b = tok.encode_batch({"abc", "a"}, PaddingSide::right);
    REQUIRE(b.ids.sizes() == at::IntArrayRef({2, 4}));
    REQUIRE(b.lengths == std::vector<int64_t>{4, 2});
    REQUIRE(b.ids[1][0].item<int64_t>() == 1);
    REQUIRE(b.ids[1][1].item<int64_t>() == tok.char_to_id('a'));
    REQUIRE(b.ids[1][2].item<int64_t>() == 0);
    REQUIRE(at::equal(b.attention_mask, at::tensor({1, 1, 1, 1, 1, 1, 0, 0}, at::kLong).view({2, 4})));
  }
  SECTION("left padding for generation") {
    TokenBatch b = tok.encode_batch({"abc", "a"}, PaddingSide::left, false);
    REQUIRE(b.ids.sizes() == at::IntArrayRef({2, 3}));
    REQUIRE(at::equal(b.attention_mask, at::tensor({1, 1, 1, 0, 0, 1}, at::kLong).view({2, 3})));
    REQUIRE(b.ids[1][2].item<int64_t>() == tok.char_to_id('a'));
    REQUIRE(b.ids[1][0].item<int64_t>() == 0);
  }
  SECTION("an empty batch is rejected") {
    REQUIRE_THROWS_AS(tok.encode_batch({}, PaddingSide::left), InvalidArgument);
    REQUIRE_THROWS_WITH(tok.encode_batch({}, PaddingSide::left), Catch::Contains("texts"));
    REQUIRE_THROWS_WITH(CharTokenizer::pad({}, PaddingSide::left), Catch::Contains("sequences"));
  }
  SECTION("padding side names parse") {
    REQUIRE(parse_padding_side("left") == PaddingSide::left);
    REQUIRE(to_string(PaddingSide::right) == "right");
    REQUIRE_THROWS_AS(parse_padding_side("middle"), InvalidArgument);
    REQUIRE_THROWS_WITH(parse_padding_side("middle"), Catch::Contains("'middle'") && Catch::Contains("'left'"));
  }
}
