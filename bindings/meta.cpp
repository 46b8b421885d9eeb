// metaprobe._core.meta: the meta-probing run. Python callables become C++ logit sources, loaders and tokenizer
// functions that take the GIL only while they run; the run itself releases it.
#include <memory>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/lm/transformer.hpp>
#include <metaprobe/meta/answer.hpp>
#include <metaprobe/meta/cache.hpp>
#include <metaprobe/meta/run.hpp>

#include "binding.hpp"
#include "json_py.hpp"
#include "options.hpp"

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::meta;

// The tensor a Python callable returned; InvalidArgument naming `what` and `expected` otherwise.
at::Tensor py_tensor(const py::object& out, const char* what, const char* expected) {
  if (!THPVariable_Check(out.ptr()))
    throw InvalidArgument(std::string(what) + " returned " + std::string(py::str(py::type::of(out))) + ", expected " +
                          expected);
  return out.cast<at::Tensor>();
}

// logits(ids, mask) of a held Python callable, taking the GIL only while it runs.
FunctionSource::Fn logits_fn(std::shared_ptr<py::object> h) {
  return [h](const at::Tensor& ids, const at::Tensor& mask) {
    py::gil_scoped_acquire gil;
    return py_tensor((*h)(ids, mask), "a Python logit source", "a torch.Tensor [B, T, V]");
  };
}

std::shared_ptr<LogitSource> callable_source(py::object fn, const std::string& description) {
  return std::make_shared<FunctionSource>(logits_fn(gil_safe_hold(std::move(fn))), description);
}

// A metaprobe.backends object: callable for logits, plus generate(requests, options) and score(ids, mask, rows,
// cols) when it has them (each request a dict {prompt, seed}; each completion a dict {tokens, logprobs,
// finish_reason}); positions_processed (an int attribute) when it counts.
std::shared_ptr<LogitSource> backend_source(py::object obj, const std::string& description) {
  auto h = gil_safe_hold(obj);
  FunctionSource::Fn logits = logits_fn(h);
  CallbackSource::GenerateFn gen;
  if (py::hasattr(obj, "generate") && (!py::hasattr(obj, "can_generate") || obj.attr("can_generate").cast<bool>())) {
    gen = [h](const std::vector<GenerateRequest>& reqs, const DecodeOptions& o) {
      py::gil_scoped_acquire gil;
      py::list rl;
      for (const auto& r : reqs) {
        py::dict d;
        d["prompt"] = r.prompt;
        d["seed"] = r.seed;
        rl.append(d);
      }
      py::object out = h->attr("generate")(rl, options_dict(o));
      std::vector<Completion> res;
      for (py::handle c : out) {
        Completion x;
        x.tokens = c["tokens"].cast<std::vector<int64_t>>();
        x.logprobs = c["logprobs"].cast<std::vector<double>>();
        x.finish_reason = c["finish_reason"].cast<std::string>();
        if (x.logprobs.size() != x.tokens.size())
          throw InvalidArgument("generate: a completion has " + std::to_string(x.tokens.size()) + " tokens and " +
                                std::to_string(x.logprobs.size()) + " log-probabilities, expected one per token");
        res.push_back(std::move(x));
      }
      return res;
    };
  }
  CallbackSource::ScoreFn score;
  if (py::hasattr(obj, "score")) {
    score = [h](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rows, const at::Tensor& cols) {
      py::gil_scoped_acquire gil;
      return py_tensor(h->attr("score")(ids, mask, rows, cols), "a backend's score()", "a torch.Tensor [N, V]");
    };
  }
  CallbackSource::CountFn count;
  if (py::hasattr(obj, "positions_processed")) {
    count = [h]() {
      py::gil_scoped_acquire gil;
      return h->attr("positions_processed").cast<int64_t>();
    };
  }
  return std::make_shared<CallbackSource>(std::move(logits), std::move(gen), std::move(score), std::move(count), description);
}

