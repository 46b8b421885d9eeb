#pragma once
// Shared declarations of the binding layer. Each module binds itself in bindings/<module>.cpp through a
// `bind_<module>(py::module_&)` function called from module.cpp.
#include <memory>

#include <torch/extension.h>

#include <metaprobe/common/enum_names.hpp>

namespace py = pybind11;

namespace metaprobe::bindings {
/// E's canonical names as a Python tuple, from its C++ name table (the Python layer restates none of them).
template <typename E>
py::tuple enum_names_tuple() {
  py::list names;
  for (const auto& n : enum_names<E>()) names.append(py::str(n));
  return py::tuple(names);
}
/// A Python object that C++ callbacks share and whose last reference may be dropped on a thread without the GIL
/// (the deleter takes it). Every callback the library keeps beyond a call holds its Python object this way.
inline std::shared_ptr<py::object> gil_safe_hold(py::object o) {
  return std::shared_ptr<py::object>(new py::object(std::move(o)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
}
void bind_errors(py::module_& m);
void bind_lm(py::module_& m);
void bind_io(py::module_& m);
void bind_params(py::module_& m);
void bind_divergence(py::module_& m);
void bind_probes(py::module_& m);
void bind_probes_score(py::module_& m);
void bind_meta(py::module_& m);
}  // namespace metaprobe::bindings
