#pragma once
// Each module of the CLI registers its subcommands on the root app (one file per module: cmd_<module>.cpp).
#include <CLI/CLI.hpp>

namespace metaprobe::cli {
}  // namespace metaprobe::cli
