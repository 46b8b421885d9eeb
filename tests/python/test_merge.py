"""A run split by stages: parts run separately and joined with Report.merge, and the same over 2 gloo ranks
with torchrun and metaprobe.distributed.meta_run, equal the single-process report item for item."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import metaprobe
from metaprobe import InvalidArgumentError, Report

sys.path.insert(0, str(Path(__file__).parent))
import resume_job  # noqa: E402


_comparable = resume_job.comparable
ckpts = resume_job.checkpoint_dir_fixture()


@pytest.fixture(scope="module")
def whole(ckpts):
    return resume_job.study(ckpts).run(progress=False)


def test_parts_merge_into_the_single_process_report(ckpts, whole):
    a = resume_job.study(ckpts).run(progress=False, stages=["rl-2", "sft-1"])
    b = resume_job.study(ckpts).run(progress=False, stages=["sft-2", "rl-1"])
    assert [s["info"]["name"] for s in a.stages_raw] == ["base", "sft-1", "rl-2"]  # stage order kept
    merged = Report.merge([a, b], order=whole.stage_names)
    assert _comparable(merged) == _comparable(whole)
    assert merged.razor.equals(whole.razor) and merged.items.equals(whole.items)
    # default order: first appearance
    assert Report.merge([a, b]).stage_names == ["base", "sft-1", "rl-2", "sft-2", "rl-1"]


def test_merge_refuses_parts_of_different_runs(ckpts, whole):
    a = resume_job.study(ckpts).run(progress=False, stages=["sft-1"])
    with pytest.raises(InvalidArgumentError, match="stage 'sft-1' is in part 0 and part 1"):
        Report.merge([a, a])
    other = resume_job.study(ckpts, max_new_tokens=5).run(progress=False, stages=["rl-1"])
    with pytest.raises(InvalidArgumentError, match=r"part 1 was run with other options \(max_new_tokens\)"):
        Report.merge([a, other])
    with pytest.raises(InvalidArgumentError, match="order leaves out stage 'sft-1'"):
        Report.merge([a], order=["base"])
    with pytest.raises(InvalidArgumentError, match="parts\\[0\\] is a dict, expected a Report"):
        Report.merge([a.data])
    with pytest.raises(InvalidArgumentError, match="the plan names stage 'nope'"):
        resume_job.study(ckpts).run(progress=False, stages=["nope"])


def test_torchrun_two_gloo_ranks_equal_the_single_process_run(ckpts, whole, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "merged.json"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(Path(__file__).parent / "meta_run_job.py"), ckpts, str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _comparable(Report.load(out)) == _comparable(whole)
