"""Benchmark of metaprobe.params: one JSON object per case per line.

  python bench/params.py --json            # full size (1 GiB bf16 checkpoints, 4096 x 4096 SVD)
  python bench/params.py --json --quick    # under a minute (smaller sizes, same cases)

Cases:
  tensor_stats  every per-tensor statistic over a synthetic bf16 checkpoint vs the naive torch loop
                (t.float() then one op at a time), medians of alternating runs in one process;
  compare       two such checkpoints, per-tensor + update statistics, no spectra, in a fresh child process:
                wall time and RSS high-water (reset through /proc/self/clear_refs) against the mapped bytes;
  topk_svd      top 32 singular values of an n x n matrix with a decaying spectrum, randomized subspace
                iteration to a residual bound of 1e-3 (the default) and 1e-4 of each value, vs
                torch.linalg.svdvals; error against float64 svdvals, the per-value bounds, the iterations.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch


def _layers(hidden: int, mlp: int, n_layers: int, seed: int, delta: float = 0.0, base=None):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(n_layers):
        p = f"model.layers.{i}."
        shapes = {
            "self_attn.q_proj.weight": (hidden, hidden),
            "self_attn.k_proj.weight": (hidden, hidden),
            "self_attn.v_proj.weight": (hidden, hidden),
            "self_attn.o_proj.weight": (hidden, hidden),
            "mlp.gate_proj.weight": (mlp, hidden),
            "mlp.up_proj.weight": (mlp, hidden),
            "mlp.down_proj.weight": (hidden, mlp),
            "input_layernorm.weight": (hidden,),
            "post_attention_layernorm.weight": (hidden,),
        }
        for name, shape in shapes.items():
            if base is None:
                t = torch.randn(*shape, generator=g) * 0.02
            else:
                t = base[p + name].float()
                mask = torch.rand(*shape, generator=g) < 0.2  # RL-like sparse update
                t = t + mask * torch.randn(*shape, generator=g) * delta
            sd[p + name] = t.to(torch.bfloat16)
    return sd


def _rss_fields() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _naive_stats(t: torch.Tensor) -> list[float]:
    x = t.float()
    mean = x.mean()
    std = x.std()
    d = x - mean
    return [
        mean.item(), std.item(), x.min().item(), x.max().item(), x.abs().mean().item(), x.norm().item(),
        x.abs().max().item(), (x == 0).float().mean().item(), torch.isnan(x).sum().item(),
        torch.isinf(x).sum().item(), (d.pow(3).mean() / std.pow(3)).item(), (d.pow(4).mean() / std.pow(4) - 3).item(),
    ]


def case_tensor_stats(path: str, reps: int, threads: int) -> dict:
    import metaprobe
    from metaprobe import io, params

    ckpt = io.open_checkpoint(path)
    names = list(ckpt.keys())
    nbytes = sum(ckpt[n].numel() * ckpt[n].element_size() for n in names)
    for n in names:  # warm the page cache and the allocator
        params.tensor_stats(ckpt[n])
        _naive_stats(ckpt[n])
    ours, naive = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        for n in names:
            params.tensor_stats(ckpt[n])
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for n in names:
            _naive_stats(ckpt[n])
        naive.append(time.perf_counter() - t0)
    o, b = statistics.median(ours), statistics.median(naive)
    return {
        "case": "tensor_stats", "threads": threads, "reps": reps, "tensors": len(names), "bytes": nbytes,
        "dtype": "bf16", "wall_s": o, "naive_wall_s": b, "gbytes_per_s": nbytes / o / 1e9,
        "naive_gbytes_per_s": nbytes / b / 1e9, "speedup": b / o, "target_speedup": 5.0, "target_gbytes_per_s": 8.0,
        "version": metaprobe.__version__, "load_avg_1m": os.getloadavg()[0],
    }


def child_compare(ref: str, tuned: str, threads: int) -> None:
    torch.set_num_threads(threads)
    from metaprobe import io, params

    sizes = [os.path.getsize(ref), os.path.getsize(tuned)]
    largest = max(io.open_checkpoint(ref).info(n).nbytes for n in io.open_checkpoint(ref).keys())
    peaks = {"RssAnon": 0, "RssFile": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            f = _rss_fields()
            for k in peaks:
                peaks[k] = max(peaks[k], f.get(k, 0))
            time.sleep(0.005)

    before = _rss_fields()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    c = params.compare_checkpoints(ref, tuned, progress=False)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = _rss_fields()
    extra = after["VmHWM"] - before["VmRSS"]
    print(json.dumps({
        "case": "compare", "threads": threads, "tensors": len(c.tensors), "wall_s": wall,
        "gbytes_per_s": sum(sizes) / wall / 1e9, "peak_rss_bytes": after["VmHWM"],
        "rss_before_bytes": before["VmRSS"], "peak_rss_growth_bytes": extra,
        "peak_rss_anon_bytes": peaks["RssAnon"], "peak_rss_file_bytes": peaks["RssFile"],
        "mapped_bytes": sum(sizes), "largest_tensor_bytes": largest,
        "target_growth_bytes": 2 * largest + 200 * 2**20,
        "meets_target": extra <= 2 * largest + 200 * 2**20,
        "sparsity_abs": c.summary["sparsity_abs"], "rel_update_norm": c.summary["rel_update_norm"],
    }))


def case_compare(ref: str, tuned: str, threads: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child-compare", ref, tuned, "--threads", str(threads)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def case_topk(n: int, k: int, reps: int, threads: int) -> list[dict]:
    """Randomized top-k (tolerance 1e-3, the default, and 1e-4) against ``svdvals``, alternating runs."""
    from metaprobe import params

    g = torch.Generator().manual_seed(0)
    s = 0.5 ** (torch.arange(n, dtype=torch.float32) / 8)  # halves every 8 indices
    a = torch.randn(n, n, generator=g) / n**0.5
    b = torch.randn(n, n, generator=g) / n**0.5
    w = (a * s) @ b.T
    variants = [{"tolerance": 1e-3}, {"tolerance": 1e-4}]
    for opts in variants:
        params.top_k_singular_values(w, k, **opts)
    ours: list[list[float]] = [[] for _ in variants]
    base: list[float] = []
    out: list = [None] * len(variants)
    ref = None
    for _ in range(reps):
        for i, opts in enumerate(variants):
            t0 = time.perf_counter()
            out[i] = params.top_k_singular_values(w, k, **opts)
            ours[i].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = torch.linalg.svdvals(w)
        base.append(time.perf_counter() - t0)
    exact = torch.linalg.svdvals(w.double())[:k]
    b_ = statistics.median(base)
    rows = []
    for opts, times, r in zip(variants, ours, out):
        o = statistics.median(times)
        values, bounds = r["values"], r["value_bounds"]
        rows.append({
            "case": "topk_svd", "threads": threads, "reps": reps, "n": n, "k": k, **opts, "method": r["method"],
            "iterations": r["iterations"], "converged": r["converged"],
            "wall_s": o, "svdvals_wall_s": b_, "speedup": b_ / o,
            "max_rel_err": ((values - exact).abs() / exact).max().item(),
            "max_rel_err_svdvals_f32": ((ref[:k].double() - exact).abs() / exact).max().item(),
            "max_rel_value_bound": (bounds / values).max().item(),
            # the residual theorem puts a singular value within each bound; here it is the i-th one
            "bounds_hold": bool(((values - exact).abs() <= bounds + 1e-6 * exact[0]).all()),
            "error_bound": r["error_bound"], "error_bound_rel_sigma_k": r["error_bound"] / exact[-1].item(),
            "target_speedup": 10.0 if n <= 2048 else 20.0, "target_max_rel_err": 1e-3,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="one JSON object per line (the only output format)")
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cases", default="tensor_stats,compare,topk_svd")
    ap.add_argument("--child-compare", nargs=2, metavar=("REF", "TUNED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_compare:
        child_compare(*args.child_compare, args.threads)
        return
    torch.set_num_threads(args.threads)
    from metaprobe import io

    cases = args.cases.split(",")
    hidden, mlp, n_layers = (1024, 2816, 8) if args.quick else (2048, 5632, 11)
    tmp = tempfile.mkdtemp(prefix="metaprobe_bench_params_")
    try:
        ref_path, tuned_path = os.path.join(tmp, "ref.safetensors"), os.path.join(tmp, "tuned.safetensors")
        if "tensor_stats" in cases or "compare" in cases:
            ref = _layers(hidden, mlp, n_layers, seed=0)
            io.save(ref, ref_path)
            if "compare" in cases:
                io.save(_layers(hidden, mlp, n_layers, seed=1, delta=1e-4, base=ref), tuned_path)
            del ref
        if "tensor_stats" in cases:
            print(json.dumps(case_tensor_stats(ref_path, args.reps, args.threads)), flush=True)
        if "compare" in cases:
            print(json.dumps(case_compare(ref_path, tuned_path, args.threads)), flush=True)
        if "topk_svd" in cases:
            n = 2048 if args.quick else 4096
            for row in case_topk(n, 32, args.reps, args.threads):
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
