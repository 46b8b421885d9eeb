#pragma once
// Option structs and result records with one field list (metaprobe/common/fields.hpp) as typed Python objects.
// bind_options<T> makes a class whose keyword constructor starts from T{} (the C++ defaults, never restated),
// with one read/write property per field, __repr__, __eq__ and to_dict(); a bad value raises InvalidArgumentError
// naming the field, an unknown keyword a TypeError naming the class. Python builds one such object and passes
// it whole, as tiktoken's py.rs takes typed arguments (docs/architecture.md, "Bindings").
//
// A field's conversion is OptionField<V>: pybind11's own (what a function argument of type V gets) for numbers,
// strings and lists; an enum with a name table (METAPROBE_ENUM_NAMES) from and to its name; an optional tensor
// from None or a tensor; a nested record from its class or a dict. A binding specialises OptionField for any
// other field type before it binds the struct (bindings/divergence.cpp: MetricSet).
#include <string>
#include <type_traits>
#include <utility>

#include <metaprobe/common/enum_names.hpp>
#include <metaprobe/common/fields.hpp>
#include <metaprobe/error.hpp>

#include "binding.hpp"

namespace metaprobe::bindings {

/// repr(h) as a C++ string (for messages).
inline std::string py_repr(py::handle h) { return py::repr(h).cast<std::string>(); }

/// The conversion of one field type between Python and C++ (see the header comment for the cases).
template <class V, class = void>
struct OptionField {
  /// The C++ value of `h` for the field `where`; InvalidArgument naming `where` when it does not convert.
  static V from_py(py::handle h, const std::string& where) {
    try {
      return h.cast<V>();
    } catch (const py::cast_error&) {
      throw InvalidArgument(where + ": got " + py_repr(h) + " (" +
                            py::str(h.get_type().attr("__name__")).cast<std::string>() + "), expected " +
                            expected());
    }
  }
  /// The Python value of a field.
  static py::object to_py(const V& v) { return py::cast(v); }
  /// What a value must be, for messages ("a float").
  static std::string expected() {
    if constexpr (std::is_same_v<V, bool>) return "a bool";
    else if constexpr (std::is_integral_v<V> && std::is_unsigned_v<V>) return "a non-negative int";
    else if constexpr (std::is_integral_v<V>) return "an int";
    else if constexpr (std::is_floating_point_v<V>) return "a float";
    else if constexpr (std::is_same_v<V, std::string>) return "a str";
    else if constexpr (std::is_same_v<V, std::vector<std::string>>) return "a list of str";
    else return "a value of the field's type";
  }
};

/// An enum with a name table: its canonical name in Python, any of its names (aliases included) from Python.
template <class E>
struct OptionField<E, std::enable_if_t<std::is_enum_v<E>>> {
  static E from_py(py::handle h, const std::string& where) {
    if (py::isinstance<py::str>(h)) return parse_enum<E>(h.cast<std::string>());
    throw InvalidArgument(where + ": got " + py_repr(h) + ", expected a str from " + enum_name_list<E>());
  }
  static py::object to_py(E v) { return py::str(std::string(enum_name(v))); }
};

/// A list of an enum with a name table (SuiteSpec::skills): a list of names from Python, the names back.
template <class E>
struct OptionField<std::vector<E>, std::enable_if_t<std::is_enum_v<E>>> {
  static std::vector<E> from_py(py::handle h, const std::string& where) {
    if (py::isinstance<py::str>(h) || !py::isinstance<py::sequence>(h))
      throw InvalidArgument(where + ": got " + py_repr(h) + ", expected a list of str from " + enum_name_list<E>());
    std::vector<E> out;
    const auto seq = py::reinterpret_borrow<py::sequence>(h);
    for (size_t i = 0; i < seq.size(); ++i) {
      const std::string at = where + "[" + std::to_string(i) + "]";
      try {
        out.push_back(OptionField<E>::from_py(seq[i], at));
      } catch (const InvalidArgument& e) {  // the enum's message names its kind; say which entry it was
        if (std::string_view(e.what()).rfind(at, 0) == 0) throw;
        throw InvalidArgument(at + ": " + e.what());
      }
    }
    return out;
  }
  static py::object to_py(const std::vector<E>& v) {
    py::list names;
    for (E e : v) names.append(py::str(std::string(enum_name(e))));
    return std::move(names);
  }
};

/// An optional tensor: None is the undefined tensor.
template <>
struct OptionField<at::Tensor> {
  static at::Tensor from_py(py::handle h, const std::string& where) {
    if (h.is_none()) return at::Tensor();
    if (!THPVariable_Check(h.ptr())) {
      throw InvalidArgument(where + ": got a " + py::str(h.get_type().attr("__name__")).cast<std::string>() +
                            ", expected a torch.Tensor or None");
    }
    return h.cast<at::Tensor>();
  }
  static py::object to_py(const at::Tensor& t) { return t.defined() ? py::cast(t) : py::none(); }
};

template <class T>
void set_option_field(T& r, const std::string& key, py::handle value, const std::string& prefix);
template <class T>
py::dict options_dict(const T& r);

/// A nested record (e.g. SftOptions::optimizer): an object of its bound class, or a dict of its fields.
template <class R>
struct OptionField<R, std::enable_if_t<is_record<R>::value>> {
  static R from_py(py::handle h, const std::string& where) {
    if (py::isinstance<R>(h)) return h.cast<R>();
    if (py::isinstance<py::dict>(h)) {
      R r{};
      for (auto kv : h.cast<py::dict>()) set_option_field(r, py::str(kv.first).cast<std::string>(), kv.second, where + ".");
      return r;
    }
    throw InvalidArgument(where + ": got a " + py::str(h.get_type().attr("__name__")).cast<std::string>() +
                          ", expected " + py::str(py::type::of<R>().attr("__name__")).cast<std::string>() +
                          " or a dict of its fields");
  }
  static py::object to_py(const R& r) { return py::cast(r); }
};

/// Whether two values of a field are equal (tensors: the same tensor, or both absent).
template <class V>
bool option_equal(const V& a, const V& b) {
  if constexpr (std::is_same_v<V, at::Tensor>) {
    return a.defined() == b.defined() && (!a.defined() || a.is_same(b));
  } else if constexpr (is_record<V>::value) {
    bool same = true;
    for_each_field(a, [&](const char* key, const auto& va, FieldPresence) {
      for_each_field(b, [&](const char* kb, const auto& vb, FieldPresence) {
        if constexpr (std::is_same_v<decltype(va), decltype(vb)>) {
          if (std::string_view(key) == kb) same = same && option_equal(va, vb);
        }
      });
    });
    return same;
  } else {
    return a == b;
  }
}

/// The keys of T joined as "a, b, c" (for messages).
template <class T>
std::string option_keys(const T& r) {
  std::string s;
  for_each_field(r, [&](const char* key, const auto&, FieldPresence) { s += (s.empty() ? "" : ", ") + std::string(key); });
  return s;
}

/// Sets the field `key` of `r` from `value`; `prefix` qualifies the field in messages ("optimizer.").
template <class T>
void set_option_field(T& r, const std::string& key, py::handle value, const std::string& prefix) {
  bool found = false;
  for_each_field(r, [&](const char* k, auto& member, FieldPresence) {
    if (found || key != k) return;
    found = true;
    member = OptionField<std::decay_t<decltype(member)>>::from_py(value, prefix + k);
  });
  if (!found) {
    throw py::type_error(py::str(py::type::of<T>().attr("__name__")).cast<std::string>() + ": unknown field '" +
                         prefix + key + "', expected one of " + option_keys(r));
  }
}

/// The field `key` of the object `self` (a nested record as a view into `self`, so `o.optimizer.lr = x` writes).
template <class T>
py::object get_option_field(py::object self, const std::string& key) {
  T& r = self.cast<T&>();
  py::object out;
  for_each_field(r, [&](const char* k, auto& member, FieldPresence) {
    if (out || key != k) return;
    using V = std::decay_t<decltype(member)>;
    if constexpr (is_record<V>::value) {
      out = py::cast(&member, py::return_value_policy::reference_internal, self);
    } else {
      out = OptionField<V>::to_py(member);
    }
  });
  return out;
}

/// Every field of `r` as a dict (nested records as nested dicts); the keys are the field list's.
template <class T>
py::dict options_dict(const T& r) {
  py::dict d;
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) {
    using V = std::decay_t<decltype(v)>;
    if constexpr (is_record<V>::value) {
      d[py::str(key)] = options_dict(v);
    } else {
      d[py::str(key)] = OptionField<V>::to_py(v);
    }
  });
  return d;
}

