#include <metaprobe/version.hpp>
#include <metaprobe/error.hpp>

namespace metaprobe {
// Gives the shared library an exported symbol naming its version, so `nm -D` and dlopen users can check it.
extern "C" const char* metaprobe_version() { return kVersion; }
}  // namespace metaprobe
