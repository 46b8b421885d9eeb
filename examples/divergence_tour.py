#!/usr/bin/env python3
"""A tour of metaprobe.divergence: how far does a fine-tuned copy of a tiny language model drift?

Trains a character-level GRU language model on a few sentences (the "base"), copies it and fine-tunes the
copy for a few steps on arithmetic text (the "tuned" model), then compares the two models' next-character
distributions on held-out sentences with ``metaprobe.divergence`` and prints one row per sentence.
Runs in a few seconds on a CPU.
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

import metaprobe

BASE_TEXT = [
    "the cat sat on the mat and looked at the door.",
    "a small dog ran across the green field after the ball.",
    "she wrote a short letter to her brother in the city.",
    "the river runs past the old mill and into the lake.",
]
TUNE_TEXT = [
    "12 + 7 = 19. 30 - 4 = 26. 6 * 7 = 42.",
    "5 + 5 = 10. 9 * 3 = 27. 81 - 9 = 72.",
]
PROBE_TEXT = [
    "the dog sat by the door.",
    "a letter ran into the lake.",
    "7 + 8 = 15. 4 * 4 = 16.",
    "her brother wrote 12 + 7 = 19.",
]


class CharLM(nn.Module):
    """Embedding → GRU → linear head over a character vocabulary."""

    def __init__(self, vocab: int, dim: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T] → logits [B, T, V]
        h, _ = self.rnn(self.emb(x))
        return self.head(h)


def encode(texts, stoi, length):
    """Pads with the id of ' ' to `length`; returns ids [B, length] and a bool mask of real characters."""
    ids = torch.full((len(texts), length), stoi[" "], dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.bool)
    for i, s in enumerate(texts):
        ids[i, : len(s)] = torch.tensor([stoi[c] for c in s])
        mask[i, : len(s)] = True
    return ids, mask


def train(model: CharLM, ids: torch.Tensor, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    chars = sorted(set("".join(BASE_TEXT + TUNE_TEXT + PROBE_TEXT)))
    stoi = {c: i for i, c in enumerate(chars)}
    length = max(len(s) for s in BASE_TEXT + TUNE_TEXT + PROBE_TEXT) + 1
    base = CharLM(len(chars))
    train(base, encode(BASE_TEXT, stoi, length)[0], steps=150, lr=1e-2)
    tuned = copy.deepcopy(base)
    train(tuned, encode(TUNE_TEXT, stoi, length)[0], steps=40, lr=1e-2)

    ids, mask = encode(PROBE_TEXT, stoi, length)
    with torch.no_grad():
        p = base(ids[:, :-1])   # [B, T, V]: next-character logits of the base model
        q = tuned(ids[:, :-1])
    targets = ids[:, 1:].clone()
    targets[~mask[:, 1:]] = -100  # padding: ignored entirely
    res = metaprobe.divergence(p, q, targets=targets, reduction="row")
    table = res.to_pandas()
    table.insert(0, "sentence", PROBE_TEXT)
    table.insert(1, "positions", (targets != -100).sum(1).numpy())
    table["logratio_target"] = table["logp_target"] - table["logq_target"]  # sampled-token KL estimator
    cols = ["sentence", "positions", "kl_pq", "kl_qp", "js", "entropy_p", "entropy_q", "top1_agree",
            "rank_shift", "logratio_target", "target_rank_p", "target_rank_q"]
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table[cols].to_string(index=False))
    overall = metaprobe.divergence(p, q, targets=targets, reduction="mean", metrics=["kl_pq", "js", "top1_agree"])
    print(f"\nover {overall.count} positions: KL(base‖tuned) = {overall.kl_pq.item():.3f} nats, "
          f"JS = {overall.js.item():.3f} nats, top-1 agreement = {overall.top1_agree.item():.2f} "
          f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
