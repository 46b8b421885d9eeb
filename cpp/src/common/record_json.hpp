#pragma once
// Internal: JSON of METAPROBE_RECORD types (metaprobe/common/fields.hpp), written from their one field list.
// Writing turns NaN and ±inf into null (JSON has no spelling for them); reading is strict: a required field
// that is absent, or a field of the wrong JSON kind, is a FormatError naming the record and the key; a LATER
// field may be absent (it keeps its default); null reads as NaN in a floating field.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/error.hpp>

#include "common/json_read.hpp"

namespace metaprobe::detail {

template <class T>
nlohmann::json record_to_json(const T& r);

/// One field's JSON: a nested record as an object, a non-finite floating value as null, the rest as nlohmann
/// writes it (vectors, strings, types with their own to_json).
template <class V>
nlohmann::json field_to_json(const V& v) {
  if constexpr (::metaprobe::is_record<V>::value) {
    return record_to_json(v);
  } else if constexpr (std::is_floating_point_v<V>) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  } else {
    return nlohmann::json(v);
  }
}

/// A record as a JSON object with one key per field of its list.
template <class T>
nlohmann::json record_to_json(const T& r) {
  nlohmann::json j = nlohmann::json::object();
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) { j[key] = field_to_json(v); });
  return j;
}

template <class T>
void record_from_json(const nlohmann::json& j, T& r, const std::string& what);

// `j` read into `out`, or a FormatError "<what>.<key> ... has the wrong type: <kind>".
template <class V>
void field_from_json(const nlohmann::json& j, V& out, const std::string& what, const char* key) {
  const std::string where = what + "." + key;
  if constexpr (::metaprobe::is_record<V>::value) {
    record_from_json(j, out, where);
  } else if constexpr (std::is_floating_point_v<V>) {
    if (j.is_null()) {
      out = std::numeric_limits<V>::quiet_NaN();
    } else if (!read_json(j, out)) {
      throw FormatError(where + " is missing or has the wrong type: JSON " + j.type_name() + ", expected a number");
    }
  } else if constexpr (std::is_arithmetic_v<V> || std::is_same_v<V, std::string>) {
    if (!read_json(j, out))
      throw FormatError(where + " is missing or has the wrong type: JSON " + j.type_name() + ", expected " +
                        (std::is_same_v<V, bool> ? "a boolean" : std::is_same_v<V, std::string> ? "a string" : "an integer"));
  } else {
    try {
      j.get_to(out);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(where + " is missing or has the wrong type: " + e.what());
    }
  }
}

/// Reads every field of r's list from the object `j`; `what` names the record in errors (e.g. "report: a
/// group statistics"). Keys that are not in the list are ignored (a later writer may add fields).
template <class T>
void record_from_json(const nlohmann::json& j, T& r, const std::string& what) {
  if (!j.is_object())
    throw FormatError(what + " is missing or has the wrong type: JSON " + j.type_name() + ", expected an object");
  for_each_field(r, [&](const char* key, auto& v, FieldPresence presence) {
    const auto it = j.find(key);
    if (it == j.end()) {
      if (presence == FieldPresence::later) return;
      throw FormatError(what + "." + key + " is missing or has the wrong type: absent, expected one");
    }
    field_from_json(*it, v, what, key);
  });
}

}  // namespace metaprobe::detail
