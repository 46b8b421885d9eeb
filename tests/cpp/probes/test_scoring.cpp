#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <metaprobe/error.hpp>
#include <metaprobe/probes/scoring.hpp>

using namespace metaprobe::probes;
using Catch::Contains;

namespace {

Item make_item(AnswerType type, std::string answer, double tolerance = 0.0) {
  Item it;
  it.id = "t-" + answer;
  it.answer = std::move(answer);
  it.answer_type = type;
  it.tolerance = tolerance;
  return it;
}

Item choice_item(std::vector<std::string> choices, int gold) {
  Item it;
  it.id = "mc";
  it.answer_type = AnswerType::choice;
  it.choices = std::move(choices);
  it.gold_index = gold;
  it.answer = std::string(1, static_cast<char>('A' + gold));
  return it;
}

Item list_item(std::string answer, bool ordered) {
  Item it = make_item(AnswerType::list, std::move(answer));
  it.ordered = ordered;
  return it;
}

Extraction ex(std::string_view out, AnswerType t = AnswerType::number, const std::vector<std::string>& ch = {}) {
  return extract(out, t, ch);
}

// A small deterministic generator (SplitMix64) for the randomised gold/perturbed checks.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1)); }
};

}  // namespace

TEST_CASE("each extraction convention is recognised and named", "[probes][scoring]") {
  SECTION("boxed with balanced braces") {
    auto e = ex("so we get \\boxed{\\frac{3}{4}} in the end");
    REQUIRE(e.strategy == "boxed");
    REQUIRE(e.answer == "\\frac{3}{4}");
    REQUIRE(e.found);
    REQUIRE(ex("\\boxed{\\text{Paris}}", AnswerType::string).answer == "\\text{Paris}");
    REQUIRE(ex("\\boxed{ \\{1, 2\\} }", AnswerType::list).answer == "\\{1, 2\\}");
  }
  SECTION("the last boxed wins and an unbalanced one is skipped") {
    REQUIRE(ex("first \\boxed{1}, then \\boxed{2}").answer == "2");
    REQUIRE(ex("\\boxed{7} and a cut-off \\boxed{8").answer == "7");
    REQUIRE(ex("the result is \\boxed 12$").answer == "12");
    REQUIRE(ex("\\fbox{5}").strategy == "boxed");
  }
  SECTION("GSM8K #### (the last one, like every marker)") {
    auto e = ex("Natalia sold 48/2 = 24 clips in May.\n#### 72");
    REQUIRE(e.strategy == "gsm8k");
    REQUIRE(e.answer == "72");
    REQUIRE(ex("#### 72\n#### 5").answer == "5");
    REQUIRE(ex("#### -1,234").answer == "-1234");
  }
  SECTION("the answer is x, up to the end of the sentence") {
    auto e = ex("Adding gives 12. So the answer is 42. Next we check 7.");
    REQUIRE(e.strategy == "the_answer_is");
    REQUIRE(e.answer == "42");
    REQUIRE(ex("The final answer is: -3.5 metres").answer == "-3.5");
    REQUIRE(ex("The Answer Is Paris. It is in France.", AnswerType::string).answer == "Paris");
  }
  SECTION("Answer: x, last occurrence, next line when the line is empty") {
    auto e = ex("Answer: 3\nwait\nAnswer: 9\n");
    REQUIRE(e.strategy == "answer_colon");
    REQUIRE(e.answer == "9");
    REQUIRE(ex("**Final Answer:** 12").answer == "12");
    REQUIRE(ex("Answer:\n\n   13\n").answer == "13");
    REQUIRE(ex("ANSWER : 14").answer == "14");
  }
  SECTION("a final choice letter") {
    std::vector<std::string> ch = {"red", "green", "blue", "black"};
    for (const char* out : {"I pick (C).", "C. blue", "My choice: C", "so C", "**C**", "[C]", "C)"}) {
      INFO(out);
      auto e = ex(out, AnswerType::choice, ch);
      REQUIRE(e.answer == "C");
      REQUIRE(e.found);
    }
    REQUIRE(ex("I pick (C).", AnswerType::choice, ch).strategy == "choice_letter");
    REQUIRE(ex("the answer is B", AnswerType::choice, ch).strategy == "the_answer_is");
    REQUIRE(ex("the answer is B", AnswerType::choice, ch).answer == "B");
  }
  SECTION("the option text as a fallback for choice items") {
    std::vector<std::string> ch = {"Newton", "Joule", "Watt", "Pascal"};
    auto e = ex("The SI unit of energy is the joule", AnswerType::choice, ch);
    REQUIRE(e.strategy == "choice_text");
    REQUIRE(e.answer == "Joule");
    REQUIRE(ex("The answer is watt.", AnswerType::choice, ch).answer == "Watt");
  }
  SECTION("the last number as the flexible fallback") {
    auto e = ex("First 3 apples, then 5, finally 17 apples");
    REQUIRE(e.strategy == "last_number");
    REQUIRE(e.answer == "17");
  }
  SECTION("the last line for string and list items") {
    auto e = ex("thinking...\n  cat  \n", AnswerType::string);
    REQUIRE(e.strategy == "last_line");
    REQUIRE(e.answer == "cat");
  }
  SECTION("none when nothing is found") {
    for (const char* out : {"", "   \n\t", "no digits here", "x2 and H2O and log10", "日本語のテキスト"}) {
      INFO(out);
      auto e = ex(out);
      REQUIRE(e.strategy == "none");
      REQUIRE_FALSE(e.found);
      REQUIRE(e.answer.empty());
    }
    REQUIRE(ex("", AnswerType::string).strategy == "none");
    REQUIRE(ex("", AnswerType::choice, {"a", "b"}).strategy == "none");
  }
}

