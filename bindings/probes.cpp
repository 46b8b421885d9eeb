// Bindings of the probe generators, the Item schema, JSONL and prompt rendering
// (metaprobe/probes/{item,generate,suite,jsonl,prompt}.hpp). Scoring is bound in probes_score.cpp.
#include <metaprobe/error.hpp>
#include <metaprobe/probes/generate.hpp>
#include <metaprobe/probes/item.hpp>
#include <metaprobe/probes/jsonl.hpp>
#include <metaprobe/probes/prompt.hpp>
#include <metaprobe/probes/suite.hpp>

#include "binding.hpp"
#include "options.hpp"
#include "records.hpp"

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::probes;
using json = nlohmann::json;

py::object to_py(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return py::none();
    case json::value_t::boolean: return py::bool_(j.get<bool>());
    case json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case json::value_t::number_float: return py::float_(j.get<double>());
    case json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case json::value_t::array: {
      py::list out;
      for (const auto& v : j) out.append(to_py(v));
      return std::move(out);
    }
    case json::value_t::object: {
      py::dict out;
      for (auto it = j.begin(); it != j.end(); ++it) out[py::str(it.key())] = to_py(it.value());
      return std::move(out);
    }
    default: return py::none();
  }
}

json from_py(const py::handle& o, const std::string& where) {
  if (o.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(o)) return o.cast<bool>();
  if (py::isinstance<py::int_>(o)) return o.cast<int64_t>();
  if (py::isinstance<py::float_>(o)) return o.cast<double>();
  if (py::isinstance<py::str>(o)) return o.cast<std::string>();
  if (py::isinstance<py::dict>(o)) {
    json out = json::object();
    for (auto kv : o.cast<py::dict>()) {
      if (!py::isinstance<py::str>(kv.first)) {
        throw InvalidArgument(where + ": dict keys must be str, got " +
                              std::string(py::str(kv.first.get_type().attr("__name__"))));
      }
      const std::string key = kv.first.cast<std::string>();
      out[key] = from_py(kv.second, where + "." + key);
    }
    return out;
  }
  if (py::isinstance<py::list>(o) || py::isinstance<py::tuple>(o)) {
    json out = json::array();
    size_t k = 0;
    for (auto v : o) out.push_back(from_py(v, where + "[" + std::to_string(k++) + "]"));
    return out;
  }
  throw InvalidArgument(where + ": a " + std::string(py::str(o.get_type().attr("__name__"))) +
                        " is not JSON-serialisable, expected None, bool, int, float, str, list or dict");
}

json object_from_py(const py::handle& o, const char* field) {
  json j = from_py(o, field);
  if (!j.is_object()) throw InvalidArgument(std::string(field) + ": expected a dict");
  return j;
}

std::vector<Item> items_from(const py::iterable& items) {
  std::vector<Item> out;
  size_t k = 0;
  for (auto h : items) {
    if (py::isinstance<Item>(h)) {
      out.push_back(h.cast<const Item&>());
    } else if (py::isinstance<py::dict>(h)) {
      out.push_back(item_from_json(from_py(h, "items[" + std::to_string(k) + "]"), "items[" + std::to_string(k) + "]"));
    } else {
      throw InvalidArgument("items[" + std::to_string(k) + "]: got a " +
                            std::string(py::str(h.get_type().attr("__name__"))) +
                            ", expected a metaprobe Item or a dict in the item schema");
    }
    ++k;
  }
  return out;
}

}  // namespace

/// Item::meta and Item::extra: a JSON object as a dict (the converter of the Item.meta property).
template <>
struct OptionField<json> {
  static json from_py(py::handle h, const std::string& where) { return object_from_py(h, where.c_str()); }
  static py::object to_py(const json& j) { return metaprobe::bindings::to_py(j); }
};

namespace {

// The items of a Python sequence of Item objects, by pointer (no copies); another element is an InvalidArgument.
std::vector<const Item*> item_pointers(const py::sequence& items) {
  std::vector<const Item*> out;
  out.reserve(items.size());
  for (size_t k = 0; k < items.size(); ++k) {
    py::handle h = items[k];
    if (!py::isinstance<Item>(h)) {
      throw InvalidArgument("items[" + std::to_string(k) + "]: got a " +
                            py::str(h.get_type().attr("__name__")).cast<std::string>() + ", expected a metaprobe Item");
    }
    out.push_back(h.cast<const Item*>());
  }
  return out;
}

// One list per Item field (ITEM_FIELDS order), each value converted once from the C++ field.
py::dict item_columns(const std::vector<const Item*>& items) {
  py::dict columns;
  const Item probe;
  for_each_field(probe, [&](const char* key, const auto&, FieldPresence) { columns[py::str(key)] = py::list(); });
  for (const Item* it : items) {
    for_each_field(*it, [&](const char* key, const auto& v, FieldPresence) {
      columns[py::str(key)].cast<py::list>().append(OptionField<std::decay_t<decltype(v)>>::to_py(v));
    });
  }
  return columns;
}

}  // namespace

