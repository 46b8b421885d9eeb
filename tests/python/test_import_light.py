"""`import metaprobe` loads torch and the extension only: no transformers, pandas, matplotlib or scipy.

(tqdm is not checked: `import torch` 2.15 loads it by itself.)"""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("transformers", "tokenizers", "safetensors", "pandas", "matplotlib", "scipy", "lm_eval",
         "weightwatcher", "ipywidgets")


def test_import_metaprobe_loads_nothing_heavy_beyond_torch():
    code = ("import sys, metaprobe, metaprobe.lm, metaprobe.probes, metaprobe.params, metaprobe.meta; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-W", "error::Warning", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    assert out.stderr == ""  # no warning printed on import (a notebook user would see it)


def test_progress_bar_without_ipywidgets_is_plain_tqdm_and_silent():
    # tqdm.auto without ipywidgets warns (TqdmWarning: IProgress not found); metaprobe's bars fall back.
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "from metaprobe._progress import progress_bar\n"
            "bar = progress_bar(total=3, disable=True); bar.update(3); bar.close()\n"
            "print(type(bar).__module__)")
    out = subprocess.run([sys.executable, "-W", "error::Warning", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("tqdm")