TEST_CASE("the marker that comes last wins, whatever its kind", "[probes][scoring]") {
  REQUIRE(ex("the answer is 3. Answer: 4\n#### 2\n\\boxed{1} and 5").strategy == "boxed");
  REQUIRE(ex("\\boxed{1}, the answer is 3. Answer: 4\n#### 2\n and 5").strategy == "gsm8k");
  REQUIRE(ex("#### 2\n\\boxed{1} the answer is 3. Answer: 4\n and 5").answer == "4");
  REQUIRE(ex("Answer: 4\n\\boxed{1} so the answer is 3.\n and 5").answer == "3");
  REQUIRE(ex("Answer: 4\n and 5").answer == "4");
  SECTION("a strategy whose span holds no answer of the type falls through") {
    REQUIRE(ex("\\boxed{\\text{none}} so the answer is 6").strategy == "the_answer_is");
    REQUIRE(ex("The answer is below.\nAnswer: 8").strategy == "answer_colon");
    REQUIRE(ex("The answer is clear. Answer: 8").answer == "8");
    REQUIRE(ex("the answer isn't 5. Answer: 6").answer == "6");
    REQUIRE(ex("the answer is not 5, it is 6").strategy == "last_number");
  }
}

TEST_CASE("adversarial outputs", "[probes][scoring]") {
  SECTION("several numbers and negatives") {
    REQUIRE(ex("From -3 we add 10 to get -7? No: -3 + 10 = 7").answer == "7");
    REQUIRE(ex("The temperature drops to -12 degrees").answer == "-12");
    REQUIRE(ex("x = \xE2\x88\x92" "5").answer == "\xE2\x88\x92" "5");
    REQUIRE(check(make_item(AnswerType::integer, "-5"), "x = \xE2\x88\x92" "5"));
    REQUIRE(check(make_item(AnswerType::integer, "7"), "10 - 3 = 7"));
    REQUIRE(ex("- 5 apples").answer == "5");  // a markdown bullet is not a minus sign
  }
  SECTION("thousands separators") {
    REQUIRE(ex("The total is $1,234.").answer == "1234");
    REQUIRE(ex("The answer is $1,234.").answer == "1234");
    REQUIRE(check(make_item(AnswerType::integer, "1234"), "The total is $1,234."));
    REQUIRE(check(make_item(AnswerType::integer, "1234567"), "so 1,234,567 in all"));
    REQUIRE(check(make_item(AnswerType::integer, "1234"), "\\boxed{1{,}234}"));
    REQUIRE_FALSE(check(make_item(AnswerType::integer, "1234"), "values 1,23,4"));
    REQUIRE(ex("1,2,3").answer == "3");
  }
  SECTION("fractions, decimals, percentages and scientific notation") {
    Item q = make_item(AnswerType::number, "0.75");
    for (const char* out : {"3/4", "\\frac{3}{4}", "$\\dfrac{3}{4}$", "0.75", "75%", ".75", "7.5e-1",
                            "7.5 \\times 10^{-1}", "the answer is 75 percent"}) {
      INFO(out);
      REQUIRE(check(q, out));
    }
    REQUIRE_FALSE(check(q, "4/3"));
    REQUIRE_FALSE(check(q, "0.76"));
    REQUIRE(check(make_item(AnswerType::number, "3/4"), "0.75"));
    REQUIRE(check(make_item(AnswerType::number, "-0.5"), "\\frac{-1}{2}"));
    REQUIRE(check(make_item(AnswerType::number, "-0.5"), "-\\frac{1}{2}"));
    REQUIRE(check(make_item(AnswerType::number, "1500"), "1.5 \xC3\x97 10^3"));
    REQUIRE(check(make_item(AnswerType::number, "0.0015"), "1.5E-3"));
    REQUIRE(check(make_item(AnswerType::number, "50"), "50%"));
    REQUIRE(check(make_item(AnswerType::number, "0.5"), "50%"));
    REQUIRE(check(make_item(AnswerType::number, "50%"), "0.5"));
    REQUIRE(check(make_item(AnswerType::number, "50%"), "50"));
    REQUIRE_FALSE(check(make_item(AnswerType::number, "0.5"), "51%"));
    REQUIRE(ex("on 12/25/2023 we paid 3").answer == "3");
    REQUIRE(ex("12/25/2023").answer == "12");  // a date is not a fraction
  }
  SECTION("integers are exact, numbers use the item's tolerance") {
    Item i = make_item(AnswerType::integer, "42");
    REQUIRE(check(i, "42.0"));
    REQUIRE(check(i, "84/2"));
    REQUIRE(check(i, "4.2e1"));
    REQUIRE_FALSE(check(i, "42.000001"));
    REQUIRE_FALSE(check(i, "41"));
    Item n = make_item(AnswerType::number, "9.81", 0.01);
    REQUIRE(check(n, "9.9"));            // |9.9 − 9.81| = 0.09 ≤ 0.01·9.81
    REQUIRE_FALSE(check(n, "9.92"));     // 0.11 > 0.0981
    Item small = make_item(AnswerType::number, "0.002", 0.01);
    REQUIRE(check(small, "0.011"));      // tolerance is absolute below |a| = 1
    REQUIRE_FALSE(check(small, "0.013"));
    Item big = make_item(AnswerType::integer, "123456789012345678901234567890");
    REQUIRE(check(big, "123,456,789,012,345,678,901,234,567,890"));
    REQUIRE_FALSE(check(big, "123456789012345678901234567891"));
  }
  SECTION("a letter inside a word is not a choice") {
    std::vector<std::string> ch = {"up", "down", "left", "right"};
    REQUIRE(ex("BAD CABBAGE", AnswerType::choice, ch).strategy == "none");
    REQUIRE(ex("A ball rolls down the hill and stops", AnswerType::choice, ch).answer == "down");
    REQUIRE(ex("It's D-day", AnswerType::choice, ch).strategy == "none");
    REQUIRE(ex("the U.S. team", AnswerType::choice, ch).strategy == "none");
    REQUIRE(ex("Option E.", AnswerType::choice, ch).strategy == "none");  // only A–D exist
  }
  SECTION("unicode text around answers") {
    REQUIRE(ex("Die Lösung ist: Answer: 12 €").answer == "12");
    REQUIRE(check(make_item(AnswerType::string, "Zürich"), "Answer: ZÜRICH."));
    REQUIRE(check(make_item(AnswerType::string, "Mr. Smith"), "Answer: mr. smith"));
    REQUIRE(ex("Answer: Mr. Smith", AnswerType::string).answer == "Mr. Smith");
    REQUIRE(ex("é5 and ≈7").answer == "7");
    REQUIRE(check(make_item(AnswerType::string, "café au lait"), "The answer is  café\xC2\xA0" "au lait."));
  }
}

