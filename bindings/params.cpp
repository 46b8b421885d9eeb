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

namespace metaprobe::bindings {
namespace {

using namespace metaprobe::params;

void put(py::dict& d, const std::string& prefix, const TensorStats& s) {
  d[py::str(prefix + "numel")] = s.numel;
  d[py::str(prefix + "finite_count")] = s.finite_count;
  d[py::str(prefix + "nan_count")] = s.nan_count;
  d[py::str(prefix + "inf_count")] = s.inf_count;
  d[py::str(prefix + "mean")] = s.mean;
  d[py::str(prefix + "std")] = s.std;
  d[py::str(prefix + "min")] = s.min;
  d[py::str(prefix + "max")] = s.max;
  d[py::str(prefix + "mean_abs")] = s.mean_abs;
  d[py::str(prefix + "l2_norm")] = s.l2_norm;
  d[py::str(prefix + "linf_norm")] = s.linf_norm;
  d[py::str(prefix + "zero_fraction")] = s.zero_fraction;
  d[py::str(prefix + "skewness")] = s.skewness;
  d[py::str(prefix + "excess_kurtosis")] = s.excess_kurtosis;
}

void put(py::dict& d, const UpdateStats& u) {
  d["finite_count"] = u.finite_count;
  d["nonfinite_count"] = u.nonfinite_count;
  d["delta_fro"] = u.delta_fro;
  d["ref_fro"] = u.ref_fro;
  d["tuned_fro"] = u.tuned_fro;
  d["rel_update_norm"] = u.rel_update_norm;
  d["cosine"] = u.cosine;
  d["max_abs_delta"] = u.max_abs_delta;
  d["sparsity_abs"] = u.sparsity_abs;
  d["sparsity_rel"] = u.sparsity_rel;
  d["unchanged_fraction"] = u.unchanged_fraction;
  d["sign_flip_fraction"] = u.sign_flip_fraction;
}

void put(py::dict& d, const std::string& prefix, const SpectralStats& s) {
  auto k = [&](const char* name) { return py::str(prefix + name); };
  d[k("rows")] = s.rows;
  d[k("cols")] = s.cols;
  d[k("svd_method")] = s.method;
  d[k("complete")] = s.complete;
  d[k("num_singular_values")] = s.num_singular_values;
  d[k("sv_max")] = s.sv_max;
  d[k("sv_min")] = s.sv_min;
  d[k("spectral_norm")] = s.spectral_norm;
  d[k("frobenius_norm")] = s.frobenius_norm;
  d[k("stable_rank")] = s.stable_rank;
  d[k("effective_rank")] = s.effective_rank;
  d[k("numerical_rank")] = s.numerical_rank;
  d[k("condition_number")] = s.condition_number;
  d[k("lambda_max")] = s.lambda_max;
  d[k("log_norm")] = s.log_norm;
  d[k("log_spectral_norm")] = s.log_spectral_norm;
  d[k("alpha")] = s.alpha;
  d[k("alpha_weighted")] = s.alpha_weighted;
  d[k("log_alpha_norm")] = s.log_alpha_norm;
  d[k("entropy")] = s.entropy;
  d[k("xmin")] = s.fit.xmin;
  d[k("xmax")] = s.fit.xmax;
  d[k("D")] = s.fit.D;
  d[k("sigma")] = s.fit.sigma;
  d[k("num_pl_spikes")] = s.fit.num_pl_spikes;
  d[k("num_evals")] = s.num_evals;
  d[k("num_fit_evals")] = s.fit.num_evals;
  d[k("status")] = s.fit.status;
  d[k("reason")] = s.fit.reason;
  d[k("mp_softrank")] = s.mp.softrank;
  d[k("mp_num_spikes")] = s.mp.num_spikes;
  d[k("mp_sigma")] = s.mp.sigma;
  d[k("mp_bulk_min")] = s.mp.bulk_min;
  d[k("mp_bulk_max")] = s.mp.bulk_max;
  d[k("mp_status")] = s.mp.status;
  d[k("rand_replicas")] = s.random.replicas;
  d[k("max_rand_eval")] = s.random.max_rand_eval;
  d[k("rand_distance")] = s.random.rand_distance;
  d[k("ww_softrank")] = s.random.ww_softrank;
  d[k("ww_maxdist")] = s.random.ww_maxdist;
  d[k("rand_mp_softrank")] = s.random.mp.softrank;
  d[k("rand_num_spikes")] = s.random.mp.num_spikes;
  d[k("rand_status")] = s.random.status;
  d[k("error_bound")] = s.error_bound;
}

void put(py::dict& d, const UpdateSpectralStats& u) {
  d["subspace_k"] = u.k;
  d["update_rank"] = u.update_rank;
  d["normalized_rank"] = u.normalized_rank;
  d["topk_energy_fraction"] = u.topk_energy_fraction;
  d["spectral_drift"] = u.spectral_drift;
  d["left_angle_max_deg"] = u.angles.left_max_deg;
  d["left_angle_mean_deg"] = u.angles.left_mean_deg;
  d["right_angle_max_deg"] = u.angles.right_max_deg;
  d["right_angle_mean_deg"] = u.angles.right_mean_deg;
}

void put(py::dict& d, const ParsedName& p) {
  d["layer"] = p.layer;
  d["kind"] = p.kind;
  d["module"] = p.module;
  d["param"] = p.param;
  d["scheme"] = p.scheme;
}

py::dict group_dict(const GroupStats& g) {
  py::dict d;
  d["key"] = g.key;
  d["layer"] = g.layer;
  d["tensors"] = g.tensors;
  d["numel"] = g.numel;
  d["delta_fro"] = g.delta_fro;
  d["ref_fro"] = g.ref_fro;
  d["tuned_fro"] = g.tuned_fro;
  d["rel_update_norm"] = g.rel_update_norm;
  d["cosine"] = g.cosine;
  d["max_abs_delta"] = g.max_abs_delta;
  d["sparsity_abs"] = g.sparsity_abs;
  d["sparsity_rel"] = g.sparsity_rel;
  d["unchanged_fraction"] = g.unchanged_fraction;
  d["sign_flip_fraction"] = g.sign_flip_fraction;
  d["nonfinite_count"] = g.nonfinite_count;
  d["mean_tensor_sparsity_abs"] = g.mean_tensor_sparsity_abs;
  d["mean_tensor_nonzero_fraction"] = g.mean_tensor_nonzero_fraction;
  d["mean_alpha_reference"] = g.mean_alpha_reference;
  d["mean_alpha_tuned"] = g.mean_alpha_tuned;
  d["mean_normalized_update_rank"] = g.mean_normalized_update_rank;
  d["mean_left_angle_max_deg"] = g.mean_left_angle_max_deg;
  return d;
}

SvdMethod parse_method(const std::string& m) {
  if (m == "auto") return SvdMethod::Auto;
  if (m == "gram") return SvdMethod::Gram;
  if (m == "svd") return SvdMethod::Svd;
  throw InvalidArgument("method: '" + m + "', expected one of auto, gram, svd");
}

// Spectral options from the keyword dict the Python layer builds (unknown keys are an error).
SpectralOptions spectral_options(const py::dict& o) {
  SpectralOptions s;
  for (auto item : o) {
    const std::string key = py::cast<std::string>(item.first);
    py::handle v = item.second;
    if (key == "k") s.k = v.is_none() ? 0 : py::cast<int64_t>(v);
    else if (key == "flatten") s.flatten = py::cast<bool>(v);
    else if (key == "method") s.method = parse_method(py::cast<std::string>(v));
    else if (key == "gram_max_side") s.gram_max_side = py::cast<int64_t>(v);
    else if (key == "gram_min_ratio") s.gram_min_ratio = py::cast<double>(v);
    else if (key == "oversampling") s.oversampling = py::cast<int64_t>(v);
    else if (key == "power_iterations") s.power_iterations = py::cast<int64_t>(v);
    else if (key == "seed") s.seed = py::cast<uint64_t>(v);
    else if (key == "error_probes") s.error_probes = py::cast<int64_t>(v);
    else if (key == "rank_eps") s.rank_eps = py::cast<double>(v);
    else if (key == "sketch_float32") s.sketch_float32 = py::cast<bool>(v);
    else if (key == "tolerance") s.tolerance = py::cast<double>(v);
    else if (key == "exact_fallback") s.exact_fallback = py::cast<bool>(v);
    else if (key == "evals_thresh") s.evals_thresh = py::cast<double>(v);
    else if (key == "min_evals") s.min_evals = py::cast<int64_t>(v);
    else if (key == "small_n") s.small_n = py::cast<int64_t>(v);
    else if (key == "randomize") s.randomize = py::cast<bool>(v);
    else if (key == "randomize_seed") s.randomize_seed = py::cast<uint64_t>(v);
    else throw InvalidArgument("spectral option '" + key + "': unknown, expected one of k, flatten, method, "
                               "gram_max_side, gram_min_ratio, oversampling, power_iterations, seed, "
                               "error_probes, tolerance, exact_fallback, rank_eps, sketch_float32, evals_thresh, "
                               "min_evals, small_n, "
                               "randomize, randomize_seed");
  }
  return s;
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
  auto holder = std::shared_ptr<py::object>(new py::object(std::move(cb)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
  return [holder](const Progress& p) {
    py::gil_scoped_acquire gil;
    (*holder)(p.done, p.total, p.bytes_done, p.bytes_total, p.name);
  };
}

py::dict compare_py(py::handle reference, py::handle tuned, double atol, double eta, bool spectra,
                    const py::dict& spectral, int64_t subspace_k, int64_t max_spectral_side, bool release_pages,
                    py::object progress, bool emulate_bf16, const std::string& nonfinite) {
  HeldSource r = make_source(reference, "reference");
  HeldSource t = make_source(tuned, "tuned");
  CompareOptions o;
  o.update.atol = atol;
  o.update.eta = eta;
  o.emulate_bf16 = emulate_bf16;
  o.nonfinite = parse_nonfinite_policy(nonfinite);
  o.spectra = spectra;
  o.spectral = spectral_options(spectral);
  o.subspace_k = subspace_k;
  o.max_spectral_side = max_spectral_side;
  o.release_pages = release_pages;
  o.progress = progress_callback(std::move(progress));
  CompareResult res;
  {
    py::gil_scoped_release nogil;
    res = compare_checkpoints(*r.ptr, *t.ptr, o);
    o.progress = nullptr;
  }
  py::list rows;
  for (const auto& c : res.tensors) {
    py::dict d;
    d["name"] = c.name;
    put(d, c.parsed);
    d["shape"] = py::tuple(py::cast(c.shape));
    d["reference_dtype"] = c.reference_dtype;
    d["tuned_dtype"] = c.tuned_dtype;
    d["numel"] = c.update.numel;
    put(d, c.update);
    put(d, "ref_", c.reference);
    put(d, "tuned_", c.tuned);
    d["spectral_status"] = c.spectral_status;
    if (c.spectral_status == "ok") {
      put(d, "ref_", c.reference_spectral);
      put(d, "tuned_", c.tuned_spectral);
      put(d, c.update_spectral);
    }
    rows.append(d);
  }
  py::list layers, modules, mismatches;
  for (const auto& g : res.layers) layers.append(group_dict(g));
  for (const auto& g : res.modules) modules.append(group_dict(g));
  for (const auto& m : res.shape_mismatches) {
    py::dict d;
    d["name"] = m.name;
    d["reference_shape"] = py::tuple(py::cast(m.reference_shape));
    d["tuned_shape"] = py::tuple(py::cast(m.tuned_shape));
    mismatches.append(d);
  }
  py::dict summary = group_dict(res.total);
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
  std::string json;
  {
    py::gil_scoped_release nogil;
    json = comparison_json(res);
  }
  out["json"] = json;
  return out;
}

py::list describe_py(py::handle source, bool spectra, const py::dict& spectral, int64_t max_spectral_side,
                     bool release_pages, py::object progress) {
  HeldSource s = make_source(source, "checkpoint");
  DescribeOptions o;
  o.spectra = spectra;
  o.spectral = spectral_options(spectral);
  o.max_spectral_side = max_spectral_side;
  o.release_pages = release_pages;
  o.progress = progress_callback(std::move(progress));
  std::vector<TensorDescription> rows;
  {
    py::gil_scoped_release nogil;
    rows = describe(*s.ptr, o);
    o.progress = nullptr;
  }
  py::list out;
  for (const auto& r : rows) {
    py::dict d;
    d["name"] = r.name;
    put(d, r.parsed);
    d["shape"] = py::tuple(py::cast(r.shape));
    d["dtype"] = r.dtype;
    put(d, "", r.stats);
    d["spectral_status"] = r.spectral_status;
    if (r.spectral_status == "ok") put(d, "", r.spectral);
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_params(py::module_& m) {
  py::module_ p = m.def_submodule("params", "Parameter statistics (see metaprobe.params)");
  p.def(
      "tensor_stats",
      [](const at::Tensor& t) {
        TensorStats s;
        {
          py::gil_scoped_release nogil;
          s = tensor_stats(t);
        }
        py::dict d;
        put(d, "", s);
        return d;
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
        py::dict d;
        d["numel"] = u.numel;
        put(d, u);
        return d;
      },
      py::arg("w0"), py::arg("w1"), py::arg("atol"), py::arg("eta"));
  p.def(
      "spectral_stats",
      [](const at::Tensor& w, const py::dict& opts) {
        const SpectralOptions o = spectral_options(opts);
        SpectralStats s;
        {
          py::gil_scoped_release nogil;
          s = spectral_stats(w, o);
        }
        py::dict d;
        put(d, "", s);
        return d;
      },
      py::arg("w"), py::arg("options"));
  // Both spectrum bindings run the same call; they differ only in how much of the Spectrum they return.
  static auto spectrum = [](const at::Tensor& w, const py::dict& opts) {
    const SpectralOptions o = spectral_options(opts);
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
      [](const at::Tensor& w, const py::dict& opts) {
        const Spectrum s = spectrum(w, opts);
        return py::make_tuple(tensor(s.values), s.method, s.error_bound);
      },
      py::arg("w"), py::arg("options"));
  p.def(
      "top_k_singular_values",
      [](const at::Tensor& w, const py::dict& opts) {
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
      [](const std::vector<double>& evals, const py::dict& opts) {
        const PowerLawFit f = fit_power_law(evals, spectral_options(opts));
        py::dict d;
        d["alpha"] = f.alpha;
        d["xmin"] = f.xmin;
        d["xmax"] = f.xmax;
        d["D"] = f.D;
        d["sigma"] = f.sigma;
        d["num_evals"] = f.num_evals;
        d["num_pl_spikes"] = f.num_pl_spikes;
        d["status"] = f.status;
        d["reason"] = f.reason;
        return d;
      },
      py::arg("evals"), py::arg("options"));
  p.def(
      "update_spectral_stats",
      [](const at::Tensor& w0, const at::Tensor& w1, int64_t k, const py::dict& opts) {
        const SpectralOptions o = spectral_options(opts);
        UpdateSpectralStats u;
        {
          py::gil_scoped_release nogil;
          u = update_spectral_stats(w0, w1, k, o);
        }
        py::dict d;
        put(d, u);
        return d;
      },
      py::arg("w0"), py::arg("w1"), py::arg("k"), py::arg("options"));
  p.def(
      "parse_name",
      [](const std::string& name) {
        py::dict d;
        put(d, parse_param_name(name));
        return d;
      },
      py::arg("name"));
  p.def("compare", &compare_py, py::arg("reference"), py::arg("tuned"), py::arg("atol"), py::arg("eta"),
        py::arg("spectra"), py::arg("spectral"), py::arg("subspace_k"), py::arg("max_spectral_side"),
        py::arg("release_pages"), py::arg("progress"), py::arg("emulate_bf16") = false,
        py::arg("nonfinite") = "nan");
  p.def("describe", &describe_py, py::arg("source"), py::arg("spectra"), py::arg("spectral"),
        py::arg("max_spectral_side"), py::arg("release_pages"), py::arg("progress"));
}

}  // namespace metaprobe::bindings
