// `metaprobe params describe CKPT` and `metaprobe params compare REF TUNED --out stats.json [--csv stats.csv]`.
// A progress line goes to stderr only when it is a terminal; reports are written atomically.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <metaprobe/error.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/params/report.hpp>

#include "commands.hpp"

namespace metaprobe::cli {
namespace {

using namespace metaprobe::params;

ProgressCallback terminal_progress(const char* what) {
  if (!::isatty(STDERR_FILENO)) return {};
  return [what](const Progress& p) {
    const double pct = p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 100.0;
    std::string name = p.name.size() > 50 ? "..." + p.name.substr(p.name.size() - 47) : p.name;
    std::fprintf(stderr, "\r%s %zu/%zu tensors  %5.1f%%  %-50s", what, p.done, p.total, pct, name.c_str());
    if (p.done == p.total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

struct SpectralFlags {
  bool spectra = false;
  int64_t k = 0;
  int64_t subspace_k = 16;
  int64_t max_side = 16384;
};

void add_spectral_flags(CLI::App* cmd, SpectralFlags& f) {
  cmd->add_flag("--spectra", f.spectra, "Also compute spectral statistics of every matrix (slow)");
  cmd->add_option("--k", f.k, "Top-k randomized SVD instead of all singular values (0 = all)");
  cmd->add_option("--max-spectral-side", f.max_side, "Matrices with a larger side get no spectra (reported)");
}

}  // namespace

void add_params_commands(CLI::App& app) {
  auto* params = app.add_subcommand("params", "Parameter statistics of checkpoints");
  params->require_subcommand(1);

  auto* desc = params->add_subcommand("describe", "Per-tensor statistics of one checkpoint");
  auto desc_path = std::make_shared<std::string>();
  auto desc_out = std::make_shared<std::string>();
  auto desc_csv = std::make_shared<std::string>();
  auto desc_flags = std::make_shared<SpectralFlags>();
  desc->add_option("checkpoint", *desc_path, "Checkpoint directory or .safetensors file")->required();
  desc->add_option("--out", *desc_out, "Write the JSON report here (default: stdout)");
  desc->add_option("--csv", *desc_csv, "Also write a CSV table here");
  add_spectral_flags(desc, *desc_flags);
  desc->callback([=] {
    const io::Checkpoint ckpt = io::Checkpoint::open(*desc_path);
    DescribeOptions o;
    o.spectra = desc_flags->spectra;
    o.spectral.k = desc_flags->k;
    o.max_spectral_side = desc_flags->max_side;
    o.progress = terminal_progress("describe");
    const auto rows = describe(ckpt, o);
    const std::string json = description_json(rows);
    if (desc_out->empty()) {
      std::cout << json << "\n";
    } else {
      write_text_atomic(*desc_out, json);
    }
    if (!desc_csv->empty()) write_text_atomic(*desc_csv, description_csv(rows));
  });

  auto* cmp = params->add_subcommand("compare", "Compare a tuned checkpoint with its reference, tensor by tensor");
  auto ref = std::make_shared<std::string>();
  auto tuned = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto csv = std::make_shared<std::string>();
  auto flags = std::make_shared<SpectralFlags>();
  auto atol = std::make_shared<double>(1e-5);
  auto eta = std::make_shared<double>(1e-3);
  cmp->add_option("reference", *ref, "Reference checkpoint (directory or .safetensors)")->required();
  cmp->add_option("tuned", *tuned, "Tuned checkpoint (directory or .safetensors)")->required();
  cmp->add_option("--out", *out, "JSON report path")->required();
  cmp->add_option("--csv", *csv, "Also write one CSV row per tensor here");
  cmp->add_option("--atol", *atol, "Absolute sparsity tolerance (|dW| <= atol)")->capture_default_str();
  cmp->add_option("--eta", *eta, "Relative sparsity tolerance (|dW| <= eta * max(|w0|, |w1|))")->capture_default_str();
  cmp->add_option("--subspace-k", flags->subspace_k, "k of the top-k update energy and principal angles");
  auto emulate_bf16 = std::make_shared<bool>(false);
  auto nonfinite = std::make_shared<std::string>("nan");
  cmp->add_flag("--emulate-bf16", *emulate_bf16,
                "Round both sides to bf16 and subtract in bf16 for sparsity_abs, unchanged_fraction and update rank "
                "(Mukherjee et al.'s check_sparsity.py; docs/params.md)");
  cmp->add_option("--nonfinite", *nonfinite, "NaN/Inf pairs: 'nan' (summaries NaN, counted) or 'error'")
      ->capture_default_str();
  add_spectral_flags(cmp, *flags);
  cmp->callback([=] {
    const io::Checkpoint r = io::Checkpoint::open(*ref);
    const io::Checkpoint t = io::Checkpoint::open(*tuned);
    CompareOptions o;
    o.update.atol = *atol;
    o.update.eta = *eta;
    o.emulate_bf16 = *emulate_bf16;
    o.nonfinite = parse_nonfinite_policy(*nonfinite, "--nonfinite");
    o.spectra = flags->spectra;
    o.spectral.k = flags->k;
    o.subspace_k = flags->subspace_k;
    o.max_spectral_side = flags->max_side;
    o.progress = terminal_progress("compare");
    const CompareResult res = compare_checkpoints(r, t, o);
    write_text_atomic(*out, comparison_json(res));
    if (!csv->empty()) write_text_atomic(*csv, comparison_csv(res));
    std::cout << "compared " << res.tensors.size() << " tensors (" << res.only_in_reference.size()
              << " only in reference, " << res.only_in_tuned.size() << " only in tuned, "
              << res.shape_mismatches.size() << " shape mismatches); rel_update_norm "
              << res.total.rel_update_norm << ", sparsity_abs " << res.total.sparsity_abs << ", sparsity_rel "
              << res.total.sparsity_rel << " -> " << *out << "\n";
  });
}

}  // namespace metaprobe::cli
