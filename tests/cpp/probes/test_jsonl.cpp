#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/suite.hpp>

using namespace metaprobe::probes;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  const auto dir = fs::temp_directory_path() / ("metaprobe_jsonl_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::string good_line() { return to_jsonl_line(generate_item("math.recurrence", 1, 0, 0)); }

std::string base(const std::string& extra) {
  return R"({"id": "x1", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "1", "answer_type": "integer")" +
         extra + "}";
}

}  // namespace

TEST_CASE("items round-trip through JSON and JSONL files", "[probes][jsonl]") {
  SuiteSpec spec;
  spec.n_per_cell = 3;
  const auto items = generate(spec);
  const auto dir = temp_dir();
  const std::string path = (dir / "suite.jsonl").string();
  write_jsonl(items, path);
  const auto back = read_jsonl(path);
  REQUIRE(back.size() == items.size());
  for (size_t i = 0; i < items.size(); ++i) REQUIRE(to_jsonl_line(back[i]) == to_jsonl_line(items[i]));
  REQUIRE(suite_hash(back) == suite_hash(items));
  SECTION("optional keys appear only where they apply") {
    for (const auto& it : items) {
      const auto j = to_json(it);
      REQUIRE(j.contains("tolerance") == (it.answer_type == AnswerType::number));
      REQUIRE(j.contains("ordered") == (it.answer_type == AnswerType::list));
      REQUIRE(j.contains("choices") == (it.answer_type == AnswerType::choice));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("unknown fields are kept", "[probes][jsonl]") {
  const auto items = parse_jsonl(base(R"(, "source": "gsm8k", "notes": {"by": ["a", "b"]})"), "t");
  REQUIRE(items[0].extra["source"] == "gsm8k");
  REQUIRE(items[0].extra["notes"]["by"][1] == "b");
  const auto again = parse_jsonl(to_jsonl_line(items[0]), "t2");
  REQUIRE(again[0].extra == items[0].extra);
  REQUIRE(to_json(again[0])["source"] == "gsm8k");
}

TEST_CASE("hand-written items need only the required fields", "[probes][jsonl]") {
  const auto items = parse_jsonl(base("") + "\n\n   \n" + base("").replace(8, 2, "x2") + "\n", "h");
  REQUIRE(items.size() == 2);
  REQUIRE(items[0].difficulty == 1);
  REQUIRE(items[0].family.empty());
  REQUIRE(items[1].id == "x2");
}

TEST_CASE("malformed lines are errors naming the line and the field", "[probes][jsonl]") {
  const std::string g = good_line() + "\n";
  SECTION("missing required field") {
    REQUIRE_THROWS_WITH(parse_jsonl(g + R"({"id": "a", "skill": "calculation", "domain": "math", "prompt": "p", "answer_type": "integer"})", "f.jsonl"),
                        Catch::Contains("f.jsonl:2: field 'answer': missing required field"));
  }
  SECTION("wrong types") {
    REQUIRE_THROWS_WITH(parse_jsonl(g + base(R"(, "difficulty": "3")"), "f.jsonl"),
                        Catch::Contains("f.jsonl:2: field 'difficulty': expected an integer, got string"));
    REQUIRE_THROWS_WITH(parse_jsonl(g + base(R"(, "tolerance": "0.1")"), "f.jsonl"),
                        Catch::Contains("f.jsonl:2: field 'tolerance': expected a number"));
    REQUIRE_THROWS_WITH(parse_jsonl(g + base(R"(, "ordered": 1)"), "f.jsonl"),
                        Catch::Contains("field 'ordered': expected a boolean, got integer"));
    REQUIRE_THROWS_WITH(parse_jsonl(g + base(R"(, "choices": ["a", 2])"), "f.jsonl"),
                        Catch::Contains("field 'choices': expected an array of strings"));
    REQUIRE_THROWS_AS(parse_jsonl(g + base(R"(, "meta": "x")"), "f.jsonl"), metaprobe::FormatError);
  }
  SECTION("bad values") {
    REQUIRE_THROWS_WITH(parse_jsonl(g + base(R"(, "difficulty": 6)"), "f.jsonl"),
                        Catch::Contains("field 'difficulty': got 6"));
    REQUIRE_THROWS_WITH(parse_jsonl(g + base("").replace(base("").find("math"), 4, "chem"), "f.jsonl"),
                        Catch::Contains("f.jsonl:2: field 'domain'") && Catch::Contains("'chem'"));
    REQUIRE_THROWS_WITH(
        parse_jsonl(R"({"id": "c", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "C", "answer_type": "choice", "choices": ["x", "y"], "gold_index": 1})", "f.jsonl"),
        Catch::Contains("f.jsonl:1: field 'answer': got 'C'"));
    REQUIRE_THROWS_WITH(
        parse_jsonl(R"({"id": "c", "skill": "calculation", "domain": "math", "prompt": "p", "answer": "A", "answer_type": "choice", "choices": ["x", "y"], "gold_index": 5})", "f.jsonl"),
        Catch::Contains("field 'gold_index': got 5"));
  }
  SECTION("invalid JSON and non-objects") {
    REQUIRE_THROWS_WITH(parse_jsonl(g + to_jsonl_line(generate_item("math.recurrence", 1, 0, 1)) + "\n{\"id\": ", "f.jsonl"), Catch::Contains("f.jsonl:3: invalid JSON"));
    REQUIRE_THROWS_WITH(parse_jsonl("42\n", "f.jsonl"), Catch::Contains("f.jsonl:1: expected a JSON object"));
  }
  SECTION("duplicate ids") {
    REQUIRE_THROWS_WITH(parse_jsonl(g + g, "f.jsonl"),
                        Catch::Contains("f.jsonl:2: field 'id': duplicate id") && Catch::Contains("line 1"));
  }
}

TEST_CASE("file errors are IoError and leave nothing behind", "[probes][jsonl]") {
  REQUIRE_THROWS_AS(read_jsonl("/nonexistent/metaprobe/x.jsonl"), metaprobe::IoError);
  const auto dir = temp_dir();
  const std::vector<Item> items = {generate_item("math.recurrence", 1, 0, 0)};
  REQUIRE_THROWS_AS(write_jsonl(items, (dir / "missing" / "x.jsonl").string()), metaprobe::IoError);
  REQUIRE(fs::is_empty(dir));
  fs::remove_all(dir);
}

TEST_CASE("bad bytes, duplicate keys and directories are named errors", "[probes][jsonl]") {
  using Catch::Contains;
  SECTION("bytes that are not UTF-8 name the line, the byte and the column") {
    const std::string text = base("") + "\n" + R"({"id": "caf)" + std::string("\xE9") + R"("})";
    REQUIRE_THROWS_AS(parse_jsonl(text, "t.jsonl"), metaprobe::FormatError);
    REQUIRE_THROWS_WITH(parse_jsonl(text, "t.jsonl"),
                        Contains("t.jsonl:2: invalid UTF-8 byte 0xE9 at column 12") && Contains("expected UTF-8"));
    REQUIRE_THROWS_WITH(parse_jsonl("\xFF\xFE{\0", "u.jsonl"),
                        Contains("u.jsonl:1: the file starts with a UTF-16 byte-order mark (bytes FF FE)"));
    REQUIRE_NOTHROW(parse_jsonl(base(R"(, "note": "Zürich ≈ 5 €")"), "ok"));
  }
  SECTION("a key given twice in one object is an error, not the last value") {
    REQUIRE_THROWS_WITH(parse_jsonl("\n" + base(R"(, "answer": "2")"), "t"),
                        Contains("t:2: duplicate key 'answer' in one JSON object, expected each key once"));
    // the same key in two different (nested) objects is fine
    REQUIRE_NOTHROW(parse_jsonl(base(R"(, "meta": {"id": 3, "answer": 4})"), "t"));
  }
  SECTION("a directory is an IoError naming the path") {
    const auto dir = temp_dir();
    REQUIRE_THROWS_AS(read_jsonl(dir.string()), metaprobe::IoError);
    REQUIRE_THROWS_WITH(read_jsonl(dir.string()), Contains(dir.string()) && Contains("is a directory"));
  }
  SECTION("aliases and equivalents round-trip and are checked") {
    const auto items = parse_jsonl(base(R"(, "aliases": ["one", "1.0"], "equivalents": ["I"])"), "t");
    REQUIRE(items[0].aliases == std::vector<std::string>{"one", "1.0"});
    REQUIRE(items[0].equivalents == std::vector<std::string>{"I"});
    REQUIRE(to_json(items[0]).at("aliases").size() == 2);
    REQUIRE_THROWS_WITH(parse_jsonl(base(R"(, "aliases": "one")"), "t"),
                        Contains("field 'aliases'") && Contains("expected an array of strings, got string"));
    REQUIRE_THROWS_WITH(parse_jsonl(base(R"(, "equivalents": [1])"), "t"),
                        Contains("field 'equivalents'") && Contains("found a integer"));
  }
}
