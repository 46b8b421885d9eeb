// JSON and CSV renderings of params results (nlohmann_json stays out of the public headers).
#include <metaprobe/params/report.hpp>


#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/common/fields.hpp>
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

// Note [CSV columns from the field lists]: a CSV table is a list of blocks, each a selection of one record's
// fields by their keys in its METAPROBE_RECORD list; a column's header is the block's prefix plus the key, its
// cell the field written by its type. A renamed or removed field is an InvalidArgument naming the key (pinned
// by the tests on the header), never a silently wrong column.
struct CsvBlock {
  const char* record;              // key of a nested record in the row's list; "" for the row's own fields
  const char* prefix;              // of every header of the block
  std::vector<const char*> keys;   // fields of that record, in column order
  bool spectral = false;           // empty cells unless the row's spectral_status is ok
};

// One cell: text quoted as needed, integers in full, floats shortest round-trip (NaN empty), a shape as "[a,b]".
template <class V>
std::string csv_cell(const V& v, const char* key) {
  if constexpr (std::is_same_v<V, std::string>) {
    return csv_field(v);
  } else if constexpr (std::is_same_v<V, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_integral_v<V>) {
    return std::to_string(v);
  } else if constexpr (std::is_floating_point_v<V>) {
    return csv_num(v);
  } else if constexpr (std::is_same_v<V, std::vector<int64_t>>) {
    return csv_field(metaprobe::detail::format_shape(v, ","));
  } else if constexpr (std::is_same_v<V, SpectralStatus>) {
    return csv_field(to_string(v));
  } else if constexpr (std::is_enum_v<V>) {
    return csv_field(std::string(enum_name(v)));
  } else {
    throw InvalidArgument(std::string("CSV column '") + key + "': a field that is not a single value");
  }
}

// The cell of `key` in `record`, or InvalidArgument when its list has no such key.
template <class Record>
std::string csv_cell_of(const Record& record, const char* key) {
  std::string cell;
  if (!visit_field(record, key, [&](const auto& v) { cell = csv_cell(v, key); }))
    throw InvalidArgument(std::string("CSV column '") + key + "': not a field of the record's list");
  return cell;
}

// The cells of one row, comma-separated, in block order.
template <class Row>
std::string csv_row(const Row& row, const std::vector<CsvBlock>& blocks) {
  std::string line;
  bool first = true;
  for (const auto& block : blocks) {
    const bool empty = block.spectral && !row.spectral_status.ok();
    for (const char* key : block.keys) {
      if (!first) line += ',';
      first = false;
      if (empty) continue;
      if (*block.record == '\0') {
        line += csv_cell_of(row, key);
        continue;
      }
      const bool found = visit_field(row, block.record, [&](const auto& nested) {
        using V = std::decay_t<decltype(nested)>;
        if constexpr (is_record<V>::value) {
          line += csv_cell_of(nested, key);
        } else {
          throw InvalidArgument(std::string("CSV block '") + block.record + "': not a nested record");
        }
      });
      if (!found) throw InvalidArgument(std::string("CSV block '") + block.record + "': not a field of the row's list");
    }
  }
  return line + '\n';
}

// The header line; every column is resolved once on a default row, so a stale key fails even without rows.
template <class Row>
std::string csv_header(const std::vector<CsvBlock>& blocks) {
  std::vector<std::string> columns;
  for (const auto& block : blocks)
    for (const char* key : block.keys) columns.push_back(std::string(block.prefix) + key);
  (void)csv_row(Row{}, blocks);
  std::string line;
  for (const auto& c : columns) line += (line.empty() ? "" : ",") + c;
  return line + '\n';
}

// The comparison CSV: one row per tensor pair.
const std::vector<CsvBlock>& comparison_blocks() {
  static const std::vector<CsvBlock> blocks = {
      {"", "", {"name"}},
      {"parsed", "", {"layer", "kind"}},
      {"", "", {"shape", "reference_dtype", "tuned_dtype"}},
      {"update", "", {"numel"}},
      {"reference", "ref_", {"mean", "std", "skewness", "excess_kurtosis"}},
      {"tuned", "tuned_", {"mean", "std", "skewness", "excess_kurtosis"}},
      {"update", "", {"delta_fro", "ref_fro", "rel_update_norm", "cosine", "max_abs_delta", "sparsity_abs",
                      "sparsity_rel", "unchanged_fraction", "sign_flip_fraction", "nonfinite_count"}},
      {"", "", {"spectral_status"}},
      {"reference_spectral", "ref_", {"alpha"}, true},
      {"tuned_spectral", "tuned_", {"alpha"}, true},
      {"reference_spectral", "ref_", {"stable_rank"}, true},
      {"tuned_spectral", "tuned_", {"stable_rank"}, true},
      {"update_spectral", "update_", {"normalized_rank", "topk_energy_fraction"}, true},
      {"update_spectral", "", {"spectral_drift", "left_angle_max_deg"}, true},
  };
  return blocks;
}

// The description CSV: one row per tensor.
const std::vector<CsvBlock>& description_blocks() {
  static const std::vector<CsvBlock> blocks = {
      {"", "", {"name"}},
      {"parsed", "", {"layer", "kind"}},
      {"", "", {"shape", "dtype"}},
      {"stats", "", {"numel", "nan_count", "inf_count", "mean", "std", "min", "max", "mean_abs", "l2_norm",
                     "linf_norm", "zero_fraction", "skewness", "excess_kurtosis"}},
      {"", "", {"spectral_status"}},
      {"spectral", "", {"alpha", "stable_rank", "effective_rank"}, true},
  };
  return blocks;
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
  std::string out = csv_header<TensorComparison>(comparison_blocks());
  for (const auto& t : r.tensors) out += csv_row(t, comparison_blocks());
  return out;
}

std::string description_json(const std::vector<TensorDescription>& rows, int indent) {
  json tensors = json::array();
  for (const auto& t : rows) tensors.push_back(row_json(t, {"spectral"}));
  return json{{"tensors", std::move(tensors)}}.dump(indent);
}

std::string description_csv(const std::vector<TensorDescription>& rows) {
  std::string out = csv_header<TensorDescription>(description_blocks());
  for (const auto& t : rows) out += csv_row(t, description_blocks());
  return out;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  if (path.empty()) throw InvalidArgument("path: empty, expected a file path");
  metaprobe::write_file_atomic(path, text);  // the library's one writer: umask-respecting mode, fsync, rename
}

}  // namespace metaprobe::params
