// Binds the params module as metaprobe._core.params: functions returning plain dicts (flat, snake_case)
// that python/metaprobe/params.py turns into DataFrames. Long calls release the GIL; the progress callback
// re-acquires it.
#include <memory>
#include <optional>
#include <string>

#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/io/tensor_source.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/params/names.hpp>
#include <metaprobe/params/report.hpp>
#include <metaprobe/params/spectral.hpp>
#include <metaprobe/params/tensor_stats.hpp>

#include "binding.hpp"
#include "options.hpp"
#include "records.hpp"

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::params;

// The flat Python row of a tensor record: the update and the name's fields unprefixed, the reference's and the
// tuned tensor's statistics (and spectra) under ref_ and tuned_, the spectral sub-records only when computed.
std::string row_prefix(const char* key) {
  const std::string k = key;
  if (k == "reference" || k == "reference_spectral") return "ref_";
  if (k == "tuned" || k == "tuned_spectral") return "tuned_";
  return "";
}

template <class Row>
py::dict row_dict(const Row& row) {
  py::dict d;
  for_each_field(row, [&](const char* key, const auto& v, FieldPresence) {
    using V = std::decay_t<decltype(v)>;
    if constexpr (is_record<V>::value) {
      constexpr bool spectral = std::is_same_v<V, SpectralStats> || std::is_same_v<V, UpdateSpectralStats>;
      if (!spectral || row.spectral_status.ok()) put_record(d, row_prefix(key), v);
    } else {
      d[py::str(key)] = field_py(v);
    }
  });
  return d;
}

// A source given from Python: a path (opened as a Checkpoint), a list of (name, tensor) pairs, or an
// already-bound TensorSource.
struct HeldSource {
  std::unique_ptr<io::TensorSource> owned;
  const io::TensorSource* ptr = nullptr;
};

HeldSource make_source(py::handle obj, const char* argument) {
  HeldSource h;
  if (py::isinstance<py::str>(obj)) {
    h.owned = std::make_unique<io::Checkpoint>(io::Checkpoint::open(py::cast<std::string>(obj)));
  } else if (py::isinstance<py::list>(obj)) {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto item : py::reinterpret_borrow<py::list>(obj)) {
      auto pair = py::reinterpret_borrow<py::tuple>(item);
      tensors.emplace_back(py::cast<std::string>(pair[0]), py::cast<at::Tensor>(pair[1]));
    }
    h.owned = std::make_unique<io::MemorySource>(std::move(tensors));
  } else {
    try {
      h.ptr = &py::cast<const io::TensorSource&>(obj);
      return h;
    } catch (const py::cast_error&) {
      throw InvalidArgument(std::string(argument) +
                            ": expected a path, a list of (name, tensor) pairs or a TensorSource, got " +
                            std::string(py::str(py::type::of(obj))));
    }
  }
  h.ptr = h.owned.get();
  return h;
}

ProgressCallback progress_callback(py::object cb) {
  if (cb.is_none()) return {};
  // The callback object is shared so that copies of the std::function need no GIL.
  auto holder = gil_safe_hold(std::move(cb));
  return [holder](const Progress& p) {
    py::gil_scoped_acquire gil;
    (*holder)(p.done, p.total, p.bytes_done, p.bytes_total, p.name);
  };
}

