// Reading (zero copy, alignment, dtypes, FP8) and writing (reference bytes, order, atomicity).
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include <sys/stat.h>

#include <metaprobe/io/safetensors.hpp>

#include "io_test_util.hpp"

using namespace metaprobe::io;
using Kind = SafetensorsErrorKind;
using io_test::raw_file;
using io_test::read_file;
using io_test::TempDir;
using io_test::write_file;

namespace {

std::vector<uint8_t> f32_bytes(std::initializer_list<float> values) {
  std::vector<uint8_t> out;
  for (float v : values) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    out.insert(out.end(), b, b + 4);
  }
  return out;
}

at::Tensor sample(at::ScalarType type, std::vector<int64_t> shape) {
  const auto gen_shape = at::IntArrayRef(shape);
  if (type == at::kBool) return at::randn(gen_shape, at::kDouble).gt(0);
  if (at::isIntegralType(type, false)) return at::randint(-100, 100, gen_shape, at::TensorOptions().dtype(type));
  if (type == at::kByte) return at::randint(0, 255, gen_shape, at::TensorOptions().dtype(type));
  return at::randn(gen_shape, at::TensorOptions().dtype(type));
}

}  // namespace

TEST_CASE("every served dtype round-trips exactly", "[io][rw]") {
  TempDir dir;
  const std::vector<at::ScalarType> types{at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                                          at::kShort,  at::kChar,  at::kByte, at::kBool,     at::kComplexFloat};
  const std::vector<std::vector<int64_t>> shapes{{}, {0}, {3, 0, 2}, {7}, {4, 5}, {2, 3, 4}};
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto t : types) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      tensors.emplace_back(std::string(c10::toString(t)) + "." + std::to_string(s),
                           t == at::kByte ? at::randint(0, 255, shapes[s], at::kByte) : sample(t, shapes[s]));
    }
  }
  const std::string path = dir.file("all.safetensors");
  save_safetensors(tensors, path, {{"format", "pt"}});
  const auto f = SafetensorsFile::open(path);
  REQUIRE(f.size() == tensors.size());
  CHECK((f.metadata() == std::map<std::string, std::string>{{"format", "pt"}}));
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const at::Tensor r = f.tensor(name);
    CHECK(r.scalar_type() == t.scalar_type());
    CHECK(r.sizes() == t.sizes());
    CHECK(r.equal(t));
    CHECK(f.info(name).nbytes == static_cast<uint64_t>(t.numel() * t.element_size()));
    CHECK(f.info(name).dtype == safetensors_dtype(t.scalar_type()));
  }
  SECTION("non-contiguous inputs are written in C order") {
    const at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
    save_safetensors({{"t", base.t()}}, path);
    CHECK(SafetensorsFile::open(path).tensor("t").equal(base.t().contiguous()));
  }
}

TEST_CASE("a file built byte by byte reads back exactly", "[io][rw]") {
  TempDir dir;
  // Header written by hand; F32 [2] = {1.5, -2}, then I16 scalar 0x1234, then U8 [2,0].
  const std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I16","shape":[],"data_offsets":[8,10]},"c":{"dtype":"U8","shape":[2,0],"data_offsets":[10,10]}})";
  auto data = f32_bytes({1.5f, -2.0f});
  data.push_back(0x34);
  data.push_back(0x12);
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  write_file(dir.file("hand.safetensors"), raw_file(padded, data));
  const auto f = SafetensorsFile::open(dir.file("hand.safetensors"));
  CHECK(f.names() == std::vector<std::string>({"a", "b", "c"}));
  CHECK(f.metadata().at("k") == "v");
  const at::Tensor a = f.tensor("a");
  REQUIRE(a.scalar_type() == at::kFloat);
  CHECK(a[0].item<float>() == 1.5f);
  CHECK(a[1].item<float>() == -2.0f);
  const at::Tensor b = f.tensor("b");
  CHECK(b.dim() == 0);
  CHECK(b.item<int16_t>() == 0x1234);
  CHECK(f.tensor("c").sizes() == at::IntArrayRef({2, 0}));
  CHECK((f.data_offsets("b") == std::pair<uint64_t, uint64_t>(8, 10)));
  CHECK(f.data_start() == 8 + padded.size());
  CHECK(f.file_size() == 8 + padded.size() + 10);
}

