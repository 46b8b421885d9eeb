// The header validator against the reference's invalid-file vectors (the safetensors crate's tensor.rs tests) and our two additions.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <metaprobe/io/safetensors.hpp>

#include "io_test_util.hpp"

using namespace metaprobe::io;
using Kind = SafetensorsErrorKind;
using io_test::bytes;
using io_test::raw_file;

namespace {

Kind kind_of(const std::vector<uint8_t>& file) {
  try {
    parse_header(file.data(), file.size());
  } catch (const SafetensorsError& e) {
    return e.kind();
  }
  FAIL("the file was accepted");
  return Kind::InvalidIndex;
}

std::string message_of(const std::vector<uint8_t>& file) {
  try {
    parse_header(file.data(), file.size());
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  FAIL("the file was accepted");
  return {};
}

const std::string kI32 = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";

}  // namespace

TEST_CASE("the reference's invalid vectors are rejected with the reference's error kind", "[io][header]") {
  SECTION("an empty file is HeaderTooSmall") { CHECK(kind_of({}) == Kind::HeaderTooSmall); }
  SECTION("seven bytes are HeaderTooSmall") { CHECK(kind_of(std::vector<uint8_t>(7, 0)) == Kind::HeaderTooSmall); }
  SECTION("a length of 60 with no body is InvalidHeaderLength") {
    CHECK(kind_of(bytes(std::string("<\0\0\0\0\0\0\0", 8))) == Kind::InvalidHeaderLength);
  }
  SECTION("a huge length prefix is HeaderTooLarge") {
    CHECK(kind_of({0x3c, 0, 0, 0, 0, 0xff, 0xff, 0xff}) == Kind::HeaderTooLarge);
  }
  SECTION("a length just above 100,000,000 is HeaderTooLarge, not a read past the end") {
    const uint64_t n = kMaxHeaderSize + 1;
    std::vector<uint8_t> f;
    for (int i = 0; i < 8; ++i) f.push_back(static_cast<uint8_t>(n >> (8 * i)));
    CHECK(kind_of(f) == Kind::HeaderTooLarge);
  }
  SECTION("a non-UTF-8 header byte is InvalidHeader") { CHECK(kind_of(raw_file("\xff")) == Kind::InvalidHeader); }
  SECTION("a lone '{' is InvalidHeaderDeserialization") {
    CHECK(kind_of(raw_file("{")) == Kind::InvalidHeaderDeserialization);
  }
  SECTION("extra bytes after the data are MetadataIncompleteBuffer") {
    std::vector<uint8_t> data(16, 0);
    data.push_back(1);
    data.push_back(2);
    CHECK(kind_of(raw_file(kI32, data)) == Kind::MetadataIncompleteBuffer);
  }
  SECTION("missing data bytes are MetadataIncompleteBuffer") {
    CHECK(kind_of(raw_file(kI32, std::vector<uint8_t>(14, 0))) == Kind::MetadataIncompleteBuffer);
  }
  SECTION("offsets smaller than shape x dtype are TensorInvalidInfo") {
    CHECK(kind_of(raw_file(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}})",
                           std::vector<uint8_t>(4, 0))) == Kind::TensorInvalidInfo);
  }
  SECTION("an element count that overflows is ValidationOverflow") {
    CHECK(kind_of(raw_file(R"({"test":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}})",
                           std::vector<uint8_t>(16, 0))) == Kind::ValidationOverflow);
  }
  SECTION("a byte size that overflows is ValidationOverflow") {
    CHECK(kind_of(raw_file(R"({"test":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}})",
                           std::vector<uint8_t>(16, 0))) == Kind::ValidationOverflow);
  }
  SECTION("ten tensors sharing one region are InvalidOffset") {
    std::string h = "{";
    for (int i = 0; i < 10; ++i) {
      if (i) h += ",";
      h += "\"weight_" + std::to_string(i) + R"(":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]})";
    }
    h += "}";
    CHECK(kind_of(raw_file(h, std::vector<uint8_t>(16, 0))) == Kind::InvalidOffset);
  }
  SECTION("F4 with an odd element count is MisalignedSlice") {
    CHECK(kind_of(raw_file(R"({"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})",
                           std::vector<uint8_t>(2, 0))) == Kind::MisalignedSlice);
  }
  SECTION("F4 whose buffer has the wrong size is TensorInvalidInfo (the reference's InvalidTensorView)") {
    CHECK(kind_of(raw_file(R"({"x":{"dtype":"F4","shape":[4],"data_offsets":[0,4]}})",
                           std::vector<uint8_t>(4, 0))) == Kind::TensorInvalidInfo);
  }
}

