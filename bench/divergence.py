#!/usr/bin/env python3
"""Benchmark of metaprobe.divergence: the fused kernel next to the torch composite a researcher writes.

Prints one JSON object per case (``--json``) with fused_s, naive_s, speedup (medians of alternating runs in
one process), pairs_per_s, exp_floor_s (two ``torch.exp(x, out=buf)`` over the inputs: the exponentials no
exact divergence avoids), floor_ratio = fused_s / exp_floor_s, and the peak extra resident memory of one
fused and one naive call. Cases: fp32, bf16 and fp16 with every metric (targets included), and fp32 with
the three most used ones (``kl_pq``, ``js``, ``top1_agree``) against a naive composite of just those; 1 and 2
threads each (``threads`` in every record). ``--quick`` runs a quarter of the rows (128 x 32000, 32 x 151936)
and measures the naive path's peak memory only in the full run, so it finishes in under a minute here. Targets (issue 15): speedup >= 25, floor_ratio <= 2.5 (<= 2.0 on
the full cases), extra memory <= 1% of the inputs.

    python bench/divergence.py --json [--quick] [--reps 5]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

import metaprobe


def naive(p: torch.Tensor, q: torch.Tensor, t: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The straightforward torch composite of the same twelve metrics."""
    lp = torch.log_softmax(p.float(), -1)
    lq = torch.log_softmax(q.float(), -1)
    P, Q = lp.exp(), lq.exp()
    m = 0.5 * (P + Q)
    lm = m.log()
    ap = p.argmax(-1, keepdim=True)
    tt = t.unsqueeze(-1)
    return {
        "kl_pq": (P * (lp - lq)).sum(-1),
        "kl_qp": (Q * (lq - lp)).sum(-1),
        "js": 0.5 * (P * (lp - lm)).sum(-1) + 0.5 * (Q * (lq - lm)).sum(-1),
        "entropy_p": -(P * lp).sum(-1),
        "entropy_q": -(Q * lq).sum(-1),
        "cross_entropy_pq": -(P * lq).sum(-1),
        "top1_agree": (ap == q.argmax(-1, keepdim=True)).squeeze(-1),
        "rank_shift": (q > q.gather(-1, ap)).sum(-1) + 1,
        "logp_target": lp.gather(-1, tt).squeeze(-1),
        "logq_target": lq.gather(-1, tt).squeeze(-1),
        "target_rank_p": (p > p.gather(-1, tt)).sum(-1) + 1,
        "target_rank_q": (q > q.gather(-1, tt)).sum(-1) + 1,
    }


THREE = ["kl_pq", "js", "top1_agree"]


def naive3(p: torch.Tensor, q: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The torch composite of KL(p‖q), JS and top-1 agreement."""
    lp = torch.log_softmax(p.float(), -1)
    lq = torch.log_softmax(q.float(), -1)
    P, Q = lp.exp(), lq.exp()
    lm = (0.5 * (P + Q)).log()
    return {
        "kl_pq": (P * (lp - lq)).sum(-1),
        "js": 0.5 * (P * (lp - lm)).sum(-1) + 0.5 * (Q * (lq - lm)).sum(-1),
        "top1_agree": p.argmax(-1) == q.argmax(-1),
    }


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Resident-memory high-water mark of one call above the resident size before it."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return -1
    before = _status("VmRSS")
    out = fn()
    peak = _status("VmHWM")
    del out
    return max(0, peak - before)


def run_case(rows: int, vocab: int, dtype: torch.dtype, threads: int, reps: int, metrics: int = 12,
             full: bool = False) -> Dict[str, object]:
    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    p = (torch.randn(rows, vocab, generator=g) * 2.0).to(dtype)
    q = (p.float() + torch.randn(rows, vocab, generator=g) * 0.5).to(dtype)
    t = torch.randint(0, vocab, (rows,), generator=g)
    b1, b2 = torch.empty_like(p), torch.empty_like(q)

    if metrics == 12:
        fused = lambda: metaprobe.divergence(p, q, targets=t)  # noqa: E731
        ref = lambda: naive(p, q, t)  # noqa: E731
    else:
        fused = lambda: metaprobe.divergence(p, q, metrics=THREE)  # noqa: E731
        ref = lambda: naive3(p, q)  # noqa: E731
    floor = lambda: (torch.exp(p, out=b1), torch.exp(q, out=b2))  # noqa: E731
    for fn in (fused, ref, floor):  # warm-up (thread pool, allocator, page faults of the outputs)
        fn()
    times: Dict[str, List[float]] = {"fused": [], "naive": [], "floor": []}
    for _ in range(reps):  # alternate, so drifts in machine load hit all three alike
        for name, fn in (("fused", fused), ("naive", ref), ("floor", floor)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "case": f"{rows}x{vocab}-{str(dtype).replace('torch.', '')}-m{metrics}-t{threads}",
        "rows": rows,
        "vocab": vocab,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": threads,
        "metrics": metrics,
        "reps": reps,
        "fused_s": med["fused"],
        "naive_s": med["naive"],
        "speedup": med["naive"] / med["fused"],
        "pairs_per_s": rows / med["fused"],
        "exp_floor_s": med["floor"],
        "floor_ratio": med["fused"] / med["floor"],
        "input_bytes": 2 * p.numel() * p.element_size(),
        "peak_extra_bytes_fused": peak_extra_bytes(fused),
        "peak_extra_bytes_naive": peak_extra_bytes(ref) if full else None,
        "target_speedup": 25.0,
        "target_floor_ratio": 2.0 if full else 2.5,
        "load_avg_1m": os.getloadavg()[0],
        "case_wall_s": time.perf_counter() - t_start,
    }


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object per line per case (default: also a table)")
    ap.add_argument("--quick", action="store_true", help="fewer rows (whole run < 60 s)")
    ap.add_argument("--reps", type=int, default=5, help="alternating runs per case (median reported; >= 5)")
    args = ap.parse_args(argv)
    reps = max(5, args.reps)
    shapes = [(128, 32000), (32, 151936)] if args.quick else [(2048, 32000), (512, 151936)]
    results = []
    variants = [(torch.float32, 12), (torch.bfloat16, 12), (torch.float16, 12), (torch.float32, 3)]
    for rows, vocab in shapes:
        for dtype, metrics in variants:
            for threads in (1, 2):
                r = run_case(rows, vocab, dtype, threads, reps, metrics, full=not args.quick)
                r["extra_fraction"] = r["peak_extra_bytes_fused"] / r["input_bytes"]
                results.append(r)
                print(json.dumps(r), flush=True)
    if not args.json:
        print(f"{'case':36s} {'fused_s':>9s} {'naive_s':>9s} {'speedup':>8s} {'floor_ratio':>11s} {'extra_MB':>9s}")
        for r in results:
            print(f"{r['case']:36s} {r['fused_s']:9.4f} {r['naive_s']:9.4f} {r['speedup']:8.1f} "
                  f"{r['floor_ratio']:11.2f} {r['peak_extra_bytes_fused'] / 2**20:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
