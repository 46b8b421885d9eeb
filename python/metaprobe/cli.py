"""The ``metaprobe`` command line (Python side).

``metaprobe demo [--out runs/demo] [--fast] [--seed N] [--threads N]`` runs the end-to-end study of
:mod:`metaprobe.demo`; ``metaprobe probes export-lm-eval SUITE DIR [--options OPTIONS.json]`` writes the suite
as lm-evaluation-harness tasks (:mod:`metaprobe.lm_eval_tasks`). Every other subcommand (``probes``, ``run``,
``divergence``, …) belongs to the C++ ``metaprobe`` binary bundled with the package at
``metaprobe/bin/metaprobe``; it is executed with the same arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Sequence

__all__ = ["main", "bundled_binary"]

PYTHON_COMMANDS = ("demo",)


def bundled_binary() -> Optional[str]:
    """Path of the bundled C++ ``metaprobe`` executable, or None when this installation has none."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "bin", "metaprobe")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metaprobe demo",
        description="Train a tiny base model, post-train it with SFT (off-policy teacher traces) and with RL (GRPO) "
                    "on one probe slice to a matched gain over several seeds, meta-probe the checkpoints and state "
                    "the SFT - RL effects with bootstrap intervals (report.json, report.html, plots).")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--fast", action="store_true", help="the small preset (2 arm seeds, 10 items per cell; what the tests run)")
    p.add_argument("--seed", type=int, default=0, help="seed of the probes, the models and the training (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1, the fastest for these tiny models on a shared machine)")
    p.add_argument("--target", default=None,
                   help="target slice 'skill/domain' (default: fact_retrieval/physics; with --fast diagnostic/math)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines; only the summary")
    return p


def _demo(argv: Sequence[str]) -> int:
    args = _demo_parser().parse_args(list(argv))
    from . import demo
    from ._core import MetaprobeError

    if args.seed < 0:
        print(f"metaprobe demo: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"metaprobe demo: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    preset = demo.DemoConfig.fast if args.fast else demo.DemoConfig.default
    overrides = {"seed": args.seed, "threads": args.threads}
    if args.target:
        overrides["target"] = args.target
    cfg = preset(**overrides)
    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    try:
        result = demo.run_demo(args.out, config=cfg, progress=not args.quiet, log=log)
    except MetaprobeError as exc:
        print(f"metaprobe demo: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    print(f"metaprobe demo ({'fast' if args.fast else 'default'}, seed {args.seed}, {args.threads} thread(s), "
          f"target {cfg.target}): {wall:.1f} s")
    print(result.summary_text())
    print(json.dumps({"case": "demo_fast" if args.fast else "demo", "seed": args.seed, "threads": args.threads,
                      "wall_s": round(wall, 2), "phases_s": {k: round(v, 2) for k, v in result.timings.items()}}))
    print(f"\nwrote {os.path.join(args.out, 'report.json')}, {os.path.join(args.out, 'report.html')}, "
          f"{os.path.join(args.out, 'plots')}/ and the checkpoints")
    return 0


def _export_lm_eval(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="metaprobe probes export-lm-eval",
        description="Write a probe suite as lm-evaluation-harness tasks (one per cell plus the group 'metaprobe'), "
                    "scored by metaprobe's own reading and checking.")
    p.add_argument("suite", help="the probe suite (JSONL)")
    p.add_argument("directory", help="output folder (created; files there are replaced)")
    p.add_argument("--options", default=None,
                   help="a JSON object of MetaOptions fields (prompt_format, prompt_template, stop, max_new_tokens, "
                        "n_samples, think_open, think_close, choice_mode, ...) the tasks reproduce")
    args = p.parse_args(list(argv))
    from . import lm_eval_tasks
    from ._core import MetaprobeError
    from .meta import MetaOptions

    prog = "metaprobe probes export-lm-eval"
    try:
        fields = {}
        if args.options is not None:
            try:
                with open(args.options, encoding="utf-8") as f:
                    fields = json.load(f)
            except (OSError, ValueError) as exc:
                print(f"{prog}: --options '{args.options}': {exc}", file=sys.stderr)
                return 1
            if not isinstance(fields, dict):
                print(f"{prog}: --options '{args.options}' holds JSON {type(fields).__name__}, expected an object",
                      file=sys.stderr)
                return 1
        try:
            options = MetaOptions(**fields)
        except TypeError as exc:
            print(f"{prog}: --options '{args.options}': {exc}", file=sys.stderr)
            return 1
        names = lm_eval_tasks.export(args.suite, args.directory, options)
    except MetaprobeError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(names) - 1} tasks and the group '{names[-1]}' to {args.directory}; run them with "
          f"lm_eval --include_path {args.directory} --tasks {names[-1]} --log_samples ...", file=sys.stderr)
    return 0


def _usage() -> str:
    return ("usage: metaprobe <command> [args]\n"
            "  demo      run the end-to-end SFT-vs-RL meta-probing study (metaprobe demo --help)\n"
            "  probes export-lm-eval SUITE DIR   the suite as lm-evaluation-harness tasks\n"
            "  other commands (probes, run, ...) are served by the bundled C++ binary")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``metaprobe`` console script and of ``python -m metaprobe``."""
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in PYTHON_COMMANDS:
        return _demo(args[1:])
    if args[:2] == ["probes", "export-lm-eval"]:
        return _export_lm_eval(args[2:])
    binary = bundled_binary()
    if binary is None:
        print(f"metaprobe: '{args[0]}' is a command of the C++ metaprobe binary, which this installation does not "
              "bundle (expected metaprobe/bin/metaprobe inside the package); build it with `make build` and run "
              "build/cpp/tools/metaprobe, or use `metaprobe demo`.", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, [binary] + args)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