TEST_CASE("normalisation by answer type", "[probes][scoring]") {
  SECTION("strings: case, whitespace, trailing period, LaTeX and quotes") {
    Item s = make_item(AnswerType::string, "New York");
    for (const char* got : {"new york", "  NEW   YORK. ", "\\text{New York}", "$\\mathrm{New\\ York}$", "\"New York\"",
                            "**New York**", "`new york`"}) {
      INFO(got);
      REQUIRE(answers_match(s, got));
    }
    REQUIRE_FALSE(answers_match(s, "New Yorks"));
    REQUIRE_FALSE(answers_match(s, ""));
    REQUIRE(answers_match(make_item(AnswerType::string, "O(n log n)"), "$O(n \\log n)$"));  // punctuation-free equal
    REQUIRE(answers_match(make_item(AnswerType::string, "O(n log n)"), "O(N LOG N)"));
  }
  SECTION("lists, ordered and as sets, with , ; and 'and'") {
    Item o = list_item("2, 3, 5", true);
    REQUIRE(answers_match(o, "[2, 3, 5]"));
    REQUIRE(answers_match(o, "2; 3; 5"));
    REQUIRE(answers_match(o, "2, 3, and 5"));
    REQUIRE(answers_match(o, "2, 3 and 5."));
    REQUIRE(answers_match(o, "\\{2,3,5\\}"));
    REQUIRE_FALSE(answers_match(o, "3, 2, 5"));
    REQUIRE_FALSE(answers_match(o, "2, 3"));
    REQUIRE_FALSE(answers_match(o, "2, 3, 5, 7"));
    Item u = list_item("apple, Banana, cherry", false);
    REQUIRE(answers_match(u, "cherry and apple and banana"));
    REQUIRE_FALSE(answers_match(u, "cherry, apple, apple"));
    REQUIRE(answers_match(list_item("0.5, 2", true), "1/2, 2.0"));
  }
  SECTION("choices: the letter or the option text") {
    Item c = choice_item({"Newton", "Joule", "Watt"}, 1);
    for (const char* got : {"B", "(B)", "b", "B.", "B) Joule", "Joule", "joule.", "Option B"}) {
      INFO(got);
      REQUIRE(answers_match(c, got));
    }
    for (const char* got : {"A", "(C)", "Watt", "Newton", "D", ""}) {
      INFO(got);
      REQUIRE_FALSE(answers_match(c, got));
    }
    Item letter_only;
    letter_only.id = "hand";
    letter_only.answer_type = AnswerType::choice;
    letter_only.answer = "C";
    REQUIRE(check(letter_only, "I'd go with (C)."));
    REQUIRE_FALSE(check(letter_only, "I'd go with (B)."));
  }
}