TEST_CASE("zero-copy tensors alias the mapping and keep it alive", "[io][rw]") {
  TempDir dir;
  const std::string path = dir.file("z.safetensors");
  const at::Tensor w = at::randn({64, 64});
  save_safetensors({{"w", w}}, path);
  at::Tensor t;
  const void* first = nullptr;
  {
    const auto f = SafetensorsFile::open(path, LoadOptions{false, true});
    t = f.tensor("w");
    first = t.data_ptr();
    SECTION("two reads share the same bytes (zero copy)") { CHECK(f.tensor("w").data_ptr() == first); }
  }
  SECTION("the tensor outlives the file object") { CHECK(t.equal(w)); }
  SECTION("writing to a tensor changes only this process's copy, never the file") {
    t.fill_(7.0f);
    CHECK(t.eq(7.0f).all().item<bool>());
    CHECK(SafetensorsFile::open(path).tensor("w").equal(w));
  }
}

TEST_CASE("misaligned data is accepted and copied", "[io][rw]") {
  TempDir dir;
  // The data buffer starts at file offset 8 + 9 = 17: no F32/F64 can be aligned there.
  std::string header = R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})";
  header += std::string((9 - header.size() % 8 + 8) % 8, ' ');
  REQUIRE((8 + header.size()) % 8 == 1);
  std::vector<uint8_t> data(16);
  const double v[2] = {3.25, -1e300};
  std::memcpy(data.data(), v, 16);
  write_file(dir.file("m.safetensors"), raw_file(header, data));
  const auto f = SafetensorsFile::open(dir.file("m.safetensors"), LoadOptions{false, true});
  const at::Tensor x = f.tensor("x");
  CHECK(reinterpret_cast<uintptr_t>(x.data_ptr()) % 8 == 0);
  CHECK(x[0].item<double>() == 3.25);
  CHECK(x[1].item<double>() == -1e300);
  CHECK(f.tensor("x").data_ptr() != x.data_ptr());  // a fresh copy each time
}

TEST_CASE("BOOL bytes other than 0 and 1 are normalised", "[io][rw]") {
  TempDir dir;
  write_file(dir.file("b.safetensors"),
             raw_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}    )", {0, 2, 1}));
  const at::Tensor m = SafetensorsFile::open(dir.file("b.safetensors")).tensor("m");
  CHECK(m.to(at::kByte).equal(at::tensor({0, 1, 1}, at::kByte)));
}

