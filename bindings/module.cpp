// Entry point of the extension module metaprobe._core.
#include <metaprobe/version.hpp>

#include "binding.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "metaprobe C++ core (use the `metaprobe` package rather than this module)";
  m.attr("__version__") = metaprobe::kVersion;
  m.attr("torch_version_built") = TORCH_VERSION;
  metaprobe::bindings::bind_errors(m);
  metaprobe::bindings::bind_lm(m);
  metaprobe::bindings::bind_io(m);
  metaprobe::bindings::bind_params(m);
  metaprobe::bindings::bind_divergence(m);
  metaprobe::bindings::bind_probes(m);
  metaprobe::bindings::bind_probes_score(m);
  metaprobe::bindings::bind_meta(m);
}
