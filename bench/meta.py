"""Benchmark of the meta-probing run: its wall time against the bare forward passes it needs, the cost of
scoring imported responses, and the cost of resuming a finished run directory.

Every forward call the run makes (generation steps, teacher forcing, the sampled-token estimator) is recorded
by a wrapping logit source; the bare cost is those same calls replayed on the same models and tensors. Runs and
replays alternate in one process; medians of --repeats pairs. overhead = run / forward − 1. Those cases give the
stages as Python callables, so generation re-runs the whole sequence per token; ``native_cached`` gives the
TinyLMs themselves (KV-cached generation) and compares with the same greedy ``generate`` calls plus the
teacher-forced passes along the gold solutions.

``meta.imported_responses``: a stage given another engine's answers (no model) against the same stage
generating them: the scoring-only cost per item. ``meta.resume``: re-running a finished run directory with
``resume=True`` (every stage re-read, nothing probed) against the run that wrote it.

    python bench/meta.py --json            # one JSON object per case per line
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch

import metaprobe
from metaprobe import MetaOptions, MetaProbe
from metaprobe.lm import TinyLM


class Recorder:
    """A logit source that records every (ids, mask) it is called with."""

    def __init__(self, model: TinyLM) -> None:
        self.model = model
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.calls.append((ids, mask))
        return self.model(ids, mask)


def two_stages(probes, opts: MetaOptions, base: TinyLM, tuned: TinyLM, sources=None, tokenizer=None) -> MetaProbe:
    """The study every case times: the base and one SFT stage, with their checkpoints; ``sources`` (two logit
    sources, e.g. Recorders) stand in for the models, and then the tokenizer must be given."""
    src_base, src_tuned = sources if sources is not None else (base, tuned)
    mp = MetaProbe(probes, options=opts, tokenizer=tokenizer)
    mp.add_stage("base", source=src_base, checkpoint=base.state_dict())
    mp.add_stage("tuned", arm="sft", step=1, source=src_tuned, checkpoint=tuned.state_dict())
    return mp


def one_case(mode: str, probes, base: TinyLM, tuned: TinyLM, repeats: int, max_new: int) -> dict:
    opts = MetaOptions(max_new_tokens=max_new, batch_size=len(probes), reference_mode=mode, cache_k=32)
    run_times, fwd_times = [], []
    calls = tokens = 0
    for _ in range(repeats):
        rb, rt = Recorder(base), Recorder(tuned)
        mp = two_stages(probes, opts, base, tuned, sources=(rb, rt), tokenizer="char")  # the recorders wrap TinyLMs
        t0 = time.perf_counter()
        mp.run(progress=False)
        run_times.append(time.perf_counter() - t0)
        recorded = [(base, c) for c in rb.calls] + [(tuned, c) for c in rt.calls]
        calls = len(recorded)
        tokens = sum(int(m.numel()) for _, (i, m) in recorded)
        t0 = time.perf_counter()
        for model, (ids, mask) in recorded:
            model(ids, mask)
        fwd_times.append(time.perf_counter() - t0)
    run_s, fwd_s = statistics.median(run_times), statistics.median(fwd_times)
    return {"bench": "meta.run_vs_forward", "case": mode, "threads": torch.get_num_threads(),
            "d_model": base.config.d_model, "n_layers": base.config.n_layers, "items": len(probes),
            "max_new_tokens": max_new, "forward_calls": calls, "tokens": tokens, "repeats": repeats,
            "run_s": round(run_s, 4), "forward_s": round(fwd_s, 4), "overhead": round(run_s / fwd_s - 1, 4),
            "target_overhead": 0.10}


def cached_case(probes, base: TinyLM, tuned: TinyLM, repeats: int, max_new: int) -> dict:
    """Native TinyLM stages (the KV-cached generation path) against the bare work of the same run: the greedy
    ``TinyLM.generate`` calls (the same C++ cached loop, same prompts, limit, stop strings and batch) plus the
    teacher-forced passes along the gold solutions, recorded once from a run with ``behaviour=False``. No stop
    string and no sampled estimator, so every answer runs to the limit and greedy answers are all it generates."""
    opts = MetaOptions(max_new_tokens=max_new, batch_size=len(probes), divergence_on="gold", sampled_estimator=False,
                       stop=())
    rb, rt = Recorder(base), Recorder(tuned)
    two_stages(probes, replace(opts, behaviour=False), base, tuned, sources=(rb, rt), tokenizer="char").run(progress=False)
    recorded = [(base, c) for c in rb.calls] + [(tuned, c) for c in rt.calls]
    prompts = probes.render(opts.prompt_template)
    stop = [opts.stop] if isinstance(opts.stop, str) else list(opts.stop)
    run_times, bare_times = [], []
    new_tokens = 0
    for _ in range(repeats):
        mp = two_stages(probes, opts, base, tuned)
        t0 = time.perf_counter()
        mp.run(progress=False)
        run_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gens = [g for m in (base, tuned) for g in m.generate(prompts, max_new_tokens=max_new, stop=stop,
                                                               batch_size=len(probes))]
        for model, (ids, mask) in recorded:
            model(ids, mask)
        bare_times.append(time.perf_counter() - t0)
        new_tokens = sum(len(g.token_ids) for g in gens)
    run_s, bare_s = statistics.median(run_times), statistics.median(bare_times)
    return {"bench": "meta.run_vs_forward", "case": "native_cached", "threads": torch.get_num_threads(),
            "d_model": base.config.d_model, "n_layers": base.config.n_layers, "items": len(probes),
            "max_new_tokens": max_new, "generated_tokens": new_tokens, "teacher_forced_calls": len(recorded),
            "repeats": repeats, "run_s": round(run_s, 4), "forward_s": round(bare_s, 4),
            "overhead": round(run_s / bare_s - 1, 4), "target_overhead": 0.10}


def imported_case(probes, base: TinyLM, repeats: int, max_new: int, tmp: str) -> dict:
    import os

    opts = MetaOptions(max_new_tokens=max_new, batch_size=len(probes), divergence=False, parameters=False,
                       stop=(), n_samples=4, do_sample=True, seed=3)
    gen_times, imp_times = [], []
    answers = None
    for _ in range(repeats):
        mp = MetaProbe(probes, options=opts)
        mp.add_stage("base", source=base)
        t0 = time.perf_counter()
        rep = mp.run(progress=False)
        gen_times.append(time.perf_counter() - t0)
        if answers is None:
            path = os.path.join(tmp, "answers.jsonl")
            rep.export_responses(path)
            answers = metaprobe.responses.from_jsonl(path)
        mp = MetaProbe(probes, options=opts, tokenizer="char")
        t0 = time.perf_counter()
        mp.add_stage("base", responses=answers)
        mp.run(progress=False)
        imp_times.append(time.perf_counter() - t0)
    gen_s, imp_s = statistics.median(gen_times), statistics.median(imp_times)
    n = len(probes) * opts.n_samples
    return {"bench": "meta.imported_responses", "case": "responses_only_stage", "threads": torch.get_num_threads(),
            "items": len(probes), "samples": n, "max_new_tokens": max_new, "repeats": repeats,
            "generate_s": round(gen_s, 4), "imported_s": round(imp_s, 4),
            "imported_us_per_answer": round(imp_s / n * 1e6, 1), "imported_over_generate": round(imp_s / gen_s, 4)}


def resume_case(probes, base: TinyLM, tuned: TinyLM, repeats: int, max_new: int, tmp: str) -> dict:
    import os
    import shutil

    opts = MetaOptions(max_new_tokens=max_new, batch_size=len(probes), reference_mode="topk_cache", cache_k=32)
    full_times, resume_times = [], []
    size = 0
    for r in range(repeats):
        out = os.path.join(tmp, f"run{r}")
        shutil.rmtree(out, ignore_errors=True)
        mp = two_stages(probes, opts, base, tuned)
        t0 = time.perf_counter()
        mp.run(progress=False, out_dir=out)
        full_times.append(time.perf_counter() - t0)
        mp = two_stages(probes, opts, base, tuned)
        t0 = time.perf_counter()
        mp.run(progress=False, out_dir=out, resume=True)
        resume_times.append(time.perf_counter() - t0)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    full_s, res_s = statistics.median(full_times), statistics.median(resume_times)
    return {"bench": "meta.resume", "case": "finished_directory", "threads": torch.get_num_threads(),
            "items": len(probes), "stages": 2, "max_new_tokens": max_new, "repeats": repeats,
            "full_run_s": round(full_s, 4), "resume_s": round(res_s, 4), "resume_over_full": round(res_s / full_s, 4),
            "directory_bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON lines only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--items-per-cell", type=int, default=1)
    ap.add_argument("--skills", default="calculation")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--cached-new-tokens", type=int, default=64, help="answer length of the native_cached case")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    probes = metaprobe.probes.generate(skills=args.skills.split(","), n_per_cell=args.items_per_cell,
                                       difficulties=[1], seed=1)
    cfg = dict(d_model=args.d_model, n_layers=args.layers, n_heads=8, d_ff=3 * args.d_model, max_len=1024)
    base, tuned = TinyLM(seed=1, **cfg), TinyLM(seed=2, **cfg)
    rows = [one_case(mode, probes, base, tuned, args.repeats, args.max_new_tokens) for mode in ("exact", "topk_cache")]
    rows.append(cached_case(probes, base, tuned, args.repeats, args.cached_new_tokens))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # the imported and resumed cases use answers of realistic length on a smaller model
        small = dict(d_model=64, n_layers=2, n_heads=4, d_ff=192, max_len=1024)
        many = metaprobe.probes.generate(n_per_cell=args.items_per_cell * 5, difficulties=[1], seed=1)
        rows.append(imported_case(many, TinyLM(seed=1, **small), args.repeats, 64, tmp))
        rows.append(resume_case(many, TinyLM(seed=1, **small), TinyLM(seed=2, **small), args.repeats, 64, tmp))
    for row in rows:
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