TEST_CASE("FP8 is decoded exactly on request", "[io][rw][fp8]") {
  SECTION("E4M3 (fn): hand-computed values") {
    CHECK(decode_f8_e4m3(0x00) == 0.0f);
    CHECK(std::signbit(decode_f8_e4m3(0x80)));
    CHECK(decode_f8_e4m3(0x38) == 1.0f);               // exp 7 = bias
    CHECK(decode_f8_e4m3(0x3C) == 1.5f);               // 1 + 4/8
    CHECK(decode_f8_e4m3(0x40) == 2.0f);
    CHECK(decode_f8_e4m3(0xC0) == -2.0f);
    CHECK(decode_f8_e4m3(0x7E) == 448.0f);             // largest: 1.75 * 2^8
    CHECK(decode_f8_e4m3(0x08) == std::ldexp(1.0f, -6));  // smallest normal
    CHECK(decode_f8_e4m3(0x01) == std::ldexp(1.0f, -9));  // smallest subnormal
    CHECK(decode_f8_e4m3(0x07) == 7.0f * std::ldexp(1.0f, -9));
    CHECK(decode_f8_e4m3(0x78) == 256.0f);             // exp 15 with mantissa < 7 is finite
    CHECK(std::isnan(decode_f8_e4m3(0x7F)));
    CHECK(std::isnan(decode_f8_e4m3(0xFF)));
    int nans = 0, infs = 0;
    for (int b = 0; b < 256; ++b) {
      nans += std::isnan(decode_f8_e4m3(static_cast<uint8_t>(b)));
      infs += std::isinf(decode_f8_e4m3(static_cast<uint8_t>(b)));
    }
    CHECK(nans == 2);
    CHECK(infs == 0);
  }
  SECTION("E5M2: hand-computed values") {
    CHECK(decode_f8_e5m2(0x3C) == 1.0f);  // exp 15 = bias
    CHECK(decode_f8_e5m2(0x3E) == 1.5f);
    CHECK(decode_f8_e5m2(0xC0) == -2.0f);
    CHECK(decode_f8_e5m2(0x7B) == 57344.0f);  // largest: 1.75 * 2^15
    CHECK(decode_f8_e5m2(0x04) == std::ldexp(1.0f, -14));
    CHECK(decode_f8_e5m2(0x01) == std::ldexp(1.0f, -16));
    CHECK(decode_f8_e5m2(0x7C) == std::numeric_limits<float>::infinity());
    CHECK(decode_f8_e5m2(0xFC) == -std::numeric_limits<float>::infinity());
    CHECK(std::isnan(decode_f8_e5m2(0x7D)));
    CHECK(std::isnan(decode_f8_e5m2(0xFF)));
  }
  SECTION("E5M2 is the top byte of an IEEE half, so it matches ATen's half conversion for every byte") {
    for (int b = 0; b < 256; ++b) {
      const uint16_t bits = static_cast<uint16_t>(b << 8);
      const float half = static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
      const float mine = decode_f8_e5m2(static_cast<uint8_t>(b));
      INFO(b);
      CHECK(((std::isnan(half) && std::isnan(mine)) || half == mine));
    }
  }
  SECTION("files: decoded to float32 with decode_fp8, torch's float8 types without") {
    TempDir dir;
    write_file(dir.file("f8.safetensors"),
               raw_file(R"({"a":{"dtype":"F8_E4M3","shape":[2,2],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[4,5]}}     )",
                        {0x38, 0x3C, 0xC0, 0x7E, 0x7C}));
    for (const bool zero_copy : {false, true}) {
      INFO("zero_copy " << zero_copy);
      const auto plain = SafetensorsFile::open(dir.file("f8.safetensors"), LoadOptions{false, zero_copy});
      CHECK(plain.info("a").dtype == "F8_E4M3");
      const at::Tensor a8 = plain.tensor("a");
      CHECK(a8.scalar_type() == at::kFloat8_e4m3fn);
      CHECK(a8.to(at::kFloat).equal(at::tensor({1.0f, 1.5f, -2.0f, 448.0f}).reshape({2, 2})));
      CHECK(plain.tensor("b").scalar_type() == at::kFloat8_e5m2);
      const auto decoded = SafetensorsFile::open(dir.file("f8.safetensors"), LoadOptions{true, zero_copy});
      const at::Tensor a = decoded.tensor("a");
      CHECK(a.scalar_type() == at::kFloat);
      CHECK(a.equal(at::tensor({1.0f, 1.5f, -2.0f, 448.0f}).reshape({2, 2})));
      CHECK(std::isinf(decoded.tensor("b")[0].item<float>()));
    }
  }
  SECTION("our table agrees with torch's own float8 conversion for every byte") {
    const at::Tensor all = at::arange(256, at::kInt).to(at::kByte);
    const at::Tensor e4 = all.view(at::kFloat8_e4m3fn).to(at::kFloat);
    const at::Tensor e5 = all.view(at::kFloat8_e5m2).to(at::kFloat);
    for (int b = 0; b < 256; ++b) {
      INFO(b);
      const float t4 = e4[b].item<float>(), t5 = e5[b].item<float>();
      const float m4 = decode_f8_e4m3(static_cast<uint8_t>(b)), m5 = decode_f8_e5m2(static_cast<uint8_t>(b));
      CHECK(((std::isnan(t4) && std::isnan(m4)) || t4 == m4));
      CHECK(((std::isnan(t5) && std::isnan(m5)) || t5 == m5));
    }
  }
}

