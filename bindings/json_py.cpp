// nlohmann::json <-> Python objects, walked directly (no text in between).
#include "json_py.hpp"

#include <cmath>

#include <metaprobe/error.hpp>

namespace metaprobe::bindings {

py::object json_to_py(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<uint64_t>());
    case nlohmann::json::value_t::number_float: {
      const double v = j.get<double>();
      return std::isfinite(v) ? py::object(py::float_(v)) : py::object(py::none());
    }
    case nlohmann::json::value_t::string:
      return py::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      py::list out(j.size());
      for (size_t i = 0; i < j.size(); ++i) out[i] = json_to_py(j[i]);
      return out;
    }
    case nlohmann::json::value_t::object: {
      py::dict out;
      for (auto it = j.begin(); it != j.end(); ++it) out[py::str(it.key())] = json_to_py(it.value());
      return out;
    }
    default:  // binary and discarded values never come out of our documents
      throw InvalidArgument(std::string("json_to_py: a JSON ") + j.type_name() + " value, expected a JSON document value");
  }
}

nlohmann::json py_to_json(py::handle obj, const std::string& what) {
  if (obj.is_none()) return nullptr;
  if (PyBool_Check(obj.ptr())) return obj.cast<bool>();  // before int: bool is an int subclass
  if (PyLong_Check(obj.ptr())) {
    try {
      return obj.cast<int64_t>();
    } catch (const py::cast_error&) {
      throw InvalidArgument(what + ": " + std::string(py::str(obj)) + ", expected an integer within 64 bits");
    }
  }
  if (PyFloat_Check(obj.ptr())) return obj.cast<double>();
  if (PyUnicode_Check(obj.ptr())) return obj.cast<std::string>();
  if (PyDict_Check(obj.ptr())) {
    nlohmann::json out = nlohmann::json::object();
    for (auto item : py::reinterpret_borrow<py::dict>(obj)) {
      if (!PyUnicode_Check(item.first.ptr()))
        throw InvalidArgument(what + ": a key of type " + std::string(py::str(py::type::of(item.first))) +
                              ", expected str keys");
      const std::string key = item.first.cast<std::string>();
      out[key] = py_to_json(item.second, what + "." + key);
    }
    return out;
  }
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    nlohmann::json out = nlohmann::json::array();
    size_t i = 0;
    for (auto item : obj) out.push_back(py_to_json(item, what + "[" + std::to_string(i++) + "]"));
    return out;
  }
  if (PyIndex_Check(obj.ptr())) {  // integer types that are not int (numpy's)
    PyObject* index = PyNumber_Index(obj.ptr());
    if (index == nullptr) throw py::error_already_set();
    return py_to_json(py::reinterpret_steal<py::object>(index), what);
  }
  throw InvalidArgument(what + ": a " + std::string(py::str(py::type::of(obj))) +
                        ", expected a JSON value (dict, list, str, int, float, bool or None)");
}

}  // namespace metaprobe::bindings
