// The `metaprobe` command-line tool: one subcommand group per module.
//
// Exit codes: 0 success (and --help / --version); 2 a usage error (bad or missing arguments, unknown
// subcommand, and a bare `metaprobe`, which prints the help to stderr like the Python wrapper does); 1 any
// runtime failure. Every failure prints exactly one line, `metaprobe: error: <message>`, to stderr: nothing
// escapes main (metaprobe::Error, any std::exception such as a JSON type error, or anything else).
#include <exception>
#include <iostream>
#include <string>

#include <metaprobe/error.hpp>
#include <metaprobe/version.hpp>

#include "commands.hpp"

namespace {

// The message on one line: embedded newlines (CLI11 joins some messages with them) become "; ".
std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\n') {
      out += "; ";
    } else if (c != '\r') {
      out += c;
    }
  }
  return out;
}

int fail(int code, const std::string& message) {
  std::cerr << "metaprobe: error: " << one_line(message) << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    CLI::App app{"metaprobe: how post-training changes a language model"};
    app.require_subcommand(0, 1);
    app.set_version_flag("--version", std::string("metaprobe ") + metaprobe::kVersion);
    metaprobe::cli::add_divergence_commands(app);
    metaprobe::cli::add_probes_commands(app);
    metaprobe::cli::add_params_commands(app);
    metaprobe::cli::add_run_commands(app);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::RuntimeError& e) {
      return e.get_exit_code();  // a command that already reported its failure (e.g. `run`, 130 on SIGINT)
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);
      return fail(2, std::string(e.what()) + " (run with --help for usage)");
    }
    if (app.get_subcommands().empty()) {
      std::cerr << app.help();
      return 2;
    }
    return 0;
  } catch (const metaprobe::Error& e) {
    return fail(1, e.what());
  } catch (const std::exception& e) {
    return fail(1, e.what());
  } catch (...) {
    return fail(1, "an unknown exception escaped (a bug in metaprobe; please report it)");
  }
}
