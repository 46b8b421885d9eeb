"""The divergence tour example runs and prints one row per probe sentence plus the overall line."""
import os
import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "divergence_tour.py"


def test_divergence_tour_runs():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["sentence", "positions", "kl_pq"]
    assert sum("." in line for line in lines[1:5]) == 4
    assert lines[-1].startswith("over 100 positions: KL(base‖tuned) = ")
