#pragma once
// Shared declarations of the binding layer. Each module binds itself in bindings/<module>.cpp through a
// `bind_<module>(py::module_&)` function called from module.cpp.
#include <torch/extension.h>

namespace py = pybind11;

namespace metaprobe::bindings {
void bind_errors(py::module_& m);
}  // namespace metaprobe::bindings
