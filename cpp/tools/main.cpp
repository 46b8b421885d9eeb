// The `metaprobe` command-line tool: one subcommand group per module.
#include <iostream>

#include <metaprobe/error.hpp>
#include <metaprobe/version.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"metaprobe: how post-training changes a language model"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("metaprobe ") + metaprobe::kVersion);
  metaprobe::cli::add_divergence_commands(app);
  metaprobe::cli::add_probes_commands(app);
  metaprobe::cli::add_params_commands(app);
  metaprobe::cli::add_run_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const metaprobe::Error& e) {
    std::cerr << "metaprobe: error: " << e.what() << "\n";
    return 1;
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
  }
  return 0;
}
