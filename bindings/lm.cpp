// Python bindings of the lm module: metaprobe._core.lm (use metaprobe.lm, which wraps it).
// Python callables (rewards, progress callbacks) are called back with the GIL re-acquired; the training and
// generation loops themselves run with the GIL released.
#include <metaprobe/error.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/lm/generate.hpp>
#include <metaprobe/lm/tokenizer.hpp>
#include <metaprobe/lm/train.hpp>
#include <metaprobe/lm/transformer.hpp>

#include <optional>

#include "binding.hpp"
#include "options.hpp"

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::lm;

// Wraps a Python on_step callable (or None) as the C++ callback of a trainer: the record goes to Python as a dict
// of the step's fields, with the GIL re-acquired; a falsy return value other than None stops training.
template <class Step>
std::function<bool(const Step&)> step_callback(const py::object& on_step) {
  if (on_step.is_none()) return {};
  // on_step outlives the call; the callback touches it only with the GIL held.
  return [&on_step](const Step& s) {
    py::gil_scoped_acquire gil;
    py::object r = on_step(options_dict(s));
    return r.is_none() || r.cast<bool>();
  };
}

// The steps of a training result as a list of dicts.
template <class Step>
py::list step_dicts(const std::vector<Step>& steps) {
  py::list out;
  for (const auto& s : steps) out.append(options_dict(s));
  return out;
}

}  // namespace

