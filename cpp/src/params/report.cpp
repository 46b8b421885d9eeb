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
#include "common/record_json.hpp"

namespace metaprobe::params {

// A record's spectral_status field as it is serialised (found by nlohmann through argument-dependent lookup).
void to_json(nlohmann::json& j, const SpectralStatus& status) { j = to_string(status); }

namespace {

using nlohmann::json;
using metaprobe::detail::record_to_json;

// A tensor row: its record's JSON, without the spectral sub-records when it has no spectra.
template <class Row>
json row_json(const Row& row, std::initializer_list<const char*> spectral_keys) {
  json j = record_to_json(row);
  if (!row.spectral_status.ok())
    for (const char* key : spectral_keys) j.erase(key);
  return j;
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
  for (const auto& t : r.tensors)
    tensors.push_back(row_json(t, {"reference_spectral", "tuned_spectral", "update_spectral"}));
  doc["tensors"] = std::move(tensors);
  json layers = json::array(), modules = json::array();
  for (const auto& g : r.layers) layers.push_back(record_to_json(g));
  for (const auto& g : r.modules) modules.push_back(record_to_json(g));
  doc["layers"] = std::move(layers);
  doc["modules"] = std::move(modules);
  json summary = record_to_json(r.total);
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
    const bool sp = t.spectral_status.ok();
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
        << std::to_string(t.update.nonfinite_count) << ',' << csv_field(to_string(t.spectral_status)) << ','
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
  for (const auto& t : rows) tensors.push_back(row_json(t, {"spectral"}));
  return json{{"tensors", std::move(tensors)}}.dump(indent);
}

std::string description_csv(const std::vector<TensorDescription>& rows) {
  std::ostringstream out;
  out << "name,layer,kind,shape,dtype,numel,nan_count,inf_count,mean,std,min,max,mean_abs,l2_norm,linf_norm,"
         "zero_fraction,skewness,excess_kurtosis,spectral_status,alpha,stable_rank,effective_rank\n";
  for (const auto& t : rows) {
    const bool sp = t.spectral_status.ok();
    const double nan = std::nan("");
    const TensorStats& s = t.stats;
    out << csv_field(t.name) << ',' << std::to_string(t.parsed.layer) << ',' << csv_field(t.parsed.kind) << ','
        << csv_field(metaprobe::detail::format_shape(t.shape, ",")) << ',' << t.dtype << ',' << std::to_string(s.numel) << ',' << std::to_string(s.nan_count) << ','
        << std::to_string(s.inf_count) << ',' << csv_num(s.mean) << ',' << csv_num(s.std) << ',' << csv_num(s.min) << ','
        << csv_num(s.max) << ',' << csv_num(s.mean_abs) << ',' << csv_num(s.l2_norm) << ','
        << csv_num(s.linf_norm) << ',' << csv_num(s.zero_fraction) << ',' << csv_num(s.skewness) << ','
        << csv_num(s.excess_kurtosis) << ',' << csv_field(to_string(t.spectral_status)) << ','
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
