#pragma once
// Shared declarations of the binding layer. Each module binds itself in bindings/<module>.cpp through a
// `bind_<module>(py::module_&)` function called from module.cpp.
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
void bind_errors(py::module_& m);
void bind_lm(py::module_& m);
void bind_io(py::module_& m);
void bind_params(py::module_& m);
void bind_divergence(py::module_& m);
void bind_probes(py::module_& m);
void bind_probes_score(py::module_& m);
void bind_meta(py::module_& m);
}  // namespace metaprobe::bindings
