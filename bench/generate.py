"""Benchmark of generation and scoring through the model backends (docs/meta.md, "Benchmark: generation").

Generation: a tiny-but-not-trivial Hugging Face Llama (4 layers, d = 256, V = 32,000, random weights from a seed)
behind ``metaprobe.backends.hf`` answers the probe prompts greedily in the meta run (behaviour only);
``bare_generate_tokens_per_s`` is ``model.generate`` alone on the same prompts, batches and settings.
overhead = bare / run − 1 (tokens per second; after one untimed warm-up of each, medians of --repeats alternating
pairs in one process, 1 thread), positions_per_generated_token = the non-padding positions the
model ran / generated tokens (1 + prompt/generated with a KV cache; ≫ 1 without).

Scoring memory at V = 151,936 (Qwen2.5's vocabulary): the peak extra resident memory of a teacher-forced
divergence pass, now (the HF backend's positions-only scoring, chunked at ``score_rows``) and along the former
path (every stage a plain callable returning full ``[B, T, V]`` logits, one pass per batch, so the gathered rows
and the float64 copies of the divergence cover every position of the batch). Each measurement runs in a fresh
subprocess; peak RSS (VmHWM, reset through /proc/self/clear_refs) minus the RSS before the pass.

    python bench/generate.py --json      # one JSON object per case per line
    python bench/generate.py --quick     # < 60 s
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

SCORING_V = 151_936


def _byte_tokenizer():
    from metaprobe.backends import CallableTokenizer

    # ids 3..258 are the bytes; everything else decodes to nothing (a random model emits any id < V)
    return CallableTokenizer(lambda t: [b + 3 for b in t.encode("utf-8")],
                             lambda ids: bytes(i - 3 for i in ids if 3 <= i < 259).decode("utf-8", "replace"),
                             pad_id=0, bos_id=1, eos_id=2)


def _model(vocab: int, layers: int, hidden: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def generation_case(n_items: int, max_new: int, batch: int, repeats: int = 3) -> dict:
    import statistics

    import metaprobe
    from metaprobe import MetaOptions, MetaProbe, backends

    probes = list(metaprobe.probes.generate(n_per_cell=max(1, n_items // 20), difficulties=[1], seed=0))[:n_items]
    model = _model(32_000, 4, 256)
    tok = _byte_tokenizer()
    opts = MetaOptions(max_new_tokens=max_new, stop=(), divergence=False, parameters=False, batch_size=batch,
                       eos_ids=(2,))
    # bare: the same prompts in the engine's batches (longest first), model.generate alone
    prompts = [[1] + tok.encode(p) for p in probes_render(probes)]
    order = sorted(range(len(prompts)), key=lambda k: -len(prompts[k]))

    def run_once():
        mp = MetaProbe(probes, options=opts, tokenizer=tok)
        mp.add_stage("base", source=backends.hf(model))
        t0 = time.perf_counter()
        rep = mp.run(progress=False)
        return time.perf_counter() - t0, rep.data["stages"][0]["behaviour"]

    def bare_once():
        tokens = 0
        t0 = time.perf_counter()
        for c in range(0, len(order), batch):
            rows = [prompts[k] for k in order[c:c + batch]]
            width = max(len(r) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, p in enumerate(rows):
                ids[r, width - len(p):] = torch.tensor(p)
                mask[r, width - len(p):] = 1
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new,
                                     eos_token_id=2, pad_token_id=0)
            new = out[:, width:]
            for r in range(new.shape[0]):
                row = new[r].tolist()
                tokens += row.index(2) if 2 in row else len(row)
        return time.perf_counter() - t0, tokens

    bare_once()  # warm-up of both paths (allocator, first-call costs), not timed
    run_once()
    run_times, bare_times = [], []
    for _ in range(repeats):  # alternating pairs in one process; medians
        t, b = run_once()
        run_times.append(t)
        t, bare_tokens = bare_once()
        bare_times.append(t)
    run_s, bare_s = statistics.median(run_times), statistics.median(bare_times)
    run_tps = b["generated_tokens"] / run_s
    bare_tps = bare_tokens / bare_s
    return {"case": f"generate items={len(probes)} max_new={max_new} batch={batch}", "threads": torch.get_num_threads(),
            "repeats": repeats, "run_tokens_per_s": run_tps, "bare_generate_tokens_per_s": bare_tps,
            "overhead": bare_tps / run_tps - 1,
            "prompt_tokens": b["prompt_tokens"], "generated_tokens": b["generated_tokens"],
            "bare_generated_tokens": bare_tokens,
            "positions_per_generated_token": b["positions_processed"] / max(1, b["generated_tokens"]),
            "run_s": run_s, "bare_s": bare_s}


def probes_render(probes):
    import metaprobe

    return metaprobe.probes.ProbeSet(probes).render(template="plain")


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def scoring_child(path: str, n_items: int, solution_tokens: int) -> None:
    """Runs one divergence pass in this (fresh) process and prints its peak extra RSS."""
    from metaprobe import MetaOptions, MetaProbe, backends

    torch.set_num_threads(1)
    tok = _byte_tokenizer()
    items = [{"id": f"m{k}", "skill": "calculation", "domain": "math", "difficulty": 1, "family": "bench",
              "prompt": f"Question {k}: what is {k} + {k}?", "answer": str(2 * k), "answer_type": "integer",
              "reference_solution": ("x" * solution_tokens)} for k in range(n_items)]
    ref, stage = _model(SCORING_V, 1, 64, seed=1), _model(SCORING_V, 1, 64, seed=2)
    opts = dict(behaviour=False, parameters=False, sampled_estimator=False, divergence_on="gold",
                batch_size=n_items)
    if path == "before":
        opts["score_rows"] = 1 << 30

        def plain(m):
            return lambda i, a: m(input_ids=i, attention_mask=a, position_ids=(a.cumsum(-1) - 1).clamp(min=0)).logits

        sources = (plain(ref), plain(stage))
    else:
        opts["score_rows"] = 16
        sources = (backends.hf(ref), backends.hf(stage))
    mp = MetaProbe(items, options=MetaOptions(**opts), tokenizer=tok)
    mp.add_stage("base", source=sources[0])
    mp.add_stage("tuned", arm="sft", step=1, source=sources[1])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _rss_bytes("VmRSS")
    rep = mp.run(progress=False)
    peak = _rss_bytes("VmHWM")
    positions = rep.data["stages"][1]["divergence"]["total"]["positions"]
    print(json.dumps({"peak_extra_bytes": peak - before, "positions": positions}))


def scoring_case(n_items: int, solution_tokens: int) -> dict:
    out = {}
    for path in ("after", "before"):
        res = subprocess.run([sys.executable, __file__, "--scoring-child", path, str(n_items), str(solution_tokens)],
                             capture_output=True, text=True, check=True, env=os.environ.copy())
        out[path] = json.loads(res.stdout.strip().splitlines()[-1])
    return {"case": f"scoring V={SCORING_V} items={n_items} solution_tokens={solution_tokens}",
            "peak_extra_bytes_scoring": out["after"]["peak_extra_bytes"],
            "peak_extra_bytes_scoring_before": out["before"]["peak_extra_bytes"],
            "ratio": out["before"]["peak_extra_bytes"] / max(1, out["after"]["peak_extra_bytes"]),
            "positions": out["after"]["positions"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one JSON object per case per line")
    ap.add_argument("--quick", action="store_true", help="small cases (< 60 s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed run/bare pairs per generation case (medians)")
    ap.add_argument("--scoring-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scoring_child:
        scoring_child(args.scoring_child[0], int(args.scoring_child[1]), int(args.scoring_child[2]))
        return
    torch.set_num_threads(1)
    cases = ([generation_case(8, 32, 8, repeats=1), scoring_case(4, 64)] if args.quick
             else [generation_case(32, 128, 16, args.repeats), generation_case(32, 128, 4, args.repeats),
                   scoring_case(8, 64)])
    for c in cases:
        print(json.dumps(c) if args.json else "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in c.items()))


if __name__ == "__main__":
    main()
