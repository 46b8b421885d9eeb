#pragma once
// Serialisations of params results: JSON (NaN and Inf become null) and CSV tables, and an atomic writer.
#include <string>
#include <vector>

#include <metaprobe/params/compare.hpp>

namespace metaprobe::params {

/// The whole comparison as a JSON document: {"tensors": [...], "layers": [...], "modules": [...],
/// "summary": {...}, "unmatched": {...}, "shape_mismatches": [...]}.
std::string comparison_json(const CompareResult& result, int indent = 1);

/// One CSV row per compared tensor (flat columns, header first).
std::string comparison_csv(const CompareResult& result);

/// A described checkpoint as JSON ({"tensors": [...]}) and as CSV.
std::string description_json(const std::vector<TensorDescription>& rows, int indent = 1);
std::string description_csv(const std::vector<TensorDescription>& rows);

/// Writes `text` to `path` whole or not at all (temporary beside it, fsync, rename); throws IoError.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace metaprobe::params
