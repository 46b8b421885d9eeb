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

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::lm;

OptimizerOptions optimizer(double lr, double weight_decay, int64_t warmup, double min_lr_ratio,
                           double max_grad_norm, double beta1, double beta2, double eps) {
  OptimizerOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.warmup = warmup;
  o.min_lr_ratio = min_lr_ratio;
  o.max_grad_norm = max_grad_norm;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.eps = eps;
  return o;
}

py::dict sft_step_dict(const SftStep& s) {
  py::dict d;
  d["step"] = s.step;
  d["loss"] = s.loss;
  d["lr"] = s.lr;
  d["grad_norm"] = s.grad_norm;
  d["tokens"] = s.tokens;
  return d;
}

py::dict grpo_step_dict(const GrpoStep& s) {
  py::dict d;
  d["step"] = s.step;
  d["mean_reward"] = s.mean_reward;
  d["reward_std"] = s.reward_std;
  d["loss"] = s.loss;
  d["kl"] = s.kl;
  d["clip_fraction"] = s.clip_fraction;
  d["mean_completion_tokens"] = s.mean_completion_tokens;
  d["zero_advantage_groups"] = s.zero_advantage_groups;
  d["lr"] = s.lr;
  d["prompt_indices"] = py::cast(s.prompt_indices);
  return d;
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

  lm.def(
      "generate",
      [](const TinyTransformer& model, const std::vector<std::string>& prompts, int64_t max_new_tokens,
         double temperature, int64_t top_k, const std::vector<std::string>& stop, bool stop_at_eos, uint64_t seed,
         int64_t batch_size) {
        GenerateOptions o;
        o.max_new_tokens = max_new_tokens;
        o.temperature = temperature;
        o.top_k = top_k;
        o.stop = stop;
        o.stop_at_eos = stop_at_eos;
        o.seed = seed;
        o.batch_size = batch_size;
        return generate(model, CharTokenizer{}, prompts, o);
      },
      py::arg("model"), py::arg("prompts"), py::arg("max_new_tokens"), py::arg("temperature"), py::arg("top_k"),
      py::arg("stop"), py::arg("stop_at_eos"), py::arg("seed"), py::arg("batch_size"),
      py::call_guard<py::gil_scoped_release>());

  lm.def(
      "sft_train",
      [](TinyTransformer& model, const std::vector<std::pair<std::string, std::string>>& examples, int64_t steps,
         int64_t batch_size, double lr, double weight_decay, int64_t warmup, double min_lr_ratio,
         double max_grad_norm, double beta1, double beta2, double eps, uint64_t seed, const std::string& loss_on,
         bool truncate, py::object on_step) {
        SftOptions o;
        o.steps = steps;
        o.batch_size = batch_size;
        o.optimizer = optimizer(lr, weight_decay, warmup, min_lr_ratio, max_grad_norm, beta1, beta2, eps);
        o.seed = seed;
        o.loss_on = parse_loss_on(loss_on);
        o.truncate = truncate;
        std::vector<SftExample> ex;
        ex.reserve(examples.size());
        for (const auto& [p, c] : examples) ex.push_back({p, c});
        SftCallback cb;
        if (!on_step.is_none()) {
          // on_step outlives the call; the callback touches it only with the GIL held.
          cb = [&on_step](const SftStep& s) {
            py::gil_scoped_acquire gil;
            py::object r = on_step(sft_step_dict(s));
            return r.is_none() || r.cast<bool>();
          };
        }
        SftResult result;
        {
          py::gil_scoped_release release;
          result = sft_train(model, ex, o, cb);
        }
        py::list steps_out;
        for (const auto& s : result.steps) steps_out.append(sft_step_dict(s));
        return steps_out;
      },
      py::arg("model"), py::arg("examples"), py::arg("steps"), py::arg("batch_size"), py::arg("lr"),
      py::arg("weight_decay"), py::arg("warmup"), py::arg("min_lr_ratio"), py::arg("max_grad_norm"),
      py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("seed"), py::arg("loss_on"), py::arg("truncate"),
      py::arg("on_step"));

  lm.def(
      "grpo_train",
      [](TinyTransformer& model, const std::vector<std::string>& prompts, py::object reward_fn, int64_t steps,
         int64_t prompts_per_step, int64_t group_size, double lr, double weight_decay, int64_t warmup,
         double min_lr_ratio, double max_grad_norm, double beta1, double beta2, double eps, double temperature,
         int64_t top_k, int64_t max_new_tokens, const std::vector<std::string>& stop, double clip_eps,
         double kl_coef, int64_t inner_steps, double adv_eps, uint64_t seed, py::object on_step) {
        GrpoOptions o;
        o.steps = steps;
        o.prompts_per_step = prompts_per_step;
        o.group_size = group_size;
        o.optimizer = optimizer(lr, weight_decay, warmup, min_lr_ratio, max_grad_norm, beta1, beta2, eps);
        o.temperature = temperature;
        o.top_k = top_k;
        o.max_new_tokens = max_new_tokens;
        o.stop = stop;
        o.clip_eps = clip_eps;
        o.kl_coef = kl_coef;
        o.inner_steps = inner_steps;
        o.adv_eps = adv_eps;
        o.seed = seed;
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
        GrpoCallback cb;
        if (!on_step.is_none()) {
          cb = [&on_step](const GrpoStep& s) {
            py::gil_scoped_acquire gil;
            py::object r = on_step(grpo_step_dict(s));
            return r.is_none() || r.cast<bool>();
          };
        }
        GrpoResult result;
        {
          py::gil_scoped_release release;
          result = grpo_train(model, prompts, reward, o, cb);
        }
        py::list steps_out;
        for (const auto& s : result.steps) steps_out.append(grpo_step_dict(s));
        return steps_out;
      },
      py::arg("model"), py::arg("prompts"), py::arg("reward_fn"), py::arg("steps"), py::arg("prompts_per_step"),
      py::arg("group_size"), py::arg("lr"), py::arg("weight_decay"), py::arg("warmup"), py::arg("min_lr_ratio"),
      py::arg("max_grad_norm"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("temperature"),
      py::arg("top_k"), py::arg("max_new_tokens"), py::arg("stop"), py::arg("clip_eps"), py::arg("kl_coef"),
      py::arg("inner_steps"), py::arg("adv_eps"), py::arg("seed"), py::arg("on_step"));
}

}  // namespace metaprobe::bindings