// A Python object as a logit source: a TinyTransformer (native, KV-cached), a backend object or a callable.
std::shared_ptr<LogitSource> object_source(py::object obj, const std::string& description) {
  if (py::isinstance<lm::TinyTransformer>(obj))
    return std::make_shared<TinyLMSource>(obj.cast<std::shared_ptr<lm::TinyTransformer>>(), "tiny_lm");
  if (py::hasattr(obj, "generate") || py::hasattr(obj, "score")) return backend_source(obj, description);
  return callable_source(obj, description);
}

std::shared_ptr<LogitSource> stage_source(const py::dict& spec, const std::string& name) {
  auto get = [&](const char* key) -> py::object {
    return spec.contains(key) ? py::reinterpret_borrow<py::object>(spec[key]) : py::none();
  };
  if (!get("source").is_none())
    return object_source(get("source"), get("description").is_none() ? "python" : std::string(py::str(get("description"))));
  if (!get("torchscript").is_none()) {
    auto ts = std::make_shared<TorchScriptSource>(get("torchscript").cast<std::string>());
    if (!get("weights").is_none()) ts->load_safetensors(get("weights").cast<std::string>());
    return ts;
  }
  if (!get("tiny_lm").is_none()) {
    const std::string path = get("tiny_lm").cast<std::string>();
    return std::make_shared<TinyLMSource>(std::make_shared<lm::TinyTransformer>(lm::load(path)), "tiny_lm:" + path);
  }
  return nullptr;
}

// (item_id, sample, text, token ids or None, finish_reason, origin) per answer, as metaprobe.responses
// Responses._rows() gives them (the types are checked there).
std::vector<Response> responses_from_rows(const py::handle& rows) {
  using Row = std::tuple<std::string, int64_t, std::string, std::optional<std::vector<int64_t>>, std::string, std::string>;
  std::vector<Response> rs;
  for (const auto& row : rows.cast<std::vector<Row>>())
    rs.push_back({std::get<0>(row), std::get<1>(row), std::get<2>(row), std::get<3>(row), std::get<4>(row), std::get<5>(row)});
  return rs;
}

Stage make_stage(const py::dict& spec) {
  Stage s;
  s.name = spec["name"].cast<std::string>();
  if (spec.contains("arm")) s.arm = spec["arm"].cast<std::string>();
  if (spec.contains("step")) s.step = spec["step"].cast<int64_t>();
  s.source = stage_source(spec, s.name);
  if (spec.contains("loader") && !spec["loader"].is_none()) {
    auto h = gil_safe_hold(py::reinterpret_borrow<py::object>(spec["loader"]));
    const std::string name = s.name;
    s.loader = [h, name]() -> std::shared_ptr<LogitSource> {
      py::gil_scoped_acquire gil;
      py::object src = (*h)();
      if (!PyCallable_Check(src.ptr()) && !py::isinstance<lm::TinyTransformer>(src))
        throw InvalidArgument("stage '" + name + "': the loader returned " + std::string(py::str(py::type::of(src))) +
                              ", expected a callable logit source");
      return object_source(src, "python (loaded)");
    };
  }
  if (spec.contains("checkpoint") && !spec["checkpoint"].is_none()) s.checkpoint_path = spec["checkpoint"].cast<std::string>();
  if (spec.contains("state_dict") && !spec["state_dict"].is_none())
    s.checkpoint = std::make_shared<io::MemorySource>(
        spec["state_dict"].cast<std::vector<std::pair<std::string, at::Tensor>>>());
  if (spec.contains("responses") && !spec["responses"].is_none()) s.responses = responses_from_rows(spec["responses"]);
  if (spec.contains("reference_cache") && !spec["reference_cache"].is_none())
    s.reference_cache = spec["reference_cache"].cast<std::string>();
  return s;
}

