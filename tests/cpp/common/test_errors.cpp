#include <catch2/catch.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/version.hpp>

#include <cstring>
#include <string>

extern "C" const char* metaprobe_version();

TEST_CASE("every metaprobe error is catchable as metaprobe::Error and std::runtime_error", "[errors]") {
  SECTION("InvalidArgument keeps its message") {
    try {
      throw metaprobe::InvalidArgument("temperature: got -1, expected > 0");
    } catch (const metaprobe::Error& e) {
      REQUIRE(std::string(e.what()) == "temperature: got -1, expected > 0");
    }
  }
  SECTION("IoError, FormatError and Unsupported derive from Error") {
    REQUIRE_THROWS_AS(throw metaprobe::IoError("x"), metaprobe::Error);
    REQUIRE_THROWS_AS(throw metaprobe::FormatError("x"), metaprobe::Error);
    REQUIRE_THROWS_AS(throw metaprobe::Unsupported("x"), std::runtime_error);
  }
}

TEST_CASE("the library reports the version it was built as", "[version]") {
  REQUIRE(std::strcmp(metaprobe_version(), metaprobe::kVersion) == 0);
  REQUIRE(std::string(metaprobe::kVersion) ==
          std::to_string(metaprobe::kVersionMajor) + "." + std::to_string(metaprobe::kVersionMinor) + "." +
              std::to_string(metaprobe::kVersionPatch));
}
