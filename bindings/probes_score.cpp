// Bindings of probe scoring (metaprobe/probes/scoring.hpp). The Item class itself is bound by
// bindings/probes.cpp; these functions take those Item objects by pointer, never copying them, and read
// output texts through the UTF-8 buffer Python caches in each str.
#include <metaprobe/error.hpp>
#include <metaprobe/probes/scoring.hpp>

#include <algorithm>

#include <pybind11/numpy.h>

#include "binding.hpp"

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::probes;

AnswerType answer_type_of(const py::handle& t) {
  if (py::isinstance<py::str>(t)) return parse_answer_type(t.cast<std::string>());
  try {
    return t.cast<AnswerType>();
  } catch (const py::cast_error&) {
    throw InvalidArgument("answer_type: got a " + std::string(py::str(t.get_type().attr("__name__"))) +
                          ", expected one of integer, number, string, choice, list");
  }
}

std::string_view utf8_view(const py::handle& s, std::size_t k) {
  if (!PyUnicode_Check(s.ptr()))
    throw py::type_error("outputs[" + std::to_string(k) + "] is a " +
                         std::string(py::str(s.get_type().attr("__name__"))) + ", expected str");
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return {data, static_cast<std::size_t>(size)};
}

py::dict accuracy_columns(const std::vector<std::pair<py::object, Accuracy>>& rows) {
  py::list key, n, correct, acc, lo, hi;
  for (const auto& [k, a] : rows) {
    key.append(k);
    n.append(a.n);
    correct.append(a.correct);
    acc.append(a.acc);
    lo.append(a.lo);
    hi.append(a.hi);
  }
  py::dict d;
  d["key"] = key;
  d["n"] = n;
  d["correct"] = correct;
  d["acc"] = acc;
  d["lo"] = lo;
  d["hi"] = hi;
  return d;
}

// score() over Python sequences: items and texts are borrowed (kept alive by `keep`) while the GIL is
// released, and the result comes back as columns for pandas.
// ExtractOptions from the keyword arguments of the Python functions: None keeps the default.
ExtractOptions extract_options(const py::object& reasoning_tags, const py::object& strategies) {
  ExtractOptions o;
  if (!reasoning_tags.is_none()) {
    o.reasoning_tags.clear();
    for (const auto& pair : reasoning_tags) {
      auto t = py::reinterpret_borrow<py::object>(pair);
      if (!py::isinstance<py::sequence>(t) || py::isinstance<py::str>(t) || py::len(t) != 2)
        throw InvalidArgument("reasoning_tags: got " + std::string(py::repr(t)) +
                              ", expected (open, close) pairs of strings such as ('<think>', '</think>')");
      o.reasoning_tags.emplace_back(t[py::int_(0)].cast<std::string>(), t[py::int_(1)].cast<std::string>());
    }
  }
  if (!strategies.is_none()) {
    if (py::isinstance<py::str>(strategies))
      throw InvalidArgument("strategies: got the string " + std::string(py::repr(strategies)) +
                            ", expected a list of strategy names such as ['gsm8k']");
    for (const auto& name : strategies) o.strategies.push_back(name.cast<std::string>());
    if (o.strategies.empty())
      throw InvalidArgument("strategies: got an empty list, expected None (all strategies) or strategy names");
    (void)extract("", AnswerType::integer, {}, o);  // validates the names up front
  }
  return o;
}

