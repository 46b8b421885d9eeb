// Checkpoints (sharded index, single file) and the in-memory source.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <metaprobe/io/checkpoint.hpp>

#include "io_test_util.hpp"

using namespace metaprobe::io;
using Kind = SafetensorsErrorKind;
using io_test::TempDir;

namespace {

void write_text(const std::string& path, const std::string& text) {
  io_test::write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Two shards: a, b in shard 1; c in shard 2. Returns the tensors.
std::map<std::string, at::Tensor> make_sharded(const TempDir& dir) {
  std::map<std::string, at::Tensor> t{{"a", at::randn({3, 4})}, {"b", at::arange(5)}, {"c", at::randn({2}).to(at::kBFloat16)}};
  save_safetensors({{"a", t["a"]}, {"b", t["b"]}}, dir.file("model-00001-of-00002.safetensors"));
  save_safetensors({{"c", t["c"]}}, dir.file("model-00002-of-00002.safetensors"));
  return t;
}

const std::string kIndex = R"({"metadata": {"total_size": 999, "format": "pt"},
  "weight_map": {"c": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                 "b": "model-00001-of-00002.safetensors"}})";

Kind kind_of_open(const std::string& path) {
  try {
    Checkpoint::open(path);
  } catch (const SafetensorsError& e) {
    return e.kind();
  }
  FAIL("accepted");
  return Kind::InvalidIndex;
}

}  // namespace

TEST_CASE("a sharded checkpoint is one source in index order", "[io][checkpoint]") {
  TempDir dir;
  auto t = make_sharded(dir);
  write_text(dir.file("model.safetensors.index.json"), kIndex);
  const auto ck = Checkpoint::open(dir.path.string());
  CHECK(ck.names() == std::vector<std::string>({"c", "a", "b"}));
  CHECK(ck.size() == 3);
  REQUIRE(ck.files().size() == 2);
  CHECK_THAT(ck.files()[0], Catch::EndsWith("model-00002-of-00002.safetensors"));
  CHECK(ck.shard_of("a") == 1);
  CHECK(ck.metadata().at("total_size") == "999");  // not enforced; numbers rendered as JSON text
  CHECK(ck.metadata().at("format") == "pt");
  CHECK(ck.info("c").dtype == "BF16");
  CHECK(ck.info("a").shape == std::vector<int64_t>({3, 4}));
  for (const auto& [name, tensor] : t) CHECK(ck.tensor(name).equal(tensor));
  uint64_t bytes = 0;
  for (const auto& f : ck.files()) bytes += io_test::fs::file_size(f);
  CHECK(ck.total_file_bytes() == bytes);
  SECTION("the index file itself can be opened") {
    CHECK(Checkpoint::open(dir.file("model.safetensors.index.json")).names().size() == 3);
  }
  SECTION("a missing name is an InvalidArgument") {
    REQUIRE_THROWS_AS(ck.tensor("zz"), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(ck.info("zz"), Catch::Contains("no tensor 'zz'"));
  }
}

TEST_CASE("checkpoint rules are enforced", "[io][checkpoint]") {
  TempDir dir;
  make_sharded(dir);
  const std::string index = dir.file("model.safetensors.index.json");
  SECTION("a missing shard is PathNotFound naming it") {
    write_text(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "x": "model-00003.safetensors"}})");
    REQUIRE_THROWS_AS(Checkpoint::open(dir.path.string()), PathNotFound);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()), Catch::Contains("model-00003.safetensors") &&
                                                                 Catch::Contains("does not exist"));
  }
  SECTION("a name absent from its shard is TensorNotFound") {
    write_text(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::TensorNotFound);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()),
                        Catch::Contains("maps tensor 'c' to") && Catch::Contains("does not hold it"));
  }
  SECTION("a tensor stored in two shards is DuplicateTensorName") {
    save_safetensors({{"a", at::ones({1})}, {"d", at::ones({1})}}, dir.file("model-00002-of-00002.safetensors"));
    write_text(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::DuplicateTensorName);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()), Catch::Contains("tensor 'a' is stored in both"));
  }
  SECTION("a tensor listed twice in weight_map is DuplicateTensorName") {
    write_text(index, R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00002-of-00002.safetensors"}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::DuplicateTensorName);
  }
  SECTION("a malformed index is InvalidIndex") {
    write_text(index, "{");
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidIndex);
    write_text(index, R"({"metadata": {}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidIndex);
    write_text(index, R"({"weight_map": {"a": 1}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidIndex);
  }
  SECTION("shards outside the directory are refused") {
    write_text(index, R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidIndex);
    write_text(index, R"({"weight_map": {"a": "/etc/passwd"}})");
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidIndex);
  }
  SECTION("a broken shard reports the shard's path and kind") {
    io_test::write_file(dir.file("model-00002-of-00002.safetensors"), {9, 0, 0, 0, 0, 0, 0, 0, '{'});
    write_text(index, kIndex);
    CHECK(kind_of_open(dir.path.string()) == Kind::InvalidHeaderLength);
  }
}

TEST_CASE("single-file checkpoints and missing paths", "[io][checkpoint]") {
  TempDir dir;
  SECTION("a directory with model.safetensors") {
    save_safetensors({{"w", at::ones({2})}, {"v", at::zeros({1}, at::kDouble)}}, dir.file("model.safetensors"),
                     {{"format", "pt"}});
    const auto ck = Checkpoint::open(dir.path.string());
    CHECK(ck.names() == std::vector<std::string>({"v", "w"}));  // storage order: F64 first
    CHECK(ck.files().size() == 1);
    CHECK(ck.metadata().at("format") == "pt");
    CHECK(ck.tensor("w").equal(at::ones({2})));
    SECTION("or the file itself") { CHECK(Checkpoint::open(dir.file("model.safetensors")).size() == 2); }
  }
  SECTION("an empty directory is PathNotFound") {
    REQUIRE_THROWS_AS(Checkpoint::open(dir.path.string()), PathNotFound);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()), Catch::Contains("holds neither"));
  }
  SECTION("a missing path is PathNotFound") {
    REQUIRE_THROWS_AS(Checkpoint::open(dir.file("missing")), PathNotFound);
  }
}

TEST_CASE("MemorySource serves a state dict in insertion order without copies", "[io][memory]") {
  const at::Tensor w = at::randn({4, 4});
  const at::Tensor b = at::zeros({4}, at::kBFloat16);
  const MemorySource src({{"w", w}, {"b", b}});
  CHECK(src.names() == std::vector<std::string>({"w", "b"}));
  CHECK(src.size() == 2);
  CHECK(src.tensor("w").data_ptr() == w.data_ptr());
  CHECK(src.info("b").dtype == "BF16");
  CHECK(src.info("b").nbytes == 8);
  CHECK(src.info("w").numel() == 16);
  CHECK(src.contains("w"));
  CHECK_FALSE(src.contains("x"));
  const TensorSource& any = src;
  CHECK(any.tensor("b").equal(b));
  REQUIRE_THROWS_AS(src.tensor("x"), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(MemorySource({{"w", w}, {"w", w}}), Catch::Contains("'w' appears twice"));
  REQUIRE_THROWS_AS(MemorySource({{"c", at::ones({1}, at::kComplexDouble)}}), metaprobe::Unsupported);
}
