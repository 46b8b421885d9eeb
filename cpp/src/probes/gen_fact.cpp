// Fact-retrieval families: recall a canonical unit of knowledge (knowledge tables) or extract one from a
// passage.
#include <nlohmann/json.hpp>

#include "gen_common.hpp"

namespace metaprobe::probes::detail {

void gen_theorem_recall(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "math_theorems", "Which theorem states the following? {}", "The statement is ");
}

void gen_formula_recall(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "math_formulas", "Which formula gives {}?", "The formula is ");
}

void gen_si_units(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "physics_units", "What is the SI unit of {}?", "The SI unit is ");
}

void gen_physics_laws(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "physics_laws", "Which law or principle states the following? {}",
                    "This is ");
}

void gen_complexity(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "coding_complexity", "What is the time complexity of {}?",
                    "The complexity is ");
}

void gen_python_builtins(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "coding_python", "Which Python built-in or method does the following: {}?",
                    "That is ");
}

void gen_capitals(SplitMix64& rng, int d, Item& item) {
  make_table_choice(rng, d, item, "general_capitals", "What is the capital of {}?", "The capital is ");
}

void gen_passage_fact(SplitMix64& rng, int d, Item& item) {
  static const std::vector<std::string> names = {
      "Mara", "Tomas", "Ines", "Kofi", "Lena", "Ravi", "Yuki", "Omar", "Sofia", "Piotr",
      "Amara", "Jonas", "Nadia", "Felix", "Priya", "Diego", "Hana", "Emil", "Zara", "Luca",
      "Aiko", "Malik", "Elsa", "Bruno", "Leila", "Ivan", "Noor", "Oskar", "Rosa", "Sami"};
  static const std::vector<std::string> cities = {
      "Lisbon", "Oslo",   "Nairobi", "Lima",   "Hanoi",  "Dublin", "Quito", "Seville", "Krakow", "Osaka",
      "Tunis",  "Bergen", "Porto",   "Cairo",  "Denver", "Perth",  "Riga",  "Turin",   "Leeds",  "Cusco"};
  static const std::vector<std::string> jobs = {
      "baker",  "pilot",  "nurse",   "teacher",  "lawyer",   "chemist", "plumber",   "dentist",  "farmer",
      "tailor", "writer", "painter", "banker",   "jeweller", "cook",    "sailor",    "carpenter", "gardener",
      "librarian", "potter"};
  static const std::vector<std::string> pets = {"cat",     "dog",    "parrot", "rabbit", "hamster",
                                                "tortoise", "goldfish", "ferret", "canary", "lizard",
                                                "snake",   "pony",   "gerbil", "turtle", "budgie"};
  const int n = 1 + d;
  std::vector<std::string> who = names, city = cities, job = jobs, pet = pets;
  rng.shuffle(who);
  rng.shuffle(city);
  rng.shuffle(job);
  rng.shuffle(pet);
  // person i: city[i], job[i], pet[i]; values n.. are unused and serve as former cities/jobs
  const size_t target = static_cast<size_t>(rng.below(static_cast<uint64_t>(n)));
  const int attribute = static_cast<int>(rng.below(3));  // 0 city, 1 job, 2 pet
  // revisions: at difficulty 4-5 the asked fact (when not a pet) was revised, and d-4 others too
  std::vector<int> revised(static_cast<size_t>(n) * 3, 0);
  if (d >= 4 && attribute != 2) revised[target * 3 + static_cast<size_t>(attribute)] = 1;
  for (int r = 0; r < d - 4; ++r) {
    revised[static_cast<size_t>(rng.below(static_cast<uint64_t>(n))) * 3 + static_cast<size_t>(rng.below(2))] = 1;
  }
  std::vector<std::string> sentences;
  size_t next_old = static_cast<size_t>(n);
  std::string fact;
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    for (int a = 0; a < 3; ++a) {
      std::string s;
      const bool rev = revised[i * 3 + static_cast<size_t>(a)] != 0;
      if (a == 0) {
        s = rev ? who[i] + " used to live in " + city[next_old] + " but moved to " + city[i] + "."
                : who[i] + " lives in " + city[i] + ".";
      } else if (a == 1) {
        s = rev ? who[i] + " used to work as a " + job[next_old] + " but is now a " + job[i] + "."
                : who[i] + " works as a " + job[i] + ".";
      } else {
        s = who[i] + " has a pet " + pet[i] + ".";
      }
      if (rev) ++next_old;
      if (i == target && a == attribute) fact = s;
      sentences.push_back(std::move(s));
    }
  }
  rng.shuffle(sentences);
  std::string question, answer;
  if (attribute == 0) {
    question = "Where does " + who[target] + " live now?", answer = city[target];
  } else if (attribute == 1) {
    question = "What is " + who[target] + "'s job now?", answer = job[target];
  } else {
    question = "What kind of pet does " + who[target] + " have?", answer = pet[target];
  }
  item.prompt = "Read the passage and answer the question.\nPassage: " + join(sentences, " ") +
                "\nQuestion: " + question;
  item.answer = answer;
  item.answer_type = AnswerType::string;
  item.reference_solution = "The passage says: " + fact + "\nAnswer: " + answer;
  item.meta = {{"person", who[target]}, {"attribute", attribute == 0 ? "city" : attribute == 1 ? "job" : "pet"},
               {"people", n}, {"revised", revised[target * 3 + static_cast<size_t>(attribute)] != 0}};
}

}  // namespace metaprobe::probes::detail

namespace metaprobe::probes::detail {

// Closed-book free recall beside the 4-way choice families: the same tables, no options to recognise.
void gen_theorem_name(SplitMix64& rng, int d, Item& item) {
  make_table_recall(rng, d, item, "math_theorems", "Name the theorem that states the following: {}", "area");
}

void gen_unit_name(SplitMix64& rng, int d, Item& item) {
  make_table_recall(rng, d, item, "physics_units", "What is the name of the SI unit of {}?", "field");
}

void gen_builtin_name(SplitMix64& rng, int d, Item& item) {
  make_table_recall(rng, d, item, "coding_python", "Which Python built-in function or method does the following: {}?",
                    "kind");
}

void gen_capital_name(SplitMix64& rng, int d, Item& item) {
  make_table_recall(rng, d, item, "general_capitals", "What is the capital of {}?", "continent");
}

}  // namespace metaprobe::probes::detail