std::shared_ptr<const Tokenizer> make_tokenizer(py::object tok) {
  if (py::isinstance<py::str>(tok)) {
    if (tok.cast<std::string>() == "char") return std::make_shared<CharTokenizerAdapter>();
    throw InvalidArgument("tokenizer is '" + tok.cast<std::string>() + "', expected \"char\" or a tokenizer object");
  }
  auto h = gil_safe_hold(tok);
  auto attr_id = [&](const char* name) -> int64_t {
    py::object v = tok.attr(name);
    return v.is_none() ? -1 : v.cast<int64_t>();
  };
  auto t = std::make_shared<FunctionTokenizer>(
      [h](const std::string& text) {
        py::gil_scoped_acquire gil;
        return h->attr("encode")(text).cast<std::vector<int64_t>>();
      },
      [h](const std::vector<int64_t>& ids) {
        py::gil_scoped_acquire gil;
        return h->attr("decode")(ids).cast<std::string>();
      },
      attr_id("pad_id"), attr_id("bos_id"), attr_id("eos_id"));
  if (py::hasattr(tok, "eos_ids") && !tok.attr("eos_ids").is_none())
    t->set_eos_ids(tok.attr("eos_ids").cast<std::vector<int64_t>>());
  if (py::hasattr(tok, "chat_prompt") && py::hasattr(tok, "has_chat_template") &&
      tok.attr("has_chat_template").cast<bool>()) {
    t->set_chat([h](const std::string& system, const std::string& user) {
      py::gil_scoped_acquire gil;
      return h->attr("chat_prompt")(system, user).cast<std::vector<int64_t>>();
    });
  }
  return t;
}

// Run options from the dict metaprobe.meta builds (InvalidArgumentError naming the field).
RunOptions options_from_py(const py::dict& options) { return options_from_json(py_to_json(options, "options")); }

// A report document given as a dict, parsed strictly (FormatError naming the field).
Report report_from_py(py::handle doc, const std::string& what) {
  if (!PyDict_Check(doc.ptr()))
    throw FormatError("report: " + what + " is a " + std::string(py::str(py::type::of(doc))) + ", expected a dict");
  return report_from_json(py_to_json(doc, what));
}

py::object run_py(const std::vector<probes::Item>& items, const py::list& stages, py::object tokenizer,
                  const py::dict& options_dict, py::object progress, const std::string& out_dir, bool resume,
                  const std::vector<std::string>& only) {
  RunOptions options = options_from_py(options_dict);
  if (!progress.is_none()) {
    auto h = gil_safe_hold(progress);
    options.progress = [h](const RunProgress& p) {
      py::gil_scoped_acquire gil;
      (*h)(p.phase, p.stage, p.done, p.total);
    };
  }
  Run run(items, make_tokenizer(tokenizer), options);
  for (const auto& s : stages) run.add_stage(make_stage(s.cast<py::dict>()));
  Report report;
  {
    py::gil_scoped_release release;
    report = run.run(RunPlan{out_dir, resume, only});
  }
  return json_to_py(to_json(report));
}

}  // namespace

