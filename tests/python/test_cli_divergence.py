"""`metaprobe divergence P Q` reads logits from safetensors files and prints what metaprobe.divergence computes."""
import json
import math
import subprocess

import pytest
import torch

import metaprobe
from cli_path import metaprobe_cli

pytestmark = pytest.mark.skipif(metaprobe_cli() is None, reason="the metaprobe CLI was not found")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(metaprobe_cli()), "divergence", *args], capture_output=True, text=True, timeout=60)


def test_matches_the_python_api(tmp_path):
    g = torch.Generator().manual_seed(3)
    p = torch.randn(2, 3, 50, generator=g)
    q = p + 0.3 * torch.randn(2, 3, 50, generator=g)
    targets = torch.randint(0, 50, (2, 3), generator=g)
    metaprobe.io.save({"logits": p, "labels": targets}, tmp_path / "p.safetensors")
    metaprobe.io.save({"logits": q}, tmp_path / "q.safetensors")
    res = _run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"), "--reduction", "row",
               "--targets", "labels", "--indent", "-1")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    ref = metaprobe.divergence(p, q, targets=targets, reduction="row")
    assert doc["count"] == 6 and doc["reduction"] == "row"
    assert set(doc["metrics"]) == set(ref.metrics)
    for name in ref.metrics:
        torch.testing.assert_close(torch.tensor(doc["metrics"][name], dtype=torch.float64), ref[name],
                                   rtol=1e-12, atol=1e-12)


def test_a_single_tensor_needs_no_name_and_bits_divide_by_ln2(tmp_path):
    p = torch.randn(4, 10)
    metaprobe.io.save({"a": p}, tmp_path / "p.safetensors")
    metaprobe.io.save({"b": p.flip(-1)}, tmp_path / "q.safetensors")
    nats = json.loads(_run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"),
                           "--metrics", "kl_pq,js").stdout)["metrics"]
    bits = json.loads(_run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"),
                           "--metrics", "kl_pq,js", "--base", "2").stdout)["metrics"]
    assert set(nats) == {"kl_pq", "js"}
    assert bits["js"] == pytest.approx(nats["js"] / math.log(2), rel=1e-12)


def test_errors_name_the_problem(tmp_path):
    metaprobe.io.save({"x": torch.randn(2, 5), "y": torch.randn(2, 5)}, tmp_path / "p.safetensors")
    metaprobe.io.save({"x": torch.randn(2, 6)}, tmp_path / "q.safetensors")
    missing = _run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"))
    assert missing.returncode == 1
    assert "'logits' is not in" in missing.stderr and "x, y" in missing.stderr
    shapes = _run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"), "--tensor", "x")
    assert shapes.returncode == 1 and "shape" in shapes.stderr
    nofile = _run(str(tmp_path / "nope.safetensors"), str(tmp_path / "q.safetensors"))
    assert nofile.returncode == 1 and "nope.safetensors" in nofile.stderr


def test_a_missing_mask_or_targets_tensor_names_its_option(tmp_path):
    metaprobe.io.save({"logits": torch.randn(2, 5)}, tmp_path / "p.safetensors")
    metaprobe.io.save({"logits": torch.randn(2, 5)}, tmp_path / "q.safetensors")
    for option in ("--mask", "--targets"):
        res = _run(str(tmp_path / "p.safetensors"), str(tmp_path / "q.safetensors"), option, "nope")
        assert res.returncode == 1
        assert f"{option}: 'nope' is not in" in res.stderr and "(tensors: logits)" in res.stderr
        assert "--tensor" not in res.stderr