py::dict score_columns(const py::sequence& items, const py::sequence& outputs, const py::object& reasoning_tags,
                       const py::object& strategies) {
  const ExtractOptions options = extract_options(reasoning_tags, strategies);
  std::size_t n = py::len(items);
  std::size_t m = py::len(outputs);
  if (n != m)
    throw InvalidArgument("score: outputs has " + std::to_string(m) + " entries for " + std::to_string(n) +
                          " items, expected one output per item");
  std::vector<py::object> keep;
  keep.reserve(2 * n);
  std::vector<const Item*> ptrs;
  std::vector<std::string_view> views;
  ptrs.reserve(n);
  views.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    py::object it = items[k];
    py::object out = outputs[k];
    try {
      ptrs.push_back(it.cast<const Item*>());
    } catch (const py::cast_error&) {
      throw py::type_error("items[" + std::to_string(k) + "] is a " +
                           std::string(py::str(it.get_type().attr("__name__"))) + ", expected metaprobe Item");
    }
    views.push_back(utf8_view(out, k));
    keep.push_back(std::move(it));
    keep.push_back(std::move(out));
  }
  Scores s;
  {
    py::gil_scoped_release release;
    s = score(ptrs, views, options);
  }
  // Categorical columns travel as int8 codes into their name lists (what pandas.Categorical wants).
  const std::size_t rows = s.items.size();
  py::list id(rows), extracted(rows);
  py::array_t<int8_t> skill(static_cast<py::ssize_t>(rows)), domain(static_cast<py::ssize_t>(rows)),
      strategy(static_cast<py::ssize_t>(rows));
  py::array_t<bool> correct(static_cast<py::ssize_t>(rows));
  auto sk = skill.mutable_unchecked<1>();
  auto dm = domain.mutable_unchecked<1>();
  auto st = strategy.mutable_unchecked<1>();
  auto co = correct.mutable_unchecked<1>();
  for (std::size_t k = 0; k < rows; ++k) {
    const ItemScore& is = s.items[k];
    id[k] = py::str(is.id);
    extracted[k] = py::str(is.extracted);
    const auto i = static_cast<py::ssize_t>(k);
    sk(i) = static_cast<int8_t>(is.cell.skill);
    dm(i) = static_cast<int8_t>(is.cell.domain);
    st(i) = static_cast<int8_t>(std::find(kStrategies.begin(), kStrategies.end(), is.strategy) - kStrategies.begin());
    co(i) = is.correct;
  }
  py::list skill_names, domain_names, strategy_names;
  for (Skill v : kAllSkills) skill_names.append(py::str(std::string(to_string(v))));
  for (Domain v : kAllDomains) domain_names.append(py::str(std::string(to_string(v))));
  for (std::string_view v : kStrategies) strategy_names.append(py::str(std::string(v)));
  py::dict item_cols;
  item_cols["id"] = id;
  item_cols["skill"] = skill;
  item_cols["domain"] = domain;
  item_cols["extracted"] = extracted;
  item_cols["strategy"] = strategy;
  item_cols["correct"] = correct;
  item_cols["skill_names"] = skill_names;
  item_cols["domain_names"] = domain_names;
  item_cols["strategy_names"] = strategy_names;
  std::vector<std::pair<py::object, Accuracy>> cells, skills, domains;
  for (const auto& [c, a] : s.by_cell)
    cells.emplace_back(py::make_tuple(std::string(to_string(c.skill)), std::string(to_string(c.domain))), a);
  for (const auto& [k, a] : s.by_skill) skills.emplace_back(py::str(std::string(to_string(k))), a);
  for (const auto& [k, a] : s.by_domain) domains.emplace_back(py::str(std::string(to_string(k))), a);
  py::dict result;
  result["items"] = item_cols;
  result["by_cell"] = accuracy_columns(cells);
  result["by_skill"] = accuracy_columns(skills);
  result["by_domain"] = accuracy_columns(domains);
  result["overall"] = s.overall;
  return result;
}

}  // namespace

