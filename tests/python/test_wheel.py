"""`pip wheel --no-build-isolation .` gives a wheel that installs into a second, clean venv and works there.

The second venv is made with `python -m venv` (no system site-packages). It must not download anything, so
it sees the first venv's torch, numpy and pandas through a `.pth` file appended after its own site-packages:
metaprobe itself comes only from the wheel (checked through `metaprobe.__file__`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("METAPROBE_BUILD_DIR", ROOT / "build"))

SMOKE = r"""
import os, subprocess, sys, torch, metaprobe
from metaprobe import probes
assert os.path.realpath(metaprobe.__file__).startswith(os.path.realpath(sys.prefix)), metaprobe.__file__
p = torch.randn(4, 50, dtype=torch.float64); q = p + 0.1 * torch.randn(4, 50, dtype=torch.float64)
res = metaprobe.divergence(p, q)
lp, lq = p.log_softmax(-1), q.log_softmax(-1)
assert torch.allclose(res.kl_pq, (lp.exp() * (lp - lq)).sum(-1), atol=1e-12)
suite = probes.generate(n_per_cell=1, seed=0)
assert len(suite) == 20
cli = os.path.join(os.path.dirname(metaprobe.__file__), "bin", "metaprobe")
out = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
assert metaprobe.__version__ in out, out
print("SMOKE-OK", metaprobe.__version__)
"""


@pytest.mark.skipif(not (BUILD / "CMakeCache.txt").exists(), reason="needs the CMake build directory (make build)")
def test_wheel_installs_into_a_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    env = {**os.environ, "METAPROBE_BUILD_DIR": str(BUILD), "PIP_NO_INDEX": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                    "-w", str(dist), str(ROOT)], check=True, env=env, cwd=tmp_path)
    wheels = sorted(dist.glob("metaprobe-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp_path / "venv2"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Install first: with the .pth in place pip would see the first venv's metaprobe and skip the wheel.
    subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", str(wheels[0])],
                   check=True, env=env)
    (site / "zz_first_venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([str(py), "-c", SMOKE], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SMOKE-OK" in out.stdout