void bind_probes(py::module_& m) {
  py::enum_<AnswerType> answer_type(m, "AnswerType", "How an item's answer is compared with a model's.");
  for (AnswerType t : enum_values<AnswerType>()) answer_type.value(std::string(enum_name(t)).c_str(), t);
  m.attr("SKILLS") = enum_names_tuple<Skill>();
  m.attr("DOMAINS") = enum_names_tuple<Domain>();

  py::class_<Item>(m, "Item",
                   "One probe item (schema: docs/probes.md). skill, domain and answer_type are their JSONL names.")
      .def(py::init<>())
      .def_readwrite("id", &Item::id)
      .def_property(
          "skill", [](const Item& i) { return std::string(to_string(i.skill)); },
          [](Item& i, const std::string& s) { i.skill = parse_skill(s); })
      .def_property(
          "domain", [](const Item& i) { return std::string(to_string(i.domain)); },
          [](Item& i, const std::string& s) { i.domain = parse_domain(s); })
      .def_readwrite("family", &Item::family)
      .def_property(
          "difficulty", [](const Item& i) { return i.difficulty; },
          [](Item& i, int d) {
            if (d < 1 || d > 5) throw InvalidArgument("difficulty: got " + std::to_string(d) + ", expected 1..5");
            i.difficulty = d;
          })
      .def_readwrite("prompt", &Item::prompt)
      .def_readwrite("answer", &Item::answer)
      .def_property(
          "answer_type", [](const Item& i) { return std::string(to_string(i.answer_type)); },
          [](Item& i, const py::handle& t) {
            i.answer_type = py::isinstance<py::str>(t) ? parse_answer_type(t.cast<std::string>()) : t.cast<AnswerType>();
          })
      .def_readwrite("tolerance", &Item::tolerance)
      .def_readwrite("ordered", &Item::ordered)
      .def_readwrite("choices", &Item::choices)
      .def_readwrite("gold_index", &Item::gold_index)
      .def_readwrite("reference_solution", &Item::reference_solution)
      .def_readwrite("aliases", &Item::aliases, "Further accepted answers (choice items: texts of the gold option).")
      .def_readwrite("equivalents", &Item::equivalents, "Answers equivalent to the gold one, never offered as distractors.")
      .def_readwrite("phrasing", &Item::phrasing, "Which of the family's phrasings the prompt uses (0 = canonical).")
      .def_readwrite("noop", &Item::noop, "Whether an irrelevant NoOp sentence precedes the prompt.")
      .def_property(
          "meta", [](const Item& i) { return to_py(i.meta); },
          [](Item& i, const py::handle& d) { i.meta = object_from_py(d, "meta"); },
          "The generator's parameters (a copy: assign a new dict to change it).")
      .def_property(
          "extra", [](const Item& i) { return to_py(i.extra); },
          [](Item& i, const py::handle& d) { i.extra = object_from_py(d, "extra"); },
          "Unknown JSONL fields, kept on read/write (a copy: assign a new dict to change it).")
      .def_property_readonly("cell", [](const Item& i) {
        return py::make_tuple(std::string(to_string(i.skill)), std::string(to_string(i.domain)));
      }, "(skill, domain)")
      .def("to_dict", [](const Item& i) { return to_py(to_json(i)); }, "The item as a dict in the JSONL schema.")
      .def("to_json", [](const Item& i) { return to_jsonl_line(i); }, "The item as one compact JSONL line.")
      .def_static(
          "from_dict", [](const py::dict& d) { return item_from_json(from_py(d, "dict"), "dict"); }, py::arg("d"),
          "Parses a dict in the JSONL schema; FormatError names the missing or mistyped field.")
      .def("__eq__", [](const Item& a, const Item& b) { return to_json(a) == to_json(b); })
      .def("__repr__", [](const Item& i) {
        return "Item(id='" + i.id + "', cell='" + to_string(i.cell()) + "', family='" + i.family +
               "', difficulty=" + std::to_string(i.difficulty) + ", answer=" + std::string(py::repr(py::str(i.answer))) + ")";
      })
      .def(py::pickle([](const Item& i) { return options_dict(i); },
                      [](const py::dict& state) {
                        Item item;
                        for (auto kv : state) set_option_field(item, py::str(kv.first).cast<std::string>(), kv.second, "");
                        return item;
                      }));
  m.attr("ITEM_FIELDS") = field_names_py<Item>();
  m.def(
      "_probes_item_columns", [](const py::sequence& items) { return item_columns(item_pointers(items)); },
      py::arg("items"), "The items as {field: [value per item]} in ITEM_FIELDS order (a DataFrame's columns).");

  bind_options<SurfaceOptions>(m, "SurfaceOptions", "The surface form of generated prompts: phrasing "
                                                    "('varied' | 'canonical') and noop_share (docs/probes.md).");
  bind_options<SuiteSpec>(m, "SuiteSpec", "What probes.generate() generates: skills and domains (empty: all), "
                                          "n_per_cell, difficulties, seed, on_short_supply ('raise' | 'warn'), "
                                          "surface (docs/probes.md).");
  m.def(
      "_probes_generate",
      [](const SuiteSpec& spec) {
        std::vector<SupplyShortfall> shortfalls;
        std::vector<Item> items;
        {
          py::gil_scoped_release release;
          items = generate(spec, &shortfalls);
        }
        py::list short_list;
        for (const auto& s : shortfalls) short_list.append(record_dict(s));
        return py::make_tuple(std::move(items), short_list);
      },
      py::arg("spec"), "Generates a suite: (items, shortfalls as dicts of SupplyShortfall's fields).");
  m.def("_probes_family_capacity", &family_capacity, py::arg("family"), py::arg("difficulty"), py::arg("seed") = 0,
        py::arg("draws") = kCapacityDraws, py::call_guard<py::gil_scoped_release>(),
        "Distinct prompts of a family at a difficulty among `draws` items.");
  m.def("_probes_generate_item", &generate_item, py::arg("family"), py::arg("difficulty"), py::arg("seed"),
        py::arg("index"), py::arg("surface") = SurfaceOptions{}, "Generates one item of a family.");
  m.def("_probes_families", [] {
    py::list out;
    for (const auto& f : families()) {
      py::dict d;
      d["name"] = f.name;
      d["skill"] = std::string(to_string(f.skill));
      d["domain"] = std::string(to_string(f.domain));
      d["version"] = f.version;
      d["description"] = f.description;
      out.append(d);
    }
    return out;
  });
  m.def("_probes_item_id", &item_id, py::arg("family"), py::arg("version"), py::arg("seed"), py::arg("index"),
        py::arg("difficulty"));
  m.def(
      "_probes_read_jsonl", [](const std::string& path) { return read_jsonl(path); }, py::arg("path"),
      py::call_guard<py::gil_scoped_release>());
  m.def(
      "_probes_parse_jsonl", [](const std::string& text, const std::string& source) { return parse_jsonl(text, source); },
      py::arg("text"), py::arg("source") = "<jsonl>");
  m.def(
      "_probes_write_jsonl",
      [](const py::iterable& items, const std::string& path) {
        const auto v = items_from(items);
        py::gil_scoped_release release;
        write_jsonl(v, path);
      },
      py::arg("items"), py::arg("path"));
  m.def(
      "_probes_suite_hash", [](const py::iterable& items) { return suite_hash(items_from(items)); }, py::arg("items"));
  m.def(
      "_probes_render_all",
      [](const py::iterable& items, const std::string& template_name, int k, uint64_t seed) {
        const auto v = items_from(items);
        PromptOptions opt;
        opt.template_name = template_name;
        opt.k = k;
        opt.seed = seed;
        py::gil_scoped_release release;
        return render_all(v, opt);
      },
      py::arg("items"), py::arg("template_name"), py::arg("k"), py::arg("seed"));
  m.def(
      "_probes_render",
      [](const Item& item, const std::string& template_name, int k, uint64_t seed, const py::iterable& pool) {
        const auto v = items_from(pool);
        PromptOptions opt;
        opt.template_name = template_name;
        opt.k = k;
        opt.seed = seed;
        py::gil_scoped_release release;
        return render(item, opt, v);
      },
      py::arg("item"), py::arg("template_name"), py::arg("k"), py::arg("seed"), py::arg("pool"));
  m.def("_probes_template_names", &template_names);
}

}  // namespace metaprobe::bindings
