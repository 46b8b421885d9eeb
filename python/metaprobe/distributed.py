"""Vocabulary-sharded divergence over a ``torch.distributed`` process group (docs/divergence.md).

Each rank holds the logits of a contiguous vocabulary slice ``[vocab_start, vocab_start + V_r)`` (tensor
parallelism, as Megatron's ``VocabParallelCrossEntropy``). ``divergence`` combines per-shard statistics with
five all-reduces of O(rows) tensors, never O(V), and returns the full-vocabulary result on every rank.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from . import _core
from .divergence import ArrayLike, DivergenceResult, _as_tensor, _ignore_index, _metric_names

__all__ = ["divergence"]


def _all_reduce(t: torch.Tensor, op, group) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(t, op=op, group=group)
    return t


def divergence(
    p_shard: ArrayLike,
    q_shard: ArrayLike,
    *,
    group=None,
    vocab_start: Optional[int] = None,
    vocab_size: Optional[int] = None,
    mask: Optional[ArrayLike] = None,
    targets: Optional[ArrayLike] = None,
    temperature: float = 1.0,
    metrics: Union[None, str, Sequence[str]] = None,
    reduction: str = "none",
    base: Union[str, int] = "e",
    beta: float = 0.5,
    ignore_index: int = -100,
) -> DivergenceResult:
    """Full-vocabulary divergence from vocabulary shards, collectively over ``group``.

    Args:
        p_shard, q_shard: this rank's logits ``[..., V_r]`` (same leading dims on every rank).
        group: the process group (``None`` = the default group).
        vocab_start: global index of this shard's first token; ``None`` = the sum of the shard sizes of the
            lower ranks (one all-gather of the sizes).
        vocab_size: the full V; ``None`` = the sum of every shard size.
        mask, targets, temperature, metrics, reduction, base, beta, ignore_index: as
            :func:`metaprobe.divergence`; ``targets`` are global token ids.

    Returns:
        The same :class:`DivergenceResult` on every rank (tensors on the shard's device).
    """
    import torch.distributed as dist

    p = _as_tensor(p_shard, "p_shard")
    q = _as_tensor(q_shard, "q_shard")
    mask_t = _as_tensor(mask, "mask")
    targets_t = _as_tensor(targets, "targets")
    if p.shape != q.shape:
        raise _core.InvalidArgumentError(
            f"p_shard shape {list(p.shape)} and q_shard shape {list(q.shape)} differ, expected the same shape")
    lead = list(p.shape[:-1])
    rows = 1
    for s in lead:
        rows *= s
    if vocab_start is None or vocab_size is None:
        world = dist.get_world_size(group)
        sizes = [torch.zeros(1, dtype=torch.long, device=p.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([p.shape[-1]], dtype=torch.long, device=p.device), group=group)
        sizes_l = [int(s.item()) for s in sizes]
        rank = dist.get_rank(group)
        if vocab_start is None:
            vocab_start = sum(sizes_l[:rank])
        if vocab_size is None:
            vocab_size = sum(sizes_l)
    mlist = _metric_names(metrics)
    ignore_index = _ignore_index(ignore_index)
    temperature = float(temperature)

    mx, sums, arg, bad = _core.shard_local_maxima(p, q, int(vocab_start), temperature)
    gmax = _all_reduce(mx.clone(), dist.ReduceOp.MAX, group)
    gbad = _all_reduce(bad.clone(), dist.ReduceOp.MAX, group)
    gsum, cand = _core.shard_rescale(mx, sums, arg, bad, gmax)
    _all_reduce(gsum, dist.ReduceOp.SUM, group)
    _all_reduce(cand, dist.ReduceOp.MIN, group)
    idx = _core.shard_value_indices(cand, targets_t, int(ignore_index), rows)
    vals = _all_reduce(_core.shard_local_values(p, q, int(vocab_start), idx), dist.ReduceOp.SUM, group)
    parts = _core.shard_local_partials(p, q, int(vocab_start), gmax, gsum, cand, vals, gbad, mlist, temperature,
                                       float(beta), targets_t is not None)
    _all_reduce(parts, dist.ReduceOp.SUM, group)
    out = _core.shard_combine(gmax, gsum, cand, vals, gbad, parts, lead, int(vocab_size), mask_t, targets_t,
                              temperature, mlist, str(reduction), str(base), float(beta), int(ignore_index))
    count = out.pop("count")
    return DivergenceResult(out, count, str(reduction), str(base))