void bind_meta(py::module_& m) {
  auto mm = m.def_submodule("meta", "The meta-probing run (use metaprobe.MetaProbe rather than this module)");
  mm.def("run", &run_py, py::arg("items"), py::arg("stages"), py::arg("tokenizer"), py::arg("options"),
         py::arg("progress") = py::none(), py::arg("out_dir") = "", py::arg("resume") = false,
         py::arg("only") = std::vector<std::string>{},
         "Runs the meta-probe; stages are dicts (name, arm, step, source | loader | torchscript [+ weights] | tiny_lm, "
         "checkpoint | state_dict, responses); options a dict (keys of options_to_json). out_dir: the run directory "
         "(stages stored as they finish); resume: continue the run there; only: probe only these stages (and the "
         "reference). Returns the report document as a dict.");
  mm.def(
      "parse_report",
      [](const std::string& text) {
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::parse_error& e) {
          throw FormatError(std::string("report: not JSON: ") + e.what());
        }
        return json_to_py(to_json(report_from_json(j)));
      },
      py::arg("text"), "Parses report JSON text once, strictly (FormatError on a bad one); returns the document as a dict.");
  mm.def(
      "validate_report", [](py::handle doc) { return json_to_py(to_json(report_from_py(doc, "document"))); },
      py::arg("doc"), "Checks a report document (a dict) strictly (FormatError on a bad one) and returns it completed.");
  mm.def(
      "default_options", []() { return json_to_py(options_to_json(RunOptions{})); },
      "The default RunOptions as a dict.");
  mm.def(
      "check_options", [](const py::dict& options) { return json_to_py(options_to_json(options_from_py(options))); },
      py::arg("options"), "Validates an options dict (InvalidArgumentError naming the field) and returns it completed.");
  mm.def(
      "save_topk_caches",
      [](const std::string& path, const py::list& entries, double temperature) {
        std::vector<SequenceCache> caches;
        for (const auto& e : entries) {
          auto t = e.cast<py::tuple>();
          const at::Tensor entropy = t[4].is_none() ? at::Tensor() : t[4].cast<at::Tensor>();
          caches.push_back({t[0].cast<std::string>(), t[1].cast<int64_t>(),
                            topk_cache_from(t[2].cast<at::Tensor>(), t[3].cast<at::Tensor>(), entropy)});
        }
        save_topk_caches(caches, temperature, path);
      },
      py::arg("path"), py::arg("entries"), py::arg("temperature"),
      "Writes a top-k reference cache file from (item_id, sample, indices [n, k], logprobs [n, k], entropy [n] | None).");
  mm.def(
      "load_topk_caches",
      [](const std::string& path) {
        double temperature = 0;
        py::list out;
        for (const auto& c : load_topk_caches(path, &temperature))
          out.append(py::make_tuple(c.item_id, c.sample, c.rows.indices, c.rows.logprobs, c.rows.tail, c.rows.entropy,
                                    c.rows.argmax));
        return py::make_tuple(out, temperature);
      },
      py::arg("path"), "Reads a top-k cache file: ([(item_id, sample, indices, logprobs, tail, entropy, argmax)], temperature).");
  mm.def(
      "merge_reports",
      [](const py::list& parts, const std::vector<std::string>& order) {
        std::vector<Report> rs;
        for (size_t k = 0; k < parts.size(); ++k) rs.push_back(report_from_py(parts[k], "parts[" + std::to_string(k) + "]"));
        return json_to_py(to_json(merge_reports(rs, order)));
      },
      py::arg("parts"), py::arg("order") = std::vector<std::string>{},
      "Joins report documents (dicts) of one run's parts into the whole run's report (a dict).");
  mm.def(
      "check_stage_responses",
      [](const std::vector<probes::Item>& items, const py::dict& options, const std::string& name,
         const py::list& rows) {
        Run run(items, std::make_shared<CharTokenizerAdapter>(), options_from_py(options));
        Stage s;
        s.name = name;
        s.responses = responses_from_rows(rows);
        run.add_stage(std::move(s));
      },
      py::arg("items"), py::arg("options"), py::arg("name"), py::arg("rows"),
      "Checks a stage's responses as Run::add_stage does (InvalidArgumentError naming the entry).");
  py::class_<AnswerText>(mm, "AnswerText", "What reading a completion gives (metaprobe.meta.read_answer).")
      .def_readonly("output", &AnswerText::output, "the completion cut at the first stop string")
      .def_readonly("answer", &AnswerText::answer, "the text scored: after the closing think tag")
      .def_readonly("closed", &AnswerText::closed, "False: a reasoning block never closed (no answer)")
      .def_readonly("think_end", &AnswerText::think_end, "bytes of output up to the end of the closing tag")
      .def("__repr__", [](const AnswerText& a) {
        return "AnswerText(answer=" + std::string(py::repr(py::str(a.answer))) + ", closed=" + (a.closed ? "True" : "False") + ")";
      });
  mm.def("read_answer", &read_answer, py::arg("text"), py::arg("stop"), py::arg("think_open"), py::arg("think_close"),
         "Reads the answer out of a completion as the run does (stop strings, reasoning blocks).");
  py::dict fields;
  for (const auto& [record, names] : report_record_fields()) fields[py::str(record)] = py::tuple(py::cast(names));
  mm.attr("RECORD_FIELDS") = fields;
  mm.attr("OPTION_FIELDS") = py::tuple(py::cast(option_paths()));  // metaprobe.meta.MetaOptions derives from it
  mm.attr("SCHEMA") = kReportSchema;
  mm.attr("SCHEMA_VERSION") = kReportSchemaVersion;
}

}  // namespace metaprobe::bindings
