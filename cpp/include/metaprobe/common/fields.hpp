#pragma once
// One declaration per record. A record's fields are listed once, beside its struct, as a list macro
// LIST(X, LATER) of X(key, member) entries (LATER for fields added after the record first shipped: a reader
// accepts them absent). METAPROBE_RECORD derives a visitor from that list; the JSON of the report and of the
// params module (common/record_json.hpp), the Python dicts of the bindings and the column lists Python reads
// (record_field_names) are all written on top of it, so a new field is one struct member plus one entry.
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace metaprobe {

/// What a visitor learns about a field besides its key and value.
enum class FieldPresence { required, later };

#define METAPROBE_FIELD_VISIT_REQUIRED(key, member) f(key, r.member, ::metaprobe::FieldPresence::required);
#define METAPROBE_FIELD_VISIT_LATER(key, member) f(key, r.member, ::metaprobe::FieldPresence::later);

/// Declares for_each_field(record, f), calling f(key, member, presence) for every entry of LIST in order (const
/// and mutable records); use it in Type's namespace so that argument-dependent lookup finds it.
#define METAPROBE_RECORD(Type, LIST)                                              \
  template <class F>                                                            \
  inline void for_each_field(const Type& r, F&& f) {                            \
    LIST(METAPROBE_FIELD_VISIT_REQUIRED, METAPROBE_FIELD_VISIT_LATER)           \
  }                                                                             \
  template <class F>                                                            \
  inline void for_each_field(Type& r, F&& f) {                                  \
    LIST(METAPROBE_FIELD_VISIT_REQUIRED, METAPROBE_FIELD_VISIT_LATER)           \
  }

/// True for types declared with METAPROBE_RECORD (for_each_field found by argument-dependent lookup).
template <class T, class = void>
struct is_record : std::false_type {};
template <class T>
struct is_record<T, std::void_t<decltype(for_each_field(std::declval<const T&>(), 0))>> : std::true_type {};

/// The keys of a METAPROBE_RECORD type, in declaration order.
template <class T>
std::vector<std::string> record_field_names() {
  const T r{};
  std::vector<std::string> names;
  for_each_field(r, [&](const char* key, const auto&, FieldPresence) { names.emplace_back(key); });
  return names;
}

/// The keys of a METAPROBE_RECORD type with a nested record's keys as "key.subkey" (its leaves), in
/// declaration order: the paths of options and the flat names Python builds from them.
template <class T>
std::vector<std::string> record_field_paths() {
  const T r{};
  std::vector<std::string> paths;
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) {
    using V = std::decay_t<decltype(v)>;
    if constexpr (is_record<V>::value) {
      for (const auto& sub : record_field_paths<V>()) paths.push_back(std::string(key) + "." + sub);
    } else {
      paths.emplace_back(key);
    }
  });
  return paths;
}

/// Calls f(member) for the field of r's list whose key is `key` (f must accept every field type of the
/// list); false when the list has no such key.
template <class T, class F>
bool visit_field(const T& r, std::string_view key, F&& f) {
  bool found = false;
  for_each_field(r, [&](const char* k, const auto& v, FieldPresence) {
    if (!found && key == k) {
      found = true;
      f(v);
    }
  });
  return found;
}

}  // namespace metaprobe