TEST_CASE("the reference's valid vectors are accepted", "[io][header]") {
  SECTION("an empty object padded with trailing spaces") {
    const auto f = raw_file("{}      ");
    const Header h = parse_header(f.data(), f.size());
    CHECK(h.tensors.empty());
    CHECK(h.header_size == 8);
  }
  SECTION("leading and trailing JSON whitespace") {
    const auto f = raw_file(" \t\r\n{} \r\n\t");
    CHECK(parse_header(f.data(), f.size()).tensors.empty());
  }
  SECTION("a zero-size tensor with [0, 0] offsets") {
    const auto f = raw_file(R"({"x":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}})");
    const Header h = parse_header(f.data(), f.size());
    REQUIRE(h.tensors.size() == 1);
    CHECK(h.tensors[0].info.shape == std::vector<int64_t>({2, 0}));
    CHECK(h.tensors[0].info.nbytes == 0);
  }
  SECTION("a scalar of shape []") {
    const auto f = raw_file(R"({"x":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})", {1, 0, 0, 0});
    const Header h = parse_header(f.data(), f.size());
    CHECK(h.tensors.at(0).info.shape.empty());
    CHECK(h.tensors.at(0).info.numel() == 1);
  }
  SECTION("F4 with an even count packs two per byte") {
    const auto f = raw_file(R"({"x":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}})", {0, 0});
    CHECK(parse_header(f.data(), f.size()).tensors.at(0).info.nbytes == 2);
  }
  SECTION("tensors are returned in storage order whatever the JSON order") {
    const auto f = raw_file(R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},)"
                            R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                            {7, 9});
    const Header h = parse_header(f.data(), f.size());
    REQUIRE(h.tensors.size() == 2);
    CHECK(h.tensors[0].info.name == "a");
    CHECK(h.tensors[1].info.name == "b");
  }
  SECTION("unknown fields inside an entry are ignored, as the reference ignores them") {
    const auto f = raw_file(R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"note":[1]}})", {3});
    CHECK(parse_header(f.data(), f.size()).tensors.size() == 1);
  }
}

TEST_CASE("errors name the rule with the tensor and its byte offsets", "[io][header]") {
  SECTION("InvalidOffset names the tensor, its offsets and the expected begin") {
    const auto f = raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                            R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
                            std::vector<uint8_t>(5, 0));
    CHECK_THAT(message_of(f), Catch::Matches("InvalidOffset: tensor 'b' with data_offsets \\[3, 5\\]: expected "
                                             "begin = 2 .*"));
  }
  SECTION("a hole before the first tensor is InvalidOffset") {
    const auto f = raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", std::vector<uint8_t>(3, 0));
    CHECK(kind_of(f) == Kind::InvalidOffset);
  }
  SECTION("end below begin is InvalidOffset") {
    const auto g = raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,0]}})", std::vector<uint8_t>(2, 0));
    CHECK(kind_of(g) == Kind::InvalidOffset);
  }
  SECTION("TensorInvalidInfo gives the byte counts") {
    CHECK_THAT(message_of(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                   std::vector<uint8_t>(8, 0))),
               Catch::Contains("tensor 'w' with data_offsets [0, 8]: holds 8 bytes but 3 elements of F32 need 12"));
  }
  SECTION("MetadataIncompleteBuffer gives the file byte range") {
    CHECK_THAT(message_of(raw_file(kI32, std::vector<uint8_t>(14, 0))),
               Catch::Contains("file bytes 68..82) is 14 bytes but the tensors cover 16"));
  }
  SECTION("InvalidHeader gives the offset of the bad byte") {
    CHECK_THAT(message_of(raw_file("{\"a\xc3\x28\":1}")), Catch::Contains("file offset 11 (0xc3)"));
  }
  SECTION("the error is a FormatError") {
    const auto f = raw_file("{");
    REQUIRE_THROWS_AS(parse_header(f.data(), f.size()), metaprobe::FormatError);
  }
}

TEST_CASE("the schema is strict", "[io][header]") {
  const auto check = [](const std::string& header, Kind kind) {
    INFO(header);
    CHECK(kind_of(raw_file(header, std::vector<uint8_t>(4, 0))) == kind);
  };
  const Kind D = Kind::InvalidHeaderDeserialization;
  SECTION("unknown dtypes, including the outdated schema regex's names") {
    check(R"({"x":{"dtype":"F128","shape":[1],"data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", D);
  }
  SECTION("negative, fractional, exponent and oversize integers") {
    check(R"({"x":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4.0],"data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4e0],"data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,18446744073709551616]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[-0,4]}})", D);  // serde_json reads -0 as a float
  }
  SECTION("missing fields and wrong types") {
    check(R"({"x":{"shape":[4],"data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"U8","data_offsets":[0,4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4,4]}})", D);
    check(R"({"x":{"dtype":"U8","shape":4,"data_offsets":[0,4]}})", D);
    check(R"({"x":[1,2]})", D);
    check(R"([])", D);
  }
  SECTION("syntax the reference's serde_json rejects") {
    check("{} x", D);
    check("{\"a\":1,}", D);
    check("{/*c*/}", D);
    check(std::string("{}\0", 3), D);  // nlohmann alone would stop at the NUL
    check(R"({"\ud800":1})", D);
  }
  SECTION("nesting beyond 128 levels is rejected without recursion") {
    check(R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"deep":)" + std::string(100000, '[') +
              std::string(100000, ']') + "}}",
          D);
  }
}

