// libFuzzer target: the run-config parser of `metaprobe run` (meta::options_from_json, cpp/src/meta/options.cpp)
// fed arbitrary JSON text. The contract the CLI relies on: a config either parses into RunOptions or is
// rejected with a metaprobe::Error (which the CLI prints as one line); any other exception (an
// nlohmann::type_error, std::out_of_range, ...) or a crash, leak or UB is a finding. Inputs that are not JSON
// are skipped after the parse, as the CLI rejects them before the parser runs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/meta/options.hpp>

namespace {

void parse_or_reject(const nlohmann::json& j) {
  try {
    const metaprobe::meta::RunOptions options = metaprobe::meta::options_from_json(j);
    // What was accepted must serialise back and parse to the same JSON (the run directory stores it).
    const nlohmann::json again = metaprobe::meta::options_to_json(options);
    if (metaprobe::meta::options_to_json(metaprobe::meta::options_from_json(again)) != again) {
      std::fprintf(stderr, "options_to_json is not a fixed point of options_from_json for %s\n", j.dump().c_str());
      std::abort();
    }
  } catch (const metaprobe::Error&) {
    // a named rejection: fine
  } catch (const std::exception& e) {
    std::fprintf(stderr, "options_from_json threw a non-metaprobe exception: %s\n  on %s\n", e.what(),
                 j.dump().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  parse_or_reject(j);  // the whole config as if it were the "options" object
  if (j.is_object() && j.contains("options")) parse_or_reject(j["options"]);  // a config's "options"
  return 0;
}
