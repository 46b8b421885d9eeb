"""Benchmark of the meta-probing run: its wall time against the bare forward passes it needs.

Every forward call the run makes (generation steps, teacher forcing, the sampled-token estimator) is recorded
by a wrapping logit source; the bare cost is those same calls replayed on the same models and tensors. Runs and
replays alternate in one process; medians of --repeats pairs. overhead = run / forward − 1.

    python bench/meta.py --json            # one JSON object per case per line
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

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


def one_case(mode: str, probes, base: TinyLM, tuned: TinyLM, repeats: int, max_new: int) -> dict:
    opts = MetaOptions(max_new_tokens=max_new, batch_size=len(probes), reference_mode=mode, cache_k=32)
    run_times, fwd_times = [], []
    calls = tokens = 0
    for _ in range(repeats):
        rb, rt = Recorder(base), Recorder(tuned)
        mp = MetaProbe(probes, options=opts, tokenizer="char")  # the recorders wrap TinyLMs
        mp.add_stage("base", source=rb, checkpoint=base.state_dict())
        mp.add_stage("tuned", arm="sft", step=1, source=rt, checkpoint=tuned.state_dict())
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
            "target_overhead": 0.15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON lines only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--items-per-cell", type=int, default=1)
    ap.add_argument("--skills", default="calculation")
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    probes = metaprobe.probes.generate(skills=args.skills.split(","), n_per_cell=args.items_per_cell,
                                       difficulties=[1], seed=1)
    cfg = dict(d_model=args.d_model, n_layers=args.layers, n_heads=8, d_ff=3 * args.d_model, max_len=1024)
    base, tuned = TinyLM(seed=1, **cfg), TinyLM(seed=2, **cfg)
    for mode in ("exact", "topk_cache"):
        row = one_case(mode, probes, base, tuned, args.repeats, args.max_new_tokens)
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
