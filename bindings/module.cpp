// Entry point of the extension module metaprobe._core.
#include <metaprobe/version.hpp>

#include "binding.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "metaprobe C++ core (use the `metaprobe` package rather than this module)";
  m.attr("__version__") = metaprobe::kVersion;
  m.attr("torch_version_built") = TORCH_VERSION;
  metaprobe::bindings::bind_errors(m);
}