py::dict compare_py(py::handle reference, py::handle tuned, const CompareOptions& options, py::object progress) {
  HeldSource r = make_source(reference, "reference");
  HeldSource t = make_source(tuned, "tuned");
  CompareOptions o = options;
  o.progress = progress_callback(std::move(progress));
  auto held = std::make_shared<CompareResult>();
  CompareResult& res = *held;
  {
    py::gil_scoped_release nogil;
    res = compare_checkpoints(*r.ptr, *t.ptr, o);
    o.progress = nullptr;
  }
  py::list rows;
  for (const auto& c : res.tensors) rows.append(row_dict(c));
  py::list layers, modules, mismatches;
  for (const auto& g : res.layers) layers.append(record_dict(g));
  for (const auto& g : res.modules) modules.append(record_dict(g));
  for (const auto& m : res.shape_mismatches) {
    py::dict d;
    d["name"] = m.name;
    d["reference_shape"] = py::tuple(py::cast(m.reference_shape));
    d["tuned_shape"] = py::tuple(py::cast(m.tuned_shape));
    mismatches.append(d);
  }
  py::dict summary = record_dict(res.total);
  summary["matched"] = res.tensors.size();
  summary["only_in_reference"] = res.only_in_reference.size();
  summary["only_in_tuned"] = res.only_in_tuned.size();
  summary["shape_mismatches"] = res.shape_mismatches.size();
  summary["bytes_read"] = res.bytes_read;
  summary["largest_tensor_bytes"] = res.largest_tensor_bytes;
  py::dict out;
  out["tensors"] = rows;
  out["layers"] = layers;
  out["modules"] = modules;
  out["summary"] = summary;
  out["only_in_reference"] = py::cast(res.only_in_reference);
  out["only_in_tuned"] = py::cast(res.only_in_tuned);
  out["shape_mismatches"] = mismatches;
  out["result"] = std::move(held);  // the file forms, written on demand
  return out;
}

py::list describe_py(py::handle source, const DescribeOptions& options, py::object progress) {
  HeldSource s = make_source(source, "checkpoint");
  DescribeOptions o = options;
  o.progress = progress_callback(std::move(progress));
  std::vector<TensorDescription> rows;
  {
    py::gil_scoped_release nogil;
    rows = describe(*s.ptr, o);
    o.progress = nullptr;
  }
  py::list out;
  for (const auto& r : rows) out.append(row_dict(r));
  return out;
}

}  // namespace

