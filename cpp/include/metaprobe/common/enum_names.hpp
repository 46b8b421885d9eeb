#pragma once
// One declaration per enum: a constexpr name table, from which its names, its parser (with the error message
// that names the field, the bad value and the valid names), its JSON form and the name lists the Python layer
// exposes are all derived (docs/architecture.md, "Enums").
//
// An enum E opts in with METAPROBE_ENUM_NAMES in its own namespace, right after its declaration:
//
//   enum class Side { right, left };
//   METAPROBE_ENUM_NAMES(Side, "side", "unknown value '{value}', expected one of {names}",
//                        {Side::right, "right"}, {Side::left, "left"})
//
// The first entry of a value is its canonical name (enum_name); later entries of the same value are aliases
// that parse_enum also accepts. The rejection template may use {value} (the text given), {names} ("a, b, c")
// and {names_or} ("'a', 'b' or 'c'"); the message is "<what>: <template filled in>", or the filled-in template
// alone when it places the field itself with {what} ("{what} is '{value}', expected one of {names}").
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <metaprobe/error.hpp>

namespace metaprobe {

/// One (value, name) pair of an enum's name table.
template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

/// The name table of an enum: the field it names in messages, the rejection template and the pairs.
template <typename E, std::size_t N>
struct EnumTable {
  std::string_view field;
  std::string_view reject;
  std::array<EnumName<E>, N> entries;
};

/// Builds an EnumTable; N is the number of braced pairs given.
template <typename E, std::size_t N>
constexpr EnumTable<E, N> make_enum_table(std::string_view field, std::string_view reject,
                                          const EnumName<E> (&entries)[N]) {
  EnumTable<E, N> t{field, reject, {}};
  for (std::size_t i = 0; i < N; ++i) t.entries[i] = entries[i];
  return t;
}

/// The table of E, found through the enum_table(E) that METAPROBE_ENUM_NAMES declares beside E.
template <typename E>
inline constexpr auto kEnumTable = enum_table(E{});

/// True when some value of E's table has more than one name (an alias).
template <typename E>
constexpr bool enum_has_aliases() {
  const auto& entries = kEnumTable<E>.entries;
  for (std::size_t i = 0; i < entries.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (entries[k].value == entries[i].value) return true;
  return false;
}

/// Every value of E in table order, as a constexpr array (for tables without aliases: one entry per value).
template <typename E>
constexpr auto enum_values() {
  static_assert(!enum_has_aliases<E>(), "enum_values: the table has aliases; list the values explicitly");
  constexpr std::size_t n = std::tuple_size<decltype(kEnumTable<E>.entries)>::value;
  std::array<E, n> out{};
  for (std::size_t i = 0; i < n; ++i) out[i] = kEnumTable<E>.entries[i].value;
  return out;
}

namespace enum_detail {

inline void replace_all(std::string& s, std::string_view key, const std::string& by) {
  for (std::size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + by.size())) s.replace(p, key.size(), by);
}

}  // namespace enum_detail

/// The canonical name of `value`; throws InvalidArgument when `value` is not an enumerator in the table.
template <typename E>
std::string_view enum_name(E value) {
  for (const auto& e : kEnumTable<E>.entries) {
    if (e.value == value) return e.name;
  }
  throw InvalidArgument(std::string(kEnumTable<E>.field) + ": invalid enum value " +
                        std::to_string(static_cast<long long>(value)));
}

/// The canonical names of E, one per value, in table order (the lists the bindings expose to Python).
template <typename E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  const auto& entries = kEnumTable<E>.entries;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    bool first = true;
    for (std::size_t k = 0; k < i; ++k) first = first && !(entries[k].value == entries[i].value);
    if (first) out.emplace_back(entries[i].name);
  }
  return out;
}

/// Every name parse_enum<E> accepts (aliases included), joined as "a, b, c".
template <typename E>
std::string enum_name_list() {
  std::string s;
  for (const auto& e : kEnumTable<E>.entries) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

/// The message for a rejected name `text` of field `what`, from E's rejection template.
template <typename E>
std::string enum_reject_message(std::string_view text, std::string_view what) {
  const auto& entries = kEnumTable<E>.entries;
  std::string names_or;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    names_or += (i == 0 ? "" : i + 1 == entries.size() ? " or " : ", ") + ("'" + std::string(entries[i].name) + "'");
  }
  std::string body(kEnumTable<E>.reject);
  const bool places_what = body.find("{what}") != std::string::npos;
  enum_detail::replace_all(body, "{what}", std::string(what));
  enum_detail::replace_all(body, "{names_or}", names_or);
  enum_detail::replace_all(body, "{names}", enum_name_list<E>());
  enum_detail::replace_all(body, "{value}", std::string(text));  // last: the given text is never a placeholder
  return places_what ? body : std::string(what) + ": " + body;
}

/// The value named `text`; throws InvalidArgument naming `what` (default: the table's field), the value and
/// the valid names.
template <typename E>
E parse_enum(std::string_view text, std::string_view what = kEnumTable<E>.field) {
  for (const auto& e : kEnumTable<E>.entries) {
    if (e.name == text) return e.value;
  }
  throw InvalidArgument(enum_reject_message<E>(text, what));
}

namespace enum_detail {

/// from_json of a table-driven enum: a string in the table, else InvalidArgument naming the field, the value and
/// the valid names (never a default enumerator). Readers of files wrap it in their FormatError with the path.
template <typename BasicJsonType, typename E>
void enum_from_json(const BasicJsonType& j, E& value) {
  if (!j.is_string()) {
    throw InvalidArgument(std::string(kEnumTable<E>.field) + ": got JSON " + j.type_name() + " " + j.dump() +
                          ", expected one of " + enum_name_list<E>());
  }
  value = parse_enum<E>(j.template get_ref<const typename BasicJsonType::string_t&>());
}

}  // namespace enum_detail

}  // namespace metaprobe

/// Declares E's name table (see the top of this file) and its nlohmann JSON form (the canonical name; a JSON
/// value outside the table is an InvalidArgument). Use in E's namespace; needs no nlohmann include.
#define METAPROBE_ENUM_NAMES(E, FIELD, REJECT, ...)                                                   \
  constexpr auto enum_table(E) { return ::metaprobe::make_enum_table<E>(FIELD, REJECT, {__VA_ARGS__}); } \
  template <typename BasicJsonType>                                                                 \
  void to_json(BasicJsonType& j, const E& value) {                                                  \
    j = std::string(::metaprobe::enum_name(value));                                                 \
  }                                                                                                 \
  template <typename BasicJsonType>                                                                 \
  void from_json(const BasicJsonType& j, E& value) {                                                \
    ::metaprobe::enum_detail::enum_from_json(j, value);                                             \
  }
