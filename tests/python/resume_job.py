"""A small meta-probing study for the resume tests: ``python resume_job.py OUT_DIR CKPT_DIR [--resume]`` runs it
with ``out_dir=OUT_DIR`` (the tests SIGKILL it midway). ``study(ckpt_dir)`` builds the same study in-process; the resume and merge tests share it and the ``ckpts``
fixture below."""
from __future__ import annotations

import json
import os
import sys

import metaprobe
from metaprobe import MetaOptions, MetaProbe
from metaprobe.lm import TinyLM

OPTIONS = dict(max_new_tokens=24, stop=(), do_sample=True, n_samples=2, seed=11, batch_size=8,
               reference_mode="topk_cache", cache_k=8)
STAGES = [("base", "base", 0), ("sft-1", "sft", 1), ("sft-2", "sft", 2), ("rl-1", "rl", 1), ("rl-2", "rl", 2)]


def checkpoints(ckpt_dir: str) -> list[str]:
    """One safetensors file per stage (written once, then reused: their times and sizes identify them)."""
    paths = []
    for k, (name, _, _) in enumerate(STAGES):
        path = os.path.join(ckpt_dir, f"{name}.safetensors")
        if not os.path.exists(path):
            TinyLM(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=1024, seed=100 + k).save(path)
        paths.append(path)
    return paths


def comparable(report: metaprobe.Report) -> dict:
    """The report without its timings (created, seconds): what two runs of the same study must share."""
    d = json.loads(report.to_json())
    d.pop("created"), d.pop("seconds")
    for s in d["stages"]:
        s.pop("seconds")
    return d


def study(ckpt_dir: str, **option_overrides) -> MetaProbe:
    probes = metaprobe.probes.generate(n_per_cell=2, difficulties=[1], seed=5)
    mp = MetaProbe(probes, options=MetaOptions(**{**OPTIONS, **option_overrides}))
    for (name, arm, step), path in zip(STAGES, checkpoints(ckpt_dir)):
        mp.add_stage(name, arm=arm, step=step, loader=lambda path=path: TinyLM.load(path), tokenizer="char",
                     checkpoint=path)
    return mp


def checkpoint_dir_fixture():
    """A module-scoped pytest fixture writing the study's checkpoints once (``ckpts = checkpoint_dir_fixture()``)."""
    import pytest

    @pytest.fixture(scope="module")
    def ckpts(tmp_path_factory):
        d = tmp_path_factory.mktemp("ckpts")
        checkpoints(str(d))
        return str(d)

    return ckpts


if __name__ == "__main__":
    out_dir, ckpt_dir = sys.argv[1], sys.argv[2]
    study(ckpt_dir).run(progress=False, out_dir=out_dir, resume="--resume" in sys.argv[3:])