TEST_CASE("duplicates and metadata are checked explicitly", "[io][header]") {
  SECTION("a tensor name given twice is DuplicateTensorName, not a misleading InvalidOffset") {
    const auto f = raw_file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                            R"("w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                            std::vector<uint8_t>(4, 0));
    CHECK(kind_of(f) == Kind::DuplicateTensorName);
    CHECK_THAT(message_of(f), Catch::Contains("tensor name 'w' appears twice"));
  }
  SECTION("a field given twice inside an entry is InvalidHeaderDeserialization") {
    const auto f =
        raw_file(R"({"w":{"dtype":"U8","dtype":"U8","shape":[2],"data_offsets":[0,2]}})", std::vector<uint8_t>(2, 0));
    CHECK(kind_of(f) == Kind::InvalidHeaderDeserialization);
  }
  SECTION("metadata must map strings to strings") {
    CHECK(kind_of(raw_file(R"({"__metadata__":{"a":1}})")) == Kind::InvalidMetadata);
    CHECK(kind_of(raw_file(R"({"__metadata__":{"a":null}})")) == Kind::InvalidMetadata);
    CHECK(kind_of(raw_file(R"({"__metadata__":["a"]})")) == Kind::InvalidMetadata);
    CHECK(kind_of(raw_file(R"({"__metadata__":{"a":{"b":"c"}}})")) == Kind::InvalidMetadata);
    CHECK_THAT(message_of(raw_file(R"({"__metadata__":{"epoch":3}})")),
               Catch::Contains("__metadata__ value of 'epoch' is a JSON number, expected a string"));
  }
  SECTION("a metadata key given twice, or __metadata__ twice, is InvalidMetadata") {
    CHECK(kind_of(raw_file(R"({"__metadata__":{"a":"1","a":"2"}})")) == Kind::InvalidMetadata);
    CHECK(kind_of(raw_file(R"({"__metadata__":{},"__metadata__":{}})")) == Kind::InvalidMetadata);
  }
  SECTION("valid metadata is returned") {
    const auto f = raw_file(R"({"__metadata__":{"format":"pt","note":"\u00e9\n"}})");
    const Header h = parse_header(f.data(), f.size());
    CHECK(h.metadata.at("format") == "pt");
    CHECK(h.metadata.at("note") == "\xc3\xa9\n");
  }
}

TEST_CASE("rules apply in the reference's order", "[io][header]") {
  SECTION("the header cap comes before the file-length check") {
    CHECK(kind_of({0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}) == Kind::HeaderTooLarge);  // 100,000,001
  }
  SECTION("UTF-8 comes before JSON") { CHECK(kind_of(raw_file("{\xff")) == Kind::InvalidHeader); }
  SECTION("offsets are checked before sizes, per tensor in offset order") {
    const auto f = raw_file(R"({"a":{"dtype":"U8","shape":[9],"data_offsets":[0,2]},)"
                            R"("b":{"dtype":"U8","shape":[2],"data_offsets":[5,7]}})",
                            std::vector<uint8_t>(7, 0));
    CHECK(kind_of(f) == Kind::TensorInvalidInfo);  // 'a' comes first and fails its size
  }
  SECTION("overflow is checked before the size") {
    const auto f = raw_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})",
                            std::vector<uint8_t>(4, 0));
    CHECK(kind_of(f) == Kind::ValidationOverflow);
  }
  SECTION("the buffer is checked last") {
    const auto f = raw_file(R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,2]}})", std::vector<uint8_t>(9, 0));
    CHECK(kind_of(f) == Kind::TensorInvalidInfo);
  }
}

TEST_CASE("error kinds have the reference's names", "[io][header]") {
  CHECK(to_string(Kind::HeaderTooSmall) == "HeaderTooSmall");
  CHECK(to_string(Kind::InvalidHeaderDeserialization) == "InvalidHeaderDeserialization");
  CHECK(to_string(Kind::MetadataIncompleteBuffer) == "MetadataIncompleteBuffer");
  CHECK(to_string(Kind::DuplicateTensorName) == "DuplicateTensorName");
  const SafetensorsError e(Kind::InvalidOffset, "x");
  CHECK(std::string(e.what()) == "InvalidOffset: x");
}