TEST_CASE("gold answers always score right and perturbed ones always wrong", "[probes][scoring]") {
  SplitMix rng{12345};
  const char* templates[] = {"The answer is %s.", "\\boxed{%s}", "Working...\n#### %s", "Answer: %s",
                             "We get %s", "**Final Answer:** $%s$", "so the final answer is %s"};
  auto fill = [](const char* tpl, const std::string& v) {
    std::string s = tpl;
    return s.replace(s.find("%s"), 2, v);
  };
  for (int k = 0; k < 300; ++k) {
    int64_t a = rng.range(-100000, 100000);
    Item it = make_item(AnswerType::integer, std::to_string(a));
    it.reference_solution = "Some steps with 3 and 7.\nAnswer: " + it.answer;
    for (const char* tpl : templates) {
      INFO(fill(tpl, it.answer));
      REQUIRE(check(it, fill(tpl, it.answer)));
      REQUIRE_FALSE(check(it, fill(tpl, std::to_string(a + 1))));
      REQUIRE_FALSE(check(it, fill(tpl, std::to_string(a - 1))));
    }
    REQUIRE(check(it, it.reference_solution));
    // Decimals with a tolerance: the gold passes, an answer off by 10× the tolerance fails.
    double x = static_cast<double>(rng.range(-99999, 99999)) / 1000.0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", x);
    Item n = make_item(AnswerType::number, buf, 1e-4);
    std::snprintf(buf, sizeof buf, "%.6f", x + 1e-3 * std::max(1.0, std::fabs(x)));
    for (const char* tpl : templates) {
      REQUIRE(check(n, fill(tpl, n.answer)));
      REQUIRE_FALSE(check(n, fill(tpl, buf)));
    }
  }
  // Choices: every other letter is wrong.
  std::vector<std::string> ch = {"alpha", "beta", "gamma", "delta", "epsilon"};
  for (int g = 0; g < 5; ++g) {
    Item c = choice_item(ch, g);
    for (int o = 0; o < 5; ++o) {
      std::string letter(1, static_cast<char>('A' + o));
      REQUIRE(check(c, "Answer: " + letter) == (o == g));
      REQUIRE(check(c, "I choose (" + letter + ")") == (o == g));
      REQUIRE(check(c, "The answer is " + ch[static_cast<std::size_t>(o)] + ".") == (o == g));
    }
  }
  // Lists: a wrong element or a swap (when ordered) is wrong.
  Item l = list_item("4, 8, 15, 16, 23, 42", true);
  REQUIRE(check(l, "Answer: 4, 8, 15, 16, 23, 42"));
  REQUIRE_FALSE(check(l, "Answer: 4, 8, 15, 16, 23, 43"));
  REQUIRE_FALSE(check(l, "Answer: 8, 4, 15, 16, 23, 42"));
  l.ordered = false;
  REQUIRE(check(l, "Answer: 8, 4, 15, 16, 23, 42"));
  REQUIRE_FALSE(check(l, "Answer: 8, 4, 15, 16, 23, 23"));
}

