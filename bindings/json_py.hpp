#pragma once
// The one converter between nlohmann::json and Python objects: documents (the report, run options) cross the
// C++/Python boundary as dicts and lists, never as JSON text.
#include <string>

#include <nlohmann/json.hpp>

#include "binding.hpp"

namespace metaprobe::bindings {

/// A JSON value as Python: objects as dicts, arrays as lists, NaN and ±inf numbers as None (as JSON text
/// would carry them).
py::object json_to_py(const nlohmann::json& j);

/// A Python value (dict with str keys, list or tuple, str, bool, int, float, None) as JSON; any other type is an
/// InvalidArgument naming `what` and the path of the value inside it (e.g. "options.stop[1]").
nlohmann::json py_to_json(py::handle obj, const std::string& what);

}  // namespace metaprobe::bindings