TEST_CASE("torch 2.x's unsigned and float8 dtypes map both ways; sub-byte ones are Unsupported", "[io][rw]") {
  const std::vector<std::pair<std::string, at::ScalarType>> pairs = {
      {"U16", at::kUInt16},          {"U32", at::kUInt32},           {"U64", at::kUInt64},
      {"F8_E4M3", at::kFloat8_e4m3fn}, {"F8_E5M2", at::kFloat8_e5m2},  {"F8_E4M3FNUZ", at::kFloat8_e4m3fnuz},
      {"F8_E5M2FNUZ", at::kFloat8_e5m2fnuz}, {"F8_E8M0", at::kFloat8_e8m0fnu}};
  for (const auto& [name, type] : pairs) {
    INFO(name);
    CHECK(aten_dtype(name) == type);
    CHECK(safetensors_dtype(type) == name);
  }
  TempDir dir;
  SECTION("a file of each round-trips bit for bit, copied or mapped") {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    const at::Tensor bytes = at::arange(0, 64, at::kInt).to(at::kByte);
    for (const auto& [name, type] : pairs) {
      const int64_t size = static_cast<int64_t>(c10::elementSize(type));
      tensors.emplace_back(name, bytes.slice(0, 0, 4 * size).view(type).reshape({2, 2}));
    }
    save_safetensors(tensors, dir.file("u.safetensors"));
    for (const bool zero_copy : {false, true}) {
      const auto f = SafetensorsFile::open(dir.file("u.safetensors"), LoadOptions{false, zero_copy});
      for (const auto& [name, t] : tensors) {
        INFO(name << " zero_copy " << zero_copy);
        const at::Tensor back = f.tensor(name);
        CHECK(back.scalar_type() == t.scalar_type());
        CHECK(back.view(at::kByte).equal(t.view(at::kByte)));
      }
    }
  }
  SECTION("F4 and F6 are listed but not served") {
    write_file(dir.file("f4.safetensors"),
               raw_file(R"({"f":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}         )", {0x21}));
    const auto f = SafetensorsFile::open(dir.file("f4.safetensors"));
    CHECK(f.info("f").shape == std::vector<int64_t>({2}));
    REQUIRE_THROWS_AS(f.tensor("f"), metaprobe::Unsupported);
    REQUIRE_THROWS_WITH(f.tensor("f"), Catch::Contains("tensor 'f'") && Catch::Contains("dtype F4") &&
                                           Catch::Contains("UnsupportedDtype"));
    REQUIRE_THROWS_AS(aten_dtype("F6_E2M3"), metaprobe::Unsupported);
    REQUIRE_THROWS_AS(aten_dtype("F9"), metaprobe::InvalidArgument);
    CHECK(dtype_bits("F6_E3M2") == 6);
    REQUIRE_THROWS_WITH(safetensors_dtype(at::kComplexDouble), Catch::Contains("ComplexDouble"));
  }
}

