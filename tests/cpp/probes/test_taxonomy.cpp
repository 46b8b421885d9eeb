#include <catch2/catch.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/taxonomy.hpp>

using namespace metaprobe::probes;

TEST_CASE("skill, domain and answer-type names round-trip", "[probes][taxonomy]") {
  for (Skill s : kAllSkills) REQUIRE(parse_skill(to_string(s)) == s);
  for (Domain d : kAllDomains) REQUIRE(parse_domain(to_string(d)) == d);
  for (AnswerType t : {AnswerType::integer, AnswerType::number, AnswerType::string, AnswerType::choice,
                       AnswerType::list})
    REQUIRE(parse_answer_type(to_string(t)) == t);
  REQUIRE(to_string(Cell{Skill::fact_retrieval, Domain::general}) == "fact_retrieval/general");
}

TEST_CASE("unknown names are errors that name the value and the valid ones", "[probes][taxonomy]") {
  REQUIRE_THROWS_WITH(parse_skill("reasoning"), Catch::Contains("'reasoning'") && Catch::Contains("diagnostic"));
  REQUIRE_THROWS_AS(parse_domain("chemistry"), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(parse_answer_type("float"), Catch::Contains("'float'"));
}
