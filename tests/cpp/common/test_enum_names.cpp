#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/error.hpp>

// A local enum with its own table, so the mechanism is pinned independently of the library's enums.
namespace sample {
enum class Colour { red, dark_green, blue };
METAPROBE_ENUM_NAMES(Colour, "colour", "unknown value '{value}', expected one of {names}", {Colour::red, "red"},
                     {Colour::dark_green, "dark_green"}, {Colour::blue, "blue"}, {Colour::dark_green, "green"})

enum class Side { left, right };
METAPROBE_ENUM_NAMES(Side, "side", "got '{value}', expected {names_or}", {Side::left, "left"}, {Side::right, "right"})

enum class Mode { fast, slow };
METAPROBE_ENUM_NAMES(Mode, "Options.mode", "{what} is '{value}', expected one of {names}", {Mode::fast, "fast"},
                     {Mode::slow, "slow"})
}  // namespace sample

using metaprobe::enum_name;
using metaprobe::enum_name_list;
using metaprobe::enum_names;
using metaprobe::enum_values;
using metaprobe::parse_enum;
using sample::Colour;
using sample::Side;
using Catch::Matchers::Equals;

TEST_CASE("names and values come from the one table", "[common][enum]") {
  SECTION("the first entry of a value is its name, later ones are aliases") {
    REQUIRE(enum_name(Colour::dark_green) == "dark_green");
    REQUIRE(parse_enum<Colour>("green") == Colour::dark_green);
    REQUIRE(parse_enum<Colour>("dark_green") == Colour::dark_green);
    REQUIRE(enum_names<Colour>() == std::vector<std::string>{"red", "dark_green", "blue"});
    REQUIRE(enum_name_list<Colour>() == "red, dark_green, blue, green");
  }
  SECTION("enum_values lists each value once, in table order") {
    constexpr auto sides = enum_values<Side>();
    STATIC_REQUIRE(sides.size() == 2);
    STATIC_REQUIRE(sides[0] == Side::left);
    STATIC_REQUIRE(sides[1] == Side::right);
  }
  SECTION("every name round-trips") {
    for (const auto& n : enum_names<Colour>()) REQUIRE(enum_name(parse_enum<Colour>(n)) == n);
  }
}

TEST_CASE("a bad name is an InvalidArgument naming the field, the value and the valid names", "[common][enum]") {
  REQUIRE_THROWS_AS(parse_enum<Colour>("purple"), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(parse_enum<Colour>("purple"),
                      Equals("colour: unknown value 'purple', expected one of red, dark_green, blue, green"));
  SECTION("the caller may name the field") {
    REQUIRE_THROWS_WITH(parse_enum<Colour>("", "options.colour"),
                        Equals("options.colour: unknown value '', expected one of red, dark_green, blue, green"));
  }
  SECTION("the {names_or} form") {
    REQUIRE_THROWS_WITH(parse_enum<Side>("up"), Equals("side: got 'up', expected 'left' or 'right'"));
  }
  SECTION("a template that places the field with {what} is the whole message") {
    REQUIRE_THROWS_WITH(parse_enum<sample::Mode>("x"), Equals("Options.mode is 'x', expected one of fast, slow"));
    REQUIRE_THROWS_WITH(parse_enum<sample::Mode>("x", "options.mode"),
                        Equals("options.mode is 'x', expected one of fast, slow"));
  }
  SECTION("the given text is never read as a placeholder") {
    REQUIRE_THROWS_WITH(parse_enum<sample::Mode>("{names}"), Equals("Options.mode is '{names}', expected one of fast, slow"));
  }
  SECTION("names are case-sensitive") {
    REQUIRE_THROWS_AS(parse_enum<Side>("Left"), metaprobe::InvalidArgument);
  }
  SECTION("a value outside the enumerators has no name") {
    REQUIRE_THROWS_WITH(enum_name(static_cast<Colour>(7)), Equals("colour: invalid enum value 7"));
  }
}

TEST_CASE("the JSON form is the canonical name and is strict", "[common][enum]") {
  nlohmann::json j = Colour::dark_green;
  REQUIRE(j == "dark_green");
  REQUIRE(nlohmann::json("green").get<Colour>() == Colour::dark_green);
  REQUIRE(nlohmann::json{{"c", Side::right}}.dump() == R"({"c":"right"})");
  SECTION("a string outside the table is an error, not the first enumerator") {
    REQUIRE_THROWS_AS(nlohmann::json("purple").get<Colour>(), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(nlohmann::json("purple").get<Colour>(), Catch::Contains("colour: unknown value 'purple'"));
  }
  SECTION("a non-string is an error naming its JSON type") {
    REQUIRE_THROWS_WITH(nlohmann::json(0).get<Colour>(),
                        Equals("colour: got JSON number 0, expected one of red, dark_green, blue, green"));
    REQUIRE_THROWS_AS(nlohmann::json(nullptr).get<Side>(), metaprobe::InvalidArgument);
  }
}
