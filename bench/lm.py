"""Benchmark of metaprobe.lm: the C++ TinyTransformer against its torch.nn twin on the same weights.

Cases (one JSON object per line with --json): forward logits, greedy generation (C++ with its KV cache against
a no-cache torch loop), and one SFT step (C++ sft_train against torch eager + torch.optim.AdamW).
Each case alternates the two implementations, repeats ≥ 5 times and reports medians. Threads are set
explicitly (torch and the C++ core share the intra-op pool).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from metaprobe import lm


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def side_by_side(a, b, repeats: int):
    ta, tb = [], []
    a(), b()  # warm-up
    for _ in range(repeats):
        ta.append(timed(a))
        tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", action="store_true", help="one JSON object per case")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (torch and the C++ core)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = lm.TinyLM(seed=0)  # default config: d_model 128, 2 layers, 4 heads, d_ff 384
    twin = model.to_torch()
    cfg = model.config
    base = {"threads": torch.get_num_threads(), "repeats": args.repeats, "params": model.num_parameters(),
            "d_model": cfg.d_model, "n_layers": cfg.n_layers}
    rows = []

    # 1. forward
    B, T = 32, 256
    ids = torch.randint(4, 100, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    with torch.no_grad():
        err = (model(ids, mask) - twin(ids, mask)).abs().max().item()
        c, t = side_by_side(lambda: model(ids, mask), lambda: twin(ids, mask), args.repeats)
    rows.append({"case": "forward", "batch": B, "tokens": T, "cpp_s": c, "torch_s": t, "speedup": t / c,
                 "cpp_tokens_per_s": B * T / c, "max_abs_diff": err})

    # 2. generation: C++ (KV cache) vs torch twin recomputing the whole prefix each token
    prompts = [f"Q{i}: what is {i}+{i}? Answer:" for i in range(16)]
    new = 32
    tok = lm.CharTokenizer(padding_side="left")

    def torch_greedy():
        enc = tok(prompts, padding=True, return_tensors="pt")
        x, m = enc["input_ids"], enc["attention_mask"]
        with torch.no_grad():
            for _ in range(new):
                nxt = twin(x, m)[:, -1].argmax(-1, keepdim=True)
                x = torch.cat([x, nxt], 1)
                m = torch.cat([m, torch.ones_like(nxt)], 1)
        return x

    def cpp_greedy():
        return model.generate(prompts, max_new_tokens=new, stop_at_eos=False)

    same = [g.token_ids for g in cpp_greedy()] == torch_greedy()[:, -new:].tolist()
    c, t = side_by_side(cpp_greedy, torch_greedy, args.repeats)
    rows.append({"case": "generate_greedy", "prompts": len(prompts), "new_tokens": new, "cpp_s": c, "torch_s": t,
                 "speedup": t / c, "cpp_tokens_per_s": len(prompts) * new / c, "same_tokens": same})

    # 3. one SFT step, batch 16 x ~200 tokens
    examples = [("x" * 100 + str(i), "y" * 99) for i in range(16)]
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)
    enc = lm.CharTokenizer()([p + c for p, c in examples], padding=True, return_tensors="pt")
    x_in = enc["input_ids"]
    tgt = torch.cat([x_in[:, 1:], torch.full((16, 1), 2)], 1)

    def torch_step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(x_in).reshape(-1, 100), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        opt.step()

    def cpp_step():
        model.sft(examples, steps=1, batch_size=16, lr=1e-4, loss_on="all")

    c, t = side_by_side(cpp_step, torch_step, args.repeats)
    rows.append({"case": "sft_step", "batch": 16, "tokens": x_in.shape[1], "cpp_s": c, "torch_s": t,
                 "speedup": t / c})

    for r in rows:
        r = {**r, **base}
        print(json.dumps(r) if args.json else "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in r.items()))


if __name__ == "__main__":
    main()