TEST_CASE("Wilson intervals match the float64 closed form", "[probes][scoring]") {
  const double z = 1.959963984540054;
  // The textbook form (2np + z² ± z·sqrt(z² + 4np(1−p))) / (2(n + z²)), written differently on purpose.
  auto ref = [&](int64_t c, int64_t n, double& lo, double& hi) {
    double p = double(c) / double(n), nn = double(n);
    double root = z * std::sqrt(z * z + 4 * nn * p * (1 - p));
    lo = (2 * nn * p + z * z - root) / (2 * (nn + z * z));
    hi = (2 * nn * p + z * z + root) / (2 * (nn + z * z));
  };
  for (int64_t n : {1, 2, 7, 10, 50, 333, 10000}) {
    for (int64_t c : {int64_t(0), int64_t(1), n / 3, n / 2, n - 1, n}) {
      if (c < 0 || c > n) continue;
      Accuracy a = wilson(c, n);
      double lo, hi;
      ref(c, n, lo, hi);
      INFO(c << "/" << n);
      REQUIRE(a.n == n);
      REQUIRE(a.correct == c);
      REQUIRE(a.acc == Approx(double(c) / double(n)).margin(1e-15));
      REQUIRE(a.lo == Approx(std::max(0.0, lo)).margin(1e-12));
      REQUIRE(a.hi == Approx(std::min(1.0, hi)).margin(1e-12));
      REQUIRE(a.lo <= a.acc);
      REQUIRE(a.acc <= a.hi);
    }
  }
  SECTION("published values") {
    Accuracy a = wilson(5, 10);  // 0.2366, 0.7634
    REQUIRE(a.lo == Approx(0.236593).margin(1e-6));
    REQUIRE(a.hi == Approx(0.763407).margin(1e-6));
    Accuracy b = wilson(0, 10);  // [0, 0.2775]
    REQUIRE(b.lo == 0.0);
    REQUIRE(b.hi == Approx(0.277533).margin(1e-6));
    Accuracy e = wilson(0, 0);
    REQUIRE(e.lo == 0.0);
    REQUIRE(e.hi == 1.0);
  }
  SECTION("invalid counts and z are errors naming the values") {
    REQUIRE_THROWS_AS(wilson(3, 2), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(wilson(3, 2), Contains("correct = 3") && Contains("n = 2") && Contains("0 <= correct <= n"));
    REQUIRE_THROWS_WITH(wilson(-1, 2), Contains("correct = -1"));
    REQUIRE_THROWS_WITH(wilson(1, 2, 0.0), Contains("z = 0") && Contains("> 0"));
    REQUIRE_THROWS_WITH(wilson(1, 2, NAN), Contains("z = nan"));
  }
}

TEST_CASE("score aggregates per cell, skill and domain", "[probes][scoring]") {
  std::vector<Item> items;
  std::vector<std::string> outputs;
  auto add = [&](Skill s, Domain d, const std::string& answer, const std::string& out) {
    Item it = make_item(AnswerType::integer, answer);
    it.id = "i" + std::to_string(items.size());
    it.skill = s;
    it.domain = d;
    items.push_back(it);
    outputs.push_back(out);
  };
  add(Skill::calculation, Domain::math, "1", "Answer: 1");
  add(Skill::calculation, Domain::math, "2", "Answer: 3");
  add(Skill::calculation, Domain::physics, "3", "\\boxed{3}");
  add(Skill::simulation, Domain::math, "4", "nothing");
  add(Skill::simulation, Domain::math, "5", "so 5");
  Scores s = score(items, outputs);
  REQUIRE(s.items.size() == 5);
  REQUIRE(s.items[0].id == "i0");
  REQUIRE(s.items[0].correct);
  REQUIRE(s.items[1].extracted == "3");
  REQUIRE_FALSE(s.items[1].correct);
  REQUIRE(s.items[2].strategy == "boxed");
  REQUIRE(s.items[3].strategy == "none");
  REQUIRE(s.items[4].strategy == "last_number");
  REQUIRE(s.items[4].cell == Cell{Skill::simulation, Domain::math});
  REQUIRE(s.by_cell.size() == 3);
  REQUIRE(s.by_cell.at({Skill::calculation, Domain::math}).correct == 1);
  REQUIRE(s.by_cell.at({Skill::calculation, Domain::math}).n == 2);
  REQUIRE(s.by_cell.at({Skill::simulation, Domain::math}).acc == 0.5);
  REQUIRE(s.by_skill.at(Skill::calculation).correct == 2);
  REQUIRE(s.by_skill.at(Skill::calculation).n == 3);
  REQUIRE(s.by_domain.at(Domain::math).n == 4);
  REQUIRE(s.by_domain.at(Domain::math).correct == 2);
  REQUIRE(s.by_domain.count(Domain::coding) == 0);
  REQUIRE(s.overall.correct == 3);
  REQUIRE(s.overall.lo == Approx(wilson(3, 5).lo));
  SECTION("misaligned outputs and broken items are errors") {
    outputs.pop_back();
    REQUIRE_THROWS_AS(score(items, outputs), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(score(items, outputs), Contains("4 entries for 5 items"));
    REQUIRE_THROWS_WITH(score(std::vector<const Item*>{nullptr}, std::vector<std::string_view>{"x"}),
                        Contains("items[0] is null"));
  }
  SECTION("an empty batch") {
    Scores e = score(std::vector<Item>{}, std::vector<std::string>{});
    REQUIRE(e.items.empty());
    REQUIRE(e.by_cell.empty());
    REQUIRE(e.overall.n == 0);
  }
}

TEST_CASE("bad items are errors that name the item and the value", "[probes][scoring]") {
  REQUIRE_THROWS_AS(check(make_item(AnswerType::integer, "forty-two"), "42"), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(check(make_item(AnswerType::integer, "forty-two"), "42"),
                      Contains("'t-forty-two'") && Contains("'forty-two'") && Contains("not a number"));
  REQUIRE_THROWS_WITH(check(make_item(AnswerType::integer, "2.5"), "2.5"), Contains("'2.5'") && Contains("not an integer"));
  REQUIRE_THROWS_WITH(check(make_item(AnswerType::number, "1", -0.1), "1"), Contains("tolerance -0.1"));
  REQUIRE_THROWS_WITH(check(make_item(AnswerType::number, "1", NAN), ""), Contains("tolerance nan"));
  REQUIRE_THROWS_WITH(check(make_item(AnswerType::number, "abc"), "nothing"), Contains("not a number"));
  Item c = choice_item({"a", "b"}, 1);
  c.gold_index = 2;
  REQUIRE_THROWS_AS(check(c, "B"), metaprobe::InvalidArgument);
  REQUIRE_THROWS_WITH(check(c, "B"), Contains("gold_index 2") && Contains("2 choices"));
}

TEST_CASE("multiple choice from log-likelihoods as lm-evaluation-harness", "[probes][scoring]") {
  // lls = [-4, -6]: acc picks 0; per character (len 2, len 6) -2 < -1, so acc_norm picks 1.
  Item c = choice_item({"ab", "abcdef"}, 1);
  ChoiceScore s = score_choice(c, {-4.0, -6.0});
  REQUIRE(s.pred == 0);
  REQUIRE(s.pred_norm == 1);
  REQUIRE_FALSE(s.acc);
  REQUIRE(s.acc_norm);
  SECTION("ties go to the first option, like np.argmax") {
    ChoiceScore t = score_choice(choice_item({"xy", "zw", "uv"}, 1), {-2.0, -2.0, -3.0});
    REQUIRE(t.pred == 0);
    REQUIRE(t.pred_norm == 0);
    ChoiceScore inf = score_choice(choice_item({"x", "y"}, 1), {-INFINITY, -INFINITY});
    REQUIRE(inf.pred == 0);
  }
  SECTION("length is counted in code points, not bytes") {
    // "ééé" is 3 code points (6 bytes); "abcd" is 4. -3/3 = -1 < -3.6/4 = -0.9: acc_norm picks 1.
    // Dividing by bytes would give -0.5 for option 0 and pick it instead.
    ChoiceScore u = score_choice(choice_item({"\xC3\xA9\xC3\xA9\xC3\xA9", "abcd"}, 1), {-3.0, -3.6});
    REQUIRE(u.pred_norm == 1);
    REQUIRE(utf8_length("\xC3\xA9\xC3\xA9\xC3\xA9") == 3);
    REQUIRE(utf8_length("日本") == 2);
  }
  SECTION("errors name the item and the value") {
    REQUIRE_THROWS_WITH(score_choice(c, {-1.0}), Contains("1 entries") && Contains("2 choices"));
    REQUIRE_THROWS_WITH(score_choice(c, {-1.0, NAN}), Contains("loglikelihoods[1]") && Contains("nan"));
    Item e = choice_item({"ok", ""}, 0);
    REQUIRE_THROWS_WITH(score_choice(e, {-1.0, -2.0}), Contains("choices[1]") && Contains("empty"));
    Item g = choice_item({"a", "b"}, 0);
    g.gold_index = -1;
    REQUIRE_THROWS_WITH(score_choice(g, {-1.0, -2.0}), Contains("gold_index -1"));
    Item none = make_item(AnswerType::choice, "A");
    REQUIRE_THROWS_AS(score_choice(none, {}), metaprobe::InvalidArgument);
  }
}

TEST_CASE("random and degenerate outputs never crash and stay fast", "[probes][scoring]") {
  const std::vector<std::string> tokens = {"\\boxed{", "}", "{", "\\frac", "####", "answer", " is ", ":", "Answer:",
                                           "(", ")", "B", "a", ".", ",", "-", "\xE2\x88\x92", "1", "23", "4,567",
                                           "%", "e", "10^", "/", "$", "\\", "\n", " ", "\xC3\xA9", "\xFF", "*", "and"};
  SplitMix rng{99};
  Item num = make_item(AnswerType::number, "23", 0.01);
  Item lst = list_item("1, 23", false);
  Item mc = choice_item({"one", "23", "B b"}, 1);
  Item str = make_item(AnswerType::string, "answer is");
  for (int k = 0; k < 3000; ++k) {
    std::string out;
    int len = static_cast<int>(rng.range(0, 60));
    for (int t = 0; t < len; ++t) out += tokens[static_cast<std::size_t>(rng.range(0, int64_t(tokens.size()) - 1))];
    for (const Item* it : {&num, &lst, &mc, &str}) {
      Extraction e = extract(out, it->answer_type, it->choices);
      REQUIRE(e.found == (e.strategy != "none" && e.strategy != "reasoning_unclosed"));
      REQUIRE((e.found || e.answer.empty()));
      REQUIRE_NOTHROW(check(*it, out));
    }
  }
  SECTION("a marker repeated over one long line stays linear") {
    std::string degenerate;
    for (int k = 0; k < 20000; ++k) degenerate += "the answer is \\boxed{\\frac{{ answer: ";
    auto t0 = std::chrono::steady_clock::now();
    for (const Item* it : {&num, &lst, &mc, &str}) (void)check(*it, degenerate);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(s < 2.0);
  }
}

TEST_CASE("regressions of issue 11: reasoning blocks, restated answers, letters in option text", "[probes][scoring]") {
  Item twelve = make_item(AnswerType::integer, "12");
  SECTION("what a model considers while thinking is not its answer") {
    for (const char* out : {"<think>Let me see, 5 + 5, so the answer is 10... no wait.</think>\nAnswer: 12",
                            "<think>maybe \\boxed{10}? Recount: 4 + 8.</think>\nThat gives 4 + 8.\nAnswer: 12",
                            "I think the answer is 10, but recounting the last row gives two more.\nAnswer: 12",
                            "<think>#### 10</think>The total is 12."}) {
      INFO(out);
      REQUIRE(ex(out).answer == "12");
      REQUIRE(check(twelve, out));
    }
    std::vector<std::string> ch = {"red", "green", "blue", "black"};
    auto e = ex("<think>The answer is A, or maybe not.</think>\nAnswer: C", AnswerType::choice, ch);
    REQUIRE(e.answer == "C");
    REQUIRE(e.strategy == "answer_colon");
  }
  SECTION("a reasoning block cut off before it closes gives no answer") {
    for (const char* out : {"<think>4 + 8 = 12, so the answer is 12", "<think>\\boxed{12}",
                            "<thinking>Answer: 12", "Sure.<think>first 12 then"}) {
      INFO(out);
      auto e = ex(out);
      REQUIRE(e.strategy == "reasoning_unclosed");
      REQUIRE_FALSE(e.found);
      REQUIRE_FALSE(check(twelve, out));
    }
    // A chat template may open the block in the prompt: a lone close tag ends the reasoning.
    REQUIRE(ex("so maybe 10 ... recount</think>\n\nThe answer is 12.").answer == "12");
    // An empty answer after the block: nothing to read.
    REQUIRE(ex("<think>the answer is 12</think>").strategy == "none");
    ExtractOptions none;
    none.reasoning_tags.clear();
    REQUIRE(extract("<think>the answer is 12", AnswerType::integer, {}, none).answer == "12");
    ExtractOptions custom;
    custom.reasoning_tags = {{"[REASON]", "[/REASON]"}};
    REQUIRE(extract("[REASON]answer: 10[/REASON] Answer: 12", AnswerType::integer, {}, custom).answer == "12");
  }
  SECTION("letters are never read out of an option's own text") {
    std::vector<std::string> units = {"the volt (V)", "the ampere (A)", "the ohm", "the watt (W)"};
    Item amp = choice_item(units, 1);
    REQUIRE(check(amp, "Answer: the ampere (A)"));
    REQUIRE(ex("Answer: the ampere (A)", AnswerType::choice, units).answer == "the ampere (A)");
    std::vector<std::string> caps = {"Ottawa", "Washington, D.C.", "Canberra", "Wellington"};
    Item dc = choice_item(caps, 1);
    REQUIRE(check(dc, "Answer: Washington, D.C."));
    REQUIRE(check(dc, "The capital of the United States is Washington, D.C."));
    REQUIRE_FALSE(check(choice_item(caps, 2), "Answer: Washington, D.C."));
  }
  SECTION("option text in other spacing, boxed text letters") {
    std::vector<std::string> ch = {"b/a", "-b/a", "a/b", "-a/b"};
    REQUIRE(check(choice_item(ch, 1), "Answer: \xE2\x88\x92" "b / a"));
    REQUIRE(check(choice_item(ch, 1), "The sum of the roots is **-b/a**."));
    std::vector<std::string> cx = {"O(V^2)", "O(V+E)", "O(E log V)", "O(1)"};
    REQUIRE(check(choice_item(cx, 1), "BFS visits each vertex and edge once, so it runs in O(V + E) time."));
    REQUIRE(check(choice_item(cx, 1), "Answer: $O(V + E)$"));
    REQUIRE(check(choice_item(cx, 1), "\\boxed{\\text{B}}"));
    REQUIRE(check(choice_item(cx, 1), "Final answer: $\\boxed{\\mathrm{B}}$"));
    REQUIRE_FALSE(check(choice_item(cx, 2), "\\boxed{\\text{B}}"));
  }
  SECTION("the answer inside a sentence; trailing asides; number words") {
    REQUIRE(check(make_item(AnswerType::string, "kitchen"), "The book is in the kitchen."));
    REQUIRE_FALSE(check(make_item(AnswerType::string, "kitchen"), "The book is not in the kitchen."));
    REQUIRE(check(make_item(AnswerType::integer, "5400"), "The rope is **5,400 metres** (5.4 km) long."));
    REQUIRE(check(make_item(AnswerType::integer, "5400"), "Total: 5,400 metres (5.4 km)"));
    REQUIRE(check(make_item(AnswerType::integer, "2"),
                  "The error is on **Line 2** \xE2\x80\x94 3 \xC3\x97 $4.10 is $12.30, not $13.20; with that fixed the "
                  "total of $162.55 checks out."));
    REQUIRE(check(make_item(AnswerType::integer, "1"), "Looking at the passage, only **one** word starts with q."));
    REQUIRE(check(make_item(AnswerType::integer, "3"), "Answer: three"));
    REQUIRE(check(make_item(AnswerType::list, "7, 10, 13"), "So the values are **7, 10, 13**."));
    Item xy = list_item("-1, -3", true);
    REQUIRE(check(xy, "Solving both equations: x = -1, y = -3"));
    REQUIRE(check(xy, "Answer: x = -1, y = -3"));
  }
}

TEST_CASE("normalisation of numbers, lists and strings (issue 11)", "[probes][scoring]") {
  SECTION("numbers with currency, separators, units, LaTeX, restatements") {
    REQUIRE(check(make_item(AnswerType::integer, "1234"), "The answer is $1,234."));
    REQUIRE(check(make_item(AnswerType::number, "0.75"), "Answer: \\frac{3}{4}"));
    REQUIRE(check(make_item(AnswerType::number, "0.75"), "Answer: $\\dfrac{3}{4}$ km"));
    REQUIRE(check(make_item(AnswerType::number, "0.75", 0.001), "Answer: 750 m (0.75 km)"));
    REQUIRE_FALSE(check(make_item(AnswerType::number, "0.75", 0.001), "Answer: 750 m (0.8 km)"));
    REQUIRE(check(make_item(AnswerType::number, "16.15"), "The total cost is **$16.15**."));
    REQUIRE(check(make_item(AnswerType::number, "12.5"), "Answer: 12.5%"));
    REQUIRE(check(make_item(AnswerType::number, "1500"), "Answer: 1.5e3 J"));
    REQUIRE(check(make_item(AnswerType::integer, "12"), "Answer: 3 \xC3\x97 4 = 12"));
    REQUIRE(check(make_item(AnswerType::integer, "12"), "Answer: 12 (since 3 \xC3\x97 4 = 12)"));
    REQUIRE(check(make_item(AnswerType::integer, "42"), "The answer is therefore 42."));
    REQUIRE_FALSE(check(make_item(AnswerType::integer, "5"), "Answer: 12\nThe answer is derived from 5 apples."));
  }
  SECTION("lists: names, lines, 'and', factorisations") {
    REQUIRE(check(list_item("3, -2", true), "Answer: x = 3, y = -2"));
    REQUIRE(check(list_item("-2, 5", true), "Answer: \xCE\xBB = -2, 5"));
    REQUIRE(check(list_item("-2, 5", true), "The eigenvalues are \xCE\xBB\xE2\x82\x81 = -2 and \xCE\xBB\xE2\x82\x82 = 5."));
    Item f = list_item("2, 2, 3", true);
    for (const char* out : {"Answer: 2 \xC3\x97 2 \xC3\x97 3", "Answer: 2^2, 3", "Answer: 2^2 \xC3\x97 3",
                            "12 = 2^2 \\cdot 3", "Answer: 2 * 2 * 3", "Answer:\n2\n2\n3", "Answer: 2, 2 and 3",
                            "The prime factors are:\n- 2\n- 2\n- 3"}) {
      INFO(out);
      REQUIRE(check(f, out));
    }
    REQUIRE_FALSE(check(f, "Answer: 2 \xC3\x97 3"));
    REQUIRE_FALSE(check(f, "Answer: 2^3, 3"));
  }
  SECTION("strings: articles, prepositions, punctuation, Unicode") {
    REQUIRE(check(make_item(AnswerType::string, "kitchen"), "Answer: the kitchen"));
    REQUIRE(check(make_item(AnswerType::string, "kitchen"), "Answer: in the kitchen."));
    REQUIRE(check(make_item(AnswerType::string, "teacher"), "Answer: a teacher"));
    REQUIRE(check(make_item(AnswerType::string, "Washington, D.C."), "Answer: Washington DC"));
    REQUIRE(check(make_item(AnswerType::string, "rock-and-roll"), "Answer: rock and roll"));
    REQUIRE_FALSE(check(make_item(AnswerType::string, "kitchen"), "Answer: the garden"));
  }
  SECTION("aliases are accepted answers") {
    Item m = choice_item({"kg m/s", "J", "W", "Pa"}, 0);
    m.aliases = {"N s", "newton second"};
    REQUIRE(check(m, "Answer: N s"));
    REQUIRE(check(m, "The unit of momentum is the newton second."));
    REQUIRE_FALSE(check(m, "Answer: J"));
    Item s = make_item(AnswerType::string, "Thales's theorem");
    s.aliases = {"inscribed angle theorem"};
    REQUIRE(check(s, "Answer: the inscribed angle theorem"));
    Item n = make_item(AnswerType::integer, "1000");
    n.aliases = {"1024"};
    REQUIRE(check(n, "Answer: 1024"));
  }
  SECTION("strategies can be restricted, unknown names are errors") {
    ExtractOptions strict;
    strict.strategies = {"gsm8k"};
    REQUIRE(extract("The answer is 5.", AnswerType::integer, {}, strict).strategy == "none");
    REQUIRE(extract("so 3\n#### 5", AnswerType::integer, {}, strict).answer == "5");
    ExtractOptions bad;
    bad.strategies = {"regex"};
    REQUIRE_THROWS_AS(extract("5", AnswerType::integer, {}, bad), metaprobe::InvalidArgument);
    REQUIRE_THROWS_WITH(extract("5", AnswerType::integer, {}, bad),
                        Contains("'regex'") && Contains("expected one of") && Contains("last_number"));
  }
}
