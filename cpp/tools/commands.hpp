#pragma once
// Each module of the CLI registers its subcommands on the root app (one file per module: cmd_<module>.cpp).
#include <CLI/CLI.hpp>

namespace metaprobe::cli {
void add_divergence_commands(CLI::App& app);
void add_probes_commands(CLI::App& app);
void add_params_commands(CLI::App& app);
void add_run_commands(CLI::App& app);
}  // namespace metaprobe::cli