TEST_CASE("lookups and opening fail clearly", "[io][rw]") {
  TempDir dir;
  save_safetensors({{"w", at::ones({2})}}, dir.file("a.safetensors"));
  const auto f = SafetensorsFile::open(dir.file("a.safetensors"));
  SECTION("a missing name is an InvalidArgument naming it") {
    REQUIRE_THROWS_AS(f.tensor("v"), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(f.info("v"), Catch::Contains("no tensor 'v'") && Catch::Contains("TensorNotFound"));
    CHECK_FALSE(f.contains("v"));
  }
  SECTION("a missing file is PathNotFound, an IoError") {
    REQUIRE_THROWS_AS(SafetensorsFile::open(dir.file("nope")), PathNotFound);
    REQUIRE_THROWS_AS(SafetensorsFile::open(dir.file("nope")), metaprobe::IoError);
    REQUIRE_THROWS_WITH(SafetensorsFile::open(dir.file("nope")), Catch::Contains("nope") &&
                                                                      Catch::Contains("No such file"));
  }
  SECTION("a directory is an IoError") {
    REQUIRE_THROWS_WITH(SafetensorsFile::open(dir.path.string()), Catch::Contains("is a directory"));
  }
  SECTION("a FIFO is refused without blocking") {
    REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
    REQUIRE_THROWS_AS(SafetensorsFile::open(dir.file("fifo")), metaprobe::IoError);
    REQUIRE_THROWS_WITH(SafetensorsFile::open(dir.file("fifo")), Catch::Contains("not a regular file"));
  }
  SECTION("a malformed file names the path and the kind") {
    write_file(dir.file("bad.safetensors"), {1, 2, 3});
    try {
      SafetensorsFile::open(dir.file("bad.safetensors"));
      FAIL("accepted");
    } catch (const SafetensorsError& e) {
      CHECK(e.kind() == Kind::HeaderTooSmall);
      CHECK_THAT(e.what(), Catch::StartsWith("HeaderTooSmall: ") && Catch::Contains("bad.safetensors: file is 3 bytes"));
    }
  }
}

TEST_CASE("the writer produces the reference writer's bytes", "[io][writer]") {
  SECTION("tensor.rs test_serialization: F32 [1,2,3] named attn.0") {
    const auto out = serialize_safetensors({{"attn.0", at::arange(6, at::kFloat).reshape({1, 2, 3})}});
    const std::vector<uint8_t> expected{
        64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,  58,  123, 34,  100,
        116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104, 97,  112, 101, 34,  58,  91,
        49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,  95,  111, 102, 102, 115, 101, 116, 115, 34,
        58,  91,  48,  44,  50,  52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,
        0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64};
    CHECK(out == expected);
  }
  SECTION("tensor.rs test_serialization_forced_alignement: padding with spaces") {
    const auto out = serialize_safetensors({{"attn0", at::arange(6, at::kFloat).reshape({1, 1, 2, 3})}});
    REQUIRE(out.size() == 8 + 72 + 24);
    CHECK(out[0] == 72);
    const std::string header(out.begin() + 8, out.begin() + 80);
    CHECK(header == R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )");
  }
  SECTION("tensor.rs test_empty: {} and the metadata-only file") {
    CHECK(serialize_safetensors({}) == std::vector<uint8_t>({8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 32, 32, 32, 32, 32, 32}));
    const auto out = serialize_safetensors({}, {{"framework", "pt"}});
    const std::string s(out.begin(), out.end());
    CHECK(s == std::string("\x28\0\0\0\0\0\0\0", 8) + R"({"__metadata__":{"framework":"pt"}}     )");
  }
  SECTION("order: descending reference dtype rank, then name bytes") {
    const auto out = serialize_safetensors({{"b", at::zeros({1}, at::kFloat)},
                                            {"a", at::zeros({1}, at::kBFloat16)},
                                            {"z", at::zeros({1}, at::kDouble)},
                                            {"y", at::zeros({1}, at::kLong)},
                                            {"B", at::zeros({1}, at::kFloat)},
                                            {"m", at::zeros({1}, at::kBool)}});
    const Header h = parse_header(out.data(), out.size());
    std::vector<std::string> order;
    for (const auto& e : h.tensors) order.push_back(e.info.name);
    // I64 ranks above F64 in the reference's enum, whatever the names.
    CHECK(order == std::vector<std::string>({"y", "z", "B", "b", "a", "m"}));
  }
  SECTION("names are escaped as serde_json escapes them") {
    const auto out = serialize_safetensors({{"q\"\\\n\x01\x7f\xc3\xa9", at::zeros({0})}});
    const std::string s(out.begin() + 8, out.end());
    CHECK_THAT(s, Catch::StartsWith("{\"q\\\"\\\\\\n\\u0001\x7f\xc3\xa9\":"));
    const Header h = parse_header(out.data(), out.size());
    CHECK(h.tensors.at(0).info.name == "q\"\\\n\x01\x7f\xc3\xa9");
  }
  SECTION("a 100 MB metadata value is HeaderTooLarge on serialize") {
    REQUIRE_THROWS_AS(serialize_safetensors({}, {{"big", std::string(kMaxHeaderSize, 'x')}}), SafetensorsError);
    REQUIRE_THROWS_WITH(serialize_safetensors({}, {{"big", std::string(kMaxHeaderSize, 'x')}}),
                        Catch::StartsWith("HeaderTooLarge"));
  }
  SECTION("bad arguments are InvalidArgument or Unsupported") {
    REQUIRE_THROWS_WITH(serialize_safetensors({{"a", at::ones({1})}, {"a", at::ones({1})}}),
                        Catch::Contains("'a' appears twice"));
    REQUIRE_THROWS_AS(serialize_safetensors({{"__metadata__", at::ones({1})}}), metaprobe::InvalidArgument);
    REQUIRE_THROWS_AS(serialize_safetensors({{"a", at::Tensor()}}), metaprobe::InvalidArgument);
    REQUIRE_THROWS_AS(serialize_safetensors({{"\xff", at::ones({1})}}), metaprobe::InvalidArgument);
    REQUIRE_THROWS_AS(serialize_safetensors({{"c", at::ones({1}, at::kComplexDouble)}}), metaprobe::Unsupported);
  }
}

TEST_CASE("writes are atomic", "[io][writer]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<std::pair<std::string, at::Tensor>> old_tensors{{"old", at::ones({4})}};
  save_safetensors(old_tensors, path);
  const auto before = read_file(path);
  const auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& e : io_test::fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
    return names;
  };
  SECTION("a failure mid-write leaves the old file intact and no temporary") {
    SaveOptions opts;
    int calls = 0;
    opts.after_tensor = [&](const std::string& name) {
      if (++calls == 2) throw std::runtime_error("disk on fire after " + name);
    };
    REQUIRE_THROWS_WITH(save_safetensors({{"a", at::randn({1000})}, {"b", at::randn({1000})}, {"c", at::randn({9})}},
                                         path, {}, opts),
                        "disk on fire after b");
    CHECK(calls == 2);
    CHECK(read_file(path) == before);
    CHECK(entries() == std::vector<std::string>({"model.safetensors"}));
  }
  SECTION("a failure with no previous file leaves nothing") {
    SaveOptions opts;
    opts.after_tensor = [](const std::string&) { throw std::runtime_error("boom"); };
    REQUIRE_THROWS(save_safetensors({{"a", at::ones({3})}}, dir.file("new.safetensors"), {}, opts));
    CHECK(entries() == std::vector<std::string>({"model.safetensors"}));
  }
  SECTION("argument errors surface before any file is touched") {
    REQUIRE_THROWS(save_safetensors({{"x", at::ones({1}, at::kComplexDouble)}}, path));
    CHECK(read_file(path) == before);
    CHECK(entries().size() == 1);
  }
  SECTION("a successful write replaces the file and leaves no temporary") {
    save_safetensors({{"new", at::zeros({2})}}, path);
    CHECK(SafetensorsFile::open(path).names() == std::vector<std::string>({"new"}));
    CHECK(entries() == std::vector<std::string>({"model.safetensors"}));
  }
  SECTION("a missing directory is PathNotFound; a directory target is an IoError") {
    REQUIRE_THROWS_AS(save_safetensors(old_tensors, dir.file("no/such/dir.safetensors")), PathNotFound);
    REQUIRE_THROWS_WITH(save_safetensors(old_tensors, dir.path.string()), Catch::Contains("is a directory"));
  }
  SECTION("the written file equals serialize_safetensors") {
    const std::vector<std::pair<std::string, at::Tensor>> t{{"w", at::randn({3, 5})}, {"i", at::arange(4)}};
    save_safetensors(t, path, {{"a", "b"}});
    CHECK(read_file(path) == serialize_safetensors(t, {{"a", "b"}}));
  }
}
