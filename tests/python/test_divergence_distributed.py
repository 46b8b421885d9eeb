"""The vocabulary-sharded divergence over a real gloo process group of 2 processes equals the unsharded one."""
import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import metaprobe

V_SPLIT = (700, 301)  # uneven shards


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs():
    g = torch.Generator().manual_seed(0)
    V = sum(V_SPLIT)
    p = torch.randn(3, 5, V, generator=g) * 3
    q = p + torch.randn(3, 5, V, generator=g)
    p[0, 0, :400] = -math.inf           # all of shard 0 is -inf for p in this row
    q[0, 1, 750:] = -math.inf           # KL(p‖q) = inf, decided on shard 1
    q[1, 2] = p[1, 2]                   # identical row
    p[2, 3, 710] = p[2, 3].max() + 5.0  # argmax on shard 1
    targets = torch.randint(0, V, (3, 5), generator=g)
    targets[2, 4] = -100
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 0] = False
    return p, q, targets, mask


def _worker(rank: int, port: int, queue) -> None:
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        torch.set_num_threads(1)
        p, q, targets, mask = _inputs()
        lo = 0 if rank == 0 else V_SPLIT[0]
        hi = lo + V_SPLIT[rank]
        ps, qs = p[..., lo:hi], q[..., lo:hi]
        failures = []
        for kw in ({}, {"reduction": "row", "base": 2}, {"temperature": 0.5, "beta": 0.2, "reduction": "mean"},
                   {"metrics": ["js", "rank_shift", "target_rank_q"], "beta": 0.0}):
            ref = metaprobe.divergence(p, q, targets=targets, mask=mask, **kw)
            got = metaprobe.distributed.divergence(ps, qs, targets=targets, mask=mask, **kw)
            if got.count != ref.count or set(got.metrics) != set(ref.metrics):
                failures.append(f"{kw}: count/metrics differ")
            for k in ref.metrics:
                a, b = got[k], ref[k]
                same_inf = torch.equal(torch.isinf(a), torch.isinf(b)) and torch.equal(torch.isnan(a), torch.isnan(b))
                fin = torch.isfinite(b)
                if not same_inf or not torch.allclose(a[fin], b[fin], rtol=1e-5, atol=1e-6):
                    failures.append(f"{kw} {k}: {a} vs {b}")
        # Errors are raised on every rank (no rank is left waiting in a collective).
        bad = ps.clone()
        if rank == 1:
            bad[1, 1, 3] = math.nan
        try:
            metaprobe.distributed.divergence(bad, qs)
            failures.append("NaN on rank 1 not reported")
        except metaprobe.InvalidArgumentError as e:
            if "p_logits: row 6 (position [1, 1]) holds a NaN logit" not in str(e):
                failures.append(f"NaN message: {e}")
        queue.put((rank, failures))
    except Exception as e:  # pragma: no cover - reported to the parent
        queue.put((rank, [f"exception: {e!r}"]))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not built")
def test_sharded_equals_unsharded_over_gloo():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for pr in procs:
        pr.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for pr in procs:
        pr.join(timeout=60)
    assert results == {0: [], 1: []}


def test_single_process_shard_api_matches_unsharded():
    """The shard functions with one shard (no collectives) reproduce the unsharded result."""
    from metaprobe import _core

    p, q, targets, mask = _inputs()
    ref = metaprobe.divergence(p, q, targets=targets, mask=mask)
    opts = _core.DivergenceOptions(targets=targets, mask=mask)
    local = _core.shard_local_maxima(p, q, 0, opts)
    gsum, cand = _core.shard_rescale(local, local.max)
    idx = _core.shard_value_indices(cand, opts, 15)
    vals = _core.shard_local_values(p, q, 0, idx)
    g = _core.ShardGlobals(max=local.max, sumexp=gsum, argmax=cand, values=vals, bad=local.bad)
    parts = _core.shard_local_partials(p, q, 0, g, opts)
    out = _core.shard_combine(g, parts, [3, 5], p.shape[-1], opts)
    assert out.pop("count") == ref.count
    for k, v in out.items():
        torch.testing.assert_close(v, ref[k], rtol=1e-5, atol=1e-6, equal_nan=True)
