// The run options are one declaration: their JSON keys, defaults, error paths and Python names all come from
// METAPROBE_RUN_OPTIONS_FIELDS (meta/options.hpp).
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/meta/options.hpp>

#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::meta;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {

// The value at a dotted option path of `j` ("prompt.k").
json& at_path(json& j, const std::string& path) {
  const auto dot = path.find('.');
  if (dot == std::string::npos) return j.at(path);
  return at_path(j.at(path.substr(0, dot)), path.substr(dot + 1));
}

std::string error_of(const json& j) {
  try {
    options_from_json(j);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("run options: one field list drives the JSON form", "[meta][options]") {
  const json defaults = options_to_json(RunOptions{});
  SECTION("the JSON has one key per entry of the list, prompt nested under its own keys") {
    std::set<std::string> keys;
    for (auto it = defaults.begin(); it != defaults.end(); ++it) keys.insert(it.key());
    const auto names = record_field_names<RunOptions>();
    CHECK(keys == std::set<std::string>(names.begin(), names.end()));
    CHECK(defaults.at("prompt") == json{{"template", "plain"}, {"k", 3}, {"seed", 0}});
    CHECK(defaults.at("update_atol") == 1e-5);
    CHECK(defaults.at("reference_mode") == "exact");
    CHECK(defaults.at("update_nonfinite") == "nan");
  }
  SECTION("the paths are the leaves of the list, in list order") {
    const auto paths = option_paths();
    CHECK(paths.front() == "reference");
    CHECK(std::find(paths.begin(), paths.end(), "prompt.template") != paths.end());
    CHECK(std::find(paths.begin(), paths.end(), "prompt") == paths.end());
    for (const auto& p : paths) CHECK_NOTHROW(at_path(const_cast<json&>(defaults), p));
  }
  SECTION("every option reads back what it wrote; an empty object is the defaults") {
    RunOptions o;
    o.prompt = {"few_shot", 5, 9};
    o.update.atol = 0.25;
    o.reference_mode = ReferenceMode::topk_cache;
    o.target_cells = {{probes::Skill::simulation, probes::Domain::coding}};
    o.eos_ids = {2, 7};
    o.seed = 18446744073709551615ull;
    const json j = options_to_json(o);
    CHECK(j.at("target_cells") == json{"simulation/coding"});
    CHECK(options_to_json(options_from_json(j)) == j);
    CHECK(options_to_json(options_from_json(json::object())) == defaults);
  }
  SECTION("a value of the wrong kind names its own path, for every option") {
    for (const auto& path : option_paths()) {
      json j = defaults;
      at_path(j, path) = json{{"x", 1}};
      INFO(path);
      if (path == "choice_mode" || path == "reference_mode") {  // their tables' own messages, named by the key
        CHECK_THAT(error_of(j), StartsWith(path + ": got JSON object {\"x\":1}, expected one of "));
        continue;
      }
      CHECK_THAT(error_of(j), StartsWith("options." + path + ": got {\"x\":1}, expected a value of the documented"));
    }
  }
  SECTION("unknown keys are errors, inside prompt too; a bad cell or enum names its path") {
    CHECK_THAT(error_of({{"prompt", {{"template", "plain"}, {"kk", 1}}}}),
               Contains("options.prompt: unknown key 'kk', expected one of template, k, seed"));
    CHECK_THAT(error_of({{"prompt", 3}}), Contains("options.prompt: got JSON number 3, expected an object {template, k, seed}"));
    CHECK_THAT(error_of(json::array()), Contains("options: got JSON array [], expected an object"));
    CHECK_THAT(error_of({{"target_cells", {"calculation"}}}),
               Contains("options.target_cells[0]: 'calculation' is not a cell, expected \"skill/domain\""));
    CHECK_THAT(error_of({{"choice_mode", "vote"}}), StartsWith("choice_mode: 'vote' is not a choice mode"));
    CHECK_THAT(error_of({{"update_nonfinite", "skip"}}),
               StartsWith("options.update_nonfinite: 'skip', expected one of nan, error"));
  }
  SECTION("validation names the option by its key path") {
    RunOptions o;
    o.update.atol = -1;
    CHECK_THROWS_WITH(o.validate(), StartsWith("RunOptions.update_atol is -1"));
    o = RunOptions{};
    o.prompt.template_name = "xml";
    CHECK_THROWS_WITH(o.validate(), StartsWith("RunOptions.prompt.template is 'xml'"));
    o = RunOptions{};
    o.stop = {""};
    CHECK_THROWS_WITH(o.validate(), StartsWith("RunOptions.stop is a list with an empty string"));
  }
}
