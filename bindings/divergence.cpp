// Bindings of the divergence engine and its vocabulary-sharded form. Tensors cross without copies; the
// computation runs with the GIL released. python/metaprobe/divergence.py wraps these in a pythonic API.
#include <metaprobe/divergence/divergence.hpp>
#include <metaprobe/divergence/sharded.hpp>

#include "binding.hpp"
#include "options.hpp"

namespace metaprobe::bindings {
namespace {

py::dict to_dict(const DivergenceResult& r) {
  py::dict d;
  for (Metric m : kAllMetrics) {
    if (r[m].defined()) d[py::str(std::string(to_string(m)))] = r[m];
  }
  d["count"] = r.count;
  return d;
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

  // The vocabulary-sharded form (metaprobe.distributed.divergence): the per-shard statistics travel as two bound
  // records, the options as one DivergenceOptions, as in the unsharded call.
  bind_options<sharded::LocalMaxima>(m, "ShardMaxima",
                                     "Phase-1 statistics of one vocabulary shard (metaprobe/divergence/sharded.hpp): "
                                     "max, sumexp (float64 [N, 2]), argmax (int64 [N, 2]), bad (float64 [N, 2]).");
  bind_options<sharded::Globals>(m, "ShardGlobals",
                                 "Global per-position statistics after the reductions: max, sumexp (float64 [N, 2]), "
                                 "argmax (int64 [N, 2]), values (float64 [N, 3]), bad (float64 [N, 2]).");
  m.def("shard_local_maxima", &sharded::local_maxima, "p"_a, "q"_a, "vocab_start"_a, "options"_a,
        py::call_guard<py::gil_scoped_release>(),
        "Phase 1 on one vocabulary shard (options.temperature): a ShardMaxima; MAX its max and bad over the shards.");
  m.def("shard_rescale", &sharded::rescale, "local"_a, "global_max"_a, py::call_guard<py::gil_scoped_release>(),
        "Local sums rescaled to the global maxima (SUM them) and argmax candidates (MIN them).");
  m.def("shard_value_indices", &sharded::value_indices, "global_argmax"_a, "options"_a, "rows"_a,
        py::call_guard<py::gil_scoped_release>(),
        "Global vocabulary indices [N, 3] whose logits local_values reads (options.targets, options.ignore_index).");
  m.def("shard_local_values", &sharded::local_values, "p"_a, "q"_a, "vocab_start"_a, "indices"_a,
        py::call_guard<py::gil_scoped_release>(), "Logits this shard holds at the indices (0 off-shard; SUM them).");
  m.def("shard_local_partials", &sharded::local_partials, "p"_a, "q"_a, "vocab_start"_a, "globals"_a, "options"_a,
        py::call_guard<py::gil_scoped_release>(), "Phase 2 on one shard: partial sums [N, 10] (SUM them).");
  m.def(
      "shard_combine",
      [](const sharded::Globals& globals, const at::Tensor& partials, const std::vector<std::int64_t>& lead_shape,
         std::int64_t vocab_size, const DivergenceOptions& options) {
        DivergenceResult r;
        {
          py::gil_scoped_release release;
          r = sharded::combine(globals, partials, lead_shape, vocab_size, options);
        }
        return to_dict(r);
      },
      "globals"_a, "partials"_a, "lead_shape"_a, "vocab_size"_a, "options"_a,
      "Combines the reduced shard statistics into the full-vocabulary result (options: mask, targets, reduction, "
      "base, as divergence()).");
}

}  // namespace metaprobe::bindings