void bind_lm(py::module_& m) {
  auto lm = m.def_submodule("lm", "Tiny character-level language models (use metaprobe.lm rather than this module)");

  py::class_<CharTokenizer>(lm, "CharTokenizer", "The fixed character vocabulary (PAD=0, BOS=1, EOS=2, UNK=3).")
      .def(py::init<>())
      .def_property_readonly("vocab_size", &CharTokenizer::vocab_size)
      .def("encode", &CharTokenizer::encode, py::arg("text"), py::arg("add_bos") = false, py::arg("add_eos") = false)
      .def("decode", py::overload_cast<const std::vector<int64_t>&, bool>(&CharTokenizer::decode, py::const_),
           py::arg("ids"), py::arg("skip_special") = true)
      .def(
          "encode_batch",
          [](const CharTokenizer& t, const std::vector<std::string>& texts, const std::string& side, bool add_bos,
             bool add_eos) {
            TokenBatch b = t.encode_batch(texts, parse_padding_side(side), add_bos, add_eos);
            return py::make_tuple(b.ids, b.attention_mask);
          },
          py::arg("texts"), py::arg("padding_side") = "right", py::arg("add_bos") = true, py::arg("add_eos") = false,
          "(ids, attention_mask), int64 [B, T] each");

  py::class_<TransformerConfig>(lm, "TransformerConfig", "Shape of a TinyTransformer; `seed` fixes the initial weights.")
      .def(py::init([](int64_t vocab_size, int64_t d_model, int64_t n_layers, int64_t n_heads, int64_t d_ff,
                       int64_t max_len, double rope_theta, double norm_eps, uint64_t seed) {
             TransformerConfig c;
             c.vocab_size = vocab_size;
             c.d_model = d_model;
             c.n_layers = n_layers;
             c.n_heads = n_heads;
             c.d_ff = d_ff;
             c.max_len = max_len;
             c.rope_theta = rope_theta;
             c.norm_eps = norm_eps;
             c.seed = seed;
             return c;
           }),
           py::kw_only(), py::arg("vocab_size") = 100, py::arg("d_model") = 128, py::arg("n_layers") = 2,
           py::arg("n_heads") = 4, py::arg("d_ff") = 384, py::arg("max_len") = 512, py::arg("rope_theta") = 10000.0,
           py::arg("norm_eps") = 1e-5, py::arg("seed") = 0)
      .def_readwrite("vocab_size", &TransformerConfig::vocab_size)
      .def_readwrite("d_model", &TransformerConfig::d_model)
      .def_readwrite("n_layers", &TransformerConfig::n_layers)
      .def_readwrite("n_heads", &TransformerConfig::n_heads)
      .def_readwrite("d_ff", &TransformerConfig::d_ff)
      .def_readwrite("max_len", &TransformerConfig::max_len)
      .def_readwrite("rope_theta", &TransformerConfig::rope_theta)
      .def_readwrite("norm_eps", &TransformerConfig::norm_eps)
      .def_readwrite("seed", &TransformerConfig::seed)
      .def("validate", &TransformerConfig::validate)
      .def("to_json", &TransformerConfig::to_json)
      .def_static("from_json", &TransformerConfig::from_json, py::arg("json"))
      .def("__eq__", &TransformerConfig::operator==)
      .def("__repr__", [](const TransformerConfig& c) { return "TransformerConfig(" + c.to_json() + ")"; });

  py::class_<Generation>(lm, "Generation", "One completion with its emitted token ids and their log-probs.")
      .def_readonly("completion", &Generation::completion)
      .def_readonly("token_ids", &Generation::token_ids)
      .def_readonly("logprobs", &Generation::logprobs)
      .def_readonly("finish_reason", &Generation::finish_reason)
      .def_readonly("prompt_tokens", &Generation::prompt_tokens)
      .def("__repr__", [](const Generation& g) {
        return "Generation(completion=" + py::repr(py::str(g.completion)).cast<std::string>() +
               ", finish_reason='" + g.finish_reason + "', tokens=" + std::to_string(g.token_ids.size()) + ")";
      });

  py::class_<TinyTransformer, std::shared_ptr<TinyTransformer>>(lm, "TinyTransformer",
                                                                "A small Llama-layout causal decoder (float32, CPU).")
      .def(py::init([](const TransformerConfig& c) { return std::make_shared<TinyTransformer>(c); }),
           py::arg("config"))
      .def_property_readonly("config", &TinyTransformer::config)
      .def(
          "forward",
          [](const TinyTransformer& t, const at::Tensor& ids, const std::optional<at::Tensor>& mask) {
            return t.forward(ids, mask ? *mask : at::Tensor());
          },
          py::arg("ids"), py::arg("attention_mask") = py::none(), py::call_guard<py::gil_scoped_release>())
      .def("named_parameters", &TinyTransformer::named_parameters, "(name, tensor) pairs sharing storage")
      .def("num_parameters", &TinyTransformer::num_parameters)
      .def("clone", [](const TinyTransformer& t) { return std::make_shared<TinyTransformer>(t.clone()); })
      .def(
          "load_parameters",
          [](TinyTransformer& t, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
            t.load_parameters(io::MemorySource(tensors));
          },
          py::arg("tensors"))
      .def(
          "save", [](const TinyTransformer& t, const std::string& path) { save(t, path); }, py::arg("path"),
          py::call_guard<py::gil_scoped_release>())
      .def_static(
          "load", [](const std::string& path) { return std::make_shared<TinyTransformer>(load(path)); },
          py::arg("path"), py::call_guard<py::gil_scoped_release>());

  lm.attr("CONFIG_METADATA_KEY") = kConfigMetadataKey;
  lm.attr("PADDING_SIDES") = enum_names_tuple<PaddingSide>();

  bind_options<OptimizerOptions>(lm, "OptimizerOptions",
                                  "AdamW and its schedule: linear warm-up over `warmup` steps, then cosine decay "
                                  "from lr to lr * min_lr_ratio.")
      .def("validate", [](const OptimizerOptions& o) { validate(o); }, "InvalidArgumentError naming a bad field.");
  bind_options<SftOptions>(lm, "SftOptions", "Options of sft_train (docs/lm.md, \"SFT\").")
      .def("validate", [](const SftOptions& o) { validate(o); }, "InvalidArgumentError naming a bad field.");
  bind_options<GrpoOptions>(lm, "GrpoOptions", "Options of grpo_train (docs/lm.md, \"GRPO\").")
      .def("validate", [](const GrpoOptions& o) { validate(o); }, "InvalidArgumentError naming a bad field.");
  bind_options<GenerateOptions>(lm, "GenerateOptions", "Options of generate (docs/lm.md, \"Generation\").")
      .def("validate", [](const GenerateOptions& o) { validate(o); }, "InvalidArgumentError naming a bad field.");

  lm.def(
      "generate",
      [](const TinyTransformer& model, const std::vector<std::string>& prompts, const GenerateOptions& options) {
        return generate(model, CharTokenizer{}, prompts, options);
      },
      py::arg("model"), py::arg("prompts"), py::arg("options"), py::call_guard<py::gil_scoped_release>(),
      "Completes each prompt (BOS prepended): one Generation per prompt.");

  lm.def(
      "sft_train",
      [](TinyTransformer& model, const std::vector<std::pair<std::string, std::string>>& examples,
         const SftOptions& options, const py::object& on_step) {
        std::vector<SftExample> ex;
        ex.reserve(examples.size());
        for (const auto& [p, c] : examples) ex.push_back({p, c});
        const SftCallback cb = step_callback<SftStep>(on_step);
        SftResult result;
        {
          py::gil_scoped_release release;
          result = sft_train(model, ex, options, cb);
        }
        return step_dicts(result.steps);
      },
      py::arg("model"), py::arg("examples"), py::arg("options"), py::arg("on_step") = py::none(),
      "Trains in place on (prompt, completion) pairs; returns the step records (dicts of SftStep's fields).");

  lm.def(
      "grpo_train",
      [](TinyTransformer& model, const std::vector<std::string>& prompts, const py::object& reward_fn,
         const GrpoOptions& options, const py::object& on_step) {
        if (!PyCallable_Check(reward_fn.ptr())) {
          throw InvalidArgument("reward_fn: expected a callable (completion: str, prompt_index: int) -> float, got " +
                                py::repr(reward_fn).cast<std::string>());
        }
        RewardFn reward = [&reward_fn](const std::string& completion, int64_t index) {
          py::gil_scoped_acquire gil;
          py::object r = reward_fn(completion, index);
          try {
            return r.cast<double>();
          } catch (const py::cast_error&) {
            throw InvalidArgument("reward_fn: returned " + py::repr(r).cast<std::string>() +
                                  ", expected a float");
          }
        };
        const GrpoCallback cb = step_callback<GrpoStep>(on_step);
        GrpoResult result;
        {
          py::gil_scoped_release release;
          result = grpo_train(model, prompts, reward, options, cb);
        }
        return step_dicts(result.steps);
      },
      py::arg("model"), py::arg("prompts"), py::arg("reward_fn"), py::arg("options"),
      py::arg("on_step") = py::none(),
      "Trains in place with GRPO; returns the step records (dicts of GrpoStep's fields).");
}

}  // namespace metaprobe::bindings
