#pragma once
// Internal: strict reads of JSON values into C++ fields, for parsers of user-written JSON (run configs).
//
// nlohmann's get_to converts between number kinds silently: an int64 field takes 2.7 as 2, a uint64 field
// takes -1 as 2^64-1, and a float outside the target's range is undefined behaviour (the run-config fuzzer
// found `{"seed": -20.5}`). These reads take an integer field only from a JSON integer that fits it.
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace metaprobe::detail {

// True and `out` set when `j` holds a value of T's JSON kind that fits T; false (and `out` untouched) otherwise.
// A floating field takes any JSON number; a std::vector takes an array whose every element reads.
template <class T>
bool read_json(const nlohmann::json& j, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) return false;
    out = j.get<bool>();
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    if (j.is_number_unsigned()) {
      const uint64_t v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(v);
      return true;
    }
    if (!j.is_number_integer()) return false;
    const int64_t v = j.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (v < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    } else {
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          v > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return false;
    }
    out = static_cast<T>(v);
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) return false;
    out = j.get<T>();
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) return false;
    out = j.get<std::string>();
    return true;
  } else {
    static_assert(std::is_same_v<T, std::vector<typename T::value_type>>, "read_json: unsupported field type");
    if (!j.is_array()) return false;
    T values;
    values.reserve(j.size());
    for (const auto& element : j) {
      typename T::value_type v{};
      if (!read_json(element, v)) return false;
      values.push_back(std::move(v));
    }
    out = std::move(values);
    return true;
  }
}

}  // namespace metaprobe::detail
