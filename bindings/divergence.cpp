// Bindings of the divergence engine and its vocabulary-sharded form. Tensors cross without copies; the
// computation runs with the GIL released. python/metaprobe/divergence.py wraps these in a pythonic API.
#include <optional>

#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/divergence/sharded.hpp>

#include "binding.hpp"
#include "options.hpp"

namespace metaprobe::bindings {
namespace {

DivergenceOptions make_options(std::optional<at::Tensor> mask, std::optional<at::Tensor> targets, double temperature,
                               std::optional<std::vector<std::string>> metrics, const std::string& reduction,
                               const std::string& base, double beta, std::int64_t ignore_index,
                               const std::string& backend) {
  DivergenceOptions o;
  o.temperature = temperature;
  if (metrics) o.metrics = MetricSet::parse(*metrics);
  o.reduction = parse_reduction(reduction);
  o.base = parse_log_base(base);
  o.beta = beta;
  if (mask) o.mask = *mask;
  if (targets) o.targets = *targets;
  o.ignore_index = ignore_index;
  o.backend = parse_backend(backend);
  return o;
}

py::dict to_dict(const DivergenceResult& r) {
  py::dict d;
  for (Metric m : kAllMetrics) {
    if (r[m].defined()) d[py::str(std::string(to_string(m)))] = r[m];
  }
  d["count"] = r.count;
  return d;
}

sharded::Globals make_globals(const at::Tensor& max, const at::Tensor& sumexp, const at::Tensor& argmax,
                              const at::Tensor& values, const at::Tensor& bad) {
  return sharded::Globals{max, sumexp, argmax, values, bad};
}

}  // namespace

/// DivergenceOptions::metrics: None (every metric), one name, or a list of names; read back as the list of names.
template <>
struct OptionField<MetricSet> {
  static MetricSet from_py(py::handle h, const std::string& where) {
    if (h.is_none()) return MetricSet::all();
    if (py::isinstance<py::str>(h)) return MetricSet::parse({h.cast<std::string>()});
    try {
      return MetricSet::parse(h.cast<std::vector<std::string>>());
    } catch (const py::cast_error&) {
      throw InvalidArgument(where + ": got " + py_repr(h) + ", expected None, a metric name or a list of names");
    }
  }
  static py::object to_py(MetricSet set) {
    py::list names;
    for (Metric m : kAllMetrics) {
      if (set.has(m)) names.append(py::str(std::string(to_string(m))));
    }
    return std::move(names);
  }
};

void bind_divergence(py::module_& m) {
  using namespace pybind11::literals;
  py::list names;
  for (const auto& n : enum_names<Metric>()) names.append(n);
  m.attr("DIVERGENCE_METRICS") = names;

  bind_options<DivergenceOptions>(m, "DivergenceOptions",
                                  "Options of divergence(): metrics (names; None = all), reduction, base, "
                                  "temperature, beta, mask, targets, ignore_index, backend (docs/divergence.md).");

  m.def(
      "divergence",
      [](const at::Tensor& p, const at::Tensor& q, const DivergenceOptions& options) {
        DivergenceResult r;
        {
          py::gil_scoped_release release;
          r = divergence(p, q, options);
        }
        return to_dict(r);
      },
      "p"_a, "q"_a, "options"_a, "Per-position divergence metrics; returns {metric: float64 tensor, 'count': int}.");

  m.def(
      "shard_local_maxima",
      [](const at::Tensor& p, const at::Tensor& q, std::int64_t vocab_start, double temperature) {
        DivergenceOptions o;
        o.temperature = temperature;
        sharded::LocalMaxima r;
        {
          py::gil_scoped_release release;
          r = sharded::local_maxima(p, q, vocab_start, o);
        }
        return py::make_tuple(r.max, r.sumexp, r.argmax, r.bad);
      },
      "p"_a, "q"_a, "vocab_start"_a, "temperature"_a = 1.0,
      "Phase 1 on one vocabulary shard: (max [N,2], sumexp [N,2], argmax [N,2], bad [N,2]).");
  m.def(
      "shard_rescale",
      [](const at::Tensor& max, const at::Tensor& sumexp, const at::Tensor& argmax, const at::Tensor& bad,
         const at::Tensor& global_max) {
        std::pair<at::Tensor, at::Tensor> r;
        {
          py::gil_scoped_release release;
          r = sharded::rescale(sharded::LocalMaxima{max, sumexp, argmax, bad}, global_max);
        }
        return py::make_tuple(r.first, r.second);
      },
      "max"_a, "sumexp"_a, "argmax"_a, "bad"_a, "global_max"_a,
      "Local sums rescaled to the global maxima (SUM them) and argmax candidates (MIN them).");
  m.def(
      "shard_value_indices",
      [](const at::Tensor& global_argmax, std::optional<at::Tensor> targets, std::int64_t ignore_index,
         std::int64_t rows) {
        DivergenceOptions o;
        if (targets) o.targets = *targets;
        o.ignore_index = ignore_index;
        return sharded::value_indices(global_argmax, o, rows);
      },
      "global_argmax"_a, "targets"_a, "ignore_index"_a, "rows"_a, py::call_guard<py::gil_scoped_release>(),
      "Global vocabulary indices [N,3] whose logits local_values reads.");
  m.def("shard_local_values", &sharded::local_values, "p"_a, "q"_a, "vocab_start"_a, "indices"_a,
        py::call_guard<py::gil_scoped_release>(), "Logits this shard holds at the indices (0 off-shard; SUM them).");
  m.def(
      "shard_local_partials",
      [](const at::Tensor& p, const at::Tensor& q, std::int64_t vocab_start, const at::Tensor& max,
         const at::Tensor& sumexp, const at::Tensor& argmax, const at::Tensor& values, const at::Tensor& bad,
         std::optional<std::vector<std::string>> metrics, double temperature, double beta, bool has_targets) {
        DivergenceOptions o = make_options(std::nullopt, std::nullopt, temperature, metrics, "none", "e", beta, -100, "auto");
        if (has_targets) o.targets = values;  // only its presence matters to the option checks
        return sharded::local_partials(p, q, vocab_start, make_globals(max, sumexp, argmax, values, bad), o);
      },
      "p"_a, "q"_a, "vocab_start"_a, "max"_a, "sumexp"_a, "argmax"_a, "values"_a, "bad"_a, "metrics"_a,
      "temperature"_a, "beta"_a, "has_targets"_a, py::call_guard<py::gil_scoped_release>(),
      "Phase 2 on one shard: partial sums [N, 10] (SUM them).");
  m.def(
      "shard_combine",
      [](const at::Tensor& max, const at::Tensor& sumexp, const at::Tensor& argmax, const at::Tensor& values,
         const at::Tensor& bad, const at::Tensor& partials, const std::vector<std::int64_t>& lead_shape,
         std::int64_t vocab_size, std::optional<at::Tensor> mask, std::optional<at::Tensor> targets,
         double temperature, std::optional<std::vector<std::string>> metrics, const std::string& reduction,
         const std::string& base, double beta, std::int64_t ignore_index) {
        DivergenceResult r;
        {
          py::gil_scoped_release release;
          r = sharded::combine(make_globals(max, sumexp, argmax, values, bad), partials, lead_shape, vocab_size,
                               make_options(mask, targets, temperature, metrics, reduction, base, beta, ignore_index,
                                            "auto"));
        }
        return to_dict(r);
      },
      "max"_a, "sumexp"_a, "argmax"_a, "values"_a, "bad"_a, "partials"_a, "lead_shape"_a, "vocab_size"_a, "mask"_a,
      "targets"_a, "temperature"_a, "metrics"_a, "reduction"_a, "base"_a, "beta"_a, "ignore_index"_a,
      "Combines the reduced shard statistics into the full-vocabulary result.");
}

}  // namespace metaprobe::bindings