/// "Name(a=1, b='x', ...)" from the fields' Python reprs.
template <class T>
std::string options_repr(const T& r, const std::string& name) {
  std::string s = name + "(";
  bool first = true;
  for_each_field(r, [&](const char* key, const auto& v, FieldPresence) {
    s += (first ? "" : ", ") + std::string(key) + "=" + py_repr(OptionField<std::decay_t<decltype(v)>>::to_py(v));
    first = false;
  });
  return s + ")";
}

/// Binds T as the Python class `name` of `m`: keyword-only constructor from T{}, a property per field, __repr__,
/// __eq__, to_dict() and copy support. The class docstring is `doc` plus the fields with their C++ defaults.
template <class T>
py::class_<T> bind_options(py::module_& m, const char* name, const std::string& doc) {
  const T defaults{};
  const std::string cls_name = name;
  const std::string full_doc = doc + "\n\nKeyword constructor; fields and their C++ defaults: " +
                               options_repr(defaults, cls_name) + ".";
  py::class_<T> cls(m, name, full_doc.c_str());  // pybind11 copies the docstring
  cls.def(py::init([](const py::kwargs& fields) {
            T r{};
            for (auto kv : fields) set_option_field(r, py::str(kv.first).cast<std::string>(), kv.second, "");
            return r;
          }),
          "Starts from the C++ defaults and sets the given fields (keywords only).");
  for_each_field(defaults, [&](const char* key, const auto&, FieldPresence) {
    const std::string k = key;
    cls.def_property(
        key, [k](py::object self) { return get_option_field<T>(std::move(self), k); },
        [k](T& r, py::handle value) { set_option_field(r, k, value, ""); });
  });
  cls.def("__repr__", [cls_name](const T& r) { return options_repr(r, cls_name); });
  cls.def("__eq__", [](const T& a, const T& b) { return option_equal(a, b); }, py::is_operator());
  cls.def("to_dict", [](const T& r) { return options_dict(r); }, "The fields as a dict (nested options as dicts).");
  cls.def("__copy__", [](const T& r) { return T(r); });
  cls.def("__deepcopy__", [](const T& r, const py::dict&) { return T(r); }, py::arg("memo"));
  return cls;
}

}  // namespace metaprobe::bindings