void bind_params(py::module_& m) {
  py::module_ p = m.def_submodule("params", "Parameter statistics (see metaprobe.params)");
  bind_options<UpdateOptions>(p, "UpdateOptions", "Tolerances of the update-sparsity rules: atol, eta.");
  bind_options<SpectralOptions>(p, "SpectralOptions",
                                "Options of the spectral statistics: exact or top-k singular values, the power-law "
                                "and MP fits, WeightWatcher's randomised ESD (docs/params.md).");
  bind_options<CompareOptions>(p, "CompareOptions",
                               "Options of compare(): update tolerances, bf16 emulation, the non-finite policy, "
                               "spectra and their options, subspace_k, max_spectral_side, release_pages.");
  bind_options<DescribeOptions>(p, "DescribeOptions",
                                "Options of describe(): spectra and their options, max_spectral_side, release_pages.");
  py::class_<CompareResult, std::shared_ptr<CompareResult>>(
      p, "CompareResult", "A comparison's C++ result, held by metaprobe.params.Comparison for its file forms.")
      .def(
          "json",
          [](const CompareResult& r, int indent) {
            py::gil_scoped_release nogil;
            return comparison_json(r, indent);
          },
          py::arg("indent") = 1, "The full comparison as JSON text (the CLI's --out format).")
      .def(
          "csv",
          [](const CompareResult& r) {
            py::gil_scoped_release nogil;
            return comparison_csv(r);
          },
          "One CSV row per tensor pair (the CLI's --csv format).")
      .def(
          "write_json",
          [](const CompareResult& r, const std::string& path) {
            py::gil_scoped_release nogil;
            write_text_atomic(path, comparison_json(r));
          },
          py::arg("path"), "Writes json() to path atomically (IoError naming the path).")
      .def(
          "write_csv",
          [](const CompareResult& r, const std::string& path) {
            py::gil_scoped_release nogil;
            write_text_atomic(path, comparison_csv(r));
          },
          py::arg("path"), "Writes csv() to path atomically (IoError naming the path).");
  p.def(
      "tensor_stats",
      [](const at::Tensor& t) {
        TensorStats s;
        {
          py::gil_scoped_release nogil;
          s = tensor_stats(t);
        }
        return record_dict(s);
      },
      py::arg("t"));
  p.def(
      "update_stats",
      [](const at::Tensor& w0, const at::Tensor& w1, double atol, double eta) {
        UpdateStats u;
        {
          py::gil_scoped_release nogil;
          u = update_stats(w0, w1, UpdateOptions{atol, eta});
        }
        return record_dict(u);
      },
      py::arg("w0"), py::arg("w1"), py::arg("atol"), py::arg("eta"));
  p.def(
      "spectral_stats",
      [](const at::Tensor& w, const SpectralOptions& opts) {
        const SpectralOptions o = opts;  // a copy: the bound object stays Python's while the GIL is released
        SpectralStats s;
        {
          py::gil_scoped_release nogil;
          s = spectral_stats(w, o);
        }
        return record_dict(s);
      },
      py::arg("w"), py::arg("options"));
  // Both spectrum bindings run the same call; they differ only in how much of the Spectrum they return.
  static auto spectrum = [](const at::Tensor& w, const SpectralOptions& opts) {
    const SpectralOptions o = opts;
    py::gil_scoped_release nogil;
    return singular_values(w, o);
  };
  static auto tensor = [](const std::vector<double>& v) {
    at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kDouble);
    std::copy(v.begin(), v.end(), t.data_ptr<double>());
    return t;
  };
  p.def(
      "singular_values",
      [](const at::Tensor& w, const SpectralOptions& opts) {
        const Spectrum s = spectrum(w, opts);
        return py::make_tuple(tensor(s.values), s.method, s.error_bound);
      },
      py::arg("w"), py::arg("options"));
  p.def(
      "top_k_singular_values",
      [](const at::Tensor& w, const SpectralOptions& opts) {
        const Spectrum s = spectrum(w, opts);
        py::dict d;
        d["values"] = tensor(s.values);
        d["value_bounds"] = s.value_bounds.empty() ? at::zeros({static_cast<int64_t>(s.values.size())}, at::kDouble)
                                                   : tensor(s.value_bounds);
        d["error_bound"] = s.error_bound;
        d["method"] = s.method;
        d["iterations"] = s.iterations;
        d["converged"] = s.converged;
        return d;
      },
      py::arg("w"), py::arg("options"));
  p.def(
      "fit_power_law",
      [](const std::vector<double>& evals, const SpectralOptions& opts) {
        return record_dict(fit_power_law(evals, opts));
      },
      py::arg("evals"), py::arg("options"));
  p.def(
      "update_spectral_stats",
      [](const at::Tensor& w0, const at::Tensor& w1, int64_t k, const SpectralOptions& opts) {
        const SpectralOptions o = opts;
        UpdateSpectralStats u;
        {
          py::gil_scoped_release nogil;
          u = update_spectral_stats(w0, w1, k, o);
        }
        return record_dict(u);
      },
      py::arg("w0"), py::arg("w1"), py::arg("k"), py::arg("options"));
  p.def(
      "parse_name",
      [](const std::string& name) {
        return record_dict(parse_param_name(name));
      },
      py::arg("name"));
  // The keys of each record's dict, in order: what metaprobe.params and metaprobe.report derive columns from.
  p.attr("TENSOR_STATS_FIELDS") = field_names_py<TensorStats>();
  p.attr("UPDATE_STATS_FIELDS") = field_names_py<UpdateStats>();
  p.attr("SPECTRAL_STATS_FIELDS") = field_names_py<SpectralStats>();
  p.attr("UPDATE_SPECTRAL_STATS_FIELDS") = field_names_py<UpdateSpectralStats>();
  p.attr("GROUP_STATS_FIELDS") = field_names_py<GroupStats>();
  p.def("compare", &compare_py, py::arg("reference"), py::arg("tuned"), py::arg("options"), py::arg("progress"),
        "Streams two sources (paths, (name, tensor) lists or TensorSources) through compare_checkpoints.");
  p.def("describe", &describe_py, py::arg("source"), py::arg("options"), py::arg("progress"),
        "Per-tensor statistics (and spectra) of one source.");
}

}  // namespace metaprobe::bindings
