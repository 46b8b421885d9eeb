"""Benchmark of the probes module: generating the default suite and scoring free-form outputs.

Prints one JSON object per line per case (``--json``) or a readable table. Single thread, as the issue asks:
``items_per_s`` for ``metaprobe.probes.generate()`` (the default suite: 20 cells x 50 items, difficulties
1-3, converted to Python Item objects) and ``outputs_per_s`` for ``metaprobe.probes.score`` over synthetic
free-form outputs of about 200 characters (a few distractor numbers, then the worked solution). Each case
reports the median of >= 5 runs; the two cases alternate run by run in one process.
Targets (issue 4): >= 50,000 items/s and >= 200,000 outputs/s.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import metaprobe
from metaprobe import probes

FILLER = ("Let me work through this carefully. First I restate the problem, then I compute 12 and 7 as "
          "intermediate values before checking the units once more.\n")


def synthetic_outputs(suite: probes.ProbeSet) -> list[str]:
    """~200-character outputs: filler text with distractor numbers, then the worked solution (correct) or a
    perturbed final line (every fifth item), so extraction has to find the last answer."""
    outs = []
    for k, it in enumerate(suite):
        text = FILLER + it.reference_solution
        if k % 5 == 4:
            text = FILLER + "I am not sure, maybe 17.\nAnswer: 17"
        outs.append(text[-260:] if len(text) > 260 else text)
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    ap.add_argument("--runs", type=int, default=7, help="runs per case (median reported; >= 5)")
    ap.add_argument("--score-repeat", type=int, default=20, help="suite copies scored per run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    threads = torch.get_num_threads()

    suite = probes.generate()
    items = list(suite) * args.score_repeat
    outputs = synthetic_outputs(suite) * args.score_repeat
    mean_len = sum(map(len, outputs)) / len(outputs)
    probes.score(items, outputs)  # warm-up (pandas import, caches)

    gen_times, score_times = [], []
    for _ in range(max(5, args.runs)):
        t0 = time.perf_counter()
        for _ in range(10):
            s = probes.generate()
        gen_times.append((time.perf_counter() - t0) / (10 * len(s)))
        t0 = time.perf_counter()
        scores = probes.score(items, outputs)
        score_times.append((time.perf_counter() - t0) / len(items))

    base = {"threads": threads, "torch": torch.__version__, "metaprobe": metaprobe.__version__,
            "python": platform.python_version(), "runs": len(gen_times)}
    cases = [
        {"case": "generate_default_suite", "items": len(suite), "items_per_s": 1.0 / statistics.median(gen_times),
         "target_items_per_s": 50000, **base},
        {"case": "score_free_form", "outputs": len(items), "mean_output_chars": round(mean_len, 1),
         "accuracy": scores.overall.acc, "outputs_per_s": 1.0 / statistics.median(score_times),
         "target_outputs_per_s": 200000, **base},
    ]
    for c in cases:
        if args.json:
            print(json.dumps(c))
        else:
            rate = c.get("items_per_s", c.get("outputs_per_s"))
            print(f"{c['case']:<26} {rate:>12,.0f} /s  (threads={threads})")


if __name__ == "__main__":
    main()