void bind_probes_score(py::module_& m) {
  py::class_<Extraction>(m, "Extraction", "An answer extracted from a model output and the strategy that found it.")
      .def_readonly("answer", &Extraction::answer)
      .def_readonly("strategy", &Extraction::strategy)
      .def_readonly("found", &Extraction::found)
      .def("__repr__", [](const Extraction& e) {
        return "Extraction(answer=" + std::string(py::repr(py::str(e.answer))) + ", strategy='" + e.strategy + "')";
      });

  py::class_<Accuracy>(m, "Accuracy", "An accuracy correct/n with its Wilson score interval [lo, hi].")
      .def_readonly("n", &Accuracy::n)
      .def_readonly("correct", &Accuracy::correct)
      .def_readonly("acc", &Accuracy::acc)
      .def_readonly("lo", &Accuracy::lo)
      .def_readonly("hi", &Accuracy::hi)
      .def("__repr__", [](const Accuracy& a) {
        return "Accuracy(n=" + std::to_string(a.n) + ", correct=" + std::to_string(a.correct) +
               ", acc=" + std::string(py::repr(py::float_(a.acc))) + ", lo=" + std::string(py::repr(py::float_(a.lo))) +
               ", hi=" + std::string(py::repr(py::float_(a.hi))) + ")";
      });

  py::class_<ChoiceScore>(m, "ChoiceScore",
                          "Multiple-choice prediction from log-likelihoods: pred/acc (argmax) and pred_norm/acc_norm "
                          "(argmax of ll / len(choice)), as lm-evaluation-harness.")
      .def_readonly("pred", &ChoiceScore::pred)
      .def_readonly("pred_norm", &ChoiceScore::pred_norm)
      .def_readonly("acc", &ChoiceScore::acc)
      .def_readonly("acc_norm", &ChoiceScore::acc_norm)
      .def("__repr__", [](const ChoiceScore& c) {
        return "ChoiceScore(pred=" + std::to_string(c.pred) + ", pred_norm=" + std::to_string(c.pred_norm) +
               ", acc=" + (c.acc ? "True" : "False") + ", acc_norm=" + (c.acc_norm ? "True" : "False") + ")";
      });

  m.def(
      "extract",
      [](std::string_view output, const py::object& answer_type, const std::vector<std::string>& choices,
         const py::object& reasoning_tags, const py::object& strategies) {
        AnswerType t = answer_type_of(answer_type);
        const ExtractOptions options = extract_options(reasoning_tags, strategies);
        py::gil_scoped_release release;
        return extract(output, t, choices, options);
      },
      py::arg("output"), py::arg("answer_type"), py::arg("choices") = std::vector<std::string>{},
      py::arg("reasoning_tags") = py::none(), py::arg("strategies") = py::none(),
      "Extracts the answer of a model output for an answer type ('integer', 'number', 'string', 'choice', 'list').");
  m.def(
      "answers_match", [](const Item& item, std::string_view extracted) { return answers_match(item, extracted); },
      py::arg("item"), py::arg("extracted"), py::call_guard<py::gil_scoped_release>(),
      "Whether an extracted answer equals the item's answer after normalisation by answer type.");
  m.def(
      "check",
      [](const Item& item, std::string_view output, const py::object& reasoning_tags, const py::object& strategies) {
        const ExtractOptions options = extract_options(reasoning_tags, strategies);
        py::gil_scoped_release release;
        return check(item, output, options);
      },
      py::arg("item"), py::arg("output"), py::arg("reasoning_tags") = py::none(), py::arg("strategies") = py::none(),
      "Extracts the answer of a model output and compares it with the item's answer.");
  m.def("wilson", &wilson, py::arg("correct"), py::arg("n"), py::arg("z") = 1.959963984540054,
        "Accuracy correct/n with its Wilson score interval (z = 1.96: 95%).");
  m.def("score_choice", &score_choice, py::arg("item"), py::arg("loglikelihoods"),
        py::call_guard<py::gil_scoped_release>(),
        "acc and acc_norm of one multiple-choice item from per-choice log-likelihoods (lm-evaluation-harness).");
  py::list names;
  for (std::string_view v : kStrategies) names.append(py::str(std::string(v)));
  m.attr("extraction_strategies") = py::tuple(names);
  m.def("utf8_length", &utf8_length, py::arg("text"), "Number of Unicode code points of UTF-8 text.");
  m.def("_score_columns", &score_columns, py::arg("items"), py::arg("outputs"),
        py::arg("reasoning_tags") = py::none(), py::arg("strategies") = py::none(),
        "Scores outputs aligned with items; returns columns for metaprobe.scoring.Scores (GIL released while "
        "scoring).");
}

}  // namespace metaprobe::bindings
