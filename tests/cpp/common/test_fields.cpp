// One declaration per record: the field list drives the visitor, the key list and both JSON directions.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/error.hpp>

#include "common/record_json.hpp"

namespace fields_test {

struct Inner {
  int64_t count = 0;
};
#define INNER_FIELDS(X, LATER) X("count", count)
METAPROBE_RECORD(Inner, INNER_FIELDS)

struct Sample {
  std::string name;
  double value = 0;
  bool flag = false;
  std::vector<int64_t> shape;
  Inner inner;
  double later = std::numeric_limits<double>::quiet_NaN();
};
#define SAMPLE_FIELDS(X, LATER) \
  X("name", name) X("value", value) X("flag", flag) X("shape", shape) X("counts", inner.count) X("inner", inner) \
  LATER("later", later)
METAPROBE_RECORD(Sample, SAMPLE_FIELDS)

}  // namespace fields_test

using Catch::Matchers::Contains;
using fields_test::Sample;
using metaprobe::FormatError;
using metaprobe::detail::record_from_json;
using metaprobe::detail::record_to_json;

TEST_CASE("a record's field list drives its keys and its JSON", "[common][fields]") {
  Sample s;
  s.name = "w";
  s.value = std::numeric_limits<double>::infinity();
  s.flag = true;
  s.shape = {2, 3};
  s.inner.count = 7;
  SECTION("keys come in declaration order, nested members under their own key") {
    CHECK(metaprobe::record_field_names<Sample>() ==
          std::vector<std::string>{"name", "value", "flag", "shape", "counts", "inner", "later"});
    CHECK(metaprobe::is_record<Sample>::value);
    CHECK_FALSE(metaprobe::is_record<double>::value);
  }
  SECTION("paths name a nested record's leaves as key.subkey") {
    CHECK(metaprobe::record_field_paths<Sample>() ==
          std::vector<std::string>{"name", "value", "flag", "shape", "counts", "inner.count", "later"});
  }
  SECTION("visit_field finds a field by its key, and says when there is none") {
    int64_t seen = -1;
    auto take = [&](const auto& v) {
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, int64_t>) seen = v;
    };
    CHECK(metaprobe::visit_field(s, "counts", take));
    CHECK(seen == 7);
    CHECK_FALSE(metaprobe::visit_field(s, "count", take));
  }
  SECTION("writing turns non-finite numbers into null and nests records") {
    const nlohmann::json j = record_to_json(s);
    CHECK(j.at("value").is_null());
    CHECK(j.at("later").is_null());
    CHECK(j.at("counts") == 7);
    CHECK(j.at("inner").at("count") == 7);
    CHECK(j.at("shape") == nlohmann::json::array({2, 3}));
  }
  SECTION("reading gives the record back; null is NaN, a LATER field may be absent") {
    nlohmann::json j = record_to_json(s);
    j.erase("later");
    j["value"] = 1.5;
    Sample back;
    back.later = 3;
    record_from_json(j, back, "sample");
    CHECK(back.name == "w");
    CHECK(back.value == 1.5);
    CHECK(back.flag);
    CHECK(back.shape == std::vector<int64_t>{2, 3});
    CHECK(back.inner.count == 7);
    CHECK(back.later == 3);  // absent: kept
    j["later"] = nullptr;
    record_from_json(j, back, "sample");
    CHECK(std::isnan(back.later));
  }
  SECTION("a missing required field or a wrong kind is a FormatError naming the record and key") {
    nlohmann::json j = record_to_json(s);
    j.erase("flag");
    Sample back;
    REQUIRE_THROWS_AS(record_from_json(j, back, "report: sample"), FormatError);
    REQUIRE_THROWS_WITH(record_from_json(j, back, "report: sample"),
                        Contains("report: sample.flag is missing or has the wrong type: absent"));
    j = record_to_json(s);
    j["value"] = "1";
    REQUIRE_THROWS_WITH(record_from_json(j, back, "sample"),
                        Contains("sample.value is missing or has the wrong type: JSON string, expected a number"));
    j = record_to_json(s);
    j["counts"] = 2.5;
    REQUIRE_THROWS_WITH(record_from_json(j, back, "sample"), Contains("sample.counts") && Contains("expected an integer"));
    j = record_to_json(s);
    j["inner"] = {{"count", "x"}};
    REQUIRE_THROWS_WITH(record_from_json(j, back, "sample"), Contains("sample.inner.count"));
    REQUIRE_THROWS_WITH(record_from_json(nlohmann::json::array(), back, "sample"),
                        Contains("sample is missing or has the wrong type: JSON array, expected an object"));
  }
}
