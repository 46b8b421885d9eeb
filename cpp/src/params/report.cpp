// JSON and CSV renderings of params results (nlohmann_json stays out of the public headers).
#include <metaprobe/params/report.hpp>


#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include <nlohmann/json.hpp>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/error.hpp>

#include "common/format.hpp"

namespace metaprobe::params {
namespace {

using nlohmann::json;

// NaN/Inf have no JSON spelling; null says "not defined" to every reader.
json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json to_json(const TensorStats& s) {
  return {{"numel", s.numel},
          {"finite_count", s.finite_count},
          {"nan_count", s.nan_count},
          {"inf_count", s.inf_count},
          {"mean", num(s.mean)},
          {"std", num(s.std)},
          {"min", num(s.min)},
          {"max", num(s.max)},
          {"mean_abs", num(s.mean_abs)},
          {"l2_norm", num(s.l2_norm)},
          {"linf_norm", num(s.linf_norm)},
          {"zero_fraction", num(s.zero_fraction)},
          {"skewness", num(s.skewness)},
          {"excess_kurtosis", num(s.excess_kurtosis)}};
}

json to_json(const UpdateStats& u) {
  return {{"finite_count", u.finite_count},
          {"nonfinite_count", u.nonfinite_count},
          {"delta_fro", num(u.delta_fro)},
          {"ref_fro", num(u.ref_fro)},
          {"tuned_fro", num(u.tuned_fro)},
          {"rel_update_norm", num(u.rel_update_norm)},
          {"cosine", num(u.cosine)},
          {"max_abs_delta", num(u.max_abs_delta)},
          {"sparsity_abs", num(u.sparsity_abs)},
          {"sparsity_rel", num(u.sparsity_rel)},
          {"unchanged_fraction", num(u.unchanged_fraction)},
          {"sign_flip_fraction", num(u.sign_flip_fraction)}};
}

json to_json(const SpectralStats& s) {
  return {{"rows", s.rows},
          {"cols", s.cols},
          {"method", s.method},
          {"complete", s.complete},
          {"num_singular_values", s.num_singular_values},
          {"sv_max", num(s.sv_max)},
          {"sv_min", num(s.sv_min)},
          {"spectral_norm", num(s.spectral_norm)},
          {"frobenius_norm", num(s.frobenius_norm)},
          {"stable_rank", num(s.stable_rank)},
          {"effective_rank", num(s.effective_rank)},
          {"numerical_rank", s.numerical_rank},
          {"condition_number", num(s.condition_number)},
          {"lambda_max", num(s.lambda_max)},
          {"log_norm", num(s.log_norm)},
          {"log_spectral_norm", num(s.log_spectral_norm)},
          {"alpha", num(s.alpha)},
          {"alpha_weighted", num(s.alpha_weighted)},
          {"log_alpha_norm", num(s.log_alpha_norm)},
          {"entropy", num(s.entropy)},
          {"xmin", num(s.fit.xmin)},
          {"xmax", num(s.fit.xmax)},
          {"D", num(s.fit.D)},
          {"sigma", num(s.fit.sigma)},
          {"num_pl_spikes", s.fit.num_pl_spikes},
          {"num_evals", s.num_evals},
          {"num_fit_evals", s.fit.num_evals},
          {"status", s.fit.status},
          {"reason", s.fit.reason},
          {"mp_softrank", num(s.mp.softrank)},
          {"mp_num_spikes", s.mp.num_spikes},
          {"mp_sigma", num(s.mp.sigma)},
          {"mp_bulk_min", num(s.mp.bulk_min)},
          {"mp_bulk_max", num(s.mp.bulk_max)},
          {"mp_status", s.mp.status},
          {"rand_replicas", s.random.replicas},
          {"max_rand_eval", num(s.random.max_rand_eval)},
          {"rand_distance", num(s.random.rand_distance)},
          {"ww_softrank", num(s.random.ww_softrank)},
          {"ww_maxdist", num(s.random.ww_maxdist)},
          {"rand_mp_softrank", num(s.random.mp.softrank)},
          {"rand_num_spikes", s.random.mp.num_spikes},
          {"rand_status", s.random.status},
          {"error_bound", num(s.error_bound)}};
}

json to_json(const UpdateSpectralStats& u) {
  return {{"k", u.k},
          {"update_rank", u.update_rank},
          {"normalized_rank", num(u.normalized_rank)},
          {"topk_energy_fraction", num(u.topk_energy_fraction)},
          {"spectral_drift", num(u.spectral_drift)},
          {"left_angle_max_deg", num(u.angles.left_max_deg)},
          {"left_angle_mean_deg", num(u.angles.left_mean_deg)},
          {"right_angle_max_deg", num(u.angles.right_max_deg)},
          {"right_angle_mean_deg", num(u.angles.right_mean_deg)}};
}

json to_json(const ParsedName& p) {
  return {{"layer", p.layer}, {"kind", p.kind}, {"module", p.module}, {"param", p.param}, {"scheme", p.scheme}};
}

json to_json(const GroupStats& g) {
  return {{"key", g.key},
          {"layer", g.layer},
          {"tensors", g.tensors},
          {"numel", g.numel},
          {"delta_fro", num(g.delta_fro)},
          {"ref_fro", num(g.ref_fro)},
          {"tuned_fro", num(g.tuned_fro)},
          {"rel_update_norm", num(g.rel_update_norm)},
          {"cosine", num(g.cosine)},
          {"max_abs_delta", num(g.max_abs_delta)},
          {"sparsity_abs", num(g.sparsity_abs)},
          {"sparsity_rel", num(g.sparsity_rel)},
          {"unchanged_fraction", num(g.unchanged_fraction)},
          {"sign_flip_fraction", num(g.sign_flip_fraction)},
          {"nonfinite_count", g.nonfinite_count},
          {"mean_tensor_sparsity_abs", num(g.mean_tensor_sparsity_abs)},
          {"mean_tensor_nonzero_fraction", num(g.mean_tensor_nonzero_fraction)},
          {"mean_alpha_reference", num(g.mean_alpha_reference)},
          {"mean_alpha_tuned", num(g.mean_alpha_tuned)},
          {"mean_normalized_update_rank", num(g.mean_normalized_update_rank)},
          {"mean_left_angle_max_deg", num(g.mean_left_angle_max_deg)}};
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  return metaprobe::detail::format_double(v);
}

}  // namespace

std::string comparison_json(const CompareResult& r, int indent) {
  json doc;
  json tensors = json::array();
  for (const auto& t : r.tensors) {
    json row = {{"name", t.name},
                {"parsed", to_json(t.parsed)},
                {"reference_dtype", t.reference_dtype},
                {"tuned_dtype", t.tuned_dtype},
                {"shape", t.shape},
                {"reference", to_json(t.reference)},
                {"tuned", to_json(t.tuned)},
                {"update", to_json(t.update)},
                {"spectral_status", t.spectral_status}};
    if (t.spectral_status == "ok") {
      row["reference_spectral"] = to_json(t.reference_spectral);
      row["tuned_spectral"] = to_json(t.tuned_spectral);
      row["update_spectral"] = to_json(t.update_spectral);
    }
    tensors.push_back(std::move(row));
  }
  doc["tensors"] = std::move(tensors);
  json layers = json::array(), modules = json::array();
  for (const auto& g : r.layers) layers.push_back(to_json(g));
  for (const auto& g : r.modules) modules.push_back(to_json(g));
  doc["layers"] = std::move(layers);
  doc["modules"] = std::move(modules);
  json summary = to_json(r.total);
  summary["matched"] = r.tensors.size();
  summary["only_in_reference"] = r.only_in_reference.size();
  summary["only_in_tuned"] = r.only_in_tuned.size();
  summary["shape_mismatches"] = r.shape_mismatches.size();
  summary["bytes_read"] = r.bytes_read;
  summary["largest_tensor_bytes"] = r.largest_tensor_bytes;
  doc["summary"] = std::move(summary);
  doc["unmatched"] = {{"only_in_reference", r.only_in_reference}, {"only_in_tuned", r.only_in_tuned}};
  json mism = json::array();
  for (const auto& m : r.shape_mismatches) {
    mism.push_back({{"name", m.name}, {"reference_shape", m.reference_shape}, {"tuned_shape", m.tuned_shape}});
  }
  doc["shape_mismatches"] = std::move(mism);
  return doc.dump(indent);
}

std::string comparison_csv(const CompareResult& r) {
  std::ostringstream out;
  out << "name,layer,kind,shape,reference_dtype,tuned_dtype,numel,ref_mean,ref_std,ref_skewness,"
         "ref_excess_kurtosis,tuned_mean,tuned_std,tuned_skewness,tuned_excess_kurtosis,delta_fro,ref_fro,"
         "rel_update_norm,cosine,max_abs_delta,sparsity_abs,sparsity_rel,unchanged_fraction,sign_flip_fraction,"
         "nonfinite_count,spectral_status,ref_alpha,tuned_alpha,ref_stable_rank,tuned_stable_rank,"
         "update_normalized_rank,update_topk_energy_fraction,spectral_drift,left_angle_max_deg\n";
  for (const auto& t : r.tensors) {
    const bool sp = t.spectral_status == "ok";
    const double nan = std::nan("");
    out << csv_field(t.name) << ',' << std::to_string(t.parsed.layer) << ',' << csv_field(t.parsed.kind) << ','
        << csv_field(metaprobe::detail::format_shape(t.shape, ",")) << ',' << t.reference_dtype << ',' << t.tuned_dtype << ','
        << std::to_string(t.update.numel) << ',' << csv_num(t.reference.mean) << ',' << csv_num(t.reference.std) << ','
        << csv_num(t.reference.skewness) << ',' << csv_num(t.reference.excess_kurtosis) << ','
        << csv_num(t.tuned.mean) << ',' << csv_num(t.tuned.std) << ',' << csv_num(t.tuned.skewness) << ','
        << csv_num(t.tuned.excess_kurtosis) << ',' << csv_num(t.update.delta_fro) << ','
        << csv_num(t.update.ref_fro) << ',' << csv_num(t.update.rel_update_norm) << ','
        << csv_num(t.update.cosine) << ',' << csv_num(t.update.max_abs_delta) << ','
        << csv_num(t.update.sparsity_abs) << ',' << csv_num(t.update.sparsity_rel) << ','
        << csv_num(t.update.unchanged_fraction) << ',' << csv_num(t.update.sign_flip_fraction) << ','
        << std::to_string(t.update.nonfinite_count) << ',' << csv_field(t.spectral_status) << ','
        << csv_num(sp ? t.reference_spectral.alpha : nan) << ',' << csv_num(sp ? t.tuned_spectral.alpha : nan) << ','
        << csv_num(sp ? t.reference_spectral.stable_rank : nan) << ','
        << csv_num(sp ? t.tuned_spectral.stable_rank : nan) << ','
        << csv_num(sp ? t.update_spectral.normalized_rank : nan) << ','
        << csv_num(sp ? t.update_spectral.topk_energy_fraction : nan) << ','
        << csv_num(sp ? t.update_spectral.spectral_drift : nan) << ','
        << csv_num(sp ? t.update_spectral.angles.left_max_deg : nan) << '\n';
  }
  return out.str();
}

std::string description_json(const std::vector<TensorDescription>& rows, int indent) {
  json tensors = json::array();
  for (const auto& t : rows) {
    json row = {{"name", t.name},
                {"parsed", to_json(t.parsed)},
                {"dtype", t.dtype},
                {"shape", t.shape},
                {"stats", to_json(t.stats)},
                {"spectral_status", t.spectral_status}};
    if (t.spectral_status == "ok") row["spectral"] = to_json(t.spectral);
    tensors.push_back(std::move(row));
  }
  return json{{"tensors", std::move(tensors)}}.dump(indent);
}

std::string description_csv(const std::vector<TensorDescription>& rows) {
  std::ostringstream out;
  out << "name,layer,kind,shape,dtype,numel,nan_count,inf_count,mean,std,min,max,mean_abs,l2_norm,linf_norm,"
         "zero_fraction,skewness,excess_kurtosis,spectral_status,alpha,stable_rank,effective_rank\n";
  for (const auto& t : rows) {
    const bool sp = t.spectral_status == "ok";
    const double nan = std::nan("");
    const TensorStats& s = t.stats;
    out << csv_field(t.name) << ',' << std::to_string(t.parsed.layer) << ',' << csv_field(t.parsed.kind) << ','
        << csv_field(metaprobe::detail::format_shape(t.shape, ",")) << ',' << t.dtype << ',' << std::to_string(s.numel) << ',' << std::to_string(s.nan_count) << ','
        << std::to_string(s.inf_count) << ',' << csv_num(s.mean) << ',' << csv_num(s.std) << ',' << csv_num(s.min) << ','
        << csv_num(s.max) << ',' << csv_num(s.mean_abs) << ',' << csv_num(s.l2_norm) << ','
        << csv_num(s.linf_norm) << ',' << csv_num(s.zero_fraction) << ',' << csv_num(s.skewness) << ','
        << csv_num(s.excess_kurtosis) << ',' << csv_field(t.spectral_status) << ','
        << csv_num(sp ? t.spectral.alpha : nan) << ',' << csv_num(sp ? t.spectral.stable_rank : nan) << ','
        << csv_num(sp ? t.spectral.effective_rank : nan) << '\n';
  }
  return out.str();
}

void write_text_atomic(const std::string& path, const std::string& text) {
  if (path.empty()) throw InvalidArgument("path: empty, expected a file path");
  metaprobe::write_file_atomic(path, text);  // the library's one writer: umask-respecting mode, fsync, rename
}

}  // namespace metaprobe::params
