"""``torchrun --nproc_per_node=K meta_run_job.py CKPT_DIR OUT.json``: the resume tests' study spread over K gloo
ranks with metaprobe.distributed.meta_run; rank 0 writes the merged report (test_merge.py)."""
from __future__ import annotations

import os
import sys

import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resume_job  # noqa: E402

from metaprobe import distributed  # noqa: E402

if __name__ == "__main__":
    ckpt_dir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    report = distributed.meta_run(resume_job.study(ckpt_dir))
    if dist.get_rank() == 0:
        report.save(out)
    dist.barrier()
    dist.destroy_process_group()
