#pragma once
// Records with one field list (metaprobe/common/fields.hpp) as flat Python dicts: one key per field, a nested
// record's fields under a prefix its key names, numbers as floats and ints (NaN stays NaN), shapes as tuples.
#include <string>
#include <type_traits>
#include <vector>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>

#include "binding.hpp"

namespace metaprobe::bindings {

/// The prefix of a nested record's keys in the flat dict (e.g. "reference" -> "ref_"); no nested records: none.
using NestedPrefix = std::string (*)(const char* key);

/// Puts every field of `r` into `d` as prefix + key, nested records flattened by `nested`.
template <class T>
void put_record(py::dict& d, const std::string& prefix, const T& r, NestedPrefix nested = nullptr);

template <class V>
struct is_vector : std::false_type {};
template <class E, class A>
struct is_vector<std::vector<E, A>> : std::true_type {};

/// One field's Python value: a std::vector as a tuple, an enum as its name, a type with to_string (statuses) as
/// its text.
template <class V>
py::object field_py(const V& v) {
  if constexpr (std::is_arithmetic_v<V> || std::is_same_v<V, std::string>) {
    return py::cast(v);
  } else if constexpr (std::is_enum_v<V>) {
    return py::str(std::string(enum_name(v)));
  } else if constexpr (is_vector<V>::value) {
    return py::tuple(py::cast(v));
  } else {
    return py::str(to_string(v));
  }
}

template <class T>
void put_record(py::dict& d, const std::string& prefix, const T& r, NestedPrefix nested) {
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) {
    using V = std::decay_t<decltype(v)>;
    if constexpr (is_record<V>::value) {
      put_record(d, prefix + (nested ? nested(key) : std::string(key) + "_"), v, nested);
    } else {
      d[py::str(prefix + key)] = field_py(v);
    }
  });
}

/// A record as a new flat dict.
template <class T>
py::dict record_dict(const T& r, NestedPrefix nested = nullptr) {
  py::dict d;
  put_record(d, "", r, nested);
  return d;
}

/// The keys of a record type as a Python tuple (what Python derives its column lists from).
template <class T>
py::tuple field_names_py() {
  return py::tuple(py::cast(record_field_names<T>()));
}

}  // namespace metaprobe::bindings
