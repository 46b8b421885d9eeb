"""Work spread over a ``torch.distributed`` process group: the vocabulary-sharded divergence
(docs/divergence.md) and the meta-probing run split by stages (:func:`meta_run`, docs/meta.md).

Each rank holds the logits of a contiguous vocabulary slice ``[vocab_start, vocab_start + V_r)`` (tensor
parallelism, as Megatron's ``VocabParallelCrossEntropy``). ``divergence`` combines per-shard statistics with
five all-reduces of O(rows) tensors, never O(V), and returns the full-vocabulary result on every rank.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

import torch

from . import _core
from .divergence import ArrayLike, DivergenceResult, _as_tensor, _options

if TYPE_CHECKING:
    from .meta import MetaProbe
    from .report import Report

__all__ = ["divergence", "meta_run"]


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
    options = _options(mask=mask_t, targets=targets_t, temperature=temperature, metrics=metrics,
                       reduction=reduction, base=base, beta=beta, ignore_index=ignore_index)
    start = int(vocab_start)

    local = _core.shard_local_maxima(p, q, start, options)
    gmax = _all_reduce(local.max.clone(), dist.ReduceOp.MAX, group)
    gbad = _all_reduce(local.bad.clone(), dist.ReduceOp.MAX, group)
    gsum, cand = _core.shard_rescale(local, gmax)
    _all_reduce(gsum, dist.ReduceOp.SUM, group)
    _all_reduce(cand, dist.ReduceOp.MIN, group)
    idx = _core.shard_value_indices(cand, options, rows)
    vals = _all_reduce(_core.shard_local_values(p, q, start, idx), dist.ReduceOp.SUM, group)
    globals_ = _core.ShardGlobals(max=gmax, sumexp=gsum, argmax=cand, values=vals, bad=gbad)
    parts = _all_reduce(_core.shard_local_partials(p, q, start, globals_, options), dist.ReduceOp.SUM, group)
    out = _core.shard_combine(globals_, parts, lead, int(vocab_size), options)
    count = out.pop("count")
    return DivergenceResult(out, count, options.reduction, options.base)


def meta_run(mp: "MetaProbe", group=None, out_dir: Optional[str] = None, resume: bool = False,
             progress: bool = False) -> "Report":
    """Runs a :class:`metaprobe.MetaProbe` spread over the ranks of a ``torch.distributed`` group (``torchrun
    --nproc_per_node=K``; gloo on CPUs, NCCL on GPUs): every rank builds the same ``mp``, probes the reference
    and every K-th other stage (round robin in stage order), and rank 0 merges the parts
    (:meth:`Report.merge`); every rank returns the merged report, equal to the single-process one.

    Args:
        mp: the run, built identically on every rank (each rank loads its own stages' models: use ``loader=``,
            and put each rank's models on its own device, e.g. ``cuda:{LOCAL_RANK}``).
        out_dir: a run directory per rank, ``{out_dir}/rank-{r}`` (resumable, :meth:`MetaProbe.run`).
        resume: continue those directories.
    """
    import os

    import torch.distributed as dist

    from .report import Report

    if not dist.is_available() or not dist.is_initialized():
        raise _core.InvalidArgumentError("meta_run: torch.distributed is not initialised, expected "
                                         "dist.init_process_group(...) first (torchrun sets the environment)")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    others = [name for name in mp.stages if name != mp.reference]
    mine = others[rank::world]
    rank_dir = None if out_dir is None else os.path.join(os.fspath(out_dir), f"rank-{rank}")
    part = mp.run(progress=progress, out_dir=rank_dir, resume=resume, stages=mine or [mp.reference])
    parts: list = [None] * world if rank == 0 else None
    dist.gather_object(part.to_json(None), parts, dst=0, group=group)
    merged = [Report.merge([Report.from_json(p) for p in parts], order=mp.stages).to_json(None)] if rank == 0 else [None]
    dist.broadcast_object_list(merged, src=0, group=group)
    return Report.from_json(merged[0])
